"""The headline: a server-first SMTP session through mailedge with PROXY v2.

The backend behaves like Postfix with smtpd_upstream_proxy_protocol: it says
nothing until a complete PROXY header has arrived. The client never speaks
first. If mailedge waited for client bytes before connecting or before
writing the header, nobody would ever speak.
"""

import pytest

import harness as h
import proxycodec as pp

GREETING = b"220 mx.test ESMTP\r\n"
CLIENT_IP = "127.0.0.77"


def test_headline_smtp_proxy_v2(rig, splice):
    s = rig.simple(protocol="smtp", send_proxy="v2", splice=splice, greeting=GREETING,
                   greet_when=h.Backend.after_proxy_header)
    c = rig.client(s.ip, s.port, source=CLIENT_IP)
    cport = c.local[1]

    # The client receives the greeting without having sent a byte.
    c.wait_endswith(GREETING)
    assert c.sent == 0
    assert c.snapshot() == GREETING

    conn = s.backend.wait_conn()
    data = conn.snapshot()
    hdr = pp.decode(data)
    assert (hdr.version, hdr.command, hdr.fam_byte) == (2, "PROXY", 0x11)
    assert hdr.src == (CLIENT_IP, cport), "v2 source is not the client"
    assert hdr.dst == (s.ip, s.port), "v2 destination is not the listener address"
    assert hdr.tlvs == []
    # The backend greeted when the header was complete and nothing else had come.
    assert conn.greeted_at == hdr.length == len(data)
    # The header arrived in one piece (one write, one segment).
    assert conn.chunks[0][:hdr.length] == hdr.raw
    h.assert_header_in_one_segment(conn, hdr.length)

    # An SMTP-ish exchange in both directions.
    dialogue = [
        (b"EHLO client.test\r\n", b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n"),
        (b"MAIL FROM:<a@client.test>\r\n", b"250 2.1.0 Ok\r\n"),
        (b"RCPT TO:<b@mx.test>\r\n", b"250 2.1.5 Ok\r\n"),
        (b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (b"Subject: hi\r\n\r\nhello\r\n.\r\n", b"250 2.0.0 Ok: queued as 1\r\n"),
        (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    ]
    sent_in = sent_out = b""
    for cmd, reply in dialogue:
        c.send(cmd)
        sent_in += cmd
        conn.wait(lambda d: d[hdr.length:] == sent_in, what="client bytes %r" % cmd)
        conn.send(reply)
        sent_out += reply
        c.wait(lambda d: d == GREETING + sent_out, what="reply %r" % reply)

    conn.close()           # the server hangs up after 221
    c.wait_eof()
    c.close()

    line = s.me.wait_session()
    h.assert_session_shape(line)
    h.assert_session(line, client="%s:%d" % (CLIENT_IP, cport), peer="%s:%d" % (CLIENT_IP, cport),
                     listener="front", backend="mail", server="srv1",
                     bytes_in=len(sent_in), bytes_out=len(GREETING + sent_out),
                     reason="backend_closed")


@pytest.mark.parametrize("protocol", ["smtp", "submission", "imap", "pop3", "tls", "tcp"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_header_sent_without_client_bytes(rig, protocol, version):
    """Every protocol: backend connection and header right after accept."""
    greeting = {"imap": b"* OK ready\r\n", "pop3": b"+OK ready\r\n"}.get(protocol, GREETING)
    s = rig.simple(protocol=protocol, send_proxy=version, greeting=greeting,
                   greet_when=h.Backend.after_proxy_header)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(greeting)
    conn = s.backend.wait_conn()
    want = h.expected_header(version, c.local, (s.ip, s.port))
    assert conn.snapshot() == want
    h.assert_header_in_one_segment(conn, len(want))
    assert c.sent == 0
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed")
