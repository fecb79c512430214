"""DNS once per host with `workers N` (issue 19): worker 0 resolves the
servers written with host names and publishes each good answer in the
shared region (src/edge/dnsshare.c); the other workers make no query and
take the addresses from it. So the DNS server sees the queries of one
worker; a new answer reaches the sessions of every worker; a failed lookup
keeps the last good answer in every worker.

Which worker accepts a client is the kernel's SO_REUSEPORT hash of the
4-tuple: the tests open clients until both worker PIDs have served one
(ss -p), as test_workers.py does."""

import harness as h
from test_dns_move import dns  # noqa: F401 (the fixture: a DNS server counting lookups by id)
from test_workers import children, owner_of

NAME = "mx1.dns.test"
GREET_A = b"220 one ESMTP\r\n"
GREET_B = b"220 two ESMTP\r\n"


def start(rig, dns, port, n=2):
    lip = rig.ip(1)
    lport = h.free_port(lip)
    body = (h.backend_block("mail", [("srv1", "%s:%d" % (NAME, port))])
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    me = rig.start(body, global_extra=["workers %d" % n, "resolvers %s" % dns.addr])
    h.wait_until(lambda: len(children(me.pid)) == n, what="%d workers" % n, info=me.describe)
    return me, lip, lport


def served_by_every_worker(rig, me, lip, lport, greeting):
    """Clients until each worker's PID has given one <greeting>; a client
    given another (a worker not caught up yet) just closes."""
    owners = set()
    k = [0]

    def one():
        k[0] += 1
        c = rig.client(lip, lport, source=rig.ip(10 + k[0] % 20), name="c%d" % k[0])
        data = c.wait(lambda d: d.startswith((GREET_A, GREET_B)) or c.ended, None, "greeting")
        if data.startswith(greeting):
            owners.add(owner_of(lport, c))
        c.close()
        return owners >= set(children(me.pid))
    h.wait_until(one, what="every worker serving %r" % greeting,
                 info=lambda: "%s %s" % (owners, me.describe()))
    return owners


def test_workers_make_the_queries_of_one(rig, dns):
    """A long TTL: one lookup of A and one of AAAA for the whole host, then
    both workers serve the address (a second worker resolving would double
    them)."""
    b = rig.backend(2, greeting=GREET_A)
    dns.set(NAME, [b.ip], ttl=300)
    me, lip, lport = start(rig, dns, b.port)
    ev = me.wait_log("resolve", name=NAME)
    assert [e["worker"] for e in ev] == ["0"]
    served_by_every_worker(rig, me, lip, lport, GREET_A)
    assert dns.rounds() == 2, dns.ids
    # The followers log no resolve line: the resolve lines are worker 0's.
    assert [e["worker"] for e in me.events("resolve")] == ["0"]


def test_new_answer_reaches_every_worker(rig, dns):
    a = rig.backend(2, greeting=GREET_A)
    b = rig.backend(3, port=a.port, greeting=GREET_B)
    dns.set(NAME, [a.ip], ttl=1)
    me, lip, lport = start(rig, dns, a.port)
    me.wait_log("resolve", addrs=a.ip)
    served_by_every_worker(rig, me, lip, lport, GREET_A)
    dns.set(NAME, [b.ip], ttl=1)
    me.wait_log("resolve", addrs=b.ip)
    owners = served_by_every_worker(rig, me, lip, lport, GREET_B)
    assert owners == set(children(me.pid))
    # (Session lines are written as each session ends.)
    h.wait_until(lambda: {s["worker"] for s in me.events("session", backend_addr=h.fmt_addr(
        b.ip, a.port))} == {"0", "1"}, what="session lines of both workers", info=me.describe)
    # Queries at TTL pace from worker 0 only: the other worker asks nothing.
    assert {e["worker"] for e in me.events("resolve")} == {"0"}


def test_failed_lookup_keeps_the_last_answer_in_every_worker(rig, dns):
    a = rig.backend(2, greeting=GREET_A)
    dns.set(NAME, [a.ip], ttl=1)
    me, lip, lport = start(rig, dns, a.port)
    me.wait_log("resolve", addrs=a.ip)
    dns.set_mode("servfail")
    ev = me.wait_log("resolve_failed", name=NAME)[0]
    assert ev["kept"] == a.ip and ev["worker"] == "0"
    served_by_every_worker(rig, me, lip, lport, GREET_A)
    assert len(me.events("resolve_failed")) == 1
