/*
 * abuse: the table behind limit per-ip, limit rate and ban.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), at most <cap> keys in cap + cap/4 slots. The rate limit is
 * a token bucket written as GCRA: one "theoretical arrival time" per key,
 * in microseconds, instead of a token count and a refill time.
 *
 * Eviction, when a new key finds the table full: a short scan from a
 * rotating hand takes the first entry that holds nothing (no session, no
 * ban, a full bucket, no recent strike); failing that, the least recently
 * seen entry without a session or a ban in the scan; failing that, one
 * scan of the whole table. If every key has a live session or a ban in
 * force, the new client is admitted without being counted (stats
 * "untracked"), and the next whole scan waits a second: refusing would let
 * whoever fills the table shut everyone out, and scanning on every
 * connection would let them burn our CPU.
 *
 * Shared (abuse_new with a struct abuse_share): the table (struct table)
 * is a named block of the host's region, one per listener name, and each
 * worker's struct abuse is a handle on it with the worker's own policy
 * (its allow list points into its own configuration). Every call takes the
 * table's lock for its probe and nothing else: the ban events it caused
 * are queued in the handle and handed to the event function once the lock
 * is released, so the worker whose call started or ended a ban is the one
 * that hears of it, once per host. Sessions are counted per worker (a
 * column of counts per slot, summed for limit per-ip), so that a worker
 * that starts (or is restarted after a crash) zeroes its own column and no
 * dead worker's sessions lock a client out.
 */
#include "abuse.h"
#include "dominant.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm.h"
#include "util.h"

#define EVICT_SCAN 64          /* slots looked at before settling for the oldest */
#define FULL_RETRY_MS 1000     /* after a whole scan found nothing to evict */
#define SWEEP_SHARED_MS 500    /* a shared table is swept by the first worker to come after this */

struct entry {
    struct abuse_key key;
    bool used;
    bool ban_logged;           /* a ban started and its end is not reported yet */
    uint8_t ban_reason;
    uint32_t strikes;          /* violations since win_start_ms */
    uint64_t tat_us;           /* GCRA: when the bucket is full again */
    uint64_t win_start_ms;
    uint64_t ban_until_ms;     /* 0: none */
    uint64_t seen_ms;
};

struct rule {
    struct cidr c;
    uint64_t until_ms;
};

/* The state of one listener name: in the region when shared, else the handle's own. */
struct table {
    struct shm_mutex lock;     /* shared only */
    unsigned holders;          /* handles on it (shared only) */
    unsigned nw;               /* columns of session counts: the workers */
    struct entry *slots;       /* NULL until a policy limits anything */
    uint32_t *live;            /* nslots x nw: the sessions each worker counted in each slot */
    size_t nslots, cap, hand;
    uint64_t seed;
    uint64_t full_until_ms;    /* no whole scan before this */
    uint64_t swept_ms;         /* the last sweep (shared only) */
    size_t nrules;
    size_t nbanned;            /* entries with ban_logged */
    struct abuse_stats st;
    struct rule rules[ABUSE_RULES_MAX]; /* bans by hand; pages taken as they are written */
};

/* A ban event waiting for the lock to be released. */
struct pending {
    struct abuse_event ev;
    char text[ABUSE_KEY_STRLEN];
};

/* One worker's handle. */
struct abuse {
    struct table *h;
    struct shm *shm;           /* NULL: private */
    unsigned worker;           /* its column in h->live */
    struct abuse_policy pol;
    struct dominant *dom;      /* allocated at the first session watched; per worker */
    abuse_event_fn *fn;
    void *arg;
    struct pending *pend;      /* events of the call under way */
    size_t npend, cappend;
};
static const char *const ban_reason_names[] = {
    [ABUSE_BAN_PER_IP] = "limit_per_ip",
    [ABUSE_BAN_RATE] = "limit_rate",
    [ABUSE_BAN_PREGREET] = "pregreet",
    [ABUSE_BAN_ADMIN] = "admin",
};
_Static_assert(sizeof(ban_reason_names) / sizeof(ban_reason_names[0]) == ABUSE_BAN_REASON_COUNT,
               "ban_reason_names must name every reason");

const char *
abuse_ban_reason_name(enum abuse_ban_reason r)
{
    return (size_t)r < ABUSE_BAN_REASON_COUNT ? ban_reason_names[r] : "unknown";
}

