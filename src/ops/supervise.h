/*
 * supervise: `workers N` with N > 1. The process that main started stays
 * a supervisor: it holds the validated configuration and opens nothing on
 * the data path; it forks N worker processes, each of which binds every
 * listening address itself with SO_REUSEPORT (the kernel spreads clients
 * over them; each has its own descriptor limit) and runs the usual loop.
 * The supervisor restarts a worker that dies (logged, with a back-off when
 * one keeps dying at once), checks a new configuration before it passes a
 * SIGHUP on (an invalid one reaches no worker), passes SIGTERM/SIGINT (a
 * drain of all; a second one cuts) and SIGUSR1 on, sends worker 0 (the
 * admin endpoint's) SIGUSR2 once the others are gone in a drain, speaks
 * to the service manager for all of them, and exits once every worker has.
 * docs/scaling.md is the user-facing contract.
 */
#ifndef MAILEDGE_SUPERVISE_H
#define MAILEDGE_SUPERVISE_H

#include <stdbool.h>

struct conf;
struct shm;

/*
 * Runs worker <index> (0..N-1) in a child on <conf> (the child owns it);
 * returns the child's exit status.
 */
typedef int (*supervise_worker_fn)(unsigned index, struct conf *conf, void *arg);

/*
 * Supervises conf->global.workers children until all have exited after a
 * drain. <conf> is owned from now on; <path> is read again on SIGHUP.
 * Expects SIGTERM, SIGINT, SIGHUP and SIGUSR1 blocked. Returns the exit
 * status: 0 when every worker drained and exited 0, else 1 (also when a
 * worker could not start). <shm> is the workers' region (the supervisor
 * itself is attached to none): a reload it refuses is counted there.
 */
int supervise_run(const char *path, struct conf *conf, struct shm *shm, supervise_worker_fn run,
                  void *arg);

/*
 * A worker's struct worker notify: its first READY=1 tells the supervisor
 * that it is serving; everything else is for nobody (the supervisor alone
 * speaks to the service manager).
 */
void supervise_notify(const char *state);

/* In a worker: true when it was started again after one died (not at the start). */
bool supervise_restarted(void);

/* In a worker: true once the supervisor is gone (its parent is another process). */
bool supervise_orphaned(void);

/*
 * In a worker: asks the supervisor for a reload of every worker (a SIGHUP:
 * it checks the file first). -1 when this process is no supervised worker.
 */
int supervise_reload_all(void);

#endif
