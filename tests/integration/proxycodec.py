"""PROXY protocol v1/v2 codec for the integration tests (stdlib only).

The decoder is strict (HAProxy doc/proxy-protocol.txt): it is used to check
what mailedge writes to backends, so anything a picky receiver such as
Postfix or Dovecot would reject must be rejected here too. The encoder
crafts inbound headers, including deliberately broken ones via the raw
helpers.
"""

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107
V2_MAX = 16 + 65535

FAM_UNSPEC = 0x00
FAM_TCP4 = 0x11
FAM_UDP4 = 0x12
FAM_TCP6 = 0x21
FAM_UDP6 = 0x22
FAM_UNIX_STREAM = 0x31
FAM_UNIX_DGRAM = 0x32
_V2_FAMS = {FAM_UNSPEC: 0, FAM_TCP4: 12, FAM_UDP4: 12, FAM_TCP6: 36, FAM_UDP6: 36,
            FAM_UNIX_STREAM: 216, FAM_UNIX_DGRAM: 216}

CMD_LOCAL = 0x0
CMD_PROXY = 0x1

TLV_ALPN = 0x01
TLV_AUTHORITY = 0x02
TLV_CRC32C = 0x03
TLV_NOOP = 0x04
TLV_UNIQUE_ID = 0x05
TLV_SSL = 0x20


class NeedMore(Exception):
    """The bytes are a valid prefix of a header; more are needed."""


class NotProxy(Exception):
    """The bytes do not start with a PROXY header of any version."""


class InvalidProxy(Exception):
    """The bytes start like a PROXY header but break the specification."""


@dataclass
class ProxyHeader:
    version: int                      # 1 or 2
    command: str                      # "PROXY" or "LOCAL" (v1 UNKNOWN decodes as LOCAL)
    family: str                       # "TCP4", "TCP6", "UNKNOWN", "UNSPEC", "UDP4", ...
    src_ip: Optional[str] = None
    dst_ip: Optional[str] = None
    src_port: Optional[int] = None
    dst_port: Optional[int] = None
    fam_byte: Optional[int] = None    # v2 only
    tlvs: List[Tuple[int, bytes]] = field(default_factory=list)
    length: int = 0                   # total header length in bytes
    raw: bytes = b""

    @property
    def src(self):
        return (self.src_ip, self.src_port)

    @property
    def dst(self):
        return (self.dst_ip, self.dst_port)


# --------------------------------------------------------------------------
# decoding


def _v1_ipv4(tok: bytes) -> str:
    parts = tok.split(b".")
    if len(parts) != 4:
        raise InvalidProxy("v1: bad IPv4 address %r" % tok)
    for p in parts:
        if not p or not p.isdigit() or len(p) > 3:
            raise InvalidProxy("v1: bad IPv4 address %r" % tok)
        if len(p) > 1 and p.startswith(b"0"):
            raise InvalidProxy("v1: leading zero in IPv4 address %r" % tok)
        if int(p) > 255:
            raise InvalidProxy("v1: bad IPv4 address %r" % tok)
    return tok.decode()


def _v1_ipv6(tok: bytes) -> str:
    try:
        s = tok.decode("ascii")
        socket.inet_pton(socket.AF_INET6, s)
    except (UnicodeDecodeError, OSError):
        raise InvalidProxy("v1: bad IPv6 address %r" % tok) from None
    return str(ipaddress.IPv6Address(s))


def _v1_port(tok: bytes) -> int:
    if not tok or not tok.isdigit() or len(tok) > 5:
        raise InvalidProxy("v1: bad port %r" % tok)
    if len(tok) > 1 and tok.startswith(b"0"):
        raise InvalidProxy("v1: leading zero in port %r" % tok)
    v = int(tok)
    if v > 65535:
        raise InvalidProxy("v1: port out of range %r" % tok)
    return v


def _decode_v1(data: bytes) -> ProxyHeader:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        # A bare CR or LF is not a terminator; neither is anything else.
        if len(data) >= V1_MAX:
            raise InvalidProxy("v1: no CRLF within 107 bytes")
        if b"\n" in data or (b"\r" in data[:-1]):
            raise InvalidProxy("v1: bare CR or LF")
        raise NeedMore()
    line = data[:end]
    total = end + 2
    if b"\r" in line or b"\n" in line or b"\x00" in line:
        raise InvalidProxy("v1: control character in line")
    toks = line.split(b" ")
    if toks[0] != b"PROXY" or len(toks) < 2:
        raise InvalidProxy("v1: malformed line")
    if toks[1] == b"UNKNOWN":
        return ProxyHeader(version=1, command="LOCAL", family="UNKNOWN", length=total,
                           raw=data[:total])
    if len(toks) != 6:
        raise InvalidProxy("v1: wrong number of fields (%d)" % len(toks))
    if toks[1] == b"TCP4":
        src, dst = _v1_ipv4(toks[2]), _v1_ipv4(toks[3])
        fam = "TCP4"
        if total > 56:
            raise InvalidProxy("v1: TCP4 line longer than 56 bytes")
    elif toks[1] == b"TCP6":
        src, dst = _v1_ipv6(toks[2]), _v1_ipv6(toks[3])
        fam = "TCP6"
    else:
        raise InvalidProxy("v1: unknown protocol %r" % toks[1])
    return ProxyHeader(version=1, command="PROXY", family=fam, src_ip=src, dst_ip=dst,
                       src_port=_v1_port(toks[4]), dst_port=_v1_port(toks[5]),
                       length=total, raw=data[:total])


