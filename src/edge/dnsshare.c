/* dnsshare: server addresses from the resolving worker to the others (dnsshare.h). */
#include "dnsshare.h"

#include <stdatomic.h>
#include <string.h>

#include "backend.h"
#include "conf.h"
#include "log.h"
#include "shm.h"
#include "util.h"

struct slot {
    bool used;
    unsigned epoch;                  /* of the claim that last kept it */
    char backend[CONF_NAME_MAX];
    char server[CONF_NAME_MAX];
    char host[CONF_HOST_MAX];        /* the name the addresses are for */
    uint64_t version;                /* the table's version when they last changed */
    struct sockaddr_storage addrs[BACKEND_ADDRS_MAX];
    size_t naddrs;
    uint32_t ttl;
    /* Happy Eyeballs memory, any worker's: slow_until_ms << 2 | family code
     * (0 none, 1 IPv4, 2 IPv6); CLOCK_MONOTONIC is the host's. */
    _Atomic uint64_t family;
    atomic_uint asked;               /* early queries asked by followers, ever */
};

struct table {
    struct shm_mutex mu;             /* slots: written by worker 0, copied by the others */
    atomic_ulong version;            /* bumped by every change */
    unsigned epoch;
    bool full_warned;
    struct slot s[DNSSHARE_SLOTS];
};

static struct table *tab;
static bool tab_failed;

static void
table_init(void *arg, void *block)
{
    struct table *t = block;
    (void)arg;
    if (shm_mutex_init(&t->mu) == -1)
        fatal("dnsshare: cannot make a process-shared lock");
}

/* The host's table; NULL with workers 1, or when the region is full (then
 * every worker resolves for itself, as before). */
static struct table *
table(void)
{
    struct shm *shm = shm_host();
    if (tab == NULL && !tab_failed && shm != NULL && shm_nworkers() > 1 &&
        (tab = shm_named(shm, "dns", "servers", sizeof(*tab), table_init, NULL)) == NULL) {
        tab_failed = true;
        log_warnx("workers: the shared region is full: this worker resolves server names "
                  "itself");
    }
    return tab;
}

bool
dnsshare_on(void)
{
    return table() != NULL;
}

bool
dnsshare_resolves_here(void)
{
    return shm_worker() == 0;
}

/* Under the lock. */
static uint64_t
bump(struct table *t)
{
    return atomic_fetch_add(&t->version, 1) + 1;
}

static bool
is(const struct slot *s, const struct backend *b, size_t si)
{
    return s->used && strcmp(s->backend, b->conf->name) == 0 &&
           strcmp(s->server, b->conf->servers[si].name) == 0;
}

/* Under the lock: the slot of server <si> of <b>, or -1. */
static int
find(const struct table *t, const struct backend *b, size_t si)
{
    for (int i = 0; i < DNSSHARE_SLOTS; i++)
        if (is(&t->s[i], b, si))
            return i;
    return -1;
}

void
dnsshare_begin(void)
{
    struct table *t = table();
    if (t == NULL)
        return;
    shm_mutex_lock(&t->mu);
    t->epoch++;
    shm_mutex_unlock(&t->mu);
}

int
dnsshare_claim(struct backend *b, size_t si)
{
    struct table *t = table();
    if (t == NULL)
        return -1;
    const char *host = b->conf->servers[si].host;
    struct backend_server *st = &b->srv[si];
    shm_mutex_lock(&t->mu);
    int i = find(t, b, si);
    for (int k = 0; i < 0 && k < DNSSHARE_SLOTS; k++)
        if (!t->s[k].used)
            i = k;
    if (i < 0) {
        bool warn = !t->full_warned;
        t->full_warned = true;
        shm_mutex_unlock(&t->mu);
        if (warn)
            log_warnx("workers: more than %d servers with host names: the other workers do "
                      "not get the addresses of server %s of backend %s",
                      DNSSHARE_SLOTS, b->conf->servers[si].name, b->conf->name);
        return -1;
    }
    struct slot *s = &t->s[i];
    if (!s->used || strcmp(s->host, host) != 0) {
        s->used = true;
        util_strlcpy(s->backend, b->conf->name, sizeof(s->backend));
        util_strlcpy(s->server, b->conf->servers[si].name, sizeof(s->server));
        util_strlcpy(s->host, host, sizeof(s->host));
        s->naddrs = 0;
        atomic_store(&s->family, 0);
        s->version = bump(t);
    }
    s->epoch = t->epoch;
    if (st->naddrs == 0 && s->naddrs > 0) {
        /* Worker 0 restarted: the last good answer until its own. */
        memcpy(st->addrs, s->addrs, sizeof(st->addrs));
        st->naddrs = s->naddrs;
        st->ttl = s->ttl;
    }
    shm_mutex_unlock(&t->mu);
    return i;
}

