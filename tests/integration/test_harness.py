"""Self-tests of the harness: PROXY codec, recording backend, client, logs.

These need no mailedge binary; they keep the tools honest so a failure in
the other files points at mailedge, not at the test kit.
"""

import hashlib
import os
import select
import socket
import struct

import pytest

import harness as h
import proxycodec as pp

# ---------------------------------------------------------------- codec


def test_v1_known_vectors():
    hdr = pp.encode_v1("127.9.9.9", 4242, "127.0.0.25", 25)
    assert hdr == b"PROXY TCP4 127.9.9.9 127.0.0.25 4242 25\r\n"
    d = pp.decode(hdr + b"EHLO x\r\n")
    assert (d.version, d.command, d.family) == (1, "PROXY", "TCP4")
    assert d.src == ("127.9.9.9", 4242) and d.dst == ("127.0.0.25", 25)
    assert d.length == len(hdr)

    hdr6 = pp.encode_v1("::1", 65535, "::1", 0)
    assert hdr6 == b"PROXY TCP6 ::1 ::1 65535 0\r\n"
    d = pp.decode(hdr6)
    assert d.family == "TCP6" and d.src == ("::1", 65535) and d.dst == ("::1", 0)

    u = pp.decode(b"PROXY UNKNOWN\r\n")
    assert (u.command, u.family, u.length) == ("LOCAL", "UNKNOWN", 15)
    u = pp.decode(b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")
    assert u.family == "UNKNOWN"


def test_v2_known_vectors():
    hdr = pp.encode_v2("127.9.9.9", 4242, "127.0.0.25", 25)
    assert hdr == (b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a" b"\x21\x11\x00\x0c"
                   b"\x7f\x09\x09\x09" b"\x7f\x00\x00\x19" b"\x10\x92" b"\x00\x19")
    d = pp.decode(hdr + b"rest")
    assert (d.version, d.command, d.family, d.fam_byte) == (2, "PROXY", "TCP4", 0x11)
    assert d.src == ("127.9.9.9", 4242) and d.dst == ("127.0.0.25", 25)
    assert d.length == 28 and d.tlvs == []

    hdr6 = pp.encode_v2("::1", 1, "::ffff:127.0.0.1", 2, tlvs=[(pp.TLV_AUTHORITY, b"mx.test")])
    assert hdr6[12:16] == b"\x21\x21" + struct.pack("!H", 36 + 3 + 7)
    d = pp.decode(hdr6)
    assert d.family == "TCP6" and d.src == ("::1", 1) and d.dst == ("::ffff:7f00:1", 2)
    assert pp.unmap(d.dst_ip) == "127.0.0.1"
    assert d.tlvs == [(pp.TLV_AUTHORITY, b"mx.test")]

    loc = pp.encode_v2_local()
    assert loc == pp.V2_SIG + b"\x20\x00\x00\x00"
    d = pp.decode(loc)
    assert (d.command, d.length) == ("LOCAL", 16)
    # LOCAL with an address block: the length is honoured.
    loc = pp.encode_v2_local(b"\x00" * 12, fam=pp.FAM_TCP4)
    assert pp.decode(loc + b"X").length == 28


@pytest.mark.parametrize("hdr", [
    pp.encode_v1("127.1.2.3", 1, "127.3.2.1", 65535),
    pp.encode_v1("::1", 1234, "::1", 25),
    pp.encode_v2("127.1.2.3", 1, "127.3.2.1", 65535),
    pp.encode_v2("::1", 1234, "::ffff:127.0.0.1", 25, tlvs=[(pp.TLV_NOOP, b"\x00" * 5)]),
    pp.encode_v2_local(),
    pp.encode_v1_unknown(),
])
def test_every_truncation_needs_more(hdr):
    for i in range(len(hdr)):
        with pytest.raises(pp.NeedMore):
            pp.decode(hdr[:i])
    assert pp.decode(hdr).length == len(hdr)
    assert pp.header_length(hdr + b"payload") == len(hdr)


@pytest.mark.parametrize("src,sport,dst,dport", [
    ("127.0.0.77", 40000, "127.5.6.7", 25),
    ("127.255.255.254", 0, "127.0.0.2", 65535),
    ("::1", 12345, "::1", 587),
])
@pytest.mark.parametrize("version", [1, 2])
def test_roundtrip(version, src, sport, dst, dport):
    enc = pp.encode_v1 if version == 1 else pp.encode_v2
    d = pp.decode(enc(src, sport, dst, dport))
    assert d.version == version and d.command == "PROXY"
    assert d.src == (src, sport) and d.dst == (dst, dport)


@pytest.mark.parametrize("bad", [
    b"PROXY TCP4 127.0.0.300 127.0.0.1 1 2\r\n",
    b"PROXY TCP4 127.0.0.01 127.0.0.1 1 2\r\n",        # leading zero
    b"PROXY TCP4 127.0.0.1 127.0.0.1 01 2\r\n",        # leading zero in port
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1 65536\r\n",
    b"PROXY TCP4 ::1 ::1 1 2\r\n",
    b"PROXY TCP6 127.0.0.1 127.0.0.1 1 2\r\n",
    b"PROXY TCP5 127.0.0.1 127.0.0.1 1 2\r\n",
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1\r\n",
    b"PROXY TCP4  127.0.0.1 127.0.0.1 1 2\r\n",
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\n",           # bare LF
    b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\rX\r\n",      # bare CR
    b"PROXY " + b"A" * 120,                           # no CRLF within 107
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, version=1),
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, version=3),
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, command=2),
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, fam=0x13),
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, length=4)[:20],
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, fam=pp.FAM_TCP6),  # 12 < 36
    pp.encode_v2("127.0.0.1", 1, "127.0.0.2", 2, tlvs=[(1, b"abc")], length=12 + 4),
])
def test_invalid_headers_rejected(bad):
    with pytest.raises(pp.InvalidProxy):
        pp.decode(bad)
    assert pp.header_length(bad) == 0


