"""Health checks as operators met them in the field (issue 15): the default
check against a slow greeter (postscreen's greet pause), a check timeout
shorter than the greet pause named in the log, a server that starts down
or stays down logged at a bounded rate, checks that send no PROXY header
to a health port without PROXY, and TLS checks (tls, smtps, imaps, pop3s)
against a Python ssl server that records the handshake, the server name,
the exchange and how the check closed (close_notify, then FIN)."""

import signal
import socket
import ssl
import threading

import pytest

import harness as h
import tlspeers
from fakemail import GOOD
from test_admin import metric
from test_health import fakes, samples, start  # noqa: F401 (fakes: the fixture)


# --------------------------------------------------------------------------
# the default timeout and the greet pause


def test_default_check_passes_a_slow_greeter(rig, fakes):
    """`check smtp` with its defaults against a greeter that holds its final
    220 line 3 s (postscreen holds it 6 s): the old default timeout (the 2 s
    interval) never let it pass."""
    f = fakes(rig.ip(2), mode="slow", pause=3.0)
    me, _, _ = start(rig, [("mx1", f.addr)], "smtp rise 1")
    up = me.wait_log("health", server="mx1", state="up", timeout=4 * h.DEADLINE)[0]
    assert up["reason"] == "passed"
    # The check logs "up" on the 220; its QUIT and close come after.
    h.wait_until(lambda: f.done(), what="the check's conversation to end")
    r = f.done()[0]
    assert r["early"] == b"" and r["command"] == b"QUIT\r\n" and r["end"] == "fin", r
    assert not me.events("health_down")


@pytest.mark.parametrize("mode,says", [("slow", "only a partial greeting (220-fake greet pause)"),
                                       ("silent", "no greeting within the check timeout")])
def test_timeout_below_greet_pause_is_named(rig, fakes, mode, says):
    """A check timeout shorter than the server's greet pause: the failure
    (a warning: the server starts down) names postscreen_greet_wait."""
    f = fakes(rig.ip(2), mode=mode, pause=3.0)
    me, _, _ = start(rig, [("mx1", f.addr)], "smtp interval 200ms timeout 500ms")
    line = me.wait_log("health_down", server="mx1")[0]
    assert line["level"] == "warn" and line["reason"] == "read_timeout", line
    assert says in line["detail"] and "postscreen_greet_wait" in line["detail"], line
    assert "(500ms)" in line["detail"], line


# --------------------------------------------------------------------------
# a server that starts down, or stays down


def test_server_down_from_start_is_logged_then_repeated(rig):
    """No server ever answers: the first failed check is logged with its
    reason at once, then again (10 s later, then at a doubling gap), not on
    every check."""
    r = rig.refusing(3)
    me, _, _ = start(rig, [("mx1", r.addr)], "smtp interval 100ms")
    first = me.wait_log("health_down", server="mx1")[0]
    assert first["level"] == "warn" and first["reason"] == "l4_refused", first
    assert first["check"] == "smtp" and first["failed"] == "1", first
    assert "refused" in first["detail"].lower(), first
    second = me.wait_log("health_down", server="mx1", count=2, timeout=3 * h.DEADLINE)[1]
    assert int(second["down_ms"]) >= 10000 and int(second["failed"]) > 10, second
    # About 100 failed checks by now, two lines.
    assert len(me.events("health_down", server="mx1")) == 2
    assert not me.events("health", server="mx1")


def test_reload_does_not_repeat_the_first_line(rig):
    """A reload carries the health over: a server already logged down is
    not logged again as if it had just started."""
    r = rig.refusing(3)
    me, _, admin = start(rig, [("mx1", r.addr)], "smtp interval 100ms")
    me.wait_log("health_down", server="mx1")

    def failures():
        return metric(samples(admin), "mailedge_server_check_failures_total", backend="mail",
                      server="mx1", reason="l4_refused") or 0
    me.signal(signal.SIGHUP)
    me.wait_log("reload", result="success")
    after = failures()
    h.wait_until(lambda: failures() >= after + 3, what="three more failed checks")
    lines = me.events("health_down", server="mx1")
    assert len(lines) == 1 or int(lines[1]["down_ms"]) >= 10000, lines


