"""One engine, several edges (issue 20): a real CrowdSec agent reads edge
A's log file with contrib/crowdsec's parser and scenarios only, and edge
B, a second mailedge polling the same Local API with its own bouncer key,
refuses the client that pre-greeted on A, before any backend connection,
while it serves another client. A polls the LAPI too and refuses the
client as well once the decision exists.

Clients come from hosts of the test's /24: .77 pre-greets, .78 is polite.
"""

import harness as h
from test_contrib_crowdsec import Edge, crowdsec, wait_decision  # noqa: F401 (crowdsec: the fixture)
from test_crowdsec import DENIED, key_file


def bouncer_config(crowdsec, tmp, name):
    """The global lines of an edge polling the test's LAPI every second
    with a key of its own (a 0600 file)."""
    key = key_file(tmp, name + ".key", crowdsec.add_bouncer(name))
    return ["crowdsec %s" % crowdsec.url, "crowdsec-key-file %s" % key,
            "crowdsec-interval 1s"]


def refused(rig, s, host) -> bool:
    """Whether a client from host is refused with the ban's 554 (True) or
    passed on to the backend (False: a new backend connection, whether the
    backend greets or not); either way the client closes."""
    n = s.backend.accepted()
    c = rig.client(s.ip, s.port, source=rig.ip(host))
    h.wait_until(lambda: c.snapshot().startswith(DENIED) or c.ended
                 or s.backend.accepted() > n, what="refusal or backend connection")
    data = c.snapshot()
    c.close()
    if data.startswith(DENIED):
        return True
    assert s.backend.accepted() > n, data
    return False


def test_pregreet_on_edge_a_is_refused_on_edge_b(rig, crowdsec):
    log = str(rig.tmp / "edge-a.log")
    crowdsec.acquire([log], "mailedge")
    crowdsec.start()
    # A: its backend greets only when the test says so; its log is the agent's.
    a = rig.simple(greeting=None, send_proxy="v2", log=log, listener_extra=["pregreet reject"],
                   global_extra=bouncer_config(crowdsec, rig.tmp, "edge-a"))
    # B: its own listener (host 5) and backend (host 12, greeting at accept).
    b = rig.simple(send_proxy=None, listen_ip=rig.ip(5), backend_ip=12,
                   global_extra=bouncer_config(crowdsec, rig.tmp, "edge-b"))
    for s in (a, b):
        s.me.wait_log("ban_sync", state="up")
    assert not refused(rig, b, 77)

    ea = Edge(rig, a)
    crowdsec.wait_reading(log, lambda: ea.polite(78))
    # Three pre-greets overflow mailedge/pregreet (capacity 2).
    for _ in range(3):
        ea.pregreet(77)
    a.me.wait_session(count=3, reason="pregreet")
    wait_decision(crowdsec, rig.ip(77), "mailedge/pregreet")

    h.wait_until(lambda: refused(rig, b, 77), what="%s refused on edge B" % rig.ip(77),
                 info=b.me.describe)
    n = b.backend.accepted()
    assert refused(rig, b, 77)
    assert b.backend.accepted() == n
    line = [x for x in b.me.wait_log("session", reason="banned")
            if x["client"].startswith(rig.ip(77) + ":")][0]
    h.assert_session(line, reason="banned", ban_origin="crowdsec", backend="-")
    assert not refused(rig, b, 78)

    # A enforces the decision its own log produced (no pregreet needed now).
    h.wait_until(lambda: refused(rig, a, 77), what="%s refused on edge A" % rig.ip(77),
                 info=a.me.describe)
    assert a.me.sessions(reason="banned", ban_origin="crowdsec")
