"""A fake Stalwart SMTP listener for `mailedge verify` (Stalwart is not in
Debian). It follows Stalwart's documented behaviour, not its code:

- PROXY is enabled per listener by its trusted networks
  (`server.listener.<id>.proxy.trusted-networks`); a connection from a
  trusted address must start with a PROXY header (v1 or v2), whose client
  becomes the session's address.
- From an address outside those networks the header is not read as one:
  its bytes go to the SMTP parser, which answers `500 5.5.1 Invalid
  command.` to each line (the auto-ban counts these).
- A v2 header with the PP2_TYPE_SSL TLV (0x20) marks the session as TLS.

Threads, loopback only, stopped by stop(). `sessions` records what each
connection looked like to the receiver."""

import ipaddress
import socket
import struct
import threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_proxy(buf):
    """(client_ip or None, tls, consumed) for a complete header at the
    start of buf; None when it is not one."""
    if buf.startswith(b"PROXY "):
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        parts = buf[:end].decode("ascii", "replace").split(" ")
        return (parts[2] if len(parts) == 6 else None), False, end + 2
    if buf.startswith(SIG) and len(buf) >= 16:
        fam = buf[13]
        length = struct.unpack("!H", buf[14:16])[0]
        body = buf[16:16 + length]
        if len(body) < length:
            return None
        ip, off = None, 0
        if fam >> 4 == 1:
            ip, off = str(ipaddress.IPv4Address(body[0:4])), 12
        elif fam >> 4 == 2:
            ip, off = str(ipaddress.IPv6Address(body[0:16])), 36
        tls = False
        while off + 3 <= len(body):
            t, n = body[off], struct.unpack("!H", body[off + 1:off + 3])[0]
            tls = tls or t == 0x20
            off += 3 + n
        return ip, tls, 16 + length
    return None


class FakeStalwart:
    def __init__(self, trusted, host="127.0.0.1"):
        self.trusted = [ipaddress.ip_network(n) for n in trusted]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.sessions = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            c, peer = self.sock.accept()
            if self.stopping:
                c.close()
                break
            threading.Thread(target=self._serve, args=(c, peer[0]), daemon=True).start()

    def _serve(self, c, peer):
        s = {"peer": peer, "client": peer, "tls": False, "proxy": False, "replies": []}
        c.settimeout(5)
        buf = b""
        try:
            if any(ipaddress.ip_address(peer) in n for n in self.trusted):
                while True:
                    got = parse_proxy(buf)
                    if got is not None:
                        break
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                    if len(buf) > 536:
                        return
                s["client"], s["tls"], used = got
                s["proxy"] = True
                buf = buf[used:]
            c.sendall(b"220 mx.example.test Stalwart ESMTP at your service\r\n")
            while True:
                while b"\n" not in buf:
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                line, buf = buf.split(b"\n", 1)
                word = line.strip().split(b" ")[0].upper() if line.strip() else b""
                if word == b"QUIT":
                    reply = b"221 2.0.0 Bye.\r\n"
                elif word in (b"EHLO", b"HELO"):
                    reply = b"250 mx.example.test\r\n"
                else:
                    reply = b"500 5.5.1 Invalid command.\r\n"
                s["replies"].append(reply.decode().strip())
                c.sendall(reply)
                if word == b"QUIT":
                    return
        except OSError:
            pass
        finally:
            with self.lock:
                self.sessions.append(s)
            c.close()