def test_server_that_goes_down_is_repeated(rig, fakes):
    """Up, then down: the transition line (info), then a repeat line while
    it stays down; none once it is up again."""
    f = fakes(rig.ip(2))
    me, _, _ = start(rig, [("mx1", f.addr)], "smtp interval 100ms rise 1 fall 1")
    me.wait_log("health", server="mx1", state="up")
    assert not me.events("health_down")
    f.mode = "421"
    down = me.wait_log("health", server="mx1", state="down")[0]
    assert down["level"] == "info" and down["reason"] == "4xx"
    again = me.wait_log("health_down", server="mx1", timeout=3 * h.DEADLINE)[0]
    assert again["reason"] == "4xx" and int(again["down_ms"]) >= 10000, again
    f.mode = "good"
    me.wait_log("health", server="mx1", state="up", count=2)


# --------------------------------------------------------------------------
# send-proxy of the check


@pytest.mark.parametrize("choice", ["none", "v1"])
def test_check_send_proxy_to_a_health_port(rig, fakes, choice):
    """The field's fix for PROXY receivers: sessions to a PROXY port, checks
    to a plain health port. `check smtp send-proxy none` sends no header
    there (the session still gets its v2 header); `v1` overrides the
    backend's v2."""
    sess = fakes(rig.ip(2), proxy=True)
    chk = fakes(rig.ip(2), proxy=(choice != "none"))
    me, (lip, lport), _ = start(rig, [("mx1", sess.addr, "check-port", str(chk.port))],
                                "smtp interval 100ms rise 1 send-proxy " + choice,
                                send_proxy="v2")
    me.wait_log("health", server="mx1", state="up")
    h.wait_until(lambda: len(chk.done()) >= 2, what="two finished checks")
    for r in chk.done()[:2]:
        assert r["early"] == b"" and r["command"] == b"QUIT\r\n" and r["end"] == "fin", r
        if choice == "none":
            assert "header" not in r, r
        else:
            assert r["header"].version == 1 and r["header"].command == "PROXY", r
    assert not sess.records()
    c = rig.client(lip, lport)
    c.wait_endswith(GOOD["smtp"][0][0])
    rec = h.wait_until(lambda: sess.records() and sess.records()[0].get("header"),
                       what="the session's header")
    assert rec.version == 2 and rec.src == c.local, rec


def test_check_send_proxy_default_follows_the_backend(rig, fakes):
    """Without the option the check sends what sessions send (v2)."""
    f = fakes(rig.ip(2), proxy=True)
    me, _, _ = start(rig, [("mx1", f.addr)], "smtp interval 100ms rise 1", send_proxy="v2")
    me.wait_log("health", server="mx1", state="up")
    assert f.done()[0]["header"].version == 2


# --------------------------------------------------------------------------
# TLS checks


GREETINGS = {
    "smtps": (b"220 tls fake ESMTP\r\n", b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    "imaps": (b"* OK tls fake ready\r\n", b"a LOGOUT\r\n", b"* BYE bye\r\na OK done\r\n"),
    "pop3s": (b"+OK tls fake\r\n", b"QUIT\r\n", b"+OK bye\r\n"),
    "tls": (None, None, None),
}


class TlsMail:
    """An implicit-TLS server (Python's ssl, a throwaway self-signed
    certificate) that records per connection: the server name asked for,
    whether the handshake completed, the command received inside TLS,
    whether the client sent close_notify (`unwrap` completed) and how the
    TCP connection ended after it. mode: "good", or "bye" (a refusing
    greeting)."""

    def __init__(self, ip, kind, workdir, mode="good"):
        self.kind, self.mode = kind, mode
        cert, key, _ = tlspeers.make_cert(workdir, "tls-check.test")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._sni
        self.recs, self.lock = [], threading.Lock()
        self.local = threading.local()
        self.lsock = socket.socket(h.family(ip), socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.05)
        self.ip, self.port = self.lsock.getsockname()[:2]
        self.stop = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def addr(self):
        return h.fmt_addr(self.ip, self.port)

    def done(self):
        with self.lock:
            return [dict(r) for r in self.recs if "end" in r]

    def _sni(self, sslobj, name, ctx):
        self.local.rec["sni"] = name

    def _accept_loop(self):
        while not self.stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, raw):
        rec = {"sni": None}
        self.local.rec = rec
        raw.settimeout(h.DEADLINE)
        try:
            try:
                tls = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as e:
                rec["end"] = "handshake failed: %s" % e
                return
            rec["handshake"] = True
            greeting, cmd, reply = GREETINGS[self.kind]
            if greeting is not None:
                if self.mode == "bye":
                    greeting = {"smtps": b"554 5.3.2 no\r\n", "imaps": b"* BYE no\r\n",
                                "pop3s": b"-ERR no\r\n"}[self.kind]
                tls.sendall(greeting)
                buf = b""
                while b"\n" not in buf:
                    d = tls.recv(4096)
                    if not d:
                        break
                    buf += d
                rec["command"] = buf
                if buf == cmd:
                    tls.sendall(reply)
            try:
                raw = tls.unwrap()      # our close_notify, and waits for the client's
                rec["close_notify"] = True
            except (ssl.SSLError, OSError) as e:
                rec["close_notify"] = "no: %s" % e
            try:
                rest = raw.recv(4096)
                rec["end"] = "fin" if rest == b"" else "data %r" % rest
            except ConnectionResetError:
                rec["end"] = "rst"
            except socket.timeout:
                rec["end"] = "timeout"
        finally:
            with self.lock:
                self.recs.append(rec)
            raw.close()

    def close(self):
        self.stop.set()
        self.lsock.close()


