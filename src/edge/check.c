/*
 * check: health-check sessions. Each checked server has one struct check
 * that cycles IDLE -> CONNECTING [-> HANDSHAKE] -> GREETING -> QUIT ->
 * DRAIN -> IDLE (HANDSHAKE for the TLS kinds, whose exchanges run inside
 * TLS and end with a close_notify before the FIN).
 * The mail server must never see anything it would log as an error:
 * Postfix smtpd 3.5-3.10 dies on a v2 LOCAL header followed by a reset,
 * postscreen's greet pause punishes a client that talks before the final
 * "220 " line, and an unread byte at close(2) turns the FIN into a RST.
 * So: one write for the header, nothing before the whole greeting, one
 * command, its reply, shutdown(SHUT_WR), read to EOF, close.
 */
#include "check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "connector.h"
#include "healthshare.h"
#include "log.h"
#include "loop.h"
#include "mailreply.h"
#include "proxyproto.h"
#include "resolve.h"
#include "sock.h"
#include "tlscheck.h"
#include "util.h"

/* Timers of a check: its own, and its connector's while connecting. */
#define CHECK_TIMERS 2

/* A server that stays down is logged again after these gaps, doubling. */
#define STILL_DOWN_FIRST_MS 10000
#define STILL_DOWN_MAX_MS 300000

enum check_state {
    CK_IDLE,       /* waiting for the next interval */
    CK_CONNECTING, /* connects in progress (the connector; its deadline: the check timeout) */
    CK_HANDSHAKE,  /* TLS kinds: header sent; the TLS handshake runs */
    CK_GREETING,   /* header sent; reading the greeting, writing nothing */
    CK_QUIT,       /* QUIT / a LOGOUT sent; reading its reply */
    CK_DRAIN,      /* result known; FIN sent, reading to EOF so close(2) sends no RST */
};

struct check {
    struct io io;
    struct timer timer;  /* idle while the connector's runs: one armed timer per check */
    struct connector *conn; /* Happy Eyeballs over the server's addresses */
    struct loop *loop;
    struct backend *b;
    size_t si; /* server index in b */
    enum check_state state;
    bool stopped;
    bool decided; /* the result of the current check is recorded */
    bool starved; /* the current check failed for lack of descriptors (or memory) */
    uint64_t last_starved_log;
    uint64_t deadline; /* of the current check: start + check timeout */
    struct tlscheck *tls; /* TLS kinds, from the connect to the close */
    size_t len;   /* bytes in buf */
    char buf[MR_REPLY_MAX + 1];
    char detail[256]; /* what the server said, or why it failed, for the log */
    /* While the server is down: when it went down (or the checks began),
     * failed checks since, and when to say again that it still is. */
    uint64_t down_since, next_down_log, down_log_gap;
    unsigned down_fails;
};

static const char *const result_names[CHECK_RESULT_COUNT] = {
    [CHECK_PASSED] = "passed",
    [CHECK_L4_REFUSED] = "l4_refused",
    [CHECK_L4_TIMEOUT] = "l4_timeout",
    [CHECK_L4_ERROR] = "l4_error",
    [CHECK_BAD_GREETING] = "bad_greeting",
    [CHECK_4XX] = "4xx",
    [CHECK_5XX] = "5xx",
    [CHECK_READ_TIMEOUT] = "read_timeout",
    [CHECK_CLOSED_EARLY] = "closed_early",
    [CHECK_TLS_FAILED] = "tls_failed",
};

const char *
check_result_name(enum check_result r)
{
    return (size_t)r < CHECK_RESULT_COUNT ? result_names[r] : "?";
}

static const struct conf_backend *
bconf(const struct check *c)
{
    return c->b->conf;
}

static const struct conf_server *
sconf(const struct check *c)
{
    return &c->b->conf->servers[c->si];
}

/* The plain protocol a kind speaks (inside TLS for the TLS kinds). */
static enum check_kind
plain_kind(enum check_kind k)
{
    switch (k) {
    case CHECK_SMTPS:
        return CHECK_SMTP;
    case CHECK_IMAPS:
        return CHECK_IMAP;
    case CHECK_POP3S:
        return CHECK_POP3;
    default:
        return k;
    }
}

