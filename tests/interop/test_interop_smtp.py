"""SMTP through mailedge into a real Postfix 3.7: postscreen and a submission
smtpd, both with the PROXY protocol, over IPv4 and IPv6 loopback.

Each test: a fresh client address, swaks through mailedge, the message in the
Maildir, and Postfix's own log naming the client (address and the exact
source port mailedge logged), never mailedge's own address."""

import concurrent.futures as cf
import hashlib
import re
import smtplib
import socket
import struct

import pytest

from interop_kit import (EDGE_IP, SCALE, LineConn, backend_block, fmt_addr, free_port,
                         global_block, listener_block, split_hostport, swaks)
from mailstack import wait_until


def front(edge, backend_addr, protocol, send_proxy="v2", listen_ip=EDGE_IP):
    """mailedge with one listener in front of one Postfix/Dovecot service."""
    port = free_port(listen_ip)
    text = (global_block()
            + backend_block("mail", [("s1", backend_addr)], send_proxy=send_proxy)
            + listener_block("front", fmt_addr(listen_ip, port), protocol, "mail"))
    return edge(text), port


def assert_clean(lines, own=("127.0.0.1",)):
    """No warning/fatal/panic/error, and none of mailedge's own addresses as
    a client, in these Postfix lines."""
    bad = [ln for ln in lines if re.search(r": (warning|fatal|panic|error):", ln)]
    assert not bad, "unexpected Postfix problems:\n" + "\n".join(bad)
    for ip in own:
        leaked = [ln for ln in lines if re.search(r"(from|unknown)\s?\[%s\]" % re.escape(ip), ln)]
        assert not leaked, "Postfix saw mailedge's address %s:\n%s" % (ip, "\n".join(leaked))


def deliver(stack, me, port, client, marker, listen_ip=EDGE_IP):
    rc, out = swaks(listen_ip, port, client, marker)
    assert rc == 0, out
    msg = stack.wait_message(marker)
    sess = me.wait_session(client_ip=client)
    cip, cport = split_hostport(sess["client"])
    assert cip == client
    assert sess["backend"] == "mail" and sess["server"] == "s1", sess
    assert int(sess["bytes_in"]) > 0 and int(sess["bytes_out"]) > 0, sess
    return msg, sess, cport


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_postscreen_delivery(stack, edge, addrs, marks, version):
    client = addrs.next()
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports["postscreen"]), "smtp", version)
    marker = "postscreen-%s-%s" % (version, client)
    msg, sess, cport = deliver(stack, me, port, client, marker)
    assert sess["peer"] == sess["client"], "no inbound PROXY here: peer is the client"
    log = stack.postfix_log
    c = re.escape(client)
    log.wait_for(r"postfix/postscreen\[\d+\]: CONNECT from \[%s\]:%d to \[%s\]:%d$"
                 % (c, cport, re.escape(EDGE_IP), port), since=marks["postfix"])
    log.wait_for(r"postfix/postscreen\[\d+\]: PASS NEW \[%s\]:%d$" % (c, cport),
                 since=marks["postfix"])
    log.wait_for(r"postfix/smtpd\[\d+\]: connect from unknown\[%s\]:%d$" % (c, cport),
                 since=marks["postfix"])
    log.wait_for(r"postfix/smtpd\[\d+\]: disconnect from unknown\[%s\]:%d .*data=1" % (c, cport),
                 since=marks["postfix"])
    assert ("(unknown [%s])" % client).encode() in msg, msg[:600]
    assert_clean(log.lines(marks["postfix"]))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_submission_delivery(stack, edge, addrs, marks, version):
    client = addrs.next()
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports["submission"]), "submission",
                     version)
    marker = "submission-%s-%s" % (version, client)
    msg, _sess, cport = deliver(stack, me, port, client, marker)
    log = stack.postfix_log
    c = re.escape(client)
    log.wait_for(r"postfix/submission/smtpd\[\d+\]: connect from unknown\[%s\]:%d$"
                 % (c, cport), since=marks["postfix"])
    log.wait_for(r"postfix/submission/smtpd\[\d+\]: \w+: client=unknown\[%s\]:%d$"
                 % (c, cport), since=marks["postfix"])
    log.wait_for(r"postfix/submission/smtpd\[\d+\]: disconnect from unknown\[%s\]:%d "
                 r"ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5$" % (c, cport),
                 since=marks["postfix"])
    assert ("(unknown [%s])" % client).encode() in msg, msg[:600]
    assert_clean(log.lines(marks["postfix"]))


