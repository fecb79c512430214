"""Abuse control as docs/config.md describes it: `allow` exempts from
`pregreet reject` too; `limit ipv6-prefix N` keys IPv6 clients by N bits
(clients carried in PROXY headers from a trusted relay, so any IPv6
address can be a client: documentation addresses, 2001:db8::/32, which
never leave the header); one address carrying an implausible share of a
listener's sessions (a relay in front that sends no PROXY header) is
warned about."""

import pytest

import harness as h
import proxycodec as pp
from test_abuse import GREETING, early_talker_passes, greeted, metrics, refused


def test_allowed_client_not_refused_by_pregreet(rig, splice):
    """An allowed client that talks before the greeting reaches the server
    (not refused, not struck, not counted); another client is refused."""
    admin = rig.endpoint(5)
    s = rig.simple(splice=splice, send_proxy="v2", greeting=None,
                   listener_extra=["pregreet reject", "ban 1h after 1",
                                   "allow %s/32" % rig.ip(10)],
                   global_extra=["admin %s" % h.fmt_addr(*admin)])
    early_talker_passes(rig, s)
    line = s.me.wait_session()
    assert line["reason"] == "client_closed" and "pregreet" not in line, line
    # The same from a client not on the list: refused.
    c2 = rig.client(s.ip, s.port, source=rig.ip(11))
    h.wait_header(s.backend.wait_conn(2))
    c2.send(b"EHLO early\r\n")
    refused(c2, b"554 5.7.1 ")
    s.me.wait_session(reason="pregreet")
    m = metrics(admin)
    assert m['mailedge_pregreet_total{listener="front"}'] == 1
    assert not s.me.events("ban", key=rig.ip(10))
    greeted(rig, s, 10, greeting=None).close()


@pytest.mark.parametrize("prefix", [56, 64])
def test_ipv6_prefix_setting_keys_clients(rig, prefix):
    """2001:db8:0:100::1 and 2001:db8:0:1ff::1 differ in bits 57-64 only:
    one client under /56, two under /64 (limit per-ip 1)."""
    s = rig.simple(send_proxy="v2", accept_proxy="v2 from %s" % rig.net.cidr,
                   listener_extra=["limit per-ip 1", "limit ipv6-prefix %d" % prefix])

    def via(real):
        c = rig.client(s.ip, s.port, source=rig.ip(10))
        c.send(pp.encode_v2(real, 4000, "2001:db8::25", 25))
        return c

    first = via("2001:db8:0:100::1")
    first.wait_endswith(GREETING)
    second = via("2001:db8:0:1ff::1")
    if prefix == 56:
        refused(second, b"421 4.7.0 ")
        line = s.me.wait_session(reason="limit_per_ip")
        assert line["client"].startswith("[2001:db8:0:1ff::1]:"), line
    else:
        second.wait_endswith(GREETING)
        s.backend.wait_conn(2)
        assert not s.me.events("session")
    first.close()
    second.close()


def _sessions_from(rig, s, host, count):
    """<count> short sessions from 127.x.y.<host>, one after the other."""
    for _ in range(count):
        c = rig.client(s.ip, s.port, source=rig.ip(host))
        c.close()


@pytest.mark.parametrize("allowed", [False, True])
def test_relay_without_proxy_header_warned(rig, allowed):
    """A relay in front without a PROXY header: every session comes from
    one address. Once it carried more than half of the last 256 sessions,
    one warning names it (rate-bounded: not one per session); an allowed
    address is never warned about."""
    admin = rig.endpoint(5)
    extra = ["limit rate 1000/s"] + (["allow %s/32" % rig.ip(10)] if allowed else [])
    # One process: the window of the last 256 sessions is each worker's
    # (with several, each warns once its own window shows the relay).
    s = rig.simple(protocol="tcp", send_proxy=None, greeting=None, listener_extra=extra,
                   global_extra=["workers 1", "admin %s" % h.fmt_addr(*admin)])
    _sessions_from(rig, s, 11, 40)      # a few other clients: the relay's share is what counts
    _sessions_from(rig, s, 10, 300)
    s.me.wait_log("session", count=340, timeout=h.DEADLINE * 3)
    warned = s.me.events("dominant_client")
    m = metrics(admin)
    if allowed:
        assert warned == [], warned
        assert m['mailedge_dominant_client_warnings_total{listener="front"}'] == 0
        return
    assert len(warned) == 1, warned
    ev = warned[0]
    assert ev["listener"] == "front" and ev["client"] == rig.ip(10) and ev["of"] == "256", ev
    assert int(ev["sessions"]) > 128, ev
    assert "accept-proxy" in ev["hint"]
    assert m['mailedge_dominant_client_warnings_total{listener="front"}'] == 1


def test_clients_behind_a_trusted_relay_not_warned(rig):
    """With accept-proxy from the relay, the clients are the header's: no
    one address dominates, nothing is warned about."""
    s = rig.simple(send_proxy="v2", accept_proxy="v2 from %s" % rig.net.cidr, greeting=None)
    for i in range(300):
        c = rig.client(s.ip, s.port, source=rig.ip(10))
        c.send(pp.encode_v2("127.9.%d.%d" % (i // 200, i % 200 + 1), 4000, s.ip, s.port))
        c.close()
    s.me.wait_log("session", count=300, timeout=h.DEADLINE * 3)
    assert s.me.events("dominant_client") == []
