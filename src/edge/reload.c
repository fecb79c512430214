/*
 * reload: a new configuration generation, prepared whole, then switched to
 * in one step of the loop (see reload.h). The order of the switch matters:
 *
 *   load + check the file        nothing changed yet; errors: keep running
 *   gen_new                      backends, listener structs (not open)
 *   prepare binds                same address: the running socket is kept;
 *                                else bound now (failure: close those, keep running)
 *   prepare counter tables       keyed by name (failure: as above)
 *   ---- from here nothing can fail ----
 *   carry state                  health and DNS answers of unchanged servers,
 *                                round-robin cursors, per-listener state
 *   switch listeners             kept sockets change owner (EPOLL_CTL_MOD),
 *                                new ones join the loop, removed ones close
 *   stop old checks and DNS      start the new generation's
 *   held clients                 move to the backend of the same name
 *
 * Sessions keep a reference on the generation they started on; the old one
 * is freed when its last session ends (gen_release).
 */
#include "reload.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "abuse.h"
#include "bouncer.h"
#include "addr.h"
#include "check.h"
#include "conf.h"
#include "gen.h"
#include "listener.h"
#include "log.h"
#include "metricshare.h"
#include "resolve.h"
#include "session.h"
#include "shm.h"
#include "sock.h"
#include "util.h"
#include "worker.h"
#include "verifyrun.h"

#define LIST_MAX 512 /* bytes of a name list in the reload log line */

/* --- counters keyed by name ---------------------------------------------- */

/* The label string <s>, kept for the worker's life (byname.h); NULL: out of memory. */
static const char *
intern(struct worker *w, const char *s)
{
    struct byname_entry *e = byname_get(&w->names, s, NULL, NULL);
    return e != NULL ? e->name : NULL;
}

