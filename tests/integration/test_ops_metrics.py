"""Metrics operators alert on (issue 17): health transitions per server
and the time of the last one (flapping), log lines that could not be
written, and the process metrics under the Prometheus client conventions."""

import os
import signal
import subprocess
import time

import harness as h
from test_admin import metric, scrape
from test_workers import children


def _transitions(admin, to):
    return metric(scrape(admin), "mailedge_server_health_transitions_total",
                  backend="mail", server="mx1", to=to)


def start_checked(rig, backend="mail"):
    """mailedge with an admin endpoint and one backend of one checked
    server (mx1, a recording backend; fall 1, rise 1). Returns (admin, backend)."""
    admin = rig.endpoint(5)
    be = rig.backend(greeting=b"220 x\r\n")
    lip = rig.ip(1)
    body = (h.backend_block(backend, [("mx1", be.addr)],
                            extra=["check tcp interval 100ms rise 1 fall 1"])
            + h.listener_block("smtp", h.fmt_addr(lip, h.free_port(lip)), "smtp", backend))
    rig.start(body, global_extra=["admin %s" % h.fmt_addr(*admin)])
    return admin, be


def test_health_transitions_counted(rig):
    """Up, down, up again: two changes up (the first pass counts), one down,
    and the time of the last change moves."""
    admin, be = start_checked(rig)
    h.wait_until(lambda: _transitions(admin, "up") == 1, what="the first change to up")
    assert _transitions(admin, "down") == 0
    first = metric(scrape(admin), "mailedge_server_health_last_change_timestamp_seconds",
                   backend="mail", server="mx1")
    assert abs(first - time.time()) < 600, first

    port = be.port
    be.close()
    h.wait_until(lambda: _transitions(admin, "down") == 1, what="the change to down")
    rig.backend(port=port, greeting=b"220 x\r\n")
    h.wait_until(lambda: _transitions(admin, "up") == 2, what="the change back up")
    s = scrape(admin)
    assert metric(s, "mailedge_server_health_transitions_total",
                  backend="mail", server="mx1", to="down") == 1
    assert metric(s, "mailedge_server_health_last_change_timestamp_seconds",
                  backend="mail", server="mx1") >= first


def _proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        return next(int(line.split()[3]) for line in f if line.startswith("Max open files"))


def test_process_metrics(rig):
    """process_* describe the service as one process (operations.md, Several
    workers): descriptors open and allowed summed over the workers, memory
    over them and the supervisor, the start the supervisor's. With workers 1
    the one process is all of them."""
    admin = rig.endpoint(5)
    me = rig.simple(global_extra=["admin %s" % h.fmt_addr(*admin)]).me
    n = me.nworkers()
    workers = [me.pid] if n == 1 else h.wait_until(
        lambda: len(children(me.pid)) == n and children(me.pid), what="%d workers" % n,
        info=me.describe)
    procs = set(workers) | {me.pid}

    def figures():
        m = scrape(admin)
        fds = sum(len(os.listdir("/proc/%d/fd" % pid)) for pid in workers)
        return (m[("process_open_fds", ())], fds, m[("process_max_fds", ())],
                sum(_soft_nofile(pid) for pid in workers), m)

    # Each worker publishes its descriptors about once a second; the scrape
    # itself holds a descriptor or two: a small tolerance.
    got = h.wait_until(lambda: (lambda f: abs(f[0] - f[1]) <= 3 and f[2] == f[3] and f)(figures()),
                       what="process_open_fds and process_max_fds of every worker",
                       info=lambda: "%r\n%s" % (figures()[:4], me.describe()))
    open_fds, fds, max_fds, soft, m = got
    assert abs(open_fds - fds) <= 3 and max_fds == soft, got[:4]
    started = os.stat("/proc/%d" % me.pid).st_mtime  # about when the supervisor appeared
    assert abs(m[("process_start_time_seconds", ())] - started) < 120
    rss = sum(_proc_status(pid, "VmRSS") * 1024 for pid in procs)
    assert 0 < m[("process_resident_memory_bytes", ())] <= 4 * rss


def test_log_lines_failed_counted(binary, net, tmp_path):
    """stderr is a pipe nobody reads any more (a container's log driver
    gone): the lines are lost, and the counter says how many."""
    admin = (net.ip(5), h.free_port(net.ip(5)))
    lip = net.ip(1)
    lport = h.free_port(lip)
    be = h.Backend(net.ip(2), greeting=b"220 x\r\n")
    conf = tmp_path / "m.conf"
    conf.write_text(h.global_block(extra=["admin %s" % h.fmt_addr(*admin)])
                    + h.backend_block("mail", [be.addr])
                    + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        h.wait_until(lambda: b"event=ready" in proc.stderr.read1(65536) or proc.poll(),
                     what="event=ready")
        assert proc.poll() is None
        assert metric(scrape(admin), "mailedge_log_lines_failed_total") == 0
        proc.stderr.close()
        c = h.Client(lip, lport, source=net.ip(10))
        c.wait_endswith(b"220 x\r\n")
        c.close()
        h.wait_until(lambda: metric(scrape(admin), "mailedge_log_lines_failed_total") >= 1,
                     what="the lost session line counted")
        assert proc.poll() is None, "a lost log line must not stop mailedge"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=h.DEADLINE) == 0
        be.close()
