"""A server's name whose address moves under a long TTL (300 s, the
resolver's cap): a connect that fails on every address of the name asks
the resolver again at once (at most once a second per name), so the next
client reaches the new address instead of getting 421s until the TTL runs
out; with a health check, the check's failure does the same. Also: a
resolver failure is logged once, not on every retry."""

import pytest

import harness as h
import proxycodec as pp
from dnsserver import DnsServer

NAME = "mx1.move.test"
GREETING = b"220 test\r\n"


class QueryLog(DnsServer):
    """The DNS server, remembering the id of every question it was asked:
    one resolution of the name is two ids (A and AAAA), whatever c-ares
    resends under the same id."""

    def __init__(self, ip):
        self.ids = set()
        super().__init__(ip)

    def _answer(self, q):
        with self.lock:
            self.ids.add(q[:2])
        return super()._answer(q)

    def rounds(self):
        with self.lock:
            return len(self.ids)


@pytest.fixture
def dns(rig):
    d = QueryLog(rig.ip(53))
    yield d
    d.close()


def _start(rig, dns, port, backend_extra=()):
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", [("srv1", "%s:%d" % (NAME, port))], send_proxy="v2",
                            extra=backend_extra)
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    me = rig.start(body, global_extra=["resolvers %s" % dns.addr])
    return me, lip, lport


def _served(rig, backend, lip, lport, name):
    """A client gets the greeting through <backend>, which sees its PROXY header."""
    c = rig.client(lip, lport, name=name)
    c.wait_endswith(GREETING)

    def conn():
        for p in list(backend.conns):
            data = p.snapshot()
            if h.Backend.after_proxy_header(data) and pp.decode(data).src == c.local:
                return p
        return None
    h.wait_until(conn, what="%s's connection at %s" % (name, backend.addr))
    return c


def _pair(rig):
    old = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
    new = rig.backend(3, port=old.port, greeting=GREETING,
                      greet_when=h.Backend.after_proxy_header)
    return old, new


def test_moved_address_found_after_a_refused_connect(rig, dns):
    """No check: the client that meets the old address refused gets the
    421, the failure asks again at once, and the next client is served at
    the new address, 300 s before the TTL would have run out."""
    old, new = _pair(rig)
    dns.set(NAME, [old.ip], ttl=300)
    me, lip, lport = _start(rig, dns, old.port)
    me.wait_log("resolve", addrs=old.ip, ttl="300")
    _served(rig, old, lip, lport, "before").close()
    me.wait_session()
    # The server moves: the old address refuses, the name has the new one.
    old.close()
    dns.set(NAME, [new.ip], ttl=300)
    c = rig.client(lip, lport, name="at-the-move")
    c.wait_end()
    assert c.snapshot().startswith(b"421 4.3.2")
    h.assert_session(me.wait_session(2), reason="connect_refused")
    me.wait_log("resolve", addrs=new.ip)
    c2 = _served(rig, new, lip, lport, "after")
    c2.close()
    h.assert_session(me.wait_session(3), server="srv1",
                     backend_addr=h.fmt_addr(new.ip, new.port), reason="client_closed")


def test_moved_address_found_by_the_check(rig, dns):
    """With a health check: the failing check asks again at once, the check
    passes at the new address and a new client is served there (held
    meanwhile, queue-timeout)."""
    old, new = _pair(rig)
    dns.set(NAME, [old.ip], ttl=300)
    me, lip, lport = _start(rig, dns, old.port, backend_extra=[
        "check tcp interval 200ms rise 1 fall 1", "queue-timeout 60s"])
    me.wait_log("resolve", addrs=old.ip, ttl="300")
    me.wait_log("health", server="srv1", state="up")
    old.close()
    dns.set(NAME, [new.ip], ttl=300)
    c = _served(rig, new, lip, lport, "after")
    c.close()
    h.assert_session(me.wait_session(), server="srv1",
                     backend_addr=h.fmt_addr(new.ip, new.port), reason="client_closed")
    assert len(me.events("resolve", addrs=new.ip)) == 1


def test_resolve_failed_logged_once_over_retries(rig, dns):
    """docs/logging.md: resolve_failed once per change. The resolver fails
    through several retries (1 s, 2 s, 4 s apart); when it answers again
    (logged as resolve, after every retry's handling), there was still one
    resolve_failed line."""
    b = rig.backend(2, greeting=GREETING, greet_when=h.Backend.after_proxy_header)
    dns.set(NAME, [b.ip], ttl=1)
    me, lip, lport = _start(rig, dns, b.port)
    me.wait_log("resolve", addrs=b.ip)
    dns.set_mode("servfail")
    me.wait_log("resolve_failed", name=NAME)
    first = dns.rounds()
    # Three more resolutions (two ids each) failed after the logged one.
    h.wait_until(lambda: dns.rounds() >= first + 6, timeout=h.DEADLINE + 10,
                 what="three retries of the failing name")
    dns.set_mode("ok")
    me.wait_log("resolve", 2, addrs=b.ip)
    assert len(me.events("resolve_failed")) == 1
