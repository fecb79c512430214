/*
 * conf: the configuration snapshot and its loader. The loader turns a file
 * (plus includes) into an immutable struct conf, or into a list of
 * diagnostics with FILE:LINE:COL. It touches files only to read them; no
 * sockets. docs/config.md is the user-facing description of the grammar.
 */
#ifndef MAILEDGE_CONF_H
#define MAILEDGE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "cidr.h"
#include "log.h"
#include "proxyproto.h"
#include "tlshello.h"

#define CONF_NAME_MAX 64     /* listener, backend and server names, NUL included */
#define CONF_HOST_MAX 256
#define CONF_ADMIN_HOSTS_MAX 8
#define CONF_ADMIN_TOKEN_MAX 257 /* 256 bytes and the NUL */
#define CONF_RESOLVERS_MAX 8
#define CONF_WORKERS_MAX 64   /* workers N */
#define CONF_CS_KEY_MAX 257      /* crowdsec bouncer key: 256 bytes and the NUL */
#define CONF_CS_URL_MAX 512
#define CONF_CS_FILTERS_MAX 8    /* words of each crowdsec-origins/scenarios directive */
#define CONF_CS_WORD_MAX 64

enum proto { PROTO_SMTP, PROTO_SUBMISSION, PROTO_IMAP, PROTO_POP3, PROTO_TLS, PROTO_TCP };
enum balance { BALANCE_ROUND_ROBIN, BALANCE_FIRST, BALANCE_LEAST_CONN };
/* Active health check of a backend's servers; CHECK_NONE: servers are always up. */
enum check_kind {
    CHECK_NONE,
    CHECK_TCP,
    CHECK_SMTP,
    CHECK_IMAP,
    CHECK_POP3,
    CHECK_TLS,   /* a TLS handshake, then close_notify */
    CHECK_SMTPS, /* the same protocol exchanges inside implicit TLS */
    CHECK_IMAPS,
    CHECK_POP3S,
};
/* pregreet: what to do with an SMTP client that talks before the greeting. */
enum pregreet { PREGREET_OFF, PREGREET_COUNT, PREGREET_REJECT };

/* Where a statement came from, for messages after loading. */
struct conf_pos {
    const char *file;  /* owned by the conf (interned) */
    int line, col;
};

struct conf_server {
    char name[CONF_NAME_MAX];
    char host[CONF_HOST_MAX];        /* as written, without the port */
    struct sockaddr_storage addr;    /* the IP literal; port set when has_port; AF_UNSPEC for a name */
    bool is_name;                    /* host is a DNS name, resolved at run time (src/edge/resolve.c) */
    unsigned port;                   /* the port written after the host; 0: none */
    bool has_port;                   /* else the route gives it */
    unsigned check_port;             /* check-port N; 0: the port sessions use */
    bool backup;                     /* used only while no primary server is up */
    struct conf_pos pos;
};

struct conf_backend {
    char name[CONF_NAME_MAX];
    struct conf_server *servers;
    size_t nservers;
    int send_proxy;                  /* 0 none, 1 or 2: PROXY version sent */
    bool send_authority;             /* v2: the client's SNI in an AUTHORITY TLV */
    enum balance balance;            /* default round-robin */
    uint64_t timeout_connect_ms;     /* default 5s (or global); for all addresses of a server */
    uint64_t he_delay_ms;            /* happy-eyeballs-delay: between attempts; default 250ms */
    enum check_kind check;           /* default CHECK_NONE */
    uint64_t check_interval_ms;      /* default 2s */
    uint64_t check_timeout_ms;       /* default 10s: above postscreen's 6s greet wait */
    int check_send_proxy;            /* PROXY version the checks send: 0 none, 1, 2; default send_proxy */
    char check_sni[CONF_HOST_MAX];   /* TLS checks: server name to ask for; "": none */
    unsigned check_rise, check_fall; /* defaults 2 and 3 */
    uint64_t queue_timeout_ms;       /* hold clients while no server is up; 0 (default): off */
    unsigned queue_max;              /* held clients at most; default 1000 */
    struct conf_pos pos;
};

struct conf_route {
    const struct conf_backend *backend;  /* points into the same conf; NULL: no route */
    unsigned port;                       /* 0: each server's own port */
    struct conf_pos pos;
};

/* One name of a route sni: "mail.example.org", or "*.example.org". */
struct conf_sni_name {
    char name[TH_HOST_MAX];          /* lower case, no trailing dot; without "*." */
    bool wildcard;                   /* written "*.NAME": NAME plus exactly one label */
    struct conf_pos pos;
};

/* route sni NAME... -> BACKEND[:PORT] */
struct conf_sni_route {
    struct conf_sni_name *names;
    size_t nnames;
    struct conf_route route;
};

