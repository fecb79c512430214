/*
 * log: builds each line in a static buffer and writes it with one write(2)
 * so lines from a future multi-worker process never interleave mid-line.
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

#define LINE_MAX_LEN 4096

static enum log_format log_format_cur = LOG_FORMAT_LOGFMT;
static enum log_level log_min = LOG_INFO;
static int log_fd = STDERR_FILENO;
static char log_path[4096];

static char line[LINE_MAX_LEN];
static size_t line_len;
static bool line_active;

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
    snprintf(ts + ts_len, sizeof(ts) - ts_len, ".%03uZ", (unsigned)(tv.tv_usec / 1000) % 1000u);
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
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)val);
    append_key(key);
    append_raw(num, (size_t)n);
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

static void
write_line(int fd)
{
    ssize_t off = 0;
    while ((size_t)off < line_len) {
        ssize_t n = write(fd, line + off, line_len - (size_t)off);
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            lines_failed++; /* nowhere left to report it but the metric */
            break;
        }
        off += n;
    }
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
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(LOG_ERROR, "fatal", NULL, fmt, ap);
    va_end(ap);
    exit(1);
}
