/* worker: the loop, its listeners and its sessions. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "abuse.h"
#include "log.h"
#include "relay.h"
#include "shm.h"
#include "util.h"

#define POOL_IDLE 256   /* empty pipes and buffers kept for reuse */

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

    for (size_t i = 0; i < w->abuse.n; i++)
        abuse_sweep(((struct worker_abuse *)w->abuse.v[i]->value)->t, now);
    loop_timer_at(w->loop, &w->abuse_timer, now + ABUSE_SWEEP_MS);
}

struct worker_abuse *
worker_abuse_find(struct worker *w, const char *name)
{
    struct byname_entry *e = byname_find(&w->abuse, name);
    return e != NULL ? e->value : NULL;
}

/* What a listener name that appears for the first time gets. */
struct abuse_make {
    struct worker *w;
    const struct conf_listener *lc;
};

static void *
abuse_make(void *arg, const char *name)
{
    const struct abuse_make *x = arg;
    struct worker_abuse *wa = calloc(1, sizeof(*wa));
    uint64_t seed;
    if (wa == NULL)
        return NULL;
    wa->name = name;
    wa->w = x->w;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = x->w->id_seed ^ (uint64_t)(uintptr_t)wa;
    /* One table per host and name (abuse.h); its size and seed are those
     * of the worker that made it, when the name first appeared. */
    struct abuse_share sh = {.shm = shm_host(), .name = name, .worker = shm_worker(),
                             .nworkers = shm_nworkers()};
    if ((wa->t = abuse_new(x->lc->limit_table, seed, on_ban_event, wa,
                           sh.shm != NULL ? &sh : NULL)) == NULL) {
        log_begin(LOG_ERROR, "abuse");
        log_str("listener", name);
        log_str("error", sh.shm != NULL ? "no room in the shared region for its table"
                                        : "out of memory");
        log_end();
        free(wa);
        return NULL;
    }
    return wa;
}

static void
abuse_unmake(void *value)
{
    struct worker_abuse *wa = value;
    abuse_free(wa->t);
    free(wa);
}

int
worker_abuse_prepare(struct worker *w, const struct conf *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct abuse_make x = {.w = w, .lc = &c->listeners[i]};
        if (byname_get(&w->abuse, x.lc->name, abuse_make, &x) == NULL)
            return -1;
    }
    return 0;
}

int
worker_init(struct worker *w, const char *path, int *inherited, size_t ninherited)
{
    memset(w, 0, sizeof(*w));
    w->conf_path = path;
    w->inherited = inherited;
    w->ninherited = ninherited;
    if (getrandom(&w->id_seed, sizeof(w->id_seed), 0) != sizeof(w->id_seed))
        w->id_seed = (uint64_t)(uintptr_t)w ^ (uint64_t)time(NULL);
    w->loop = loop_new();
    w->pool = relay_pool_new(POOL_IDLE);
    if (w->loop == NULL || w->pool == NULL || loop_timer_reserve(w->loop, WORKER_TIMERS) == -1) {
        log_warn("worker: cannot allocate");
        return -1;
    }
    w->metrics.version = MAILEDGE_VERSION;
    /* A restarted worker continues its predecessor's reload counts. */
    w->proc = metricshare_start((uint64_t)getpid(), (uint64_t)time(NULL));
    w->metrics.reloads_ok = w->proc->reloads_ok;
    w->metrics.reloads_failed = w->proc->reloads_failed;
    timer_init(&w->abuse_timer, on_abuse_sweep);
    return 0;
}

void
worker_abuse_sweep_start(struct worker *w)
{
    loop_timer_at(w->loop, &w->abuse_timer, loop_now(w->loop) + ABUSE_SWEEP_MS);
}

void
worker_limits(struct worker *w)
{
    struct rlimit rl;
    struct fdbudget_in in = {.maxconn = w->conf->global.maxconn,
                             .admin = w->conf->global.admin_set,
                             .binds = w->nlisteners,
                             .bouncer = w->conf->global.crowdsec.url[0] != '\0',
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
    w->proc->sessions = w->nsessions;
    if (w->any_full)
        loop_defer(w->loop, &w->room_defer);
    worker_drain_check(w);
}

void
worker_drain_check(struct worker *w)
{
    if (!w->draining || w->nsessions != 0)
        return;
    loop_timer_cancel(w->loop, &w->grace_timer);
    if (!w->linger_admin)
        loop_stop(w->loop);
}

void
worker_free(struct worker *w)
{
    relay_pool_free(w->pool);
    free(w->counters.l);
    free(w->counters.s);
    free(w->counters.b);
    metricshare_free();
    byname_free(&w->names, NULL);
    byname_free(&w->abuse, abuse_unmake);
    loop_free(w->loop);
    memset(w, 0, sizeof(*w));
}