struct conf_bind {
    struct sockaddr_storage addr;
    bool any;                        /* written ":PORT": bind [::] dual-stack */
    struct conf_pos pos;
};

struct conf_listener {
    char name[CONF_NAME_MAX];
    struct conf_bind *binds;
    size_t nbinds;
    enum proto proto;
    enum pp_accept accept_proxy;     /* 0: no inbound PROXY header */
    struct cidr *trusted;            /* sources allowed to send one */
    size_t ntrusted;
    struct conf_sni_route *sni_routes;  /* tried in order, before the default route */
    size_t nsni_routes;
    struct conf_route route;         /* route -> BACKEND[:PORT]; backend NULL: none */
    bool sni_required;               /* refuse clients without a usable SNI */
    bool peek_hello;                 /* read the ClientHello before connecting */
    uint64_t timeout_proxy_ms;       /* default 3s */
    uint64_t timeout_idle_ms;        /* default 30m */
    uint64_t timeout_hello_ms;       /* default 5s */
    /* Abuse control (src/edge/abuse.c), keyed on the real client; 0: off. */
    unsigned limit_per_ip;           /* limit per-ip N: concurrent sessions */
    unsigned limit_rate;             /* limit rate N/UNIT: new sessions, also the burst */
    uint64_t limit_rate_ms;          /* the UNIT: 1000, 60000 or 3600000 */
    unsigned limit_v6_prefix;        /* limit ipv6-prefix N; default 64 */
    unsigned limit_table;            /* limit table N: keys kept; default 65536 */
    unsigned ban_after;              /* ban DURATION after N [within WINDOW] */
    uint64_t ban_ms;
    uint64_t ban_window_ms;          /* default 10m */
    struct cidr *allow;              /* allow CIDR...: never limited or banned */
    size_t nallow;
    enum pregreet pregreet;          /* smtp and submission only */
    unsigned maxconn;                /* maxconn N: its sessions at most; 0: only the global one */
    bool shared_bans_off;            /* shared-bans off: no remote bans, no bans by hand for all */
    struct conf_pos pos;
};

/* One list of crowdsec filter words (crowdsec-origins, -scenarios-containing...). */
struct conf_cs_words {
    char v[CONF_CS_FILTERS_MAX][CONF_CS_WORD_MAX];
    size_t n;
};

/*
 * crowdsec ...: remote bans from a CrowdSec Local API (src/edge/bouncer.c).
 * Off when url[0] == '\0'.
 */
struct conf_crowdsec {
    char url[CONF_CS_URL_MAX];       /* http(s)://HOST[:PORT][/PATH], no trailing '/' */
    char key[CONF_CS_KEY_MAX];       /* from crowdsec-key-file or crowdsec-key-env */
    size_t key_len;
    uint64_t interval_ms;            /* crowdsec-interval; default 10s */
    uint64_t resync_ms;              /* crowdsec-resync: a whole list this often; default 5m */
    bool captcha_ban;                /* crowdsec-captcha ban|ignore; default ignore */
    struct conf_cs_words origins;    /* crowdsec-origins: only these (none: all) */
    struct conf_cs_words scen_in;    /* crowdsec-scenarios-containing: one of these */
    struct conf_cs_words scen_out;   /* crowdsec-scenarios-not-containing: none of these */
    uint64_t max_bans;               /* crowdsec-max-bans; default 200000 */
    uint64_t max_answer;             /* crowdsec-max-answer: bytes; default 64 MiB */
    struct conf_pos pos;
};

/* splice off|on|auto: copy, splice(2), or copy small reads and splice bulk. */
enum conf_splice { CONF_SPLICE_OFF, CONF_SPLICE_ON, CONF_SPLICE_AUTO };

