/* healthshare: server health from the checking worker to the others. */
#include "healthshare.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "shm.h"
#include "util.h"
#include "worker.h"

struct slot {
    atomic_uint used;         /* set last, once the names are written */
    char backend[CONF_NAME_MAX];
    char server[CONF_NAME_MAX];
    atomic_uint up;
    atomic_ulong passes;      /* passes so far: a new one wakes held clients */
};

struct healthshare {
    atomic_ulong changes;     /* a server went up or down: followers read again */
    struct slot s[HEALTHSHARE_SLOTS];
};

static struct healthshare *region;
static bool checker = true;

/* A follower's reading state. */
static struct {
    struct worker *w;
    struct timer timer;
    unsigned long *seen;      /* passes seen, per slot */
    unsigned long changes;    /* region->changes when it last read every backend */
} fol;

void
healthshare_attach(void)
{
    struct shm *shm = shm_host();
    if (shm == NULL || shm_nworkers() < 2 || region != NULL)
        return;
    region = shm_named(shm, "health", "servers", sizeof(*region), NULL, NULL);
    if (region == NULL) {
        log_warnx("workers: the shared region is full: this worker checks its servers itself");
        return;
    }
    checker = shm_worker() == 0;
}

bool
healthshare_checks_here(void)
{
    return checker;
}

static struct slot *
find(const char *backend, const char *server, bool add)
{
    for (size_t i = 0; i < HEALTHSHARE_SLOTS; i++) {
        struct slot *s = &region->s[i];
        if (!atomic_load_explicit(&s->used, memory_order_acquire)) {
            if (!add)
                return NULL;
            util_strlcpy(s->backend, backend, sizeof(s->backend));
            util_strlcpy(s->server, server, sizeof(s->server));
            atomic_store_explicit(&s->used, 1, memory_order_release);
            return s;
        }
        if (strcmp(s->backend, backend) == 0 && strcmp(s->server, server) == 0)
            return s;
    }
    return NULL;
}

void
healthshare_publish(const struct backend *b, size_t i, bool passed)
{
    if (region == NULL || !checker)
        return;
    struct slot *s = find(b->conf->name, b->conf->servers[i].name, true);
    if (s == NULL)
        return; /* full: that server's followers keep it down (docs/scaling.md) */
    if (atomic_exchange(&s->up, b->srv[i].up) != (unsigned)b->srv[i].up)
        atomic_fetch_add(&region->changes, 1);
    if (passed)
        atomic_fetch_add(&s->passes, 1);
}

/*
 * Takes the published health of <b>'s servers. <wake>: held clients are
 * woken on a new pass of an up server (the poll); without it, the passes
 * stay unseen for the next poll to wake them.
 */
static void
read_backend(struct backend *b, bool wake)
{
    bool woke = false;
    for (size_t j = 0; j < b->conf->nservers; j++) {
        struct slot *s = find(b->conf->name, b->conf->servers[j].name, false);
        if (s == NULL)
            continue;
        struct backend_server *st = &b->srv[j];
        bool up = atomic_load(&s->up) != 0;
        if (up != st->up) {
            st->up = up;
            st->m->up = up;
            *(up ? &st->m->went_up : &st->m->went_down) += 1;
        }
        if (!wake)
            continue;
        unsigned long passes = atomic_load(&s->passes);
        size_t k = (size_t)(s - region->s);
        if (up && passes != fol.seen[k])
            woke = true;
        fol.seen[k] = passes;
    }
    if (woke)
        backend_wake(b);
}

static void
read_all(struct worker *w, bool wake)
{
    fol.changes = atomic_load(&region->changes);
    for (size_t i = 0; i < w->conf->nbackends; i++) {
        struct backend *b = &w->backends[i];
        if (b->conf->check != CHECK_NONE)
            read_backend(b, wake);
    }
}

static void
on_poll(struct timer *t)
{
    read_all(fol.w, true);
    loop_timer_at(fol.w->loop, t, loop_now(fol.w->loop) + HEALTHSHARE_POLL_MS);
}

void
healthshare_sync(struct worker *w)
{
    if (fol.w == w && atomic_load(&region->changes) != fol.changes)
        read_all(w, false);
}

int
healthshare_follow(struct worker *w)
{
    if (region == NULL || checker)
        return 0;
    if (loop_timer_reserve(w->loop, 1) == -1 ||
        (fol.seen = calloc(HEALTHSHARE_SLOTS, sizeof(*fol.seen))) == NULL) {
        log_warnx("workers: cannot follow the shared health");
        return -1;
    }
    fol.w = w;
    timer_init(&fol.timer, on_poll);
    loop_timer_at(w->loop, &fol.timer, loop_now(w->loop));
    return 0;
}

void
healthshare_unfollow(struct worker *w)
{
    if (fol.w != w || fol.seen == NULL)
        return;
    loop_timer_cancel(w->loop, &fol.timer);
    loop_timer_release(w->loop, 1);
    free(fol.seen);
    fol.seen = NULL;
    fol.w = NULL;
}
