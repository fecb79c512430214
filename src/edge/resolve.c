/* resolve: server names through c-ares in our loop (resolve.h). */
#include "resolve.h"

#include <ares.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "addr.h"
#include "backend.h"
#include "dnsshare.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define RIO_MAX 32   /* c-ares sockets at once: one per resolver, plus TCP */

struct resolver;

struct resolve_query {
    struct resolver *r;
    struct backend *b;
    size_t si;                 /* server index in b */
    struct timer timer;        /* next query */
    bool busy;                 /* a query is in flight */
    int last_status;           /* ARES_SUCCESS or the failure last logged; -1: none yet */
    uint64_t retry_ms;         /* failure back-off; 0 after a success */
    uint64_t started_ms;       /* loop_now() when the last query started */
    uint64_t due_ms;           /* when the timer fires next; 0: not armed */
    int slot;                  /* workers N: its slot of the shared table; -1: none */
    uint64_t version;          /* a follower: of the answer it has */
    unsigned asked;            /* worker 0: early queries the followers asked, seen */
};

struct rio {
    struct io io;
    struct resolver *r;
    bool used;
};

struct resolver {
    struct loop *loop;
    size_t ntimers;            /* timers it reserved in the loop */
    ares_channel ch;
    bool stopping;
    bool follower;             /* workers N, not worker 0: no lookups, the shared table */
    bool shared;               /* workers N: the shared table is read every DNSSHARE_POLL_MS */
    uint64_t seen;             /* a follower: the table's version last read */
    struct timer share_timer;
    struct timer timer;        /* c-ares's own timeouts */
    struct rio ios[RIO_MAX];
    struct resolve_query *q;
    size_t nq;
};

