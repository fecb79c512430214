/*
 * worker: what the parts of one event loop share: the loop, pools, the
 * current generation and its views, the sessions, counters, descriptor
 * limits and abuse tables. Its life (start, run, drain, free) is
 * src/edge/edge.c, above every part; this file calls none of them. A
 * process runs one worker; with workers N there are N such processes on
 * SO_REUSEPORT sockets, sharing what is per host through src/base/shm.h
 * (docs/ARCHITECTURE.md).
 */
#ifndef MAILEDGE_WORKER_H
#define MAILEDGE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "byname.h"
#include "conf.h"
#include "connector.h"
#include "fdbudget.h"
#include "loop.h"
#include "metrics.h"
#include "metricshare.h"

struct listener;
struct session;
struct relay_pool;
struct checks;
struct resolver;
struct ownaddr;
struct bouncer;

/* Timers of the worker itself: the drain's grace period, main's watchdog
 * ping and the abuse sweep. Every other owner reserves its own
 * (loop_timer_reserve): sessions, listeners, checks, the resolver, admin. */
#define WORKER_TIMERS 3

/*
 * The abuse-control state of one configured listener (src/edge/abuse.c), known
 * by the listener's name rather than its config: limits, bans and their
 * counters outlive a config, so a reload hands these over by name (the
 * values of w->abuse).
 */
struct worker_abuse {
    const char *name;                /* its entry's in w->abuse */
    struct abuse *t;
    struct worker *w;
};

struct gen;

/*
 * This worker's counters (its slots of the host's shared blocks,
 * src/edge/metricshare.h), keyed by listener, backend and server name so
 * they survive reloads: l[0..nl) are the current config's (in conf order,
 * rendered), the rest up to nl_all of names a reload removed (kept, not
 * rendered, in case sessions of an old generation still count there or the
 * name comes back). Same for servers and backends.
 */
struct worker_counters {
    struct metrics_listener **l;
    size_t nl, nl_all;
    struct metrics_server **s;
    size_t ns, ns_all;
    struct metrics_backend **b;
    size_t nb, nb_all;
};

struct worker {
    struct loop *loop;
    struct relay_pool *pool;
    /* The current configuration generation (src/edge/gen.h) and views of it:
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
    size_t nsessions;                /* lingering ones included (src/edge/session.c) */
    size_t nlinger;                  /* closed sessions still reading away client bytes */
    struct ownaddr *own;             /* the host's addresses, for loops (src/edge/ownaddr.c) */
    uint64_t id_seed, id_next;       /* session ids */
    bool draining;
    /* Worker 0 of several, with the admin endpoint: its drain done, it keeps
     * serving the endpoint until the supervisor says the other workers are
     * gone (main clears it), so the endpoint answers until the last exit. */
    bool linger_admin;
    bool reuseport;                  /* one of several worker processes: binds with SO_REUSEPORT */
    struct timer grace_timer;
    /* What /metrics renders besides the counters below (build, reloads,
     * descriptors, remote bans); its listeners, servers and backends are
     * filled only for a rendering (src/edge/status.c: the sums over workers). */
    struct metrics metrics;
    struct worker_counters counters;
    struct metricshare_proc *proc;   /* what this process says of itself (src/edge/metricshare.h) */
    struct byname names;             /* label values of the counters: names alone */
    const char *reason_names[METRICS_REASONS_MAX];
    const char *check_reason_names[METRICS_CHECK_REASONS_MAX];
    /* Tells the service manager about a reload (READY=1, RELOADING=1...);
     * NULL: nobody to tell. Set by main. */
    void (*notify)(const char *state);
    /* Health checks and DNS names of the current generation's servers
     * (src/edge/check.c, src/edge/resolve.c); NULL: none. */
    struct checks *checks;
    struct resolver *resolver;
    struct bouncer *bouncer;         /* CrowdSec decisions (src/edge/bouncer.c); NULL: none */
    /* Reload (src/edge/reload.c): SIGHUP queues it; it runs after the batch of events. */
    const char *conf_path;
    struct defer reload_defer;
    struct defer gc_defer;           /* frees generations whose last session ended */
    int *inherited;                  /* socket activation: listening sockets from the
                                      * service manager, -1 once taken; NULL: none */
    size_t ninherited;
    /* Abuse control (src/edge/abuse.c): a struct worker_abuse per listener
     * name ever configured, so that a reload keeps limits, bans and their
     * counters (src/edge/reload.c). */
    struct byname abuse;
    struct timer abuse_timer;        /* abuse_sweep() about once a second */
    /* Descriptors (src/edge/fdbudget.h), shared out at start and on each reload:
     * sessions stop at fdb.maxconn, their parallel connects at connects.max,
     * their pipes at fdb.pipes; the reserve is never theirs. */
    struct fdbudget fdb;
    struct conn_budget connects;
    bool any_full;                   /* a listener is at maxconn: look again as sessions end */
    struct defer room_defer;
    /* Starts a session for a client a listener accepted (session_start, wired
     * by src/edge/edge.c, so that listeners need not know sessions). */
    void (*accept)(struct listener *l, int fd, const struct sockaddr_storage *peer);
};

/*
 * The worker's own state, before any configuration: its loop, pools, ids
 * and the abuse sweep (src/edge/edge.c starts the rest). <path> and
 * <inherited> are kept by reference. Returns 0, or -1 after logging.
 */
int worker_init(struct worker *w, const char *path, int *inherited, size_t ninherited);

/* Arms the abuse sweep, about once a second from now. */
void worker_abuse_sweep_start(struct worker *w);

/* Frees what worker_init() made, the counters and the abuse tables. */
void worker_free(struct worker *w);

/*
 * Before a generation for <c> is committed (start or reload): every
 * listener name of <c> gets its abuse state if it has none yet. Returns
 * 0, or -1 when out of memory (then nothing in use changed).
 */
int worker_abuse_prepare(struct worker *w, const struct conf *c);

/* The abuse state of the listener called <name>; NULL when there is none. */
struct worker_abuse *worker_abuse_find(struct worker *w, const char *name);

/* Called by sessions as they end. */
void worker_session_gone(struct worker *w);

/* A drain is done when the last session is gone: the loop stops (unless linger_admin). */
void worker_drain_check(struct worker *w);

/*
 * Shares RLIMIT_NOFILE out for the current configuration (at start and
 * after each reload): maxconn, the reserve, pipes and parallel connects.
 * Logs event=limits when they change.
 */
void worker_limits(struct worker *w);

#endif
