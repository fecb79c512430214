/*
 * worker: one event loop with its listeners, backends and sessions. Today
 * the process runs one worker; several shared-nothing workers on
 * SO_REUSEPORT sockets need nothing more than one struct worker each
 * (docs/ARCHITECTURE.md).
 */
#ifndef MAILEDGE_WORKER_H
#define MAILEDGE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "conf.h"
#include "loop.h"
#include "metrics.h"

struct listener;
struct session;
struct relay_pool;
struct admin;
struct check;
struct resolver;

/* Timers armed besides one per session and one per bind: drain, admin, and
 * main's watchdog ping. */
#define WORKER_TIMERS 3

struct worker {
    struct loop *loop;
    struct relay_pool *pool;
    const struct conf *conf;
    struct backend *backends;        /* parallel to conf->backends */
    struct listener *listeners;      /* one per bind address */
    size_t nlisteners;
    struct session *sessions;        /* every open session, for drain */
    size_t nsessions;
    uint64_t id_seed, id_next;       /* session ids */
    bool draining;
    struct timer grace_timer;
    struct metrics metrics;          /* listeners parallel to conf->listeners */
    const char *reason_names[METRICS_REASONS_MAX];
    const char *check_reason_names[METRICS_CHECK_REASONS_MAX];
    struct admin *admin;             /* NULL without admin in the conf */
    struct check *checks;            /* one per checked server (src/check.c) */
    size_t nchecks;                  /* each owns one armed timer */
    struct resolver *resolver;       /* DNS names of servers (src/resolve.c); NULL: none */
    size_t nresolve_timers;          /* timers it owns */
};

/*
 * Sets up <w> for <conf> (kept by reference), binds every listener and
 * starts the admin endpoint if configured. Returns 0, or -1 after logging
 * which listener and address failed.
 */
int worker_init(struct worker *w, const struct conf *conf);

/* Runs the loop until drained. Returns 0, or -1 if the loop failed. */
int worker_run(struct worker *w);

/*
 * Stops accepting: closes the listeners, lets sessions finish for the
 * grace period, then cuts the rest. The loop stops when none is left.
 */
void worker_drain(struct worker *w);

void worker_free(struct worker *w);

/* The runtime backend for a configured one; NULL for NULL. */
struct backend *worker_backend(struct worker *w, const struct conf_backend *cb);

/* Called by sessions as they end. */
void worker_session_gone(struct worker *w);

#endif
