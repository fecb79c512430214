"""Connecting: Happy Eyeballs (RFC 8305) over the addresses of one server
name, then the next server; balance least-conn; backup servers.

The IPv6 address of a name is ::1 on the same port as the IPv4 backend:
a BlackholePort there (accept queue full, SYNs dropped: the connect never
completes) or a RefusingPort (RST at once). The debug log's
connect_attempt lines say in which order the addresses were tried (n=)
and how each attempt ended."""

import errno
import json
import signal

import pytest

import harness as h
import proxycodec as pp
from dnsserver import DnsServer
from test_admin import http, metric, scrape

NAME = "mx1.connect.test"
GREETING = b"220 test\r\n"


@pytest.fixture
def dns(rig):
    d = DnsServer(rig.ip(53))
    yield d
    d.close()


def _need_ipv6():
    if not h._have_ipv6():
        pytest.skip("no IPv6 loopback")


def _pair(rig, v6_kind, host=2):
    """A recording backend on 127.x.y.<host> and, on the same port of ::1,
    a blackhole or a refusing port."""
    make = {"blackhole": rig.blackhole, "refusing": rig.refusing}[v6_kind]
    for _ in range(20):
        b = rig.backend(host, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
        try:
            return b, make("::1", port=b.port)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            b.close()
    pytest.fail("no port free on both 127.x and ::1")


def _start(rig, dns, servers, backend_extra=(), balance=None, global_extra=()):
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", servers, send_proxy="v2", balance=balance,
                            extra=backend_extra)
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    extra = ["resolvers %s" % dns.addr] if dns is not None else []
    extra += list(global_extra)
    me = rig.start(body, global_extra=extra, log="stderr level debug")
    return me, lip, lport


def _served(rig, backend, lip, lport, name, n=None):
    c = rig.client(lip, lport, name=name)
    c.wait_endswith(GREETING)
    if n is not None:
        assert pp.decode(backend.wait_conn(n).snapshot()).src == c.local
    return c


def _attempts(me, sid):
    return [(a["server"], a["n"], a["addr"], a["result"])
            for a in me.events("connect_attempt", id=sid)]


def test_aaaa_blackholed_connects_via_a(rig, dns):
    """The AAAA's address never answers a SYN: the A address is tried after
    the attempt delay (250 ms) while the first is still in flight, wins, and
    the IPv6 attempt is abandoned; timeout connect (60s) is never reached."""
    _need_ipv6()
    b, hole = _pair(rig, "blackhole")
    dns.set(NAME, [b.ip, "::1"], ttl=30)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, b.port))],
                            backend_extra=["timeout connect 60s"])
    me.wait_log("resolve", server="srv1")
    c = _served(rig, b, lip, lport, "c1", n=1)
    c.close()
    s = me.wait_session()
    v4 = h.fmt_addr(b.ip, b.port)
    h.assert_session(s, server="srv1", backend_addr=v4, attempts="2", reason="client_closed")
    # "abandoned": the AAAA attempt was still in flight when the A attempt
    # won, so the A attempt did not wait for timeout connect.
    assert _attempts(me, s["id"]) == [("srv1", "1", hole.addr, "abandoned"),
                                      ("srv1", "2", v4, "connected")]


def test_aaaa_refused_falls_to_a_at_once(rig, dns):
    """A refusal starts the next attempt at once, not after the attempt
    delay (set to its maximum, 10s, here): the client's greeting is waited
    for only half as long, so it can only come if the A attempt did not
    wait for the delay."""
    _need_ipv6()
    b, ref = _pair(rig, "refusing")
    dns.set(NAME, ["::1", b.ip], ttl=30)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, b.port))],
                            backend_extra=["timeout connect 60s", "happy-eyeballs-delay 10s"])
    me.wait_log("resolve", server="srv1")
    c = rig.client(lip, lport, name="c1")
    c.wait_endswith(GREETING, timeout=5)
    assert pp.decode(b.wait_conn(1).snapshot()).src == c.local
    c.close()
    s = me.wait_session()
    v4 = h.fmt_addr(b.ip, b.port)
    h.assert_session(s, server="srv1", backend_addr=v4, attempts="2", reason="client_closed")
    assert _attempts(me, s["id"]) == [("srv1", "1", ref.addr, "failed"),
                                      ("srv1", "2", v4, "connected")]
    assert me.events("connect_attempt", id=s["id"], n="1")[0]["error"] == "Connection refused"


