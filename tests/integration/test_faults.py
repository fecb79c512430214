"""Faults (issue 9): mailedge stays up, keeps serving everyone else and
loses nothing (every connection gets its session line) when a backend dies
mid-session or never greets, and under thousands of random PROXY headers
and mangled ClientHellos from the network.

Half-closes, resets from either side, EMFILE and silent clients have their
own tests in test_relay.py, test_hard_cases.py, test_lifecycle.py and
test_sni.py; docs/security.md lists them all.
"""

import random
import socket
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness as h
import proxycodec as pp
import tlspeers as t
from test_admin import http, parse_exposition

GREETING = b"220 test ESMTP\r\n"
SEED = 20261121          # fixed: a failure can be replayed byte for byte
GARBAGE_CONNECTIONS = 2000


def _send_and_leave(ip, port, source, data):
    """One connection: write data, then close at once. Errors from a peer
    that already closed are fine; the point is what mailedge does."""
    s = socket.socket(h.family(ip), socket.SOCK_STREAM)
    try:
        s.settimeout(h.DEADLINE)
        if source:
            s.bind((source, 0))
        s.connect((ip, port))
        if data:
            try:
                s.sendall(data)
            except OSError:
                pass
    finally:
        s.close()


def _blast(ip, port, source, inputs):
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda d: _send_and_leave(ip, port, source, d), inputs))


def _metric(addr, name, **labels):
    status, _, text = http(addr, "/metrics")
    assert status == 200
    samples, _ = parse_exposition(text)
    want = tuple(sorted(labels.items()))
    return sum(v for (n, lb), v in samples.items()
               if n == name and all(x in lb for x in want))


def _mutate(rng, base: bytes) -> bytes:
    """A few byte flips, a cut, or a splice of random bytes into base."""
    b = bytearray(base)
    how = rng.randrange(4)
    if how == 0 and b:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == 1 and b:
        del b[rng.randrange(len(b)):]
    elif how == 2:
        at = rng.randrange(len(b) + 1)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    else:
        # a length field set to something else (v2 length, record/handshake lengths)
        if len(b) > 16:
            at = rng.choice([5, 14, 3, 6, 7])
            b[at] = rng.randrange(256)
    return bytes(b)


def test_backend_dies_mid_session(rig):
    """The backend's process dies while relaying (RST): the client is told
    by a close, the session is logged once, the counters add up, and the
    next client is served by the same mailedge."""
    admin_ip, admin_port = rig.endpoint(5)
    s = rig.simple(send_proxy="v2", echo=True,
                   global_extra=["admin %s" % h.fmt_addr(admin_ip, admin_port)])
    admin = (admin_ip, admin_port)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(GREETING)
    c.send(b"EHLO a\r\n")
    c.wait_contains(b"EHLO a\r\n")
    conn = s.backend.wait_conn()
    conn.abort()                       # RST, as when the server process is killed
    c.wait_end()
    line = s.me.wait_session(reason="backend_reset")
    h.assert_session(line, bytes_in=8, bytes_out=len(GREETING) + 8)
    # Counters: that one session ended, none is active.
    h.wait_until(lambda: _metric(admin, "mailedge_sessions_active") == 0,
                 what="no active session")
    assert _metric(admin, "mailedge_sessions_total") == 1
    # Still serving.
    c2 = rig.client(s.ip, s.port, source=rig.ip(11))
    c2.wait_endswith(GREETING)
    c2.close()
    s.me.wait_session(count=2)
    assert s.me.running


def test_backend_accepts_but_never_greets(rig):
    """A backend that accepts and says nothing holds only its own clients,
    until their idle timeout; another listener is served meanwhile."""
    mute = rig.backend(2, greeting=None)
    good = rig.backend(3, greeting=GREETING)
    (mip, mport), (gip, gport) = rig.endpoint(1), rig.endpoint(1)
    body = (h.backend_block("mute", [("m1", mute.addr)], send_proxy="v2")
            + h.backend_block("good", [("g1", good.addr)], send_proxy="v2")
            + h.listener_block("muted", h.fmt_addr(mip, mport), "smtp", "mute",
                               extra=["timeout idle 1s"])
            + h.listener_block("served", h.fmt_addr(gip, gport), "smtp", "good"))
    me = rig.start(body)
    stuck = [rig.client(mip, mport, name="stuck%d" % i) for i in range(5)]
    mute.wait_conn(5)
    ok = rig.client(gip, gport, source=rig.ip(11), name="ok")
    ok.wait_endswith(GREETING)
    ok.send(b"QUIT\r\n")
    good.wait_conn().wait_contains(b"QUIT\r\n")
    for c in stuck:
        c.wait_end()
        assert c.snapshot() == b"", "a mute backend's client got %r" % c.snapshot()
    lines = me.sessions(listener="muted")
    h.wait_until(lambda: len(me.sessions(listener="muted")) == 5, what="5 muted sessions")
    lines = me.sessions(listener="muted")
    assert {ln["reason"] for ln in lines} == {"idle_timeout"}, lines
    assert me.running


