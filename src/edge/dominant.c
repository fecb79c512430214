/* dominant: one client carrying most sessions (dominant.h). */
#include "dominant.h"

#include <string.h>

static int
same(const struct abuse_key *a, const struct abuse_key *b)
{
    return a->family == b->family && a->prefix == b->prefix && memcmp(a->a, b->a, 16) == 0;
}

unsigned
dominant_note(struct dominant *d, const struct abuse_key *k, uint64_t now_ms,
              struct abuse_key *out)
{
    d->ring[d->pos] = *k;
    d->pos = (d->pos + 1) % DOMINANT_WINDOW;
    if (d->n < DOMINANT_WINDOW)
        d->n++;
    if (++d->since < DOMINANT_EVERY || d->n < DOMINANT_WINDOW)
        return 0;
    d->since = 0;
    if (now_ms < d->next_warn_ms)
        return 0;
    /* Only a client with more than half can be the vote's winner. */
    const struct abuse_key *cand = &d->ring[0];
    unsigned votes = 0;
    for (unsigned i = 0; i < DOMINANT_WINDOW; i++) {
        if (votes == 0) {
            cand = &d->ring[i];
            votes = 1;
        } else {
            votes += same(cand, &d->ring[i]) ? 1u : (unsigned)-1;
        }
    }
    unsigned count = 0;
    for (unsigned i = 0; i < DOMINANT_WINDOW; i++)
        count += (unsigned)same(cand, &d->ring[i]);
    if (count * 2 <= DOMINANT_WINDOW)
        return 0;
    *out = *cand;
    d->next_warn_ms = now_ms + DOMINANT_WARN_MS;
    return count;
}
