"""Tools for mailedge's interop tests against real Postfix, Dovecot and HAProxy.

  * the mailedge daemon (foreground, stderr to a file, logfmt session lines,
    clean SIGTERM exit, sanitizer reports fail the test);
  * config builders for mailedge's block grammar;
  * unique client addresses (127.77.Y.Z) so each test's log lines are its own;
  * clients that bind a source address: swaks, raw line sockets, imaplib and
    poplib subclasses;
  * PROXY v1/v2 encoders and the probes "on record" (what a health checker or
    a port scanner does to a PROXY listener).

Loopback only (127.0.0.0/8 and ::1). Every wait has a deadline and every loop
a count; nothing sleeps and then asserts.
"""

import imaplib
import ipaddress
import os
import poplib
import re
import shlex
import signal
import socket
import struct
import subprocess
import time

from mailstack import SCALE, SAN, StackError, check_loopback, fmt_addr, free_port, wait_until

# re-exported for the test modules
REEXPORTS = (SAN, SCALE, fmt_addr, free_port)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEADLINE = 15.0 * SCALE
EDGE_IP = "127.0.100.1"   # where mailedge listens in these tests (distinct from 127.0.0.1)


def mailedge_binary():
    """MAILEDGE_BIN, else build/mailedge of this tree; None when missing."""
    b = os.environ.get("MAILEDGE_BIN") or os.path.join(ROOT, "build", "mailedge")
    return b if os.path.isfile(b) and os.access(b, os.X_OK) else None


# --------------------------------------------------------------------------
# client addresses


class AddressPool:
    """Hands out 127.77.Y.Z addresses, never the same twice in a session, so
    each test's lines in the shared Postfix/Dovecot logs carry addresses no
    other test used, and postscreen treats each client as new (PASS NEW)."""

    def __init__(self, prefix=77):
        self.prefix = prefix
        self.n = 0

    def next(self):
        self.n += 1
        if self.n > 250 * 250:
            raise StackError("address pool exhausted")
        y, z = divmod(self.n - 1, 250)
        return "127.%d.%d.%d" % (self.prefix, y + 1, z + 2)


# --------------------------------------------------------------------------
# logfmt


