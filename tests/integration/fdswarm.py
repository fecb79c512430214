"""Thousands of sockets in a helper process, for the tests that need more
descriptors than one process may have (20,000 here): run as

  python3 fdswarm.py clients IP PORT SOURCE COUNT EXPECT
      COUNT clients from SOURCE (one 127.x address, so its ephemeral ports
      suffice), at most 128 connects in flight; each is classified as
      served (received EXPECT), refused (421 4.3.2 ... then a clean EOF),
      reset, eof (closed without a word), other (anything else).
  python3 fdswarm.py server IP PORT GREETING
      an SMTP server: GREETING to every connection, 221 to QUIT (health
      checks), connections otherwise kept open.

Both print one JSON object of counters per 0.2 s on stdout and exit,
closing every socket, when stdin closes. Loopback only; stdlib only.
"""

import errno
import json
import os
import selectors
import socket
import sys
import time

INFLIGHT = 128
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def _check_loopback(ip):
    assert ip.startswith("127."), ip


class Reporter:
    def __init__(self, sel):
        self.sel = sel
        self.next = 0.0
        sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")

    def tick(self, counters):
        now = time.monotonic()
        if now >= self.next:
            self.next = now + 0.2
            sys.stdout.write(json.dumps(counters) + "\n")
            sys.stdout.flush()

    @staticmethod
    def stdin_closed():
        return os.read(sys.stdin.fileno(), 4096) == b""


def clients(ip, port, source, count, expect):
    _check_loopback(ip)
    _check_loopback(source)
    expect = expect.encode()
    sel = selectors.DefaultSelector()
    rep = Reporter(sel)
    c = {k: 0 for k in ("connected", "served", "refused", "reset", "eof", "other", "pending")}
    socks = {}
    started = 0

    def decide(s, what):
        st = socks[s]
        if st["result"] is None:
            st["result"] = what
            c[what] += 1
        if what != "served":
            sel.unregister(s)

    while True:
        while started < count and c["pending"] < INFLIGHT:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            # The port is picked at connect, for the 4-tuple: a bind-time
            # pick would hold the port number away from every other
            # connect (mailedge's own to its servers) on a large swarm.
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((source, 0))
            rc = s.connect_ex((ip, port))
            assert rc in (0, errno.EINPROGRESS), os.strerror(rc)
            socks[s] = {"data": b"", "connected": False, "result": None}
            sel.register(s, selectors.EVENT_WRITE)
            c["pending"] += 1
            started += 1
        for key, _ in sel.select(0.05):
            if key.data == "stdin":
                if rep.stdin_closed():
                    for s in socks:
                        s.close()
                    return
                continue
            s = key.fileobj
            st = socks[s]
            if not st["connected"]:
                st["connected"] = True
                c["pending"] -= 1
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sel.unregister(s)
                    st["result"] = "other"
                    c["other"] += 1
                    continue
                c["connected"] += 1
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                decide(s, "reset")
                continue
            except BlockingIOError:
                continue
            if d:
                st["data"] += d
                if st["data"] == expect:
                    decide(s, "served")
                elif not (expect.startswith(st["data"]) or b"421 4.3.2 ".startswith(st["data"][:10])):
                    decide(s, "other")
                continue
            # EOF: a refusal if the whole goodbye came first.
            data = st["data"]
            if data.startswith(b"421 4.3.2 ") and data.endswith(b"\r\n") and data.count(b"\n") == 1:
                decide(s, "refused")
            elif data:
                decide(s, "other")
            else:
                decide(s, "eof")
        rep.tick(c)


def server(ip, port, greeting):
    _check_loopback(ip)
    greeting = greeting.encode()
    sel = selectors.DefaultSelector()
    rep = Reporter(sel)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, port))
    ls.listen(4096)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, "listen")
    c = {"accepted": 0, "quit": 0, "open": 0}
    conns = set()
    while True:
        for key, _ in sel.select(0.05):
            if key.data == "stdin":
                if rep.stdin_closed():
                    for s in conns:
                        s.close()
                    ls.close()
                    return
            elif key.data == "listen":
                for _ in range(256):
                    try:
                        s, _peer = ls.accept()
                    except BlockingIOError:
                        break
                    s.setblocking(False)
                    s.send(greeting)
                    sel.register(s, selectors.EVENT_READ, "conn")
                    conns.add(s)
                    c["accepted"] += 1
            else:
                s = key.fileobj
                try:
                    d = s.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    d = b""
                if d.startswith(b"QUIT"):
                    c["quit"] += 1
                    s.send(b"221 2.0.0 bye\r\n")
                if not d or d.startswith(b"QUIT"):
                    sel.unregister(s)
                    conns.discard(s)
                    s.close()
        c["open"] = len(conns)
        rep.tick(c)


if __name__ == "__main__":
    if sys.argv[1] == "clients":
        clients(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        server(sys.argv[2], int(sys.argv[3]), sys.argv[4])
