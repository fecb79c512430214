/* listener: accepting clients. */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "metrics.h"
#include "sock.h"
#include "util.h"
#include "worker.h"

#define ACCEPT_BATCH 64
#define PAUSE_LOG_EVERY_MS 10000

static bool
is_unspecified(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr == INADDR_ANY;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return false;
}

void
listener_log_paused(uint64_t now, uint64_t *last_log, const char *name, const char *addr, int err)
{
    if (!util_due(last_log, now, PAUSE_LOG_EVERY_MS))
        return;
    log_begin(LOG_WARN, "accept_paused");
    log_str("listener", name);
    log_str("addr", addr);
    log_str("error", strerror(err));
    log_u64("pause_ms", LISTENER_PAUSE_MS);
    log_end();
}

/* Whether <l> may start one more session: below maxconn, its own and the process's. */
static bool
has_room(const struct listener *l)
{
    return l->w->nsessions < l->w->fdb.maxconn &&
           (l->conf->maxconn == 0 || l->m->active < l->conf->maxconn);
}

/*
 * Polls <l>'s socket for clients (<on>) or stops. The kernel refuses
 * EPOLL_CTL_MOD on an EPOLLEXCLUSIVE registration: a shared socket is
 * taken out of the loop and put back instead.
 */
static int
poll_accept(struct listener *l, bool on)
{
    if (!l->shared)
        return loop_mod(l->w->loop, &l->io, on ? EPOLLIN : 0);
    loop_del(l->w->loop, &l->io);
    return on ? loop_add(l->w->loop, &l->io, EPOLLIN | EPOLLEXCLUSIVE) : 0;
}

static void
pause_accepting(struct listener *l, int err)
{
    uint64_t now = loop_now(l->w->loop);
    char a[ADDR_STRLEN];
    /* Level-triggered and still pending: stop polling it, or we would spin. */
    if (poll_accept(l, false) == -1)
        log_warn("listener %s: cannot pause accepting", l->conf->name);
    loop_timer_at(l->w->loop, &l->pause_timer, now + LISTENER_PAUSE_MS);
    listener_log_paused(now, &l->last_pause_log, l->conf->name,
                        addr_format((const struct sockaddr *)&l->bind->addr, a, sizeof(a)), err);
}

static void
resume(struct listener *l)
{
    if (l->io.fd >= 0 && poll_accept(l, true) == -1)
        log_warn("listener %s: cannot resume accepting", l->conf->name);
}

static void
on_resume(struct timer *t)
{
    struct listener *l = container_of(t, struct listener, pause_timer);
    /* The backlog wait is over: from now on, refuse while there is no room. */
    if (l->full == LISTENER_FULL_WAITING)
        l->full = LISTENER_FULL_REFUSING;
    resume(l);
}

/* No room for a session: stop accepting, let clients wait in the backlog a moment. */
static void
went_full(struct listener *l)
{
    struct worker *w = l->w;
    uint64_t now = loop_now(w->loop);
    bool own = l->conf->maxconn != 0 && l->m->active >= l->conf->maxconn;

    l->full = LISTENER_FULL_WAITING;
    w->any_full = true;
    if (poll_accept(l, false) == -1)
        log_warn("listener %s: cannot pause accepting", l->conf->name);
    loop_timer_at(w->loop, &l->pause_timer, now + LISTENER_FULL_WAIT_MS);
    if (!util_due(&l->last_full_log, now, PAUSE_LOG_EVERY_MS))
        return;
    char a[ADDR_STRLEN];
    log_begin(LOG_WARN, "maxconn_reached");
    log_str("listener", l->conf->name);
    log_str("addr", addr_format((const struct sockaddr *)&l->bind->addr, a, sizeof(a)));
    log_str("limit", own ? "listener" : "global");
    log_u64("maxconn", own ? l->conf->maxconn : w->fdb.maxconn);
    log_u64("sessions", own ? l->m->active : w->nsessions);
    log_u64("wait_ms", LISTENER_FULL_WAIT_MS);
    log_end();
}