/* ---- lock and events ---- */

static void
enter(const struct abuse *t)
{
    if (t->shm != NULL)
        shm_mutex_lock(&t->h->lock);
}

static void
unlock(const struct abuse *t)
{
    if (t->shm != NULL)
        shm_mutex_unlock(&t->h->lock);
}

/* Releases the lock, then hands the events of the call to the event function. */
static void
leave(struct abuse *t)
{
    unlock(t);
    for (size_t i = 0; i < t->npend; i++) {
        t->pend[i].ev.text = t->pend[i].text;
        t->fn(t->arg, &t->pend[i].ev);
    }
    t->npend = 0;
}

/* Queues <ev> for leave(); an event that finds no memory is not reported. */
static void
emit(struct abuse *t, const struct abuse_event *ev)
{
    if (t->fn == NULL)
        return;
    if (t->npend == t->cappend) {
        size_t n = t->cappend != 0 ? 2 * t->cappend : 8;
        struct pending *p = realloc(t->pend, n * sizeof(*p));
        if (p == NULL)
            return;
        t->pend = p;
        t->cappend = n;
    }
    struct pending *p = &t->pend[t->npend++];
    p->ev = *ev;
    snprintf(p->text, sizeof(p->text), "%s", ev->text);
}

/* ---- tables and handles ---- */

static void
table_init(struct table *h, size_t cap, uint64_t seed, unsigned nw)
{
    if (cap < ABUSE_TABLE_MIN)
        cap = ABUSE_TABLE_MIN;
    if (cap > ABUSE_TABLE_MAX)
        cap = ABUSE_TABLE_MAX;
    h->cap = cap;
    h->nslots = cap + cap / 4 + 1;
    h->seed = seed;
    h->nw = nw;
    h->st.capacity = cap;
}

struct table_make {
    size_t cap;
    uint64_t seed;
    unsigned nw;
    int rc;
};

/* shm_named's init: under the region's lock, before anyone else sees the block. */
static void
table_make(void *arg, void *block)
{
    struct table_make *x = arg;
    struct table *h = block;
    table_init(h, x->cap, x->seed, x->nw);
    x->rc = shm_mutex_init(&h->lock);
}

static size_t
slots_bytes(const struct table *h)
{
    return h->nslots * (sizeof(struct entry) + h->nw * sizeof(uint32_t));
}

struct abuse *
abuse_new(size_t cap, uint64_t seed, abuse_event_fn *fn, void *arg, const struct abuse_share *sh)
{
    struct abuse *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    t->pol.v6_prefix = 64;
    if (sh == NULL || sh->shm == NULL) {
        if ((t->h = calloc(1, sizeof(*t->h))) == NULL) {
            free(t);
            return NULL;
        }
        table_init(t->h, cap, seed, 1);
        return t;
    }
    struct table_make x = {.cap = cap, .seed = seed, .nw = sh->nworkers, .rc = 0};
    t->h = shm_named(sh->shm, "abuse", sh->name, sizeof(*t->h), table_make, &x);
    if (t->h == NULL || x.rc == -1 || sh->worker >= t->h->nw) {
        if (t->h != NULL)
            shm_put(sh->shm, t->h);
        free(t);
        return NULL;
    }
    t->shm = sh->shm;
    t->worker = sh->worker;
    /* This process counted nothing yet: what its column holds is a dead predecessor's. */
    enter(t);
    t->h->holders++;
    for (size_t i = 0; t->h->slots != NULL && i < t->h->nslots; i++)
        t->h->live[i * t->h->nw + t->worker] = 0;
    leave(t);
    return t;
}

void
abuse_free(struct abuse *t)
{
    if (t == NULL)
        return;
    if (t->shm != NULL) {
        /* The last handle frees the slots; a later one makes them again. */
        void *slots = NULL;
        enter(t);
        if (--t->h->holders == 0) {
            slots = t->h->slots;
            t->h->slots = NULL;
            t->h->live = NULL;
            t->h->st.entries = 0;
            t->h->nbanned = 0;
        }
        leave(t);
        shm_free(t->shm, slots);
        shm_put(t->shm, t->h);
    } else {
        free(t->h->slots);
        free(t->h);
    }
    free(t->dom);
    free(t->pend);
    free(t);
}

