/*
 * admin_bans: the admin endpoint's /bans resource. GET lists the bans in
 * force, POST adds one (an address or a prefix, on one listener or all),
 * DELETE lifts one. Loopback clients only, whatever allow-remote says: a
 * ban is a write. A write also needs the header "Mailedge-Admin: 1" (a
 * web page cannot send it), the bearer token of admin-token-file when one
 * is configured, no body, and a prefix no wider than admin-widest-ban
 * unless forced (docs/operations.md). The HTTP side stays in admin.c; this
 * file turns the request into a status and a body.
 */
#ifndef MAILEDGE_ADMIN_BANS_H
#define MAILEDGE_ADMIN_BANS_H

#include <sys/socket.h>

#include "admin_view.h"
#include "adminreq.h"

struct admin_bans_req {
    const char *method;             /* GET, HEAD, POST, DELETE */
    const struct sockaddr *client;  /* the admin client's address; NULL: unknown */
    /* ?addr=ADDRESS or PREFIX (POST, DELETE), ?listener=NAME (NULL or "all":
     * every listener), ?duration=15m (POST; default 1h), ?force=1 (POST) */
    struct adminreq_params p;
    const char *param_error;        /* why the query string was refused; NULL: it was not */
    bool has_body;                  /* Content-Length above 0, or Transfer-Encoding */
    const char *admin_header;       /* Mailedge-Admin; NULL: absent */
    const char *authorization;      /* Authorization; NULL: absent */
    const char **error;             /* out, unless NULL: why an answer of 400 and up refused */
};

/*
 * Answers one /bans request against the listeners and abuse tables of <v>:
 * returns the HTTP status (401: the caller adds WWW-Authenticate); the
 * body goes to <body>.
 */
unsigned admin_bans(const struct admin_view *v, const struct admin_bans_req *r,
                    struct strbuf *body);

#endif
