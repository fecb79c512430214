/*
 * proxyproto: PROXY protocol v1/v2 decoder and encoder (HAProxy
 * doc/proxy-protocol.txt). The decoder is stateless: it is re-run on the
 * whole buffer each time bytes arrive, says PP_NEED_MORE only while the
 * bytes so far can still become a valid header, and never reads past <len>.
 */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Spec 2.2: the v2 signature; it contains a NUL, so never use str*() on it. */
static const uint8_t v2_sig[PP_V2_SIG_LEN] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

/* Spec 2.2, byte 13 and 14. */
#define V2_VERSION 0x2
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_FAM_UNSPEC 0x00
#define V2_TCP4 0x11
#define V2_UDP4 0x12
#define V2_TCP6 0x21
#define V2_UDP6 0x22
#define V2_UNIX_STREAM 0x31
#define V2_UNIX_DGRAM 0x32
#define V2_INET_LEN 12
#define V2_INET6_LEN 36

/* Spec 2.2.x: TLV types. */
#define V2_TLV_AUTHORITY 0x02
#define V2_TLV_HDR_LEN 3

/* Longest v1 fields: an IPv6 text address, a 5-digit port. */
#define V1_IP4_MAX 15
#define V1_IP6_MAX 45
#define V1_PORT_MAX 5

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static enum pp_result
invalid(const char **why, const char *reason)
{
    *why = reason;
    return PP_INVALID;
}

static uint16_t
get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void
put_be16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static bool
is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool
is_xdigit(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void
set_sockaddr(struct sockaddr_storage *ss, int family, const uint8_t *addr, unsigned port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, addr, 4);
        sin->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, addr, 16);
        sin6->sin6_port = htons((uint16_t)port);
    }
}

/* ---- v1 ---------------------------------------------------------------- */

/*
 * The input ran out at a point where the line is still valid. Spec 2.1:
 * the CRLF must come within 107 bytes, so once 107 bytes are in, it never will.
 */
static enum pp_result
v1_short(size_t len, const char **why)
{
    if (len >= PP_V1_MAX)
        return invalid(why, "v1: no CRLF within 107 bytes");
    return PP_NEED_MORE;
}

/*
 * Checks an IPv4 field, or with <partial> the start of one. Spec 2.1:
 * dotted quad, no leading zeros (they would read as octal elsewhere).
 * Returns NULL or the reason.
 */
static const char *
v1_ip4(const uint8_t *s, size_t n, bool partial, uint8_t out[4])
{
    unsigned octets = 0, val = 0, digits = 0;

    if (memchr(s, ':', n) != NULL)
        return "v1: IPv6 address in a TCP4 line";
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (digits == 0)
                return "v1: empty IPv4 octet";
            if (octets == 3)
                return "v1: more than four IPv4 octets";
            out[octets++] = (uint8_t)val;
            val = digits = 0;
        } else if (is_digit(s[i])) {
            if (digits == 1 && val == 0)
                return "v1: IPv4 octet with a leading zero";
            val = val * 10 + (unsigned)(s[i] - '0');
            digits++;
            if (val > 255)
                return "v1: IPv4 octet above 255";
        } else {
            return "v1: invalid character in IPv4 address";
        }
    }
    if (partial)
        return NULL;
    if (digits == 0)
        return "v1: IPv4 address ends with an empty octet";
    if (octets != 3)
        return "v1: IPv4 address with fewer than four octets";
    out[3] = (uint8_t)val;
    return NULL;
}

/* Checks an IPv6 field or the start of one; inet_pton has the last word. */
static const char *
v1_ip6(const uint8_t *s, size_t n, bool partial, uint8_t out[16])
{
    char text[V1_IP6_MAX + 1];
    bool colon = false;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == ':')
            colon = true;
        else if (s[i] == '.' && !colon)
            return "v1: IPv4 address in a TCP6 line";
        else if (s[i] != '.' && !is_xdigit(s[i]))
            return "v1: invalid character in IPv6 address";
    }
    if (partial)
        return NULL;
    if (!colon)
        return "v1: IPv6 address without a colon";
    memcpy(text, s, n);
    text[n] = '\0';
    if (inet_pton(AF_INET6, text, out) != 1)
        return "v1: invalid IPv6 address";
    return NULL;
}

