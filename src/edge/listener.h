/*
 * listener: one bound socket of a configured listener. Accepts clients
 * and hands each to a new session; pauses accepting for a moment when the
 * process is out of descriptors instead of spinning on EMFILE. At maxconn
 * (the process's or the listener's, src/edge/fdbudget.h) it stops accepting:
 * clients wait in the listen backlog for LISTENER_FULL_WAIT_MS, then each
 * one is accepted only to get the protocol's "try again later" and a close,
 * until a session ends.
 */
#ifndef MAILEDGE_LISTENER_H
#define MAILEDGE_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf.h"
#include "loop.h"
#include "metrics.h"

struct worker;
struct gen;
struct abuse;

struct listener {
    struct io io;                       /* the listening socket */
    struct worker *w;
    struct gen *gen;                    /* the configuration generation it belongs to */
    const struct conf_listener *conf;
    const struct conf_bind *bind;
    struct metrics_listener *m;         /* counters of its conf listener */
    struct abuse *abuse;                /* limits and bans of its conf listener */
    bool wildcard;                      /* bound to 0.0.0.0 or [::]: ask getsockname */
    bool shared;                        /* the one socket of every worker (socket activation):
                                         * polled with EPOLLEXCLUSIVE */
    struct timer pause_timer;           /* resumes accepting after EMFILE, or ends the
                                         * backlog wait at maxconn */
    uint64_t last_pause_log;
    uint8_t full;                       /* at maxconn: LISTENER_FULL_* */
    uint64_t last_full_log;
};

/* At maxconn, first the backlog for a moment, then a refusal to each client. */
#define LISTENER_FULL_WAITING 1
#define LISTENER_FULL_REFUSING 2
#define LISTENER_FULL_WAIT_MS 1000

/* How long accepting stops after accept(2) ran out of descriptors or memory. */
#define LISTENER_PAUSE_MS 100

/*
 * The accept_paused warning of listener <name> at <addr> (the admin
 * endpoint's too), at most once per 10 s: <*last_log> keeps the time.
 */
void listener_log_paused(uint64_t now, uint64_t *last_log, const char *name, const char *addr,
                         int err);

/* Binds and starts accepting. Returns 0, or -1 with errno (nothing logged). */
int listener_open(struct listener *l, struct worker *w, const struct conf_listener *conf,
                  const struct conf_bind *bind);

/*
 * Starts accepting on <fd>, a listening socket already bound to <bind>
 * (bound by the caller, inherited from the service manager, or taken over
 * from the listener of the previous configuration with listener_detach).
 * <registered>: the descriptor is in the loop already (taken over); the
 * registration is moved to <l> without a moment of not listening.
 * <shared>: the same socket (one accept queue) is polled by the other
 * workers too (an inherited one with several workers): a client then
 * wakes one of them, not all (EPOLLEXCLUSIVE).
 * Returns 0, or -1 with errno; <fd> stays the caller's on failure.
 */
int listener_attach(struct listener *l, struct worker *w, const struct conf_listener *conf,
                    const struct conf_bind *bind, int fd, bool registered, bool shared);

/*
 * Gives up <l>'s socket without closing it or removing it from the loop,
 * for a listener of the next configuration to attach. Returns the descriptor.
 */
int listener_detach(struct listener *l);

/*
 * A session ended: a listener at maxconn that has room again accepts
 * normally. Returns whether <l> is still at maxconn.
 */
bool listener_full_recheck(struct listener *l);

/* Stops accepting and closes the socket. Safe to call twice. */
void listener_close(struct listener *l);

#endif
