/*
 * probe: `mailedge probe`. Each target runs in its own thread with its own
 * deadline (--timeout, from the start); the main thread waits at most that
 * long plus a short grace, then prints one line per target in argument
 * order. Plaintext protocols are spoken over a plain socket; TLS (smtps,
 * imaps, pop3s) and HTTP(S) go through libcurl on a socket we connected
 * ourselves, so a PROXY header can go out first.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "mailreply.h"
#include "probe.h"
#include "probeurl.h"
#include "proxyproto.h"
#include "util.h"

/* How long the main thread waits past --timeout for a thread to report. */
#define GRACE_MS 1000
/* How long a polite close waits for the server's FIN at most. */
#define CLOSE_WAIT_MS 1000
#define DETAIL_MAX 300

struct target {
    const char *arg;
    struct probe_url url;
    uint64_t timeout_ms;
    pthread_t thread;
    int started;
    /* Guarded by lock: */
    int have_result;
    int finished;
    int ok;
    char detail[DETAIL_MAX];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* One probe connection: a socket, and a curl handle once TLS is up. */
struct conn {
    struct target *t;
    int fd;
    int fd_given; /* handed to curl, which closes it through polite_close */
    CURL *curl;
    uint64_t start, deadline;
    char errbuf[CURL_ERROR_SIZE];
};

static int
remaining(const struct conn *c)
{
    uint64_t n = util_monotonic_ms();
    if (n >= c->deadline)
        return 0;
    uint64_t r = c->deadline - n;
    return r > INT32_MAX ? INT32_MAX : (int)r;
}

static unsigned long
elapsed(const struct conn *c)
{
    return (unsigned long)(util_monotonic_ms() - c->start);
}

static void set_result(struct target *t, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_result(struct target *t, int ok, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&lock);
    if (!t->have_result) {
        va_start(ap, fmt);
        vsnprintf(t->detail, sizeof(t->detail), fmt, ap);
        va_end(ap);
        t->ok = ok;
        t->have_result = 1;
    }
    pthread_mutex_unlock(&lock);
}

/* Copies a server's line for printing: printable ASCII only, bounded. */
static void
quote_line(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i = 0, j = 0;
    if (s == NULL)
        n = 0;
    for (; i < n && j + 4 < cap; i++)
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (i < n) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

/*
 * Closes with a FIN, never a RST: stop sending, read whatever the server
 * still sends until its FIN (bounded), so no unread byte is left in the
 * receive queue when we close (Linux answers close() on unread data with a
 * RST, and a RST after a PROXY header is what kills Postfix's smtpd).
 */
static void
polite_close(int fd, uint64_t deadline)
{
    char buf[4096];
    uint64_t until = util_monotonic_ms() + CLOSE_WAIT_MS;
    if (deadline < until)
        until = deadline;
    (void)shutdown(fd, SHUT_WR);
    for (;;) {
        uint64_t n = util_monotonic_ms();
        int wait = n >= until ? 0 : (int)(until - n);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, wait);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
    }
    /* Whatever arrived in the last instant. */
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    (void)close(fd);
}

/* Connects to one address before the deadline. Returns the fd, or -1 with errno. */
static int
connect_one(const struct addrinfo *ai, const struct conn *c)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd == -1)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, remaining(c));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            close(fd);
            errno = ETIMEDOUT;
            return -1;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
            err = errno;
        if (err != 0) {
            close(fd);
            errno = err;
            return -1;
        }
        return fd;
    }
}

/* Resolves and connects; on failure sets the result and returns -1. */
static int
open_conn(struct conn *c)
{
    struct target *t = c->t;
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", (unsigned)t->url.port);
    int rc = getaddrinfo(t->url.host, port, &hints, &res);
    if (rc != 0) {
        set_result(t, 0, "cannot resolve %s: %s", t->url.host, gai_strerror(rc));
        return -1;
    }
    int err = ETIMEDOUT;
    c->fd = -1;
    for (const struct addrinfo *ai = res; ai != NULL && c->fd == -1; ai = ai->ai_next) {
        if (remaining(c) == 0)
            break;
        c->fd = connect_one(ai, c);
        if (c->fd == -1)
            err = errno;
    }
    freeaddrinfo(res);
    if (c->fd == -1) {
        set_result(t, 0, "connect: %s", util_errno_text(err));
        return -1;
    }
    return 0;
}

