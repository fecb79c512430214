/*
 * backend: the runtime side of a configured backend: which server a new
 * session tries first, in which order it falls back to the others, and
 * whether each server is up (health checks, src/edge/check.c, feed that state).
 * DNS and queues will live here; the conf stays immutable.
 */
#ifndef MAILEDGE_BACKEND_H
#define MAILEDGE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"
#include "conf.h"
#include "metrics.h"

struct check;
struct resolve_query;

#define BACKEND_ADDRS_MAX ADDR_PER_NAME_MAX
#define BACKEND_SLOW_FAMILY_MS 600000u /* how long a family that lost goes second: 10 min */

/* Health of one server. Without a check in the conf a server is always up. */
struct backend_server {
    bool up;
    unsigned passes, fails;   /* consecutive, towards rise and fall */
    int last_result;          /* enum check_result of the last finished check; -1: none yet */
    uint64_t last_check_ms;   /* loop_now() when it finished */
    struct check *check;      /* its check session, NULL without checks */
    /* A server written with a DNS name (conf is_name): its current answer,
     * A and AAAA records as resolved (src/edge/resolve.c), ports 0. Empty until
     * the name first resolves; the last good answer is kept while the
     * resolver fails. */
    struct sockaddr_storage addrs[BACKEND_ADDRS_MAX];
    size_t naddrs;
    uint32_t ttl;             /* of the current answer, seconds */
    struct resolve_query *rq; /* its resolver state, NULL for an IP literal */
    /* Happy Eyeballs memory (src/edge/session_connect.c): a family whose attempts
     * lost to the other family's goes second until slow_until_ms. */
    int slow_family;          /* AF_INET6, AF_INET; 0: none */
    uint64_t slow_until_ms;
    struct metrics_server *m; /* its counters (keyed by backend and server name) */
    unsigned active;          /* sessions of this generation connecting or connected to it;
                               * least-conn compares m->active, all generations */
};

struct gen;

/*
 * A client waiting in a backend's queue (queue-timeout): the link, embedded
 * in the waiter, and what to call when a server may take it.
 */
struct backend_waiter {
    struct backend_waiter *prev, *next;
    void (*wake)(struct backend_waiter *w); /* must take <w> off the queue */
};

struct backend {
    const struct conf_backend *conf;
    struct gen *gen;    /* the configuration generation it belongs to */
    size_t next;        /* round-robin cursor */
    struct backend_server *srv; /* parallel to conf->servers */
    /* Clients held while no server could take them (queue-timeout), oldest
     * first: an intrusive list through their backend_waiter links. */
    struct backend_waiter *held_head, *held_tail;
    size_t nheld;
    struct metrics_backend *qm; /* its queue depth gauge */
};

/*
 * Sets up <b> for <conf>. Servers start up when the backend has no check,
 * else down until they pass rise checks. Returns 0, or -1 when out of memory.
 */
int backend_init(struct backend *b, const struct conf_backend *conf);
void backend_free(struct backend *b);

/*
 * The index of the first server a new session tries, by the backend's
 * balance among the eligible servers (backend_server_eligible): the first
 * in order, the next in turn, or the one with the fewest active sessions
 * (ties in turn). A session then walks the others in order with
 * backend_server_at(b, first, attempt), skipping those not eligible.
 */
size_t backend_first(struct backend *b);
const struct conf_server *backend_server_at(const struct backend *b, size_t first,
                                            size_t attempt);

/* True when new sessions may use <srv> (a server of <b>): it is up and,
 * written with a DNS name, has resolved. */
bool backend_server_usable(const struct backend *b, const struct conf_server *srv);

/* True when a new session may try <srv> now: it is usable and is a primary,
 * or a backup while no primary is usable. */
bool backend_server_eligible(const struct backend *b, const struct conf_server *srv);

/* A session starts connecting to <srv> / is done with it (least-conn counts). */
void backend_take(struct backend *b, const struct conf_server *srv);
void backend_release(struct backend *b, const struct conf_server *srv);

/* The number of servers of <b> that are up, backups included. */
size_t backend_servers_up(const struct backend *b);

/*
 * Rise and fall, pure: one check result for a server with health <st>.
 * <rise> consecutive passes bring it up, <fall> consecutive failures take
 * it down. Returns true when st->up changed.
 */
bool backend_health_step(struct backend_server *st, bool passed, unsigned rise, unsigned fall);

/*
 * A check of server <i> of <b> ended at <now_ms> with <result> (an enum
 * check_result; <passed> when it is the pass): its health (rise and fall),
 * its last result, its up gauge and, for a failure, the failure counter
 * of <result>. Returns true when the server went up or down.
 */
bool backend_server_checked(struct backend *b, size_t i, int result, bool passed,
                            uint64_t now_ms);

/* Queues <w> at the tail of <b>'s held clients. */
void backend_hold(struct backend *b, struct backend_waiter *w);

/* Takes <w> off <b>'s queue. False, and nothing done, when it is not on it. */
bool backend_unhold(struct backend *b, struct backend_waiter *w);

/*
 * After a pass of a server that is up: wakes the clients held at this
 * moment, oldest first, while a server of <b> is up. One whose connects
 * all fail at once is queued again at the tail and waits for the next pass.
 */
void backend_wake(struct backend *b);

/*
 * Fills <out> with address number <k> to connect to for <srv> (a server of
 * <b>): the IP literal (k 0 only) or the k-th resolved address of its name,
 * with its own port when it has one (a NodePort differs per server), else
 * <route_port>. Returns 0, or -1 when there is no such address or no port
 * (the config loader refuses the latter, so it is a bug).
 */
int backend_server_addr(const struct backend *b, const struct conf_server *srv, size_t k,
                        unsigned route_port, struct sockaddr_storage *out);

#endif
