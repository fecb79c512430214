/*
 * dominant: a pure watch for one client address carrying an implausible
 * share of a listener's sessions: the sign of a relay (a load balancer, a
 * front MX, a NAT) in front of a listener that takes the relay for the
 * client, so that limits and bans hit the relay and all its clients.
 *
 * The last DOMINANT_WINDOW sessions' client addresses are kept in a ring;
 * every DOMINANT_EVERY sessions, once the ring is full, a majority vote
 * (Boyer-Moore) and a count find whether one address carried more than
 * half of them. Then a warning is due, at most once per DOMINANT_WARN_MS.
 * No I/O, no allocation; O(1) per session amortised.
 */
#ifndef MAILEDGE_DOMINANT_H
#define MAILEDGE_DOMINANT_H

#include <stdint.h>

#include "abuse_key.h"

#define DOMINANT_WINDOW 256        /* sessions looked at */
#define DOMINANT_EVERY 64          /* sessions between two looks */
#define DOMINANT_WARN_MS 600000u   /* at most one warning per 10 minutes */

struct dominant {
    struct abuse_key ring[DOMINANT_WINDOW];
    uint32_t n;            /* sessions noted, up to DOMINANT_WINDOW */
    uint32_t pos;          /* the next slot of the ring */
    uint32_t since;        /* sessions since the last look */
    uint64_t next_warn_ms; /* no warning before this */
};

/*
 * Notes one session of client <k> at <now_ms> (<d> starts zeroed). Returns
 * how many of the last DOMINANT_WINDOW sessions <out> carried when one
 * client carried more than half of them and a warning is due; else 0.
 */
unsigned dominant_note(struct dominant *d, const struct abuse_key *k, uint64_t now_ms,
                       struct abuse_key *out);

#endif
