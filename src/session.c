/*
 * session: the per-connection state machine.
 *
 *   accept -> [READ_PROXY] -> [PEEK_HELLO] -> CONNECTING -> RELAYING -> CLOSED
 *                                               ^   |
 *                                               +---+  next server on refusal/timeout
 *                                               |   |
 *                                  server up    |   v  no server up / all failed (queue-timeout)
 *                                             [HOLDING] -> CLOSED on queue-timeout, hangup
 *
 * PEEK_HELLO only on tls listeners that route by SNI (or need it for the
 * AUTHORITY TLV). Both sockets are registered once, edge-triggered, for
 * input and output; readiness is cached in the session and cleared by the
 * relay on EAGAIN, so the data path makes no epoll_ctl calls at all.
 */
#include "session.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "abuse.h"
#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "connector.h"
#include "fault.h"
#include "gen.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "proxyproto.h"
#include "relay.h"
#include "sock.h"
#include "tlshello.h"
#include "worker.h"

/* Bytes one direction may move per wake-up before yielding to others. */
#define RELAY_BUDGET ((size_t)256 * 1024)

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Addresses kept per session: 28 bytes each instead of 128 for storage. */
union sa {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct session {
    struct session *prev, *next;       /* worker's list */
    struct session *hprev, *hnext;     /* backend's held list, while HOLDING */
    struct worker *w;
    struct listener *l;
    struct io cio, bio;                /* client, backend */
    struct relay_half up, down;        /* client->backend, backend->client */
    struct timer timer;
    struct defer defer;                /* deferred free, or relay continuation */
    enum session_state state;
    bool c_rd, c_wr, c_hup, b_rd, b_wr;
    uint8_t first_fin;                 /* 0 none, 1 client, 2 backend */
    bool pg_watch;                     /* smtp pregreet: client bytes before the greeting? */
    bool talked_early;                 /* it sent some (logged as pregreet=1) */
    uint16_t nattempts;                /* connects started, all servers (saturates) */
    int last_err;                      /* errno of the last failed connect */
    bool last_timeout;                 /* the last failed connect timed out */
    bool counted;                      /* in the active count of <trying> (least-conn) */
    size_t srv_first, attempt;
    struct connector *conn;            /* CONNECTING: the attempts in flight (src/connector.c) */
    union sa baddr;                    /* the address connected to, for the log */
    const struct conf_server *trying;  /* the server being connected to */
    const struct conf_server *srv;     /* the server connected to, for the log */
    const struct conf_route *route;    /* chosen route; NULL until routed */
    struct backend *backend;           /* its runtime backend */
    struct gen *gen;                   /* its listener's generation (a reference) */
    struct gen *bgen;                  /* its backend's, when a reload moved it; else NULL */
    size_t hello_need;                 /* PEEK_HELLO: bytes worth parsing again */
    size_t hello_seen;                 /* PEEK_HELLO: bytes of the last peek */
    uint64_t id, start_ms, last_ms;
    uint64_t connect_ms;               /* when the current connect started */
    uint64_t hold_first_ms;            /* when it was first held; queue-timeout counts from it */
    uint64_t hold_since_ms;            /* when the current hold began */
    uint64_t held_ms;                  /* time held in all; logged when held_ever */
    bool held_ever;
    struct abuse_ticket ticket;        /* what limit per-ip counted for this session */
    union sa client, peer, local;
    char *sni;                         /* NULL (no peeking), "" or the server name */
    char tail[];                       /* TH_HOST_MAX bytes for sni on peeking listeners */
};

static const char *const end_reason_names[] = {
    [END_CLIENT_CLOSED] = "client_closed",     [END_BACKEND_CLOSED] = "backend_closed",
    [END_CLIENT_RESET] = "client_reset",       [END_BACKEND_RESET] = "backend_reset",
    [END_IDLE_TIMEOUT] = "idle_timeout",       [END_CONNECT_REFUSED] = "connect_refused",
    [END_CONNECT_TIMEOUT] = "connect_timeout", [END_PROXY_TIMEOUT] = "proxy_timeout",
    [END_PROXY_INVALID] = "proxy_invalid",     [END_PROXY_UNTRUSTED] = "proxy_untrusted",
    [END_SHUTDOWN] = "shutdown",               [END_RESOURCE] = "resource",
    [END_HELLO_TIMEOUT] = "hello_timeout",     [END_SNI_REQUIRED] = "sni_required",
    [END_SNI_NO_ROUTE] = "sni_no_route",       [END_QUEUE_TIMEOUT] = "queue_timeout",
    [END_QUEUE_FULL] = "queue_full",           [END_LIMIT_PER_IP] = "limit_per_ip",
    [END_LIMIT_RATE] = "limit_rate",           [END_BANNED] = "banned",
    [END_PREGREET] = "pregreet",
};
_Static_assert(sizeof(end_reason_names) / sizeof(end_reason_names[0]) == END_REASON_COUNT,
               "end_reason_names must name every enum end_reason");

const char *
session_end_reason_name(enum end_reason r)
{
    if ((size_t)r < sizeof(end_reason_names) / sizeof(end_reason_names[0]) &&
        end_reason_names[r] != NULL)
        return end_reason_names[r];
    return "unknown";
}

/* Whether <b> may hold clients: only with a check to wake them. */
static bool
holds(const struct backend *b)
{
    return b->conf->queue_timeout_ms > 0 && b->conf->check != CHECK_NONE;
}

static void session_close(struct session *s, enum end_reason r, const char *detail);
static void connect_next(struct session *s);
static void hold(struct session *s);
static void relay(struct session *s);

static void
sa_store(union sa *dst, const struct sockaddr_storage *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->ss_family == AF_INET)
        memcpy(&dst->in, src, sizeof(dst->in));
    else if (src->ss_family == AF_INET6)
        memcpy(&dst->in6, src, sizeof(dst->in6));
}

