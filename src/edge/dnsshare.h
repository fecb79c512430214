/*
 * dnsshare: with `workers N`, DNS once per host. Worker 0 (the resolver,
 * src/edge/resolve.c) publishes each answer that succeeds in a table of
 * the shared region (src/base/shm.h), one slot per server written with a
 * name, keyed by backend and server name, with the host name it was
 * resolved for; the other workers (the followers) run no lookup and copy
 * the addresses from it every DNSSHARE_POLL_MS (skipped while nothing was
 * published). A failed lookup publishes nothing, so every worker keeps the
 * last good answer, as its own resolver would. A follower whose connect
 * failed on every address asks worker 0 for an early query through a
 * counter in the slot, which worker 0 reads on the same poll.
 *
 * Why a poll and not an event: answers change at TTL pace (1 s at the
 * least, RESOLVE_MIN_MS), so 100 ms more is small; a pass costs one atomic
 * load while nothing changed, and it needs no descriptor made before the
 * fork (a restarted worker finds the table by name).
 */
#ifndef MAILEDGE_DNSSHARE_H
#define MAILEDGE_DNSSHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend;

#define DNSSHARE_SLOTS 1024  /* named servers over all backends (a reload frees the others) */
#define DNSSHARE_POLL_MS 100

/* True when this process shares DNS with other workers (workers N > 1). */
bool dnsshare_on(void);

/* True when this process resolves (worker 0, or a single worker). */
bool dnsshare_resolves_here(void);

/*
 * Worker 0, at each start of its resolver: every named server of the new
 * generation is claimed with dnsshare_claim() between dnsshare_begin() and
 * dnsshare_end(); slots not claimed (servers gone) are freed at the end.
 * dnsshare_claim() returns the slot (-1 when the table is full: that
 * server's followers then never get addresses, logged once) and, when the
 * server has no addresses yet but the slot has some for the same host
 * (worker 0 restarted), copies them in.
 */
void dnsshare_begin(void);
int dnsshare_claim(struct backend *b, size_t si);
void dnsshare_end(void);

/* Worker 0: server <si> of <b> (slot <slot>) has a new good answer. */
void dnsshare_publish(int slot, const struct backend *b, size_t si);

/* Worker 0: how many early queries followers asked of slot <slot>, ever. */
unsigned dnsshare_asked(int slot);

/* A follower: asks worker 0 for an early query of slot <slot> (-1: nothing). */
void dnsshare_ask(int slot);

/* Anything published since <*seen>; updates it. */
bool dnsshare_changed(uint64_t *seen);

/*
 * A follower: copies the last good answer for server <si> of <b> when it
 * is newer than <*version> (the slot found by name, cached in <*slot>).
 * True when the server's addresses changed.
 */
bool dnsshare_pull(struct backend *b, size_t si, int *slot, uint64_t *version);

/*
 * The Happy Eyeballs memory of the server of <slot> (its slow family, 0 for
 * none, and until when), shared by every worker so that one session's lesson
 * serves the host's next ones; no table or slot -1: load leaves *<family>
 * and *<until_ms> as they are, store does nothing.
 */
void dnsshare_family_load(int slot, int *family, uint64_t *until_ms);
void dnsshare_family_store(int slot, int family, uint64_t until_ms);

#endif
