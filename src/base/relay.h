/*
 * relay: moves bytes one way between two non-blocking sockets, with
 * splice(2) through a pipe or with read/write through a buffer, or (auto)
 * small reads by copy and bulk by splice. A pipe or a
 * buffer is held only while bytes are in flight and goes back to a pool as
 * soon as it is empty, so an idle session holds neither (IMAP IDLE scale).
 * Readiness is cached per socket (edge-triggered epoll): the caller sets the
 * flags from events, the pump clears them on EAGAIN.
 */
#ifndef MAILEDGE_RELAY_H
#define MAILEDGE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_pool;

/* One socket as seen by the pump. */
struct relay_end {
    int fd;
    bool rd;   /* may have bytes (or EOF/error) to read */
    bool wr;   /* may accept bytes */
    bool fin;  /* the kernel signalled the peer's FIN (EPOLLRDHUP): no byte
                * can follow those queued, so a short read by copy took the
                * last of them */
    bool wary; /* an error, a hang-up or urgent data was signalled: read by
                * copy (splice stalls at the urgent mark) and on to EOF or
                * EAGAIN (a short read proves nothing: it stops at the mark) */
    bool closes; /* as destination: the caller closes it once this direction
                  * is done (the other is done already), and that close sends
                  * the FIN: no shutdown(SHUT_WR) */
};

/* How a half moves bytes. */
enum relay_mode {
    RELAY_SPLICE,       /* splice(2) through a pipe */
    RELAY_COPY,         /* recv/send through a buffer */
    RELAY_AUTO,         /* copy until a read fills the buffer, then splice */
};

/* One direction of a session. Zero it, set pipe to -1 (relay_half_init). */
struct relay_half {
    int pipe[2];        /* held pipe, or -1 */
    char *buf;          /* held buffer (copy mode), or NULL */
    uint32_t pending;   /* bytes read but not yet written */
    uint32_t off;       /* copy mode: where pending bytes start in buf */
    uint64_t bytes;     /* delivered to the destination */
    bool copy;          /* read/write instead of splice */
    bool autosplice;    /* RELAY_AUTO, still copying: a full read switches */
    bool bulk;          /* a read filled the buffer: the next read splices */
    bool last;          /* the pending bytes are the source's last: its FIN
                         * follows, and rides on their segment (MSG_MORE) */
    bool eof;           /* the source sent FIN */
    bool done;          /* and we passed it on with shutdown(SHUT_WR) */
};

enum relay_result {
    RELAY_BLOCKED,      /* waiting for the source or the destination */
    RELAY_MORE,         /* the budget is used up, more may be ready */
    RELAY_DONE,         /* the source ended and the FIN was passed on */
    RELAY_ERR_SRC,      /* reading failed; errno is set */
    RELAY_ERR_DST,      /* writing failed; errno is set */
    RELAY_ERR_NOMEM,    /* no buffer could be had */
};

/* A pool that keeps up to <max_idle> empty pipes and buffers for reuse. */
struct relay_pool *relay_pool_new(size_t max_idle);
void relay_pool_free(struct relay_pool *p);

/* Pipes (idle and held, 2 descriptors each) at most; beyond, a half copies
 * instead of splicing. Idle pipes above it are closed now. */
void relay_pool_set_pipes_max(struct relay_pool *p, size_t max);

void relay_half_init(struct relay_half *h, enum relay_mode mode);

/*
 * Moves bytes from <src> to <dst> until one would block, the source ends,
 * or about <budget> bytes went through. Sets <*moved> when any byte moved.
 * A read by copy that returns less than the buffer drained the socket
 * (TCP copies all it has), unless <src->wary>. Then it skips the read that
 * would only say EAGAIN and clears <src->rd> (under edge-triggered epoll,
 * bytes that come later are a new event); or, after <src->fin>, the read
 * that would only say EOF: the bytes go out with the FIN in one segment.
 */
enum relay_result relay_pump(struct relay_pool *p, struct relay_half *h, struct relay_end *src,
                             struct relay_end *dst, size_t budget, bool *moved);

/* Gives back what <h> holds (bytes still pending are dropped). */
void relay_half_release(struct relay_pool *p, struct relay_half *h);

#endif