static void
rearm(struct resolver *r)
{
    struct timeval tv;
    if (r->stopping)
        return;
    if (ares_timeout(r->ch, NULL, &tv) == NULL) {
        loop_timer_cancel(r->loop, &r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 + 1;
    loop_timer_at(r->loop, &r->timer, loop_now(r->loop) + ms);
}

static void
on_io(struct io *io, uint32_t events)
{
    struct rio *x = (struct rio *)(void *)io;
    struct resolver *r = x->r;
    int fd = io->fd;
    ares_socket_t rd = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? fd : ARES_SOCKET_BAD;
    ares_socket_t wr = (events & EPOLLOUT) ? fd : ARES_SOCKET_BAD;
    ares_process_fd(r->ch, rd, wr);
    rearm(r);
}

static void
on_timeout(struct timer *t)
{
    struct resolver *r = container_of(t, struct resolver, timer);
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(r);
}

/* c-ares opens, watches or closes one of its sockets. */
static void
on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct rio *x = NULL, *free_slot = NULL;
    for (size_t i = 0; i < RIO_MAX; i++) {
        if (r->ios[i].used && r->ios[i].io.fd == fd)
            x = &r->ios[i];
        else if (!r->ios[i].used && free_slot == NULL)
            free_slot = &r->ios[i];
    }
    if (!readable && !writable) {
        if (x != NULL) {
            loop_del(r->loop, &x->io);
            x->used = false;
            x->io.fd = -1;
        }
        return;
    }
    uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    if (x != NULL) {
        if (loop_mod(r->loop, &x->io, ev) == -1)
            log_warn("resolve: epoll_ctl");
        return;
    }
    if (free_slot == NULL) {
        log_warnx("resolve: more than %d resolver sockets at once", RIO_MAX);
        return;
    }
    free_slot->io.fd = fd;
    free_slot->io.cb = on_io;
    free_slot->r = r;
    if (loop_add(r->loop, &free_slot->io, ev) == -1) {
        log_warn("resolve: epoll_ctl");
        free_slot->io.fd = -1;
        return;
    }
    free_slot->used = true;
}

static const struct conf_server *
qconf(const struct resolve_query *q)
{
    return &q->b->conf->servers[q->si];
}

/* "a,b,c" of a server's current addresses, "-" when none. */
static void
addrs_text(const struct backend_server *st, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < st->naddrs && o + 1 < cap; i++) {
        char a[ADDR_STRLEN];
        addr_format_ip((const struct sockaddr *)&st->addrs[i], a, sizeof(a));
        int n = snprintf(buf + o, cap - o, "%s%s", i ? "," : "", a);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    if (st->naddrs == 0)
        snprintf(buf, cap, "-");
}

static void query_start(struct resolve_query *q);

static void
on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct resolve_query *q = arg;
    (void)timeouts;
    if (status == ARES_EDESTRUCTION || q->r->stopping) {
        if (res != NULL)
            ares_freeaddrinfo(res);
        return;
    }
    q->busy = false;
    struct backend_server *st = &q->b->srv[q->si];
    const struct conf_server *sc = qconf(q);
    struct sockaddr_storage got[BACKEND_ADDRS_MAX];
    size_t n = 0;
    uint32_t ttl = RESOLVE_MAX_MS / 1000;
    if (status == ARES_SUCCESS && res != NULL) {
        for (struct ares_addrinfo_node *nd = res->nodes; nd != NULL && n < BACKEND_ADDRS_MAX;
             nd = nd->ai_next) {
            if (nd->ai_family != AF_INET && nd->ai_family != AF_INET6)
                continue;
            size_t len = nd->ai_family == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
            bool dup = false;
            memset(&got[n], 0, sizeof(got[n]));
            memcpy(&got[n], nd->ai_addr, len);
            addr_set_port((struct sockaddr *)&got[n], 0);
            for (size_t k = 0; k < n; k++)
                dup = dup || memcmp(&got[k], &got[n], sizeof(got[n])) == 0;
            if (dup)
                continue;
            if (nd->ai_ttl >= 0 && (uint32_t)nd->ai_ttl < ttl)
                ttl = (uint32_t)nd->ai_ttl;
            n++;
        }
        if (n == 0)
            status = ARES_ENODATA;
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
    char text[BACKEND_ADDRS_MAX * (ADDR_STRLEN + 1)];
    uint64_t next_ms;
    if (status == ARES_SUCCESS) {
        bool changed = n != st->naddrs || memcmp(got, st->addrs, n * sizeof(got[0])) != 0;
        memcpy(st->addrs, got, n * sizeof(got[0]));
        st->naddrs = n;
        st->ttl = ttl;
        /* Before the log line: once it is out, every worker serves the answer. */
        dnsshare_publish(q->slot, q->b, q->si);
        if (changed || q->last_status != ARES_SUCCESS) {
            addrs_text(st, text, sizeof(text));
            log_begin(LOG_INFO, "resolve");
            log_str("backend", q->b->conf->name);
            log_str("server", sc->name);
            log_str("name", sc->host);
            log_str("addrs", text);
            log_u64("ttl", ttl);
            log_end();
        }
        q->last_status = ARES_SUCCESS;
        q->retry_ms = 0;
        next_ms = (uint64_t)ttl * 1000;
        if (next_ms < RESOLVE_MIN_MS)
            next_ms = RESOLVE_MIN_MS;
        if (next_ms > RESOLVE_MAX_MS)
            next_ms = RESOLVE_MAX_MS;
    } else {
        if (q->last_status != status) {
            addrs_text(st, text, sizeof(text));
            log_begin(LOG_WARN, "resolve_failed");
            log_str("backend", q->b->conf->name);
            log_str("server", sc->name);
            log_str("name", sc->host);
            log_str("error", ares_strerror(status));
            log_str("kept", text);
            log_end();
        }
        q->last_status = status;
        q->retry_ms = q->retry_ms == 0 ? 1000 : q->retry_ms * 2;
        if (q->retry_ms > RESOLVE_RETRY_MAX_MS)
            q->retry_ms = RESOLVE_RETRY_MAX_MS;
        next_ms = q->retry_ms;
    }
    q->due_ms = loop_now(q->r->loop) + next_ms;
    loop_timer_at(q->r->loop, &q->timer, q->due_ms);
}

static void
query_start(struct resolve_query *q)
{
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ARES_AI_NOSORT;
    q->busy = true;
    q->started_ms = loop_now(q->r->loop);
    q->due_ms = 0;
    loop_timer_cancel(q->r->loop, &q->timer);
    ares_getaddrinfo(q->r->ch, qconf(q)->host, NULL, &hints, on_answer, q);
    rearm(q->r);
}

static void
on_query_timer(struct timer *t)
{
    struct resolve_query *q = container_of(t, struct resolve_query, timer);
    if (!q->busy)
        query_start(q);
}

void
resolve_refresh(struct resolve_query *q)
{
    if (q == NULL || q->busy || q->r->stopping)
        return;
    struct loop *l = q->r->loop;
    if (q->r->follower) {
        /* Worker 0 queries (its own limit applies too); at most once per
         * RESOLVE_REFRESH_MS from here. */
        if (q->started_ms == 0 || loop_now(l) >= q->started_ms + RESOLVE_REFRESH_MS) {
            q->started_ms = loop_now(l);
            dnsshare_ask(q->slot);
        }
        return;
    }
    uint64_t when = q->started_ms + RESOLVE_REFRESH_MS;
    if (when <= loop_now(l)) {
        query_start(q);
        return;
    }
    if (q->due_ms == 0 || when < q->due_ms) {
        q->due_ms = when;
        loop_timer_at(l, &q->timer, when);
    }
}

void
resolve_family_sync(struct backend_server *st)
{
    if (st->rq != NULL)
        dnsshare_family_load(st->rq->slot, &st->slow_family, &st->slow_until_ms);
}

void
resolve_family_publish(const struct backend_server *st)
{
    if (st->rq != NULL)
        dnsshare_family_store(st->rq->slot, st->slow_family, st->slow_until_ms);
}

/* A follower: takes worker 0's new answers, if any. Held clients are woken
 * by the next pass of the server's check, as in a single process. */
static void
pull_all(struct resolver *r)
{
    if (!dnsshare_changed(&r->seen))
        return;
    for (size_t i = 0; i < r->nq; i++)
        dnsshare_pull(r->q[i].b, r->q[i].si, &r->q[i].slot, &r->q[i].version);
}

void
resolve_sync(struct resolver *r)
{
    if (r != NULL && r->follower)
        pull_all(r);
}

/* workers N: a follower takes new answers; worker 0 serves the followers' early queries. */
static void
on_share_timer(struct timer *t)
{
    struct resolver *r = container_of(t, struct resolver, share_timer);
    if (r->follower)
        pull_all(r);
    for (size_t i = 0; i < r->nq && !r->follower; i++) {
        struct resolve_query *q = &r->q[i];
        if (dnsshare_asked(q->slot) != q->asked) {
            q->asked = dnsshare_asked(q->slot);
            resolve_refresh(q);
        }
    }
    loop_timer_at(r->loop, t, loop_now(r->loop) + DNSSHARE_POLL_MS);
}

/* Sets up query <q> for server <j> of <b>, without starting it. */
static void
query_init(struct resolver *r, struct resolve_query *q, struct backend *b, size_t j)
{
    q->r = r;
    q->b = b;
    q->si = j;
    q->last_status = -1;
    q->slot = -1;
    timer_init(&q->timer, on_query_timer);
    b->srv[j].rq = q;
}

/*
 * workers N, not worker 0: no c-ares; every named server takes worker 0's
 * answers from the shared table, now and every DNSSHARE_POLL_MS.
 */
static int
follow_all(struct resolver *r, const struct conf *c, struct backend *backends)
{
    if (loop_timer_reserve(r->loop, 1) == -1) {
        log_warnx("resolve: cannot allocate");
        return -1;
    }
    r->ntimers = 1;
    for (size_t i = 0; i < c->nbackends; i++)
        for (size_t j = 0; j < c->backends[i].nservers; j++)
            if (c->backends[i].servers[j].is_name)
                query_init(r, &r->q[r->nq++], &backends[i], j);
    on_share_timer(&r->share_timer);
    return 0;
}

int
resolve_start_all(struct resolver **out, struct loop *loop, const struct conf *c,
                  struct backend *backends)
{
    size_t nq = 0;
    *out = NULL;
    for (size_t i = 0; i < c->nbackends; i++)
        for (size_t j = 0; j < c->backends[i].nservers; j++)
            nq += c->backends[i].servers[j].is_name;
    if (nq == 0) {
        if (dnsshare_on() && dnsshare_resolves_here()) {
            dnsshare_begin(); /* frees the slots of servers gone */
            dnsshare_end();
        }
        return 0;
    }
    struct resolver *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->q = calloc(nq, sizeof(*r->q))) == NULL) {
        free(r);
        log_warnx("resolve: cannot allocate");
        return -1;
    }
    r->loop = loop;
    timer_init(&r->timer, on_timeout);
    timer_init(&r->share_timer, on_share_timer);
    for (size_t i = 0; i < RIO_MAX; i++)
        r->ios[i].io.fd = -1;
    *out = r;
    r->shared = dnsshare_on();
    r->follower = r->shared && !dnsshare_resolves_here();
    if (r->follower)
        return follow_all(r, c, backends);
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        log_warnx("resolve: c-ares: %s", ares_strerror(rc));
        return -1;
    }
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    o.timeout = 2000;
    o.tries = 2;
    rc = ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        ares_library_cleanup();
        log_warnx("resolve: c-ares: %s", ares_strerror(rc));
        return -1;
    }
    r->nq = 0; /* counts initialised queries, for resolve_free_all */
    if (c->global.nresolvers > 0) {
        char csv[CONF_RESOLVERS_MAX * (ADDR_STRLEN + 1)];
        size_t o2 = 0;
        for (size_t i = 0; i < c->global.nresolvers; i++) {
            char a[ADDR_STRLEN];
            addr_format((const struct sockaddr *)&c->global.resolvers[i], a, sizeof(a));
            o2 += (size_t)snprintf(csv + o2, sizeof(csv) - o2, "%s%s", i ? "," : "", a);
        }
        rc = ares_set_servers_ports_csv(r->ch, csv);
        if (rc != ARES_SUCCESS) {
            log_warnx("resolve: resolvers %s: %s", csv, ares_strerror(rc));
            return -1;
        }
    }
    if (loop_timer_reserve(loop, nq + 1 + r->shared) == -1) {
        log_warnx("resolve: cannot allocate");
        return -1;
    }
    r->ntimers = nq + 1 + r->shared;
    dnsshare_begin();
    for (size_t i = 0; i < c->nbackends; i++) {
        for (size_t j = 0; j < c->backends[i].nservers; j++) {
            if (!c->backends[i].servers[j].is_name)
                continue;
            struct resolve_query *q = &r->q[r->nq++];
            query_init(r, q, &backends[i], j);
            if (r->shared) {
                q->slot = dnsshare_claim(&backends[i], j);
                q->asked = dnsshare_asked(q->slot);
            }
            query_start(q);
        }
    }
    dnsshare_end();
    if (r->shared)
        loop_timer_at(loop, &r->share_timer, loop_now(loop) + DNSSHARE_POLL_MS);
    return 0;
}

void
resolve_free_all(struct resolver **rp)
{
    struct resolver *r = *rp;
    if (r == NULL)
        return;
    r->stopping = true;
    if (r->ch != NULL) {
        ares_destroy(r->ch);
        ares_library_cleanup();
    }
    for (size_t i = 0; i < RIO_MAX; i++)
        if (r->ios[i].used)
            loop_del(r->loop, &r->ios[i].io);
    loop_timer_cancel(r->loop, &r->timer);
    loop_timer_cancel(r->loop, &r->share_timer);
    for (size_t i = 0; i < r->nq; i++) {
        loop_timer_cancel(r->loop, &r->q[i].timer);
        r->q[i].b->srv[r->q[i].si].rq = NULL;
    }
    loop_timer_release(r->loop, r->ntimers);
    free(r->q);
    free(r);
    *rp = NULL;
}