_LOGFMT = re.compile(r'(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    out = {}
    for k, v in _LOGFMT.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = bytes(v[1:-1], "utf-8").decode("unicode_escape")
        out[k] = v
    return out


def split_hostport(s):
    """'1.2.3.4:5' or '[::1]:5' -> ('1.2.3.4', 5)."""
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


# --------------------------------------------------------------------------
# mailedge


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: LeakSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


class Mailedge:
    """`mailedge -c FILE` in the foreground, stderr (its log) to a file."""

    def __init__(self, binary, workdir, config_text, name="mailedge", grace=2.0):
        self.binary = binary
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.conf = os.path.join(workdir, name + ".conf")
        self.errpath = os.path.join(workdir, name + ".log")
        self.grace = grace
        with open(self.conf, "w") as f:
            f.write(config_text)
        self.proc = None
        self.exit_status = None

    def text(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def lines(self):
        return self.text().splitlines()

    def start(self, env=None):
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            e.update(env)
        err = open(self.errpath, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, env=e)
        finally:
            err.close()
        try:
            wait_until(lambda: "event=ready" in self.text() or self.proc.poll() is not None,
                       DEADLINE, "mailedge event=ready")
        except StackError:
            self.kill()
            raise AssertionError("mailedge not ready within %.0fs:\n%s" % (DEADLINE, self.text()))
        if self.proc.poll() is not None:
            raise AssertionError("mailedge exited with %s before ready:\nconfig:\n%s\nlog:\n%s"
                                 % (self.proc.returncode, open(self.conf).read(), self.text()))
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        """SIGTERM, then require exit status 0 and no sanitizer report."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_status = self.proc.wait(self.grace + 10 * SCALE)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("mailedge did not exit within grace+%.0fs of SIGTERM:\n%s"
                                     % (10 * SCALE, self.text()[-4000:]))
        else:
            self.exit_status = self.proc.returncode
        self.proc = None
        text = self.text()
        for m in SANITIZER_MARKERS:
            if m in text:
                raise AssertionError("sanitizer report in mailedge's output:\n" + text[-8000:])
        if self.exit_status != 0:
            raise AssertionError("mailedge exit status %s after SIGTERM:\n%s"
                                 % (self.exit_status, text[-4000:]))

    def sessions(self):
        return [parse_logfmt(ln) for ln in self.lines() if "event=session" in ln]

    def wait_session(self, client_ip=None, client=None, timeout=None):
        """Waits for the session line of a client (ip, or exact ip:port)."""
        def find():
            for s in self.sessions():
                c = s.get("client", "")
                if client is not None and c == client:
                    return s
                if client_ip is not None and c and split_hostport(c)[0] == client_ip:
                    return s
            return None
        try:
            return wait_until(find, timeout or DEADLINE, "a session line for %s"
                              % (client or client_ip))
        except StackError as e:
            raise AssertionError("%s\nmailedge log:\n%s" % (e, self.text()[-4000:]))


def global_block(grace="2s", extra=()):
    # As root, mailedge refuses to run without `user`: keep root explicitly.
    lines = (["log stderr format logfmt level info", "grace %s" % grace]
             + (["user root"] if os.geteuid() == 0 else []) + list(extra))
    return "global {\n" + "".join("    %s\n" % ln for ln in lines) + "}\n"


def backend_block(name, servers, send_proxy="v2", extra=()):
    lines = ["server %s %s" % (n, a) for n, a in servers]
    if send_proxy:
        lines.append("send-proxy %s" % send_proxy)
    lines += list(extra)
    return "backend %s {\n" % name + "".join("    %s\n" % ln for ln in lines) + "}\n"


def listener_block(name, binds, protocol, route, accept_proxy=None, extra=()):
    if isinstance(binds, str):
        binds = [binds]
    lines = ["bind %s" % " ".join(binds), "protocol %s" % protocol]
    if accept_proxy:
        lines.append("accept-proxy %s" % accept_proxy)
    lines += list(extra)
    lines.append("route -> %s" % route)
    return "listener %s {\n" % name + "".join("    %s\n" % ln for ln in lines) + "}\n"


# --------------------------------------------------------------------------
# clients


def swaks(server_ip, port, source, marker, to="test@example.test", extra=(), timeout=None):
    """Sends one message with swaks from source; returns (rc, transcript)."""
    check_loopback(server_ip)
    check_loopback(source)
    argv = ["swaks", "--server", server_ip, "--port", str(port), "--local-interface", source,
            "--to", to, "--from", "sender@client.test", "--helo", "client.test",
            "--header", "Subject: interop %s" % marker,
            "--body", "mailedge interop test message\nmarker: %s\n" % marker,
            "--timeout", "%d" % int(30 * SCALE)] + list(extra)
    if ":" in server_ip:
        argv.append("-6")
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=(timeout or 60 * SCALE))
    return r.returncode, "$ " + " ".join(shlex.quote(a) for a in argv) + "\n" + r.stdout


def connect(ip, port, source=None, timeout=None):
    """A TCP connection to ip:port, bound to source (ip, or (ip, port))."""
    check_loopback(ip)
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout or DEADLINE)
    if source:
        src = source if isinstance(source, tuple) else (source, 0)
        check_loopback(src[0])
        s.bind(src)
    s.connect((ip, port))
    return s


class LineConn:
    """A blocking line-oriented connection with deadlines."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    @classmethod
    def open(cls, ip, port, source=None):
        return cls(connect(ip, port, source))

    @property
    def local(self):
        return self.sock.getsockname()[:2]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(left)
        d = self.sock.recv(65536)
        if not d:
            self.closed = True
        self.buf += d
        return d

    def read_line(self, timeout=None):
        """One line (bytes, with CRLF); b'' at EOF."""
        deadline = time.monotonic() + (timeout or DEADLINE)
        while b"\n" not in self.buf:
            if self.closed or not self._fill(deadline):
                line, self.buf = self.buf, b""
                return line
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_smtp_reply(self, timeout=None):
        """All lines of one SMTP reply (continuation lines 'NNN-'); [] at EOF."""
        lines = []
        for _ in range(100):
            ln = self.read_line(timeout)
            if not ln:
                return lines
            lines.append(ln.decode("latin-1").rstrip("\r\n"))
            if len(ln) < 4 or ln[3:4] != b"-":
                return lines
        raise AssertionError("SMTP reply with more than 100 lines")

    def read_until_close(self, timeout=None):
        deadline = time.monotonic() + (timeout or DEADLINE)
        while not self.closed:
            try:
                self._fill(deadline)
            except ConnectionResetError:
                self.closed = True
        data, self.buf = self.buf, b""
        return data

    def close(self, rst=False):
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class IMAP(imaplib.IMAP4):
    """imaplib.IMAP4 from a chosen source address."""

    def __init__(self, host, port, source, timeout=None):
        self._source = source
        super().__init__(host, port, timeout=timeout or DEADLINE)

    def _create_socket(self, timeout):
        return connect(self.host, self.port, self._source, timeout)


class POP3(poplib.POP3):
    """poplib.POP3 from a chosen source address."""

    def __init__(self, host, port, source, timeout=None):
        self._source = source
        super().__init__(host, port, timeout=timeout or DEADLINE)

    def _create_socket(self, timeout):
        return connect(self.host, self.port, self._source, timeout)


def imap_fetch_marker(ip, port, source, marker, user="test", password="secret"):
    """LOGIN, SELECT INBOX, SEARCH for marker, FETCH it, LOGOUT. Returns
    (client (ip, port), message bytes)."""
    m = IMAP(ip, port, source)
    try:
        local = m.sock.getsockname()[:2]
        typ, _ = m.login(user, password)
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK", data
        typ, data = m.search(None, "SUBJECT", '"%s"' % marker)
        assert typ == "OK", data
        nums = data[0].split()
        assert nums, "no message with Subject %s in INBOX" % marker
        typ, data = m.fetch(nums[-1], "(BODY.PEEK[])")
        assert typ == "OK", data
        body = data[0][1]
        typ, _ = m.logout()
        return local, body
    finally:
        try:
            m.shutdown()
        except Exception:  # noqa: BLE001 - already closed by LOGOUT
            pass


def pop3_retr_marker(ip, port, source, marker, user="test", password="secret", limit=500):
    """USER, PASS, LIST, RETR until marker is found (bounded), QUIT. Returns
    (client (ip, port), message bytes)."""
    p = POP3(ip, port, source)
    try:
        local = p.sock.getsockname()[:2]
        p.user(user)
        p.pass_(password)
        _, listing, _ = p.list()
        nums = [int(x.split()[0]) for x in listing][:limit]
        found = None
        for n in reversed(nums):
            _, lines, _ = p.retr(n)
            msg = b"\r\n".join(lines)
            if marker.encode() in msg:
                found = msg
                break
        p.quit()
        assert found is not None, "no message with %s among %d in the POP3 listing" % (
            marker, len(nums))
        return local, found
    finally:
        try:
            p.close()
        except Exception:  # noqa: BLE001
            pass


# --------------------------------------------------------------------------
# PROXY protocol (an encoder independent of mailedge's, for probes)


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pp_v1(src, sport, dst, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def pp_v1_unknown():
    return b"PROXY UNKNOWN\r\n"


def pp_v2_local():
    return V2_SIG + b"\x20\x00\x00\x00"


def pp_v2(src, sport, dst, dport):
    if ":" in src:
        a = ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
        fam = 0x21
    else:
        a = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
        fam = 0x11
    a += struct.pack("!HH", sport, dport)
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(a)) + a
