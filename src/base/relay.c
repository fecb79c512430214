/*
 * relay: the data path. We splice socket -> pipe -> socket and refill the
 * pipe only once it is empty, so an EAGAIN from the first splice always
 * means "the source has nothing" and never "the pipe is full".
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"

/*
 * We ask for 1 MiB pipes (the default fs.pipe-max-size): a bulk transfer then
 * needs a sixteenth of the splice calls and wake-ups of a 64 KiB pipe, which
 * halved the CPU per GB in make bench (docs/performance.md). A pipe's pages
 * are allocated only while bytes sit in it, and idle sessions hold no pipe,
 * so this costs nothing at rest. If the kernel refuses, the pipe keeps its
 * default size and splice simply moves less per call.
 */
#define PIPE_SIZE ((size_t)1024 * 1024)
#define BUF_SIZE ((size_t)16 * 1024)

struct relay_pool {
    size_t max_idle;
    int (*pipes)[2];
    size_t npipes;
    size_t pipes_open, pipes_max; /* idle or held; at the max, halves copy instead */
    char **bufs;
    size_t nbufs;
};

struct relay_pool *
relay_pool_new(size_t max_idle)
{
    struct relay_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->max_idle = max_idle;
    p->pipes_max = SIZE_MAX;
    p->pipes = calloc(max_idle ? max_idle : 1, sizeof(*p->pipes));
    p->bufs = calloc(max_idle ? max_idle : 1, sizeof(*p->bufs));
    if (p->pipes == NULL || p->bufs == NULL) {
        relay_pool_free(p);
        return NULL;
    }
    return p;
}

void
relay_pool_free(struct relay_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->npipes; i++) {
        close(p->pipes[i][0]);
        close(p->pipes[i][1]);
    }
    for (size_t i = 0; i < p->nbufs; i++)
        free(p->bufs[i]);
    free(p->pipes);
    free(p->bufs);
    free(p);
}

void
relay_half_init(struct relay_half *h, enum relay_mode mode)
{
    *h = (struct relay_half){.pipe = {-1, -1},
                             .copy = mode != RELAY_SPLICE,
                             .autosplice = mode == RELAY_AUTO};
}

static void
close_pipe(struct relay_pool *p, int fds[2])
{
    close(fds[0]);
    close(fds[1]);
    fds[0] = fds[1] = -1;
    p->pipes_open--;
}

void
relay_pool_set_pipes_max(struct relay_pool *p, size_t max)
{
    p->pipes_max = max;
    while (p->pipes_open > max && p->npipes > 0)
        close_pipe(p, p->pipes[--p->npipes]);
}

static int
take_pipe(struct relay_pool *p, struct relay_half *h)
{
    if (h->pipe[0] >= 0)
        return 0;
    if (p->npipes > 0) {
        p->npipes--;
        h->pipe[0] = p->pipes[p->npipes][0];
        h->pipe[1] = p->pipes[p->npipes][1];
        return 0;
    }
    if (fault_hit(FAULT_PIPE)) {
        errno = ENFILE;
        return -1;
    }
    if (p->pipes_open >= p->pipes_max) {
        errno = EMFILE;
        return -1;
    }
    if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) == -1)
        return -1;
    p->pipes_open++;
    (void)fcntl(h->pipe[0], F_SETPIPE_SZ, (int)PIPE_SIZE);
    return 0;
}

static void
give_pipe(struct relay_pool *p, struct relay_half *h)
{
    if (h->pipe[0] < 0)
        return;
    /* A pipe with bytes left in it would leak them into another session. */
    if (h->pending == 0 && p->npipes < p->max_idle && p->pipes_open <= p->pipes_max) {
        p->pipes[p->npipes][0] = h->pipe[0];
        p->pipes[p->npipes][1] = h->pipe[1];
        p->npipes++;
        h->pipe[0] = h->pipe[1] = -1;
    } else {
        close_pipe(p, h->pipe);
    }
}

static int
take_buf(struct relay_pool *p, struct relay_half *h)
{
    if (h->buf != NULL)
        return 0;
    if (p->nbufs > 0) {
        h->buf = p->bufs[--p->nbufs];
        return 0;
    }
    h->buf = fault_hit(FAULT_BUFFER) ? NULL : malloc(BUF_SIZE);
    return h->buf ? 0 : -1;
}