static bool
is_tls(enum check_kind k)
{
    return k == CHECK_TLS || k == CHECK_SMTPS || k == CHECK_IMAPS || k == CHECK_POP3S;
}

static void
close_fd(struct check *c)
{
    tlscheck_free(c->tls);
    c->tls = NULL;
    if (c->io.fd >= 0) {
        loop_del(c->loop, &c->io);
        close(c->io.fd);
        c->io.fd = -1;
    }
}

/* The check is over: close, and start the next one an interval from now. */
static void
finish(struct check *c)
{
    close_fd(c);
    c->state = CK_IDLE;
    if (!c->stopped)
        loop_timer_at(c->loop, &c->timer, loop_now(c->loop) + bconf(c)->check_interval_ms);
}

/* Records the result of the current check: counters, rise/fall, the transition log line. */
static void
record(struct check *c, enum check_result r)
{
    if (c->decided)
        return;
    c->decided = true;
    struct backend_server *st = &c->b->srv[c->si];
    bool was_up = st->up;
    backend_server_checked(c->b, c->si, (int)r, r == CHECK_PASSED, loop_now(c->loop));
    healthshare_publish(c->b, c->si, r == CHECK_PASSED);
    uint64_t now = loop_now(c->loop);
    bool said = false;
    if (!st->up && r != CHECK_PASSED)
        c->down_fails++;
    if (was_up && !st->up) {
        c->down_since = now;
        c->down_fails = st->fails;
        c->down_log_gap = STILL_DOWN_FIRST_MS;
        c->next_down_log = now + c->down_log_gap;
    } else if (!was_up && st->up) {
        c->down_fails = 0;
    } else if (!st->up && r != CHECK_PASSED && now >= c->next_down_log) {
        /* Down, and no line has said so lately (or ever, for a server
         * that started down): one, then again after a doubled gap. */
        log_begin(LOG_WARN, "health_down");
        log_str("backend", bconf(c)->name);
        log_str("server", sconf(c)->name);
        log_str("reason", check_result_name(r));
        log_str("check", conf_check_name(bconf(c)->check));
        if (c->detail[0] != '\0')
            log_str("detail", c->detail);
        log_u64("failed", c->down_fails);
        log_u64("down_ms", now - c->down_since);
        log_end();
        c->next_down_log = now + c->down_log_gap;
        c->down_log_gap =
            c->down_log_gap * 2 < STILL_DOWN_MAX_MS ? c->down_log_gap * 2 : STILL_DOWN_MAX_MS;
        said = true;
    }
    /* Out of descriptors is mailedge's problem, not the server's: a
     * warning (at most every 10 s per server), whatever the level. */
    bool warn = c->starved && util_due(&c->last_starved_log, now, 10000);
    if (was_up != st->up || warn || (r != CHECK_PASSED && !said && log_enabled(LOG_DEBUG))) {
        log_begin(warn ? LOG_WARN : was_up != st->up ? LOG_INFO : LOG_DEBUG,
                  was_up != st->up ? "health" : "check_failed");
        log_str("backend", bconf(c)->name);
        log_str("server", sconf(c)->name);
        if (was_up != st->up)
            log_str("state", st->up ? "up" : "down");
        log_str("reason", check_result_name(r));
        log_str("check", conf_check_name(bconf(c)->check));
        if (c->detail[0] != '\0')
            log_str("detail", c->detail);
        log_end();
    }
    /* Each pass of an up server retries the held clients: a restarted
     * server may refuse connects before its fall count is reached, and
     * the clients that failed then wait for the next pass, not a transition. */
    if (st->up && r == CHECK_PASSED)
        backend_wake(c->b);
}

/* Decides the result, then ends politely: FIN, and read until the server closes. */
static void
conclude(struct check *c, enum check_result r)
{
    record(c, r);
    if (c->io.fd < 0) {
        finish(c);
        return;
    }
    if (r == CHECK_CLOSED_EARLY || r == CHECK_L4_REFUSED || r == CHECK_L4_ERROR ||
        r == CHECK_L4_TIMEOUT || r == CHECK_READ_TIMEOUT || r == CHECK_TLS_FAILED) {
        /* Nothing left to say or to wait for; whatever arrived was read. */
        finish(c);
        return;
    }
    /* Inside TLS: close_notify first, then the FIN. What comes back is
     * read raw and dropped. */
    if (c->tls != NULL)
        tlscheck_close_notify(c->tls);
    if (shutdown(c->io.fd, SHUT_WR) == -1) {
        finish(c);
        return;
    }
    c->state = CK_DRAIN;
    loop_timer_at(c->loop, &c->timer, loop_now(c->loop) + bconf(c)->check_timeout_ms);
}

