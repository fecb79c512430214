/*
 * banset: a bounded set of banned addresses and prefixes (the remote bans
 * of a CrowdSec bouncer), each with its own expiry, origin and scenario.
 * Pure: no I/O, no clock (time is a parameter, on the caller's monotonic
 * clock in milliseconds).
 *
 * Addresses and ranges share one hash table whose key is (family, prefix
 * length, masked address); a lookup tries the prefix lengths in use,
 * longest first (so a /32 inside a /24 inside a /16 answers the /32).
 * Origins and scenarios are interned: a few strings, many entries.
 * Expiries sit in a binary heap, so banset_expire() drops exactly the
 * expired entries, earliest first, at O(log n) each.
 */
#ifndef MAILEDGE_BANSET_H
#define MAILEDGE_BANSET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cidr.h"

struct banset;
struct shm;

/* At most <cap> entries; <seed> keys the hashes. NULL: out of memory. */
struct banset *banset_new(size_t cap, uint64_t seed);

/*
 * The same, all of it in the shared region <shm> (NULL: private memory,
 * as banset_new()): one set for every worker of the host. The set takes
 * no lock of its own: its user locks around changes and lookups (the
 * region's allocator lock is taken inside, a leaf).
 */
struct banset *banset_new_in(struct shm *shm, size_t cap, uint64_t seed);
void banset_free(struct banset *s);

/*
 * Adds or replaces (same prefix: new expiry, origin, scenario). 0 added,
 * 1 replaced, -1 full (counted in full_refusals; expired entries take
 * room until banset_expire() drops them) or <net> invalid.
 * <expires_ms> is absolute. An IPv6 prefix inside ::ffff:0:0/96 is kept
 * as the IPv4 prefix it stands for. NULL origin or scenario: "".
 */
int banset_add(struct banset *s, const struct cidr *net, uint64_t expires_ms, const char *origin,
               const char *scenario);

/* Removes that exact prefix. 0 removed, -1 not there. */
int banset_del(struct banset *s, const struct cidr *net);

struct banset_entry {
    struct cidr net;
    uint64_t expires_ms;
    const char *origin, *scenario; /* owned by the set */
};

/*
 * The longest prefix holding <sa> that has not expired at <now_ms>
 * (expires_ms > now_ms); NULL when none. IPv4-mapped IPv6 addresses match
 * as IPv4. The entry is valid until the set is next changed.
 */
const struct banset_entry *banset_lookup(const struct banset *s, const struct sockaddr *sa,
                                         uint64_t now_ms);

/* Drops up to <budget> expired entries (expires_ms <= now_ms), earliest
 * first; returns how many it dropped. */
size_t banset_expire(struct banset *s, uint64_t now_ms, size_t budget);

/*
 * Visits entries from cursor <*pos> (start at 0), at most <max>; returns
 * how many visited; *pos == 0 after the last one. For /bans listings:
 * between calls the set may change; an entry present during the whole
 * walk is visited exactly once. Expired entries not yet dropped are
 * visited too (compare expires_ms).
 */
size_t banset_walk(const struct banset *s, size_t *pos, size_t max,
                   void (*fn)(void *arg, const struct banset_entry *e), void *arg);

struct banset_stats {
    size_t ips, ranges;    /* entries: single addresses (/32, /128), and shorter prefixes */
    size_t full_refusals;  /* banset_add() refused for want of room, ever */
    size_t bytes;          /* memory held: tables, entries, interned strings */
};
void banset_stats(const struct banset *s, struct banset_stats *out);

/* Empties the set (a startup=true resync replaces the whole set);
 * full_refusals is kept. */
void banset_clear(struct banset *s);

#endif