/*
 * The slots, made when a policy first limits anything. Shared: allocated
 * outside the table's lock (never two locks at once) and installed under
 * it, unless another worker was faster.
 */
static int
slots_make(struct abuse *t)
{
    struct table *h = t->h;
    size_t n = slots_bytes(h);
    void *p;

    if (__atomic_load_n(&h->slots, __ATOMIC_ACQUIRE) != NULL)
        return 0;
    if ((p = t->shm != NULL ? shm_alloc(t->shm, n) : calloc(1, n)) == NULL)
        return -1;
    enter(t);
    bool mine = h->slots == NULL;
    if (mine) {
        h->live = (uint32_t *)(void *)((struct entry *)p + h->nslots);
        __atomic_store_n(&h->slots, (struct entry *)p, __ATOMIC_RELEASE);
    }
    leave(t);
    if (!mine) {
        if (t->shm != NULL)
            shm_free(t->shm, p);
        else
            free(p);
    }
    return 0;
}

int
abuse_set_policy(struct abuse *t, const struct abuse_policy *p)
{
    t->pol = *p;
    if (t->pol.v6_prefix == 0 || t->pol.v6_prefix > 128)
        t->pol.v6_prefix = 64;
    return abuse_policy_active(p) ? slots_make(t) : 0;
}

bool
abuse_policy_active(const struct abuse_policy *p)
{
    return p->per_ip > 0 || p->rate > 0 || p->ban_after > 0;
}

const struct abuse_stats *
abuse_stats(const struct abuse *t)
{
    return &t->h->st;
}

size_t
abuse_capacity(const struct abuse *t)
{
    return t->h->cap;
}
/* ---- keys ---- */

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool
abuse_key_of(const struct sockaddr *sa, unsigned v6_prefix, struct abuse_key *k)
{
    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        memcpy(k->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        k->family = 4;
        k->prefix = 32;
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
        memcpy(k->a, a + 12, 4);
        k->family = 4;
        k->prefix = 32;
        return true;
    }
    if (v6_prefix == 0 || v6_prefix > 128)
        v6_prefix = 64;
    memcpy(k->a, a, 16);
    for (unsigned i = 0; i < 16; i++) {
        unsigned bit0 = i * 8;
        if (bit0 >= v6_prefix)
            k->a[i] = 0;
        else if (bit0 + 8 > v6_prefix)
            k->a[i] &= (uint8_t)(0xff << (8 - (v6_prefix - bit0)));
    }
    k->family = 6;
    k->prefix = (uint8_t)v6_prefix;
    return true;
}

char *
abuse_key_format(const struct abuse_key *k, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    if (inet_ntop(k->family == 4 ? AF_INET : AF_INET6, k->a, ip, sizeof(ip)) == NULL)
        snprintf(ip, sizeof(ip), "?");
    if (k->family == 6 && k->prefix < 128)
        snprintf(buf, cap, "%s/%u", ip, (unsigned)k->prefix);
    else
        snprintf(buf, cap, "%s", ip);
    return buf;
}

static bool
key_equal(const struct abuse_key *a, const struct abuse_key *b)
{
    return a->family == b->family && memcmp(a->a, b->a, 16) == 0;
}

static size_t
home(const struct table *h, const struct abuse_key *k)
{
    uint64_t w0, w1;

    memcpy(&w0, k->a, 8);
    memcpy(&w1, k->a + 8, 8);
    uint64_t x = util_mix(h->seed ^ k->family);
    x = util_mix(x ^ w0);
    x = util_mix(x ^ w1 ^ h->seed);
    return (size_t)(x % h->nslots);
}

/* ---- the table (every function from here on runs under the lock) ---- */

static size_t
slot_of(const struct table *h, const struct entry *e)
{
    return (size_t)(e - h->slots);
}

/* The sessions of slot <i>, over all workers. */
static uint64_t
live_sum(const struct table *h, size_t i)
{
    uint64_t n = 0;
    for (unsigned w = 0; w < h->nw; w++)
        n += h->live[i * h->nw + w];
    return n;
}

static struct entry *
find(const struct table *h, const struct abuse_key *k)
{
    if (h->slots == NULL)
        return NULL;
    for (size_t i = home(h, k), n = 0; n < h->nslots; i = (i + 1) % h->nslots, n++) {
        struct entry *e = &h->slots[i];
        if (!e->used)
            return NULL;
        if (key_equal(&e->key, k))
            return e;
    }
    return NULL;
}

