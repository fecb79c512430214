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
 * The one place that decides about running as root: started as root
 * without `user`, mailedge refuses to go on (a forgotten `user` must not
 * leave a public-facing proxy running as root). `user root` is the
 * explicit way to keep root. Returns 0, or -1 with the reason in <err>.
 */
int privs_check_root(const struct conf_global *g, char *err, size_t cap);

#endif