/* Server bytes for the log: printable ASCII, the rest as '?'; truncated. */
static void
printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; src != NULL && i < len && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    dst[n] = '\0';
}

static void
set_detail(struct check *c, const struct mr_reply *rep)
{
    printable(c->detail, sizeof(c->detail), rep->text, rep->text_len);
}

static enum mr_kind
greeting_kind(enum check_kind k)
{
    k = plain_kind(k);
    return k == CHECK_SMTP ? MR_SMTP_GREETING : k == CHECK_IMAP ? MR_IMAP_GREETING : MR_POP3_STATUS;
}

static enum mr_kind
bye_kind(enum check_kind k)
{
    k = plain_kind(k);
    return k == CHECK_SMTP ? MR_SMTP_QUIT : k == CHECK_IMAP ? MR_IMAP_LOGOUT : MR_POP3_STATUS;
}

static const char *
bye_command(enum check_kind k)
{
    /* One command, then its reply: Postfix >= 3.9 rejects pipelining. */
    return plain_kind(k) == CHECK_IMAP ? "a LOGOUT\r\n" : "QUIT\r\n";
}

/* Judges the bytes read so far in GREETING or QUIT. */
static void
judge(struct check *c)
{
    struct mr_reply rep;
    enum check_kind k = plain_kind(bconf(c)->check);
    bool greeting = c->state == CK_GREETING;
    enum mr_result res =
        mailreply_classify(greeting ? greeting_kind(k) : bye_kind(k), c->buf, c->len, &rep);
    if (res == MR_NEED_MORE)
        return;
    if (greeting || res == MR_BAD)
        set_detail(c, &rep);
    if (res == MR_BAD) {
        enum check_result r = CHECK_BAD_GREETING;
        if (greeting && k == CHECK_SMTP && rep.code / 100 == 4)
            r = CHECK_4XX;
        else if (greeting && k == CHECK_SMTP && rep.code / 100 == 5)
            r = CHECK_5XX;
        conclude(c, r);
        return;
    }
    if (!greeting) {
        conclude(c, CHECK_PASSED);
        return;
    }
    /* Keep what followed the greeting (nothing, from a sane server). */
    memmove(c->buf, c->buf + rep.consumed, c->len - rep.consumed);
    c->len -= rep.consumed;
    const char *cmd = bye_command(k);
    size_t n = strlen(cmd);
    if (c->tls != NULL ? tlscheck_write(c->tls, cmd, n) != TLSC_DONE
                       : send(c->io.fd, cmd, n, MSG_NOSIGNAL) != (ssize_t)n) {
        conclude(c, CHECK_CLOSED_EARLY);
        return;
    }
    c->state = CK_QUIT;
    judge(c);
}

/* Reads what is there; returns false when the check ended meanwhile. */
static bool
read_some(struct check *c)
{
    for (;;) {
        char drop[512];
        char *p = c->state == CK_DRAIN ? drop : c->buf + c->len;
        size_t cap = c->state == CK_DRAIN ? sizeof(drop) : sizeof(c->buf) - c->len;
        if (cap == 0) {
            /* mailreply decides before MR_REPLY_MAX; this is a bug guard. */
            conclude(c, CHECK_BAD_GREETING);
            return false;
        }
        ssize_t r;
        if (c->tls != NULL && c->state != CK_DRAIN) {
            size_t got;
            switch (tlscheck_read(c->tls, p, cap, &got)) {
            case TLSC_DONE:
                r = (ssize_t)got;
                break;
            case TLSC_WANT:
                return true;
            case TLSC_CLOSED:
                r = 0;
                break;
            case TLSC_ERROR:
            default:
                snprintf(c->detail, sizeof(c->detail), "%s", tlscheck_error(c->tls));
                r = -1;
                errno = EPROTO;
                break;
            }
        } else {
            r = recv(c->io.fd, p, cap, 0);
        }
        if (r > 0) {
            if (c->state != CK_DRAIN) {
                c->len += (size_t)r;
                judge(c);
                if (c->state != CK_GREETING && c->state != CK_QUIT && c->state != CK_DRAIN)
                    return false;
            }
            continue;
        }
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        /* EOF or an error. */
        if (c->state == CK_DRAIN)
            finish(c);
        else
            conclude(c, CHECK_CLOSED_EARLY);
        return false;
    }
}

