"""TLS SNI routing on `protocol tls` listeners (issue 5).

Real TLS: openssl s_server backends, each with its own throwaway
certificate, so the client can tell from the certificate it got which
backend completed the handshake; clients are Python's ssl and openssl
s_client. Hand-built ClientHellos where bytes must be compared or broken.
The :443 example (examples/https-sni.conf) runs as written with a real
nginx as the local web server.
"""

import os
import ssl
import subprocess
import threading

import pytest

import harness as h
import proxycodec as pp
import tlspeers as t

pytestmark = pytest.mark.skipif(t.OPENSSL is None, reason="openssl is not installed")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUTHORITY = 0x02


def tls_listener(bind: str, routes=(), default=None, extra=(), name="front") -> str:
    """routes: [(names, target)]; default: the target of `route ->`, or None."""
    lines = ["bind %s" % bind, "protocol tls"]
    lines += ["route sni %s -> %s" % (" ".join(n), tgt) for n, tgt in routes]
    if default is not None:
        lines.append("route -> %s" % default)
    return h.block("listener", name, lines + list(extra))


def cn_of(servers, der) -> str:
    for s in servers:
        if s.der == der:
            return s.cn
    return "(unknown certificate)"


class SniRig:
    """Three s_server backends and a listener that routes between them:

        route sni mta-sts.example.org autoconfig.example.org -> mailbox
        route sni *.example.net -> wild
        route -> web
    """

    def __init__(self, rig, tmp_path, splice, extra=()):
        self.rig = rig
        self.mailbox = t.TlsServer(rig.ip(2), "mailbox.test", tmp_path)
        rig.servers.append(self.mailbox)
        self.wild = t.TlsServer(rig.ip(3), "wild.test", tmp_path)
        rig.servers.append(self.wild)
        self.web = t.TlsServer(rig.ip(4), "web.test", tmp_path)
        rig.servers.append(self.web)
        self.ip, self.port = rig.endpoint(1)
        body = (h.backend_block("mailbox", [("m1", self.mailbox.addr)])
                + h.backend_block("wild", [("w1", self.wild.addr)])
                + tls_listener(h.fmt_addr(self.ip, self.port),
                               [(["mta-sts.example.org", "autoconfig.example.org"], "mailbox"),
                                (["*.example.net"], "wild")],
                               default=self.web.addr, extra=extra))
        self.me = rig.start(body, splice=splice)

    def who(self, sni, **kw) -> str:
        """The CN of the backend that completed a handshake for sni."""
        der, _ = t.tls_handshake(self.ip, self.port, sni, source=self.rig.ip(10), **kw)
        return cn_of([self.mailbox, self.wild, self.web], der)


@pytest.fixture
def sni(rig, tmp_path, splice):
    return SniRig(rig, tmp_path, splice)


def test_exact_names(sni):
    assert sni.who("mta-sts.example.org") == "mailbox.test"
    assert sni.who("autoconfig.example.org") == "mailbox.test"
    line = sni.me.wait_session(sni="autoconfig.example.org")
    h.assert_session_shape(line)
    h.assert_session(line, backend="mailbox", server="m1")
    assert h.split_addr(line["client"])[0] == sni.rig.ip(10)


def test_case_and_trailing_dot(sni):
    assert sni.who("MTA-STS.Example.ORG") == "mailbox.test"
    assert sni.who("autoconfig.example.org.") == "mailbox.test"
    # The log shows the name as it was compared: lower case, no dot.
    sni.me.wait_session(sni="mta-sts.example.org", backend="mailbox")
    sni.me.wait_session(sni="autoconfig.example.org", backend="mailbox")


def test_wildcard_takes_exactly_one_label(sni):
    assert sni.who("imap.example.net") == "wild.test"
    assert sni.who("Smtp.Example.Net") == "wild.test"
    assert sni.who("a.b.example.net") == "web.test"
    assert sni.who("example.net") == "web.test"
    sni.me.wait_session(sni="a.b.example.net", backend=sni.web.addr)


