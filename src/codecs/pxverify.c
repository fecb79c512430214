/*
 * pxverify: classifier of one `mailedge verify` connection. See pxverify.h
 * for the contract. Receivers' reactions it maps (measured on Postfix 3.7
 * and Dovecot 2.3, docs/verify.md): a header to a port that does not
 * expect one is read as commands (smtpd: 500/502, Dovecot: BAD); no header
 * to a port that expects one gets 421 (Postfix, after 5 s) or a close
 * (Dovecot, after 3 s); an untrusted edge is closed on at once (Dovecot);
 * an IPv6 client with IPv6 off gets 421 (Postfix).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mailreply.h"
#include "pxverify.h"
#include "util.h"

/* Quoted lines in the evidence are cut to this many bytes. */
#define LINE_SHOWN 120

static const char *const names[PXV_VERDICT_COUNT] = {
    [PXV_AGREES] = "agrees",
    [PXV_NOT_EXPECTING_PROXY] = "not-expecting-proxy",
    [PXV_EXPECTS_PROXY_NOT_SENT] = "expects-proxy-not-sent",
    [PXV_REFUSES_EDGE_AS_SOURCE] = "refuses-edge-as-source",
    [PXV_REFUSES_IPV6] = "refuses-ipv6",
    [PXV_WRONG_PROTOCOL] = "wrong-protocol",
    [PXV_NO_ANSWER] = "no-answer",
};

static const char *const fixes[PXV_VERDICT_COUNT] = {
    [PXV_AGREES] = "none",
    [PXV_NOT_EXPECTING_PROXY] =
        "receiver: expect PROXY from the edge on this port (Postfix "
        "*_upstream_proxy_protocol = haproxy; Dovecot haproxy = yes; Stalwart: the listener's "
        "trusted networks), or edge: drop send-proxy from this backend",
    [PXV_EXPECTS_PROXY_NOT_SENT] =
        "edge: add send-proxy v2 to this backend, or receiver: stop expecting PROXY on this port",
    [PXV_REFUSES_EDGE_AS_SOURCE] =
        "receiver: trust the edge's source address as a PROXY sender (Dovecot "
        "haproxy_trusted_networks; Stalwart: the listener's trusted networks)",
    [PXV_REFUSES_IPV6] =
        "receiver: accept IPv6 clients in the header (Postfix inet_protocols = all)",
    [PXV_WRONG_PROTOCOL] =
        "edge: point this backend at the receiver's port for this protocol, or fix the "
        "listener's protocol",
    [PXV_NO_ANSWER] =
        "receiver: make it listen and greet on this address and port (a TLS port waits for "
        "the client), or edge: fix the server's address",
};

const char *
pxverify_name(enum pxv_verdict v)
{
    return (unsigned)v < PXV_VERDICT_COUNT ? names[v] : "?";
}

const char *
pxverify_goodbye(enum pxv_proto p)
{
    return p == PXV_IMAP ? "a LOGOUT\r\n" : "QUIT\r\n";
}

static enum mr_kind
greeting_kind(enum pxv_proto p)
{
    switch (p) {
    case PXV_IMAP:
        return MR_IMAP_GREETING;
    case PXV_POP3:
        return MR_POP3_STATUS;
    case PXV_SMTP:
    default:
        return MR_SMTP_GREETING;
    }
}

static const char *
proto_name(enum pxv_proto p)
{
    switch (p) {
    case PXV_IMAP:
        return "IMAP";
    case PXV_POP3:
        return "POP3";
    case PXV_SMTP:
    default:
        return "SMTP";
    }
}

static bool
is_tls_record(const char *b, size_t n)
{
    return n >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03;
}

bool
pxverify_greeting_done(enum pxv_proto p, const char *buf, size_t len)
{
    struct mr_reply r;
    if (len == 0)
        return false;
    if (is_tls_record(buf, len))
        return true;
    return mailreply_classify(greeting_kind(p), buf, len, &r) != MR_NEED_MORE;
}

