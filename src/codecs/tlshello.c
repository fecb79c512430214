/*
 * tlshello: the ClientHello parser. A cursor walks the handshake bytes
 * across record boundaries, checking each record header as it is reached,
 * and every field is read against `left`, what remains of the enclosing
 * length, so a length that points past its container is refused before its
 * bytes are waited for.
 */
#include "tlshello.h"

#include <string.h>

#define REC_HDR 5
#define REC_MAX 16384 /* RFC 8446 5.1: a fragment is at most 2^14 bytes */
#define REC_HANDSHAKE 22
#define HS_HDR 4
#define HS_CLIENT_HELLO 1
#define EXT_HDR 4
#define EXT_SERVER_NAME 0
#define SNI_ENTRY_HDR 3
#define SNI_HOST_NAME 0
#define SESSION_ID_MAX 32
#define HOST_MAX 253
#define LABEL_MAX 63

static const char too_big[] = "ClientHello does not fit in 16384 bytes";

/* The handshake bytes of the input, record after record. */
struct cur {
    const uint8_t *buf;
    size_t len;      /* input, clamped to TH_HELLO_MAX */
    size_t pos;      /* next input byte */
    size_t rec_left; /* payload bytes of the current record not read yet */
    size_t nrec;     /* records started */
    size_t seen;     /* handshake bytes read */
    size_t total;    /* the handshake message with its header; 0 until known */
    enum th_result res;
    const char *why;
    size_t need;
};

static bool
fail(struct cur *c, enum th_result r, const char *why)
{
    c->res = r;
    c->why = why;
    return false;
}

/* The least input that can hold <r> more handshake bytes from the cursor on. */
static size_t
min_end(const struct cur *c, size_t r)
{
    if (r <= c->rec_left)
        return c->pos + r;
    size_t rest = r - c->rec_left;
    return c->pos + c->rec_left + rest + REC_HDR * ((rest + REC_MAX - 1) / REC_MAX);
}

static bool
out_of_input(struct cur *c)
{
    size_t r = c->total != 0 ? c->total - c->seen : HS_HDR - c->seen;

    c->need = min_end(c, r);
    if (c->need > TH_HELLO_MAX)
        return fail(c, TH_INVALID, too_big);
    return fail(c, TH_NEED_MORE, NULL);
}

/* Enters the record at the cursor. Bytes are judged as soon as they are there. */
static bool
next_record(struct cur *c)
{
    const uint8_t *p = c->buf + c->pos;
    size_t avail = c->len - c->pos;
    bool first = c->nrec == 0;

    if (avail >= 1 && p[0] != REC_HANDSHAKE)
        return first ? fail(c, TH_NOT_TLS, "not a TLS handshake record")
                     : fail(c, TH_INVALID, "a record of another type inside the ClientHello");
    if (avail >= 2 && p[1] != 3)
        return first ? fail(c, TH_NOT_TLS, "record version is not 3.x")
                     : fail(c, TH_INVALID, "record version inside the ClientHello is not 3.x");
    if (avail < REC_HDR)
        return out_of_input(c);
    size_t n = (size_t)p[3] << 8 | p[4];
    /* RFC 8446 5.1: no zero-length handshake fragments, none over 2^14. */
    if (n == 0)
        return fail(c, TH_INVALID, "empty handshake record");
    if (n > REC_MAX)
        return fail(c, TH_INVALID, "record longer than 2^14 bytes");
    c->pos += REC_HDR;
    c->rec_left = n;
    c->nrec++;
    return true;
}

/* Reads <n> handshake bytes into <dst>, or skips them when <dst> is NULL. */
static bool
take(struct cur *c, uint8_t *dst, size_t n)
{
    while (n > 0) {
        if (c->rec_left == 0 && !next_record(c))
            return false;
        size_t avail = c->len - c->pos;
        if (avail == 0)
            return out_of_input(c);
        size_t k = n < c->rec_left ? n : c->rec_left;
        if (k > avail)
            k = avail;
        if (dst != NULL) {
            memcpy(dst, c->buf + c->pos, k);
            dst += k;
        }
        c->pos += k;
        c->rec_left -= k;
        c->seen += k;
        n -= k;
    }
    return true;
}

/* A big-endian length of <width> bytes, taken from <*left>. */
static bool
field_len(struct cur *c, size_t *left, size_t width, size_t *n, const char *why)
{
    uint8_t b[3] = {0};

    if (*left < width)
        return fail(c, TH_INVALID, why);
    if (!take(c, b, width))
        return false;
    *left -= width;
    *n = 0;
    for (size_t i = 0; i < width; i++)
        *n = *n << 8 | b[i];
    return true;
}

static bool
skip(struct cur *c, size_t *left, size_t n, const char *why)
{
    if (n > *left)
        return fail(c, TH_INVALID, why);
    *left -= n;
    return take(c, NULL, n);
}

