/* connector: Happy Eyeballs connects over one server's addresses. */
#include "connector.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "loop.h"
#include "sock.h"
#include "util.h"

struct attempt {
    struct io io;              /* fd -1: not started, or over */
    struct connector *c;
};

struct connector {
    struct loop *loop;
    const struct connector_ops *ops;
    void *arg;
    struct timer timer;        /* the next attempt's start, or the deadline */
    struct defer defer;        /* the deferred free */
    bool busy;                 /* a set is in flight */
    bool dead;                 /* freed: stale events of this batch are ignored */
    bool delay_acks;           /* sock_connect()'s: the winner writes at once */
    struct io *lent;           /* the first attempt's registration (connector_lend_io) */
    uint32_t lent_events;
    bool won_lent;             /* the first attempt won with it */
    struct conn_budget *budget; /* NULL: unbounded */
    size_t extra;              /* attempts counted in <budget>: inflight - 1 at most */
    size_t n, next, inflight;  /* addresses, the next to start, in flight */
    uint64_t delay_ms, deadline;
    int last_err;
    int lost_family;           /* see connector_lost_family() */
    union sa addrs[ADDR_PER_NAME_MAX];
    struct attempt a[ADDR_PER_NAME_MAX];
};

static void start_next(struct connector *c);

/* Gives back what the budget no longer needs: one attempt is always the caller's own. */
static void
settle(struct connector *c)
{
    size_t want = c->inflight > 0 ? c->inflight - 1 : 0;
    if (c->extra > want) {
        c->budget->used -= c->extra - want;
        c->extra = want;
    }
}

/* Room for one more attempt in flight. */
static bool
may_start(struct connector *c)
{
    if (c->inflight == 0 || c->budget == NULL)
        return true;
    if (c->budget->used >= c->budget->max)
        return false;
    c->budget->used++;
    c->extra++;
    return true;
}

/* The io registered for <a>: the lent one for the first attempt. */
static struct io *
attempt_io(struct connector *c, struct attempt *a)
{
    return a == c->a && c->lent != NULL ? c->lent : &a->io;
}

static void
close_attempt(struct connector *c, struct attempt *a)
{
    close(a->io.fd); /* never duplicated: close() takes it out of epoll */
    a->io.fd = -1;
    attempt_io(c, a)->fd = -1;
    c->inflight--;
    if (c->budget != NULL)
        settle(c);
}

static const struct sockaddr *
attempt_addr(const struct connector *c, const struct attempt *a)
{
    return &c->addrs[a - c->a].sa;
}

static unsigned
nth(const struct connector *c, const struct attempt *a)
{
    return (unsigned)(a - c->a) + 1;
}

/* Every attempt failed or the deadline passed: report, last. */
static void
give_up(struct connector *c, bool timeout)
{
    c->busy = false;
    loop_timer_cancel(c->loop, &c->timer);
    c->ops->done(c->arg, -1, NULL, timeout ? ETIMEDOUT : c->last_err, timeout);
}

static void
won(struct connector *c, struct attempt *w)
{
    for (size_t i = 0; i < c->next; i++) {
        struct attempt *a = &c->a[i];
        if (a == w || a->io.fd < 0)
            continue;
        close_attempt(c, a);
        c->ops->attempt(c->arg, nth(c, a), attempt_addr(c, a), CONN_ABANDONED, 0);
    }
    c->lost_family = 0;
    for (struct attempt *a = c->a; a < w; a++)
        if (c->addrs[a - c->a].sa.sa_family != attempt_addr(c, w)->sa_family)
            c->lost_family = c->addrs[a - c->a].sa.sa_family;
    int fd = w->io.fd;
    /* Still in the loop: the caller takes it over, registered with its own
     * io already (won_lent) or with loop_mod(). */
    w->io.fd = -1;
    c->won_lent = attempt_io(c, w) != &w->io;
    c->inflight--;
    if (c->budget != NULL)
        settle(c);
    c->busy = false;
    loop_timer_cancel(c->loop, &c->timer);
    c->ops->attempt(c->arg, nth(c, w), attempt_addr(c, w), CONN_WON, 0);
    c->ops->done(c->arg, fd, attempt_addr(c, w), 0, false);
}

