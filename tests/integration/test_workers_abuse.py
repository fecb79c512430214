"""Abuse control one per host with `workers 2` (issue 19): a ban by hand
(admin endpoint, worker 0) and an automatic one refuse in every worker,
`limit per-ip` counts a client's sessions over both workers and `limit rate`
is one bucket per host, /bans lists a ban a follower worker started, and a
worker killed while holding counted sessions leaves no ghost counts behind.

The kernel spreads connections over the workers by a hash of the 4-tuple, so
each test keeps opening connections (bounded) until the session or ban lines
(their `worker` field) show that both workers took part, and asserts on every
attempt along the way.
"""

import json
import os
import signal

import harness as h
from test_abuse import http, refused
from test_workers import children, owner_of

GREET = b"220 test ESMTP\r\n"
BOTH = {"0", "1"}
TRIES = 80          # connections per "until both workers were seen" loop


def start(rig, listener_extra, admin=None):
    extra = ["workers 2"]
    if admin is not None:
        extra.append("admin %s" % h.fmt_addr(*admin))
    s = rig.simple(send_proxy=None, listener_extra=listener_extra, global_extra=extra)
    h.wait_until(lambda: len(children(s.me.pid)) == 2, what="2 workers", info=s.me.describe)
    s.me.wait_log("worker_ready", count=2)
    return s


def refused_until_both(rig, s, host, reason, prefix):
    """Clients from <host> until both workers refused one with <reason>; every
    one of them must be refused (<prefix> then EOF)."""
    for i in range(TRIES):
        c = rig.client(s.ip, s.port, source=rig.ip(host), name="r%d" % i)
        refused(c, prefix)
        lines = s.me.wait_log("session", count=i + 1, reason=reason)
        c.close()
        if {ln["worker"] for ln in lines} == BOTH:
            return lines
    raise AssertionError("%d refusals, all in one worker\n%s" % (TRIES, s.me.describe()))


def test_ban_by_hand_refused_in_every_worker(rig):
    admin = rig.endpoint(5)
    s = start(rig, [], admin)
    st, body = http(admin, "/bans?addr=%s&listener=front&duration=1h" % rig.ip(10), "POST")
    assert st == 200, body
    s.me.wait_log("ban", key=rig.ip(10))
    refused_until_both(rig, s, 10, "banned", b"554 5.7.1 ")
    bans = s.me.events("ban", key=rig.ip(10))
    assert len(bans) == 1 and bans[0]["worker"] == "0", bans
    assert s.backend.accepted() == 0
    # Lifted through worker 0: both admit again.
    st, body = http(admin, "/bans?addr=%s" % rig.ip(10), "DELETE")
    assert st == 200, body
    for i in range(TRIES):
        c = rig.client(s.ip, s.port, source=rig.ip(10))
        c.wait_endswith(GREET)
        c.close()
        lines = s.me.wait_log("session", count=i + 1, reason="client_closed")
        if {ln["worker"] for ln in lines} == BOTH:
            break
    else:
        raise AssertionError("admitted clients all in one worker")
    assert len(s.me.wait_log("ban_end", key=rig.ip(10))) == 1


def test_automatic_ban_in_one_worker_refuses_in_the_other(rig):
    """A ban after limit violations, started by whichever worker saw the
    second one, refuses in both; it is logged once, and /bans (worker 0)
    lists it also when a follower started it."""
    admin = rig.endpoint(5)
    s = start(rig, ["limit per-ip 1", "ban 1h after 2 within 1h"], admin)
    follower = None
    for host in range(10, 40):
        holder = rig.client(s.ip, s.port, source=rig.ip(host), name="holder%d" % host)
        holder.wait_endswith(GREET)
        for _ in range(2):
            refused(rig.client(s.ip, s.port, source=rig.ip(host)), b"421 4.7.0 ")
        ban = s.me.wait_log("ban", key=rig.ip(host))
        assert len(ban) == 1 and ban[0]["reason"] == "limit_per_ip", ban
        refused_until_both(rig, s, host, "banned", b"554 5.7.1 ")
        # The holder's session is untouched.
        holder.send(b"NOOP\r\n")
        if ban[0]["worker"] == "1":
            follower = rig.ip(host)
            break
    assert follower is not None, "no ban started in worker 1 in 30 tries"
    assert len(s.me.events("ban")) == host - 10 + 1  # one line per ban, not per worker
    bans = json.loads(http(admin, "/bans?listener=front")[1])["bans"]
    assert follower in [b["key"] for b in bans], bans
    listed = [b for b in bans if b["key"] == follower][0]
    assert listed["reason"] == "limit_per_ip", listed
    # Lifted by hand through worker 0, the follower's ban ends everywhere.
    st, body = http(admin, "/bans?addr=%s" % follower, "DELETE")
    assert st == 200, body
    assert len(s.me.wait_log("ban_end", key=follower)) == 1
    refused(rig.client(s.ip, s.port, source=follower), b"421 4.7.0 ")  # the holder's session


