/*
 * conf_backend: the directives of a backend block (server, send-proxy,
 * balance, check, queue-timeout, queue-max, happy-eyeballs-delay) and the
 * names of its enums. timeout connect is in conf_listener.c.
 */
#include "conf.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "conf_int.h"
#include "tlshello.h"
#include "util.h"

/* Usage lines shared by a handler's messages and its table entry. */
#define SERVER_USAGE "server NAME HOST[:PORT] [check-port N] [backup]"
#define CHECK_USAGE                                                                                \
    "check tcp|smtp|imap|pop3|tls|smtps|imaps|pop3s [interval D] [timeout D] [rise N] [fall N] " \
    "[send-proxy none|v1|v2] [sni NAME]"

#define DEFAULT_CHECK_INTERVAL_MS 2000
/* Above postscreen's greet pause (postscreen_greet_wait, 6s by default):
 * postscreen holds the final "220 " that long for a client it has not
 * passed yet, and a check that gives up first never passes. */
#define DEFAULT_CHECK_TIMEOUT_MS 10000
#define DEFAULT_CHECK_RISE 2
#define DEFAULT_CHECK_FALL 3
#define CHECK_INTERVAL_MIN_MS 50
#define CHECK_COUNT_MAX 100 /* rise and fall */
#define HE_DELAY_MIN_MS 10     /* RFC 8305 5: never less */
#define HE_DELAY_MAX_MS 10000
#define QUEUE_MAX_MAX 1000000

/*
 * "HOST" or "HOST:PORT" where HOST is a DNS host name (letters, digits,
 * hyphens; labels of 1..63, not starting or ending with a hyphen; one
 * trailing dot allowed; at most 253). Writes the name in lower case without
 * the trailing dot. Returns 0, -1 when not a host name, -2 for a bad port.
 */
static int
host_name_port(const char *t, char *out, size_t cap, unsigned *port)
{
    const char *colon = strchr(t, ':');
    size_t hl = colon != NULL ? (size_t)(colon - t) : strlen(t);
    *port = 0;
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return -1;
    if (tlshello_host_name((const uint8_t *)t, hl, out, cap) < 0)
        return -1;
    /* All digits and dots is a bad IP address, not a name. */
    if (strspn(out, "0123456789.") == strlen(out))
        return -1;
    if (colon != NULL) {
        uint64_t p;
        if (util_parse_uint(colon + 1, 65535, &p) != 0 || p == 0)
            return -2;
        *port = (unsigned)p;
    }
    return 0;
}

