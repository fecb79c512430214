/*
 * probeurl: pure parser of the targets of `mailedge probe`
 * ("smtp://mx.example:25?proxy=v2", "postgres://[::1]", "https://h/health").
 * No I/O, no name resolution, no allocation.
 */
#ifndef MAILEDGE_PROBEURL_H
#define MAILEDGE_PROBEURL_H

#include <stdint.h>

enum probe_scheme {
    PS_TCP,
    PS_SMTP,
    PS_SMTPS,
    PS_IMAP,
    PS_IMAPS,
    PS_POP3,
    PS_POP3S,
    PS_POSTGRES,
    PS_REDIS,
    PS_HTTP,
    PS_HTTPS,
};

enum probe_proxy {
    PROBE_PROXY_NONE,
    PROBE_PROXY_V1, /* v1 with the prober's own socket addresses, never UNKNOWN */
    PROBE_PROXY_V2, /* v2 LOCAL */
};

#define PROBEURL_HOST_MAX 256
#define PROBEURL_PATH_MAX 1024

struct probe_url {
    enum probe_scheme scheme;
    char host[PROBEURL_HOST_MAX]; /* without the brackets of an IPv6 literal */
    uint16_t port;                /* the scheme's default when the URL has none */
    enum probe_proxy proxy;
    char path[PROBEURL_PATH_MAX]; /* http(s): path and the query minus proxy= and expect=; else "" */
    /* http(s): the statuses that count as live, bit (status - 100) for
     * 100..599; expect=, else 2xx and 3xx. */
    uint64_t expect[8];
    /* postgres: the user (?user=, default "postgres") and the database (the
     * path, default the user) of the StartupMessage; at most 63 bytes. */
    char pg_user[64];
    char pg_db[64];
};

/*
 * Parses <s> into <out>. Returns 0, or -1 with <*why> set to a static
 * description. Credentials (user@) are refused: probes never log in, and
 * secrets do not belong on a command line. The path of other URLs
 * (redis://h/0) is accepted and ignored; the only query
 * parameter outside HTTP is proxy=v1|v2 (postgres also takes user=NAME;
 * its path is the database), and for HTTP it is removed from the request. HTTP(S) also takes expect=LIST (also removed): the statuses
 * that count as live, a comma-separated list of codes (204) and classes
 * (2xx), 100 to 599; without it 2xx and 3xx. tcp:// needs a port; the
 * other schemes have defaults.
 */
int probeurl_parse(const char *s, struct probe_url *out, const char **why);

/* Whether HTTP status <status> counts as live for <u> (its expect=). */
int probeurl_status_live(const struct probe_url *u, long status);

/* The scheme's name as written in URLs ("smtps"). */
const char *probeurl_scheme_name(enum probe_scheme sc);

/* Whether the scheme starts with TLS (smtps, imaps, pop3s, https). */
int probeurl_scheme_tls(enum probe_scheme sc);

#endif
