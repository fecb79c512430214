/*
 * adminreq: the checks the admin endpoint makes on a request before it
 * answers (docs/security.md, "The admin endpoint"): the Host header
 * (against DNS rebinding), Origin and Sec-Fetch-Site (against web pages),
 * the query parameters of /bans, the width of a ban by hand and the
 * bearer token of a write. Pure: no I/O. Checks return NULL when the
 * input is fine, else a static message for the answer's body.
 */
#ifndef MAILEDGE_ADMINREQ_H
#define MAILEDGE_ADMINREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cidr.h"

#define ADMINREQ_VALUE_MAX 255 /* longest parameter value accepted */

/*
 * Checks the Host header <host> (NULL: none, as in HTTP/1.0) of a request
 * that arrived on local address <local>. Its host part must be that
 * address (an IP literal, IPv6 in brackets), "localhost" when <local> is
 * a loopback address, or one of the <n> <names> (compared without case;
 * a trailing dot is ignored). A port, if written, must be a valid port;
 * its value is not compared (a tunnel or a proxy may change it; DNS
 * rebinding is stopped by the name alone).
 */
const char *adminreq_check_host(const char *host, const struct sockaddr *local,
                                const char *const *names, size_t n);

/*
 * Checks the Origin header <origin> (NULL: none) against the request's
 * Host <host>: a browser's request from another origin is refused; its own
 * origin ("http://" or "https://" followed by <host>) passes.
 */
const char *adminreq_check_origin(const char *origin, const char *host);

/* Checks Sec-Fetch-Site (NULL: none): only same-origin and none pass. */
const char *adminreq_check_fetch_site(const char *site);

/* The query parameters of /bans; NULL: not given. Values point into the caller's storage. */
struct adminreq_params {
    const char *addr;
    const char *listener;
    const char *duration;
    const char *force;
};

/*
 * Takes one query parameter <key> = <val> (sizes as decoded, so that an
 * encoded NUL shows; <val> NULL: "key" without "="). Refuses an unknown
 * key, a key given twice, a missing or empty value, a NUL or another
 * control byte, and a value longer than ADMINREQ_VALUE_MAX.
 */
const char *adminreq_param(struct adminreq_params *p, const char *key, size_t klen,
                           const char *val, size_t vlen);

enum adminreq_width {
    ADMINREQ_WIDTH_OK,
    ADMINREQ_WIDTH_ZERO, /* /0: refused even with force */
    ADMINREQ_WIDTH_WIDE, /* wider than the widest allowed, and not forced */
};

/*
 * Whether a ban of <c> may be added: never /0; wider than /<v4> (IPv4) or
 * /<v6> (IPv6) only with <force>.
 */
enum adminreq_width adminreq_ban_width(const struct cidr *c, unsigned v4, unsigned v6, bool force);

/*
 * True when the Authorization header <auth> is "Bearer <token>" with the
 * <len> bytes of <token> (scheme without case, compared in constant time
 * for a given length).
 */
bool adminreq_bearer_ok(const char *auth, const char *token, size_t len);

#endif
