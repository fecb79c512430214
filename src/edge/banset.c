/*
 * banset: the remote-ban set.
 *
 * Entries live in one array of <cap> (allocated zeroed, so the pages the
 * set never reaches cost no memory), reused through a free list; an entry
 * keeps its index for life, which is what lets banset_walk() resume from a
 * plain index. The hash table holds entry indices, each with a 32-bit tag
 * of its key's hash (open addressing, linear probing, backward-shift
 * deletion, at most half full), keyed by (family, prefix length, masked
 * address) with a seeded hash, so one table holds every prefix length;
 * per family, the lengths in use (kept in order from a count by length)
 * are the ones a lookup tries, longest first. The expiry heap holds entry
 * indices too, and each entry knows its place in it.
 *
 * IPv4-mapped IPv6 is IPv4 here, in keys and in lookups. An IPv6 prefix
 * shorter than /96 can still cover ::ffff:0:0/96; such entries are counted
 * and, while there are any, an IPv4 lookup also tries the IPv6 lengths
 * under 96 with the mapped address.
 *
 * banset_new_in() with a shared region allocates everything there (the
 * struct, the arrays, the strings), so plain pointers inside the set mean
 * the same in every worker; the caller locks (bouncer.c).
 */
#include "banset.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shm.h"
#include "util.h"

#define NONE UINT32_MAX
#define STR_MAX 255       /* longer origins and scenarios are cut, between characters */
#define BANSET_CAP_MAX (1u << 24)
#define PREFETCH 8        /* prefix lengths whose slots a lookup fetches at once */

/* An interned string: refcounted, chained in a small hash of its own. */
struct istr {
    struct istr *next;
    uint64_t hash;
    size_t refs;
    char s[];
};

struct entry {
    struct banset_entry pub; /* pub.net.family == 0: free */
    uint32_t heap;           /* place in the heap; free: next free entry */
};

struct banset {
    struct shm *shm;  /* where it lives; NULL: malloc */
    struct entry *e;
    uint64_t *slots; /* high half: the key's tag; low half: entry index + 1; 0: empty */
    uint32_t *heap;  /* entry indices, earliest expiry first */
    size_t cap, nslots, n, hw; /* hw: entries ever used (high-water mark) */
    uint32_t free_head;
    uint64_t seed;
    size_t nips, nranges, full_refusals;
    uint32_t by_len[2][129]; /* entries by [v6][prefix length] */
    uint8_t lens[2][129];    /* [v6]: the lengths in use, longest first */
    size_t nlens[2];
    size_t v6_cover_mapped;  /* IPv6 entries shorter than /96 covering ::ffff:0:0/96 */
    struct istr **strs;
    size_t nstrbuckets, nstrs, strbytes;
};

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* ---- memory: the region's, or malloc's ---- */

static void *
mem_zalloc(struct shm *shm, size_t n, size_t size)
{
    if (shm == NULL)
        return calloc(n, size);
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    return shm_alloc(shm, n * size);
}

static void
mem_free(struct shm *shm, void *p)
{
    if (shm == NULL)
        free(p);
    else
        shm_free(shm, p);
}

/* ---- interned strings ---- */

static uint64_t
str_hash(const struct banset *s, const char *p, size_t n)
{
    uint64_t h = util_mix(s->seed ^ 0x5354u);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = util_mix(h ^ w);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return util_mix(h ^ w ^ ((uint64_t)n << 56));
}

static int
str_grow(struct banset *s)
{
    size_t nb = s->nstrbuckets ? s->nstrbuckets * 2 : 16;
    struct istr **b = mem_zalloc(s->shm, nb, sizeof(struct istr *));

    if (b == NULL)
        return -1;
    for (size_t i = 0; i < s->nstrbuckets; i++) {
        for (struct istr *x = s->strs[i], *next; x != NULL; x = next) {
            next = x->next;
            x->next = b[x->hash & (nb - 1)];
            b[x->hash & (nb - 1)] = x;
        }
    }
    mem_free(s->shm, s->strs);
    s->strs = b;
    s->nstrbuckets = nb;
    return 0;
}

