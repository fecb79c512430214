"""Listener set-up: several binds, several listeners, per-listener routes."""

import socket

import pytest

import harness as h
import proxycodec as pp




@pytest.mark.skipif(not h.HAVE_IPV6, reason="no ::1 on this host")
def test_one_listener_two_binds(rig):
    b = rig.backend(2, greeting=None)
    v4 = rig.endpoint(1)
    v6 = ("::1", h.free_port("::1"))
    me = rig.start(h.backend_block("mail", [b.addr], send_proxy="v2")
                   + h.listener_block("front", [h.fmt_addr(*v4), h.fmt_addr(*v6)], "smtp",
                                      "mail"))
    addrs = {h.split_addr(ln["addr"]) for ln in me.events("listen", listener="front")}
    assert addrs == {v4, v6}
    c4 = rig.client(*v4, name="c4")
    c6 = rig.client(*v6, name="c6")
    hdr4 = h.wait_header(b.wait_conn(1))
    hdr6 = h.wait_header(b.wait_conn(2))
    got = {hdr4.src: hdr4, hdr6.src: hdr6}
    assert got[c4.local].dst == v4 and got[c4.local].fam_byte == pp.FAM_TCP4
    assert got[c6.local].dst == v6 and got[c6.local].fam_byte == pp.FAM_TCP6
    c4.close()
    c6.close()
    clients = {ln["client"] for ln in me.wait_log("session", count=2)}
    assert clients == {h.fmt_addr(*c4.local), h.fmt_addr(*c6.local)}


def test_listeners_route_to_their_backends(rig):
    smtp_b = rig.backend(2, greeting=b"220 smtp\r\n")
    imap_b = rig.backend(3, greeting=b"* OK imap\r\n")
    l1, l2 = rig.endpoint(1), rig.endpoint(1)
    me = rig.start(h.backend_block("smtpb", [("mta", smtp_b.addr)], send_proxy="v1")
                   + h.backend_block("imapb", [("mda", imap_b.addr)], send_proxy="v2")
                   + h.listener_block("smtp", h.fmt_addr(*l1), "smtp", "smtpb")
                   + h.listener_block("imap", h.fmt_addr(*l2), "imap", "imapb"))
    c1 = rig.client(*l1, name="c1")
    c2 = rig.client(*l2, name="c2")
    c1.wait_endswith(b"220 smtp\r\n")
    c2.wait_endswith(b"* OK imap\r\n")
    assert h.wait_header(smtp_b.wait_conn()).version == 1
    assert h.wait_header(imap_b.wait_conn()).version == 2
    c1.close()
    c2.close()
    me.wait_log("session", count=2)
    h.assert_session(me.sessions(listener="smtp")[0], backend="smtpb", server="mta")
    h.assert_session(me.sessions(listener="imap")[0], backend="imapb", server="mda")


def test_listener_port_in_use_fails_start(rig, binary):
    """A bind that cannot be made stops the start with a non-zero exit."""
    ip, port = rig.endpoint(1)
    blocker = socket.socket()
    blocker.bind((ip, port))
    blocker.listen(1)
    try:
        cfg = rig.write_config(h.global_block() +
                               h.listener_block("front", h.fmt_addr(ip, port), "smtp",
                                                "127.0.0.2:25"))
        r = h.run_mailedge(binary, ["-c", cfg])
        assert r.returncode != 0
        assert "ERROR: AddressSanitizer" not in r.stderr
        assert h.fmt_addr(ip, port) in r.stderr, "the error does not name the address"
    finally:
        blocker.close()
