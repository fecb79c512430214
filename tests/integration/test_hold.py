"""Holding clients while no server is up (issue 4, second part):
queue-timeout and queue-max. A client that arrives while its backend is
down waits (nothing sent, connection open) and is connected when a server
comes up, PROXY header first; on queue-timeout it gets the protocol's
goodbye; beyond queue-max it gets it at once; a held client that hangs up
leaves the queue; SIGTERM gives held clients the goodbye at once."""

import json

import pytest

import harness as h
from test_admin import http, metric
from fakemail import GOOD, FakeMail
from test_health import samples

GOODBYE = {
    "smtp": b"421 4.3.2 ",
    "imap": b"* BYE ",
    "pop3": b"-ERR ",
}


@pytest.fixture
def mails():
    made = []

    def make(ip, port, proto="smtp", proxy=True):
        m = FakeMail(ip, proto=proto, proxy=proxy, port=port)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close()


class Down:
    """A server address whose port refuses connects until start()."""

    def __init__(self, rig, host=2):
        self.ip = rig.ip(host)
        self.reserve = h.RefusingPort(self.ip)   # bound, not listening: RST
        self.port = self.reserve.port
        self.addr = h.fmt_addr(self.ip, self.port)

    def release(self):
        if self.reserve is not None:
            self.reserve.close()
            self.reserve = None


def start(rig, addr, proto="smtp", queue=("queue-timeout 30s",),
          check="smtp interval 100ms rise 1 fall 1", grace="5s", global_extra=()):
    admin = rig.endpoint(5)
    lines = ["server mx1 %s" % addr, "send-proxy v2", "check %s" % check] + list(queue)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    body = (h.block("backend", "mail", lines)
            + h.listener_block("front", h.fmt_addr(lip, lport), proto, "mail"))
    me = rig.start(body, grace=grace,
                   global_extra=["admin %s" % h.fmt_addr(*admin)] + list(global_extra))
    return me, (lip, lport), admin


def depth(admin):
    return metric(samples(admin), "mailedge_queue_depth", backend="mail")


def wait_depth(admin, n, me):
    h.wait_until(lambda: depth(admin) == n, what="queue depth %d" % n, info=me.describe)


def assert_held(c):
    """Held: the connection is open and not a byte arrived."""
    assert c.snapshot() == b"" and not c.ended, (c.snapshot(), c.ended)


# --------------------------------------------------------------------------


def test_held_until_server_starts(rig, mails):
    """The server refuses at start: the client waits with nothing sent;
    when the server starts and passes a check, the client gets the greeting
    and the server got a PROXY header with the client's address first."""
    down = Down(rig)
    me, (lip, lport), admin = start(rig, down.addr)
    c = rig.client(lip, lport)
    wait_depth(admin, 1, me)
    assert_held(c)
    st = json.loads(http(admin, "/status")[2])["backends"][0]
    assert st["queued"] == 1 and st["servers_up"] == 0, st
    down.release()
    f = mails(down.ip, down.port)
    c.wait_endswith(GOOD["smtp"][0][0])
    assert c.snapshot() == GOOD["smtp"][0][0]
    recs = f.sessions_from(rig.ip(10))
    assert len(recs) == 1, f.records()
    assert recs[0]["header"].src == tuple(c.local), recs[0]
    assert depth(admin) == 0
    c.close()
    line = me.wait_session()
    h.assert_session(line, reason="client_closed", server="mx1", backend="mail")
    assert "held_ms" in line, line
    assert me.events("health", server="mx1", state="up")


@pytest.mark.parametrize("proto", ["smtp", "imap", "pop3"])
def test_queue_timeout_goodbye(rig, proto):
    down = Down(rig)
    me, (lip, lport), admin = start(
        rig, down.addr, proto=proto, queue=["queue-timeout 500ms"],
        check="%s interval 100ms rise 1 fall 1" % proto)
    c = rig.client(lip, lport)
    assert c.wait_end() == "eof"
    assert c.snapshot().startswith(GOODBYE[proto]), c.snapshot()
    assert c.snapshot().endswith(b"\r\n") and c.snapshot().count(b"\n") == 1, c.snapshot()
    line = me.wait_session()
    h.assert_session(line, reason="queue_timeout", server="-")
    assert "no server of backend mail is up" in line["error"], line
    # A lower bound only: the timeout must not fire early.
    assert int(line["held_ms"]) >= 450, line
    s = samples(admin)
    assert metric(s, "mailedge_sessions_total", listener="front", reason="queue_timeout") == 1
    assert metric(s, "mailedge_queue_depth", backend="mail") == 0


