/*
 * mailreply: pure classifier of server replies for the probe (and, later,
 * health checks). See mailreply.h for the contract.
 */
#include <string.h>
#include <strings.h>

#include "mailreply.h"

/*
 * Finds the end of the line that starts at <start>. Returns 1 and sets
 * <*end> (first byte of the terminator) and <*next> (first byte after it),
 * or 0 when no LF has arrived yet. A bare LF is accepted as a terminator:
 * we judge liveness, not RFC conformance.
 */
static int
find_line(const char *buf, size_t len, size_t start, size_t *end, size_t *next)
{
    const char *nl = memchr(buf + start, '\n', len - start);
    if (nl == NULL)
        return 0;
    size_t e = (size_t)(nl - buf);
    *next = e + 1;
    if (e > start && buf[e - 1] == '\r')
        e--;
    *end = e;
    return 1;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Case-insensitive: does the line [p, p+n) start with word <w> followed by a space or its end? */
static int
starts_word(const char *p, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n < wl || strncasecmp(p, w, wl) != 0)
        return 0;
    return n == wl || p[wl] == ' ';
}

/* For an early rejection: the text is whatever of the line has arrived. */
static enum mr_result
bad_partial(struct mr_reply *out, const char *buf, size_t len, size_t start, const char *why)
{
    if (out->text == NULL) {
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (end > start + MR_LINE_MAX)
            end = start + MR_LINE_MAX;
        if (end > start && buf[end - 1] == '\r')
            end--;
        out->text = buf + start;
        out->text_len = end - start;
    }
    out->why = why;
    return MR_BAD;
}

static enum mr_result
bad(struct mr_reply *out, const char *why)
{
    out->why = why;
    return MR_BAD;
}

/* MR_NEED_MORE, or MR_BAD once the incomplete line or reply is over its cap. */
static enum mr_result
need_more(struct mr_reply *out, size_t len, size_t line_start)
{
    /* +1: the CR of a line of exactly MR_LINE_MAX may be in, its LF not yet. */
    if (len - line_start > MR_LINE_MAX + 1)
        return bad(out, "reply line too long");
    if (len > MR_REPLY_MAX)
        return bad(out, "reply too long");
    return MR_NEED_MORE;
}

static void
set_text(struct mr_reply *out, const char *buf, size_t start, size_t end)
{
    if (out->text == NULL) {
        out->text = buf + start;
        out->text_len = end - start;
    }
}

/* An SMTP reply (RFC 5321 §4.2): "DDD-text" lines, then a final "DDD text" or "DDD". */
static enum mr_result
smtp(enum mr_kind kind, const char *buf, size_t len, struct mr_reply *out)
{
    size_t pos = 0;
    for (;;) {
        size_t avail = len - pos, end, next;
        const char *p = buf + pos;
        /* Judge the line prefix as soon as it arrives: an HTTP or IMAP
         * server should fail fast, not time out. */
        for (size_t i = 0; i < 3 && i < avail; i++)
            if (!is_digit(p[i]))
                return bad_partial(out, buf, len, pos, "not an SMTP reply");
        if (avail >= 4 && p[3] != '-' && p[3] != ' ' && p[3] != '\r' && p[3] != '\n')
            return bad_partial(out, buf, len, pos, "not an SMTP reply");
        if (!find_line(buf, len, pos, &end, &next))
            return need_more(out, len, pos);
        if (end - pos < 3)
            return bad(out, "not an SMTP reply");
        if (end - pos > MR_LINE_MAX)
            return bad(out, "reply line too long");
        int code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (out->code == 0)
            out->code = code;
        else if (code != out->code)
            return bad(out, "reply lines disagree on the code");
        set_text(out, buf, pos, end);
        pos = next;
        if (end - (size_t)(p - buf) > 3 && p[3] == '-') {
            if (pos > MR_REPLY_MAX)
                return bad(out, "reply too long");
            continue;
        }
        out->consumed = pos;
        break;
    }
    if (kind == MR_SMTP_QUIT)
        return out->code == 221 ? MR_OK : bad(out, "unexpected reply to QUIT");
    if (out->code == 220)
        return MR_OK;
    if (out->code == 421)
        return bad(out, "service not available (421)");
    if (out->code / 100 == 4)
        return bad(out, "temporary failure greeting (4xx)");
    if (out->code / 100 == 5)
        return bad(out, "greeting refuses service (5xx)");
    return bad(out, "greeting is not 220");
}

