/*
 * conf_int: what the configuration loader's files share, and nothing else
 * includes. conf.c is the loader core (blocks, duplicate and required
 * tracking, includes, checks across blocks); each of conf_global.c,
 * conf_backend.c, conf_listener.c and conf_abuse.c holds the handlers of
 * its directives and their table (struct directive_table, at its end). A handler gets the parse context, the words of
 * its line (w[0] is the keyword) and their count, already checked against
 * the table's bounds; it reports with cf_errw()/cf_errp() and carries on.
 */
#ifndef MAILEDGE_CONF_INT_H
#define MAILEDGE_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conf.h"
#include "conf_lex.h"

#define INCLUDE_DEPTH_MAX 16

/* Directives whose first appearance the loader's checks look at (required
 * ones, checks across directives, sub-keywords); a once-only directive
 * needs none (its table entry is enough: D_COUNT). */
enum dir {
    D_T_CONNECT,
    D_T_PROXY,
    D_T_IDLE,
    D_T_HELLO,
    D_SERVER,
    D_BIND,
    D_PROTOCOL,
    D_ACCEPT_PROXY,
    D_ROUTE,     /* the default route, route -> */
    D_ROUTE_ANY, /* any route line */
    D_ROUTE_SNI, /* the first route sni */
    D_SNI_REQUIRED,
    D_LIMIT_PER_IP,
    D_LIMIT_RATE,
    D_LIMIT_V6,
    D_LIMIT_TABLE,
    D_BAN,
    D_PREGREET,
    D_COUNT
};

enum blk { BLK_NONE, BLK_GLOBAL, BLK_BACKEND, BLK_LISTENER, BLK_SKIP };

extern const char *const blk_names[]; /* indexed by enum blk, for messages */

/* A route waits here until every backend is known. */
struct pend_route {
    size_t listener;
    size_t sni;                   /* index in its sni_routes, or SIZE_MAX: the default route */
    unsigned port;                /* of the route; 0: each server's own */
    char target[CONF_HOST_MAX]; /* backend name, or the address of an implicit one */
    bool implicit;
    struct sockaddr_storage addr; /* implicit only */
    struct conf_pos pos;          /* of the target word */
};

struct open_file {
    dev_t dev;
    ino_t ino;
};

struct ctx {
    struct conf *c;
    struct diag_list *diags;
    size_t nerr;
    bool stop;
    bool allow_include;
    const char *file; /* interned name of the file being read */
    int line;
    struct open_file open[INCLUDE_DEPTH_MAX];
    int depth;

    enum blk blk;         /* the block being read */
    size_t bi;            /* its index in backends or listeners */
    struct conf_pos bpos; /* its keyword */
    char bname[CONF_NAME_MAX];
    struct conf_pos seen[D_COUNT]; /* first use of each directive in it (line 0: none) */
    struct {                       /* first use of its once-only directives without an enum dir */
        const struct directive *d;
        struct conf_pos pos;
    } once[32];                    /* more than any block has directives */
    size_t nonce;
    bool route_unreadable;         /* a route line was too broken to tell its kind */

    /* A block header without '{': opened if the next line is a lone '{'. */
    bool pending;
    enum blk pending_blk;
    char pending_name[CONF_NAME_MAX];
    struct conf_pos pending_pos;

    bool global_seen;
    struct conf_pos global_pos;
    uint64_t g_connect, g_proxy, g_idle, g_hello; /* 0: not set */

    char admin_token_path[4096]; /* admin-token-file, read by cf_admin_token_read() */
    struct conf_pos admin_token_pos;
    char cs_key_path[4096];      /* crowdsec-key-file, read by cf_crowdsec_finish() */
    char cs_key_env[CONF_NAME_MAX]; /* crowdsec-key-env */
    struct conf_pos cs_key_pos;
    struct conf_pos cs_opt_pos;  /* the first crowdsec-* option, for "needs crowdsec" */

    struct pend_route *routes;
    size_t nroutes;
};

/* The usage of route, in conf_listener.c's messages and in conf.c's. */
#define ROUTE_USAGE "route -> BACKEND[:PORT]"

