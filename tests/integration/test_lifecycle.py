"""Idle timeout, and draining on SIGTERM / SIGINT."""

import signal
import time

import pytest

import harness as h


def test_idle_timeout(rig, splice):
    s = rig.simple(send_proxy="v2", splice=splice, listener_extra=["timeout idle 1s"])
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    conn = s.backend.wait_conn()
    c.wait_end()          # mailedge closes the silent session
    conn.wait_end()       # and the backend side too
    assert c.snapshot() == b"220 test ESMTP\r\n"
    c.close()
    line = s.me.wait_session()
    h.assert_session(line, reason="idle_timeout", bytes_in=0, bytes_out=16)
    # A lower bound only: the timeout must not fire early.
    assert int(line["duration_ms"]) >= 900, line


@pytest.mark.parametrize("direction", ["up", "down"])
def test_traffic_keeps_session_alive(rig, direction):
    """The idle timer restarts with traffic in either direction: 14 messages
    0.1s apart span more than the 1s idle timeout (10x margin per gap)."""
    s = rig.simple(protocol="tcp", send_proxy="v2", greeting=None,
                   listener_extra=["timeout idle 1s"])
    c = rig.client(s.ip, s.port)
    conn = s.backend.wait_conn()
    hlen = h.wait_header(conn).length
    want = b""
    for i in range(14):
        time.sleep(0.1)   # pacing
        msg = b"ping %d\r\n" % i
        want += msg
        if direction == "down":
            conn.send(msg)
            c.wait(lambda d: d == want, what="message %d" % i)
        else:
            c.send(msg)
            conn.wait(lambda d: d[hlen:] == want, what="message %d" % i)
    assert not c.ended and s.me.sessions() == [], "session cut while traffic flowed"
    c.close()
    h.assert_session(s.me.wait_session(), reason="client_closed")


def test_idle_timeout_applies_to_half_closed_session(rig):
    s = rig.simple(send_proxy="v2", listener_extra=["timeout idle 1s"], close_on_eof=False)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.shutdown_write()
    s.backend.wait_conn().wait_eof()
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="idle_timeout")


def test_global_idle_timeout(rig):
    s = rig.simple(send_proxy=None, global_extra=["timeout idle 1s"])
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="idle_timeout")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_drain_keeps_established_sessions(rig, splice, sig):
    s = rig.simple(send_proxy="v2", splice=splice, grace="30s")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    conn = s.backend.wait_conn()

    s.me.signal(sig)
    s.me.wait_drained()
    # New connections are refused once the listener is closed.
    h.wait_until(lambda: h.connect_refused(s.ip, s.port, source=rig.ip(11)),
                 what="the listener to close after %s" % sig.name, info=s.me.describe)
    # The established session still works both ways.
    c.send(b"EHLO still.here\r\n")
    conn.wait_endswith(b"EHLO still.here\r\n")
    conn.send(b"250 ok\r\n")
    c.wait_endswith(b"250 ok\r\n")
    assert s.me.running, "mailedge exited while a session was open"
    # The session ends; mailedge exits with status 0.
    c.send(b"QUIT\r\n")
    conn.wait_endswith(b"QUIT\r\n")
    conn.send(b"221 bye\r\n")
    conn.close()
    c.wait_eof()
    c.close()
    assert s.me.wait_exit() == 0
    line = s.me.sessions(peer=h.fmt_addr(*c.local))
    assert len(line) == 1, "expected one session line for the client: %r" % s.me.sessions()
    h.assert_session(line[0], reason="backend_closed")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_grace_expiry_cuts_sessions(rig, sig):
    s = rig.simple(send_proxy="v2", grace="1s")
    clients = [rig.client(s.ip, s.port, source=rig.ip(20 + i), name="c%d" % i)
               for i in range(3)]
    for c in clients:
        c.wait_endswith(b"220 test ESMTP\r\n")
    s.backend.wait_conn(3)
    s.me.signal(sig)
    assert s.me.wait_exit() == 0
    for c in clients:
        c.wait_end()
    for conn in s.backend.conns:
        conn.wait_end()
    lines = s.me.sessions()
    assert len(lines) == 3
    for ln in lines:
        h.assert_session(ln, reason="shutdown")


def test_sigterm_without_sessions_exits_at_once(rig):
    """No sessions: exit 0 without waiting for the grace period (30s here;
    the deadline below is far shorter than that)."""
    s = rig.simple(grace="30s")
    s.me.signal(signal.SIGTERM)
    assert s.me.wait_exit(h.DEADLINE) == 0


def test_half_open_session_survives_drain(rig):
    """During the drain a half-closed session still delivers the answer."""
    s = rig.simple(send_proxy="v1", grace="30s", close_on_eof=False)
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    conn = s.backend.wait_conn()
    c.send(b"QUIT\r\n")
    c.shutdown_write()
    conn.wait_eof()
    s.me.signal(signal.SIGTERM)
    s.me.wait_drained()
    h.wait_until(lambda: h.connect_refused(s.ip, s.port, source=rig.ip(11)),
                 what="the listener to close")
    conn.send(b"221 bye\r\n")
    c.wait_endswith(b"221 bye\r\n")
    conn.close()
    c.wait_eof()
    c.close()
    assert s.me.wait_exit() == 0
    h.assert_session(s.me.wait_session(), reason="client_closed")


def test_sighup_keeps_running_and_sessions(rig):
    """SIGHUP (reload) never drops an established session nor the listener."""
    s = rig.simple(send_proxy="v2")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    conn = s.backend.wait_conn()
    s.me.signal(signal.SIGHUP)
    line = s.me.wait_log("reload")[0]
    assert line["result"] == "success" and line["generation"] == "2", line
    c.send(b"NOOP\r\n")
    conn.wait_endswith(b"NOOP\r\n")
    conn.send(b"250 ok\r\n")
    c.wait_endswith(b"250 ok\r\n")
    c2 = rig.client(s.ip, s.port, source=rig.ip(11), name="c2")
    c2.wait_endswith(b"220 test ESMTP\r\n")
    assert s.me.running
    c.close()
    c2.close()
    s.me.wait_log("session", count=2)


def test_sigusr1_reopens_log_file(rig, tmp_path):
    path = tmp_path / "edge.log"
    s = rig.simple(send_proxy=None, log=str(path))
    c = rig.client(s.ip, s.port, name="before")
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()
    s.me.wait_session()
    rotated = tmp_path / "edge.log.1"
    path.rename(rotated)
    s.me.signal(signal.SIGUSR1)
    h.wait_until(path.exists, what="%s to be reopened after SIGUSR1" % path, info=s.me.describe)
    c = rig.client(s.ip, s.port, source=rig.ip(11), name="after")
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()

    def new_line():
        for ln in path.read_text().splitlines():
            d = h.parse_log_line(ln)
            if d and d.get("event") == "session":
                return d
        return None
    line = h.wait_until(new_line, what="the second session line in the new file")
    h.assert_session(line, client=h.fmt_addr(*c.local))
    old = [h.parse_log_line(ln) for ln in rotated.read_text().splitlines()]
    assert sum(1 for d in old if d and d.get("event") == "session") == 1
