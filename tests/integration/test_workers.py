"""`workers N` (issue 19): a supervisor and N worker processes sharing the
listening ports through SO_REUSEPORT. Clients spread over the workers; SIGTERM
drains every one; a worker that dies is restarted and logged; SIGHUP reaches
every worker, an invalid file none; the 100-reloads-under-load proof with
workers 2; a worker that cannot bind fails the start; workers follow a
supervisor that was killed."""

import os
import signal
import socket
import subprocess

import harness as h
from fakemail import GOOD, FakeMail
from test_hold import Down
from test_reload import GREET_A, GREET_B, Conf, greeting_of, hundred_reloads, two_routes

GREET = b"220 test ESMTP\r\n"


def children(pid):
    """The pids of a process's children (the workers), from /proc."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def owner_of(lport, client):
    """The pid of the mailedge worker holding <client>'s connection (ss -p)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "sport", "= :%d" % lport],
                         capture_output=True, text=True, check=True).stdout
    peer = h.fmt_addr(*client.local)
    for line in out.splitlines():
        if peer in line.split() and "pid=" in line:
            return int(line.split("pid=")[1].split(",")[0])
    return None


def workers_of(me, event, **match):
    return {ln.get("worker") for ln in me.events(event, **match)}


def start(rig, n=2, **kw):
    extra = ["workers %d" % n] + list(kw.pop("global_extra", []))
    s = rig.simple(global_extra=extra, **kw)
    h.wait_until(lambda: len(children(s.me.pid)) == n, what="%d workers" % n,
                 info=s.me.describe)
    return s


def greet_many(rig, s, n, source_host=10):
    """n clients, each reading the greeting; returns them open."""
    cs = []
    for i in range(n):
        c = rig.client(s.ip, s.port, source=rig.ip(source_host), name="c%d" % i)
        c.wait_endswith(GREET)
        cs.append(c)
    return cs


def test_clients_spread_over_workers_and_drain(rig, splice):
    s = start(rig, 2, send_proxy="v2", splice=splice, grace="30s")
    assert [ln.get("workers") for ln in s.me.events("ready")] == ["2"]
    assert workers_of(s.me, "worker_ready") == {"0", "1"}
    cs = greet_many(rig, s, 40)
    owners = {owner_of(s.port, c) for c in cs}
    assert owners == set(children(s.me.pid)), owners
    s.backend.wait_conn(40)
    conns = list(s.backend.conns)
    # SIGTERM: every worker drains; the sessions still relay both ways.
    s.me.signal(signal.SIGTERM)
    h.wait_until(lambda: h.connect_refused(s.ip, s.port, source=rig.ip(11)),
                 what="every worker's listener closed", info=s.me.describe)
    # A worker closes its listeners, then logs its drain line (at the end of the pass).
    h.wait_until(lambda: workers_of(s.me, "drain") == {"0", "1"}, what="both workers' drain line",
                 info=s.me.describe)
    for i, c in enumerate(cs):
        msg = b"EHLO c%d\r\n" % i
        c.send(msg)
        h.wait_until(lambda: any(k.snapshot().endswith(msg) for k in conns),
                     what="message of client %d at the backend" % i, info=s.me.describe)
    assert s.me.running
    for c in cs:
        c.close()
    assert s.me.wait_exit() == 0
    # (The probe for the closed listener may have met a worker not yet draining.)
    ended = [ln for ln in s.me.events("session") if ln["peer"].startswith(rig.ip(10) + ":")]
    assert len(ended) == 40
    assert {ln["worker"] for ln in ended} == {"0", "1"}
    assert all(ln["reason"] == "client_closed" for ln in ended), ended[:3]
    exits = s.me.events("worker_exit")
    assert len(exits) == 2 and all(ln.get("status") == "0" for ln in exits), exits


def test_crashed_worker_is_restarted(rig):
    s = start(rig, 2, send_proxy="v2")
    cs = greet_many(rig, s, 20)
    pids = children(s.me.pid)
    victim = owner_of(s.port, cs[0])
    assert victim in pids
    os.kill(victim, signal.SIGKILL)
    line = s.me.wait_log("worker_exit")[0]
    assert line.get("signal") == "KILL" and line.get("pid") == str(victim), line
    assert line["level"] == "error"
    restart = s.me.wait_log("worker_restart")[0]
    assert restart["worker"] == line["worker"]
    h.wait_until(lambda: len(children(s.me.pid)) == 2 and victim not in children(s.me.pid),
                 what="a new worker", info=s.me.describe)
    assert int(restart["pid"]) in children(s.me.pid)
    # The other worker's sessions never noticed; the victim's ended with it.
    for i, c in enumerate(cs):
        if owner_of(s.port, c) is None:
            c.wait_end()
            continue
        c.send(b"NOOP %d\r\n" % i)
    # New clients are served, by both workers again (the new one listens).
    more = greet_many(rig, s, 30, source_host=12)
    h.wait_until(lambda: {owner_of(s.port, c) for c in more} == set(children(s.me.pid)),
                 what="clients on both workers", info=s.me.describe)
    for c in cs + more:
        c.close()


