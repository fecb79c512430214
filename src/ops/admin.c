/*
 * admin: the HTTP admin endpoint on libmicrohttpd, in our loop.
 *
 * MHD runs in "external polling" mode with its own epoll descriptor
 * (MHD_USE_EPOLL, no internal thread): that descriptor is registered in
 * our loop, level-triggered, and MHD_run() is called when it is readable.
 * We accept, not MHD (MHD_USE_NO_LISTEN_SOCKET, MHD_add_connection): out
 * of descriptors, MHD either spins (no connection open) or takes its
 * listening socket out of its epoll set until a connection closes, which
 * may never come; our accept pauses and resumes like a listener's.
 * MHD_run() never blocks; after each call the admin timer is re-armed from
 * MHD_get_timeout() (connection timeouts, and 0 when MHD still has ready
 * connections of its own). Requests are answered at once from counters in
 * memory, so no handler ever waits.
 */
#include "admin.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "admin_bans.h"
#include "adminreq.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "procshare.h"
#include "sock.h"
#include "util.h"

#define ADMIN_CONN_MAX 32       /* concurrent admin connections */
#define ADMIN_TIMERS 2 /* its own (MHD's timeout) and the pause after EMFILE */
#define ADMIN_CONN_TIMEOUT_S 10 /* idle or slow admin connections are closed */
#define ADMIN_MEM_PER_CONN (16 * 1024)

#define ADMIN_ACCEPT_BATCH 16

struct admin {
    struct io io; /* MHD's epoll descriptor */
    struct admin_view v;
    struct MHD_Daemon *d;
    struct io lio; /* the listening socket; we accept and hand connections to MHD */
    bool polling;  /* lio is polled (not paused, not at ADMIN_CONN_MAX) */
    struct timer timer;
    struct timer pause_timer; /* accepting again after EMFILE */
    uint64_t last_pause_log;
};

/* ---- HTTP ---- */

/* Queues <body> (freed here) with <status>, <type> and, unless NULL, header <hname>: <hvalue>. */
static enum MHD_Result
reply_with(struct MHD_Connection *conn, unsigned status, const char *type, struct strbuf *body,
           const char *hname, const char *hvalue)
{
    if (body->oom) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body->len = 0;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        body->len, body->p ? body->p : (void *)"", MHD_RESPMEM_MUST_COPY);
    free(body->p);
    body->p = NULL;
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hname != NULL)
        MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type, struct strbuf *body)
{
    return reply_with(conn, status, type, body, NULL, NULL);
}

/*
 * admin_refused lines: at most one a second, the next one saying how many
 * were left out, so that a page or a script retrying in a loop cannot
 * flood the log. One admin endpoint per process, hence file scope.
 */
#define REFUSED_LOG_MS 1000
static uint64_t refused_logged_ms;
static uint64_t refused_suppressed;

static void
log_refused(const struct admin *a, struct MHD_Connection *conn, const char *method,
            const char *url, unsigned status, const char *why)
{
    char addr[ADDR_STRLEN];

    if (!util_due(&refused_logged_ms, loop_now(a->v.loop), REFUSED_LOG_MS)) {
        refused_suppressed++;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    log_begin(LOG_INFO, "admin_refused");
    log_str("client", ci != NULL ? addr_format(ci->client_addr, addr, sizeof(addr)) : "-");
    log_str("method", method);
    log_str("path", url);
    log_u64("status", status);
    log_str("error", why);
    if (refused_suppressed > 0)
        log_u64("suppressed", refused_suppressed);
    log_end();
    refused_suppressed = 0;
}

static const char *
header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* MHD_KeyValueIteratorN over the query string: the first bad parameter stops it. */
static enum MHD_Result
take_param(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
           const char *value, size_t value_size)
{
    struct admin_bans_req *r = cls;

    (void)kind;
    r->param_error = adminreq_param(&r->p, key, key_size, value, value_size);
    return r->param_error == NULL ? MHD_YES : MHD_NO;
}

/*
 * Why a request must not be answered at all (docs/security.md): a Host
 * that is not ours (DNS rebinding), or a browser saying it comes from
 * another origin. NULL: it may be.
 */
static const char *
refused(const struct admin *a, struct MHD_Connection *conn)
{
    const struct conf_global *g = &a->v.conf(a->v.arg)->global;
    const char *names[CONF_ADMIN_HOSTS_MAX];
    struct sockaddr_storage local = {0};
    socklen_t len = sizeof(local);
    const char *host = header(conn, MHD_HTTP_HEADER_HOST);

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL || getsockname(ci->connect_fd, (struct sockaddr *)&local, &len) != 0)
        local.ss_family = AF_UNSPEC; /* only the admin-host names can match */
    for (size_t i = 0; i < g->nadmin_hosts; i++)
        names[i] = g->admin_hosts[i];
    const char *why = adminreq_check_host(host, (const struct sockaddr *)&local, names,
                                          g->nadmin_hosts);
    if (why == NULL)
        why = adminreq_check_origin(header(conn, MHD_HTTP_HEADER_ORIGIN), host);
    if (why == NULL)
        why = adminreq_check_fetch_site(header(conn, "Sec-Fetch-Site"));
    return why;
}

