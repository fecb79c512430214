/*
 * loop: epoll plus a min-heap of timers. Timers are cheap to re-arm, but
 * sessions avoid even that for idle timeouts: they store the time of their
 * last activity and push the timer forward only when it fires (lazy
 * deadline), so moving a byte never touches the heap.
 */
#include "loop.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "util.h"

#define MAX_EVENTS 256

struct loop {
    int epfd;
    uint64_t now;
    bool stop;
    struct timer **heap;
    size_t nheap, capheap;
    size_t reserved;            /* timers the owners may arm (loop_timer_reserve) */
    struct defer *dhead, **dtail;
    uint32_t busy_us;           /* loop_set_busy_poll */
    int batch;                  /* events of the current pass (loop_batch) */
};

static uint64_t
monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
loop_set_busy_poll(struct loop *l, uint32_t us)
{
    l->busy_us = us;
}

/* Polls without sleeping for up to l->busy_us; 0 when nothing came. */
static int
busy_wait(struct loop *l, struct epoll_event *evs, int max)
{
    uint64_t until = monotonic_us() + l->busy_us;
    int n;
    do {
        n = epoll_wait(l->epfd, evs, max, 0);
    } while (n == 0 && monotonic_us() < until);
    return n;
}

struct loop *
loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1) {
        free(l);
        return NULL;
    }
    l->now = util_monotonic_ms();
    l->dtail = &l->dhead;
    return l;
}

void
loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    close(l->epfd);
    free(l->heap);
    free(l);
}

int
loop_add(struct loop *l, struct io *io, uint32_t events)
{
    if (fault_hit(FAULT_EPOLL)) {
        errno = ENOMEM;
        return -1;
    }
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int
loop_mod(struct loop *l, struct io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
}

void
loop_del(struct loop *l, struct io *io)
{
    if (io->fd >= 0)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void
timer_init(struct timer *t, void (*cb)(struct timer *t))
{
    t->when = 0;
    t->idx = TIMER_IDLE;
    t->cb = cb;
}

static void
heap_swap(struct loop *l, size_t a, size_t b)
{
    struct timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->idx = a;
    l->heap[b]->idx = b;
}

static void
heap_up(struct loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->when <= l->heap[i]->when)
            break;
        heap_swap(l, i, p);
        i = p;
    }
}

static void
heap_down(struct loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && l->heap[c + 1]->when < l->heap[c]->when)
            c++;
        if (l->heap[i]->when <= l->heap[c]->when)
            break;
        heap_swap(l, i, c);
        i = c;
    }
}

void
loop_timer_cancel(struct loop *l, struct timer *t)
{
    size_t i = t->idx;
    if (i == TIMER_IDLE)
        return;
    t->idx = TIMER_IDLE;
    l->nheap--;
    if (i == l->nheap)
        return;
    l->heap[i] = l->heap[l->nheap];
    l->heap[i]->idx = i;
    heap_up(l, i);
    heap_down(l, l->heap[i]->idx);
}

int
loop_timer_reserve(struct loop *l, size_t n)
{
    size_t need = l->reserved + n;
    if (need > l->capheap) {
        size_t cap = l->capheap ? l->capheap : 256;
        while (cap < need)
            cap *= 2;
        struct timer **h = realloc(l->heap, cap * sizeof(struct timer *));
        if (h == NULL)
            return -1;
        l->heap = h;
        l->capheap = cap;
    }
    l->reserved = need;
    return 0;
}

void
loop_timer_release(struct loop *l, size_t n)
{
    assert(n <= l->reserved);
    l->reserved -= n;
}

void
loop_timer_at(struct loop *l, struct timer *t, uint64_t when)
{
    if (t->idx != TIMER_IDLE) {
        t->when = when;
        heap_up(l, t->idx);
        heap_down(l, t->idx);
        return;
    }
    /* Owners reserve a slot before they own a timer (loop_timer_reserve). */
    assert(l->nheap < l->capheap);
    t->when = when;
    t->idx = l->nheap;
    l->heap[l->nheap++] = t;
    heap_up(l, t->idx);
}

void
defer_init(struct defer *d, void (*cb)(struct defer *d))
{
    d->next = NULL;
    d->queued = false;
    d->cb = cb;
}

void
loop_defer(struct loop *l, struct defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    *l->dtail = d;
    l->dtail = &d->next;
}

uint64_t
loop_now(const struct loop *l)
{
    return l->now;
}

int
loop_batch(const struct loop *l)
{
    return l->batch;
}

void
loop_stop(struct loop *l)
{
    l->stop = true;
}

static void
run_timers(struct loop *l)
{
    while (l->nheap > 0 && l->heap[0]->when <= l->now) {
        struct timer *t = l->heap[0];
        loop_timer_cancel(l, t);
        t->cb(t);
    }
}

static void
run_defers(struct loop *l)
{
    /* Only what was queued before this pass: callbacks may queue more. */
    struct defer *d = l->dhead;
    l->dhead = NULL;
    l->dtail = &l->dhead;
    while (d != NULL) {
        struct defer *next = d->next;
        d->queued = false;
        d->next = NULL;
        d->cb(d);
        d = next;
    }
}

int
loop_run(struct loop *l)
{
    struct epoll_event evs[MAX_EVENTS];
    bool busy = false; /* the last pass handled events: poll before sleeping */
    while (!l->stop) {
        int timeout = -1;
        if (l->dhead != NULL) {
            timeout = 0;
        } else if (l->nheap > 0) {
            uint64_t when = l->heap[0]->when;
            timeout = when <= l->now ? 0 : (int)(when - l->now > 60000 ? 60000 : when - l->now);
        }
        int n = busy && timeout != 0 ? busy_wait(l, evs, MAX_EVENTS) : 0;
        if (n == 0)
            n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
        if (n == -1 && errno != EINTR)
            return -1;
        busy = l->busy_us > 0 && n > 0;
        l->now = util_monotonic_ms();
        l->batch = n > 0 ? n : 0;
        log_batch_begin();
        for (int i = 0; i < n; i++) {
            struct io *io = evs[i].data.ptr;
            io->cb(io, evs[i].events);
        }
        run_timers(l);
        run_defers(l);
        log_batch_end();
    }
    return 0;
}