def test_queue_max_full(rig):
    down = Down(rig)
    # One process: queue-max bounds each worker's queue (docs/scaling.md).
    me, (lip, lport), admin = start(rig, down.addr, queue=["queue-timeout 30s", "queue-max 1"],
                                    global_extra=["workers 1"])
    c1 = rig.client(lip, lport, name="c1")
    wait_depth(admin, 1, me)
    c2 = rig.client(lip, lport, source=rig.ip(11), name="c2")
    assert c2.wait_end() == "eof"
    assert c2.snapshot().startswith(b"421 4.3.2 "), c2.snapshot()
    line = me.wait_session()
    h.assert_session(line, reason="queue_full", client=h.fmt_addr(*c2.local))
    assert "held_ms" not in line, line
    assert_held(c1)
    assert depth(admin) == 1
    assert metric(samples(admin), "mailedge_sessions_total", listener="front",
                  reason="queue_full") == 1


@pytest.mark.parametrize("how,reason", [("close", "client_closed"), ("abort", "client_reset")])
def test_held_client_hangs_up(rig, how, reason):
    down = Down(rig)
    me, (lip, lport), admin = start(rig, down.addr)
    c = rig.client(lip, lport)
    wait_depth(admin, 1, me)
    assert_held(c)
    getattr(c, how)()
    line = me.wait_session()
    h.assert_session(line, reason=reason, server="-")
    assert "held_ms" in line, line
    assert depth(admin) == 0
    assert json.loads(http(admin, "/status")[2])["backends"][0]["queued"] == 0


def test_backend_restart(rig, mails):
    """Up, served; stopped (health goes down); clients held; started again
    on the same address: the held clients are served."""
    down = Down(rig)
    down.release()
    f = mails(down.ip, down.port)
    me, (lip, lport), admin = start(rig, down.addr)
    me.wait_log("health", server="mx1", state="up")
    c0 = rig.client(lip, lport, name="c0")
    c0.wait_endswith(GOOD["smtp"][0][0])
    c0.close()
    me.wait_session(1, reason="client_closed")
    f.close()
    me.wait_log("health", server="mx1", state="down")
    held = [rig.client(lip, lport, source=rig.ip(20 + i), name="h%d" % i) for i in range(3)]
    wait_depth(admin, 3, me)
    for c in held:
        assert_held(c)
    f2 = mails(down.ip, down.port)
    for c in held:
        c.wait_endswith(GOOD["smtp"][0][0])
    for i, c in enumerate(held):
        recs = f2.sessions_from(rig.ip(20 + i))
        assert len(recs) == 1 and recs[0]["header"].src == tuple(c.local), f2.records()
    assert depth(admin) == 0
    me.wait_log("health", server="mx1", state="up", count=2)


def test_refused_while_still_up_holds(rig, mails):
    """The server restarts between two checks: it refuses the connect while
    its health is still up. The client is held, not given 421, and is served
    after the next passing check."""
    down = Down(rig)
    down.release()
    f = mails(down.ip, down.port)
    me, (lip, lport), admin = start(rig, down.addr, check="tcp interval 500ms rise 1 fall 100")
    me.wait_log("health", server="mx1", state="up")
    f.close()
    # The accept thread may hold the listening socket for one more poll.
    h.wait_until(lambda: h.connect_refused(down.ip, down.port, source=rig.ip(12)),
                 what="the server's port to refuse", info=me.describe)
    c = rig.client(lip, lport)
    wait_depth(admin, 1, me)
    assert_held(c)
    f2 = mails(down.ip, down.port)
    c.wait_endswith(GOOD["smtp"][0][0])
    recs = f2.sessions_from(rig.ip(10))
    assert len(recs) == 1 and recs[0]["header"].src == tuple(c.local), f2.records()
    c.close()
    line = me.wait_session()
    h.assert_session(line, reason="client_closed", server="mx1")
    assert "held_ms" in line, line
    s = samples(admin)
    assert metric(s, "mailedge_server_connect_errors_total", backend="mail", server="mx1",
                  reason="refused") >= 1


def test_drain_goodbye_to_held(rig):
    """SIGTERM: held clients get the goodbye at once (they have not started)
    and mailedge exits 0 without waiting for the grace period."""
    down = Down(rig)
    me, (lip, lport), admin = start(rig, down.addr, grace="30s")
    held = [rig.client(lip, lport, source=rig.ip(20 + i), name="h%d" % i) for i in range(2)]
    wait_depth(admin, 2, me)
    me.signal()
    for c in held:
        assert c.wait_end() == "eof"
        assert c.snapshot().startswith(b"421 4.3.2 "), c.snapshot()
    assert me.wait_exit() == 0
    lines = me.sessions()
    assert [ln["reason"] for ln in lines] == ["shutdown", "shutdown"], lines
