/*
 * conf: parses the configuration (conf_lex gives the words of each line),
 * validates it and builds an immutable struct conf. Every error becomes a
 * diagnostic and parsing goes on, so one run lists every mistake; the
 * checks that need the whole file (routes, bind overlaps, inherited
 * timeouts) run once everything is read. This is the loader core: the
 * directives, their tables with their handlers, are in conf_global.c,
 * conf_backend.c, conf_listener.c and conf_abuse.c (shared declarations:
 * conf_int.h).
 */
#include "conf.h"

#include <errno.h>
#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "addr.h"
#include "conf_int.h"
#include "conf_lex.h"
#include "util.h"

#define MAX_ERRORS 50
#define FILE_SIZE_MAX (16u << 20)
#define DURATION_MAX_MS (24ull * 60 * 60 * 1000)

#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_PROXY_MS 3000
#define DEFAULT_IDLE_MS (30ull * 60 * 1000)
#define DEFAULT_GRACE_MS 30000
#define DEFAULT_ADMIN_BAN_V4 16 /* admin-widest-ban */
#define DEFAULT_ADMIN_BAN_V6 32
#define DEFAULT_HELLO_MS 5000
#define DEFAULT_QUEUE_MAX 1000
#define DEFAULT_HE_DELAY_MS 250
#define DEFAULT_V6_PREFIX 64
#define DEFAULT_LIMIT_TABLE 65536

const char *const blk_names[] = {"top level", "global", "backend", "listener", ""};

/* ---- diagnostics ---- */

static void
diag_push(struct diag_list *d, const char *file, int line, int col, const char *msg)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        struct conf_diag *nv = realloc(d->v, cap * sizeof(*nv));
        if (nv == NULL)
            return; /* the load still fails: the error count is kept apart */
        d->v = nv;
        d->cap = cap;
    }
    struct conf_diag *g = &d->v[d->n++];
    util_strlcpy(g->file, file != NULL ? file : "", sizeof(g->file));
    g->line = line;
    g->col = col;
    util_strlcpy(g->msg, msg, sizeof(g->msg));
    g->warning = false;
}

static void verr(struct ctx *x, const char *file, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void
verr(struct ctx *x, const char *file, int line, int col, const char *fmt, va_list ap)
{
    char msg[sizeof(((struct conf_diag *)0)->msg)];

    if (x->stop)
        return;
    if (++x->nerr > MAX_ERRORS) {
        diag_push(x->diags, file, line, col, "too many errors, giving up");
        x->stop = true;
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    diag_push(x->diags, file, line, col, msg);
}

/* An error about word <w> of the current line. */
void
cf_errw(struct ctx *x, const struct lex_word *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verr(x, x->file, x->line, w->col, fmt, ap);
    va_end(ap);
}

void
cf_errp(struct ctx *x, const struct conf_pos *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verr(x, p->file, p->line, p->col, fmt, ap);
    va_end(ap);
}

void
cf_warnw(struct ctx *x, const struct lex_word *w, const char *fmt, ...)
{
    char msg[sizeof(((struct conf_diag *)0)->msg)];
    va_list ap;
    size_t n = x->diags->n;

    if (x->stop)
        return;
    int len = snprintf(msg, sizeof(msg), "warning: ");
    va_start(ap, fmt);
    vsnprintf(msg + len, sizeof(msg) - (size_t)len, fmt, ap);
    va_end(ap);
    diag_push(x->diags, x->file, x->line, w->col, msg);
    if (x->diags->n > n)
        x->diags->v[n].warning = true;
}

static void
oom(struct ctx *x)
{
    if (!x->stop) {
        x->nerr++;
        diag_push(x->diags, x->file, x->line, 0, "out of memory");
    }
    x->stop = true;
}

static void
lex_error(void *arg, int line, int col, const char *msg)
{
    struct ctx *x = arg;
    struct conf_pos p = {x->file, line, col};

    cf_errp(x, &p, "%s", msg);
}

/* "line 12" when <p> is in the current file, else "other.conf:12". */
const char *
cf_where(const struct ctx *x, const struct conf_pos *p, char *buf, size_t cap)
{
    if (p->file == x->file)
        snprintf(buf, cap, "line %d", p->line);
    else
        snprintf(buf, cap, "%s:%d", p->file, p->line);
    return buf;
}

/* ---- small helpers ---- */

/*
 * Makes room for element <n> of an array whose capacity is implied by its
 * count (the next power of two), so the conf needs no capacity fields.
 */
void *
cf_append(struct ctx *x, void *v, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0)
        return v;
    size_t cap = n ? n * 2 : 1;
    if (cap > SIZE_MAX / size) {
        oom(x);
        return NULL;
    }
    void *nv = realloc(v, cap * size);
    if (nv == NULL)
        oom(x);
    return nv;
}

struct conf_pos
cf_pos_of(const struct ctx *x, const struct lex_word *w)
{
    struct conf_pos p = {x->file, x->line, w->col};

    return p;
}

bool
cf_is_word(const struct lex_word *w, const char *s)
{
    return strcmp(w->text, s) == 0;
}

static bool
is_brace(const struct lex_word *w, char brace)
{
    return !w->quoted && w->text[0] == brace && w->text[1] == '\0';
}

static const char *
intern(struct ctx *x, const char *name)
{
    struct conf *c = x->c;

    for (size_t i = 0; i < c->nfiles; i++) {
        if (strcmp(c->files[i], name) == 0)
            return c->files[i];
    }
    char **nf = cf_append(x, c->files, c->nfiles, sizeof(*nf));
    if (nf == NULL)
        return NULL;
    c->files = nf;
    char *s = strdup(name);
    if (s == NULL) {
        oom(x);
        return NULL;
    }
    c->files[c->nfiles++] = s;
    return s;
}

bool
cf_name_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

/* Checks a listener, backend or server name; reports and returns false if bad. */
bool
cf_check_name(struct ctx *x, const struct lex_word *w, const char *what)
{
    const char *s = w->text;
    size_t len = strlen(s);

    if (len == 0) {
        cf_errw(x, w, "empty %s name", what);
        return false;
    }
    if (len >= CONF_NAME_MAX) {
        cf_errw(x, w, "%s name '%.20s...' is too long (at most %d characters)", what, s,
                CONF_NAME_MAX - 1);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!cf_name_char(s[i])) {
            cf_errw(x, w, "bad %s name '%s': use letters, digits, '_', '.' and '-'%s", what, s,
                    strchr(s, '{') != NULL ? " (put a blank before '{')" : "");
            return false;
        }
    }
    return true;
}