/*
 * A client beyond maxconn: the protocol's "try again later", then a close.
 * What it sent already (a TLS ClientHello) is read first, so the close is
 * a FIN and not a reset that could destroy the answer.
 */
static void
refuse(struct listener *l, int fd)
{
    const char *msg = conf_proto_goodbye(l->conf->proto);
    char drop[4096];

    for (int i = 0; i < 4 && recv(fd, drop, sizeof(drop), MSG_DONTWAIT) > 0; i++)
        ;
    if (msg != NULL)
        (void)send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    l->m->refused_maxconn++;
}

bool
listener_full_recheck(struct listener *l)
{
    if (l->full == 0 || l->io.fd < 0)
        return false;
    if (!has_room(l))
        return true;
    l->full = 0;
    loop_timer_cancel(l->w->loop, &l->pause_timer);
    resume(l);
    return false;
}

static void
on_accept(struct io *io, uint32_t ev)
{
    (void)ev;
    struct listener *l = (struct listener *)(void *)io;
    for (int i = 0; i < ACCEPT_BATCH && l->io.fd >= 0; i++) {
        struct sockaddr_storage peer;
        bool room = has_room(l);
        if (!room && l->full != LISTENER_FULL_REFUSING) {
            went_full(l);
            return;
        }
        if (room && l->full != 0) {
            l->full = 0;
            loop_timer_cancel(l->w->loop, &l->pause_timer);
        }
        int fd = sock_accept(l->io.fd, &peer);
        if (fd >= 0) {
            if (room) {
                sock_delay_acks(fd);
                l->w->accept(l, fd, &peer);
            } else {
                refuse(l, fd);
            }
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return;
        default:
            if (sock_exhausted(errno)) {
                pause_accepting(l, errno);
                return;
            }
            /* ECONNABORTED and friends: that client is gone, the next may not be. */
            continue;
        }
    }
}

int
listener_attach(struct listener *l, struct worker *w, const struct conf_listener *conf,
                const struct conf_bind *bind, int fd, bool registered, bool shared)
{
    struct gen *g = l->gen;
    memset(l, 0, sizeof(*l));
    l->w = w;
    l->gen = g;
    l->conf = conf;
    l->bind = bind;
    l->wildcard = bind->any || is_unspecified((const struct sockaddr *)&bind->addr);
    l->shared = shared;
    timer_init(&l->pause_timer, on_resume);
    l->io.cb = on_accept;
    /* The pause timer's room is reserved while the listener has a socket. */
    if (loop_timer_reserve(w->loop, 1) == -1)
        return -1;
    l->io.fd = fd;
    /* Taken over: EPOLL_CTL_MOD points the registration at <l> (a shared
     * socket's is removed and added again); the socket never stops
     * listening, so no client is refused meanwhile. */
    if ((registered || shared ? poll_accept(l, true) : loop_add(w->loop, &l->io, EPOLLIN)) == -1) {
        l->io.fd = -1;
        loop_timer_release(w->loop, 1);
        return -1;
    }
    return 0;
}

int
listener_open(struct listener *l, struct worker *w, const struct conf_listener *conf,
              const struct conf_bind *bind)
{
    int fd = sock_listen((const struct sockaddr *)&bind->addr, bind->any, w->reuseport, 1024);
    if (fd == -1)
        return -1;
    if (listener_attach(l, w, conf, bind, fd, false, false) == -1) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return 0;
}

int
listener_detach(struct listener *l)
{
    int fd = l->io.fd;
    if (l->w != NULL) {
        loop_timer_cancel(l->w->loop, &l->pause_timer);
        if (fd >= 0)
            loop_timer_release(l->w->loop, 1);
    }
    l->io.fd = -1;
    return fd;
}

void
listener_close(struct listener *l)
{
    if (l->w == NULL)
        return;
    loop_timer_cancel(l->w->loop, &l->pause_timer);
    if (l->io.fd >= 0) {
        loop_del(l->w->loop, &l->io);
        close(l->io.fd);
        l->io.fd = -1;
        loop_timer_release(l->w->loop, 1);
    }
}
