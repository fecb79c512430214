/*
 * metrics: counters kept in plain structs, updated by the session code on
 * the data path (an increment, no lookup), and a pure renderer of the
 * Prometheus text exposition format (version 0.0.4) for the admin
 * endpoint. No I/O here; docs/operations.md lists every metric.
 */
#ifndef MAILEDGE_METRICS_H
#define MAILEDGE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abuse.h"

#define METRICS_REASONS_MAX 32       /* end reasons a listener counts */
#define METRICS_CHECK_REASONS_MAX 16 /* health check results a server counts */
#define METRICS_LAT_BUCKETS 12       /* connect latency buckets, +Inf apart */

/* Upper bounds (milliseconds) of the connect latency buckets. */
extern const uint64_t metrics_lat_bounds_ms[METRICS_LAT_BUCKETS];

enum metrics_proxy_err { METRICS_PROXY_INVALID, METRICS_PROXY_TIMEOUT, METRICS_PROXY_UNTRUSTED };
enum metrics_connect_err {
    METRICS_CONNECT_REFUSED,
    METRICS_CONNECT_TIMEOUT,
    METRICS_CONNECT_ERROR
};

/* One configured listener (all its bind addresses together). */
struct metrics_listener {
    const char *name;
    uint64_t active;                     /* open sessions */
    uint64_t ended[METRICS_REASONS_MAX]; /* by end reason */
    uint64_t bytes_in, bytes_out;        /* of ended sessions */
    uint64_t proxy_errors[3];            /* by enum metrics_proxy_err */
    uint64_t refused_maxconn;            /* turned away at maxconn (src/edge/listener.c) */
    /* Limits and bans (src/edge/abuse.c); NULL: none. One per host, in the
     * shared region: the same numbers in every worker, to render once and
     * never to sum over workers. */
    const struct abuse_stats *abuse;
};

/* One server of one backend. */
struct metrics_server {
    const char *backend, *name;
    uint64_t connects;                        /* successful */
    uint64_t connect_errors[3];               /* by enum metrics_connect_err */
    uint64_t attempts_abandoned;              /* Happy Eyeballs attempts another one beat */
    uint64_t lat_bucket[METRICS_LAT_BUCKETS]; /* connects per bucket, not cumulative */
    uint64_t lat_sum_ms;
    bool checked;                                       /* its backend has a health check */
    bool up;                                            /* usable by new sessions */
    uint64_t active;                                    /* sessions connecting or connected now */
    uint64_t check_failures[METRICS_CHECK_REASONS_MAX]; /* by check result */
    uint64_t went_up, went_down;                        /* health changes, checked servers */
    uint64_t last_change;                               /* Unix time of the last; 0: none */
};

/* The process, as the Prometheus client libraries name it (src/procstat.c). */
struct metrics_process {
    uint64_t start_time;     /* Unix time, seconds */
    uint64_t open_fds, max_fds;
    uint64_t resident_bytes;
};

/* Why a poll of the ban engine failed (src/edge/bouncer.c). */
enum metrics_sync_err {
    METRICS_SYNC_CONNECT,    /* no connection (refused, unreachable, name) */
    METRICS_SYNC_TIMEOUT,    /* no answer in time */
    METRICS_SYNC_AUTH,       /* 401 or 403: the key was refused */
    METRICS_SYNC_HTTP,       /* another status, or the transfer broke */
    METRICS_SYNC_BAD_ANSWER, /* not a decision stream */
    METRICS_SYNC_OVERSIZED,  /* longer than crowdsec-max-answer */
    METRICS_SYNC_ERR_COUNT
};

/* Label values of enum metrics_sync_err ("connect", "timeout", ...). */
extern const char *const metrics_sync_err_names[METRICS_SYNC_ERR_COUNT];

