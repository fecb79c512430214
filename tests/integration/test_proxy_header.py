"""The PROXY header mailedge writes to backends: exact bytes, families,
none without send-proxy, and its place before every client byte."""

import os

import pytest

import harness as h
import proxycodec as pp




needs_ipv6 = pytest.mark.skipif(not h.HAVE_IPV6, reason="no ::1 on this host")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_exact_header_bytes_ipv4(rig, splice, version):
    s = rig.simple(send_proxy=version, splice=splice, greeting=None)
    c = rig.client(s.ip, s.port)
    want = h.expected_header(version, c.local, (s.ip, s.port))
    if version == "v1":
        assert want == ("PROXY TCP4 %s %s %d %d\r\n" % (c.local[0], s.ip, c.local[1],
                                                       s.port)).encode()
    conn = s.backend.wait_conn()
    conn.wait_bytes(len(want))
    h.assert_header_in_one_segment(conn, len(want))
    c.send(b"Z")
    got = conn.wait_endswith(b"Z")
    assert got == want + b"Z"
    c.close()
    s.me.wait_session()


@needs_ipv6
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_exact_header_bytes_ipv6(rig, splice, version):
    s = rig.simple(send_proxy=version, splice=splice, greeting=None, listen_ip="::1",
                   backend_ip="::1")
    c = rig.client("::1", s.port)
    want = h.expected_header(version, c.local, ("::1", s.port))
    if version == "v1":
        assert want == b"PROXY TCP6 ::1 ::1 %d %d\r\n" % (c.local[1], s.port)
    else:
        assert want[13] == 0x21 and want[14:16] == b"\x00\x24"
    conn = s.backend.wait_conn()
    conn.wait_bytes(len(want))
    h.assert_header_in_one_segment(conn, len(want))
    c.send(b"Z")
    assert conn.wait_endswith(b"Z") == want + b"Z"
    c.close()
    line = s.me.wait_session()
    h.assert_session(line, client="[::1]:%d" % c.local[1], peer="[::1]:%d" % c.local[1])


def test_no_send_proxy_means_no_header(rig, splice):
    s = rig.simple(send_proxy=None, splice=splice)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.send(b"EHLO x\r\n")
    conn = s.backend.wait_conn()
    assert conn.wait_endswith(b"EHLO x\r\n") == b"EHLO x\r\n"
    c.close()
    s.me.wait_session()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_header_precedes_early_client_bytes(rig, splice, version):
    """The client writes right after connect; the header still comes first."""
    s = rig.simple(send_proxy=version, splice=splice, greeting=None)
    payload = b"EHLO early\r\n" + os.urandom(64 * 1024)
    c = rig.client(s.ip, s.port)
    c.send(payload)
    want = h.expected_header(version, c.local, (s.ip, s.port))
    conn = s.backend.wait_conn()
    got = conn.wait_bytes(len(want) + len(payload))
    assert got[:len(want)] == want
    assert got[len(want):] == payload
    c.close()
    h.assert_session(s.me.wait_session(), bytes_in=len(payload))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_client_writes_and_closes_at_once(rig, splice, version):
    """Data and FIN arrive before the backend is even connected: the backend
    still gets header, data, then EOF."""
    s = rig.simple(send_proxy=version, splice=splice, greeting=None)
    c = rig.client(s.ip, s.port)
    c.send(b"QUIT\r\n")
    c.shutdown_write()
    conn = s.backend.wait_conn()
    got = conn.wait_eof()
    assert got == h.expected_header(version, c.local, (s.ip, s.port)) + b"QUIT\r\n"
    conn.close()
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed", bytes_in=6, bytes_out=0)


def test_each_connection_gets_its_own_header(rig, splice):
    s = rig.simple(send_proxy="v2", splice=splice, greeting=None)
    clients = [rig.client(s.ip, s.port, source=rig.ip(20 + i), name="c%d" % i) for i in range(5)]
    for i, c in enumerate(clients):
        c.send(b"hello %d\r\n" % i)
    seen = {}
    for n in range(1, 6):
        conn = s.backend.wait_conn(n)
        d = conn.wait_endswith(b"\r\n")
        hdr = pp.decode(d)
        seen[hdr.src] = d[hdr.length:]
        assert hdr.dst == (s.ip, s.port)
    assert seen == {c.local: b"hello %d\r\n" % i for i, c in enumerate(clients)}
    for c in clients:
        c.close()
    s.me.wait_log("session", count=5)


@needs_ipv6
@pytest.mark.parametrize("listen_ip,backend_ip", [("v4", "::1"), ("::1", "v4")],
                         ids=["v4-client-v6-backend", "v6-client-v4-backend"])
def test_header_family_follows_client_not_backend(rig, listen_ip, backend_ip):
    lip = rig.ip(1) if listen_ip == "v4" else listen_ip
    bip = rig.ip(2) if backend_ip == "v4" else backend_ip
    s = rig.simple(send_proxy="v2", greeting=None, listen_ip=lip, backend_ip=bip)
    c = rig.client(s.ip, s.port)
    conn = s.backend.wait_conn()
    hdr = h.wait_header(conn)
    assert hdr.src == c.local and hdr.dst == (s.ip, s.port)
    assert hdr.fam_byte == (pp.FAM_TCP6 if h.is_v6(s.ip) else pp.FAM_TCP4)
    c.close()
    s.me.wait_session()
