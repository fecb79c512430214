/*
 * pxverify: pure classifier for `mailedge verify`. Given what one test
 * connection to a receiver sent (the backend's PROXY version, the client
 * family in the header) and what came back (every byte, whether we said
 * QUIT/LOGOUT, how the connection ended), it names whether the
 * two ends agree about the PROXY protocol and, if not, which side to
 * change. No I/O, no allocation. The receivers' behaviour it relies on is
 * in docs/verify.md.
 */
#ifndef MAILEDGE_PXVERIFY_H
#define MAILEDGE_PXVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pxv_proto { PXV_SMTP, PXV_IMAP, PXV_POP3 };

enum pxv_verdict {
    PXV_AGREES,                 /* greeting after our header (or none), polite goodbye */
    PXV_NOT_EXPECTING_PROXY,    /* greeting, then an error reply to the header's bytes */
    PXV_EXPECTS_PROXY_NOT_SENT, /* no header sent: silence, then 421 or a close */
    PXV_REFUSES_EDGE_AS_SOURCE, /* header sent: closed or refused before any greeting */
    PXV_REFUSES_IPV6,           /* as above for the IPv6 client only, IPv4 agrees */
    PXV_WRONG_PROTOCOL,         /* another protocol's greeting, TLS, HTTP ... */
    PXV_NO_ANSWER,              /* connect failed, or silence until the timeout */
    PXV_VERDICT_COUNT
};

/* How reading ended. */
enum pxv_end {
    PXV_END_US,      /* we stopped reading (nothing more was needed) */
    PXV_END_FIN,     /* the receiver closed */
    PXV_END_RESET,   /* the receiver reset */
    PXV_END_TIMEOUT, /* nothing more came before our deadline */
};

struct pxv_input {
    enum pxv_proto proto;
    int sent;            /* PROXY version we sent: 0 none, 1 or 2 */
    bool ipv6;           /* the header's client is IPv6 */
    int connect_err;     /* an errno when the connect failed; then the rest is unused */
    const char *rx;      /* every byte the receiver sent */
    size_t rx_len;
    bool goodbye_sent;   /* we wrote QUIT / a LOGOUT after the greeting */
    enum pxv_end end;
};

#define PXV_EVIDENCE_MAX 200

struct pxv_result {
    enum pxv_verdict verdict;
    char evidence[PXV_EVIDENCE_MAX]; /* printable ASCII: the reply line, or what happened */
    const char *fix;                 /* static, one line: which side to change and how */
};

/* Classifies one connection; <out> is always filled. */
void pxverify_classify(const struct pxv_input *in, struct pxv_result *out);

/*
 * The two connections to one server (IPv4 client, IPv6 client): when the
 * IPv4 one agrees and the IPv6 one was refused right after the header,
 * the receiver refuses IPv6 clients (Postfix inet_protocols = ipv4), not
 * the edge: <v6> becomes PXV_REFUSES_IPV6. Either may be NULL.
 */
void pxverify_pair(const struct pxv_result *v4, struct pxv_result *v6);

/* "agrees", "not-expecting-proxy", ... */
const char *pxverify_name(enum pxv_verdict v);

/* The goodbye command of <p> ("QUIT\r\n", "a LOGOUT\r\n"). */
const char *pxverify_goodbye(enum pxv_proto p);

/*
 * True when <buf> (<len> bytes) holds the whole greeting of <p> or
 * something that will never be one (so the reader stops waiting and the
 * classifier decides).
 */
bool pxverify_greeting_done(enum pxv_proto p, const char *buf, size_t len);

#endif
