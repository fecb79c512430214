/* gen: a configuration generation and its runtime objects. */
#include "gen.h"

#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "worker.h"

struct gen *
gen_new(struct conf *conf, uint64_t id)
{
    struct gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        conf_free(conf);
        return NULL;
    }
    g->id = id;
    g->conf = conf;
    g->refs = 1;
    size_t nbinds = 0;
    for (size_t i = 0; i < conf->nlisteners; i++)
        nbinds += conf->listeners[i].nbinds;
    g->backends = calloc(conf->nbackends ? conf->nbackends : 1, sizeof(*g->backends));
    g->listeners = calloc(nbinds ? nbinds : 1, sizeof(*g->listeners));
    if (g->backends == NULL || g->listeners == NULL) {
        gen_free(g);
        return NULL;
    }
    for (size_t i = 0; i < nbinds; i++) {
        g->listeners[i].io.fd = -1;
        g->listeners[i].gen = g;
    }
    for (size_t i = 0; i < conf->nbackends; i++) {
        if (backend_init(&g->backends[i], &conf->backends[i]) == -1) {
            gen_free(g);
            return NULL;
        }
        g->backends[i].gen = g;
    }
    return g;
}

void
gen_free(struct gen *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; g->backends != NULL && i < g->conf->nbackends; i++)
        backend_free(&g->backends[i]);
    free(g->backends);
    free(g->listeners);
    conf_free(g->conf);
    free(g);
}

struct backend *
gen_backend(struct gen *g, const struct conf_backend *cb)
{
    return cb != NULL ? &g->backends[cb - g->conf->backends] : NULL;
}

struct backend *
gen_backend_by_name(struct gen *g, const char *name)
{
    for (size_t i = 0; i < g->conf->nbackends; i++)
        if (strcmp(g->conf->backends[i].name, name) == 0)
            return &g->backends[i];
    return NULL;
}

void
gen_release(struct worker *w, struct gen *g)
{
    if (g == NULL)
        return;
    g->refs--;
    /* Freed after the batch: an event later in it may still point into it. */
    if (g->refs == 0)
        loop_defer(w->loop, &w->gc_defer);
}
