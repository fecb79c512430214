"""IMAP and POP3 through mailedge into a real Dovecot 2.3 listener with
`haproxy = yes`: LOGIN/SELECT/FETCH and USER/PASS/RETR, over IPv4 and IPv6.
Dovecot's own log must name the client (`rip=`) and mailedge's listener
(`lip=`, the PROXY header's destination), and its `rport` must be the source
port mailedge logged."""

import re

import pytest

from interop_kit import (EDGE_IP, backend_block, fmt_addr, free_port, global_block,
                         imap_fetch_marker, listener_block, pop3_retr_marker, split_hostport,
                         swaks)


def front(edge, backend_addr, protocol, send_proxy="v2", listen_ip=EDGE_IP):
    port = free_port(listen_ip)
    text = (global_block()
            + backend_block("mail", [("s1", backend_addr)], send_proxy=send_proxy)
            + listener_block("front", fmt_addr(listen_ip, port), protocol, "mail"))
    return edge(text), port


def assert_dovecot_clean(lines, own=("127.0.0.1",)):
    bad = [ln for ln in lines if re.search(r": (Warning|Error|Fatal|Panic):", ln)]
    assert not bad, "unexpected Dovecot problems:\n" + "\n".join(bad)
    for ip in own:
        leaked = [ln for ln in lines if "rip=%s," % ip in ln]
        assert not leaked, "Dovecot saw mailedge's address:\n" + "\n".join(leaked)


def check_login_line(stack, marks, service, client, cport, lip, lport):
    """Dovecot's login line: rip/rport are the client's address and source
    port, lip/lport mailedge's listener (the PROXY header's destination).
    (mailstack appends rport/lport to Dovecot's default login_log_format.)"""
    lines = stack.dovecot_log.wait_for(
        r"%s-login: Info: Login: user=<test>, method=PLAIN, rip=%s, lip=%s, mpid=\d+, "
        r"session=<[^>]+>, rport=%d, lport=%d$"
        % (service, re.escape(client), re.escape(lip), cport, lport), since=marks["dovecot"])
    return lines[0]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_imap_login_select_fetch(stack, edge, addrs, marks, version):
    client = addrs.next()
    marker = "imap-%s-%s" % (version, client)
    stack.put_message(marker)
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports["imap_proxy"]), "imap", version)
    local, body = imap_fetch_marker(EDGE_IP, port, client, marker)
    assert marker.encode() in body
    sess = me.wait_session(client=fmt_addr(*local))
    assert int(sess["bytes_out"]) > len(body)
    check_login_line(stack, marks, "imap", client, local[1], EDGE_IP, port)
    stack.dovecot_log.wait_for(r"imap\(test\)<\d+><[^>]+>: Info: Disconnected: Logged out", since=marks["dovecot"])
    assert_dovecot_clean(stack.dovecot_log.lines(marks["dovecot"]))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pop3_user_pass_retr(stack, edge, addrs, marks, version):
    client = addrs.next()
    marker = "pop3-%s-%s" % (version, client)
    stack.put_message(marker)
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports["pop3_proxy"]), "pop3", version)
    local, msg = pop3_retr_marker(EDGE_IP, port, client, marker)
    assert marker.encode() in msg
    me.wait_session(client=fmt_addr(*local))
    check_login_line(stack, marks, "pop3", client, local[1], EDGE_IP, port)
    stack.dovecot_log.wait_for(r"pop3\(test\)<\d+><[^>]+>: Info: Disconnected: Logged out",
                               since=marks["dovecot"])
    assert_dovecot_clean(stack.dovecot_log.lines(marks["dovecot"]))


@pytest.mark.parametrize("service", ["imap", "pop3"])
@pytest.mark.parametrize("backend_ip", ["127.0.0.1", "::1"])
def test_ipv6_client(stack, edge, marks, service, backend_ip):
    """Client ::1 -> mailedge [::1] -> PROXY TCP6 -> Dovecot (over IPv4 or
    IPv6): rip=::1, lip=::1."""
    me, port = front(edge, fmt_addr(backend_ip, stack.ports[service + "_proxy"]), service,
                     listen_ip="::1")
    marker = "%s-ipv6-%s-%d" % (service, backend_ip, port)
    stack.put_message(marker)
    fetch = imap_fetch_marker if service == "imap" else pop3_retr_marker
    local, body = fetch("::1", port, "::1", marker)
    assert marker.encode() in body
    me.wait_session(client=fmt_addr(*local))
    check_login_line(stack, marks, service, "::1", local[1], "::1", port)
    assert_dovecot_clean(stack.dovecot_log.lines(marks["dovecot"]))


def test_smtp_in_imap_out_roundtrip(stack, edge, addrs, marks):
    """What `make demo` shows: swaks through mailedge into postscreen, then
    the same message read back over IMAP through mailedge, from one client."""
    client = addrs.next()
    marker = "roundtrip-%s" % client
    smtp_me, smtp_port = front(edge, fmt_addr("127.0.0.1", stack.ports["postscreen"]), "smtp")
    imap_me, imap_port = front(edge, fmt_addr("127.0.0.1", stack.ports["imap_proxy"]), "imap")
    rc, out = swaks(EDGE_IP, smtp_port, client, marker)
    assert rc == 0, out
    stack.wait_message(marker)
    local, body = imap_fetch_marker(EDGE_IP, imap_port, client, "interop " + marker)
    assert ("(unknown [%s])" % client).encode() in body
    smtp_sess = smtp_me.wait_session(client_ip=client)
    imap_me.wait_session(client=fmt_addr(*local))
    stack.postfix_log.wait_for(r"postfix/smtpd\[\d+\]: connect from unknown\[%s\]:%d$"
                               % (re.escape(client), split_hostport(smtp_sess["client"])[1]),
                               since=marks["postfix"])
    check_login_line(stack, marks, "imap", client, local[1], EDGE_IP, imap_port)
