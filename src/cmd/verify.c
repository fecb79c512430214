/*
 * verify: does each receiver agree with its backend about the PROXY
 * protocol? See verify.h; the classification is src/codecs/pxverify.c and
 * docs/verify.md says what each verdict means.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "connector.h"
#include "loop.h"
#include "proxyproto.h"
#include "pxverify.h"
#include "util.h"
#include "verify.h"

/* The documentation clients (RFC 5737, RFC 3849) the headers carry. */
#define CLIENT_V4 "192.0.2.10"
#define CLIENT_V6 "2001:db8::10"
#define CLIENT_PORT 40000
#define DEST_V4 "192.0.2.1"
#define DEST_V6 "2001:db8::1"
/* What we keep of the receiver's bytes; a greeting is far smaller. */
#define RX_MAX 16384
/* Per connection without a check in the backend: above postscreen's 6 s greet wait. */
#define VERIFY_TIMEOUT_MS 10000
/* How long the polite close waits for the receiver's FIN at most. */
#define CLOSE_WAIT_MS 1000

/* One server of one route: its two connections run in one thread, in turn. */
struct job {
    const struct conf_backend *b;
    const struct conf_server *srv;
    enum pxv_proto proto;
    const char *proto_name;
    unsigned port;             /* the server's own, else the route's */
    struct sockaddr_storage addrs[ADDR_PER_NAME_MAX];
    size_t naddrs;
    char resolve_err[CONF_HOST_MAX + 64];     /* the name did not resolve: why */
    struct pxv_result res[2];  /* IPv4 client, IPv6 client (only [0] without a header) */
    char peer[2][ADDR_STRLEN]; /* the address each connection reached */
    pthread_t thread;
    bool started;
};

/* The connector's result, for the private loop of one connection. */
struct dial {
    struct loop *loop;
    int fd, err;
    bool done;
};

static int
left_ms(uint64_t deadline)
{
    uint64_t n = util_monotonic_ms();
    return n >= deadline ? 0 : (int)(deadline - n > 60000 ? 60000 : deadline - n);
}

static void
dial_attempt(void *arg, unsigned nth, const struct sockaddr *sa, enum conn_outcome o, int err)
{
    (void)arg, (void)nth, (void)sa, (void)o, (void)err;
}

static void
dial_done(void *arg, int fd, const struct sockaddr *sa, int err, bool timeout)
{
    struct dial *d = arg;
    (void)sa;
    if (fd >= 0) {
        struct io io = {.fd = fd};
        loop_del(d->loop, &io);
    }
    d->fd = fd;
    d->err = fd >= 0 ? 0 : (timeout ? ETIMEDOUT : (err != 0 ? err : ECONNREFUSED));
    d->done = true;
    loop_stop(d->loop);
}

static const struct connector_ops dial_ops = {.attempt = dial_attempt, .done = dial_done};

/* Happy Eyeballs over the job's addresses, as sessions connect. Returns the fd, or -1 and *err. */
static int
dial(const struct job *j, int *err)
{
    struct sockaddr_storage ordered[ADDR_PER_NAME_MAX];
    size_t n = addr_interleave(j->addrs, j->naddrs, ordered);
    struct dial d = {.loop = loop_new(), .fd = -1, .err = ENOMEM};
    struct connector *c = NULL;
    if (d.loop != NULL && loop_timer_reserve(d.loop, 1) == 0 &&
        (c = connector_new(d.loop, &dial_ops, &d)) != NULL) {
        connector_start(c, ordered, n, j->b->he_delay_ms, j->b->timeout_connect_ms);
        if (!d.done)
            (void)loop_run(d.loop);
        connector_destroy(c);
    }
    if (d.loop != NULL)
        loop_free(d.loop);
    *err = d.err;
    return d.fd;
}

static void
doc_addr(struct sockaddr_storage *ss, bool v6, const char *v4s, const char *v6s, unsigned port)
{
    memset(ss, 0, sizeof(*ss));
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        (void)inet_pton(AF_INET6, v6s, &s6->sin6_addr);
        s6->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        (void)inet_pton(AF_INET, v4s, &s4->sin_addr);
        s4->sin_port = htons((uint16_t)port);
    }
}

