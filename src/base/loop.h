/*
 * loop: one epoll event loop with millisecond timers (a binary heap) and
 * deferred callbacks that run after the current batch of events. One loop
 * per worker; nothing here is global, so workers can share nothing.
 */
#ifndef MAILEDGE_LOOP_H
#define MAILEDGE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;

/* A descriptor watched by the loop; embed it in its owner. */
struct io {
    int fd;
    void (*cb)(struct io *io, uint32_t events);
};

/* A one-shot timer; embed it in its owner. Not armed when idx == TIMER_IDLE. */
#define TIMER_IDLE ((size_t)-1)
struct timer {
    uint64_t when;  /* loop_now() milliseconds */
    size_t idx;     /* heap slot, private */
    void (*cb)(struct timer *t);
};

/*
 * Work to run after the current batch of events: freeing a session that an
 * event later in the same batch may still point to, or continuing a relay
 * that used up its budget. Queuing an already queued defer does nothing.
 */
struct defer {
    struct defer *next;
    bool queued;
    void (*cb)(struct defer *d);
};

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* epoll_ctl wrappers: -1 and errno on failure. */
int loop_add(struct loop *l, struct io *io, uint32_t events);
int loop_mod(struct loop *l, struct io *io, uint32_t events);
void loop_del(struct loop *l, struct io *io);

void timer_init(struct timer *t, void (*cb)(struct timer *t));

/*
 * The loop counts the timers its owners may arm, so that arming never
 * allocates (and never fails) on the data path. An owner reserves room for
 * its <n> timers before it arms them (-1 when out of memory: nothing
 * reserved) and releases it once they are cancelled for good.
 */
int loop_timer_reserve(struct loop *l, size_t n);
void loop_timer_release(struct loop *l, size_t n);
void loop_timer_at(struct loop *l, struct timer *t, uint64_t when);
void loop_timer_cancel(struct loop *l, struct timer *t);

void defer_init(struct defer *d, void (*cb)(struct defer *d));
void loop_defer(struct loop *l, struct defer *d);

/* Monotonic milliseconds, refreshed once per batch of events. */
uint64_t loop_now(const struct loop *l);

/* Events in the current batch: more than one says the process has work
 * queued (a load signal that costs nothing to read). */
int loop_batch(const struct loop *l);

/*
 * Busy polling: after a pass that handled events, poll epoll without
 * sleeping for up to <us> microseconds before a blocking wait, so that the
 * next event of a conversation (a reply a few tens of microseconds later)
 * finds the process awake instead of waking it. 0 turns it off (default).
 */
void loop_set_busy_poll(struct loop *l, uint32_t us);

/* Runs until loop_stop(). Returns 0, or -1 and errno if epoll_wait fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