/* Parses a duration word into <out>; reports and returns false if bad. */
bool
cf_duration(struct ctx *x, const struct lex_word *w, bool zero_ok, uint64_t *out)
{
    uint64_t ms;

    if (util_parse_duration(w->text, &ms) != 0) {
        cf_errw(x, w, "bad duration '%s': expected a duration like 30s, 500ms, 5m", w->text);
        return false;
    }
    if (ms == 0 && !zero_ok) {
        cf_errw(x, w, "a timeout of 0 is impossible: expected a duration like 30s, 500ms, 5m");
        return false;
    }
    if (ms > DURATION_MAX_MS) {
        cf_errw(x, w, "duration '%s' is too long (at most 24h)", w->text);
        return false;
    }
    *out = ms;
    return true;
}

/* Reports a second use, the first being at <first> (line 0: none yet); records the first. */
static bool
first_use_at(struct ctx *x, struct conf_pos *first, const struct lex_word *w, const char *what)
{
    char buf[300];

    if (first->line != 0) {
        cf_errw(x, w, "duplicate '%s' (first at %s; it may appear once per block)", what,
                cf_where(x, first, buf, sizeof(buf)));
        return false;
    }
    *first = cf_pos_of(x, w);
    return true;
}

/* Reports a second use of a once-only directive; records the first. */
bool
cf_first_use(struct ctx *x, enum dir id, const struct lex_word *w, const char *what)
{
    return first_use_at(x, &x->seen[id], w, what);
}

/*
 * Where directive <d> was first used in the block being read (line 0: not
 * yet): its enum dir's, or for a once-only directive without one, a slot
 * of its own. NULL: neither, nothing to remember.
 */
static struct conf_pos *
seen_at(struct ctx *x, const struct directive *d)
{
    if (d->id != D_COUNT)
        return &x->seen[d->id];
    for (size_t i = 0; i < x->nonce; i++)
        if (x->once[i].d == d)
            return &x->once[i].pos;
    if (!d->once || x->nonce == ARRAY_LEN(x->once))
        return NULL;
    x->once[x->nonce].d = d;
    x->once[x->nonce].pos = (struct conf_pos){0};
    return &x->once[x->nonce++].pos;
}

struct conf_backend *
cf_cur_backend(struct ctx *x)
{
    return &x->c->backends[x->bi];
}

struct conf_listener *
cf_cur_listener(struct ctx *x)
{
    return &x->c->listeners[x->bi];
}

bool
cf_unspecified(const struct sockaddr_storage *ss)
{
    return addr_is_unspecified((const struct sockaddr *)ss);
}

void
cf_cidr_list(struct ctx *x, const struct lex_word *w, size_t from, size_t n, struct cidr **v,
             size_t *nv, const char *like)
{
    for (size_t i = from; i < n; i++) {
        struct cidr cd;
        const char *why = NULL;
        if (cidr_parse(w[i].text, &cd, &why) != 0) {
            cf_errw(x, &w[i], "bad network '%s': %s (expected a CIDR like %s)", w[i].text, why,
                    like);
            continue;
        }
        struct cidr *t = cf_append(x, *v, *nv, sizeof(*t));
        if (t == NULL)
            return;
        *v = t;
        (*v)[(*nv)++] = cd;
    }
}

/* ---- blocks ---- */

/* The directives of each block, in the files of their handlers. */
static const struct directive_table *const tables[][3] = {
    [BLK_GLOBAL] = {&cf_global_dirs, &cf_crowdsec_dirs},
    [BLK_BACKEND] = {&cf_backend_dirs},
    [BLK_LISTENER] = {&cf_listener_dirs, &cf_abuse_dirs, &cf_shared_bans_dirs},
};

static const struct directive *
find_directive(enum blk b, const char *name)
{
    for (size_t t = 0; t < ARRAY_LEN(tables[b]) && tables[b][t] != NULL; t++) {
        const struct directive_table *d = tables[b][t];
        for (size_t i = 0; i < d->n; i++) {
            if (strcmp(d->v[i].name, name) == 0)
                return &d->v[i];
        }
    }
    return NULL;
}

/* "a, b, c" of the directives of block <b>, for the "allowed" hint. */
static const char *
directive_list(enum blk b, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t t = 0; t < ARRAY_LEN(tables[b]) && tables[b][t] != NULL; t++) {
        int k = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", tables[b][t]->list);
        if (k < 0 || (size_t)k >= cap - o)
            break;
        o += (size_t)k;
    }
    return buf;
}

/* The block kind other than <not> that has directive <name>, for hints. */
static enum blk
directive_home(const char *name, enum blk not )
{
    static const enum blk order[] = {BLK_GLOBAL, BLK_BACKEND, BLK_LISTENER};

    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        if (order[i] != not &&find_directive(order[i], name) != NULL)
            return order[i];
    }
    return BLK_NONE;
}

static enum blk
block_kind(const char *kw)
{
    if (strcmp(kw, "global") == 0)
        return BLK_GLOBAL;
    if (strcmp(kw, "backend") == 0)
        return BLK_BACKEND;
    if (strcmp(kw, "listener") == 0)
        return BLK_LISTENER;
    return BLK_NONE;
}