def test_default_route_and_no_sni(sni):
    assert sni.who("www.example.org") == "web.test"
    assert sni.who(None) == "web.test"
    lines = sni.me.wait_log("session", 2)
    no_name = [d for d in lines if "sni" not in d]
    assert len(no_name) == 1 and no_name[0]["backend"] == sni.web.addr


def test_openssl_s_client(sni):
    def s_client(*args):
        r = subprocess.run([t.OPENSSL, "s_client", "-connect", "%s:%d" % (sni.ip, sni.port)]
                           + list(args), input=b"", capture_output=True, timeout=h.DEADLINE)
        out = r.stdout.decode("utf-8", "replace")
        assert "subject=" in out, out + r.stderr.decode("utf-8", "replace")
        return out
    assert "subject=CN = mailbox.test" in s_client("-servername", "mta-sts.example.org")
    assert "subject=CN = wild.test" in s_client("-servername", "pop.example.net")
    assert "subject=CN = web.test" in s_client("-servername", "other.example")
    assert "subject=CN = web.test" in s_client("-noservername")
    assert "subject=CN = mailbox.test" in s_client("-servername", "autoconfig.example.org",
                                                   "-tls1_2")


@pytest.mark.parametrize("where", ["first-byte", "header", "inside-name", "last-byte"])
def test_hello_split_across_records(sni, where):
    name = b"autoconfig.example.org"
    at = {"first-byte": 1, "header": 4, "last-byte": -1,
          "inside-name": lambda hello: t.sni_offset(hello, name)}[where]
    assert sni.who(name.decode(), send_hello=t.sender_in_records(at)) == "mailbox.test"
    sni.me.wait_session(sni=name.decode(), backend="mailbox")


@pytest.mark.parametrize("cuts", ["1", "5", "inside-name", "many"])
def test_hello_split_across_segments(sni, cuts):
    name = b"mta-sts.example.org"

    def cut(hello):
        mid = hello.find(name) + len(name) // 2
        return {"1": [1], "5": [5], "inside-name": [mid],
                "many": [1, 3, 5, 9, 40, mid, len(hello) - 1]}[cuts]
    assert sni.who(name.decode(), send_hello=t.sender_in_segments(cut)) == "mailbox.test"


