/*
 * healthshare: with `workers N`, one worker (0, the checker) runs the
 * health checks and publishes each server's health in a block of the
 * host's shared region (src/base/shm.h, "health/servers"); the others (the
 * followers) run no check and read it every HEALTHSHARE_POLL_MS:
 * a server of theirs goes up or down as the checker's does, and a new pass
 * of an up server wakes their held clients, as a check of their own would.
 * So N workers make the checks of one. Entries are keyed by backend and
 * server name (a reload keeps them); fixed size, written by the checker
 * alone, read with atomics (docs/scaling.md).
 */
#ifndef MAILEDGE_HEALTHSHARE_H
#define MAILEDGE_HEALTHSHARE_H

#include <stdbool.h>
#include <stddef.h>

struct worker;
struct backend;

#define HEALTHSHARE_SLOTS 1024   /* checked servers over all backends and reloads */
#define HEALTHSHARE_POLL_MS 100

/*
 * With workers N (after shm_attach()): this process's worker is the
 * checker (worker 0) or a follower. Without a call, or with workers 1,
 * the worker checks and publishes nothing; when the block cannot be had
 * (the region is full), every worker checks for itself, as with workers 1.
 */
void healthshare_attach(void);

/* False in a follower: it runs no check. */
bool healthshare_checks_here(void);

/* The checker: server <i> of <b> was just checked (its health in b->srv[i]). */
void healthshare_publish(const struct backend *b, size_t i, bool passed);

/* A follower: starts reading the region (once, at start). Returns 0, or -1 after logging. */
int healthshare_follow(struct worker *w);

/*
 * A follower, as a session is about to pick a server: when a server went
 * up or down since it last read the region, reads it now (one atomic load
 * otherwise), so it never sends a client where the checker already saw
 * the server go down, nor refuses one for a server it saw come up.
 * Nothing elsewhere.
 */
void healthshare_sync(struct worker *w);

/* A follower: stops reading (drain, exit); frees what healthshare_follow() took. Idempotent. */
void healthshare_unfollow(struct worker *w);

#endif
