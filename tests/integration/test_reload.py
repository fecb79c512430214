"""Reload on SIGHUP (issue 6): 100 reloads alternating a listener's route
while short sessions keep arriving and long sessions keep relaying (0 failed,
0 cut, new sessions on the new route); a broken config leaves the old one
serving and is counted; listeners added and removed; health carried over;
held clients moved to the new generation; RELOADING/READY to systemd."""

import os
import signal
import socket
import threading


import harness as h
from test_systemd import _recv_until
from test_admin import http, metric, parse_exposition

GREET_A = b"220 route-a ESMTP\r\n"
GREET_B = b"220 route-b ESMTP\r\n"


def scrape(admin):
    status, _, body = http(admin, "/metrics")
    assert status == 200, body
    return parse_exposition(body)[0]


def reloads(admin, result="success"):
    return metric(scrape(admin), "mailedge_reloads_total", result=result) or 0


class Conf:
    """One config file rewritten in place (atomically) between reloads."""

    def __init__(self, rig, admin):
        self.rig = rig
        self.admin = admin
        self.path = None

    def text(self, body, extra=(), log="stderr"):
        return (h.global_block(log=log, extra=["admin %s" % h.fmt_addr(*self.admin)]
                               + list(extra))
                + body)

    def start(self, body, extra=(), log="stderr"):
        self.path = self.rig.write_config(self.text(body, extra, log), name="reload.conf")
        work = self.rig.tmp / "run-reload"
        work.mkdir()
        me = h.Mailedge(self.rig.binary, self.path, work, grace=5.0)
        self.rig.daemons.append(me)
        me.start()
        self.me = me
        return me

    def write(self, body, extra=(), raw=None, log="stderr"):
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(raw if raw is not None else self.text(body, extra, log))
        os.replace(tmp, self.path)

    def reload(self, result="success"):
        """SIGHUP, then wait until the reload is counted (bounded), and with
        several workers until every one logged it (worker 0's counter is
        not enough)."""
        before = reloads(self.admin, result)
        lines = len(self.me.events("reload", result=result))
        self.me.signal(signal.SIGHUP)
        h.wait_until(lambda: reloads(self.admin, result) > before,
                     what="reload counted as %s" % result, info=self.me.describe)
        n = self.me.nworkers()
        if result == "success" and n > 1:
            self.me.wait_log("reload", count=lines + n, result="success")


