/* status: /readyz and /status of a worker (status.h). */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>

#include "addr.h"
#include "backend.h"
#include "bouncer.h"
#include "check.h"
#include "conf.h"
#include "listener.h"
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

void
status_json(const struct worker *w, struct strbuf *out)
{
    const struct conf *c = w->conf;
    struct strbuf why = {0};
    bool ready = status_ready(w, &why);
    char a[ADDR_STRLEN];

    strbuf_add(out, "{\"version\":");
    json_str(out, MAILEDGE_VERSION);
    strbuf_addf(out, ",\"ready\":%s,\"draining\":%s,\"sessions_active\":%zu,\"listeners\":[",
                ready ? "true" : "false", w->draining ? "true" : "false", w->nsessions);
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
        const struct abuse_stats *ab = w->metrics.listeners[i].abuse;
        strbuf_addf(out, ",\"sessions_active\":%llu,\"bans_active\":%llu}",
                    (unsigned long long)w->metrics.listeners[i].active,
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
                    w->backends[i].nheld);
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
            const struct metrics_server *m = w->backends[i].srv[j].m;
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
