/*
 * session: the per-connection state machine.
 *
 *   accept -> [READ_PROXY] -> CONNECTING -> RELAYING -> CLOSED
 *                                  ^   |
 *                                  +---+  next server on refusal/timeout
 *
 * Both sockets are registered once, edge-triggered, for input and output;
 * readiness is cached in the session and cleared by the relay on EAGAIN,
 * so the data path makes no epoll_ctl calls at all.
 */
#include "session.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "proxyproto.h"
#include "relay.h"
#include "sock.h"
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
    struct worker *w;
    struct listener *l;
    struct io cio, bio;                /* client, backend */
    struct relay_half up, down;        /* client->backend, backend->client */
    struct timer timer;
    struct defer defer;                /* deferred free, or relay continuation */
    enum session_state state;
    bool c_rd, c_wr, c_hup, b_rd, b_wr;
    uint8_t first_fin;                 /* 0 none, 1 client, 2 backend */
    int last_err;                      /* errno of the last failed connect */
    bool last_timeout;                 /* the last failed connect timed out */
    size_t srv_first, attempt;
    const struct conf_server *trying;  /* the server being connected to */
    const struct conf_server *srv;     /* the server connected to, for the log */
    uint64_t id, start_ms, last_ms;
    union sa client, peer, local;
};

static const char *const end_reason_names[] = {
    [END_CLIENT_CLOSED] = "client_closed",     [END_BACKEND_CLOSED] = "backend_closed",
    [END_CLIENT_RESET] = "client_reset",       [END_BACKEND_RESET] = "backend_reset",
    [END_IDLE_TIMEOUT] = "idle_timeout",       [END_CONNECT_REFUSED] = "connect_refused",
    [END_CONNECT_TIMEOUT] = "connect_timeout", [END_PROXY_TIMEOUT] = "proxy_timeout",
    [END_PROXY_INVALID] = "proxy_invalid",     [END_PROXY_UNTRUSTED] = "proxy_untrusted",
    [END_SHUTDOWN] = "shutdown",               [END_RESOURCE] = "resource",
};

const char *
session_end_reason_name(enum end_reason r)
{
    if ((size_t)r < sizeof(end_reason_names) / sizeof(end_reason_names[0]) &&
        end_reason_names[r] != NULL)
        return end_reason_names[r];
    return "unknown";
}

static void session_close(struct session *s, enum end_reason r, const char *detail);
static void connect_next(struct session *s);
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
    const struct backend *b = s->l->backend;
    log_begin(LOG_INFO, "session");
    log_fmt("id", "%016llx", (unsigned long long)s->id);
    log_str("listener", lconf(s)->name);
    log_str("client", addr_format(&s->client.sa, client, sizeof(client)));
    log_str("peer", addr_format(&s->peer.sa, peer, sizeof(peer)));
    log_str("backend", b->conf->name);
    log_str("server", s->srv ? s->srv->name : "-");
    log_u64("bytes_in", s->up.bytes);
    log_u64("bytes_out", s->down.bytes);
    log_u64("duration_ms", loop_now(s->w->loop) - s->start_ms);
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
session_close(struct session *s, enum end_reason r, const char *detail)
{
    if (s->state == SESSION_CLOSED)
        return;
    s->state = SESSION_CLOSED;
    loop_timer_cancel(s->w->loop, &s->timer);
    close_io(s, &s->bio);
    close_io(s, &s->cio);
    relay_half_release(s->w->pool, &s->up);
    relay_half_release(s->w->pool, &s->down);
    log_session(s, r, detail);
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
    if (s->state == SESSION_CLOSED)
        free(s);
    else if (s->state == SESSION_RELAYING)
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

static void
relay(struct session *s)
{
    struct relay_end c = {s->cio.fd, s->c_rd, s->c_wr};
    struct relay_end b = {s->bio.fd, s->b_rd, s->b_wr};
    bool moved = false;
    struct relay_pool *pool = s->w->pool;

    enum relay_result ru = relay_pump(pool, &s->up, &c, &b, RELAY_BUDGET, &moved);
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
    if (ru == RELAY_MORE || rd == RELAY_MORE)
        loop_defer(s->w->loop, &s->defer);
}

/* --- connecting ---------------------------------------------------------- */

static bool
send_proxy_header(struct session *s)
{
    int version = s->l->backend->conf->send_proxy;
    if (version == 0)
        return true;
    uint8_t hdr[PP_HEADER_MAX];
    size_t n = proxyproto_encode(version == 1 ? PP_V1 : PP_V2, &s->client.sa, &s->local.sa,
                                 NULL, hdr, sizeof(hdr));
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
    if (!send_proxy_header(s))
        return;
    s->state = SESSION_RELAYING;
    s->last_ms = loop_now(s->w->loop);
    loop_timer_at(s->w->loop, &s->timer, s->last_ms + lconf(s)->timeout_idle_ms);
    relay(s);
}

static void
connect_failed(struct session *s, int err, bool timeout)
{
    close_io(s, &s->bio);
    s->b_rd = s->b_wr = false;
    s->last_err = err;
    s->last_timeout = timeout;
    s->attempt++;
    connect_next(s);
}

static void
connect_next(struct session *s)
{
    struct backend *b = s->l->backend;
    const struct conf_server *srv;
    while ((srv = backend_server_at(b, s->srv_first, s->attempt)) != NULL) {
        struct sockaddr_storage sa;
        s->trying = srv;
        if (backend_server_addr(srv, lconf(s)->route.port, &sa) == -1) {
            s->last_err = EDESTADDRREQ;
            s->attempt++;
            continue;
        }
        int fd = sock_connect((struct sockaddr *)&sa, NULL);
        if (fd == -1) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                session_close(s, END_RESOURCE, strerror(errno));
                return;
            }
            s->last_err = errno;
            s->last_timeout = false;
            s->attempt++;
            continue;
        }
        s->bio.fd = fd;
        if (loop_add(s->w->loop, &s->bio, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == -1) {
            session_close(s, END_RESOURCE, strerror(errno));
            return;
        }
        s->state = SESSION_CONNECTING;
        loop_timer_at(s->w->loop, &s->timer,
                      loop_now(s->w->loop) + b->conf->timeout_connect_ms);
        return;
    }
    say_goodbye(s);
    char detail[CONF_NAME_MAX + 64];
    snprintf(detail, sizeof(detail), "last server %s: %s", s->trying ? s->trying->name : "-",
             s->last_timeout ? "connect timed out"
                             : strerror(s->last_err ? s->last_err : ECONNREFUSED));
    session_close(s, s->last_timeout ? END_CONNECT_TIMEOUT : END_CONNECT_REFUSED, detail);
}

