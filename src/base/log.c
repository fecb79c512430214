/*
 * log: builds each line in a static buffer and writes whole lines with one
 * write(2), so lines from several processes never interleave mid-line. Inside
 * a pass of the event loop (log_batch_begin .. log_batch_end) whole lines are
 * gathered and written together at the end of the pass, or when the batch is
 * full: one write per pass instead of one per session at load.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define LINE_MAX_LEN 4096
#define BATCH_MAX (4 * LINE_MAX_LEN)

static enum log_format log_format_cur = LOG_FORMAT_LOGFMT;
static enum log_level log_min = LOG_INFO;
static int log_fd = STDERR_FILENO;
static char log_path[4096];

static char line[LINE_MAX_LEN];
static size_t line_len;
static bool line_active;

static char batch[BATCH_MAX];
static size_t batch_len;
static bool batching;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_setup(enum log_format fmt, bool debug)
{
    log_format_cur = fmt;
    log_min = debug ? LOG_DEBUG : LOG_INFO;
}

int
log_open(const char *path)
{
    log_flush();
    if (path == NULL || *path == '\0') {
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = STDERR_FILENO;
        log_path[0] = '\0';
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1)
        return -1;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    return 0;
}

int
log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    char path[sizeof(log_path)];
    memcpy(path, log_path, sizeof(path));
    return log_open(path);
}

const char *
log_file(void)
{
    return log_path;
}

int
log_chown(uid_t uid, gid_t gid)
{
    struct stat st;
    if (log_fd == STDERR_FILENO || log_path[0] == '\0')
        return 0;
    if (fstat(log_fd, &st) == -1)
        return -1;
    if (st.st_uid == uid && st.st_gid == gid)
        return 0;
    return fchown(log_fd, uid, gid);
}

bool
log_enabled(enum log_level lvl)
{
    return lvl >= log_min;
}

static void
append_raw(const char *s, size_t n)
{
    /* Keep room for the closing brace and newline. */
    if (line_len + n > LINE_MAX_LEN - 3)
        n = LINE_MAX_LEN - 3 > line_len ? LINE_MAX_LEN - 3 - line_len : 0;
    memcpy(line + line_len, s, n);
    line_len += n;
}

static void
append_c(char c)
{
    append_raw(&c, 1);
}

/* logfmt quotes a value holding spaces, quotes, '=' or controls; JSON always quotes. */
static void
append_value(const char *v)
{
    bool json = log_format_cur == LOG_FORMAT_JSON;
    bool quote = json || *v == '\0';
    for (const char *p = v; !quote && *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20)
            quote = true;
    if (!quote) {
        append_raw(v, strlen(v));
        return;
    }
    append_c('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            append_c('\\');
            append_c((char)*p);
        } else if (*p == '\n') {
            append_raw("\\n", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[8];
            int n = snprintf(esc, sizeof(esc), "\\u%04x", *p);
            append_raw(esc, (size_t)n);
        } else {
            append_c((char)*p);
        }
    }
    append_c('"');
}

static void
append_key(const char *key)
{
    if (log_format_cur == LOG_FORMAT_JSON) {
        append_raw(line_len > 1 ? ",\"" : "\"", line_len > 1 ? 2 : 1);
        append_raw(key, strlen(key));
        append_raw("\":", 2);
    } else {
        if (line_len > 0)
            append_c(' ');
        append_raw(key, strlen(key));
        append_c('=');
    }
}

static int worker_id = -1;

void
log_set_worker(int id)
{
    worker_id = id;
}

