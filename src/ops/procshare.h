/*
 * procshare: the process figures of every worker for /metrics. A worker
 * cannot read another's descriptors (a worker is not dumpable once it has
 * dropped its privileges), so each publishes its own open descriptors and
 * resident memory (src/ops/procstat.c) in its slot of the process table
 * (src/edge/metricshare.h) about once a second; worker 0 reads its own at
 * each request, adds the others' and the supervisor's memory
 * (docs/operations.md says what each process_* family is then).
 */
#ifndef MAILEDGE_PROCSHARE_H
#define MAILEDGE_PROCSHARE_H

#include "metrics.h"

struct loop;

#define PROCSHARE_PUBLISH_MS 1000

/*
 * A worker other than 0: publishes its figures now and about every
 * PROCSHARE_PUBLISH_MS (worker 0 reads its own when asked). 0, or -1.
 */
int procshare_start(struct loop *loop);
void procshare_stop(struct loop *loop);

/*
 * Fills m->process (process_info when known) and the descriptors and
 * memory of m->workers[] (status_metrics() filled the rest): with one
 * worker, this process; with several, the whole service.
 */
void procshare_fill(struct metrics *m);

#endif
