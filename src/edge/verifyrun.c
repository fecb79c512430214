/*
 * verifyrun: see verifyrun.h. The child is spawned with posix_spawn (no
 * copy of this process's memory, signal mask reset: the worker blocks the
 * signals its signalfd reads); it is reaped by pid with waitpid(WNOHANG)
 * once its pipe closes, so SIGCHLD stays out of the signalfd.
 */
#include "verifyrun.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "healthshare.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "worker.h"

#define VR_FIELDS 8          /* backend server address protocol family verdict evidence fix */
#define VR_LINE_MAX 2048     /* longer lines are cut */
#define VR_RESULTS_MAX 512   /* results kept for /status */
#define VR_REAP_RETRY_MS 20  /* the pipe closed before the child was a zombie */

static const char *const field_names[VR_FIELDS] = {
    "backend", "server", "address", "protocol", "family", "verdict", "evidence", "fix"};

struct vr_result {
    char *buf;                    /* the line, tabs replaced by NULs */
    const char *f[VR_FIELDS];
};

static struct {
    struct worker *w;
    struct io io;                 /* the child's stdout; fd -1: no run */
    struct timer timer;           /* the run's deadline, then reap retries */
    bool timers_reserved, ever;
    pid_t pid;                    /* 0: no child */
    uint64_t started, finished;   /* wall-clock seconds */
    char line[VR_LINE_MAX];
    size_t len;
    struct vr_result *res, *next; /* the last finished run's; the one in progress */
    size_t nres, nnext;
    char error[256];              /* the last run's failure, "" when none */
} vr = {.io = {.fd = -1}};

static void
results_free(struct vr_result *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].buf);
    free(v);
}

static void
take_line(void)
{
    vr.line[vr.len] = '\0';
    struct vr_result r = {.buf = strdup(vr.line)};
    size_t k = 0;
    if (r.buf == NULL)
        return;
    for (char *p = r.buf; k < VR_FIELDS; k++) {
        r.f[k] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL) {
            k++;
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    if (k < VR_FIELDS) {
        /* Not a result: the command's own error (a config that no longer loads...). */
        log_begin(LOG_WARN, "verify");
        log_str("error", vr.line);
        log_end();
        snprintf(vr.error, sizeof(vr.error), "%.200s", vr.line);
        free(r.buf);
        return;
    }
    bool agrees = strcmp(r.f[5], "agrees") == 0 || strcmp(r.f[5], "skipped") == 0;
    log_begin(agrees ? LOG_INFO : LOG_WARN, "verify");
    for (k = 0; k < VR_FIELDS; k++)
        if (r.f[k][0] != '\0' && strcmp(r.f[k], "-") != 0)
            log_str(field_names[k], r.f[k]);
    log_end();
    if (vr.nnext < VR_RESULTS_MAX) {
        struct vr_result *nv = realloc(vr.next, (vr.nnext + 1) * sizeof(*nv));
        if (nv != NULL) {
            vr.next = nv;
            vr.next[vr.nnext++] = r;
            return;
        }
    }
    free(r.buf);
}

/* Kills the child (when <kill_it>) and reaps it if it is gone; true when reaped. */
static bool
reap(bool kill_it)
{
    int status;
    if (kill_it)
        (void)kill(vr.pid, SIGKILL);
    pid_t p = waitpid(vr.pid, &status, kill_it ? 0 : WNOHANG);
    if (p == 0)
        return false;
    vr.pid = 0;
    if (p > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 2 && vr.error[0] == '\0')
        snprintf(vr.error, sizeof(vr.error), "verify exited with status 2");
    return true;
}

static void
close_pipe(void)
{
    if (vr.io.fd >= 0) {
        loop_del(vr.w->loop, &vr.io);
        close(vr.io.fd);
        vr.io.fd = -1;
    }
}

static void
finish(void)
{
    loop_timer_cancel(vr.w->loop, &vr.timer);
    results_free(vr.res, vr.nres);
    vr.res = vr.next, vr.nres = vr.nnext;
    vr.next = NULL, vr.nnext = 0;
    vr.finished = (uint64_t)time(NULL);
    log_begin(vr.error[0] != '\0' ? LOG_WARN : LOG_INFO, "verify_done");
    log_u64("results", vr.nres);
    if (vr.error[0] != '\0')
        log_str("error", vr.error);
    log_end();
}

/* Ends the run in progress at once (timeout, reload, exit). */
static void
abort_run(const char *why)
{
    close_pipe();
    if (vr.pid > 0)
        (void)reap(true);
    if (why != NULL) {
        snprintf(vr.error, sizeof(vr.error), "%.200s", why);
        finish();
    } else {
        loop_timer_cancel(vr.w->loop, &vr.timer);
        results_free(vr.next, vr.nnext);
        vr.next = NULL, vr.nnext = 0;
    }
}

static void
on_timer(struct timer *t)
{
    (void)t;
    if (vr.io.fd >= 0) {
        abort_run("timeout: the run was killed");
        return;
    }
    /* The pipe closed: reap the child, again shortly if it is not a zombie yet. */
    if (vr.pid > 0 && !reap(false))
        loop_timer_at(vr.w->loop, &vr.timer, loop_now(vr.w->loop) + VR_REAP_RETRY_MS);
    else
        finish();
}

static void
on_read(struct io *io, uint32_t events)
{
    char buf[4096];
    (void)events;
    for (;;) {
        ssize_t n = read(io->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                take_line();
                vr.len = 0;
            } else if (vr.len < sizeof(vr.line) - 1)
                vr.line[vr.len++] = buf[i];
        }
    }
    if (vr.len > 0)
        take_line();
    vr.len = 0;
    close_pipe();
    loop_timer_cancel(vr.w->loop, &vr.timer);
    on_timer(&vr.timer);
}