/* TLS kinds: advances the handshake; then a plain handshake check passes,
 * the others read the greeting inside TLS. */
static void
handshake(struct check *c)
{
    switch (tlscheck_handshake(c->tls)) {
    case TLSC_WANT:
        return;
    case TLSC_DONE:
        break;
    case TLSC_CLOSED:
        snprintf(c->detail, sizeof(c->detail), "TLS handshake: %s", tlscheck_error(c->tls));
        conclude(c, CHECK_CLOSED_EARLY);
        return;
    case TLSC_ERROR:
    default:
        snprintf(c->detail, sizeof(c->detail), "TLS handshake: %s", tlscheck_error(c->tls));
        conclude(c, CHECK_TLS_FAILED);
        return;
    }
    if (bconf(c)->check == CHECK_TLS) {
        conclude(c, CHECK_PASSED); /* close_notify, FIN, read to EOF */
        return;
    }
    c->state = CK_GREETING;
    read_some(c);
}

/* The connect finished: send the PROXY header, if any, in one write. */
static void
connected(struct check *c)
{
    const struct conf_backend *b = bconf(c);
    if (b->check_send_proxy != 0) {
        struct sockaddr_storage self, peer;
        socklen_t plen = sizeof(peer);
        uint8_t hdr[PP_V1_MAX + 64];
        size_t n = 0;
        /* The checker's own real addresses under the PROXY command: LOCAL
         * (v2) and UNKNOWN (v1) are what kills or annoys Postfix. */
        if (sock_local(c->io.fd, &self) == 0 &&
            getpeername(c->io.fd, (struct sockaddr *)&peer, &plen) == 0)
            n = proxyproto_encode(b->check_send_proxy == 2 ? PP_V2 : PP_V1,
                                  (const struct sockaddr *)&self, (const struct sockaddr *)&peer,
                                  NULL, hdr, sizeof(hdr));
        if (n == 0) {
            conclude(c, CHECK_L4_ERROR);
            return;
        }
        if (send(c->io.fd, hdr, n, MSG_NOSIGNAL) != (ssize_t)n) {
            conclude(c, CHECK_CLOSED_EARLY);
            return;
        }
    }
    if (b->check == CHECK_TCP) {
        /* Connected is all a tcp check asks; close before the server speaks. */
        record(c, CHECK_PASSED);
        finish(c);
        return;
    }
    if (is_tls(b->check)) {
        c->tls = tlscheck_new(c->io.fd, b->check_sni);
        if (c->tls == NULL) {
            snprintf(c->detail, sizeof(c->detail), "%s", "cannot start TLS (out of memory)");
            conclude(c, CHECK_L4_ERROR);
            return;
        }
        c->state = CK_HANDSHAKE;
        handshake(c);
        return;
    }
    c->state = CK_GREETING;
    read_some(c);
}

static void
on_io(struct io *io, uint32_t events)
{
    struct check *c = container_of(io, struct check, io);
    (void)events;
    switch (c->state) {
    case CK_CONNECTING: /* the socket is the check's once connected */
        return;
    case CK_HANDSHAKE:
        handshake(c);
        return;
    case CK_GREETING:
    case CK_QUIT:
    case CK_DRAIN:
        read_some(c);
        return;
    case CK_IDLE:
        return;
    }
}

/* Which address of a dual-stack name failed, for `log ... level debug`. */
static void
on_attempt(void *arg, unsigned nth, const struct sockaddr *sa, enum conn_outcome o, int err)
{
    const struct check *c = arg;

    if (!log_enabled(LOG_DEBUG))
        return;
    log_begin(LOG_DEBUG, "check_attempt");
    log_str("backend", bconf(c)->name);
    log_str("server", sconf(c)->name);
    connector_log_attempt(nth, sa, o, err);
    log_end();
}