static enum mr_result
imap_greeting(const char *buf, size_t len, struct mr_reply *out)
{
    size_t end, next;
    if ((len >= 1 && buf[0] != '*') || (len >= 2 && buf[1] != ' '))
        return bad_partial(out, buf, len, 0, "not an IMAP greeting");
    if (!find_line(buf, len, 0, &end, &next))
        return need_more(out, len, 0);
    set_text(out, buf, 0, end);
    out->consumed = next;
    if (end > MR_LINE_MAX)
        return bad(out, "reply line too long");
    if (end < 2)
        return bad(out, "not an IMAP greeting");
    if (starts_word(buf + 2, end - 2, "OK") || starts_word(buf + 2, end - 2, "PREAUTH"))
        return MR_OK;
    if (starts_word(buf + 2, end - 2, "BYE"))
        return bad(out, "server said BYE");
    return bad(out, "not an IMAP greeting");
}

/* Skips untagged lines up to the completion tagged "a" (our only tag). */
static enum mr_result
imap_logout(const char *buf, size_t len, struct mr_reply *out)
{
    size_t pos = 0, end, next;
    for (;;) {
        if (!find_line(buf, len, pos, &end, &next))
            return need_more(out, len, pos);
        const char *p = buf + pos;
        size_t n = end - pos;
        set_text(out, buf, pos, end);
        if (n > MR_LINE_MAX)
            return bad(out, "reply line too long");
        if (n >= 2 && p[0] == '*' && p[1] == ' ') {
            pos = next;
            continue;
        }
        out->text = p;
        out->text_len = n;
        out->consumed = next;
        if (n >= 2 && p[0] == 'a' && p[1] == ' ')
            return starts_word(p + 2, n - 2, "OK") ? MR_OK : bad(out, "LOGOUT not OK");
        return bad(out, "unexpected reply to LOGOUT");
    }
}

/* One status line: POP3 (RFC 1939 §3) or a Redis simple reply (RESP). */
static enum mr_result
status_line(enum mr_kind kind, const char *buf, size_t len, struct mr_reply *out)
{
    size_t end, next;
    if (len >= 1 && buf[0] != '+' && buf[0] != '-')
        return bad_partial(out, buf, len, 0,
                           kind == MR_POP3_STATUS ? "not a POP3 reply" : "not a Redis reply");
    if (!find_line(buf, len, 0, &end, &next))
        return need_more(out, len, 0);
    set_text(out, buf, 0, end);
    out->consumed = next;
    if (end > MR_LINE_MAX)
        return bad(out, "reply line too long");
    if (kind == MR_POP3_STATUS) {
        if (starts_word(buf, end, "+OK"))
            return MR_OK;
        if (starts_word(buf, end, "-ERR"))
            return bad(out, "server said -ERR");
        return bad(out, "not a POP3 reply");
    }
    if (end == 5 && memcmp(buf, "+PONG", 5) == 0)
        return MR_OK;
    /* A server that wants a password is alive and answering. */
    if (starts_word(buf, end, "-NOAUTH") || starts_word(buf, end, "-WRONGPASS"))
        return MR_OK;
    if (starts_word(buf, end, "-LOADING"))
        return bad(out, "server is loading its dataset");
    if (buf[0] == '-')
        return bad(out, "error reply to PING");
    return bad(out, "unexpected reply to PING");
}

