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
 *
 * This file has the states, the events and the one close; the work of
 * some states is in its own file (session_int.h lists them).
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

#include "abuse.h"
#include "backend.h"
#include "conf.h"
#include "connector.h"
#include "fault.h"
#include "gen.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "relay.h"
#include "session_int.h"
#include "sock.h"
#include "tlshello.h"
#include "util.h"
#include "worker.h"

/* Bytes one direction may move per wake-up before yielding to others. */
#define RELAY_BUDGET ((size_t)256 * 1024)

/* Lingering close: how long and how much we read away from a client we
 * hung up on, and how many such clients at once (docs/security.md). */
#define LINGER_MS 2000
#define LINGER_BYTES ((uint32_t)64 * 1024)
#define LINGER_MAX 1024

static void
close_io(struct io *io)
{
    if (io->fd < 0)
        return;
    /* No EPOLL_CTL_DEL: the descriptor is never duplicated, so close()
     * takes it out of the epoll set, and a session saves two syscalls. */
    close(io->fd);
    io->fd = -1;
}

void
session_set_state(struct session *s, enum session_state st)
{
    if (log_enabled(LOG_DEBUG)) {
        log_begin(LOG_DEBUG, "session_state");
        log_hex("id", s->id, 16);
        log_str("from", session_state_name(s->state));
        log_str("to", session_state_name(st));
        log_end();
    }
    s->state = st;
}

