/*
 * session internals: struct session and what the session modules share.
 * Only the session_*.c files include this; everything else uses session.h.
 *
 *   session.c          the state machine: start, events, relay, the one close
 *   session_peek.c     the inbound PROXY header and the TLS ClientHello, peeked
 *   session_connect.c  connecting to the servers of a route, the outbound header
 *   session_hold.c     the held clients of a backend (queue-timeout)
 *   session_abuse.c    admission (limits, bans), refusals, the pre-greet watch
 *   session_log.c      the session log line and the reason names
 */
#ifndef MAILEDGE_SESSION_INT_H
#define MAILEDGE_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abuse.h"
#include "addr.h"
#include "backend.h"
#include "conf.h"
#include "listener.h"
#include "loop.h"
#include "relay.h"
#include "session.h"

struct connector;

/* Timers of a session: its own, and its connector's while connecting. */
#define SESSION_TIMERS 2
struct gen;
struct worker;

struct session {
    struct session *prev, *next;       /* worker's list */
    struct backend_waiter hold;        /* in its backend's held list, while HOLDING */
    struct worker *w;
    struct listener *l;
    struct io cio, bio;                /* client, backend */
    struct relay_half up, down;        /* client->backend, backend->client */
    struct timer timer;
    struct defer defer;                /* deferred free, or relay continuation */
    enum session_state state;
    bool c_rd, c_wr, c_hup, b_rd, b_wr;
    bool c_fin, b_fin;                 /* FIN signalled: relay_end.fin */
    bool c_wary, b_wary;               /* error, hang-up or urgent data: relay_end.wary */
    uint8_t first_fin;                 /* 0 none, 1 client, 2 backend */
    bool pg_watch;                     /* smtp pregreet: client bytes before the greeting? */
    bool talked_early;                 /* it sent some (logged as pregreet=1) */
    const struct banset_entry *remote_ban; /* refused for it; valid only until the line is logged */
    uint16_t nattempts;                /* connects started, all servers (saturates) */
    int last_err;                      /* errno of the last failed connect */
    bool last_timeout;                 /* the last failed connect timed out */
    bool counted;                      /* in the active count of <trying> (least-conn) */
    size_t srv_first, attempt;
    struct connector *conn;            /* CONNECTING: the attempts in flight (src/edge/connector.c) */
    union sa baddr;                    /* the address connected to, for the log */
    const struct conf_server *trying;  /* the server being connected to */
    const struct conf_server *srv;     /* the server connected to, for the log */
    const struct conf_route *route;    /* chosen route; NULL until routed */
    struct backend *backend;           /* its runtime backend */
    struct gen *gen;                   /* its listener's generation (a reference) */
    struct gen *bgen;                  /* its backend's, when a reload moved it; else NULL */
    size_t hello_need;                 /* PEEK_HELLO: bytes worth parsing again */
    size_t hello_seen;                 /* PEEK_HELLO: bytes of the last peek */
    uint64_t id, start_ms, last_ms;
    uint64_t connect_ms;               /* when the current connect started */
    uint64_t hold_first_ms;            /* when it was first held; queue-timeout counts from it */
    uint64_t hold_since_ms;            /* when the current hold began */
    uint64_t held_ms;                  /* time held in all; logged when held_ever */
    bool held_ever;
    bool lingering;                    /* CLOSED, reading away the client's bytes (session.c) */
    uint32_t linger_left;              /* bytes it may still read away */
    struct abuse_ticket ticket;        /* what limit per-ip counted for this session */
    union sa client, peer, local;
    char *sni;                         /* NULL (no peeking), "" or the server name */
    char tail[];                       /* TH_HOST_MAX bytes for sni on peeking listeners */
};

static inline const struct conf_listener *
lconf(const struct session *s)
{
    return s->l->conf;
}


/* session.c */

/* The one exit: closes both sockets, logs, counts, frees after the batch. No-op when closed. */
void session_close(struct session *s, enum end_reason r, const char *detail);
/* Every change of state goes through here (a debug line says OLD -> NEW). */
void session_set_state(struct session *s, enum session_state st);
/* Says <msg> to the client, once, best effort; NULL says nothing. */
void session_tell(struct session *s, const char *msg);
/* The protocol's "try again later" to the client, best effort. */
void session_say_goodbye(struct session *s);
/* Moves bytes both ways (RELAYING); may close the session. */
void session_relay(struct session *s);

/* What the backend socket is registered for once connected (the connector
 * registers its first attempt with it: connector_lend_io). */
#define SESSION_BACKEND_EVENTS (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDHUP | EPOLLET)
/* Notes what an event on the backend socket says (readable, writable...). */
void session_backend_events(struct session *s, uint32_t ev);
/* The client address is final (accept, or after the PROXY header): admit, then peek or connect. */
void session_begin(struct session *s);

/* session_peek.c */

/* READ_PROXY: the client is readable. */
void session_read_proxy(struct session *s);
/* PEEK_HELLO: the client is readable. */
void session_peek_hello(struct session *s);
/* Reads away what the client sent, before a refusal. */
void session_discard_peeked(struct session *s);

/* session_connect.c */

/* Connects to the servers of route <r>. */
void session_start_connect(struct session *s, const struct conf_route *r);
/* Connects to the next eligible server of the walk; none left: hold or give up. */
void session_connect_next(struct session *s);
/* What a failed connect's errno (or timeout) means, for error= (ELOOP: a route back to us). */
const char *session_connect_error(int err, bool timeout);

/* session_hold.c */

bool session_holds(const struct backend *b);
void session_hold(struct session *s);
void session_unhold(struct session *s);
void session_hold_detail(const struct session *s, char *detail, size_t cap);

/* session_abuse.c */

/* False when the client was refused (and the session closed). */
bool session_admit(struct session *s);
void session_refuse(struct session *s, enum end_reason r, const char *detail);
/* RELAYING with pg_watch set. False when the session ended. */
bool session_pregreet_check(struct session *s);

/* session_log.c */

/* The session's one info line (event=session). */
void session_log(const struct session *s, enum end_reason r, const char *detail);

#endif
