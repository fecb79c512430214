/*
 * mailreply: pure classifier of the first reply a server sends on the
 * protocols mailedge probes (SMTP, IMAP, POP3, Redis, the PostgreSQL
 * SSLRequest answer). It says whether the bytes so far are a complete reply
 * and whether that reply proves a live, willing server. No I/O, no
 * allocation; re-run it from the start of the buffer on every arrival.
 */
#ifndef MAILEDGE_MAILREPLY_H
#define MAILEDGE_MAILREPLY_H

#include <stddef.h>

/* Longest reply line we accept (RFC 5321 §4.5.3.1.5 allows 512 octets). */
#define MR_LINE_MAX 1000
/* Longest whole reply (a multi-line SMTP greeting) we buffer. */
#define MR_REPLY_MAX 8192

enum mr_result {
    MR_NEED_MORE, /* incomplete: read more and call again */
    MR_OK,        /* a complete reply from a live server of this kind */
    MR_BAD,       /* a complete (or impossible) reply that is not "live": see why */
};

enum mr_kind {
    MR_SMTP_GREETING, /* 220, possibly multi-line (220-...) */
    MR_SMTP_QUIT,     /* 221 */
    MR_IMAP_GREETING, /* * OK or * PREAUTH; * BYE is BAD */
    MR_IMAP_LOGOUT,   /* up to the tagged "a " completion, untagged lines skipped */
    MR_POP3_STATUS,   /* +OK; -ERR is BAD */
    MR_REDIS_PING,    /* +PONG, or -NOAUTH / -WRONGPASS (auth errors prove a live server) */
    MR_PG_SSLREQUEST, /* one byte: S or N */
};

struct mr_reply {
    int code;         /* SMTP reply code, else 0 */
    const char *text; /* the first line (without CRLF), points into buf; NULL if none */
    size_t text_len;
    size_t consumed; /* bytes of the complete reply (MR_OK and MR_BAD on a full reply) */
    const char *why; /* MR_BAD: static description */
};

/*
 * Classifies the reply of kind <kind> at the start of <buf> (<len> bytes).
 * Returns MR_NEED_MORE when the reply is not complete yet (never for more
 * than MR_REPLY_MAX bytes), MR_OK or MR_BAD. <out> is always filled; its
 * pointers are valid while <buf> is.
 */
enum mr_result mailreply_classify(enum mr_kind kind, const char *buf, size_t len,
                                  struct mr_reply *out);

/* A short name for <r> ("need-more", "ok", "bad"). */
const char *mailreply_result_name(enum mr_result r);

#endif