static const char *
str_get(struct banset *s, const char *p)
{
    if (p == NULL)
        p = "";
    size_t n = strnlen(p, STR_MAX);
    if (n == STR_MAX)
        n = util_utf8_cut(p, n);
    uint64_t h = str_hash(s, p, n);

    if (s->nstrs >= s->nstrbuckets * 2 && str_grow(s) != 0 && s->nstrbuckets == 0)
        return NULL;
    for (struct istr *x = s->strs[h & (s->nstrbuckets - 1)]; x != NULL; x = x->next) {
        if (x->hash == h && strncmp(x->s, p, n) == 0 && x->s[n] == '\0') {
            x->refs++;
            return x->s;
        }
    }
    struct istr *x = mem_zalloc(s->shm, 1, sizeof(*x) + n + 1);
    if (x == NULL)
        return NULL;
    memcpy(x->s, p, n);
    x->s[n] = '\0';
    x->hash = h;
    x->refs = 1;
    x->next = s->strs[h & (s->nstrbuckets - 1)];
    s->strs[h & (s->nstrbuckets - 1)] = x;
    s->nstrs++;
    s->strbytes += sizeof(*x) + n + 1;
    return x->s;
}

static void
str_put(struct banset *s, const char *p)
{
    size_t n = strlen(p);
    struct istr **pp = &s->strs[str_hash(s, p, n) & (s->nstrbuckets - 1)];

    while (*pp != NULL && (*pp)->s != p)
        pp = &(*pp)->next;
    struct istr *x = *pp;
    if (x == NULL || --x->refs > 0)
        return;
    *pp = x->next;
    s->nstrs--;
    s->strbytes -= sizeof(*x) + n + 1;
    mem_free(s->shm, x);
}

/* ---- keys ---- */

/* <c> made canonical: mapped IPv6 as IPv4, host bits and unused bytes
 * cleared. -1 when it is no prefix at all. */
static int
canon(const struct cidr *c, struct cidr *k)
{
    memset(k, 0, sizeof(*k));
    if (c->family == AF_INET6 && c->prefix >= 96 && c->prefix <= 128 &&
        memcmp(c->addr, mapped_prefix, 12) == 0) {
        k->family = AF_INET;
        k->prefix = c->prefix - 96;
        memcpy(k->addr, c->addr + 12, 4);
    } else if ((c->family == AF_INET && c->prefix <= 32) ||
               (c->family == AF_INET6 && c->prefix <= 128)) {
        *k = *c;
        memset(k->addr + (c->family == AF_INET ? 4 : 16), 0, c->family == AF_INET ? 12 : 0);
    } else {
        return -1;
    }
    unsigned bytes = k->prefix / 8, bits = k->prefix % 8;
    if (bits != 0)
        k->addr[bytes++] &= (uint8_t)(0xff << (8 - bits));
    memset(k->addr + bytes, 0, 16 - bytes);
    return 0;
}

/* The key's tag: 32 bits of its hash. Its low bits are the home slot, so
 * moving a slot needs no look at the entry; the rest spares a look at
 * entries that differ. */
static uint32_t
key_tag(const struct banset *s, const struct cidr *k)
{
    uint64_t w0, w1;

    memcpy(&w0, k->addr, 8);
    memcpy(&w1, k->addr + 8, 8);
    uint64_t h = util_mix(s->seed ^ ((uint64_t)k->family << 8) ^ k->prefix);
    h = util_mix(h ^ w0);
    h = util_mix(h ^ w1 ^ s->seed);
    return (uint32_t)(h >> 32);
}

/* A slot's entry index (the slot is not empty). */
static uint32_t
slot_idx(uint64_t v)
{
    return (uint32_t)v - 1;
}