static struct metrics_listener *
find_l(struct metrics_listener *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static struct metrics_server *
find_s(struct metrics_server *const *v, size_t n, const char *backend, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->backend, backend) == 0 && strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static struct metrics_backend *
find_b(struct metrics_backend *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static void
tables_free(struct worker_counters *t)
{
    free(t->l);
    free(t->s);
    free(t->b);
    memset(t, 0, sizeof(*t));
}

/*
 * Builds the tables for <c>: the current config's entries first, in conf
 * order (the counters of the name when the worker has them, else its slots
 * taken now, src/edge/metricshare.h), then every entry of a name no longer
 * configured. Returns 0 or -1 (memory); a slot taken before the failure
 * is taken again by a later attempt (its shared block is found by name).
 */
static int
tables_build(struct worker *w, const struct conf *c, struct worker_counters *t)
{
    const struct worker_counters *m = &w->counters;
    size_t nservers = 0;
    for (size_t i = 0; i < c->nbackends; i++)
        nservers += c->backends[i].nservers;
    memset(t, 0, sizeof(*t));
    t->l = calloc(c->nlisteners + m->nl_all + 1, sizeof(struct metrics_listener *));
    t->s = calloc(nservers + m->ns_all + 1, sizeof(struct metrics_server *));
    t->b = calloc(c->nbackends + m->nb_all + 1, sizeof(struct metrics_backend *));
    if (t->l == NULL || t->s == NULL || t->b == NULL)
        goto oom;

    for (size_t i = 0; i < c->nlisteners; i++) {
        const char *name = c->listeners[i].name;
        struct metrics_listener *o = find_l(m->l, m->nl_all, name);
        if (o == NULL &&
            ((name = intern(w, name)) == NULL || (o = metricshare_listener(name)) == NULL))
            goto oom;
        t->l[t->nl++] = o;
    }
    t->nl_all = t->nl;
    for (size_t i = 0; i < m->nl_all; i++)
        if (find_l(t->l, t->nl, m->l[i]->name) == NULL)
            t->l[t->nl_all++] = m->l[i];

    for (size_t i = 0; i < c->nbackends; i++) {
        const struct conf_backend *cb = &c->backends[i];
        const char *bname = cb->name;
        struct metrics_backend *ob = find_b(m->b, m->nb_all, bname);
        if (ob == NULL &&
            ((bname = intern(w, bname)) == NULL || (ob = metricshare_backend(bname)) == NULL))
            goto oom;
        t->b[t->nb++] = ob;
        for (size_t j = 0; j < cb->nservers; j++) {
            const char *sname = cb->servers[j].name;
            struct metrics_server *os = find_s(m->s, m->ns_all, ob->name, sname);
            if (os == NULL && ((sname = intern(w, sname)) == NULL ||
                               (os = metricshare_server(ob->name, sname)) == NULL))
                goto oom;
            os->checked = cb->check != CHECK_NONE;
            t->s[t->ns++] = os;
        }
    }
    t->nb_all = t->nb;
    for (size_t i = 0; i < m->nb_all; i++)
        if (find_b(t->b, t->nb, m->b[i]->name) == NULL)
            t->b[t->nb_all++] = m->b[i];
    t->ns_all = t->ns;
    for (size_t i = 0; i < m->ns_all; i++)
        if (find_s(t->s, t->ns, m->s[i]->backend, m->s[i]->name) == NULL)
            t->s[t->ns_all++] = m->s[i];
    return 0;
oom:
    tables_free(t);
    return -1;
}

/* Points the listeners and backends of <g> at their counters by name. */
static void
point_counters(struct worker *w, struct gen *g)
{
    const struct worker_counters *m = &w->counters;
    for (size_t i = 0; i < g->nlisteners; i++) {
        struct listener *l = &g->listeners[i];
        if (l->conf != NULL)
            l->m = find_l(m->l, m->nl_all, l->conf->name);
    }
    for (size_t i = 0; i < g->conf->nbackends; i++) {
        struct backend *b = &g->backends[i];
        b->qm = find_b(m->b, m->nb_all, b->conf->name);
        for (size_t j = 0; j < b->conf->nservers; j++)
            b->srv[j].m = find_s(m->s, m->ns_all, b->conf->name, b->conf->servers[j].name);
    }
}

/* Installs <t> (taken) and points every live generation at it. */
static void
tables_install(struct worker *w, struct worker_counters *t)
{
    struct worker_counters *m = &w->counters;
    /* Removed servers are down: /status and the sums leave them out anyway. */
    for (size_t i = t->ns; i < t->ns_all; i++)
        t->s[i]->up = false;
    tables_free(m);
    *m = *t;
    memset(t, 0, sizeof(*t));
    for (struct gen *g = w->gens; g != NULL; g = g->next)
        point_counters(w, g);
}

/* --- binds ----------------------------------------------------------------- */

static bool
bind_same(const struct conf_bind *a, const struct conf_bind *b)
{
    return a->any == b->any &&
           addr_equal((const struct sockaddr *)&a->addr, (const struct sockaddr *)&b->addr);
}

/* How each listener of the new generation gets its socket. */
struct prep {
    int fd;                 /* the listening socket */
    struct listener *from;  /* kept from this listener of the running generation; NULL: new */
    bool shared;            /* polled by every worker: listener_attach() */
};

/* A socket the service manager passed for <b> (socket activation), or -1. */
static int
take_inherited(struct worker *w, const struct conf_bind *b)
{
    int *fds = w->inherited;
    for (size_t i = 0; i < w->ninherited; i++) {
        struct sockaddr_storage ss;
        if (fds[i] < 0 || sock_local(fds[i], &ss) == -1)
            continue;
        struct conf_bind have = {.addr = ss, .any = false};
        if (b->any && ss.ss_family == AF_INET6) {
            /* ":PORT" is [::]:PORT dual-stack. */
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
            have.any = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) && addr_port((struct sockaddr *)&ss) ==
                                                                      addr_port((const struct sockaddr *)&b->addr);
            if (have.any) {
                int fd = fds[i];
                fds[i] = -1;
                return fd;
            }
            continue;
        }
        if (!b->any && bind_same(&have, b)) {
            int fd = fds[i];
            fds[i] = -1;
            return fd;
        }
    }
    return -1;
}

static void
prep_abort(struct prep *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].from == NULL && p[i].fd >= 0)
            close(p[i].fd);
    free(p);
}