def test_interleaved_order(rig, dns):
    """Two AAAA and two A addresses, none answering but the last: tried
    v6, v4, v6, v4 (RFC 8305 4), each after a refusal of the one before."""
    _need_ipv6()
    b = None
    for _ in range(20):
        b = rig.backend(5, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
        try:
            r6 = rig.refusing("::1", port=b.port)
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            b.close()
    r4 = rig.refusing(3, port=b.port)
    # ::1 is the only IPv6 loopback address: the second AAAA is an IPv4-mapped
    # one, which reaches 127.x over IPv6.
    mapped = "::ffff:%s" % rig.ip(4)
    dns.set(NAME, [r4.ip, b.ip, "::1", mapped], ttl=30)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, b.port))])
    me.wait_log("resolve", server="srv1")
    c = _served(rig, b, lip, lport, "c1", n=1)
    c.close()
    s = me.wait_session()
    got = _attempts(me, s["id"])
    fams = ["v6" if a[2].startswith("[") else "v4" for a in got]
    assert fams == ["v6", "v4", "v6", "v4"], got
    assert [a[3] for a in got] == ["failed", "failed", "failed", "connected"], got
    assert [a[1] for a in got] == ["1", "2", "3", "4"]
    h.assert_session(s, attempts="4", backend_addr=h.fmt_addr(b.ip, b.port))


def test_every_address_refused_next_server(rig, dns):
    _need_ipv6()
    good = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
    r4 = rig.refusing(3)
    r6 = None
    for _ in range(20):
        try:
            r6 = rig.refusing("::1", port=r4.port)
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            r4 = rig.refusing(3)
    dns.set(NAME, ["::1", r4.ip], ttl=30)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, r4.port)),
                                       ("srv2", good.addr)], balance="first")
    me.wait_log("resolve", server="srv1")
    c = _served(rig, good, lip, lport, "c1", n=1)
    c.close()
    s = me.wait_session()
    h.assert_session(s, server="srv2", backend_addr=good.addr, attempts="3")
    assert _attempts(me, s["id"]) == [("srv1", "1", r6.addr, "failed"),
                                      ("srv1", "2", r4.addr, "failed"),
                                      ("srv2", "1", good.addr, "connected")]


def test_every_address_silent_one_timeout_for_the_server(rig, dns):
    """Both addresses black holes: timeout connect ends the server's
    attempts together (not one timeout per address), then the next server."""
    _need_ipv6()
    good = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
    hole4 = hole6 = None
    for _ in range(20):
        hole4 = rig.blackhole(4)
        try:
            hole6 = rig.blackhole("::1", port=hole4.port)
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    dns.set(NAME, ["::1", hole4.ip], ttl=30)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, hole4.port)),
                                       ("srv2", good.addr)], balance="first",
                            backend_extra=["timeout connect 1s", "happy-eyeballs-delay 100ms"])
    me.wait_log("resolve", server="srv1")
    c = _served(rig, good, lip, lport, "c1", n=1)
    c.close()
    s = me.wait_session()
    h.assert_session(s, server="srv2", attempts="3")
    assert _attempts(me, s["id"]) == [("srv1", "1", hole6.addr, "timeout"),
                                      ("srv1", "2", hole4.addr, "timeout"),
                                      ("srv2", "1", good.addr, "connected")]