def two_routes(a, b, lip, lport, route):
    return (h.backend_block("a", [("srv-a", a.addr)], send_proxy="v2")
            + h.backend_block("b", [("srv-b", b.addr)], send_proxy="v2")
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", route))


class ShortSessions(threading.Thread):
    """New sessions one after another until stopped (bounded in count):
    greeting, QUIT, FIN, the server's FIN. Any other outcome is a failure."""

    def __init__(self, ip, port, source, limit=5000):
        super().__init__(daemon=True)
        self.ip, self.port, self.source, self.limit = ip, port, source, limit
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []

    def one(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(h.DEADLINE)
        try:
            s.bind((self.source, 0))
            s.connect((self.ip, self.port))
            got = b""
            while not got.endswith(b"\r\n"):
                d = s.recv(256)
                if not d:
                    raise AssertionError("closed before the greeting: %r" % got)
                got += d
            if got not in (GREET_A, GREET_B):
                raise AssertionError("unexpected greeting %r" % got)
            s.sendall(b"QUIT\r\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(256):
                pass
        finally:
            s.close()

    def run(self):
        for _ in range(self.limit):
            if self.stop.is_set():
                return
            try:
                self.one()
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                self.failures.append(repr(e))


def greeting_of(rig, lip, lport, source_host=11):
    c = rig.client(lip, lport, source=rig.ip(source_host))
    data = c.wait(lambda d: d.endswith(b"\r\n"))
    c.close()
    return data


def hundred_reloads(rig, workers=1):
    """100 reloads alternating the route of a listener between two
    backends, with new sessions arriving all the time and three long
    sessions relaying across all of them. Returns the daemon, the Conf and
    the sessions begun."""
    extra = ["workers %d" % workers]  # 1: the single process; test_workers.py runs 2
    a = rig.backend(2, greeting=GREET_A, echo=True, backlog=256)
    b = rig.backend(6, greeting=GREET_B, echo=True, backlog=256)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(two_routes(a, b, lip, lport, "a"), extra=extra)

    longs = []
    for i in range(3):
        c = rig.client(lip, lport, source=rig.ip(20 + i), name="long%d" % i)
        c.wait_endswith(GREET_A)
        longs.append(c)
    flows = [ShortSessions(lip, lport, rig.ip(10)), ShortSessions(lip, lport, rig.ip(12))]
    for f in flows:
        f.start()
    try:
        for i in range(100):
            route, greet = ("b", GREET_B) if i % 2 == 0 else ("a", GREET_A)
            conf.write(two_routes(a, b, lip, lport, route), extra=extra)
            if workers > 1:
                # Every worker reloaded (worker 0's counter is not enough).
                me.signal(signal.SIGHUP)
                me.wait_log("reload", count=workers * (i + 1), result="success")
            else:
                conf.reload()
            # A session begun after the reload takes the new route.
            assert greeting_of(rig, lip, lport) == greet, "reload %d" % (i + 1)
            # The long sessions still relay both ways, on the route they began on.
            for c in longs:
                msg = b"ping %d\r\n" % i
                c.send(msg)
                c.wait_endswith(msg)
    finally:
        for f in flows:
            f.stop.set()
        for f in flows:
            f.join(h.DEADLINE)
    for f in flows:
        assert not f.failures, f.failures[:5]
        assert f.ok > 0
    nshort = sum(f.ok for f in flows)
    for c in longs:
        assert not c.ended, c.name
        assert c.snapshot().startswith(GREET_A)
    # Every reload logged what changed: the listener's route.
    lines = me.events("reload", result="success")
    assert len(lines) == 100 * workers
    assert all(ln.get("listeners_changed") == "front" for ln in lines), lines[:3]
    assert all(ln.get("binds_kept") == "1" and ln.get("binds_opened") == "0" for ln in lines)
    for c in longs:
        c.close()
    ended = me.wait_log("session", count=nshort + 100 + 3)
    cut = [s for s in ended if s["reason"] not in ("client_closed", "backend_closed")]
    assert not cut, cut[:5]
    return me, conf, nshort


def test_hundred_reloads_lose_nothing(rig):
    """The proof: 100 reloads under load (hundred_reloads)."""
    me, conf, nshort = hundred_reloads(rig)
    assert reloads(conf.admin) == 100
    assert reloads(conf.admin, "failure") == 0
    # The counters went on across 100 generations: every session counted once.
    samples = scrape(conf.admin)
    assert metric(samples, "mailedge_sessions_active", listener="front") == 0
    total = sum(v for (n, lbl), v in samples.items()
                if n == "mailedge_sessions_total" and ("listener", "front") in lbl)
    assert total == nshort + 100 + 3


def test_broken_config_keeps_serving(rig):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(two_routes(a, b, lip, lport, "a"))
    held = rig.client(lip, lport, source=rig.ip(20))
    held.wait_endswith(GREET_A)

    # Two errors in one file: both are logged with FILE:LINE:COL.
    good = conf.text(two_routes(a, b, lip, lport, "b"))
    broken = good.replace("route -> b", "route -> nowhere").replace("protocol smtp",
                                                                   "protocol smpt")
    conf.write(None, raw=broken)
    conf.reload(result="failure")
    errs = me.events("config_error")
    assert len(errs) == 2, errs
    assert all(e["error"].startswith(conf.path + ":") for e in errs), errs
    assert any("smpt" in e["error"] for e in errs) and any("nowhere" in e["error"] for e in errs)
    line = me.events("reload", result="failure")[0]
    assert line["errors"] == "2" and line["generation"] == "1", line
    samples = scrape(conf.admin)
    assert metric(samples, "mailedge_config_last_reload_successful") == 0
    assert metric(samples, "mailedge_reloads_total", result="success") == 0
    # Still the old config: same route, the open session untouched.
    assert greeting_of(rig, lip, lport) == GREET_A
    held.send(b"NOOP\r\n")
    assert not held.ended

    conf.write(two_routes(a, b, lip, lport, "b"))
    conf.reload()
    assert greeting_of(rig, lip, lport) == GREET_B
    samples = scrape(conf.admin)
    assert metric(samples, "mailedge_config_last_reload_successful") == 1
    assert metric(samples, "mailedge_config_last_reload_success_timestamp_seconds") > 0
    # Counters survive the reload: the sessions before it are still counted.
    assert metric(samples, "mailedge_sessions_total", listener="front",
                  reason="client_closed") >= 1
    # The new route's session is logged before the held one ends, so the held
    # one's line is the third (one loop pass could otherwise take both ends).
    h.assert_session(me.wait_session(count=2), reason="client_closed", backend="b")
    held.close()
    h.assert_session(me.wait_session(count=3), reason="client_closed", backend="a")


def test_bind_failure_fails_the_whole_reload(rig):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(two_routes(a, b, lip, lport, "a"))
    # A second listener on backend a's own port: that bind fails, so the
    # route change in the same file does not happen either. (Routed to b:
    # a route to a would lead back to the listener, which -t refuses.)
    body = (two_routes(a, b, lip, lport, "b")
            + h.listener_block("clash", a.addr, "smtp", "b"))
    conf.write(body)
    conf.reload(result="failure")
    line = me.events("reload", result="failure")[0]
    assert "clash" in line["error"], line
    assert greeting_of(rig, lip, lport) == GREET_A


def test_listener_added_and_removed(rig):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    xport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(two_routes(a, b, lip, lport, "a"))
    assert h.connect_refused(lip, xport)

    conf.write(two_routes(a, b, lip, lport, "a")
               + h.listener_block("extra", h.fmt_addr(lip, xport), "smtp", "b"))
    conf.reload()
    line = me.events("reload", result="success")[-1]
    assert line["listeners_added"] == "extra" and line["binds_opened"] == "1", line
    assert greeting_of(rig, lip, xport) == GREET_B
    assert greeting_of(rig, lip, lport) == GREET_A
    # A session on the listener about to be removed finishes on it.
    c = rig.client(lip, xport, source=rig.ip(20))
    c.wait_endswith(GREET_B)

    conf.write(two_routes(a, b, lip, lport, "a"))
    conf.reload()
    line = me.events("reload", result="success")[-1]
    assert line["listeners_removed"] == "extra" and line["binds_closed"] == "1", line
    h.wait_until(lambda: h.connect_refused(lip, xport), what="extra closed", info=me.describe)
    assert greeting_of(rig, lip, lport) == GREET_A
    c.send(b"NOOP\r\n")
    c.close()
    s = me.wait_session(count=2, listener="extra")
    h.assert_session(s, reason="client_closed", backend="b")
    assert me.events("listen_closed", listener="extra")

    # The name comes back: its counters continue, the session that ended on
    # the removed listener counted, none active.
    conf.write(two_routes(a, b, lip, lport, "a")
               + h.listener_block("extra", h.fmt_addr(lip, xport), "smtp", "b"))
    conf.reload()
    samples = scrape(conf.admin)
    assert metric(samples, "mailedge_sessions_active", listener="extra") == 0
    assert metric(samples, "mailedge_sessions_total", listener="extra",
                  reason="client_closed") == 2


def test_health_carried_over(rig):
    """A server that passed its check stays up across a reload: with rise 5
    every 10s it would need 40s of checks to come up again otherwise."""
    a = rig.backend(2, greeting=GREET_A)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))

    def body(rise, idle):
        return (h.block("backend", "mail", ["server mx1 %s" % a.addr,
                                            "check tcp interval 10s rise %d fall 3" % rise])
                + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail",
                                   extra=["timeout idle %s" % idle]))

    me = conf.start(body(1, "5m"))
    me.wait_log("health", server="mx1", state="up")
    conf.write(body(5, "6m"))
    conf.reload()
    line = me.events("reload", result="success")[-1]
    assert line["backends_changed"] == "mail" and line["listeners_changed"] == "front", line
    samples = scrape(conf.admin)
    assert metric(samples, "mailedge_server_up", backend="mail", server="mx1") == 1
    assert greeting_of(rig, lip, lport) == GREET_A
    assert not me.events("health", state="down")