def open_spread(rig, s, host, n):
    """n greeted clients from <host> held in both workers (reopening one when
    all landed in the same worker)."""
    cs = []
    for i in range(TRIES):
        while len(cs) < n:
            c = rig.client(s.ip, s.port, source=rig.ip(host), name="k%d.%d" % (i, len(cs)))
            c.wait_endswith(GREET)
            cs.append(c)
        owners = {owner_of(s.port, c) for c in cs}
        if len(owners) == 2:
            return cs
        gone = len(s.me.events("session", reason="client_closed"))
        cs.pop().close()
        s.me.wait_log("session", count=gone + 1, reason="client_closed")
    raise AssertionError("%d clients never spread over both workers" % n)


def test_per_ip_counts_sessions_of_both_workers(rig):
    s = start(rig, ["limit per-ip 4"])
    cs = open_spread(rig, s, 10, 4)
    refused_until_both(rig, s, 10, "limit_per_ip", b"421 4.7.0 ")
    # One ends, in either worker: exactly one more fits, wherever it lands.
    gone = len(s.me.events("session", reason="client_closed"))  # open_spread may have closed one
    cs[0].close()
    s.me.wait_log("session", count=gone + 1, reason="client_closed")
    more = rig.client(s.ip, s.port, source=rig.ip(10))
    more.wait_endswith(GREET)
    n = len(s.me.events("session", reason="limit_per_ip"))
    refused(rig.client(s.ip, s.port, source=rig.ip(10)), b"421 4.7.0 ")
    s.me.wait_log("session", count=n + 1, reason="limit_per_ip")
    # Another client is not affected.
    rig.client(s.ip, s.port, source=rig.ip(11)).wait_endswith(GREET)


def test_rate_is_one_bucket_per_host(rig):
    s = start(rig, ["limit rate 6/h"])
    admitted = []
    for i in range(6):
        c = rig.client(s.ip, s.port, source=rig.ip(10))
        c.wait_endswith(GREET)
        c.close()
        admitted = s.me.wait_log("session", count=i + 1, reason="client_closed")
    refused_until_both(rig, s, 10, "limit_rate", b"421 4.7.0 ")
    assert s.backend.accepted() == 6
    assert len(s.me.events("session", reason="client_closed")) == 6, admitted


def test_killed_worker_leaves_no_ghost_sessions(rig):
    """limit per-ip 4, four sessions over both workers; SIGKILL the worker
    holding some: once it is restarted, the client opens as many again as
    died with it, and not one more."""
    s = start(rig, ["limit per-ip 4"])
    cs = open_spread(rig, s, 10, 4)
    owners = {c: owner_of(s.port, c) for c in cs}
    victim = owners[cs[0]]
    dead = [c for c in cs if owners[c] == victim]
    os.kill(victim, signal.SIGKILL)
    s.me.wait_log("worker_restart")
    h.wait_until(lambda: len(children(s.me.pid)) == 2 and victim not in children(s.me.pid),
                 what="the worker restarted", info=s.me.describe)
    restarted = s.me.wait_log("worker_restart")[0]["worker"]
    h.wait_until(lambda: len([ln for ln in s.me.events("worker_ready")
                              if ln.get("worker") == restarted]) == 2,
                 what="the restarted worker ready", info=s.me.describe)
    for c in dead:
        c.wait_end()
    again = []
    for i in range(len(dead)):
        c = rig.client(s.ip, s.port, source=rig.ip(10), name="again%d" % i)
        c.wait_endswith(GREET)
        again.append(c)
    refused(rig.client(s.ip, s.port, source=rig.ip(10)), b"421 4.7.0 ")
    # The survivor's sessions still count and still relay.
    for c in cs:
        if c not in dead:
            c.send(b"NOOP\r\n")
