"""A scripted fake mail server (SMTP, IMAP or POP3) for the health-check
and holding tests: it records every byte a peer sends, the PROXY header,
and how each connection ends (FIN or RST)."""

import socket
import threading
import time

import harness as h
import proxycodec as pp

# Passing greetings and the replies a check expects, per protocol.
GOOD = {
    "smtp": ([b"220 fake ESMTP\r\n"], b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
    "imap": ([b"* OK fake IMAP ready\r\n"], b"a LOGOUT\r\n", b"* BYE logging out\r\na OK done\r\n"),
    "pop3": ([b"+OK fake POP3\r\n"], b"QUIT\r\n", b"+OK bye\r\n"),
}


class FakeMail:
    """A threaded mail server with a switchable script. Each connection is
    recorded as a dict: header (decoded PROXY header or None), first_chunk
    (length of the first recv), early (bytes received before the final
    greeting line was sent), command (the line received after it), end
    ("fin", "rst" or "timeout") and peer (address as seen here).

    mode: "good"; "slow" (a 220- line, a pause, then 220); "421", "554",
    "garbage"; "silent" (never speaks). port: 0 for any free one, or a
    chosen port, so a server can be started after mailedge, and stopped and
    started again on the same address."""

    def __init__(self, ip, proto="smtp", proxy=False, mode="good", pause=0.3, port=0):
        self.proto = proto
        self.proxy = proxy
        self.mode = mode
        self.pause = pause
        self.conns = []
        self.lock = threading.Lock()
        self.lsock = socket.socket(h.family(ip), socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((ip, port))
        self.lsock.listen(64)
        self.lsock.settimeout(0.05)
        self.ip, self.port = self.lsock.getsockname()[:2]
        self.stop = threading.Event()
        self.threads = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    @property
    def addr(self):
        return h.fmt_addr(self.ip, self.port)

    def records(self):
        with self.lock:
            return [dict(r) for r in self.conns]

    def done(self, pred=lambda r: True):
        return [r for r in self.records() if "end" in r and pred(r)]

    def sessions_from(self, ip):
        return [r for r in self.records() if r.get("header") and r["header"].src_ip == ip]

    def _accept_loop(self):
        while not self.stop.is_set():
            try:
                s, peer = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            rec = {"peer": peer[:2], "mode": self.mode}
            with self.lock:
                self.conns.append(rec)
            t = threading.Thread(target=self._serve, args=(s, rec), daemon=True)
            t.start()
            self.threads.append(t)

    def _recv(self, s, buf, until, deadline):
        """Reads into buf until until(buf) or EOF/RST/deadline; returns the state."""
        while not until(buf):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(4096)
            except socket.timeout:
                return "timeout"
            except ConnectionResetError:
                return "rst"
            if not d:
                return "fin"
            buf += d
        return None

    def _serve(self, s, rec):
        deadline = time.monotonic() + h.DEADLINE
        buf = bytearray()
        try:
            if self.proxy:
                s.settimeout(h.DEADLINE)
                try:
                    first = s.recv(4096)
                except ConnectionResetError:
                    rec["end"] = "rst"
                    return
                rec["first_chunk"] = len(first)
                buf += first
                end = self._recv(s, buf, lambda b: pp.header_length(bytes(b)) not in (None, 0),
                                 deadline)
                if end:
                    rec["end"] = end
                    return
                hdr = pp.decode(bytes(buf))
                rec["header"] = hdr
                del buf[:hdr.length]
            mode = rec["mode"]
            greeting, cmd, reply = GOOD[self.proto]
            if mode == "slow":
                greeting = [b"220-fake greet pause\r\n", b"220 fake ESMTP\r\n"]
            elif mode == "421":
                greeting = [b"421 4.3.2 fake busy\r\n"]
            elif mode == "554":
                greeting = [b"554 5.7.1 fake no\r\n"]
            elif mode == "garbage":
                greeting = [b"HTTP/1.0 400 Bad Request\r\n"]
            elif mode == "bye":
                greeting = [{"imap": b"* BYE fake\r\n", "pop3": b"-ERR fake\r\n"}[self.proto]]
            elif mode == "silent":
                greeting = []
            for i, part in enumerate(greeting):
                if i > 0:
                    # A greet pause: anything received now was sent too early.
                    time.sleep(self.pause)
                    s.setblocking(False)
                    try:
                        d = s.recv(4096)
                        buf += d
                    except (BlockingIOError, ConnectionResetError):
                        pass
                    s.setblocking(True)
                s.sendall(part)
            rec["early"] = bytes(buf)
            if mode in ("good", "slow"):
                end = self._recv(s, buf, lambda b: b"\n" in b, deadline)
                rec["command"] = bytes(buf)
                if end:
                    rec["end"] = end
                    return
                s.sendall(reply)
                buf.clear()
            end = self._recv(s, buf, lambda b: False, deadline)
            rec["after"] = bytes(buf)
            rec["end"] = end
        except OSError as e:
            rec["end"] = "error %s" % e
        finally:
            s.close()

    def close(self):
        self.stop.set()
        self.lsock.close()
