/* privs: dropping root after binding. */
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/*
 * A rotation that renames the log file leaves SIGUSR1 to create the new
 * one, as the user now: that needs a directory the user can write, or a
 * rotation that creates the file for the user (logrotate's create). Said
 * once at start, while someone is looking.
 */
static void
warn_log_dir(const struct conf_global *g)
{
    char dir[PATH_MAX];
    const char *path = log_file();
    const char *slash = strrchr(path, '/');

    if (g->uid == 0 || slash == NULL || (size_t)(slash - path) >= sizeof(dir))
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (dir[0] == '\0')
        snprintf(dir, sizeof(dir), "/");
    if (access(dir, W_OK | X_OK) == 0)
        return;
    log_begin(LOG_WARN, "log_dir");
    log_str("path", dir);
    log_str("user", g->user);
    log_str("error", "not writable by the user: after a rotation that renames the log file, "
                     "SIGUSR1 can reopen it only if the rotation created the new file for the "
                     "user (docs/operations.md, Log rotation)");
    log_end();
}

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
    /* The log file was opened as root: made the user's, SIGUSR1 can reopen it. */
    if (log_chown(g->uid, g->gid) == -1)
        log_warn("log file %s: cannot change its owner to %s", log_file(), g->user);
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
    warn_log_dir(g);
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
