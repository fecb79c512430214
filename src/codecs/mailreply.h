/*
 * mailreply: pure classifier of the first reply a server sends on the
 * protocols mailedge probes (SMTP, IMAP, POP3, Redis, the PostgreSQL
 * answer to a StartupMessage), and the encoder of that StartupMessage. It
 * says whether the bytes so far are a complete reply
 * and whether that reply proves a live, willing server. No I/O, no
 * allocation; re-run it from the start of the buffer on every arrival.
 */
#ifndef MAILEDGE_MAILREPLY_H
#define MAILEDGE_MAILREPLY_H

#include <stddef.h>
#include <stdint.h>

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
    MR_PG_STARTUP,    /* the first message after a StartupMessage, judged as pg_isready
                       * does: an authentication request (R), a protocol negotiation
                       * (v) or any ErrorResponse (E) but SQLSTATE 57P03 means the
                       * server accepts sessions; 57P03 (cannot_connect_now: starting
                       * up, shutting down, recovering, a standby without hot standby)
                       * is BAD */
};

struct mr_reply {
    int code;         /* SMTP reply code, else 0 */
    const char *text; /* the first line (without CRLF), points into buf; NULL if none */
    size_t text_len;
    size_t consumed; /* bytes of the complete reply (MR_OK and MR_BAD on a full reply) */
    const char *why; /* MR_BAD: static description */
    /* MR_PG_STARTUP: the message type ('R', 'E' or 'v'; 0 when none), the
     * code of an authentication request (0: AuthenticationOk, no password
     * needed), the SQLSTATE of an ErrorResponse ("" without one); text is
     * the ErrorResponse's message (field M). */
    char pg_type;
    uint32_t pg_auth;
    char sqlstate[6];
};

/*
 * Classifies the reply of kind <kind> at the start of <buf> (<len> bytes).
 * Returns MR_NEED_MORE when the reply is not complete yet (never for more
 * than MR_REPLY_MAX bytes), MR_OK or MR_BAD. <out> is always filled; its
 * pointers are valid while <buf> is.
 */
enum mr_result mailreply_classify(enum mr_kind kind, const char *buf, size_t len,
                                  struct mr_reply *out);

/* PostgreSQL identifiers are at most 63 bytes (NAMEDATALEN 64). */
#define MR_PG_NAME_MAX 63

/*
 * Writes a protocol 3.0 StartupMessage for <user> and <database> (each 1 to
 * MR_PG_NAME_MAX bytes, no NUL) with application_name mailedge-probe into
 * <out>. Returns its length, or 0 when a name is bad or <cap> too small.
 */
size_t mailreply_pg_startup(const char *user, const char *database, char *out, size_t cap);

/* A short name for <r> ("need-more", "ok", "bad"). */
const char *mailreply_result_name(enum mr_result r);

#endif
