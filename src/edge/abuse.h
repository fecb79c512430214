/*
 * abuse: per-client limits and bans of one listener. Pure: no sockets, no
 * clock (every call takes the monotonic time in milliseconds), no I/O.
 *
 * A client is keyed by its real address: an IPv4 address, or the first
 * v6_prefix bits of an IPv6 address (/64 by default: one customer). The
 * keys live in a fixed-size open-addressing table allocated at its first
 * use; a flood of distinct addresses evicts idle entries and can never grow
 * it (docs/config.md, "Abuse control"). Bans added by hand (the admin
 * endpoint) are prefixes in a short separate list.
 *
 * In the daemon a table is one per host: a block of the shared region
 * (src/base/shm.h) per listener name, which every worker's handle uses
 * under the table's lock, so a ban, limit per-ip and limit rate hold
 * across workers. Without a region (the unit tests) it is private memory.
 */
#ifndef MAILEDGE_ABUSE_H
#define MAILEDGE_ABUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "abuse_key.h"
#include "cidr.h"

#define ABUSE_TABLE_DEFAULT 65536
#define ABUSE_TABLE_MIN 16
#define ABUSE_TABLE_MAX (1u << 24)
#define ABUSE_RULES_MAX 1024          /* bans by prefix (admin), per listener */
#define ABUSE_KEY_STRLEN 64           /* "2001:db8:1:2::/64" and the like, NUL included */

enum abuse_verdict {
    ABUSE_ADMIT,
    ABUSE_PER_IP,    /* limit per-ip: as many sessions of this client are open */
    ABUSE_RATE,      /* limit rate: no token left */
    ABUSE_BANNED,    /* banned (automatically or by hand) */
    ABUSE_VERDICT_COUNT
};

/* Why a ban started. */
enum abuse_ban_reason {
    ABUSE_BAN_PER_IP,
    ABUSE_BAN_RATE,
    ABUSE_BAN_PREGREET,
    ABUSE_BAN_ADMIN,
    ABUSE_BAN_REASON_COUNT
};

struct abuse_policy {
    unsigned per_ip;            /* concurrent sessions per key; 0: no limit */
    unsigned rate;              /* new sessions per rate_period_ms (also the burst); 0: none */
    uint64_t rate_period_ms;
    unsigned ban_after;         /* violations within ban_window_ms that start a ban; 0: never */
    uint64_t ban_ms, ban_window_ms;
    unsigned v6_prefix;         /* 1..128 */
    const struct cidr *allow;   /* never limited or banned; owned by the caller */
    size_t nallow;
};

/*
 * The stats of a table. Shared tables are one per host: these numbers are
 * already the host's, the same in every worker, and must be shown once,
 * never summed over workers (only "dominant" counts what the workers
 * watched, each its own sessions, as one host-wide sum as well).
 */
struct abuse_stats {
    uint64_t refused[ABUSE_VERDICT_COUNT]; /* by verdict; [ABUSE_ADMIT] unused */
    uint64_t pregreet;        /* clients that spoke before the greeting */
    uint64_t bans_total;      /* bans started (automatic and by hand) */
    uint64_t evictions;       /* entries dropped to make room for a new key */
    uint64_t untracked;       /* admitted uncounted: every key had a session or a ban */
    uint64_t entries;         /* keys in the table now */
    uint64_t capacity;        /* keys it may hold */
    uint64_t bans_active;     /* bans in force (entries and prefixes), as of the last call */
    uint64_t dominant;        /* warnings: one client carried most sessions (src/edge/dominant.c) */
};

/* A ban started or ended; <text> is the key or prefix ("192.0.2.7", "2001:db8::/64"). */
struct abuse_event {
    bool start;
    const char *text;
    enum abuse_ban_reason reason;
    uint64_t until_ms;         /* start: when it ends */
    const char *why;           /* end: "expired" or "removed" */
};

typedef void abuse_event_fn(void *arg, const struct abuse_event *ev);

/*
 * What abuse_admit() counted for a session, to give back with
 * abuse_release(). Two bytes: the key is found again from the session's
 * address with the prefix in force when it was counted.
 */
struct abuse_ticket {
    uint8_t v6_prefix;
    bool counted;
};

struct abuse;
struct shm;

/* Where a shared table lives and who is using it. */
struct abuse_share {
    struct shm *shm;           /* the host's region (shm_host()) */
    const char *name;          /* the listener's name: the block "abuse/<name>" */
    unsigned worker;           /* this worker's index (shm_worker()) */
    unsigned nworkers;         /* how many there are (shm_nworkers()) */
};