static void
end_ban(struct abuse *t, struct entry *e, const char *why)
{
    char text[ABUSE_KEY_STRLEN];

    if (!e->ban_logged)
        return;
    e->ban_logged = false;
    t->h->nbanned--;
    struct abuse_event ev = {.start = false,
                             .text = abuse_key_format(&e->key, text, sizeof(text)),
                             .reason = (enum abuse_ban_reason)e->ban_reason,
                             .why = why};
    emit(t, &ev);
}

/* Moves slot <j> (entry and session counts) to slot <i>. */
static void
move_slot(struct table *h, size_t i, size_t j)
{
    h->slots[i] = h->slots[j];
    h->slots[j].used = false;
    memcpy(&h->live[i * h->nw], &h->live[j * h->nw], h->nw * sizeof(*h->live));
    memset(&h->live[j * h->nw], 0, h->nw * sizeof(*h->live));
}

/* Removes slot <i>, shifting back the entries of its probe run. */
static void
remove_slot(struct table *h, size_t i)
{
    size_t j = i;

    h->slots[i].used = false;
    memset(&h->live[i * h->nw], 0, h->nw * sizeof(*h->live));
    h->st.entries--;
    for (;;) {
        j = (j + 1) % h->nslots;
        if (!h->slots[j].used)
            return;
        size_t x = home(h, &h->slots[j].key);
        /* Entry j may move to the hole at i when i lies cyclically in [x, j). */
        bool movable = i <= j ? (x <= i || x > j) : (x <= i && x > j);
        if (movable) {
            move_slot(h, i, j);
            i = j;
        }
    }
}

static bool
ban_active(const struct entry *e, uint64_t now_ms)
{
    return e->ban_until_ms > now_ms;
}

/* Holds nothing worth keeping: dropping it changes no decision. */
static bool
reclaimable(const struct abuse *t, size_t i, uint64_t now_ms)
{
    const struct entry *e = &t->h->slots[i];
    return live_sum(t->h, i) == 0 && !ban_active(e, now_ms) && !e->ban_logged &&
           e->tat_us <= now_ms * 1000 &&
           (e->strikes == 0 || now_ms - e->win_start_ms >= t->pol.ban_window_ms);
}

/* Finds an entry to drop for a new key; SIZE_MAX when none may go. */
static size_t
victim(struct abuse *t, uint64_t now_ms)
{
    struct table *h = t->h;
    size_t best = SIZE_MAX;
    size_t limit = EVICT_SCAN;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 0; n < limit; n++) {
            size_t i = h->hand;
            h->hand = (h->hand + 1) % h->nslots;
            const struct entry *e = &h->slots[i];
            if (!e->used || live_sum(h, i) > 0 || ban_active(e, now_ms))
                continue;
            if (reclaimable(t, i, now_ms))
                return i;
            if (best == SIZE_MAX || e->seen_ms < h->slots[best].seen_ms)
                best = i;
        }
        if (best != SIZE_MAX || now_ms < h->full_until_ms)
            return best;
        limit = h->nslots;  /* a whole scan, at most once a second when it finds nothing */
    }
    if (best == SIZE_MAX)
        h->full_until_ms = now_ms + FULL_RETRY_MS;
    return best;
}

/* The entry of <k>, inserted if new (evicting when full); NULL: untracked. */
static struct entry *
find_or_insert(struct abuse *t, const struct abuse_key *k, uint64_t now_ms)
{
    struct table *h = t->h;

    if (h->slots == NULL)
        return NULL;
    struct entry *e = find(h, k);
    if (e != NULL)
        return e;
    if (h->st.entries >= h->cap) {
        size_t v = victim(t, now_ms);
        if (v == SIZE_MAX)
            return NULL;
        end_ban(t, &h->slots[v], "expired");
        remove_slot(h, v);
        h->st.evictions++;
    }
    size_t i = home(h, k);
    while (h->slots[i].used)
        i = (i + 1) % h->nslots;
    e = &h->slots[i];
    memset(e, 0, sizeof(*e));
    e->key = *k;
    e->used = true;
    e->seen_ms = now_ms;
    h->st.entries++;
    return e;
}

static void
update_gauge(struct table *h)
{
    h->st.bans_active = h->nbanned + h->nrules;
}