/*
 * Finds or binds a socket for every bind of <ng>. Returns the plan, or NULL
 * after logging which bind failed (everything bound here is closed again).
 */
static struct prep *
prepare_binds(struct worker *w, struct gen *old, struct gen *ng, char *why, size_t cap)
{
    const struct conf *c = ng->conf;
    struct prep *p = calloc(ng->nlisteners ? ng->nlisteners : 1, sizeof(*p));
    bool *taken = calloc(old != NULL && old->nlisteners ? old->nlisteners : 1, sizeof(*taken));
    if (p == NULL || taken == NULL) {
        free(p);
        free(taken);
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *lc = &c->listeners[i];
        for (size_t j = 0; j < lc->nbinds; j++, k++) {
            const struct conf_bind *b = &lc->binds[j];
            p[k].fd = -1;
            for (size_t m = 0; old != NULL && m < old->nlisteners; m++) {
                struct listener *ol = &old->listeners[m];
                if (!taken[m] && ol->io.fd >= 0 && bind_same(ol->bind, b)) {
                    taken[m] = true;
                    p[k].from = ol;
                    p[k].fd = ol->io.fd;
                    p[k].shared = ol->shared;
                    break;
                }
            }
            if (p[k].from != NULL)
                continue;
            p[k].fd = take_inherited(w, b);
            /* Several workers inherited the same socket (each a copy of the
             * supervisor's descriptor): one accept queue for them all. */
            p[k].shared = p[k].fd >= 0 && w->reuseport;
            if (p[k].fd >= 0)
                continue;
            p[k].fd = sock_listen((const struct sockaddr *)&b->addr, b->any, w->reuseport, 1024);
            if (p[k].fd == -1) {
                int err = errno;
                char a[ADDR_STRLEN];
                addr_format((const struct sockaddr *)&b->addr, a, sizeof(a));
                log_begin(LOG_ERROR, "listen_failed");
                log_str("listener", lc->name);
                log_str("addr", a);
                log_str("error", strerror(err));
                log_end();
                if ((err == EACCES || err == EPERM) && getuid() != 0 && old != NULL)
                    snprintf(why, cap,
                             "listener %s: cannot bind %s: %s (privileges were dropped after "
                             "start; a new privileged port needs a restart)",
                             lc->name, a, strerror(err));
                else
                    snprintf(why, cap, "listener %s: cannot bind %s: %s", lc->name, a, strerror(err));
                free(taken);
                prep_abort(p, k);
                return NULL;
            }
        }
    }
    free(taken);
    return p;
}

static void
log_listen(const struct listener *l, const char *event)
{
    char a[ADDR_STRLEN];
    log_begin(LOG_INFO, event);
    log_str("listener", l->conf->name);
    log_str("addr", addr_format((const struct sockaddr *)&l->bind->addr, a, sizeof(a)));
    if (strcmp(event, "listen") == 0) {
        log_str("protocol", conf_proto_name(l->conf->proto));
        /* The default route's; "-" when sni-required leaves none. */
        log_str("backend", l->conf->route.backend != NULL ? l->conf->route.backend->name : "-");
    }
    log_end();
}

