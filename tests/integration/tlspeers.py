"""TLS peers for the SNI tests (stdlib plus the openssl and nginx binaries).

  * make_cert: a throwaway self-signed EC certificate with a given CN;
  * TlsServer: `openssl s_server -www` with its own certificate, so the
    client can tell which backend completed the handshake;
  * Nginx: a real nginx (Debian nginx-light) serving one file over TLS from
    a throwaway prefix, logs in the test's directory;
  * tls_handshake: a TLS client (Python's ssl) whose ClientHello bytes can
    be re-framed into several records and sent in several TCP segments;
  * client_hello / records: hand-built ClientHellos, as tests/unit does.

Loopback only, like the rest of the harness.
"""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from typing import Callable, List, Optional

import harness as h

OPENSSL = shutil.which("openssl")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                  else None)


def make_cert(workdir, cn: str):
    """(cert path, key path, DER bytes) of a new self-signed EC certificate for cn."""
    base = os.path.join(str(workdir), "cert-" + cn.replace("*", "_"))
    cert, key = base + ".pem", base + ".key"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn],
                   check=True, capture_output=True, timeout=h.DEADLINE)
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return cert, key, der


class TlsServer:
    """`openssl s_server -www` on ip and a free port, with a certificate for cn.

    It serves connections one after the other and answers a GET with a
    status page. .der is its certificate, to compare with what a client got.
    """

    def __init__(self, ip: str, cn: str, workdir):
        h.check_loopback(ip)
        self.ip, self.cn = ip, cn
        self.cert, self.key, self.der = make_cert(workdir, cn)
        self.port = h.free_port(ip)
        self.output: List[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [OPENSSL, "s_server", "-accept", h.fmt_addr(ip, self.port), "-cert", self.cert,
             "-key", self.key, "-www"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="s_server-%s" % cn)
        self._reader.start()
        if not self._ready.wait(h.DEADLINE):
            self.close()
            raise AssertionError("openssl s_server for %s did not start:\n%s"
                                 % (cn, "".join(self.output)))

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            text = line.decode("utf-8", "replace")
            self.output.append(text)
            if text.startswith("ACCEPT"):
                self._ready.set()

    @property
    def addr(self) -> str:
        return h.fmt_addr(self.ip, self.port)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(h.DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(h.DEADLINE)
        self._reader.join(h.DEADLINE)
        self.proc.stdout.close()


NGINX_CONF = """\
worker_processes 1;
events {{
    worker_connections 64;
}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {addr} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {dir}/www;
        location / {{
        }}
    }}
}}
"""


class Nginx:
    """A real nginx serving {dir}/www/index.html over TLS on ip and a free
    port, from a throwaway prefix: config, pid, error and access logs all in
    workdir. One process (master_process off), so it runs as the test's user
    and reads the test's files."""

    BODY = b"served by nginx\n"

    def __init__(self, ip: str, cn: str, workdir):
        h.check_loopback(ip)
        self.ip, self.dir = ip, os.path.join(str(workdir), "nginx")
        os.makedirs(os.path.join(self.dir, "www"))
        with open(os.path.join(self.dir, "www", "index.html"), "wb") as f:
            f.write(self.BODY)
        self.cert, self.key, self.der = make_cert(self.dir, cn)
        self.port = h.free_port(ip)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, addr=self.addr, cert=self.cert, key=self.key))
        self.proc = subprocess.Popen(
            [NGINX, "-p", self.dir, "-e", self.error_log, "-c", self.conf, "-g",
             "daemon off; master_process off; pid %s/nginx.pid;" % self.dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_until(self._listening, what="nginx listening on %s" % self.addr,
                     info=self.describe)

    @property
    def addr(self) -> str:
        return h.fmt_addr(self.ip, self.port)

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("nginx exited (%s)\n%s" % (self.proc.returncode,
                                                            self.describe()))
        try:
            socket.create_connection((self.ip, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def describe(self) -> str:
        try:
            with open(self.error_log) as f:
                return "nginx error.log:\n" + f.read()[-3000:]
        except OSError:
            return "(no nginx error.log)"

    def access_lines(self) -> List[str]:
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(h.DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(h.DEADLINE)


# --------------------------------------------------------------------------
# TLS clients


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(ip: str, port: int, source: Optional[str]) -> socket.socket:
    h.check_loopback(ip)
    s = socket.socket(h.family(ip), socket.SOCK_STREAM)
    try:
        if source is not None:
            h.check_loopback(source)
            s.bind((source, 0))
        s.settimeout(h.DEADLINE)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect((ip, port))
    except BaseException:
        s.close()
        raise
    return s


def send_whole(sock: socket.socket, hello: bytes):
    sock.sendall(hello)


def tls_handshake(ip: str, port: int, server_hostname: Optional[str], source=None,
                  send_hello: Callable[[socket.socket, bytes], None] = send_whole,
                  request: Optional[bytes] = None):
    """A TLS handshake through ip:port; returns (peer certificate DER, reply).

    The ClientHello goes out through send_hello(sock, bytes), which may
    re-frame it into records or send it in pieces; the rest of the handshake
    is plain. With request, it is sent after the handshake and the reply
    read until the server closes.
    """
    sock = connect(ip, port, source)
    try:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_context().wrap_bio(inc, out, server_hostname=server_hostname)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        send_hello(sock, out.read())
        end = time.monotonic() + h.DEADLINE
        while True:
            if time.monotonic() > end:
                raise h.Timeout("TLS handshake not finished after %.1fs" % h.DEADLINE)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed during the TLS handshake")
            inc.write(data)
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pending = out.read()
                if pending:
                    sock.sendall(pending)
                continue
            pending = out.read()
            if pending:
                sock.sendall(pending)
            break
        der = obj.getpeercert(binary_form=True)
        reply = b""
        if request is not None:
            obj.write(request)
            sock.sendall(out.read())
            reply = _read_reply(sock, obj, inc, out, end)
        return der, reply
    finally:
        sock.close()


def _read_reply(sock, obj, inc, out, end) -> bytes:
    reply = b""
    while time.monotonic() < end:
        try:
            chunk = obj.read(65536)
            if not chunk:
                return reply
            reply += chunk
            continue
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return reply
        pending = out.read()
        if pending:
            sock.sendall(pending)
        data = sock.recv(65536)
        if not data:
            return reply
        inc.write(data)
    raise h.Timeout("no end of the reply after %.1fs (got %r)" % (h.DEADLINE, reply[:200]))


def https_get(ip: str, port: int, server_hostname: Optional[str], source=None):
    """(peer certificate DER, HTTP reply) of one GET / over TLS."""
    host = (server_hostname or "localhost").encode()
    return tls_handshake(ip, port, server_hostname, source=source,
                         request=b"GET / HTTP/1.0\r\nHost: " + host + b"\r\n\r\n")


def sender_in_records(at):
    """send_hello that re-frames the hello into two TLS records, the first
    holding `at` handshake bytes (negative: counted from the end; a callable
    gets the hello's bytes and returns the offset)."""
    def send(sock, hello):
        sock.sendall(split_record(hello, at(hello) if callable(at) else at))
    return send


def sender_in_segments(cuts, pause: float = 0.05):
    """send_hello that writes the hello in pieces cut at the given offsets
    (or at what cuts(hello) returns), pausing between them so they leave as
    separate TCP segments (TCP_NODELAY is set). The pause only paces the
    scenario; nothing depends on it."""
    def send(sock, hello):
        prev = 0
        for c in list(cuts(hello) if callable(cuts) else cuts) + [len(hello)]:
            c = c if c >= 0 else len(hello) + c
            sock.sendall(hello[prev:c])
            prev = c
            if prev < len(hello):
                time.sleep(pause)
    return send


# --------------------------------------------------------------------------
# hand-built ClientHellos (RFC 8446 4.1.2, RFC 6066 3)


def _u16(v: int) -> bytes:
    return struct.pack(">H", v)


def _ext(t: int, data: bytes) -> bytes:
    return _u16(t) + _u16(len(data)) + data


def client_hello(sni: Optional[bytes] = None, key_share: int = 0, padding: int = 0,
                 sni_last: bool = True, entries=None, suites_len: int = 8) -> bytes:
    """A ClientHello handshake message (not in a record). key_share=1216 and
    padding=300 make a post-quantum-sized hello of about 1.7 KB. entries:
    the server_name list as (name_type, name) pairs, instead of sni.
    suites_len: the cipher suites length as written (8 is right)."""
    body = (_u16(0x0303) + b"\xa5" * 32 + b"\x20" + b"\xb6" * 32 + _u16(suites_len)
            + bytes.fromhex("130113021303c02f") + b"\x01\x00")
    if sni is not None:
        entries = [(0, sni)]
    sni_ext = b""
    if entries is not None:
        entry = b"".join(bytes([k]) + _u16(len(n)) + n for k, n in entries)
        sni_ext = _ext(0, _u16(len(entry)) + entry)
    exts = b"" if sni_last else sni_ext
    exts += _ext(0x2b, b"\x02\x03\x04")
    exts += _ext(0x0a, _u16(2) + _u16(0x11ec if key_share else 0x1d))
    shares = ((_u16(0x11ec) + _u16(key_share) + b"\xc7" * key_share if key_share else b"")
              + _u16(0x1d) + _u16(32) + b"\xd8" * 32)
    exts += _ext(0x33, _u16(len(shares)) + shares)
    exts += _ext(0x10, _u16(12) + b"\x02h2\x08http/1.1")
    if padding:
        exts += _ext(0x15, b"\x00" * padding)
    if sni_last:
        exts += sni_ext
    body += _u16(len(exts)) + exts
    return b"\x01" + struct.pack(">I", len(body))[1:] + body


def records(msg: bytes, frag: int = 16384) -> bytes:
    """Handshake bytes in TLS records of at most frag bytes each."""
    out = b""
    for i in range(0, len(msg), frag):
        k = msg[i:i + frag]
        out += b"\x16\x03\x01" + _u16(len(k)) + k
    return out


def split_record(wire: bytes, at: int) -> bytes:
    """One handshake record re-framed as two, split after `at` payload bytes."""
    assert wire[0] == 0x16 and len(wire) == 5 + struct.unpack(">H", wire[3:5])[0], \
        "expected exactly one handshake record"
    payload = wire[5:]
    at = at if at >= 0 else len(payload) + at
    assert 0 < at < len(payload)
    return (wire[:3] + _u16(at) + payload[:at]
            + wire[:3] + _u16(len(payload) - at) + payload[at:])


def sni_offset(wire: bytes, name: bytes) -> int:
    """Offset of the middle of the server name in the record payload."""
    i = wire.find(name)
    assert i > 5, "name %r not in the hello" % name
    return i - 5 + len(name) // 2