static uint32_t
be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* An ErrorResponse body [b, b+n): fields of a type byte and a C string, then 0. */
static enum mr_result
pg_error(const char *b, size_t n, struct mr_reply *out)
{
    size_t i = 0;
    while (i < n && b[i] != '\0') {
        char f = b[i++];
        const char *z = memchr(b + i, '\0', n - i);
        if (z == NULL)
            return bad(out, "malformed PostgreSQL ErrorResponse");
        size_t fl = (size_t)(z - (b + i));
        if (f == 'C' && fl == 5) {
            memcpy(out->sqlstate, b + i, 5);
        } else if (f == 'M') {
            out->text = b + i;
            out->text_len = fl < MR_LINE_MAX ? fl : MR_LINE_MAX;
        }
        i += fl + 1;
    }
    if (i >= n)
        return bad(out, "malformed PostgreSQL ErrorResponse");
    /* 57P03 cannot_connect_now: libpq's PQping says PQPING_REJECT. */
    if (strcmp(out->sqlstate, "57P03") == 0)
        return bad(out, "rejecting connections");
    return MR_OK;
}

static enum mr_result
pg_startup(const char *buf, size_t len, struct mr_reply *out)
{
    if (len == 0)
        return MR_NEED_MORE;
    char t = buf[0];
    if (t != 'R' && t != 'E' && t != 'v')
        return bad(out, "not a PostgreSQL reply");
    if (len < 5)
        return MR_NEED_MORE;
    uint32_t n = be32(buf + 1);
    if (n < 4 || n > MR_REPLY_MAX - 1)
        return bad(out, "not a PostgreSQL reply (bad message length)");
    if (len < 1 + (size_t)n)
        return MR_NEED_MORE;
    out->consumed = 1 + (size_t)n;
    out->pg_type = t;
    if (t == 'E')
        return pg_error(buf + 5, n - 4, out);
    if (t == 'R') {
        if (n < 8)
            return bad(out, "short PostgreSQL authentication request");
        out->pg_auth = be32(buf + 5);
    }
    return MR_OK;
}

static size_t
put_cstr(char *out, size_t o, size_t cap, const char *s)
{
    size_t n = strlen(s) + 1;
    if (o == 0 || o + n > cap)
        return 0;
    memcpy(out + o, s, n);
    return o + n;
}

size_t
mailreply_pg_startup(const char *user, const char *database, char *out, size_t cap)
{
    size_t ul = strlen(user), dl = strlen(database);
    if (ul == 0 || ul > MR_PG_NAME_MAX || dl == 0 || dl > MR_PG_NAME_MAX || cap < 9)
        return 0;
    size_t o = 8;
    o = put_cstr(out, o, cap, "user");
    o = put_cstr(out, o, cap, user);
    o = put_cstr(out, o, cap, "database");
    o = put_cstr(out, o, cap, database);
    o = put_cstr(out, o, cap, "application_name");
    o = put_cstr(out, o, cap, "mailedge-probe");
    o = put_cstr(out, o, cap, "");
    if (o == 0)
        return 0;
    /* Length (itself included), then protocol 3.0: 196608. */
    const uint32_t words[2] = {(uint32_t)o, 196608u};
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 4; k++)
            out[w * 4 + k] = (char)(words[w] >> (24 - 8 * k));
    return o;
}

static enum mr_result
classify(enum mr_kind kind, const char *buf, size_t len, struct mr_reply *out)
{
    switch (kind) {
    case MR_SMTP_GREETING:
    case MR_SMTP_QUIT:
        return smtp(kind, buf, len, out);
    case MR_IMAP_GREETING:
        return imap_greeting(buf, len, out);
    case MR_IMAP_LOGOUT:
        return imap_logout(buf, len, out);
    case MR_POP3_STATUS:
    case MR_REDIS_PING:
        return status_line(kind, buf, len, out);
    case MR_PG_STARTUP:
        return pg_startup(buf, len, out);
    }
    return bad(out, "unknown reply kind");
}

enum mr_result
mailreply_classify(enum mr_kind kind, const char *buf, size_t len, struct mr_reply *out)
{
    memset(out, 0, sizeof(*out));
    enum mr_result r = classify(kind, buf, len, out);
    /* The same cap whether the reply is complete or not, so a prefix of an
     * accepted reply is always NEED_MORE. */
    if (r == MR_OK && out->consumed > MR_REPLY_MAX)
        return bad(out, "reply too long");
    return r;
}

const char *
mailreply_result_name(enum mr_result r)
{
    switch (r) {
    case MR_NEED_MORE:
        return "need-more";
    case MR_OK:
        return "ok";
    case MR_BAD:
        return "bad";
    }
    return "?";
}