/* Counts a violation of <e>; true when it starts a ban. */
static bool
strike(struct abuse *t, struct entry *e, enum abuse_ban_reason why, uint64_t now_ms)
{
    struct table *h = t->h;

    if (t->pol.ban_after == 0 || ban_active(e, now_ms))
        return false;
    if (e->strikes == 0 || now_ms - e->win_start_ms >= t->pol.ban_window_ms) {
        e->strikes = 0;
        e->win_start_ms = now_ms;
    }
    if (++e->strikes < t->pol.ban_after)
        return false;
    if (e->ban_logged)
        end_ban(t, e, "expired"); /* an old ban nobody reported the end of yet */
    e->strikes = 0;
    e->ban_until_ms = now_ms + t->pol.ban_ms;
    e->ban_reason = (uint8_t)why;
    e->ban_logged = true;
    h->nbanned++;
    h->st.bans_total++;
    update_gauge(h);
    char text[ABUSE_KEY_STRLEN];
    struct abuse_event ev = {.start = true,
                             .text = abuse_key_format(&e->key, text, sizeof(text)),
                             .reason = why,
                             .until_ms = e->ban_until_ms};
    emit(t, &ev);
    return true;
}

static bool
rule_banned(const struct table *h, const struct sockaddr *sa, uint64_t now_ms)
{
    for (size_t i = 0; i < h->nrules; i++) {
        if (h->rules[i].until_ms > now_ms && cidr_match(&h->rules[i].c, sa))
            return true;
    }
    return false;
}

static enum abuse_verdict
refuse(struct table *h, enum abuse_verdict v)
{
    h->st.refused[v]++;
    return v;
}

/* ---- the calls ---- */

bool
abuse_allowed(const struct abuse *t, const struct sockaddr *sa)
{
    return cidr_match_any(t->pol.allow, t->pol.nallow, sa);
}

unsigned
abuse_note_peer(struct abuse *t, const struct sockaddr *sa, uint64_t now_ms, struct abuse_key *out)
{
    struct abuse_key k;

    if (abuse_allowed(t, sa) || !abuse_key_of(sa, 128, &k))
        return 0;
    if (t->dom == NULL && (t->dom = calloc(1, sizeof(*t->dom))) == NULL)
        return 0;
    unsigned n = dominant_note(t->dom, &k, now_ms, out);
    if (n > 0) {
        enter(t);
        t->h->st.dominant++;
        leave(t);
    }
    return n;
}

static enum abuse_verdict
admit_locked(struct abuse *t, const struct abuse_key *k, uint64_t now_ms, struct abuse_ticket *tk)
{
    const struct abuse_policy *p = &t->pol;
    struct table *h = t->h;

    if (!abuse_policy_active(p)) {
        /* Nothing to count; a ban from before a reload may still hold. */
        const struct entry *e = find(h, k);
        return e != NULL && ban_active(e, now_ms) ? refuse(h, ABUSE_BANNED) : ABUSE_ADMIT;
    }
    struct entry *e = find_or_insert(t, k, now_ms);
    if (e == NULL) {
        h->st.untracked++;
        return ABUSE_ADMIT;
    }
    e->seen_ms = now_ms;
    if (ban_active(e, now_ms))
        return refuse(h, ABUSE_BANNED);
    if (e->ban_logged)
        end_ban(t, e, "expired");
    update_gauge(h);
    size_t i = slot_of(h, e);
    if (p->per_ip > 0 && live_sum(h, i) >= p->per_ip) {
        strike(t, e, ABUSE_BAN_PER_IP, now_ms);
        return refuse(h, ABUSE_PER_IP);
    }
    if (p->rate > 0) {
        uint64_t now_us = now_ms * 1000;
        uint64_t interval = p->rate_period_ms * 1000 / p->rate;
        uint64_t tolerance = interval * (p->rate - 1);
        uint64_t tat = e->tat_us > now_us ? e->tat_us : now_us;
        if (tat - now_us > tolerance) {
            strike(t, e, ABUSE_BAN_RATE, now_ms);
            return refuse(h, ABUSE_RATE);
        }
        e->tat_us = tat + interval;
    }
    if (p->per_ip > 0 || p->rate > 0) {
        h->live[i * h->nw + t->worker]++;
        tk->v6_prefix = (uint8_t)p->v6_prefix;
        tk->counted = true;
    }
    return ABUSE_ADMIT;
}

