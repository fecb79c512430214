/*
 * conf_global: the directives of the global block (log, grace, splice,
 * admin, resolvers, user, group, maxconn; maxconn also in listeners).
 * timeout is in conf_listener.c.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "conf_int.h"
#include "util.h"

static void
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

static void
cf_d_grace(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    cf_duration(x, &w[1], true, &x->c->global.grace_ms);
}

static void
cf_d_splice(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    if (cf_is_word(&w[1], "on"))
        x->c->global.splice = CONF_SPLICE_ON;
    else if (cf_is_word(&w[1], "off"))
        x->c->global.splice = CONF_SPLICE_OFF;
    else if (cf_is_word(&w[1], "auto"))
        x->c->global.splice = CONF_SPLICE_AUTO;
    else
        cf_errw(x, &w[1], "bad value '%s' for splice: expected on, off or auto", w[1].text);
}

#define BUSY_POLL_MAX_US 10000u

/* busy-poll off|DURATION: microseconds ("us") or any duration, at most 10ms. */
static void
cf_d_busy_poll(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    const char *t = w[1].text;
    size_t len = strlen(t);
    uint64_t us = 0, ms;
    char digits[32];
    if (cf_is_word(&w[1], "off")) {
        x->c->global.busy_poll_us = 0;
        return;
    }
    bool in_us = len > 2 && len - 2 < sizeof(digits) && strcmp(t + len - 2, "us") == 0;
    if (in_us) {
        memcpy(digits, t, len - 2);
        digits[len - 2] = '\0';
    }
    if (in_us && util_parse_uint(digits, UINT32_MAX, &us) == 0) {
        /* us as given */
    } else if (!in_us && util_parse_duration(t, &ms) == 0) {
        us = ms > BUSY_POLL_MAX_US / 1000 ? BUSY_POLL_MAX_US + 1 : ms * 1000;
    } else {
        cf_errw(x, &w[1], "bad value '%s' for busy-poll: expected off or a duration like 50us", t);
        return;
    }
    if (us > BUSY_POLL_MAX_US) {
        cf_errw(x, &w[1], "busy-poll '%s' is too long (at most 10ms)", t);
        return;
    }
    x->c->global.busy_poll_us = (uint32_t)us;
}