@pytest.mark.parametrize("dead", ["v6", "v4"])
def test_checked_name_with_one_dead_family_is_up(rig, dns, dead):
    """Health checks connect like sessions: a name with one address that
    never answers passes its checks over the other, whichever family is
    dead (the resolver lists A first here; the check timeout, 200ms, is
    shorter than the attempt delay: checks space their attempts by half the
    timeout)."""
    _need_ipv6()
    live_ip, dead_ip = ("::1", rig.ip(4)) if dead == "v4" else (rig.ip(2), "::1")
    for _ in range(20):
        b = rig.backend(live_ip, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
        try:
            rig.blackhole(dead_ip, port=b.port)
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            b.close()
    dns.set(NAME, [rig.ip(4) if dead == "v4" else rig.ip(2), "::1"], ttl=30)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, b.port))],
                            backend_extra=["check tcp interval 200ms rise 2 fall 1",
                                           "timeout connect 60s"])
    me.wait_log("health", server="srv1", state="up")
    # Every check tried ::1 first; the passing ones won over the other family
    # (dead v6: its attempt abandoned) or at once (dead v4).
    firsts = me.events("check_attempt", server="srv1", n="1")
    assert firsts and all(e["addr"].startswith("[::1]:") for e in firsts), firsts
    want = "abandoned" if dead == "v6" else "connected"
    assert any(e["result"] == want for e in firsts), firsts
    c = rig.client(lip, lport, name="c1")
    c.wait_endswith(GREETING)
    c.close()
    s = me.wait_session()
    h.assert_session(s, server="srv1", backend_addr=h.fmt_addr(b.ip, b.port),
                     attempts="2" if dead == "v6" else "1")


# --- balance least-conn -----------------------------------------------------


def test_least_conn_goes_to_the_idle_server(rig):
    b1 = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header, name="b1")
    b2 = rig.backend(3, greeting=GREETING, greet_when=h.Backend.after_proxy_header, name="b2")
    admin = rig.endpoint(5)
    # One process: least-conn counts each worker's sessions (docs/scaling.md).
    me, lip, lport = _start(rig, None, [("s1", b1.addr), ("s2", b2.addr)], balance="least-conn",
                            global_extra=["workers 1", "admin %s" % h.fmt_addr(*admin)])
    # Ties go in turn: s1, s2, s1.
    c1 = _served(rig, b1, lip, lport, "c1", n=1)
    c2 = _served(rig, b2, lip, lport, "c2", n=1)
    c3 = _served(rig, b1, lip, lport, "c3", n=2)
    # s2's session ends; s1 keeps two long-lived ones.
    c2.close()
    h.assert_session(me.wait_session(), server="s2")
    # Round-robin would now give s2 then s1; least-conn gives s2 twice.
    c4 = _served(rig, b2, lip, lport, "c4", n=2)
    c5 = _served(rig, b2, lip, lport, "c5", n=3)
    assert b1.accepted() == 2
    # Now 2 and 2: in turn again.
    c6 = _served(rig, b1, lip, lport, "c6", n=3)
    status, _, body = http(admin, "/status")
    assert status == 200
    servers = json.loads(body)["backends"][0]["servers"]
    assert [(s["name"], s["active"]) for s in servers] == [("s1", 3), ("s2", 2)]
    m = scrape(admin)
    assert metric(m, "mailedge_server_sessions_active", backend="mail", server="s1") == 3
    assert metric(m, "mailedge_server_sessions_active", backend="mail", server="s2") == 2
    for c in (c1, c3, c4, c5, c6):
        c.close()
    me.wait_session(6)
    assert sorted(s["server"] for s in me.sessions()) == ["s1"] * 3 + ["s2"] * 3
    assert metric(scrape(admin), "mailedge_server_sessions_active", backend="mail",
                  server="s1") == 0