@pytest.fixture
def tlsmail(tmp_path):
    made = []

    def make(*a, **kw):
        t = TlsMail(*a, workdir=tmp_path, **kw)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


@pytest.mark.parametrize("kind", ["smtps", "imaps", "pop3s", "tls"])
def test_tls_check_handshake_exchange_close_notify_fin(rig, tlsmail, kind):
    """A self-signed certificate passes (not verified); the greeting and
    QUIT/LOGOUT run inside TLS; the check ends with close_notify, then FIN;
    `sni` puts the name in the ClientHello."""
    t = tlsmail(rig.ip(2), kind)
    me, _, _ = start(rig, [("mx1", t.addr)],
                     "%s interval 100ms rise 2 sni Mail.Example.Test" % kind)
    up = me.wait_log("health", server="mx1", state="up")[0]
    assert up["check"] == kind
    h.wait_until(lambda: len(t.done()) >= 2, what="two finished checks")
    for r in t.done()[:2]:
        assert r.get("handshake") and r["sni"] == "mail.example.test", r
        if kind != "tls":
            assert r["command"] == GREETINGS[kind][1], r
        assert r["close_notify"] is True and r["end"] == "fin", r


def test_tls_check_without_sni_and_refusing_greeting(rig, tlsmail):
    """No sni option: no server name. A refusing greeting inside TLS fails
    the check (bad_greeting for imaps) and still closes politely."""
    t = tlsmail(rig.ip(2), "imaps", mode="bye")
    me, _, _ = start(rig, [("mx1", t.addr)], "imaps interval 100ms")
    line = me.wait_log("health_down", server="mx1")[0]
    assert line["reason"] == "bad_greeting" and line["check"] == "imaps", line
    h.wait_until(lambda: t.done(), what="a finished check")
    r = t.done()[0]
    assert r["sni"] is None and r["close_notify"] is True and r["end"] == "fin", r


def test_tls_check_against_plain_server_fails(rig, fakes):
    """An smtps check against a plain SMTP server: the handshake fails
    (tls_failed or closed_early), the server is never up."""
    f = fakes(rig.ip(2))
    me, _, _ = start(rig, [("mx1", f.addr)], "smtps interval 100ms timeout 2s")
    line = me.wait_log("health_down", server="mx1")[0]
    assert line["reason"] in ("tls_failed", "closed_early", "read_timeout"), line
    assert "TLS" in line["detail"], line
    assert not me.events("health", server="mx1", state="up")


def test_tcp_check_on_tls_port_is_what_servers_complain_about(rig, tlsmail):
    """The contrast: `check tcp` on an implicit-TLS port never completes a
    handshake, which real servers log as a TLS error on every check."""
    t = tlsmail(rig.ip(2), "smtps")
    me, _, _ = start(rig, [("mx1", t.addr)], "tcp interval 100ms rise 1")
    me.wait_log("health", server="mx1", state="up")
    h.wait_until(lambda: t.done(), what="a finished check")
    assert t.done()[0]["end"].startswith("handshake failed"), t.done()[0]
