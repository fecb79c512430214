/*
 * probeurl: pure parser of probe targets. See probeurl.h.
 */
#include <string.h>
#include <strings.h>

#include "probeurl.h"
#include "util.h"

struct scheme_info {
    const char *name;
    enum probe_scheme sc;
    uint16_t port; /* 0: the URL must give one */
    int tls;
};

static const struct scheme_info schemes[] = {
    {"tcp", PS_TCP, 0, 0},
    {"smtp", PS_SMTP, 25, 0},
    {"smtps", PS_SMTPS, 465, 1},
    {"imap", PS_IMAP, 143, 0},
    {"imaps", PS_IMAPS, 993, 1},
    {"pop3", PS_POP3, 110, 0},
    {"pop3s", PS_POP3S, 995, 1},
    {"postgres", PS_POSTGRES, 5432, 0},
    {"postgresql", PS_POSTGRES, 5432, 0},
    {"redis", PS_REDIS, 6379, 0},
    {"http", PS_HTTP, 80, 0},
    {"https", PS_HTTPS, 443, 1},
};

static const struct scheme_info *
find_scheme(const char *s, size_t n)
{
    for (size_t i = 0; i < ARRAY_LEN(schemes); i++)
        if (strlen(schemes[i].name) == n && strncasecmp(schemes[i].name, s, n) == 0)
            return &schemes[i];
    return NULL;
}

static int
host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static int
v6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.';
}

static int
fail(const char **why, const char *msg)
{
    *why = msg;
    return -1;
}

/* Appends [s, s+n) to out->path; -1 when it does not fit. */
static int
path_add(struct probe_url *out, const char *s, size_t n)
{
    size_t have = strlen(out->path);
    if (have + n + 1 > sizeof(out->path))
        return -1;
    memcpy(out->path + have, s, n);
    out->path[have + n] = '\0';
    return 0;
}

static void
expect_set(struct probe_url *out, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi; c++)
        out->expect[(c - 100) / 64] |= (uint64_t)1 << ((c - 100) % 64);
}

/* expect=LIST: [v, v+n) is LIST. */
static int
parse_expect(const char *v, size_t n, struct probe_url *out, const char **why)
{
    memset(out->expect, 0, sizeof(out->expect));
    if (n == 0)
        return fail(why, "expect= needs statuses (like 2xx or 200,204,3xx)");
    while (n > 0) {
        const char *comma = memchr(v, ',', n);
        size_t il = comma ? (size_t)(comma - v) : n;
        if (il != 3 || v[0] < '1' || v[0] > '5')
            return fail(why, "expect= takes statuses 100-599 and classes 1xx-5xx, comma-separated");
        unsigned d = (unsigned)(v[0] - '0');
        if ((v[1] == 'x' || v[1] == 'X') && (v[2] == 'x' || v[2] == 'X')) {
            expect_set(out, d * 100, d * 100 + 99);
        } else if (v[1] >= '0' && v[1] <= '9' && v[2] >= '0' && v[2] <= '9') {
            unsigned c = d * 100 + (unsigned)(v[1] - '0') * 10 + (unsigned)(v[2] - '0');
            expect_set(out, c, c);
        } else {
            return fail(why, "expect= takes statuses 100-599 and classes 1xx-5xx, comma-separated");
        }
        if (comma == NULL)
            break;
        if (il + 1 == n)
            return fail(why, "expect= ends with a comma");
        n -= il + 1;
        v = comma + 1;
    }
    return 0;
}

int
probeurl_status_live(const struct probe_url *u, long status)
{
    if (status < 100 || status > 599)
        return 0;
    unsigned b = (unsigned)status - 100;
    return (u->expect[b / 64] >> (b % 64)) & 1;
}

/* A PostgreSQL name [v, v+n) into <dst> (64 bytes): 1 to 63 printable bytes. */
static int
pg_name(char *dst, const char *v, size_t n)
{
    if (n == 0 || n > 63)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f || v[i] == '/' || v[i] == '%')
            return -1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

/* The query [q, q+n) without its '?': takes proxy= and expect=, keeps the rest for HTTP. */
static int
parse_query(const char *q, size_t n, struct probe_url *out, int http, const char **why)
{
    int kept = 0;
    while (n > 0) {
        const char *amp = memchr(q, '&', n);
        size_t pl = amp ? (size_t)(amp - q) : n;
        if (pl >= 6 && strncmp(q, "proxy=", 6) == 0) {
            if (pl == 8 && strncmp(q + 6, "v1", 2) == 0)
                out->proxy = PROBE_PROXY_V1;
            else if (pl == 8 && strncmp(q + 6, "v2", 2) == 0)
                out->proxy = PROBE_PROXY_V2;
            else
                return fail(why, "proxy= must be v1 or v2");
        } else if (pl >= 7 && strncmp(q, "expect=", 7) == 0) {
            if (!http)
                return fail(why, "expect= is for http:// and https:// only");
            if (parse_expect(q + 7, pl - 7, out, why) == -1)
                return -1;
        } else if (pl >= 5 && strncmp(q, "user=", 5) == 0 && out->scheme == PS_POSTGRES) {
            if (pg_name(out->pg_user, q + 5, pl - 5) == -1)
                return fail(why, "user= takes a PostgreSQL user name (1 to 63 characters)");
        } else if (pl > 0) {
            if (!http)
                return fail(why, "unknown query parameter (only proxy=v1 or proxy=v2)");
            if (path_add(out, kept ? "&" : "?", 1) == -1 || path_add(out, q, pl) == -1)
                return fail(why, "path too long");
            kept = 1;
        }
        if (amp == NULL)
            break;
        n -= pl + 1;
        q = amp + 1;
    }
    return 0;
}