static void
cf_d_server(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_backend *b = cf_cur_backend(x);
    struct sockaddr_storage ss;
    const char *why = NULL;
    bool any;
    char buf[300];

    (void)n;
    bool name_ok = cf_check_name(x, &w[1], "server");
    if (name_ok) {
        for (size_t i = 0; i < b->nservers; i++) {
            if (strcmp(b->servers[i].name, w[1].text) == 0) {
                cf_errw(x, &w[1], "duplicate server '%s' in backend '%s' (first at %s)", w[1].text,
                        b->name, cf_where(x, &b->servers[i].pos, buf, sizeof(buf)));
                name_ok = false;
                break;
            }
        }
    }
    const char *t = w[2].text;
    char hname[CONF_HOST_MAX];
    unsigned hport = 0;
    bool is_name = false;
    if (addr_parse(t, ADDR_PORT_OPTIONAL, &ss, &any, &why) != 0) {
        int hn = host_name_port(t, hname, sizeof(hname), &hport);
        if (hn == -2) {
            cf_errw(x, &w[2],
                    "bad server address '%s': bad port (expected a number from 1 to 65535)", t);
            return;
        }
        if (hn != 0) {
            cf_errw(x, &w[2],
                    "bad server address '%s': %s (expected an IP address like 10.0.0.5:25 or "
                    "[fd00::5]:25, or a host name like mx1.example.org:25)",
                    t, why);
            return;
        }
        is_name = true;
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = AF_UNSPEC;
    } else if (any || cf_unspecified(&ss)) {
        cf_errw(x, &w[2],
                "bad server address '%s': a server needs a specific IP address, not a wildcard", t);
        return;
    }
    unsigned check_port = 0;
    bool backup = false;
    for (size_t i = 3; i < n; i++) {
        uint64_t p;
        if (cf_is_word(&w[i], "backup")) {
            if (backup) {
                cf_errw(x, &w[i], "duplicate server option 'backup'");
                return;
            }
            backup = true;
            continue;
        }
        if (!cf_is_word(&w[i], "check-port")) {
            cf_errw(x, &w[i], "unknown server option '%s' (expected check-port N or backup)",
                    w[i].text);
            return;
        }
        if (check_port != 0) {
            cf_errw(x, &w[i], "duplicate server option 'check-port'");
            return;
        }
        if (i + 1 >= n) {
            cf_errw(x, &w[i], "check-port needs a port number (usage: " SERVER_USAGE ")");
            return;
        }
        i++;
        if (util_parse_uint(w[i].text, 65535, &p) != 0 || p == 0) {
            cf_errw(x, &w[i], "bad check-port '%s': expected a port number from 1 to 65535",
                    w[i].text);
            return;
        }
        check_port = (unsigned)p;
    }
    if (!name_ok)
        return;

    struct conf_server *sv = cf_append(x, b->servers, b->nservers, sizeof(*sv));
    if (sv == NULL)
        return;
    b->servers = sv;
    sv = &b->servers[b->nservers++];
    memset(sv, 0, sizeof(*sv));
    util_strlcpy(sv->name, w[1].text, sizeof(sv->name));
    sv->check_port = check_port;
    sv->backup = backup;
    sv->pos = cf_pos_of(x, &w[1]);
    sv->addr = ss;
    sv->is_name = is_name;
    if (is_name) {
        sv->port = hport;
        sv->has_port = hport != 0;
        util_strlcpy(sv->host, hname, sizeof(sv->host));
        return;
    }
    sv->port = addr_port((const struct sockaddr *)&ss);
    sv->has_port = sv->port != 0;
    sv->check_port = check_port;
    sv->pos = cf_pos_of(x, &w[1]);
    /* The host as written: without brackets and port (addr_parse bounds its length). */
    size_t hl = strlen(t);
    if (t[0] == '[') {
        t++;
        hl = (size_t)(strchr(t, ']') - t);
    } else if (sv->has_port) {
        hl = (size_t)(strrchr(t, ':') - t);
    }
    if (hl >= sizeof(sv->host))
        hl = sizeof(sv->host) - 1;
    memcpy(sv->host, t, hl);
    sv->host[hl] = '\0';
}

static void
cf_d_send_proxy(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_backend *b = cf_cur_backend(x);

    if (cf_is_word(&w[1], "v1")) {
        b->send_proxy = 1;
    } else if (cf_is_word(&w[1], "v2")) {
        b->send_proxy = 2;
    } else {
        cf_errw(x, &w[1], "bad PROXY version '%s': expected v1 or v2", w[1].text);
        return;
    }
    if (n < 3)
        return;
    if (!cf_is_word(&w[2], "authority")) {
        cf_errw(x, &w[2], "unknown send-proxy option '%s' (expected authority)", w[2].text);
        return;
    }
    if (b->send_proxy != 2) {
        cf_errw(x, &w[2], "authority needs send-proxy v2: PROXY v1 has no TLVs to carry it");
        return;
    }
    b->send_authority = true;
}

