"""Relaying bytes: large transfers with hashes equal at both ends, half-close
in both directions, resets. Every test runs with splice on, off and auto."""

import hashlib
import os
import socket

import pytest

import harness as h
import proxycodec as pp

MIB = 1 << 20


@pytest.mark.parametrize("send_proxy", [None, "v2"])
def test_large_transfer_both_ways(rig, splice, send_proxy):
    size = 8 * MIB
    up, down = os.urandom(size), os.urandom(size)
    s = rig.simple(protocol="tcp", send_proxy=send_proxy, splice=splice, greeting=None)
    c = rig.client(s.ip, s.port)
    conn = s.backend.wait_conn()
    t_up = c.send_async(up)
    t_down = conn.send_async(down)
    t_up.finish(h.DEADLINE * 3)
    t_down.finish(h.DEADLINE * 3)
    hlen = 0
    if send_proxy:
        hlen = pp.decode(conn.wait(lambda d: pp.header_length(d) != None,  # noqa: E711
                                   what="header")).length
    conn.wait_bytes(hlen + size, h.DEADLINE * 3)
    c.wait_bytes(size, h.DEADLINE * 3)
    assert conn.sha256(hlen) == hashlib.sha256(up).hexdigest(), "client->backend corrupted"
    assert c.sha256() == hashlib.sha256(down).hexdigest(), "backend->client corrupted"
    assert len(conn.snapshot()) == hlen + size and len(c.snapshot()) == size
    c.close()
    conn.wait_end()
    h.assert_session(s.me.wait_session(), bytes_in=size, bytes_out=size, reason="client_closed")


def test_many_small_exchanges(rig, splice):
    """Ping-pong: relayed promptly in both directions, no coalescing stall."""
    s = rig.simple(protocol="imap", send_proxy="v1", splice=splice, greeting=b"* OK\r\n",
                   echo=True)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"* OK\r\n")
    expect = b"* OK\r\n"
    for i in range(200):
        line = b"a%d NOOP\r\n" % i
        c.send(line)
        expect += line
        c.wait(lambda d: d == expect, what="echo of %r" % line)
    c.close()
    h.assert_session(s.me.wait_session(), bytes_in=len(expect) - 6, bytes_out=len(expect))


def test_client_half_close(rig, splice):
    """Client FIN: the backend sees EOF but can still answer, and the client
    receives it all; then the backend closes too."""
    greeting = b"220 hi\r\n"
    s = rig.simple(send_proxy="v2", splice=splice, greeting=greeting, close_on_eof=False)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(greeting)
    c.send(b"QUIT\r\n")
    c.shutdown_write()
    conn = s.backend.wait_conn()
    got = conn.wait_eof()
    assert got[pp.decode(got).length:] == b"QUIT\r\n"
    tail = b"221 bye\r\n" + os.urandom(512 * 1024)
    conn.send(tail)
    c.wait(lambda d: d == greeting + tail, what="data after half-close")
    conn.close()
    c.wait_eof()
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed", bytes_in=6,
                     bytes_out=len(greeting + tail))


def test_backend_half_close(rig, splice):
    """Backend FIN: the client sees EOF but can still send, and the backend
    receives it all; then the client closes too."""
    greeting = b"+OK pop3\r\n"
    s = rig.simple(protocol="pop3", send_proxy="v1", splice=splice, greeting=greeting)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(greeting)
    conn = s.backend.wait_conn()
    conn.send(b"-ERR going away\r\n")
    conn.shutdown_write()
    assert c.wait_eof() == greeting + b"-ERR going away\r\n"
    more = b"QUIT\r\n" + os.urandom(512 * 1024)
    c.send(more)
    hdr = pp.decode(conn.wait(lambda d: pp.header_length(d) not in (None, 0), what="header"))
    conn.wait(lambda d: d[hdr.length:] == more, what="client data after backend FIN")
    c.close()
    conn.wait_eof()
    conn.close()
    h.assert_session(s.me.wait_session(), reason="backend_closed", bytes_in=len(more),
                     bytes_out=len(greeting) + 17)