/* Moves the sockets into the listeners of <ng>; closes the ones no longer configured. */
static void
switch_listeners(struct worker *w, struct gen *old, struct gen *ng, struct prep *p, size_t *kept,
                 size_t *opened, size_t *closed)
{
    const struct conf *c = ng->conf;
    size_t k = 0;
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *lc = &c->listeners[i];
        for (size_t j = 0; j < lc->nbinds; j++, k++) {
            struct listener *l = &ng->listeners[k];
            bool registered = p[k].from != NULL;
            if (registered)
                (void)listener_detach(p[k].from);
            if (listener_attach(l, w, lc, &lc->binds[j], p[k].fd, registered, p[k].shared) == -1) {
                /* Only loop_add can fail here (out of memory in the kernel). */
                char a[ADDR_STRLEN];
                log_begin(LOG_ERROR, "listen_failed");
                log_str("listener", lc->name);
                log_str("addr", conf_bind_format(&lc->binds[j], a, sizeof(a)));
                log_str("error", strerror(errno));
                log_end();
                if (registered)
                    loop_del(w->loop, &(struct io){.fd = p[k].fd});
                close(p[k].fd);
                continue;
            }
            if (registered) {
                (*kept)++;
                if (log_enabled(LOG_DEBUG))
                    log_listen(l, "listen_kept");
            } else {
                (*opened)++;
                log_listen(l, "listen");
            }
        }
    }
    for (size_t m = 0; old != NULL && m < old->nlisteners; m++) {
        struct listener *ol = &old->listeners[m];
        if (ol->io.fd >= 0) {
            log_listen(ol, "listen_closed");
            listener_close(ol);
            (*closed)++;
        }
    }
}

/* --- carrying state -------------------------------------------------------- */

static bool
server_same_place(const struct conf_server *a, const struct conf_server *b)
{
    return strcmp(a->host, b->host) == 0 && a->has_port == b->has_port && a->port == b->port;
}

/*
 * Health (same check kind, same check port) and DNS answers of servers
 * with the same backend name, server name and host:port; round-robin
 * cursors of backends of the same name.
 */
static void
carry_backends(struct gen *old, struct gen *ng)
{
    for (size_t i = 0; i < ng->conf->nbackends; i++) {
        struct backend *nb = &ng->backends[i];
        struct backend *ob = gen_backend_by_name(old, nb->conf->name);
        if (ob == NULL)
            continue;
        nb->next = ob->next;
        for (size_t j = 0; j < nb->conf->nservers; j++) {
            const struct conf_server *ns = &nb->conf->servers[j];
            for (size_t k = 0; k < ob->conf->nservers; k++) {
                const struct conf_server *os = &ob->conf->servers[k];
                if (strcmp(os->name, ns->name) != 0 || !server_same_place(os, ns))
                    continue;
                struct backend_server *d = &nb->srv[j];
                const struct backend_server *sst = &ob->srv[k];
                if (nb->conf->check != CHECK_NONE && nb->conf->check == ob->conf->check &&
                    ns->check_port == os->check_port) {
                    d->up = sst->up;
                    d->passes = sst->passes;
                    d->fails = sst->fails;
                    d->last_result = sst->last_result;
                    d->last_check_ms = sst->last_check_ms;
                }
                if (ns->is_name) {
                    memcpy(d->addrs, sst->addrs, sizeof(d->addrs));
                    d->naddrs = sst->naddrs;
                    d->ttl = sst->ttl;
                }
                break;
            }
        }
    }
}

/* --- what changed, for the log line ------------------------------------------ */

static void
list_add(char *buf, size_t cap, const char *name)
{
    size_t n = strlen(buf);
    if (n + strlen(name) + 2 < cap)
        snprintf(buf + n, cap - n, "%s%s", n ? "," : "", name);
}

static const struct conf_listener *
find_listener(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->nlisteners; i++)
        if (strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    return NULL;
}

static bool
route_same(const struct conf_route *a, const struct conf_route *b)
{
    if ((a->backend == NULL) != (b->backend == NULL) || a->port != b->port)
        return false;
    return a->backend == NULL || strcmp(a->backend->name, b->backend->name) == 0;
}

