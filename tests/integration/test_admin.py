"""The admin endpoint (issue 6): /metrics scraped and parsed before and
after real sessions, /healthz, /readyz (also while draining), /status,
404/405, slow admin clients next to relaying, and `-t` on admin addresses."""

import json
import re
import signal
import socket
import urllib.error
import urllib.request

import pytest

import harness as h

GREETING = b"220 test ESMTP\r\n"


# --------------------------------------------------------------------------
# helpers


def http(addr, path, method="GET"):
    """(status, content type, body text) of one request to the admin endpoint."""
    ip, port = addr
    req = urllib.request.Request("http://%s%s" % (h.fmt_addr(ip, port), path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=h.DEADLINE) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_exposition(text):
    """A tiny parser of the Prometheus text format (0.0.4): returns
    ({(name, ((label, value), ...)): float}, {family: type}). Checks that
    every sample belongs to a family announced with HELP and TYPE."""
    samples, types, helps = {}, {}, set()
    assert text.endswith("\n"), "exposition must end with a newline"
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ")
            assert typ in ("counter", "gauge", "histogram"), line
            types[fam] = typ
            continue
        m = _SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels_text, value = m.groups()
        labels = []
        pos = 0
        while labels_text and pos < len(labels_text):
            lm = _LABEL.match(labels_text, pos)
            assert lm, "bad labels in %r" % line
            v = lm.group(2).replace('\\n', '\n').replace('\\"', '"').replace('\\\\', '\\')
            labels.append((lm.group(1), v))
            pos = lm.end()
        fam = re.sub(r'_(bucket|sum|count)$', '', name) if name not in types else name
        assert fam in types and fam in helps, "sample %s without HELP/TYPE" % name
        if types[fam] == "counter":
            assert name.endswith("_total"), "counter %s lacks _total" % name
        # process_*: the Prometheus client conventions (docs/operations.md).
        assert name.startswith(("mailedge_", "process_")), name
        key = (name, tuple(sorted(labels)))
        assert key not in samples, "duplicate sample %r" % (key,)
        samples[key] = float(value)
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape(addr):
    status, ctype, body = http(addr, "/metrics")
    assert status == 200, body
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return parse_exposition(body)[0]


def admin_endpoint(rig, host=5):
    return rig.endpoint(host)


def start(rig, admin, **kw):
    extra = list(kw.pop("global_extra", ())) + ["admin %s" % h.fmt_addr(*admin)]
    return rig.simple(global_extra=extra, **kw)


def one_session(rig, s, source_host=10):
    """A whole SMTP-like session: greeting, a command, the client closes."""
    c = rig.client(s.ip, s.port, source=rig.ip(source_host))
    c.wait_endswith(GREETING)
    c.send(b"QUIT\r\n")
    c.shutdown_write()
    c.wait_eof()
    c.close()
    return c


# --------------------------------------------------------------------------
# tests


def test_metrics_before_and_after_sessions(rig, splice):
    admin = admin_endpoint(rig)
    s = start(rig, admin, send_proxy=None, splice=splice)
    before = scrape(admin)
    assert metric(before, "mailedge_build_info", version=_version(rig)) == 1
    assert metric(before, "mailedge_sessions_active", listener="front") == 0
    for reason in ("client_closed", "backend_closed", "connect_refused", "proxy_invalid",
                   "shutdown"):
        assert metric(before, "mailedge_sessions_total", listener="front", reason=reason) == 0
    assert metric(before, "mailedge_bytes_total", listener="front", direction="in") == 0
    assert metric(before, "mailedge_server_connects_total", backend="mail", server="srv1") == 0

    # One session open: the gauge says 1.
    c = rig.client(s.ip, s.port)
    c.wait_endswith(GREETING)
    during = scrape(admin)
    assert metric(during, "mailedge_sessions_active", listener="front") == 1
    assert metric(during, "mailedge_server_connects_total", backend="mail", server="srv1") == 1
    c.send(b"QUIT\r\n")
    s.backend.wait_conn().wait_endswith(b"QUIT\r\n")
    c.shutdown_write()
    c.wait_eof()
    c.close()
    line = s.me.wait_session()
    h.assert_session(line, reason="client_closed")

    # A second, whole session from another address.
    one_session(rig, s, source_host=11)
    lines = s.me.wait_log("session", 2)

    after = scrape(admin)
    assert metric(after, "mailedge_sessions_active", listener="front") == 0
    assert metric(after, "mailedge_sessions_total", listener="front",
                  reason="client_closed") == 2
    assert metric(after, "mailedge_bytes_total", listener="front", direction="in") == \
        sum(int(ln["bytes_in"]) for ln in lines) == 12
    assert metric(after, "mailedge_bytes_total", listener="front", direction="out") == \
        sum(int(ln["bytes_out"]) for ln in lines) == 2 * len(GREETING)
    assert metric(after, "mailedge_server_connects_total", backend="mail", server="srv1") == 2
    assert metric(after, "mailedge_server_connect_duration_seconds_count",
                  backend="mail", server="srv1") == 2
    assert metric(after, "mailedge_server_connect_duration_seconds_bucket",
                  backend="mail", server="srv1", le="+Inf") == 2
    assert metric(after, "mailedge_server_connect_errors_total", backend="mail", server="srv1",
                  reason="refused") == 0


def _version(rig):
    out = h.run_mailedge(rig.binary, ["-V"]).stdout
    return out.split()[1]


def test_connect_errors_and_proxy_errors(rig):
    admin = admin_endpoint(rig)
    refusing = rig.refusing()
    good = rig.backend(2, greeting=GREETING)
    lip, lport = rig.endpoint(1)
    pp_port = h.free_port(lip)
    body = (h.backend_block("mail", [("dead", refusing.addr), ("live", good.addr)],
                            balance="first")
            + h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "mail")
            + h.listener_block("pp", h.fmt_addr(lip, pp_port), "smtp", "mail",
                               accept_proxy="v2 from %s" % rig.net.cidr))
    me = rig.start(body, global_extra=["admin %s" % h.fmt_addr(*admin)])
    c = rig.client(lip, lport)
    c.wait_endswith(GREETING)
    c.close()
    me.wait_session(reason="client_closed")
    bad = rig.client(lip, pp_port, source=rig.ip(12), name="bad")
    bad.send(b"GARBAGE\r\n\r\n\r\n\r\n")
    bad.wait_end()
    me.wait_session(reason="proxy_invalid")
    m = scrape(admin)
    assert metric(m, "mailedge_server_connect_errors_total", backend="mail", server="dead",
                  reason="refused") == 1
    assert metric(m, "mailedge_server_connects_total", backend="mail", server="live") == 1
    assert metric(m, "mailedge_server_connects_total", backend="mail", server="dead") == 0
    assert metric(m, "mailedge_proxy_header_errors_total", listener="pp", reason="invalid") == 1
    assert metric(m, "mailedge_proxy_header_errors_total", listener="front",
                  reason="invalid") == 0
    assert metric(m, "mailedge_sessions_total", listener="pp", reason="proxy_invalid") == 1


