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
#include "connector.h"
#include "fdbudget.h"
#include "loop.h"
#include "metrics.h"

struct listener;
struct session;
struct relay_pool;
struct admin;
struct check;
struct resolver;
struct ownaddr;

/* Timers armed besides one per session and one per bind: drain, admin,
 * main's watchdog ping, the abuse sweep, and the config watch's debounce. */
#define WORKER_TIMERS 5

/*
 * The abuse-control state of one configured listener (src/abuse.c), known
 * by the listener's name rather than its config: limits, bans and their
 * counters outlive a config, so a reload hands these over by name.
 */
struct worker_abuse {
    char name[CONF_NAME_MAX];
    struct abuse *t;
    struct worker *w;
};

struct gen;

struct worker {
    struct loop *loop;
    struct relay_pool *pool;
    /* The current configuration generation (src/gen.h) and views of it:
     * conf, backends and listeners below are gen->conf, gen->backends and
     * gen->listeners; checks and the resolver run for it alone. Sessions
     * of older generations keep theirs alive by reference. */
    struct gen *gen;
    struct gen *gens;                /* every live generation, newest first */
    const struct conf *conf;
    struct backend *backends;        /* parallel to conf->backends */
    struct listener *listeners;      /* one per bind address */
    size_t nlisteners;
    struct session *sessions;        /* every open session, for drain */
    size_t nsessions;                /* lingering ones included (src/session.c) */
    size_t nlinger;                  /* closed sessions still reading away client bytes */
    struct ownaddr *own;             /* the host's addresses, for loops (src/ownaddr.c) */
    uint64_t id_seed, id_next;       /* session ids */
    bool draining;
    struct timer grace_timer;
    /* Counters are keyed by listener, backend and server name so they
     * survive reloads: metrics.listeners[0..nlisteners) are the current
     * config's (in conf order, rendered), the rest up to nlisteners_all
     * are of names a reload removed (kept, not rendered, in case sessions
     * of an old generation still count there or the name comes back).
     * Same for servers and backends. */
    struct metrics metrics;
    size_t nlisteners_all, nservers_all, nbackends_all;
    char **names;                    /* interned label values of the counters */
    size_t nnames;
    const char *reason_names[METRICS_REASONS_MAX];
    const char *check_reason_names[METRICS_CHECK_REASONS_MAX];
    struct admin *admin;             /* NULL without admin in the conf */
    struct check *checks;            /* one per checked server (src/check.c) */
    size_t nchecks;                  /* each owns one armed timer */
    struct resolver *resolver;       /* DNS names of servers (src/resolve.c); NULL: none */
    size_t nresolve_timers;          /* timers it owns */
    /* Reload (src/reload.c): SIGHUP queues it; it runs after the batch of events. */
    const char *conf_path;
    struct defer reload_defer;
    struct defer gc_defer;           /* frees generations whose last session ended */
    int *inherited;                  /* socket activation: listening sockets from the
                                      * service manager, -1 once taken; NULL: none */
    size_t ninherited;
    /* Abuse control (src/abuse.c): one state per listener name ever
     * configured, so that a reload keeps limits, bans and their counters
     * (worker_abuse_install). Each allocated alone: its address is stable. */
    struct worker_abuse **abuse;
    size_t nabuse;
    struct timer abuse_timer;        /* abuse_sweep() about once a second */
    /* Descriptors (src/fdbudget.h), shared out at start and on each reload:
     * sessions stop at fdb.maxconn, their parallel connects at connects.max,
     * their pipes at fdb.pipes; the reserve is never theirs. */
    struct fdbudget fdb;
    struct conn_budget connects;
    bool any_full;                   /* a listener is at maxconn: look again as sessions end */
    struct defer room_defer;
};

/*
 * Sets up <w> for <conf> (owned from now on, also on failure), loaded from
 * <path> (kept by reference, read again on reload), binds every listener
 * (or takes the inherited socket of its address) and starts the admin
 * endpoint if configured. Returns 0, or -1 after logging which listener
 * and address failed.
 */
int worker_init(struct worker *w, struct conf *conf, const char *path, int *inherited,
                size_t ninherited);

/* Runs the loop until drained. Returns 0, or -1 if the loop failed. */
int worker_run(struct worker *w);

/*
 * Stops accepting: closes the listeners, lets sessions finish for the
 * grace period, then cuts the rest. The loop stops when none is left.
 */
void worker_drain(struct worker *w);

void worker_free(struct worker *w);

/* The runtime backend of the current generation for a configured one; NULL for NULL. */
struct backend *worker_backend(struct worker *w, const struct conf_backend *cb);

/* A session stops using generation <g>: freed after this batch when it was
 * the last user of a generation that is no longer current. */
void worker_gen_release(struct worker *w, struct gen *g);

/*
 * Before a generation for <c> is committed (start or reload): every
 * listener name of <c> gets its abuse state if it has none yet. Returns
 * 0, or -1 when out of memory (then nothing in use changed).
 */
int worker_abuse_prepare(struct worker *w, const struct conf *c);

/*
 * At the commit, once the counter tables are installed (cannot fail):
 * each name of the current conf gets its new limits and keeps its table
 * (bans, counts); a name no longer configured keeps its table with no
 * limits; the listeners of every live generation and the counters point
 * at the tables of their names.
 */
void worker_abuse_install(struct worker *w);

/* The abuse state of the listener called <name>; NULL when there is none. */
struct worker_abuse *worker_abuse_find(struct worker *w, const char *name);

/* Called by sessions as they end. */
void worker_session_gone(struct worker *w);

/* Whether <l> may start one more session: below maxconn, its own and the process's. */
bool worker_room(const struct worker *w, const struct listener *l);

/*
 * Shares RLIMIT_NOFILE out for the current configuration (at start and
 * after each reload): maxconn, the reserve, pipes and parallel connects.
 * Logs event=limits when they change.
 */
void worker_limits(struct worker *w);

#endif