/* The backend's header for a documentation client of the family; 0 when it sends none. */
static size_t
header(const struct job *j, bool v6, uint8_t *buf, size_t cap)
{
    struct sockaddr_storage src, dst;
    if (j->b->send_proxy == 0)
        return 0;
    doc_addr(&src, v6, CLIENT_V4, CLIENT_V6, CLIENT_PORT);
    doc_addr(&dst, v6, DEST_V4, DEST_V6, j->port);
    return proxyproto_encode(j->b->send_proxy == 1 ? PP_V1 : PP_V2, (struct sockaddr *)&src,
                             (struct sockaddr *)&dst, NULL, buf, cap);
}

/*
 * Reads into <rx> until <enough> says so, the receiver ends the connection
 * or the deadline passes; sets <*end> to how it stopped.
 */
static void
read_until(int fd, char *rx, size_t *len, uint64_t deadline, enum pxv_proto p, bool greeting,
           enum pxv_end *end)
{
    for (;;) {
        if (greeting && pxverify_greeting_done(p, rx, *len)) {
            *end = PXV_END_US;
            return;
        }
        if (*len == RX_MAX) {
            *end = PXV_END_US;
            return;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *end = PXV_END_TIMEOUT;
            return;
        }
        ssize_t k = recv(fd, rx + *len, RX_MAX - *len, MSG_DONTWAIT);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k <= 0) {
            *end = k == 0 ? PXV_END_FIN : PXV_END_RESET;
            return;
        }
        *len += (size_t)k;
    }
}

/*
 * Closes with a FIN, never a RST: stop sending, read until the receiver's
 * FIN (bounded) so no unread byte makes close() send a RST (a RST after a
 * header is what kills Postfix's smtpd).
 */
static void
polite_close(int fd)
{
    char buf[4096];
    uint64_t until = util_monotonic_ms() + CLOSE_WAIT_MS;
    (void)shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, left_ms(until));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
            break;
    }
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    (void)close(fd);
}

/* One connection with a client of the family; fills res[k] and peer[k]. */
static void
run_one(struct job *j, int k, bool v6)
{
    static char rx_unused;
    char *rx = malloc(RX_MAX);
    struct pxv_input in = {.proto = j->proto, .sent = j->b->send_proxy, .ipv6 = v6,
                           .rx = rx != NULL ? rx : &rx_unused};
    uint8_t hdr[PP_HEADER_MAX];
    size_t hlen = header(j, v6, hdr, sizeof(hdr));
    int err = 0, fd = -1;
    if (rx == NULL || (j->b->send_proxy != 0 && hlen == 0)) {
        snprintf(j->res[k].evidence, sizeof(j->res[k].evidence), "%s",
                 rx == NULL ? "out of memory" : "cannot encode the PROXY header");
        j->res[k].verdict = PXV_NO_ANSWER;
        j->res[k].fix = "edge: report this as a bug";
        free(rx);
        return;
    }
    uint64_t start = util_monotonic_ms();
    fd = dial(j, &err);
    if (fd < 0) {
        in.connect_err = err;
        pxverify_classify(&in, &j->res[k]);
        free(rx);
        return;
    }
    struct sockaddr_storage peer;
    socklen_t sl = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &sl) == 0)
        addr_format((struct sockaddr *)&peer, j->peer[k], sizeof(j->peer[k]));
    /* PROXY spec 2: the whole header in one write, as sessions send it. */
    if (hlen > 0 && send(fd, hdr, hlen, MSG_NOSIGNAL) != (ssize_t)hlen) {
        in.end = PXV_END_RESET;
        pxverify_classify(&in, &j->res[k]);
        polite_close(fd);
        free(rx);
        return;
    }
    /* A check timeout is only set with a check; else the same default. */
    uint64_t deadline =
        start + (j->b->check != CHECK_NONE ? j->b->check_timeout_ms : VERIFY_TIMEOUT_MS);
    read_until(fd, rx, &in.rx_len, deadline, j->proto, true, &in.end);
    struct pxv_result first;
    pxverify_classify(&in, &first);
    /* A greeting of this protocol: say goodbye, read the answer to the end. */
    if (in.end == PXV_END_US &&
        (first.verdict == PXV_AGREES || first.verdict == PXV_NOT_EXPECTING_PROXY)) {
        const char *bye = pxverify_goodbye(j->proto);
        if (send(fd, bye, strlen(bye), MSG_NOSIGNAL) == (ssize_t)strlen(bye)) {
            in.goodbye_sent = true;
            read_until(fd, rx, &in.rx_len, deadline, j->proto, false, &in.end);
        }
    }
    pxverify_classify(&in, &j->res[k]);
    polite_close(fd);
    free(rx);
}