def test_thousands_of_random_proxy_headers(rig):
    """Random and mangled PROXY v1/v2 headers from a trusted sender: each
    connection ends with its own session line, nothing crashes (the
    sanitizer build runs this too), and a good header is served after."""
    s = rig.simple(send_proxy="v2", accept_proxy="any from %s" % rig.net.cidr,
                   listener_extra=["timeout proxy 2s"])
    rng = random.Random(SEED)
    v1 = pp.encode_v1("127.1.2.3", 1234, "127.4.5.6", 25)
    v2 = pp.encode_v2("127.1.2.3", 1234, "127.4.5.6", 25)
    v2_6 = pp.encode_v2("::1", 1234, "::1", 25)
    inputs = []
    for i in range(GARBAGE_CONNECTIONS):
        kind = i % 5
        if kind == 0:
            d = bytes(rng.randrange(256) for _ in range(rng.randint(0, 120)))
        elif kind == 1:
            d = b"PROXY " + bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 110)))
            d += rng.choice([b"\r\n", b"\n", b""])
        else:
            d = _mutate(rng, [v1, v2, v2_6][kind - 2])
        inputs.append(d)
    _blast(s.ip, s.port, rig.ip(10), inputs)
    h.wait_until(lambda: len(s.me.sessions()) >= GARBAGE_CONNECTIONS, timeout=h.DEADLINE * 6,
                 what="a session line for every connection")
    lines = s.me.sessions()
    assert len(lines) == GARBAGE_CONNECTIONS
    reasons = {ln["reason"] for ln in lines}
    # A mangled header can still be valid: then the session is relayed, and the
    # recording backend, closing at the client's EOF, may race mailedge's last
    # write (backend_reset). Every outcome is a clean, logged end.
    allowed = {"proxy_invalid", "client_closed", "client_reset", "backend_closed",
               "backend_reset", "proxy_untrusted", "proxy_timeout"}
    assert reasons <= allowed, reasons - allowed
    assert "proxy_invalid" in reasons
    # A good one still works, and the backend sees the address it carries.
    c = rig.client(s.ip, s.port)
    c.send(pp.encode_v2("127.9.8.7", 4242, s.ip, s.port))
    c.wait_endswith(GREETING)
    def good_header():
        for conn in list(s.backend.conns):
            hdr = pp.try_decode(conn.snapshot())
            if hdr is not None and hdr.src_ip == "127.9.8.7":
                return hdr
        return None
    got = h.wait_until(good_header, what="the good header at the backend")
    assert got.src_port == 4242
    assert s.me.running


def test_thousands_of_mangled_client_hellos(rig):
    """Mangled ClientHellos on an SNI-routing listener: each connection is
    logged, none crashes mailedge, and a real hello still routes by name."""
    mail = rig.backend(2, greeting=None)
    other = rig.backend(3, greeting=None)
    ip, port = rig.endpoint(1)
    listener = h.block("listener", "front", [
        "bind %s" % h.fmt_addr(ip, port), "protocol tls",
        "route sni mail.example.org -> mail", "route -> other", "timeout hello 2s"])
    me = rig.start(h.backend_block("mail", [("m1", mail.addr)])
                   + h.backend_block("other", [("o1", other.addr)]) + listener)
    rng = random.Random(SEED + 1)
    hello = t.records(t.client_hello(sni=b"mail.example.org", key_share=64))
    split = t.records(t.client_hello(sni=b"mail.example.org"), frag=100)
    inputs = [_mutate(rng, rng.choice([hello, split])) for _ in range(GARBAGE_CONNECTIONS)]
    _blast(ip, port, rig.ip(10), inputs)
    h.wait_until(lambda: len(me.sessions()) >= GARBAGE_CONNECTIONS, timeout=h.DEADLINE * 6,
                 what="a session line for every connection")
    assert len(me.sessions()) == GARBAGE_CONNECTIONS
    before = len(mail.conns)    # the garbage connections are all over (logged)
    c = rig.client(ip, port, source=rig.ip(11))
    c.send(hello)
    conn = h.wait_until(lambda: next((x for x in list(mail.conns)[before:]
                                      if x.snapshot() == hello), None),
                        what="the real hello, unmodified, at the mail backend")
    assert not conn.ended, "the session to the mail backend ended after the hello"
    assert me.running