static bool
listener_same(const struct conf_listener *a, const struct conf_listener *b)
{
    if (a->nbinds != b->nbinds || a->proto != b->proto || a->accept_proxy != b->accept_proxy ||
        a->ntrusted != b->ntrusted || a->nsni_routes != b->nsni_routes ||
        a->sni_required != b->sni_required || a->timeout_proxy_ms != b->timeout_proxy_ms ||
        a->timeout_idle_ms != b->timeout_idle_ms || a->timeout_hello_ms != b->timeout_hello_ms ||
        !route_same(&a->route, &b->route))
        return false;
    for (size_t i = 0; i < a->nbinds; i++)
        if (!bind_same(&a->binds[i], &b->binds[i]))
            return false;
    if (a->ntrusted > 0 && memcmp(a->trusted, b->trusted, a->ntrusted * sizeof(*a->trusted)) != 0)
        return false;
    for (size_t i = 0; i < a->nsni_routes; i++) {
        const struct conf_sni_route *x = &a->sni_routes[i], *y = &b->sni_routes[i];
        if (x->nnames != y->nnames || !route_same(&x->route, &y->route))
            return false;
        for (size_t j = 0; j < x->nnames; j++)
            if (strcmp(x->names[j].name, y->names[j].name) != 0 ||
                x->names[j].wildcard != y->names[j].wildcard)
                return false;
    }
    return true;
}

static bool
backend_same(const struct conf_backend *a, const struct conf_backend *b)
{
    if (a->nservers != b->nservers || a->send_proxy != b->send_proxy ||
        a->send_authority != b->send_authority || a->balance != b->balance ||
        a->timeout_connect_ms != b->timeout_connect_ms || a->check != b->check ||
        a->check_interval_ms != b->check_interval_ms || a->check_timeout_ms != b->check_timeout_ms ||
        a->check_rise != b->check_rise || a->check_fall != b->check_fall ||
        a->queue_timeout_ms != b->queue_timeout_ms || a->queue_max != b->queue_max ||
        a->he_delay_ms != b->he_delay_ms || a->check_send_proxy != b->check_send_proxy ||
        strcmp(a->check_sni, b->check_sni) != 0)
        return false;
    for (size_t i = 0; i < a->nservers; i++) {
        const struct conf_server *x = &a->servers[i], *y = &b->servers[i];
        if (strcmp(x->name, y->name) != 0 || !server_same_place(x, y) ||
            x->check_port != y->check_port || x->backup != y->backup)
            return false;
    }
    return true;
}

static void
log_changes(const struct conf *o, const struct conf *n, uint64_t id, size_t kept, size_t opened,
            size_t closed, size_t held, size_t dropped)
{
    char la[LIST_MAX] = "", lr[LIST_MAX] = "", lch[LIST_MAX] = "";
    char ba[LIST_MAX] = "", br[LIST_MAX] = "", bch[LIST_MAX] = "";
    for (size_t i = 0; i < n->nlisteners; i++) {
        const struct conf_listener *ol = find_listener(o, n->listeners[i].name);
        if (ol == NULL)
            list_add(la, sizeof(la), n->listeners[i].name);
        else if (!listener_same(ol, &n->listeners[i]))
            list_add(lch, sizeof(lch), n->listeners[i].name);
    }
    for (size_t i = 0; i < o->nlisteners; i++)
        if (find_listener(n, o->listeners[i].name) == NULL)
            list_add(lr, sizeof(lr), o->listeners[i].name);
    for (size_t i = 0; i < n->nbackends; i++) {
        const struct conf_backend *ob = conf_find_backend(o, n->backends[i].name);
        if (ob == NULL)
            list_add(ba, sizeof(ba), n->backends[i].name);
        else if (!backend_same(ob, &n->backends[i]))
            list_add(bch, sizeof(bch), n->backends[i].name);
    }
    for (size_t i = 0; i < o->nbackends; i++)
        if (conf_find_backend(n, o->backends[i].name) == NULL)
            list_add(br, sizeof(br), o->backends[i].name);
    log_begin(LOG_INFO, "reload");
    log_str("result", "success");
    log_u64("generation", id);
    const char *keys[] = {"listeners_added", "listeners_removed", "listeners_changed",
                          "backends_added",  "backends_removed",  "backends_changed"};
    const char *vals[] = {la, lr, lch, ba, br, bch};
    for (size_t i = 0; i < 6; i++)
        if (vals[i][0] != '\0')
            log_str(keys[i], vals[i]);
    log_u64("binds_kept", kept);
    log_u64("binds_opened", opened);
    log_u64("binds_closed", closed);
    log_u64("held_moved", held);
    if (dropped > 0)
        log_u64("held_dropped", dropped);
    log_end();
}

