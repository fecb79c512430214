"""A minimal UDP DNS responder on loopback for the DNS-name tests.

Answers A and AAAA questions for configured names with a TTL; the answers
and the mode ("ok", "nxdomain", "servfail", "noanswer") can change while it
runs. Only loopback addresses are served (127.0.0.0/8, ::1 and ::ffff:127.x)."""

import ipaddress
import socket
import struct
import threading

import harness as h

QTYPE_A, QTYPE_AAAA = 1, 28


class DnsServer:
    def __init__(self, ip: str):
        h.check_loopback(ip)
        self.ip = ip
        self.sock = socket.socket(h.family(ip), socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)  # so close() ends the thread promptly
        self.lock = threading.Lock()
        self.names = {}          # name -> (list of addresses, ttl)
        self.mode = "ok"
        self.queries = 0
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return h.fmt_addr(self.ip, self.port)

    def set(self, name: str, addrs, ttl: int = 1):
        for a in addrs:
            ip = ipaddress.ip_address(a)
            mapped = getattr(ip, "ipv4_mapped", None)
            assert ip.is_loopback or (mapped is not None and mapped.is_loopback), a
        with self.lock:
            self.names[name.lower().rstrip(".")] = (list(addrs), ttl)

    def remove(self, name: str):
        with self.lock:
            self.names.pop(name.lower().rstrip("."), None)

    def set_mode(self, mode: str):
        assert mode in ("ok", "nxdomain", "servfail", "noanswer")
        with self.lock:
            self.mode = mode

    def _loop(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:  # noqa: BLE001 - malformed question: no answer
                continue
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, q: bytes):
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        if qd != 1:
            return None
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii").lower())
            i += 1 + q[i]
        qend = i + 5
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
        question = q[12:qend]
        name = ".".join(labels)
        with self.lock:
            self.queries += 1
            mode = self.mode
            entry = self.names.get(name)
        rd = flags & 0x0100
        rcode, answers = 0, []
        if mode == "servfail":
            rcode = 2
        elif mode == "nxdomain" or (mode == "ok" and entry is None):
            rcode = 3
        elif mode == "ok":
            addrs, ttl = entry
            for a in addrs:
                ip = ipaddress.ip_address(a)
                t = QTYPE_A if ip.version == 4 else QTYPE_AAAA
                if t == qtype:
                    answers.append(struct.pack("!HHHIH", 0xC00C, t, 1, ttl, len(ip.packed))
                                   + ip.packed)
        hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1,
                          len(answers), 0, 0)
        return hdr + question + b"".join(answers)

    def close(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(timeout=5)