int
probeurl_parse(const char *s, struct probe_url *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *sep = strstr(s, "://");
    if (sep == NULL)
        return fail(why, "not a URL (expected scheme://host[:port])");
    const struct scheme_info *si = find_scheme(s, (size_t)(sep - s));
    if (si == NULL)
        return fail(why, "unknown scheme (tcp smtp smtps imap imaps pop3 pop3s postgres redis "
                         "http https)");
    out->scheme = si->sc;
    int http = si->sc == PS_HTTP || si->sc == PS_HTTPS;
    if (http)
        expect_set(out, 200, 399);

    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    if (memchr(a, '@', alen) != NULL)
        return fail(why, "credentials in the URL are not accepted");
    if (alen == 0)
        return fail(why, "missing host");

    const char *h, *rest;
    size_t hlen;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (rb == NULL)
            return fail(why, "missing ']' after an IPv6 address");
        h = a + 1;
        hlen = (size_t)(rb - h);
        rest = rb + 1;
        if (hlen == 0)
            return fail(why, "empty IPv6 address");
        for (size_t i = 0; i < hlen; i++)
            if (!v6_char(h[i]))
                return fail(why, "bad character in IPv6 address");
        if (memchr(h, ':', hlen) == NULL)
            return fail(why, "brackets hold an IPv6 address");
    } else {
        h = a;
        hlen = strcspn(a, ":/?#");
        rest = a + hlen;
        if (hlen == 0)
            return fail(why, "missing host");
        for (size_t i = 0; i < hlen; i++)
            if (!host_char(h[i]))
                return fail(why, "bad character in host name");
    }
    if (hlen >= sizeof(out->host))
        return fail(why, "host name too long");
    memcpy(out->host, h, hlen);
    out->host[hlen] = '\0';

    const char *aend = a + alen;
    if (rest < aend) {
        if (*rest != ':')
            return fail(why, "unexpected character after the host");
        char port[8];
        size_t plen = (size_t)(aend - rest - 1);
        uint64_t v;
        if (plen == 0 || plen >= sizeof(port))
            return fail(why, "bad port (1 to 65535)");
        memcpy(port, rest + 1, plen);
        port[plen] = '\0';
        if (util_parse_uint(port, 65535, &v) == -1 || v == 0)
            return fail(why, "bad port (1 to 65535)");
        out->port = (uint16_t)v;
    } else {
        if (si->port == 0)
            return fail(why, "tcp:// needs a port");
        out->port = si->port;
    }

    const char *p = aend;
    size_t plen = strcspn(p, "?#");
    if (http) {
        if (plen == 0 ? path_add(out, "/", 1) : path_add(out, p, plen))
            return fail(why, "path too long");
    }
    for (size_t i = 0; i < plen; i++)
        if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f)
            return fail(why, "control character or space in the path");
    if (si->sc == PS_POSTGRES && plen > 1 && pg_name(out->pg_db, p + 1, plen - 1) == -1)
        return fail(why, "the path of a postgres:// URL is a database name (1 to 63 characters)");
    p += plen;
    if (*p == '?') {
        size_t qlen = strcspn(p + 1, "#");
        for (size_t i = 0; i < qlen; i++)
            if ((unsigned char)p[1 + i] <= ' ' || p[1 + i] == 0x7f)
                return fail(why, "control character or space in the query");
        if (parse_query(p + 1, qlen, out, http, why) == -1)
            return -1;
    }
    if (si->sc == PS_POSTGRES) {
        if (out->pg_user[0] == '\0')
            memcpy(out->pg_user, "postgres", sizeof("postgres"));
        if (out->pg_db[0] == '\0')
            memcpy(out->pg_db, out->pg_user, sizeof(out->pg_db));
    }
    return 0;
}

const char *
probeurl_scheme_name(enum probe_scheme sc)
{
    for (size_t i = 0; i < ARRAY_LEN(schemes); i++)
        if (schemes[i].sc == sc)
            return schemes[i].name;
    return "?";
}

int
probeurl_scheme_tls(enum probe_scheme sc)
{
    return sc == PS_SMTPS || sc == PS_IMAPS || sc == PS_POP3S || sc == PS_HTTPS;
}
