"""CrowdSec with `workers N` (issue 19): worker 0 alone polls the Local API
and the set of remote bans is one per host, in the shared region
(src/edge/bouncer.c). So the LAPI sees one poller (one startup=true, one
pull per interval, one connection, from worker 0); a decision refuses the
client in every worker and its deletion lifts it in every worker; after
SIGKILL of worker 0 the set stays in force (sticky, also while the LAPI
fails) and the restarted worker 0 resumes the sync.

A fake LAPI (crowdsec_lapi.FakeLapi) keeps the decisions: a startup=true
poll gets them all, a startup=false poll the changes since the last poll.
Clients come from 127.0.0.66 (the banned address) with their own source
ports, so the kernel's SO_REUSEPORT hash spreads them over the workers;
session lines say which worker took each."""

import json
import os
import signal
import subprocess
import threading

import crowdsec_lapi as cs
import harness as h
from test_crowdsec import DENIED, GREETING, key_file
from test_workers import children

BANNED = "127.0.0.66"


class Lapi(cs.FakeLapi):
    """Decisions as a LAPI keeps them for one bouncer key."""

    def __init__(self):
        super().__init__()
        self.mu = threading.Lock()
        self.live = {}                 # value -> decision
        self.new, self.gone = [], []   # since the last poll
        self.failing = False
        self.full = 0                  # whole lists answered
        super().set(self._answer)

    def _answer(self, path):
        with self.mu:
            if self.failing:
                return 500, b"down"
            if "startup=true" in path:
                new, gone = list(self.live.values()), []
                self.full += 1
            else:
                new, gone = self.new, self.gone
            self.new, self.gone = [], []
        return 200, json.dumps({"new": new or None, "deleted": gone or None}).encode()

    def add(self, value, id_):
        d = cs.decision(value, id_=id_)
        with self.mu:
            self.live[value] = d
            self.new.append(d)

    def delete(self, value):
        with self.mu:
            self.gone.append(self.live.pop(value))

    def startups(self):
        """Whole lists answered (a failed poll's retry asks for one too)."""
        with self.mu:
            return self.full


def pids_on(port, state="established", side="dport"):
    """The pids of the processes with a socket to (dport) or from (sport) <port>."""
    out = subprocess.run(["ss", "-tnpH", "state", state, "%s = :%d" % (side, port)],
                         capture_output=True, text=True, check=True).stdout
    return {int(x.split(",")[0]) for x in out.split("pid=")[1:]}


def start(rig, lapi, tmp_path, n=2):
    ip = rig.ip(1)
    port = h.free_port(ip)
    admin = (ip, h.free_port(ip))
    b = rig.backend(2, greeting=GREETING)
    body = (h.backend_block("mail", [("srv1", b.addr)])
            + h.listener_block("front", h.fmt_addr(ip, port), "smtp", "mail"))
    g = ["workers %d" % n, "admin %s" % h.fmt_addr(*admin), "crowdsec %s" % lapi.url,
         "crowdsec-key-file %s" % key_file(tmp_path, "k.key", "fakekey0123456789"),
         "crowdsec-interval 1s"]
    me = rig.start(body, global_extra=g)
    h.wait_until(lambda: len(children(me.pid)) == n, what="%d workers" % n, info=me.describe)
    return me, ip, port, admin


def answers_in_every_worker(rig, me, ip, port, refused):
    """Clients from BANNED until each worker has refused (or served) one;
    returns the session lines of those clients."""
    start = len(me.events("session"))
    k = [0]

    def workers():
        lines = [s for s in me.events("session")[start:] if s.get("client", "").startswith(BANNED + ":")]
        return {s["worker"] for s in lines if (s["reason"] == "banned") == refused}

    def one():
        k[0] += 1
        c = rig.client(ip, port, source=BANNED, name="c%d" % k[0])
        c.wait(lambda d: d.startswith((GREETING, DENIED)) or c.ended, None, "greeting or refusal")
        c.close()
        return workers() == {"0", "1"}
    h.wait_until(one, what="every worker %s" % ("refusing" if refused else "serving"),
                 info=me.describe)


def test_one_poller_one_set_for_every_worker(rig, tmp_path):
    lapi = Lapi()
    try:
        me, ip, port, admin = start(rig, lapi, tmp_path)
        me.wait_log("ban_sync", state="up")
        worker0 = pids_on(admin[1], state="listening", side="sport")
        assert len(worker0) == 1 and worker0 <= set(children(me.pid)), worker0
        # Some polls: from worker 0 only, on one kept-alive connection.
        h.wait_until(lambda: lapi.count() >= 4, what="4 polls", info=me.describe)
        h.wait_until(lambda: pids_on(lapi.port) == worker0, what="worker 0's connection alone",
                     info=lambda: "%s %s" % (pids_on(lapi.port), me.describe()))
        assert lapi.startups() == 1
        assert {ln["worker"] for ln in me.events("ban_sync")} == {"0"}

        lapi.add(BANNED, 1)
        answers_in_every_worker(rig, me, ip, port, refused=True)
        lines = [s for s in me.events("session", reason="banned")]
        assert all(s["ban_origin"] == "cscli" for s in lines), lines[:2]
        lapi.delete(BANNED)
        answers_in_every_worker(rig, me, ip, port, refused=False)

        # Worker 0 killed while the LAPI fails: the set stays in force, in the
        # other worker and in the new worker 0, which cannot sync yet.
        lapi.add(BANNED, 2)
        answers_in_every_worker(rig, me, ip, port, refused=True)
        with lapi.mu:
            lapi.failing = True
        n = lapi.count()
        (victim,) = worker0
        os.kill(victim, signal.SIGKILL)
        restart = me.wait_log("worker_restart")[0]
        assert restart["worker"] == "0"
        h.wait_until(lambda: lapi.count() > n, what="a poll of the new worker 0",
                     info=me.describe)
        assert me.wait_log("ban_sync", state="down")[0]["worker"] == "0"
        answers_in_every_worker(rig, me, ip, port, refused=True)
        # The LAPI back: the new worker 0 asks for the whole list, then
        # follows the changes, for every worker.
        with lapi.mu:
            lapi.failing = False
        h.wait_until(lambda: lapi.startups() == 2, what="the whole list asked again",
                     info=me.describe)
        h.wait_until(lambda: pids_on(lapi.port) == {int(restart["pid"])},
                     what="the new worker 0's connection alone",
                     info=lambda: "%s %s" % (pids_on(lapi.port), me.describe()))
        lapi.delete(BANNED)
        answers_in_every_worker(rig, me, ip, port, refused=False)
        assert lapi.startups() == 2
    finally:
        lapi.close()