static const struct conf_listener *
lconf(const struct session *s)
{
    return s->l->conf;
}

static void
close_io(struct session *s, struct io *io)
{
    if (io->fd < 0)
        return;
    loop_del(s->w->loop, io);
    close(io->fd);
    io->fd = -1;
}

static void
log_session(const struct session *s, enum end_reason r, const char *detail)
{
    if (!log_enabled(LOG_INFO))
        return;
    char client[ADDR_STRLEN], peer[ADDR_STRLEN];
    const struct backend *b = s->backend;
    log_begin(LOG_INFO, "session");
    log_fmt("id", "%016llx", (unsigned long long)s->id);
    log_str("listener", lconf(s)->name);
    log_str("client", addr_format(&s->client.sa, client, sizeof(client)));
    log_str("peer", addr_format(&s->peer.sa, peer, sizeof(peer)));
    if (s->sni != NULL && s->sni[0] != '\0')
        log_str("sni", s->sni);
    log_str("backend", b != NULL ? b->conf->name : "-");
    log_str("server", s->srv ? s->srv->name : "-");
    if (s->srv != NULL) {
        char baddr[ADDR_STRLEN];
        log_str("backend_addr", addr_format(&s->baddr.sa, baddr, sizeof(baddr)));
    }
    if (s->nattempts > 0)
        log_u64("attempts", s->nattempts);
    log_u64("bytes_in", s->up.bytes);
    log_u64("bytes_out", s->down.bytes);
    log_u64("duration_ms", loop_now(s->w->loop) - s->start_ms);
    if (s->held_ever)
        log_u64("held_ms", s->held_ms);
    if (s->talked_early)
        log_u64("pregreet", 1);
    log_str("reason", session_end_reason_name(r));
    if (detail != NULL)
        log_str("error", detail);
    log_end();
}

