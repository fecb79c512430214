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
from test_abuse import GREETING, greeted, metrics, refused


def test_allowed_client_not_refused_by_pregreet(rig, splice):
    """An allowed client that talks before the greeting reaches the server
    (not refused, not struck, not counted); another client is refused."""
    admin = rig.endpoint(5)
    s = rig.simple(splice=splice, send_proxy="v2", greeting=None,
                   listener_extra=["pregreet reject", "ban 1h after 1",
                                   "allow %s/32" % rig.ip(10)],
                   global_extra=["admin %s" % h.fmt_addr(*admin)])
    c = rig.client(s.ip, s.port, source=rig.ip(10))
    conn = s.backend.wait_conn()
    hdr = h.wait_header(conn)
    c.send(b"EHLO early\r\n")
    assert conn.wait_endswith(b"EHLO early\r\n")[hdr.length:] == b"EHLO early\r\n"
    conn.send(GREETING)
    c.wait_endswith(GREETING)
    c.close()
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