/* Writes all of <buf> before the deadline. Returns 0, or -1 with errno. */
static int
conn_send(struct conn *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k;
        if (c->curl != NULL) {
            size_t n = 0;
            CURLcode rc = curl_easy_send(c->curl, p, len, &n);
            if (rc == CURLE_OK) {
                k = (ssize_t)n;
            } else if (rc == CURLE_AGAIN) {
                k = -1;
                errno = EAGAIN;
            } else {
                errno = EIO;
                return -1;
            }
        } else {
            k = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (k >= 0) {
            p += k;
            len -= (size_t)k;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
        int r = poll(&pf, 1, remaining(c));
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Reads some bytes before the deadline. Returns the count, 0 on EOF, -1 with errno. */
static ssize_t
conn_recv(struct conn *c, void *buf, size_t cap)
{
    for (;;) {
        if (c->curl != NULL) {
            size_t n = 0;
            /* Try first: TLS may hold decrypted bytes the socket no longer shows. */
            CURLcode rc = curl_easy_recv(c->curl, buf, cap, &n);
            if (rc == CURLE_OK)
                return (ssize_t)n;
            if (rc != CURLE_AGAIN) {
                errno = EIO;
                return -1;
            }
            errno = EAGAIN;
        } else {
            ssize_t k = recv(c->fd, buf, cap, MSG_DONTWAIT);
            if (k >= 0)
                return k;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int r = poll(&pf, 1, remaining(c));
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

struct reply_buf {
    char b[MR_REPLY_MAX + MR_LINE_MAX + 2];
    size_t len;
};

/*
 * Reads until <kind> classifies. Returns MR_OK or MR_BAD with <rep> filled,
 * or MR_NEED_MORE when the connection ended first (errno: 0 for EOF).
 */
static enum mr_result
read_reply(struct conn *c, enum mr_kind kind, struct reply_buf *rb, struct mr_reply *rep)
{
    for (;;) {
        enum mr_result r = mailreply_classify(kind, rb->b, rb->len, rep);
        if (r != MR_NEED_MORE)
            return r;
        /* classify answers before len exceeds MR_REPLY_MAX + MR_LINE_MAX. */
        ssize_t k = conn_recv(c, rb->b + rb->len, sizeof(rb->b) - rb->len);
        if (k == 0)
            errno = 0;
        if (k <= 0)
            return MR_NEED_MORE;
        rb->len += (size_t)k;
    }
}

/* Drops the classified reply from the buffer, keeping what followed it. */
static void
consume(struct reply_buf *rb, const struct mr_reply *rep)
{
    size_t n = rep->consumed <= rb->len ? rep->consumed : rb->len;
    memmove(rb->b, rb->b + n, rb->len - n);
    rb->len -= n;
}

static void
ended_early(struct conn *c, const char *waiting_for)
{
    int e = errno;
    if (e == 0)
        set_result(c->t, 0, "connection closed before %s", waiting_for);
    else if (e == ETIMEDOUT)
        set_result(c->t, 0, "timed out waiting for %s after %lu ms", waiting_for, elapsed(c));
    else if (e == EIO && c->errbuf[0] != '\0')
        set_result(c->t, 0, "TLS: %s", c->errbuf);
    else
        set_result(c->t, 0, "%s while waiting for %s", util_errno_text(e), waiting_for);
}

static void
report_bad(struct conn *c, const struct mr_reply *rep)
{
    char line[160];
    quote_line(line, sizeof(line), rep->text, rep->text_len);
    if (line[0] != '\0')
        set_result(c->t, 0, "%s: %s", rep->why, line);
    else
        set_result(c->t, 0, "%s", rep->why);
}

/* Sends the PROXY header the URL asks for, whole, in one write. */
static int
send_proxy(struct conn *c)
{
    uint8_t hdr[PP_V1_MAX + 1];
    size_t n = 0;
    if (c->t->url.proxy == PROBE_PROXY_NONE)
        return 0;
    if (c->t->url.proxy == PROBE_PROXY_V2) {
        n = proxyproto_encode_v2_local(hdr, sizeof(hdr));
    } else {
        /* Never v1 UNKNOWN (Postfix refuses it): our own real addresses. */
        struct sockaddr_storage src, dst;
        socklen_t sl = sizeof(src), dl = sizeof(dst);
        if (getsockname(c->fd, (struct sockaddr *)&src, &sl) == 0 &&
            getpeername(c->fd, (struct sockaddr *)&dst, &dl) == 0)
            n = proxyproto_encode(PP_V1, (struct sockaddr *)&src, (struct sockaddr *)&dst, NULL,
                                  hdr, sizeof(hdr));
    }
    if (n == 0) {
        set_result(c->t, 0, "cannot build the PROXY header");
        return -1;
    }
    ssize_t k;
    do
        k = send(c->fd, hdr, n, MSG_NOSIGNAL);
    while (k < 0 && errno == EINTR);
    if (k != (ssize_t)n) {
        set_result(c->t, 0, "cannot send the PROXY header in one write: %s",
                   k < 0 ? util_errno_text(errno) : "short write");
        return -1;
    }
    return 0;
}

/* --- libcurl glue: curl uses the socket we connected (and sent PROXY on). */

static curl_socket_t
cb_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    (void)purpose;
    (void)address;
    struct conn *c = clientp;
    if (c->fd_given || c->fd == -1)
        return CURL_SOCKET_BAD;
    c->fd_given = 1;
    return c->fd;
}

static int
cb_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    (void)clientp;
    (void)fd;
    (void)purpose;
    return CURL_SOCKOPT_ALREADY_CONNECTED;
}

static int
cb_closesocket(void *clientp, curl_socket_t fd)
{
    struct conn *c = clientp;
    polite_close(fd, c->deadline);
    if (fd == c->fd)
        c->fd = -1;
    return 0;
}

static size_t
cb_discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

/* A curl handle on our socket for <url>; NULL (result set) on failure. */
static CURL *
curl_on_socket(struct conn *c, const char *url)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        set_result(c->t, 0, "libcurl: cannot create a handle");
        return NULL;
    }
    long ms = remaining(c);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, cb_opensocket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, cb_sockopt);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, cb_closesocket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
    /* Liveness, not trust: a backend's certificate is often for its public name. */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    return h;
}

static void
url_host(const struct target *t, char *buf, size_t cap)
{
    if (strchr(t->url.host, ':') != NULL)
        snprintf(buf, cap, "[%s]:%u", t->url.host, (unsigned)t->url.port);
    else
        snprintf(buf, cap, "%s:%u", t->url.host, (unsigned)t->url.port);
}

static void
check_http(struct conn *c)
{
    struct target *t = c->t;
    char hp[PROBEURL_HOST_MAX + 16];
    char url[PROBEURL_HOST_MAX + PROBEURL_PATH_MAX + 32];
    url_host(t, hp, sizeof(hp));
    snprintf(url, sizeof(url), "%s://%s%s", t->url.scheme == PS_HTTPS ? "https" : "http", hp,
             t->url.path);
    CURL *h = curl_on_socket(c, url);
    if (h == NULL)
        return;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_discard);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mailedge-probe/" MAILEDGE_VERSION);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    unsigned long ms = elapsed(c);
    if (rc != CURLE_OK && status == 0)
        set_result(t, 0, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    else if (status < 100)
        set_result(t, 0, "no HTTP status");
    else if (!probeurl_status_live(&t->url, status))
        set_result(t, 0, "HTTP status %ld (not expected)", status);
    else
        set_result(t, 1, "HTTP %ld in %lu ms", status, ms);
    curl_easy_cleanup(h); /* closes the socket through cb_closesocket */
}

/* TLS on our socket for smtps/imaps/pop3s: curl does the handshake only. */
static int
start_tls(struct conn *c)
{
    char hp[PROBEURL_HOST_MAX + 16];
    char url[PROBEURL_HOST_MAX + 32];
    url_host(c->t, hp, sizeof(hp));
    /* https:// with CONNECT_ONLY is "TCP + TLS, then hand over". */
    snprintf(url, sizeof(url), "https://%s/", hp);
    CURL *h = curl_on_socket(c, url);
    if (h == NULL)
        return -1;
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    /* Mail servers have no use for the h2/http1.1 ALPN curl would offer. */
    curl_easy_setopt(h, CURLOPT_SSL_ENABLE_ALPN, 0L);
    c->curl = h;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        set_result(c->t, 0, "TLS: %s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        return -1;
    }
    c->errbuf[0] = '\0';
    return 0;
}

struct dialogue {
    enum mr_kind hello;     /* the greeting (or answer) that proves liveness */
    const char *hello_name; /* for messages */
    const char *request;    /* sent before reading hello (client-first), or NULL */
    const char *bye;        /* sent after a good hello */
    enum mr_kind bye_kind;  /* its reply */
    int bye_required;       /* whether a wrong reply to bye fails the probe */
};

static void
check_dialogue(struct conn *c, const struct dialogue *d)
{
    struct reply_buf rb;
    struct mr_reply rep;
    char what[80];
    rb.len = 0;
    rb.b[0] = '\0';
    if (d->request != NULL && conn_send(c, d->request, strlen(d->request)) == -1) {
        set_result(c->t, 0, "cannot send the request: %s", util_errno_text(errno));
        return;
    }
    enum mr_result r = read_reply(c, d->hello, &rb, &rep);
    if (r == MR_NEED_MORE) {
        ended_early(c, d->hello_name);
        return;
    }
    unsigned long ms = elapsed(c);
    if (r == MR_BAD) {
        report_bad(c, &rep);
        /* A server that refused us politely (554, -ERR) still gets its QUIT. */
        if (rep.code >= 400 && d->hello == MR_SMTP_GREETING) {
            consume(&rb, &rep);
            if (conn_send(c, d->bye, strlen(d->bye)) == 0)
                (void)read_reply(c, d->bye_kind, &rb, &rep);
        }
        return;
    }
    char line[80];
    quote_line(line, sizeof(line), rep.text, rep.text_len);
    if (d->hello == MR_SMTP_GREETING)
        snprintf(what, sizeof(what), "%d greeting", rep.code);
    else if (d->hello == MR_REDIS_PING)
        snprintf(what, sizeof(what), "%s",
                 strcmp(line, "+PONG") == 0 ? "+PONG" : "auth required (live)");
    else
        snprintf(what, sizeof(what), "%s greeting", d->hello == MR_POP3_STATUS ? "+OK" : "* OK");
    consume(&rb, &rep);
    if (d->bye == NULL) {
        set_result(c->t, 1, "%s in %lu ms", what, ms);
        return;
    }
    if (conn_send(c, d->bye, strlen(d->bye)) == -1) {
        if (d->bye_required)
            set_result(c->t, 0, "%s, then cannot say goodbye: %s", what, util_errno_text(errno));
        else
            set_result(c->t, 1, "%s in %lu ms", what, ms);
        return;
    }
    r = read_reply(c, d->bye_kind, &rb, &rep);
    if (r == MR_OK || !d->bye_required) {
        set_result(c->t, 1, "%s in %lu ms", what, ms);
    } else if (r == MR_BAD) {
        quote_line(line, sizeof(line), rep.text, rep.text_len);
        set_result(c->t, 0, "%s, but %s: %s", what, rep.why, line);
    } else {
        ended_early(c,
                    d->bye_kind == MR_SMTP_QUIT ? "the reply to QUIT" : "the reply to LOGOUT/QUIT");
    }
}

static const struct dialogue smtp_dialogue = {
    MR_SMTP_GREETING, "the greeting", NULL, "QUIT\r\n", MR_SMTP_QUIT, 1,
};
static const struct dialogue imap_dialogue = {
    MR_IMAP_GREETING, "the greeting", NULL, "a LOGOUT\r\n", MR_IMAP_LOGOUT, 1,
};
static const struct dialogue pop3_dialogue = {
    MR_POP3_STATUS, "the greeting", NULL, "QUIT\r\n", MR_POP3_STATUS, 1,
};
static const struct dialogue redis_dialogue = {
    MR_REDIS_PING, "the reply to PING", "PING\r\n", "QUIT\r\n", MR_REDIS_PING, 0,
};
/*
 * PostgreSQL, judged as pg_isready judges (libpq's PQping): a StartupMessage
 * in clear, and the server's first answer. An authentication request, or an
 * error other than 57P03 (a wrong user or database, no pg_hba entry, too
 * many clients), means it accepts sessions; 57P03 that it rejects them
 * (starting up, shutting down, in recovery, a standby without hot
 * standby); nothing means no response. We never answer a password request:
 * closing there is what pg_isready does, and PostgreSQL logs nothing for
 * it. After AuthenticationOk (trust) a Terminate says goodbye.
 */
static void
check_postgres(struct conn *c)
{
    static const char terminate[5] = {'X', 0, 0, 0, 4};
    char msg[128];
    size_t n = mailreply_pg_startup(c->t->url.pg_user, c->t->url.pg_db, msg, sizeof(msg));
    if (n == 0) {
        set_result(c->t, 0, "cannot build the StartupMessage");
        return;
    }
    if (conn_send(c, msg, n) == -1) {
        set_result(c->t, 0, "no response: cannot send the StartupMessage: %s", util_errno_text(errno));
        return;
    }
    struct reply_buf rb;
    struct mr_reply rep;
    rb.len = 0;
    enum mr_result r = read_reply(c, MR_PG_STARTUP, &rb, &rep);
    if (r == MR_NEED_MORE) {
        ended_early(c, "the answer to the StartupMessage (no response)");
        return;
    }
    if (r == MR_BAD) {
        report_bad(c, &rep);
        return;
    }
    unsigned long ms = elapsed(c);
    char line[120];
    quote_line(line, sizeof(line), rep.text, rep.text_len);
    if (rep.pg_type == 'E') {
        set_result(c->t, 1, "accepting connections (error %s: %s) in %lu ms", rep.sqlstate, line,
                   ms);
    } else if (rep.pg_type == 'v') {
        set_result(c->t, 1, "accepting connections (protocol negotiation) in %lu ms", ms);
    } else if (rep.pg_auth != 0) {
        set_result(c->t, 1, "accepting connections (authentication requested) in %lu ms", ms);
    } else {
        (void)conn_send(c, terminate, sizeof(terminate));
        set_result(c->t, 1, "accepting connections (no password needed) in %lu ms", ms);
    }
}

static void
run_target(struct target *t)
{
    struct conn c;
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.fd = -1;
    c.start = util_monotonic_ms();
    c.deadline = c.start + t->timeout_ms;
    if (open_conn(&c) == -1)
        return;
    if (send_proxy(&c) == 0) {
        switch (t->url.scheme) {
        case PS_TCP:
            set_result(t, 1, "connected in %lu ms", elapsed(&c));
            break;
        case PS_HTTP:
        case PS_HTTPS:
            check_http(&c);
            break;
        case PS_SMTP:
        case PS_SMTPS:
        case PS_IMAP:
        case PS_IMAPS:
        case PS_POP3:
        case PS_POP3S:
            if (probeurl_scheme_tls(t->url.scheme) && start_tls(&c) == -1)
                break;
            check_dialogue(
                &c, t->url.scheme == PS_SMTP || t->url.scheme == PS_SMTPS   ? &smtp_dialogue
                    : t->url.scheme == PS_IMAP || t->url.scheme == PS_IMAPS ? &imap_dialogue
                                                                            : &pop3_dialogue);
            break;
        case PS_POSTGRES:
            check_postgres(&c);
            break;
        case PS_REDIS:
            check_dialogue(&c, &redis_dialogue);
            break;
        }
    }
    if (c.curl != NULL)
        curl_easy_cleanup(c.curl); /* closes through cb_closesocket */
    if (c.fd != -1 && !c.fd_given)
        polite_close(c.fd, c.deadline);
}

static void *
thread_main(void *arg)
{
    struct target *t = arg;
    run_target(t);
    pthread_mutex_lock(&lock);
    if (!t->have_result) {
        snprintf(t->detail, sizeof(t->detail), "no result");
        t->have_result = 1;
    }
    t->finished = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: mailedge probe [--timeout D] URL...\n"
                "  --timeout D  per target, e.g. 3s or 500ms (default 5s); targets run "
                "concurrently\n"
                "  URL          tcp://h:p smtp:// smtps:// imap:// imaps:// pop3:// pop3s://\n"
                "               postgres:// redis:// http:// https://, optional ?proxy=v1|v2\n"
                "               postgres://h/DB?user=U (default postgres), http(s)://h/p?expect=2xx,404\n"
                "               (default 2xx and 3xx)\n"
                "exit: 0 all live, 1 some not live, 2 usage error\n");
}