enum abuse_verdict
abuse_admit(struct abuse *t, const struct sockaddr *sa, uint64_t now_ms, struct abuse_ticket *tk)
{
    struct abuse_key k;
    enum abuse_verdict v = ABUSE_ADMIT;

    memset(tk, 0, sizeof(*tk));
    if (abuse_allowed(t, sa))
        return ABUSE_ADMIT;
    bool keyed = abuse_key_of(sa, t->pol.v6_prefix, &k);
    enter(t);
    if (t->h->nrules > 0 && rule_banned(t->h, sa, now_ms))
        v = refuse(t->h, ABUSE_BANNED);
    else if (keyed)
        v = admit_locked(t, &k, now_ms, tk);
    leave(t);
    return v;
}

void
abuse_release(struct abuse *t, const struct sockaddr *sa, const struct abuse_ticket *tk)
{
    struct abuse_key k;

    if (!tk->counted || !abuse_key_of(sa, tk->v6_prefix, &k))
        return;
    enter(t);
    const struct entry *e = find(t->h, &k);
    if (e != NULL) {
        uint32_t *n = &t->h->live[slot_of(t->h, e) * t->h->nw + t->worker];
        if (*n > 0)
            (*n)--;
    }
    leave(t);
}

uint64_t
abuse_live(const struct abuse *t)
{
    uint64_t n = 0;

    enter(t);
    for (size_t i = 0; t->h->slots != NULL && i < t->h->nslots; i++) {
        if (t->h->slots[i].used)
            n += live_sum(t->h, i);
    }
    unlock(t);
    return n;
}

bool
abuse_violation(struct abuse *t, const struct sockaddr *sa, enum abuse_ban_reason why,
                uint64_t now_ms)
{
    struct abuse_key k;
    bool banned = false;

    if (t->pol.ban_after == 0 || abuse_allowed(t, sa) ||
        !abuse_key_of(sa, t->pol.v6_prefix, &k))
        return false;
    enter(t);
    struct entry *e = find_or_insert(t, &k, now_ms);
    if (e == NULL) {
        t->h->st.untracked++;
    } else {
        e->seen_ms = now_ms;
        banned = strike(t, e, why, now_ms);
    }
    leave(t);
    return banned;
}

void
abuse_count_pregreet(struct abuse *t)
{
    enter(t);
    t->h->st.pregreet++;
    leave(t);
}

/* ---- bans by hand ---- */

static bool
cidr_equal(const struct cidr *a, const struct cidr *b)
{
    size_t len = a->family == AF_INET ? 4 : 16;
    return a->family == b->family && a->prefix == b->prefix && memcmp(a->addr, b->addr, len) == 0;
}

/* A prefix as text; a single host without "/32" or "/128", like a key. */
static char *
rule_format(const struct cidr *c, char *buf, size_t cap)
{
    cidr_format(c, buf, cap);
    if ((c->family == AF_INET && c->prefix == 32) || (c->family == AF_INET6 && c->prefix == 128)) {
        char *slash = strrchr(buf, '/');
        if (slash != NULL)
            *slash = '\0';
    }
    return buf;
}

static void
rule_event(struct abuse *t, const struct rule *r, bool start, const char *why)
{
    char text[ABUSE_KEY_STRLEN];
    struct abuse_event ev = {.start = start,
                             .text = rule_format(&r->c, text, sizeof(text)),
                             .reason = ABUSE_BAN_ADMIN,
                             .until_ms = r->until_ms,
                             .why = why};
    emit(t, &ev);
}

static void
rule_drop(struct abuse *t, size_t i, const char *why)
{
    struct table *h = t->h;
    rule_event(t, &h->rules[i], false, why);
    h->rules[i] = h->rules[--h->nrules];
}

static void
rules_expire(struct abuse *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->h->nrules;) {
        if (t->h->rules[i].until_ms <= now_ms)
            rule_drop(t, i, "expired");
        else
            i++;
    }
}

