/* worker: the loop, its listeners and its sessions. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

#include "abuse.h"
#include "addr.h"
#include "check.h"
#include "gen.h"
#include "listener.h"
#include "log.h"
#include "ownaddr.h"
#include "reload.h"
#include "relay.h"
#include "resolve.h"
#include "session.h"
#include "util.h"

#define POOL_IDLE 256   /* empty pipes and buffers kept for reuse */

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

#define ABUSE_SWEEP_MS 1000

/* A ban started or ended: one log line each (docs/logging.md). */
static void
on_ban_event(void *arg, const struct abuse_event *ev)
{
    const struct worker_abuse *wa = arg;

    log_begin(LOG_INFO, ev->start ? "ban" : "ban_end");
    log_str("listener", wa->name);
    log_str("key", ev->text);
    log_str("reason", abuse_ban_reason_name(ev->reason));
    if (ev->start) {
        uint64_t now = loop_now(wa->w->loop);
        log_u64("duration_ms", ev->until_ms > now ? ev->until_ms - now : 0);
    } else {
        log_str("why", ev->why);
    }
    log_end();
}

static void
on_abuse_sweep(struct timer *t)
{
    struct worker *w = container_of(t, struct worker, abuse_timer);
    uint64_t now = loop_now(w->loop);

    for (size_t i = 0; i < w->nabuse; i++)
        abuse_sweep(w->abuse[i]->t, now);
    loop_timer_at(w->loop, &w->abuse_timer, now + ABUSE_SWEEP_MS);
}

static void
set_policy(struct abuse *t, const struct conf_listener *lc)
{
    struct abuse_policy p = {.per_ip = lc->limit_per_ip,
                             .rate = lc->limit_rate,
                             .rate_period_ms = lc->limit_rate_ms,
                             .ban_after = lc->ban_after,
                             .ban_ms = lc->ban_ms,
                             .ban_window_ms = lc->ban_window_ms,
                             .v6_prefix = lc->limit_v6_prefix,
                             .allow = lc->allow,
                             .nallow = lc->nallow};
    abuse_set_policy(t, &p);
}

struct worker_abuse *
worker_abuse_find(struct worker *w, const char *name)
{
    for (size_t i = 0; i < w->nabuse; i++) {
        if (strcmp(w->abuse[i]->name, name) == 0)
            return w->abuse[i];
    }
    return NULL;
}

int
worker_abuse_prepare(struct worker *w, const struct conf *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *lc = &c->listeners[i];
        if (worker_abuse_find(w, lc->name) != NULL)
            continue;
        struct worker_abuse **v =
            realloc(w->abuse, (w->nabuse + 1) * sizeof(struct worker_abuse *));
        if (v == NULL)
            return -1;
        w->abuse = v;
        struct worker_abuse *wa = calloc(1, sizeof(*wa));
        uint64_t seed;
        if (wa == NULL)
            return -1;
        util_strlcpy(wa->name, lc->name, sizeof(wa->name));
        wa->w = w;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
            seed = w->id_seed ^ (uint64_t)(uintptr_t)wa;
        /* The size is the one configured when the name first appears. */
        if ((wa->t = abuse_new(lc->limit_table, seed, on_ban_event, wa)) == NULL) {
            free(wa);
            return -1;
        }
        w->abuse[w->nabuse++] = wa;
    }
    return 0;
}

static const struct conf_listener *
conf_listener_named(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        if (strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    }
    return NULL;
}

void
worker_abuse_install(struct worker *w)
{
    for (size_t i = 0; i < w->nabuse; i++) {
        const struct conf_listener *lc = conf_listener_named(w->conf, w->abuse[i]->name);
        if (lc != NULL) {
            set_policy(w->abuse[i]->t, lc);
        } else {
            /* Gone: no limits, and no allow list pointing into an old conf. */
            struct abuse_policy none = {.v6_prefix = 64};
            abuse_set_policy(w->abuse[i]->t, &none);
        }
    }
    for (size_t i = 0; i < w->metrics.nlisteners; i++) {
        struct worker_abuse *wa = worker_abuse_find(w, w->metrics.listeners[i].name);
        w->metrics.listeners[i].abuse = wa != NULL ? abuse_stats(wa->t) : NULL;
    }
    for (struct gen *g = w->gens; g != NULL; g = g->next) {
        for (size_t i = 0; i < g->nlisteners; i++) {
            struct listener *l = &g->listeners[i];
            struct worker_abuse *wa = l->conf != NULL ? worker_abuse_find(w, l->conf->name) : NULL;
            if (wa != NULL)
                l->abuse = wa->t;
        }
    }
}

