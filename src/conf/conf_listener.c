/*
 * conf_listener: the directives of a listener block (bind, protocol,
 * accept-proxy, route and route sni, sni-required), timeout for every
 * block, and the lookups over a listener: which route a server name takes,
 * the protocol names.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "conf_int.h"
#include "tlshello.h"
#include "util.h"

#define ROUTE_SNI_USAGE "route sni NAME... -> BACKEND[:PORT]"

/* "timeout KIND DURATION" in any block; <allowed> is a mask of 1 << D_T_*. */
void
cf_d_timeout(struct ctx *x, const struct lex_word *w, size_t n)
{
    static const struct {
        const char *name;
        enum dir id;
        const char *home;
    } kinds[] = {
        {"connect", D_T_CONNECT, "a backend or the global block"},
        {"proxy", D_T_PROXY, "a listener or the global block"},
        {"idle", D_T_IDLE, "a listener or the global block"},
        {"hello", D_T_HELLO, "a listener or the global block"},
    };
    const char *allowed = x->blk == BLK_GLOBAL    ? "connect, proxy, idle, hello"
                          : x->blk == BLK_BACKEND ? "connect"
                                                  : "proxy, idle, hello";
    size_t k;
    uint64_t ms;

    (void)n;
    for (k = 0; k < ARRAY_LEN(kinds); k++) {
        if (cf_is_word(&w[1], kinds[k].name))
            break;
    }
    if (k == ARRAY_LEN(kinds)) {
        cf_errw(x, &w[1], "unknown timeout '%s' (allowed in a %s block: %s)", w[1].text,
                blk_names[x->blk], allowed);
        return;
    }
    enum dir id = kinds[k].id;
    bool ok = x->blk == BLK_GLOBAL || (x->blk == BLK_BACKEND && id == D_T_CONNECT) ||
              (x->blk == BLK_LISTENER && id != D_T_CONNECT);
    if (!ok) {
        cf_errw(x, &w[1], "timeout %s does not belong in a %s block (set it in %s)", w[1].text,
                blk_names[x->blk], kinds[k].home);
        return;
    }
    char what[32];
    snprintf(what, sizeof(what), "timeout %s", kinds[k].name);
    if (!cf_first_use(x, id, &w[0], what) || !cf_duration(x, &w[2], false, &ms))
        return;
    if (x->blk == BLK_GLOBAL) {
        if (id == D_T_CONNECT)
            x->g_connect = ms;
        else if (id == D_T_PROXY)
            x->g_proxy = ms;
        else if (id == D_T_IDLE)
            x->g_idle = ms;
        else
            x->g_hello = ms;
    } else if (x->blk == BLK_BACKEND) {
        cf_cur_backend(x)->timeout_connect_ms = ms;
    } else if (id == D_T_PROXY) {
        cf_cur_listener(x)->timeout_proxy_ms = ms;
    } else if (id == D_T_IDLE) {
        cf_cur_listener(x)->timeout_idle_ms = ms;
    } else {
        cf_cur_listener(x)->timeout_hello_ms = ms;
    }
}

static void
cf_d_bind(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);

    for (size_t i = 1; i < n; i++) {
        struct sockaddr_storage ss;
        const char *why = NULL;
        bool any;
        if (addr_parse(w[i].text, ADDR_PORT_REQUIRED, &ss, &any, &why) != 0) {
            cf_errw(
                x, &w[i],
                "bad bind address '%s': %s (expected ADDR:PORT like 0.0.0.0:25, [::]:25 or :25)",
                w[i].text, why);
            continue;
        }
        struct conf_bind *b = cf_append(x, l->binds, l->nbinds, sizeof(*b));
        if (b == NULL)
            return;
        l->binds = b;
        b = &l->binds[l->nbinds++];
        memset(b, 0, sizeof(*b));
        b->addr = ss;
        b->any = any;
        b->pos = cf_pos_of(x, &w[i]);
    }
}

static const char *const proto_names[] = {
    [PROTO_SMTP] = "smtp", [PROTO_SUBMISSION] = "submission",
    [PROTO_IMAP] = "imap", [PROTO_POP3] = "pop3",
    [PROTO_TLS] = "tls",   [PROTO_TCP] = "tcp",
};