static bool
key_equal(const struct cidr *a, const struct cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix &&
           memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static bool
is_host(const struct cidr *k)
{
    return k->prefix == (k->family == AF_INET ? 32u : 128u);
}

/* An IPv6 prefix shorter than /96 that covers ::ffff:0:0/96. */
static bool
covers_mapped(const struct cidr *k)
{
    if (k->family != AF_INET6 || k->prefix >= 96)
        return false;
    struct cidr m = { .family = AF_INET6, .prefix = k->prefix };
    memcpy(m.addr, mapped_prefix, 12);
    struct cidr mk;
    canon(&m, &mk);
    return key_equal(&mk, k);
}

/* The slot holding <k>, or the empty slot where it would go. */
static size_t
find_slot(const struct banset *s, const struct cidr *k)
{
    uint32_t tag = key_tag(s, k);
    size_t i = tag & (s->nslots - 1);
    for (;;) {
        uint64_t v = s->slots[i];
        if (v == 0 || ((v >> 32) == tag && key_equal(&s->e[slot_idx(v)].pub.net, k)))
            return i;
        i = (i + 1) & (s->nslots - 1);
    }
}

static void
slot_remove(struct banset *s, size_t i)
{
    size_t j = i;

    s->slots[i] = 0;
    for (;;) {
        j = (j + 1) & (s->nslots - 1);
        uint64_t v = s->slots[j];
        if (v == 0)
            return;
        size_t h = (size_t)(v >> 32) & (s->nslots - 1);
        /* Move v back into the hole unless its home lies in (i, j]. */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            s->slots[i] = v;
            s->slots[j] = 0;
            i = j;
        }
    }
}

/* ---- the expiry heap ---- */

static void
heap_set(struct banset *s, size_t at, uint32_t idx)
{
    s->heap[at] = idx;
    s->e[idx].heap = (uint32_t)at;
}

static uint64_t
heap_key(const struct banset *s, size_t at)
{
    return s->e[s->heap[at]].pub.expires_ms;
}

static void
heap_fix(struct banset *s, size_t at)
{
    uint32_t idx = s->heap[at];
    uint64_t key = s->e[idx].pub.expires_ms;

    while (at > 0 && heap_key(s, (at - 1) / 2) > key) {
        heap_set(s, at, s->heap[(at - 1) / 2]);
        at = (at - 1) / 2;
    }
    for (;;) {
        size_t c = 2 * at + 1;
        if (c >= s->n)
            break;
        if (c + 1 < s->n && heap_key(s, c + 1) < heap_key(s, c))
            c++;
        if (heap_key(s, c) >= key)
            break;
        heap_set(s, at, s->heap[c]);
        at = c;
    }
    heap_set(s, at, idx);
}

/* ---- the set ---- */

struct banset *
banset_new(size_t cap, uint64_t seed)
{
    return banset_new_in(NULL, cap, seed);
}

