/*
 * session_connect: CONNECTING. The route's backend picks the server, the
 * connector (src/edge/connector.c) races its addresses, the next server on
 * failure; the winner gets the outbound PROXY header, then the relay.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "connector.h"
#include "gen.h"
#include "healthshare.h"
#include "log.h"
#include "loop.h"
#include "ownaddr.h"
#include "proxyproto.h"
#include "resolve.h"
#include "session_int.h"
#include "sock.h"
#include "util.h"
#include "worker.h"

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
    session_set_state(s, SESSION_RELAYING);
    s->last_ms = loop_now(s->w->loop);
    loop_timer_at(s->w->loop, &s->timer, s->last_ms + lconf(s)->timeout_idle_ms);
    session_relay(s);
}

static void
log_attempt(const struct session *s, unsigned nth, const struct sockaddr *sa,
            enum conn_outcome o, int err)
{
    log_begin(LOG_DEBUG, "connect_attempt");
    log_hex("id", s->id, 16);
    log_str("server", s->trying->name);
    connector_log_attempt(nth, sa, o, err);
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
    else if (o == CONN_ABANDONED)
        trying_metrics(s)->attempts_abandoned++;
    if (log_enabled(LOG_DEBUG))
        log_attempt(s, nth, sa, o, err);
}

/* The server being tried, its runtime state. */
static struct backend_server *
trying_state(const struct session *s)
{
    return &s->backend->srv[s->trying - s->backend->conf->servers];
}

static const char *
family_name(int af)
{
    return af == AF_INET6 ? "ipv6" : "ipv4";
}

/*
 * Happy Eyeballs memory (RFC 8305 allows it): a family whose attempts lost
 * to the other family's (a black-holed AAAA costs every session the attempt
 * delay) goes second for BACKEND_SLOW_FAMILY_MS; a win of that family
 * forgets it at once.
 */
static void
remember_family(struct session *s, const struct sockaddr *won)
{
    struct backend_server *st = trying_state(s);
    int lost = connector_lost_family(s->conn);
    uint64_t now = loop_now(s->w->loop);

    resolve_family_sync(st);
    if (won->sa_family == st->slow_family) {
        st->slow_family = 0;
        resolve_family_publish(st);
        return;
    }
    if (lost == 0)
        return;
    if (st->slow_family != lost || now >= st->slow_until_ms) {
        log_begin(LOG_INFO, "family_slow");
        log_str("backend", s->backend->conf->name);
        log_str("server", s->trying->name);
        log_str("family", family_name(lost));
        log_u64("seconds", BACKEND_SLOW_FAMILY_MS / 1000);
        log_end();
    }
    st->slow_family = lost;
    st->slow_until_ms = now + BACKEND_SLOW_FAMILY_MS;
    resolve_family_publish(st);
}

/* The family a new connect to <st> tries first. */
static int
first_family(struct backend_server *st, uint64_t now)
{
    resolve_family_sync(st);
    if (st->slow_family == AF_INET6 && now < st->slow_until_ms)
        return AF_INET;
    return AF_INET6;
}

/*
 * A server address that leads back to mailedge: a warning, at most one a
 * second (every client of the route would log one); the session line
 * says it too (reason=backend_loop).
 */
static void
log_loop(const struct session *s, const struct sockaddr *sa, const char *what)
{
    static uint64_t last_ms;
    char a[ADDR_STRLEN];

    if (!util_due(&last_ms, loop_now(s->w->loop), 1000))
        return;
    log_begin(LOG_WARN, "backend_loop");
    log_str("backend", s->backend->conf->name);
    log_str("server", s->trying->name);
    log_str("addr", addr_format(sa, a, sizeof(a)));
    log_str("error", what);
    log_end();
}

