/* supervise: N worker processes and the one that starts, reloads and stops them. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "metricshare.h"
#include "notify.h"
#include "util.h"

/* A worker that dies within this long of its start is restarted after a
 * back-off that doubles up to the maximum, so one that cannot run does not
 * spin the host. */
#define QUICK_DEATH_MS 1000u
#define BACKOFF_MAX_MS 30000u

struct kid {
    pid_t pid;                /* 0: not running */
    int ready_fd;             /* read end of its readiness pipe (a byte per READY=1); -1 */
    bool ready;               /* said READY=1 since it started */
    bool reload_pending;      /* signalled to reload; its READY=1 not read yet */
    uint64_t started_ms;
    uint64_t restart_at_ms;   /* 0: no restart pending */
    uint64_t backoff_ms;
    bool failed;              /* exited with a status other than 0, or by a signal */
};

struct sup {
    const char *path;
    struct conf *conf;
    supervise_worker_fn run;
    void *arg;
    struct kid *kids;
    unsigned n;
    struct pollfd *pfd;       /* the signalfd, then the readiness pipes */
    unsigned *who;            /* pfd[j] is the pipe of worker who[j] */
    int sfd;                  /* signalfd */
    struct metricshare_host *host; /* refused reloads, for /metrics; NULL: not counted */
    bool serving;             /* every worker said READY once */
    bool reloading;           /* told the service manager RELOADING=1; READY=1 once all reloaded */
    bool draining;
    bool start_failed;
    uint64_t watchdog_ms, watchdog_at;
};

/* In a worker: the write end of its readiness pipe: a byte for each READY=1
 * (the start, then the end of each reload). */
static int ready_wfd = -1;
static bool restarted; /* supervise_restarted() */
static pid_t supervisor;

bool
supervise_restarted(void)
{
    return restarted;
}

bool
supervise_orphaned(void)
{
    return getppid() != supervisor;
}

int
supervise_reload_all(void)
{
    if (supervisor == 0)
        return -1;
    return kill(supervisor, SIGHUP);
}

void
supervise_notify(const char *state)
{
    if (ready_wfd >= 0 && strncmp(state, "READY=1", 7) == 0) {
        ssize_t r = write(ready_wfd, "R", 1);
        (void)r; /* the supervisor sees EOF when we die; nothing else to do */
    }
}

/* In the child, before the worker runs: nothing of the supervisor stays. */
static void
become_worker(struct sup *s, unsigned i, int wfd, pid_t parent)
{
    struct conf *conf = s->conf;
    for (unsigned k = 0; k < s->n; k++) {
        if (s->kids[k].ready_fd >= 0)
            close(s->kids[k].ready_fd);
    }
    close(s->sfd);
    free(s->kids);
    free(s->pfd);
    free(s->who);
    ready_wfd = wfd;
    restarted = s->serving;
    supervisor = parent;
    log_set_worker((int)i);
    /* The supervisor gone (even by SIGKILL), the worker drains. */
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        (void)raise(SIGTERM);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    (void)sigprocmask(SIG_UNBLOCK, &chld, NULL);
    /* Only the supervisor is the service manager's main process. */
    (void)unsetenv("NOTIFY_SOCKET");
    (void)unsetenv("WATCHDOG_USEC");
    (void)unsetenv("WATCHDOG_PID");
    exit(s->run(i, conf, s->arg));
}

static int
spawn(struct sup *s, unsigned i)
{
    struct kid *k = &s->kids[i];
    int p[2];
    if (pipe2(p, O_CLOEXEC) == -1) {
        log_warn("worker %u: pipe", i);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == -1) {
        log_warn("worker %u: fork", i);
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        become_worker(s, i, p[1], parent);
    }
    close(p[1]);
    k->pid = pid;
    k->ready_fd = p[0];
    k->ready = false;
    k->started_ms = util_monotonic_ms();
    k->restart_at_ms = 0;
    return 0;
}

/* A worker runs, or one is to be restarted. */
static bool
anyone(const struct sup *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (s->kids[i].pid > 0 || (!s->draining && s->kids[i].restart_at_ms != 0))
            return true;
    }
    return false;
}

