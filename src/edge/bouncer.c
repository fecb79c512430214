/* bouncer: CrowdSec decisions through libcurl's multi interface in our loop (bouncer.h). */
#include "bouncer.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "banset.h"
#include "decisions.h"
#include "log.h"
#include "loop.h"
#include "shm.h"
#include "util.h"
#include "worker.h"

#define BIO_MAX 4          /* curl sockets at once: one connection, Happy Eyeballs, spare */
#define EXPIRE_BUDGET BOUNCER_BATCH /* expired entries dropped per loop pass (and lock) */
#define SPENT_BUDGET 8     /* blocks of a spent answer freed per pass (decisions_free_some) */

struct bouncer;

/*
 * The remote bans of the host (docs/scaling.md, "Several workers"): one
 * set for every worker, in the shared region, found by name, so a worker 0
 * that restarts finds it again (sticky: it stays in force until worker 0's
 * next whole list replaces it). Worker 0 alone writes it (the sync), under
 * <mu>, in sections of BOUNCER_BATCH changes at most; the other workers
 * look up under <mu>. Worker 0 reads without it: nobody else writes.
 */
struct hostbans {
    struct shm_mutex mu;
    struct banset *set;      /* in force; NULL until the first answer */
    struct banset *fresh;    /* worker 0's, not in force yet: a restarted */
    struct banset *retired;  /* worker 0 frees what its predecessor left */
};

struct bio {
    struct io io;
    struct bouncer *b;
    bool used;
};

enum phase {
    PH_IDLE,     /* waiting for the next poll */
    PH_POLLING,  /* a transfer in flight */
    PH_APPLYING, /* an answer applied in batches */
};

struct bouncer {
    struct worker *w;
    bool on;                       /* crowdsec configured; off: only this struct is left */
    bool syncer;                   /* worker 0: polls the LAPI and writes the host's set */
    struct shm *shm;               /* where the sets live: the host's region (NULL: none) */
    struct hostbans *hb;           /* the host's set */
    struct banset_entry hit;       /* bouncer_lookup()'s answer, copied out of the set */
    char hit_origin[256], hit_scenario[256];
    struct conf_crowdsec cf;       /* the settings in force */
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    struct bio ios[BIO_MAX];
    struct timer poll_timer;       /* the next poll, and expiries */
    struct timer curl_timer;       /* curl's own timeouts */
    struct defer apply_defer;      /* the next batch of an answer */
    enum phase phase;
    bool startup;                  /* the poll in flight (or applied) is startup=true */
    bool need_full;                /* the next poll asks for the whole list */
    struct decisions *ans;         /* the answer being read or applied */
    size_t received;
    size_t pass_bytes;             /* fed in this loop pass (BOUNCER_PASS_BYTES at most) */
    bool paused;                   /* the transfer waits for the next pass */
    struct defer resume_defer;     /* unpauses it */
    struct banset *retired;        /* the set a whole list replaced, emptied in batches */
    struct defer retire_defer;
    struct decisions *spent;       /* an answer done with, freed in steps */
    struct defer spent_defer;
    struct defer expire_defer;     /* more expired entries to drop */
    int fail_kind;                 /* set by the write callback: why it stopped; -1: none */
    char fail_why[160];
    size_t next_del, next_new;     /* progress through the answer */
    size_t added, removed;         /* of this answer, for the log */
    struct banset *set;            /* in force; NULL until the first answer */
    struct banset *fresh;          /* a startup=true answer being built */
    /* State, logged when it changes. */
    enum { ST_STARTING, ST_UP, ST_DOWN } state;
    int last_kind;                 /* of the last failure; -1: none */
    char error[160];               /* the last failure, "" after a success */
    uint64_t retry_ms;             /* failure back-off; 0 after a success */
    uint64_t full_due_ms;          /* loop time of the next whole-list poll */
    uint64_t last_full;            /* Unix time of the last whole list */
    bool full_warned;              /* the set was full: said once per answer */
    uint64_t step_max_us;          /* the longest step since the last ban_sync_poll line */
};

static const char *const state_names[] = {"starting", "up", "down"};

static void poll_start(struct bouncer *b);

/* The bouncer's steps are timed for the debug line ban_sync_poll, the
 * proof that none stalls the loop: in µs of the thread's CPU time (wall
 * time would count the turns of other processes on a busy host). */