static void
open_block(struct ctx *x, enum blk kind, const char *name, const struct conf_pos *kw,
           const struct conf_pos *namepos)
{
    struct conf *c = x->c;
    char buf[300];

    memset(x->seen, 0, sizeof(x->seen));
    x->nonce = 0;
    x->route_unreadable = false;
    x->bpos = *kw;
    util_strlcpy(x->bname, name, sizeof(x->bname));
    x->blk = kind;
    if (kind == BLK_GLOBAL) {
        if (x->global_seen) {
            cf_errp(x, kw, "duplicate global block (first at %s)",
                    cf_where(x, &x->global_pos, buf, sizeof(buf)));
            x->blk = BLK_SKIP;
        }
        x->global_seen = true;
        x->global_pos = *kw;
    } else if (kind == BLK_BACKEND) {
        const struct conf_backend *dup = conf_find_backend(c, name);
        if (dup != NULL)
            cf_errp(x, namepos, "duplicate backend '%s' (first defined at %s)", name,
                    cf_where(x, &dup->pos, buf, sizeof(buf)));
        struct conf_backend *v = cf_append(x, c->backends, c->nbackends, sizeof(*v));
        if (v == NULL)
            return;
        c->backends = v;
        x->bi = c->nbackends++;
        struct conf_backend *b = &c->backends[x->bi];
        memset(b, 0, sizeof(*b));
        util_strlcpy(b->name, name, sizeof(b->name));
        b->balance = BALANCE_ROUND_ROBIN;
        b->pos = *kw;
    } else if (kind == BLK_LISTENER) {
        for (size_t i = 0; i < c->nlisteners; i++) {
            if (strcmp(c->listeners[i].name, name) == 0) {
                cf_errp(x, namepos, "duplicate listener '%s' (first defined at %s)", name,
                        cf_where(x, &c->listeners[i].pos, buf, sizeof(buf)));
                break;
            }
        }
        struct conf_listener *v = cf_append(x, c->listeners, c->nlisteners, sizeof(*v));
        if (v == NULL)
            return;
        c->listeners = v;
        x->bi = c->nlisteners++;
        struct conf_listener *l = &c->listeners[x->bi];
        memset(l, 0, sizeof(*l));
        util_strlcpy(l->name, name, sizeof(l->name));
        l->proto = PROTO_TCP;
        l->limit_v6_prefix = DEFAULT_V6_PREFIX;
        l->limit_table = DEFAULT_LIMIT_TABLE;
        l->pos = *kw;
    }
}

/*
 * SNI needs the client to speak first. On a server-first listener the
 * client waits for the greeting, so waiting for its ClientHello would stall
 * both (the caddy-l4 and Traefik bug); a tcp listener may be either.
 */
static void
tls_only(struct ctx *x, const struct conf_listener *l, enum dir id, const char *what)
{
    const struct conf_pos *p = &x->seen[id];

    if (p->line == 0)
        return;
    if (conf_proto_server_first(l->proto))
        cf_errp(
            x, p,
            "%s on a %s listener: the server speaks first, so waiting for a TLS ClientHello "
            "would stall its greeting (use protocol tls: implicit TLS, as on 465, 993, 995, 443)",
            what, conf_proto_name(l->proto));
    else
        cf_errp(x, p,
                "%s needs protocol tls: a tcp listener's clients may wait for the server to speak "
                "first, and waiting for a ClientHello would stall them",
                what);
}

/* '}': checks what the block requires, then leaves it. */
static void
close_block(struct ctx *x)
{
    if (x->blk == BLK_LISTENER) {
        const struct conf_listener *l = cf_cur_listener(x);
        if (x->seen[D_BIND].line == 0)
            cf_errp(x, &x->bpos, "listener '%s' has no bind (add: bind ADDR:PORT)", x->bname);
        if (x->seen[D_PROTOCOL].line == 0)
            cf_errp(
                x, &x->bpos,
                "listener '%s' has no protocol (add: protocol smtp|submission|imap|pop3|tls|tcp)",
                x->bname);
        if (x->seen[D_ROUTE_ANY].line == 0)
            cf_errp(x, &x->bpos, "listener '%s' has no route (add: " ROUTE_USAGE ")", x->bname);
        else if (x->seen[D_ROUTE].line == 0 && !l->sni_required && !x->route_unreadable)
            cf_errp(x, &x->bpos,
                    "listener '%s' has no default route for clients that match no route sni (add: "
                    "route -> BACKEND[:PORT], or sni-required to refuse them)",
                    x->bname);
        if (x->seen[D_PROTOCOL].line != 0 && l->proto != PROTO_TLS) {
            tls_only(x, l, D_ROUTE_SNI, "route sni");
            tls_only(x, l, D_SNI_REQUIRED, "sni-required");
            tls_only(x, l, D_T_HELLO, "timeout hello");
        }
        if (x->seen[D_PREGREET].line != 0 && x->seen[D_PROTOCOL].line != 0 &&
            l->proto != PROTO_SMTP && l->proto != PROTO_SUBMISSION)
            cf_errp(x, &x->seen[D_PREGREET],
                    "pregreet with protocol %s: only SMTP clients must wait for the greeting "
                    "(protocol smtp or submission)",
                    conf_proto_name(l->proto));
        if (x->seen[D_BAN].line != 0 && l->limit_per_ip == 0 && l->limit_rate == 0 &&
            l->pregreet != PREGREET_REJECT)
            cf_errp(x, &x->seen[D_BAN],
                    "ban has nothing to count: add limit per-ip N, limit rate N/m or pregreet "
                    "reject to this listener");
    } else if (x->blk == BLK_BACKEND) {
        if (x->seen[D_SERVER].line == 0)
            cf_errp(x, &x->bpos, "backend '%s' has no server (add: server NAME ADDR[:PORT])",
                    x->bname);
        const struct conf_backend *b = cf_cur_backend(x);
        for (size_t i = 0; b->check != CHECK_NONE && i < b->nservers; i++) {
            const struct conf_server *sv = &b->servers[i];
            if (!sv->has_port && sv->check_port == 0)
                cf_errp(x, &sv->pos,
                        "server '%s' has no port to check (add a port to its address, or "
                        "check-port N)",
                        sv->name);
        }
    }
    x->blk = BLK_NONE;
}

static void load_file(struct ctx *x, const char *path, const struct conf_pos *from);