struct banset *
banset_new_in(struct shm *shm, size_t cap, uint64_t seed)
{
    struct banset *s = mem_zalloc(shm, 1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->shm = shm;
    if (cap < 1)
        cap = 1;
    if (cap > BANSET_CAP_MAX)
        cap = BANSET_CAP_MAX;
    s->cap = cap;
    s->nslots = 16;
    while (s->nslots < cap * 2)
        s->nslots *= 2;
    s->seed = seed;
    s->free_head = NONE;
    s->e = mem_zalloc(shm, cap, sizeof(*s->e));
    s->slots = mem_zalloc(shm, s->nslots, sizeof(*s->slots));
    s->heap = mem_zalloc(shm, cap, sizeof(*s->heap));
    if (s->e == NULL || s->slots == NULL || s->heap == NULL || str_grow(s) != 0) {
        banset_free(s);
        return NULL;
    }
    return s;
}

static void
free_strings(struct banset *s)
{
    for (size_t i = 0; i < s->nstrbuckets; i++) {
        for (struct istr *x = s->strs[i], *next; x != NULL; x = next) {
            next = x->next;
            mem_free(s->shm, x);
        }
        s->strs[i] = NULL;
    }
    s->nstrs = 0;
    s->strbytes = 0;
}

void
banset_free(struct banset *s)
{
    if (s == NULL)
        return;
    struct shm *shm = s->shm;
    free_strings(s);
    mem_free(shm, s->strs);
    mem_free(shm, s->e);
    mem_free(shm, s->slots);
    mem_free(shm, s->heap);
    mem_free(shm, s);
}

static void
count(struct banset *s, const struct cidr *k, int d)
{
    int f = k->family == AF_INET6;
    uint32_t was = s->by_len[f][k->prefix];

    s->by_len[f][k->prefix] += (uint32_t)d;
    if ((was == 0) != (s->by_len[f][k->prefix] == 0)) {
        s->nlens[f] = 0;
        for (int len = f ? 128 : 32; len >= 0; len--) {
            if (s->by_len[f][len] != 0)
                s->lens[f][s->nlens[f]++] = (uint8_t)len;
        }
    }
    if (is_host(k))
        s->nips += (size_t)d;
    else
        s->nranges += (size_t)d;
    if (covers_mapped(k))
        s->v6_cover_mapped += (size_t)d;
}

int
banset_add(struct banset *s, const struct cidr *net, uint64_t expires_ms, const char *origin,
           const char *scenario)
{
    struct cidr k;

    if (canon(net, &k) != 0)
        return -1;
    const char *o = str_get(s, origin);
    const char *sc = o != NULL ? str_get(s, scenario) : NULL;
    if (sc == NULL) {
        if (o != NULL)
            str_put(s, o);
        return -1;
    }
    size_t i = find_slot(s, &k);
    if (s->slots[i] != 0) {
        struct entry *e = &s->e[slot_idx(s->slots[i])];
        str_put(s, e->pub.origin);
        str_put(s, e->pub.scenario);
        e->pub.origin = o;
        e->pub.scenario = sc;
        e->pub.expires_ms = expires_ms;
        heap_fix(s, e->heap);
        return 1;
    }
    if (s->n >= s->cap) {
        str_put(s, o);
        str_put(s, sc);
        s->full_refusals++;
        return -1;
    }
    uint32_t idx;
    if (s->free_head != NONE) {
        idx = s->free_head;
        s->free_head = s->e[idx].heap;
    } else {
        idx = (uint32_t)s->hw++;
    }
    struct entry *e = &s->e[idx];
    e->pub.net = k;
    e->pub.expires_ms = expires_ms;
    e->pub.origin = o;
    e->pub.scenario = sc;
    s->slots[i] = (uint64_t)key_tag(s, &k) << 32 | (idx + 1);
    heap_set(s, s->n++, idx);
    heap_fix(s, s->n - 1);
    count(s, &k, 1);
    return 0;
}

static void
remove_at(struct banset *s, size_t slot)
{
    uint32_t idx = slot_idx(s->slots[slot]);
    struct entry *e = &s->e[idx];
    size_t at = e->heap;

    slot_remove(s, slot);
    count(s, &e->pub.net, -1);
    str_put(s, e->pub.origin);
    str_put(s, e->pub.scenario);
    if (--s->n > at) {
        heap_set(s, at, s->heap[s->n]);
        heap_fix(s, at);
    }
    memset(e, 0, sizeof(*e));
    e->heap = s->free_head;
    s->free_head = idx;
}

int
banset_del(struct banset *s, const struct cidr *net)
{
    struct cidr k;

    if (canon(net, &k) != 0)
        return -1;
    size_t i = find_slot(s, &k);
    if (s->slots[i] == 0)
        return -1;
    remove_at(s, i);
    return 0;
}

/* <addr> cut to <len> bits: a key. */
static void
cut(struct cidr *k, int family, const uint8_t *addr, unsigned len)
{
    memset(k, 0, sizeof(*k));
    k->family = family;
    k->prefix = len;
    memcpy(k->addr, addr, len / 8);
    if (len % 8 != 0)
        k->addr[len / 8] = addr[len / 8] & (uint8_t)(0xff << (8 - len % 8));
}

/* The longest live entry of <family> holding <addr> among prefix lengths
 * up to <top>. The slots of the first few lengths are fetched from memory
 * together, before any is looked at: one wait instead of one per length. */
static const struct banset_entry *
longest(const struct banset *s, int family, const uint8_t *addr, unsigned top, uint64_t now_ms)
{
    const uint8_t *lens = s->lens[family == AF_INET6];
    size_t nlens = s->nlens[family == AF_INET6], first = 0;
    struct cidr keys[PREFETCH];

    while (first < nlens && lens[first] > top)
        first++;
    size_t batch = nlens - first < PREFETCH ? nlens - first : PREFETCH;
    for (size_t i = 0; i < batch; i++) {
        cut(&keys[i], family, addr, lens[first + i]);
        __builtin_prefetch(&s->slots[key_tag(s, &keys[i]) & (s->nslots - 1)]);
    }
    for (size_t i = first; i < nlens; i++) {
        struct cidr k;
        if (i - first < batch)
            k = keys[i - first];
        else
            cut(&k, family, addr, lens[i]);
        uint64_t v = s->slots[find_slot(s, &k)];
        if (v != 0 && s->e[slot_idx(v)].pub.expires_ms > now_ms)
            return &s->e[slot_idx(v)].pub;
    }
    return NULL;
}

const struct banset_entry *
banset_lookup(const struct banset *s, const struct sockaddr *sa, uint64_t now_ms)
{
    uint8_t a[16];

    if (s->n == 0)
        return NULL;
    if (sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        if (memcmp(a, mapped_prefix, 12) != 0)
            return longest(s, AF_INET6, a, 128, now_ms);
        memmove(a, a + 12, 4);
    } else {
        return NULL;
    }
    const struct banset_entry *e = longest(s, AF_INET, a, 32, now_ms);
    if (e != NULL || s->v6_cover_mapped == 0)
        return e;
    uint8_t m[16];
    memcpy(m, mapped_prefix, 12);
    memcpy(m + 12, a, 4);
    return longest(s, AF_INET6, m, 95, now_ms);
}

size_t
banset_expire(struct banset *s, uint64_t now_ms, size_t budget)
{
    size_t dropped = 0;

    while (dropped < budget && s->n > 0 && heap_key(s, 0) <= now_ms) {
        remove_at(s, find_slot(s, &s->e[s->heap[0]].pub.net));
        dropped++;
    }
    return dropped;
}

size_t
banset_walk(const struct banset *s, size_t *pos, size_t max,
            void (*fn)(void *arg, const struct banset_entry *e), void *arg)
{
    size_t i = *pos, seen = 0;

    for (; i < s->hw && seen < max; i++) {
        if (s->e[i].pub.net.family != 0) {
            fn(arg, &s->e[i].pub);
            seen++;
        }
    }
    while (i < s->hw && s->e[i].pub.net.family == 0)
        i++;
    *pos = i < s->hw ? i : 0;
    return seen;
}

void
banset_stats(const struct banset *s, struct banset_stats *out)
{
    out->ips = s->nips;
    out->ranges = s->nranges;
    out->full_refusals = s->full_refusals;
    out->bytes = sizeof(*s) + s->nslots * sizeof(*s->slots) +
                 s->hw * (sizeof(*s->e) + sizeof(*s->heap)) +
                 s->nstrbuckets * sizeof(struct istr *) + s->strbytes;
}

void
banset_clear(struct banset *s)
{
    free_strings(s);
    memset(s->slots, 0, s->nslots * sizeof(*s->slots));
    memset(s->e, 0, s->hw * sizeof(*s->e));
    memset(s->by_len, 0, sizeof(s->by_len));
    s->nlens[0] = s->nlens[1] = 0;
    s->n = s->hw = 0;
    s->free_head = NONE;
    s->nips = s->nranges = s->v6_cover_mapped = 0;
}