static void
cf_d_protocol(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    for (size_t i = 0; i < ARRAY_LEN(proto_names); i++) {
        if (cf_is_word(&w[1], proto_names[i])) {
            cf_cur_listener(x)->proto = (enum proto)i;
            return;
        }
    }
    cf_errw(x, &w[1], "bad protocol '%s': expected smtp, submission, imap, pop3, tls or tcp",
            w[1].text);
}

static void
cf_d_accept_proxy(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);
    enum pp_accept v;
    char buf[300];

    if (cf_is_word(&w[1], "v1")) {
        v = PP_ACCEPT_V1;
    } else if (cf_is_word(&w[1], "v2")) {
        v = PP_ACCEPT_V2;
    } else if (cf_is_word(&w[1], "any")) {
        v = PP_ACCEPT_ANY;
    } else {
        cf_errw(x, &w[1], "bad PROXY version '%s': expected v1, v2 or any", w[1].text);
        return;
    }
    if (!cf_is_word(&w[2], "from")) {
        cf_errw(
            x, &w[2],
            "expected 'from' after 'accept-proxy %s' (usage: accept-proxy v1|v2|any from CIDR ...)",
            w[1].text);
        return;
    }
    if (n < 4) {
        cf_errw(x, &w[2], "accept-proxy needs at least one network after 'from', like 10.0.0.0/8");
        return;
    }
    /* Repeating the directive extends the list; the version must agree. */
    if (l->accept_proxy != 0 && l->accept_proxy != v) {
        cf_errw(x, &w[1], "accept-proxy %s conflicts with the version given at %s", w[1].text,
                cf_where(x, &x->seen[D_ACCEPT_PROXY], buf, sizeof(buf)));
        return;
    }
    l->accept_proxy = v;
    cf_cidr_list(x, w, 3, n, &l->trusted, &l->ntrusted, "10.0.0.0/8 or fd7a::/48");
    for (size_t i = 3; i < n; i++) {
        struct cidr cd;
        if (cidr_parse(w[i].text, &cd, NULL) == 0 && cidr_is_wide(&cd))
            cf_warnw(x, &w[i],
                     "accept-proxy from %s trusts a wide range: any host in it can claim any "
                     "client address; list only your proxies",
                     w[i].text);
    }
}

/* Parses the target of a route into <r> and <*port>; reports and returns false if bad. */
static bool
route_target(struct ctx *x, const struct lex_word *t, struct pend_route *r, unsigned *port)
{
    struct sockaddr_storage ss;
    bool any;

    *port = 0;
    r->pos = cf_pos_of(x, t);
    if (addr_parse(t->text, ADDR_PORT_REQUIRED, &ss, &any, NULL) == 0) {
        if (any || cf_unspecified(&ss)) {
            cf_errw(x, t, "route -> %s: a route needs a backend or a specific IP address", t->text);
            return false;
        }
        r->implicit = true;
        r->addr = ss;
        addr_format((const struct sockaddr *)&ss, r->target, sizeof(r->target));
        return true;
    }
    const char *colon = strchr(t->text, ':');
    size_t len = colon != NULL ? (size_t)(colon - t->text) : strlen(t->text);
    if (colon != NULL && strchr(colon + 1, ':') != NULL) {
        cf_errw(x, t, "bad route target '%s': an IPv6 address with a port is written [ADDR]:PORT",
                t->text);
        return false;
    }
    if (len == 0 || len >= CONF_NAME_MAX) {
        cf_errw(x, t, "bad route target '%s': expected BACKEND, BACKEND:PORT or IP:PORT", t->text);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!cf_name_char(t->text[i])) {
            cf_errw(x, t, "bad route target '%s': expected BACKEND, BACKEND:PORT or IP:PORT",
                    t->text);
            return false;
        }
    }
    if (colon != NULL) {
        uint64_t p;
        if (util_parse_uint(colon + 1, 65535, &p) != 0 || p == 0) {
            cf_errw(x, t, "bad port '%s' in route: expected a number from 1 to 65535", colon + 1);
            return false;
        }
        *port = (unsigned)p;
    }
    memcpy(r->target, t->text, len);
    r->target[len] = '\0';
    return true;
}

static void
add_pending(struct ctx *x, const struct pend_route *r)
{
    struct pend_route *v = cf_append(x, x->routes, x->nroutes, sizeof(*v));

    if (v == NULL)
        return;
    x->routes = v;
    x->routes[x->nroutes++] = *r;
}