static bool
has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static void
include(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_pos from = cf_pos_of(x, &w[0]);

    if (!x->allow_include) {
        cf_errw(x, &w[0], "include is not allowed when the configuration is loaded from memory");
        return;
    }
    if (n != 2) {
        cf_errw(x, n < 2 ? &w[0] : &w[2], "include takes one path (usage: include PATH)");
        return;
    }
    const char *arg = w[1].text;
    if (arg[0] == '\0') {
        cf_errw(x, &w[1], "empty include path");
        return;
    }
    /* Relative to the including file's directory, not to the working directory. */
    const char *slash = strrchr(x->file, '/');
    size_t dlen = arg[0] != '/' && slash != NULL ? (size_t)(slash - x->file) + 1 : 0;
    size_t alen = strlen(arg);
    char *path = malloc(dlen + alen + 1);
    if (path == NULL) {
        oom(x);
        return;
    }
    memcpy(path, x->file, dlen);
    memcpy(path + dlen, arg, alen + 1);

    if (!has_glob(arg)) {
        load_file(x, path, &from);
        free(path);
        return;
    }
    glob_t g;
    int r = glob(path, 0, NULL, &g);
    if (r == 0) {
        for (size_t i = 0; i < g.gl_pathc && !x->stop; i++)
            load_file(x, g.gl_pathv[i], &from);
    } else if (r == GLOB_NOSPACE) {
        oom(x);
    } else if (r != GLOB_NOMATCH) {
        cf_errw(x, &w[1], "cannot read the files matching '%s'", path);
    }
    if (r != GLOB_NOMATCH)
        globfree(&g);
    free(path);
}

static void
top_statement(struct ctx *x, const struct lex_word *w, size_t n, bool bad)
{
    size_t ob = 0;

    while (ob < n && !is_brace(&w[ob], '{'))
        ob++;
    if (is_brace(&w[0], '}')) {
        cf_errw(x, &w[0], "'}' without an open block");
        return;
    }
    if (ob == 0) {
        cf_errw(
            x, &w[0],
            "'{' without a block header (a block opens on the line of its name: listener NAME {)");
        x->blk = BLK_SKIP;
        x->bpos = cf_pos_of(x, &w[0]);
        x->bname[0] = '\0';
        return;
    }
    if (bad) {
        /* The header is unusable; swallow the block so its lines do not cascade. */
        if (ob < n) {
            x->blk = BLK_SKIP;
            x->bpos = cf_pos_of(x, &w[0]);
            x->bname[0] = '\0';
        }
        return;
    }
    if (ob + 1 < n)
        cf_errw(x, &w[ob + 1],
                "unexpected text after '{' (a block's content starts on the next line)");

    const char *kw = w[0].text;
    if (strcmp(kw, "include") == 0) {
        if (ob < n)
            cf_errw(x, &w[ob], "unexpected '{' after include");
        else
            include(x, w, n);
        return;
    }
    enum blk kind = block_kind(kw);
    if (kind == BLK_NONE) {
        if (ob < n) {
            cf_errw(x, &w[0], "unknown block '%s' (expected global, backend or listener)", kw);
            x->blk = BLK_SKIP;
            x->bpos = cf_pos_of(x, &w[0]);
            x->bname[0] = '\0';
            return;
        }
        enum blk home = directive_home(kw, BLK_NONE);
        if (home != BLK_NONE)
            cf_errw(x, &w[0], "statement outside a block: '%s' belongs in a %s block", kw,
                    blk_names[home]);
        else
            cf_errw(x, &w[0],
                    "statement outside a block: unknown keyword '%s' (the top level has global, "
                    "backend, listener and include)",
                    kw);
        return;
    }

    size_t want = kind == BLK_GLOBAL ? 1 : 2;
    const char *usage = kind == BLK_GLOBAL    ? "global {"
                        : kind == BLK_BACKEND ? "backend NAME {"
                                              : "listener NAME {";
    struct conf_pos kwpos = cf_pos_of(x, &w[0]);
    bool ok = true;
    if (ob < want) {
        cf_errw(x, &w[0], "%s needs a name (usage: %s)", kw, usage);
        ok = false;
    } else if (ob > want) {
        cf_errw(x, &w[want], "unexpected '%s' after '%s%s%s' (usage: %s)", w[want].text, kw,
                want > 1 ? " " : "", want > 1 ? w[1].text : "", usage);
        ok = false;
    } else if (want == 2 && !cf_check_name(x, &w[1], kw)) {
        ok = false;
    }
    if (ob == n) {
        if (!ok)
            return;
        const struct lex_word *last = &w[n - 1];
        struct conf_pos p = {x->file, x->line, last->end_col};
        cf_errp(x, &p, "expected '{' at the end of the line (usage: %s)", usage);
        x->pending = true;
        x->pending_blk = kind;
        x->pending_pos = kwpos;
        util_strlcpy(x->pending_name, want == 2 ? w[1].text : "", sizeof(x->pending_name));
        return;
    }
    if (!ok) {
        x->blk = BLK_SKIP;
        x->bpos = kwpos;
        x->bname[0] = '\0';
        return;
    }
    struct conf_pos np = want == 2 ? cf_pos_of(x, &w[1]) : kwpos;
    open_block(x, kind, want == 2 ? w[1].text : "", &kwpos, &np);
}

