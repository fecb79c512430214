"""The hard cases: back-pressure, FIN behind queued data, resets at odd
moments, clients that leave while mailedge is still connecting, early client
bytes across a fail-over, and file-descriptor leaks.

Stalls are waited for (bytes sitting unread in mailedge's socket), never
slept for; nothing asserts how long anything took.
"""

import hashlib
import os
import selectors
import signal
import socket
import struct
import threading
import time

import pytest

import harness as h
import proxycodec as pp

MIB = 1 << 20
BIG = 16 * MIB
SMALL_BUF = 32 * 1024


def _header_len(conn) -> int:
    d = conn.wait(lambda d: pp.header_length(d) is not None, what="PROXY header")
    return pp.header_length(d)


def _unread(local, remote) -> int:
    """Bytes in the receive queue of the IPv4 socket local<-remote that its
    owner has not read yet (/proc/net/tcp rx_queue)."""
    def key(addr):
        return "%s:%04X" % (socket.inet_aton(addr[0])[::-1].hex().upper(), addr[1])
    want = (key(local), key(remote))
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            col = line.split()
            if (col[1], col[2]) == want:
                return int(col[4].split(":")[1], 16)
    raise AssertionError("no socket %s <- %s in /proc/net/tcp" % (local, remote))


def _rss(me) -> int:
    with open("/proc/%d/status" % me.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for mailedge")


def _wait_mailedge_stops_reading(me, sender, near, rss0):
    """The reader on the far side does not read: mailedge must stop reading
    `sender`. Observed, not assumed: bytes wait unread in mailedge's socket
    from `sender` (`near`: mailedge's end, as (ip, port)) and neither they nor
    the count sent move over several polls, and mailedge's memory stays
    bounded (it did not take the bytes into buffers of its own). The sender
    must send more than the kernel can hold past mailedge (pipe, send
    buffer, the reader's receive buffer)."""
    seen = []

    def stalled():
        seen.append((sender.sent, _unread(near, sender.local)))
        last = seen[-6:]
        return len(last) == 6 and len(set(last)) == 1 and last[0][1] > 0

    h.wait_until(stalled, what="mailedge to stop reading %s" % sender.name, interval=0.1,
                 info=lambda: "(sent, unread by mailedge): %r" % seen[-6:])
    grown = _rss(me) - rss0
    assert grown < BIG // 4, "mailedge grew by %d bytes while the reader stalled" % grown


def test_backpressure_upstream_then_fin(rig, splice):
    """The backend does not read for a while: mailedge must stop reading
    the client, then deliver every byte and only then the FIN."""
    s = rig.simple(protocol="tcp", send_proxy="v2", splice=splice, greeting=None,
                   close_on_eof=False, paused=True, rcvbuf=SMALL_BUF)
    c = rig.client(s.ip, s.port)
    payload = os.urandom(BIG)
    rss0 = _rss(s.me)
    t = c.send_async(payload, chunk=256 * 1024)
    conn = s.backend.wait_conn()
    _wait_mailedge_stops_reading(s.me, c, (s.ip, s.port), rss0)
    conn.resume()
    t.finish(h.DEADLINE * 3)
    c.shutdown_write()
    data = conn.wait_eof(h.DEADLINE * 3)
    hlen = pp.decode(data).length
    assert len(data) - hlen == BIG, "backend got %d of %d bytes before EOF" % (len(data) - hlen,
                                                                               BIG)
    assert hashlib.sha256(data[hlen:]).hexdigest() == hashlib.sha256(payload).hexdigest()
    conn.shutdown_write()
    c.wait_eof()
    c.close()
    h.assert_session(s.me.wait_session(), bytes_in=BIG, bytes_out=0, reason="client_closed")


def test_backpressure_downstream_then_fin(rig, splice):
    """The client does not read for a while; the backend sends a lot then
    FIN: everything arrives, then EOF."""
    s = rig.simple(protocol="tcp", send_proxy="v1", splice=splice, greeting=None,
                   close_on_eof=False)
    c = rig.client(s.ip, s.port, rcvbuf=SMALL_BUF)
    c.pause()
    conn = s.backend.wait_conn()
    payload = os.urandom(BIG)
    rss0 = _rss(s.me)
    t = conn.send_async(payload, chunk=256 * 1024)
    _wait_mailedge_stops_reading(s.me, conn, conn.remote, rss0)
    c.resume()
    t.finish(h.DEADLINE * 3)
    conn.shutdown_write()
    data = c.wait_eof(h.DEADLINE * 3)
    assert len(data) == BIG, "client got %d of %d bytes before EOF" % (len(data), BIG)
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(payload).hexdigest()
    c.close()
    conn.wait_eof()
    h.assert_session(s.me.wait_session(), bytes_in=0, bytes_out=BIG, reason="backend_closed")


def test_backend_sends_and_closes_at_accept(rig, splice):
    """Greeting and FIN right at accept, before mailedge even wrote its
    header: the client still receives every byte, then EOF."""
    msg = b"554 5.3.2 no service here\r\n" * 100
    s = rig.simple(send_proxy="v2", splice=splice, greeting=msg)
    c = rig.client(s.ip, s.port)
    conn = s.backend.wait_conn()
    conn.shutdown_write()
    assert c.wait_eof() == msg
    c.close()
    h.assert_session(s.me.wait_session(), bytes_out=len(msg), reason="backend_closed")


def test_backend_reset_mid_greeting(rig, splice):
    s = rig.simple(send_proxy="v2", splice=splice, greeting=b"220-mx.test ESMTP\r\n220-wait")
    c = rig.client(s.ip, s.port)
    c.wait_contains(b"220-wait")
    s.backend.wait_conn().abort()
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="backend_reset")


