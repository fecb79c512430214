"""Health checks that never hurt the mail server (issue 4, first part):
scripted fake SMTP/IMAP/POP3 servers that record every byte a check sends
and how it ends (FIN or RST), the PROXY header in one write with the
checker's real addresses, nothing written before the final greeting line,
rise/fall transitions in the log and /metrics, down servers skipped by new
sessions, /readyz and /status."""

import json
import signal

import pytest

import harness as h
from fakemail import GOOD, FakeMail
from test_admin import http, metric, parse_exposition

@pytest.fixture
def fakes():
    made = []

    def make(*a, **kw):
        f = FakeMail(*a, **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def admin_of(rig):
    return rig.endpoint(5)


def start(rig, servers, check, proto="smtp", send_proxy=None, balance=None, grace="5s"):
    """servers: list of (name, address[, extra words]); returns (mailedge, listen addr, admin)."""
    admin = admin_of(rig)
    lines = ["server %s" % " ".join(s) for s in servers]
    if send_proxy:
        lines.append("send-proxy %s" % send_proxy)
    if balance:
        lines.append("balance %s" % balance)
    lines.append("check %s" % check)
    lip = rig.ip(1)
    lport = h.free_port(lip)
    body = (h.block("backend", "mail", lines)
            + h.listener_block("front", h.fmt_addr(lip, lport), proto, "mail"))
    me = rig.start(body, global_extra=["admin %s" % h.fmt_addr(*admin)], grace=grace)
    return me, (lip, lport), admin


def samples(admin):
    status, _, body = http(admin, "/metrics")
    assert status == 200
    return parse_exposition(body)[0]


# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_smtp_check_proxy_header_greeting_quit_fin(rig, fakes, version):
    """A slow multi-line greeting (220-, pause, 220): the check sends the
    whole PROXY header (PROXY command, the checker's real addresses) in one
    write, nothing before the final line, then QUIT, reads 221 and ends
    with a FIN."""
    f = fakes(rig.ip(2), proxy=True, mode="slow")
    me, _, admin = start(rig, [("mx1", f.addr)], "smtp interval 100ms timeout 2s rise 2 fall 2",
                         send_proxy=version)
    up = me.wait_log("health", backend="mail", server="mx1", state="up")[0]
    assert up["reason"] == "passed" and up["check"] == "smtp"
    h.wait_until(lambda: len(f.done()) >= 2, what="two finished checks")
    for r in f.done()[:2]:
        hdr = r["header"]
        assert hdr.version == int(version[1])
        assert hdr.command == "PROXY" and hdr.family == "TCP4", hdr
        # The checker's own addresses: its socket's, as this server sees them.
        assert hdr.src == r["peer"] and hdr.dst == (f.ip, f.port), (hdr, r)
        # One write: the first segment is exactly the header.
        assert r["first_chunk"] == hdr.length, r
        assert r["early"] == b"", r
        assert r["command"] == b"QUIT\r\n", r
        assert r["after"] == b"" and r["end"] == "fin", r
    assert metric(samples(admin), "mailedge_server_up", backend="mail", server="mx1") == 1


@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_imap_pop3_checks(rig, fakes, proto):
    f = fakes(rig.ip(2), proto=proto)
    me, _, _ = start(rig, [("d1", f.addr)], "%s interval 100ms rise 1" % proto, proto=proto)
    me.wait_log("health", server="d1", state="up", check=proto)
    h.wait_until(lambda: f.done(), what="a finished check")
    r = f.done()[0]
    assert r["command"] == GOOD[proto][1] and r["end"] == "fin", r


@pytest.mark.parametrize("proto,mode", [("imap", "bye"), ("pop3", "bye")])
def test_imap_bye_pop3_err_greeting_down(rig, fakes, proto, mode):
    f = fakes(rig.ip(2), proto=proto)
    me, _, admin = start(rig, [("d1", f.addr)], "%s interval 100ms rise 1 fall 1" % proto,
                         proto=proto)
    me.wait_log("health", server="d1", state="up")
    f.mode = mode
    down = me.wait_log("health", server="d1", state="down")[0]
    assert down["reason"] == "bad_greeting", down
    h.wait_until(lambda: f.done(lambda r: r["mode"] == mode), what="a failed check")
    r = f.done(lambda r: r["mode"] == mode)[0]
    assert r["after"] == b"" and r["end"] == "fin", r


@pytest.mark.parametrize("mode,reason", [("421", "4xx"), ("554", "5xx"),
                                         ("garbage", "bad_greeting"),
                                         ("silent", "read_timeout")])
def test_failing_greeting_takes_server_down(rig, fakes, mode, reason):
    """Up after rise passes; fall failures of one kind take it down with
    that reason, logged and counted; the failing checks end with a FIN and
    without a byte written after the bad greeting."""
    f = fakes(rig.ip(2))
    me, _, admin = start(rig, [("mx1", f.addr)],
                         "smtp interval 100ms timeout 500ms rise 2 fall 2")
    me.wait_log("health", server="mx1", state="up")
    assert http(admin, "/readyz")[0] == 200
    f.mode = mode
    down = me.wait_log("health", server="mx1", state="down")[0]
    assert down["reason"] == reason and down["check"] == "smtp", down
    s = samples(admin)
    assert metric(s, "mailedge_server_up", backend="mail", server="mx1") == 0
    assert metric(s, "mailedge_server_check_failures_total", backend="mail", server="mx1",
                  reason=reason) >= 2
    status, _, body = http(admin, "/readyz")
    assert status == 503 and "backend mail: no server is up" in body, body
    srv = json.loads(http(admin, "/status")[2])["backends"][0]["servers"][0]
    assert srv["state"] == "down" and srv["last_check"] == reason, srv
    h.wait_until(lambda: f.done(lambda r: r["mode"] == mode), what="a failed check")
    for r in f.done(lambda r: r["mode"] == mode):
        assert r["after"] == b"" and r["end"] == "fin", r
    # And back: rise passes bring it up again.
    f.mode = "good"
    me.wait_log("health", server="mx1", state="up", count=2)


def test_down_server_skipped_up_server_used(rig, fakes):
    """Sessions go to the server that is up, never to the one that is down;
    while none is up a client gets 421 at once."""
    good = fakes(rig.ip(2), proxy=True)
    bad = fakes(rig.ip(3), proxy=True, mode="554")
    me, (lip, lport), admin = start(
        rig, [("bad", bad.addr), ("good", good.addr)],
        "smtp interval 100ms rise 1 fall 1", send_proxy="v2")
    me.wait_log("health", server="good", state="up")
    client_ip = rig.ip(10)
    for i in range(4):
        c = rig.client(lip, lport)
        c.wait_endswith(GOOD["smtp"][0][0])
        c.close()
        me.wait_session(i + 1)
    sessions = me.sessions()
    assert [s["server"] for s in sessions] == ["good"] * 4, sessions
    assert not [r for r in bad.records() if r.get("header") and r["header"].src_ip == client_ip]
    assert len([r for r in good.records()
                if r.get("header") and r["header"].src_ip == client_ip]) == 4
    s = samples(admin)
    assert metric(s, "mailedge_server_up", backend="mail", server="good") == 1
    assert metric(s, "mailedge_server_up", backend="mail", server="bad") == 0
    # Take the good one down too: the client is told to come back later.
    good.mode = "554"
    me.wait_log("health", server="good", state="down")
    c = rig.client(lip, lport)
    c.wait_end()
    assert c.snapshot().startswith(b"421 "), c.snapshot()
    sess = me.wait_session(5)
    assert sess["server"] == "-" and "no server of backend mail is up" in sess["error"], sess


def test_tcp_check_and_refused_port(rig, fakes):
    f = fakes(rig.ip(2))
    r = rig.refusing(3)
    me, _, admin = start(rig, [("a", f.addr), ("b", r.addr)], "tcp interval 100ms rise 1")
    me.wait_log("health", server="a", state="up", check="tcp")

    def refused():
        v = metric(samples(admin), "mailedge_server_check_failures_total", backend="mail",
                   server="b", reason="l4_refused")
        return v >= 2
    h.wait_until(refused, what="refused checks counted")
    assert not me.events("health", server="b")
    st = json.loads(http(admin, "/status")[2])["backends"][0]
    assert st["check"] == "tcp" and st["servers_up"] == 1
    assert [s["state"] for s in st["servers"]] == ["up", "down"]
    assert st["servers"][1]["last_check"] == "l4_refused"


def test_check_port(rig, fakes):
    """check-port: checks go to another port than sessions."""
    sess = fakes(rig.ip(2))
    chk = fakes(rig.ip(2))
    me, (lip, lport), _ = start(rig, [("mx1", sess.addr, "check-port", str(chk.port))],
                                "smtp interval 100ms rise 1")
    me.wait_log("health", server="mx1", state="up")
    assert chk.records() and not sess.records()
    c = rig.client(lip, lport)
    c.wait_endswith(GOOD["smtp"][0][0])
    assert len(sess.records()) == 1


def test_drain_stops_checks(rig, fakes):
    """SIGTERM with checks running: checks stop at once. An open session
    keeps the process draining for its grace period, and in that time no
    new check reaches the server (every 100 ms one would); the process then
    exits with status 0 once the session ends."""
    f = fakes(rig.ip(2))
    # A grace period far longer than any wait here: the drain lasts until
    # the client leaves.
    me, (lip, lport), _ = start(rig, [("mx1", f.addr)], "smtp interval 100ms rise 1",
                                grace="10m")
    me.wait_log("health", server="mx1", state="up")
    c = rig.client(lip, lport)
    c.wait_endswith(GOOD["smtp"][0][0])
    me.signal(signal.SIGTERM)
    me.wait_log("drain", sessions=1)
    counts = []

    def stopped():
        counts.append(len(f.records()))
        return len(counts) >= 8 and len(set(counts[-8:])) == 1

    h.wait_until(stopped, what="checks to stop during the drain", interval=0.1,
                 info=lambda: "connections at the server, polled every 0.1 s: %r" % counts)
    assert me.running, "mailedge exited before the session ended\n" + me.describe()
    c.close()
    assert me.wait_exit() == 0
