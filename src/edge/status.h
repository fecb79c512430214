/*
 * status: what the admin endpoint's /readyz and /status say about a worker:
 * readiness (draining, listeners bound, a server up in every backend) and
 * the status document (listeners, backends, servers, their health and
 * counters) in JSON. Read-only; main hands these to the admin endpoint
 * (src/ops/admin_view.h), which never reads struct worker itself.
 */
#ifndef MAILEDGE_STATUS_H
#define MAILEDGE_STATUS_H

#include <stdbool.h>

#include "metrics.h"

struct worker;

/* Appends /readyz's verdict for <w>: true and "ok", or false and why not. */
bool status_ready(const struct worker *w, struct strbuf *why);

/* Appends /status's JSON document for <w>. */
void status_json(const struct worker *w, struct strbuf *out);

#endif