static void
block_statement(struct ctx *x, const struct lex_word *w, size_t n, bool bad)
{
    char buf[300], list[512];
    struct conf_pos *seen;

    if (n == 1 && is_brace(&w[0], '}')) {
        close_block(x);
        return;
    }
    /* A new block header here almost always means a forgotten '}'. */
    if (is_brace(&w[n - 1], '{') && block_kind(w[0].text) != BLK_NONE) {
        if (x->blk == BLK_SKIP)
            cf_errw(x, &w[0], "missing '}' before this line: blocks do not nest");
        else
            cf_errw(
                x, &w[0],
                "missing '}' before this line: %s%s%s (opened at %s) is still open, and blocks do "
                "not nest",
                blk_names[x->blk], x->bname[0] ? " " : "", x->bname,
                cf_where(x, &x->bpos, buf, sizeof(buf)));
        close_block(x);
        top_statement(x, w, n, bad);
        return;
    }
    bool closes = is_brace(&w[n - 1], '}');
    if (closes) {
        cf_errw(x, &w[n - 1], "'}' must be alone on its line");
        n--;
    }
    if (x->blk == BLK_SKIP)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (is_brace(&w[i], '{')) {
            cf_errw(x, &w[i], "unexpected '{': blocks do not nest");
            goto done;
        }
    }

    const struct directive *d = find_directive(x->blk, w[0].text);
    if (d == NULL) {
        if (bad)
            goto done;
        if (cf_is_word(&w[0], "include")) {
            cf_errw(x, &w[0], "include is only allowed at the top level, outside blocks");
            goto done;
        }
        enum blk home = directive_home(w[0].text, x->blk);
        char hint[64] = "";
        if (home != BLK_NONE)
            snprintf(hint, sizeof(hint), "; '%s' belongs in a %s block", w[0].text,
                     blk_names[home]);
        cf_errw(x, &w[0], "unknown directive '%s' in a %s block (allowed: %s)%s", w[0].text,
                blk_names[x->blk], directive_list(x->blk, list, sizeof(list)), hint);
        goto done;
    }
    if (bad) {
        /* Count it as present, so its absence is not reported as well. */
        if ((seen = seen_at(x, d)) != NULL && seen->line == 0)
            *seen = cf_pos_of(x, &w[0]);
        if (d->id == D_ROUTE_ANY)
            x->route_unreadable = true;
        goto done;
    }
    seen = seen_at(x, d);
    if (d->once && seen != NULL && !first_use_at(x, seen, &w[0], d->name))
        goto done;
    if (!d->once && seen != NULL && seen->line == 0)
        *seen = cf_pos_of(x, &w[0]);
    if (n - 1 < d->min) {
        cf_errw(x, &w[0], "too few arguments for '%s' (usage: %s)", d->name, d->usage);
        goto done;
    }
    if (d->max != MANY && n - 1 > d->max) {
        cf_errw(x, &w[d->max + 1], "too many arguments for '%s' (usage: %s)", d->name, d->usage);
        goto done;
    }
    d->fn(x, w, n);
done:
    if (closes)
        close_block(x);
}

static void
statement(struct ctx *x, const struct lex_word *w, size_t n, bool bad)
{
    if (x->pending) {
        x->pending = false;
        if (n == 1 && is_brace(&w[0], '{')) {
            struct conf_pos np = x->pending_pos;
            open_block(x, x->pending_blk, x->pending_name, &x->pending_pos, &np);
            return;
        }
    }
    if (x->blk == BLK_NONE)
        top_statement(x, w, n, bad);
    else
        block_statement(x, w, n, bad);
}

static void
parse_text(struct ctx *x, const char *file, const char *text, size_t len)
{
    const char *saved_file = x->file;
    int saved_line = x->line;
    struct lexer lx;

    x->file = file;
    x->line = 0;
    lex_init(&lx, text, len, lex_error, x);
    while (!x->stop) {
        int r = lex_next(&lx);
        if (r < 0)
            oom(x);
        if (r <= 0)
            break;
        x->line = lx.line;
        statement(x, lx.words, lx.nwords, lx.bad);
    }
    lex_free(&lx);
    if (x->blk != BLK_NONE) {
        if (x->blk == BLK_SKIP)
            cf_errp(x, &x->bpos, "unterminated block: missing '}' before the end of the file");
        else
            cf_errp(x, &x->bpos,
                    "unterminated %s%s%s block: missing '}' before the end of the file",
                    blk_names[x->blk], x->bname[0] ? " " : "", x->bname);
    }
    x->blk = BLK_NONE;
    x->pending = false;
    x->file = saved_file;
    x->line = saved_line;
}

/* Reads <path> whole; <from> is the include statement (NULL for the main file). */
static void
load_file(struct ctx *x, const char *path, const struct conf_pos *from)
{
    struct conf_pos top = {path, 0, 0};
    const struct conf_pos *at = from != NULL ? from : &top;
    struct stat st;

    if (x->depth >= INCLUDE_DEPTH_MAX) {
        cf_errp(x, at, "includes nested too deeply (more than %d files deep) at '%s'",
                INCLUDE_DEPTH_MAX, path);
        return;
    }
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        cf_errp(x, at, "cannot open '%s': %s", path, strerror(errno));
        return;
    }
    if (fstat(fileno(fp), &st) != 0) {
        cf_errp(x, at, "cannot read '%s': %s", path, strerror(errno));
        fclose(fp);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        cf_errp(x, at, "cannot read '%s': it is a directory", path);
        fclose(fp);
        return;
    }
    for (int i = 0; i < x->depth; i++) {
        if (x->open[i].dev == st.st_dev && x->open[i].ino == st.st_ino) {
            cf_errp(x, at, "include loop: '%s' is already being read", path);
            fclose(fp);
            return;
        }
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= FILE_SIZE_MAX) {
                cf_errp(x, at, "'%s' is larger than %u MiB", path, FILE_SIZE_MAX >> 20);
                free(text);
                fclose(fp);
                return;
            }
            cap = cap ? cap * 2 : 8192;
            char *nt = realloc(text, cap + 1);
            if (nt == NULL) {
                free(text);
                fclose(fp);
                oom(x);
                return;
            }
            text = nt;
        }
        size_t r = fread(text + len, 1, cap - len, fp);
        if (r == 0)
            break;
        len += r;
    }
    if (ferror(fp)) {
        cf_errp(x, at, "cannot read '%s': %s", path, strerror(errno));
        free(text);
        fclose(fp);
        return;
    }
    fclose(fp);
    const char *name = intern(x, path);
    if (name != NULL) {
        x->open[x->depth].dev = st.st_dev;
        x->open[x->depth].ino = st.st_ino;
        x->depth++;
        parse_text(x, name, text, len);
        x->depth--;
    }
    free(text);
}