static void
signal_all(struct sup *s, int sig)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (s->kids[i].pid > 0)
            (void)kill(s->kids[i].pid, sig);
    }
}

/* In a drain, worker 0 keeps the admin endpoint up until the others are gone: tell it. */
static void
others_gone(const struct sup *s)
{
    for (unsigned j = 1; j < s->n; j++) {
        if (s->kids[j].pid > 0)
            return;
    }
    if (s->kids[0].pid > 0)
        (void)kill(s->kids[0].pid, SIGUSR2);
}

static void
drain(struct sup *s)
{
    if (s->draining) {
        /* A second TERM: the workers cut what is left. */
        signal_all(s, SIGTERM);
        return;
    }
    s->draining = true;
    notify_send("STOPPING=1");
    for (unsigned i = 0; i < s->n; i++)
        s->kids[i].restart_at_ms = 0;
    signal_all(s, SIGTERM);
    others_gone(s);
}

/* The end of a reload: READY=1 to the service manager once no running worker is still at it. */
static void
reload_done(struct sup *s)
{
    if (!s->reloading)
        return;
    for (unsigned j = 0; j < s->n; j++) {
        if (s->kids[j].pid > 0 && s->kids[j].reload_pending)
            return;
    }
    s->reloading = false;
    notify_send("READY=1\nSTATUS=accepting connections");
}

static void
on_ready(struct sup *s, unsigned i)
{
    struct kid *k = &s->kids[i];
    char c;
    ssize_t r = read(k->ready_fd, &c, 1);
    if (r == -1 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r != 1) {
        /* EOF: it died; its exit says the rest */
        close(k->ready_fd);
        k->ready_fd = -1;
        return;
    }
    k->ready = true;
    k->reload_pending = false; /* a READY=1 ends its reload, or it started on the new file */
    if (s->serving) {
        reload_done(s);
        return;
    }
    for (unsigned j = 0; j < s->n; j++) {
        if (s->kids[j].pid == 0 || !s->kids[j].ready)
            return;
    }
    s->serving = true;
    log_begin(LOG_INFO, "ready");
    log_u64("workers", s->n);
    log_end();
    notify_send("READY=1\nSTATUS=accepting connections");
}

static void
on_exit_of(struct sup *s, pid_t pid, int status)
{
    unsigned i = 0;
    while (i < s->n && s->kids[i].pid != pid)
        i++;
    if (i == s->n)
        return;
    struct kid *k = &s->kids[i];
    k->pid = 0;
    if (k->ready_fd >= 0) {
        close(k->ready_fd);
        k->ready_fd = -1;
    }
    k->reload_pending = false;
    reload_done(s);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    k->failed = !clean;
    log_begin(s->draining && clean ? LOG_INFO : LOG_ERROR, "worker_exit");
    log_u64("worker", i);
    log_u64("pid", (uint64_t)pid);
    if (WIFSIGNALED(status)) {
        const char *sig = sigabbrev_np(WTERMSIG(status));
        if (sig != NULL)
            log_str("signal", sig);
        else
            log_u64("signal", (uint64_t)WTERMSIG(status));
    } else {
        log_u64("status", (uint64_t)WEXITSTATUS(status));
    }
    log_end();
    if (s->draining) {
        others_gone(s);
        return;
    }
    if (!s->serving) {
        /* One worker could not start (a bind failed...): none runs. */
        log_begin(LOG_ERROR, "start_failed");
        log_u64("worker", i);
        log_end();
        s->start_failed = true;
        drain(s);
        return;
    }
    uint64_t now = util_monotonic_ms();
    if (now - k->started_ms < QUICK_DEATH_MS)
        k->backoff_ms = k->backoff_ms == 0 ? QUICK_DEATH_MS
                        : k->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                              : k->backoff_ms * 2;
    else
        k->backoff_ms = 0;
    k->restart_at_ms = now + k->backoff_ms;
    if (k->restart_at_ms == 0)
        k->restart_at_ms = 1;
}

static void
reap(struct sup *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        on_exit_of(s, pid, status);
}