struct conf_global {
    char log_path[4096];             /* "" means stderr */
    enum log_format log_format;
    bool log_debug;                  /* log level debug instead of info */
    uint64_t grace_ms;               /* drain time on SIGTERM, default 30s */
    enum conf_splice splice;         /* how the relay moves bytes, default auto */
    uint32_t busy_poll_us;           /* busy-poll DURATION, in microseconds; 0: off */
    bool admin_set;                  /* admin ADDR:PORT given; off by default */
    bool admin_allow_remote;         /* admin ... allow-remote: not loopback only */
    struct conf_bind admin;          /* its address (any: ":PORT"), where it was written */
    char admin_hosts[CONF_ADMIN_HOSTS_MAX][CONF_HOST_MAX]; /* admin-host NAME...: Host names accepted */
    size_t nadmin_hosts;
    char admin_token[CONF_ADMIN_TOKEN_MAX]; /* admin-token-file's token; "" : writes need none */
    size_t admin_token_len;
    unsigned admin_ban_v4, admin_ban_v6; /* admin-widest-ban: default 16 and 32 */
    struct conf_pos admin_opt_pos;   /* the first admin-* option, for "needs admin" */
    struct sockaddr_storage resolvers[CONF_RESOLVERS_MAX]; /* resolvers ADDR[:PORT]...; port 53 default */
    size_t nresolvers;               /* 0: the system's (/etc/resolv.conf) */
    char user[64];                   /* user NAME: run as it after binding (src/ops/privs.c) */
    bool user_set;
    uid_t uid;                       /* its uid, looked up when loading */
    gid_t gid;                       /* group NAME's gid, else the user's primary group */
    bool group_set;
    struct conf_pos group_pos;
    unsigned maxconn;                /* maxconn N; 0: derived from RLIMIT_NOFILE (src/edge/fdbudget.c) */
    unsigned workers;                /* workers N|auto: worker processes (src/ops/supervise.c) */
    bool workers_auto;               /* workers auto, or not set: one per usable CPU (conf_set_cpus) */
    bool verify_on_start;            /* verify on-start: run `verify` at start and each reload */
    uint64_t verify_timeout_ms;      /* verify ... timeout DURATION: kills a run; default 60s */
    struct conf_crowdsec crowdsec;
};

struct conf {
    struct conf_global global;
    struct conf_backend *backends;
    size_t nbackends;
    struct conf_listener *listeners;
    size_t nlisteners;
    char **files;                    /* interned file names for conf_pos */
    size_t nfiles;
};

struct conf_diag {
    char file[256];
    int line, col;
    char msg[320];
    bool warning;                    /* msg starts "warning: "; it does not fail the load */
};

struct diag_list {
    struct conf_diag *v;
    size_t n, cap;
};

/*
 * Loads <path> and everything it includes. Returns 0 and a new conf in
 * <*out> (free with conf_free), or -1 with every error found appended to
 * <diags> (the loader keeps going after an error so one run lists them all).
 * Warnings are appended too, and <diags> may hold some after a success.
 */
int conf_load(const char *path, struct conf **out, struct diag_list *diags);

/*
 * The number of workers `workers auto` (the default) means on a host whose
 * process may run on <cpus> CPUs: one per CPU, at least 1, at most
 * CONF_WORKERS_MAX. The descriptor limit does not lower it: each worker is
 * a process with its own RLIMIT_NOFILE, so more workers only hold more.
 */
unsigned conf_workers_auto(long cpus);

/*
 * The CPU count `workers auto` resolves with in the loads that follow (main
 * passes util_usable_cpus() before the first load); 1 until called, so
 * loads without it (the unit tests, the commands) stay machine-independent.
 */
void conf_set_cpus(long cpus);

/*
 * The same from text in memory; <name> is used in diagnostics. With
 * <allow_include> false an include statement is an error (fuzzing).
 */
int conf_load_string(const char *name, const char *text, size_t len, bool allow_include,
                     struct conf **out, struct diag_list *diags);

void conf_free(struct conf *c);

const struct conf_backend *conf_find_backend(const struct conf *c, const char *name);

/*
 * Where a client of <l> with server name <sni> goes: the first route sni
 * with a matching name, else the default route. <sni> is a host name as
 * tlshello_host_name() writes it (lower case, no trailing dot), or NULL.
 * Returns NULL when nothing matches and there is no default route.
 */
const struct conf_route *conf_listener_route(const struct conf_listener *l, const char *sni);

/* "smtp", "submission", ... */
const char *conf_proto_name(enum proto p);

/* Writes a bind address as written: ":25" for every address, else "IP:PORT". Returns <buf>. */
const char *conf_bind_format(const struct conf_bind *b, char *buf, size_t cap);

/* "none", "tcp", "smtp", "imap", "pop3" */
const char *conf_check_name(enum check_kind k);
const char *conf_balance_name(enum balance b);

/* True for smtp, submission, imap and pop3: the server speaks first. */
bool conf_proto_server_first(enum proto p);

/* The protocol's "try again later" line (421 4.3.2, * BYE, -ERR); NULL for tls and tcp. */
const char *conf_proto_goodbye(enum proto p);

/*
 * Prints each diagnostic as "FILE:LINE:COL: message\n" to <fp> (a FILE *);
 * one about a whole file (it cannot be opened) as "FILE: message\n".
 */
void diag_list_print(const struct diag_list *d, void *fp);
/* One diagnostic as diag_list_print() writes it, without the newline. */
void conf_diag_text(const struct conf_diag *d, char *buf, size_t cap);
void diag_list_free(struct diag_list *d);

#endif