static int
spawn(struct worker *w)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    static char a0[] = "mailedge", a1[] = "verify", a2[] = "-f", a3[] = "tsv", a4[] = "-c";
    static char path[4096];
    snprintf(path, sizeof(path), "%s", w->conf_path);
    char *argv[] = {a0, a1, a2, a3, a4, path, NULL};
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc == 0) {
        (void)posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        (void)posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        (void)posix_spawn_file_actions_adddup2(&fa, p[1], 2);
        /* Not even a socket-activated listener (not close-on-exec) goes along. */
        (void)posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        (void)posix_spawnattr_init(&at);
        (void)posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        (void)posix_spawnattr_setsigmask(&at, &none);
        (void)posix_spawnattr_setsigdefault(&at, &all);
        rc = posix_spawn(&vr.pid, "/proc/self/exe", &fa, &at, argv, NULL);
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
    }
    close(p[1]);
    if (rc != 0) {
        vr.pid = 0;
        close(p[0]);
        errno = rc;
        return -1;
    }
    vr.io.fd = p[0];
    vr.io.cb = on_read;
    if (loop_add(w->loop, &vr.io, EPOLLIN) == -1) {
        int e = errno;
        close(vr.io.fd);
        vr.io.fd = -1;
        (void)reap(true);
        errno = e;
        return -1;
    }
    return 0;
}

void
verifyrun_configure(struct worker *w)
{
    if (!w->conf->global.verify_on_start || !healthshare_checks_here() || w->conf_path == NULL)
        return;
    if (!vr.timers_reserved) {
        if (loop_timer_reserve(w->loop, 1) == -1) {
            log_warnx("verify: out of memory");
            return;
        }
        timer_init(&vr.timer, on_timer);
        vr.timers_reserved = true;
    }
    vr.w = w;
    if (vr.io.fd >= 0 || vr.pid > 0) {
        log_begin(LOG_INFO, "verify_restart");
        log_str("msg", "a reload during a run: the run is killed and started again");
        log_end();
        abort_run(NULL);
    }
    vr.error[0] = '\0';
    vr.len = 0;
    vr.ever = true;
    if (spawn(w) == -1) {
        log_warn("verify: cannot start the verify command");
        snprintf(vr.error, sizeof(vr.error), "cannot start: %s", strerror(errno));
        finish();
        return;
    }
    vr.started = (uint64_t)time(NULL);
    log_begin(LOG_INFO, "verify_start");
    log_u64("pid", (uint64_t)vr.pid);
    log_fmt("timeout_ms", "%llu", (unsigned long long)w->conf->global.verify_timeout_ms);
    log_end();
    loop_timer_at(w->loop, &vr.timer, loop_now(w->loop) + w->conf->global.verify_timeout_ms);
}

void
verifyrun_status(struct strbuf *out)
{
    if (!vr.ever)
        return;
    bool running = vr.io.fd >= 0 || vr.pid > 0;
    strbuf_addf(out, ",\"verify\":{\"started\":%llu,\"finished\":", (unsigned long long)vr.started);
    if (vr.finished != 0)
        strbuf_addf(out, "%llu", (unsigned long long)vr.finished);
    else
        strbuf_add(out, "null");
    strbuf_addf(out, ",\"running\":%s,\"error\":", running ? "true" : "false");
    if (vr.error[0] != '\0' && !running)
        strbuf_json_str(out, vr.error);
    else
        strbuf_add(out, "null");
    strbuf_add(out, ",\"results\":[");
    for (size_t i = 0; i < vr.nres; i++) {
        strbuf_add(out, i ? ",{" : "{");
        for (size_t k = 0; k < VR_FIELDS; k++) {
            strbuf_addf(out, "%s\"%s\":", k ? "," : "", field_names[k]);
            strbuf_json_str(out, vr.res[i].f[k]);
        }
        strbuf_add(out, "}");
    }
    strbuf_add(out, "]}");
}

void
verifyrun_free(struct worker *w)
{
    if (vr.w == w && (vr.io.fd >= 0 || vr.pid > 0))
        abort_run(NULL);
    if (vr.timers_reserved && vr.w == w) {
        loop_timer_cancel(w->loop, &vr.timer);
        loop_timer_release(w->loop, 1);
        vr.timers_reserved = false;
    }
    results_free(vr.res, vr.nres);
    vr.res = NULL, vr.nres = 0;
}
