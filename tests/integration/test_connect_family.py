"""Happy Eyeballs memory: a name whose AAAA address drops SYNs (a
BlackholePort on ::1, the trick of test_connect.py) costs the first
session the attempt delay; the IPv6 family is then remembered as slow for
the server, so the next sessions try IPv4 first and do not wait. The
abandoned attempt is counted (mailedge_server_connect_attempts_abandoned_total)
and the demotion logged once (event=family_slow)."""

import harness as h
from test_admin import metric, scrape
from test_connect import NAME, _attempts, _need_ipv6, _pair, _served, _start, dns  # noqa: F401


def test_blackholed_aaaa_remembered(rig, dns):  # noqa: F811
    _need_ipv6()
    b, hole = _pair(rig, "blackhole")
    dns.set(NAME, [b.ip, "::1"], ttl=30)
    admin = rig.endpoint(5)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, b.port))],
                            backend_extra=["timeout connect 60s"],
                            global_extra=["admin %s" % h.fmt_addr(*admin)])
    me.wait_log("resolve", server="srv1")
    v4 = h.fmt_addr(b.ip, b.port)
    # The first session pays: IPv6 first, abandoned when IPv4 wins.
    c = _served(rig, b, lip, lport, "c1", n=1)
    c.close()
    s1 = me.wait_session()
    assert _attempts(me, s1["id"]) == [("srv1", "1", hole.addr, "abandoned"),
                                       ("srv1", "2", v4, "connected")]
    ev = me.wait_log("family_slow", server="srv1")[0]
    assert ev["family"] == "ipv6" and ev["backend"] == "mail" and ev["seconds"] == "600"
    # The next ones start with IPv4, which wins alone: no attempt abandoned.
    for n in (2, 3):
        c = _served(rig, b, lip, lport, "c%d" % n, n=n)
        c.close()
        s = me.wait_session(n)
        assert _attempts(me, s["id"]) == [("srv1", "1", v4, "connected")], s
        h.assert_session(s, server="srv1", backend_addr=v4, attempts="1")
    m = scrape(admin)
    assert metric(m, "mailedge_server_connect_attempts_abandoned_total",
                  backend="mail", server="srv1") == 1
    assert metric(m, "mailedge_server_connects_total", backend="mail", server="srv1") == 3
    assert len(me.events("family_slow")) == 1


def test_refused_aaaa_counts_nothing_abandoned(rig, dns):  # noqa: F811
    """An AAAA that refuses costs nothing (the next attempt starts at once):
    the failure is a connect error, not an abandoned attempt."""
    _need_ipv6()
    b, ref = _pair(rig, "refusing")
    dns.set(NAME, ["::1", b.ip], ttl=30)
    admin = rig.endpoint(5)
    me, lip, lport = _start(rig, dns, [("srv1", "%s:%d" % (NAME, b.port))],
                            global_extra=["admin %s" % h.fmt_addr(*admin)])
    me.wait_log("resolve", server="srv1")
    _served(rig, b, lip, lport, "c1", n=1).close()
    me.wait_session()
    m = scrape(admin)
    assert metric(m, "mailedge_server_connect_attempts_abandoned_total",
                  backend="mail", server="srv1") == 0
    assert metric(m, "mailedge_server_connect_errors_total", backend="mail", server="srv1",
                  reason="refused") == 1
