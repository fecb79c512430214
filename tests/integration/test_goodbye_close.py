"""A client that already sent bytes gets the goodbye and a FIN, not a reset
(issue 14): closing a socket with unread input sends RST, and the client
may then lose the goodbye. mailedge half-closes after the goodbye, reads
away what the client sends (bounded in bytes and time), then closes."""

import signal

import pytest

import harness as h
import tlspeers as t
from test_hold import Down, GOODBYE, start, wait_depth

EHLO = {"smtp": b"EHLO client.example\r\n", "imap": b"a1 CAPABILITY\r\n", "pop3": b"CAPA\r\n"}


def assert_goodbye_then_fin(c, prefix):
    how = c.wait_end()
    assert how == "eof", "%s: %s after %r (%r)" % (c.name, how, c.snapshot(), c.error)
    assert c.snapshot().startswith(prefix), c.snapshot()


@pytest.mark.parametrize("proto", ["smtp", "imap", "pop3"])
def test_held_client_that_talked_gets_goodbye_and_fin(rig, proto):
    down = Down(rig)
    me, (lip, lport), admin = start(rig, down.addr, proto=proto, queue=["queue-timeout 500ms"],
                                    check="%s interval 100ms rise 1 fall 1" % proto)
    c = rig.client(lip, lport)
    c.send(EHLO[proto])
    assert_goodbye_then_fin(c, GOODBYE[proto])
    c.close()
    h.assert_session(me.wait_session(), reason="queue_timeout")


def test_held_client_that_talked_gets_goodbye_on_drain(rig):
    """SIGTERM: the goodbye and a FIN, and mailedge still exits 0 once the
    client closed."""
    down = Down(rig)
    me, (lip, lport), admin = start(rig, down.addr, grace="30s")
    c = rig.client(lip, lport)
    c.send(EHLO["smtp"])
    wait_depth(admin, 1, me)
    me.signal(signal.SIGTERM)
    assert_goodbye_then_fin(c, GOODBYE["smtp"])
    c.close()
    assert me.wait_exit() == 0
    h.assert_session(me.sessions()[0], reason="shutdown")


def test_client_that_keeps_talking_is_closed_in_the_end(rig):
    """A client that never stops sending after the goodbye: mailedge stops
    reading after a bounded amount or time and closes (a reset is fine
    then); the session is not counted any more and mailedge drains."""
    down = Down(rig)
    me, (lip, lport), admin = start(rig, down.addr, queue=["queue-timeout 300ms"], grace="30s")
    c = rig.client(lip, lport)
    c.send(EHLO["smtp"])
    sender = c.send_async(b"x" * (4 << 20), chunk=4096)
    assert c.wait_end() in ("eof", "reset")
    me.wait_session()
    # Its send ends too: all of it, or (most likely) a reset from the close.
    assert sender.done.wait(h.DEADLINE)
    me.signal(signal.SIGTERM)
    assert me.wait_exit() == 0


def proxy_listener(rig, version, extra=()):
    b = rig.backend(2, greeting=b"220 x\r\n")
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", [("srv1", b.addr)])
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail",
                               accept_proxy="%s from 127.0.0.0/8" % version, extra=extra))
    return rig.start(body), b, rig.client(lip, lport)


def test_proxy_invalid_gets_fin(rig):
    me, b, c = proxy_listener(rig, "v2")
    c.send(b"EHLO not-a-proxy-header.example\r\n")
    assert_goodbye_then_fin(c, b"")
    h.assert_session(me.wait_session(), reason="proxy_invalid")
    assert b.accepted() == 0


def test_proxy_timeout_with_part_of_a_header_gets_fin(rig):
    me, _, c = proxy_listener(rig, "v1", ["timeout proxy 300ms"])
    c.send(b"PROXY TCP4 127.0.0.9 ")
    assert_goodbye_then_fin(c, b"")
    h.assert_session(me.wait_session(), reason="proxy_timeout")


def test_hello_timeout_with_part_of_a_hello_gets_fin(rig):
    rec = rig.backend(2, greeting=None)
    ip, port = rig.endpoint(1)
    body = (h.backend_block("rec", [("r1", rec.addr)])
            + h.block("listener", "front", ["bind %s" % h.fmt_addr(ip, port), "protocol tls",
                                            "route sni rec.example -> rec", "sni-required",
                                            "timeout hello 300ms"]))
    me = rig.start(body)
    wire = t.records(t.client_hello(b"rec.example"))
    c = rig.client(ip, port)
    c.send(wire[:50])
    c.send(wire[50:120])
    assert_goodbye_then_fin(c, b"")
    me.wait_session(reason="hello_timeout")
