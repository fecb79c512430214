/*
 * admin_bans: the admin endpoint's /bans resource. GET lists the bans in
 * force, POST adds one (an address or a prefix, on one listener or all),
 * DELETE lifts one. Loopback clients only, whatever allow-remote says: a
 * ban is a write. The HTTP side stays in admin.c; this file turns the
 * request's parameters into a status and a body.
 */
#ifndef MAILEDGE_ADMIN_BANS_H
#define MAILEDGE_ADMIN_BANS_H

#include <sys/socket.h>

#include "metrics.h"

struct worker;

struct admin_bans_req {
    const char *method;             /* GET, HEAD, POST, DELETE */
    const struct sockaddr *client;  /* the admin client's address; NULL: unknown */
    const char *addr;               /* ?addr=ADDRESS or PREFIX (POST, DELETE) */
    const char *listener;           /* ?listener=NAME; NULL or "all": every listener */
    const char *duration;           /* ?duration=15m (POST; default 1h) */
};

/* Answers one /bans request: returns the HTTP status; the body goes to <body>. */
unsigned admin_bans(struct worker *w, const struct admin_bans_req *r, struct strbuf *body);

#endif
