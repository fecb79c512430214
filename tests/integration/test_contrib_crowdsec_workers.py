"""contrib/crowdsec reads the log of one process and of several workers
(issue 19): with `workers N` (N > 1) every worker's line says `worker=`
right after `event=`, a `ban` line comes from the worker whose session
started the ban, and the workers append to one file. The real agent
(crowdsec.py) turns every local ban into a `mailedge/local-ban` decision,
logfmt and JSON, with `workers 1` (no `worker` field) and `workers 2`
(bans made by both workers, in one file).

Clients: .78 is polite (the clock that shows the agent reads the file),
.100 and up each pre-greet once (`ban 1h after 1`).
"""

import pytest

from test_contrib_crowdsec import Edge, crowdsec, start_edge, wait_decision  # noqa: F401 (crowdsec: the fixture)

ABUSERS = range(100, 120)  # bounded: stop once every worker has made a ban


@pytest.mark.parametrize("log_format", ["", " format json"], ids=["logfmt", "json"])
@pytest.mark.parametrize("workers", [1, 2])
def test_local_bans_of_every_worker_become_decisions(rig, crowdsec, workers, log_format):
    s, log = start_edge(rig, crowdsec, ["pregreet reject", "ban 1h after 1"],
                        log_format=log_format, global_extra=["workers %d" % workers])
    e = Edge(rig, s)
    crowdsec.wait_reading(log, lambda: e.polite(78))
    banned, by = [], set()
    for host in ABUSERS:
        e.pregreet(host)
        ev = s.me.wait_log("ban", key=rig.ip(host), reason="pregreet")[0]
        banned.append(rig.ip(host))
        by.add(ev.get("worker"))
        if len(by) == workers:
            break
    # One process writes no worker field; two workers both made bans.
    assert by == ({None} if workers == 1 else {"0", "1"}), by
    for ip in banned:
        wait_decision(crowdsec, ip, "mailedge/local-ban")
    assert {d["value"] for d in crowdsec.decisions()} == set(banned)