static void
start_connect(struct session *s)
{
    s->srv_first = backend_first(s->l->backend);
    s->attempt = 0;
    connect_next(s);
}

/* --- inbound PROXY header ------------------------------------------------ */

static void
read_proxy(struct session *s)
{
    uint8_t buf[PP_HEADER_MAX];
    ssize_t n;
    /* Peek, so that the bytes after the header stay in the socket and are
     * relayed like any other client byte (splice needs them there). */
    do {
        n = recv(s->cio.fd, buf, sizeof(buf), MSG_PEEK);
    } while (n == -1 && errno == EINTR);
    if (n == 0) {
        /* Connect and close: a port scanner or a bare TCP probe, not an attack. */
        session_close(s, END_CLIENT_CLOSED, "closed before sending a PROXY header");
        return;
    }
    if (n == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            s->c_rd = false;
            return;
        }
        session_close(s, END_CLIENT_RESET, strerror(errno));
        return;
    }
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
    start_connect(s);
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
    case SESSION_CONNECTING:
        connect_failed(s, ETIMEDOUT, true);
        break;
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
    case SESSION_CONNECTING:
        /* A client that vanished entirely is not worth the connect. */
        if (ev & (EPOLLERR | EPOLLHUP))
            session_close(s, END_CLIENT_RESET, "client gone while connecting");
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
    case SESSION_CONNECTING: {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            break;
        int err = sock_error(s->bio.fd);
        if (err != 0) {
            connect_failed(s, err, false);
            break;
        }
        connected(s);
        break;
    }
    case SESSION_RELAYING:
        relay(s);
        break;
    case SESSION_READ_PROXY:
    case SESSION_CLOSED:
        break;
    }
}

void
session_start(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
    struct worker *w = l->w;
    /* One timer per session, plus the listeners' and the drain timer. */
    struct session *s = NULL;
    if (loop_timer_reserve(w->loop, w->nsessions + w->nlisteners + 2) == 0)
        s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        log_warnx("listener %s: out of memory for a new session", l->conf->name);
        return;
    }
    s->w = w;
    s->l = l;
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

    if (loop_add(w->loop, &s->cio, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == -1) {
        session_close(s, END_RESOURCE, strerror(errno));
        return;
    }
    const struct conf_listener *lc = l->conf;
    if (lc->accept_proxy == 0) {
        /* Server-first or not, never wait for the client: connect now. */
        start_connect(s);
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
