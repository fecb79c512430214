/*
 * main: command line, configuration, signals, and the worker (or, with
 * workers N, the supervisor of N of them: src/ops/supervise.c). Kept
 * small: everything with a concern of its own lives in its module.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "addr.h"
#include "admin.h"
#include "bouncer.h"
#include "conf.h"
#include "edge.h"
#include "fault.h"
#include "healthshare.h"
#include "shm.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "privs.h"
#include "probe.h"
#include "procshare.h"
#include "receiver_config.h"
#include "reload.h"
#include "roundtrip.h"
#include "session.h"
#include "sock.h"
#include "status.h"
#include "supervise.h"
#include "util.h"
#include "verify.h"
#include "watch.h"
#include "worker.h"

#define DEFAULT_CONF "/etc/mailedge/mailedge.conf"

_Static_assert(CONF_WORKERS_MAX <= SHM_WORKERS_MAX, "the shared region serves every worker");

/* What the process does besides the worker: signals and the watchdog. */
struct service {
    struct io io;               /* signalfd */
    struct worker *w;
    struct timer watchdog;
    uint64_t watchdog_ms;
};

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: mailedge [-c FILE] [-t] [-w] [-f] [-V]\n"
                "       mailedge receiver-config [-c FILE] [--for SOFTWARE] [BACKEND...]\n"
                "       mailedge verify [-c FILE] [-f text|tsv] [BACKEND...]\n"
                "  -c FILE  configuration (default " DEFAULT_CONF ")\n"
                "  -t       check the configuration and exit (0 valid, 1 invalid)\n"
                "  -w       reload when the configuration file changes, as on SIGHUP\n"
                "  -f       stay in the foreground (always the case; for init scripts)\n"
                "  -V       print version and build features\n");
}

/* The CPUs this process may run on (its affinity mask, as taskset or a
 * systemd CPUAffinity= sets it), for `workers auto`. */
static long
usable_cpus(void)
{
    for (int n = CPU_SETSIZE; n <= (1 << 16); n *= 2) {
        cpu_set_t *set = CPU_ALLOC((size_t)n);
        size_t size = CPU_ALLOC_SIZE((size_t)n);
        if (set == NULL)
            break;
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            int c = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return c;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            break;
    }
    return sysconf(_SC_NPROCESSORS_ONLN);
}

static void
version(void)
{
    printf("mailedge %s\n", MAILEDGE_VERSION);
    printf("features: epoll splice proxy-v1 proxy-v2 sni admin-http metrics probe roundtrip verify%s\n",
           notify_available() ? " systemd-notify" : "");
}

static void
on_signal(struct io *io, uint32_t ev)
{
    (void)ev;
    struct service *sg = (struct service *)(void *)io;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            log_signal((int)si.ssi_signo);
            if (sg->w->draining) {
                /* A second TERM: do not wait for the grace period. */
                session_cut_all(sg->w);
                break;
            }
            /* Without the supervisor (it died), nobody would end the wait. */
            if (supervise_orphaned())
                sg->w->linger_admin = false;
            sg->w->notify("STOPPING=1");
            edge_drain(sg->w);
            break;
        case SIGUSR2:
            /* The supervisor: every other worker is gone. */
            sg->w->linger_admin = false;
            worker_drain_check(sg->w);
            break;
        case SIGUSR1:
            if (log_reopen() == -1) {
                int err = errno;
                log_begin(LOG_WARN, "log_reopen");
                log_str("result", "failure");
                log_str("path", log_file());
                log_str("error", strerror(err));
                log_end_tee();
            } else if (log_file()[0] != '\0') {
                log_begin(LOG_INFO, "log_reopen");
                log_str("result", "success");
                log_str("path", log_file());
                log_end();
            }
            break;
        case SIGHUP:
            log_signal((int)si.ssi_signo);
            if (sg->w->draining)
                log_warnx("SIGHUP while draining: not reloading");
            else
                reload_request(sg->w);
            break;
        default:
            break;
        }
    }
}

static void
on_watchdog(struct timer *t)
{
    struct service *sv = container_of(t, struct service, watchdog);
    notify_send("WATCHDOG=1");
    loop_timer_at(sv->w->loop, &sv->watchdog, loop_now(sv->w->loop) + sv->watchdog_ms);
}

/* mailedge -w: the configuration file changed; the same reload as SIGHUP. */
static void
on_conf_changed(void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        log_warnx("configuration changed while draining: not reloading");
    else if (supervise_reload_all() == -1) /* several workers: all, as a SIGHUP */
        reload_request(w);
}

/* The admin endpoint's view of the worker (src/ops/admin_view.h). */
static const struct conf *
view_conf(void *arg)
{
    return ((const struct worker *)arg)->conf;
}

static bool
view_ready(void *arg, struct strbuf *why)
{
    return status_ready(arg, why);
}

static int
view_metrics(void *arg, struct metrics *m)
{
    return status_metrics(arg, m);
}

