/*
 * decisions: the CrowdSec Local API's decision stream
 * (GET /v1/decisions/stream), parsed as it arrives. Pure: no I/O, no clock.
 *
 * The answer is {"new": [...] | null, "deleted": [...] | null}; each
 * decision has value, scope, type, duration (a Go duration, negative under
 * "deleted"), origin, scenario, id. json-c's tokener takes the body in the
 * chunks the transfer delivers, so no single call parses more than one
 * chunk. Each decision is checked and kept in a compact form (about 220
 * bytes) as soon as its object is complete: no tree of the whole answer
 * is built. The answer's shape is checked once it is complete.
 */
#ifndef MAILEDGE_DECISIONS_H
#define MAILEDGE_DECISIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

struct decision {
    /* Ip: /32 or /128, an IPv4-mapped IPv6 address as IPv4. Range: its
     * prefix (host bits set are refused, as cidr_parse does; a prefix
     * inside ::ffff:0:0/96 becomes the IPv4 prefix). Lowercase "ip" with a
     * "/32" or "/128" value (community lists) is accepted. */
    struct cidr net;
    enum decision_type { DECISION_BAN, DECISION_CAPTCHA, DECISION_OTHER } type;
    int64_t duration_ms;    /* Go duration ("3h59m58.1s", "-1.5s"); negative in `deleted` */
    uint64_t id;            /* 0 when absent */
    char origin[32];        /* "cscli", "crowdsec", "CAPI", "lists"; "" when absent */
    char scenario[128];     /* "" when absent */
    /* (both NUL-terminated, cut if longer, never inside a UTF-8 character) */
};

struct decisions;                                   /* one answer being parsed */

/* A parser for one answer; <max_body>: refuse answers longer than that
 * many bytes. NULL: out of memory. */
struct decisions *decisions_new(size_t max_body);

enum decisions_rc { DECISIONS_MORE, DECISIONS_DONE, DECISIONS_ERROR };

/*
 * The next <len> bytes of the body. MORE: the answer is not complete yet;
 * DONE: it is, with its shape checked (whitespace may follow, nothing
 * else); ERROR: it is unusable, see decisions_error(). Once DONE or ERROR,
 * further calls return the same (DONE turns into ERROR if anything but
 * whitespace follows).
 */
enum decisions_rc decisions_feed(struct decisions *d, const char *buf, size_t len);

/* The body ended (the transfer is complete): DONE if the answer was
 * complete, else ERROR ("truncated answer"). */
enum decisions_rc decisions_end(struct decisions *d);

/* After DECISIONS_ERROR: a reason (owned by <d>); "" otherwise. */
const char *decisions_error(const struct decisions *d);

/* After DECISIONS_DONE: the length of "new" (deleted false) or "deleted"
 * (JSON null: 0). 0 before DONE. */
size_t decisions_count(const struct decisions *d, bool deleted);

/* Entry <i> of a list, after DECISIONS_DONE. 0: <out> filled; -1: entry
 * unusable (not an object, a missing or mistyped field, a bad scope, value
 * or duration), reason in <*why> (a static string). */
int decisions_get(const struct decisions *d, bool deleted, size_t i, struct decision *out,
                  const char **why);

void decisions_free(struct decisions *d);

/* decisions_free() in steps, for a loop that must not stall on a large
 * answer: frees up to <budget> blocks of stored decisions (1,024 each,
 * about 230 KB), and everything once none is left. true: <d> is freed
 * (NULL included); false: call again. Between calls <d> may only be
 * given to decisions_free_some() or decisions_free(). */
bool decisions_free_some(struct decisions *d, size_t budget);

/* A Go duration ("1h", "3h59m58.1s", "-1.5s", "500ms", "0") in
 * milliseconds, truncated toward zero. 0, or -1 if malformed or beyond
 * Go's range (about 292 years). */
int decisions_duration(const char *s, int64_t *ms);

/* The name of a type ("ban", "captcha", "other"). */
const char *decision_type_name(enum decision_type t);

#endif
