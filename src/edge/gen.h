/*
 * gen: a configuration generation. The conf loaded at start or by one
 * reload, with the runtime objects made for it: its backends (server
 * health, DNS answers, held clients) and its listeners. A session keeps the
 * generation it started on (and, when a reload moved it while held, the
 * one of its backend) by reference, so it finishes on the config it started
 * with; the worker holds one more reference on the current generation.
 * A retired generation is freed when its last session ends
 * (docs/ARCHITECTURE.md, "Generations and reload").
 */
#ifndef MAILEDGE_GEN_H
#define MAILEDGE_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "conf.h"
#include "listener.h"

struct worker;

struct gen {
    uint64_t id;                  /* 1 at start, +1 per successful reload */
    struct conf *conf;            /* owned */
    struct backend *backends;     /* parallel to conf->backends */
    struct listener *listeners;   /* one per bind address, in conf order */
    size_t nlisteners;
    size_t refs;                  /* sessions on it, +1 while current */
    struct gen *prev, *next;      /* the worker's list of generations */
};

/*
 * A generation for <conf> (owned from now on, also on failure): backends
 * set up (servers down until checked, names unresolved), listeners not yet
 * open. Reference count 1. NULL when out of memory.
 */
struct gen *gen_new(struct conf *conf, uint64_t id);

/* Frees <g>, its backends, its listener structs (closed before) and its conf. */
void gen_free(struct gen *g);

/* The runtime backend of <g> for a configured backend of g->conf; NULL for NULL. */
struct backend *gen_backend(struct gen *g, const struct conf_backend *cb);

/* The backend of <g> named <name>, or NULL. */
struct backend *gen_backend_by_name(struct gen *g, const char *name);

/* A session stops using generation <g> of <w> (NULL: none): freed after
 * this batch when it was the last user of a generation no longer current. */
void gen_release(struct worker *w, struct gen *g);

#endif