static void *
run_job(void *arg)
{
    struct job *j = arg;
    if (j->resolve_err[0] != '\0') {
        j->res[0].verdict = PXV_NO_ANSWER;
        snprintf(j->res[0].evidence, sizeof(j->res[0].evidence), "%.150s", j->resolve_err);
        j->res[0].fix = "edge: fix the server's name, or the resolver";
        return NULL;
    }
    run_one(j, 0, false);
    if (j->b->send_proxy != 0) {
        run_one(j, 1, true);
        pxverify_pair(&j->res[0], &j->res[1]);
    }
    return NULL;
}

/* The server's addresses with the port: the literal, or the name's answer. */
static void
resolve(struct job *j)
{
    if (!j->srv->is_name) {
        j->addrs[0] = j->srv->addr;
        addr_set_port((struct sockaddr *)&j->addrs[0], j->port);
        j->naddrs = 1;
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(j->srv->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(j->resolve_err, sizeof(j->resolve_err), "cannot resolve %s: %s", j->srv->host,
                 gai_strerror(rc));
        return;
    }
    for (const struct addrinfo *ai = res; ai != NULL && j->naddrs < ADDR_PER_NAME_MAX;
         ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        memcpy(&j->addrs[j->naddrs], ai->ai_addr, ai->ai_addrlen);
        addr_set_port((struct sockaddr *)&j->addrs[j->naddrs], j->port);
        j->naddrs++;
    }
    freeaddrinfo(res);
    if (j->naddrs == 0)
        snprintf(j->resolve_err, sizeof(j->resolve_err), "%s has no IPv4 or IPv6 address",
                 j->srv->host);
}

struct jobs {
    struct job *v;
    size_t n, cap;
};

static int
proto_of(enum proto p, enum pxv_proto *out, const char **name)
{
    switch (p) {
    case PROTO_SMTP:
    case PROTO_SUBMISSION:
        *out = PXV_SMTP;
        *name = "smtp";
        return 0;
    case PROTO_IMAP:
        *out = PXV_IMAP;
        *name = "imap";
        return 0;
    case PROTO_POP3:
        *out = PXV_POP3;
        *name = "pop3";
        return 0;
    default:
        return -1; /* tls, tcp: the server does not speak first */
    }
}

static bool
wanted(const struct conf_backend *b, char **names, int n)
{
    if (n == 0)
        return true;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], b->name) == 0)
            return true;
    return false;
}

/* Adds a job per server of the route's backend, once per (server, port, protocol). */
static int
add_route(struct jobs *js, const struct conf_route *r, enum proto lp, char **names, int nnames)
{
    const struct conf_backend *b = r->backend;
    enum pxv_proto p;
    const char *pname;
    if (b == NULL || !wanted(b, names, nnames) || proto_of(lp, &p, &pname) == -1)
        return 0;
    for (size_t i = 0; i < b->nservers; i++) {
        const struct conf_server *s = &b->servers[i];
        unsigned port = s->has_port ? s->port : r->port;
        bool dup = false;
        for (size_t k = 0; k < js->n && !dup; k++)
            dup = js->v[k].srv == s && js->v[k].port == port && js->v[k].proto == p;
        if (dup || port == 0)
            continue;
        if (js->n == js->cap) {
            size_t cap = js->cap ? js->cap * 2 : 16;
            struct job *v = realloc(js->v, cap * sizeof(*v));
            if (v == NULL)
                return -1;
            js->v = v;
            js->cap = cap;
        }
        struct job *j = &js->v[js->n++];
        memset(j, 0, sizeof(*j));
        j->b = b;
        j->srv = s;
        j->proto = p;
        j->proto_name = pname;
        j->port = port;
    }
    return 0;
}

/* The default routes of the server-first listeners (route sni is tls only). */
static int
collect(const struct conf *c, struct jobs *js, char **names, int nnames)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (add_route(js, &l->route, l->proto, names, nnames) == -1)
            return -1;
    }
    return 0;
}

/* -f tsv, for the daemon (src/edge/verifyrun.c): backend, server, address,
 * protocol, family, verdict, evidence, fix; tabs in text become spaces. */
static bool tsv;

static void
tsv_field(const char *s, bool last)
{
    for (; *s != '\0'; s++)
        putchar(*s == '\t' || *s == '\n' ? ' ' : *s);
    putchar(last ? '\n' : '\t');
}