/* Checks a port field or the start of one. Spec 2.1: 0-65535, no leading zeros. */
static const char *
v1_port(const uint8_t *s, size_t n, bool partial, unsigned *out)
{
    unsigned val = 0;

    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return "v1: invalid character in port";
        if (i == 1 && s[0] == '0')
            return "v1: port with a leading zero";
        val = val * 10 + (unsigned)(s[i] - '0');
        if (val > 65535)
            return "v1: port above 65535";
    }
    if (!partial)
        *out = val;
    return NULL;
}

/* Spec 2.1: "TCP4", "TCP6" or "UNKNOWN" after "PROXY "; sets <*word> to its index. */
static enum pp_result
v1_word(const uint8_t *buf, size_t len, size_t *pos, int *word, const char **why)
{
    static const char *const words[] = { "TCP4", "TCP6", "UNKNOWN" };
    size_t avail = len - *pos;
    bool prefix = false;

    for (int i = 0; i < 3; i++) {
        size_t wl = strlen(words[i]);
        size_t n = avail < wl ? avail : wl;
        if (memcmp(buf + *pos, words[i], n) != 0)
            continue;
        if (n < wl) {
            prefix = true;
            continue;
        }
        if (avail == wl)
            return v1_short(len, why);
        uint8_t next = buf[*pos + wl];
        if (i == 2 && next != ' ' && next != '\r' && next != '\n')
            break;
        if (i != 2 && next != ' ') {
            if (next == '\r' || next == '\n')
                return invalid(why, "v1: no addresses after the protocol");
            break;
        }
        *pos += wl;
        *word = i;
        return PP_OK;
    }
    if (prefix)
        return v1_short(len, why);
    return invalid(why, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
}

/* Finds the CRLF at or after <pos>; a CR or LF on its own is an error (spec 2.1). */
static enum pp_result
v1_crlf(const uint8_t *buf, size_t len, size_t lim, size_t pos, size_t *end, const char **why)
{
    for (size_t i = pos; i < lim; i++) {
        if (buf[i] == '\n')
            return invalid(why, "v1: LF without CR");
        if (buf[i] != '\r')
            continue;
        if (i + 1 >= lim)
            return v1_short(len, why);
        if (buf[i + 1] != '\n')
            return invalid(why, "v1: CR not followed by LF");
        *end = i + 2;
        return PP_OK;
    }
    return v1_short(len, why);
}

static enum pp_result
decode_v1(const uint8_t *buf, size_t len, struct pp_header *out, size_t *consumed,
          const char **why)
{
    size_t lim = len < PP_V1_MAX ? len : PP_V1_MAX;
    size_t pos = V1_SIG_LEN, end;
    int word = -1;
    enum pp_result r;

    out->version = PP_V1;
    r = v1_word(buf, lim, &pos, &word, why);
    if (r != PP_OK)
        return r == PP_NEED_MORE ? v1_short(len, why) : r;

    if (word == 2) {
        /* Spec 2.1: UNKNOWN, then anything up to the CRLF, which we ignore. */
        r = v1_crlf(buf, len, lim, pos, &end, why);
        if (r != PP_OK)
            return r;
        out->local = true;
        *consumed = end;
        return PP_OK;
    }

    int family = word == 0 ? AF_INET : AF_INET6;
    uint8_t addr[2][16];
    unsigned port[2] = { 0, 0 };
    size_t max_field[4] = { V1_IP6_MAX, V1_IP6_MAX, V1_PORT_MAX, V1_PORT_MAX };
    if (family == AF_INET)
        max_field[0] = max_field[1] = V1_IP4_MAX;

    for (int f = 0; f < 4; f++) {
        pos++;  /* the single space before each field */
        size_t start = pos;
        while (pos < lim && pos - start <= max_field[f] && buf[pos] != ' ' &&
               buf[pos] != '\r' && buf[pos] != '\n')
            pos++;
        size_t n = pos - start;
        bool too_long = n > max_field[f];
        bool partial = pos == lim || too_long;
        if (n == 0 && !partial)
            return invalid(why, "v1: empty field (two spaces in a row?)");
        const char *bad;
        /* Check the characters first: they tell more than "too long" does. */
        if (f >= 2)
            bad = v1_port(buf + start, n, partial, &port[f - 2]);
        else if (family == AF_INET)
            bad = v1_ip4(buf + start, n, partial, addr[f]);
        else
            bad = v1_ip6(buf + start, n, partial, addr[f]);
        if (bad != NULL)
            return invalid(why, bad);
        if (too_long)
            return invalid(why, f < 2 ? "v1: address too long" : "v1: port too long");
        if (partial)
            return v1_short(len, why);
        if (f < 3 && buf[pos] != ' ')
            return invalid(why, "v1: line ends before the destination port");
    }
    if (buf[pos] == ' ')
        return invalid(why, "v1: extra field after the destination port");
    /* Here buf[pos] is CR or LF: v1_crlf accepts only CR LF. */
    r = v1_crlf(buf, len, lim, pos, &end, why);
    if (r != PP_OK)
        return r;

    set_sockaddr(&out->src, family, addr[0], port[0]);
    set_sockaddr(&out->dst, family, addr[1], port[1]);
    *consumed = end;
    return PP_OK;
}

/* ---- v2 ---------------------------------------------------------------- */

/* Spec 2.2.7 onward: type u8, length u16be, value; none may overrun the header. */
static enum pp_result
decode_tlvs(const uint8_t *p, size_t n, struct pp_header *out, const char **why)
{
    size_t off = 0;

    while (off < n) {
        if (n - off < V2_TLV_HDR_LEN)
            return invalid(why, "v2: truncated TLV header");
        uint8_t type = p[off];
        size_t tlen = get_be16(p + off + 1);
        off += V2_TLV_HDR_LEN;
        if (tlen > n - off)
            return invalid(why, "v2: TLV overruns the header");
        if (type == V2_TLV_AUTHORITY) {
            if (out->authority != NULL)
                return invalid(why, "v2: duplicate AUTHORITY TLV");
            out->authority = p + off;
            out->authority_len = tlen;
        }
        off += tlen;
    }
    return PP_OK;
}

static enum pp_result
decode_v2(const uint8_t *buf, size_t len, struct pp_header *out, size_t *consumed,
          const char **why)
{
    out->version = PP_V2;
    /* Check each fixed byte as soon as it arrives, so garbage fails early. */
    if (len <= PP_V2_SIG_LEN)
        return PP_NEED_MORE;
    unsigned version = buf[12] >> 4, cmd = buf[12] & 0x0f;
    if (version != V2_VERSION)
        return invalid(why, "v2: version is not 2");
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return invalid(why, "v2: command is neither LOCAL nor PROXY");
    if (len <= PP_V2_SIG_LEN + 1)
        return PP_NEED_MORE;
    uint8_t fam = buf[13];
    switch (fam) {
    case V2_FAM_UNSPEC:
    case V2_TCP4:
    case V2_UDP4:
    case V2_TCP6:
    case V2_UDP6:
    case V2_UNIX_STREAM:
    case V2_UNIX_DGRAM:
        break;
    default:
        return invalid(why, "v2: unknown address family or transport");
    }
    if (cmd == V2_CMD_PROXY && (fam == V2_UDP4 || fam == V2_UDP6 || fam == V2_UNIX_DGRAM))
        return invalid(why, "v2: datagram transport over a stream connection");
    if (len < PP_V2_HDR_LEN)
        return PP_NEED_MORE;

    size_t body = get_be16(buf + 14);
    size_t total = PP_V2_HDR_LEN + body;
    if (total > PP_HEADER_MAX)
        return invalid(why, "v2: header longer than we accept");
    size_t need = 0;
    if (cmd == V2_CMD_PROXY && fam == V2_TCP4)
        need = V2_INET_LEN;
    else if (cmd == V2_CMD_PROXY && fam == V2_TCP6)
        need = V2_INET6_LEN;
    if (body < need)
        return invalid(why, "v2: length shorter than the address block");
    if (len < total)
        return PP_NEED_MORE;

    /*
     * Spec 2.2: LOCAL means use the real endpoints and skip the whole block
     * (its length is still honoured); UNSPEC and UNIX give no IP to use.
     */
    if (need == 0) {
        out->local = true;
        *consumed = total;
        return PP_OK;
    }

    const uint8_t *a = buf + PP_V2_HDR_LEN;
    if (fam == V2_TCP4) {
        set_sockaddr(&out->src, AF_INET, a, get_be16(a + 8));
        set_sockaddr(&out->dst, AF_INET, a + 4, get_be16(a + 10));
    } else {
        set_sockaddr(&out->src, AF_INET6, a, get_be16(a + 32));
        set_sockaddr(&out->dst, AF_INET6, a + 16, get_be16(a + 34));
    }
    enum pp_result r = decode_tlvs(a + need, body - need, out, why);
    if (r != PP_OK)
        return r;
    *consumed = total;
    return PP_OK;
}

enum pp_result
proxyproto_decode(const uint8_t *buf, size_t len, enum pp_accept accept,
                  struct pp_header *out, size_t *consumed, const char **why)
{
    const char *dummy_why;
    enum pp_result r;

    if (why == NULL)
        why = &dummy_why;
    memset(out, 0, sizeof(*out));
    *consumed = 0;
    if ((accept & PP_ACCEPT_ANY) == 0)
        return PP_NOT_PROXY;
    if (len == 0)
        return PP_NEED_MORE;

    if ((accept & PP_ACCEPT_V2) &&
        memcmp(buf, v2_sig, len < PP_V2_SIG_LEN ? len : PP_V2_SIG_LEN) == 0) {
        if (len < PP_V2_SIG_LEN)
            return PP_NEED_MORE;
        r = decode_v2(buf, len, out, consumed, why);
    } else if ((accept & PP_ACCEPT_V1) &&
               memcmp(buf, v1_sig, len < V1_SIG_LEN ? len : V1_SIG_LEN) == 0) {
        if (len < V1_SIG_LEN)
            return PP_NEED_MORE;
        r = decode_v1(buf, len, out, consumed, why);
    } else {
        return PP_NOT_PROXY;
    }
    if (r != PP_OK) {
        memset(out, 0, sizeof(*out));
        *consumed = 0;
    }
    return r;
}

/* ---- encoder ----------------------------------------------------------- */

struct endpoint {
    int family;
    uint8_t addr[16];
    unsigned port;
};

/* Reads a sockaddr, writing IPv4-mapped IPv6 as the IPv4 it stands for. */
static int
endpoint_get(const struct sockaddr *sa, struct endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        ep->family = AF_INET;
        memcpy(ep->addr, &sin->sin_addr, 4);
        ep->port = ntohs(sin->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        ep->port = ntohs(sin6->sin6_port);
        if (memcmp(sin6->sin6_addr.s6_addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
            ep->family = AF_INET;
            memcpy(ep->addr, &sin6->sin6_addr.s6_addr[12], 4);
        } else {
            ep->family = AF_INET6;
            memcpy(ep->addr, &sin6->sin6_addr, 16);
        }
        return 0;
    }
    return -1;
}

/* Rewrites an IPv4 endpoint as ::ffff:a.b.c.d. */
static void
endpoint_promote(struct endpoint *ep)
{
    if (ep->family != AF_INET)
        return;
    memmove(ep->addr + 12, ep->addr, 4);
    memcpy(ep->addr, v4mapped_prefix, sizeof(v4mapped_prefix));
    ep->family = AF_INET6;
}

static size_t
encode_v1(const struct endpoint *s, const struct endpoint *d, uint8_t *buf, size_t cap)
{
    char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
    char line[PP_V1_MAX + 1];

    if (inet_ntop(s->family, s->addr, sa, sizeof(sa)) == NULL ||
        inet_ntop(d->family, d->addr, da, sizeof(da)) == NULL)
        return 0;
    int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                     s->family == AF_INET ? "TCP4" : "TCP6", sa, da, s->port, d->port);
    if (n < 0 || (size_t)n >= sizeof(line) || (size_t)n > cap)
        return 0;
    memcpy(buf, line, (size_t)n);
    return (size_t)n;
}

static size_t
encode_v2(const struct endpoint *s, const struct endpoint *d, const char *authority,
          uint8_t *buf, size_t cap)
{
    size_t alen = authority != NULL ? strlen(authority) : 0;
    size_t block = s->family == AF_INET ? V2_INET_LEN : V2_INET6_LEN;
    size_t tlv = alen > 0 ? V2_TLV_HDR_LEN + alen : 0;

    /* Our own decoder's cap: no receiver should be sent more than we take. */
    if (alen > PP_HEADER_MAX || PP_V2_HDR_LEN + block + tlv > PP_HEADER_MAX)
        return 0;
    size_t total = PP_V2_HDR_LEN + block + tlv;
    if (cap < total)
        return 0;

    uint8_t *p = buf;
    memcpy(p, v2_sig, PP_V2_SIG_LEN);
    p[12] = V2_VERSION << 4 | V2_CMD_PROXY;
    p[13] = s->family == AF_INET ? V2_TCP4 : V2_TCP6;
    put_be16(p + 14, (unsigned)(total - PP_V2_HDR_LEN));
    p += PP_V2_HDR_LEN;
    size_t alen_ip = s->family == AF_INET ? 4 : 16;
    memcpy(p, s->addr, alen_ip);
    memcpy(p + alen_ip, d->addr, alen_ip);
    put_be16(p + 2 * alen_ip, s->port);
    put_be16(p + 2 * alen_ip + 2, d->port);
    p += block;
    if (tlv > 0) {
        p[0] = V2_TLV_AUTHORITY;
        put_be16(p + 1, (unsigned)alen);
        /* A TLV value is length-prefixed, not a C string. */
        memcpy(p + V2_TLV_HDR_LEN, authority, alen); // NOLINT(bugprone-not-null-terminated-result)
    }
    return total;
}

size_t
proxyproto_encode(enum pp_version v, const struct sockaddr *src, const struct sockaddr *dst,
                  const char *authority, uint8_t *buf, size_t cap)
{
    struct endpoint s, d;

    if (endpoint_get(src, &s) != 0 || endpoint_get(dst, &d) != 0)
        return 0;
    /* One header holds one family (spec 2.1, 2.2): mixed pairs go IPv6. */
    if (s.family != d.family) {
        endpoint_promote(&s);
        endpoint_promote(&d);
    }
    if (v == PP_V1)
        return encode_v1(&s, &d, buf, cap);
    if (v == PP_V2)
        return encode_v2(&s, &d, authority, buf, cap);
    return 0;
}

size_t
proxyproto_encode_v2_local(uint8_t *buf, size_t cap)
{
    if (cap < PP_V2_HDR_LEN)
        return 0;
    memcpy(buf, v2_sig, PP_V2_SIG_LEN);
    buf[12] = V2_VERSION << 4 | V2_CMD_LOCAL;
    buf[13] = V2_FAM_UNSPEC;
    put_be16(buf + 14, 0);
    return PP_V2_HDR_LEN;
}
