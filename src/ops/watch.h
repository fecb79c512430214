/*
 * watch: reloads the configuration when its file changes (mailedge -w),
 * for files that a ConfigMap or a template renderer replaces. inotify on
 * the file's directory, so a rename into place and Kubernetes' swap of the
 * `..data` symlink are seen, not only writes to the file itself. Events
 * are debounced; the file is judged changed when what its path resolves
 * to (device, inode, size, modification time) is not what it was; then
 * the caller's callback runs (main's: the same reload as SIGHUP, so an
 * invalid file keeps the running configuration).
 */
#ifndef MAILEDGE_WATCH_H
#define MAILEDGE_WATCH_H

struct loop;
struct watch;

/* Quiet time after the last event in the directory before the file is looked at. */
#define WATCH_DEBOUNCE_MS 300

/*
 * Starts watching <path> (kept by pointer) in <loop>; <changed>(<arg>)
 * runs, after an event=config_changed line, each time the file changed.
 * Returns the watch, or NULL with the reason logged (no inotify, directory
 * unreadable).
 */
struct watch *watch_start(struct loop *loop, const char *path, void (*changed)(void *arg),
                          void *arg);
void watch_stop(struct watch *wa);

#endif