static void
print_line(const struct job *j, int k, const char *family)
{
    const struct pxv_result *r = &j->res[k];
    char where[CONF_HOST_MAX + 16];
    if (j->peer[k][0] != '\0')
        snprintf(where, sizeof(where), "%s", j->peer[k]);
    else if (j->naddrs > 0)
        addr_format((const struct sockaddr *)&j->addrs[0], where, sizeof(where));
    else
        snprintf(where, sizeof(where), "%s port %u", j->srv->host, j->port);
    if (tsv) {
        const char *f[] = {j->b->name, j->srv->name, where, j->proto_name, family,
                           pxverify_name(r->verdict), r->evidence};
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
            tsv_field(f[i], false);
        tsv_field(r->verdict != PXV_AGREES ? r->fix : "", true);
        return;
    }
    printf("%s/%s %s %s client=%s: %s: %s", j->b->name, j->srv->name, where, j->proto_name,
           family, pxverify_name(r->verdict), r->evidence);
    if (r->verdict != PXV_AGREES)
        printf("; fix: %s", r->fix);
    printf("\n");
}

static void
usage(FILE *fp, const char *default_conf)
{
    fprintf(fp,
            "usage: mailedge verify [-c FILE] [-f text|tsv] [BACKEND...]\n"
            "  -c FILE  configuration (default %s)\n"
            "  -f tsv   one tab-separated line per result, for programs\n"
            "  checks that each backend's receivers expect exactly the PROXY header it sends\n"
            "  exit status: 0 all agree, 1 a receiver disagrees, 2 usage or configuration error\n",
            default_conf);
}

int
verify_main(int argc, char **argv, const char *default_conf)
{
    const char *path = default_conf;
    int ch;
    optind = 1;
    tsv = false;
    while ((ch = getopt(argc, argv, "+c:f:h")) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "tsv") != 0 && strcmp(optarg, "text") != 0) {
                usage(stderr, default_conf);
                return 2;
            }
            tsv = strcmp(optarg, "tsv") == 0;
            break;
        case 'h':
            usage(stdout, default_conf);
            return 0;
        default:
            usage(stderr, default_conf);
            return 2;
        }
    }
    struct conf *c = NULL;
    struct diag_list diags = {0};
    if (conf_load(path, &c, &diags) == -1) {
        diag_list_print(&diags, stderr);
        diag_list_free(&diags);
        return 2;
    }
    diag_list_free(&diags);
    char **names = argv + optind;
    int nnames = argc - optind;
    for (int i = 0; i < nnames; i++) {
        if (conf_find_backend(c, names[i]) == NULL) {
            fprintf(stderr, "mailedge verify: no backend '%s' in %s\n", names[i], path);
            conf_free(c);
            return 2;
        }
    }
    struct jobs js = {0};
    if (collect(c, &js, names, nnames) == -1) {
        fprintf(stderr, "mailedge verify: out of memory\n");
        free(js.v);
        conf_free(c);
        return 2;
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct conf_backend *b = &c->backends[i];
        bool any = false;
        for (size_t k = 0; k < js.n && !any; k++)
            any = js.v[k].b == b;
        if (!any && wanted(b, names, nnames) && tsv)
            printf("%s\t-\t-\t-\tnone\tskipped\tno smtp, submission, imap or pop3 listener "
                   "routes to it\t\n", b->name);
        else if (!any && wanted(b, names, nnames))
            printf("%s: skipped: no smtp, submission, imap or pop3 listener routes to it "
                   "(the receiver does not speak first)\n",
                   b->name);
    }
    for (size_t i = 0; i < js.n; i++) {
        resolve(&js.v[i]);
        js.v[i].started = pthread_create(&js.v[i].thread, NULL, run_job, &js.v[i]) == 0;
        if (!js.v[i].started)
            run_job(&js.v[i]);
    }
    int rc = 0;
    for (size_t i = 0; i < js.n; i++) {
        struct job *j = &js.v[i];
        if (j->started)
            pthread_join(j->thread, NULL);
        bool both = j->b->send_proxy != 0 && j->resolve_err[0] == '\0';
        print_line(j, 0, both ? "ipv4" : "none");
        if (j->res[0].verdict != PXV_AGREES)
            rc = 1;
        if (both) {
            print_line(j, 1, "ipv6");
            if (j->res[1].verdict != PXV_AGREES)
                rc = 1;
        }
    }
    free(js.v);
    conf_free(c);
    return rc;
}