def test_not_proxy():
    for d in (b"EHLO x\r\n", b"\x16\x03\x01\x02\x00", b"proxy tcp4", b"\r\n\r\nX"):
        with pytest.raises(pp.NotProxy):
            pp.decode(d)


# ---------------------------------------------------------------- logs and misc


def test_logfmt_parser():
    line = ('ts=2024-01-01T00:00:00.000Z level=info event=session id=0123456789abcdef '
            'listener=smtp client=[::1]:4242 msg="a \\"quoted\\" = value" empty="" x=')
    d = h.parse_log_line(line)
    assert d["event"] == "session" and d["client"] == "[::1]:4242"
    assert d["msg"] == 'a "quoted" = value' and d["empty"] == "" and d["x"] == ""
    j = h.parse_log_line('{"ts":"t","event":"session","bytes_in":12}')
    assert j["event"] == "session" and j["bytes_in"] == "12"
    assert h.split_addr("[::1]:25") == ("::1", 25)
    assert h.split_addr("127.0.0.77:1") == ("127.0.0.77", 1)
    assert h.parse_duration("500ms") == 0.5 and h.parse_duration("5m") == 300


def test_net_allocation_is_loopback_and_distinct():
    seen = set()
    for i in range(50):
        n = h.allocate_net("test_x")
        assert n.x != 0
        h.check_loopback(n.ip(1))
        seen.add(n.prefix)
    assert len(seen) == 50
    with pytest.raises(AssertionError):
        h.check_loopback("192.0.2.1")


def test_wait_until_times_out():
    with pytest.raises(h.Timeout):
        h.wait_until(lambda: False, timeout=0.05, what="never")
    assert h.wait_until(lambda: 42, timeout=1) == 42


# ---------------------------------------------------------------- backend / client


def test_backend_greets_on_accept_and_records(net):
    b = h.Backend(net.ip(2), greeting=b"220 test ESMTP\r\n", close_on_eof=False)
    try:
        c = h.Client(b.ip, b.port, source=net.ip(10))
        c.wait_endswith(b"220 test ESMTP\r\n")
        conn = b.wait_conn()
        assert conn.remote == (net.ip(10), c.local[1])
        c.send(b"EHLO a\r\n")
        conn.wait_endswith(b"EHLO a\r\n")
        conn.send(b"250 ok\r\n")
        c.wait_endswith(b"250 ok\r\n")
        # half-close client -> backend sees EOF, can still send
        c.shutdown_write()
        assert conn.wait_eof() == b"EHLO a\r\n"
        conn.send(b"221 bye\r\n")
        c.wait_endswith(b"221 bye\r\n")
        conn.shutdown_write()
        c.wait_eof()
        c.close()
    finally:
        b.close()


def test_backend_greets_after_proxy_header_and_echoes(net):
    b = h.Backend(net.ip(2), greeting=b"* OK ready\r\n", greet_when=h.Backend.after_proxy_header,
                  echo=True)
    try:
        c = h.Client(b.ip, b.port, source=net.ip(10))
        conn = b.wait_conn()
        hdr = pp.encode_v2("127.9.9.9", 4242, b.ip, b.port)
        c.send(hdr[:5])
        c.send(hdr[5:] + b"a1 NOOP\r\n")
        c.wait_endswith(b"* OK ready\r\na1 NOOP\r\n")
        assert conn.greeted_at >= len(hdr)
        assert pp.decode(conn.snapshot()).src == ("127.9.9.9", 4242)
        c.close()
        assert conn.wait_end() in ("eof", "reset")
    finally:
        b.close()


def test_backend_large_echo_sha256(net):
    b = h.Backend(net.ip(2), echo=True)
    try:
        c = h.Client(b.ip, b.port, source=net.ip(10))
        payload = os.urandom(2 << 20)
        t = c.send_async(payload)
        c.wait_bytes(len(payload))
        t.finish()
        assert c.sha256() == hashlib.sha256(payload).hexdigest()
        assert b.wait_conn().sha256() == c.sha256()
        c.close()
    finally:
        b.close()


def test_client_sees_reset(net):
    b = h.Backend(net.ip(2))
    try:
        c = h.Client(b.ip, b.port, source=net.ip(10))
        b.wait_conn().abort()
        assert c.wait_end() == "reset"
        c.close()
    finally:
        b.close()


def test_refusing_port(net):
    r = h.RefusingPort(net.ip(3))
    try:
        assert h.connect_refused(r.ip, r.port, source=net.ip(10))
        with pytest.raises(ConnectionRefusedError):
            h.Client(r.ip, r.port)
    finally:
        r.close()


def test_accepted_counts_queued_connections(net):
    b = h.Backend(net.ip(2))
    try:
        assert b.accepted() == 0
        c = h.Client(b.ip, b.port)
        assert h.wait_until(lambda: b.accepted() == 1)
        c.close()
    finally:
        b.close()


def test_blackhole_port_does_not_complete_connects(net):
    bh = h.BlackholePort(net.ip(4))
    try:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((bh.ip, bh.port))
        _, w, _ = select.select([], [s], [], 0.2)
        assert not w, "connect to the black hole completed"
        s.close()
    finally:
        bh.close()


@pytest.mark.skipif(not h.HAVE_IPV6, reason="no ::1 on this host")
def test_ipv6_loopback_backend():
    b = h.Backend("::1", greeting=b"+OK\r\n")
    try:
        c = h.Client("::1", b.port)
        c.wait_endswith(b"+OK\r\n")
        assert b.wait_conn().remote[0] == "::1"
        c.close()
    finally:
        b.close()