int
probe_main(int argc, char **argv)
{
    uint64_t timeout_ms = PROBE_TIMEOUT_DEFAULT_MS;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--timeout") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mailedge probe: --timeout needs a duration\n");
                return 2;
            }
            val = argv[++i];
        } else if (strncmp(a, "--timeout=", 10) == 0) {
            val = a + 10;
        } else if (a[0] == '-') {
            fprintf(stderr, "mailedge probe: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
        if (util_parse_duration(val, &timeout_ms) == -1 || timeout_ms == 0 ||
            timeout_ms > (uint64_t)3600 * 1000) {
            fprintf(stderr,
                    "mailedge probe: bad --timeout '%s' (a duration with a unit, 1ms to 1h)\n",
                    val);
            return 2;
        }
    }
    int n = argc - i;
    if (n <= 0) {
        usage(stderr);
        return 2;
    }
    struct target *ts = calloc((size_t)n, sizeof(*ts));
    if (ts == NULL) {
        fprintf(stderr, "mailedge probe: out of memory\n");
        return 2;
    }
    int bad = 0;
    for (int k = 0; k < n; k++) {
        const char *why = NULL;
        ts[k].arg = argv[i + k];
        ts[k].timeout_ms = timeout_ms;
        if (probeurl_parse(ts[k].arg, &ts[k].url, &why) == -1) {
            fprintf(stderr, "mailedge probe: %s: %s\n", ts[k].arg, why);
            bad = 1;
        }
    }
    if (bad) {
        free(ts);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mailedge probe: libcurl initialisation failed\n");
        free(ts);
        return 1;
    }

    for (int k = 0; k < n; k++) {
        int rc = pthread_create(&ts[k].thread, NULL, thread_main, &ts[k]);
        if (rc == 0) {
            ts[k].started = 1;
        } else {
            pthread_mutex_lock(&lock);
            snprintf(ts[k].detail, sizeof(ts[k].detail), "cannot start a thread: %s", strerror(rc));
            ts[k].have_result = ts[k].finished = 1;
            pthread_mutex_unlock(&lock);
        }
    }

    /* Every target has its own deadline; nothing waits past it plus the grace. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    uint64_t wait_ms = timeout_ms + GRACE_MS;
    until.tv_sec += (time_t)(wait_ms / 1000u);
    until.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int all_done = 0;
    pthread_mutex_lock(&lock);
    for (;;) {
        all_done = 1;
        for (int k = 0; k < n; k++)
            if (!ts[k].finished)
                all_done = 0;
        if (all_done)
            break;
        if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT)
            break;
    }
    int status = 0;
    for (int k = 0; k < n; k++) {
        struct target *t = &ts[k];
        int ok = t->have_result && t->ok;
        if (!ok)
            status = 1;
        printf("%-4s %s  %s\n", ok ? "ok" : "FAIL", t->arg,
               t->have_result ? t->detail : "timed out (no answer within --timeout)");
    }
    pthread_mutex_unlock(&lock);
    fflush(stdout);
    if (!all_done)
        _exit(status); /* a thread is stuck (in getaddrinfo, say): do not wait for it */
    for (int k = 0; k < n; k++)
        if (ts[k].started)
            pthread_join(ts[k].thread, NULL);
    curl_global_cleanup();
    free(ts);
    return status;
}
