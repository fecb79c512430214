/*
 * session_connect: CONNECTING. The route's backend picks the server, the
 * connector (src/connector.c) races its addresses, the next server on
 * failure; the winner gets the outbound PROXY header, then the relay.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "connector.h"
#include "gen.h"
#include "log.h"
#include "loop.h"
#include "proxyproto.h"
#include "session_int.h"
#include "sock.h"
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
    s->state = SESSION_RELAYING;
    s->last_ms = loop_now(s->w->loop);
    loop_timer_at(s->w->loop, &s->timer, s->last_ms + lconf(s)->timeout_idle_ms);
    session_relay(s);
}

static void
log_attempt(const struct session *s, unsigned nth, const struct sockaddr *sa,
            enum conn_outcome o, int err)
{
    log_begin(LOG_DEBUG, "connect_attempt");
    log_fmt("id", "%016llx", (unsigned long long)s->id);
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
    if (sock_exhausted(err)) {
        session_say_goodbye(s);
        session_close(s, END_RESOURCE, strerror(err));
        return;
    }
    s->attempt++;
    session_connect_next(s);
}

static const struct connector_ops connect_ops = {on_attempt, on_connect_done};

/*
 * Connects to the next eligible server of the walk: all its addresses at
 * once by Happy Eyeballs (src/connector.c), timeout connect for the lot;
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
        n = addr_interleave(sa, n, ordered);
        if (n == 0) {
            s->last_err = EDESTADDRREQ;
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
    if (session_holds(b)) {
        session_hold(s);
        return;
    }
    session_say_goodbye(s);
    char detail[CONF_NAME_MAX + 64];
    if (s->trying == NULL)
        snprintf(detail, sizeof(detail), "no server of backend %s is up", b->conf->name);
    else
        snprintf(detail, sizeof(detail), "last server %s: %s", s->trying->name,
                 s->last_timeout ? "connect timed out"
                                 : strerror(s->last_err ? s->last_err : ECONNREFUSED));
    session_close(s, s->last_timeout ? END_CONNECT_TIMEOUT : END_CONNECT_REFUSED, detail);
}

/* Connects to the servers of route <r>. */
void
session_start_connect(struct session *s, const struct conf_route *r)
{
    s->route = r;
    s->backend = gen_backend(s->gen, r->backend);
    s->srv_first = backend_first(s->backend);
    s->attempt = 0;
    session_connect_next(s);
}