/* CHECK_USAGE: a kind, then options in any order, each at most once. */
static void
cf_d_check(struct ctx *x, const struct lex_word *w, size_t n)
{
    static const char *const kinds[] = {"tcp", "smtp", "imap", "pop3", "tls", "smtps", "imaps", "pop3s"};
    enum opt { O_INTERVAL, O_TIMEOUT, O_RISE, O_FALL, O_SEND_PROXY, O_SNI, O_COUNT };
    static const char *const opts[O_COUNT] = {"interval", "timeout", "rise", "fall", "send-proxy",
                                              "sni"};
    struct conf_backend *b = cf_cur_backend(x);
    enum check_kind kind = CHECK_NONE;
    uint64_t interval = 0, timeout = 0, rise = 0, fall = 0;
    int send_proxy = -1;
    char sni[CONF_HOST_MAX] = "";
    bool seen[O_COUNT] = {false};
    char buf[300];

    for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
        if (cf_is_word(&w[1], kinds[k]))
            kind = (enum check_kind)(CHECK_TCP + k);
    }
    if (kind == CHECK_NONE) {
        cf_errw(x, &w[1],
                "bad check '%s': expected tcp, smtp, imap, pop3, tls, smtps, imaps or pop3s",
                w[1].text);
        return;
    }
    for (size_t i = 2; i < n; i += 2) {
        size_t o;
        for (o = 0; o < O_COUNT; o++) {
            if (cf_is_word(&w[i], opts[o]))
                break;
        }
        if (o == O_COUNT) {
            cf_errw(x, &w[i],
                    "unknown check option '%s' (expected interval, timeout, rise, fall, "
                    "send-proxy or sni)",
                    w[i].text);
            return;
        }
        if (seen[o]) {
            cf_errw(x, &w[i], "duplicate check option '%s'", w[i].text);
            return;
        }
        seen[o] = true;
        if (i + 1 >= n) {
            cf_errw(x, &w[i], "check option '%s' needs a value", w[i].text);
            return;
        }
        const struct lex_word *v = &w[i + 1];
        if (o == O_INTERVAL || o == O_TIMEOUT) {
            uint64_t ms;
            if (!cf_duration(x, v, false, &ms))
                return;
            if (o == O_INTERVAL && ms < CHECK_INTERVAL_MIN_MS) {
                cf_errw(x, v, "check interval '%s' is too short (at least %dms)", v->text,
                        CHECK_INTERVAL_MIN_MS);
                return;
            }
            *(o == O_INTERVAL ? &interval : &timeout) = ms;
        } else if (o == O_SEND_PROXY) {
            if (cf_is_word(v, "none")) {
                send_proxy = 0;
            } else if (cf_is_word(v, "v1") || cf_is_word(v, "v2")) {
                send_proxy = v->text[1] - '0';
            } else {
                cf_errw(x, v, "bad check send-proxy '%s': expected none, v1 or v2", v->text);
                return;
            }
        } else if (o == O_SNI) {
            if (kind < CHECK_TLS) {
                cf_errw(x, &w[i], "check option 'sni' needs a TLS check (tls, smtps, imaps or pop3s)");
                return;
            }
            if (tlshello_host_name((const uint8_t *)v->text, strlen(v->text), sni, sizeof(sni)) <
                    0 ||
                strspn(sni, "0123456789.") == strlen(sni)) {
                cf_errw(x, v, "bad check sni '%s': expected a DNS host name like mx.example.org",
                        v->text);
                return;
            }
        } else {
            uint64_t cnt;
            if (util_parse_uint(v->text, CHECK_COUNT_MAX, &cnt) != 0 || cnt == 0) {
                snprintf(buf, sizeof(buf), "%s", opts[o]);
                cf_errw(x, v, "bad %s '%s': expected a count from 1 to %d", buf, v->text,
                        CHECK_COUNT_MAX);
                return;
            }
            *(o == O_RISE ? &rise : &fall) = cnt;
        }
    }
    b->check = kind;
    b->check_interval_ms = interval ? interval : DEFAULT_CHECK_INTERVAL_MS;
    b->check_timeout_ms = timeout ? timeout : DEFAULT_CHECK_TIMEOUT_MS;
    b->check_rise = rise ? (unsigned)rise : DEFAULT_CHECK_RISE;
    b->check_fall = fall ? (unsigned)fall : DEFAULT_CHECK_FALL;
    b->check_send_proxy = send_proxy; /* -1: the backend's send-proxy, settled at the end */
    util_strlcpy(b->check_sni, sni, sizeof(b->check_sni));
}