/* RFC 6066 3: struct { NameType name_type; opaque HostName<1..2^16-1>; } ServerName<1..2^16-1>. */
static bool
server_name(struct cur *c, size_t left, struct th_hello *out)
{
    size_t n;

    if (!field_len(c, &left, 2, &n, "server_name extension too short for its list length"))
        return false;
    if (n != left)
        return fail(c, TH_INVALID, "server_name list length does not match its extension");
    if (n == 0)
        return fail(c, TH_INVALID, "empty server_name list");
    while (left > 0) {
        uint8_t e[SNI_ENTRY_HDR];
        if (left < SNI_ENTRY_HDR)
            return fail(c, TH_INVALID, "server_name entry header runs past its list");
        if (!take(c, e, SNI_ENTRY_HDR))
            return false;
        left -= SNI_ENTRY_HDR;
        n = (size_t)e[1] << 8 | e[2];
        if (n > left)
            return fail(c, TH_INVALID, "server name runs past its list");
        left -= n;
        if (e[0] != SNI_HOST_NAME) {
            if (!take(c, NULL, n))
                return false;
            continue;
        }
        /* "MUST NOT contain more than one name of the same name_type" */
        if (out->has_sni)
            return fail(c, TH_INVALID, "two host names in server_name");
        if (n == 0)
            return fail(c, TH_INVALID, "empty server name");
        if (n > TH_NAME_MAX)
            return fail(c, TH_INVALID, "server name longer than 255 bytes");
        if (!take(c, out->sni, n))
            return false;
        out->sni_len = n;
        out->has_sni = true;
    }
    return true;
}

static bool
client_hello(struct cur *c, struct th_hello *out)
{
    uint8_t h[HS_HDR], v[2 + 32];
    size_t left, n;
    bool sni_seen = false;

    if (!take(c, h, HS_HDR))
        return false;
    if (h[0] != HS_CLIENT_HELLO)
        return fail(c, TH_INVALID, "first handshake message is not a ClientHello");
    left = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    c->total = HS_HDR + left;
    if (min_end(c, left) > TH_HELLO_MAX)
        return fail(c, TH_INVALID, too_big);

    /* legacy_version and random */
    if (left < sizeof(v))
        return fail(c, TH_INVALID, "ClientHello too short for its version and random");
    if (!take(c, v, sizeof(v)))
        return false;
    left -= sizeof(v);
    if (v[0] != 3)
        return fail(c, TH_INVALID, "ClientHello version is not 3.x");
    out->version = (uint16_t)(v[0] << 8 | v[1]);

    /* legacy_session_id<0..32> */
    if (!field_len(c, &left, 1, &n, "ClientHello ends before its session id"))
        return false;
    if (n > SESSION_ID_MAX)
        return fail(c, TH_INVALID, "session id longer than 32 bytes");
    if (!skip(c, &left, n, "session id runs past the ClientHello"))
        return false;

    /* cipher_suites<2..2^16-2> */
    if (!field_len(c, &left, 2, &n, "ClientHello ends before its cipher suites"))
        return false;
    if (n == 0 || n % 2 != 0)
        return fail(c, TH_INVALID, "cipher suites length is zero or odd");
    if (!skip(c, &left, n, "cipher suites run past the ClientHello"))
        return false;

    /* legacy_compression_methods<1..2^8-1> */
    if (!field_len(c, &left, 1, &n, "ClientHello ends before its compression methods"))
        return false;
    if (n == 0)
        return fail(c, TH_INVALID, "no compression methods");
    if (!skip(c, &left, n, "compression methods run past the ClientHello"))
        return false;

    /* extensions<8..2^16-1>: absent from some TLS 1.2 hellos (RFC 5246 7.4.1.2). */
    if (left == 0)
        return true;
    if (!field_len(c, &left, 2, &n, "ClientHello ends inside its extensions length"))
        return false;
    if (n > left)
        return fail(c, TH_INVALID, "extensions run past the ClientHello");
    if (n < left)
        return fail(c, TH_INVALID, "bytes after the extensions");
    while (left > 0) {
        uint8_t e[EXT_HDR];
        if (left < EXT_HDR)
            return fail(c, TH_INVALID, "extension header runs past the extensions");
        if (!take(c, e, EXT_HDR))
            return false;
        left -= EXT_HDR;
        unsigned type = (unsigned)e[0] << 8 | e[1];
        n = (size_t)e[2] << 8 | e[3];
        if (n > left)
            return fail(c, TH_INVALID, "extension runs past the extensions");
        left -= n;
        if (type != EXT_SERVER_NAME) {
            if (!take(c, NULL, n))
                return false;
            continue;
        }
        /* RFC 8446 4.2: at most one extension of a type. */
        if (sni_seen)
            return fail(c, TH_INVALID, "two server_name extensions");
        sni_seen = true;
        if (!server_name(c, n, out))
            return false;
    }
    return true;
}

enum th_result
tlshello_parse(const uint8_t *buf, size_t len, struct th_hello *out, const char **why)
{
    struct cur c;

    memset(&c, 0, sizeof(c));
    c.buf = buf;
    c.len = len < TH_HELLO_MAX ? len : TH_HELLO_MAX;
    out->version = 0;
    out->has_sni = false;
    out->sni_len = 0;
    out->end = 0;
    out->need = 0;
    *why = NULL;
    if (!client_hello(&c, out)) {
        out->has_sni = false;
        out->sni_len = 0;
        if (c.res == TH_NEED_MORE)
            out->need = c.need;
        else
            *why = c.why;
        return c.res;
    }
    out->end = c.pos;
    return TH_OK;
}

int
tlshello_host_name(const uint8_t *name, size_t len, char *out, size_t cap)
{
    size_t label = 0;

    if (cap > 0)
        out[0] = '\0';
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > HOST_MAX || len >= cap)
        return -1;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = name[i];
        if (ch == '.') {
            if (label == 0 || name[i - 1] == '-')
                goto bad;
            label = 0;
            out[i] = '.';
            continue;
        }
        if (ch >= 'A' && ch <= 'Z')
            ch = (uint8_t)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            goto bad;
        if ((ch == '-' && label == 0) || ++label > LABEL_MAX)
            goto bad;
        out[i] = (char)ch;
    }
    if (label == 0 || name[len - 1] == '-')
        goto bad;
    out[len] = '\0';
    return (int)len;
bad:
    out[0] = '\0';
    return -1;
}
