/*
 * watch: reloads the configuration when its file changes (mailedge -w),
 * for files that a ConfigMap or a template renderer replaces. inotify on
 * the file's directory, so a rename into place and Kubernetes' swap of the
 * `..data` symlink are seen, not only writes to the file itself. Events
 * are debounced; the file is judged changed when what its path resolves
 * to (device, inode, size, modification time) is not what it was; then
 * the same reload as SIGHUP runs (an invalid file keeps the running
 * configuration).
 */
#ifndef MAILEDGE_WATCH_H
#define MAILEDGE_WATCH_H

struct worker;
struct watch;

/* Quiet time after the last event in the directory before the file is looked at. */
#define WATCH_DEBOUNCE_MS 300

/*
 * Starts watching <path> (kept by pointer) for <w>. Returns the watch, or
 * NULL with the reason logged (no inotify, directory unreadable).
 */
struct watch *watch_start(struct worker *w, const char *path);
void watch_stop(struct watch *wa);

#endif
