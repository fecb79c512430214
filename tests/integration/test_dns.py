"""Servers written with DNS names (server NAME HOST[:PORT]): resolved with
c-ares against a small DNS responder on loopback (dnsserver.py), re-resolved
by TTL (1s here, the documented minimum), the last good answer kept while
the resolver fails, and a name that does not resolve yet does not stop
start-up."""

import pytest

import harness as h
import proxycodec as pp
from dnsserver import DnsServer

NAME = "mx1.dns.test"


@pytest.fixture
def dns(rig):
    d = DnsServer(rig.ip(53))
    yield d
    d.close()


def _start(rig, dns, port, protocol="smtp", backend_extra=()):
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", [("srv1", "%s:%d" % (NAME, port))], send_proxy="v2",
                            extra=backend_extra)
            + h.listener_block("front", h.fmt_addr(lip, lport), protocol, "mail"))
    me = rig.start(body, global_extra=["resolvers %s" % dns.addr])
    return me, lip, lport


def _served(rig, me, backend, lip, lport, n, name):
    """A client gets <backend>'s greeting, and <backend> the PROXY header."""
    c = rig.client(lip, lport, name=name)
    c.wait_endswith(b"220 test\r\n")
    conn = backend.wait_conn(n)
    assert pp.decode(conn.snapshot()).src == c.local
    return c


def test_name_resolves_and_is_served(rig, dns):
    b = rig.backend(2, greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    dns.set(NAME, [b.ip], ttl=30)
    me, lip, lport = _start(rig, dns, b.port)
    ev = me.wait_log("resolve", server="srv1", name=NAME)[0]
    assert ev["addrs"] == b.ip and ev["backend"] == "mail" and ev["ttl"] == "30"
    c = _served(rig, me, b, lip, lport, 1, "c1")
    c.close()
    h.assert_session(me.wait_session(), server="srv1", backend="mail", reason="client_closed")


def test_answer_change_moves_new_sessions(rig, dns):
    b1 = rig.backend(2, greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    b2 = rig.backend(3, port=b1.port, greeting=b"220 test\r\n",
                     greet_when=h.Backend.after_proxy_header)
    dns.set(NAME, [b1.ip], ttl=1)
    me, lip, lport = _start(rig, dns, b1.port)
    me.wait_log("resolve", addrs=b1.ip)
    c1 = _served(rig, me, b1, lip, lport, 1, "c1")
    dns.set(NAME, [b2.ip], ttl=1)
    me.wait_log("resolve", addrs=b2.ip)
    c2 = _served(rig, me, b2, lip, lport, 1, "c2")
    assert b1.accepted() == 1
    # The established session is untouched: it still relays both ways, to
    # the old address.
    c1.send(b"NOOP\r\n")
    b1.conns[0].wait_contains(b"NOOP\r\n")
    b1.conns[0].send(b"250 2.0.0 still here\r\n")
    c1.wait_endswith(b"250 2.0.0 still here\r\n")
    c2.close()
    s2 = me.wait_session()
    h.assert_session(s2, server="srv1", backend_addr=h.fmt_addr(b2.ip, b1.port),
                     reason="client_closed")
    c1.close()
    s1 = me.wait_session(2)
    h.assert_session(s1, server="srv1", backend_addr=h.fmt_addr(b1.ip, b1.port),
                     reason="client_closed", bytes_in=len(b"NOOP\r\n"))


@pytest.mark.parametrize("failure", ["servfail", "stopped"])
def test_resolver_failure_keeps_last_answer(rig, dns, failure):
    b = rig.backend(2, greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    dns.set(NAME, [b.ip], ttl=1)
    me, lip, lport = _start(rig, dns, b.port)
    me.wait_log("resolve", addrs=b.ip)
    if failure == "servfail":
        dns.set_mode("servfail")
    else:
        dns.close()
    ev = me.wait_log("resolve_failed", name=NAME)[0]
    assert ev["kept"] == b.ip
    c = _served(rig, me, b, lip, lport, 1, "c1")
    c.close()
    # Logged once per change, not on every retry.
    me.wait_session()
    assert len(me.events("resolve_failed")) == 1


@pytest.mark.parametrize("mode", ["nxdomain", "noanswer"])
def test_name_unresolved_at_start(rig, dns, mode):
    b = rig.backend(2, greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    if mode == "noanswer":
        dns.set_mode("noanswer")
    me, lip, lport = _start(rig, dns, b.port)  # waits for event=ready
    me.wait_log("resolve_failed", name=NAME, kept="-")
    c = rig.client(lip, lport, name="early")
    c.wait_end()
    assert c.snapshot().startswith(b"421 4.3.2")
    c.close()
    h.assert_session(me.wait_session(), reason="connect_refused", backend="mail")
    dns.set_mode("ok")
    dns.set(NAME, [b.ip], ttl=1)
    me.wait_log("resolve", addrs=b.ip)
    c2 = _served(rig, me, b, lip, lport, 1, "late")
    c2.close()
    assert b.accepted() == 1


def test_held_client_served_when_name_appears(rig, dns):
    b = rig.backend(2, greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    me, lip, lport = _start(rig, dns, b.port, backend_extra=[
        "check tcp interval 200ms rise 1 fall 1", "queue-timeout 60s"])
    me.wait_log("resolve_failed", name=NAME)
    c = rig.client(lip, lport, name="held")
    dns.set(NAME, [b.ip], ttl=1)
    c.wait_endswith(b"220 test\r\n")
    # The health check connects too (a LOCAL header): find the session's
    # connection by its header's source.
    def session_conn():
        for p in list(b.conns):
            data = p.snapshot()
            if h.Backend.after_proxy_header(data) and pp.decode(data).src == c.local:
                return p
        return None
    h.wait_until(session_conn, what="the held session's connection with its PROXY header",
                 info=lambda: repr([p.snapshot() for p in b.conns]) + repr(c.local))
    c.close()


def test_ipv6_answer(rig, dns):
    if not h._have_ipv6():
        pytest.skip("no IPv6 loopback")
    b = rig.backend("::1", greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    dns.set(NAME, ["::1"], ttl=30)
    me, lip, lport = _start(rig, dns, b.port)
    me.wait_log("resolve", addrs="::1")
    c = _served(rig, me, b, lip, lport, 1, "c6")
    c.close()
    h.assert_session(me.wait_session(), server="srv1", reason="client_closed")


def test_next_address_of_the_name_on_refusal(rig, dns):
    """The first address refuses (nothing listens there): the session goes
    on to the name's next address, not to the next server."""
    b = rig.backend(2, greeting=b"220 test\r\n", greet_when=h.Backend.after_proxy_header)
    dns.set(NAME, [rig.ip(3), b.ip], ttl=30)
    me, lip, lport = _start(rig, dns, b.port)
    me.wait_log("resolve", addrs="%s,%s" % (rig.ip(3), b.ip))
    c = _served(rig, me, b, lip, lport, 1, "c1")
    c.close()
    h.assert_session(me.wait_session(), server="srv1", reason="client_closed")