static void
view_status(void *arg, struct strbuf *out)
{
    status_json(arg, out);
}

static struct abuse *
view_abuse(void *arg, const char *name)
{
    struct worker_abuse *wa = worker_abuse_find(arg, name);
    return wa != NULL ? wa->t : NULL;
}

static bool
view_remote_status(void *arg, struct bouncer_status *st)
{
    return bouncer_status(arg, st);
}

static size_t
view_remote_walk(void *arg, size_t *pos, size_t max,
                 void (*fn)(void *fnarg, const struct banset_entry *e), void *fnarg)
{
    return bouncer_walk(arg, pos, max, fn, fnarg);
}

/* The admin endpoint of <w>, serving what the functions above show of it. */
static struct admin *
start_admin(struct worker *w)
{
    struct admin_view v = {.loop = w->loop, .arg = w, .metrics = view_metrics,
                           .metrics_free = status_metrics_free, .conf = view_conf,
                           .ready = view_ready, .status = view_status, .abuse = view_abuse,
                           .remote_status = view_remote_status,
                           .remote_walk = view_remote_walk};
    return admin_start(&v);
}

/*
 * Logs every inherited socket no configured bind took; returns how many.
 * A restarted worker of several closes them instead: the configuration
 * was checked against them at the start, and a reload since may have
 * dropped an address.
 */
static int
unmatched_inherited(const int *fds, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        char a[ADDR_STRLEN] = "?";
        if (fds[i] < 0)
            continue;
        if (supervise_restarted()) {
            close(fds[i]);
            continue;
        }
        if (sock_local(fds[i], &ss) == 0)
            addr_format((const struct sockaddr *)&ss, a, sizeof(a));
        log_begin(LOG_ERROR, "socket_activation");
        log_u64("fd", (uint64_t)fds[i]);
        log_str("addr", a);
        log_str("error", "an inherited socket matches no bind address of the configuration");
        log_end();
        bad++;
    }
    return bad;
}

/* The signals a worker reads from its signalfd (blocked from the start). */
static void
signal_mask(sigset_t *mask)
{
    sigemptyset(mask);
    sigaddset(mask, SIGTERM);
    sigaddset(mask, SIGINT);
    sigaddset(mask, SIGHUP);
    sigaddset(mask, SIGUSR1);
    sigaddset(mask, SIGUSR2);
}

static void
raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* What every worker process is told by the command line. */
struct run {
    const char *path;
    bool watch_conf;
    struct fault_plan faults;
    int *inherited;               /* socket activation: the same sockets for every worker */
    int ninherited;
    struct shm *shm;              /* what the workers share (src/base/shm.h); also with workers 1 */
};

/*
 * One worker, on <conf> (owned): the whole process with workers 1
 * (<index> -1), else worker <index> of the supervisor's children
 * (src/ops/supervise.c), which alone runs the admin endpoint when it is
 * worker 0 and tells the supervisor, not the service manager, that it is
 * ready. Returns the exit status.
 */
static int
run_worker(const struct run *r, struct conf *conf, int *inherited, int nfds, int index)
{
    sigset_t mask;
    signal_mask(&mask);
    bool admin_here = index <= 0;
    shm_attach(r->shm, index < 0 ? 0 : (unsigned)index, conf->global.workers);
    if (index >= 0)
        healthshare_attach();
    struct worker w;
    struct admin *admin = NULL;
    if (edge_init(&w, conf, r->path, inherited, (size_t)nfds) == -1 ||
        procshare_start(w.loop) == -1 ||
        (admin_here && w.conf->global.admin_set && (admin = start_admin(&w)) == NULL) ||
        unmatched_inherited(inherited, nfds) > 0) {
        admin_stop(admin);
        edge_free(&w);
        return 1;
    }
    /* Every inherited socket is a listener's now. */
    w.inherited = NULL;
    w.ninherited = 0;
    w.notify = index < 0 ? notify_send : supervise_notify;
    w.linger_admin = index == 0 && admin != NULL;
    char perr[256];
    if (privs_drop(&w.conf->global, perr, sizeof(perr)) == -1) {
        log_begin(LOG_ERROR, "privileges");
        log_str("error", perr);
        log_end();
        admin_stop(admin);
        edge_free(&w);
        return 1;
    }
    struct service sg = {.io = {.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC),
                                .cb = on_signal},
                         .w = &w,
                         .watchdog_ms = index < 0 ? notify_watchdog_ms() : 0};
    if (sg.io.fd == -1 || loop_add(w.loop, &sg.io, EPOLLIN) == -1)
        fatal("signalfd");
    struct watch *wa = NULL;
    /* With several workers, worker 0 alone watches: a change reloads all of them. */
    if (r->watch_conf && index <= 0 &&
        (wa = watch_start(w.loop, r->path, on_conf_changed, &w)) == NULL) {
        worker_free(&w);
        return 1;
    }
    timer_init(&sg.watchdog, on_watchdog);
    if (sg.watchdog_ms > 0)
        loop_timer_at(w.loop, &sg.watchdog, loop_now(w.loop) + sg.watchdog_ms);

    /* A worker of several says so to the supervisor, which says event=ready
     * once all of them are. */
    log_begin(LOG_INFO, index < 0 ? "ready" : "worker_ready");
    log_u64("listeners", w.nlisteners);
    log_end();
    w.notify("READY=1\nSTATUS=accepting connections");
    fault_arm(&r->faults);

    int rc = edge_run(&w) == 0 ? 0 : 1;
    if (rc != 0)
        log_warn("event loop failed");
    log_begin(LOG_INFO, "exit");
    log_u64("status", (uint64_t)rc);
    log_end();
    loop_timer_cancel(w.loop, &sg.watchdog);
    watch_stop(wa);
    close(sg.io.fd);
    admin_stop(admin);
    procshare_stop(w.loop);
    edge_free(&w);
    return rc;
}