void
session_tell(struct session *s, const char *msg)
{
    if (msg == NULL)
        return;
    /* Best effort, once: a client that cannot take a line gets the close. */
    ssize_t n = send(s->cio.fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        s->down.bytes += (uint64_t)n;
}

/* The protocol's way to say "come back later" (RFC 5321 4.2.3, RFC 9051 7.1.5, RFC 1939 3). */
void
session_say_goodbye(struct session *s)
{
    session_tell(s, conf_proto_goodbye(lconf(s)->proto));
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

/*
 * Reads away what the client sent, up to what the linger allows. Returns
 * true when the socket can be closed now (EOF, an error, the bytes spent),
 * false when it would block.
 */
static bool
linger_read(struct session *s)
{
    uint8_t buf[4096];

    while (s->linger_left > 0) {
        size_t want = s->linger_left < sizeof(buf) ? s->linger_left : sizeof(buf);
        ssize_t n = recv(s->cio.fd, buf, want, MSG_DONTWAIT);
        if (n > 0) {
            s->linger_left -= (uint32_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        return !(n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    return true;
}

/*
 * Hanging up on a client (a goodbye, a refusal, a timeout before the
 * relay): close() over unread input sends RST, and the client may lose
 * the goodbye. So: FIN after what we sent, read away what the client sent
 * and close when it closes too, within LINGER_MS and LINGER_BYTES. A
 * client that sent nothing is closed at once (nothing unread, so a FIN).
 * Returns true when the session now lingers (its socket still open).
 */
static bool
linger_start(struct session *s, enum session_state was, enum end_reason r)
{
    if (s->cio.fd < 0 || r == END_CLIENT_RESET || s->w->nlinger >= LINGER_MAX)
        return false;
    /* While relaying, bytes flowed both ways already: close as usual. */
    if (was == SESSION_RELAYING && r != END_PREGREET)
        return false;
    if (shutdown(s->cio.fd, SHUT_WR) == -1)
        return false;
    s->linger_left = LINGER_BYTES;
    if (linger_read(s) || s->linger_left == LINGER_BYTES)
        return false;
    s->lingering = true;
    s->w->nlinger++;
    loop_timer_at(s->w->loop, &s->timer, loop_now(s->w->loop) + LINGER_MS);
    return true;
}

/* Off the worker's list; freed after the batch. */
static void
session_release(struct session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    /* Another event of this batch may still point at us: free afterwards. */
    loop_defer(s->w->loop, &s->defer);
    loop_timer_release(s->w->loop, SESSION_TIMERS);
    worker_session_gone(s->w);
}

static void
linger_end(struct session *s)
{
    loop_timer_cancel(s->w->loop, &s->timer);
    close_io(&s->cio);
    s->lingering = false;
    s->w->nlinger--;
    session_release(s);
}

void
session_close(struct session *s, enum end_reason r, const char *detail)
{
    if (s->state == SESSION_CLOSED) {
        /* Logged and counted already; a drain cutting sessions ends the linger. */
        if (s->lingering)
            linger_end(s);
        return;
    }
    enum session_state was = s->state;
    if (s->state == SESSION_HOLDING)
        session_unhold(s);
    session_set_state(s, SESSION_CLOSED);
    loop_timer_cancel(s->w->loop, &s->timer);
    connector_free(s->conn);
    s->conn = NULL;
    if (s->counted)
        backend_release(s->backend, s->trying);
    close_io(&s->bio);
    bool lingers = linger_start(s, was, r);
    if (!lingers)
        close_io(&s->cio);
    if (s->ticket.counted)
        abuse_release(s->l->abuse, &s->client.sa, &s->ticket);
    relay_half_release(s->w->pool, &s->up);
    relay_half_release(s->w->pool, &s->down);
    session_log(s, r, detail);
    s->remote_ban = NULL; /* the set may change before the session is freed */
    count_end(s, r);
    if (!lingers)
        session_release(s);
}

static void
on_defer(struct defer *d)
{
    struct session *s = container_of(d, struct session, defer);
    if (s->lingering)
        return; /* a relay continuation queued before the close; linger_end() queues the free */
    if (s->state == SESSION_CLOSED) {
        struct worker *w = s->w;
        struct gen *g = s->gen, *bg = s->bgen;
        free(s);
        gen_release(w, g);
        gen_release(w, bg);
    } else if (s->state == SESSION_RELAYING)
        session_relay(s);
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

void
session_relay(struct session *s)
{
    bool hold_up = false;
    if (s->pg_watch) {
        if (!session_pregreet_check(s))
            return;
        hold_up = s->pg_watch;
    }
    /* .closes: once both directions are done, both sockets are closed at
     * once; set for each just before it is a destination. */
    struct relay_end c = {s->cio.fd, s->c_rd, s->c_wr, s->c_fin, s->c_wary, false};
    struct relay_end b = {s->bio.fd, s->b_rd, s->b_wr, s->b_fin, s->b_wary, s->down.done};
    bool moved = false;
    struct relay_pool *pool = s->w->pool;

    enum relay_result ru =
        hold_up ? RELAY_BLOCKED : relay_pump(pool, &s->up, &c, &b, RELAY_BUDGET, &moved);
    enum relay_result rd = RELAY_BLOCKED;
    if (!pump_failed(s, ru, true)) {
        c.closes = s->up.done;
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

/* After the accept, or after the inbound PROXY header. */
void
session_begin(struct session *s)
{
    const struct conf_listener *lc = lconf(s);

    if (!session_admit(s))
        return;
    if (!lc->peek_hello) {
        /* Server-first or not, never wait for the client: connect now. */
        session_start_connect(s, &lc->route);
        return;
    }
    session_set_state(s, SESSION_PEEK_HELLO);
    loop_timer_at(s->w->loop, &s->timer, loop_now(s->w->loop) + lc->timeout_hello_ms);
    /* The hello may have come with the PROXY header: no new edge for it. */
    if (s->c_rd)
        session_peek_hello(s);
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
        session_discard_peeked(s);
        session_close(s, END_HELLO_TIMEOUT, detail);
        break;
    }
    case SESSION_HOLDING: {
        char detail[CONF_NAME_MAX + 128];
        session_hold_detail(s, detail, sizeof(detail));
        session_say_goodbye(s);
        session_close(s, END_QUEUE_TIMEOUT, detail);
        break;
    }
    case SESSION_CONNECTING:
        break; /* the connector's timer runs the connect (src/edge/connector.c) */
    case SESSION_CLOSED:
        if (s->lingering)
            linger_end(s);
        break;
    case SESSION_RELAYING: {
        uint64_t deadline = s->last_ms + lconf(s)->timeout_idle_ms;
        if (loop_now(loop) >= deadline)
            session_close(s, END_IDLE_TIMEOUT, NULL);
        else
            loop_timer_at(loop, &s->timer, deadline);
        break;
    }
    }
}

static void
on_client(struct io *io, uint32_t ev)
{
    struct session *s = container_of(io, struct session, cio);
    if (s->state == SESSION_CLOSED) {
        if (s->lingering && linger_read(s))
            linger_end(s);
        return;
    }
    if (ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->c_rd = true;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->c_wr = true;
    if (ev & (EPOLLRDHUP | EPOLLHUP))
        s->c_hup = true;
    if (ev & EPOLLRDHUP)
        s->c_fin = true;
    if (ev & (EPOLLPRI | EPOLLHUP | EPOLLERR))
        s->c_wary = true;
    switch (s->state) {
    case SESSION_READ_PROXY:
        if (s->c_rd)
            session_read_proxy(s);
        break;
    case SESSION_PEEK_HELLO:
        if (s->c_rd)
            session_peek_hello(s);
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
        session_relay(s);
        break;
    case SESSION_CLOSED:
        break;
    }
}

void
session_backend_events(struct session *s, uint32_t ev)
{
    if (ev & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->b_rd = true;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->b_wr = true;
    if (ev & EPOLLRDHUP)
        s->b_fin = true;
    if (ev & (EPOLLPRI | EPOLLHUP | EPOLLERR))
        s->b_wary = true;
}

static void
on_backend(struct io *io, uint32_t ev)
{
    struct session *s = container_of(io, struct session, bio);
    switch (s->state) {
    case SESSION_CONNECTING:
        /* The connector's first attempt, registered with our io: its
         * events are the connector's. Noted first: when it wins, the
         * relay starts at once and needs them (a failed attempt's are
         * cleared before the next connect). */
        session_backend_events(s, ev);
        if (s->conn != NULL)
            connector_io(s->conn, ev);
        break;
    case SESSION_RELAYING:
        session_backend_events(s, ev);
        session_relay(s);
        break;
    case SESSION_READ_PROXY:
    case SESSION_PEEK_HELLO:
    case SESSION_HOLDING:
    case SESSION_CLOSED:
        break;
    }
}

void
session_start(struct listener *l, int fd, const struct sockaddr_storage *peer)
{
    struct worker *w = l->w;
    struct session *s = NULL;
    bool peek = l->conf->peek_hello;
    bool reserved = !fault_hit(FAULT_TIMER) && loop_timer_reserve(w->loop, SESSION_TIMERS) == 0;
    if (reserved && !fault_hit(FAULT_SESSION))
        s = calloc(1, sizeof(*s) + (peek ? TH_HOST_MAX : 0));
    if (s == NULL) {
        if (reserved)
            loop_timer_release(w->loop, SESSION_TIMERS);
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
    static const enum relay_mode modes[] = {[CONF_SPLICE_OFF] = RELAY_COPY,
                                            [CONF_SPLICE_ON] = RELAY_SPLICE,
                                            [CONF_SPLICE_AUTO] = RELAY_AUTO};
    relay_half_init(&s->up, modes[w->conf->global.splice]);
    relay_half_init(&s->down, modes[w->conf->global.splice]);
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
    w->proc->sessions = w->nsessions; /* for worker 0's /status and /metrics */
    l->m->active++;

    if (loop_add(w->loop, &s->cio, EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET) == -1) {
        session_close(s, END_RESOURCE, strerror(errno));
        return;
    }
    const struct conf_listener *lc = l->conf;
    if (lc->accept_proxy == 0) {
        session_begin(s);
        return;
    }
    if (!cidr_match_any(lc->trusted, lc->ntrusted, &s->peer.sa)) {
        session_close(s, END_PROXY_UNTRUSTED, NULL);
        return;
    }
    session_set_state(s, SESSION_READ_PROXY);
    loop_timer_at(w->loop, &s->timer, s->start_ms + lc->timeout_proxy_ms);
}

void
session_cut_all(struct worker *w)
{
    while (w->sessions != NULL)
        session_close(w->sessions, END_SHUTDOWN, NULL);
}