@pytest.mark.parametrize("failure", ["refused", "timeout"])
def test_early_client_bytes_survive_failover(rig, failure):
    """Bytes the client wrote while mailedge was still trying servers reach
    the server that finally answers, after its PROXY header."""
    bad = rig.refusing(3) if failure == "refused" else rig.blackhole(4)
    good = rig.backend(2, greeting=None)
    lip, lport = rig.endpoint(1)
    me = rig.start(h.backend_block("mail", [("bad", bad.addr), ("good", good.addr)],
                                   send_proxy="v2", balance="first",
                                   extra=["timeout connect 500ms"])
                   + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    c = rig.client(lip, lport)
    early = b"EHLO early.bird\r\n" + os.urandom(4096)
    c.send(early)
    conn = good.wait_conn()
    hdr = pp.decode(conn.wait(lambda d: pp.header_length(d) is not None, what="header"))
    assert hdr.src == c.local
    assert conn.wait_bytes(hdr.length + len(early))[hdr.length:] == early
    c.close()
    h.assert_session(me.wait_session(), server="good", bytes_in=len(early))


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_leaves_while_connecting(rig, how):
    """The client goes away while the backend connect is still pending."""
    hole = rig.blackhole(4)
    lip, lport = rig.endpoint(1)
    me = rig.start(h.backend_block("mail", [("hole", hole.addr)], send_proxy="v2",
                                   extra=["timeout connect 1s"])
                   + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    for i in range(5):
        c = rig.client(lip, lport, source=rig.ip(20 + i), name="c%d" % i)
        c.abort() if how == "reset" else c.close()
    lines = me.wait_log("session", count=5)
    want = {"close": ("client_closed", "connect_timeout"),
            "reset": ("client_reset", "client_closed", "connect_timeout")}[how]
    for ln in lines:
        assert ln["reason"] in want, ln
    assert me.running


def test_client_leaves_during_header_wait(rig, net):
    s = rig.simple(send_proxy="v2", accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed", server="-")
    assert s.backend.accepted() == 0


def test_inbound_header_then_fin(rig, net, splice):
    s = rig.simple(send_proxy="v1", splice=splice, greeting=None,
                   accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(pp.encode_v2("127.9.9.9", 4242, s.ip, s.port))
    c.shutdown_write()
    conn = s.backend.wait_conn()
    data = conn.wait_eof()
    assert data == pp.encode_v1("127.9.9.9", 4242, s.ip, s.port)
    c.wait_eof()
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed", client="127.9.9.9:4242")


def test_big_inbound_v2_header_with_tlvs(rig, net):
    raw = pp.encode_v2("127.9.9.9", 4242, s_ip := net.ip(1), 25,
                       tlvs=[(pp.TLV_NOOP, b"\x00" * 500), (pp.TLV_AUTHORITY, b"mx.test")])
    assert s_ip and len(raw) > 536
    s = rig.simple(send_proxy="v2", greeting=None, accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(raw + b"EHLO x\r\n")
    conn = s.backend.wait_conn()
    hdr = pp.decode(conn.wait(lambda d: pp.header_length(d) is not None, what="header"))
    assert hdr.src == ("127.9.9.9", 4242)
    assert hdr.length < 536, "outgoing header too long for Postfix"
    assert conn.wait_endswith(b"EHLO x\r\n")[hdr.length:] == b"EHLO x\r\n"
    c.close()
    s.me.wait_session()


def test_drain_during_large_transfer(rig, splice):
    s = rig.simple(protocol="tcp", send_proxy="v2", splice=splice, greeting=None, grace="30s",
                   paused=True, rcvbuf=SMALL_BUF)
    c = rig.client(s.ip, s.port)
    payload = os.urandom(BIG)
    t = c.send_async(payload, chunk=256 * 1024)
    conn = s.backend.wait_conn()
    s.me.signal(signal.SIGTERM)
    s.me.wait_drained()
    h.wait_until(lambda: h.connect_refused(s.ip, s.port, source=rig.ip(11)),
                 what="the listener to close")
    conn.resume()
    t.finish(h.DEADLINE * 3)
    hlen = _header_len(conn)
    conn.wait_bytes(hlen + BIG, h.DEADLINE * 3)
    assert conn.sha256(hlen) == hashlib.sha256(payload).hexdigest()
    c.close()
    assert s.me.wait_exit() == 0
    h.assert_session(s.me.wait_session(), bytes_in=BIG, reason="client_closed")


def _fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


class ResettingServer:
    """Accepts, sends a greeting, then resets (SO_LINGER 0): backend resets in bulk."""

    def __init__(self, ip):
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.bind((ip, 0))
        self.ls.listen(1024)
        self.addr = h.fmt_addr(*self.ls.getsockname())
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            s.sendall(b"220 ok\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Once mailedge relayed the greeting (its client has it), reset.
            s.settimeout(h.DEADLINE)
            try:
                s.recv(1)
            except OSError:
                pass
            s.close()

    def close(self):
        self.ls.close()


def _bulk(kinds, n, source, deadline):
    """n clients of each kind at once, driven to their end with one
    selector: kind -> (address, bytes to send, what to do once the greeting
    arrived: 'close', 'reset', 'poke' (send a byte, wait for the end) or
    None (wait for the end))."""
    sel = selectors.DefaultSelector()
    for kind, (addr, send, then) in kinds.items():
        for i in range(n):
            s = socket.create_connection(addr, timeout=h.DEADLINE, source_address=(source, 0))
            s.setblocking(False)
            if send:
                s.send(send)
            sel.register(s, selectors.EVENT_READ, [kind, then, b""])
    left = len(sel.get_map())
    end = time.monotonic() + deadline
    while left:
        assert time.monotonic() < end, "%d clients not ended" % left
        for key, _ in sel.select(0.2):
            s, st = key.fileobj, key.data
            try:
                d = s.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                d = b""
            st[2] += d
            if d and st[1] in ("close", "reset", "poke") and st[2].endswith(b"\r\n"):
                if st[1] == "poke":
                    s.send(b"Q")
                    st[1] = None
                    continue
                if st[1] == "reset":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                d = b""
            if not d:
                sel.unregister(s)
                s.close()
                left -= 1


def test_no_fd_leak(rig, net):
    """Thousands of sessions ending in every way (clean, client reset,
    backend reset, malformed and missing inbound header, all servers
    refusing), 600 at a time, leave no file descriptor behind: the count in
    /proc/PID/fd returns to what it was after a warm-up round."""
    good = rig.backend(2, greeting=b"220 ok\r\n")
    bad = rig.refusing(3)
    rst = ResettingServer(rig.ip(4))
    lp = [rig.endpoint(1) for _ in range(4)]
    body = (h.backend_block("good", [("g", good.addr)], send_proxy="v2")
            + h.backend_block("bad", [("b", bad.addr)], send_proxy="v2")
            + h.backend_block("rst", [("r", rst.addr)])
            + h.listener_block("plain", h.fmt_addr(*lp[0]), "smtp", "good")
            + h.listener_block("pp", h.fmt_addr(*lp[1]), "smtp", "good",
                               accept_proxy="v2 from %s" % net.cidr,
                               extra=["timeout proxy 500ms"])
            + h.listener_block("down", h.fmt_addr(*lp[2]), "smtp", "bad")
            + h.listener_block("brst", h.fmt_addr(*lp[3]), "smtp", "rst"))
    me = rig.start(body, splice="on")
    kinds = {"client_closed": (lp[0], b"", "close"), "client_reset": (lp[0], b"", "reset"),
             "backend_reset": (lp[3], b"", "poke"),
             "proxy_invalid": (lp[1], b"PROXY nonsense\r\n", None),
             "proxy_timeout": (lp[1], b"", None), "connect_refused": (lp[2], b"", None)}
    per_round, rounds = 100, 4
    try:
        # Warm-up: pools (e.g. of splice pipes) may keep descriptors, but
        # they must not grow from here on.
        _bulk(kinds, 5, rig.ip(10), h.DEADLINE)
        n = 5 * len(kinds)
        h.wait_until(lambda: len(me.sessions()) == n)
        h.wait_until(lambda: not good.conns or all(c.ended for c in good.conns))
        base = _fds(me.pid)
        for _ in range(rounds):
            _bulk(kinds, per_round, rig.ip(10), h.DEADLINE * 3)
        n += rounds * per_round * len(kinds)
        me.wait_log("session", count=n, timeout=h.DEADLINE * 3)
        for c in good.conns:
            c.close()
        # Some closes may trail the log line by a moment: poll.
        h.wait_until(lambda: _fds(me.pid) <= base, what="fd count back to %d" % base,
                     info=lambda: "now %d fds: %r" % (_fds(me.pid), sorted(
                         os.readlink("/proc/%d/fd/%s" % (me.pid, f))
                         for f in os.listdir("/proc/%d/fd" % me.pid))))
    finally:
        rst.close()
    assert n >= 2400
    reasons = sorted({ln["reason"] for ln in me.sessions()})
    assert reasons == sorted(kinds), reasons


def test_many_concurrent_sessions(rig, splice):
    s = rig.simple(protocol="tcp", send_proxy="v2", splice=splice, greeting=b"hi\r\n",
                   echo=True)
    n = 100
    clients = []
    for i in range(n):
        clients.append(rig.client(s.ip, s.port, source=rig.ip(100 + i % 100), name="c%d" % i))
    for i, c in enumerate(clients):
        c.send(b"ping %d\r\n" % i)
    for i, c in enumerate(clients):
        c.wait(lambda d, i=i: d == b"hi\r\nping %d\r\n" % i, what="echo %d" % i)
    for c in clients:
        c.close()
    lines = s.me.wait_log("session", count=n)
    assert len({ln["id"] for ln in lines}) == n
    assert {ln["reason"] for ln in lines} == {"client_closed"}


def test_recovers_from_fd_exhaustion(rig):
    """With RLIMIT_NOFILE nearly used up, mailedge keeps running and serves
    again once descriptors are free."""
    import resource
    # One process: its descriptor limit is lowered below (with several
    # workers the client could meet another one).
    s = rig.simple(send_proxy="v2", greeting=b"220 fd\r\n", global_extra=["workers 1"])
    n = _fds(s.me.pid)
    soft, hard = resource.prlimit(s.me.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(s.me.pid, resource.RLIMIT_NOFILE, (n + 5, hard))
    clients = [rig.client(s.ip, s.port, source=rig.ip(20 + i), name="c%d" % i)
               for i in range(10)]
    clients[0].wait_endswith(b"220 fd\r\n")   # the first one fits
    for c in clients:
        c.close()
    # Every queued client is dealt with (one session line each, whatever the
    # ending), then a new one is served.
    s.me.wait_log("session", count=len(clients))
    late = rig.client(s.ip, s.port, source=rig.ip(40), name="late")
    late.wait_endswith(b"220 fd\r\n")
    late.close()
    assert s.me.running
    resource.prlimit(s.me.pid, resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.skipif(h.WRAPPED, reason="valgrind keeps descriptors of its own above the limit")
def test_smtp_client_told_421_when_no_fd_for_backend(rig):
    """Accepted with the last free descriptor, no descriptor left for the
    backend socket: an SMTP client gets 421 4.3.2, never a silent close."""
    import resource
    # One process, as above.
    s = rig.simple(send_proxy="v2", greeting=b"220 fd\r\n", global_extra=["workers 1"])
    n = _fds(s.me.pid)
    soft, hard = resource.prlimit(s.me.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(s.me.pid, resource.RLIMIT_NOFILE, (n + 1, hard))
    try:
        c = rig.client(s.ip, s.port, source=rig.ip(20), name="starved")
        c.wait(lambda d: d.endswith(b"\r\n"), what="a reply line")
        assert c.data.startswith(b"421 4.3.2 "), c.data
        line = s.me.wait_session()
        assert line["reason"] == "resource", line
        c.close()
    finally:
        resource.prlimit(s.me.pid, resource.RLIMIT_NOFILE, (soft, hard))


SCENARIOS = ("clean", "client_reset", "backend_reset", "half_close", "silent_close")
REASON = {"clean": "client_closed", "client_reset": "client_reset",
          "backend_reset": "backend_reset", "half_close": "client_closed",
          "silent_close": "client_closed"}


def test_mixed_concurrent_endings(rig, splice):
    """60 concurrent sessions ending in different ways at the same time:
    each is logged once with the right reason and byte count, clean ones
    keep their bytes intact, and no descriptor stays behind."""
    import random
    rnd = random.Random(1234)
    s = rig.simple(protocol="tcp", send_proxy="v2", splice=splice, greeting=None, echo=True)
    n = 60
    plan = [SCENARIOS[i % len(SCENARIOS)] for i in range(n)]
    sizes = [rnd.choice([1, 100, 4096, 65536, 300000]) for _ in range(n)]
    payloads = [rnd.randbytes(sz) for sz in sizes]
    clients = [rig.client(s.ip, s.port, source=rig.ip(100 + i), name="c%d-%s" % (i, plan[i]))
               for i in range(n)]
    by_src = {}
    for k in range(1, n + 1):
        conn = s.backend.wait_conn(k)
        by_src[h.wait_header(conn).src] = conn
    conns = [by_src[c.local] for c in clients]
    base = _fds(s.me.pid)
    # Everyone but the silent ones sends; resets and half-closes right after.
    senders = []
    for i, c in enumerate(clients):
        if plan[i] != "silent_close":
            senders.append(c.send_async(payloads[i]))
    for t in senders:
        t.finish()
    for i, c in enumerate(clients):
        if plan[i] == "client_reset":
            c.abort()
        elif plan[i] == "half_close":
            c.shutdown_write()
        elif plan[i] == "silent_close":
            c.close()
        elif plan[i] == "backend_reset":
            conns[i].wait(lambda d, i=i: len(d) > 0, what="some bytes")
            conns[i].abort()
    for i, c in enumerate(clients):
        if plan[i] == "clean":
            c.wait(lambda d, i=i: d == payloads[i], what="echo")
            c.close()
        elif plan[i] == "half_close":
            assert c.wait_eof() == payloads[i]
            c.close()
        elif plan[i] == "backend_reset":
            c.wait_end()
            c.close()
    lines = s.me.wait_log("session", count=n)
    assert len(lines) == n
    by_client = {ln["client"]: ln for ln in lines}
    for i, c in enumerate(clients):
        ln = by_client[h.fmt_addr(*c.local)]
        h.assert_session(ln, reason=REASON[plan[i]])
        if plan[i] in ("clean", "half_close"):
            h.assert_session(ln, bytes_in=sizes[i], bytes_out=sizes[i])
    h.wait_until(lambda: _fds(s.me.pid) <= base, what="descriptors released")


@pytest.mark.parametrize("direction", ["down", "up"])
def test_no_stale_bytes_after_abort_with_data_in_flight(rig, splice, direction):
    """A session dies (RST) while bytes are stuck inside mailedge (pipe or
    buffer); the following sessions must see exactly their own bytes, never
    leftovers of the dead one from a pooled pipe or buffer."""
    s = rig.simple(protocol="tcp", send_proxy=None, splice=splice, greeting=None,
                   rcvbuf=SMALL_BUF if direction == "up" else None)
    # The dead session: its receiver does not read, its sender floods.
    victim = rig.client(s.ip, s.port, source=rig.ip(20), name="victim", rcvbuf=SMALL_BUF)
    vconn = s.backend.wait_conn(1)
    # More than the pipe (1 MiB) and a send buffer (tcp_wmem, 4 MiB) past
    # mailedge can hold, so bytes are left waiting in mailedge's socket.
    junk = b"\xee" * (8 * MIB)
    rss0 = _rss(s.me)
    if direction == "down":
        victim.pause()
        t = vconn.send_async(junk)
        _wait_mailedge_stops_reading(s.me, vconn, vconn.remote, rss0)
    else:
        vconn.pause()
        t = victim.send_async(junk)
        _wait_mailedge_stops_reading(s.me, victim, (s.ip, s.port), rss0)
    if direction == "down":
        victim.abort()
        vconn.resume()
    else:
        vconn.abort()
        victim.resume()
    s.me.wait_session(1)
    t.done.wait(h.DEADLINE)   # the flood ends with an error; that is expected
    # Fresh sessions, one after the other, each with its own pattern.
    for k in range(2, 7):
        up = bytes([k]) * (256 * 1024 + k)
        down = bytes([0x40 + k]) * (256 * 1024 + k)
        c = rig.client(s.ip, s.port, source=rig.ip(20 + k), name="c%d" % k)
        conn = s.backend.wait_conn(k)
        c.send(up)
        conn.send(down)
        got_up = conn.wait_bytes(len(up))
        got_down = c.wait_bytes(len(down))
        assert got_up == up, "backend %d got foreign bytes" % k
        assert got_down == down, "client %d got foreign bytes" % k
        c.close()
        conn.wait_eof()
        s.me.wait_session(k)


def test_inbound_header_data_and_fin_at_once(rig, net, splice):
    """Header, payload and FIN all queued before mailedge looks: the bytes
    after the header (left in the socket by the MSG_PEEK reader) and the EOF
    must still be relayed."""
    s = rig.simple(send_proxy="v2", splice=splice, greeting=None,
                   accept_proxy="v1 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(pp.encode_v1("127.9.9.9", 4242, s.ip, s.port) + b"QUIT\r\n")
    c.shutdown_write()
    conn = s.backend.wait_conn()
    data = conn.wait_eof()
    hdr = pp.decode(data)
    assert hdr.src == ("127.9.9.9", 4242)
    assert data[hdr.length:] == b"QUIT\r\n"
    c.wait_eof()
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed", bytes_in=6)


def test_every_server_times_out(rig):
    h1, h2 = rig.blackhole(4), rig.blackhole(5)
    lip, lport = rig.endpoint(1)
    me = rig.start(h.backend_block("mail", [("h1", h1.addr), ("h2", h2.addr)],
                                   extra=["timeout connect 300ms"])
                   + h.listener_block("front", h.fmt_addr(lip, lport), "imap", "mail"))
    c = rig.client(lip, lport)
    c.wait_end()
    assert c.snapshot().startswith(b"* BYE")
    c.close()
    line = me.wait_session()
    h.assert_session(line, reason="connect_timeout", server="-")
    assert int(line["duration_ms"]) >= 500, "both servers should have been tried: %r" % line


@pytest.mark.parametrize("state", ["read_proxy", "connecting"])
def test_drain_serves_sessions_accepted_before_sigterm(rig, net, state):
    """A session accepted before SIGTERM but not yet relaying (waiting for
    its inbound header, or for its backend connect) still gets served."""
    if state == "read_proxy":
        s = rig.simple(send_proxy="v2", grace="30s", accept_proxy="v2 from %s" % net.cidr)
        backend = s.backend
        lip, lport, me = s.ip, s.port, s.me
    else:
        hole = rig.blackhole(4)
        backend = rig.backend(2, greeting=b"220 test ESMTP\r\n")
        lip, lport = rig.endpoint(1)
        me = rig.start(h.backend_block("mail", [("hole", hole.addr), ("good", backend.addr)],
                                       balance="first", extra=["timeout connect 1s"])
                       + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"),
                       grace="30s")
    c = rig.client(lip, lport)
    me.signal(signal.SIGTERM)
    me.wait_drained()
    h.wait_until(lambda: h.connect_refused(lip, lport, source=rig.ip(11)),
                 what="the listener to close")
    if state == "read_proxy":
        c.send(pp.encode_v2("127.9.9.9", 4242, lip, lport))
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.send(b"QUIT\r\n")
    backend.wait_conn().wait_endswith(b"QUIT\r\n")
    c.close()
    assert me.wait_exit() == 0
    h.assert_session(me.wait_session(), reason="client_closed")