void
log_begin(enum log_level lvl, const char *event)
{
    line_active = log_enabled(lvl);
    if (!line_active)
        return;
    line_len = 0;
    if (log_format_cur == LOG_FORMAT_JSON)
        append_c('{');
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /* The date and time change once a second; lines come far more often
     * (one per session), so only the milliseconds are formatted each time. */
    static time_t ts_sec = (time_t)-1;
    static char ts[40];
    static size_t ts_len;
    if (tv.tv_sec != ts_sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        ts_len = strftime(ts, sizeof(ts) - 8, "%Y-%m-%dT%H:%M:%S", &tm);
        ts_sec = tv.tv_sec;
    }
    unsigned ms = (unsigned)(tv.tv_usec / 1000) % 1000u;
    ts[ts_len] = '.';
    ts[ts_len + 1] = (char)('0' + ms / 100);
    ts[ts_len + 2] = (char)('0' + ms / 10 % 10);
    ts[ts_len + 3] = (char)('0' + ms % 10);
    ts[ts_len + 4] = 'Z';
    ts[ts_len + 5] = '\0';
    log_str("ts", ts);
    log_str("level", level_names[lvl]);
    log_str("event", event);
    if (worker_id >= 0)
        log_u64("worker", (uint64_t)worker_id);
}

void
log_str(const char *key, const char *val)
{
    if (!line_active)
        return;
    append_key(key);
    append_value(val ? val : "-");
}

void
log_u64(const char *key, uint64_t val)
{
    if (!line_active)
        return;
    char num[24];
    size_t n = util_fmt_u64(num, val);
    append_key(key);
    append_raw(num, n);
}

void
log_hex(const char *key, uint64_t val, unsigned width)
{
    if (!line_active)
        return;
    char num[17];
    util_fmt_hex(num, val, width > 16 ? 16 : width);
    log_str(key, num);
}

void
log_fmt(const char *key, const char *fmt, ...)
{
    if (!line_active)
        return;
    char val[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    log_str(key, val);
}

static uint64_t lines_failed;

uint64_t
log_lines_failed(void)
{
    return lines_failed;
}

/* Writes <len> bytes of whole lines; counts the lines not fully written. */
static void
write_all(int fd, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            /* Nowhere left to report it but the metric. */
            for (size_t i = off; i < len; i++)
                lines_failed += buf[i] == '\n';
            break;
        }
        off += (size_t)n;
    }
}

void
log_flush(void)
{
    if (batch_len > 0)
        write_all(log_fd, batch, batch_len);
    batch_len = 0;
}

void
log_batch_begin(void)
{
    batching = true;
}

void
log_batch_end(void)
{
    log_flush();
    batching = false;
}

static void
write_line(int fd)
{
    if (!batching || fd != log_fd) {
        write_all(fd, line, line_len);
        return;
    }
    if (batch_len + line_len > sizeof(batch))
        log_flush();
    memcpy(batch + batch_len, line, line_len);
    batch_len += line_len;
}

static void
end_line(bool tee)
{
    if (!line_active)
        return;
    line_active = false;
    if (log_format_cur == LOG_FORMAT_JSON)
        line[line_len++] = '}';
    line[line_len++] = '\n';
    write_line(log_fd);
    if (tee && log_fd != STDERR_FILENO)
        write_line(STDERR_FILENO);
}

void
log_end(void)
{
    end_line(false);
}

void
log_end_tee(void)
{
    end_line(true);
}

static void
vmsg(enum log_level lvl, const char *event, const char *suffix, const char *fmt, va_list ap)
{
    if (!log_enabled(lvl))
        return;
    char msg[1024];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (suffix && n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", suffix);
    log_begin(lvl, event);
    log_str("msg", msg);
    log_end();
}

void
log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_INFO, "info", NULL, fmt, ap);
    va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_DEBUG, "debug", NULL, fmt, ap);
    va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_WARN, "warning", strerror(saved), fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_signal(int signo)
{
    const char *name = sigabbrev_np(signo);
    log_begin(LOG_INFO, "signal");
    log_str("signal", name != NULL ? name : "?");
    log_end();
}

void
log_warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_WARN, "warning", NULL, fmt, ap);
    va_end(ap);
}

void
fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_ERROR, "fatal", strerror(saved), fmt, ap);
    va_end(ap);
    log_flush();
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_ERROR, "fatal", NULL, fmt, ap);
    va_end(ap);
    log_flush();
    exit(1);
}