/* The connector decided: a connected socket, or every address failed. */
static void
on_connect_done(void *arg, int fd, const struct sockaddr *sa, int err, bool timeout)
{
    struct check *c = arg;

    (void)sa;
    if (fd < 0) {
        resolve_refresh(c->b->srv[c->si].rq); /* the name may have moved */
        if (timeout) {
            conclude(c, CHECK_L4_TIMEOUT);
            return;
        }
        snprintf(c->detail, sizeof(c->detail), "%s", strerror(err));
        c->starved = sock_exhausted(err);
        conclude(c, err == ECONNREFUSED ? CHECK_L4_REFUSED : CHECK_L4_ERROR);
        return;
    }
    c->io.fd = fd;
    if (loop_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) == -1) {
        close_fd(c);
        snprintf(c->detail, sizeof(c->detail), "%s", strerror(errno));
        conclude(c, CHECK_L4_ERROR);
        return;
    }
    /* A check timer for the rest: greeting and reply. */
    loop_timer_at(c->loop, &c->timer, c->deadline);
    connected(c);
}

static const struct connector_ops check_connect_ops = {on_attempt, on_connect_done};

static void
start(struct check *c)
{
    const struct conf_server *srv = sconf(c);
    struct sockaddr_storage sa[BACKEND_ADDRS_MAX], ordered[BACKEND_ADDRS_MAX];
    size_t n = 0;

    c->decided = false;
    c->starved = false;
    c->len = 0;
    c->detail[0] = '\0';
    /* Every address of the server, like sessions (Happy Eyeballs): a name
     * whose AAAA is unreachable is up when its A answers. */
    while (n < BACKEND_ADDRS_MAX && backend_server_addr(c->b, srv, n, srv->check_port, &sa[n]) == 0) {
        if (srv->check_port != 0)
            addr_set_port((struct sockaddr *)&sa[n], srv->check_port);
        n++;
    }
    n = addr_interleave(sa, n, ordered);
    if (n == 0) {
        snprintf(c->detail, sizeof(c->detail), "%s", "name not resolved");
        conclude(c, CHECK_L4_ERROR);
        return;
    }
    c->state = CK_CONNECTING;
    uint64_t timeout = bconf(c)->check_timeout_ms;
    c->deadline = loop_now(c->loop) + timeout;
    /* A check timeout shorter than the attempt delay (a 200ms interval)
     * would never reach the second address. */
    uint64_t delay = bconf(c)->he_delay_ms;
    if (delay > timeout / 2)
        delay = timeout / 2 > 10 ? timeout / 2 : 10;
    connector_start(c->conn, ordered, n, delay, timeout);
}

/*
 * An SMTP greeting that did not finish in time: postscreen sends "220-" at
 * once (or nothing, without a greet banner) and the final "220 " only after
 * postscreen_greet_wait (6s by default) for a client it has not passed; a
 * check timeout below that never passes. Say so in the detail.
 */
static void
greeting_timeout_detail(struct check *c)
{
    if (plain_kind(bconf(c)->check) != CHECK_SMTP)
        return;
    unsigned long long ms = (unsigned long long)bconf(c)->check_timeout_ms;
    if (c->len == 0) {
        snprintf(c->detail, sizeof(c->detail),
                 "no greeting within the check timeout (%llums); a greet pause such as "
                 "postscreen_greet_wait (6s by default) must be shorter than the check timeout",
                 ms);
    } else if (c->len >= 4 && memcmp(c->buf, "220-", 4) == 0) {
        size_t eol = 0;
        while (eol < c->len && c->buf[eol] != '\r' && c->buf[eol] != '\n')
            eol++;
        char first[64];
        printable(first, sizeof(first), c->buf, eol);
        snprintf(c->detail, sizeof(c->detail),
                 "only a partial greeting (%s) within the check timeout (%llums); a greet pause "
                 "such as postscreen_greet_wait (6s by default) must be shorter than the check "
                 "timeout",
                 first, ms);
    }
}