/* --- the switch --------------------------------------------------------------- */

static void
reload_failed(struct worker *w, size_t nerrors, const char *why)
{
    w->metrics.reloads_failed++;
    w->metrics.last_reload_ok = false;
    log_begin(LOG_ERROR, "reload");
    log_str("result", "failure");
    log_str("config", w->conf_path);
    if (nerrors > 0)
        log_u64("errors", nerrors);
    log_str("error", why);
    log_str("running", "previous configuration");
    log_u64("generation", w->gen->id);
    log_end();
}

static void
reload_install_failed(struct worker *w, bool alloc, const char *why)
{
    (void)alloc;
    assert(w->gen != NULL); /* a reload, not the start: a generation runs */
    reload_failed(w, 0, why);
}

/* Global settings a reload applies, and the ones that need a restart. */
static void
apply_global(const struct conf *o, const struct conf *n)
{
    log_setup(n->global.log_format, n->global.log_debug);
    if (strcmp(o->global.log_path, n->global.log_path) != 0 && log_open(n->global.log_path) == -1)
        log_warn("reload: cannot open log file %s; logging stays where it was",
                 n->global.log_path);
    if (o->global.admin_set != n->global.admin_set ||
        (n->global.admin_set && !bind_same(&o->global.admin, &n->global.admin)))
        log_warnx("reload: the admin address changes only with a restart");
    if (o->global.user_set != n->global.user_set || o->global.uid != n->global.uid ||
        o->global.gid != n->global.gid)
        log_warnx("reload: user and group change only with a restart");
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
    if (abuse_set_policy(t, &p) == -1) {
        log_begin(LOG_WARN, "abuse");
        log_str("listener", lc->name);
        log_u64("table", abuse_capacity(t));
        log_str("error", "no memory for the table: clients are admitted uncounted");
        log_end();
    }
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

/*
 * At the commit, once the counter tables are installed (cannot fail):
 * each name of the current conf gets its new limits and keeps its table
 * (bans, counts); a name no longer configured keeps its table with no
 * limits; the listeners of every live generation and the counters point
 * at the tables of their names.
 */
static void
abuse_install(struct worker *w)
{
    for (size_t i = 0; i < w->abuse.n; i++) {
        struct worker_abuse *wa = w->abuse.v[i]->value;
        const struct conf_listener *lc = conf_listener_named(w->conf, wa->name);
        if (lc != NULL) {
            set_policy(wa->t, lc);
        } else {
            /* Gone: no limits, and no allow list pointing into an old conf. */
            struct abuse_policy none = {.v6_prefix = 64};
            (void)abuse_set_policy(wa->t, &none);
        }
    }
    for (size_t i = 0; i < w->counters.nl; i++) {
        struct worker_abuse *wa = worker_abuse_find(w, w->counters.l[i]->name);
        w->counters.l[i]->abuse = wa != NULL ? abuse_stats(wa->t) : NULL;
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

/*
 * Timers the owners made by the commit of <ng> reserve (its listeners, two
 * per checked server, the resolver's), an upper bound. reload() reserves
 * them before the commit and gives them back as it begins, so that the
 * owners' own reservations in commit() never allocate and never fail.
 */
static size_t
commit_timers(const struct gen *ng)
{
    size_t n = ng->nlisteners + 1 + BOUNCER_TIMERS;
    for (size_t i = 0; i < ng->conf->nbackends; i++)
        n += 3 * ng->conf->backends[i].nservers;
    return n;
}

/*
 * Makes <ng> current. Nothing here fails (beyond logging an out-of-memory
 * for checks or DNS, which leaves servers as they were carried).
 */
static void
commit(struct worker *w, struct gen *ng, struct prep *p, struct worker_counters *t)
{
    struct gen *old = w->gen;
    size_t kept = 0, opened = 0, closed = 0, held = 0, dropped = 0;

    loop_timer_release(w->loop, commit_timers(ng));
    if (old != NULL) {
        carry_backends(old, ng);
        /* The old generation's checks and queries stop; their results
         * would go to state nothing reads any more. */
        check_free_all(&w->checks);
        resolve_free_all(&w->resolver);
        for (size_t i = 0; i < old->conf->nbackends; i++) {
            /* Held clients of a removed backend get the goodbye (session_reload_held). */
            if (gen_backend_by_name(ng, old->conf->backends[i].name) != NULL)
                held += old->backends[i].nheld;
            else
                dropped += old->backends[i].nheld;
            for (size_t j = 0; j < old->conf->backends[i].nservers; j++)
                old->backends[i].srv[j].check = NULL;
        }
    }
    ng->next = w->gens;
    if (w->gens)
        w->gens->prev = ng;
    w->gens = ng;
    switch_listeners(w, old, ng, p, &kept, &opened, &closed);
    free(p);
    w->gen = ng;
    w->conf = ng->conf;
    loop_set_busy_poll(w->loop, w->conf->global.busy_poll_us);
    w->backends = ng->backends;
    w->listeners = ng->listeners;
    w->nlisteners = ng->nlisteners;
    tables_install(w, t);
    /* Per-listener state owned by the worker and keyed by name: abuse limits and bans. */
    abuse_install(w);
    /* Descriptors for the new shape: listeners, checks, maxconn. */
    worker_limits(w);
    for (size_t i = 0; i < ng->conf->nbackends; i++)
        for (size_t j = 0; j < ng->conf->backends[i].nservers; j++)
            ng->backends[i].srv[j].m->up = ng->backends[i].srv[j].up;
    if (old != NULL) {
        log_changes(old->conf, ng->conf, ng->id, kept, opened, closed, held, dropped);
        session_reload_held(w, old);
        for (size_t i = 0; i < ng->conf->nbackends; i++)
            ng->backends[i].qm->queued = ng->backends[i].nheld;
    }
    if (check_start_all(&w->checks, w->loop, w->backends, w->conf->nbackends) == -1 ||
        resolve_start_all(&w->resolver, w->loop, w->conf, w->backends) == -1)
        log_warnx("reload: checks or DNS of generation %llu did not all start",
                  (unsigned long long)ng->id);
    /* Remote bans: started, changed or stopped; the set in force is kept. */
    if (bouncer_configure(w) == -1)
        log_warnx("reload: the crowdsec poller of generation %llu did not start",
                  (unsigned long long)ng->id);
    /* verify on-start: in a child process, never waited for. */
    verifyrun_configure(w);
    if (old != NULL)
        gen_release(w, old);
}

static struct gen *
gen_for(struct conf *conf, uint64_t id)
{
    struct gen *g = gen_new(conf, id);
    if (g == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < conf->nlisteners; i++)
        k += conf->listeners[i].nbinds;
    g->nlisteners = k;
    return g;
}


/*
 * Builds a generation for <conf> (owned from now on) and makes it current:
 * the one path of start-up (no generation yet) and of every reload. On a
 * failure nothing in use changed; <failed> is told why (<alloc>: out of
 * memory, else a bind failed, said in <why>) before anything is undone.
 */
static int
install(struct worker *w, struct conf *conf,
        void (*failed)(struct worker *w, bool alloc, const char *why))
{
    char why[512];
    struct worker_counters t;
    struct gen *old = w->gen;
    struct gen *ng = gen_for(conf, old != NULL ? old->id + 1 : 1);
    if (ng == NULL || loop_timer_reserve(w->loop, commit_timers(ng)) == -1) {
        failed(w, true, "out of memory");
        gen_free(ng);
        return -1;
    }
    struct prep *p = prepare_binds(w, old, ng, why, sizeof(why));
    if (p == NULL) {
        failed(w, false, why);
        loop_timer_release(w->loop, commit_timers(ng));
        gen_free(ng);
        return -1;
    }
    if (worker_abuse_prepare(w, ng->conf) == -1 || tables_build(w, ng->conf, &t) == -1) {
        failed(w, true, "out of memory");
        loop_timer_release(w->loop, commit_timers(ng));
        prep_abort(p, ng->nlisteners);
        gen_free(ng);
        return -1;
    }
    if (old != NULL)
        apply_global(w->conf, ng->conf);
    commit(w, ng, p, &t);
    struct metricshare_host *host = metricshare_host(shm_host());
    if (host != NULL && shm_worker() == 0)
        __atomic_store_n(&host->generation, ng->id, __ATOMIC_RELAXED);
    w->metrics.last_reload_ok = true;
    w->metrics.last_reload_ok_time = (uint64_t)time(NULL);
    return 0;
}

/* At start-up a bind failure is logged already (listen_failed). */
static void
first_failed(struct worker *w, bool alloc, const char *why)
{
    (void)w;
    (void)why;
    if (alloc)
        log_warn("worker: cannot allocate");
}

int
reload_first(struct worker *w, struct conf *conf)
{
    if (install(w, conf, first_failed) == -1)
        return -1;
    w->metrics.reload_info = true;
    return 0;
}

size_t
reload_log_diags(const struct diag_list *diags)
{
    char text[512];
    size_t nerr = 0;

    for (size_t i = 0; i < diags->n; i++) {
        const struct conf_diag *g = &diags->v[i];
        nerr += !g->warning;
        /* Of several workers reading one file, worker 0 says its warnings. */
        if (g->warning && shm_worker() != 0)
            continue;
        conf_diag_text(g, text, sizeof(text));
        log_begin(g->warning ? LOG_WARN : LOG_ERROR, g->warning ? "config_warning" : "config_error");
        log_str(g->warning ? "warning" : "error", text);
        log_end();
    }
    return nerr;
}

static void
reload(struct worker *w)
{
    char why[512];
    struct conf *conf = NULL;
    struct diag_list diags = {0};
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    char state[96];
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    if (w->notify != NULL)
        w->notify(state);
    log_begin(LOG_INFO, "reload_start");
    log_str("config", w->conf_path);
    log_end();

    int loaded = conf_load(w->conf_path, &conf, &diags);
    size_t nerr = reload_log_diags(&diags);
    if (loaded == -1) {
        snprintf(why, sizeof(why), "invalid configuration");
        reload_failed(w, nerr, why);
        diag_list_free(&diags);
        goto out;
    }
    diag_list_free(&diags);
    if (install(w, conf, reload_install_failed) == 0)
        w->metrics.reloads_ok++;
out:
    w->proc->reloads_ok = w->metrics.reloads_ok;
    w->proc->reloads_failed = w->metrics.reloads_failed;
    if (w->notify != NULL)
        w->notify("READY=1\nSTATUS=accepting connections");
}

static void
on_reload(struct defer *d)
{
    struct worker *w = container_of(d, struct worker, reload_defer);
    /* A drain that began since the request wins: nothing to reload into. */
    if (!w->draining)
        reload(w);
}

void
reload_request(struct worker *w)
{
    if (w->reload_defer.cb == NULL)
        defer_init(&w->reload_defer, on_reload);
    loop_defer(w->loop, &w->reload_defer);
}
