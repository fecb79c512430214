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
#include "listener.h"
#include "log.h"
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
    return cb != NULL ? &w->backends[cb - w->conf->backends] : NULL;
}

int
worker_init(struct worker *w, const struct conf *conf)
{
    memset(w, 0, sizeof(*w));
    w->conf = conf;
    timer_init(&w->grace_timer, on_grace);
    if (getrandom(&w->id_seed, sizeof(w->id_seed), 0) != sizeof(w->id_seed))
        w->id_seed = (uint64_t)(uintptr_t)w ^ (uint64_t)time(NULL);
    w->loop = loop_new();
    w->pool = relay_pool_new(POOL_IDLE);
    w->backends = calloc(conf->nbackends ? conf->nbackends : 1, sizeof(*w->backends));
    size_t nbinds = 0;
    for (size_t i = 0; i < conf->nlisteners; i++)
        nbinds += conf->listeners[i].nbinds;
    w->listeners = calloc(nbinds ? nbinds : 1, sizeof(*w->listeners));
    size_t nservers = 0;
    for (size_t i = 0; i < conf->nbackends; i++)
        nservers += conf->backends[i].nservers;
    /* Timers: one per bind (EMFILE pause), the drain timer and the admin timer. */
    if (w->loop == NULL || w->pool == NULL || w->backends == NULL || w->listeners == NULL ||
        loop_timer_reserve(w->loop, nbinds + WORKER_TIMERS) == -1 ||
        metrics_init(&w->metrics, conf->nlisteners, nservers) == -1) {
        log_warn("worker: cannot allocate");
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
    for (size_t i = 0; i < conf->nlisteners; i++)
        w->metrics.listeners[i].name = conf->listeners[i].name;
    w->metrics.backends = calloc(conf->nbackends ? conf->nbackends : 1,
                                 sizeof(*w->metrics.backends));
    if (w->metrics.backends == NULL) {
        log_warn("worker: cannot allocate");
        return -1;
    }
    w->metrics.nbackends = conf->nbackends;
    nservers = 0;
    for (size_t i = 0; i < conf->nbackends; i++) {
        if (backend_init(&w->backends[i], &conf->backends[i]) == -1) {
            log_warn("worker: cannot allocate");
            return -1;
        }
        w->metrics.backends[i].name = conf->backends[i].name;
        w->backends[i].qm = &w->metrics.backends[i];
        w->backends[i].m = &w->metrics.servers[nservers];
        for (size_t j = 0; j < conf->backends[i].nservers; j++) {
            struct metrics_server *ms = &w->metrics.servers[nservers];
            ms->backend = conf->backends[i].name;
            ms->name = conf->backends[i].servers[j].name;
            ms->checked = conf->backends[i].check != CHECK_NONE;
            ms->up = w->backends[i].srv[j].up;
            nservers++;
        }
    }
    for (size_t i = 0; i < conf->nlisteners; i++) {
        const struct conf_listener *lc = &conf->listeners[i];
        for (size_t j = 0; j < lc->nbinds; j++) {
            struct listener *l = &w->listeners[w->nlisteners];
            char a[ADDR_STRLEN];
            addr_format((const struct sockaddr *)&lc->binds[j].addr, a, sizeof(a));
            if (listener_open(l, w, lc, &lc->binds[j]) == -1) {
                log_begin(LOG_ERROR, "listen_failed");
                log_str("listener", lc->name);
                log_str("addr", a);
                log_str("error", strerror(errno));
                log_end();
                return -1;
            }
            l->m = &w->metrics.listeners[i];
            w->nlisteners++;
            log_begin(LOG_INFO, "listen");
            log_str("listener", lc->name);
            log_str("addr", a);
            log_str("protocol", conf_proto_name(lc->proto));
            /* The default route's; "-" when sni-required leaves none. */
            log_str("backend", lc->route.backend != NULL ? lc->route.backend->name : "-");
            log_end();
        }
    }
    if (check_start_all(w) == -1)
        return -1;
    if (resolve_start_all(w) == -1)
        return -1;
    if (conf->global.admin_set && (w->admin = admin_start(w)) == NULL)
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
    free(w->listeners);
    check_free_all(w);
    resolve_free_all(w);
    for (size_t i = 0; w->backends != NULL && i < w->conf->nbackends; i++)
        backend_free(&w->backends[i]);
    free(w->backends);
    relay_pool_free(w->pool);
    free(w->metrics.backends);
    metrics_free(&w->metrics);
    loop_free(w->loop);
    memset(w, 0, sizeof(*w));
}