static void
on_timer(struct timer *t)
{
    struct check *c = container_of(t, struct check, timer);
    switch (c->state) {
    case CK_IDLE:
        start(c);
        return;
    case CK_CONNECTING:
        return; /* the connector's timer runs the connect */
    case CK_HANDSHAKE:
        snprintf(c->detail, sizeof(c->detail), "%s", "TLS handshake did not finish in time");
        conclude(c, CHECK_READ_TIMEOUT);
        return;
    case CK_GREETING:
    case CK_QUIT:
        /* Read what is there first: close(2) with unread bytes sends a RST. */
        if (read_some(c)) {
            if (c->state == CK_GREETING)
                greeting_timeout_detail(c);
            conclude(c, CHECK_READ_TIMEOUT);
        }
        return;
    case CK_DRAIN:
        finish(c);
        return;
    }
}

/* The checks of one generation, one per checked server. */
struct checks {
    struct loop *loop;
    size_t n;
    struct check v[];
};

int
check_start_all(struct checks **out, struct loop *loop, struct backend *backends,
                size_t nbackends)
{
    size_t n = 0;
    *out = NULL;
    if (!healthshare_checks_here())
        return 0; /* a follower: worker 0 checks for every worker (src/edge/healthshare.c) */
    for (size_t i = 0; i < nbackends; i++) {
        if (backends[i].conf->check != CHECK_NONE)
            n += backends[i].conf->nservers;
    }
    if (n == 0)
        return 0;
    if (loop_timer_reserve(loop, CHECK_TIMERS * n) == -1) {
        log_warn("check: cannot allocate");
        return -1;
    }
    /* From here, CHECK_TIMERS per check in cs->v[0..n) stay reserved. */
    struct checks *cs = calloc(1, sizeof(*cs) + n * sizeof(cs->v[0]));
    if (cs == NULL) {
        loop_timer_release(loop, CHECK_TIMERS * n);
        log_warn("check: cannot allocate");
        return -1;
    }
    cs->loop = loop;
    *out = cs;
    for (size_t i = 0; i < nbackends; i++) {
        struct backend *b = &backends[i];
        if (b->conf->check == CHECK_NONE)
            continue;
        for (size_t j = 0; j < b->conf->nservers; j++) {
            struct check *c = &cs->v[cs->n++];
            c->loop = loop;
            c->b = b;
            c->si = j;
            c->io.fd = -1;
            c->io.cb = on_io;
            timer_init(&c->timer, on_timer);
            c->conn = connector_new(loop, &check_connect_ops, c);
            if (c->conn == NULL) {
                loop_timer_release(loop, CHECK_TIMERS * (n - cs->n));
                log_warn("check: cannot allocate");
                return -1;
            }
            c->state = CK_IDLE;
            b->srv[j].check = c;
            /* Down from the start: the first failed check says so. Down
             * with a failure carried over by a reload: already said. */
            c->down_since = loop_now(loop);
            c->down_log_gap = STILL_DOWN_FIRST_MS;
            c->next_down_log = b->srv[j].last_result > 0 ? c->down_since + c->down_log_gap : 0;
            /* Health carried over by a reload: the next check when it is due,
             * so a burst of reloads does not become a burst of checks. */
            uint64_t first = loop_now(loop);
            if (b->srv[j].last_result >= 0 &&
                b->srv[j].last_check_ms + b->conf->check_interval_ms > first)
                first = b->srv[j].last_check_ms + b->conf->check_interval_ms;
            loop_timer_at(loop, &c->timer, first);
        }
    }
    return 0;
}

void
check_stop_all(struct checks *cs)
{
    for (size_t i = 0; cs != NULL && i < cs->n; i++) {
        struct check *c = &cs->v[i];
        c->stopped = true;
        loop_timer_cancel(cs->loop, &c->timer);
        if (c->conn != NULL)
            connector_cancel(c->conn);
        if (c->io.fd >= 0) {
            /* Read what has arrived, so the close below is a FIN, not a reset. */
            char drop[512];
            while (recv(c->io.fd, drop, sizeof(drop), 0) > 0)
                ;
        }
        close_fd(c);
        c->state = CK_IDLE;
    }
}

void
check_free_all(struct checks **csp)
{
    struct checks *cs = *csp;
    if (cs == NULL)
        return;
    check_stop_all(cs);
    for (size_t i = 0; i < cs->n; i++)
        connector_destroy(cs->v[i].conn);
    loop_timer_release(cs->loop, CHECK_TIMERS * cs->n);
    free(cs);
    *csp = NULL;
}
