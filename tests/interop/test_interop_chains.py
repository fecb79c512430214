"""Chains with Debian's HAProxy 2.6, a second implementation of the PROXY
protocol:

  client -> HAProxy (send-proxy / send-proxy-v2) -> mailedge (accept-proxy)
         -> Postfix / Dovecot: the original client survives both hops;
  client -> mailedge (send-proxy v1/v2) -> HAProxy (accept-proxy) -> smtpd:
         HAProxy decodes our header independently and logs what it read.
"""

import re

import pytest

from interop_kit import (EDGE_IP, LineConn, backend_block, fmt_addr, free_port, global_block,
                         imap_fetch_marker, listener_block, parse_logfmt, split_hostport, swaks)
from mailstack import HAProxy, wait_until

HAPROXY_IP = "127.0.101.1"   # where HAProxy listens in these tests
HX_FORMAT = "hx ci=%ci cp=%cp fi=%fi fp=%fp b=%b s=%s bi=%bi bp=%bp ts=%ts"


def haproxy_front_of_edge(haproxy, hop_ip, edge_port, version):
    """HAProxy on HAPROXY_IP:port sending to mailedge from hop_ip."""
    port = free_port(HAPROXY_IP)
    send = "send-proxy-v2" if version == "v2" else "send-proxy"
    cfg = (HAProxy.global_section()
           + "frontend fe_in\n"
           + "    bind %s\n" % fmt_addr(HAPROXY_IP, port)
           + '    log-format "%s"\n' % HX_FORMAT
           + "    default_backend be_edge\n"
           + "backend be_edge\n"
           + "    server edge %s %s source %s\n" % (fmt_addr(EDGE_IP, edge_port), send, hop_ip))
    return haproxy(cfg, wait_for=[(HAPROXY_IP, port)]), port


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("service", ["submission", "postscreen"])
def test_haproxy_then_mailedge_to_postfix(stack, edge, haproxy, addrs, marks, version, service):
    client, hop = addrs.next(), addrs.next()
    edge_port = free_port(EDGE_IP)
    protocol = "smtp" if service == "postscreen" else "submission"
    me = edge(global_block()
              + backend_block("mail", [("s1", fmt_addr("127.0.0.1", stack.ports[service]))],
                              send_proxy="v2")
              + listener_block("chain", fmt_addr(EDGE_IP, edge_port), protocol, "mail",
                               accept_proxy="%s from %s/32" % (version, hop)))
    hx, hx_port = haproxy_front_of_edge(haproxy, hop, edge_port, version)
    marker = "chain-%s-%s-%s" % (service, version, client)
    rc, out = swaks(HAPROXY_IP, hx_port, client, marker)
    assert rc == 0, out
    msg = stack.wait_message(marker)
    sess = me.wait_session(client_ip=client)
    cip, cport = split_hostport(sess["client"])
    assert split_hostport(sess["peer"])[0] == hop, sess
    hline = hx.log.wait_for(r"^hx ci=%s cp=%d " % (re.escape(client), cport))[0]
    assert "fi=%s fp=%d" % (HAPROXY_IP, hx_port) in hline, hline
    svc = "postfix/smtpd" if service == "postscreen" else "postfix/submission/smtpd"
    stack.postfix_log.wait_for(r"%s\[\d+\]: connect from unknown\[%s\]:%d$"
                               % (re.escape(svc), re.escape(client), cport),
                               since=marks["postfix"])
    if service == "postscreen":
        # postscreen's CONNECT line also shows the destination the header
        # carried: we want the original one (HAProxy's frontend), as HAProxy
        # itself forwards it; mailedge's own listener would lose it.
        line = stack.postfix_log.wait_for(r"postscreen\[\d+\]: CONNECT from \[%s\]:%d to "
                                          % (re.escape(client), cport),
                                          since=marks["postfix"])[0]
        assert line.endswith("to [%s]:%d" % (HAPROXY_IP, hx_port)), line
    assert ("(unknown [%s])" % client).encode() in msg
    text = "\n".join(stack.postfix_log.lines(marks["postfix"]))
    assert hop not in text and "[127.0.0.1]" not in text, text


