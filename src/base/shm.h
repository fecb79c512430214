/*
 * shm: one region of shared memory for the workers of one host. The
 * process that starts mailedge maps it before it forks the workers, so
 * every worker (and every restarted one) sees it at the same address and a
 * pointer into it means the same thing in all of them: state kept there
 * (abuse tables, counters, remote bans, addresses) is one per host.
 *
 * The region is reserved, not committed (MAP_NORESERVE): a page costs
 * memory once written. Blocks are allocated from it (first fit, zeroed)
 * and found again by kind and name, with a count of the holders, so that
 * a worker that starts later, or that reloads, finds what the others made.
 * A process-shared robust mutex guards the allocator; struct shm_mutex is
 * the same kind of lock for what callers keep in their blocks (a worker
 * that dies holding one does not stop the others).
 *
 * The daemon always has a region, also with workers 1 (one code path);
 * code that runs without one (the unit tests, the commands) passes NULL
 * where a region is asked for and keeps its state in its own memory.
 */
#ifndef MAILEDGE_SHM_H
#define MAILEDGE_SHM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define SHM_RESERVE_DEFAULT ((size_t)1 << 30) /* 1 GiB of address space */
#define SHM_RESERVE_MIN ((size_t)16 << 20)    /* the least it settles for */
#define SHM_NAMES_MAX 1024                    /* named blocks at once */
#define SHM_NAME_MAX 160 /* kind + name, NUL included: room for "kind/backend/server" */
#define SHM_WORKERS_MAX 64                    /* the most workers a region serves */

struct shm;

/* A lock in shared memory (inside a block of the region). */
struct shm_mutex {
    pthread_mutex_t m;
};

/*
 * Reserves a region of <reserve> bytes (0: SHM_RESERVE_DEFAULT), before
 * the fork. NULL after logging when the system refuses.
 */
struct shm *shm_create(size_t reserve);

/* Unmaps the region (the supervisor, once every worker is gone). */
void shm_destroy(struct shm *s);

/*
 * This process is worker <index> of <nworkers> sharing <s> (after the
 * fork, in the child). Without a call, shm_host() is NULL.
 */
void shm_attach(struct shm *s, unsigned index, unsigned nworkers);

/* The region of this host's workers, or NULL (not the daemon). */
struct shm *shm_host(void);

/* This worker's index (0 without a region) and how many there are (1 without). */
unsigned shm_worker(void);
unsigned shm_nworkers(void);

/*
 * <size> zeroed bytes, 64-byte aligned, or NULL when the region is full.
 * The region's own lock is a leaf (nothing is locked under it): these two
 * may be called while holding a struct shm_mutex of a block, as a shared
 * set that grows under its lock does (src/edge/banset.c).
 */
void *shm_alloc(struct shm *s, size_t size);
void shm_free(struct shm *s, void *p);

/*
 * The block called <kind>/<name> of <size> bytes, made (zeroed) when there
 * is none, with one more holder either way (give it back with shm_put()).
 * A block it makes is handed to <init>(<arg>, block) (when not NULL)
 * before any other process can find it: under the region's lock, so keep
 * it short and call no shm_* function from it. NULL when the region or its
 * table of names is full, or when a block of that name has another size.
 */
void *shm_named(struct shm *s, const char *kind, const char *name, size_t size,
                void (*init)(void *arg, void *block), void *arg);

/* One holder less; the block is freed when none is left. */
void shm_put(struct shm *s, void *block);

/* Bytes allocated now, and the size of the region (for /metrics, tests). */
size_t shm_used(const struct shm *s);
size_t shm_size(const struct shm *s);

/*
 * Process-shared, robust: when the holder dies, the next lock takes it
 * over (the state it guards may be half updated: callers keep their
 * updates small enough for that not to matter, such as counters).
 * 0, or -1 when the system refuses.
 */
int shm_mutex_init(struct shm_mutex *mu);
void shm_mutex_lock(struct shm_mutex *mu);
void shm_mutex_unlock(struct shm_mutex *mu);

#endif