def test_v2_header_lengths_at_the_bounds(rig):
    """A v2 header announcing the largest length (65535) that never comes,
    and one announcing more TLV bytes than the address block holds: both
    end cleanly (timeout or invalid) and cost nothing afterwards."""
    s = rig.simple(send_proxy="v2", accept_proxy="v2 from %s" % rig.net.cidr,
                   listener_extra=["timeout proxy 1s"])
    sig = pp.V2_SIG
    huge = sig + bytes([0x21, 0x11]) + struct.pack(">H", 65535) + b"\x00" * 100
    c1 = rig.client(s.ip, s.port)
    c1.send(huge)
    c1.wait_end(h.DEADLINE * 2)
    c2 = rig.client(s.ip, s.port, source=rig.ip(11))
    c2.send(sig + bytes([0x21, 0x11]) + struct.pack(">H", 3) + b"\x7f\x00\x00")
    c2.wait_end()
    reasons = sorted(ln["reason"] for ln in s.me.sessions())
    h.wait_until(lambda: len(s.me.sessions()) == 2, what="two session lines")
    reasons = sorted(ln["reason"] for ln in s.me.sessions())
    assert all(r in ("proxy_invalid", "proxy_timeout") for r in reasons), reasons


# --------------------------------------------------------------------------
# allocation and descriptor failures at every site of the session path
# (src/base/fault.h: MAILEDGE_TEST_FAULTS makes the first call at a site fail)

# site -> (splice, what the first client sees, its session reason or None
#          when the session could not even be created)
FAULT_CASES = {
    "session": ("on", "closed", None),
    "timer": ("on", "closed", None),
    "epoll": ("on", "closed", "resource"),
    "buffer": ("off", "closed", "resource"),
    "socket": ("on", "421", "resource"),
    "pipe": ("on", "served", "client_closed"),   # splice falls back to copying
}


@pytest.mark.parametrize("site", sorted(FAULT_CASES))
def test_failure_at_each_session_site(rig, monkeypatch, site):
    splice, seen, reason = FAULT_CASES[site]
    monkeypatch.setenv("MAILEDGE_TEST_FAULTS", "%s:1" % site)
    # One process: the plan is each process's (the first call at the site
    # fails in every worker), and the second client must meet the process
    # that already took its failure.
    s = rig.simple(send_proxy="v2", splice=splice, echo=True, global_extra=["workers 1"])
    first = rig.client(s.ip, s.port, name="first")
    if seen == "served":
        first.wait_endswith(GREETING)
        first.send(b"NOOP\r\n")
        first.wait_endswith(b"NOOP\r\n")
        first.close()
    else:
        first.wait_end()
        if seen == "421":
            assert first.snapshot().startswith(b"421 4.3.2 "), first.snapshot()
        else:
            assert first.snapshot() == b"", first.snapshot()
        first.close()
    if reason is not None:
        h.assert_session(s.me.wait_session(), reason=reason)
    else:
        h.wait_until(lambda: "out of memory" in s.me.stderr(),
                     what="the out-of-memory warning")
        assert s.me.sessions() == []
    # The next client is served in full by the same process.
    second = rig.client(s.ip, s.port, source=rig.ip(11), name="second")
    second.wait_endswith(GREETING)
    second.send(b"QUIT\r\n")
    second.wait_endswith(b"QUIT\r\n")
    second.close()
    h.wait_until(lambda: any(ln.get("client", "").startswith(rig.ip(11) + ":")
                             for ln in s.me.sessions()), what="the second session line")
    assert s.me.running