/* Remote bans from the ban engine (src/edge/bouncer.c). */
struct metrics_bansync {
    bool on;                                  /* crowdsec configured: render */
    bool up;                                  /* the last poll succeeded */
    uint64_t ips, ranges;                     /* remote bans held now */
    uint64_t errors[METRICS_SYNC_ERR_COUNT];  /* failed polls, by kind */
    uint64_t last_success;                    /* Unix time of the last good poll; 0: none */
    uint64_t ignored;                         /* decisions not enforced (type, filter, unusable) */
    uint64_t dropped_full;                    /* decisions not kept: crowdsec-max-bans reached */
    uint64_t refused;                         /* clients refused for a remote ban */
};

/* One backend. */
struct metrics_backend {
    const char *name;
    uint64_t queued; /* clients held now, waiting for a server (queue-timeout) */
};

/* One worker process of several (src/edge/metricshare.h), for its own families. */
struct metrics_worker {
    bool running;            /* its process is alive now */
    uint64_t start_time;     /* Unix time its process started */
    uint64_t restarts;       /* processes started for this index after the first */
    uint64_t sessions;       /* open now */
    uint64_t open_fds, resident_bytes;
};

struct metrics {
    const char *version;                   /* build info */
    const char *const *reason_names;       /* label values of ended[] */
    size_t nreasons;                       /* <= METRICS_REASONS_MAX */
    const char *const *check_reason_names; /* label values of check_failures[]; [0] passed */
    size_t ncheck_reasons;                 /* <= METRICS_CHECK_REASONS_MAX */
    struct metrics_listener *listeners;
    size_t nlisteners;
    struct metrics_server *servers;
    size_t nservers;
    struct metrics_backend *backends; /* owned by the caller; NULL: no queue family */
    size_t nbackends;
    /* Descriptors (src/edge/fdbudget.h); rendered when fd_limit is set. */
    uint64_t fd_limit, fd_reserved, maxconn;
    /* Configuration reloads (SIGHUP); rendered when reload_info is set. */
    bool reload_info;
    uint64_t reloads_ok, reloads_failed;
    bool last_reload_ok;             /* the last reload (or the start) succeeded */
    uint64_t last_reload_ok_time;    /* its Unix time, seconds: the start, then each success */
    uint64_t log_lines_failed;       /* log lines not (fully) written */
    bool process_info;               /* render process_* from <process> */
    struct metrics_process process;
    struct metrics_bansync bansync;  /* rendered when bansync.on */
    struct metrics_worker *workers;  /* by index; owned by the caller; rendered when nworkers > 0 */
    size_t nworkers;
};

/* A growing string. Start it zeroed; free .p when done. */
struct strbuf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed; the text is cut */
};

void strbuf_addn(struct strbuf *b, const char *s, size_t n);
void strbuf_add(struct strbuf *b, const char *s);
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* <s> as a JSON string, quotes included ('"', '\\' and control characters escaped). */
void strbuf_json_str(struct strbuf *b, const char *s);

/*
 * Allocates <nlisteners> and <nservers> zeroed counter structs in <m> (the
 * caller sets names). Returns 0, or -1 when out of memory.
 */
int metrics_init(struct metrics *m, size_t nlisteners, size_t nservers);
void metrics_free(struct metrics *m);

/*
 * Sums over workers (src/edge/metricshare.h): add what <from>, the
 * counters of a worker that may be counting right now, holds into <to>.
 * Each field of <from> is read once with a relaxed atomic load (its worker
 * writes it with plain increments). The gauges (active, queued) are added
 * only when <gauges> (its process runs). For a server, only what each
 * worker counts for itself: connects, errors, latency, active; health and
 * checks are worker 0's, never summed.
 */
void metrics_listener_add(struct metrics_listener *to, const struct metrics_listener *from,
                          bool gauges);
void metrics_server_add(struct metrics_server *to, const struct metrics_server *from, bool gauges);
void metrics_backend_add(struct metrics_backend *to, const struct metrics_backend *from,
                         bool gauges);

/* Counts one successful connect that took <ms> milliseconds. */
void metrics_connect_ok(struct metrics_server *s, uint64_t ms);

/*
 * Appends the whole exposition to <out>: HELP and TYPE for each family,
 * then its samples; label values escaped (\\, \", \n). Returns 0, or -1
 * when out of memory.
 */
int metrics_render(const struct metrics *m, struct strbuf *out);

#endif
