"""Servers that refuse or time out: the next server is tried; when all fail,
the client gets its protocol's "try later" line and the session is logged."""

import pytest

import harness as h
import proxycodec as pp

GIVE_UP = {"smtp": b"421 4.3.2", "submission": b"421 4.3.2", "imap": b"* BYE",
           "pop3": b"-ERR", "tcp": b"", "tls": b""}


def _config(rig, servers, protocol="smtp", balance=None, send_proxy="v2", backend_extra=()):
    lip, lport = rig.endpoint(1)
    body = (h.backend_block("mail", servers, send_proxy=send_proxy, balance=balance,
                            extra=backend_extra)
            + h.listener_block("front", h.fmt_addr(lip, lport), protocol, "mail"))
    return body, lip, lport


@pytest.mark.parametrize("balance", ["first", "round-robin", "least-conn"])
def test_refusing_server_is_skipped(rig, balance):
    bad = rig.refusing(3)
    good = rig.backend(2, greeting=b"220 good\r\n", greet_when=h.Backend.after_proxy_header)
    body, lip, lport = _config(rig, [("bad", bad.addr), ("good", good.addr)], balance=balance)
    me = rig.start(body)
    # With round-robin, whichever server a session starts with, it must land
    # on the good one.
    for i in range(3):
        c = rig.client(lip, lport, name="c%d" % i)
        c.wait_endswith(b"220 good\r\n")
        conn = good.wait_conn(i + 1)
        assert pp.decode(conn.snapshot()).src == c.local
        c.close()
        h.assert_session(me.wait_session(i + 1), server="good", backend="mail",
                         reason="client_closed")


@pytest.mark.parametrize("protocol", sorted(GIVE_UP))
def test_all_servers_refuse(rig, protocol):
    r1, r2 = rig.refusing(3), rig.refusing(4)
    body, lip, lport = _config(rig, [("r1", r1.addr), ("r2", r2.addr)], protocol=protocol)
    me = rig.start(body)
    c = rig.client(lip, lport)
    c.wait_end()
    got = c.snapshot()
    want = GIVE_UP[protocol]
    if want:
        assert got.startswith(want), "expected a line starting %r, got %r" % (want, got)
        assert got.endswith(b"\r\n") and got.count(b"\r\n") == 1, "not one CRLF line: %r" % got
    else:
        assert got == b""
    c.close()
    line = me.wait_session()
    h.assert_session(line, reason="connect_refused", server="-", backend="mail", bytes_in=0,
                     bytes_out=len(got))


def test_all_refuse_with_client_talking_first(rig):
    """A client that already wrote still gets 421 (mailedge must not wait for
    or choke on the pending bytes)."""
    r1 = rig.refusing(3)
    body, lip, lport = _config(rig, [("r1", r1.addr)])
    me = rig.start(body)
    c = rig.client(lip, lport)
    c.send(b"EHLO early\r\n")
    c.wait_end()
    assert c.snapshot().startswith(b"421 4.3.2")
    c.close()
    h.assert_session(me.wait_session(), reason="connect_refused")


def test_connect_timeout_then_next_server(rig):
    hole = rig.blackhole(4)
    good = rig.backend(2, greeting=b"220 good\r\n")
    body, lip, lport = _config(rig, [("hole", hole.addr), ("good", good.addr)], balance="first",
                               backend_extra=["timeout connect 500ms"])
    me = rig.start(body)
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 good\r\n")
    assert h.wait_header(good.wait_conn()).src == c.local
    c.close()
    h.assert_session(me.wait_session(), server="good", reason="client_closed")


def test_all_servers_time_out(rig):
    hole = rig.blackhole(4)
    body, lip, lport = _config(rig, [("hole", hole.addr)], backend_extra=["timeout connect 500ms"])
    me = rig.start(body)
    c = rig.client(lip, lport)
    c.wait_end()
    assert c.snapshot().startswith(b"421 4.3.2")
    c.close()
    h.assert_session(me.wait_session(), reason="connect_timeout", server="-")


def test_round_robin_spreads_sessions(rig):
    b1 = rig.backend(2, greeting=b"220 one\r\n")
    b2 = rig.backend(3, greeting=b"220 two\r\n")
    body, lip, lport = _config(rig, [("one", b1.addr), ("two", b2.addr)], balance="round-robin")
    me = rig.start(body)
    n = 6
    for i in range(n):
        c = rig.client(lip, lport, name="c%d" % i)
        c.wait_endswith(b"\r\n")
        c.close()
        me.wait_session(i + 1)
    assert b1.accepted() + b2.accepted() == n
    # The cursor is per worker (docs/scaling.md), and the kernel spreads the
    # clients over the workers: each worker's sessions, in order, take the
    # servers in turn.
    per_worker = {}
    for ln in me.sessions():
        per_worker.setdefault(ln.get("worker", "0"), []).append(ln["server"])
    for worker, servers in per_worker.items():
        assert all(a != b for a, b in zip(servers, servers[1:])), (worker, servers)
        assert set(servers) <= {"one", "two"}, (worker, servers)


def test_balance_first_prefers_first_server(rig):
    b1 = rig.backend(2, greeting=b"220 one\r\n")
    b2 = rig.backend(3, greeting=b"220 two\r\n")
    body, lip, lport = _config(rig, [("one", b1.addr), ("two", b2.addr)], balance="first")
    me = rig.start(body)
    for i in range(3):
        c = rig.client(lip, lport, name="c%d" % i)
        c.wait_endswith(b"220 one\r\n")
        c.close()
        me.wait_session(i + 1)
    assert b1.accepted() == 3 and b2.accepted() == 0


def test_route_to_address_implicit_backend(rig):
    b = rig.backend(2, greeting=b"220 direct\r\n")
    lip, lport = rig.endpoint(1)
    me = rig.start(h.listener_block("front", h.fmt_addr(lip, lport), "smtp", b.addr))
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 direct\r\n")
    c.send(b"QUIT\r\n")
    assert b.wait_conn().wait_endswith(b"QUIT\r\n") == b"QUIT\r\n"  # no send-proxy
    c.close()
    line = me.wait_session()
    h.assert_session_shape(line)
    h.assert_session(line, reason="client_closed", bytes_in=6)


def test_global_connect_timeout_is_inherited(rig):
    hole = rig.blackhole(4)
    lip, lport = rig.endpoint(1)
    me = rig.start(h.backend_block("mail", [("hole", hole.addr)])
                   + h.listener_block("front", h.fmt_addr(lip, lport), "pop3", "mail"),
                   global_extra=["timeout connect 500ms"])
    c = rig.client(lip, lport)
    c.wait_end()
    assert c.snapshot().startswith(b"-ERR")
    c.close()
    h.assert_session(me.wait_session(), reason="connect_timeout", server="-")


def test_give_up_after_inbound_header(rig, net):
    """Refused after a trusted inbound header: 421, and the log names the
    decoded client."""
    r1 = rig.refusing(3)
    lip, lport = rig.endpoint(1)
    me = rig.start(h.backend_block("mail", [("r1", r1.addr)], send_proxy="v2")
                   + h.listener_block("front", h.fmt_addr(lip, lport), "submission", "mail",
                                      accept_proxy="v1 from %s" % net.cidr))
    c = rig.client(lip, lport)
    c.send(pp.encode_v1("127.9.9.9", 4242, lip, lport))
    c.wait_end()
    assert c.snapshot().startswith(b"421 4.3.2")
    c.close()
    h.assert_session(me.wait_session(), reason="connect_refused", client="127.9.9.9:4242",
                     peer=h.fmt_addr(*c.local), bytes_in=0)
