/*
 * status: what the admin endpoint's /readyz and /status say about a worker:
 * readiness (draining, listeners bound, a server up in every backend) and
 * the status document (listeners, backends, servers, their health and
 * counters) in JSON; and what /metrics renders: the counters of every
 * worker, summed. Read-only; main hands these to the admin endpoint
 * (src/ops/admin_view.h), which never reads struct worker itself.
 */
#ifndef MAILEDGE_STATUS_H
#define MAILEDGE_STATUS_H

#include <stdbool.h>

#include "metrics.h"

struct worker;

/* Appends /readyz's verdict for <w>: true and "ok", or false and why not. */
bool status_ready(const struct worker *w, struct strbuf *why);

/* Appends /status's JSON document for <w>: the sums over every worker, and each worker's part. */
void status_json(const struct worker *w, struct strbuf *out);

/*
 * Fills <m> for /metrics: <w>'s figures with the counters of every worker
 * summed (src/edge/metricshare.h); free it with status_metrics_free().
 * Returns 0, or -1 when out of memory.
 */
int status_metrics(const struct worker *w, struct metrics *m);
void status_metrics_free(struct metrics *m);

#endif
