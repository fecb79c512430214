/* metricshare: every worker's counters in the shared region (metricshare.h). */
#include "metricshare.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "log.h"
#include "shm.h"

/* Slots are a multiple of a cache line apart: a worker's increments do not
 * pull another worker's counters out of its cache. */
#define STRIDE(type) ((sizeof(type) + 63) / 64 * 64)

/* A block in private memory (no region, or no room in it). */
struct priv {
    struct priv *next;
    _Alignas(64) unsigned char data[];
};

static struct priv *privs;
static struct metricshare_proc *procs; /* the process table: a slot per worker */

static unsigned
nworkers(void)
{
    return shm_host() != NULL ? shm_nworkers() : 1;
}

/* Block <kind>/<name> of a slot of <stride> bytes per worker; NULL: out of memory. */
static void *
block(const char *kind, const char *name, size_t stride)
{
    size_t size = stride * nworkers();
    struct shm *s = shm_host();
    void *p = s != NULL ? shm_named(s, kind, name, size, NULL, NULL) : NULL;
    if (p != NULL)
        return p;
    if (s != NULL)
        log_warnx("metrics: no room in the shared region for %s %s: only this worker's "
                  "counters of it are seen", kind, name);
    struct priv *v = calloc(1, sizeof(*v) + size);
    if (v == NULL)
        return NULL;
    v->next = privs;
    privs = v;
    return v->data;
}

/* This worker's slot of a block. */
static void *
mine(void *blk, size_t stride)
{
    return (char *)blk + stride * (shm_host() != NULL ? shm_worker() : 0);
}

/* Worker <k>'s slot of the block holding this worker's slot <own>. */
static const void *
slot_of(const void *own, size_t stride, unsigned k)
{
    unsigned me = shm_host() != NULL ? shm_worker() : 0;
    return (const char *)own - stride * me + stride * k;
}

struct metricshare_proc *
metricshare_start(uint64_t pid, uint64_t started)
{
    procs = block("metrics", "workers", STRIDE(struct metricshare_proc));
    if (procs == NULL)
        fatal("metrics: cannot allocate the process table");
    struct metricshare_proc *p = metricshare_self();
    p->sessions = 0;
    p->open_fds = p->resident_bytes = 0;
    p->log_base = p->log_lines_failed;
    p->started = started;
    p->starts++;
    p->pid = pid;
    return p;
}

struct metricshare_proc *
metricshare_self(void)
{
    return mine(procs, STRIDE(struct metricshare_proc));
}

const struct metricshare_proc *
metricshare_proc_of(unsigned k)
{
    if (procs == NULL || k >= nworkers())
        return NULL;
    const struct metricshare_proc *p = (const void *)((const char *)procs +
                                                       STRIDE(struct metricshare_proc) * k);
    return __atomic_load_n(&p->starts, __ATOMIC_RELAXED) != 0 ? p : NULL;
}

bool
metricshare_running(unsigned k)
{
    if (k == (shm_host() != NULL ? shm_worker() : 0))
        return true;
    const struct metricshare_proc *p = metricshare_proc_of(k);
    pid_t pid = p != NULL ? (pid_t)__atomic_load_n(&p->pid, __ATOMIC_RELAXED) : 0;
    /* EPERM: it runs, under another user. A zombie not reaped yet still counts. */
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* This worker's slot of block <kind>/<name>; NULL: out of memory. */
static void *
take(const char *kind, const char *name, size_t stride)
{
    void *blk = block(kind, name, stride);
    return blk != NULL ? mine(blk, stride) : NULL;
}

struct metrics_listener *
metricshare_listener(const char *name)
{
    struct metrics_listener *m = take("ml", name, STRIDE(struct metrics_listener));
    if (m == NULL)
        return NULL;
    m->name = name;
    m->abuse = NULL;
    m->active = 0;
    return m;
}

struct metrics_server *
metricshare_server(const char *backend, const char *name)
{
    char key[2 * 64];
    snprintf(key, sizeof(key), "%s/%s", backend, name);
    struct metrics_server *m = take("ms", key, STRIDE(struct metrics_server));
    if (m == NULL)
        return NULL;
    m->backend = backend;
    m->name = name;
    m->active = 0;
    m->up = false;
    return m;
}

struct metrics_backend *
metricshare_backend(const char *name)
{
    struct metrics_backend *m = take("mb", name, STRIDE(struct metrics_backend));
    if (m == NULL)
        return NULL;
    m->name = name;
    m->queued = 0;
    return m;
}

const struct metrics_listener *
metricshare_listener_of(const struct metrics_listener *own, unsigned k)
{
    return slot_of(own, STRIDE(struct metrics_listener), k);
}

const struct metrics_server *
metricshare_server_of(const struct metrics_server *own, unsigned k)
{
    return slot_of(own, STRIDE(struct metrics_server), k);
}

const struct metrics_backend *
metricshare_backend_of(const struct metrics_backend *own, unsigned k)
{
    return slot_of(own, STRIDE(struct metrics_backend), k);
}

struct metricshare_host *
metricshare_host(struct shm *s)
{
    static struct metricshare_host *host; /* a forked worker inherits it: the same block */
    if (host == NULL && s != NULL)
        host = shm_named(s, "metrics", "host", sizeof(*host), NULL, NULL);
    return host;
}

void
metricshare_free(void)
{
    if (procs != NULL)
        metricshare_self()->pid = 0; /* a clean end: no process runs as this index now */
    while (privs != NULL) {
        struct priv *v = privs;
        privs = v->next;
        free(v);
    }
    procs = NULL;
}
