/*
 * edge: a worker's life. Started by a reload from nothing (src/edge/reload.c),
 * run until drained, then freed. What sits above the proxy (main, the admin
 * endpoint) goes through these and through struct worker.
 */
#ifndef MAILEDGE_EDGE_H
#define MAILEDGE_EDGE_H

#include <stddef.h>

struct conf;
struct worker;

/*
 * Sets up <w> for <conf> (owned from now on, also on failure), loaded from
 * <path> (kept by reference, read again on reload), binds every listener
 * (or takes the inherited socket of its address). Returns 0, or -1 after
 * logging which listener and address failed.
 */
int edge_init(struct worker *w, struct conf *conf, const char *path, int *inherited,
              size_t ninherited);

/* Runs the loop until drained. Returns 0, or -1 if the loop failed. */
int edge_run(struct worker *w);

/*
 * Stops accepting: closes the listeners, lets sessions finish for the
 * grace period, then cuts the rest. The loop stops when none is left.
 */
void edge_drain(struct worker *w);

/* Closes and frees everything of <w>, also after a failed edge_init(). */
void edge_free(struct worker *w);

#endif
