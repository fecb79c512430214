"""`mailedge probe` (issue 10): live, dead, silent and wrong-protocol servers
of every kind, scripted in Python, plus a real redis-server, PostgreSQL and
nginx when Debian has them installed. Every fake records how the probe
closed (FIN or RST) and what it sent, so politeness is asserted too.

Loopback only; each test has its own 127.X.Y.0/24. No timed assertions:
silence is tested with a short --timeout and only the outcome is checked.
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import http.server

import pytest

import harness as h
import tlspeers

V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + b"\x20\x00\x00\x00"


def run_probe(binary, *args, timeout=None):
    p = subprocess.run([binary, "probe"] + list(args), capture_output=True, text=True,
                       timeout=timeout or h.DEADLINE * 3)
    return p.returncode, p.stdout, p.stderr


def lines_by_url(out):
    """{url: (status word, detail)} from the probe's output."""
    res = {}
    for line in out.splitlines():
        word, rest = line.split(None, 1)
        url, _, detail = rest.partition("  ")
        res[url] = (word, detail)
    return res


class Conn:
    """One accepted connection of a Fake, with helpers for its script."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(h.DEADLINE)
        self.got = b""
        self.end = None        # "fin", "rst" or "open"
        self.before_final = None

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_until(self, needle: bytes) -> bytes:
        for _ in range(1000):
            if needle in self.got:
                return self.got
            d = self.sock.recv(4096)
            if not d:
                return self.got
            self.got += d
        return self.got

    def read_exact(self, n: int) -> bytes:
        for _ in range(1000):
            if len(self.got) >= n:
                break
            d = self.sock.recv(n - len(self.got))
            if not d:
                break
            self.got += d
        return self.got[:n]

    def pending(self) -> bytes:
        """What the peer has sent so far, without waiting."""
        self.sock.setblocking(False)
        try:
            d = self.sock.recv(4096)
            self.got += d
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
            self.sock.settimeout(h.DEADLINE)
        return self.got

    def wait_end(self):
        """Reads to the peer's end: FIN or RST."""
        for _ in range(1000):
            try:
                d = self.sock.recv(4096)
            except ConnectionResetError:
                self.end = "rst"
                return
            except socket.timeout:
                self.end = "open"
                return
            if not d:
                self.end = "fin"
                return
            self.got += d


class Fake:
    """A scripted TCP (or TLS) server: script(conn) runs per connection,
    then the fake waits for the client's end and records it."""

    def __init__(self, ip, script, tls_ctx=None, port=0):
        h.check_loopback(ip)
        self.ip = ip
        self.script = script
        self.tls_ctx = tls_ctx
        self.lsock = socket.socket(h.family(ip), socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, port))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.errors = []
        self.done = threading.Event()
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, scheme, query=""):
        return "%s://%s%s" % (scheme, h.fmt_addr(self.ip, self.port), query)

    def _accept(self):
        self.lsock.settimeout(0.2)
        for _ in range(100000):
            if self._stop:
                return
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        c = Conn(s)
        self.conns.append(c)
        try:
            if self.tls_ctx is not None:
                c.sock = self.tls_ctx.wrap_socket(s, server_side=True)
                c.sock.settimeout(h.DEADLINE)
            if self.script is not None:
                self.script(c)
            c.wait_end()
        except (OSError, ssl.SSLError) as e:
            self.errors.append(repr(e))
            if isinstance(e, ConnectionResetError):
                c.end = "rst"
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            self.done.set()

    def wait_done(self):
        h.wait_until(lambda: self.conns and all(c.end or self.errors for c in self.conns),
                     what="the fake's connection to end")
        return self.conns[0]

    def close(self):
        self._stop = True
        self.lsock.close()


