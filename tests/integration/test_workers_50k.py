"""Issue 19's target: 50,000 concurrent idle sessions held by one mailedge
with several workers (each under this machine's 20,000-descriptor limit per
process: 6 workers of about 8,300 sessions, 2 descriptors each), every one
completing its greeting round trip; prints RSS and kernel memory per
session. Slow and heavy (200,000 sockets on loopback): run on demand only,

  MAILEDGE_SLOW=1 make integration T=50k

Clients come from 4 fdswarm.py helpers (12,500 each, one 127.x source
each), served by 3 fdswarm.py SMTP servers (round-robin, under 20,000
each, and under the ephemeral ports of one source/destination pair)."""

import os
import time

import pytest

import harness as h
from test_fd_exhaustion import Swarm, total
from test_workers import children

SESSIONS = 50000
WORKERS = 6
HELPERS = 4
GREETING = "220 swarm ESMTP\r\n"

pytestmark = pytest.mark.skipif(os.environ.get("MAILEDGE_SLOW") != "1",
                                reason="50,000 sessions: MAILEDGE_SLOW=1 only")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def kernel_kib():
    """Slab plus TCP socket buffers (pages), host-wide."""
    slab = 0
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("Slab:"):
                slab = int(ln.split()[1])
    tcp_pages = 0
    with open("/proc/net/sockstat") as f:
        for ln in f:
            if ln.startswith("TCP:"):
                w = ln.split()
                tcp_pages = int(w[w.index("mem") + 1])
    return slab + tcp_pages * os.sysconf("SC_PAGE_SIZE") // 1024


def test_fifty_thousand_idle_sessions(rig):
    servers = []
    swarms = []
    try:
        addrs = []
        for i in range(3):
            ip = rig.ip(2 + i)
            port = h.free_port(ip)
            servers.append(Swarm("server", ip, port, GREETING))
            addrs.append(("srv%d" % i, h.fmt_addr(ip, port)))
        lip = rig.ip(1)
        lport = h.free_port(lip)
        body = (h.backend_block("mail", addrs)
                + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
        # The servers are Python: at this ramp their backlog overflows and
        # mailedge's connects wait for SYN retries; give them the time.
        me = rig.start(body, grace="60s",
                       global_extra=["workers %d" % WORKERS, "timeout connect 60s"])
        h.wait_until(lambda: len(children(me.pid)) == WORKERS, what="workers",
                     info=me.describe)
        k0 = kernel_kib()
        rss0 = sum(rss_kib(p) for p in [me.pid] + children(me.pid))
        t0 = time.monotonic()
        per = SESSIONS // HELPERS
        for i in range(HELPERS):
            swarms.append(Swarm("clients", lip, lport, rig.ip(10 + i), per, GREETING))
        bad = ("refused", "reset", "eof", "other")
        h.wait_until(lambda: total(swarms, "served") == SESSIONS
                     or any(total(swarms, k) for k in bad),
                     timeout=600, what="50,000 greetings",
                     info=lambda: repr([s.counters() for s in swarms]))
        took = time.monotonic() - t0
        counts = [s.counters() for s in swarms]
        assert sum(c["served"] for c in counts) == SESSIONS, "\n".join(map(repr, counts))
        pids = children(me.pid)
        rss = sum(rss_kib(p) for p in [me.pid] + pids)
        k1 = kernel_kib()
        print("\n50k: %d sessions in %.1fs over %d workers; mailedge RSS %.0f MiB "
              "(%.2f KiB/session over the idle start); host kernel memory (slab + TCP) "
              "%.2f KiB/session (all four sockets of a session: client, mailedge x2, server)"
              % (SESSIONS, took, len(pids), rss / 1024.0, (rss - rss0) / SESSIONS,
                 (k1 - k0) / SESSIONS))
        fds = [len(os.listdir("/proc/%d/fd" % p)) for p in pids]
        print("50k: descriptors per worker %s (limit 20,000)" % fds)
        assert all(n < 20000 for n in fds), fds
    finally:
        for s in swarms:
            s.stop()
        for s in servers:
            s.stop()