struct backend *
worker_backend(struct worker *w, const struct conf_backend *cb)
{
    return gen_backend(w->gen, cb);
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
worker_init(struct worker *w, struct conf *conf, const char *path, int *inherited,
            size_t ninherited)
{
    memset(w, 0, sizeof(*w));
    w->conf_path = path;
    w->inherited = inherited;
    w->ninherited = ninherited;
    timer_init(&w->grace_timer, on_grace);
    defer_init(&w->gc_defer, on_gc);
    defer_init(&w->room_defer, on_room);
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
    timer_init(&w->abuse_timer, on_abuse_sweep);
    if (reload_first(w, conf) == -1)
        return -1;
    loop_timer_at(w->loop, &w->abuse_timer, loop_now(w->loop) + ABUSE_SWEEP_MS);
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

bool
worker_room(const struct worker *w, const struct listener *l)
{
    return w->nsessions < w->fdb.maxconn &&
           (l->conf->maxconn == 0 || l->m->active < l->conf->maxconn);
}

void
worker_limits(struct worker *w)
{
    struct rlimit rl;
    struct fdbudget_in in = {.maxconn = w->conf->global.maxconn,
                             .admin = w->conf->global.admin_set,
                             .binds = w->nlisteners,
                             .nofile = 1024};
    struct fdbudget old = w->fdb;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        in.nofile = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
    for (size_t i = 0; i < w->conf->nbackends; i++) {
        const struct conf_backend *b = &w->conf->backends[i];
        if (b->check != CHECK_NONE)
            in.checks += b->nservers;
        for (size_t j = 0; j < b->nservers; j++)
            in.resolver |= b->servers[j].is_name;
    }
    fdbudget_plan(&in, &w->fdb);
    w->connects.max = w->fdb.connects;
    relay_pool_set_pipes_max(w->pool, w->fdb.pipes);
    w->metrics.fd_limit = w->fdb.nofile;
    w->metrics.fd_reserved = w->fdb.reserve;
    w->metrics.maxconn = w->fdb.maxconn;
    if (memcmp(&old, &w->fdb, sizeof(old)) == 0)
        return;
    bool cut = in.maxconn != 0 && w->fdb.maxconn < in.maxconn;
    log_begin(w->fdb.maxconn == 0 || cut ? LOG_WARN : LOG_INFO, "limits");
    log_u64("nofile", w->fdb.nofile);
    log_u64("reserve", w->fdb.reserve);
    log_u64("maxconn", w->fdb.maxconn);
    log_u64("pipes", w->fdb.pipes);
    log_u64("parallel_connects", w->fdb.connects);
    if (cut)
        log_fmt("error", "maxconn %u does not fit in %llu descriptors", in.maxconn,
                (unsigned long long)w->fdb.nofile);
    else if (w->fdb.maxconn == 0)
        log_str("error", "no descriptor left for sessions");
    log_end();
}

void
worker_session_gone(struct worker *w)
{
    w->nsessions--;
    if (w->any_full)
        loop_defer(w->loop, &w->room_defer);
    if (w->draining && w->nsessions == 0) {
        loop_timer_cancel(w->loop, &w->grace_timer);
        loop_stop(w->loop);
    }
}

void
worker_free(struct worker *w)
{
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
    ownaddr_free(w);
    free(w->metrics.backends);
    metrics_free(&w->metrics);
    for (size_t i = 0; i < w->nnames; i++)
        free(w->names[i]);
    free(w->names);
    for (size_t i = 0; i < w->nabuse; i++) {
        abuse_free(w->abuse[i]->t);
        free(w->abuse[i]);
    }
    free(w->abuse);
    loop_free(w->loop);
    memset(w, 0, sizeof(*w));
}
