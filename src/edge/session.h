/*
 * session: one client connection and its backend connection, from accept
 * to the log line. An explicit state machine (docs/ARCHITECTURE.md has the
 * diagram); every path out goes through one close that logs and counts.
 */
#ifndef MAILEDGE_SESSION_H
#define MAILEDGE_SESSION_H

#include <sys/socket.h>

#include "conf.h"

struct listener;
struct worker;

enum session_state {
    SESSION_READ_PROXY,   /* waiting for the inbound PROXY header (timeout proxy) */
    SESSION_PEEK_HELLO,   /* waiting for the whole TLS ClientHello (timeout hello) */
    SESSION_HOLDING,      /* no server up: waiting in its backend's queue (queue-timeout) */
    SESSION_CONNECTING,   /* backend connect in progress (timeout connect) */
    SESSION_RELAYING,     /* moving bytes both ways, maybe half-closed (timeout idle) */
    SESSION_CLOSED,       /* done and logged; freed after this batch of events */
};
#define SESSION_STATE_COUNT (SESSION_CLOSED + 1)

/* The state's name for logs ("connecting"); keep state_names in step. */
const char *session_state_name(enum session_state st);

/* Why a session ended: the log's reason= value. Keep end_reason_names in step. */
enum end_reason {
    END_CLIENT_CLOSED,    /* clean end, the client sent FIN first */
    END_BACKEND_CLOSED,   /* clean end, the backend sent FIN first */
    END_CLIENT_RESET,     /* read or write error on the client side */
    END_BACKEND_RESET,    /* read or write error on the backend side */
    END_IDLE_TIMEOUT,
    END_CONNECT_REFUSED,  /* every server refused or failed */
    END_CONNECT_TIMEOUT,  /* the last server tried did not answer in time */
    END_PROXY_TIMEOUT,    /* no complete inbound PROXY header in time */
    END_PROXY_INVALID,    /* the inbound header was malformed or missing */
    END_PROXY_UNTRUSTED,  /* a source not allowed to send a PROXY header */
    END_SHUTDOWN,         /* cut at the end of the drain grace period */
    END_RESOURCE,         /* out of memory or descriptors */
    END_HELLO_TIMEOUT,    /* no complete ClientHello in time */
    END_SNI_REQUIRED,     /* sni-required, and no usable server name (why in error=) */
    END_SNI_NO_ROUTE,     /* a server name no route takes, and no default route */
    END_QUEUE_TIMEOUT,    /* held for queue-timeout and no server came up */
    END_QUEUE_FULL,       /* no server up and queue-max clients already held */
    END_LIMIT_PER_IP,     /* limit per-ip: as many sessions of this client are open */
    END_LIMIT_RATE,       /* limit rate: too many new sessions of this client */
    END_BANNED,           /* the client is banned (ban ... after, or the admin endpoint) */
    END_PREGREET,         /* pregreet reject: an SMTP client talked before the greeting */
    END_BACKEND_LOOP,     /* the last server tried is one of mailedge's own listeners */
    END_REASON_COUNT      /* not a reason: how many there are */
};

const char *session_end_reason_name(enum end_reason r);

/*
 * Takes ownership of the accepted descriptor <fd> from <l> and starts a
 * session for it. On failure the descriptor is closed and logged.
 */
void session_start(struct listener *l, int fd, const struct sockaddr_storage *peer);

struct gen;

/*
 * After a reload: the sessions held by the backends of <old> (the previous
 * generation) move to the backend of the same name in the current one and
 * try its servers at once; with no such backend they get the goodbye.
 */
void session_reload_held(struct worker *w, struct gen *old);

/* Drain: every held session gets the protocol's goodbye, END_SHUTDOWN. */
void session_drain_held(struct worker *w);

/* Ends every session of <w> with END_SHUTDOWN. */
void session_cut_all(struct worker *w);

#endif