def test_haproxy_then_mailedge_to_dovecot(stack, edge, haproxy, addrs, marks):
    client, hop = addrs.next(), addrs.next()
    edge_port = free_port(EDGE_IP)
    marker = "chain-imap-%s" % client
    stack.put_message(marker)
    me = edge(global_block()
              + backend_block("mail", [("s1", fmt_addr("127.0.0.1", stack.ports["imap_proxy"]))],
                              send_proxy="v2")
              + listener_block("chain", fmt_addr(EDGE_IP, edge_port), "imap", "mail",
                               accept_proxy="v2 from %s/32" % hop))
    _hx, hx_port = haproxy_front_of_edge(haproxy, hop, edge_port, "v2")
    local, body = imap_fetch_marker(HAPROXY_IP, hx_port, client, marker)
    assert marker.encode() in body
    sess = me.wait_session(client=fmt_addr(*local))
    assert split_hostport(sess["peer"])[0] == hop, sess
    line = stack.dovecot_log.wait_for(
        r"imap-login: Info: Login: user=<test>, method=PLAIN, rip=%s, lip=\S+, .* rport=%d, "
        r"lport=\d+$" % (re.escape(client), local[1]), since=marks["dovecot"])[0]
    assert "lip=%s," % HAPROXY_IP in line and line.endswith("lport=%d" % hx_port), (
        "the original destination (HAProxy's frontend) should survive the chain: " + line)


def haproxy_decoder(haproxy, out_addr, reencode):
    """HAProxy with accept-proxy on HAPROXY_IP:port, forwarding to out_addr
    (with send-proxy-v2 when reencode), logging what it decoded."""
    port = free_port(HAPROXY_IP)
    cfg = (HAProxy.global_section()
           + "frontend fe_decode\n"
           + "    bind %s accept-proxy\n" % fmt_addr(HAPROXY_IP, port)
           + '    log-format "%s"\n' % HX_FORMAT
           + "    default_backend be_out\n"
           + "backend be_out\n"
           + "    server out %s%s\n" % (out_addr, " send-proxy-v2" if reencode else ""))
    return haproxy(cfg, wait_for=[(HAPROXY_IP, port)]), port