/*
 * A handle on a table for at most <cap> keys (clamped to
 * ABUSE_TABLE_MIN..MAX), hashed with <seed> (random, so that an attacker
 * cannot aim at one chain). <fn> hears of the bans this handle's calls
 * start and end, after the call released the table's lock. <sh> NULL: a
 * private table. Else the shared table of <sh>->name, made with <cap> and
 * <seed> by the first handle (later ones use what it made), and the
 * sessions this worker counted in it are zeroed (a restarted worker's
 * predecessor's). NULL when out of memory, or when the region is full.
 */
struct abuse *abuse_new(size_t cap, uint64_t seed, abuse_event_fn *fn, void *arg,
                        const struct abuse_share *sh);

/* Frees the handle; the last one on a shared table frees its slots. */
void abuse_free(struct abuse *t);

/*
 * Sets or replaces the policy of this handle (the allow list is
 * referenced, not copied). The table's slots are allocated the first time
 * a policy limits anything: -1 when there is no memory for them (the
 * policy is set; clients are then admitted uncounted).
 */
int abuse_set_policy(struct abuse *t, const struct abuse_policy *p);

/* True when the policy limits or bans anything on its own. */
bool abuse_policy_active(const struct abuse_policy *p);

/* The key of <sa> (IPv4-mapped IPv6 counts as IPv4). False for other families. */
bool abuse_key_of(const struct sockaddr *sa, unsigned v6_prefix, struct abuse_key *k);
char *abuse_key_format(const struct abuse_key *k, char *buf, size_t cap);

/* True when <sa> is on the allow list: never counted, limited, struck or
 * banned, and not watched by pregreet. */
bool abuse_allowed(const struct abuse *t, const struct sockaddr *sa);

/*
 * A new session whose client <sa> is the TCP peer (no PROXY header said
 * otherwise), allowed clients left out: watches for one address carrying
 * most sessions (src/edge/dominant.c). Returns how many of the last
 * DOMINANT_WINDOW sessions it carried, with its address in <out>, when a
 * warning is due (counted in the stats), else 0.
 */
unsigned abuse_note_peer(struct abuse *t, const struct sockaddr *sa, uint64_t now_ms,
                         struct abuse_key *out);

/*
 * A new session of client <sa>: ABUSE_ADMIT, or why to refuse it. On
 * ABUSE_ADMIT, <tk> says whether a session was counted (give it back with
 * abuse_release). A refusal for a limit counts as a violation and may
 * start a ban (the event function hears of it).
 */
enum abuse_verdict abuse_admit(struct abuse *t, const struct sockaddr *sa, uint64_t now_ms,
                               struct abuse_ticket *tk);

/* The session of client <sa> counted in <tk> ended. */
void abuse_release(struct abuse *t, const struct sockaddr *sa, const struct abuse_ticket *tk);

/*
 * A violation other than a limit (a pre-greet client). Returns true when it
 * started a ban. Allowed clients are never struck.
 */
bool abuse_violation(struct abuse *t, const struct sockaddr *sa, enum abuse_ban_reason why,
                     uint64_t now_ms);

/* Counts a pre-greet client in the stats (whether or not it is refused). */
void abuse_count_pregreet(struct abuse *t);

/*
 * Bans prefix <c> by hand until <until_ms>; an existing ban of the same
 * prefix is replaced. Returns 0, or -1 when ABUSE_RULES_MAX are in force
 * (or out of memory).
 */
int abuse_ban_add(struct abuse *t, const struct cidr *c, uint64_t until_ms, uint64_t now_ms);

/*
 * Lifts the bans by hand of exactly <c>, and the automatic ban of the key
 * of <c>'s address when <c> is one host or one key's prefix. Returns how
 * many bans were lifted.
 */
size_t abuse_ban_remove(struct abuse *t, const struct cidr *c, uint64_t now_ms);

/* Calls <fn> for every ban in force (under a shared table's lock: <fn> only formats). */
typedef void abuse_ban_fn(void *arg, const char *text, enum abuse_ban_reason reason,
                          uint64_t until_ms);
void abuse_bans_each(const struct abuse *t, uint64_t now_ms, abuse_ban_fn *fn, void *arg);

/*
 * Housekeeping, about once a second: ends expired bans (the event function
 * hears of each) and drops keys that hold no state worth keeping. A shared
 * table is swept by the first worker that calls 500 ms after the last sweep;
 * the others' calls return at once.
 */
void abuse_sweep(struct abuse *t, uint64_t now_ms);

const struct abuse_stats *abuse_stats(const struct abuse *t);
size_t abuse_capacity(const struct abuse *t);

/* Live sessions counted over all keys and workers. */
uint64_t abuse_live(const struct abuse *t);

/* "limit_per_ip", "limit_rate", "pregreet", "admin" */
const char *abuse_ban_reason_name(enum abuse_ban_reason r);

#endif
