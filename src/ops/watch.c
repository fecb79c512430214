/*
 * watch: reload when the configuration file changes (see watch.h).
 */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "reload.h"
#include "supervise.h"
#include "worker.h"

struct file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct watch {
    struct io io;
    struct timer debounce;
    struct worker *w;
    const char *path;
    struct file_id last;
};

static struct file_id
file_id(const char *path)
{
    struct file_id id = {0};
    struct stat st;
    if (stat(path, &st) == 0) /* through the symlinks, to what a reload reads */
        id = (struct file_id){true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return id;
}

static bool
same(const struct file_id *a, const struct file_id *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
           a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void
on_quiet(struct timer *t)
{
    struct watch *wa = (struct watch *)(void *)((char *)t - offsetof(struct watch, debounce));
    struct file_id now = file_id(wa->path);
    /* Gone (between an unlink and the new file): wait for the next event. */
    if (!now.exists || same(&now, &wa->last))
        return;
    wa->last = now;
    log_begin(LOG_INFO, "config_changed");
    log_str("path", wa->path);
    log_end();
    if (wa->w->draining)
        log_warnx("configuration changed while draining: not reloading");
    else if (supervise_reload_all() == -1) /* several workers: all, as a SIGHUP */
        reload_request(wa->w);
}

static void
on_events(struct io *io, uint32_t ev)
{
    (void)ev;
    struct watch *wa = (struct watch *)(void *)io;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    while (read(io->fd, buf, sizeof(buf)) > 0)
        any = true;
    if (any)
        loop_timer_at(wa->w->loop, &wa->debounce, loop_now(wa->w->loop) + WATCH_DEBOUNCE_MS);
}

struct watch *
watch_start(struct worker *w, const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else
        return NULL;

    struct watch *wa = calloc(1, sizeof(*wa));
    if (wa == NULL || loop_timer_reserve(w->loop, 1) == -1) {
        free(wa);
        return NULL;
    }
    wa->w = w;
    wa->path = path;
    wa->last = file_id(path);
    timer_init(&wa->debounce, on_quiet);
    wa->io.cb = on_events;
    wa->io.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (wa->io.fd == -1 ||
        inotify_add_watch(wa->io.fd, dir,
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                              IN_ATTRIB | IN_ONLYDIR) == -1 ||
        loop_add(w->loop, &wa->io, EPOLLIN) == -1) {
        int err = errno;
        log_begin(LOG_ERROR, "config_watch");
        log_str("path", dir);
        log_str("error", strerror(err));
        log_end();
        watch_stop(wa);
        return NULL;
    }
    log_begin(LOG_INFO, "config_watch");
    log_str("path", path);
    log_str("dir", dir);
    log_end();
    return wa;
}

void
watch_stop(struct watch *wa)
{
    if (wa == NULL)
        return;
    loop_timer_cancel(wa->w->loop, &wa->debounce);
    loop_timer_release(wa->w->loop, 1);
    if (wa->io.fd >= 0) {
        loop_del(wa->w->loop, &wa->io);
        close(wa->io.fd);
    }
    free(wa);
}