/* The length of the line at <p> (<n> bytes left), without its CR LF. */
static size_t
line_len(const char *p, size_t n, size_t *next)
{
    const char *nl = memchr(p, '\n', n);
    size_t e = nl != NULL ? (size_t)(nl - p) : n;
    *next = nl != NULL ? e + 1 : n;
    if (e > 0 && p[e - 1] == '\r')
        e--;
    return e;
}

/* Appends <s> (<n> bytes) to <dst> in quotes: printable ASCII only, cut at LINE_SHOWN. */
static void
quote(char *dst, size_t cap, const char *s, size_t n)
{
    size_t j = strlen(dst);
    if (j + 3 >= cap)
        return;
    dst[j++] = '"';
    size_t i = 0;
    for (; i < n && i < LINE_SHOWN && j + 5 < cap; i++)
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (i < n && j + 5 < cap) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j++] = '"';
    dst[j] = '\0';
}

static void
set(struct pxv_result *out, enum pxv_verdict v, const char *prefix, const char *line,
    size_t n)
{
    out->verdict = v;
    out->fix = fixes[v];
    snprintf(out->evidence, sizeof(out->evidence), "%s", prefix);
    if (line != NULL)
        quote(out->evidence, sizeof(out->evidence), line, n);
}

static bool
digit(char c)
{
    return c >= '0' && c <= '9';
}

/* An SMTP reply line: three digits, then the end, a space or a dash. */
static bool
smtp_line(const char *p, size_t n)
{
    return n >= 3 && digit(p[0]) && digit(p[1]) && digit(p[2]) &&
           (n == 3 || p[3] == ' ' || p[3] == '-');
}

/* Which protocol a first line looks like; -1: none we know. */
static int
looks_like(const char *p, size_t n)
{
    if (smtp_line(p, n))
        return PXV_SMTP;
    if (n >= 2 && p[0] == '*' && p[1] == ' ')
        return PXV_IMAP;
    if ((n >= 3 && strncmp(p, "+OK", 3) == 0) || (n >= 4 && strncmp(p, "-ERR", 4) == 0))
        return PXV_POP3;
    return -1;
}

/* Is the IMAP line's second word <w>? ("* BAD ...", "PROXY BAD ...") */
static bool
imap_status(const char *p, size_t n, const char *w)
{
    const char *sp = memchr(p, ' ', n);
    if (sp == NULL)
        return false;
    size_t off = (size_t)(sp - p) + 1, wl = strlen(w);
    return n - off >= wl && strncasecmp(p + off, w, wl) == 0 &&
           (n - off == wl || p[off + wl] == ' ');
}

/* An answer to the header's bytes, read as commands: an error reply. */
static bool
error_reply(enum pxv_proto p, const char *l, size_t n)
{
    switch (p) {
    case PXV_SMTP:
        return smtp_line(l, n) && (l[0] == '4' || l[0] == '5');
    case PXV_IMAP:
        return imap_status(l, n, "BAD");
    case PXV_POP3:
    default:
        return n >= 4 && strncmp(l, "-ERR", 4) == 0;
    }
}

/* The receiver's answer to our goodbye. */
static bool
goodbye_reply(enum pxv_proto p, const char *l, size_t n)
{
    switch (p) {
    case PXV_SMTP:
        return n >= 3 && strncmp(l, "221", 3) == 0 && smtp_line(l, n);
    case PXV_IMAP:
        return n >= 4 && strncasecmp(l, "a OK", 4) == 0;
    case PXV_POP3:
    default:
        return n >= 3 && strncmp(l, "+OK", 3) == 0;
    }
}

/* After a good greeting: error replies to the header, then the goodbye. */
static void
after_greeting(const struct pxv_input *in, const char *g, size_t glen, size_t consumed,
               struct pxv_result *out)
{
    const char *p = in->rx + consumed;
    size_t left = in->rx_len - consumed;
    bool bye = false;
    while (left > 0) {
        size_t next, n = line_len(p, left, &next);
        if (in->sent != 0 && error_reply(in->proto, p, n)) {
            set(out, PXV_NOT_EXPECTING_PROXY, "greeting, then an error reply to the header: ",
                p, n);
            return;
        }
        if (goodbye_reply(in->proto, p, n))
            bye = true;
        p += next;
        left -= next;
    }
    set(out, PXV_AGREES, "greeting ", g, glen);
    if (in->goodbye_sent && !bye) {
        size_t k = strlen(out->evidence);
        snprintf(out->evidence + k, sizeof(out->evidence) - k, ", no reply to %s",
                 in->proto == PXV_IMAP ? "LOGOUT" : "QUIT");
    }
}

