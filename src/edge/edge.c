/* edge: a worker's life: started, run, drained, freed. */
#include "edge.h"

#include "bouncer.h"
#include "check.h"
#include "conf.h"
#include "gen.h"
#include "healthshare.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "ownaddr.h"
#include "reload.h"
#include "resolve.h"
#include "session.h"
#include "util.h"
#include "worker.h"
#include "verifyrun.h"

_Static_assert(END_REASON_COUNT <= METRICS_REASONS_MAX, "raise METRICS_REASONS_MAX");
_Static_assert(CHECK_RESULT_COUNT <= METRICS_CHECK_REASONS_MAX, "raise METRICS_CHECK_REASONS_MAX");

static void
on_grace(struct timer *t)
{
    struct worker *w = container_of(t, struct worker, grace_timer);
    if (w->nsessions > 0) {
        log_begin(LOG_INFO, "drain_timeout");
        log_u64("sessions", w->nsessions);
        log_end();
    }
    session_cut_all(w);
}

static void
on_gc(struct defer *d)
{
    struct worker *w = container_of(d, struct worker, gc_defer);
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

/* Sessions ended in this batch: listeners waiting at maxconn accept again. */
static void
on_room(struct defer *d)
{
    struct worker *w = container_of(d, struct worker, room_defer);
    w->any_full = false;
    for (size_t i = 0; i < w->nlisteners; i++)
        w->any_full |= listener_full_recheck(&w->listeners[i]);
}

int
edge_init(struct worker *w, struct conf *conf, const char *path, int *inherited,
          size_t ninherited)
{
    if (worker_init(w, path, inherited, ninherited) == -1) {
        conf_free(conf);
        return -1;
    }
    /* Several worker processes share every listening address; the count
     * itself changes only with a restart (src/ops/supervise.c). */
    w->reuseport = conf->global.workers > 1;
    timer_init(&w->grace_timer, on_grace);
    defer_init(&w->gc_defer, on_gc);
    defer_init(&w->room_defer, on_room);
    w->accept = session_start;
    for (size_t r = 0; r < END_REASON_COUNT; r++)
        w->reason_names[r] = session_end_reason_name((enum end_reason)r);
    w->metrics.reason_names = w->reason_names;
    w->metrics.nreasons = END_REASON_COUNT;
    for (size_t r = 0; r < CHECK_RESULT_COUNT; r++)
        w->check_reason_names[r] = check_result_name((enum check_result)r);
    w->metrics.check_reason_names = w->check_reason_names;
    w->metrics.ncheck_reasons = CHECK_RESULT_COUNT;
    if (reload_first(w, conf) == -1 || healthshare_follow(w) == -1)
        return -1;
    worker_abuse_sweep_start(w);
    return 0;
}

int
edge_run(struct worker *w)
{
    return loop_run(w->loop);
}

void
edge_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->nlisteners; i++)
        listener_close(&w->listeners[i]);
    check_stop_all(w->checks);
    healthshare_unfollow(w);
    log_begin(LOG_INFO, "drain");
    log_u64("sessions", w->nsessions);
    log_u64("grace_ms", w->conf->global.grace_ms);
    log_end();
    /* Held clients have not started: they get the goodbye at once. */
    session_drain_held(w);
    if (w->nsessions == 0)
        worker_drain_check(w);
    else
        loop_timer_at(w->loop, &w->grace_timer, loop_now(w->loop) + w->conf->global.grace_ms);
}

void
edge_free(struct worker *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        listener_close(&w->listeners[i]);
    check_free_all(&w->checks);
    healthshare_unfollow(w);
    resolve_free_all(&w->resolver);
    bouncer_free(w);
    verifyrun_free(w);
    while (w->gens != NULL) {
        struct gen *g = w->gens;
        w->gens = g->next;
        gen_free(g);
    }
    ownaddr_free(w);
    worker_free(w);
}
