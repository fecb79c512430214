/*
 * fault: a test hook that makes one call at a chosen site of the session
 * path fail, as if memory or descriptors had run out, so the tests can
 * prove that every such failure ends one session cleanly and costs nothing
 * else (tests/integration/test_faults.py, docs/security.md).
 *
 * Off unless the environment of the process holds MAILEDGE_TEST_FAULTS,
 * e.g. "buffer:1,socket:3": the first relay buffer allocation and the third
 * backend socket after start-up fail. Counting starts at fault_arm(), once
 * mailedge is ready, so start-up itself is never affected.
 */
#ifndef MAILEDGE_FAULT_H
#define MAILEDGE_FAULT_H

#include <stdbool.h>
#include <stdint.h>

enum fault_site {
    FAULT_SESSION,   /* the session object (calloc) */
    FAULT_TIMER,     /* the timer heap reserve for a new session (realloc) */
    FAULT_EPOLL,     /* registering a descriptor with epoll */
    FAULT_PIPE,      /* a splice pipe (pipe2) */
    FAULT_BUFFER,    /* a copy buffer (malloc) */
    FAULT_SOCKET,    /* a backend socket (socket) */
    FAULT_SITES
};

/* Which call of each site fails; 0: none. */
struct fault_plan {
    uint32_t nth[FAULT_SITES];
};

/* Parses "SITE:N[,SITE:N...]" (N >= 1). Returns 0, or -1 for a bad spec. Pure. */
int fault_parse(const char *spec, struct fault_plan *out);

/* The site's name as written in a spec. */
const char *fault_site_name(enum fault_site site);

/* Installs <plan> and starts counting calls (main, once ready). */
void fault_arm(const struct fault_plan *plan);

/* True when this call at <site> must fail. Cheap when nothing is armed. */
bool fault_hit(enum fault_site site);

#endif
