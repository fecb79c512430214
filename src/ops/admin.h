/*
 * admin: the HTTP admin endpoint (global { admin ADDR:PORT }): /metrics,
 * /healthz, /readyz and /status. HTTP is libmicrohttpd's, run inside the
 * worker's epoll loop without threads: its epoll descriptor is one more
 * descriptor of our loop and its connection timeouts one more timer. The
 * number of admin connections and their lifetime are capped, so a slow or
 * hostile admin client costs a descriptor and a few KiB, never the loop.
 */
#ifndef MAILEDGE_ADMIN_H
#define MAILEDGE_ADMIN_H

#include <stdbool.h>

#include "metrics.h"

struct admin;
struct worker;

/*
 * Binds the admin address of <w>'s conf and serves it on <w>'s loop.
 * Needs one timer of the loop's reserve. Returns the endpoint, or NULL
 * after logging (listen_failed with listener=admin).
 */
struct admin *admin_start(struct worker *w);

/* Closes the endpoint and its connections. NULL is a no-op. */
void admin_stop(struct admin *a);

/* Appends /readyz's verdict for <w>: true and "ok", or false and why not. */
bool admin_ready(const struct worker *w, struct strbuf *why);

/* Appends /status's JSON document for <w>. */
void admin_status_json(const struct worker *w, struct strbuf *out);

#endif
