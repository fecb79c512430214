/*
 * log: structured log lines, logfmt (key=value) or JSON, to stderr or a
 * file reopened on SIGUSR1. One line is built with log_begin(), a few
 * log_*() fields and log_end(); the helpers at the bottom cover free-text
 * messages. Single-threaded: the line is built in a static buffer.
 */
#ifndef MAILEDGE_LOG_H
#define MAILEDGE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/types.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

void log_setup(enum log_format fmt, bool debug);

/* Sends lines to <path> (appending), or to stderr for NULL or "". -1 and errno on failure. */
int log_open(const char *path);

/* Reopens the current file (after rotation). -1 and errno on failure. */
int log_reopen(void);

/* The log file's path; "" when logging to stderr. */
const char *log_file(void);

/*
 * Started as root, before dropping to <uid>:<gid>: the log file becomes
 * theirs, so that SIGUSR1 can reopen it as that user. 0 when logging to
 * stderr or already theirs; -1 and errno on failure.
 */
int log_chown(uid_t uid, gid_t gid);

bool log_enabled(enum log_level lvl);

/*
 * With several worker processes (workers N): every line of this process
 * says worker=<id> after its event. -1 (the default): no such field.
 */
void log_set_worker(int id);

/* Starts a line with ts, level and event. Fields below append to it. */
void log_begin(enum log_level lvl, const char *event);
void log_str(const char *key, const char *val);
void log_u64(const char *key, uint64_t val);
/* <val> as <width> lower-case hex digits (at most 16). */
void log_hex(const char *key, uint64_t val, unsigned width);
void log_fmt(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_end(void);
/* Like log_end(), and to stderr as well when logging to a file: for a line
 * about the log file itself, which may no longer be where anyone looks. */
void log_end_tee(void);

/*
 * Batching, for the event loop: between log_batch_begin() and
 * log_batch_end() lines to the log file are gathered (whole lines only) and
 * written together by log_batch_end(), or earlier when the batch is full.
 * log_flush() writes what is gathered now; call it before fork() or _exit().
 * fatal() and log_open() flush on their own.
 */
void log_batch_begin(void);
void log_batch_end(void);
void log_flush(void);

/* Lines that could not be written, or only in part, since the start. */
uint64_t log_lines_failed(void);

/* event=signal: a signal the process acts on, by its short name (TERM, HUP). */
void log_signal(int signo);

/* One-line messages with msg="...": log_warn appends strerror(errno) and keeps errno. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
