"""accept-proxy: inbound PROXY headers from trusted networks only.

The client of each test connects from host .10 of the test's own /24; the
listener trusts that /24 unless the test says otherwise. Decoded client
addresses are 127.9.9.9:4242 (or ::1 / ::ffff:127.9.9.9).
"""

import ipaddress
import socket
import time

import pytest

import harness as h
import proxycodec as pp

REAL = ("127.9.9.9", 4242)
ORIG_DST = ("127.8.8.8", 2525)   # the destination an upstream proxy saw


def _inbound(version: str, src=REAL, dst=ORIG_DST) -> bytes:
    return (pp.encode_v1 if version == "v1" else pp.encode_v2)(src[0], src[1], dst[0], dst[1])


def _outgoing_header(conn) -> pp.ProxyHeader:
    d = conn.wait(lambda d: pp.header_length(d) is not None, what="PROXY header")
    return pp.decode(d)


def _assert_not_contacted(s):
    assert s.backend.accepted() == 0, "the backend was contacted"


@pytest.mark.parametrize("accept,version", [("v1", "v1"), ("v2", "v2"), ("any", "v1"),
                                            ("any", "v2")])
@pytest.mark.parametrize("send_proxy", ["v1", "v2"])
def test_trusted_header_gives_real_client(rig, net, accept, version, send_proxy):
    s = rig.simple(send_proxy=send_proxy, accept_proxy="%s from %s" % (accept, net.cidr))
    c = rig.client(s.ip, s.port)
    c.send(_inbound(version))
    c.wait_endswith(b"220 test ESMTP\r\n")
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.version == int(send_proxy[1]) and hdr.command == "PROXY"
    assert hdr.src == REAL, "outgoing header does not carry the decoded client"
    # Both readings of "the address the client connected to" are accepted:
    # the listener address, or the destination from the inbound header.
    assert hdr.dst in ((s.ip, s.port), ORIG_DST)
    c.send(b"EHLO x\r\n")
    assert conn.wait_endswith(b"EHLO x\r\n")[hdr.length:] == b"EHLO x\r\n"
    c.close()
    line = s.me.wait_session()
    h.assert_session(line, client="127.9.9.9:4242", peer=h.fmt_addr(*c.local), bytes_in=8,
                     reason="client_closed")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_payload_in_same_write_follows_own_header(rig, net, splice, version):
    s = rig.simple(send_proxy="v2", splice=splice, greeting=None,
                   accept_proxy="any from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    payload = b"EHLO same.write\r\nMAIL FROM:<>\r\n"
    c.send(_inbound(version) + payload)
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.src == REAL
    got = conn.wait_bytes(hdr.length + len(payload))
    assert got[hdr.length:] == payload
    c.close()
    h.assert_session(s.me.wait_session(), bytes_in=len(payload))


@pytest.mark.parametrize("version,cuts", [
    ("v2", "every7"),
    ("v2", "after-signature"),
    ("v1", "every7"),
    ("v1", "between-CR-and-LF"),
])
def test_inbound_header_in_pieces(rig, net, version, cuts):
    """A header arriving over several segments is reassembled (mailedge is
    the receiver here; being lenient is its choice, not the sender's). The
    v1 case splits CR from LF: a CR at the end of a read is not a bare CR."""
    s = rig.simple(send_proxy="v2", greeting=None, accept_proxy="any from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw = _inbound(version)
    if cuts == "every7":
        pieces = [raw[i:i + 7] for i in range(0, len(raw), 7)]
    elif cuts == "after-signature":
        pieces = [raw[:12], raw[12:16], raw[16:]]
    else:
        pieces = [raw[:-1], raw[-1:]]
    for p in pieces:
        c.send(p)
        time.sleep(0.05)  # pacing only, nothing is asserted about time
    c.send(b"X")
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.src == REAL
    assert conn.wait_endswith(b"X")[hdr.length:] == b"X"
    c.close()
    s.me.wait_session()


def test_untrusted_source_is_refused(rig, net):
    # The client is .10; only .128/25 of the same /24 is trusted.
    s = rig.simple(send_proxy="v2", accept_proxy="v2 from %s.128/25" % net.prefix)
    c = rig.client(s.ip, s.port)
    try:
        c.send(_inbound("v2") + b"EHLO x\r\n")
    except OSError:
        pass  # already closed by mailedge
    c.wait_end()
    assert c.snapshot() == b"", "an untrusted client received bytes"
    line = s.me.wait_session()
    h.assert_session(line, reason="proxy_untrusted", peer=h.fmt_addr(*c.local), server="-")
    _assert_not_contacted(s)


def test_trusted_source_among_several_cidrs(rig, net):
    s = rig.simple(send_proxy="v2", greeting=None,
                   accept_proxy="v2 from 127.250.0.0/16 ::1/128 %s.8/29" % net.prefix)
    c = rig.client(s.ip, s.port)   # .10 is inside .8/29
    c.send(_inbound("v2") + b"Z")
    conn = s.backend.wait_conn()
    assert _outgoing_header(conn).src == REAL
    c.close()
    h.assert_session(s.me.wait_session(), client="127.9.9.9:4242")


MALFORMED = {
    "v1-bad-octet": b"PROXY TCP4 127.9.9.300 127.8.8.8 4242 2525\r\n",
    "v1-leading-zero": b"PROXY TCP4 127.9.9.09 127.8.8.8 4242 2525\r\n",
    "v1-port-range": b"PROXY TCP4 127.9.9.9 127.8.8.8 65536 2525\r\n",
    "v1-family-mismatch": b"PROXY TCP4 ::1 ::1 4242 2525\r\n",
    "v1-unknown-proto": b"PROXY UDP4 127.9.9.9 127.8.8.8 4242 2525\r\n",
    "v1-missing-field": b"PROXY TCP4 127.9.9.9 127.8.8.8 4242\r\n",
    "v1-bare-lf": b"PROXY TCP4 127.9.9.9 127.8.8.8 4242 2525\n",
    "v1-no-crlf-107": b"PROXY TCP4 " + b"1" * 120,
    "v2-version-1": pp.encode_v2(*REAL, *ORIG_DST, version=1),
    "v2-command-2": pp.encode_v2(*REAL, *ORIG_DST, command=2),
    "v2-family-0x13": pp.encode_v2(*REAL, *ORIG_DST, fam=0x13),
    "v2-short-address-block": pp.encode_v2(*REAL, *ORIG_DST, fam=pp.FAM_TCP6),
    "not-proxy-smtp": b"EHLO client.test\r\n",
    "not-proxy-tls": bytes.fromhex("16030100f8010000f40303") + b"\x00" * 40,
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_header_is_refused(rig, net, name):
    s = rig.simple(send_proxy="v2", accept_proxy="any from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    try:
        c.send(MALFORMED[name])
    except OSError:
        pass
    c.wait_end()
    assert c.snapshot() == b"", "client received bytes after a malformed header"
    h.assert_session(s.me.wait_session(), reason="proxy_invalid", server="-",
                     client=h.fmt_addr(*c.local))
    _assert_not_contacted(s)


@pytest.mark.parametrize("listener,sent", [("v1", "v2"), ("v2", "v1")])
def test_version_not_accepted(rig, net, listener, sent):
    s = rig.simple(send_proxy="v2", accept_proxy="%s from %s" % (listener, net.cidr))
    c = rig.client(s.ip, s.port)
    try:
        c.send(_inbound(sent) + b"EHLO x\r\n")
    except OSError:
        pass
    c.wait_end()
    assert c.snapshot() == b""
    h.assert_session(s.me.wait_session(), reason="proxy_invalid")
    _assert_not_contacted(s)


@pytest.mark.parametrize("partial", [b"", b"PROXY TCP4 127.9.", pp.encode_v2(*REAL, *ORIG_DST)[:20]],
                         ids=["silent", "partial-v1", "partial-v2"])
def test_header_timeout(rig, net, partial):
    s = rig.simple(send_proxy="v2", accept_proxy="any from %s" % net.cidr,
                   listener_extra=["timeout proxy 500ms"])
    c = rig.client(s.ip, s.port)
    if partial:
        c.send(partial)
    c.wait_end()
    assert c.snapshot() == b""
    h.assert_session(s.me.wait_session(), reason="proxy_timeout", server="-")
    _assert_not_contacted(s)


@pytest.mark.parametrize("local", ["v2-local", "v2-local-with-addresses", "v1-unknown"])
def test_local_uses_real_peer(rig, net, local):
    raw = {"v2-local": pp.encode_v2_local(),
           "v2-local-with-addresses": pp.encode_v2_local(pp.encode_v2(*REAL, *ORIG_DST)[16:],
                                                         fam=pp.FAM_TCP4),
           "v1-unknown": pp.encode_v1_unknown()}[local]
    s = rig.simple(send_proxy="v2", greeting=None, accept_proxy="any from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(raw + b"HELLO\r\n")
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.command == "PROXY"
    assert hdr.src == c.local, "LOCAL/UNKNOWN must fall back to the real peer"
    assert hdr.dst == (s.ip, s.port)
    assert conn.wait_endswith(b"HELLO\r\n")[hdr.length:] == b"HELLO\r\n"
    c.close()
    h.assert_session(s.me.wait_session(), client=h.fmt_addr(*c.local),
                     peer=h.fmt_addr(*c.local), bytes_in=7)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_v4_mapped_client_written_as_ipv4(rig, net, version):
    s = rig.simple(send_proxy="v2", greeting=None, accept_proxy="any from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    if version == "v1":
        c.send(pp.encode_v1("::ffff:127.9.9.9", 4242, "::ffff:" + s.ip, s.port, family="TCP6"))
    else:
        c.send(pp.encode_v2("::ffff:127.9.9.9", 4242, "::ffff:" + s.ip, s.port))
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.fam_byte == pp.FAM_TCP4, "IPv4-mapped client not written as IPv4"
    assert hdr.src == REAL and hdr.dst == (s.ip, s.port)
    c.close()
    h.assert_session(s.me.wait_session(), client="127.9.9.9:4242")


@pytest.mark.parametrize("send_proxy", ["v1", "v2"])
def test_ipv6_client_on_ipv4_listener(rig, net, send_proxy):
    """Mixed families: the IPv4 side is promoted to IPv4-mapped IPv6 (or the
    inbound IPv6 destination is used); the header stays one family."""
    s = rig.simple(send_proxy=send_proxy, greeting=None, accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(pp.encode_v2("::1", 4242, "::1", 25) + b"Z")
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.family == "TCP6"
    assert hdr.src == ("::1", 4242)
    assert hdr.dst in ((str(ipaddress.IPv6Address("::ffff:" + s.ip)), s.port), ("::1", 25))
    assert conn.wait_endswith(b"Z")[hdr.length:] == b"Z"
    c.close()
    h.assert_session(s.me.wait_session(), client="[::1]:4242")


def test_header_with_tlvs_accepted(rig, net):
    raw = pp.encode_v2(*REAL, *ORIG_DST, tlvs=[(pp.TLV_AUTHORITY, b"mx.example.test"),
                                               (pp.TLV_NOOP, b"\x00" * 10),
                                               (pp.TLV_UNIQUE_ID, b"id-1")])
    s = rig.simple(send_proxy="v2", greeting=None, accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(raw + b"Z")
    conn = s.backend.wait_conn()
    hdr = _outgoing_header(conn)
    assert hdr.src == REAL
    assert not any(t == pp.TLV_SSL for t, _ in hdr.tlvs)
    assert conn.wait_endswith(b"Z")[hdr.length:] == b"Z"
    c.close()
    s.me.wait_session()


def test_large_payload_in_same_write_as_header(rig, net, splice):
    """Header + 256 KiB in one write: the bytes mailedge read together with
    the header and the bytes it relays later stay in order."""
    s = rig.simple(send_proxy="v1", splice=splice, greeting=None,
                   accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    payload = bytes(range(256)) * 1024
    c.send(_inbound("v2") + payload)
    conn = s.backend.wait_conn()
    hdr = h.wait_header(conn)
    assert hdr.src == REAL
    got = conn.wait_bytes(hdr.length + len(payload))
    assert got[hdr.length:] == payload
    c.close()
    h.assert_session(s.me.wait_session(), bytes_in=len(payload))


@pytest.mark.parametrize("fam", ["unspec", "unix"])
def test_v2_proxy_command_without_inet_address(rig, net, fam):
    """PROXY command with family UNSPEC or UNIX: no IP to use, so the real
    peer is the client (documented in src/codecs/proxyproto.h)."""
    if fam == "unspec":
        raw = pp.V2_SIG + b"\x21\x00\x00\x00"
    else:
        raw = pp.V2_SIG + b"\x21\x31" + (216).to_bytes(2, "big") + b"/tmp/a".ljust(216, b"\0")
    s = rig.simple(send_proxy="v2", greeting=None, accept_proxy="v2 from %s" % net.cidr)
    c = rig.client(s.ip, s.port)
    c.send(raw + b"Z")
    conn = s.backend.wait_conn()
    hdr = h.wait_header(conn)
    assert hdr.src == c.local
    assert conn.wait_endswith(b"Z")[hdr.length:] == b"Z"
    c.close()
    h.assert_session(s.me.wait_session(), client=h.fmt_addr(*c.local))


def test_global_proxy_timeout(rig, net):
    s = rig.simple(send_proxy="v2", accept_proxy="v2 from %s" % net.cidr,
                   global_extra=["timeout proxy 500ms"])
    c = rig.client(s.ip, s.port)
    c.wait_end()
    c.close()
    h.assert_session(s.me.wait_session(), reason="proxy_timeout")
    assert s.backend.accepted() == 0


@pytest.mark.skipif(not h.HAVE_IPV6, reason="no ::1 on this host")
@pytest.mark.parametrize("trusted", [True, False])
def test_ipv6_trusted_networks(rig, net, trusted):
    """On a [::1] listener, ::1/128 trusts the client; an IPv4 network
    (even 127.0.0.0/8) does not match an IPv6 peer."""
    cidr = "::1/128" if trusted else "127.0.0.0/8"
    s = rig.simple(send_proxy="v1", greeting=None, listen_ip="::1", backend_ip="::1",
                   accept_proxy="v2 from %s" % cidr)
    c = rig.client("::1", s.port)
    try:
        c.send(pp.encode_v2("::1", 4242, "::1", 25) + b"Z")
    except OSError:
        pass
    if trusted:
        hdr = h.wait_header(s.backend.wait_conn())
        assert hdr.family == "TCP6" and hdr.src == ("::1", 4242)
        c.close()
        h.assert_session(s.me.wait_session(), client="[::1]:4242",
                         peer=h.fmt_addr(*c.local))
    else:
        c.wait_end()
        c.close()
        h.assert_session(s.me.wait_session(), reason="proxy_untrusted")
        assert s.backend.accepted() == 0
