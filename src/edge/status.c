/* status: /readyz and /status of a worker (status.h). */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "backend.h"
#include "bouncer.h"
#include "check.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "metricshare.h"
#include "shm.h"
#include "worker.h"
#include "verifyrun.h"

bool
status_ready(const struct worker *w, struct strbuf *why)
{
    if (w->draining) {
        strbuf_add(why, "draining: shutting down, listeners closed\n");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < w->nlisteners; i++) {
        const struct listener *l = &w->listeners[i];
        if (l->io.fd < 0) {
            char a[ADDR_STRLEN];
            strbuf_addf(why, "listener %s: %s is not bound\n", l->conf->name,
                        addr_format((const struct sockaddr *)&l->bind->addr, a, sizeof(a)));
            ok = false;
        }
    }
    for (size_t i = 0; i < w->conf->nbackends; i++) {
        if (w->conf->backends[i].nservers == 0) {
            strbuf_addf(why, "backend %s: no server\n", w->conf->backends[i].name);
            ok = false;
        } else if (backend_servers_up(&w->backends[i]) == 0) {
            strbuf_addf(why, "backend %s: no server is up (health check %s)\n",
                        w->conf->backends[i].name, conf_check_name(w->conf->backends[i].check));
            ok = false;
        }
    }
    if (ok)
        strbuf_add(why, "ok\n");
    return ok;
}

static void
json_str(struct strbuf *b, const char *s)
{
    strbuf_json_str(b, s);
}

/* ---- every worker's counters (src/edge/metricshare.h) ---- */

static unsigned
nworkers(void)
{
    return shm_host() != NULL ? shm_nworkers() : 1;
}

/* Which workers run now: their gauges count; a dead one's sessions are gone. */
static void
live(bool *run, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        run[k] = metricshare_running(k);
}

static struct metrics_listener
sum_listener(const struct metrics_listener *own, const bool *run, unsigned n)
{
    /* abuse: this worker's table. Once the abuse tables are one per host in
     * shared memory (issue 19, sharedabuse), its stats are the host's:
     * rendered once, never summed. */
    struct metrics_listener t = {.name = own->name, .abuse = own->abuse};
    for (unsigned k = 0; k < n; k++)
        metrics_listener_add(&t, metricshare_listener_of(own, k), run[k]);
    return t;
}

static struct metrics_server
sum_server(const struct metrics_server *own, const bool *run, unsigned n)
{
    /* Health and checks are worker 0's, the one that checks: not summed. */
    struct metrics_server t = {.backend = own->backend, .name = own->name,
                               .checked = own->checked, .up = own->up,
                               .went_up = own->went_up, .went_down = own->went_down,
                               .last_change = own->last_change};
    memcpy(t.check_failures, own->check_failures, sizeof(t.check_failures));
    for (unsigned k = 0; k < n; k++)
        metrics_server_add(&t, metricshare_server_of(own, k), run[k]);
    return t;
}

static uint64_t
sum_queued(const struct metrics_backend *own, const bool *run, unsigned n)
{
    struct metrics_backend t = {0};
    for (unsigned k = 0; k < n; k++)
        metrics_backend_add(&t, metricshare_backend_of(own, k), run[k]);
    return t.queued;
}