static enum MHD_Result
on_bans(struct admin *a, struct MHD_Connection *conn, const char *method)
{
    struct strbuf body = {0};
    const char *error = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const char *clen = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    struct admin_bans_req r = {
        .method = method,
        .client = ci != NULL ? ci->client_addr : NULL,
        .has_body = (clen != NULL && strcmp(clen, "0") != 0) ||
                    header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL,
        .admin_header = header(conn, "Mailedge-Admin"),
        .authorization = header(conn, MHD_HTTP_HEADER_AUTHORIZATION),
        .error = &error,
    };

    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, take_param, &r);
    unsigned status = admin_bans(&a->v, &r, &body);
    /* Not "no such ban" or "no such listener": answers, not refusals. */
    if (error != NULL && status != MHD_HTTP_NOT_FOUND)
        log_refused(a, conn, method, "/bans", status, error);
    bool auth = status == MHD_HTTP_UNAUTHORIZED;
    return reply_with(conn, status, "application/json", &body,
                      auth ? MHD_HTTP_HEADER_WWW_AUTHENTICATE : NULL,
                      auth ? "Bearer realm=\"mailedge admin\"" : NULL);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    struct admin *a = cls;
    struct strbuf body = {0};
    const char *text = "text/plain; charset=utf-8";

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    const char *why = refused(a, conn);
    if (why != NULL)
        log_refused(a, conn, method, url, MHD_HTTP_FORBIDDEN, why);
    if (why != NULL && strcmp(url, "/bans") == 0) {
        strbuf_addf(&body, "{\"error\":\"%s\"}\n", why); /* ours: no escapes needed */
        return reply(conn, MHD_HTTP_FORBIDDEN, "application/json", &body);
    }
    if (why != NULL) {
        strbuf_addf(&body, "%s\n", why);
        return reply(conn, MHD_HTTP_FORBIDDEN, text, &body);
    }
    if (strcmp(url, "/bans") == 0)
        return on_bans(a, conn, method);
    bool known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 ||
                 strcmp(url, "/readyz") == 0 || strcmp(url, "/status") == 0;
    if (!known) {
        strbuf_add(&body, "not found\n");
        return reply(conn, MHD_HTTP_NOT_FOUND, text, &body);
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            strlen("method not allowed\n"), (void *)"method not allowed\n", MHD_RESPMEM_PERSISTENT);
        if (r == NULL)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, text);
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/metrics") == 0) {
        struct metrics m;
        if (a->v.metrics(a->v.arg, &m) == -1) {
            body.oom = true;
        } else {
            procshare_fill(&m);
            metrics_render(&m, &body);
            a->v.metrics_free(&m);
        }
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &body);
    }
    if (strcmp(url, "/healthz") == 0) {
        strbuf_add(&body, "ok\n");
        return reply(conn, MHD_HTTP_OK, text, &body);
    }
    if (strcmp(url, "/readyz") == 0) {
        bool ok = a->v.ready(a->v.arg, &body);
        return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, &body);
    }
    a->v.status(a->v.arg, &body);
    return reply(conn, MHD_HTTP_OK, "application/json", &body);
}

/* ---- the loop ---- */

static void
arm(struct admin *a)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;

    loop_timer_cancel(a->v.loop, &a->timer);
    if (MHD_get_timeout(a->d, &ms) != MHD_YES)
        return;
    /* 0 means "MHD has ready connections left": at least 1 ms, or the
     * loop's timer pass (which runs every timer due by now) would call us
     * again and again before any other event. */
    if (ms == 0)
        ms = 1;
    /* Connection timeouts are seconds away; keep the sum far from overflow. */
    if (ms > 24ull * 60 * 60 * 1000)
        ms = 24ull * 60 * 60 * 1000;
    loop_timer_at(a->v.loop, &a->timer, loop_now(a->v.loop) + (uint64_t)ms);
}

static void
set_polling(struct admin *a, bool on)
{
    if (a->polling == on)
        return;
    if (loop_mod(a->v.loop, &a->lio, on ? EPOLLIN : 0) == -1) {
        log_warn("admin: cannot %s accepting", on ? "resume" : "pause");
        return;
    }
    a->polling = on;
}

static size_t
connections(const struct admin *a)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL ? info->num_connections : 0;
}

