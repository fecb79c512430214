"""contrib/crowdsec with the real engine (issue 20, the writing side): a
CrowdSec agent (Debian's crowdsec, crowdsec.py) reads the log file a real
mailedge writes, with contrib's parser and scenarios only (no hub
whitelist), and turns repeated pre-greet, repeated limit refusals and a
local ban into a ban decision for the real client address, and none for
a polite client or for the relay in front. Also the harness's by-hand
path (LAPI alone, bouncer key, cscli decisions) as a bouncer sees it.

Clients come from hosts of the test's /24: .77 abuses, .78 is polite, .10
is a relay sending PROXY headers.
"""

import json
import os
import urllib.request

import pytest

import crowdsec as cs_mod
import harness as h
import proxycodec as pp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTRIB = os.path.join(ROOT, "contrib", "crowdsec")
PARSER = os.path.join(CONTRIB, "parsers", "s01-parse", "mailedge-logs.yaml")
SCENARIOS = [os.path.join(CONTRIB, "scenarios", f)
             for f in ("mailedge-pregreet.yaml", "mailedge-limit.yaml", "mailedge-ban.yaml")]
GREETING = b"220 test ESMTP\r\n"

@pytest.fixture
def crowdsec(rig):
    missing = cs_mod.available()
    if missing:
        pytest.fail(missing, pytrace=False)
    c = cs_mod.CrowdSec(rig.tmp / "crowdsec", rig.ip(6))
    c.install("parsers/s01-parse", PARSER)
    for s in SCENARIOS:
        c.install("scenarios", s)
    yield c
    c.stop()


def start_edge(rig, crowdsec, listener_extra, log_format="", accept_proxy=None,
               global_extra=()):
    """A mailedge whose backend greets only when the test says so, logging
    to a file the agent reads; returns (Simple, log path)."""
    log = str(rig.tmp / "mailedge.log")
    s = rig.simple(greeting=None, send_proxy="v2", log=log + log_format,
                   accept_proxy=accept_proxy, listener_extra=listener_extra,
                   global_extra=global_extra)
    crowdsec.acquire([log], "mailedge")
    crowdsec.start()
    return s, log


class Edge:
    def __init__(self, rig, s):
        self.rig, self.s = rig, s
        self.conns = 0

    def connect(self, host, real=None):
        """A client from host; with real, through the relay .10 with a PROXY
        header naming the real client."""
        c = self.rig.client(self.s.ip, self.s.port,
                            source=self.rig.ip(10 if real else host))
        if real:
            c.send(pp.encode_v2(self.rig.ip(host), 4000, self.s.ip, self.s.port))
        return c

    def backend_conn(self):
        self.conns += 1
        conn = self.s.backend.wait_conn(self.conns)
        h.wait_header(conn)
        return conn

    def polite(self, host, real=None):
        """Waits for the greeting before it speaks: no pregreet."""
        c = self.connect(host, real)
        self.backend_conn().send(GREETING)
        c.wait_endswith(GREETING)
        c.send(b"QUIT\r\n")
        c.close()

    def pregreet(self, host, real=None):
        """Speaks before the greeting; `pregreet reject` answers 554."""
        c = self.connect(host, real)
        self.backend_conn()
        c.send(b"EHLO early\r\n")
        data = c.wait_eof()
        assert data.startswith(b"554 5.7.1 "), data
        c.close()


def wait_decision(crowdsec, ip, scenario):
    def found():
        return [d for d in crowdsec.decisions(ip=ip) if d["scenario"] == scenario]
    got = h.wait_until(found, what="a decision for %s from %s" % (ip, scenario),
                       info=crowdsec.log)
    assert [(d["type"], d["scope"], d["value"], d["origin"]) for d in got] == \
        [("ban", "Ip", ip, "crowdsec")], got
    return got