def test_several_clients_at_once(stack, edge, addrs, marks):
    """Four clients at the same time through one mailedge, two into
    postscreen and two into submission: each one's lines carry its own
    address and port."""
    ps_me, ps_port = front(edge, fmt_addr("127.0.0.1", stack.ports["postscreen"]), "smtp")
    sub_me, sub_port = front(edge, fmt_addr("127.0.0.1", stack.ports["submission"]),
                             "submission")
    jobs = []
    for i in range(4):
        client = addrs.next()
        me, port, kind = (ps_me, ps_port, "postscreen") if i % 2 == 0 else \
            (sub_me, sub_port, "submission")
        jobs.append((client, me, port, kind, "many-%s-%s" % (kind, client)))
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda j: swaks(EDGE_IP, j[2], j[0], j[4]), jobs))
    for (rc, out) in results:
        assert rc == 0, out
    log = stack.postfix_log
    for client, me, _port, kind, marker in jobs:
        msg = stack.wait_message(marker)
        assert ("(unknown [%s])" % client).encode() in msg
        sess = me.wait_session(client_ip=client)
        cport = split_hostport(sess["client"])[1]
        svc = "postfix/smtpd" if kind == "postscreen" else "postfix/submission/smtpd"
        log.wait_for(r"%s\[\d+\]: connect from unknown\[%s\]:%d$"
                     % (re.escape(svc), re.escape(client), cport), since=marks["postfix"])
    assert_clean(log.lines(marks["postfix"]))


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("service", ["postscreen", "submission"])
def test_ipv6_client(stack, edge, marks, service, version):
    """Client ::1 -> mailedge [::1] -> PROXY TCP6 -> Postfix (inet_protocols = all)."""
    protocol = "smtp" if service == "postscreen" else "submission"
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports[service]), protocol, version,
                     listen_ip="::1")
    marker = "ipv6-%s-%s-%d" % (service, version, port)
    msg, sess, cport = deliver(stack, me, port, "::1", marker, listen_ip="::1")
    log = stack.postfix_log
    if service == "postscreen":
        log.wait_for(r"postfix/postscreen\[\d+\]: CONNECT from \[::1\]:%d to \[::1\]:%d$"
                     % (cport, port), since=marks["postfix"])
        svc = r"postfix/smtpd"
    else:
        svc = r"postfix/submission/smtpd"
    log.wait_for(r"%s\[\d+\]: connect from unknown\[::1\]:%d$" % (svc, cport),
                 since=marks["postfix"])
    assert b"(unknown [IPv6:::1])" in msg or b"(unknown [::1])" in msg, msg[:600]
    assert_clean(log.lines(marks["postfix"]))


def test_ipv4_client_to_ipv6_backend(stack, edge, addrs, marks):
    """IPv4 client, mailedge connects to Postfix over [::1]: the header still
    carries the IPv4 client (TCP4 inside an IPv6 connection)."""
    client = addrs.next()
    me, port = front(edge, fmt_addr("::1", stack.ports["submission6"]), "submission")
    marker = "v6backend-%s" % client
    msg, _sess, cport = deliver(stack, me, port, client, marker)
    stack.postfix_log.wait_for(r"postfix/submission6/smtpd\[\d+\]: connect from unknown\[%s\]:%d$"
                               % (re.escape(client), cport), since=marks["postfix"])
    assert ("(unknown [%s])" % client).encode() in msg
    assert_clean(stack.postfix_log.lines(marks["postfix"]), own=("127.0.0.1", "::1"))


def test_without_proxy_header_postfix_sees_mailedge(stack, edge, addrs, marks):
    """The contrast: no send-proxy, plain smtpd: Postfix logs mailedge's
    address, not the client's. (Why the PROXY header exists.)"""
    client = addrs.next()
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports["plain"]), "smtp", send_proxy=None)
    marker = "plain-%s" % client
    rc, out = swaks(EDGE_IP, port, client, marker)
    assert rc == 0, out
    stack.wait_message(marker)
    me.wait_session(client_ip=client)
    lines = stack.postfix_log.wait_for(r"postfix/plain/smtpd\[\d+\]: connect from ",
                                       since=marks["postfix"])
    assert client not in "\n".join(stack.postfix_log.lines(marks["postfix"]))
    assert "unknown[127.0.0.1]" in lines[0], lines


