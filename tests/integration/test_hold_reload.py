"""Reload and the held queue (issue 14): a reload that removes a backend
gives every client it holds the goodbye at once, however many reloads moved
them before, and the reload line counts them as dropped, not moved."""

import pytest

import harness as h
from test_admin import metric
from test_reload import Conf, scrape

NHELD = 10


def held_body(down, lip, lport):
    return (h.block("backend", "mail", ["server mx1 %s" % down.addr,
                                        "check tcp interval 100ms rise 1 fall 1",
                                        "queue-timeout 120s"])
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))


def other_body(other, lip, lport):
    return (h.backend_block("other", [("mx2", other.addr)])
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "other"))


def held_figure(me, field):
    """The last reload's count of held clients (<field>) for the whole host:
    with several workers each logs its own reload line (with `worker`) and
    counts the clients it holds, so the figure is the sum over the lines of
    that reload, one per worker (Conf.reload waits for all of them)."""
    lines = me.events("reload", result="success")[-me.nworkers():]
    assert len({ln.get("worker") for ln in lines}) == len(lines), lines
    return sum(int(ln.get(field, "0")) for ln in lines)


def depth(conf, backend="mail"):
    return metric(scrape(conf.admin), "mailedge_queue_depth", backend=backend)


@pytest.mark.parametrize("earlier", [0, 1, 2])
def test_reload_removing_backend_says_goodbye_to_every_held(rig, earlier):
    down = rig.refusing(3)
    other = rig.backend(6, greeting=b"220 other\r\n")
    lip = rig.ip(1)
    lport = h.free_port(lip)
    conf = Conf(rig, rig.endpoint(5))
    me = conf.start(held_body(down, lip, lport))
    held = [rig.client(lip, lport, source=rig.ip(20 + i), name="h%d" % i) for i in range(NHELD)]
    h.wait_until(lambda: depth(conf) == NHELD, what="%d clients held" % NHELD, info=me.describe)
    for n in range(earlier):
        # The same backend again: the held clients move to the new generation.
        conf.reload()
        assert held_figure(me, "held_moved") == NHELD, me.events("reload")
        h.wait_until(lambda: depth(conf) == NHELD, what="%d clients held again" % NHELD,
                     info=me.describe)
    conf.write(other_body(other, lip, lport))
    conf.reload()
    assert held_figure(me, "held_moved") == 0, me.events("reload")
    assert held_figure(me, "held_dropped") == NHELD, me.events("reload")
    for c in held:
        assert c.wait_end() == "eof", c.name
        assert c.snapshot().startswith(b"421 4.3.2 "), (c.name, c.snapshot())
    me.wait_session(NHELD)
    assert len(me.sessions()) == NHELD, me.sessions()
    for s in me.sessions():
        h.assert_session(s, reason="shutdown", backend="mail")
        assert s["error"] == "backend removed by a reload", s
    # New clients take the new route.
    c = rig.client(lip, lport, source=rig.ip(40))
    c.wait_endswith(b"220 other\r\n")
    c.close()