@pytest.mark.parametrize("hop", ["plain", "reencode"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_mailedge_then_haproxy_decoder(stack, edge, haproxy, addrs, marks, version, hop):
    """mailedge's header, decoded by HAProxy: %ci:%cp must be the client's
    exact address and port and %fi:%fp mailedge's listener. With `reencode`
    HAProxy passes it on to Postfix's submission port (a third decoder)."""
    client = addrs.next()
    svc = "plain" if hop == "plain" else "submission"
    hx, hx_port = haproxy_decoder(haproxy, fmt_addr("127.0.0.1", stack.ports[svc]),
                                  hop == "reencode")
    edge_port = free_port(EDGE_IP)
    me = edge(global_block()
              + backend_block("hx", [("h1", fmt_addr(HAPROXY_IP, hx_port))], send_proxy=version)
              + listener_block("front", fmt_addr(EDGE_IP, edge_port), "smtp", "hx"))
    c = LineConn.open(EDGE_IP, edge_port, client)
    cport = c.local[1]
    try:
        greeting = c.read_smtp_reply()
        assert greeting and greeting[-1].startswith("220 "), greeting
        c.send("EHLO client.test\r\n")
        assert c.read_smtp_reply()[-1].startswith("250 ")
        c.send("QUIT\r\n")
        assert c.read_smtp_reply()[-1].startswith("221 ")
    finally:
        c.close()
    me.wait_session(client="%s:%d" % (client, cport))
    line = hx.log.wait_for(r"^hx ci=%s cp=%d " % (re.escape(client), cport))[0]
    f = parse_logfmt(line)
    assert (f["fi"], f["fp"]) == (EDGE_IP, str(edge_port)), line
    assert f["ts"] == "--", "HAProxy saw an error in the session: " + line
    if hop == "plain":
        # the plain smtpd sees HAProxy, which is the point of the decoder
        stack.postfix_log.wait_for(r"postfix/plain/smtpd\[\d+\]: connect from "
                                   r"unknown\[127\.0\.0\.1\]:%s$" % f["bp"],
                                   since=marks["postfix"])
    else:
        stack.postfix_log.wait_for(r"postfix/submission/smtpd\[\d+\]: connect from "
                                   r"unknown\[%s\]:%d$" % (re.escape(client), cport),
                                   since=marks["postfix"])


def test_haproxy_health_checks_through_mailedge_are_harmless(stack, edge, haproxy, addrs, marks):
    """HAProxy 2.6 `check` on a `send-proxy-v2` server sends a v2 LOCAL
    header and resets (postfix-dovecot-findings.md b-capture). Aimed at a
    mailedge accept-proxy listener in front of a PROXY smtpd, that must not
    turn into the LOCAL+RST that kills smtpd: Postfix may only see ordinary
    connections from the checker's own address. Uses the dedicated `victim`
    service, so a regression cannot disturb the other tests' ports."""
    hop, client = addrs.next(), addrs.next()
    edge_port = free_port(EDGE_IP)
    me = edge(global_block()
              + backend_block("mail", [("s1", fmt_addr("127.0.0.1", stack.ports["victim"]))],
                              send_proxy="v2")
              + listener_block("chain", fmt_addr(EDGE_IP, edge_port), "submission", "mail",
                               accept_proxy="v2 from %s/32" % hop))
    port = free_port(HAPROXY_IP)
    cfg = (HAProxy.global_section()
           + "frontend fe_in\n"
           + "    bind %s\n" % fmt_addr(HAPROXY_IP, port)
           + '    log-format "%s"\n' % HX_FORMAT
           + "    default_backend be_edge\n"
           + "backend be_edge\n"
           + "    server edge %s send-proxy-v2 source %s check inter 100ms\n"
           % (fmt_addr(EDGE_IP, edge_port), hop))
    haproxy(cfg, wait_for=[(HAPROXY_IP, port)])
    checks = wait_until(lambda: (lambda s: len(s) >= 20 and s)(
        [s for s in me.sessions() if s.get("peer", "").startswith(hop + ":")]),
        30, "20 HAProxy health checks through mailedge")
    # a real client through the same chain, while the checks go on
    marker = "checks-%s" % client
    rc, out = swaks(HAPROXY_IP, port, client, marker)
    assert rc == 0, out
    stack.wait_message(marker)
    lines = stack.postfix_log.lines(marks["postfix"])
    bad = [ln for ln in lines if re.search(r"fatal|exit status|throttling", ln)]
    assert not bad, "mailedge passed HAProxy's checks on as something harmful:\n" + "\n".join(bad)
    # LOCAL means "use the connection's own addresses": the checker's
    assert all(split_hostport(s["client"])[0] == hop for s in checks), checks[:3]
    victim = [ln for ln in lines if "postfix/victim/smtpd" in ln and "connect from" in ln]
    # (mailedge's own 127.0.0.1 shows up when a check resets while mailedge
    # is connecting: noise, not harm; see
    # test_interop_smtp.py::test_client_reset_while_connecting_sends_no_empty_connection)
    others = [ln for ln in victim
              if not any("[%s]" % a in ln for a in (hop, client, "127.0.0.1"))]
    assert not others, "\n".join(others)
    assert any("connect from unknown[%s]" % client in ln for ln in victim)


def test_ipv6_client_through_haproxy_and_mailedge(stack, edge, haproxy, addrs, marks):
    """Client ::1 -> HAProxy [::1] -> (IPv4 hop, v2 header with TCP6 inside)
    -> mailedge -> postscreen: the IPv6 client and the original IPv6
    destination arrive in Postfix's log."""
    hop = addrs.next()
    edge_port = free_port(EDGE_IP)
    me = edge(global_block()
              + backend_block("mail", [("s1", fmt_addr("127.0.0.1", stack.ports["postscreen"]))],
                              send_proxy="v2")
              + listener_block("chain", fmt_addr(EDGE_IP, edge_port), "smtp", "mail",
                               accept_proxy="v2 from %s/32" % hop))
    port = free_port("::1")
    cfg = (HAProxy.global_section()
           + "frontend fe_in\n"
           + "    bind %s\n" % fmt_addr("::1", port)
           + "    default_backend be_edge\n"
           + "backend be_edge\n"
           + "    server edge %s send-proxy-v2 source %s\n" % (fmt_addr(EDGE_IP, edge_port), hop))
    haproxy(cfg, wait_for=[("::1", port)])
    marker = "chain6-%d" % port
    rc, out = swaks("::1", port, "::1", marker)
    assert rc == 0, out
    msg = stack.wait_message(marker)
    sess = me.wait_session(client_ip="::1")
    cport = split_hostport(sess["client"])[1]
    assert split_hostport(sess["peer"])[0] == hop, sess
    stack.postfix_log.wait_for(r"postfix/postscreen\[\d+\]: CONNECT from \[::1\]:%d to \[::1\]:%d$"
                               % (cport, port), since=marks["postfix"])
    stack.postfix_log.wait_for(r"postfix/smtpd\[\d+\]: connect from unknown\[::1\]:%d$" % cport,
                               since=marks["postfix"])
    assert b"(unknown [IPv6:::1])" in msg or b"(unknown [::1])" in msg, msg[:600]
