/*
 * admin_view: what the admin endpoint (admin.c, admin_bans.c) sees of the
 * proxy: the loop it runs in, and through functions the counters it
 * renders, the configuration in force, readiness, status and the abuse
 * tables. main wires it to a worker (src/cmd/main.c), so the endpoint
 * never reads struct worker.
 */
#ifndef MAILEDGE_ADMIN_VIEW_H
#define MAILEDGE_ADMIN_VIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

struct abuse;
struct banset_entry;
struct bouncer_status;
struct conf;
struct loop;

struct admin_view {
    struct loop *loop;        /* the endpoint's descriptors and timers run in it */
    void *arg;                /* of the functions below */
    /* /metrics: fills <m> with every worker's figures (the counters summed,
     * src/edge/metricshare.h) and frees it after the rendering. */
    int (*metrics)(void *arg, struct metrics *m);
    void (*metrics_free)(struct metrics *m);
    /* The configuration in force (the admin settings, the listeners): read
     * again on every request, so a reload's token or hosts apply at once. */
    const struct conf *(*conf)(void *arg);
    /* /readyz: appends the verdict to <why>; true when ready. */
    bool (*ready)(void *arg, struct strbuf *why);
    /* /status: appends the JSON document to <out>. */
    void (*status)(void *arg, struct strbuf *out);
    /* /bans: the abuse table of the listener called <name>; NULL: none. */
    struct abuse *(*abuse)(void *arg, const char *name);
    /* /bans: the remote bans (src/edge/bouncer.c). remote_status fills <st>
     * and is true when they are on; remote_walk visits them from <*pos>. */
    bool (*remote_status)(void *arg, struct bouncer_status *st);
    size_t (*remote_walk)(void *arg, size_t *pos, size_t max,
                          void (*fn)(void *fnarg, const struct banset_entry *e), void *fnarg);
};

#endif