static int
ban_add_locked(struct abuse *t, const struct cidr *c, uint64_t until_ms, uint64_t now_ms)
{
    struct table *h = t->h;

    for (size_t i = 0; i < h->nrules; i++) {
        if (cidr_equal(&h->rules[i].c, c)) {
            h->rules[i].until_ms = until_ms;
            rule_event(t, &h->rules[i], true, NULL);
            return 0;
        }
    }
    rules_expire(t, now_ms); /* make room from expired ones before refusing */
    if (h->nrules == ABUSE_RULES_MAX)
        return -1;
    h->rules[h->nrules] = (struct rule){.c = *c, .until_ms = until_ms};
    rule_event(t, &h->rules[h->nrules], true, NULL);
    h->nrules++;
    h->st.bans_total++;
    update_gauge(h);
    return 0;
}

int
abuse_ban_add(struct abuse *t, const struct cidr *c, uint64_t until_ms, uint64_t now_ms)
{
    enter(t);
    int rc = ban_add_locked(t, c, until_ms, now_ms);
    leave(t);
    return rc;
}

size_t
abuse_ban_remove(struct abuse *t, const struct cidr *c, uint64_t now_ms)
{
    struct table *h = t->h;
    size_t n = 0;
    /* The automatic ban of the key this prefix names, if it names one. */
    bool host = (c->family == AF_INET && c->prefix == 32) ||
                (c->family == AF_INET6 && c->prefix >= t->pol.v6_prefix);
    struct abuse_key k;
    if (host) {
        /* A union, not casts of a sockaddr_storage: abuse_key_of() may be
         * inlined here, and the stores must be seen by its loads. */
        union {
            struct sockaddr sa;
            struct sockaddr_in in;
            struct sockaddr_in6 in6;
        } u;
        memset(&u, 0, sizeof(u));
        if (c->family == AF_INET) {
            u.in.sin_family = AF_INET;
            memcpy(&u.in.sin_addr, c->addr, 4);
        } else {
            u.in6.sin6_family = AF_INET6;
            memcpy(&u.in6.sin6_addr, c->addr, 16);
        }
        host = abuse_key_of(&u.sa, t->pol.v6_prefix, &k);
    }

    enter(t);
    for (size_t i = 0; i < h->nrules;) {
        if (cidr_equal(&h->rules[i].c, c)) {
            bool active = h->rules[i].until_ms > now_ms;
            rule_drop(t, i, active ? "removed" : "expired");
            n += active;
        } else {
            i++;
        }
    }
    struct entry *e = host ? find(h, &k) : NULL;
    if (e != NULL && (ban_active(e, now_ms) || e->ban_logged)) {
        n += ban_active(e, now_ms);
        e->ban_until_ms = 0;
        e->strikes = 0;
        end_ban(t, e, "removed");
    }
    update_gauge(h);
    leave(t);
    return n;
}

void
abuse_bans_each(const struct abuse *t, uint64_t now_ms, abuse_ban_fn *fn, void *arg)
{
    const struct table *h = t->h;
    char text[ABUSE_KEY_STRLEN];

    enter(t);
    for (size_t i = 0; i < h->nrules; i++) {
        if (h->rules[i].until_ms > now_ms)
            fn(arg, rule_format(&h->rules[i].c, text, sizeof(text)), ABUSE_BAN_ADMIN,
               h->rules[i].until_ms);
    }
    for (size_t i = 0; h->slots != NULL && i < h->nslots; i++) {
        const struct entry *e = &h->slots[i];
        if (e->used && ban_active(e, now_ms))
            fn(arg, abuse_key_format(&e->key, text, sizeof(text)),
               (enum abuse_ban_reason)e->ban_reason, e->ban_until_ms);
    }
    unlock(t);
}

void
abuse_sweep(struct abuse *t, uint64_t now_ms)
{
    struct table *h = t->h;

    enter(t);
    if (t->shm != NULL && h->swept_ms != 0 && now_ms - h->swept_ms < SWEEP_SHARED_MS) {
        leave(t); /* another worker just did it */
        return;
    }
    h->swept_ms = now_ms;
    rules_expire(t, now_ms);
    for (size_t i = 0; h->slots != NULL && i < h->nslots;) {
        struct entry *e = &h->slots[i];
        if (e->used && e->ban_logged && !ban_active(e, now_ms))
            end_ban(t, e, "expired");
        if (e->used && reclaimable(t, i, now_ms)) {
            remove_slot(h, i); /* slot i may now hold a shifted entry: look again */
            continue;
        }
        i++;
    }
    update_gauge(h);
    leave(t);
}
