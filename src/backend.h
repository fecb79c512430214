/*
 * backend: the runtime side of a configured backend: which server a new
 * session tries first, and in which order it falls back to the others.
 * Health, DNS and queues will live here; the conf stays immutable.
 */
#ifndef MAILEDGE_BACKEND_H
#define MAILEDGE_BACKEND_H

#include <stddef.h>
#include <sys/socket.h>

#include "conf.h"
#include "metrics.h"

struct backend {
    const struct conf_backend *conf;
    size_t next;        /* round-robin cursor */
    struct metrics_server *m;  /* counters, parallel to conf->servers */
};

void backend_init(struct backend *b, const struct conf_backend *conf);

/*
 * The index of the first server a new session tries. A session then walks
 * the others in order with backend_server_at(b, first, attempt).
 */
size_t backend_first(struct backend *b);
const struct conf_server *backend_server_at(const struct backend *b, size_t first,
                                            size_t attempt);

/*
 * Fills <out> with the address to connect to for <srv>: its own port when
 * it has one (a NodePort differs per server), else <route_port>. Returns 0, or -1 when there is no
 * port (the config loader refuses that, so it is a bug).
 */
int backend_server_addr(const struct conf_server *srv, unsigned route_port,
                        struct sockaddr_storage *out);

#endif