def _pregreet_case(rig, crowdsec, log_format):
    s, log = start_edge(rig, crowdsec, ["pregreet reject"], log_format=log_format)
    e = Edge(rig, s)
    crowdsec.wait_reading(log, lambda: e.polite(78))
    # Two pre-greets fill the bucket (capacity 2); the third overflows it.
    for _ in range(2):
        e.pregreet(77)
    s.me.wait_session(count=2, reason="pregreet")
    e.polite(78)
    e.pregreet(77)
    s.me.wait_session(count=3, reason="pregreet")
    wait_decision(crowdsec, rig.ip(77), "mailedge/pregreet")
    # The polite client's lines came before the third pre-greet: read too.
    assert crowdsec.decisions(ip=rig.ip(78)) == []
    assert {d["value"] for d in crowdsec.decisions()} == {rig.ip(77)}


def test_repeated_pregreet_becomes_a_ban_logfmt(rig, crowdsec):
    _pregreet_case(rig, crowdsec, "")


def test_repeated_pregreet_becomes_a_ban_json(rig, crowdsec):
    _pregreet_case(rig, crowdsec, " format json")


def test_repeated_rate_limit_refusals_ban_the_real_client(rig, crowdsec):
    """Behind a relay (.10) sending PROXY headers: the decision is for the
    client the header names, never for the relay. (.78, the clock that
    shows the agent reads the file, is on the allow list.)"""
    s, log = start_edge(rig, crowdsec, ["limit rate 2/h", "allow %s" % rig.ip(78)],
                        accept_proxy="v2 from %s" % rig.net.cidr)
    e = Edge(rig, s)
    crowdsec.wait_reading(log, lambda: e.polite(78, real=True))
    for _ in range(2):
        e.polite(77, real=True)
    # Six refusals overflow the bucket (capacity 5).
    for _ in range(6):
        data = e.connect(77, real=True).wait_eof()
        assert data.startswith(b"421 4.7.0 "), data
    s.me.wait_session(count=6, reason="limit_rate")
    wait_decision(crowdsec, rig.ip(77), "mailedge/limit-refusals")
    lines = s.me.sessions(reason="limit_rate")
    assert {ln["peer"].rsplit(":", 1)[0] for ln in lines} == {rig.ip(10)}, lines
    assert {d["value"] for d in crowdsec.decisions()} == {rig.ip(77)}


def test_local_ban_is_shared(rig, crowdsec):
    """A ban one edge made by itself (`ban 1h after 1` on a pre-greet) is a
    decision at once: every edge that enforces CrowdSec's decisions refuses
    the client too."""
    s, log = start_edge(rig, crowdsec, ["pregreet reject", "ban 1h after 1"])
    e = Edge(rig, s)
    crowdsec.wait_reading(log, lambda: e.polite(78))
    e.pregreet(77)
    s.me.wait_log("ban", key=rig.ip(77), reason="pregreet")
    wait_decision(crowdsec, rig.ip(77), "mailedge/local-ban")
    assert crowdsec.decisions(ip=rig.ip(78)) == []


def test_harness_decisions_by_hand(rig, crowdsec):
    """The harness the bouncer tests build on: the LAPI alone (-no-cs), a
    bouncer key, decisions added and deleted with cscli, as a bouncer sees
    them in the decision stream."""
    crowdsec.start(agent=False)
    key = crowdsec.add_bouncer("edge-a")
    assert len(key) >= 32 and key.strip() == key, key

    def stream(startup):
        req = urllib.request.Request(crowdsec.url + "v1/decisions/stream?startup=%s" % startup,
                                     headers={"X-Api-Key": key})
        with urllib.request.urlopen(req, timeout=h.DEADLINE) as r:
            return json.loads(r.read())

    assert stream("true") == {"new": None, "deleted": None}
    crowdsec.add_decision(ip=rig.ip(66))
    crowdsec.add_decision(range_="127.0.9.0/24", duration="5m")
    got = {(d["scope"], d["value"], d["origin"]) for d in stream("false")["new"]}
    assert got == {("Ip", rig.ip(66), "cscli"), ("Range", "127.0.9.0/24", "cscli")}, got
    assert {d["value"] for d in crowdsec.decisions()} == {rig.ip(66), "127.0.9.0/24"}
    crowdsec.delete_decision(ip=rig.ip(66))
    h.wait_until(lambda: [d for d in (stream("false")["deleted"] or [])
                          if d["value"] == rig.ip(66)], what="the deleted decision in a delta")
    assert {d["value"] for d in crowdsec.decisions()} == {"127.0.9.0/24"}
