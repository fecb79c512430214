"""The admin endpoint sees every worker (issue 19): with `workers 2`,
/metrics is the sum of both workers' counters (src/edge/metricshare.c), and
/status lists each worker with its sessions. A killed worker's counters do
not go backwards and its sessions leave the gauges; a reload keeps the
sums; a killed worker 0 (the admin endpoint's) continues its counters."""

import json
import os
import signal

import harness as h
from test_admin import http, metric, scrape
from test_workers import children, owner_of

GREETING = b"220 test ESMTP\r\n"

# Counters that must never go backwards, whatever happens to a worker.
MONOTONIC = [
    ("mailedge_sessions_total", {"listener": "front", "reason": "client_closed"}),
    ("mailedge_bytes_total", {"listener": "front", "direction": "in"}),
    ("mailedge_bytes_total", {"listener": "front", "direction": "out"}),
    ("mailedge_server_connects_total", {"backend": "mail", "server": "srv1"}),
    ("mailedge_server_connect_duration_seconds_count", {"backend": "mail", "server": "srv1"}),
    ("mailedge_server_connect_duration_seconds_bucket",
     {"backend": "mail", "server": "srv1", "le": "+Inf"}),
]


def start(rig, n=2):
    admin = rig.endpoint(5)
    s = rig.simple(send_proxy=None, grace="30s",
                   global_extra=["workers %d" % n, "admin %s" % h.fmt_addr(*admin)])
    h.wait_until(lambda: len(children(s.me.pid)) == n, what="%d workers" % n,
                 info=s.me.describe)
    h.wait_until(lambda: len(status(admin)["workers"]) == n
                 and all(wk["running"] for wk in status(admin)["workers"]),
                 what="every worker in /status", info=s.me.describe)
    return s, admin


def status(admin):
    code, _, body = http(admin, "/status")
    assert code == 200, body
    return json.loads(body)


def open_clients(rig, s, n, first=0):
    """n greeted clients, left open, spread by the kernel over the workers."""
    cs = []
    for i in range(n):
        c = rig.client(s.ip, s.port, source=rig.ip(10 + (first + i) % 5), name="c%d" % (first + i))
        c.wait_endswith(GREETING)
        cs.append(c)
    return cs


def finish(c):
    """A whole session's end: a command, the client's FIN, the server's."""
    c.send(b"QUIT\r\n")
    c.shutdown_write()
    c.wait_eof()
    c.close()


def both_workers(rig, s, n=20, first=0):
    """Opens clients until both workers hold some (SO_REUSEPORT hashes the
    4-tuple); returns them with their owner pids."""
    cs = open_clients(rig, s, n, first)
    owners = [owner_of(s.port, c) for c in cs]
    assert set(owners) == set(children(s.me.pid)), owners
    return cs, owners


def monotonic_values(m):
    return [metric(m, name, **labels) for name, labels in MONOTONIC]