def test_healthz_readyz_status_and_errors(rig):
    admin = admin_endpoint(rig)
    s = start(rig, admin, send_proxy="v2")
    assert http(admin, "/healthz")[0::2] == (200, "ok\n")
    assert http(admin, "/readyz")[0::2] == (200, "ok\n")

    c = rig.client(s.ip, s.port)
    c.wait_endswith(GREETING)
    status, ctype, body = http(admin, "/status")
    assert status == 200 and ctype == "application/json"
    doc = json.loads(body)
    assert doc["ready"] is True and doc["draining"] is False
    assert doc["sessions_active"] == 1
    assert doc["listeners"] == [{"name": "front", "protocol": "smtp", "addresses": [s.addr],
                                 "backend": "mail", "sessions_active": 1,
                                 "bans_active": 0}]
    assert len(doc["backends"]) == 1
    b = doc["backends"][0]
    assert b["name"] == "mail" and b["balance"] == "round-robin"
    assert b["check"] == "none" and b["servers_up"] == 1
    assert b["servers"] == [{"name": "srv1", "address": s.backend.addr, "state": "up",
                             "last_check": None, "connects": 1, "connect_errors": 0,
                             "backup": False, "active": 1}]

    assert http(admin, "/nope")[0] == 404
    assert http(admin, "/")[0] == 404
    assert http(admin, "/metrics", method="POST")[0] == 405
    assert http(admin, "/readyz", method="DELETE")[0] == 405
    assert http(admin, "/healthz", method="HEAD")[0] == 200


