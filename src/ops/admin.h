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

#include "admin_view.h"

struct admin;

/*
 * Binds the admin address of the configuration <v> gives and serves it on
 * <v>'s loop (<v> is copied), reserving its two timers there.
 * Returns the endpoint, or NULL after logging (listen_failed with
 * listener=admin).
 */
struct admin *admin_start(const struct admin_view *v);

/* Closes the endpoint and its connections. NULL is a no-op. */
void admin_stop(struct admin *a);

#endif
