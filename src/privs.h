/*
 * privs: running as the configured user after binding. mailedge binds its
 * listeners (privileged ports among them) and the admin endpoint as root,
 * then becomes `user` (and `group`) for good: supplementary groups, gid,
 * uid, in that order, and checks that root cannot be regained.
 */
#ifndef MAILEDGE_PRIVS_H
#define MAILEDGE_PRIVS_H

#include <stddef.h>

#include "conf.h"

/*
 * Drops to g->user / g->gid when g->user_set. Returns 0, or -1 with what
 * failed in <err> (the process must not go on: it may still be root).
 */
int privs_drop(const struct conf_global *g, char *err, size_t cap);

/*
 * The one place that decides about running as root without `user`:
 * today a warning in the log.
 */
void privs_check_root(const struct conf_global *g);

#endif