/* ---- checks over the whole configuration ---- */

static struct conf_backend *
add_implicit_backend(struct ctx *x, const struct pend_route *r)
{
    struct conf *c = x->c;

    struct conf_backend *v = cf_append(x, c->backends, c->nbackends, sizeof(*v));
    if (v == NULL)
        return NULL;
    c->backends = v;
    struct conf_backend *b = &c->backends[c->nbackends];
    memset(b, 0, sizeof(*b));
    b->servers = calloc(1, sizeof(*b->servers));
    if (b->servers == NULL) {
        oom(x);
        return NULL;
    }
    c->nbackends++;
    util_strlcpy(b->name, r->target, sizeof(b->name));
    b->nservers = 1;
    b->balance = BALANCE_ROUND_ROBIN;
    b->pos = r->pos;
    struct conf_server *s = &b->servers[0];
    util_strlcpy(s->name, r->target, sizeof(s->name));
    addr_format_ip((const struct sockaddr *)&r->addr, s->host, sizeof(s->host));
    s->addr = r->addr;
    s->has_port = true;
    s->pos = r->pos;
    return b;
}

/* "a, b, c" of the explicit backends, shortened to fit <cap>. */
static void
backend_list(const struct conf *c, size_t nexplicit, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < nexplicit; i++) {
        size_t need = strlen(c->backends[i].name) + 2;
        if (len + need + 5 >= cap) {
            snprintf(buf + len, cap - len, "%s...", i ? ", " : "");
            return;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", c->backends[i].name);
    }
}

static struct conf_route *
route_at(struct conf *c, const struct pend_route *r)
{
    struct conf_listener *l = &c->listeners[r->listener];

    return r->sni == SIZE_MAX ? &l->route : &l->sni_routes[r->sni].route;
}

/*
 * Resolves routes to backend indices, creating the implicit backends of
 * "route -> IP:PORT". Indices, not pointers: the array may still move.
 */
static void
resolve_routes(struct ctx *x, size_t *idx)
{
    struct conf *c = x->c;
    size_t nexplicit = c->nbackends;
    char list[120];

    for (size_t i = 0; i < x->nroutes && !x->stop; i++) {
        const struct pend_route *r = &x->routes[i];
        size_t bi;
        idx[i] = SIZE_MAX;
        for (bi = r->implicit ? nexplicit : 0; bi < c->nbackends; bi++) {
            if (strcmp(c->backends[bi].name, r->target) == 0)
                break;
        }
        if (bi == c->nbackends && r->implicit) {
            if (add_implicit_backend(x, r) == NULL)
                return;
        } else if (bi == c->nbackends) {
            struct sockaddr_storage ss;
            if (addr_parse(r->target, ADDR_PORT_OPTIONAL, &ss, NULL, NULL) == 0) {
                cf_errp(x, &r->pos,
                        "route to the address '%s' needs a port (route -> %s:PORT), or define a "
                        "backend of that name",
                        r->target, r->target);
            } else if (nexplicit == 0) {
                cf_errp(x, &r->pos, "route to unknown backend '%s' (no backend is defined)",
                        r->target);
            } else {
                backend_list(c, nexplicit, list, sizeof(list));
                cf_errp(x, &r->pos, "route to unknown backend '%s' (defined backends: %s)",
                        r->target, list);
            }
            continue;
        }
        idx[i] = bi;

        const struct conf_backend *b = &c->backends[bi];
        if (r->port != 0)
            continue;
        for (size_t s = 0; s < b->nservers; s++) {
            if (!b->servers[s].has_port) {
                cf_errp(
                    x, &r->pos,
                    "route -> %s needs a port: server '%s' of backend '%s' has none (write route "
                    "-> %s:PORT)",
                    r->target, b->servers[s].name, b->name, r->target);
                break;
            }
        }
    }
}

struct bind_ref {
    unsigned port;
    size_t li, bi;
    const struct conf_listener *l;
    const struct conf_bind *b;
};

static int
bind_ref_cmp(const void *a, const void *b)
{
    const struct bind_ref *x = a, *y = b;

    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    /* Keep file order within a port, so the later bind is the one blamed. */
    if (x->li != y->li)
        return x->li < y->li ? -1 : 1;
    return x->bi < y->bi ? -1 : x->bi > y->bi;
}

/*
 * Linux refuses (or, with SO_REUSEPORT, silently shares) a second listening
 * socket on a port when the addresses are equal or either is a wildcard of
 * the other's family; ":PORT" is dual-stack and so covers both families.
 */
static bool
binds_overlap(const struct conf_bind *a, const struct conf_bind *b)
{
    if (a->any || b->any)
        return true;
    if (a->addr.ss_family != b->addr.ss_family)
        return false;
    return cf_unspecified(&a->addr) || cf_unspecified(&b->addr) ||
           addr_equal((const struct sockaddr *)&a->addr, (const struct sockaddr *)&b->addr);
}

const char *
conf_bind_format(const struct conf_bind *b, char *buf, size_t cap)
{
    if (b->any)
        snprintf(buf, cap, ":%u", addr_port((const struct sockaddr *)&b->addr));
    else
        addr_format((const struct sockaddr *)&b->addr, buf, cap);
    return buf;
}

/*
 * A route whose server is one of our own binds makes every client connect
 * to mailedge again, and that session again, until descriptors run out.
 * Only IP literals can be checked here, and only against the addresses a
 * bind surely answers (addr_reaches_bind); names and the host's other
 * addresses under a wildcard bind are caught at run time (src/edge/ownaddr.c).
 */
