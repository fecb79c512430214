"""Service-manager integration: sd_notify READY/STOPPING/WATCHDOG through
$NOTIFY_SOCKET (a datagram socket the test listens on, as systemd does), and
a second SIGTERM that does not wait for the grace period. The notify_sock
fixture is in conftest.py."""
import signal
import time

import harness as h


def _recv_until(sock, want, limit=200):
    """Datagrams received until one contains <want> (bounded in count and time)."""
    got = []
    for _ in range(limit):
        msg = sock.recv(4096).decode()
        got.append(msg)
        if want in msg:
            return got
    raise AssertionError("no %r in %d notifications: %r" % (want, limit, got))


def test_ready_then_stopping(rig, notify_sock):
    s = rig.simple(grace="30s")
    got = _recv_until(notify_sock, "READY=1")
    assert any("STATUS=" in m for m in got), got
    # READY comes after the listeners are bound: a client is served.
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    c.close()
    s.me.wait_session()
    s.me.signal(signal.SIGTERM)
    _recv_until(notify_sock, "STOPPING=1")
    assert s.me.wait_exit() == 0


def test_watchdog_pings(rig, notify_sock, monkeypatch):
    """A 200 ms watchdog: mailedge pings every half of it (100 ms) while its
    loop runs. Checked on the count of pings over a measured window, with
    generous bounds: on average more often than WATCHDOG_USEC (or systemd
    would kill it) and not much more often than half of it (no ping per
    loop turn)."""
    usec = 200000
    monkeypatch.setenv("WATCHDOG_USEC", str(usec))
    rig.simple()
    _recv_until(notify_sock, "READY=1")
    _recv_until(notify_sock, "WATCHDOG=1")
    start, pings = time.monotonic(), 0
    while pings < 20:
        _recv_until(notify_sock, "WATCHDOG=1")
        pings += 1
    mean = (time.monotonic() - start) / pings
    half = usec / 2e6
    assert 0.6 * half < mean < 0.95 * usec / 1e6, \
        "%d pings, one every %.3f s on average; expected about %.3f s" % (pings, mean, half)


def test_no_watchdog_unless_asked(rig, notify_sock):
    s = rig.simple()
    _recv_until(notify_sock, "READY=1")
    s.me.signal(signal.SIGTERM)
    got = _recv_until(notify_sock, "STOPPING=1")
    assert not any("WATCHDOG" in m for m in got), got
    assert s.me.wait_exit() == 0


def test_second_sigterm_cuts_sessions_at_once(rig):
    """With a grace period far longer than the test's deadline, a second
    SIGTERM ends the open session (reason=shutdown) and mailedge exits 0."""
    s = rig.simple(grace="10m")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    s.me.signal(signal.SIGTERM)
    s.me.wait_log("drain")
    assert s.me.running
    s.me.signal(signal.SIGTERM)
    assert s.me.wait_exit() == 0
    c.wait_end()
    h.assert_session(s.me.wait_session(), reason="shutdown")