def _decode_v2(data: bytes) -> ProxyHeader:
    if len(data) < 16:
        raise NeedMore()
    ver_cmd, fam, ln = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise InvalidProxy("v2: version %d" % (ver_cmd >> 4))
    cmd = ver_cmd & 0x0F
    if cmd not in (CMD_LOCAL, CMD_PROXY):
        raise InvalidProxy("v2: command %d" % cmd)
    if fam not in _V2_FAMS:
        raise InvalidProxy("v2: family/transport 0x%02x" % fam)
    total = 16 + ln
    if len(data) < total:
        raise NeedMore()
    body = data[16:total]
    hdr = ProxyHeader(version=2, command="PROXY" if cmd == CMD_PROXY else "LOCAL",
                      family="UNSPEC", fam_byte=fam, length=total, raw=data[:total])
    alen = _V2_FAMS[fam]
    if cmd == CMD_LOCAL:
        # The receiver ignores the addresses but honours the length.
        hdr.tlvs = []
        return hdr
    if len(body) < alen:
        raise InvalidProxy("v2: length %d shorter than the address block (%d)" % (ln, alen))
    if fam in (FAM_TCP4, FAM_UDP4):
        hdr.family = "TCP4" if fam == FAM_TCP4 else "UDP4"
        hdr.src_ip = socket.inet_ntop(socket.AF_INET, body[0:4])
        hdr.dst_ip = socket.inet_ntop(socket.AF_INET, body[4:8])
        hdr.src_port, hdr.dst_port = struct.unpack("!HH", body[8:12])
    elif fam in (FAM_TCP6, FAM_UDP6):
        hdr.family = "TCP6" if fam == FAM_TCP6 else "UDP6"
        hdr.src_ip = str(ipaddress.IPv6Address(body[0:16]))
        hdr.dst_ip = str(ipaddress.IPv6Address(body[16:32]))
        hdr.src_port, hdr.dst_port = struct.unpack("!HH", body[32:36])
    elif fam in (FAM_UNIX_STREAM, FAM_UNIX_DGRAM):
        hdr.family = "UNIX"
    # TLVs
    off = alen
    tlvs = []
    while off < len(body):
        if len(body) - off < 3:
            raise InvalidProxy("v2: truncated TLV header at %d" % off)
        t, tl = body[off], struct.unpack("!H", body[off + 1:off + 3])[0]
        if off + 3 + tl > len(body):
            raise InvalidProxy("v2: TLV 0x%02x overruns the header" % t)
        tlvs.append((t, bytes(body[off + 3:off + 3 + tl])))
        off += 3 + tl
    hdr.tlvs = tlvs
    return hdr


def decode(data: bytes) -> ProxyHeader:
    """Decodes the header at the start of data.

    Raises NeedMore (valid prefix), NotProxy (no header) or InvalidProxy.
    """
    data = bytes(data[:V2_MAX])   # a header is never longer; do not copy payload
    if not data:
        raise NeedMore()
    n = min(len(data), len(V2_SIG))
    if data[:n] == V2_SIG[:n]:
        if n < len(V2_SIG):
            raise NeedMore()
        return _decode_v2(data)
    n = min(len(data), 6)
    if data[:n] == b"PROXY "[:n]:
        if n < 6:
            raise NeedMore()
        return _decode_v1(data)
    raise NotProxy()


def try_decode(data: bytes) -> Optional[ProxyHeader]:
    """Like decode(), but returns None while more bytes are needed."""
    try:
        return decode(data)
    except NeedMore:
        return None


def header_length(data: bytes) -> Optional[int]:
    """Length of a complete header at the start of data, 0 when data does not
    start with a header, None while undecided. Invalid headers count as 0."""
    try:
        return decode(data).length
    except NeedMore:
        return None
    except (NotProxy, InvalidProxy):
        return 0


# --------------------------------------------------------------------------
# encoding


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def unmap(ip: str) -> str:
    """::ffff:a.b.c.d -> a.b.c.d; other addresses unchanged (canonical form)."""
    a = ipaddress.ip_address(ip)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return str(a)


def encode_v1(src_ip: str, src_port: int, dst_ip: str, dst_port: int,
              family: Optional[str] = None) -> bytes:
    if family is None:
        family = "TCP6" if _family(src_ip) == socket.AF_INET6 else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (family, src_ip, dst_ip, src_port, dst_port)).encode()


def encode_v1_unknown(rest: str = "") -> bytes:
    return ("PROXY UNKNOWN%s\r\n" % ((" " + rest) if rest else "")).encode()


def encode_tlvs(tlvs) -> bytes:
    out = b""
    for t, v in tlvs:
        out += struct.pack("!BH", t, len(v)) + v
    return out


def encode_v2(src_ip: str, src_port: int, dst_ip: str, dst_port: int,
              command: int = CMD_PROXY, tlvs=(), fam: Optional[int] = None,
              version: int = 2, length: Optional[int] = None) -> bytes:
    """A v2 header. fam, version and length may be forced to craft broken ones."""
    af = _family(src_ip)
    if af == socket.AF_INET:
        addrs = (socket.inet_pton(af, src_ip) + socket.inet_pton(af, dst_ip)
                 + struct.pack("!HH", src_port, dst_port))
        f = FAM_TCP4
    else:
        addrs = (socket.inet_pton(af, src_ip) + socket.inet_pton(af, dst_ip)
                 + struct.pack("!HH", src_port, dst_port))
        f = FAM_TCP6
    if fam is None:
        fam = f
    body = addrs + encode_tlvs(tlvs)
    if length is None:
        length = len(body)
    return V2_SIG + bytes([(version << 4) | command, fam]) + struct.pack("!H", length) + body


def encode_v2_local(body: bytes = b"", fam: int = FAM_UNSPEC) -> bytes:
    return V2_SIG + bytes([0x20 | CMD_LOCAL, fam]) + struct.pack("!H", len(body)) + body