@pytest.mark.parametrize("splice", ["on", "off"])
def test_large_message_intact(stack, edge, addrs, marks, splice):
    """A 3 MB message through mailedge (splice on and off) into submission:
    Postfix stores exactly what was sent."""
    client = addrs.next()
    port = free_port(EDGE_IP)
    me = edge(global_block(extra=["splice %s" % splice])
              + backend_block("mail", [("s1", fmt_addr("127.0.0.1", stack.ports["submission"]))])
              + listener_block("front", fmt_addr(EDGE_IP, port), "submission", "mail"))
    marker = "large-%s-%s" % (splice, client)
    line = "".join(chr(33 + (i % 90)) for i in range(76))
    body = "\r\n".join("%06d %s" % (i, line) for i in range(3 * 1024 * 1024 // 84)) + "\r\n"
    msg = ("From: sender@client.test\r\nTo: test@example.test\r\nSubject: interop %s\r\n\r\n%s"
           % (marker, body))
    with smtplib.SMTP(EDGE_IP, port, source_address=(client, 0), timeout=60) as s:
        s.ehlo("client.test")
        s.sendmail("sender@client.test", ["test@example.test"], msg)
    stored = stack.wait_message(marker, timeout=30)
    stored_body = stored.split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
    assert hashlib.sha256(stored_body).hexdigest() == hashlib.sha256(body.encode()).hexdigest(), \
        "body changed on the way (%d bytes stored, %d sent)" % (len(stored_body), len(body))
    sess = me.wait_session(client_ip=client)
    assert int(sess["bytes_in"]) > len(body), sess
    assert_clean(stack.postfix_log.lines(marks["postfix"]))


@pytest.mark.parametrize("protocol,expect", [("smtp", b"421 4.3.2"), ("submission", b"421 4.3.2"),
                                             ("imap", b"* BYE"), ("pop3", b"-ERR")],
                         ids=["smtp", "submission", "imap", "pop3"])
def test_backend_down_client_gets_protocol_goodbye(edge, addrs, protocol, expect):
    """No server reachable: the client hears its protocol's 'try later'
    (README), not a silent reset. (The backend is a port nothing listens on.)"""
    client = addrs.next()
    dead = free_port("127.0.0.1")
    port = free_port(EDGE_IP)
    me = edge(global_block()
              + backend_block("mail", [("s1", fmt_addr("127.0.0.1", dead))],
                              extra=["timeout connect 2s"])
              + listener_block("front", fmt_addr(EDGE_IP, port), protocol, "mail"))
    c = LineConn.open(EDGE_IP, port, client)
    try:
        data = c.read_until_close()
    finally:
        c.close()
    assert data.startswith(expect), data
    sess = me.wait_session(client_ip=client)
    assert sess.get("reason") not in (None, "", "client_closed"), sess


def test_client_reset_while_connecting_sends_no_empty_connection(stack, edge, addrs, marks):
    """Clients that connect and reset at once (port scanners, L4 checks of a
    load balancer in front of mailedge): whatever mailedge does with the
    backend connection it already started, Postfix's PROXY port must not see
    a connection without a header (a warning per probe, and mailedge's own
    address in the log: the noise of postfix-dovecot-findings.md a2/a3)."""
    client, sentinel = addrs.next(), addrs.next()
    me, port = front(edge, fmt_addr("127.0.0.1", stack.ports["submission"]), "submission")
    n = 50
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.bind((client, 0))
        c.connect((EDGE_IP, port))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    wait_until(lambda: len([s for s in me.sessions() if s.get("client", "").startswith(client + ":")])
               >= n, 20 * SCALE, "%d session lines" % n)
    # a barrier instead of a pause: one proper session after the probes, and
    # its disconnect line in Postfix's log
    c = LineConn.open(EDGE_IP, port, sentinel)
    try:
        assert c.read_smtp_reply()[-1].startswith("220 ")
        c.send("QUIT\r\n")
        assert c.read_smtp_reply()[-1].startswith("221 ")
    finally:
        c.close()
    stack.postfix_log.wait_for(r"disconnect from unknown\[%s\]" % re.escape(sentinel),
                               since=marks["postfix"])
    lines = stack.postfix_log.lines(marks["postfix"])
    empty = [ln for ln in lines if "warning: haproxy read: EOF" in ln]
    reasons = sorted({(s.get("reason"), s.get("error")) for s in me.sessions()})
    assert not empty, ("%d of %d reset clients left Postfix a connection without a PROXY header "
                       "(mailedge session reasons: %s):\n%s"
                       % (len(empty), n, reasons, "\n".join(lines[:12])))
    assert_clean(lines)