/* <host> is <suffix> plus exactly one label in front. */
static bool
wildcard_match(const char *suffix, const char *host)
{
    const char *dot = strchr(host, '.');

    return dot != NULL && dot != host && strcmp(dot + 1, suffix) == 0;
}

/* A route sni name: a host name or "*." and one; reports and returns false if bad. */
static bool
sni_name(struct ctx *x, const struct lex_word *w, struct conf_sni_name *out)
{
    const char *t = w->text;
    bool wild = t[0] == '*' && t[1] == '.';
    const char *host = wild ? t + 2 : t;
    struct in_addr a4;

    memset(out, 0, sizeof(*out));
    if (strchr(host, '*') != NULL) {
        cf_errw(x, w,
                "bad server name '%s' in route sni: a wildcard is a whole first label, as in "
                "*.example.org",
                t);
        return false;
    }
    if (tlshello_host_name((const uint8_t *)host, strlen(host), out->name, sizeof(out->name)) <
        0) {
        cf_errw(x, w,
                "bad server name '%s' in route sni: expected a host name like mail.example.org or "
                "a wildcard like *.example.org",
                t);
        return false;
    }
    if (!wild && inet_pton(AF_INET, out->name, &a4) == 1) {
        cf_errw(x, w, "'%s' is an IP address: TLS clients never send one as server name (RFC 6066)",
                t);
        return false;
    }
    out->wildcard = wild;
    out->pos = cf_pos_of(x, w);
    return true;
}

/*
 * Refuses a name that an earlier one makes unreachable (routes are tried in
 * order): the same name, or an exact name under an earlier wildcard.
 */
static bool
sni_name_reachable(struct ctx *x, const struct conf_listener *l, const struct conf_sni_route *cur,
                   const struct conf_sni_name *nm, const struct lex_word *w)
{
    char buf[300];

    for (size_t i = 0; i <= l->nsni_routes; i++) {
        const struct conf_sni_route *r = i < l->nsni_routes ? &l->sni_routes[i] : cur;
        for (size_t j = 0; j < r->nnames; j++) {
            const struct conf_sni_name *e = &r->names[j];
            if (e->wildcard == nm->wildcard && strcmp(e->name, nm->name) == 0) {
                cf_errw(x, w, "server name '%s' is already routed at %s", w->text,
                        cf_where(x, &e->pos, buf, sizeof(buf)));
                return false;
            }
            if (e->wildcard && !nm->wildcard && wildcard_match(e->name, nm->name)) {
                cf_errw(x, w,
                        "server name '%s' never matches: '*.%s' at %s comes first and takes it "
                        "(routes are tried in order)",
                        w->text, e->name, cf_where(x, &e->pos, buf, sizeof(buf)));
                return false;
            }
        }
    }
    return true;
}

static void
route_sni(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);
    struct conf_sni_route sr;
    struct pend_route r;
    size_t arrow = 2;
    unsigned port;
    bool ok = true;

    while (arrow < n && !cf_is_word(&w[arrow], "->"))
        arrow++;
    if (arrow == 2) {
        cf_errw(x, arrow < n ? &w[arrow] : &w[1],
                "route sni needs at least one server name before '->' (usage: " ROUTE_SNI_USAGE
                ")");
        return;
    }
    if (arrow == n) {
        cf_errw(x, &w[1], "route sni without '->' (usage: " ROUTE_SNI_USAGE ")");
        return;
    }
    if (n != arrow + 2) {
        cf_errw(x, n < arrow + 2 ? &w[arrow] : &w[arrow + 2],
                "route takes one target after '->' (usage: " ROUTE_SNI_USAGE ")");
        return;
    }
    if (x->seen[D_ROUTE_SNI].line == 0)
        x->seen[D_ROUTE_SNI] = cf_pos_of(x, &w[1]);

    memset(&sr, 0, sizeof(sr));
    for (size_t i = 2; i < arrow && !x->stop; i++) {
        struct conf_sni_name nm;
        if (!sni_name(x, &w[i], &nm) || !sni_name_reachable(x, l, &sr, &nm, &w[i])) {
            ok = false;
            continue;
        }
        struct conf_sni_name *v = cf_append(x, sr.names, sr.nnames, sizeof(*v));
        if (v == NULL) {
            ok = false;
            break;
        }
        sr.names = v;
        sr.names[sr.nnames++] = nm;
    }
    memset(&r, 0, sizeof(r));
    r.listener = x->bi;
    if (!route_target(x, &w[arrow + 1], &r, &port))
        ok = false;
    struct conf_sni_route *v = ok ? cf_append(x, l->sni_routes, l->nsni_routes, sizeof(*v)) : NULL;
    if (v == NULL) {
        free(sr.names);
        return;
    }
    l->sni_routes = v;
    sr.route.pos = cf_pos_of(x, &w[0]);
    sr.route.port = port;
    r.sni = l->nsni_routes;
    r.port = port;
    l->sni_routes[l->nsni_routes++] = sr;
    add_pending(x, &r);
}