static void
restart_due(struct sup *s)
{
    uint64_t now = util_monotonic_ms();
    for (unsigned i = 0; i < s->n; i++) {
        struct kid *k = &s->kids[i];
        if (k->pid != 0 || k->restart_at_ms == 0 || k->restart_at_ms > now)
            continue;
        if (spawn(s, i) == -1) {
            k->restart_at_ms = now + BACKOFF_MAX_MS;
            continue;
        }
        log_begin(LOG_WARN, "worker_restart");
        log_u64("worker", i);
        log_u64("pid", (uint64_t)k->pid);
        log_u64("backoff_ms", k->backoff_ms);
        log_end();
    }
}

/* SIGHUP: the new file is checked here first; an invalid one reaches no worker. */
static void
reload(struct sup *s)
{
    struct conf *conf = NULL;
    struct diag_list diags = {0};
    char why[512];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(why, sizeof(why), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    notify_send(why);
    if (conf_load(s->path, &conf, &diags) == -1) {
        for (size_t i = 0; i < diags.n; i++) {
            conf_diag_text(&diags.v[i], why, sizeof(why));
            log_begin(LOG_ERROR, "config_error");
            log_str("error", why);
            log_end();
        }
        log_begin(LOG_ERROR, "reload");
        log_str("result", "failure");
        log_str("config", s->path);
        log_u64("errors", diags.n);
        log_str("error", "invalid configuration");
        log_str("running", "previous configuration");
        log_str("workers", "not signalled");
        if (s->host != NULL)
            log_u64("generation", __atomic_load_n(&s->host->generation, __ATOMIC_RELAXED));
        log_end();
        if (s->host != NULL) {
            /* The one writer of these: worker 0 adds them to its own when it renders. */
            __atomic_store_n(&s->host->reloads_refused, s->host->reloads_refused + 1,
                             __ATOMIC_RELAXED);
            __atomic_store_n(&s->host->refused_last, 1, __ATOMIC_RELAXED);
        }
        diag_list_free(&diags);
        notify_send("READY=1\nSTATUS=accepting connections");
        return;
    }
    diag_list_free(&diags);
    if (conf->global.workers != s->conf->global.workers)
        log_warnx("reload: workers changes only with a restart");
    /* A worker started from now on starts on this one. */
    conf_free(s->conf);
    s->conf = conf;
    if (s->host != NULL)
        __atomic_store_n(&s->host->refused_last, 0, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < s->n; i++)
        s->kids[i].reload_pending = s->kids[i].pid > 0;
    s->reloading = true;
    signal_all(s, SIGHUP);
    reload_done(s); /* no worker running: nothing to wait for */
}

/*
 * SIGUSR1 in a supervisor that kept root while its workers run as `user`:
 * the log file is opened with the user's identity, as the workers open it
 * next. As root it would be made root's (the workers could not open it),
 * and root would follow whatever the user put at that path.
 */
static int
reopen_as_user(const struct conf_global *g)
{
    if (!g->user_set || geteuid() != 0)
        return log_reopen();
    gid_t groups[64];
    int ng = getgroups(64, groups);
    gid_t egid = getegid();
    int rc = -1, err = EPERM;
    if (ng >= 0 && setgroups(1, &g->gid) == 0) {
        if (setegid(g->gid) == 0) {
            if (seteuid(g->uid) == 0) {
                rc = log_reopen();
                err = errno;
                if (seteuid(0) == -1)
                    fatal("supervisor: cannot take root back after the log reopen");
            }
            if (setegid(egid) == -1)
                fatal("supervisor: cannot take its group back after the log reopen");
        }
        if (setgroups((size_t)ng, groups) == -1)
            fatal("supervisor: cannot take its groups back after the log reopen");
    }
    errno = err;
    return rc;
}

static void
on_signals(struct sup *s)
{
    /* A reload waits for the batch of signals read: a TERM in it wins, as in a
     * single process (the workers would get both and drop the reload). */
    bool want_reload = false;
    struct signalfd_siginfo si;
    while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            log_signal((int)si.ssi_signo);
            drain(s);
            break;
        case SIGHUP:
            log_signal((int)si.ssi_signo);
            if (s->draining)
                log_warnx("SIGHUP while draining: not reloading");
            else
                want_reload = true;
            break;
        case SIGUSR1:
            if (reopen_as_user(&s->conf->global) == -1)
                log_warn("log_reopen %s", log_file());
            signal_all(s, SIGUSR1);
            break;
        case SIGCHLD:
            reap(s);
            break;
        default:
            break;
        }
    }
    if (want_reload && !s->draining)
        reload(s);
}

