"""Test harness for mailedge's integration tests (stdlib only).

Pieces:
  * deadlines and polling (wait_until) - no sleeps followed by assertions;
  * Peer: a connected socket with a background reader recording every byte;
  * Client: a Peer that connects (optionally from a chosen source address);
  * Backend: a threaded recording TCP server (greeting on accept or after a
    predicate, echo, per-connection control);
  * RefusingPort: a port that is bound but never listens (connect -> RST);
  * Mailedge: the daemon under test, started in the foreground, with log
    parsing (logfmt and JSON) and a clean-exit / sanitizer check on stop;
  * config builders for the block grammar.

Everything is loopback only: 127.0.0.0/8 and ::1.
"""

import hashlib
import json
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Callable, List, Optional, Sequence

import proxycodec as pp

# --------------------------------------------------------------------------
# deadlines

SAN = os.environ.get("MAILEDGE_SAN", "0") not in ("", "0")
# Sanitizers and valgrind (MAILEDGE_WRAP) slow mailedge down.
WRAPPED = bool(os.environ.get("MAILEDGE_WRAP"))
SCALE = 3.0 if SAN else 6.0 if WRAPPED else 1.0
# Generous: only reached when something is broken.
DEADLINE = 10.0 * SCALE
POLL = 0.02
RECV_CHUNK = 256 * 1024


class Timeout(AssertionError):
    pass