/* queue-timeout DURATION: 0 turns holding off */
static void
cf_d_queue_timeout(struct ctx *x, const struct lex_word *w, size_t n)
{
    uint64_t ms;

    (void)n;
    if (cf_duration(x, &w[1], true, &ms))
        cf_cur_backend(x)->queue_timeout_ms = ms;
}

/* queue-max N */
static void
cf_d_queue_max(struct ctx *x, const struct lex_word *w, size_t n)
{
    uint64_t v;

    (void)n;
    if (util_parse_uint(w[1].text, QUEUE_MAX_MAX, &v) != 0 || v == 0) {
        cf_errw(x, &w[1], "bad queue-max '%s': expected a count from 1 to %d", w[1].text,
                QUEUE_MAX_MAX);
        return;
    }
    cf_cur_backend(x)->queue_max = (unsigned)v;
}

static void
cf_d_balance(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    if (cf_is_word(&w[1], "round-robin"))
        cf_cur_backend(x)->balance = BALANCE_ROUND_ROBIN;
    else if (cf_is_word(&w[1], "first"))
        cf_cur_backend(x)->balance = BALANCE_FIRST;
    else if (cf_is_word(&w[1], "least-conn"))
        cf_cur_backend(x)->balance = BALANCE_LEAST_CONN;
    else
        cf_errw(x, &w[1], "bad balance '%s': expected round-robin, first or least-conn", w[1].text);
}

/* happy-eyeballs-delay DURATION: between connects to one server's addresses */
static void
cf_d_he_delay(struct ctx *x, const struct lex_word *w, size_t n)
{
    uint64_t ms;

    (void)n;
    if (!cf_duration(x, &w[1], false, &ms))
        return;
    if (ms < HE_DELAY_MIN_MS || ms > HE_DELAY_MAX_MS) {
        cf_errw(x, &w[1], "bad happy-eyeballs-delay '%s': expected %dms to %ds (RFC 8305: 250ms)",
                w[1].text, HE_DELAY_MIN_MS, HE_DELAY_MAX_MS / 1000);
        return;
    }
    cf_cur_backend(x)->he_delay_ms = ms;
}

const char *
conf_balance_name(enum balance b)
{
    static const char *const names[] = {"round-robin", "first", "least-conn"};
    return (size_t)b < ARRAY_LEN(names) ? names[b] : "?";
}

const char *
conf_check_name(enum check_kind k)
{
    static const char *const names[] = {"none", "tcp",   "smtp",  "imap",
                                        "pop3", "tls",   "smtps", "imaps", "pop3s"};
    return (size_t)k < ARRAY_LEN(names) ? names[k] : "?";
}

/* The directives of a backend block (conf.c reads the table; the list is the hint of
 * "unknown directive"). */
static const struct directive backend_v[] = {
    {"server", D_SERVER, false, 2, 5, SERVER_USAGE, cf_d_server},
    {"send-proxy", D_COUNT, true, 1, 2, "send-proxy v1|v2 [authority]", cf_d_send_proxy},
    {"balance", D_COUNT, true, 1, 1, "balance round-robin|first|least-conn", cf_d_balance},
    {"check", D_COUNT, true, 1, 13, CHECK_USAGE, cf_d_check},
    {"timeout", D_COUNT, false, 2, 2, "timeout connect DURATION", cf_d_timeout},
    {"queue-timeout", D_COUNT, true, 1, 1, "queue-timeout DURATION", cf_d_queue_timeout},
    {"queue-max", D_COUNT, true, 1, 1, "queue-max N", cf_d_queue_max},
    {"happy-eyeballs-delay", D_COUNT, true, 1, 1, "happy-eyeballs-delay DURATION",
     cf_d_he_delay},
};
const struct directive_table cf_backend_dirs = {
    backend_v, ARRAY_LEN(backend_v),
    "server, send-proxy, balance, check, timeout, queue-timeout, queue-max, "
    "happy-eyeballs-delay"};