def test_held_client_moves_to_new_generation(rig):
    """A client held while the backend's only server refuses is served by
    the server the reloaded backend of the same name points to."""
    down = rig.refusing(3)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))

    def body(addr):
        return (h.block("backend", "mail", ["server mx1 %s" % addr,
                                            "check tcp interval 100ms rise 1 fall 1",
                                            "queue-timeout 60s"])
                + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))

    me = conf.start(body(down.addr))
    c = rig.client(lip, lport, source=rig.ip(20))
    h.wait_until(lambda: metric(scrape(conf.admin), "mailedge_queue_depth", backend="mail") == 1,
                 what="client held", info=me.describe)
    conf.write(body(b.addr))
    conf.reload()
    c.wait_endswith(GREET_B)
    lines = me.events("reload", result="success")
    assert [ln["held_moved"] for ln in lines].count("1") == 1, lines
    c.close()
    s = me.wait_session()
    h.assert_session(s, reason="client_closed", backend="mail")
    assert "held_ms" in s


def test_notify_reloading_then_ready(rig, notify_sock):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    conf.start(two_routes(a, b, lip, lport, "a"))
    _recv_until(notify_sock, "READY=1", limit=50)
    conf.write(two_routes(a, b, lip, lport, "b"))
    conf.me.signal(signal.SIGHUP)
    after = _recv_until(notify_sock, "READY=1", limit=50)
    rel = [m for m in after if "RELOADING=1" in m]
    assert rel, after
    fields = dict(x.split("=", 1) for x in rel[0].split("\n") if "=" in x)
    assert int(fields["MONOTONIC_USEC"]) > 0, rel
    assert after.index(rel[0]) < max(i for i, m in enumerate(after) if "READY=1" in m)
    assert greeting_of(rig, lip, lport) == GREET_B


