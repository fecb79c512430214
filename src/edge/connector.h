/*
 * connector: Happy Eyeballs (RFC 8305 5) over the addresses of one server.
 * A set of non-blocking connects in flight with one timer: the first starts
 * at once, the next one "connection attempt delay" later or as soon as an
 * attempt fails, the first to complete wins and the others are closed. The
 * whole set has one deadline (timeout connect). Callers order the
 * addresses first (addr_interleave: IPv6 first, families alternating).
 */
#ifndef MAILEDGE_CONNECTOR_H
#define MAILEDGE_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct io;
struct loop;
struct connector;

/* What became of one attempt; CONN_ABANDONED: another one won first. */
enum conn_outcome { CONN_WON, CONN_FAILED, CONN_TIMED_OUT, CONN_ABANDONED };

/* Adds an attempt's n=, addr=, result= and error= to the log line being
 * written (the session's connect_attempt, the check's check_attempt). */
void connector_log_attempt(unsigned nth, const struct sockaddr *sa, enum conn_outcome o,
                           int err);

struct connector_ops {
    /* Every attempt's end (for metrics and the debug log): <nth> is its
     * place in the order (1 for the first started), <err> its errno (0 for
     * CONN_WON and CONN_ABANDONED). Must not free the connector. */
    void (*attempt)(void *arg, unsigned nth, const struct sockaddr *sa, enum conn_outcome o,
                    int err);
    /*
     * The set is decided: <fd> is the winner's connected socket, now the
     * caller's, with <sa> its address. It is still registered with the
     * loop: with the caller's io already (connector_won_lent()), or the
     * caller points the registration at its own struct io with loop_mod()
     * (one syscall less than a delete and an add). Or -1 when
     * every attempt failed: <err> the last error, <timeout> when the
     * deadline ended it. Called last; the caller may start the connector
     * again or free it from here.
     */
    void (*done)(void *arg, int fd, const struct sockaddr *sa, int err, bool timeout);
};

/*
 * Attempts in flight beyond the first of each connector that shares it:
 * the descriptors sessions may use for Happy Eyeballs on top of their own
 * two (src/edge/fdbudget.h). At <max>, the next attempt waits for one in flight
 * to end or for the next attempt delay.
 */
struct conn_budget {
    size_t used, max;
};

/* NULL when out of memory. <ops> and <arg> are kept by reference. */
struct connector *connector_new(struct loop *loop, const struct connector_ops *ops, void *arg);

/*
 * Starts connecting to <addrs> (<n> of them, 1..ADDR_PER_NAME_MAX, copied)
 * in that order: one every <delay_ms> or on a failure, all given up after
 * <timeout_ms>. The connector must be idle (new or decided). done() may
 * run before this returns when no attempt could start.
 */
void connector_start(struct connector *c, const struct sockaddr_storage *addrs, size_t n,
                     uint64_t delay_ms, uint64_t timeout_ms);

/*
 * After a win: the family (AF_INET6, AF_INET) of attempts that started
 * before the winner and lost to it (failed, or abandoned still in flight)
 * while the winner is of the other family, else 0. A caller remembers it
 * to try that family second for a while.
 */
int connector_lost_family(const struct connector *c);

/*
 * The caller writes the moment an attempt wins (a PROXY header): attempts
 * connect with sock_connect()'s delay_acks. Off by default.
 */
void connector_set_delay_acks(struct connector *c, bool on);

/*
 * The first attempt of the next starts registers the caller's <io> (its fd
 * set here; NULL: the connector's own, the default) with <events>, which
 * the caller wants once connected (they must include EPOLLOUT and
 * EPOLLET): the caller's callback hands the events to connector_io()
 * while connecting. When that attempt wins (connector_won_lent() in
 * done()), the caller keeps the registration as it is: no loop_mod().
 */
void connector_lend_io(struct connector *c, struct io *io, uint32_t events);
void connector_io(struct connector *c, uint32_t events);
bool connector_won_lent(const struct connector *c);
bool connector_delays_acks(const struct connector *c);

/* Parallel attempts of <c> count in <b> (kept by reference); NULL: unbounded (checks). */
void connector_set_budget(struct connector *c, struct conn_budget *b);

/* Attempts started by the last connector_start() so far. */
unsigned connector_attempts(const struct connector *c);

/* Closes whatever is in flight, without callbacks; <c> is idle after it. */
void connector_cancel(struct connector *c);

/*
 * Cancels and frees <c> after the current batch of events, which may still
 * name its sockets. NULL is fine.
 */
void connector_free(struct connector *c);

/* Cancels and frees <c> now: only where no event of the current batch can
 * still name its sockets (outside event dispatch: timers, deferred work). */
void connector_destroy(struct connector *c);

#endif