static void
cf_d_route(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);
    struct pend_route r;
    unsigned port;

    if (cf_is_word(&w[1], "sni")) {
        route_sni(x, w, n);
        return;
    }
    if (!cf_is_word(&w[1], "->")) {
        cf_errw(x, &w[1],
                "expected '->' or 'sni' after 'route' (usage: " ROUTE_USAGE " or " ROUTE_SNI_USAGE
                ")");
        return;
    }
    if (n != 3) {
        cf_errw(x, n < 3 ? &w[1] : &w[3],
                "route takes one target after '->' (usage: " ROUTE_USAGE ")");
        return;
    }
    if (!cf_first_use(x, D_ROUTE, &w[0], "route ->"))
        return;
    memset(&r, 0, sizeof(r));
    r.listener = x->bi;
    r.sni = SIZE_MAX;
    l->route.pos = cf_pos_of(x, &w[0]);
    if (!route_target(x, &w[2], &r, &port))
        return;
    l->route.port = port;
    r.port = port;
    add_pending(x, &r);
}

static void
cf_d_sni_required(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)w;
    (void)n;
    cf_cur_listener(x)->sni_required = true;
}

const struct conf_route *
conf_listener_route(const struct conf_listener *l, const char *sni)
{
    for (size_t i = 0; sni != NULL && i < l->nsni_routes; i++) {
        const struct conf_sni_route *r = &l->sni_routes[i];
        for (size_t j = 0; j < r->nnames; j++) {
            const struct conf_sni_name *nm = &r->names[j];
            if (nm->wildcard ? wildcard_match(nm->name, sni) : strcmp(nm->name, sni) == 0)
                return &r->route;
        }
    }
    return l->route.backend != NULL ? &l->route : NULL;
}

const char *
conf_proto_name(enum proto p)
{
    if ((size_t)p < ARRAY_LEN(proto_names))
        return proto_names[p];
    return "unknown";
}

bool
conf_proto_server_first(enum proto p)
{
    return p == PROTO_SMTP || p == PROTO_SUBMISSION || p == PROTO_IMAP || p == PROTO_POP3;
}

const char *
conf_proto_goodbye(enum proto p)
{
    switch (p) {
    case PROTO_SMTP:
    case PROTO_SUBMISSION:
        return "421 4.3.2 Service not available, try again later\r\n";
    case PROTO_IMAP:
        return "* BYE Service not available, try again later\r\n";
    case PROTO_POP3:
        return "-ERR Service not available, try again later\r\n";
    case PROTO_TLS:
    case PROTO_TCP:
        break;
    }
    return NULL;
}

/* The directives of a listener block but its abuse control (conf_abuse.c has those);
 * conf.c reads the table, the list is the first part of the hint of "unknown directive". */
static const struct directive listener_v[] = {
    {"bind", D_BIND, false, 1, MANY, "bind ADDR:PORT ...", cf_d_bind},
    {"protocol", D_PROTOCOL, true, 1, 1, "protocol smtp|submission|imap|pop3|tls|tcp",
     cf_d_protocol},
    {"accept-proxy", D_ACCEPT_PROXY, false, 2, MANY, "accept-proxy v1|v2|any from CIDR ...",
     cf_d_accept_proxy},
    {"route", D_ROUTE_ANY, false, 1, MANY, ROUTE_USAGE " or " ROUTE_SNI_USAGE, cf_d_route},
    {"sni-required", D_SNI_REQUIRED, true, 0, 0, "sni-required", cf_d_sni_required},
    {"timeout", D_COUNT, false, 2, 2, "timeout proxy|idle|hello DURATION", cf_d_timeout},
    {"maxconn", D_COUNT, true, 1, 1, "maxconn N", cf_d_maxconn},
};
const struct directive_table cf_listener_dirs = {
    listener_v, ARRAY_LEN(listener_v), "bind, protocol, accept-proxy, route, sni-required, timeout"};