def test_metrics_and_status_are_the_sums_over_workers(rig):
    s, admin = start(rig)
    cs, owners = both_workers(rig, s, 30)
    pids = children(s.me.pid)

    # Open: the gauges and /status count both workers' sessions.
    m = scrape(admin)
    assert metric(m, "mailedge_sessions_active", listener="front") == 30
    assert metric(m, "mailedge_server_connects_total", backend="mail", server="srv1") == 30
    assert metric(m, "mailedge_server_sessions_active", backend="mail", server="srv1") == 30
    assert metric(m, "mailedge_workers") == 2
    st = status(admin)
    assert st["sessions_active"] == 30
    assert st["listeners"][0]["sessions_active"] == 30
    assert st["backends"][0]["servers"][0]["connects"] == 30
    assert st["backends"][0]["servers"][0]["active"] == 30
    by_pid = {wk["pid"]: wk for wk in st["workers"]}
    assert sorted(by_pid) == sorted(pids)
    assert [wk["index"] for wk in st["workers"]] == [0, 1]
    for pid in pids:
        wk = by_pid[pid]
        assert wk["running"] and wk["restarts"] == 0 and wk["started"] > 0
        assert wk["sessions_active"] == owners.count(pid), (wk, owners)
        assert wk["listeners"] == [{"name": "front", "sessions_active": owners.count(pid)}]
        assert metric(m, "mailedge_worker_sessions_active",
                      worker=str(wk["index"])) == owners.count(pid)

    # Ended: the counters are the totals of the session lines of both workers.
    for c in cs:
        finish(c)
    lines = s.me.wait_log("session", 30)
    assert {ln["worker"] for ln in lines} == {"0", "1"}
    m = scrape(admin)
    assert metric(m, "mailedge_sessions_active", listener="front") == 0
    assert metric(m, "mailedge_sessions_total", listener="front", reason="client_closed") == 30
    assert metric(m, "mailedge_bytes_total", listener="front", direction="in") == \
        sum(int(ln["bytes_in"]) for ln in lines)
    assert metric(m, "mailedge_bytes_total", listener="front", direction="out") == \
        sum(int(ln["bytes_out"]) for ln in lines) == 30 * len(GREETING)
    assert metric(m, "mailedge_server_connect_duration_seconds_count",
                  backend="mail", server="srv1") == 30
    assert metric(m, "mailedge_server_connect_duration_seconds_bucket",
                  backend="mail", server="srv1", le="+Inf") == 30
    assert metric(m, "mailedge_server_sessions_active", backend="mail", server="srv1") == 0
    # A reload is counted once, not once per worker.
    assert metric(m, "mailedge_reloads_total", result="success") == 0
    assert status(admin)["sessions_active"] == 0


def test_process_figures_of_several_workers(rig):
    s, admin = start(rig)
    pids = children(s.me.pid)

    def published():
        m = scrape(admin)
        return all(metric(m, "mailedge_worker_open_fds", worker=w) for w in ("0", "1")) and m
    m = h.wait_until(published, what="both workers' published figures", info=s.me.describe)
    per_fds = [metric(m, "mailedge_worker_open_fds", worker=w) for w in ("0", "1")]
    per_rss = [metric(m, "mailedge_worker_resident_memory_bytes", worker=w) for w in ("0", "1")]
    # The service as one process: the workers' descriptors, the workers' and
    # the supervisor's memory, the supervisor's start.
    assert metric(m, "process_open_fds") == sum(per_fds)
    assert metric(m, "process_max_fds") == 2 * metric(m, "mailedge_descriptors_limit")
    assert metric(m, "process_resident_memory_bytes") > sum(per_rss) > 0
    starts = [metric(m, "mailedge_worker_start_time_seconds", worker=w) for w in ("0", "1")]
    assert 0 < metric(m, "process_start_time_seconds") <= min(starts)
    assert sorted(wk["pid"] for wk in status(admin)["workers"]) == sorted(pids)