/* The connector decided for the server being tried. */
static void
on_connect_done(void *arg, int fd, const struct sockaddr *sa, int err, bool timeout)
{
    struct session *s = arg;

    if (fd >= 0 && ownaddr_is_self_connection(s->w, fd, sa)) {
        close(fd);
        fd = -1;
        err = ELOOP;
        log_loop(s, sa, "connected to itself");
    }
    if (fd >= 0) {
        remember_family(s, sa);
        memset(&s->baddr, 0, sizeof(s->baddr));
        memcpy(&s->baddr, sa,
               sa->sa_family == AF_INET6 ? sizeof(s->baddr.in6) : sizeof(s->baddr.in));
        bool delayed = connector_delays_acks(s->conn);
        bool in_place = connector_won_lent(s->conn);
        connector_free(s->conn);
        s->conn = NULL;
        s->bio.fd = fd;
        if (!delayed)
            sock_delay_acks(fd); /* else the connect did */
        /* In place, on_backend() noted the event it won with. */
        if (!in_place && loop_mod(s->w->loop, &s->bio, SESSION_BACKEND_EVENTS) == -1) {
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
    if (sock_exhausted(err)) {
        session_say_goodbye(s);
        session_close(s, END_RESOURCE, strerror(err));
        return;
    }
    /* A name whose every address failed may have moved: ask again now. */
    resolve_refresh(trying_state(s)->rq);
    s->attempt++;
    session_connect_next(s);
}

static const struct connector_ops connect_ops = {on_attempt, on_connect_done};

const char *
session_connect_error(int err, bool timeout)
{
    if (timeout)
        return "connect timed out";
    if (err == ELOOP)
        return "it is one of mailedge's own listening addresses (a loop)";
    return strerror(err ? err : ECONNREFUSED);
}

/*
 * Takes the addresses that are mailedge's own listeners out of <v>: a
 * route back to ourselves would make this session's backend connection a
 * new session of ours, which would do the same. Returns how many.
 */
static size_t
drop_own(struct session *s, struct sockaddr_storage *v, size_t *n)
{
    size_t kept = 0, own = 0;

    for (size_t i = 0; i < *n; i++) {
        if (ownaddr_is_listener(s->w, (const struct sockaddr *)&v[i])) {
            if (own++ == 0)
                log_loop(s, (const struct sockaddr *)&v[i], "not connecting");
            continue;
        }
        v[kept++] = v[i];
    }
    *n = kept;
    return own;
}

/*
 * Connects to the next eligible server of the walk: all its addresses at
 * once by Happy Eyeballs (src/edge/connector.c), timeout connect for the lot;
 * the next server only when every address failed. None left: hold or
 * give up.
 */
void
session_connect_next(struct session *s)
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
        n = addr_interleave_first(sa, n, ordered,
                                  first_family(&b->srv[srv - b->conf->servers],
                                               loop_now(s->w->loop)));
        size_t own = drop_own(s, ordered, &n);
        if (n == 0) {
            s->last_err = own > 0 ? ELOOP : EDESTADDRREQ;
            s->last_timeout = false;
            s->attempt++;
            continue;
        }
        if (s->conn == NULL) {
            if ((s->conn = connector_new(s->w->loop, &connect_ops, s)) == NULL) {
                session_say_goodbye(s);
                session_close(s, END_RESOURCE, "out of memory");
                return;
            }
            connector_set_budget(s->conn, &s->w->connects);
        }
        session_set_state(s, SESSION_CONNECTING);
        s->connect_ms = loop_now(s->w->loop);
        /* The connector's timer stands in for the session's while connecting. */
        loop_timer_cancel(s->w->loop, &s->timer);
        backend_take(b, srv);
        s->counted = true;
        /* With a PROXY header, connected() writes at once: the handshake's
         * last ACK can ride on it (src/base/sock.h), a segment fewer. Only
         * under load: the server then accepts once we have written the
         * header, and an idle process that would answer at once pays that
         * wake-up in latency (docs/performance.md). */
        connector_set_delay_acks(s->conn,
                                 b->conf->send_proxy != 0 && loop_batch(s->w->loop) > 1);
        /* One address, one attempt: connect with the session's own
         * registration. With more, an attempt that loses in the same batch
         * as the winner could still bring an event to it. */
        connector_lend_io(s->conn, n == 1 ? &s->bio : NULL, SESSION_BACKEND_EVENTS);
        s->b_rd = s->b_wr = s->b_fin = s->b_wary = false;
        connector_start(s->conn, ordered, n, b->conf->he_delay_ms, b->conf->timeout_connect_ms);
        return;
    }
    connector_free(s->conn);
    s->conn = NULL;
    bool loop = s->trying != NULL && s->last_err == ELOOP;
    /* Nothing to wake a held client without a health check: hold only with
     * one. A loop is the configuration's, not a server that may come back. */
    if (session_holds(b) && !loop) {
        session_hold(s);
        return;
    }
    session_say_goodbye(s);
    char detail[CONF_NAME_MAX + 96];
    if (s->trying == NULL)
        snprintf(detail, sizeof(detail), "no server of backend %s is up", b->conf->name);
    else
        snprintf(detail, sizeof(detail), "last server %s: %s", s->trying->name,
                 session_connect_error(s->last_err, s->last_timeout));
    session_close(s,
                  loop               ? END_BACKEND_LOOP
                  : s->last_timeout ? END_CONNECT_TIMEOUT
                                    : END_CONNECT_REFUSED,
                  detail);
}

/* Connects to the servers of route <r>. */
void
session_start_connect(struct session *s, const struct conf_route *r)
{
    s->route = r;
    s->backend = gen_backend(s->gen, r->backend);
    healthshare_sync(s->w);
    resolve_sync(s->w->resolver);
    s->srv_first = backend_first(s->backend);
    s->attempt = 0;
    session_connect_next(s);
}