/* ---- diagnostics and helpers (conf.c) ---- */

/* An error about word <w> of the current line. */
void cf_errw(struct ctx *x, const struct lex_word *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A warning about word <w>: listed like an error ("warning: ..."), but the load succeeds. */
void cf_warnw(struct ctx *x, const struct lex_word *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error at <p>. */
void cf_errp(struct ctx *x, const struct conf_pos *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "line 12" when <p> is in the current file, else "other.conf:12". */
const char *cf_where(const struct ctx *x, const struct conf_pos *p, char *buf, size_t cap);
/* Room for element <n> of a conf array (capacity implied by the count); NULL: out of memory. */
void *cf_append(struct ctx *x, void *v, size_t n, size_t size);
struct conf_pos cf_pos_of(const struct ctx *x, const struct lex_word *w);
bool cf_is_word(const struct lex_word *w, const char *s);
/* A character of a listener, backend or server name. */
bool cf_name_char(char ch);
/* Checks a listener, backend or server name; reports and returns false if bad. */
bool cf_check_name(struct ctx *x, const struct lex_word *w, const char *what);
/* Parses a duration word into <out>; reports and returns false if bad. */
bool cf_duration(struct ctx *x, const struct lex_word *w, bool zero_ok, uint64_t *out);
/* Reports a second use of a once-only directive; records the first. */
bool cf_first_use(struct ctx *x, enum dir id, const struct lex_word *w, const char *what);
/* The block being read. */
struct conf_backend *cf_cur_backend(struct ctx *x);
struct conf_listener *cf_cur_listener(struct ctx *x);
/* 0.0.0.0 or :: */
bool cf_unspecified(const struct sockaddr_storage *ss);
/*
 * Appends the networks of words <from> to <n> to the array <*v> of <*nv>;
 * reports a bad one ("expected a CIDR like <like>") and goes on with the next.
 */
void cf_cidr_list(struct ctx *x, const struct lex_word *w, size_t from, size_t n, struct cidr **v,
                  size_t *nv, const char *like);

/* ---- directive tables, each in the file of its handlers ---- */

typedef void directive_fn(struct ctx *x, const struct lex_word *w, size_t n);

#define MANY ((size_t)-1)

/* One directive of a block: keyword, argument count, handler. */
struct directive {
    const char *name;
    enum dir id;     /* D_COUNT: none (the loader's checks need not find it) */
    bool once;       /* at most once per block */
    size_t min, max; /* words after the keyword; max MANY: no bound */
    const char *usage;
    directive_fn *fn;
};

/* The directives a file adds to a block, and their names for the "allowed" hint. */
struct directive_table {
    const struct directive *v;
    size_t n;
    const char *list;
};

extern const struct directive_table cf_global_dirs;   /* conf_global.c */
extern const struct directive_table cf_backend_dirs;  /* conf_backend.c */
extern const struct directive_table cf_listener_dirs; /* conf_listener.c */
extern const struct directive_table cf_abuse_dirs;    /* conf_abuse.c, a listener's too */
extern const struct directive_table cf_crowdsec_dirs; /* conf_crowdsec.c, global */
extern const struct directive_table cf_shared_bans_dirs; /* conf_crowdsec.c, a listener's */

/* Handlers in more than one table: timeout (conf_listener.c) in every block,
 * maxconn (conf_global.c) in the global block and listeners. */
directive_fn cf_d_timeout, cf_d_maxconn;
/* Reads the admin-token-file into the conf (after the whole file: its owner may be 'user'). */
void cf_admin_token_read(struct ctx *x);
/*
 * Reads a secret (one token of printable characters, a final newline
 * dropped) from <path>: a regular file of root or the user mailedge runs
 * as, at most owner read-write and group read. <what> names the directive
 * in messages. Sets <*len> (0: not read, an error reported at <at>).
 */
void cf_read_secret(struct ctx *x, const char *path, const struct conf_pos *at, const char *what,
                    size_t min, char *out, size_t cap, size_t *len);
/* Defaults, the key, and what needs what (after the whole file). */
void cf_crowdsec_finish(struct ctx *x);

#endif