def test_killed_worker_counters_stay_and_its_sessions_leave(rig):
    s, admin = start(rig)
    st = status(admin)
    victim = next(wk for wk in st["workers"] if wk["index"] == 1)["pid"]
    survivor = next(wk for wk in st["workers"] if wk["index"] == 0)["pid"]
    # Ended sessions on both workers, then open ones on both.
    done, _ = both_workers(rig, s, 20)
    for c in done:
        finish(c)
    s.me.wait_log("session", 20)
    cs, owners = both_workers(rig, s, 20, first=20)
    before = scrape(admin)
    assert metric(before, "mailedge_sessions_active", listener="front") == 20
    assert metric(before, "mailedge_sessions_total", listener="front",
                  reason="client_closed") == 20

    os.kill(victim, signal.SIGKILL)
    s.me.wait_log("worker_restart")
    h.wait_until(lambda: len(children(s.me.pid)) == 2 and victim not in children(s.me.pid),
                 what="worker 1 restarted", info=s.me.describe)
    h.wait_until(lambda: status(admin)["workers"][1]["running"],
                 what="the new worker 1 in /status", info=s.me.describe)
    after = scrape(admin)
    for name_labels, b, a in zip(MONOTONIC, monotonic_values(before), monotonic_values(after)):
        assert a >= b, (name_labels, b, a)
    kept = owners.count(survivor)
    assert metric(after, "mailedge_sessions_active", listener="front") == kept
    assert metric(after, "mailedge_server_sessions_active", backend="mail", server="srv1") == kept
    assert metric(after, "mailedge_worker_restarts_total", worker="1") == 1
    assert metric(after, "mailedge_worker_restarts_total", worker="0") == 0
    assert metric(after, "mailedge_workers") == 2
    st = status(admin)
    assert st["sessions_active"] == kept
    assert st["workers"][1]["pid"] != victim and st["workers"][1]["restarts"] == 1
    assert st["workers"][1]["sessions_active"] == 0

    # The new worker counts on top of its predecessor's counts.
    for c, pid in zip(cs, owners):
        if pid == survivor:
            finish(c)
        else:
            c.wait_end()
    more, _ = both_workers(rig, s, 20, first=40)
    for c in more:
        finish(c)
    h.wait_until(lambda: metric(scrape(admin), "mailedge_sessions_total", listener="front",
                                reason="client_closed") == 20 + kept + 20,
                 what="every ended session counted", info=s.me.describe)
    m = scrape(admin)
    assert metric(m, "mailedge_sessions_active", listener="front") == 0
    assert metric(m, "mailedge_server_connects_total", backend="mail", server="srv1") == 60


def test_killed_worker0_continues_its_counters(rig):
    """Worker 0 runs the endpoint: after its restart, the sums (its own
    share included) and the reload count are where they were."""
    s, admin = start(rig)
    done, _ = both_workers(rig, s, 20)
    for c in done:
        finish(c)
    s.me.wait_log("session", 20)
    s.me.signal(signal.SIGHUP)
    s.me.wait_log("reload", count=2, result="success")
    before = scrape(admin)
    assert metric(before, "mailedge_reloads_total", result="success") == 1
    zero = status(admin)["workers"][0]["pid"]
    os.kill(zero, signal.SIGKILL)
    s.me.wait_log("worker_restart")
    h.wait_until(lambda: zero not in children(s.me.pid) and len(children(s.me.pid)) == 2,
                 what="worker 0 restarted", info=s.me.describe)

    def back():
        try:
            return status(admin)["workers"][0]["pid"] != zero
        except OSError:
            return False
    h.wait_until(back, what="the admin endpoint of the new worker 0", info=s.me.describe)
    after = scrape(admin)
    assert monotonic_values(after) == monotonic_values(before)
    assert metric(after, "mailedge_reloads_total", result="success") == 1
    assert metric(after, "mailedge_worker_restarts_total", worker="0") == 1


def test_reload_keeps_the_sums(rig):
    s, admin = start(rig)
    done, _ = both_workers(rig, s, 20)
    for c in done:
        finish(c)
    s.me.wait_log("session", 20)
    before = scrape(admin)
    s.me.signal(signal.SIGHUP)
    s.me.wait_log("reload", count=2, result="success")
    after = scrape(admin)
    assert monotonic_values(after) == monotonic_values(before)
    assert metric(after, "mailedge_sessions_total", listener="front", reason="client_closed") == 20
    assert metric(after, "mailedge_reloads_total", result="success") == 1
    more, _ = both_workers(rig, s, 20, first=20)
    for c in more:
        finish(c)
    s.me.wait_log("session", 40)
    m = scrape(admin)
    assert metric(m, "mailedge_sessions_total", listener="front", reason="client_closed") == 40
    assert metric(m, "mailedge_server_connects_total", backend="mail", server="srv1") == 40
