/*
 * resolve: DNS names of servers (server NAME HOST[:PORT] with a host name),
 * resolved asynchronously with c-ares inside the worker's epoll loop (no
 * threads): c-ares's sockets are struct io in the loop (its socket state
 * callback adds and removes them), ares_process_fd() runs on their events,
 * and one loop timer follows ares_timeout(). Each named server asks for all
 * its A and AAAA records and asks again when the answer's TTL runs out,
 * bounded to [RESOLVE_MIN_MS, RESOLVE_MAX_MS]; a failure keeps the last
 * good answer and is retried after 1s, doubling up to RESOLVE_RETRY_MAX_MS.
 * A connect that fails on every address of the name (a session's or a health
 * check's) asks again at once, whatever the TTL, at most once per
 * RESOLVE_REFRESH_MS per name: a server that moved is found in about a
 * second, not when a long TTL runs out.
 * The answer lives in struct backend_server (addrs, naddrs).
 * With `workers N`, worker 0 alone resolves; the others take its answers
 * from shared memory (src/edge/dnsshare.c) and ask it for the early query.
 */
#ifndef MAILEDGE_RESOLVE_H
#define MAILEDGE_RESOLVE_H

#define RESOLVE_MIN_MS 1000u          /* a TTL below 1s counts as 1s */
#define RESOLVE_MAX_MS 300000u        /* a TTL above 300s counts as 300s */
#define RESOLVE_RETRY_MAX_MS 30000u   /* failures: retried after 1s, 2s, 4s ... 30s */
#define RESOLVE_REFRESH_MS 1000u      /* connect failures: one early query per name per 1s */

struct backend;
struct conf;
struct loop;
struct resolver;
struct resolve_query;

/*
 * Starts resolving, in <loop>, every server of <backends> (parallel to
 * <c>->backends: a generation's) written with a DNS name, asking the
 * resolvers of <c> or the system's; *<out> is the resolver (NULL when no
 * server has a name: c-ares is not even initialised). Returns 0, or -1
 * after logging; *<out> may then be set, for resolve_free_all().
 */
int resolve_start_all(struct resolver **out, struct loop *loop, const struct conf *c,
                      struct backend *backends);

/*
 * Every address of the name of <q> failed to connect (refused, unreachable,
 * timed out): asks again now, or RESOLVE_REFRESH_MS after the last query
 * started, unless one is in flight. NULL (an IP literal) does nothing.
 */
void resolve_refresh(struct resolve_query *q);

/*
 * A follower (workers N): takes the answers worker 0 published since the
 * last copy, at once, as a worker resolving for itself would have them; a
 * session calls it before it picks a server. Else (and NULL) a no-op.
 */
void resolve_sync(struct resolver *r);

/*
 * workers N: the Happy Eyeballs memory of <st> (slow_family, slow_until_ms)
 * is the host's, kept with the name's shared answer: sync reads it into
 * <st>, publish writes <st>'s. A no-op for an IP literal or a single process.
 */
struct backend_server;
void resolve_family_sync(struct backend_server *st);
void resolve_family_publish(const struct backend_server *st);

/* Stops and frees *<r> (pending queries are cancelled) and sets it to NULL.
 * NULL is a no-op. */
void resolve_free_all(struct resolver **r);

#endif
