/* backend: server selection for new sessions. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"

int
backend_init(struct backend *b, const struct conf_backend *conf)
{
    b->conf = conf;
    b->next = 0;
    b->held_head = b->held_tail = NULL;
    b->nheld = 0;
    b->srv = calloc(conf->nservers ? conf->nservers : 1, sizeof(*b->srv));
    if (b->srv == NULL)
        return -1;
    for (size_t i = 0; i < conf->nservers; i++) {
        b->srv[i].up = conf->check == CHECK_NONE;
        b->srv[i].last_result = -1;
    }
    return 0;
}

void
backend_free(struct backend *b)
{
    free(b->srv);
    b->srv = NULL;
}

bool
backend_server_usable(const struct backend *b, const struct conf_server *srv)
{
    size_t i = (size_t)(srv - b->conf->servers);
    return i < b->conf->nservers && b->srv[i].up && (!srv->is_name || b->srv[i].naddrs > 0);
}

size_t
backend_servers_up(const struct backend *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->conf->nservers; i++)
        n += backend_server_usable(b, &b->conf->servers[i]);
    return n;
}

static bool
any_primary_usable(const struct backend *b)
{
    for (size_t i = 0; i < b->conf->nservers; i++) {
        if (!b->conf->servers[i].backup && backend_server_usable(b, &b->conf->servers[i]))
            return true;
    }
    return false;
}

bool
backend_server_eligible(const struct backend *b, const struct conf_server *srv)
{
    if (!backend_server_usable(b, srv))
        return false;
    return !srv->backup || !any_primary_usable(b);
}

/*
 * Sessions on server <i> now: its name-keyed counter when it has one,
 * which also counts the sessions of older configuration generations
 * (SIGHUP), else this generation's own count.
 */
static uint64_t
load(const struct backend *b, size_t i)
{
    const struct backend_server *st = &b->srv[i];
    return st->m != NULL ? st->m->active : st->active;
}

size_t
backend_first(struct backend *b)
{
    size_t n = b->conf->nservers;
    if (n == 0)
        return 0;
    bool primaries = any_primary_usable(b);
    size_t start = b->conf->balance == BALANCE_FIRST ? 0 : b->next % n;
    size_t best = n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        const struct conf_server *srv = &b->conf->servers[i];
        if (!backend_server_usable(b, srv) || srv->backup == primaries)
            continue;
        if (b->conf->balance != BALANCE_LEAST_CONN) {
            best = i;
            break;
        }
        if (best == n || load(b, i) < load(b, best))
            best = i;
    }
    if (best == n)
        best = start;  /* none eligible: the walk finds none either */
    if (b->conf->balance != BALANCE_FIRST)
        b->next = best + 1;
    return best;
}

void
backend_take(struct backend *b, const struct conf_server *srv)
{
    struct backend_server *st = &b->srv[srv - b->conf->servers];
    st->active++;
    if (st->m != NULL)
        st->m->active++;
}

void
backend_release(struct backend *b, const struct conf_server *srv)
{
    struct backend_server *st = &b->srv[srv - b->conf->servers];
    if (st->active > 0)
        st->active--;
    if (st->m != NULL && st->m->active > 0)
        st->m->active--;
}

const struct conf_server *
backend_server_at(const struct backend *b, size_t first, size_t attempt)
{
    if (attempt >= b->conf->nservers)
        return NULL;
    return &b->conf->servers[(first + attempt) % b->conf->nservers];
}

int
backend_server_addr(const struct backend *b, const struct conf_server *srv, size_t k,
                    unsigned route_port, struct sockaddr_storage *out)
{
    if (srv->is_name) {
        const struct backend_server *st = &b->srv[srv - b->conf->servers];
        if (k >= st->naddrs)
            return -1;
        memcpy(out, &st->addrs[k], sizeof(*out));
        addr_set_port((struct sockaddr *)out, srv->has_port ? srv->port : route_port);
    } else {
        if (k > 0)
            return -1;
        memcpy(out, &srv->addr, sizeof(*out));
        if (srv->has_port)
            return 0;
    }
    if (srv->has_port)
        return 0;
    if (route_port == 0)
        return -1;
    addr_set_port((struct sockaddr *)out, route_port);
    return 0;
}

bool
backend_health_step(struct backend_server *st, bool passed, unsigned rise, unsigned fall)
{
    bool was_up = st->up;
    if (passed) {
        st->fails = 0;
        if (st->passes < rise)
            st->passes++;
        if (!st->up && st->passes >= rise)
            st->up = true;
    } else {
        st->passes = 0;
        if (st->fails < fall)
            st->fails++;
        if (st->up && st->fails >= fall)
            st->up = false;
    }
    return st->up != was_up;
}

bool
backend_server_checked(struct backend *b, size_t i, int result, bool passed, uint64_t now_ms)
{
    struct backend_server *st = &b->srv[i];
    st->last_result = result;
    st->last_check_ms = now_ms;
    if (!passed)
        st->m->check_failures[result]++;
    bool changed = backend_health_step(st, passed, b->conf->check_rise, b->conf->check_fall);
    st->m->up = st->up;
    if (changed) {
        *(st->up ? &st->m->went_up : &st->m->went_down) += 1;
        st->m->last_change = (uint64_t)time(NULL);
    }
    return changed;
}

void
backend_hold(struct backend *b, struct backend_waiter *w)
{
    w->prev = b->held_tail;
    w->next = NULL;
    if (b->held_tail)
        b->held_tail->next = w;
    else
        b->held_head = w;
    b->held_tail = w;
    b->nheld++;
    b->qm->queued = b->nheld;
}

bool
backend_unhold(struct backend *b, struct backend_waiter *w)
{
    if (w->prev == NULL && b->held_head != w)
        return false;
    if (w->prev)
        w->prev->next = w->next;
    else
        b->held_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->held_tail = w->prev;
    w->prev = w->next = NULL;
    b->nheld--;
    b->qm->queued = b->nheld;
    return true;
}

void
backend_wake(struct backend *b)
{
    size_t n = b->nheld;
    while (n-- > 0 && b->held_head != NULL && backend_servers_up(b) > 0)
        b->held_head->wake(b->held_head);
}
