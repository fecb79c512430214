/* procshare: the process figures of every worker (procshare.h). */
#include "procshare.h"

#include <stdbool.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "metricshare.h"
#include "procstat.h"
#include "shm.h"

static struct {
    struct loop *loop; /* NULL: not started */
    struct timer timer;
} pub;

/* Reads this process's figures into <p> and its slot. 0, or -1. */
static int
publish(struct metrics_process *p)
{
    if (procstat_read(p) == -1)
        return -1;
    struct metricshare_proc *me = metricshare_self();
    __atomic_store_n(&me->log_lines_failed, me->log_base + log_lines_failed(), __ATOMIC_RELAXED);
    __atomic_store_n(&me->open_fds, p->open_fds, __ATOMIC_RELAXED);
    __atomic_store_n(&me->resident_bytes, p->resident_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&me->max_fds, p->max_fds, __ATOMIC_RELAXED);
    return 0;
}

static void
on_publish(struct timer *t)
{
    struct metrics_process p;
    (void)publish(&p);
    loop_timer_at(pub.loop, t, loop_now(pub.loop) + PROCSHARE_PUBLISH_MS);
}

int
procshare_start(struct loop *loop)
{
    /* Worker 0 reads its own at each request; alone, it has nothing to publish. */
    if (shm_worker() == 0)
        return 0;
    if (loop_timer_reserve(loop, 1) == -1)
        return -1;
    pub.loop = loop;
    timer_init(&pub.timer, on_publish);
    on_publish(&pub.timer);
    return 0;
}

void
procshare_stop(struct loop *loop)
{
    if (pub.loop != loop)
        return;
    loop_timer_cancel(loop, &pub.timer);
    loop_timer_release(loop, 1);
    pub.loop = NULL;
}

void
procshare_fill(struct metrics *m)
{
    struct metrics_process own;
    unsigned me = shm_worker();

    m->process_info = publish(&own) == 0;
    if (me < m->nworkers) {
        m->workers[me].open_fds = own.open_fds;
        m->workers[me].resident_bytes = own.resident_bytes;
    }
    if (!m->process_info || m->nworkers <= 1) {
        m->process = own;
        return;
    }
    /* Several: the service as one process. The supervisor started it, and
     * its memory counts; its handful of descriptors serve no client and
     * cannot be read by a worker: open and max are the running workers'. */
    struct metrics_process sup = {0};
    m->process = (struct metrics_process){0};
    if (procstat_read_pid((int)getppid(), &sup) == 0) {
        m->process.start_time = sup.start_time;
        m->process.resident_bytes = sup.resident_bytes;
    } else {
        m->process.start_time = own.start_time;
    }
    for (size_t k = 0; k < m->nworkers; k++) {
        const struct metricshare_proc *p = metricshare_proc_of((unsigned)k);
        if (!m->workers[k].running || p == NULL)
            continue;
        m->process.resident_bytes += m->workers[k].resident_bytes;
        m->process.open_fds += m->workers[k].open_fds;
        m->process.max_fds +=
            k == me ? own.max_fds : __atomic_load_n(&p->max_fds, __ATOMIC_RELAXED);
    }
}