static int
run_child(unsigned index, struct conf *conf, void *arg)
{
    const struct run *r = arg;
    /* The child's copy of the list: take_inherited() marks what it took. */
    return run_worker(r, conf, r->inherited, r->ninherited, (int)index);
}

int
main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF;
    bool check_only = false, watch_conf = false;
    int ch;
    if (argc > 1 && strcmp(argv[1], "probe") == 0)
        return probe_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "roundtrip") == 0)
        return roundtrip_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "receiver-config") == 0)
        return receiver_config_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "verify") == 0)
        return verify_main(argc - 1, argv + 1, DEFAULT_CONF);
    while ((ch = getopt(argc, argv, "c:tfwVh")) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'f':
            break;
        case 'w':
            watch_conf = true;
            break;
        case 'V':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "mailedge: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct run r = {.path = path, .watch_conf = watch_conf};
    const char *fault_spec = getenv("MAILEDGE_TEST_FAULTS");
    if (fault_spec != NULL && fault_parse(fault_spec, &r.faults) == -1) {
        fprintf(stderr, "mailedge: MAILEDGE_TEST_FAULTS: bad spec '%s'\n", fault_spec);
        return 2;
    }

    struct conf *conf = NULL;
    struct diag_list diags = {0};
    conf_set_cpus(usable_cpus());
    if (conf_load(path, &conf, &diags) == -1) {
        diag_list_print(&diags, stderr);
        diag_list_free(&diags);
        return 1;
    }
    if (check_only) {
        diag_list_print(&diags, stderr); /* warnings */
        diag_list_free(&diags);
        printf("%s: configuration ok (workers %u%s)\n", path, conf->global.workers,
               conf->global.workers_auto ? ", auto: one per usable CPU" : "");
        conf_free(conf);
        return 0;
    }

    log_setup(conf->global.log_format, conf->global.log_debug);
    if (log_open(conf->global.log_path) == -1) {
        fprintf(stderr, "mailedge: cannot open log file %s: %s\n", conf->global.log_path,
                strerror(errno));
        diag_list_free(&diags);
        conf_free(conf);
        return 1;
    }
    reload_log_diags(&diags); /* warnings */
    diag_list_free(&diags);
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);

    sigset_t mask;
    signal_mask(&mask);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
        fatal("sigprocmask");

    log_begin(LOG_INFO, "start");
    log_str("version", MAILEDGE_VERSION);
    log_u64("pid", (uint64_t)getpid());
    log_str("config", path);
    log_u64("workers", conf->global.workers);
    log_str("workers_from", conf->global.workers_auto ? "auto" : "config");
    log_end();

    /* Socket activation: sockets the service manager bound for us. */
    int nfds = notify_listen_fds();
    if (nfds == -1) {
        log_warn("socket activation: bad LISTEN_FDS or a passed descriptor is not a listening socket");
        conf_free(conf);
        return 1;
    }
    int *inherited = calloc(nfds > 0 ? (size_t)nfds : 1, sizeof(*inherited));
    if (inherited == NULL)
        fatal("calloc");
    for (int i = 0; i < nfds; i++)
        inherited[i] = NOTIFY_LISTEN_FDS_START + i;

    char rerr[256];
    if (privs_check_root(&conf->global, rerr, sizeof(rerr)) == -1) {
        log_begin(LOG_ERROR, "privileges");
        log_str("error", rerr);
        log_end();
        conf_free(conf);
        free(inherited);
        return 1;
    }
    if ((r.shm = shm_create(0)) == NULL) {
        conf_free(conf);
        free(inherited);
        return 1;
    }
    if (conf->global.workers > 1) {
        /* Inherited sockets stay open here, for a worker started again. */
        r.inherited = inherited;
        r.ninherited = nfds;
        int rc = supervise_run(path, conf, r.shm, run_child, &r);
        free(inherited);
        return rc;
    }
    int rc = run_worker(&r, conf, inherited, nfds, -1);
    free(inherited);
    return rc;
}