void
dnsshare_end(void)
{
    struct table *t = table();
    if (t == NULL)
        return;
    shm_mutex_lock(&t->mu);
    for (size_t i = 0; i < DNSSHARE_SLOTS; i++) {
        if (t->s[i].used && t->s[i].epoch != t->epoch) {
            memset(&t->s[i], 0, offsetof(struct slot, asked));
            bump(t);
        }
    }
    shm_mutex_unlock(&t->mu);
}

void
dnsshare_publish(int slot, const struct backend *b, size_t si)
{
    struct table *t = table();
    if (t == NULL || slot < 0)
        return;
    const struct backend_server *st = &b->srv[si];
    struct slot *s = &t->s[slot];
    shm_mutex_lock(&t->mu);
    if (is(s, b, si)) {
        s->ttl = st->ttl;
        if (s->naddrs != st->naddrs ||
            memcmp(s->addrs, st->addrs, st->naddrs * sizeof(st->addrs[0])) != 0) {
            memcpy(s->addrs, st->addrs, sizeof(s->addrs));
            s->naddrs = st->naddrs;
            s->version = bump(t);
        }
    }
    shm_mutex_unlock(&t->mu);
}

unsigned
dnsshare_asked(int slot)
{
    struct table *t = table();
    return t != NULL && slot >= 0 ? atomic_load(&t->s[slot].asked) : 0;
}

void
dnsshare_ask(int slot)
{
    struct table *t = table();
    if (t != NULL && slot >= 0)
        atomic_fetch_add(&t->s[slot].asked, 1);
}

bool
dnsshare_changed(uint64_t *seen)
{
    struct table *t = table();
    uint64_t v = t != NULL ? atomic_load(&t->version) : 0;
    if (v == *seen)
        return false;
    *seen = v;
    return true;
}

bool
dnsshare_pull(struct backend *b, size_t si, int *slot, uint64_t *version)
{
    struct table *t = table();
    if (t == NULL)
        return false;
    struct backend_server *st = &b->srv[si];
    bool changed = false;
    shm_mutex_lock(&t->mu);
    if (*slot < 0 || !is(&t->s[*slot], b, si))
        *slot = find(t, b, si);
    const struct slot *s = *slot >= 0 ? &t->s[*slot] : NULL;
    /* Only a good answer for the name this worker's configuration has (worker
     * 0 may not have reloaded yet); an empty slot is no answer yet. */
    if (s != NULL && s->version != *version && s->naddrs > 0 &&
        strcmp(s->host, b->conf->servers[si].host) == 0) {
        *version = s->version;
        changed = st->naddrs != s->naddrs ||
                  memcmp(st->addrs, s->addrs, s->naddrs * sizeof(s->addrs[0])) != 0;
        memcpy(st->addrs, s->addrs, sizeof(st->addrs));
        st->naddrs = s->naddrs;
        st->ttl = s->ttl;
    }
    shm_mutex_unlock(&t->mu);
    return changed;
}

void
dnsshare_family_load(int slot, int *family, uint64_t *until_ms)
{
    struct table *t = table();
    if (t == NULL || slot < 0)
        return;
    uint64_t v = atomic_load(&t->s[slot].family);
    *family = (v & 3) == 1 ? AF_INET : (v & 3) == 2 ? AF_INET6 : 0;
    *until_ms = v >> 2;
}

void
dnsshare_family_store(int slot, int family, uint64_t until_ms)
{
    struct table *t = table();
    if (t == NULL || slot < 0)
        return;
    uint64_t code = family == AF_INET ? 1 : family == AF_INET6 ? 2 : 0;
    atomic_store(&t->s[slot].family, code == 0 ? 0 : until_ms << 2 | code);
}
