/*
 * conf_global: the directives of the global block (log, grace, splice,
 * admin, resolvers, user, group, maxconn; maxconn also in listeners).
 * timeout is in conf_listener.c.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "conf_int.h"
#include "util.h"

void
cf_d_log(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_global *g = &x->c->global;
    bool have_format = false, have_level = false;

    if (cf_is_word(&w[1], "stderr")) {
        g->log_path[0] = '\0';
    } else if (w[1].text[0] != '/') {
        cf_errw(x, &w[1], "log destination must be 'stderr' or an absolute path, not '%s'",
                w[1].text);
    } else if (util_strlcpy(g->log_path, w[1].text, sizeof(g->log_path)) != 0) {
        cf_errw(x, &w[1], "log path is too long (at most %zu bytes)", sizeof(g->log_path) - 1);
        g->log_path[0] = '\0';
    }
    for (size_t i = 2; i < n; i += 2) {
        bool fmt = cf_is_word(&w[i], "format");
        if (!fmt && !cf_is_word(&w[i], "level")) {
            cf_errw(x, &w[i], "unknown log option '%s' (expected format or level)", w[i].text);
            return;
        }
        if (i + 1 >= n) {
            cf_errw(x, &w[i], "'%s' needs a value: %s", w[i].text,
                    fmt ? "logfmt or json" : "info or debug");
            return;
        }
        if (fmt ? have_format : have_level) {
            cf_errw(x, &w[i], "log option '%s' given twice", w[i].text);
            continue;
        }
        const struct lex_word *v = &w[i + 1];
        if (fmt) {
            have_format = true;
            if (cf_is_word(v, "logfmt"))
                g->log_format = LOG_FORMAT_LOGFMT;
            else if (cf_is_word(v, "json"))
                g->log_format = LOG_FORMAT_JSON;
            else
                cf_errw(x, v, "bad log format '%s': expected logfmt or json", v->text);
        } else {
            have_level = true;
            if (cf_is_word(v, "info"))
                g->log_debug = false;
            else if (cf_is_word(v, "debug"))
                g->log_debug = true;
            else
                cf_errw(x, v, "bad log level '%s': expected info or debug", v->text);
        }
    }
}

void
cf_d_grace(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    cf_duration(x, &w[1], true, &x->c->global.grace_ms);
}

void
cf_d_splice(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    if (cf_is_word(&w[1], "on"))
        x->c->global.splice = true;
    else if (cf_is_word(&w[1], "off"))
        x->c->global.splice = false;
    else
        cf_errw(x, &w[1], "bad value '%s' for splice: expected on or off", w[1].text);
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool
is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr) >> 24) ==
               127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* resolvers ADDR[:PORT]... (IP literals; port 53 by default) */
void
cf_d_resolvers(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_global *g = &x->c->global;
    for (size_t i = 1; i < n; i++) {
        struct sockaddr_storage ss;
        const char *why = NULL;
        bool any = false;
        if (addr_parse(w[i].text, ADDR_PORT_OPTIONAL, &ss, &any, &why) != 0) {
            cf_errw(x, &w[i],
                    "bad resolver address '%s': %s (expected an IP address like 10.0.0.53, "
                    "127.0.0.1:5353 or [::1]:53)",
                    w[i].text, why);
            continue;
        }
        if (any || cf_unspecified(&ss)) {
            cf_errw(x, &w[i], "bad resolver address '%s': a resolver needs a specific IP address",
                    w[i].text);
            continue;
        }
        if (g->nresolvers == CONF_RESOLVERS_MAX) {
            cf_errw(x, &w[i], "too many resolvers (at most %d)", CONF_RESOLVERS_MAX);
            return;
        }
        if (addr_port((const struct sockaddr *)&ss) == 0)
            addr_set_port((struct sockaddr *)&ss, 53);
        g->resolvers[g->nresolvers++] = ss;
    }
}

/* admin ADDR:PORT [allow-remote] */
void
cf_d_admin(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_global *g = &x->c->global;
    struct sockaddr_storage ss;
    const char *why = NULL;
    bool any = false;

    if (n == 3 && !cf_is_word(&w[2], "allow-remote")) {
        cf_errw(x, &w[2], "unknown admin option '%s' (expected allow-remote)", w[2].text);
        return;
    }
    if (addr_parse(w[1].text, ADDR_PORT_REQUIRED, &ss, &any, &why) != 0) {
        cf_errw(x, &w[1],
                "bad admin address '%s': %s (expected ADDR:PORT like 127.0.0.1:9100 or [::1]:9100)",
                w[1].text, why);
        return;
    }
    g->admin_allow_remote = n == 3;
    if (!g->admin_allow_remote && (any || !is_loopback(&ss))) {
        cf_errw(x, &w[1],
                "admin address '%s' is not a loopback address: the admin endpoint has no "
                "authentication; write 'admin %s allow-remote' to expose it anyway",
                w[1].text, w[1].text);
        return;
    }
    g->admin_set = true;
    memset(&g->admin, 0, sizeof(g->admin));
    g->admin.addr = ss;
    g->admin.any = any;
    g->admin.pos = cf_pos_of(x, &w[1]);
}

/* user NAME: the account to run as after binding (src/privs.c) */
void
cf_d_user(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    struct conf_global *g = &x->c->global;
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwnam_r(w[1].text, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
        cf_errw(x, &w[1], "unknown user '%s'", w[1].text);
        return;
    }
    if (strlen(w[1].text) >= sizeof(g->user)) {
        cf_errw(x, &w[1], "user name '%s' is too long", w[1].text);
        return;
    }
    snprintf(g->user, sizeof(g->user), "%s", w[1].text);
    g->user_set = true;
    g->uid = res->pw_uid;
    if (!g->group_set)
        g->gid = res->pw_gid;
}

/* group NAME: instead of the user's primary group */
void
cf_d_group(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    struct conf_global *g = &x->c->global;
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(w[1].text, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
        cf_errw(x, &w[1], "unknown group '%s'", w[1].text);
        return;
    }
    g->group_set = true;
    g->gid = res->gr_gid;
    g->group_pos = cf_pos_of(x, &w[1]);
}

#define MAXCONN_MAX 10000000

/* maxconn N: sessions at most, of the process (global) or of one listener */
void
cf_d_maxconn(struct ctx *x, const struct lex_word *w, size_t n)
{
    uint64_t v;

    (void)n;
    if (util_parse_uint(w[1].text, MAXCONN_MAX, &v) != 0 || v == 0) {
        cf_errw(x, &w[1], "bad maxconn '%s': expected a count of sessions from 1 to %d",
                w[1].text, MAXCONN_MAX);
        return;
    }
    if (x->blk == BLK_GLOBAL)
        x->c->global.maxconn = (unsigned)v;
    else
        cf_cur_listener(x)->maxconn = (unsigned)v;
}