def test_least_conn_counts_sessions_of_before_a_reload(rig):
    """Active sessions are counted per server name, across configuration
    generations: after a SIGHUP the sessions still on the old generation
    weigh in the choice."""
    b1 = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header, name="b1")
    b2 = rig.backend(3, greeting=GREETING, greet_when=h.Backend.after_proxy_header, name="b2")
    admin = rig.endpoint(5)
    # One process: least-conn counts each worker's sessions (docs/scaling.md).
    me, lip, lport = _start(rig, None, [("s1", b1.addr), ("s2", b2.addr)], balance="least-conn",
                            global_extra=["workers 1", "admin %s" % h.fmt_addr(*admin)])
    c1 = _served(rig, b1, lip, lport, "c1", n=1)
    c2 = _served(rig, b2, lip, lport, "c2", n=1)
    c3 = _served(rig, b1, lip, lport, "c3", n=2)
    c2.close()
    h.assert_session(me.wait_session(), server="s2")
    # Same file, new generation; c1 and c3 stay on the old one.
    me.signal(signal.SIGHUP)
    h.wait_until(lambda: metric(scrape(admin), "mailedge_reloads_total", result="success"),
                 what="the reload", info=me.describe)
    c4 = _served(rig, b2, lip, lport, "c4", n=2)
    # s1 has 2 (old generation), s2 has 1: s2 again, not s1.
    c5 = _served(rig, b2, lip, lport, "c5", n=3)
    assert b1.accepted() == 2
    for c in (c1, c3, c4, c5):
        c.close()
    me.wait_session(5)
    assert metric(scrape(admin), "mailedge_server_sessions_active", backend="mail",
                  server="s1") == 0


# --- backup servers -----------------------------------------------------------


def test_backup_only_while_no_primary_is_up(rig):
    prim = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header,
                       name="prim")
    back = rig.backend(3, greeting=GREETING, greet_when=h.Backend.after_proxy_header,
                       name="back")
    port = prim.port
    me, lip, lport = _start(rig, None, [("p", prim.addr), ("bk", "%s backup" % back.addr)],
                            backend_extra=["check tcp interval 200ms rise 1 fall 1"])
    me.wait_log("health", server="p", state="up")
    me.wait_log("health", server="bk", state="up")

    def session_conns(b):
        """Connections of sessions: the checks' headers carry mailedge's own
        addresses, the sessions' the client's (from 127.x.y.10)."""
        return [p for p in list(b.conns)
                if h.Backend.after_proxy_header(p.snapshot())
                and pp.decode(p.snapshot()).src_ip == rig.ip(10)]

    def served_by(b, name):
        c = rig.client(lip, lport, name=name)
        c.wait_endswith(GREETING)
        h.wait_until(lambda: any(pp.decode(p.snapshot()).src == c.local
                                 for p in session_conns(b)),
                     what="%s's connection on %s" % (name, b.name))
        return c

    # Both up: the primary takes every session, round-robin or not.
    for i in range(3):
        served_by(prim, "a%d" % i).close()
    assert session_conns(back) == []
    # The primary goes away: after its check fails, the backup serves.
    prim.close()
    me.wait_log("health", server="p", state="down")
    served_by(back, "b0").close()
    # The primary returns: new sessions go to it again.
    prim2 = rig.backend(2, port=port, greeting=GREETING,
                        greet_when=h.Backend.after_proxy_header, name="prim2")
    me.wait_log("health", server="p", state="up", count=2)
    n_back = len(session_conns(back))
    for i in range(2):
        served_by(prim2, "c%d" % i).close()
    assert len(session_conns(back)) == n_back
    me.wait_session(6)
    assert [s["server"] for s in me.sessions()] == ["p"] * 3 + ["bk"] + ["p"] * 2


def test_held_client_served_by_a_backup_coming_up(rig):
    """No server up: the client is held; a backup passing its check counts
    as "a server is up" and takes it."""
    dead = rig.refusing(2)
    back_port = h.free_port(rig.ip(3))
    me, lip, lport = _start(rig, None, [("p", dead.addr),
                                        ("bk", "%s backup" % h.fmt_addr(rig.ip(3), back_port))],
                            backend_extra=["check tcp interval 200ms rise 1 fall 1",
                                           "queue-timeout 30s"])
    c = rig.client(lip, lport, name="held")
    me.wait_log("hold")
    back = rig.backend(3, port=back_port, greeting=GREETING,
                       greet_when=h.Backend.after_proxy_header, name="back")
    c.wait_endswith(GREETING)
    c.close()
    s = me.wait_session()
    h.assert_session(s, server="bk", backend_addr=back.addr, reason="client_closed")
    assert "held_ms" in s