def send_urgent(peer, before: bytes, urgent: bytes, after: bytes):
    """One segment: <before>, the urgent byte, <after> (TCP_CORK)."""
    sock = peer.sock
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    sock.send(before + urgent, socket.MSG_OOB)
    sock.sendall(after)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def test_urgent_data_does_not_stall(rig, splice):
    """A read stops short at the urgent mark, and a splice stops there for
    good: the relay copies, and reads on past the mark instead of taking
    the short read for a drained socket. The client's
    urgent byte is relayed inline (the listener's SO_OOBINLINE); the
    server's is dropped, as a socket without it does."""
    greeting = b"220 hi\r\n"
    s = rig.simple(send_proxy="v2", splice=splice, greeting=greeting, close_on_eof=False)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(greeting)
    conn = s.backend.wait_conn()
    hdr = pp.decode(conn.wait(lambda d: pp.header_length(d) not in (None, 0), what="header"))
    send_urgent(c, b"NOOP", b"!", b" more\r\n")
    conn.wait(lambda d: d[hdr.length:] == b"NOOP! more\r\n", what="bytes after the urgent mark")
    send_urgent(conn, b"250", b"!", b" ok\r\n")
    c.wait(lambda d: d == greeting + b"250 ok\r\n", what="bytes after the urgent mark")
    c.close()
    conn.wait_eof()
    conn.close()
    h.assert_session(s.me.wait_session(), reason="client_closed", bytes_in=12,
                     bytes_out=len(greeting) + 8)


def test_last_bytes_carry_the_fin(rig, splice):
    """A server's last bytes and its FIN in one segment reach the client in
    one segment too (the FIN rides on the bytes), where the relay copies:
    a short read after the FIN was signalled took the last bytes."""
    greeting = b"220 hi\r\n"
    s = rig.simple(send_proxy="v2", splice=splice, greeting=greeting, close_on_eof=False)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(greeting)
    conn = s.backend.wait_conn()
    before = h.segs_in(c.sock)
    if before is None:
        pytest.skip("the kernel does not report tcpi_segs_in")
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    conn.sock.sendall(b"221 bye\r\n")
    conn.shutdown_write()
    assert c.wait_eof() == greeting + b"221 bye\r\n"
    segs = h.segs_in(c.sock) - before
    if splice == "on":
        assert segs in (1, 2)   # a short splice proves nothing: the FIN may follow alone
    else:
        assert segs == 1, "the FIN came in a segment of its own"
    c.close()
    conn.wait_eof()
    conn.close()
    h.assert_session(s.me.wait_session(), reason="backend_closed", bytes_out=len(greeting) + 9)


def test_backend_closes_right_after_greeting(rig, splice):
    """A backend that greets and closes: the client gets every byte, then EOF."""
    msg = b"421 4.7.0 try again later\r\n"
    s = rig.simple(send_proxy="v2", splice=splice, greeting=msg,
                   greet_when=h.Backend.after_proxy_header)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(msg)
    s.backend.wait_conn().close()
    assert c.wait_eof() == msg
    c.close()
    h.assert_session(s.me.wait_session(), reason="backend_closed", bytes_out=len(msg))


def test_backend_reset(rig, splice):
    s = rig.simple(send_proxy="v2", splice=splice)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    s.backend.wait_conn().abort()
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="backend_reset")


def test_client_reset(rig, splice):
    s = rig.simple(send_proxy="v2", splice=splice)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    conn = s.backend.wait_conn()
    c.abort()
    conn.wait_end()
    h.assert_session(s.me.wait_session(), reason="client_reset")


def test_concurrent_sessions(rig, splice):
    s = rig.simple(protocol="tcp", send_proxy="v2", splice=splice, greeting=b"hi\r\n",
                   echo=True)
    n = 20
    clients = [rig.client(s.ip, s.port, source=rig.ip(30 + i % 50), name="c%d" % i)
               for i in range(n)]
    payloads = [os.urandom(64 * 1024) for _ in range(n)]
    senders = [c.send_async(p) for c, p in zip(clients, payloads)]
    for c, p, t in zip(clients, payloads, senders):
        t.finish()
        c.wait(lambda d, p=p: d == b"hi\r\n" + p, what="echo")
    for c in clients:
        c.close()
    lines = s.me.wait_log("session", count=n)
    assert len({ln["id"] for ln in lines}) == n, "session ids are not unique"
