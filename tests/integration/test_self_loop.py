"""A route back to mailedge itself (issue 14): refused by the config check
when the server is an IP literal; at run time (a host name that resolves to
one of our own binds) the session does not connect, gets the goodbye and
ends with reason=backend_loop, instead of one client making about a
thousand sessions to mailedge."""

import pytest

import harness as h
from test_admin import metric
from test_dns import dns  # noqa: F401 - the fixture
from test_health import samples

NAME = "loop.dns.test"


def test_check_refuses_route_to_own_bind(rig):
    lip, lport = rig.endpoint(1)
    text = (h.global_block()
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp",
                               h.fmt_addr(lip, lport)))
    path = rig.write_config(text)
    r = h.run_mailedge(rig.binary, ["-t", "-c", path])
    assert r.returncode == 1, r
    lines = text.splitlines()
    route = 1 + next(i for i, ln in enumerate(lines) if ln.strip().startswith("route"))
    bind = 1 + next(i for i, ln in enumerate(lines) if ln.strip().startswith("bind"))
    a = h.fmt_addr(lip, lport)
    want = ("%s:%d:5: route to %s (server '%s' of backend '%s') loops back to mailedge: bind %s "
            "of listener 'front' at line %d col 10 accepts it" % (path, route, a, a, a, a, bind))
    assert want in r.stderr, r.stderr


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_name_resolving_to_own_bind_ends_at_once(rig, dns, family):  # noqa: F811
    """(A wildcard bind is left to the unit test of addr_reaches_bind: the
    suite binds loopback addresses only.)"""
    if family == "ipv6" and not h.HAVE_IPV6:
        pytest.skip("no IPv6 loopback")
    lip = rig.ip(1) if family == "ipv4" else "::1"
    lport = h.free_port(lip)
    admin = rig.endpoint(5)
    target = lip
    dns.set(NAME, [target], ttl=300)
    listen = h.fmt_addr(lip, lport)
    body = (h.backend_block("mail", [("mx1", "%s:%d" % (NAME, lport))], send_proxy="v2")
            + h.listener_block("front", listen, "smtp", "mail"))
    me = rig.start(body, global_extra=["resolvers %s" % dns.addr,
                                       "admin %s" % h.fmt_addr(*admin)])
    me.wait_log("resolve", server="mx1", addrs=target)
    c = rig.client(lip, lport)
    assert c.wait_end() == "eof"
    assert c.snapshot().startswith(b"421 4.3.2 "), c.snapshot()
    line = me.wait_session()
    h.assert_session(line, reason="backend_loop", server="-", backend="mail")
    assert "mailedge's own listening addresses" in line["error"], line
    warn = me.events("backend_loop")
    assert warn and warn[0]["server"] == "mx1" and warn[0]["addr"] == h.fmt_addr(target, lport)
    c.close()
    # One client, one session: its backend connection never became another.
    s = samples(admin)
    assert metric(s, "mailedge_sessions_total", listener="front", reason="backend_loop") == 1
    assert len(me.sessions()) == 1, me.sessions()