static void
check_self_route(struct ctx *x, const struct conf_route *r)
{
    const struct conf *c = x->c;
    const struct conf_backend *b = r->backend;

    if (b == NULL)
        return;
    for (size_t s = 0; s < b->nservers; s++) {
        const struct conf_server *sv = &b->servers[s];
        if (sv->is_name)
            continue;
        struct sockaddr_storage dst = sv->addr;
        if (r->port != 0)
            addr_set_port((struct sockaddr *)&dst, r->port);
        for (size_t i = 0; i < c->nlisteners; i++) {
            for (size_t j = 0; j < c->listeners[i].nbinds; j++) {
                const struct conf_bind *bd = &c->listeners[i].binds[j];
                if (!addr_reaches_bind((const struct sockaddr *)&dst,
                                       (const struct sockaddr *)&bd->addr, bd->any))
                    continue;
                char a[ADDR_STRLEN], bs[ADDR_STRLEN], w[300];
                const struct conf_pos *p = &bd->pos;
                if (p->file == r->pos.file)
                    snprintf(w, sizeof(w), "line %d col %d", p->line, p->col);
                else
                    snprintf(w, sizeof(w), "%s:%d:%d", p->file, p->line, p->col);
                addr_format((const struct sockaddr *)&dst, a, sizeof(a));
                conf_bind_format(bd, bs, sizeof(bs));
                cf_errp(x, &r->pos,
                        "route to %s (server '%s' of backend '%s') loops back to mailedge: bind %s "
                        "of listener '%s' at %s accepts it",
                        a, sv->name, b->name, bs, c->listeners[i].name, w);
                return;
            }
        }
    }
}

static void
check_self_routes(struct ctx *x)
{
    const struct conf *c = x->c;

    for (size_t i = 0; i < c->nlisteners; i++) {
        check_self_route(x, &c->listeners[i].route);
        for (size_t j = 0; j < c->listeners[i].nsni_routes; j++)
            check_self_route(x, &c->listeners[i].sni_routes[j].route);
    }
}

static void
check_binds(struct ctx *x)
{
    const struct conf *c = x->c;
    size_t n = 0;

    for (size_t i = 0; i < c->nlisteners; i++)
        n += c->listeners[i].nbinds;
    if (n < 2)
        return;
    struct bind_ref *refs = calloc(n, sizeof(*refs));
    if (refs == NULL) {
        oom(x);
        return;
    }
    n = 0;
    for (size_t i = 0; i < c->nlisteners; i++) {
        for (size_t j = 0; j < c->listeners[i].nbinds; j++) {
            const struct conf_bind *b = &c->listeners[i].binds[j];
            refs[n].port = addr_port((const struct sockaddr *)&b->addr);
            refs[n].li = i;
            refs[n].bi = j;
            refs[n].l = &c->listeners[i];
            refs[n].b = b;
            n++;
        }
    }
    qsort(refs, n, sizeof(*refs), bind_ref_cmp);
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo + 1; hi < n && refs[hi].port == refs[lo].port; hi++)
            ;
        for (size_t j = lo + 1; j < hi; j++) {
            for (size_t i = lo; i < j; i++) {
                if (!binds_overlap(refs[i].b, refs[j].b))
                    continue;
                char a[ADDR_STRLEN], b[ADDR_STRLEN], w[300];
                const struct conf_pos *p = &refs[i].b->pos;
                if (p->file == refs[j].b->pos.file)
                    snprintf(w, sizeof(w), "line %d col %d", p->line, p->col);
                else
                    snprintf(w, sizeof(w), "%s:%d:%d", p->file, p->line, p->col);
                conf_bind_format(refs[j].b, a, sizeof(a));
                conf_bind_format(refs[i].b, b, sizeof(b));
                if (strcmp(a, b) == 0)
                    cf_errp(x, &refs[j].b->pos, "bind %s is already used by listener '%s' at %s", a,
                            refs[i].l->name, w);
                else
                    cf_errp(x, &refs[j].b->pos,
                            "bind %s overlaps %s of listener '%s' at %s: a wildcard covers every "
                            "address",
                            a, b, refs[i].l->name, w);
                break;
            }
        }
    }
    free(refs);
}

/* The admin endpoint cannot share a port with a listener. */
static void
check_admin_bind(struct ctx *x)
{
    const struct conf_bind *ab = &x->c->global.admin;

    if (!x->c->global.admin_set)
        return;
    for (size_t i = 0; i < x->c->nlisteners; i++) {
        const struct conf_listener *l = &x->c->listeners[i];
        for (size_t j = 0; j < l->nbinds; j++) {
            const struct conf_bind *b = &l->binds[j];
            if (addr_port((const struct sockaddr *)&b->addr) !=
                    addr_port((const struct sockaddr *)&ab->addr) ||
                !binds_overlap(ab, b))
                continue;
            char a[ADDR_STRLEN], o[ADDR_STRLEN], w[300];
            if (b->pos.file == ab->pos.file)
                snprintf(w, sizeof(w), "line %d col %d", b->pos.line, b->pos.col);
            else
                snprintf(w, sizeof(w), "%s:%d:%d", b->pos.file, b->pos.line, b->pos.col);
            cf_errp(x, &ab->pos, "admin %s overlaps bind %s of listener '%s' at %s",
                    conf_bind_format(ab, a, sizeof(a)), conf_bind_format(b, o, sizeof(o)), l->name,
                    w);
            return;
        }
    }
}

