/*
 * metricshare: the counters of every worker where worker 0, which runs the
 * admin endpoint, can read them (docs/operations.md, "Several workers").
 *
 * Each counted name (a listener, a backend, a server of a backend) has one
 * block of the host's shared region (src/base/shm.h) holding a slot per
 * worker index, and one more block holds a slot per worker for what each
 * process says of itself. A worker counts in its own slots only, through
 * plain pointers, with plain increments as before: one writer per slot, so
 * no lock and no atomic read-modify-write on the data path. Worker 0 sums
 * the slots of a name when it renders /metrics or /status, reading each
 * field with a relaxed atomic load: a whole 64-bit value, perhaps a few
 * increments behind, and fields read one by one (a sum is not a snapshot
 * across fields). No message goes between the workers.
 *
 * A slot outlives its process: a restarted worker takes the same index,
 * so the same slots, and continues their counters (they never go
 * backwards), while the gauges of a slot (sessions and connects active,
 * held clients) are set to 0 when a process first takes it, since the
 * sessions counted there died with the process before. Blocks are never
 * given back: a name's counters last as long as the region (the
 * supervisor), as a counter should, and there is one block per name ever
 * configured, whatever the number of workers.
 *
 * Without a region (the unit tests) or when it is full, a slot is private
 * memory: the counters of that name are then this worker's alone (logged).
 */
#ifndef MAILEDGE_METRICSHARE_H
#define MAILEDGE_METRICSHARE_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"

/* What a worker process says of itself; written by that process alone. */
struct metricshare_proc {
    uint64_t pid;              /* of the process running as this index; 0: none (yet, or exited) */
    uint64_t started;          /* Unix time it started */
    uint64_t starts;           /* processes that ran as this index: 1 + restarts */
    uint64_t sessions;         /* open sessions, lingering ones included */
    uint64_t remote_refused;   /* clients refused for a remote ban */
    uint64_t reloads_ok, reloads_failed; /* continued by a successor */
    /* Refreshed about once a second (src/ops/procshare.c). */
    uint64_t open_fds, resident_bytes, max_fds;
    uint64_t log_lines_failed; /* the predecessors' and its own */
    uint64_t log_base;         /* the predecessors' part */
};

/*
 * Takes this worker's slot of the process table (after shm_attach()) and
 * counts a start there: pid, start time, starts. Never NULL.
 */
struct metricshare_proc *metricshare_start(uint64_t pid, uint64_t started);

/* This worker's process slot (metricshare_start() first). */
struct metricshare_proc *metricshare_self(void);

/* Worker <k>'s process slot, or NULL (k >= shm_nworkers(), or not started yet). */
const struct metricshare_proc *metricshare_proc_of(unsigned k);

/* Whether worker <k>'s process runs now (always true for the caller's own). */
bool metricshare_running(unsigned k);

/*
 * This worker's counters for a name, its gauges zeroed, the labels set to
 * <name> (and <backend>), kept by the caller (never freed while the
 * process lives). NULL when out of memory.
 */
struct metrics_listener *metricshare_listener(const char *name);
struct metrics_server *metricshare_server(const char *backend, const char *name);
struct metrics_backend *metricshare_backend(const char *name);

/* Worker <k>'s counters of the name of <own> (a slot this worker took above). */
const struct metrics_listener *metricshare_listener_of(const struct metrics_listener *own,
                                                       unsigned k);
const struct metrics_server *metricshare_server_of(const struct metrics_server *own, unsigned k);
const struct metrics_backend *metricshare_backend_of(const struct metrics_backend *own,
                                                     unsigned k);

/*
 * What the host says beyond its workers' slots, in one block: the
 * supervisor counts there the reloads it refused (an invalid file reaches
 * no worker, so no worker counts it), and worker 0 publishes the
 * generation in force, which the supervisor's refusal line names.
 */
struct metricshare_host {
    uint64_t reloads_refused; /* written by the supervisor alone */
    uint64_t refused_last;    /* 1: the last reload was refused (supervisor) */
    uint64_t generation;      /* worker 0's configuration in force (worker 0) */
};

struct shm;

/*
 * The host block of <s> (the supervisor passes its region, a worker
 * shm_host()), found once and kept for the process: NULL without a region
 * or when it is full.
 */
struct metricshare_host *metricshare_host(struct shm *s);

/* Frees the private slots (at the worker's end; the shared ones stay). */
void metricshare_free(void);

#endif