static void
give_buf(struct relay_pool *p, struct relay_half *h)
{
    if (h->buf == NULL)
        return;
    if (p->nbufs < p->max_idle)
        p->bufs[p->nbufs++] = h->buf;
    else
        free(h->buf);
    h->buf = NULL;
}

void
relay_half_release(struct relay_pool *p, struct relay_half *h)
{
    if (h->pending != 0) {
        /* Dropped bytes: never hand this pipe to another session. */
        if (h->pipe[0] >= 0)
            close_pipe(p, h->pipe);
        h->pending = 0;
    }
    give_pipe(p, h);
    give_buf(p, h);
}

/* Writes pending bytes. Returns bytes written, 0 on EAGAIN, -1 on error. */
static ssize_t
flush(struct relay_half *h, int dst)
{
    ssize_t n;
    do {
        if (h->copy)
            n = send(dst, h->buf + h->off, h->pending,
                     MSG_NOSIGNAL | (h->last ? MSG_MORE : 0));
        else
            n = splice(h->pipe[0], NULL, dst, NULL, h->pending,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return n;
}

/* Reads into the pipe or buffer. Returns bytes, 0 at EOF, -1 (errno EAGAIN too). */
static ssize_t
fill(struct relay_pool *p, struct relay_half *h, const struct relay_end *end)
{
    ssize_t n;
    int src = end->fd;
    if (end->wary) {
        /* splice(2) stops at the urgent mark and says EAGAIN there for
         * good; recv steps over it. Copy from now on. */
        h->copy = true;
        h->bulk = h->autosplice = false;
    } else if (h->bulk) {
        /* The last read filled the buffer: bulk, splice from now on. */
        h->bulk = h->autosplice = h->copy = false;
    }
    if (!h->copy) {
        if (take_pipe(p, h) == 0) {
            do {
                n = splice(src, NULL, h->pipe[1], NULL, PIPE_SIZE,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            } while (n == -1 && errno == EINTR);
            if (n != -1 || errno != EINVAL)
                return n;
            /* This socket cannot be spliced: copy from now on. */
            give_pipe(p, h);
        }
        /* No pipe (EMFILE, ENFILE): copying still works. */
        h->copy = true;
    }
    if (take_buf(p, h) == -1) {
        errno = ENOMEM;
        return -2;
    }
    do {
        n = recv(src, h->buf, BUF_SIZE, 0);
    } while (n == -1 && errno == EINTR);
    h->off = 0;
    h->bulk = h->autosplice && n == (ssize_t)BUF_SIZE;
    return n;
}

enum relay_result
relay_pump(struct relay_pool *p, struct relay_half *h, struct relay_end *src,
           struct relay_end *dst, size_t budget, bool *moved)
{
    size_t total = 0;
    for (;;) {
        if (h->pending > 0) {
            if (!dst->wr)
                return RELAY_BLOCKED;
            ssize_t n = flush(h, dst->fd);
            if (n == -1)
                return RELAY_ERR_DST;
            if (n == 0) {
                dst->wr = false;
                return RELAY_BLOCKED;
            }
            h->pending -= (uint32_t)n;
            h->off += (uint32_t)n;
            h->bytes += (uint64_t)n;
            total += (size_t)n;
            *moved = true;
            if (h->pending == 0) {
                give_pipe(p, h);
                give_buf(p, h);
                h->eof = h->last;
            }
            continue;
        }
        if (h->eof) {
            if (!h->done) {
                h->done = true;
                /* ENOTCONN: the peer is gone already; the other half will tell. */
                if (!dst->closes)
                    (void)shutdown(dst->fd, SHUT_WR);
            }
            return RELAY_DONE;
        }
        if (total >= budget)
            return RELAY_MORE;
        if (!src->rd)
            return RELAY_BLOCKED;
        ssize_t n = fill(p, h, src);
        if (n > 0) {
            h->pending = (uint32_t)n;
            /* A short recv took all the socket had; a short splice proves
             * nothing (it stops where the pipe runs out of slots). */
            if (h->copy && (size_t)n < BUF_SIZE && !src->wary) {
                if (src->fin)
                    h->last = true;
                else
                    src->rd = false;
            }
            continue;
        }
        int saved = errno;
        give_pipe(p, h);
        give_buf(p, h);
        if (n == 0) {
            h->eof = true;
            continue;
        }
        errno = saved;
        if (n == -2)
            return RELAY_ERR_NOMEM;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            src->rd = false;
            return RELAY_BLOCKED;
        }
        return RELAY_ERR_SRC;
    }
}