/* The protocol's way to say "come back later" (RFC 5321 4.2.3, RFC 9051 7.1.5, RFC 1939 3). */
static void
say_goodbye(struct session *s)
{
    const char *msg = NULL;
    switch (lconf(s)->proto) {
    case PROTO_SMTP:
    case PROTO_SUBMISSION:
        msg = "421 4.3.2 Service not available, try again later\r\n";
        break;
    case PROTO_IMAP:
        msg = "* BYE Service not available, try again later\r\n";
        break;
    case PROTO_POP3:
        msg = "-ERR Service not available, try again later\r\n";
        break;
    case PROTO_TLS:
    case PROTO_TCP:
        return;
    }
    /* Best effort, once: a client that cannot take 50 bytes gets the close. */
    ssize_t n = send(s->cio.fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        s->down.bytes += (uint64_t)n;
}

static void
count_end(const struct session *s, enum end_reason r)
{
    struct metrics_listener *m = s->l->m;

    m->active--;
    m->ended[r]++;
    m->bytes_in += s->up.bytes;
    m->bytes_out += s->down.bytes;
    if (r == END_PROXY_INVALID)
        m->proxy_errors[METRICS_PROXY_INVALID]++;
    else if (r == END_PROXY_TIMEOUT)
        m->proxy_errors[METRICS_PROXY_TIMEOUT]++;
    else if (r == END_PROXY_UNTRUSTED)
        m->proxy_errors[METRICS_PROXY_UNTRUSTED]++;
}

/* The counters of the server being connected to. */
static struct metrics_server *
trying_metrics(const struct session *s)
{
    return s->backend->srv[s->trying - s->backend->conf->servers].m;
}

static void
count_connect_error(const struct session *s, int err, bool timeout)
{
    struct metrics_server *m = trying_metrics(s);

    if (timeout)
        m->connect_errors[METRICS_CONNECT_TIMEOUT]++;
    else if (err == ECONNREFUSED)
        m->connect_errors[METRICS_CONNECT_REFUSED]++;
    else
        m->connect_errors[METRICS_CONNECT_ERROR]++;
}

/* Takes a HOLDING session off its backend's queue. */
static void
unhold(struct session *s)
{
    struct backend *b = s->backend;
    if (s->hprev)
        s->hprev->hnext = s->hnext;
    else
        b->held_head = s->hnext;
    if (s->hnext)
        s->hnext->hprev = s->hprev;
    else
        b->held_tail = s->hprev;
    s->hprev = s->hnext = NULL;
    b->nheld--;
    b->qm->queued = b->nheld;
    s->held_ms += loop_now(s->w->loop) - s->hold_since_ms;
    loop_timer_cancel(s->w->loop, &s->timer);
}

static void
session_close(struct session *s, enum end_reason r, const char *detail)
{
    if (s->state == SESSION_CLOSED)
        return;
    if (s->state == SESSION_HOLDING)
        unhold(s);
    s->state = SESSION_CLOSED;
    loop_timer_cancel(s->w->loop, &s->timer);
    connector_free(s->conn);
    s->conn = NULL;
    if (s->counted)
        backend_release(s->backend, s->trying);
    close_io(s, &s->bio);
    close_io(s, &s->cio);
    if (s->ticket.counted)
        abuse_release(s->l->abuse, &s->client.sa, &s->ticket);
    relay_half_release(s->w->pool, &s->up);
    relay_half_release(s->w->pool, &s->down);
    log_session(s, r, detail);
    count_end(s, r);
    if (s->prev)
        s->prev->next = s->next;
    else
        s->w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    /* Another event of this batch may still point at us: free afterwards. */
    loop_defer(s->w->loop, &s->defer);
    worker_session_gone(s->w);
}

static void
on_defer(struct defer *d)
{
    struct session *s = container_of(d, struct session, defer);
    if (s->state == SESSION_CLOSED) {
        struct worker *w = s->w;
        struct gen *g = s->gen, *bg = s->bgen;
        free(s);
        worker_gen_release(w, g);
        worker_gen_release(w, bg);
    } else if (s->state == SESSION_RELAYING)
        relay(s);
}

/* --- relaying ------------------------------------------------------------ */

static enum end_reason
side_error(bool client_side)
{
    return client_side ? END_CLIENT_RESET : END_BACKEND_RESET;
}

/* Maps a pump result to a close; returns true when the session ended. */
static bool
pump_failed(struct session *s, enum relay_result r, bool src_is_client)
{
    switch (r) {
    case RELAY_ERR_SRC:
        session_close(s, side_error(src_is_client), strerror(errno));
        return true;
    case RELAY_ERR_DST:
        session_close(s, side_error(!src_is_client), strerror(errno));
        return true;
    case RELAY_ERR_NOMEM:
        session_close(s, END_RESOURCE, "no buffer");
        return true;
    case RELAY_BLOCKED:
    case RELAY_MORE:
    case RELAY_DONE:
        break;
    }
    return false;
}

static void refuse(struct session *s, enum end_reason r, const char *detail);

/*
 * pregreet: until the backend's first bytes reached the client, the client
 * direction is not pumped; bytes the client sent by then are seen with a
 * peek (they stay in the socket) and make it a pre-greet client, counted,
 * and refused with pregreet reject. Returns false when the session ended.
 */
static bool
pregreet_check(struct session *s)
{
    uint8_t byte;
    ssize_t n;

    if (s->down.bytes > 0 || !s->c_rd) {
        s->pg_watch = s->down.bytes == 0;
        return true;
    }
    do {
        n = recv(s->cio.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        s->c_rd = false;
        return true;
    }
    if (n <= 0) {
        /* EOF or an error: not a talker; the relay handles it. */
        s->pg_watch = false;
        return true;
    }
    s->pg_watch = false;
    s->talked_early = true;
    abuse_count_pregreet(s->l->abuse);
    if (lconf(s)->pregreet != PREGREET_REJECT)
        return true;
    abuse_violation(s->l->abuse, &s->client.sa, ABUSE_BAN_PREGREET, loop_now(s->w->loop));
    refuse(s, END_PREGREET, "sent bytes before the greeting");
    return false;
}

static void
relay(struct session *s)
{
    bool hold_up = false;
    if (s->pg_watch) {
        if (!pregreet_check(s))
            return;
        hold_up = s->pg_watch;
    }
    struct relay_end c = {s->cio.fd, s->c_rd, s->c_wr};
    struct relay_end b = {s->bio.fd, s->b_rd, s->b_wr};
    bool moved = false;
    struct relay_pool *pool = s->w->pool;

    enum relay_result ru =
        hold_up ? RELAY_BLOCKED : relay_pump(pool, &s->up, &c, &b, RELAY_BUDGET, &moved);
    enum relay_result rd = RELAY_BLOCKED;
    if (!pump_failed(s, ru, true)) {
        rd = relay_pump(pool, &s->down, &b, &c, RELAY_BUDGET, &moved);
        if (pump_failed(s, rd, false))
            return;
    } else {
        return;
    }
    s->c_rd = c.rd;
    s->c_wr = c.wr;
    s->b_rd = b.rd;
    s->b_wr = b.wr;
    if (moved)
        s->last_ms = loop_now(s->w->loop);
    if (s->first_fin == 0)
        s->first_fin = s->up.eof ? 1 : s->down.eof ? 2 : 0;
    if (s->up.done && s->down.done) {
        session_close(s, s->first_fin == 2 ? END_BACKEND_CLOSED : END_CLIENT_CLOSED, NULL);
        return;
    }
    /* The greeting went out (or the server closed without one): the client's turn. */
    bool greeted = hold_up && (s->down.bytes > 0 || s->down.eof);
    if (greeted)
        s->pg_watch = false;
    if (ru == RELAY_MORE || rd == RELAY_MORE || greeted)
        loop_defer(s->w->loop, &s->defer);
}

/* --- connecting ---------------------------------------------------------- */

static bool
send_proxy_header(struct session *s)
{
    const struct conf_backend *bc = s->backend->conf;
    int version = bc->send_proxy;
    if (version == 0)
        return true;
    /* s->sni is always a checked host name: Dovecot drops the connection
     * on an AUTHORITY that is not a valid DNS name. */
    const char *authority =
        bc->send_authority && s->sni != NULL && s->sni[0] != '\0' ? s->sni : NULL;
    uint8_t hdr[PP_HEADER_MAX];
    size_t n = proxyproto_encode(version == 1 ? PP_V1 : PP_V2, &s->client.sa, &s->local.sa,
                                 authority, hdr, sizeof(hdr));
    if (n == 0) {
        session_close(s, END_RESOURCE, "cannot encode PROXY header");
        return false;
    }
    /* PROXY spec 2: the header goes out in one write; receivers (Postfix,
     * Dovecot) refuse a header split over two segments. A fresh socket
     * always has room, so a short write is an error, not a retry. */
    ssize_t w = send(s->bio.fd, hdr, n, MSG_NOSIGNAL);
    if (w != (ssize_t)n) {
        session_close(s, END_BACKEND_RESET,
                      w == -1 ? strerror(errno) : "short write of the PROXY header");
        return false;
    }
    return true;
}

static void
connected(struct session *s)
{
    s->srv = s->trying;
    metrics_connect_ok(trying_metrics(s), loop_now(s->w->loop) - s->connect_ms);
    if (!send_proxy_header(s))
        return;
    s->state = SESSION_RELAYING;
    s->last_ms = loop_now(s->w->loop);
    loop_timer_at(s->w->loop, &s->timer, s->last_ms + lconf(s)->timeout_idle_ms);
    relay(s);
}

static bool
resource_error(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void
log_attempt(const struct session *s, unsigned nth, const struct sockaddr *sa,
            enum conn_outcome o, int err)
{
    static const char *const names[] = {
        [CONN_WON] = "connected", [CONN_FAILED] = "failed",
        [CONN_TIMED_OUT] = "timeout", [CONN_ABANDONED] = "abandoned"};
    char a[ADDR_STRLEN];

    log_begin(LOG_DEBUG, "connect_attempt");
    log_fmt("id", "%016llx", (unsigned long long)s->id);
    log_str("server", s->trying->name);
    log_u64("n", nth);
    log_str("addr", addr_format(sa, a, sizeof(a)));
    log_str("result", names[o]);
    if (o == CONN_FAILED)
        log_str("error", strerror(err));
    log_end();
}

static void
on_attempt(void *arg, unsigned nth, const struct sockaddr *sa, enum conn_outcome o, int err)
{
    struct session *s = arg;

    if (s->nattempts < UINT16_MAX)
        s->nattempts++;
    if (o == CONN_FAILED || o == CONN_TIMED_OUT)
        count_connect_error(s, err, o == CONN_TIMED_OUT);
    if (log_enabled(LOG_DEBUG))
        log_attempt(s, nth, sa, o, err);
}

/* The connector decided for the server being tried. */
static void
on_connect_done(void *arg, int fd, const struct sockaddr *sa, int err, bool timeout)
{
    struct session *s = arg;

    if (fd >= 0) {
        memset(&s->baddr, 0, sizeof(s->baddr));
        memcpy(&s->baddr, sa,
               sa->sa_family == AF_INET6 ? sizeof(s->baddr.in6) : sizeof(s->baddr.in));
        connector_free(s->conn);
        s->conn = NULL;
        s->bio.fd = fd;
        if (loop_mod(s->w->loop, &s->bio, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == -1) {
            session_close(s, END_RESOURCE, strerror(errno));
            return;
        }
        s->b_wr = true;
        connected(s);
        return;
    }
    backend_release(s->backend, s->trying);
    s->counted = false;
    s->last_err = err;
    s->last_timeout = timeout;
    if (resource_error(err)) {
        say_goodbye(s);
        session_close(s, END_RESOURCE, strerror(err));
        return;
    }
    s->attempt++;
    connect_next(s);
}

static const struct connector_ops connect_ops = {on_attempt, on_connect_done};

/*
 * Connects to the next eligible server of the walk: all its addresses at
 * once by Happy Eyeballs (src/connector.c), timeout connect for the lot;
 * the next server only when every address failed. None left: hold or
 * give up.
 */
static void
connect_next(struct session *s)
{
    struct backend *b = s->backend;
    const struct conf_server *srv;
    while ((srv = backend_server_at(b, s->srv_first, s->attempt)) != NULL) {
        struct sockaddr_storage sa[BACKEND_ADDRS_MAX], ordered[BACKEND_ADDRS_MAX];
        size_t n = 0;
        if (!backend_server_eligible(b, srv)) {
            /* Down by its health check, or a backup while a primary is up:
             * not tried, and not counted as a connect error. */
            s->attempt++;
            continue;
        }
        s->trying = srv;
        while (n < BACKEND_ADDRS_MAX &&
               backend_server_addr(b, srv, n, s->route->port, &sa[n]) == 0)
            n++;
        n = addr_interleave(sa, n, ordered);
        if (n == 0) {
            s->last_err = EDESTADDRREQ;
            s->attempt++;
            continue;
        }
        if (s->conn == NULL && (s->conn = connector_new(s->w->loop, &connect_ops, s)) == NULL) {
            say_goodbye(s);
            session_close(s, END_RESOURCE, "out of memory");
            return;
        }
        s->state = SESSION_CONNECTING;
        s->connect_ms = loop_now(s->w->loop);
        /* The connector's timer stands in for the session's while connecting. */
        loop_timer_cancel(s->w->loop, &s->timer);
        backend_take(b, srv);
        s->counted = true;
        connector_start(s->conn, ordered, n, b->conf->he_delay_ms, b->conf->timeout_connect_ms);
        return;
    }
    connector_free(s->conn);
    s->conn = NULL;
    /* Nothing to wake a held client without a health check: hold only with one. */
    if (holds(b)) {
        hold(s);
        return;
    }
    say_goodbye(s);
    char detail[CONF_NAME_MAX + 64];
    if (s->trying == NULL)
        snprintf(detail, sizeof(detail), "no server of backend %s is up", b->conf->name);
    else
        snprintf(detail, sizeof(detail), "last server %s: %s", s->trying->name,
                 s->last_timeout ? "connect timed out"
                                 : strerror(s->last_err ? s->last_err : ECONNREFUSED));
    session_close(s, s->last_timeout ? END_CONNECT_TIMEOUT : END_CONNECT_REFUSED, detail);
}

/* --- holding ------------------------------------------------------------- */

static void
hold_detail(const struct session *s, char *detail, size_t cap)
{
    const char *name = s->backend->conf->name;
    if (s->trying == NULL || s->last_err == 0)
        snprintf(detail, cap, "no server of backend %s is up", name);
    else
        snprintf(detail, cap, "no server of backend %s answered; last %s: %s", name,
                 s->trying->name, s->last_timeout ? "connect timed out" : strerror(s->last_err));
}

/*
 * A reload replaced the generation of <s>'s backend: <s> uses <nb>, the
 * backend of the same name in the current one, from now on. The server
 * it last tried belongs to the old config: forgotten.
 */
static void
move_backend(struct session *s, struct backend *nb)
{
    struct gen *old = s->bgen;
    s->backend = nb;
    s->trying = NULL;
    if (nb->gen == s->gen) {
        s->bgen = NULL;
    } else {
        s->bgen = nb->gen;
        nb->gen->refs++;
    }
    worker_gen_release(s->w, old);
}

/*
 * No server of the backend could take the session: queue it at the tail of
 * its backend's held list until a server comes up, queue-timeout (counted
 * from the first hold) passes, or the client hangs up.
 */
static void
hold(struct session *s)
{
    struct backend *b = s->backend;
    uint64_t now = loop_now(s->w->loop);
    char detail[CONF_NAME_MAX + 128];

    if (s->c_hup) {
        session_close(s, END_CLIENT_CLOSED, "closed while waiting for a server");
        return;
    }
    if (s->w->draining) {
        say_goodbye(s);
        session_close(s, END_SHUTDOWN, "draining, no server up");
        return;
    }
    if (b->gen != s->w->gen) {
        /* Started before a reload: only the current generation's checks
         * wake held clients, so wait in the backend of the same name. */
        struct backend *nb = gen_backend_by_name(s->w->gen, b->conf->name);
        if (nb == NULL || !holds(nb)) {
            say_goodbye(s);
            session_close(s, END_SHUTDOWN,
                          nb == NULL ? "backend removed by a reload" : "backend no longer holds clients");
            return;
        }
        move_backend(s, nb);
        b = nb;
    }
    uint64_t deadline = (s->held_ever ? s->hold_first_ms : now) + b->conf->queue_timeout_ms;
    if (now >= deadline || b->nheld >= b->conf->queue_max) {
        /* A client turned away by queue-max was never held: no held_ms. */
        hold_detail(s, detail, sizeof(detail));
        say_goodbye(s);
        session_close(s, now >= deadline ? END_QUEUE_TIMEOUT : END_QUEUE_FULL, detail);
        return;
    }
    if (!s->held_ever) {
        s->held_ever = true;
        s->hold_first_ms = now;
    }
    s->state = SESSION_HOLDING;
    s->hold_since_ms = now;
    s->hprev = b->held_tail;
    s->hnext = NULL;
    if (b->held_tail)
        b->held_tail->hnext = s;
    else
        b->held_head = s;
    b->held_tail = s;
    b->nheld++;
    b->qm->queued = b->nheld;
    loop_timer_at(s->w->loop, &s->timer, deadline);
    if (log_enabled(LOG_DEBUG)) {
        log_begin(LOG_DEBUG, "hold");
        log_fmt("id", "%016llx", (unsigned long long)s->id);
        log_str("backend", b->conf->name);
        log_u64("queued", b->nheld);
        log_end();
    }
}

void
session_backend_up(struct backend *b)
{
    /* Only those held now: one whose connect fails at once is queued again
     * at the tail and waits for the next check. */
    size_t n = b->nheld;
    while (n-- > 0 && b->held_head != NULL && backend_servers_up(b) > 0) {
        struct session *s = b->held_head;
        unhold(s);
        s->state = SESSION_CONNECTING;
        s->srv_first = backend_first(b);
        s->attempt = 0;
        s->trying = NULL;
        s->last_err = 0;
        s->last_timeout = false;
        connect_next(s);
    }
}

void
session_drain_held(struct worker *w)
{
    for (size_t i = 0; i < w->conf->nbackends; i++) {
        struct backend *b = &w->backends[i];
        while (b->held_head != NULL) {
            struct session *s = b->held_head;
            say_goodbye(s);
            session_close(s, END_SHUTDOWN, "draining while waiting for a server");
        }
    }
}

void
session_reload_held(struct worker *w, struct gen *old)
{
    for (size_t i = 0; i < old->conf->nbackends; i++) {
        struct backend *b = &old->backends[i];
        struct backend *nb = gen_backend_by_name(w->gen, b->conf->name);
        /* Oldest first: each goes to the tail of its new queue. */
        size_t n = b->nheld;
        while (n-- > 0 && b->held_head != NULL) {
            struct session *s = b->held_head;
            unhold(s);
            if (nb == NULL) {
                say_goodbye(s);
                session_close(s, END_SHUTDOWN, "backend removed by a reload");
                continue;
            }
            move_backend(s, nb);
            /* Its servers may be up already (health carried over, or no
             * check): try them now; else hold() queues it again. */
            s->state = SESSION_CONNECTING;
            s->srv_first = backend_first(nb);
            s->attempt = 0;
            s->last_err = 0;
            s->last_timeout = false;
            connect_next(s);
        }
    }
}

/* Connects to the servers of route <r>. */
static void
start_connect(struct session *s, const struct conf_route *r)
{
    s->route = r;
    s->backend = gen_backend(s->gen, r->backend);
    s->srv_first = backend_first(s->backend);
    s->attempt = 0;
    connect_next(s);
}

/* --- peeking at what the client sent ------------------------------------ */

/*
 * Peeks at up to <cap> bytes from the client, leaving them in the socket.
 * Returns how many; 0 when there is nothing yet (wait for the next edge)
 * or when the session ended: a client that closed before <what> (a bare
 * connect-and-close probe, not an attack) or an error.
 */
static ssize_t
peek_client(struct session *s, uint8_t *buf, size_t cap, const char *what)
{
    ssize_t n;
    do {
        n = recv(s->cio.fd, buf, cap, MSG_PEEK);
    } while (n == -1 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        session_close(s, END_CLIENT_CLOSED, what);
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        s->c_rd = false;
    else
        session_close(s, END_CLIENT_RESET, strerror(errno));
    return 0;
}

/* --- ClientHello --------------------------------------------------------- */

static void
log_hello(const struct session *s, const char *result, const char *why)
{
    if (!log_enabled(LOG_DEBUG))
        return;
    log_begin(LOG_DEBUG, "hello");
    log_fmt("id", "%016llx", (unsigned long long)s->id);
    log_str("result", result);
    if (s->sni != NULL && s->sni[0] != '\0')
        log_str("sni", s->sni);
    if (why != NULL)
        log_str("error", why);
    log_u64("bytes", s->hello_seen);
    log_end();
}

/*
 * Reads away what the client sent (at most twice the hello bound) before a
 * refusal: closing a socket with unread input sends RST, and the client
 * should see the alert and a FIN instead.
 */
static void
discard_peeked(struct session *s)
{
    uint8_t buf[TH_HELLO_MAX];

    for (int i = 0; i < 2; i++) {
        ssize_t n;
        do {
            n = recv(s->cio.fd, buf, sizeof(buf), MSG_DONTWAIT);
        } while (n == -1 && errno == EINTR);
        if (n < (ssize_t)sizeof(buf))
            break;
    }
}

/*
 * Refuses a client whose ClientHello was well formed with a fatal alert in
 * the clear, as a server would before its ServerHello: unrecognized_name
 * when it sent a name (RFC 6066 3), handshake_failure when it sent none
 * (RFC 8446 6.2). Best effort, once, like say_goodbye().
 */
static void
refuse_tls(struct session *s, const struct th_hello *h)
{
    uint8_t alert[] = {21, 3, 3, 0, 2, 2, h->has_sni ? 112 : 40};

    discard_peeked(s);
    ssize_t n = send(s->cio.fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        s->down.bytes += (uint64_t)n;
}

/*
 * The hello is parsed (or is not TLS at all): pick the route. No usable
 * server name goes to the default route, or is refused with sni-required.
 */
static void
hello_done(struct session *s, enum th_result r, const struct th_hello *h, const char *why)
{
    const struct conf_listener *lc = lconf(s);
    const char *sni = NULL;

    if (r == TH_OK && h->has_sni) {
        if (tlshello_host_name(h->sni, h->sni_len, s->sni, TH_HOST_MAX) > 0)
            sni = s->sni;
        else
            why = "server name is not a host name";
    } else if (r == TH_OK) {
        why = "no server name in the ClientHello";
    }
    log_hello(s, r == TH_OK ? "ok" : r == TH_NOT_TLS ? "not_tls" : "invalid", why);
    if (sni == NULL && lc->sni_required) {
        if (r == TH_OK)
            refuse_tls(s, h);
        else
            discard_peeked(s);
        session_close(s, END_SNI_REQUIRED, why);
        return;
    }
    const struct conf_route *route = conf_listener_route(lc, sni);
    if (route == NULL) {
        refuse_tls(s, h);
        session_close(s, END_SNI_NO_ROUTE, NULL);
        return;
    }
    start_connect(s, route);
}

/*
 * Peeks at the ClientHello: the bytes stay in the socket and reach the
 * backend untouched, like the bytes after an inbound PROXY header. The
 * hello is re-parsed from the start on each arrival; with edge-triggered
 * epoll, NEED_MORE waits for the next segment.
 */
static void
peek_hello(struct session *s)
{
    uint8_t buf[TH_HELLO_MAX];
    int avail = 0;
    ssize_t n;

    /* Until the bytes the last parse asked for are there, a segment costs an
     * ioctl, not a 16 KiB peek and parse: a client dribbling one byte at a
     * time cannot make us re-parse its hello thousands of times. */
    if (s->hello_need > 0 && !s->c_hup && ioctl(s->cio.fd, FIONREAD, &avail) == 0 &&
        avail >= 0 && (size_t)avail < s->hello_need) {
        s->hello_seen = (size_t)avail;
        s->c_rd = false;
        return;
    }
    n = peek_client(s, buf, sizeof(buf), "closed before sending a ClientHello");
    if (n == 0)
        return;
    s->hello_seen = (size_t)n;
    struct th_hello h;
    const char *why = NULL;
    enum th_result r = tlshello_parse(buf, (size_t)n, &h, &why);
    if (r == TH_NEED_MORE) {
        if (s->c_hup) {
            discard_peeked(s);
            session_close(s, END_CLIENT_CLOSED, "closed in the middle of its ClientHello");
            return;
        }
        s->hello_need = h.need;
        s->c_rd = false; /* edge-triggered: the next segment wakes us */
        return;
    }
    hello_done(s, r, &h, why);
}

/* --- abuse control ------------------------------------------------------ */

/*
 * Refuses the client with the protocol's answer and closes: no backend
 * connection is made (or, for pregreet, it is dropped). What the client
 * sent is read away first, so the close is a FIN and the answer arrives.
 */
static void
refuse(struct session *s, enum end_reason r, const char *detail)
{
    const char *msg = NULL;
    bool ban = r == END_BANNED || r == END_PREGREET;

    switch (lconf(s)->proto) {
    case PROTO_SMTP:
    case PROTO_SUBMISSION:
        msg = r == END_PREGREET ? "554 5.7.1 Protocol error: talked before the greeting\r\n"
              : ban             ? "554 5.7.1 Access denied\r\n"
                                : "421 4.7.0 Too many connections, try again later\r\n";
        break;
    case PROTO_IMAP:
        msg = ban ? "* BYE Access denied\r\n"
                  : "* BYE Too many connections, try again later\r\n";
        break;
    case PROTO_POP3:
        msg = ban ? "-ERR Access denied\r\n"
                  : "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
        break;
    case PROTO_TLS:
    case PROTO_TCP:
        break;
    }
    discard_peeked(s);
    if (s->bio.fd >= 0) {
        /* pregreet: the server's greeting may wait unread; closing over it would reset. */
        uint8_t buf[4096];
        for (int i = 0; i < 4 && recv(s->bio.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
            ;
    }
    if (msg != NULL) {
        ssize_t n = send(s->cio.fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            s->down.bytes += (uint64_t)n;
    }
    session_close(s, r, detail);
}

/* The client's address is final: limits and bans. False when refused. */
static bool
admit(struct session *s)
{
    static const enum end_reason reasons[ABUSE_VERDICT_COUNT] = {
        [ABUSE_PER_IP] = END_LIMIT_PER_IP,
        [ABUSE_RATE] = END_LIMIT_RATE,
        [ABUSE_BANNED] = END_BANNED,
    };
    enum abuse_verdict v =
        abuse_admit(s->l->abuse, &s->client.sa, loop_now(s->w->loop), &s->ticket);

    if (v == ABUSE_ADMIT) {
        s->pg_watch = lconf(s)->pregreet != PREGREET_OFF;
        return true;
    }
    refuse(s, reasons[v], NULL);
    return false;
}

/* After the accept, or after the inbound PROXY header. */
static void
begin(struct session *s)
{
    const struct conf_listener *lc = lconf(s);

    if (!admit(s))
        return;
    if (!lc->peek_hello) {
        /* Server-first or not, never wait for the client: connect now. */
        start_connect(s, &lc->route);
        return;
    }
    s->state = SESSION_PEEK_HELLO;
    loop_timer_at(s->w->loop, &s->timer, loop_now(s->w->loop) + lc->timeout_hello_ms);
    /* The hello may have come with the PROXY header: no new edge for it. */
    if (s->c_rd)
        peek_hello(s);
}

/* --- inbound PROXY header ------------------------------------------------ */

static void
read_proxy(struct session *s)
{
    uint8_t buf[PP_HEADER_MAX];
    ssize_t n;
    /* Peek, so that the bytes after the header stay in the socket and are
     * relayed like any other client byte (splice needs them there). */
    n = peek_client(s, buf, sizeof(buf), "closed before sending a PROXY header");
    if (n == 0)
        return;
    struct pp_header hdr;
    size_t consumed = 0;
    const char *why = NULL;
    switch (proxyproto_decode(buf, (size_t)n, lconf(s)->accept_proxy, &hdr, &consumed, &why)) {
    case PP_NEED_MORE:
        if (s->c_hup) {
            session_close(s, END_PROXY_INVALID, "truncated PROXY header");
            return;
        }
        s->c_rd = false; /* edge-triggered: the next segment wakes us */
        return;
    case PP_NOT_PROXY:
        session_close(s, END_PROXY_INVALID, "no PROXY header");
        return;
    case PP_INVALID:
        session_close(s, END_PROXY_INVALID, why ? why : "invalid PROXY header");
        return;
    case PP_OK:
        break;
    }
    /* Consume exactly the header; it is already in the socket buffer. */
    ssize_t r;
    do {
        r = recv(s->cio.fd, buf, consumed, 0);
    } while (r == -1 && errno == EINTR);
    if (r != (ssize_t)consumed) {
        session_close(s, END_CLIENT_RESET, r == -1 ? strerror(errno) : "short read");
        return;
    }
    if (!hdr.local) {
        /* A TCP6 header may carry ::ffff:a.b.c.d: the client is IPv4. */
        addr_unmap(&hdr.src);
        addr_unmap(&hdr.dst);
        sa_store(&s->client, &hdr.src);
        sa_store(&s->local, &hdr.dst);
    }
    begin(s);
}

/* --- events -------------------------------------------------------------- */

static void
on_timer(struct timer *t)
{
    struct session *s = container_of(t, struct session, timer);
    struct loop *loop = s->w->loop;
    switch (s->state) {
    case SESSION_READ_PROXY:
        session_close(s, END_PROXY_TIMEOUT, NULL);
        break;
    case SESSION_PEEK_HELLO: {
        char detail[64];
        if (s->hello_seen == 0)
            snprintf(detail, sizeof(detail), "no bytes from the client");
        else
            snprintf(detail, sizeof(detail), "incomplete ClientHello, %zu bytes",
                     s->hello_seen);
        discard_peeked(s);
        session_close(s, END_HELLO_TIMEOUT, detail);
        break;
    }
    case SESSION_HOLDING: {
        char detail[CONF_NAME_MAX + 128];
        hold_detail(s, detail, sizeof(detail));
        say_goodbye(s);
        session_close(s, END_QUEUE_TIMEOUT, detail);
        break;
    }
    case SESSION_CONNECTING:
        break; /* the connector's timer runs the connect (src/connector.c) */
    case SESSION_RELAYING: {
        uint64_t deadline = s->last_ms + lconf(s)->timeout_idle_ms;
        if (loop_now(loop) >= deadline)
            session_close(s, END_IDLE_TIMEOUT, NULL);
        else
            loop_timer_at(loop, &s->timer, deadline);
        break;
    }
    case SESSION_CLOSED:
        break;
    }
}

static void
on_client(struct io *io, uint32_t ev)
{
    struct session *s = container_of(io, struct session, cio);
    if (s->state == SESSION_CLOSED)
        return;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->c_rd = true;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->c_wr = true;
    if (ev & (EPOLLRDHUP | EPOLLHUP))
        s->c_hup = true;
    switch (s->state) {
    case SESSION_READ_PROXY:
        if (s->c_rd)
            read_proxy(s);
        break;
    case SESSION_PEEK_HELLO:
        if (s->c_rd)
            peek_hello(s);
        break;
    case SESSION_HOLDING:
        /* What the client sends stays in the socket for the backend; a
         * client that gives up leaves the queue now. */
        if (ev & EPOLLERR) {
            int err = sock_error(s->cio.fd);
            session_close(s, END_CLIENT_RESET, strerror(err ? err : ECONNRESET));
        } else if (s->c_hup) {
            session_close(s, END_CLIENT_CLOSED, "closed while waiting for a server");
        }
        break;
    case SESSION_CONNECTING:
        /* Even if the client is gone, finish the connect and send the
         * header: the kernel may have completed the connection already,
         * and a server-side PROXY listener that gets a bare close logs a
         * warning (Postfix: "haproxy read: EOF"). The relay then sees the
         * client's error and ends the session. */
        break;
    case SESSION_RELAYING:
        relay(s);
        break;
    case SESSION_CLOSED:
        break;
    }
}

static void
on_backend(struct io *io, uint32_t ev)
{
    struct session *s = container_of(io, struct session, bio);
    if (s->state == SESSION_CLOSED)
        return;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->b_rd = true;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->b_wr = true;
    switch (s->state) {
    case SESSION_RELAYING:
        relay(s);
        break;
    case SESSION_READ_PROXY:
    case SESSION_PEEK_HELLO:
    case SESSION_HOLDING:
    case SESSION_CONNECTING: /* the socket is the session's once connected */
    case SESSION_CLOSED:
        break;
    }
}

void
session_start(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
    struct worker *w = l->w;
    /* Two timers per session (its own, and its connector's while
     * connecting), plus the listeners' and the worker's own. */
    struct session *s = NULL;
    bool peek = l->conf->peek_hello;
    if (!fault_hit(FAULT_TIMER) &&
        loop_timer_reserve(w->loop, 2 * (w->nsessions + 1) + w->nlisteners + WORKER_TIMERS +
                                        w->nchecks + w->nresolve_timers) == 0 &&
        !fault_hit(FAULT_SESSION))
        s = calloc(1, sizeof(*s) + (peek ? TH_HOST_MAX : 0));
    if (s == NULL) {
        close(fd);
        log_warnx("listener %s: out of memory for a new session", l->conf->name);
        return;
    }
    s->w = w;
    s->l = l;
    s->gen = l->gen;
    s->gen->refs++;
    s->sni = peek ? s->tail : NULL;
    s->cio = (struct io){.fd = fd, .cb = on_client};
    s->bio = (struct io){.fd = -1, .cb = on_backend};
    bool copy = !w->conf->global.splice;
    relay_half_init(&s->up, copy);
    relay_half_init(&s->down, copy);
    timer_init(&s->timer, on_timer);
    defer_init(&s->defer, on_defer);
    s->id = w->id_seed + w->id_next++;
    s->start_ms = loop_now(w->loop);
    sa_store(&s->peer, peer);
    s->client = s->peer;
    if (l->wildcard) {
        struct sockaddr_storage local;
        if (sock_local(fd, &local) == 0)
            sa_store(&s->local, &local);
    } else {
        sa_store(&s->local, &l->bind->addr);
    }
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    w->nsessions++;
    l->m->active++;

    if (loop_add(w->loop, &s->cio, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == -1) {
        session_close(s, END_RESOURCE, strerror(errno));
        return;
    }
    const struct conf_listener *lc = l->conf;
    if (lc->accept_proxy == 0) {
        begin(s);
        return;
    }
    if (!cidr_match_any(lc->trusted, lc->ntrusted, &s->peer.sa)) {
        session_close(s, END_PROXY_UNTRUSTED, NULL);
        return;
    }
    s->state = SESSION_READ_PROXY;
    loop_timer_at(w->loop, &s->timer, s->start_ms + lc->timeout_proxy_ms);
}

void
session_cut_all(struct worker *w)
{
    while (w->sessions != NULL)
        session_close(w->sessions, END_SHUTDOWN, NULL);
}
