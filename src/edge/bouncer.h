/*
 * bouncer: mailedge as a CrowdSec bouncer (global crowdsec, docs/scaling.md).
 * It polls the Local API's decision stream from inside the worker's loop:
 * libcurl's multi interface with its sockets as struct io and its timeout
 * as one loop timer (like c-ares in resolve.c), GET
 * /v1/decisions/stream?startup=true first and after any failure or every
 * crowdsec-resync, then startup=false every crowdsec-interval, with the key
 * in X-Api-Key. The body is parsed as it arrives (src/codecs/decisions.c)
 * (BOUNCER_PASS_BYTES a loop pass: the transfer is paused in between) and
 * applied in batches of BOUNCER_BATCH decisions per loop pass, so no pass
 * is long whatever the size of the answer; the set it replaces is emptied
 * in batches too. A startup=true answer
 * fills a new set (src/edge/banset.c) that replaces the one in force only
 * once complete.
 *
 * Failure is open and sticky: a poll that fails (no connection, timeout,
 * 401/403, another status, an answer that is not a decision stream or is
 * longer than crowdsec-max-answer) changes nothing in force; expiries keep
 * running; the next try comes after 1 s, doubling up to BOUNCER_RETRY_MAX_MS
 * (or the interval when longer); one log line per change of state. Nothing
 * on the accept path waits: bouncer_lookup() is a lookup in memory.
 *
 * With `workers N`, worker 0 alone polls; the set is the host's, in the
 * shared region (src/base/shm.h), so one poller per host and every worker
 * enforces the same bans. The other workers look it up under its lock;
 * worker 0 changes it under that lock, BOUNCER_BATCH changes at most at a
 * time. A worker 0 that restarts finds the set in force and keeps it until
 * its first whole list (startup=true) replaces it.
 */
#ifndef MAILEDGE_BOUNCER_H
#define MAILEDGE_BOUNCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "banset.h"

#define BOUNCER_BATCH 256u                /* decisions applied per loop pass */
#define BOUNCER_PASS_BYTES (32u << 10)    /* bytes of an answer parsed per loop pass */
#define BOUNCER_RETRY_MAX_MS 30000u       /* failures: retried after 1s, 2s, 4s ... 30s */
#define BOUNCER_CONNECT_TIMEOUT_MS 5000
#define BOUNCER_TIMEOUT_MS 60000          /* a whole poll, the answer included */
#define BOUNCER_TIMERS 2                  /* the next poll; curl's own timeout */

struct worker;
struct bouncer;

/*
 * Starts, changes or stops the poller for the current configuration
 * (w->conf->global.crowdsec), at start and on each reload. A change of the
 * address, key or filters asks for the whole list again; the set in force
 * stays until it arrives. Returns 0, or -1 after logging (out of memory).
 */
int bouncer_configure(struct worker *w);

/* Stops and frees the poller and its set. */
void bouncer_free(struct worker *w);

/* The remote ban holding <sa> now (a copy, valid until the next call);
 * NULL when none, or no crowdsec. */
const struct banset_entry *bouncer_lookup(struct worker *w, const struct sockaddr *sa);

/* What /status shows. */
struct bouncer_status {
    const char *state;        /* "starting", "up", "down" */
    const char *error;        /* the last failure, "" after a success */
    uint64_t last_success;    /* Unix time; 0: none */
    uint64_t last_full;       /* Unix time of the last whole list; 0: none */
    size_t ips, ranges;
    bool syncing;             /* a poll or the application of an answer is under way */
};
/* false when crowdsec is not configured. */
bool bouncer_status(const struct worker *w, struct bouncer_status *out);

/*
 * Visits at most <max> remote bans from cursor <*pos> (start at 0; 0 again
 * after the last). Returns how many were visited.
 */
size_t bouncer_walk(const struct worker *w, size_t *pos, size_t max,
                    void (*fn)(void *arg, const struct banset_entry *e), void *arg);

#endif
