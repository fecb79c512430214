/* worker: the loop, its listeners and its sessions. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "addr.h"
#include "admin.h"
#include "check.h"
#include "gen.h"
#include "listener.h"
#include "log.h"
#include "reload.h"
#include "relay.h"
#include "resolve.h"
#include "session.h"

#define POOL_IDLE 256   /* empty pipes and buffers kept for reuse */

_Static_assert(END_REASON_COUNT <= METRICS_REASONS_MAX, "raise METRICS_REASONS_MAX");
_Static_assert(CHECK_RESULT_COUNT <= METRICS_CHECK_REASONS_MAX, "raise METRICS_CHECK_REASONS_MAX");

static void
on_grace(struct timer *t)
{
    struct worker *w = (struct worker *)(void *)((char *)t - offsetof(struct worker, grace_timer));
    if (w->nsessions > 0) {
        log_begin(LOG_INFO, "drain_timeout");
        log_u64("sessions", w->nsessions);
        log_end();
    }
    session_cut_all(w);
}

struct backend *
worker_backend(struct worker *w, const struct conf_backend *cb)
{
    return gen_backend(w->gen, cb);
}

static void
on_gc(struct defer *d)
{
    struct worker *w = (struct worker *)(void *)((char *)d - offsetof(struct worker, gc_defer));
    struct gen *g = w->gens;
    while (g != NULL) {
        struct gen *next = g->next;
        if (g->refs == 0 && g != w->gen) {
            if (g->prev)
                g->prev->next = g->next;
            else
                w->gens = g->next;
            if (g->next)
                g->next->prev = g->prev;
            log_begin(LOG_DEBUG, "generation_freed");
            log_u64("generation", g->id);
            log_end();
            gen_free(g);
        }
        g = next;
    }
}

void
worker_gen_release(struct worker *w, struct gen *g)
{
    if (g == NULL)
        return;
    g->refs--;
    /* Freed after the batch: an event later in it may still point into it. */
    if (g->refs == 0)
        loop_defer(w->loop, &w->gc_defer);
}

int
worker_init(struct worker *w, struct conf *conf, const char *path, int *inherited,
            size_t ninherited)
{
    memset(w, 0, sizeof(*w));
    w->conf_path = path;
    w->inherited = inherited;
    w->ninherited = ninherited;
    timer_init(&w->grace_timer, on_grace);
    defer_init(&w->gc_defer, on_gc);
    if (getrandom(&w->id_seed, sizeof(w->id_seed), 0) != sizeof(w->id_seed))
        w->id_seed = (uint64_t)(uintptr_t)w ^ (uint64_t)time(NULL);
    w->loop = loop_new();
    w->pool = relay_pool_new(POOL_IDLE);
    if (w->loop == NULL || w->pool == NULL || loop_timer_reserve(w->loop, WORKER_TIMERS) == -1) {
        log_warn("worker: cannot allocate");
        conf_free(conf);
        return -1;
    }
    for (size_t r = 0; r < END_REASON_COUNT; r++)
        w->reason_names[r] = session_end_reason_name((enum end_reason)r);
    w->metrics.version = MAILEDGE_VERSION;
    w->metrics.reason_names = w->reason_names;
    w->metrics.nreasons = END_REASON_COUNT;
    for (size_t r = 0; r < CHECK_RESULT_COUNT; r++)
        w->check_reason_names[r] = check_result_name((enum check_result)r);
    w->metrics.check_reason_names = w->check_reason_names;
    w->metrics.ncheck_reasons = CHECK_RESULT_COUNT;
    if (reload_first(w, conf) == -1)
        return -1;
    if (w->conf->global.admin_set && (w->admin = admin_start(w)) == NULL)
        return -1;
    return 0;
}

int
worker_run(struct worker *w)
{
    return loop_run(w->loop);
}

void
worker_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->nlisteners; i++)
        listener_close(&w->listeners[i]);
    check_stop_all(w);
    log_begin(LOG_INFO, "drain");
    log_u64("sessions", w->nsessions);
    log_u64("grace_ms", w->conf->global.grace_ms);
    log_end();
    /* Held clients have not started: they get the goodbye at once. */
    session_drain_held(w);
    if (w->nsessions == 0)
        loop_stop(w->loop);
    else
        loop_timer_at(w->loop, &w->grace_timer, loop_now(w->loop) + w->conf->global.grace_ms);
}

void
worker_session_gone(struct worker *w)
{
    w->nsessions--;
    if (w->draining && w->nsessions == 0) {
        loop_timer_cancel(w->loop, &w->grace_timer);
        loop_stop(w->loop);
    }
}

void
worker_free(struct worker *w)
{
    admin_stop(w->admin);
    for (size_t i = 0; i < w->nlisteners; i++)
        listener_close(&w->listeners[i]);
    check_free_all(w);
    resolve_free_all(w);
    while (w->gens != NULL) {
        struct gen *g = w->gens;
        w->gens = g->next;
        gen_free(g);
    }
    relay_pool_free(w->pool);
    free(w->metrics.backends);
    metrics_free(&w->metrics);
    for (size_t i = 0; i < w->nnames; i++)
        free(w->names[i]);
    free(w->names);
    loop_free(w->loop);
    memset(w, 0, sizeof(*w));
}