def test_dns_answer_carried_over(rig):
    """The answer of a server written with a host name survives a reload
    even when the resolver fails right after it: new sessions are served."""
    from dnsserver import DnsServer
    name = "mx1.reload.test"
    dns = DnsServer(rig.ip(53))
    try:
        a = rig.backend(2, greeting=GREET_A)
        lip = rig.ip(1)
        lport = h.free_port(lip)
        conf = Conf(rig, rig.endpoint(5))
        extra = ["resolvers %s" % dns.addr]

        def body(idle):
            return (h.backend_block("mail", [("srv1", "%s:%d" % (name, a.port))])
                    + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail",
                                       extra=["timeout idle %s" % idle]))

        dns.set(name, [a.ip], ttl=30)
        me = conf.start(body("5m"), extra=extra)
        me.wait_log("resolve", server="srv1", addrs=a.ip)
        dns.set_mode("servfail")
        conf.write(body("6m"), extra=extra)
        conf.reload()
        assert greeting_of(rig, lip, lport) == GREET_A
        h.assert_session(me.wait_session(), backend="mail", server="srv1")
    finally:
        dns.close()


def test_connecting_session_outlives_its_removed_backend(rig):
    """A session still connecting (to a server that never answers) when a
    reload removes its backend and listener finishes on its own
    configuration: its connect times out, the client gets the 421, and
    only then is the old configuration freed."""
    a = rig.backend(2, greeting=GREET_A)
    hole = rig.blackhole(4)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    sport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    front = (h.backend_block("a", [("srv-a", a.addr)])
             + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "a"))
    slow = (h.backend_block("slow", [("hole", hole.addr)], extra=["timeout connect 2s"])
            + h.listener_block("slow", h.fmt_addr(lip, sport), "smtp", "slow"))
    me = conf.start(front + slow, log="stderr level debug")
    c = rig.client(lip, sport, source=rig.ip(20))
    h.wait_until(lambda: metric(scrape(conf.admin), "mailedge_sessions_active",
                                listener="slow") == 1, what="session connecting",
                 info=me.describe)
    # With several workers, the one holding the session keeps the old
    # configuration; another, with no session in it, frees its own at once.
    worker = me.wait_log("session_state", to="connecting")[0].get("worker")
    mine = {"worker": worker} if worker is not None else {}
    conf.write(front, log="stderr level debug")
    conf.reload()
    line = me.events("reload", result="success")[-1]
    assert line["listeners_removed"] == "slow" and line["backends_removed"] == "slow", line
    assert greeting_of(rig, lip, lport) == GREET_A
    assert not me.events("generation_freed", **mine)
    c.wait_endswith(b"\r\n")
    assert c.snapshot().startswith(b"421 4.3.2"), c.snapshot()
    s = me.wait_session(listener="slow")
    h.assert_session(s, reason="connect_timeout", backend="slow")
    me.wait_log("generation_freed", generation=1, **mine)


def test_burst_of_sighups(rig):
    """SIGHUPs arriving together make one reload (or a few), never a
    broken state: the file written before the burst is in force after it."""
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(two_routes(a, b, lip, lport, "a"))
    conf.write(two_routes(a, b, lip, lport, "b"))
    for _ in range(20):
        me.signal(signal.SIGHUP)
    # Pending signals of one kind merge in the kernel, and requests merge
    # until the loop runs the reload: between 1 and 20 reloads.
    h.wait_until(lambda: reloads(conf.admin) >= 1, what="a reload", info=me.describe)
    # With several workers, each of them (worker 0's counter is not enough).
    n = me.nworkers()
    h.wait_until(lambda: len({ln.get("worker") for ln in me.events("reload", result="success")})
                 == n, what="every worker reloaded", info=me.describe)
    assert greeting_of(rig, lip, lport) == GREET_B
    n = reloads(conf.admin)
    assert 1 <= n <= 20 and reloads(conf.admin, "failure") == 0
    # The process signalled: mailedge, or the supervisor (its lines say no worker).
    assert 1 <= len([ln for ln in me.events("signal", signal="HUP") if "worker" not in ln]) <= 20
    assert len(me.events("reload", result="success")) >= n
    assert me.running