static void
finish(struct ctx *x)
{
    struct conf *c = x->c;
    size_t *idx = NULL;

    if (x->nroutes > 0) {
        idx = calloc(x->nroutes, sizeof(*idx));
        if (idx == NULL) {
            oom(x);
            return;
        }
        resolve_routes(x, idx);
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        struct conf_backend *b = &c->backends[i];
        if (b->timeout_connect_ms == 0)
            b->timeout_connect_ms = x->g_connect ? x->g_connect : DEFAULT_CONNECT_MS;
        if (b->queue_max == 0)
            b->queue_max = DEFAULT_QUEUE_MAX;
        if (b->he_delay_ms == 0)
            b->he_delay_ms = DEFAULT_HE_DELAY_MS;
        /* send-proxy may come after check in the block. */
        if (b->check_send_proxy < 0)
            b->check_send_proxy = b->send_proxy;
    }
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        if (l->timeout_proxy_ms == 0)
            l->timeout_proxy_ms = x->g_proxy ? x->g_proxy : DEFAULT_PROXY_MS;
        if (l->timeout_idle_ms == 0)
            l->timeout_idle_ms = x->g_idle ? x->g_idle : DEFAULT_IDLE_MS;
        if (l->timeout_hello_ms == 0)
            l->timeout_hello_ms = x->g_hello ? x->g_hello : DEFAULT_HELLO_MS;
    }
    /* The backends array is final now: pointers into it stay valid. */
    for (size_t i = 0; idx != NULL && i < x->nroutes && !x->stop; i++) {
        if (idx[i] != SIZE_MAX)
            route_at(c, &x->routes[i])->backend = &c->backends[idx[i]];
    }
    free(idx);
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        bool authority = l->route.backend != NULL && l->route.backend->send_authority;
        for (size_t j = 0; j < l->nsni_routes; j++) {
            const struct conf_backend *b = l->sni_routes[j].route.backend;
            authority = authority || (b != NULL && b->send_authority);
        }
        /* Without a use for the server name, a TLS client is connected at once. */
        l->peek_hello =
            l->proto == PROTO_TLS && (l->nsni_routes > 0 || l->sni_required || authority);
    }
    check_binds(x);
    check_self_routes(x);
    check_admin_bind(x);
    cf_admin_token_read(x);
    cf_crowdsec_finish(x);
    if (x->c->global.admin_opt_pos.line != 0 && !x->c->global.admin_set)
        cf_errp(x, &x->c->global.admin_opt_pos,
                "admin-host, admin-token-file and admin-widest-ban need 'admin ADDR:PORT' too");
    if (x->c->global.group_set && !x->c->global.user_set)
        cf_errp(x, &x->c->global.group_pos,
                "group needs user: write 'user NAME' in the global block too");
}

/* ---- entry points ---- */

static long auto_cpus = 1; /* conf_set_cpus() */

unsigned
conf_workers_auto(long cpus)
{
    if (cpus < 1)
        return 1;
    return cpus > CONF_WORKERS_MAX ? CONF_WORKERS_MAX : (unsigned)cpus;
}

void
conf_set_cpus(long cpus)
{
    auto_cpus = cpus;
}

static struct conf *
conf_new(void)
{
    struct conf *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->global.log_format = LOG_FORMAT_LOGFMT;
    c->global.grace_ms = DEFAULT_GRACE_MS;
    c->global.splice = CONF_SPLICE_AUTO;
    c->global.workers = conf_workers_auto(auto_cpus);
    c->global.workers_auto = true;
    c->global.verify_timeout_ms = 60000;
    c->global.admin_ban_v4 = DEFAULT_ADMIN_BAN_V4;
    c->global.admin_ban_v6 = DEFAULT_ADMIN_BAN_V6;
    return c;
}

typedef void loader_fn(struct ctx *x, const void *arg);

struct text_arg {
    const char *name, *text;
    size_t len;
};

static void
load_text(struct ctx *x, const void *arg)
{
    const struct text_arg *t = arg;
    const char *name = intern(x, t->name);

    if (name == NULL)
        return;
    if (t->len > FILE_SIZE_MAX) {
        struct conf_pos p = {name, 0, 0};
        cf_errp(x, &p, "configuration is larger than %u MiB", FILE_SIZE_MAX >> 20);
        return;
    }
    parse_text(x, name, t->text, t->len);
}

static void
load_path(struct ctx *x, const void *arg)
{
    load_file(x, arg, NULL);
}

static int
load(const char *name, loader_fn *fn, const void *arg, bool allow_include, struct conf **out,
     struct diag_list *diags)
{
    struct ctx x;

    *out = NULL;
    memset(&x, 0, sizeof(x));
    x.diags = diags;
    x.allow_include = allow_include;
    x.c = conf_new();
    if (x.c == NULL) {
        diag_push(diags, name, 0, 0, "out of memory");
        return -1;
    }
    fn(&x, arg);
    if (!x.stop) {
        finish(&x);
        if (x.nerr == 0 && x.c->nlisteners == 0) {
            struct conf_pos p = {name, 0, 0};
            cf_errp(&x, &p, "no listener is defined, so there is nothing to do");
        }
    }
    free(x.routes);
    if (x.nerr > 0) {
        conf_free(x.c);
        return -1;
    }
    *out = x.c;
    return 0;
}

int
conf_load(const char *path, struct conf **out, struct diag_list *diags)
{
    return load(path, load_path, path, true, out, diags);
}

int
conf_load_string(const char *name, const char *text, size_t len, bool allow_include,
                 struct conf **out, struct diag_list *diags)
{
    struct text_arg t = {name, text != NULL ? text : "", text != NULL ? len : 0};

    return load(name, load_text, &t, allow_include, out, diags);
}

void
conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nbackends; i++)
        free(c->backends[i].servers);
    free(c->backends);
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        free(l->binds);
        free(l->trusted);
        free(l->allow);
        for (size_t j = 0; j < l->nsni_routes; j++)
            free(l->sni_routes[j].names);
        free(l->sni_routes);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->nfiles; i++)
        free(c->files[i]);
    free(c->files);
    explicit_bzero(c->global.admin_token, sizeof(c->global.admin_token));
    free(c);
}

const struct conf_backend *
conf_find_backend(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->nbackends; i++) {
        if (strcmp(c->backends[i].name, name) == 0)
            return &c->backends[i];
    }
    return NULL;
}

void
conf_diag_text(const struct conf_diag *d, char *buf, size_t cap)
{
    if (d->line > 0)
        snprintf(buf, cap, "%s:%d:%d: %s", d->file, d->line, d->col, d->msg);
    else
        snprintf(buf, cap, "%s: %s", d->file, d->msg);
}

void
diag_list_print(const struct diag_list *d, void *fp)
{
    char buf[sizeof(d->v->file) + sizeof(d->v->msg) + 32];

    for (size_t i = 0; i < d->n; i++) {
        conf_diag_text(&d->v[i], buf, sizeof(buf));
        fprintf(fp, "%s\n", buf);
    }
}

void
diag_list_free(struct diag_list *d)
{
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}
