"""The default `workers` (issue 19): one worker per CPU the process may run
on, also as `workers auto`, said by -t and by the start line; and socket
activation with several workers: every worker accepts on the inherited
sockets (one accept queue), a restarted worker too, also after a reload
dropped an inherited address; in a drain, worker 0 keeps the admin
endpoint up until the other workers are gone."""

import os
import signal
import subprocess

import harness as h
from test_activation import GREETING, Activated, prebound
from test_admin import admin_endpoint, http
from test_admin import start as admin_start
from test_workers import children, kill_supervisor, owner_of

ONE_L = h.listener_block("one", "127.0.0.1:1", "smtp", "127.0.0.1:2")


def expected_auto(cpus):
    return max(1, min(64, cpus))


def check(rig, extra=(), cpus=None):
    """mailedge -t with <extra> global lines; with <cpus>, on that many CPUs only."""
    path = rig.write_config(h.global_block(extra=extra) + ONE_L)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    pre = None
    if cpus is not None:
        mine = sorted(os.sched_getaffinity(0))[:cpus]
        pre = lambda: os.sched_setaffinity(0, mine)  # noqa: E731
    r = subprocess.run([rig.binary, "-t", "-c", path], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=h.DEADLINE, env=env,
                       preexec_fn=pre)
    assert r.returncode == 0, r.stderr
    return path, r.stdout


def test_check_says_the_workers_in_effect(rig):
    n = expected_auto(len(os.sched_getaffinity(0)))
    path, out = check(rig)
    assert out == "%s: configuration ok (workers %d, auto: one per usable CPU)\n" % (path, n)
    path, out = check(rig, ["workers auto"])
    assert out == "%s: configuration ok (workers %d, auto: one per usable CPU)\n" % (path, n)
    path, out = check(rig, ["workers 3"])
    assert out == "%s: configuration ok (workers 3)\n" % path


def test_default_follows_the_cpu_affinity(rig):
    # Pinned to one CPU (taskset, systemd CPUAffinity=): one worker.
    path, out = check(rig, cpus=1)
    assert out == "%s: configuration ok (workers 1, auto: one per usable CPU)\n" % path


def test_start_line_says_the_workers(rig):
    s = rig.simple()
    n = expected_auto(len(os.sched_getaffinity(0)))
    start = s.me.events("start")[0]
    assert start["workers"] == str(n) and start["workers_from"] == "auto", start
    h.wait_until(lambda: len(children(s.me.pid)) == (n if n > 1 else 0),
                 what="%d workers" % n, info=s.me.describe)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()


# ---- socket activation with several workers ----


def activated(rig, sock, listen_addr, extra_body=""):
    b = rig.backend(2, greeting=GREETING)
    body = (h.backend_block("mail", [("srv1", b.addr)], send_proxy="v2")
            + h.listener_block("front", listen_addr, "smtp", "mail") + extra_body)
    path = rig.write_config(h.global_block(extra=["workers 2"]) + body)
    work = rig.tmp / "run-activated"
    work.mkdir()
    me = Activated(rig.binary, path, work, socks=[sock])
    rig.daemons.append(me)
    me.start()
    h.wait_until(lambda: len(children(me.pid)) == 2, what="2 workers", info=me.describe)
    return me, path


def served_by_the_other(rig, me, ip, port, stopped):
    """With worker <stopped> stopped, a new client is greeted by another one."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        c = rig.client(ip, port)
        c.wait_endswith(GREETING)
        owner = owner_of(port, c)
        assert owner in children(me.pid) and owner != stopped, (owner, stopped)
        c.close()
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_every_worker_accepts_on_the_inherited_socket(rig):
    lip = rig.ip(1)
    lport = h.free_port(lip)
    sock = prebound(lip, lport)
    try:
        me, _ = activated(rig, sock, h.fmt_addr(lip, lport))
    finally:
        sock.close()
    assert me.events("start")[0]["workers"] == "2"
    assert not me.events("socket_activation")
    for pid in children(me.pid):
        served_by_the_other(rig, me, lip, lport, pid)


def test_restarted_worker_accepts_after_a_reload_dropped_the_socket(rig):
    lip = rig.ip(1)
    lport = h.free_port(lip)
    sock = prebound(lip, lport)
    other = h.listener_block("other", h.fmt_addr(lip, h.free_port(lip)), "smtp", "mail")
    try:
        me, path = activated(rig, sock, h.fmt_addr(lip, lport), extra_body=other)
    finally:
        sock.close()
    # A worker killed: the new one takes the inherited socket too.
    victim = children(me.pid)[0]
    os.kill(victim, signal.SIGKILL)
    me.wait_log("worker_restart")
    h.wait_until(lambda: len(children(me.pid)) == 2 and victim not in children(me.pid),
                 what="a new worker", info=me.describe)
    me.wait_log("worker_ready", count=3)
    new = [p for p in children(me.pid) if p != victim]
    for pid in children(me.pid):
        if pid not in new:
            served_by_the_other(rig, me, lip, lport, pid)
    # A reload drops the inherited address; a worker started after it closes
    # that socket instead of refusing to start.
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text.replace(h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"),
                             ""))
    me.signal(signal.SIGHUP)
    me.wait_log("reload", count=2, result="success")
    victim = children(me.pid)[0]
    os.kill(victim, signal.SIGKILL)
    me.wait_log("worker_restart", count=2)
    me.wait_log("worker_ready", count=4)
    h.wait_until(lambda: len(children(me.pid)) == 2, what="2 workers", info=me.describe)
    assert not me.events("socket_activation"), me.log_text()


# ---- the admin endpoint in a drain of several workers ----


def test_admin_answers_until_the_last_worker_exits(rig):
    """Worker 0 runs the admin endpoint: drained before another worker, it
    keeps answering (/readyz 503) until the last one exits."""
    admin = admin_endpoint(rig)
    s = admin_start(rig, admin, send_proxy=None, grace="30s", global_extra=["workers 2"])
    h.wait_until(lambda: len(children(s.me.pid)) == 2, what="2 workers", info=s.me.describe)
    zero = h.listening_pid(admin[1])
    # A client on the other worker (the kernel's hash picks one by port).
    other = None
    for i in range(64):
        c = rig.client(s.ip, s.port, name="c%d" % i)
        c.wait_endswith(GREETING)
        if owner_of(s.port, c) != zero:
            other = c
            break
        c.close()
    assert other is not None
    s.me.signal(signal.SIGTERM)
    s.me.wait_log("drain", count=2)
    status, _, body = http(admin, "/readyz")
    assert status == 503 and "draining" in body, (status, body)
    assert zero in children(s.me.pid) and not s.me.events("exit", worker="0")
    other.close()
    assert s.me.wait_exit() == 0
    assert s.me.events("exit", worker="0")


def test_workers_with_admin_follow_a_killed_supervisor(rig):
    """Nobody is left to end worker 0's wait for the others: it exits too."""
    s = admin_start(rig, admin_endpoint(rig), send_proxy=None, global_extra=["workers 2"])
    h.wait_until(lambda: len(children(s.me.pid)) == 2, what="2 workers", info=s.me.describe)
    kill_supervisor(rig, s.me)
    assert len(s.me.events("exit")) == 2, s.me.log_text()