def test_reload_reaches_every_worker_and_invalid_none(rig):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(6, greeting=GREET_B)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(two_routes(a, b, lip, lport, "a"), extra=["workers 3"])
    h.wait_until(lambda: len(children(me.pid)) == 3, what="3 workers", info=me.describe)
    conf.write(two_routes(a, b, lip, lport, "b"), extra=["workers 3"])
    me.signal(signal.SIGHUP)
    lines = me.wait_log("reload", count=3, result="success")
    assert {ln["worker"] for ln in lines} == {"0", "1", "2"}
    for i in range(20):
        assert greeting_of(rig, lip, lport, 10 + i % 5) == GREET_B
    # An invalid file: the supervisor says so, and no worker even tries.
    conf.write(None, raw="global {\n    workers 3\n    bogus\n}\n")
    me.signal(signal.SIGHUP)
    fail = me.wait_log("reload", result="failure")[0]
    assert "worker" not in fail and fail.get("workers") == "not signalled", fail
    assert me.events("config_error")
    assert len(me.events("reload_start")) == 3
    for i in range(20):
        assert greeting_of(rig, lip, lport, 10 + i % 5) == GREET_B
    # A change of the count needs a restart: said, the rest applied.
    conf.write(two_routes(a, b, lip, lport, "a"), extra=["workers 2"])
    me.signal(signal.SIGHUP)
    me.wait_log("reload", count=6, result="success")
    assert any("workers changes only with a restart" in ln.get("msg", "")
               for ln in me.events("warning"))
    assert len(children(me.pid)) == 3
    for i in range(20):
        assert greeting_of(rig, lip, lport, 10 + i % 5) == GREET_A


def test_hundred_reloads_with_two_workers_lose_nothing(rig):
    """test_reload's proof with workers 2: 100 reloads alternating the route,
    new sessions arriving all the time, three long ones relaying across;
    every worker reloads each time, none fails, nothing is cut."""
    me, _, _ = hundred_reloads(rig, workers=2)
    assert not me.events("reload", result="failure")
    assert {s["worker"] for s in me.events("session")} == {"0", "1"}


def test_worker_that_cannot_bind_fails_the_start(rig):
    """A port taken by a socket without SO_REUSEPORT: no worker can bind it;
    the start fails as a single process's would."""
    lip = rig.ip(1)
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind((lip, 0))
    taken.listen(1)
    try:
        lport = taken.getsockname()[1]
        body = h.listener_block("front", h.fmt_addr(lip, lport), "smtp", h.fmt_addr(rig.ip(2), 25))
        me = rig.start(body, global_extra=["workers 2"], wait_ready=False)
        assert me.wait_exit() == 1
        rig.daemons.remove(me)
        assert me.events("listen_failed")
        assert me.events("start_failed")
        assert not me.events("ready")
        assert me.sanitizer_report() is None, me.stderr()
    finally:
        taken.close()


def kill_supervisor(rig, me):
    """SIGKILL mailedge's supervisor and wait until its workers have exited."""
    pids = children(me.pid)
    me.proc.kill()
    me.proc.wait(h.DEADLINE)
    rig.daemons.remove(me)

    def gone():
        return all(not os.path.exists("/proc/%d" % p)
                   or open("/proc/%d/stat" % p).read().split(") ")[1][0] == "Z"
                   for p in pids)
    h.wait_until(gone, what="the workers to exit", info=me.describe)


def test_workers_follow_a_killed_supervisor(rig):
    s = start(rig, 2, send_proxy="v2")
    kill_supervisor(rig, s.me)
    assert workers_of(s.me, "drain") == {"0", "1"}
    assert s.me.sanitizer_report() is None, s.me.stderr()


# -- one checker for every worker (src/edge/healthshare.c) ------------------

def start_checked(rig, addr, n=2):
    lip = rig.ip(1)
    lport = h.free_port(lip)
    lines = ["server mx1 %s" % addr, "send-proxy v2",
             "check smtp interval 100ms rise 1 fall 1", "queue-timeout 30s"]
    body = (h.block("backend", "mail", lines)
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    me = rig.start(body, log="stderr level debug", global_extra=["workers %d" % n])
    h.wait_until(lambda: len(children(me.pid)) == n, what="%d workers" % n, info=me.describe)
    return me, lip, lport


def test_checks_run_once_for_all_workers(rig):
    """workers 3: worker 0 alone checks; the others learn the health from it
    and serve."""
    f = FakeMail(rig.ip(2), proto="smtp", proxy=True)
    try:
        me, lip, lport = start_checked(rig, h.fmt_addr(rig.ip(2), f.port), n=3)
        me.wait_log("health", state="up")
        me.wait_log("check_attempt", count=10)
        assert {ln["worker"] for ln in me.events("check_attempt")} == {"0"}
        assert {ln.get("worker") for ln in me.events("health")} == {"0"}
        cs = []
        for i in range(30):
            c = rig.client(lip, lport, source=rig.ip(10 + i % 5), name="c%d" % i)
            cs.append(c)
        for c in cs:
            c.wait_endswith(GOOD["smtp"][0][0])
        owners = {owner_of(lport, c) for c in cs}
        for c in cs:
            c.close()
        assert owners == set(children(me.pid)), owners
    finally:
        f.close()


def test_held_clients_in_every_worker_woken_by_the_checker(rig):
    """The server refuses at start: clients are held in both workers; when
    it starts, worker 0's check sees it and every held client, in either
    worker, gets the greeting."""
    down = Down(rig)
    me, lip, lport = start_checked(rig, down.addr)
    cs = [rig.client(lip, lport, source=rig.ip(10 + i % 5), name="c%d" % i) for i in range(20)]
    me.wait_log("hold", count=20)
    assert {ln["worker"] for ln in me.events("hold")} == {"0", "1"}
    for c in cs:
        assert c.snapshot() == b"" and not c.ended
    down.release()
    f = FakeMail(down.ip, proto="smtp", proxy=True, port=down.port)
    try:
        for c in cs:
            c.wait_endswith(GOOD["smtp"][0][0])
        for c in cs:
            c.close()
        ended = me.wait_log("session", count=20)
        assert {ln["worker"] for ln in ended} == {"0", "1"}
        assert all("held_ms" in ln for ln in ended), ended[:3]
    finally:
        f.close()