static void
run(struct admin *a)
{
    /* Never blocks: MHD's sockets are non-blocking and it polls with timeout 0. */
    if (MHD_run(a->d) != MHD_YES)
        log_warnx("admin: MHD_run failed");
    /* At the connection limit clients wait in the backlog; one closed: accept again. */
    if (!a->polling && a->pause_timer.idx == TIMER_IDLE && connections(a) < ADMIN_CONN_MAX)
        set_polling(a, true);
    arm(a);
}

static void
on_io(struct io *io, uint32_t ev)
{
    (void)ev;
    run((struct admin *)(void *)io);
}

static void
on_timer(struct timer *t)
{
    run(container_of(t, struct admin, timer));
}

static void
on_accept(struct io *io, uint32_t ev)
{
    struct admin *a = container_of(io, struct admin, lio);
    bool added = false;

    (void)ev;
    for (int i = 0; i < ADMIN_ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        if (connections(a) >= ADMIN_CONN_MAX) {
            set_polling(a, false);
            break;
        }
        int fd = sock_accept(a->lio.fd, &peer);
        if (fd == -1) {
            if (sock_exhausted(errno)) {
                char addr[ADDR_STRLEN];
                uint64_t now = loop_now(a->v.loop);
                set_polling(a, false);
                loop_timer_at(a->v.loop, &a->pause_timer, now + LISTENER_PAUSE_MS);
                listener_log_paused(now, &a->last_pause_log, "admin",
                                    conf_bind_format(&a->v.conf(a->v.arg)->global.admin, addr,
                                                     sizeof(addr)),
                                    errno);
            }
            /* EAGAIN: all taken; anything else: that client is gone. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || sock_exhausted(errno))
                break;
            continue;
        }
        /* MHD closes the socket itself when it cannot take it. */
        if (MHD_add_connection(a->d, fd, (const struct sockaddr *)&peer,
                               addr_len((const struct sockaddr *)&peer)) == MHD_YES)
            added = true;
    }
    if (added)
        run(a);
}

static void
on_resume(struct timer *t)
{
    struct admin *a = container_of(t, struct admin, pause_timer);
    set_polling(a, connections(a) < ADMIN_CONN_MAX);
}

static void
log_failed(const struct conf_bind *b, const char *error)
{
    char addr[ADDR_STRLEN];

    log_begin(LOG_ERROR, "listen_failed");
    log_str("listener", "admin");
    log_str("addr", conf_bind_format(b, addr, sizeof(addr)));
    log_str("error", error);
    log_end();
}

struct admin *
admin_start(const struct admin_view *v)
{
    const struct conf_bind *b = &v->conf(v->arg)->global.admin;
    struct admin *a = calloc(1, sizeof(*a));
    char addr[ADDR_STRLEN];

    if (a == NULL || loop_timer_reserve(v->loop, ADMIN_TIMERS) == -1) {
        free(a);
        log_failed(b, strerror(ENOMEM));
        return NULL;
    }
    a->v = *v;
    a->io.fd = -1;
    a->io.cb = on_io;
    a->lio.cb = on_accept;
    timer_init(&a->timer, on_timer);
    timer_init(&a->pause_timer, on_resume);
    a->lio.fd = sock_listen((const struct sockaddr *)&b->addr, b->any, false, 64);
    if (a->lio.fd == -1) {
        log_failed(b, strerror(errno));
        loop_timer_release(v->loop, ADMIN_TIMERS);
        free(a);
        return NULL;
    }
    a->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request,
                            a, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned int)ADMIN_CONN_MAX, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned int)ADMIN_CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)ADMIN_MEM_PER_CONN, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        a->d != NULL ? MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info == NULL) {
        log_failed(b, "cannot start the HTTP daemon (libmicrohttpd)");
        admin_stop(a);
        return NULL;
    }
    a->io.fd = info->epoll_fd;
    if (loop_add(v->loop, &a->io, EPOLLIN) == -1) {
        log_failed(b, strerror(errno));
        a->io.fd = -1;
        admin_stop(a);
        return NULL;
    }
    if (loop_add(v->loop, &a->lio, EPOLLIN) == -1) {
        log_failed(b, strerror(errno));
        admin_stop(a);
        return NULL;
    }
    a->polling = true;
    arm(a);
    log_begin(LOG_INFO, "listen");
    log_str("listener", "admin");
    log_str("addr", conf_bind_format(b, addr, sizeof(addr)));
    log_str("protocol", "http");
    log_end();
    return a;
}

void
admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    loop_timer_cancel(a->v.loop, &a->timer);
    loop_timer_cancel(a->v.loop, &a->pause_timer);
    loop_timer_release(a->v.loop, ADMIN_TIMERS);
    if (a->io.fd >= 0)
        loop_del(a->v.loop, &a->io);
    /* close() takes it out of our epoll set, polled or not. */
    close(a->lio.fd);
    if (a->d != NULL)
        MHD_stop_daemon(a->d);
    free(a);
}