/* resolvers ADDR[:PORT]... (IP literals; port 53 by default) */
static void
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
static void
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
    if (!g->admin_allow_remote && (any || !addr_is_loopback((const struct sockaddr *)&ss))) {
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

static void
admin_option_seen(struct ctx *x, const struct lex_word *w)
{
    if (x->c->global.admin_opt_pos.line == 0)
        x->c->global.admin_opt_pos = cf_pos_of(x, w);
}

/* admin-host NAME...: Host header names the admin endpoint answers besides its address */
static void
cf_d_admin_host(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_global *g = &x->c->global;

    admin_option_seen(x, &w[0]);
    for (size_t i = 1; i < n; i++) {
        const char *t = w[i].text;
        size_t len = strlen(t);
        uint8_t bin[16];
        char *out = g->admin_hosts[g->nadmin_hosts];
        /* An address is kept in inet_ntop's spelling, the one adminreq compares. */
        int family = inet_pton(AF_INET, t, bin) == 1    ? AF_INET
                     : inet_pton(AF_INET6, t, bin) == 1 ? AF_INET6
                                                        : 0;
        if (family != 0) {
            inet_ntop(family, bin, out, CONF_HOST_MAX);
            g->nadmin_hosts++;
            continue;
        }
        bool ok = len > 0 && len <= 253 && t[0] != '.' && t[0] != '-';
        for (size_t j = 0; ok && j < len; j++)
            ok = (t[j] >= 'a' && t[j] <= 'z') || (t[j] >= 'A' && t[j] <= 'Z') ||
                 (t[j] >= '0' && t[j] <= '9') || t[j] == '-' || t[j] == '.';
        if (!ok) {
            cf_errw(x, &w[i],
                    "bad admin-host '%s': expected a host name like admin.example.org or an IP "
                    "address, without a port",
                    t);
            continue;
        }
        util_strlcpy(out, t, CONF_HOST_MAX);
        g->nadmin_hosts++;
    }
}

/* admin-token-file PATH: writes to the admin endpoint need "Authorization: Bearer TOKEN" */
static void
cf_d_admin_token_file(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    admin_option_seen(x, &w[0]);
    if (!x->allow_include) {
        cf_errw(x, &w[0],
                "admin-token-file is not allowed when the configuration is loaded from memory");
        return;
    }
    if (w[1].text[0] != '/') {
        cf_errw(x, &w[1], "admin-token-file needs an absolute path, not '%s'", w[1].text);
        return;
    }
    if (util_strlcpy(x->admin_token_path, w[1].text, sizeof(x->admin_token_path)) != 0) {
        cf_errw(x, &w[1], "admin-token-file path is too long");
        x->admin_token_path[0] = '\0';
        return;
    }
    x->admin_token_pos = cf_pos_of(x, &w[1]);
}

#define ADMIN_TOKEN_MIN 16
#define CONF_SECRET_MAX 257 /* the longest secret a file may hold, NUL included */
_Static_assert(CONF_ADMIN_TOKEN_MAX <= CONF_SECRET_MAX && CONF_CS_KEY_MAX <= CONF_SECRET_MAX,
               "raise CONF_SECRET_MAX");

void
cf_read_secret(struct ctx *x, const char *path, const struct conf_pos *at, const char *what,
               size_t min, char *out, size_t cap, size_t *len_out)
{
    const struct conf_global *g = &x->c->global;
    char buf[CONF_SECRET_MAX + 2];
    struct stat st;

    *len_out = 0;
    if (cap + 1 > sizeof(buf))
        cap = sizeof(buf) - 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd == -1) {
        cf_errp(x, at, "cannot open %s %s: %s", what, path, strerror(errno));
        return;
    }
    ssize_t got = -1;
    if (fstat(fd, &st) != 0) {
        cf_errp(x, at, "cannot stat %s %s: %s", what, path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        cf_errp(x, at, "%s %s is not a regular file", what, path);
    } else if ((st.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
        cf_errp(x, at,
                "%s %s is open to others (mode %03o): allow at most owner "
                "read-write and group read (chmod 0600 or 0640)",
                what, path, (unsigned)(st.st_mode & 0777));
    } else if (st.st_uid != 0 && st.st_uid != geteuid() && !(g->user_set && st.st_uid == g->uid)) {
        cf_errp(x, at,
                "%s %s belongs to uid %u: it must belong to root or to the user "
                "mailedge runs as",
                what, path, (unsigned)st.st_uid);
    } else if ((got = read(fd, buf, cap + 1)) < 0) {
        cf_errp(x, at, "cannot read %s %s: %s", what, path, strerror(errno));
    }
    close(fd);
    if (got < 0)
        return;
    size_t len = (size_t)got;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    bool ok = len >= min && len < cap;
    for (size_t i = 0; ok && i < len; i++)
        ok = buf[i] > 0x20 && buf[i] < 0x7f;
    if (!ok) {
        cf_errp(x, at,
                "%s %s must hold one token of %zu to %zu printable characters "
                "without spaces (like the output of 'openssl rand -hex 32')",
                what, path, min, cap - 1);
    } else {
        memcpy(out, buf, len);
        out[len] = '\0';
        *len_out = len;
    }
    explicit_bzero(buf, sizeof(buf));
}

void
cf_admin_token_read(struct ctx *x)
{
    struct conf_global *g = &x->c->global;

    if (x->admin_token_path[0] != '\0')
        cf_read_secret(x, x->admin_token_path, &x->admin_token_pos, "admin-token-file",
                       ADMIN_TOKEN_MIN, g->admin_token, sizeof(g->admin_token),
                       &g->admin_token_len);
}

/* admin-widest-ban V4 V6: the widest prefixes POST /bans takes without force=1 */
static void
cf_d_admin_widest_ban(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_global *g = &x->c->global;
    unsigned *out[2] = {&g->admin_ban_v4, &g->admin_ban_v6};
    const unsigned max[2] = {32, 128};

    (void)n;
    admin_option_seen(x, &w[0]);
    for (size_t i = 0; i < 2; i++) {
        uint64_t v;
        if (util_parse_uint(w[i + 1].text, max[i], &v) != 0 || v == 0) {
            cf_errw(x, &w[i + 1],
                    "bad %s prefix length '%s' for admin-widest-ban: expected 1 to %u (a ban of "
                    "/0 is never allowed)",
                    i == 0 ? "IPv4" : "IPv6", w[i + 1].text, max[i]);
            continue;
        }
        *out[i] = (unsigned)v;
    }
}

/* user NAME: the account to run as after binding (src/ops/privs.c) */
static void
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
static void
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

/* workers N|auto: worker processes sharing the listening ports (src/ops/supervise.c);
 * auto (as without the directive) is conf_new()'s count, one per usable CPU */
static void
cf_d_workers(struct ctx *x, const struct lex_word *w, size_t n)
{
    uint64_t v;

    (void)n;
    if (cf_is_word(&w[1], "auto"))
        return;
    if (util_parse_uint(w[1].text, CONF_WORKERS_MAX, &v) != 0 || v == 0) {
        cf_errw(x, &w[1], "bad workers '%s': expected auto or a count of processes from 1 to %d",
                w[1].text, CONF_WORKERS_MAX);
        return;
    }
    x->c->global.workers = (unsigned)v;
    x->c->global.workers_auto = false;
}

/* verify on-start|off [timeout DURATION]: the verify command in the background (src/edge/verifyrun.c) */
static void
cf_d_verify(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_global *g = &x->c->global;
    uint64_t ms;

    if (cf_is_word(&w[1], "on-start"))
        g->verify_on_start = true;
    else if (cf_is_word(&w[1], "off"))
        g->verify_on_start = false;
    else {
        cf_errw(x, &w[1], "bad value '%s' for verify: expected on-start or off", w[1].text);
        return;
    }
    if (n == 2)
        return;
    if (n == 3 || !cf_is_word(&w[2], "timeout")) {
        cf_errw(x, &w[2], "verify: expected 'timeout DURATION' after '%s'", w[1].text);
        return;
    }
    if (util_parse_duration(w[3].text, &ms) != 0 || ms == 0) {
        cf_errw(x, &w[3], "bad verify timeout '%s': expected a duration like 60s", w[3].text);
        return;
    }
    g->verify_timeout_ms = ms;
}

/* The directives of the global block (conf.c reads the table; the list is the hint of
 * "unknown directive"). */
static const struct directive global_v[] = {
    {"log", D_COUNT, true, 1, 5, "log stderr|PATH [format logfmt|json] [level info|debug]",
     cf_d_log},
    {"grace", D_COUNT, true, 1, 1, "grace DURATION", cf_d_grace},
    {"splice", D_COUNT, true, 1, 1, "splice on|off|auto", cf_d_splice},
    {"busy-poll", D_COUNT, true, 1, 1, "busy-poll off|DURATION (like 50us)", cf_d_busy_poll},
    {"admin", D_COUNT, true, 1, 2, "admin ADDR:PORT [allow-remote]", cf_d_admin},
    {"admin-host", D_COUNT, true, 1, CONF_ADMIN_HOSTS_MAX, "admin-host NAME ...",
     cf_d_admin_host},
    {"admin-token-file", D_COUNT, true, 1, 1, "admin-token-file PATH", cf_d_admin_token_file},
    {"admin-widest-ban", D_COUNT, true, 2, 2, "admin-widest-ban IPV4-PREFIX IPV6-PREFIX",
     cf_d_admin_widest_ban},
    {"resolvers", D_COUNT, true, 1, MANY, "resolvers ADDR[:PORT] ...", cf_d_resolvers},
    {"timeout", D_COUNT, false, 2, 2, "timeout connect|proxy|idle|hello DURATION", cf_d_timeout},
    {"user", D_COUNT, true, 1, 1, "user NAME", cf_d_user},
    {"group", D_COUNT, true, 1, 1, "group NAME", cf_d_group},
    {"maxconn", D_COUNT, true, 1, 1, "maxconn N", cf_d_maxconn},
    {"workers", D_COUNT, true, 1, 1, "workers N|auto", cf_d_workers},
    {"verify", D_COUNT, true, 1, 3, "verify on-start|off [timeout DURATION]", cf_d_verify},
};
const struct directive_table cf_global_dirs = {
    global_v, ARRAY_LEN(global_v),
    "log, grace, splice, busy-poll, admin, admin-host, admin-token-file, admin-widest-ban, resolvers, "
    "timeout, user, group, maxconn, workers, verify"};
