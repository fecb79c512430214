"""No reload while draining (issue 21): a SIGHUP during the drain, or one
that arrives together with the SIGTERM, must not reopen a listener: new
clients are refused until the exit."""

import os
import signal

import pytest

import harness as h
from test_admin import http, metric
from test_reload import scrape
from test_reload_globals import Globals

GREETING = b"220 test ESMTP\r\n"


@pytest.mark.parametrize("order", ["hup_after_drain", "hup_with_term"])
def test_sighup_while_draining_does_not_reload(rig, order):
    b = rig.backend(2, greeting=GREETING)
    lip, lport = rig.endpoint(1)
    nip, nport = rig.endpoint(6)

    def body(binds):
        return (h.backend_block("mail", [("srv1", b.addr)])
                + h.listener_block("front", binds, "smtp", "mail"))

    conf = Globals(rig, body(h.fmt_addr(lip, lport)))
    me = conf.start(grace="60s")
    # An open session keeps the drain going.
    c = rig.client(lip, lport)
    c.wait_endswith(GREETING)
    # The file a reload would read: the old address and a new one.
    conf.body = body([h.fmt_addr(lip, lport), h.fmt_addr(nip, nport)])
    with open(conf.path, "w") as f:
        f.write(conf.text(grace="60s"))
    if order == "hup_after_drain":
        me.signal(signal.SIGTERM)
        me.wait_log("drain")
        me.signal(signal.SIGHUP)
        h.wait_until(lambda: [ln for ln in me.events("warning")
                              if "SIGHUP while draining" in ln.get("msg", "")],
                     what="the SIGHUP to be refused", info=me.describe)
    else:
        # Both pending at once: the SIGHUP (lower number) is read first and
        # queues a reload; the drain that follows in the same batch wins.
        os.kill(me.pid, signal.SIGSTOP)
        try:
            os.kill(me.pid, signal.SIGHUP)
            os.kill(me.pid, signal.SIGTERM)
        finally:
            os.kill(me.pid, signal.SIGCONT)
        me.wait_log("drain")
    # An admin request is served by a later turn of the loop than the one
    # that ran (or skipped) the queued reload.
    assert metric(scrape(conf.admin), "mailedge_reloads_total", result="success") == 0
    assert http(conf.admin, "/readyz")[0] == 503
    assert not me.events("reload_start"), me.describe()
    assert h.connect_refused(nip, nport, source=rig.ip(11))
    assert h.connect_refused(lip, lport, source=rig.ip(11))
    c.close()
    assert me.wait_exit() == 0
