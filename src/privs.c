/* privs: dropping root after binding. */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int
privs_drop(const struct conf_global *g, char *err, size_t cap)
{
    if (!g->user_set)
        return 0;
    if (geteuid() != 0) {
        if (geteuid() == g->uid && getegid() == g->gid)
            return 0;
        snprintf(err, cap, "user %s: not started as root, cannot change to uid %u",
                 g->user, (unsigned)g->uid);
        return -1;
    }
    /* Groups first: after setuid() they can no longer be changed. */
    if (g->group_set ? setgroups(1, &g->gid) == -1 : initgroups(g->user, g->gid) == -1) {
        snprintf(err, cap, "setgroups for %s: %s", g->user, strerror(errno));
        return -1;
    }
    if (setresgid(g->gid, g->gid, g->gid) == -1) {
        snprintf(err, cap, "setgid %u: %s", (unsigned)g->gid, strerror(errno));
        return -1;
    }
    if (setresuid(g->uid, g->uid, g->uid) == -1) {
        snprintf(err, cap, "setuid %u: %s", (unsigned)g->uid, strerror(errno));
        return -1;
    }
    uid_t r, e, s;
    gid_t rg, eg, sg;
    if (getresuid(&r, &e, &s) == -1 || getresgid(&rg, &eg, &sg) == -1 || r != g->uid ||
        e != g->uid || s != g->uid || rg != g->gid || eg != g->gid || sg != g->gid) {
        snprintf(err, cap, "user %s: ids did not change as asked", g->user);
        return -1;
    }
    /* The proof that root is gone for good (a uid 0 user keeps it, by choice). */
    if (g->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
        snprintf(err, cap, "user %s: root could be regained after dropping privileges", g->user);
        return -1;
    }
    log_begin(LOG_INFO, "privileges_dropped");
    log_str("user", g->user);
    log_u64("uid", g->uid);
    log_u64("gid", g->gid);
    log_end();
    return 0;
}

int
privs_check_root(const struct conf_global *g, char *err, size_t cap)
{
    if (geteuid() != 0 || g->user_set)
        return 0;
    snprintf(err, cap, "refusing to run as root: set 'user NAME' in the global block to drop "
                       "privileges after binding (or 'user root' to keep them)");
    return -1;
}