static void
attempt_event(struct connector *c, struct attempt *a, uint32_t ev)
{
    if (c->dead || !c->busy || a->io.fd < 0 || !(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return;
    /* Writable without an error or a hang-up: connected (a failed connect
     * always raises EPOLLERR), no getsockopt(SO_ERROR) needed. */
    int err = ev & (EPOLLERR | EPOLLHUP) ? sock_error(a->io.fd) : 0;
    if (err == 0 && (ev & (EPOLLERR | EPOLLHUP)))
        err = ECONNRESET;
    if (err == 0) {
        won(c, a);
        return;
    }
    close_attempt(c, a);
    c->last_err = err;
    c->ops->attempt(c->arg, nth(c, a), attempt_addr(c, a), CONN_FAILED, err);
    /* RFC 8305 5: a failure starts the next attempt at once. */
    if (c->next < c->n)
        start_next(c);
    else if (c->inflight == 0)
        give_up(c, false);
}

static void
on_io(struct io *io, uint32_t ev)
{
    struct attempt *a = container_of(io, struct attempt, io);
    attempt_event(a->c, a, ev);
}

void
connector_io(struct connector *c, uint32_t ev)
{
    if (c->lent != NULL)
        attempt_event(c, c->a, ev);
}

static void
on_timer(struct timer *t)
{
    struct connector *c = container_of(t, struct connector, timer);

    if (!c->busy)
        return;
    if (loop_now(c->loop) >= c->deadline) {
        for (size_t i = 0; i < c->next; i++) {
            struct attempt *a = &c->a[i];
            if (a->io.fd < 0)
                continue;
            close_attempt(c, a);
            c->ops->attempt(c->arg, nth(c, a), attempt_addr(c, a), CONN_TIMED_OUT, ETIMEDOUT);
        }
        give_up(c, true);
        return;
    }
    start_next(c);
}

/*
 * Starts the next address that can be started; one that fails at once
 * (no route, no descriptor) hands over to the one after it. Then arms the
 * timer for the attempt after that, or for the deadline.
 */
static void
start_next(struct connector *c)
{
    while (c->next < c->n && may_start(c)) {
        struct attempt *a = &c->a[c->next];
        const struct sockaddr *sa = &c->addrs[c->next].sa;
        c->next++;
        int fd = sock_connect(sa, NULL, c->delay_acks);
        if (fd != -1) {
            struct io *io = attempt_io(c, a);
            uint32_t events = io == &a->io ? EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLET
                                           : c->lent_events;
            a->io.fd = io->fd = fd;
            if (loop_add(c->loop, io, events) == 0) {
                c->inflight++;
                break;
            }
            int saved = errno;
            close(fd);
            a->io.fd = io->fd = -1;
            errno = saved;
        }
        if (c->budget != NULL)
            settle(c);
        c->last_err = errno;
        c->ops->attempt(c->arg, nth(c, a), sa, CONN_FAILED, errno);
    }
    if (c->inflight == 0) {
        give_up(c, false);
        return;
    }
    uint64_t when = c->deadline;
    if (c->next < c->n && loop_now(c->loop) + c->delay_ms < when)
        when = loop_now(c->loop) + c->delay_ms;
    loop_timer_at(c->loop, &c->timer, when);
}

static void
on_defer(struct defer *d)
{
    free(container_of(d, struct connector, defer));
}

struct connector *
connector_new(struct loop *loop, const struct connector_ops *ops, void *arg)
{
    struct connector *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->ops = ops;
    c->arg = arg;
    timer_init(&c->timer, on_timer);
    defer_init(&c->defer, on_defer);
    for (size_t i = 0; i < ADDR_PER_NAME_MAX; i++)
        c->a[i] = (struct attempt){.io = {.fd = -1, .cb = on_io}, .c = c};
    return c;
}

void
connector_start(struct connector *c, const struct sockaddr_storage *addrs, size_t n,
                uint64_t delay_ms, uint64_t timeout_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < ADDR_PER_NAME_MAX; i++) {
        if (addrs[i].ss_family == AF_INET)
            memcpy(&c->addrs[k++].in, &addrs[i], sizeof(struct sockaddr_in));
        else if (addrs[i].ss_family == AF_INET6)
            memcpy(&c->addrs[k++].in6, &addrs[i], sizeof(struct sockaddr_in6));
    }
    c->n = k;
    c->next = 0;
    c->inflight = 0;
    c->delay_ms = delay_ms;
    c->deadline = loop_now(c->loop) + timeout_ms;
    c->last_err = EDESTADDRREQ;
    c->lost_family = 0;
    c->won_lent = false;
    c->busy = true;
    start_next(c);
}

int
connector_lost_family(const struct connector *c)
{
    return c->lost_family;
}

void
connector_lend_io(struct connector *c, struct io *io, uint32_t events)
{
    c->lent = io;
    c->lent_events = events;
}

bool
connector_won_lent(const struct connector *c)
{
    return c->won_lent;
}

void
connector_set_delay_acks(struct connector *c, bool on)
{
    c->delay_acks = on;
}

bool
connector_delays_acks(const struct connector *c)
{
    return c->delay_acks;
}

void
connector_set_budget(struct connector *c, struct conn_budget *b)
{
    c->budget = b;
}

unsigned
connector_attempts(const struct connector *c)
{
    return (unsigned)c->next;
}

void
connector_cancel(struct connector *c)
{
    for (size_t i = 0; i < c->next; i++) {
        if (c->a[i].io.fd >= 0)
            close_attempt(c, &c->a[i]);
    }
    loop_timer_cancel(c->loop, &c->timer);
    c->busy = false;
}

void
connector_free(struct connector *c)
{
    if (c == NULL)
        return;
    connector_cancel(c);
    c->dead = true;
    loop_defer(c->loop, &c->defer);
}

void
connector_destroy(struct connector *c)
{
    if (c == NULL)
        return;
    connector_cancel(c);
    free(c);
}

void
connector_log_attempt(unsigned nth, const struct sockaddr *sa, enum conn_outcome o, int err)
{
    static const char *const names[] = {[CONN_WON] = "connected", [CONN_FAILED] = "failed",
                                         [CONN_TIMED_OUT] = "timeout",
                                         [CONN_ABANDONED] = "abandoned"};
    char a[ADDR_STRLEN];

    log_u64("n", nth);
    log_str("addr", addr_format(sa, a, sizeof(a)));
    log_str("result", names[o]);
    if (o == CONN_FAILED)
        log_str("error", strerror(err));
}
