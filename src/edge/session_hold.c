/*
 * session_hold: the clients a backend holds while no server can take them
 * (queue-timeout): an intrusive list per backend, woken by a passing check,
 * given the goodbye on drain, moved to the new backend on reload.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "conf.h"
#include "gen.h"
#include "log.h"
#include "loop.h"
#include "session_int.h"
#include "util.h"
#include "worker.h"

static void wake(struct backend_waiter *w);

/* Whether <b> may hold clients: only with a check to wake them. */
bool
session_holds(const struct backend *b)
{
    return b->conf->queue_timeout_ms > 0 && b->conf->check != CHECK_NONE;
}

/* Takes a HOLDING session off its backend's queue; a no-op when it is not on it. */
void
session_unhold(struct session *s)
{
    if (!backend_unhold(s->backend, &s->hold))
        return;
    s->held_ms += loop_now(s->w->loop) - s->hold_since_ms;
    loop_timer_cancel(s->w->loop, &s->timer);
}

/* --- holding ------------------------------------------------------------- */

void
session_hold_detail(const struct session *s, char *detail, size_t cap)
{
    const char *name = s->backend->conf->name;
    if (s->trying == NULL || s->last_err == 0)
        snprintf(detail, cap, "no server of backend %s is up", name);
    else
        snprintf(detail, cap, "no server of backend %s answered; last %s: %s", name,
                 s->trying->name, session_connect_error(s->last_err, s->last_timeout));
}

/*
 * A reload replaced the generation of <s>'s backend: <s> uses <nb>, the
 * backend of the same name in the current one, from now on. The server
 * it last tried belongs to the old config: forgotten.
 */
static void
move_backend(struct session *s, struct backend *nb)
{
    struct gen *old = s->bgen;
    s->backend = nb;
    s->trying = NULL;
    if (nb->gen == s->gen) {
        s->bgen = NULL;
    } else {
        s->bgen = nb->gen;
        nb->gen->refs++;
    }
    gen_release(s->w, old);
}

/*
 * No server of the backend could take the session: queue it at the tail of
 * its backend's held list until a server comes up, queue-timeout (counted
 * from the first hold) passes, or the client hangs up.
 */
void
session_hold(struct session *s)
{
    struct backend *b = s->backend;
    uint64_t now = loop_now(s->w->loop);
    char detail[CONF_NAME_MAX + 128];

    if (s->c_hup) {
        session_close(s, END_CLIENT_CLOSED, "closed while waiting for a server");
        return;
    }
    if (s->w->draining) {
        session_say_goodbye(s);
        session_close(s, END_SHUTDOWN, "draining, no server up");
        return;
    }
    if (b->gen != s->w->gen) {
        /* Started before a reload: only the current generation's checks
         * wake held clients, so wait in the backend of the same name. */
        struct backend *nb = gen_backend_by_name(s->w->gen, b->conf->name);
        if (nb == NULL || !session_holds(nb)) {
            session_say_goodbye(s);
            session_close(s, END_SHUTDOWN,
                          nb == NULL ? "backend removed by a reload" : "backend no longer holds clients");
            return;
        }
        move_backend(s, nb);
        b = nb;
    }
    uint64_t deadline = (s->held_ever ? s->hold_first_ms : now) + b->conf->queue_timeout_ms;
    if (now >= deadline || b->nheld >= b->conf->queue_max) {
        /* A client turned away by queue-max was never held: no held_ms. */
        session_hold_detail(s, detail, sizeof(detail));
        session_say_goodbye(s);
        session_close(s, now >= deadline ? END_QUEUE_TIMEOUT : END_QUEUE_FULL, detail);
        return;
    }
    if (!s->held_ever) {
        s->held_ever = true;
        s->hold_first_ms = now;
    }
    session_set_state(s, SESSION_HOLDING);
    s->hold_since_ms = now;
    s->hold.wake = wake;
    backend_hold(b, &s->hold);
    loop_timer_at(s->w->loop, &s->timer, deadline);
    if (log_enabled(LOG_DEBUG)) {
        log_begin(LOG_DEBUG, "hold");
        log_hex("id", s->id, 16);
        log_str("backend", b->conf->name);
        log_u64("queued", b->nheld);
        log_end();
    }
}

/* Connects again from the start of its backend's walk, as a new session would. */
static void
walk_again(struct session *s)
{
    session_set_state(s, SESSION_CONNECTING);
    s->srv_first = backend_first(s->backend);
    s->attempt = 0;
    s->trying = NULL;
    s->last_err = 0;
    s->last_timeout = false;
    session_connect_next(s);
}

/* A check passed on a server of the backend holding <w> (backend_wake). */
static void
wake(struct backend_waiter *w)
{
    struct session *s = container_of(w, struct session, hold);
    session_unhold(s);
    walk_again(s);
}

void
session_drain_held(struct worker *w)
{
    for (size_t i = 0; i < w->conf->nbackends; i++) {
        struct backend *b = &w->backends[i];
        while (b->held_head != NULL) {
            struct session *s = container_of(b->held_head, struct session, hold);
            session_say_goodbye(s);
            session_close(s, END_SHUTDOWN, "draining while waiting for a server");
        }
    }
}

void
session_reload_held(struct worker *w, struct gen *old)
{
    for (size_t i = 0; i < old->conf->nbackends; i++) {
        struct backend *b = &old->backends[i];
        struct backend *nb = gen_backend_by_name(w->gen, b->conf->name);
        if (nb == NULL) {
            /* session_close() takes each off the queue. */
            while (b->held_head != NULL) {
                struct session *s = container_of(b->held_head, struct session, hold);
                session_say_goodbye(s);
                session_close(s, END_SHUTDOWN, "backend removed by a reload");
            }
            continue;
        }
        /* Oldest first: each goes to the tail of its new queue. */
        size_t n = b->nheld;
        while (n-- > 0 && b->held_head != NULL) {
            struct session *s = container_of(b->held_head, struct session, hold);
            session_unhold(s);
            move_backend(s, nb);
            /* Its servers may be up already (health carried over, or no
             * check): try them now; else session_hold() queues it again. */
            walk_again(s);
        }
    }
}