@pytest.fixture
def fakes():
    made = []

    def make(ip, script, **kw):
        f = Fake(ip, script, **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


# -- scripts

def smtp_live(c):
    c.send(b"220 fake.example ESMTP\r\n")
    c.read_until(b"\r\n")
    if c.got.startswith(b"QUIT"):
        c.send(b"221 2.0.0 Bye\r\n")


def smtp_multiline_slow(c):
    """postscreen's habit: a 220- line, a pause, then the rest. A client
    that talks before the final line is a pre-greet bot."""
    c.send(b"220-fake.example ESMTP\r\n")
    time.sleep(0.4)
    c.send(b"220-still greeting\r\n")
    time.sleep(0.4)
    c.before_final = c.pending()
    c.send(b"220 fake.example ready\r\n")
    c.read_until(b"\r\n")
    c.send(b"221 2.0.0 Bye\r\n")


def smtp_554(c):
    c.send(b"554 5.7.1 no service for you\r\n")
    c.read_until(b"\r\n")
    c.send(b"221 2.0.0 Bye\r\n")


def http_on_connect(c):
    c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def silent(c):
    pass


def imap_live(c):
    c.send(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
    c.read_until(b"\r\n")
    if c.got == b"a LOGOUT\r\n":
        c.send(b"* BYE Logging out\r\na OK Logout completed.\r\n")


def imap_bye(c):
    c.send(b"* BYE too many connections from your IP\r\n")


def pop3_live(c):
    c.send(b"+OK fake ready\r\n")
    c.read_until(b"\r\n")
    if c.got == b"QUIT\r\n":
        c.send(b"+OK bye\r\n")


def pop3_err(c):
    c.send(b"-ERR [SYS/TEMP] too busy\r\n")


def redis_script(reply):
    def script(c):
        c.read_until(b"\r\n")
        if c.got == b"PING\r\n":
            c.send(reply)
            c.got = b""
            c.read_until(b"\r\n")
            if c.got == b"QUIT\r\n":
                c.send(b"+OK\r\n")
    return script


def after_proxy(inner, want):
    """Reads and checks a PROXY header (want: bytes, or a function of the
    connection returning them) before running inner."""
    def script(c):
        w = want(c) if callable(want) else want
        c.read_exact(len(w))
        c.proxy = c.got[:len(w)]
        c.got = c.got[len(w):]
        if c.proxy == w:
            inner(c)
    return script


# -- tests: command line

def test_usage_errors(binary):
    assert run_probe(binary)[0] == 2
    rc, out, err = run_probe(binary, "ftp://127.0.0.1")
    assert rc == 2 and "unknown scheme" in err and out == ""
    rc, _, err = run_probe(binary, "tcp://127.0.0.1")
    assert rc == 2 and "needs a port" in err
    rc, _, err = run_probe(binary, "smtp://u:p@127.0.0.1")
    assert rc == 2 and "credentials" in err
    rc, _, err = run_probe(binary, "smtp://127.0.0.1?proxy=v3")
    assert rc == 2
    rc, _, err = run_probe(binary, "--timeout", "5", "smtp://127.0.0.1")
    assert rc == 2 and "timeout" in err
    rc, _, err = run_probe(binary, "--bogus", "smtp://127.0.0.1")
    assert rc == 2 and "unknown option" in err
    rc, out, _ = run_probe(binary, "--help")
    assert rc == 0 and "usage: mailedge probe" in out


# -- tcp

def test_tcp_live_and_refused(binary, net, fakes):
    f = fakes(net.ip(1), silent)
    dead = h.RefusingPort(net.ip(2))
    try:
        rc, out, _ = run_probe(binary, f.url("tcp"))
        assert rc == 0, out
        assert out.startswith("ok   tcp://%s  connected in " % h.fmt_addr(f.ip, f.port))
        assert f.wait_done().end == "fin"
        rc, out, _ = run_probe(binary, f.url("tcp"), "tcp://" + dead.addr)
        assert rc == 1
        r = lines_by_url(out)
        assert r[f.url("tcp")][0] == "ok"
        assert r["tcp://" + dead.addr] == ("FAIL", "connect: connection refused")
    finally:
        dead.close()


def test_tcp_to_smtp_server_closes_with_fin(binary, net, fakes):
    """A tcp:// probe of a server that greets must not leave the greeting
    unread at close (that would be a RST)."""
    f = fakes(net.ip(1), lambda c: c.send(b"220 hi\r\n"))
    rc, out, _ = run_probe(binary, f.url("tcp"))
    assert rc == 0, out
    assert f.wait_done().end == "fin"


# -- smtp

def test_smtp_live(binary, net, fakes):
    f = fakes(net.ip(1), smtp_live)
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 0, out
    assert "220 greeting in " in out
    c = f.wait_done()
    assert c.got == b"QUIT\r\n" and c.end == "fin"


def test_smtp_multiline_slow_greeting(binary, net, fakes):
    f = fakes(net.ip(1), smtp_multiline_slow)
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 0, out
    c = f.wait_done()
    assert c.before_final == b"", "probe spoke before the greeting ended (pre-greet)"
    assert c.got == b"QUIT\r\n" and c.end == "fin"


def test_smtp_554_greeting(binary, net, fakes):
    f = fakes(net.ip(1), smtp_554)
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 1
    assert out.startswith("FAIL ")
    assert "greeting refuses service (5xx): 554 5.7.1 no service for you" in out
    c = f.wait_done()
    assert c.got == b"QUIT\r\n" and c.end == "fin"


def test_smtp_wrong_protocol(binary, net, fakes):
    f = fakes(net.ip(1), http_on_connect)
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 1 and "not an SMTP reply: HTTP/1.1 400 Bad Request" in out
    assert f.wait_done().end == "fin"


def test_smtp_silent_times_out(binary, net, fakes):
    f = fakes(net.ip(1), silent)
    rc, out, _ = run_probe(binary, "--timeout", "500ms", f.url("smtp"))
    assert rc == 1 and "timed out waiting for the greeting" in out
    assert f.wait_done().end == "fin"


def test_smtp_refused(binary, net):
    dead = h.RefusingPort(net.ip(1))
    try:
        rc, out, _ = run_probe(binary, "smtp://" + dead.addr)
        assert rc == 1 and "connection refused" in out
    finally:
        dead.close()


def test_smtp_closed_before_greeting(binary, net, fakes):
    f = fakes(net.ip(1), lambda c: c.sock.shutdown(socket.SHUT_WR))
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 1 and "connection closed before the greeting" in out


def test_smtp_no_221(binary, net, fakes):
    f = fakes(net.ip(1), lambda c: (c.send(b"220 hi\r\n"), c.read_until(b"\r\n"),
                                    c.send(b"500 what\r\n")))
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 1 and "unexpected reply to QUIT: 500 what" in out


def test_smtp_proxy_v2_local(binary, net, fakes):
    f = fakes(net.ip(1), after_proxy(smtp_live, V2_LOCAL))
    rc, out, _ = run_probe(binary, f.url("smtp", "?proxy=v2"))
    assert rc == 0, out
    c = f.wait_done()
    assert c.proxy == V2_LOCAL and c.got == b"QUIT\r\n" and c.end == "fin"


def test_smtp_proxy_v1_real_addresses(binary, net, fakes):
    """v1 is never UNKNOWN: the prober's own addresses, as getpeername sees them."""
    def want(c):
        cip, cport = c.sock.getpeername()[:2]
        sip, sport = c.sock.getsockname()[:2]
        return ("PROXY TCP4 %s %s %d %d\r\n" % (cip, sip, cport, sport)).encode()
    f = fakes(net.ip(1), after_proxy(smtp_live, want))
    rc, out, _ = run_probe(binary, f.url("smtp", "?proxy=v1"))
    assert rc == 0, out
    c = f.wait_done()
    assert c.proxy.startswith(b"PROXY TCP4 ") and c.end == "fin"
    assert (" %s " % net.ip(1)).encode() in c.proxy


def test_smtp_ipv6(binary, fakes):
    if not h._have_ipv6():
        pytest.skip("no IPv6 loopback")
    f = fakes("::1", smtp_live)
    rc, out, _ = run_probe(binary, f.url("smtp"))
    assert rc == 0, out
    assert out.startswith("ok   smtp://[::1]:%d  " % f.port)


def test_smtps_live_and_plaintext_server(binary, net, fakes, tmp_path):
    cert, key, _ = tlspeers.make_cert(tmp_path, "mx.example")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    f = fakes(net.ip(1), smtp_live, tls_ctx=ctx)
    plain = fakes(net.ip(2), smtp_live)
    rc, out, _ = run_probe(binary, f.url("smtps"), plain.url("smtps"))
    r = lines_by_url(out)
    assert r[f.url("smtps")][0] == "ok", out
    assert r[plain.url("smtps")][0] == "FAIL" and "TLS" in r[plain.url("smtps")][1]
    assert rc == 1
    assert f.wait_done().got == b"QUIT\r\n"


# -- imap / pop3

def test_imap(binary, net, fakes, tmp_path):
    live = fakes(net.ip(1), imap_live)
    bye = fakes(net.ip(2), imap_bye)
    smtp = fakes(net.ip(3), smtp_live)
    rc, out, _ = run_probe(binary, live.url("imap"), bye.url("imap"), smtp.url("imap"))
    assert rc == 1
    r = lines_by_url(out)
    assert r[live.url("imap")][0] == "ok" and "* OK greeting" in r[live.url("imap")][1]
    assert r[bye.url("imap")] == ("FAIL", "server said BYE: * BYE too many connections "
                                          "from your IP")
    assert r[smtp.url("imap")][0] == "FAIL" and "not an IMAP greeting" in r[smtp.url("imap")][1]
    c = live.wait_done()
    assert c.got == b"a LOGOUT\r\n" and c.end == "fin"


def test_imaps_with_proxy_v2(binary, net, fakes, tmp_path):
    cert, key, _ = tlspeers.make_cert(tmp_path, "imap.example")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def script(c):
        # The PROXY header comes before the TLS handshake.
        c.proxy = c.sock.recv(16, socket.MSG_WAITALL)
        c.sock = ctx.wrap_socket(c.sock, server_side=True)
        c.sock.settimeout(h.DEADLINE)
        imap_live(c)
    f = fakes(net.ip(1), script)
    rc, out, _ = run_probe(binary, f.url("imaps", "?proxy=v2"))
    assert rc == 0, out
    c = f.wait_done()
    assert c.proxy == V2_LOCAL and c.got == b"a LOGOUT\r\n"


def test_pop3(binary, net, fakes, tmp_path):
    live = fakes(net.ip(1), pop3_live)
    err = fakes(net.ip(2), pop3_err)
    silentf = fakes(net.ip(3), silent)
    rc, out, _ = run_probe(binary, "--timeout", "1s", live.url("pop3"), err.url("pop3"),
                           silentf.url("pop3"))
    assert rc == 1
    r = lines_by_url(out)
    assert r[live.url("pop3")][0] == "ok"
    assert r[err.url("pop3")] == ("FAIL", "server said -ERR: -ERR [SYS/TEMP] too busy")
    assert r[silentf.url("pop3")][0] == "FAIL"
    assert "timed out" in r[silentf.url("pop3")][1]
    c = live.wait_done()
    assert c.got == b"QUIT\r\n" and c.end == "fin"

    cert, key, _ = tlspeers.make_cert(tmp_path, "pop.example")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls = fakes(net.ip(4), pop3_live, tls_ctx=ctx)
    rc, out, _ = run_probe(binary, tls.url("pop3s"))
    assert rc == 0, out


# -- redis / postgres (fakes)

def test_redis_fakes(binary, net, fakes):
    pong = fakes(net.ip(1), redis_script(b"+PONG\r\n"))
    noauth = fakes(net.ip(2), redis_script(b"-NOAUTH Authentication required.\r\n"))
    loading = fakes(net.ip(3), redis_script(b"-LOADING Redis is loading the dataset\r\n"))
    smtp = fakes(net.ip(4), smtp_live)
    rc, out, _ = run_probe(binary, pong.url("redis"), noauth.url("redis"),
                           loading.url("redis"), smtp.url("redis"))
    assert rc == 1
    r = lines_by_url(out)
    assert r[pong.url("redis")][0] == "ok"
    assert r[noauth.url("redis")][0] == "ok"
    assert "auth required" in r[noauth.url("redis")][1]
    assert r[loading.url("redis")][0] == "FAIL"
    assert "loading" in r[loading.url("redis")][1]
    assert r[smtp.url("redis")][0] == "FAIL"
    assert "not a Redis reply" in r[smtp.url("redis")][1]
    assert pong.wait_done().got == b"QUIT\r\n"


def test_postgres_not_postgres(binary, net, fakes):
    """Another protocol on the port is not PostgreSQL (the answers of a real
    one: test_probe_ready.py)."""
    smtp = fakes(net.ip(4), smtp_live)
    rc, out, _ = run_probe(binary, smtp.url("postgres"))
    assert rc == 1
    assert lines_by_url(out)[smtp.url("postgres")][0] == "FAIL"


# -- http

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = int(self.path.strip("/") or "200")
        body = b"status %d\n" % code
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_http(binary, net, fakes):
    srv = http.server.ThreadingHTTPServer((net.ip(1), 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    dead = h.RefusingPort(net.ip(2))
    smtp = fakes(net.ip(3), smtp_live)
    try:
        base = "http://%s:%d" % (net.ip(1), srv.server_address[1])
        # Live by default: 2xx and 3xx; expect= says otherwise (and is not sent).
        rc, out, _ = run_probe(binary, base + "/", base + "/302", base + "/404?expect=404",
                               base + "/204?expect=200,2xx")
        assert rc == 0, out
        assert "HTTP 200 in " in out and "HTTP 302 in " in out and "HTTP 404 in " in out
        assert "HTTP 204 in " in out
        rc, out, _ = run_probe(binary, "--timeout", "2s", base + "/503", "http://" + dead.addr,
                               smtp.url("http"), base + "/404", base + "/302?expect=2xx")
        assert rc == 1
        r = lines_by_url(out)
        assert r[base + "/503"] == ("FAIL", "HTTP status 503 (not expected)")
        assert r[base + "/404"] == ("FAIL", "HTTP status 404 (not expected)")
        assert r[base + "/302?expect=2xx"] == ("FAIL", "HTTP status 302 (not expected)")
        assert r["http://" + dead.addr][0] == "FAIL"
        assert r[smtp.url("http")][0] == "FAIL"
    finally:
        dead.close()
        srv.shutdown()
        srv.server_close()


def test_https_nginx(binary, net, tmp_path):
    if tlspeers.NGINX is None:
        pytest.skip("nginx is not installed")
    ng = tlspeers.Nginx(net.ip(1), "web.example", tmp_path)
    try:
        rc, out, _ = run_probe(binary, "https://%s/" % ng.addr, "https://%s/?proxy=v2" % ng.addr)
        assert rc == 1, out
        r = lines_by_url(out)
        assert r["https://%s/" % ng.addr][0] == "ok" and "HTTP " in r["https://%s/" % ng.addr][1]
        # nginx without proxy_protocol takes the v2 header for a bad TLS record.
        assert r["https://%s/?proxy=v2" % ng.addr][0] == "FAIL"
    finally:
        ng.close()


# -- concurrency and the overall bound

def test_all_ok_and_one_silent(binary, net, fakes):
    """Targets run concurrently: several silent ones cost one timeout, and
    every target still gets its line, in argument order."""
    urls = [fakes(net.ip(i), silent).url("smtp") for i in range(1, 5)]
    live = fakes(net.ip(10), smtp_live).url("smtp")
    rc, out, _ = run_probe(binary, "--timeout", "1s", *urls, live)
    assert rc == 1
    got = [line.split()[1] for line in out.splitlines()]
    assert got == urls + [live]
    r = lines_by_url(out)
    assert r[live][0] == "ok"
    assert all(r[u][0] == "FAIL" for u in urls)


# -- real servers

REDIS = shutil.which("redis-server")
PG_BIN = "/usr/lib/postgresql/15/bin"


def test_real_redis(binary, net, tmp_path):
    if REDIS is None:
        pytest.skip("redis-server is not installed (scripts/deps.sh test)")
    ip, port = net.endpoint(1)
    procs = []
    try:
        for n, extra in ((1, []), (2, ["--requirepass", "s3cret"])):
            ip, port = net.endpoint(n)
            p = subprocess.Popen([REDIS, "--port", str(port), "--bind", ip, "--save", "",
                                  "--appendonly", "no", "--daemonize", "no",
                                  "--dir", str(tmp_path)] + extra,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append((p, ip, port))
        for p, ip, port in procs:
            h.wait_until(lambda: not h.connect_refused(ip, port), what="redis-server")
        urls = ["redis://%s:%d" % (ip, port) for _, ip, port in procs]
        rc, out, _ = run_probe(binary, *urls)
        assert rc == 0, out
        assert "+PONG" in out and "auth required" in out
    finally:
        for p, _, _ in procs:
            p.terminate()
            p.wait(timeout=h.DEADLINE)
    rc, out, _ = run_probe(binary, "redis://%s:%d" % (procs[0][1], procs[0][2]))
    assert rc == 1 and "connection refused" in out


def _pg_usable():
    return os.path.exists(PG_BIN + "/initdb") and shutil.which("runuser") is not None


@pytest.fixture
def request_cleanup():
    fns = []
    yield fns
    for fn in fns:
        fn()


def test_real_postgres(binary, net, request_cleanup):
    if not _pg_usable():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    if os.geteuid() != 0:
        pytest.skip("starting PostgreSQL as a separate user needs root")
    # Outside pytest's tmp_path: its parents are 0700 root, and PostgreSQL
    # refuses to run as root.
    import tempfile
    base = tempfile.mkdtemp(prefix="mailedge-pg-")
    request_cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)
    shutil.chown(base, "postgres", "postgres")
    base = __import__("pathlib").Path(base)
    data = base / "data"
    r = subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/initdb", "-D", str(data),
                        "-A", "trust", "--no-sync"], capture_output=True, text=True,
                       timeout=h.DEADLINE * 6)
    if r.returncode != 0:
        pytest.skip("initdb failed: %s" % r.stderr[-300:])
    ip, port = net.endpoint(1)
    log = base / "log"
    p = subprocess.Popen(["runuser", "-u", "postgres", "--", PG_BIN + "/postgres", "-D", str(data),
                          "-k", str(base), "-p", str(port), "-h", ip],
                         stdout=open(str(log), "w"), stderr=subprocess.STDOUT)
    try:
        h.wait_until(lambda: not h.connect_refused(ip, port) or p.poll() is not None,
                     what="postgres", timeout=h.DEADLINE * 6)
        assert p.poll() is None, open(str(log)).read()
        # The port opens while PostgreSQL still says 57P03 (starting up).
        url = "postgres://%s:%d/app" % (ip, port)
        h.wait_until(lambda: run_probe(binary, url)[0] == 0, what="postgres accepting",
                     timeout=h.DEADLINE * 3)
        rc, out, _ = run_probe(binary, url)
        assert rc == 0, out
        assert "accepting connections" in out
    finally:
        p.terminate()
        p.wait(timeout=h.DEADLINE * 3)
    text = open(str(log)).read()
    assert "incomplete startup packet" not in text, text
    assert "could not" not in text, text
