"""Configuration features that only show at run time: ports from routes,
includes, lexical details, implicit backends, repeated accept-proxy."""

import signal

import harness as h
import proxycodec as pp


def test_route_port_for_servers_without_port(rig):
    b = rig.backend(2, greeting=b"220 routed\r\n")
    lip, lport = rig.endpoint(1)
    me = rig.start(h.backend_block("mail", [("noport", b.ip)], send_proxy="v1")
                   + h.listener_block("front", h.fmt_addr(lip, lport), "smtp",
                                      "mail:%d" % b.port))
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 routed\r\n")
    assert h.wait_header(b.wait_conn()).src == c.local
    c.close()
    h.assert_session(me.wait_session(), server="noport", backend="mail")


def test_server_port_wins_over_route_port(rig):
    own = rig.backend(2, greeting=b"220 own\r\n")
    other = rig.backend(3, greeting=b"220 other\r\n")
    lip, lport = rig.endpoint(1)
    # Both servers live on different hosts; "a" has its own port, "b" takes
    # the route's port, which is the port of `other`.
    me = rig.start(h.backend_block("mail", [("a", own.addr), ("b", other.ip)], balance="first")
                   + h.listener_block("front", h.fmt_addr(lip, lport), "smtp",
                                      "mail:%d" % other.port))
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 own\r\n")
    c.close()
    h.assert_session(me.wait_session(), server="a")


def test_implicit_backend_names(rig):
    b = rig.backend(2, greeting=b"220 direct\r\n")
    l1, l2 = rig.endpoint(1), rig.endpoint(1)
    me = rig.start(h.listener_block("one", h.fmt_addr(*l1), "smtp", b.addr)
                   + h.listener_block("two", h.fmt_addr(*l2), "submission", b.addr))
    for name, (ip, port) in (("c1", l1), ("c2", l2)):
        c = rig.client(ip, port, name=name)
        c.wait_endswith(b"220 direct\r\n")
        c.close()
    lines = me.wait_log("session", count=2)
    assert {ln["backend"] for ln in lines} == {b.addr}, lines


def test_include_relative_and_glob(rig, tmp_path):
    b = rig.backend(2, greeting=b"220 included\r\n")
    lip, lport = rig.endpoint(1)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-backend.conf").write_text(h.backend_block("mail", [b.addr], send_proxy="v2"))
    (conf_d / "20-listener.conf").write_text(
        h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    (tmp_path / "empty.d").mkdir()
    me = rig.start("include conf.d/*.conf\ninclude empty.d/*.conf\n")
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 included\r\n")
    c.close()
    h.assert_session(me.wait_session(), backend="mail", listener="front")


def test_crlf_quotes_and_comments(rig):
    b = rig.backend(2, greeting=b"220 lexed\r\n")
    lip, lport = rig.endpoint(1)
    text = ("# a comment line\r\n"
            "backend \"mail\" {   # trailing comment\r\n"
            "\tserver s1 %s\r\n"
            "    send-proxy v2\r\n"
            "}\r\n"
            "listener front {\r\n"
            "    bind \"%s\"\r\n"
            "    protocol smtp # server first\r\n"
            "    route -> mail\r\n"
            "}\r\n") % (b.addr, h.fmt_addr(lip, lport))
    me = rig.start(text)
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 lexed\r\n")
    c.close()
    h.assert_session(me.wait_session(), backend="mail")


def test_environment_expansion_at_run_time(rig, monkeypatch):
    b = rig.backend(2, greeting=b"220 env\r\n")
    lip, lport = rig.endpoint(1)
    monkeypatch.setenv("MAILEDGE_TEST_IP", b.ip)
    monkeypatch.setenv("MAILEDGE_TEST_PORT", str(b.port))
    monkeypatch.delenv("MAILEDGE_TEST_NOPE", raising=False)
    me = rig.start(h.backend_block("mail", [("s", "${MAILEDGE_TEST_IP}:${MAILEDGE_TEST_PORT}")],
                                   extra=["send-proxy ${MAILEDGE_TEST_NOPE:-v2}"])
                   + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail"))
    c = rig.client(lip, lport)
    c.wait_endswith(b"220 env\r\n")
    assert h.wait_header(b.wait_conn()).version == 2
    c.close()
    me.wait_session()


def test_repeated_accept_proxy_adds_networks(rig, net):
    s = rig.simple(send_proxy="v2", greeting=None,
                   accept_proxy="v2 from 127.250.0.0/16",
                   listener_extra=["accept-proxy v2 from %s" % net.cidr])
    c = rig.client(s.ip, s.port)
    c.send(pp.encode_v2("127.9.9.9", 4242, s.ip, s.port) + b"Z")
    assert h.wait_header(s.backend.wait_conn()).src == ("127.9.9.9", 4242)
    c.close()
    h.assert_session(s.me.wait_session(), client="127.9.9.9:4242")


def test_grace_zero_cuts_at_once(rig):
    s = rig.simple(send_proxy="v2", grace="0s")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(b"220 test ESMTP\r\n")
    s.me.signal(signal.SIGTERM)
    assert s.me.wait_exit() == 0
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="shutdown")