def wait_until(pred: Callable[[], object], timeout: float = None, what: str = "condition",
               interval: float = POLL, info: Callable[[], str] = None):
    """Polls pred() until it returns a true value (returned) or the deadline."""
    if timeout is None:
        timeout = DEADLINE
    end = time.monotonic() + timeout
    n = 0
    while True:
        v = pred()
        if v:
            return v
        n += 1
        if time.monotonic() >= end:
            extra = ("\n" + info()) if info else ""
            raise Timeout("timed out after %.1fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval if n > 5 else interval / 4)


# --------------------------------------------------------------------------
# addresses


def is_v6(ip: str) -> bool:
    return ":" in ip


def family(ip: str) -> int:
    return socket.AF_INET6 if is_v6(ip) else socket.AF_INET


def fmt_addr(ip: str, port: int) -> str:
    return "[%s]:%d" % (ip, port) if is_v6(ip) else "%s:%d" % (ip, port)


def _have_ipv6() -> bool:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


HAVE_IPV6 = _have_ipv6()


def check_loopback(ip: str):
    import ipaddress
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    assert a.is_loopback, "test harness refuses non-loopback address %s" % ip


def free_port(ip: str) -> int:
    """A port free on ip right now (bind port 0, read it, release it)."""
    check_loopback(ip)
    s = socket.socket(family(ip), socket.SOCK_STREAM)
    try:
        s.bind((ip, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Net:
    """A per-test 127.X.Y.0/24: ip(n) -> '127.X.Y.n'. X is never 0."""

    def __init__(self, x: int, y: int):
        assert 1 <= x <= 254 and 0 <= y <= 255
        self.x, self.y = x, y
        self.prefix = "127.%d.%d" % (x, y)

    def ip(self, n: int) -> str:
        assert 1 <= n <= 254
        return "%s.%d" % (self.prefix, n)

    @property
    def cidr(self) -> str:
        return "%s.0/24" % self.prefix

    def endpoint(self, n: int):
        """(ip, free port) on host n of this net."""
        ip = self.ip(n)
        return ip, free_port(ip)


_net_counter = [0]


def allocate_net(nodeid: str) -> Net:
    import zlib
    base = zlib.crc32(("%d:%s" % (os.getpid(), nodeid)).encode())
    _net_counter[0] += 1
    idx = (base + _net_counter[0] * 7919) % (254 * 256)
    return Net(1 + idx // 256, idx % 256)


# --------------------------------------------------------------------------
# connected sockets


class Peer:
    """One connected TCP socket whose received bytes are recorded by a thread.

    data: every byte received so far (bytearray, read under .cond)
    chunks: the same bytes, one entry per recv() call
    eof: the peer sent FIN; reset: the connection was reset/errored.
    """

    def __init__(self, sock: socket.socket, name: str = "peer", paused: bool = False):
        self.sock = sock
        self.name = name
        self.cond = threading.Condition()
        self.data = bytearray()
        self.chunks: List[bytes] = []
        self.eof = False
        self.reset = False
        self.error: Optional[BaseException] = None
        self.sent = 0
        self.sent_log = []           # (len(data) when sent, bytes) for ordering checks
        self.closed = False
        self._send_lock = threading.Lock()
        self._go = threading.Event()
        if not paused:
            self._go.set()
        self._hooks: List[Callable[["Peer"], None]] = []
        self.local = sock.getsockname()[:2]
        self.remote = sock.getpeername()[:2]
        sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="%s-reader" % name)
        self._reader.start()

    # -- receiving

    def add_hook(self, fn: Callable[["Peer"], None]):
        """fn(peer) runs in the reader thread after each receive (under no lock)."""
        self._hooks.append(fn)

    def _read_loop(self):
        try:
            while True:
                while not self._go.wait(0.05):   # paused
                    if self.closed:
                        return
                try:
                    b = self.sock.recv(RECV_CHUNK)
                except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
                    with self.cond:
                        self.reset = True
                        self.error = e
                        self.cond.notify_all()
                    return
                except OSError as e:
                    with self.cond:
                        # closed locally (EBADF) or another error
                        if not self.closed:
                            self.reset = True
                            self.error = e
                        self.cond.notify_all()
                    return
                if not b:
                    with self.cond:
                        if not self.closed:
                            self.eof = True
                        self.cond.notify_all()
                    for h in list(self._hooks):
                        h(self)
                    return
                with self.cond:
                    self.data += b
                    self.chunks.append(b)
                    self.cond.notify_all()
                for h in list(self._hooks):
                    h(self)
        finally:
            with self.cond:
                self.cond.notify_all()

    def pause(self):
        """Stops reading (after the recv in progress) so the sender stalls."""
        self._go.clear()

    def resume(self):
        self._go.set()

    @property
    def ended(self) -> bool:
        return self.eof or self.reset

    def snapshot(self) -> bytes:
        with self.cond:
            return bytes(self.data)

    def wait(self, pred: Callable[[bytes], bool], timeout: float = None,
             what: str = "data") -> bytes:
        """Waits until pred(data) holds; returns a copy of data.

        Fails early when the connection ended without pred becoming true.
        """
        if timeout is None:
            timeout = DEADLINE
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                # pred sees the live bytearray (no copy: transfers are big).
                if pred(self.data):
                    return bytes(self.data)
                d = self.data
                if self.ended:
                    raise AssertionError(
                        "%s: connection ended (%s) while waiting for %s; got %d bytes: %r"
                        % (self.name, "reset" if self.reset else "eof", what, len(d),
                           bytes(d[:300])))
                left = end - time.monotonic()
                if left <= 0:
                    raise Timeout("%s: timed out after %.1fs waiting for %s; got %d bytes: %r"
                                  % (self.name, timeout, what, len(d), bytes(d[:300])))
                self.cond.wait(min(left, 0.5))

    def wait_bytes(self, n: int, timeout: float = None) -> bytes:
        return self.wait(lambda d: len(d) >= n, timeout, "%d bytes" % n)

    def wait_contains(self, needle: bytes, timeout: float = None) -> bytes:
        return self.wait(lambda d: needle in d, timeout, repr(needle))

    def wait_endswith(self, suffix: bytes, timeout: float = None) -> bytes:
        return self.wait(lambda d: d.endswith(suffix), timeout, "data ending with %r" % suffix)

    def wait_end(self, timeout: float = None) -> str:
        """Waits for EOF or reset; returns 'eof' or 'reset'."""
        if timeout is None:
            timeout = DEADLINE
        end = time.monotonic() + timeout
        with self.cond:
            while not self.ended:
                left = end - time.monotonic()
                if left <= 0:
                    raise Timeout("%s: connection still open after %.1fs (got %d bytes)"
                                  % (self.name, timeout, len(self.data)))
                self.cond.wait(min(left, 0.5))
            return "eof" if self.eof else "reset"

    def wait_eof(self, timeout: float = None) -> bytes:
        how = self.wait_end(timeout)
        assert how == "eof", "%s: expected a clean EOF, got %s (%r)" % (self.name, how,
                                                                       self.error)
        return self.snapshot()

    # -- sending

    def send(self, data: bytes):
        with self._send_lock:
            with self.cond:
                self.sent_log.append((len(self.data), bytes(data[:64])))
            self.sock.sendall(data)
            self.sent += len(data)

    def send_async(self, data: bytes, chunk: int = 64 * 1024) -> "SendThread":
        t = SendThread(self, data, chunk)
        t.start()
        return t

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def abort(self):
        """Closes with RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close(how=socket.SHUT_RD)

    def close(self, how=socket.SHUT_RDWR):
        """Closes the socket (FIN, or RST via abort()). The shutdown wakes the
        reader thread, which holds the file open while it sits in recv()."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(how)
        except OSError:
            pass
        self._reader.join(DEADLINE)
        self.sock.close()

    def data_segs_in(self) -> Optional[int]:
        """Data segments received so far (tcp_info.tcpi_data_segs_in), or
        None where the kernel does not report it. One write() of a small
        header arrives as exactly one segment; two writes as two."""
        return data_segs_in(self.sock)

    def sha256(self, start: int = 0) -> str:
        with self.cond:
            return hashlib.sha256(memoryview(self.data)[start:]).hexdigest()


_TCPI_SEGS_IN = 140        # offsets in struct tcp_info (Linux >= 4.2, 4.6)
_TCPI_DATA_SEGS_IN = 152


def _tcp_info_u32(sock: socket.socket, offset: int) -> Optional[int]:
    """A 32-bit field of the socket's struct tcp_info, or None where the
    kernel does not report it."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < offset + 4:
        return None
    return struct.unpack_from("I", info, offset)[0]


def segs_in(sock: socket.socket) -> Optional[int]:
    """Segments received so far, data or not (tcpi_segs_in)."""
    return _tcp_info_u32(sock, _TCPI_SEGS_IN)


def data_segs_in(sock: socket.socket) -> Optional[int]:
    """Data segments received so far (tcpi_data_segs_in)."""
    return _tcp_info_u32(sock, _TCPI_DATA_SEGS_IN)


class SendThread(threading.Thread):
    def __init__(self, peer: Peer, data: bytes, chunk: int):
        super().__init__(daemon=True, name="%s-sender" % peer.name)
        self.peer, self.payload, self.chunk = peer, data, chunk
        self.error: Optional[BaseException] = None
        self.done = threading.Event()

    def run(self):
        try:
            mv = memoryview(self.payload)
            for off in range(0, len(mv), self.chunk):
                self.peer.send(mv[off:off + self.chunk])
        except BaseException as e:  # noqa: B902 - reported by finish()
            self.error = e
        finally:
            self.done.set()

    def finish(self, timeout: float = None):
        if timeout is None:
            timeout = DEADLINE
        if not self.done.wait(timeout):
            raise Timeout("%s: send of %d bytes not finished after %.1fs (sent %d)"
                          % (self.peer.name, len(self.payload), timeout, self.peer.sent))
        if self.error is not None:
            raise AssertionError("%s: send failed: %r" % (self.peer.name, self.error))


class Client(Peer):
    def __init__(self, ip: str, port: int, source: Optional[str] = None,
                 source_port: int = 0, name: str = "client", timeout: float = None,
                 rcvbuf: Optional[int] = None):
        check_loopback(ip)
        s = socket.socket(family(ip), socket.SOCK_STREAM)
        try:
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source is not None:
                check_loopback(source)
                s.bind((source, source_port))
            s.settimeout(DEADLINE if timeout is None else timeout)
            s.connect((ip, port))
        except BaseException:
            s.close()
            raise
        super().__init__(s, name)


def listening_pid(port: int) -> int:
    """The pid of the process listening on TCP <port> (ss -p): with several
    workers, worker 0 for the admin endpoint."""
    out = subprocess.run(["ss", "-ltnpH", "sport", "= :%d" % port], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def connect_refused(ip: str, port: int, source: Optional[str] = None) -> bool:
    """True when a connect to ip:port is refused. A connect that succeeds
    is closed at once (it may be a listener about to close)."""
    s = socket.socket(family(ip), socket.SOCK_STREAM)
    try:
        if source:
            s.bind((source, 0))
        s.settimeout(DEADLINE)
        s.connect((ip, port))
    except ConnectionRefusedError:
        return True
    except (ConnectionResetError, ConnectionAbortedError):
        # Caught in the listen queue while the listener closed: not
        # conclusive, ask again.
        return False
    finally:
        s.close()
    return False


# --------------------------------------------------------------------------
# recording backend


class Backend:
    """A threaded TCP server that records every accepted connection.

    greeting: bytes sent by the backend, either at accept (greet_when=None)
      or as soon as greet_when(data) is true for the bytes received so far
      (e.g. Backend.after_proxy_header); with greet_when the connection also
      records how many bytes had arrived when it greeted (conn.greeted_at).
    echo: echo back every payload byte, i.e. what follows a PROXY header at
      the start of the connection (the header itself is never echoed).
    close_on_eof: answer the peer's FIN with a FIN, like a real server that
      closes when its client does (turn off for half-close tests).
    """

    def __init__(self, ip: str, port: int = 0, greeting: Optional[bytes] = None,
                 greet_when: Optional[Callable[[bytes], bool]] = None, echo: bool = False,
                 name: str = "backend", backlog: int = 64, close_on_eof: bool = True,
                 rcvbuf: Optional[int] = None, paused: bool = False):
        check_loopback(ip)
        self.name = name
        self.paused = paused          # connections start with reading paused
        self.close_on_eof = close_on_eof
        self.greeting = greeting
        self.greet_when = greet_when
        self.echo = echo
        self.lsock = socket.socket(family(ip), socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.lsock.bind((ip, port))
        self.lsock.listen(backlog)
        self.lsock.setblocking(False)
        self.ip, self.port = self.lsock.getsockname()[:2]
        self.conns: List[Peer] = []
        self.cond = threading.Condition()
        self._accept_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="%s-accept" % name)
        self._thread.start()

    @property
    def addr(self) -> str:
        return fmt_addr(self.ip, self.port)

    @staticmethod
    def after_proxy_header(data: bytes) -> bool:
        """greet_when predicate: a complete PROXY header has arrived."""
        return pp.header_length(data) not in (None, 0)

    def _setup(self, peer: Peer):
        peer.greeted_at = None
        peer.echo_off = None
        peer.echoed = 0
        peer.hook_lock = threading.Lock()
        peer.fin_sent = False
        if self.greeting is not None and self.greet_when is None:
            peer.greeted_at = 0
            peer.send(self.greeting)
        peer.add_hook(self._on_data)
        self._on_data(peer)

    def _on_data(self, peer: Peer):
        with peer.hook_lock:
            self._on_data_locked(peer)

    def _on_data_locked(self, peer: Peer):
        # Runs after every recv: never copy the whole stream here.
        try:
            if self.greet_when is not None and peer.greeted_at is None:
                d = peer.snapshot()
                if self.greet_when(d):
                    peer.greeted_at = len(d)
                    peer.send(self.greeting)
            if self.echo:
                if peer.echo_off is None:
                    with peer.cond:
                        head = bytes(peer.data[:pp.V2_MAX])
                    peer.echo_off = pp.header_length(head)
                if peer.echo_off is not None:
                    with peer.cond:
                        chunk = bytes(peer.data[peer.echo_off + peer.echoed:])
                    if chunk:
                        peer.echoed += len(chunk)
                        peer.send(chunk)
            if self.close_on_eof and peer.eof and not peer.fin_sent:
                peer.fin_sent = True
                peer.shutdown_write()
        except OSError:
            pass

    def _accept_one(self) -> bool:
        with self._accept_lock:
            try:
                s, _ = self.lsock.accept()
            except (socket.timeout, BlockingIOError, InterruptedError):
                return False
            except OSError:
                return False
            peer = Peer(s, "%s-conn%d" % (self.name, len(self.conns)), paused=self.paused)
            # Greet/echo set-up before the connection becomes visible.
            self._setup(peer)
            with self.cond:
                self.conns.append(peer)
                self.cond.notify_all()
            return True

    def _accept_loop(self):
        import select
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if r:
                self._accept_one()

    def accepted(self) -> int:
        """Number of connections accepted, after draining the accept queue
        (so a connection the kernel completed is counted)."""
        for _ in range(100):
            if not self._accept_one():
                break
        with self.cond:
            return len(self.conns)

    def wait_conn(self, n: int = 1, timeout: float = None) -> Peer:
        """Waits for the n-th connection (1-based) and returns it."""
        if timeout is None:
            timeout = DEADLINE
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.conns) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise Timeout("%s: %d connection(s) after %.1fs, waited for %d"
                                  % (self.name, len(self.conns), timeout, n))
                self.cond.wait(min(left, 0.5))
            return self.conns[n - 1]

    def close(self):
        self._stop.set()
        self._thread.join(DEADLINE)
        with self._accept_lock:
            self.lsock.close()
        for c in list(self.conns):
            c.close()


class RefusingPort:
    """A port bound on ip but never listening: connects get RST. The socket
    stays bound so nobody else takes the port during the test."""

    def __init__(self, ip: str, port: int = 0):
        check_loopback(ip)
        self.sock = socket.socket(family(ip), socket.SOCK_STREAM)
        self.sock.bind((ip, port))
        self.ip, self.port = self.sock.getsockname()[:2]

    @property
    def addr(self) -> str:
        return fmt_addr(self.ip, self.port)

    def close(self):
        self.sock.close()


class BlackholePort:
    """A listening port whose accept queue is full: new SYNs are dropped, so
    a connect neither succeeds nor gets refused (connect timeout). Built from
    listen(0) and filler connections nobody accepts."""

    def __init__(self, ip: str, port: int = 0):
        check_loopback(ip)
        self.sock = socket.socket(family(ip), socket.SOCK_STREAM)
        self.sock.bind((ip, port))
        self.sock.listen(0)
        self.ip, self.port = self.sock.getsockname()[:2]
        self.fillers = []
        import select
        # With backlog 0 Linux queues exactly one connection; after that,
        # SYNs are dropped (even with syncookies). One blocking filler...
        first = socket.socket(family(ip), socket.SOCK_STREAM)
        first.settimeout(DEADLINE)
        first.connect((ip, self.port))
        self.fillers.append(first)
        # ...then probe (bounded) until a connect does not complete.
        for _ in range(16):
            c = socket.socket(family(ip), socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex((ip, self.port))
            _, w, _ = select.select([], [c], [], 0.3)
            if not w:
                c.close()  # this SYN was dropped: the queue is full
                return
            self.fillers.append(c)
        raise RuntimeError("could not fill the accept queue of %s" % self.addr)

    @property
    def addr(self) -> str:
        return fmt_addr(self.ip, self.port)

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


# --------------------------------------------------------------------------
# logs

_LOGFMT_RE = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s]*)')


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        try:
            return json.loads(v)
        except ValueError:
            return v[1:-1]
    return v


def parse_logfmt(line: str) -> dict:
    return {k: _unquote(v) for k, v in _LOGFMT_RE.findall(line)}


def parse_log_line(line: str) -> Optional[dict]:
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            d = json.loads(line)
        except ValueError:
            return None
        return {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in d.items()} \
            if isinstance(d, dict) else None
    if "=" not in line:
        return None
    return parse_logfmt(line)


def split_addr(s: str):
    """'1.2.3.4:25' or '[::1]:25' -> (ip, port)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", s) or re.fullmatch(r"([^:]+):(\d+)", s)
    assert m, "not an IP:PORT address: %r" % s
    return m.group(1), int(m.group(2))


# --------------------------------------------------------------------------
# the daemon

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "== Invalid ", "== Conditional jump",
                     "== Syscall param", "definitely lost in", "runtime error:", "LeakSanitizer",
                     "ERROR: UndefinedBehaviorSanitizer")

_running = set()


def _kill_all_at_exit():
    for p in list(_running):
        try:
            p.kill()
        except OSError:
            pass


import atexit  # noqa: E402

atexit.register(_kill_all_at_exit)


class Mailedge:
    def __init__(self, binary: str, conf_path: str, workdir: str, grace: float = 5.0,
                 log_path: Optional[str] = None, args: Sequence[str] = ()):
        self.binary = binary
        self.args = list(args)         # after -c FILE
        self.log_path = log_path       # None: the log goes to stderr
        self.conf_path = str(conf_path)
        self.workdir = str(workdir)
        self.grace = grace
        self.stdout_path = os.path.join(self.workdir, "mailedge.stdout")
        self.stderr_path = os.path.join(self.workdir, "mailedge.stderr")
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self.sigterm_sent = False

    def start(self, wait_ready: bool = True):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        # MAILEDGE_WRAP: a command line put in front, e.g. valgrind (make valgrind).
        wrap = shlex.split(os.environ.get("MAILEDGE_WRAP", ""))
        self.proc = subprocess.Popen(wrap + [self.binary, "-c", self.conf_path] + self.args,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, cwd=self.workdir,
                                     env=env)
        _running.add(self.proc)
        if wait_ready:
            self.wait_ready()
        return self

    # -- output

    def stderr(self) -> str:
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self) -> str:
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_text(self) -> str:
        if self.log_path is None:
            return self.stderr()
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        rc = self.proc.poll() if self.proc else None
        log = ("--- log file %s:\n%s" % (self.log_path, self.log_text()[-6000:])
               if self.log_path else "")
        return ("mailedge (pid %s, exit %s), config %s:\n%s\n--- stderr:\n%s--- stdout:\n%s%s"
                % (self.proc.pid if self.proc else "-", rc, self.conf_path,
                   open(self.conf_path).read(), self.stderr()[-6000:], self.stdout()[-2000:],
                   log))

    def logs(self) -> List[dict]:
        """The complete log lines so far: a line still being written (read
        before its newline) is left for the next call."""
        out = []
        text = self.log_text()
        if self.proc is not None and self.proc.poll() is None:
            text = text[:text.rfind("\n") + 1]
        for line in text.splitlines():
            d = parse_log_line(line)
            if d is not None:
                out.append(d)
        return out

    def events(self, event: str, **match) -> List[dict]:
        return [d for d in self.logs() if d.get("event") == event
                and all(d.get(k) == str(v) for k, v in match.items())]

    def sessions(self, **match) -> List[dict]:
        return self.events("session", **match)

    def wait_log(self, event: str, count: int = 1, timeout: float = None, **match) -> List[dict]:
        """Waits until at least count lines with event (and fields) are logged."""
        def check():
            ev = self.events(event, **match)
            if len(ev) >= count:
                return ev
            if self.proc.poll() is not None:
                raise AssertionError("mailedge exited while waiting for event=%s\n%s"
                                     % (event, self.describe()))
            return None
        return wait_until(check, timeout, "log event=%s %r x%d" % (event, match, count),
                          info=self.describe)

    def nworkers(self) -> int:
        """The workers in effect, from the start line (1: one process)."""
        return int(self.wait_log("start")[0].get("workers", "1"))

    def wait_drained(self):
        """After a SIGTERM: every worker began its drain (its listeners are
        closed). With several, the supervisor passes the signal on: a client
        that connects before then is still served."""
        self.wait_log("drain", count=self.nworkers())

    def wait_session(self, count: int = 1, timeout: float = None, **match) -> dict:
        """The count-th session line (matching fields), after waiting for it."""
        return self.wait_log("session", count, timeout, **match)[count - 1]

    def wait_ready(self, timeout: float = None):
        def ready():
            t = self.log_text()
            if "event=ready" in t or '"event":"ready"' in t:
                return True
            if self.proc.poll() is not None:
                raise AssertionError("mailedge exited before event=ready\n" + self.describe())
            return False
        wait_until(ready, timeout, "event=ready", info=self.describe)

    # -- lifecycle

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig=signal.SIGTERM):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.sigterm_sent = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = None) -> int:
        if timeout is None:
            timeout = DEADLINE
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Timeout("mailedge still running %.1fs later\n%s"
                          % (timeout, self.describe())) from None
        _running.discard(self.proc)
        return self.returncode

    def sanitizer_report(self) -> Optional[str]:
        t = self.stderr()
        for m in SANITIZER_MARKERS:
            if m in t:
                return m
        return None

    def stop(self):
        """SIGTERM (unless already exited), wait, then require exit status 0
        and no sanitizer report. Kills the process if it does not exit."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.signal(signal.SIGTERM)
                try:
                    self.wait_exit(self.grace + DEADLINE)
                except Timeout:
                    self.proc.kill()
                    self.proc.wait(DEADLINE)
                    _running.discard(self.proc)
                    raise
            else:
                self.wait_exit()
        finally:
            for f in (self._out, self._err):
                f.close()
        problems = []
        if self.returncode != 0:
            problems.append("exit status %s (expected 0)" % self.returncode)
        m = self.sanitizer_report()
        if m:
            problems.append("sanitizer report (%s) in stderr" % m)
        if problems:
            raise AssertionError("mailedge teardown: %s\n%s" % ("; ".join(problems),
                                                                 self.describe()))


def run_mailedge(binary: str, args: List[str], timeout: float = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run([binary] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=DEADLINE if timeout is None else timeout, env=env, text=True)


# --------------------------------------------------------------------------
# configuration


def block(kind: str, name: Optional[str], lines) -> str:
    head = "%s %s {" % (kind, name) if name else "%s {" % kind
    return "\n".join([head] + ["    " + ln for ln in lines if ln] + ["}", ""])


# Started as root, mailedge refuses to run without `user`; the tests that are
# not about privileges keep root explicitly (test_privileges.py covers the rest).
AS_ROOT = ["user root"] if os.geteuid() == 0 else []


def global_block(splice: Optional[str] = None, grace: str = "5s", log: str = "stderr", extra=()) -> str:
    lines = ["log %s" % log, "grace %s" % grace]
    if not any(str(x).split()[:1] == ["user"] for x in extra):
        lines += AS_ROOT
    if splice is not None:
        lines.append("splice %s" % splice)
    return block("global", None, lines + list(extra))


def backend_block(name: str, servers, send_proxy: Optional[str] = None,
                  balance: Optional[str] = None, extra=()) -> str:
    """servers: list of addresses ("ip:port") or (name, address) tuples."""
    lines = []
    for i, s in enumerate(servers):
        if isinstance(s, tuple):
            lines.append("server %s %s" % s)
        else:
            lines.append("server s%d %s" % (i + 1, s))
    if send_proxy:
        lines.append("send-proxy %s" % send_proxy)
    if balance:
        lines.append("balance %s" % balance)
    return block("backend", name, lines + list(extra))


def listener_block(name: str, binds, protocol: str, route: str,
                   accept_proxy: Optional[str] = None, extra=()) -> str:
    """binds: "ip:port" or a list of them; accept_proxy: e.g. "v2 from 127.0.0.0/8"."""
    if isinstance(binds, str):
        binds = [binds]
    lines = ["bind %s" % " ".join(binds), "protocol %s" % protocol]
    if accept_proxy:
        lines.append("accept-proxy %s" % accept_proxy)
    lines.append("route -> %s" % route)
    return block("listener", name, lines + list(extra))


def parse_duration(s: str) -> float:
    """'500ms', '3s', '5m', '1h' -> seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", s)
    assert m, "bad duration %r" % s
    n = int(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


# --------------------------------------------------------------------------
# assertions shared by the test files


def expected_header(version: str, src, dst) -> bytes:
    """The exact header mailedge should write: v1/v2, PROXY command, no TLVs."""
    (sip, sport), (dip, dport) = src, dst
    if version == "v1":
        return pp.encode_v1(sip, sport, dip, dport)
    return pp.encode_v2(sip, sport, dip, dport)


def assert_session(line: dict, **want):
    """Checks the fields of an event=session line; values compared as text."""
    wrong = {k: (line.get(k), str(v)) for k, v in want.items() if line.get(k) != str(v)}
    assert not wrong, "session line fields differ (got, want): %r\nline: %r" % (wrong, line)


SESSION_FIELDS = ("id", "listener", "client", "peer", "backend", "server", "bytes_in",
                  "bytes_out", "duration_ms", "reason")


def assert_session_shape(line: dict):
    missing = [k for k in SESSION_FIELDS if k not in line]
    assert not missing, "session line lacks %r: %r" % (missing, line)
    assert re.fullmatch(r"[0-9a-f]{16}", line["id"]), "id is not 16 hex digits: %r" % line
    for k in ("bytes_in", "bytes_out", "duration_ms"):
        assert re.fullmatch(r"\d+", line[k]), "%s is not a non-negative integer: %r" % (k, line)
    for k in ("client", "peer"):
        split_addr(line[k])


def wait_header(conn: Peer, timeout: float = None) -> pp.ProxyHeader:
    """Waits for a complete PROXY header at the start of conn's data."""
    d = conn.wait(lambda d: pp.header_length(d) is not None, timeout, "PROXY header")
    return pp.decode(d)


def assert_header_in_one_segment(conn: Peer, hdr_len: int):
    """Call when conn has received exactly the PROXY header and nothing else:
    the header must have come in one TCP segment (one write; Postfix and
    Dovecot refuse a header split over segments)."""
    assert len(conn.snapshot()) == hdr_len, "call this before any other byte arrives"
    n = conn.data_segs_in()
    if n is not None:
        assert n == 1, "the PROXY header came in %d TCP segments, not one write" % n