def test_readyz_503_while_draining(rig):
    admin = admin_endpoint(rig)
    s = start(rig, admin, send_proxy=None, grace="30s")
    c = rig.client(s.ip, s.port)
    c.wait_endswith(GREETING)
    conn = s.backend.wait_conn()
    assert http(admin, "/readyz")[0] == 200
    s.me.signal(signal.SIGTERM)
    s.me.wait_log("drain")
    status, _, body = http(admin, "/readyz")
    assert status == 503 and "draining" in body, (status, body)
    assert http(admin, "/healthz")[0] == 200
    assert json.loads(http(admin, "/status")[2])["draining"] is True
    conn.close()
    c.wait_eof()
    c.close()
    assert s.me.wait_exit() == 0


def test_slow_admin_clients_do_not_stall_relaying(rig, splice):
    """Admin clients that send half a request (more of them than the
    connection cap) while a session relays: the session's bytes flow, and
    the endpoint answers again once they are gone."""
    admin = admin_endpoint(rig)
    s = start(rig, admin, send_proxy=None, splice=splice, echo=True)
    slow = []
    try:
        for i in range(40):
            sk = socket.create_connection(admin, timeout=h.DEADLINE)
            sk.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(sk)
        c = rig.client(s.ip, s.port)
        c.wait_endswith(GREETING)
        payload = bytes(range(256)) * 1024
        c.send(payload)
        c.wait(lambda d: len(d) >= len(GREETING) + len(payload), what="echo of 256 KiB")
        assert c.snapshot()[len(GREETING):] == payload
        c.shutdown_write()
        c.wait_eof()
        c.close()
        h.assert_session(s.me.wait_session(), reason="client_closed",
                         bytes_in=len(payload), bytes_out=len(GREETING) + len(payload))
    finally:
        for sk in slow:
            sk.close()
    # Slots are freed as MHD sees the closes; bounded polling, no timing.
    h.wait_until(lambda: _healthz_ok(admin), what="/healthz after the slow clients left",
                 info=s.me.describe)


def _healthz_ok(admin):
    try:
        return http(admin, "/healthz")[0] == 200
    except OSError:
        return False


def test_admin_on_ipv6_loopback(rig):
    if not h.HAVE_IPV6:
        pytest.skip("no IPv6 loopback")
    admin = ("::1", h.free_port("::1"))
    start(rig, admin)
    assert http(admin, "/healthz")[0] == 200


def test_check_refuses_remote_admin(rig):
    lip, lport = rig.endpoint(1)
    body = h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "127.0.0.1:25")
    path = rig.write_config("global {\n    admin 0.0.0.0:9100\n}\n" + body)
    r = h.run_mailedge(rig.binary, ["-t", "-c", path])
    assert r.returncode == 1
    assert "%s:2:11: admin address '0.0.0.0:9100' is not a loopback address" % path in r.stderr
    assert "allow-remote" in r.stderr
    path = rig.write_config("global {\n    admin 0.0.0.0:9100 allow-remote\n}\n" + body)
    r = h.run_mailedge(rig.binary, ["-t", "-c", path])
    assert r.returncode == 0, r.stderr


def test_admin_bind_failure_exits(rig):
    """An admin address that cannot be bound stops the start, like a listener."""
    lip, lport = rig.endpoint(1)
    taken = socket.socket()
    taken.bind((rig.ip(5), 0))
    taken.listen(1)
    try:
        body = h.listener_block("front", h.fmt_addr(lip, lport), "smtp", "127.0.0.1:25")
        me = rig.start(body, global_extra=["admin %s" % h.fmt_addr(*taken.getsockname())],
                       wait_ready=False)
        assert me.wait_exit() == 1
        assert me.events("listen_failed", listener="admin")
        me._out.close()
        me._err.close()
        me.proc = None  # exited as expected; nothing for teardown to check
    finally:
        taken.close()