void
pxverify_classify(const struct pxv_input *in, struct pxv_result *out)
{
    memset(out, 0, sizeof(*out));
    if (in->connect_err != 0) {
        char why[64];
        snprintf(why, sizeof(why), "connect: %s", util_errno_text(in->connect_err));
        set(out, PXV_NO_ANSWER, why, NULL, 0);
        return;
    }
    if (in->rx_len == 0) {
        if (in->end == PXV_END_FIN || in->end == PXV_END_RESET) {
            const char *how = in->end == PXV_END_FIN ? "closed" : "reset";
            char why[96];
            if (in->sent != 0) {
                snprintf(why, sizeof(why), "%s right after the PROXY header, no greeting", how);
                set(out, PXV_REFUSES_EDGE_AS_SOURCE, why, NULL, 0);
            } else {
                snprintf(why, sizeof(why), "%s without a greeting (no PROXY header sent)", how);
                set(out, PXV_EXPECTS_PROXY_NOT_SENT, why, NULL, 0);
            }
        } else {
            set(out, PXV_NO_ANSWER, "no greeting before the timeout", NULL, 0);
        }
        return;
    }
    if (is_tls_record(in->rx, in->rx_len)) {
        set(out, PXV_WRONG_PROTOCOL,
            in->rx[0] == 0x15 ? "a TLS alert: the port speaks TLS"
                              : "a TLS record: the port speaks TLS",
            NULL, 0);
        return;
    }
    size_t next, n = line_len(in->rx, in->rx_len, &next);
    int other = looks_like(in->rx, n);
    if (other == -1) {
        char why[64];
        snprintf(why, sizeof(why), "not an %s greeting: ", proto_name(in->proto));
        set(out, PXV_WRONG_PROTOCOL, why, in->rx, n);
        return;
    }
    if (other != (int)in->proto) {
        char why[64];
        snprintf(why, sizeof(why), "a%s %s greeting where %s was expected: ",
                 other == PXV_POP3 ? "" : "n", proto_name((enum pxv_proto)other),
                 proto_name(in->proto));
        set(out, PXV_WRONG_PROTOCOL, why, in->rx, n);
        return;
    }
    struct mr_reply r;
    switch (mailreply_classify(greeting_kind(in->proto), in->rx, in->rx_len, &r)) {
    case MR_NEED_MORE:
        set(out, PXV_NO_ANSWER,
            in->end == PXV_END_TIMEOUT ? "greeting incomplete at the timeout: "
                                       : "connection ended inside the greeting: ",
            in->rx, n);
        return;
    case MR_BAD:
        if (in->sent != 0)
            set(out, PXV_REFUSES_EDGE_AS_SOURCE,
                "refused right after the PROXY header, no greeting: ", in->rx, n);
        else if (in->proto == PXV_SMTP && r.code == 421)
            set(out, PXV_EXPECTS_PROXY_NOT_SENT, "421 instead of a greeting (no PROXY header sent): ",
                in->rx, n);
        else
            set(out, PXV_REFUSES_EDGE_AS_SOURCE, "refused the edge, no greeting: ", in->rx, n);
        return;
    case MR_OK:
    default:
        break;
    }
    size_t consumed = r.consumed <= in->rx_len ? r.consumed : in->rx_len;
    after_greeting(in, in->rx, n, consumed, out);
}

void
pxverify_pair(const struct pxv_result *v4, struct pxv_result *v6)
{
    if (v4 == NULL || v6 == NULL)
        return;
    if (v4->verdict == PXV_AGREES && v6->verdict == PXV_REFUSES_EDGE_AS_SOURCE) {
        v6->verdict = PXV_REFUSES_IPV6;
        v6->fix = fixes[PXV_REFUSES_IPV6];
    }
}