static int
next_timeout(const struct sup *s)
{
    uint64_t now = util_monotonic_ms(), at = UINT64_MAX;
    for (unsigned i = 0; i < s->n; i++) {
        if (s->kids[i].pid == 0 && s->kids[i].restart_at_ms != 0 && s->kids[i].restart_at_ms < at)
            at = s->kids[i].restart_at_ms;
    }
    if (s->watchdog_ms > 0 && s->watchdog_at < at)
        at = s->watchdog_at;
    if (at == UINT64_MAX)
        return -1;
    return at <= now ? 0 : (int)(at - now > 60000 ? 60000 : at - now);
}

int
supervise_run(const char *path, struct conf *conf, struct shm *shm, supervise_worker_fn run,
              void *arg)
{
    struct sup s = {.path = path, .conf = conf, .run = run, .arg = arg, .n = conf->global.workers,
                    .host = metricshare_host(shm)};
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
        (s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
        log_warn("supervisor: signals");
        conf_free(conf);
        return 1;
    }
    s.kids = calloc(s.n, sizeof(*s.kids));
    s.pfd = calloc(s.n + 1, sizeof(*s.pfd));
    s.who = calloc(s.n + 1, sizeof(*s.who));
    struct pollfd *pfd = s.pfd;
    unsigned *who = s.who;
    if (s.kids == NULL || pfd == NULL || who == NULL) {
        log_warnx("supervisor: out of memory");
        free(s.kids);
        free(pfd);
        free(who);
        close(s.sfd);
        conf_free(conf);
        return 1;
    }
    for (unsigned i = 0; i < s.n; i++)
        s.kids[i].ready_fd = -1;
    s.watchdog_ms = notify_watchdog_ms();
    s.watchdog_at = util_monotonic_ms() + s.watchdog_ms;
    for (unsigned i = 0; i < s.n && !s.draining; i++) {
        if (spawn(&s, i) == -1) {
            s.start_failed = true;
            drain(&s);
        }
    }
    while (anyone(&s)) {
        unsigned np = 0;
        pfd[np++] = (struct pollfd){.fd = s.sfd, .events = POLLIN};
        for (unsigned i = 0; i < s.n; i++) {
            if (s.kids[i].ready_fd >= 0) {
                who[np] = i;
                pfd[np++] = (struct pollfd){.fd = s.kids[i].ready_fd, .events = POLLIN};
            }
        }
        if (poll(pfd, np, next_timeout(&s)) == -1 && errno != EINTR) {
            log_warn("supervisor: poll");
            break;
        }
        for (unsigned j = 1; j < np; j++) {
            if (pfd[j].revents != 0 && s.kids[who[j]].ready_fd == pfd[j].fd)
                on_ready(&s, who[j]);
        }
        if (pfd[0].revents != 0)
            on_signals(&s);
        if (!s.draining)
            restart_due(&s);
        if (s.watchdog_ms > 0 && util_monotonic_ms() >= s.watchdog_at) {
            notify_send("WATCHDOG=1");
            s.watchdog_at = util_monotonic_ms() + s.watchdog_ms;
        }
    }
    int rc = s.start_failed ? 1 : 0;
    for (unsigned i = 0; i < s.n; i++) {
        if (s.kids[i].failed)
            rc = 1;
    }
    log_begin(LOG_INFO, "exit");
    log_u64("status", (uint64_t)rc);
    log_end();
    free(pfd);
    free(who);
    free(s.kids);
    close(s.sfd);
    conf_free(s.conf);
    return rc;
}