def test_records_and_segments_together(sni):
    """Two records, and the first record's header split from its body."""
    name = b"imap.example.net"

    def send(sock, hello):
        wire = t.split_record(hello, t.sni_offset(hello, name))
        t.sender_in_segments([3, 7, len(wire) // 2])(sock, wire)
    assert sni.who(name.decode(), send_hello=send) == "wild.test"


# --------------------------------------------------------------------------
# bytes: what the backend receives


def recording_rig(rig, splice, listener_extra=(), routes=None, default=True,
                  send_proxy="v2", authority=False, accept_proxy=None):
    """A recording backend `rec` for route sni rec.example; the default route
    (when wanted) to a second recorder `other`. Returns (me, rec, other, ip, port)."""
    rec = rig.backend(2, greeting=None)
    other = rig.backend(3, greeting=None)
    ip, port = rig.endpoint(1)
    sp = None if not send_proxy else send_proxy + (" authority" if authority else "")
    lines = ["bind %s" % h.fmt_addr(ip, port), "protocol tls"]
    if accept_proxy:
        lines.append("accept-proxy %s" % accept_proxy)
    for names, target in (routes or [(["rec.example"], "rec")]):
        lines.append("route sni %s -> %s" % (" ".join(names), target))
    if default:
        lines.append("route -> other")
    body = (h.backend_block("rec", [("r1", rec.addr)], send_proxy=sp)
            + h.backend_block("other", [("o1", other.addr)], send_proxy=sp)
            + h.block("listener", "front", lines + list(listener_extra)))
    me = rig.start(body, splice=splice)
    return me, rec, other, ip, port


@pytest.mark.parametrize("authority", [False, True], ids=["no-authority", "authority"])
def test_hello_unmodified_after_proxy_v2(rig, splice, authority):
    me, rec, _, ip, port = recording_rig(rig, splice, authority=authority,
                                         routes=[(["Rec.Example"], "rec")])
    # Post-quantum size, the name last, in two records: ~1.7 KB.
    msg = t.client_hello(b"REC.example.", key_share=1216, padding=300)
    wire = t.records(msg, 1000)
    assert len(wire) > 1600
    c = rig.client(ip, port)
    c.send(wire)
    conn = rec.wait_conn()
    data = conn.wait(lambda d: (pp.header_length(d) or 0) > 0
                     and len(d) >= pp.header_length(d) + len(wire), what="header and hello")
    n = pp.header_length(data)
    assert data[n:] == wire
    hdr = pp.decode(data)
    assert hdr.src == c.local
    assert hdr.dst == (ip, port)
    if authority:
        assert hdr.tlvs == [(AUTHORITY, b"rec.example")]
    else:
        assert hdr.tlvs == []
    # And the relay goes on both ways.
    c.send(b"\x17\x03\x03\x00\x01Z")
    conn.wait_endswith(b"Z")
    conn.send(b"reply")
    c.wait_endswith(b"reply")
    c.close()
    h.assert_session(me.wait_session(), sni="rec.example", backend="rec", server="r1",
                     bytes_in=len(wire) + 6, bytes_out=5)


def test_authority_only_with_a_name(rig, splice):
    """send-proxy v2 authority on the default route: no SNI, no TLV."""
    me, _, other, ip, port = recording_rig(rig, splice, authority=True)
    wire = t.records(t.client_hello(None))
    c = rig.client(ip, port)
    c.send(wire)
    conn = other.wait_conn()
    data = conn.wait(lambda d: (pp.header_length(d) or 0) > 0
                     and len(d) >= pp.header_length(d) + len(wire))
    hdr = pp.decode(data)
    assert hdr.tlvs == []
    assert data[pp.header_length(data):] == wire
    # A name that is no host name is never sent as AUTHORITY either.
    wire2 = t.records(t.client_hello(b"bad_name.example"))
    c2 = rig.client(ip, port, source=rig.ip(11))
    c2.send(wire2)
    conn2 = other.wait_conn(2)
    data2 = conn2.wait(lambda d: (pp.header_length(d) or 0) > 0
                       and len(d) >= pp.header_length(d) + len(wire2))
    assert pp.decode(data2).tlvs == []
    assert data2[pp.header_length(data2):] == wire2
    c.close()
    c2.close()
    me.wait_session(2)
    assert all("sni" not in d for d in me.sessions())


def test_authority_with_real_tls_name(rig, splice):
    """The TLV carries the name Python's ssl really sent, lower case, no dot."""
    me, rec, _, ip, port = recording_rig(rig, splice, authority=True)
    sent = []

    def send(sock, hello):
        sent.append(hello)
        sock.sendall(hello)

    def header_and_hello(d):
        return sent and (pp.header_length(d) or 0) > 0 \
            and len(d) >= pp.header_length(d) + len(sent[0])

    def cut_when_recorded():
        # The recorder speaks no TLS: once it has the hello, it hangs up.
        conn = rec.wait_conn()
        conn.wait(header_and_hello)
        conn.close()
    th = threading.Thread(target=cut_when_recorded, daemon=True)
    th.start()
    with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
        t.tls_handshake(ip, port, "Rec.Example.", source=rig.ip(10), send_hello=send)
    th.join(h.DEADLINE)
    data = rec.wait_conn().snapshot()
    assert header_and_hello(data)
    assert pp.decode(data).tlvs == [(AUTHORITY, b"rec.example")]
    assert data[pp.header_length(data):] == sent[0]
    h.assert_session(me.wait_session(), sni="rec.example", backend="rec")


@pytest.mark.parametrize("first", [b"GET / HTTP/1.0\r\n\r\n", b"EHLO x\r\n", b"\x80\x2e\x01",
                                   b"\x16\x02\x00"],
                         ids=["http", "smtp", "sslv2", "record-v2"])
def test_not_tls_goes_to_default(rig, splice, first):
    me, rec, other, ip, port = recording_rig(rig, splice, send_proxy=None)
    c = rig.client(ip, port)
    c.send(first)
    conn = other.wait_conn()
    assert conn.wait_bytes(len(first)) == first
    conn.send(b"answer")
    c.wait_endswith(b"answer")
    c.close()
    line = me.wait_session()
    h.assert_session(line, backend="other", bytes_in=len(first))
    assert "sni" not in line
    assert rec.accepted() == 0


@pytest.mark.parametrize("case", ["odd-suites", "two-names", "empty-name", "bad-name",
                                  "over-16k"])
def test_malformed_hello_goes_to_default(rig, splice, case):
    me, rec, other, ip, port = recording_rig(rig, splice, send_proxy="v2")
    msg = {
        "odd-suites": lambda: t.client_hello(b"rec.example", suites_len=7),
        "two-names": lambda: t.client_hello(entries=[(0, b"rec.example"), (0, b"a.example")]),
        "empty-name": lambda: t.client_hello(b""),
        "bad-name": lambda: t.client_hello(b"rec_example"),
        "over-16k": lambda: t.client_hello(b"rec.example", padding=17000),
    }[case]()
    wire = t.records(msg)
    c = rig.client(ip, port)
    c.send(wire)
    conn = other.wait_conn()
    data = conn.wait(lambda d: (pp.header_length(d) or 0) > 0
                     and len(d) >= pp.header_length(d) + len(wire), what="header and hello")
    assert data[pp.header_length(data):] == wire
    c.close()
    line = me.wait_session()
    h.assert_session(line, backend="other")
    assert "sni" not in line
    assert rec.accepted() == 0


# --------------------------------------------------------------------------
# sni-required


def test_sni_required_refuses(rig, splice, tmp_path):
    mailbox = t.TlsServer(rig.ip(2), "mailbox.test", tmp_path)
    rig.servers.append(mailbox)
    ip, port = rig.endpoint(1)
    body = (h.backend_block("mailbox", [("m1", mailbox.addr)])
            + tls_listener(h.fmt_addr(ip, port), [(["imap.example.org"], "mailbox")],
                           extra=["sni-required"]))
    me = rig.start(body, splice=splice)

    # The name: through.
    der, _ = t.tls_handshake(ip, port, "imap.example.org", source=rig.ip(10))
    assert der == mailbox.der
    me.wait_session(sni="imap.example.org", backend="mailbox")

    # No name: refused before any backend is tried, with a TLS alert
    # (handshake_failure, 7 bytes) rather than a bare reset.
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        t.tls_handshake(ip, port, None, source=rig.ip(11))
    line = me.wait_session(reason="sni_required")
    h.assert_session(line, backend="-", server="-", bytes_in=0, bytes_out=7,
                     error="no server name in the ClientHello")

    # A name no route takes, and no default route: unrecognized_name.
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        t.tls_handshake(ip, port, "other.example.org", source=rig.ip(12))
    h.assert_session(me.wait_session(reason="sni_no_route"), sni="other.example.org",
                     backend="-", bytes_out=7)

    # A name that is no host name, not TLS at all, a broken hello.
    unrecognized_name = b"\x15\x03\x03\x00\x02\x02\x70"
    for i, (first, why, answer) in enumerate([
            (t.records(t.client_hello(b"a_b.example")), "server name is not a host name",
             unrecognized_name),
            (b"EHLO x\r\n", "not a TLS handshake record", b""),
            (t.records(t.client_hello(b"x" * 256)), "server name longer than 255 bytes", b"")]):
        c = rig.client(ip, port, source=rig.ip(20 + i))
        c.send(first)
        assert c.wait_end() == "eof"  # what it sent was read: a FIN, not a reset
        assert c.snapshot() == answer
        me.wait_session(reason="sni_required", error=why)



def test_sni_required_with_default_route(rig, splice):
    """sni-required refuses clients without a name; a default route still
    takes names that no route sni matches."""
    me, rec, other, ip, port = recording_rig(rig, splice, send_proxy=None,
                                             listener_extra=["sni-required"])
    wire = t.records(t.client_hello(b"unknown.example"))
    c = rig.client(ip, port)
    c.send(wire)
    assert other.wait_conn().wait_bytes(len(wire)) == wire
    c2 = rig.client(ip, port, source=rig.ip(11))
    c2.send(t.records(t.client_hello(None)))
    assert c2.wait_end() == "eof"
    assert c2.snapshot() == b"\x15\x03\x03\x00\x02\x02\x28"  # handshake_failure
    me.wait_session(reason="sni_required")
    assert rec.accepted() == 0 and other.accepted() == 1


# --------------------------------------------------------------------------
# with an inbound PROXY header, timeouts, early ends


@pytest.mark.parametrize("writes", ["one-write", "two-writes"])
def test_accept_proxy_then_hello(rig, splice, writes):
    me, rec, _, ip, port = recording_rig(rig, splice, accept_proxy="v2 from %s" % rig.net.cidr,
                                         authority=True)
    real = (rig.ip(77), 5555)
    inbound = pp.encode_v2(real[0], real[1], ip, port)
    wire = t.records(t.client_hello(b"rec.example", key_share=1216))
    c = rig.client(ip, port)
    if writes == "one-write":
        c.send(inbound + wire)
    else:
        c.send(inbound)
        c.send(wire[:700])
        c.send(wire[700:])
    conn = rec.wait_conn()
    data = conn.wait(lambda d: (pp.header_length(d) or 0) > 0
                     and len(d) >= pp.header_length(d) + len(wire))
    hdr = pp.decode(data)
    assert hdr.src == real
    assert hdr.tlvs == [(AUTHORITY, b"rec.example")]
    assert data[pp.header_length(data):] == wire
    c.close()
    h.assert_session(me.wait_session(), client="%s:%d" % real, sni="rec.example",
                     bytes_in=len(wire))


def test_timeout_hello_closes_a_silent_client(rig):
    me, rec, other, ip, port = recording_rig(rig, "on", listener_extra=["timeout hello 300ms"])
    c = rig.client(ip, port)
    assert c.wait_end() == "eof"
    h.assert_session(me.wait_session(), reason="hello_timeout", error="no bytes from the client",
                     backend="-", bytes_in=0)
    # Part of a hello, then silence.
    wire = t.records(t.client_hello(b"rec.example"))
    c2 = rig.client(ip, port, source=rig.ip(11))
    c2.send(wire[:100])
    assert c2.wait_end() == "eof"
    me.wait_session(reason="hello_timeout", error="incomplete ClientHello, 100 bytes")
    assert rec.accepted() == 0 and other.accepted() == 0


def test_global_timeout_hello(rig):
    rec = rig.backend(2, greeting=None)
    ip, port = rig.endpoint(1)
    body = tls_listener(h.fmt_addr(ip, port), [(["a.example"], rec.addr)], default=rec.addr)
    me = rig.start(body, global_extra=["timeout hello 200ms"])
    c = rig.client(ip, port)
    assert c.wait_end() == "eof"
    me.wait_session(reason="hello_timeout")


def test_client_leaves_during_hello(rig):
    me, rec, other, ip, port = recording_rig(rig, "on")
    c = rig.client(ip, port)
    c.shutdown_write()
    c.wait_end()
    me.wait_session(reason="client_closed", error="closed before sending a ClientHello")
    c2 = rig.client(ip, port, source=rig.ip(11))
    c2.send(t.records(t.client_hello(b"rec.example"))[:50])
    c2.shutdown_write()
    c2.wait_end()
    me.wait_session(reason="client_closed", error="closed in the middle of its ClientHello")
    assert rec.accepted() == 0 and other.accepted() == 0


def test_tls_listener_without_sni_routes_connects_at_once(rig):
    """Nothing to route on: no waiting for the client, as before."""
    s = rig.simple(protocol="tls", send_proxy="v2", greeting=None)
    c = rig.client(s.ip, s.port)
    conn = s.backend.wait_conn()
    h.wait_header(conn)
    c.close()
    assert "sni" not in s.me.wait_session()


@pytest.mark.skipif(not h.HAVE_IPV6, reason="no ::1 on this host")
def test_ipv6(rig, tmp_path):
    mailbox = t.TlsServer("::1", "mailbox.test", tmp_path)
    rig.servers.append(mailbox)
    web = t.TlsServer("::1", "web.test", tmp_path)
    rig.servers.append(web)
    port = h.free_port("::1")
    me = rig.start(tls_listener("[::1]:%d" % port, [(["*.example.org"], mailbox.addr)],
                                default=web.addr))
    der, _ = t.tls_handshake("::1", port, "imap.example.org")
    assert der == mailbox.der
    der, _ = t.tls_handshake("::1", port, "example.org")
    assert der == web.der
    me.wait_session(sni="imap.example.org")


# --------------------------------------------------------------------------
# the :443 example from the product sketch, as written in examples/


@pytest.mark.skipif(t.NGINX is None, reason="nginx is not installed (Debian: nginx-light)")
def test_example_https_sni_with_nginx(rig, tmp_path, monkeypatch):
    mailbox = t.TlsServer(rig.ip(3), "mailbox.example.org", tmp_path)
    rig.servers.append(mailbox)
    web = t.Nginx(rig.ip(4), "www.example.org", tmp_path)
    rig.servers.append(web)
    ip, port = rig.endpoint(1)
    monkeypatch.setenv("MAIL_DOMAIN", "example.org")
    monkeypatch.setenv("MAILBOX_IP", mailbox.ip)
    monkeypatch.setenv("MAILBOX_PORT", str(mailbox.port))
    monkeypatch.setenv("HTTPS_BIND", h.fmt_addr(ip, port))
    monkeypatch.setenv("WEB_ADDR", web.addr)
    conf = os.path.join(REPO, "examples", "https-sni.conf")
    work = tmp_path / "example"
    work.mkdir()
    me = h.Mailedge(rig.binary, conf, work, grace=30.0)
    rig.daemons.append(me)
    me.start()

    src = rig.ip(10)
    for name in ("mta-sts.example.org", "autoconfig.example.org", "AutoDiscover.Example.Org"):
        der, reply = t.https_get(ip, port, name, source=src)
        assert der == mailbox.der, "%s did not reach the mailbox" % name
        assert reply.startswith(b"HTTP/1.0 200 ok"), reply[:200]
    for name in ("www.example.org", "example.org", "mta-sts.example.net", None):
        der, reply = t.https_get(ip, port, name, source=src)
        assert der == web.der, "%s did not reach nginx" % name
        assert reply.startswith(b"HTTP/1.1 200 OK"), reply[:200]
        assert reply.endswith(t.Nginx.BODY)
    h.wait_until(lambda: len(web.access_lines()) >= 4, what="4 lines in nginx's access log",
                 info=web.describe)
    assert all('"GET / HTTP/1.0" 200' in line for line in web.access_lines())
    me.wait_session(7)
    assert len(me.sessions(backend="mailbox")) == 3
    assert len(me.sessions(backend=web.addr)) == 4