static uint64_t
rd(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int
status_metrics(const struct worker *w, struct metrics *out)
{
    const struct worker_counters *c = &w->counters;
    unsigned n = nworkers();
    bool run[SHM_WORKERS_MAX];

    live(run, n);
    *out = w->metrics;
    /* Reloads the supervisor refused reached no worker: counted once, here. */
    const struct metricshare_host *host = metricshare_host(shm_host());
    if (host != NULL) {
        out->reloads_failed += rd(&host->reloads_refused);
        if (rd(&host->refused_last) != 0)
            out->last_reload_ok = false;
    }
    out->listeners = calloc(c->nl + 1, sizeof(*out->listeners));
    out->servers = calloc(c->ns + 1, sizeof(*out->servers));
    out->backends = calloc(c->nb + 1, sizeof(*out->backends));
    out->workers = calloc(n, sizeof(*out->workers));
    if (out->listeners == NULL || out->servers == NULL || out->backends == NULL ||
        out->workers == NULL) {
        status_metrics_free(out);
        return -1;
    }
    for (size_t i = 0; i < c->nl; i++)
        out->listeners[i] = sum_listener(c->l[i], run, n);
    out->nlisteners = c->nl;
    for (size_t i = 0; i < c->ns; i++)
        out->servers[i] = sum_server(c->s[i], run, n);
    out->nservers = c->ns;
    for (size_t i = 0; i < c->nb; i++)
        out->backends[i] = (struct metrics_backend){.name = c->b[i]->name,
                                                    .queued = sum_queued(c->b[i], run, n)};
    out->nbackends = c->nb;
    out->bansync.refused = 0;
    out->log_lines_failed = 0;
    w->proc->log_lines_failed = w->proc->log_base + log_lines_failed();
    for (unsigned k = 0; k < n; k++) {
        const struct metricshare_proc *p = metricshare_proc_of(k);
        struct metrics_worker *mw = &out->workers[k];
        if (p == NULL)
            continue;
        uint64_t starts = rd(&p->starts);
        out->bansync.refused += rd(&p->remote_refused);
        out->log_lines_failed += rd(&p->log_lines_failed);
        mw->running = run[k];
        mw->start_time = rd(&p->started);
        mw->restarts = starts > 0 ? starts - 1 : 0;
        if (run[k]) {
            mw->sessions = rd(&p->sessions);
            mw->open_fds = rd(&p->open_fds);
            mw->resident_bytes = rd(&p->resident_bytes);
        }
    }
    out->nworkers = n;
    return 0;
}

void
status_metrics_free(struct metrics *m)
{
    free(m->backends);
    free(m->workers);
    m->backends = NULL;
    m->workers = NULL;
    m->nbackends = m->nworkers = 0;
    metrics_free(m);
}

/* "workers": each worker's process and sessions, for /status. */
static void
status_workers(const struct worker *w, const bool *run, unsigned n, struct strbuf *out)
{
    strbuf_add(out, ",\"workers\":[");
    for (unsigned k = 0; k < n; k++) {
        const struct metricshare_proc *p = metricshare_proc_of(k);
        uint64_t starts = p != NULL ? rd(&p->starts) : 0;
        strbuf_addf(out,
                    "%s{\"index\":%u,\"pid\":%llu,\"running\":%s,\"started\":%llu,"
                    "\"restarts\":%llu,\"sessions_active\":%llu,\"listeners\":[",
                    k ? "," : "", k, (unsigned long long)(p != NULL && run[k] ? rd(&p->pid) : 0),
                    run[k] ? "true" : "false",
                    (unsigned long long)(p != NULL ? rd(&p->started) : 0),
                    (unsigned long long)(starts > 0 ? starts - 1 : 0),
                    (unsigned long long)(p != NULL && run[k] ? rd(&p->sessions) : 0));
        for (size_t i = 0; i < w->counters.nl; i++) {
            const struct metrics_listener *l = metricshare_listener_of(w->counters.l[i], k);
            strbuf_add(out, i ? ",{\"name\":" : "{\"name\":");
            json_str(out, w->counters.l[i]->name);
            strbuf_addf(out, ",\"sessions_active\":%llu}",
                        (unsigned long long)(run[k] ? rd(&l->active) : 0));
        }
        strbuf_add(out, "]}");
    }
    strbuf_add(out, "]");
}

void
status_json(const struct worker *w, struct strbuf *out)
{
    const struct conf *c = w->conf;
    struct strbuf why = {0};
    bool ready = status_ready(w, &why);
    char a[ADDR_STRLEN];
    unsigned n = nworkers();
    bool run[SHM_WORKERS_MAX];
    uint64_t sessions = 0;

    live(run, n);
    for (unsigned k = 0; k < n; k++) {
        const struct metricshare_proc *p = metricshare_proc_of(k);
        sessions += p != NULL && run[k] ? rd(&p->sessions) : 0;
    }
    /* Every figure is the sum over the workers; "workers" has each one's. */
    strbuf_add(out, "{\"version\":");
    json_str(out, MAILEDGE_VERSION);
    strbuf_addf(out, ",\"ready\":%s,\"draining\":%s,\"sessions_active\":%llu,\"listeners\":[",
                ready ? "true" : "false", w->draining ? "true" : "false",
                (unsigned long long)sessions);
    free(why.p);
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        strbuf_add(out, i ? ",{\"name\":" : "{\"name\":");
        json_str(out, l->name);
        strbuf_add(out, ",\"protocol\":");
        json_str(out, conf_proto_name(l->proto));
        strbuf_add(out, ",\"addresses\":[");
        for (size_t j = 0; j < l->nbinds; j++) {
            if (j)
                strbuf_add(out, ",");
            json_str(out, conf_bind_format(&l->binds[j], a, sizeof(a)));
        }
        strbuf_add(out, "],\"backend\":");
        if (l->route.backend != NULL)
            json_str(out, l->route.backend->name);
        else
            strbuf_add(out, "null");
        struct metrics_listener ml = sum_listener(w->counters.l[i], run, n);
        const struct abuse_stats *ab = ml.abuse;
        strbuf_addf(out, ",\"sessions_active\":%llu,\"bans_active\":%llu}",
                    (unsigned long long)ml.active,
                    (unsigned long long)(ab != NULL ? ab->bans_active : 0));
    }
    strbuf_add(out, "],\"backends\":[");
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct conf_backend *b = &c->backends[i];
        strbuf_add(out, i ? ",{\"name\":" : "{\"name\":");
        json_str(out, b->name);
        strbuf_addf(out,
                    ",\"balance\":\"%s\",\"check\":\"%s\",\"servers_up\":%zu,\"queued\":%zu,"
                    "\"servers\":[",
                    conf_balance_name(b->balance),
                    conf_check_name(b->check), backend_servers_up(&w->backends[i]),
                    (size_t)sum_queued(w->backends[i].qm, run, n));
        for (size_t j = 0; j < b->nservers; j++) {
            const struct conf_server *s = &b->servers[j];
            strbuf_add(out, j ? ",{\"name\":" : "{\"name\":");
            json_str(out, s->name);
            strbuf_add(out, ",\"address\":");
            if (s->is_name && s->has_port) {
                char hp[CONF_HOST_MAX + 8];
                snprintf(hp, sizeof(hp), "%s:%u", s->host, s->port);
                json_str(out, hp);
            } else if (s->is_name)
                json_str(out, s->host);
            else if (s->has_port)
                json_str(out, addr_format((const struct sockaddr *)&s->addr, a, sizeof(a)));
            else
                json_str(out, addr_format_ip((const struct sockaddr *)&s->addr, a, sizeof(a)));
            const struct metrics_server sm = sum_server(w->backends[i].srv[j].m, run, n);
            const struct metrics_server *m = &sm;
            uint64_t errors = m->connect_errors[0] + m->connect_errors[1] + m->connect_errors[2];
            const struct backend_server *st = &w->backends[i].srv[j];
            if (s->is_name) {
                /* The current answer of its name (src/edge/resolve.c); [] until it resolves. */
                strbuf_add(out, ",\"resolved\":[");
                for (size_t k = 0; k < st->naddrs; k++) {
                    strbuf_add(out, k ? "," : "");
                    json_str(out, addr_format_ip((const struct sockaddr *)&st->addrs[k], a,
                                                 sizeof(a)));
                }
                strbuf_addf(out, "],\"ttl\":%u", (unsigned)st->ttl);
            }
            strbuf_addf(out, ",\"state\":\"%s\",\"last_check\":",
                        backend_server_usable(&w->backends[i], s) ? "up" : "down");
            if (st->last_result < 0)
                strbuf_add(out, "null");
            else
                json_str(out, check_result_name((enum check_result)st->last_result));
            strbuf_addf(out, ",\"connects\":%llu,\"connect_errors\":%llu,\"backup\":%s,"
                             "\"active\":%llu}",
                        (unsigned long long)m->connects, (unsigned long long)errors,
                        s->backup ? "true" : "false", (unsigned long long)m->active);
        }
        strbuf_add(out, "]}");
    }
    strbuf_add(out, "]");
    status_workers(w, run, n, out);
    struct bouncer_status bs;
    if (bouncer_status(w, &bs)) {
        /* Remote bans (src/edge/bouncer.c): the sync's state. */
        strbuf_addf(out, ",\"ban_sync\":{\"source\":\"crowdsec\",\"state\":\"%s\",\"error\":",
                    bs.state);
        json_str(out, bs.error);
        strbuf_addf(out,
                    ",\"last_success\":%llu,\"last_full_sync\":%llu,\"syncing\":%s,"
                    "\"remote_bans\":{\"ip\":%zu,\"range\":%zu}}",
                    (unsigned long long)bs.last_success, (unsigned long long)bs.last_full,
                    bs.syncing ? "true" : "false", bs.ips, bs.ranges);
    }
    verifyrun_status(out);
    strbuf_add(out, "}\n");
}
