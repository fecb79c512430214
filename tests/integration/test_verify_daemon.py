"""`verify on-start` (issue 18): the daemon runs `mailedge verify` in a
child process after start and after each reload, logs one event=verify
line per result, keeps the last run for /status, and never waits for it:
clients are served while a run hangs on a receiver that never answers.
Receivers: the fake Stalwart of the interop suite (tests/interop/fakestalwart.py)
and a port whose connections nobody accepts. Loopback only."""

import json
import os
import signal
import socket
import sys

import harness as h
from test_admin import GREETING, admin_endpoint, http, one_session, start

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import fakestalwart  # noqa: E402


def status_verify(admin):
    code, _, body = http(admin, "/status")
    assert code == 200, body
    return json.loads(body).get("verify")


def test_verify_on_start_logs_status_and_reload(rig):
    good = fakestalwart.FakeStalwart(["127.0.0.0/8"], host=rig.ip(2))
    bad = fakestalwart.FakeStalwart(["192.0.2.0/24"], host=rig.ip(3))
    admin = admin_endpoint(rig)
    try:
        lport = h.free_port(rig.ip(1))
        body = (h.backend_block("mx", [("good", "%s:%d" % (rig.ip(2), good.port)),
                                       ("bad", "%s:%d" % (rig.ip(3), bad.port))],
                                send_proxy="v2")
                + h.listener_block("smtp", h.fmt_addr(rig.ip(1), lport), "smtp", "mx"))
        me = rig.start(body, global_extra=["verify on-start", "admin %s" % h.fmt_addr(*admin)])
        lines = me.wait_log("verify", count=4)
        got = {(ln["server"], ln["family"]): (ln["verdict"], ln["level"]) for ln in lines}
        assert got == {("good", "ipv4"): ("agrees", "info"), ("good", "ipv6"): ("agrees", "info"),
                       ("bad", "ipv4"): ("not-expecting-proxy", "warn"),
                       ("bad", "ipv6"): ("not-expecting-proxy", "warn")}, lines
        bad_line = [ln for ln in lines if ln["server"] == "bad"][0]
        assert bad_line["backend"] == "mx" and bad_line["protocol"] == "smtp"
        assert "500 5.5.1 Invalid command" in bad_line["evidence"] and bad_line["fix"]
        assert "fix" not in [ln for ln in lines if ln["server"] == "good"][0]
        me.wait_log("verify_done", results="4")
        v = status_verify(admin)
        assert v["running"] is False and v["error"] is None and v["finished"] >= v["started"]
        assert sorted((r["server"], r["family"], r["verdict"]) for r in v["results"]) == [
            ("bad", "ipv4", "not-expecting-proxy"), ("bad", "ipv6", "not-expecting-proxy"),
            ("good", "ipv4", "agrees"), ("good", "ipv6", "agrees")], v
        # A reload runs it again.
        me.signal(signal.SIGHUP)
        me.wait_log("verify_start", count=2)
        me.wait_log("verify_done", count=2)
        assert len(me.events("verify")) == 8
        h.wait_until(lambda: len(good.sessions) == 4, what="the good fake's four sessions")
    finally:
        good.stop()
        bad.stop()


def test_verify_off_by_default(rig):
    admin = admin_endpoint(rig)
    s = start(rig, admin)
    one_session(rig, s)
    assert status_verify(admin) is None
    assert s.me.events("verify_start") == []


def test_serves_while_a_run_hangs_and_the_timeout_kills_it(rig):
    # A receiver that never answers: its connections wait in the accept queue.
    mute = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    mute.bind((rig.ip(4), 0))
    mute.listen(16)
    admin = admin_endpoint(rig)
    try:
        port2 = h.free_port(rig.ip(1))
        b = rig.backend(2, greeting=GREETING)
        lport = h.free_port(rig.ip(1))
        body = (h.backend_block("mail", [("srv1", b.addr)], send_proxy="v2")
                + h.backend_block("mute", [("m", "%s:%d" % mute.getsockname())], send_proxy="v2")
                + h.listener_block("front", h.fmt_addr(rig.ip(1), lport), "smtp", "mail")
                + h.listener_block("other", h.fmt_addr(rig.ip(1), port2), "smtp", "mute"))
        me = rig.start(body, global_extra=["verify on-start timeout 60s",
                                           "admin %s" % h.fmt_addr(*admin)])
        me.wait_log("verify_start")
        assert status_verify(admin)["running"] is True
        # The mute receiver keeps the run going (10 s per connection); a
        # client is served meanwhile.
        c = rig.client(rig.ip(1), lport, source=rig.ip(10))
        c.wait_endswith(GREETING)
        c.send(b"QUIT\r\n")
        c.shutdown_write()
        c.wait_eof()
        me.wait_session(listener="front", client=h.fmt_addr(*c.local))
        assert status_verify(admin)["running"] is True
        assert me.events("verify_done") == []
        # A reload during the run kills it and starts another, with a short timeout.
        conf = open(me.conf_path).read().replace("verify on-start timeout 60s",
                                                 "verify on-start timeout 1s")
        open(me.conf_path, "w").write(conf)
        me.signal(signal.SIGHUP)
        me.wait_log("verify_restart")
        me.wait_log("verify_start", count=2)
        done = me.wait_log("verify_done")[0]
        assert done["error"] == "timeout: the run was killed", done
        v = status_verify(admin)
        assert v["running"] is False and v["error"] == "timeout: the run was killed"
    finally:
        mute.close()


def test_workers_run_it_once_in_worker_0(rig):
    good = fakestalwart.FakeStalwart(["127.0.0.0/8"], host=rig.ip(2))
    try:
        lport = h.free_port(rig.ip(1))
        body = (h.backend_block("mx", [("good", "%s:%d" % (rig.ip(2), good.port))],
                                send_proxy="v1")
                + h.listener_block("smtp", h.fmt_addr(rig.ip(1), lport), "smtp", "mx"))
        me = rig.start(body, global_extra=["verify on-start", "workers 2"])
        done = me.wait_log("verify_done", results="2")
        assert [ln["worker"] for ln in done] == ["0"]
        lines = me.events("verify")
        assert sorted((ln["worker"], ln["family"], ln["verdict"]) for ln in lines) == [
            ("0", "ipv4", "agrees"), ("0", "ipv6", "agrees")], lines
        assert [ln["worker"] for ln in me.events("verify_start")] == ["0"]
        h.wait_until(lambda: len(good.sessions) == 2, what="the fake's two sessions")
    finally:
        good.stop()