static uint64_t
step_begin(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
step_end(struct bouncer *b, uint64_t t0)
{
    uint64_t us = step_begin() - t0;
    if (us > b->step_max_us)
        b->step_max_us = us;
}

static struct bouncer *
of(const struct worker *w)
{
    return w->bouncer;
}

/* The sync's figures (metrics.bansync: gauges, errors, last_success) are
 * per host: worker 0 keeps them; the other workers leave them at 0 and
 * count only their refusals, so a sum over workers is right (except
 * last_success, a time: worker 0's is the host's). */
static void
update_gauges(struct bouncer *b)
{
    struct banset_stats st = {0};
    if (b->set != NULL)
        banset_stats(b->set, &st);
    b->w->metrics.bansync.ips = st.ips;
    b->w->metrics.bansync.ranges = st.ranges;
}

static uint64_t
retry_cap(const struct bouncer *b)
{
    return b->cf.interval_ms > BOUNCER_RETRY_MAX_MS ? b->cf.interval_ms : BOUNCER_RETRY_MAX_MS;
}

static void
schedule(struct bouncer *b, uint64_t in_ms)
{
    loop_timer_at(b->w->loop, &b->poll_timer, loop_now(b->w->loop) + in_ms);
}

/* ---- curl in the loop ---- */

static void check_done(struct bouncer *b);

static void
on_io(struct io *io, uint32_t events)
{
    struct bio *x = container_of(io, struct bio, io);
    struct bouncer *b = x->b;
    int mask = ((events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
               ((events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
               ((events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
    int running;
    uint64_t t0 = step_begin();
    curl_multi_socket_action(b->multi, io->fd, mask, &running);
    check_done(b);
    step_end(b, t0);
}

static void
on_curl_timer(struct timer *t)
{
    struct bouncer *b = container_of(t, struct bouncer, curl_timer);
    int running;
    uint64_t t0 = step_begin();
    curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(b);
    step_end(b, t0);
}

/* curl watches, changes or forgets one of its sockets. */
static int
on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct bouncer *b = userp;
    struct bio *x = socketp;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (x != NULL) {
            loop_del(b->w->loop, &x->io);
            x->used = false;
            x->io.fd = -1;
            curl_multi_assign(b->multi, s, NULL);
        }
        return 0;
    }
    uint32_t ev = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    if (x != NULL) {
        if (loop_mod(b->w->loop, &x->io, ev) == -1)
            log_warn("bouncer: epoll_ctl");
        return 0;
    }
    for (size_t i = 0; i < BIO_MAX; i++) {
        if (b->ios[i].used)
            continue;
        x = &b->ios[i];
        x->io.fd = s;
        x->io.cb = on_io;
        x->b = b;
        if (loop_add(b->w->loop, &x->io, ev) == -1) {
            log_warn("bouncer: epoll_ctl");
            x->io.fd = -1;
            return -1;
        }
        x->used = true;
        curl_multi_assign(b->multi, s, x);
        return 0;
    }
    log_warnx("bouncer: more than %d sockets at once", BIO_MAX);
    return -1;
}

/* curl's next timeout: -1 none, 0 at once (the next loop pass). */
static int
on_curl_timeout(CURLM *m, long ms, void *userp)
{
    struct bouncer *b = userp;

    (void)m;
    if (ms < 0)
        loop_timer_cancel(b->w->loop, &b->curl_timer);
    else
        loop_timer_at(b->w->loop, &b->curl_timer, loop_now(b->w->loop) + (uint64_t)ms);
    return 0;
}

static size_t
on_body(char *p, size_t size, size_t n, void *userp)
{
    struct bouncer *b = userp;
    size_t len = size * n;

    if (b->pass_bytes >= BOUNCER_PASS_BYTES) {
        /* Enough parsing for this loop pass: curl keeps the chunk for later. */
        b->paused = true;
        loop_defer(b->w->loop, &b->resume_defer);
        return CURL_WRITEFUNC_PAUSE;
    }
    b->pass_bytes += len;
    b->received += len;
    if (b->received > b->cf.max_answer) {
        b->fail_kind = METRICS_SYNC_OVERSIZED;
        snprintf(b->fail_why, sizeof(b->fail_why),
                 "the answer is longer than crowdsec-max-answer (%llu bytes)",
                 (unsigned long long)b->cf.max_answer);
        return 0;
    }
    if (decisions_feed(b->ans, p, len) == DECISIONS_ERROR) {
        b->fail_kind = METRICS_SYNC_BAD_ANSWER;
        snprintf(b->fail_why, sizeof(b->fail_why), "not a decision stream: %s",
                 decisions_error(b->ans));
        return 0;
    }
    return len;
}

static void
on_resume(struct defer *d)
{
    struct bouncer *b = container_of(d, struct bouncer, resume_defer);

    b->pass_bytes = 0;
    if (!b->on || !b->paused || b->phase != PH_POLLING)
        return;
    b->paused = false;
    uint64_t t0 = step_begin();
    curl_easy_pause(b->easy, CURLPAUSE_CONT);
    check_done(b);
    step_end(b, t0);
}

/* Empties the set a whole list replaced, BOUNCER_BATCH entries a pass, then frees it. */
static void
on_retire(struct defer *d)
{
    struct bouncer *b = container_of(d, struct bouncer, retire_defer);

    if (b->retired == NULL)
        return;
    uint64_t t0 = step_begin();
    if (banset_expire(b->retired, UINT64_MAX, (size_t)BOUNCER_BATCH * 4) > 0) {
        loop_defer(b->w->loop, &b->retire_defer);
    } else {
        banset_free(b->retired);
        b->retired = NULL;
        b->hb->retired = NULL;
    }
    step_end(b, t0);
}

/* Frees a spent answer, SPENT_BUDGET blocks a pass. */
static void
on_spent(struct defer *d)
{
    struct bouncer *b = container_of(d, struct bouncer, spent_defer);

    if (b->spent == NULL)
        return;
    uint64_t t0 = step_begin();
    if (decisions_free_some(b->spent, SPENT_BUDGET))
        b->spent = NULL;
    else
        loop_defer(b->w->loop, &b->spent_defer);
    step_end(b, t0);
}

/* ---- state ---- */

static void
log_state(struct bouncer *b, enum log_level lvl)
{
    log_begin(lvl, "ban_sync");
    log_str("source", "crowdsec");
    log_str("state", state_names[b->state]);
    log_str("url", b->cf.url);
    if (b->state == ST_DOWN) {
        log_str("kind", metrics_sync_err_names[b->last_kind]);
        log_str("error", b->error);
        log_u64("retry_ms", b->retry_ms);
    }
    struct banset_stats st = {0};
    if (b->set != NULL)
        banset_stats(b->set, &st);
    log_u64("ips", st.ips);
    log_u64("ranges", st.ranges);
    log_end();
}

/* Hands the answer to on_spent(): freeing 100,000 decisions at once
 * would stall the loop for milliseconds. */
static void
spend_answer(struct bouncer *b)
{
    if (b->ans == NULL)
        return;
    if (b->spent != NULL)
        decisions_free(b->spent); /* answers in quick succession: rare */
    b->spent = b->ans;
    b->ans = NULL;
    loop_defer(b->w->loop, &b->spent_defer);
}

static void
drop_answer(struct bouncer *b)
{
    spend_answer(b);
    banset_free(b->fresh);
    b->fresh = NULL;
    b->hb->fresh = NULL;
}

/* A poll failed: nothing in force changes; try again later. */
static void
failed(struct bouncer *b, int kind, const char *why)
{
    drop_answer(b);
    b->phase = PH_IDLE;
    b->need_full = true; /* the engine may have moved this key's last pull: ask for all */
    b->w->metrics.bansync.errors[kind]++;
    b->w->metrics.bansync.up = false;
    b->retry_ms = b->retry_ms == 0 ? 1000 : b->retry_ms * 2;
    if (b->retry_ms > retry_cap(b))
        b->retry_ms = retry_cap(b);
    bool changed = b->state != ST_DOWN || b->last_kind != kind || strcmp(b->error, why) != 0;
    b->state = ST_DOWN;
    b->last_kind = kind;
    util_strlcpy(b->error, why, sizeof(b->error));
    if (changed)
        log_state(b, LOG_WARN);
    schedule(b, b->retry_ms);
}

static void
succeeded(struct bouncer *b, size_t n_new, size_t n_del)
{
    uint64_t now = loop_now(b->w->loop);
    bool changed = b->state != ST_UP;

    if (b->startup) {
        struct banset *old = b->set;
        /* In force for every worker from here; nobody else sees the old one. */
        shm_mutex_lock(&b->hb->mu);
        b->hb->set = b->fresh;
        b->hb->fresh = NULL;
        shm_mutex_unlock(&b->hb->mu);
        if (b->retired == NULL) {
            b->retired = b->hb->retired = old;
            loop_defer(b->w->loop, &b->retire_defer);
        } else {
            banset_free(old); /* whole lists in quick succession: rare */
        }
        b->set = b->fresh;
        b->fresh = NULL;
        b->full_due_ms = b->cf.resync_ms == UINT64_MAX ? UINT64_MAX : now + b->cf.resync_ms;
        b->last_full = (uint64_t)time(NULL);
        b->need_full = false;
    }
    spend_answer(b);
    b->phase = PH_IDLE;
    b->state = ST_UP;
    b->retry_ms = 0;
    b->error[0] = '\0';
    b->w->metrics.bansync.up = true;
    b->w->metrics.bansync.last_success = (uint64_t)time(NULL);
    update_gauges(b);
    if (changed)
        log_state(b, LOG_INFO);
    if (log_enabled(LOG_DEBUG)) {
        log_begin(LOG_DEBUG, "ban_sync_poll");
        log_u64("startup", b->startup);
        log_u64("new", n_new);
        log_u64("deleted", n_del);
        log_u64("added", b->added);
        log_u64("removed", b->removed);
        log_u64("bytes", b->received);
        log_u64("longest_step_us", b->step_max_us);
        log_end();
    }
    b->step_max_us = 0;
    schedule(b, b->cf.interval_ms);
}

/* ---- applying an answer ---- */

static bool
word_in(const struct conf_cs_words *v, const char *s, bool contains)
{
    for (size_t i = 0; i < v->n; i++)
        if (contains ? strstr(s, v->v[i]) != NULL : strcasecmp(s, v->v[i]) == 0)
            return true;
    return false;
}

/* Whether decision <d> is to be enforced (the filters again, in case the engine ignored them). */
static bool
wanted(const struct bouncer *b, const struct decision *d)
{
    if (d->type == DECISION_OTHER || (d->type == DECISION_CAPTCHA && !b->cf.captcha_ban))
        return false;
    if (d->duration_ms <= 0)
        return false;
    if (b->cf.origins.n > 0 && !word_in(&b->cf.origins, d->origin, false))
        return false;
    if (b->cf.scen_in.n > 0 && !word_in(&b->cf.scen_in, d->scenario, true))
        return false;
    return !word_in(&b->cf.scen_out, d->scenario, true);
}

static void
full_warning(struct bouncer *b)
{
    if (b->full_warned)
        return;
    b->full_warned = true;
    log_begin(LOG_WARN, "ban_sync_full");
    log_str("source", "crowdsec");
    log_u64("max_bans", b->cf.max_bans);
    log_str("hint", "raise crowdsec-max-bans, or leave lists out with crowdsec-origins");
    log_end();
}

static void
on_apply(struct defer *df)
{
    struct bouncer *b = container_of(df, struct bouncer, apply_defer);
    if (!b->on || b->phase != PH_APPLYING)
        return;
    uint64_t t0 = step_begin();
    struct banset *target = b->startup ? b->fresh : b->set;
    uint64_t now = loop_now(b->w->loop);
    size_t n_del = b->startup ? 0 : decisions_count(b->ans, true);
    size_t n_new = decisions_count(b->ans, false);
    size_t budget = BOUNCER_BATCH;
    struct decision d;
    const char *why;

    /* The set in force is every worker's: changed under its lock, one batch
     * at a time (a startup answer's fresh set is worker 0's alone). */
    bool shared = target == b->set;
    if (shared)
        shm_mutex_lock(&b->hb->mu);
    /* Deleted first: a decision deleted and made again in one delta stays. */
    for (; b->next_del < n_del && budget > 0; b->next_del++, budget--) {
        if (decisions_get(b->ans, true, b->next_del, &d, &why) == 0 &&
            banset_del(target, &d.net) == 0)
            b->removed++;
    }
    for (; b->next_new < n_new && budget > 0; b->next_new++, budget--) {
        if (decisions_get(b->ans, false, b->next_new, &d, &why) != 0 || !wanted(b, &d)) {
            b->w->metrics.bansync.ignored++;
            continue;
        }
        if (banset_add(target, &d.net, now + (uint64_t)d.duration_ms, d.origin, d.scenario) ==
            -1) {
            b->w->metrics.bansync.dropped_full++;
            full_warning(b);
        } else {
            b->added++;
        }
    }
    if (shared)
        shm_mutex_unlock(&b->hb->mu);
    if (b->next_del < n_del || b->next_new < n_new) {
        if (!b->startup)
            update_gauges(b);
        loop_defer(b->w->loop, &b->apply_defer);
        step_end(b, t0);
        return;
    }
    size_t n_del_all = decisions_count(b->ans, true);
    step_end(b, t0); /* succeeded() logs the figure */
    uint64_t t1 = step_begin();
    succeeded(b, n_new, n_del_all);
    step_end(b, t1);
}

static void
apply_start(struct bouncer *b)
{
    if (b->set == NULL) {
        if ((b->set = banset_new_in(b->shm, b->cf.max_bans, b->w->id_seed ^ 0x5bd1e995)) == NULL) {
            failed(b, METRICS_SYNC_HTTP, "out of memory");
            return;
        }
        shm_mutex_lock(&b->hb->mu);
        b->hb->set = b->set;
        shm_mutex_unlock(&b->hb->mu);
    }
    if (b->startup &&
        (b->fresh = b->hb->fresh = banset_new_in(b->shm, b->cf.max_bans,
                                                 b->w->id_seed ^ (uint64_t)time(NULL))) == NULL) {
        failed(b, METRICS_SYNC_HTTP, "out of memory");
        return;
    }
    b->phase = PH_APPLYING;
    b->next_del = b->next_new = 0;
    b->added = b->removed = 0;
    b->full_warned = false;
    loop_defer(b->w->loop, &b->apply_defer);
}

/* ---- polls ---- */

static int
classify(struct bouncer *b, CURLcode rc, char *why, size_t cap)
{
    long status = 0;

    if (b->fail_kind >= 0) {
        util_strlcpy(why, b->fail_why, cap);
        return b->fail_kind;
    }
    curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &status);
    switch (rc) {
    case CURLE_HTTP_RETURNED_ERROR:
        snprintf(why, cap, "HTTP status %ld%s", status,
                 status == 401 || status == 403 ? ": the bouncer key was refused" : "");
        return status == 401 || status == 403 ? METRICS_SYNC_AUTH : METRICS_SYNC_HTTP;
    case CURLE_OPERATION_TIMEDOUT:
        util_strlcpy(why, b->errbuf[0] ? b->errbuf : curl_easy_strerror(rc), cap);
        return METRICS_SYNC_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
        util_strlcpy(why, b->errbuf[0] ? b->errbuf : curl_easy_strerror(rc), cap);
        return METRICS_SYNC_CONNECT;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(why, cap, "the answer is longer than crowdsec-max-answer (%llu bytes)",
                 (unsigned long long)b->cf.max_answer);
        return METRICS_SYNC_OVERSIZED;
    default:
        util_strlcpy(why, b->errbuf[0] ? b->errbuf : curl_easy_strerror(rc), cap);
        return METRICS_SYNC_HTTP;
    }
}

static void
check_done(struct bouncer *b)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(b->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE || m->easy_handle != b->easy)
            continue;
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(b->multi, b->easy);
        if (b->phase != PH_POLLING)
            continue;
        long status = 0;
        curl_easy_getinfo(b->easy, CURLINFO_RESPONSE_CODE, &status);
        char why[160];
        if (rc != CURLE_OK) {
            int kind = classify(b, rc, why, sizeof(why));
            failed(b, kind, why);
        } else if (status != 200) {
            snprintf(why, sizeof(why), "HTTP status %ld, expected 200", status);
            failed(b, METRICS_SYNC_HTTP, why);
        } else if (decisions_end(b->ans) != DECISIONS_DONE) {
            snprintf(why, sizeof(why), "not a decision stream: %s", decisions_error(b->ans));
            failed(b, METRICS_SYNC_BAD_ANSWER, why);
        } else {
            apply_start(b);
        }
    }
}

/* "&name=a,b" for a filter with words (URL-escaped), else nothing. */
static void
add_filter(struct strbuf *u, const char *name, const struct conf_cs_words *v, CURL *e)
{
    for (size_t i = 0; i < v->n; i++) {
        char *esc = curl_easy_escape(e, v->v[i], 0);
        strbuf_addf(u, "%s%s", i == 0 ? name : ",", esc != NULL ? esc : "");
        curl_free(esc);
    }
}

static void
poll_start(struct bouncer *b)
{
    uint64_t now = loop_now(b->w->loop);
    struct strbuf u = {0};

    b->startup = b->need_full || now >= b->full_due_ms;
    strbuf_addf(&u, "%s/v1/decisions/stream?startup=%s", b->cf.url,
                b->startup ? "true" : "false");
    add_filter(&u, "&origins=", &b->cf.origins, b->easy);
    add_filter(&u, "&scenarios_containing=", &b->cf.scen_in, b->easy);
    add_filter(&u, "&scenarios_not_containing=", &b->cf.scen_out, b->easy);
    b->ans = decisions_new(b->cf.max_answer);
    if (u.oom || b->ans == NULL) {
        free(u.p);
        failed(b, METRICS_SYNC_HTTP, "out of memory");
        return;
    }
    b->received = 0;
    b->pass_bytes = 0;
    b->paused = false;
    b->fail_kind = -1;
    b->errbuf[0] = '\0';
    curl_easy_setopt(b->easy, CURLOPT_URL, u.p);
    free(u.p);
    b->phase = PH_POLLING;
    if (curl_multi_add_handle(b->multi, b->easy) != CURLM_OK)
        failed(b, METRICS_SYNC_HTTP, "curl_multi_add_handle failed");
}

/* Drops expired entries, EXPIRE_BUDGET a pass, until none is left. */
static void
on_expire(struct defer *d)
{
    struct bouncer *b = container_of(d, struct bouncer, expire_defer);

    if (!b->on || b->set == NULL)
        return;
    uint64_t t0 = step_begin();
    shm_mutex_lock(&b->hb->mu);
    size_t n = banset_expire(b->set, loop_now(b->w->loop), EXPIRE_BUDGET);
    shm_mutex_unlock(&b->hb->mu);
    if (n > 0)
        update_gauges(b);
    if (n == EXPIRE_BUDGET)
        loop_defer(b->w->loop, &b->expire_defer);
    step_end(b, t0);
}

static void
on_poll_timer(struct timer *t)
{
    struct bouncer *b = container_of(t, struct bouncer, poll_timer);

    on_expire(&b->expire_defer);
    if (b->phase == PH_IDLE)
        poll_start(b);
}

/* ---- life ---- */

static int
easy_setup(struct bouncer *b)
{
    char hdr[CONF_CS_KEY_MAX + 16];
    CURL *e = b->easy;

    curl_slist_free_all(b->hdrs);
    b->hdrs = NULL;
    snprintf(hdr, sizeof(hdr), "X-Api-Key: %s", b->cf.key);
    struct curl_slist *h = curl_slist_append(NULL, hdr);
    explicit_bzero(hdr, sizeof(hdr));
    if (h == NULL)
        return -1;
    b->hdrs = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mailedge-bouncer/" MAILEDGE_VERSION);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)BOUNCER_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)BOUNCER_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)b->cf.max_answer);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, b->errbuf);
    return 0;
}

/* Whether a change from <a> to <b> asks for the whole list again. */
static bool
source_changed(const struct conf_crowdsec *a, const struct conf_crowdsec *c)
{
    return strcmp(a->url, c->url) != 0 || a->key_len != c->key_len ||
           memcmp(a->key, c->key, a->key_len) != 0 || a->captcha_ban != c->captcha_ban ||
           memcmp(&a->origins, &c->origins, sizeof(a->origins)) != 0 ||
           memcmp(&a->scen_in, &c->scen_in, sizeof(a->scen_in)) != 0 ||
           memcmp(&a->scen_out, &c->scen_out, sizeof(a->scen_out)) != 0 ||
           a->max_bans != c->max_bans;
}

static void
hostbans_init(void *arg, void *block)
{
    struct hostbans *hb = block;

    (void)arg;
    if (shm_mutex_init(&hb->mu) == -1)
        fatal("bouncer: cannot make a process-shared lock");
}

/* The host's set, found or made once per process (private without a region). */
static struct hostbans *
hostbans(struct shm *shm)
{
    static struct hostbans *hb;

    if (hb != NULL)
        return hb;
    if (shm != NULL) {
        hb = shm_named(shm, "crowdsec", "bans", sizeof(*hb), hostbans_init, NULL);
    } else if ((hb = calloc(1, sizeof(*hb))) != NULL && shm_mutex_init(&hb->mu) == -1) {
        free(hb);
        hb = NULL;
    }
    return hb;
}

/* The poller's own state, made once per worker and kept until edge_free():
 * its defers may still be queued in the loop when crowdsec is turned off. */
static struct bouncer *
bouncer_get(struct worker *w)
{
    struct bouncer *b = w->bouncer;

    if (b != NULL || (b = calloc(1, sizeof(*b))) == NULL)
        return b;
    b->shm = shm_host();
    if ((b->hb = hostbans(b->shm)) == NULL) {
        free(b);
        return NULL;
    }
    b->syncer = shm_worker() == 0;
    b->w = w;
    b->last_kind = -1;
    timer_init(&b->poll_timer, on_poll_timer);
    timer_init(&b->curl_timer, on_curl_timer);
    defer_init(&b->apply_defer, on_apply);
    defer_init(&b->resume_defer, on_resume);
    defer_init(&b->retire_defer, on_retire);
    defer_init(&b->spent_defer, on_spent);
    defer_init(&b->expire_defer, on_expire);
    for (size_t i = 0; i < BIO_MAX; i++)
        b->ios[i].io.fd = -1;
    w->bouncer = b;
    return b;
}

/* Turns crowdsec on: curl, the timers. -1 when out of memory (still off). */
static int
bouncer_on(struct bouncer *b)
{
    struct worker *w = b->w;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if (loop_timer_reserve(w->loop, BOUNCER_TIMERS) == -1) {
        curl_global_cleanup();
        return -1;
    }
    if ((b->multi = curl_multi_init()) == NULL || (b->easy = curl_easy_init()) == NULL) {
        if (b->multi != NULL)
            curl_multi_cleanup(b->multi);
        b->multi = NULL;
        loop_timer_release(w->loop, BOUNCER_TIMERS);
        curl_global_cleanup();
        return -1;
    }
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
    curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, 1L);
    b->on = true;
    b->state = ST_STARTING;
    b->last_kind = -1;
    b->error[0] = '\0';
    w->metrics.bansync.on = true;
    /* A restarted worker 0: the host's set stays in force until the whole
     * list (asked for first) replaces it; what its predecessor was building
     * or retiring goes. */
    if (b->hb->fresh != b->hb->set) /* a predecessor killed inside the swap */
        banset_free(b->hb->fresh);
    if (b->hb->retired != b->hb->set)
        banset_free(b->hb->retired);
    b->hb->fresh = b->hb->retired = NULL;
    b->set = b->hb->set;
    update_gauges(b);
    return 0;
}

/* Stops a poll in flight or an answer being applied. */
static void
abort_poll(struct bouncer *b)
{
    if (b->phase == PH_POLLING)
        curl_multi_remove_handle(b->multi, b->easy);
    b->phase = PH_IDLE;
    b->paused = false;
    drop_answer(b);
}

/*
 * Turns crowdsec off: curl, timers and sets go; the struct stays. The
 * host's set goes too when crowdsec was taken out of the configuration,
 * not when the process ends (<ending>): other workers enforce it, and a
 * restarted worker 0 takes it over.
 */
static void
bouncer_off(struct bouncer *b, bool ending)
{
    struct worker *w = b->w;

    if (!b->on)
        return;
    if (!b->syncer) {
        b->on = false;
        memset(&w->metrics.bansync, 0, sizeof(w->metrics.bansync));
        return;
    }
    decisions_free(b->ans); /* at once: no defer is queued while turning off */
    b->ans = NULL;
    decisions_free(b->spent);
    b->spent = NULL;
    abort_poll(b);
    curl_easy_cleanup(b->easy);
    curl_multi_cleanup(b->multi); /* removes its sockets (on_socket) */
    b->easy = NULL;
    b->multi = NULL;
    curl_slist_free_all(b->hdrs);
    b->hdrs = NULL;
    curl_global_cleanup();
    for (size_t i = 0; i < BIO_MAX; i++) {
        if (b->ios[i].used)
            loop_del(w->loop, &b->ios[i].io);
        b->ios[i].used = false;
        b->ios[i].io.fd = -1;
    }
    loop_timer_cancel(w->loop, &b->poll_timer);
    loop_timer_cancel(w->loop, &b->curl_timer);
    loop_timer_release(w->loop, BOUNCER_TIMERS);
    if (!ending) {
        shm_mutex_lock(&b->hb->mu);
        b->hb->set = NULL;
        shm_mutex_unlock(&b->hb->mu);
        banset_free(b->set);
    }
    banset_free(b->retired);
    b->set = b->retired = b->hb->retired = NULL;
    explicit_bzero(b->cf.key, sizeof(b->cf.key));
    b->on = false;
    memset(&w->metrics.bansync, 0, sizeof(w->metrics.bansync));
}

int
bouncer_configure(struct worker *w)
{
    const struct conf_crowdsec *cf = &w->conf->global.crowdsec;
    struct bouncer *b = w->bouncer;

    if (cf->url[0] == '\0') {
        if (b != NULL && b->on) {
            bool said = b->syncer; /* the ban_sync lines are worker 0's */
            bouncer_off(b, false);
            if (!said)
                return 0;
            log_begin(LOG_INFO, "ban_sync");
            log_str("source", "crowdsec");
            log_str("state", "off");
            log_end();
        }
        return 0;
    }
    if ((b = bouncer_get(w)) == NULL) {
        log_warnx("bouncer: cannot allocate");
        return -1;
    }
    if (!b->syncer) {
        /* Another worker: worker 0 syncs; this one enforces the host's set.
         * Its metrics.bansync keeps its refusals; the gauges, errors and
         * times of the sync are worker 0's (per host): zero here, so a sum
         * over workers is right. */
        b->on = true;
        w->metrics.bansync.on = true;
        return 0;
    }
    bool fresh = !b->on;
    if (fresh && bouncer_on(b) == -1) {
        log_warnx("bouncer: cannot allocate");
        return -1;
    }
    bool changed = fresh || source_changed(&b->cf, cf);
    b->cf = *cf;
    if (easy_setup(b) == -1) {
        log_warnx("bouncer: cannot allocate");
        bouncer_off(b, false);
        return -1;
    }
    if (!changed) {
        /* A new interval or resync counts from now. */
        if (b->phase == PH_IDLE && b->state == ST_UP)
            schedule(b, b->cf.interval_ms);
        if (b->cf.resync_ms != UINT64_MAX)
            b->full_due_ms = loop_now(w->loop) + b->cf.resync_ms;
        else
            b->full_due_ms = UINT64_MAX;
        return 0;
    }
    abort_poll(b);
    b->need_full = true;
    b->retry_ms = 0;
    if (!fresh) {
        b->state = ST_STARTING;
        log_state(b, LOG_INFO);
    }
    schedule(b, 0);
    return 0;
}

void
bouncer_free(struct worker *w)
{
    if (w->bouncer == NULL)
        return;
    bouncer_off(w->bouncer, true);
    free(w->bouncer);
    w->bouncer = NULL;
}

/* <e> copied to b->hit: the set may change once the lock is let go. */
static const struct banset_entry *
hit(struct bouncer *b, const struct banset_entry *e)
{
    if (e == NULL)
        return NULL;
    b->hit = *e;
    util_strlcpy(b->hit_origin, e->origin, sizeof(b->hit_origin));
    util_strlcpy(b->hit_scenario, e->scenario, sizeof(b->hit_scenario));
    b->hit.origin = b->hit_origin;
    b->hit.scenario = b->hit_scenario;
    return &b->hit;
}

const struct banset_entry *
bouncer_lookup(struct worker *w, const struct sockaddr *sa)
{
    struct bouncer *b = w->bouncer;
    const struct banset_entry *e;

    if (b == NULL || !b->on)
        return NULL;
    if (b->syncer) /* the only writer of the set: no lock to read it */
        return b->set != NULL ? hit(b, banset_lookup(b->set, sa, loop_now(w->loop))) : NULL;
    shm_mutex_lock(&b->hb->mu);
    e = b->hb->set != NULL ? hit(b, banset_lookup(b->hb->set, sa, loop_now(w->loop))) : NULL;
    shm_mutex_unlock(&b->hb->mu);
    return e;
}

bool
bouncer_status(const struct worker *w, struct bouncer_status *out)
{
    const struct bouncer *b = of(w);
    struct banset_stats st = {0};

    memset(out, 0, sizeof(*out));
    if (b == NULL || !b->on || !b->syncer)
        return false;
    if (b->set != NULL)
        banset_stats(b->set, &st);
    out->state = state_names[b->state];
    out->error = b->error;
    out->last_success = w->metrics.bansync.last_success;
    out->last_full = b->last_full;
    out->ips = st.ips;
    out->ranges = st.ranges;
    out->syncing = b->phase != PH_IDLE;
    return true;
}

size_t
bouncer_walk(const struct worker *w, size_t *pos, size_t max,
             void (*fn)(void *arg, const struct banset_entry *e), void *arg)
{
    const struct bouncer *b = of(w);

    if (b == NULL || b->set == NULL) {
        *pos = 0;
        return 0;
    }
    return banset_walk(b->set, pos, max, fn, arg);
}
