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
 */
#include "abuse.h"
#include "dominant.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EVICT_SCAN 64          /* slots looked at before settling for the oldest */
#define FULL_RETRY_MS 1000     /* after a whole scan found nothing to evict */

struct entry {
    struct abuse_key key;
    bool used;
    bool ban_logged;           /* a ban started and its end is not reported yet */
    uint8_t ban_reason;
    uint32_t live;             /* sessions open */
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

struct abuse {
    struct abuse_policy pol;
    struct entry *slots;       /* NULL until the first key */
    size_t nslots, cap, hand;
    uint64_t seed;
    uint64_t full_until_ms;    /* no whole scan before this */
    struct rule *rules;        /* ABUSE_RULES_MAX, allocated at the first ban by hand */
    size_t nrules;
    size_t nbanned;            /* entries with ban_logged */
    struct abuse_stats st;
    struct dominant *dom;      /* allocated at the first session watched */
    abuse_event_fn *fn;
    void *arg;
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

struct abuse *
abuse_new(size_t cap, uint64_t seed, abuse_event_fn *fn, void *arg)
{
    struct abuse *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    if (cap < ABUSE_TABLE_MIN)
        cap = ABUSE_TABLE_MIN;
    if (cap > ABUSE_TABLE_MAX)
        cap = ABUSE_TABLE_MAX;
    t->cap = cap;
    t->nslots = cap + cap / 4 + 1;
    t->seed = seed;
    t->fn = fn;
    t->arg = arg;
    t->pol.v6_prefix = 64;
    t->st.capacity = cap;
    return t;
}

void
abuse_free(struct abuse *t)
{
    if (t == NULL)
        return;
    free(t->slots);
    free(t->rules);
    free(t->dom);
    free(t);
}

void
abuse_set_policy(struct abuse *t, const struct abuse_policy *p)
{
    t->pol = *p;
    if (t->pol.v6_prefix == 0 || t->pol.v6_prefix > 128)
        t->pol.v6_prefix = 64;
}

bool
abuse_policy_active(const struct abuse_policy *p)
{
    return p->per_ip > 0 || p->rate > 0 || p->ban_after > 0;
}

const struct abuse_stats *
abuse_stats(const struct abuse *t)
{
    return &t->st;
}

size_t
abuse_capacity(const struct abuse *t)
{
    return t->cap;
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
home(const struct abuse *t, const struct abuse_key *k)
{
    uint64_t w0, w1;

    memcpy(&w0, k->a, 8);
    memcpy(&w1, k->a + 8, 8);
    uint64_t h = util_mix(t->seed ^ k->family);
    h = util_mix(h ^ w0);
    h = util_mix(h ^ w1 ^ t->seed);
    return (size_t)(h % t->nslots);
}

/* ---- the table ---- */

static struct entry *
find(const struct abuse *t, const struct abuse_key *k)
{
    if (t->slots == NULL)
        return NULL;
    for (size_t i = home(t, k), n = 0; n < t->nslots; i = (i + 1) % t->nslots, n++) {
        struct entry *e = &t->slots[i];
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
    t->nbanned--;
    if (t->fn != NULL) {
        struct abuse_event ev = {.start = false,
                                 .text = abuse_key_format(&e->key, text, sizeof(text)),
                                 .reason = (enum abuse_ban_reason)e->ban_reason,
                                 .why = why};
        t->fn(t->arg, &ev);
    }
}

/* Removes slot <i>, shifting back the entries of its probe run. */
static void
remove_slot(struct abuse *t, size_t i)
{
    size_t j = i;

    t->slots[i].used = false;
    t->st.entries--;
    for (;;) {
        j = (j + 1) % t->nslots;
        if (!t->slots[j].used)
            return;
        size_t h = home(t, &t->slots[j].key);
        /* Entry j may move to the hole at i when i lies cyclically in [h, j). */
        bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
        if (movable) {
            t->slots[i] = t->slots[j];
            t->slots[j].used = false;
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
reclaimable(const struct abuse *t, const struct entry *e, uint64_t now_ms)
{
    return e->live == 0 && !ban_active(e, now_ms) && !e->ban_logged &&
           e->tat_us <= now_ms * 1000 &&
           (e->strikes == 0 || now_ms - e->win_start_ms >= t->pol.ban_window_ms);
}

/* Finds an entry to drop for a new key; SIZE_MAX when none may go. */
static size_t
victim(struct abuse *t, uint64_t now_ms)
{
    size_t best = SIZE_MAX;
    size_t limit = EVICT_SCAN;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 0; n < limit; n++) {
            size_t i = t->hand;
            t->hand = (t->hand + 1) % t->nslots;
            const struct entry *e = &t->slots[i];
            if (!e->used || e->live > 0 || ban_active(e, now_ms))
                continue;
            if (reclaimable(t, e, now_ms))
                return i;
            if (best == SIZE_MAX || e->seen_ms < t->slots[best].seen_ms)
                best = i;
        }
        if (best != SIZE_MAX || now_ms < t->full_until_ms)
            return best;
        limit = t->nslots;  /* a whole scan, at most once a second when it finds nothing */
    }
    if (best == SIZE_MAX)
        t->full_until_ms = now_ms + FULL_RETRY_MS;
    return best;
}

/* The entry of <k>, inserted if new (evicting when full); NULL: untracked. */
static struct entry *
find_or_insert(struct abuse *t, const struct abuse_key *k, uint64_t now_ms)
{
    if (t->slots == NULL) {
        t->slots = calloc(t->nslots, sizeof(*t->slots));
        if (t->slots == NULL)
            return NULL;
    }
    struct entry *e = find(t, k);
    if (e != NULL)
        return e;
    if (t->st.entries >= t->cap) {
        size_t v = victim(t, now_ms);
        if (v == SIZE_MAX)
            return NULL;
        end_ban(t, &t->slots[v], "expired");
        remove_slot(t, v);
        t->st.evictions++;
    }
    size_t i = home(t, k);
    while (t->slots[i].used)
        i = (i + 1) % t->nslots;
    e = &t->slots[i];
    memset(e, 0, sizeof(*e));
    e->key = *k;
    e->used = true;
    e->seen_ms = now_ms;
    t->st.entries++;
    return e;
}

static void
update_gauge(struct abuse *t)
{
    t->st.bans_active = t->nbanned + t->nrules;
}

/* Counts a violation of <e>; true when it starts a ban. */
static bool
strike(struct abuse *t, struct entry *e, enum abuse_ban_reason why, uint64_t now_ms)
{
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
    t->nbanned++;
    t->st.bans_total++;
    update_gauge(t);
    if (t->fn != NULL) {
        char text[ABUSE_KEY_STRLEN];
        struct abuse_event ev = {.start = true,
                                 .text = abuse_key_format(&e->key, text, sizeof(text)),
                                 .reason = why,
                                 .until_ms = e->ban_until_ms};
        t->fn(t->arg, &ev);
    }
    return true;
}

static bool
rule_banned(const struct abuse *t, const struct sockaddr *sa, uint64_t now_ms)
{
    for (size_t i = 0; i < t->nrules; i++) {
        if (t->rules[i].until_ms > now_ms && cidr_match(&t->rules[i].c, sa))
            return true;
    }
    return false;
}

static enum abuse_verdict
refuse(struct abuse *t, enum abuse_verdict v)
{
    t->st.refused[v]++;
    return v;
}

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
    t->st.dominant += n > 0;
    return n;
}

enum abuse_verdict
abuse_admit(struct abuse *t, const struct sockaddr *sa, uint64_t now_ms, struct abuse_ticket *tk)
{
    const struct abuse_policy *p = &t->pol;

    memset(tk, 0, sizeof(*tk));
    if (abuse_allowed(t, sa))
        return ABUSE_ADMIT;
    if (t->nrules > 0 && rule_banned(t, sa, now_ms))
        return refuse(t, ABUSE_BANNED);
    struct abuse_key k;
    if (!abuse_key_of(sa, p->v6_prefix, &k))
        return ABUSE_ADMIT;
    if (!abuse_policy_active(p)) {
        /* Nothing to count; a ban from before a reload may still hold. */
        const struct entry *e = find(t, &k);
        return e != NULL && ban_active(e, now_ms) ? refuse(t, ABUSE_BANNED) : ABUSE_ADMIT;
    }
    struct entry *e = find_or_insert(t, &k, now_ms);
    if (e == NULL) {
        t->st.untracked++;
        return ABUSE_ADMIT;
    }
    e->seen_ms = now_ms;
    if (ban_active(e, now_ms))
        return refuse(t, ABUSE_BANNED);
    if (e->ban_logged)
        end_ban(t, e, "expired");
    update_gauge(t);
    if (p->per_ip > 0 && e->live >= p->per_ip) {
        strike(t, e, ABUSE_BAN_PER_IP, now_ms);
        return refuse(t, ABUSE_PER_IP);
    }
    if (p->rate > 0) {
        uint64_t now_us = now_ms * 1000;
        uint64_t interval = p->rate_period_ms * 1000 / p->rate;
        uint64_t tolerance = interval * (p->rate - 1);
        uint64_t tat = e->tat_us > now_us ? e->tat_us : now_us;
        if (tat - now_us > tolerance) {
            strike(t, e, ABUSE_BAN_RATE, now_ms);
            return refuse(t, ABUSE_RATE);
        }
        e->tat_us = tat + interval;
    }
    if (p->per_ip > 0 || p->rate > 0) {
        e->live++;
        tk->v6_prefix = (uint8_t)p->v6_prefix;
        tk->counted = true;
    }
    return ABUSE_ADMIT;
}

void
abuse_release(struct abuse *t, const struct sockaddr *sa, const struct abuse_ticket *tk)
{
    struct abuse_key k;

    if (!tk->counted || !abuse_key_of(sa, tk->v6_prefix, &k))
        return;
    struct entry *e = find(t, &k);
    if (e != NULL && e->live > 0)
        e->live--;
}

uint64_t
abuse_live(const struct abuse *t)
{
    uint64_t n = 0;

    for (size_t i = 0; t->slots != NULL && i < t->nslots; i++) {
        if (t->slots[i].used)
            n += t->slots[i].live;
    }
    return n;
}

bool
abuse_violation(struct abuse *t, const struct sockaddr *sa, enum abuse_ban_reason why,
                uint64_t now_ms)
{
    struct abuse_key k;

    if (t->pol.ban_after == 0 || abuse_allowed(t, sa) ||
        !abuse_key_of(sa, t->pol.v6_prefix, &k))
        return false;
    struct entry *e = find_or_insert(t, &k, now_ms);
    if (e == NULL) {
        t->st.untracked++;
        return false;
    }
    e->seen_ms = now_ms;
    return strike(t, e, why, now_ms);
}

void
abuse_count_pregreet(struct abuse *t)
{
    t->st.pregreet++;
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

    if (t->fn == NULL)
        return;
    struct abuse_event ev = {.start = start,
                             .text = rule_format(&r->c, text, sizeof(text)),
                             .reason = ABUSE_BAN_ADMIN,
                             .until_ms = r->until_ms,
                             .why = why};
    t->fn(t->arg, &ev);
}

static void
rule_drop(struct abuse *t, size_t i, const char *why)
{
    rule_event(t, &t->rules[i], false, why);
    t->rules[i] = t->rules[--t->nrules];
}

int
abuse_ban_add(struct abuse *t, const struct cidr *c, uint64_t until_ms, uint64_t now_ms)
{
    for (size_t i = 0; i < t->nrules; i++) {
        if (cidr_equal(&t->rules[i].c, c)) {
            t->rules[i].until_ms = until_ms;
            rule_event(t, &t->rules[i], true, NULL);
            return 0;
        }
    }
    /* Make room from expired ones before refusing. */
    for (size_t i = 0; i < t->nrules;) {
        if (t->rules[i].until_ms <= now_ms)
            rule_drop(t, i, "expired");
        else
            i++;
    }
    if (t->rules == NULL && (t->rules = calloc(ABUSE_RULES_MAX, sizeof(*t->rules))) == NULL)
        return -1;
    if (t->nrules == ABUSE_RULES_MAX)
        return -1;
    t->rules[t->nrules] = (struct rule){.c = *c, .until_ms = until_ms};
    rule_event(t, &t->rules[t->nrules], true, NULL);
    t->nrules++;
    t->st.bans_total++;
    update_gauge(t);
    return 0;
}

size_t
abuse_ban_remove(struct abuse *t, const struct cidr *c, uint64_t now_ms)
{
    size_t n = 0;

    for (size_t i = 0; i < t->nrules;) {
        if (cidr_equal(&t->rules[i].c, c)) {
            bool active = t->rules[i].until_ms > now_ms;
            rule_drop(t, i, active ? "removed" : "expired");
            n += active;
        } else {
            i++;
        }
    }
    /* The automatic ban of the key this prefix names, if it names one. */
    bool host = (c->family == AF_INET && c->prefix == 32) ||
                (c->family == AF_INET6 && c->prefix >= t->pol.v6_prefix);
    if (host) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (c->family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;
            in->sin_family = AF_INET;
            memcpy(&in->sin_addr, c->addr, 4);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
            in6->sin6_family = AF_INET6;
            memcpy(&in6->sin6_addr, c->addr, 16);
        }
        struct abuse_key k;
        struct entry *e = abuse_key_of((struct sockaddr *)&ss, t->pol.v6_prefix, &k)
                              ? find(t, &k)
                              : NULL;
        if (e != NULL && (ban_active(e, now_ms) || e->ban_logged)) {
            n += ban_active(e, now_ms);
            e->ban_until_ms = 0;
            e->strikes = 0;
            end_ban(t, e, "removed");
        }
    }
    update_gauge(t);
    return n;
}

void
abuse_bans_each(const struct abuse *t, uint64_t now_ms, abuse_ban_fn *fn, void *arg)
{
    char text[ABUSE_KEY_STRLEN];

    for (size_t i = 0; i < t->nrules; i++) {
        if (t->rules[i].until_ms > now_ms)
            fn(arg, rule_format(&t->rules[i].c, text, sizeof(text)), ABUSE_BAN_ADMIN,
               t->rules[i].until_ms);
    }
    for (size_t i = 0; t->slots != NULL && i < t->nslots; i++) {
        const struct entry *e = &t->slots[i];
        if (e->used && ban_active(e, now_ms))
            fn(arg, abuse_key_format(&e->key, text, sizeof(text)),
               (enum abuse_ban_reason)e->ban_reason, e->ban_until_ms);
    }
}

void
abuse_sweep(struct abuse *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->nrules;) {
        if (t->rules[i].until_ms <= now_ms)
            rule_drop(t, i, "expired");
        else
            i++;
    }
    for (size_t i = 0; t->slots != NULL && i < t->nslots;) {
        struct entry *e = &t->slots[i];
        if (e->used && e->ban_logged && !ban_active(e, now_ms))
            end_ban(t, e, "expired");
        if (e->used && reclaimable(t, e, now_ms)) {
            remove_slot(t, i); /* slot i may now hold a shifted entry: look again */
            continue;
        }
        i++;
    }
    update_gauge(t);
}
