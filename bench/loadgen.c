/*
 * bench/loadgen.c: the load generator of `make bench`. One thread, one
 * epoll loop; every loop is bounded in count and in time.
 *
 *   loadgen MODE -a ADDR:PORT [options]
 *
 * Modes (the server is bench/backend.c, directly or through a proxy):
 *   probe  connect, greeting, QUIT, 221 (retrying until -t): is it up?
 *   short  sessions at concurrency -c: connect, read "220", send QUIT,
 *          read "221", read EOF, close. Stops after -n sessions or -t s.
 *   up     -c bulk streams client -> server for -t s ("BULK UP")
 *   both   -c bulk streams both ways at once for -t s ("BULK BOTH")
 *   idle   opens -n sessions and holds them: every one must read its "220 "
 *          greeting (greeted=) and still be open once all are greeted and
 *          settled (sessions=); reports the time to all greeted, the memory
 *          of the -p processes and of the kernel before and after, and the
 *          descriptors of each -p process while they are held. The sessions
 *          are opened by -j child processes, each under the fd limit.
 *
 * Options:
 *   -a ADDR:PORT   server (IPv4 loopback); short: -a, -p, -a, -p... measures
 *                  each target in turn, -l seconds at a time, and prints a
 *                  line for each (target=K): a drifting machine then slows
 *                  them alike
 *   -S A.B.C.D     first source address (default 127.77.1.1)
 *   -s N           number of source addresses, consecutive (default 16)
 *   -c N           concurrency / streams / connects in flight (idle: per -j process)
 *   -n N           sessions (short: at most, idle: exactly)
 *   -j N           idle: processes that open and hold the sessions (default 1)
 *   -t SECONDS     duration bound of the measured part (default 3)
 *   -w SECONDS     warm-up before measuring (default 0.3); idle: settling time
 *                  between the last session opened and the memory sample
 *   -p PID,PID...  processes whose CPU (utime+stime) and RSS are sampled
 *                  (those of the -a before it)
 *   -l SECONDS     short: the length of a turn (needed with several -a; with
 *                  one, the line still starts with target=0)
 *   -b PID         the server's process, whose CPU is sampled too
 *   -k CPU         CPU whose busy time (/proc/stat) is sampled too
 *   -v             idle: print the slab caches that grew, per session, on stderr
 *
 * Prints one line of key=value and exits 0, or 1 when anything failed
 * (errors=N > 0, a bulk byte count that does not match, or a timeout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define CHUNK (256 * 1024)
#define MAX_PIDS 64
#define MAX_JOBS 64
#define MAX_TARGETS 8
#define MAX_ERRORS 100
#define DRAIN_NS (10 * NS)
#define NS 1000000000ull

enum mode { M_PROBE, M_SHORT, M_UP, M_BOTH, M_IDLE };
enum state { S_FREE, S_GREET, S_BYE, S_EOF, S_DATA, S_DRAIN, S_IDLE };

struct conn {
    int fd;
    enum state state;
    uint8_t len;
    bool trailer;   /* drain: the '#' line started */
    uint64_t t0;    /* ns, session start */
    uint64_t tx, rx;
    char buf[96];
};

struct sample {
    uint64_t ns;
    long long proc_ticks; /* utime+stime of the -p processes */
    long long sys_ticks;  /* stime of the -p processes: their kernel share */
    long long self_us;    /* this process's own CPU (getrusage) */
    long long be_ticks;   /* utime+stime of the -b process (the server) */
    long long wait_ns;    /* time the -p processes' threads waited to run */
    long long all_busy, all_ticks; /* /proc/stat, all CPUs: busy and all ticks */
    long long core_ticks; /* busy ticks of CPU -k */
    long long rss_kb;     /* VmRSS of the -p processes */
    long long slab_b;     /* active slab objects, /proc/slabinfo */
    long long slabpg_b;   /* slab pages, /proc/meminfo Slab */
    long long tcpmem_b;   /* TCP socket buffers, /proc/net/sockstat */
    long long tcp_inuse;
    long long ipis;       /* rescheduling + function call interrupts, all CPUs */
    long long ctxsw;      /* context switches of the -p processes */
};

static enum mode mode;
static struct sockaddr_in dst;
static uint32_t src_first;
static int nsrc = 16, conc = 50, core = -1, jobs = 1;
static long nmax = 100000;
static double dur = 3, warm = 0.3;
static int pids[MAX_PIDS], npids, be_pid;
static int epfd;
static struct conn *conns;
static uint64_t src_next;
static long errors, started, done_total;
static char last_error[160];
static char xs[CHUNK];
static long clk_tck;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void
fail(const char *what, int err)
{
    errors++;
    snprintf(last_error, sizeof(last_error), "%s:%s", what, err ? strerror(err) : "protocol");
    for (char *p = last_error; *p; p++)
        if (*p == ' ')
            *p = '_';
}

static void
usage(void)
{
    fprintf(stderr, "usage: loadgen probe|short|up|both|idle -a ADDR:PORT [-S SRC] [-s N] [-c N]"
                    " [-n N] [-j N] [-t S] [-w S] [-p PID,...] [-b PID] [-k CPU] [-l S] [-v]\n");
    exit(2);
}

static int
parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* --- sampling /proc ------------------------------------------------------ */

static long long
proc_ticks(int pid, long long *sys)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    /* After "pid (comm)": field 3 is the state; utime is 14, stime 15. */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok != NULL; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    *sys += (long long)st;
    return (long long)(ut + st);
}

/* Rescheduling and function-call interrupts summed over CPUs: cross-CPU
 * wake-ups, which are expensive in a virtual machine. */
static long long
ipi_count(void)
{
    FILE *f = fopen("/proc/interrupts", "r");
    if (f == NULL)
        return -1;
    char line[4096];
    long long total = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (strncmp(p, "RES:", 4) != 0 && strncmp(p, "CAL:", 4) != 0)
            continue;
        p += 4;
        for (;;) {
            char *end;
            long long v = strtoll(p, &end, 10);
            if (end == p)
                break;
            total += v;
            p = end;
        }
    }
    fclose(f);
    return total;
}

static long long
proc_status_sum(int pid, const char *const keys[], int nkeys)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long sum = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        for (int k = 0; k < nkeys; k++) {
            size_t kl = strlen(keys[k]);
            if (strncmp(line, keys[k], kl) == 0)
                sum += strtoll(line + kl, NULL, 10);
        }
    fclose(f);
    return sum;
}

/* Time the threads of a process spent runnable but waiting for a CPU
 * (/proc/PID/task/TID/schedstat, second field): what a busy machine costs a
 * process on top of its own work. */
static long long
proc_wait_ns(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p2[96];
        snprintf(p2, sizeof(p2), "/proc/%d/task/%.16s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        if (f == NULL)
            continue;
        unsigned long long run, wait;
        if (fscanf(f, "%llu %llu", &run, &wait) == 2)
            sum += (long long)wait;
        fclose(f);
    }
    closedir(d);
    return sum;
}

static long long
proc_ctxsw(int pid)
{
    static const char *const keys[] = {"voluntary_ctxt_switches:",
                                       "nonvoluntary_ctxt_switches:"};
    return proc_status_sum(pid, keys, 2);
}

static long long
proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %lld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Busy and all ticks of the whole machine ("cpu " line of /proc/stat):
 * the load other processes put on it shows as busy time the bench's own
 * processes do not account for. */
static void
machine_ticks(long long *busy, long long *all)
{
    *busy = *all = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return;
    unsigned long long us, ni, sy, id, io, irq, sirq, st;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &us, &ni, &sy, &id, &io, &irq,
               &sirq, &st) == 8) {
        *busy = (long long)(us + ni + sy + irq + sirq + st);
        *all = *busy + (long long)(id + io);
    }
    fclose(f);
}

static long long
self_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == -1)
        return 0;
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static long long
core_busy(int cpu)
{
    if (cpu < 0)
        return 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    char line[512], want[16];
    snprintf(want, sizeof(want), "cpu%d ", cpu);
    long long busy = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, want, strlen(want)) != 0)
            continue;
        unsigned long long us, ni, sy, id, io, irq, sirq;
        if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu", &us, &ni, &sy, &id,
                   &io, &irq, &sirq) == 7)
            busy = (long long)(us + ni + sy + irq + sirq);
        break;
    }
    fclose(f);
    return busy;
}

#define MAX_CACHES 1024

struct slabsnap {
    int n;
    char name[MAX_CACHES][64];
    long long bytes[MAX_CACHES];
};

static struct slabsnap snaps[3];

/* Active slab objects by cache; returns their total in bytes. */
static long long
slab_bytes(struct slabsnap *snap)
{
    FILE *f = fopen("/proc/slabinfo", "r");
    if (f == NULL)
        return -1;
    char line[512];
    long long total = 0;
    if (snap != NULL)
        snap->n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[64];
        long long active, num, size;
        if (sscanf(line, "%63s %lld %lld %lld", name, &active, &num, &size) != 4)
            continue;
        total += active * size;
        if (snap != NULL && snap->n < MAX_CACHES) {
            memcpy(snap->name[snap->n], name, sizeof(name));
            snap->bytes[snap->n++] = active * size;
        }
    }
    fclose(f);
    return total;
}

/* Caches that hold no state of a socket, a file or an epoll entry: what
 * other processes on a shared machine churn (reading /proc, files, forks),
 * and the transient TCP states (TIME_WAIT after the teardown, SYN_RECV). */
static bool
slab_counts(const char *name)
{
    static const char *const skip[] = {
        "proc_inode_cache", "ext4_", "btrfs_", "xfs_", "jbd2_", "buffer_head", "radix_tree_node",
        "task_struct", "maple_node", "vm_area_struct", "mm_struct", "anon_vma", "signal_cache",
        "sighand_cache", "files_cache", "fs_cache", "pid", "cred_jar", "kernfs_node_cache",
        "shmem_inode_cache", "names_cache", "bio", "tw_sock_TCP", "request_sock_TCP",
        "inode_cache", "mnt_cache", "nsproxy", "audit",
    };
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strncmp(name, skip[i], strlen(skip[i])) == 0)
            return false;
    return true;
}

static long long
snap_get(const struct slabsnap *snap, const char *name)
{
    for (int i = 0; i < snap->n; i++)
        if (strcmp(snap->name[i], name) == 0)
            return snap->bytes[i];
    return 0;
}

/* Flushes the per-CPU slab caches and frees empty slabs (root only), so
 * that objects freed by earlier tests and still parked in per-CPU slabs,
 * which /proc/slabinfo counts as active, do not hide new allocations.
 * Returns false when the kernel does not let us. */
static bool
slab_shrink(void)
{
    DIR *d = opendir("/sys/kernel/slab");
    if (d == NULL)
        return false;
    bool ok = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", e->d_name);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd == -1)
            continue;
        ok |= write(fd, "1", 1) == 1;
        close(fd);
    }
    closedir(d);
    return ok;
}

static long long
meminfo_slab(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Slab: %lld", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static void
sockstat(long long *mem_b, long long *inuse)
{
    *mem_b = -1;
    *inuse = -1;
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (f == NULL)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f) != NULL) {
        long long iu, orph, tw, alloc, mem;
        if (sscanf(line, "TCP: inuse %lld orphan %lld tw %lld alloc %lld mem %lld", &iu, &orph,
                   &tw, &alloc, &mem) == 5) {
            *inuse = iu;
            *mem_b = mem * sysconf(_SC_PAGESIZE);
        }
    }
    fclose(f);
}

static bool shrunk;
static bool verbose;

static void
take(struct sample *s, bool memory, struct slabsnap *snap)
{
    s->ns = now_ns();
    s->proc_ticks = 0;
    s->sys_ticks = 0;
    s->self_us = self_cpu_us();
    long long be_sys = 0;
    s->be_ticks = be_pid > 0 ? proc_ticks(be_pid, &be_sys) : 0;
    machine_ticks(&s->all_busy, &s->all_ticks);
    s->rss_kb = 0;
    s->ctxsw = 0;
    s->wait_ns = 0;
    s->ipis = ipi_count();
    for (int i = 0; i < npids; i++) {
        long long t = proc_ticks(pids[i], &s->sys_ticks);
        if (t < 0)
            fail("proc_gone", 0);
        s->proc_ticks += t;
        s->ctxsw += proc_ctxsw(pids[i]);
        s->wait_ns += proc_wait_ns(pids[i]);
        if (memory)
            s->rss_kb += proc_rss_kb(pids[i]);
    }
    s->core_ticks = core_busy(core);
    if (memory) {
        shrunk = slab_shrink();
        s->slab_b = slab_bytes(snap);
        s->slabpg_b = meminfo_slab();
        sockstat(&s->tcpmem_b, &s->tcp_inuse);
    }
}

static double
ticks_ms(long long t)
{
    return (double)t * 1000.0 / (double)clk_tck;
}

/* The figures that say where the window's CPU went: the -p processes'
 * kernel share and time spent waiting for a CPU, the CPU of this load
 * generator and of the -b server per unit (a session, or 1 GB; <scale>
 * microseconds make the unit of <key>), and how busy the whole machine was. */
static void
print_shares(const struct sample *s0, const struct sample *s1, double units, const char *key,
             double scale)
{
    long long cpu = s1->proc_ticks - s0->proc_ticks, all = s1->all_ticks - s0->all_ticks;
    printf(" sys_pct=%.1f lg_%s=%.2f be_%s=%.2f wait_%s=%.2f machine_busy_pct=%.1f",
           cpu > 0 ? 100.0 * (double)(s1->sys_ticks - s0->sys_ticks) / (double)cpu : 0, key,
           units > 0 ? (double)(s1->self_us - s0->self_us) / scale / units : 0, key,
           units > 0 ? ticks_ms(s1->be_ticks - s0->be_ticks) * 1000.0 / scale / units : 0,
           key, units > 0 ? (double)(s1->wait_ns - s0->wait_ns) / 1000.0 / scale / units : 0,
           all > 0 ? 100.0 * (double)(s1->all_busy - s0->all_busy) / (double)all : 0);
}

/* --- connections --------------------------------------------------------- */

static void
ctl(int op, int i, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epfd, op, conns[i].fd, &e) == -1) {
        perror("epoll_ctl");
        exit(1);
    }
}

static void
conn_close(int i)
{
    if (conns[i].fd >= 0)
        close(conns[i].fd);
    conns[i].fd = -1;
    conns[i].state = S_FREE;
}

/* Starts a connection in slot i; false when it failed at once. */
static bool
conn_start(int i)
{
    struct conn *c = &conns[i];
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->t0 = now_ns();
    started++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fail("socket", errno);
        return false;
    }
    int one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(src_first + (uint32_t)(src_next++ % (uint64_t)nsrc));
    /* Port chosen at connect() against the whole 4-tuple: many sources
     * multiply the ephemeral ports available. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 && errno != EINPROGRESS)) {
        fail("connect", errno);
        close(fd);
        return false;
    }
    c->fd = fd;
    c->state = S_GREET;
    /* Input only: the server speaks first, and a failed connect reports
     * EPOLLERR anyway. */
    ctl(EPOLL_CTL_ADD, i, EPOLLIN | EPOLLRDHUP);
    return true;
}

/* Takes one complete line from c->buf into out; 1 done, 0 need more, -1 bad. */
static int
take_line(struct conn *c, const char *want)
{
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl == NULL)
        return c->len >= sizeof(c->buf) - 1 ? -1 : 0;
    size_t ll = (size_t)(nl - c->buf) + 1;
    if (ll != c->len || strncmp(c->buf, want, strlen(want)) != 0)
        return -1;
    c->len = 0;
    return 1;
}

static int
sendall(int fd, const char *s, size_t n)
{
    return send(fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Reads what is there. Returns bytes appended, 0 at EOF, -1 with errno. */
static ssize_t
fill(struct conn *c)
{
    size_t room = sizeof(c->buf) - 1 - c->len;
    ssize_t n = recv(c->fd, c->buf + c->len, room, MSG_DONTWAIT);
    if (n > 0) {
        c->len += (uint8_t)n;
        c->buf[c->len] = '\0';
    }
    return n;
}

/* --- short sessions ------------------------------------------------------ */

static uint64_t *lat;
static long nlat, latcap;
static bool measuring;
static uint64_t last_done_ns;

/* Progress of one short session; returns true when the slot is free again. */
static bool
short_event(int i)
{
    struct conn *c = &conns[i];
    for (int rounds = 0; rounds < 8; rounds++) {
        ssize_t n = fill(c);
        if (n == -1) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return false;
            fail(c->state == S_GREET ? "greeting" : "session", errno);
            conn_close(i);
            return true;
        }
        if (n == 0) {
            if (c->state != S_EOF || c->len != 0) {
                fail(c->state == S_GREET ? "eof_before_greeting" : "eof_before_221", 0);
                conn_close(i);
                return true;
            }
            conn_close(i);
            uint64_t t = now_ns();
            done_total++;
            if (measuring && nlat < latcap)
                lat[nlat++] = t - c->t0;
            last_done_ns = t;
            return true;
        }
        int r;
        switch (c->state) {
        case S_GREET:
            r = take_line(c, "220 ");
            if (r == 1 && sendall(c->fd, "QUIT\r\n", 6) == -1)
                r = -1;
            if (r == 1)
                c->state = S_BYE;
            break;
        case S_BYE:
            r = take_line(c, "221 ");
            if (r == 1)
                c->state = S_EOF;
            break;
        default:
            r = -1; /* bytes after 221 */
            break;
        }
        if (r == -1) {
            fail("unexpected_reply", 0);
            conn_close(i);
            return true;
        }
    }
    return false;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double
pct_us(double p)
{
    if (nlat == 0)
        return 0;
    long k = (long)ceil(p * (double)nlat) - 1;
    if (k < 0)
        k = 0;
    return (double)lat[k] / 1000.0;
}

/*
 * Short sessions against dst at concurrency conc: from <t_warm> on they are
 * measured (latencies into lat, <s0> taken at that moment); from <t_end>,
 * or once <cap> were measured, no new one starts and those in flight
 * finish. Returns false when they did not finish in time (all closed then).
 */
static bool
short_loop(uint64_t t_warm, uint64_t t_end, long cap, struct sample *s0)
{
    struct epoll_event evs[256];
    uint64_t t_kill = t_end + DRAIN_NS;
    long inflight = 0;
    bool stopping = false;
    measuring = now_ns() >= t_warm;
    if (measuring)
        take(s0, false, NULL);
    for (int i = 0; i < conc; i++) {
        if (conn_start(i))
            inflight++;
    }
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= t_warm) {
            measuring = true;
            take(s0, false, NULL);
        }
        if (!stopping && (now >= t_end || nlat >= cap || errors >= MAX_ERRORS))
            stopping = true;
        if (stopping && inflight == 0)
            return true;
        if (now >= t_kill) {
            fail("timeout", 0);
            for (int i = 0; i < conc; i++)
                conn_close(i);
            return false;
        }
        int n = epoll_wait(epfd, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            if (conns[i].state == S_FREE)
                continue;
            if (!short_event(i))
                continue;
            inflight--;
            if (!stopping && !(measuring && nlat >= cap) && errors < MAX_ERRORS && conn_start(i))
                inflight++;
        }
    }
}

/* Prints the line of a short-session run: the sessions in lat (sorted here)
 * over <secs>, the CPU and the rest from the samples <s0> to <s1>. */
static void
print_short(const struct sample *s0, const struct sample *s1, double secs, long errs,
            const char *lasterr)
{
    qsort(lat, (size_t)nlat, sizeof(*lat), cmp_u64);
    double sum = 0;
    for (long k = 0; k < nlat; k++)
        sum += (double)lat[k];
    double cpu_ms = ticks_ms(s1->proc_ticks - s0->proc_ticks);
    double core_ms = ticks_ms(s1->core_ticks - s0->core_ticks);
    printf("sessions=%ld secs=%.3f rate=%.0f p50_us=%.1f p99_us=%.1f mean_us=%.1f "
           "cpu_ms=%.0f core_ms=%.0f cpu_us_per_session=%.2f core_us_per_session=%.2f "
           "ipi_per_session=%.2f ctxsw_per_session=%.2f errors=%ld last_error=%s",
           nlat, secs, secs > 0 ? (double)nlat / secs : 0, pct_us(0.50), pct_us(0.99),
           nlat ? sum / (double)nlat / 1000.0 : 0, cpu_ms, core_ms,
           nlat ? cpu_ms * 1000.0 / (double)nlat : 0, nlat ? core_ms * 1000.0 / (double)nlat : 0,
           nlat ? (double)(s1->ipis - s0->ipis) / (double)nlat : 0,
           nlat ? (double)(s1->ctxsw - s0->ctxsw) / (double)nlat : 0, errs,
           lasterr[0] ? lasterr : "-");
    print_shares(s0, s1, (double)nlat, "cpu_us_per_session", 1.0);
    printf("\n");
}

static int
run_short(void)
{
    latcap = nmax + conc;
    lat = calloc((size_t)latcap, sizeof(*lat));
    if (lat == NULL)
        return 1;
    uint64_t t_warm = now_ns() + (uint64_t)(warm * 1e9);
    struct sample s0 = {0}, s1 = {0};
    (void)short_loop(t_warm, t_warm + (uint64_t)(dur * 1e9), nmax, &s0);
    if (!measuring)
        take(&s0, false, NULL);
    take(&s1, false, NULL);
    uint64_t t1 = last_done_ns > s0.ns ? last_done_ns : s1.ns;
    print_short(&s0, &s1, (double)(t1 - s0.ns) / 1e9, errors, last_error);
    return errors == 0 && nlat > 0 ? 0 : 1;
}

/* --- short sessions, several targets in turn (-l) ------------------------ */

struct target {
    struct sockaddr_in dst;
    int pids[MAX_PIDS], npids;
    struct sample sum;  /* the measured slices' deltas, added up */
    uint64_t *lat;
    long nlat, errors;
    char last_error[sizeof(last_error)];
};
static struct target targets[MAX_TARGETS];
static int ntargets;
static double slice; /* -l, seconds */

static void
sample_add(struct sample *sum, const struct sample *a, const struct sample *b)
{
    sum->ns += b->ns - a->ns;
    sum->proc_ticks += b->proc_ticks - a->proc_ticks;
    sum->sys_ticks += b->sys_ticks - a->sys_ticks;
    sum->self_us += b->self_us - a->self_us;
    sum->be_ticks += b->be_ticks - a->be_ticks;
    sum->wait_ns += b->wait_ns - a->wait_ns;
    sum->all_busy += b->all_busy - a->all_busy;
    sum->all_ticks += b->all_ticks - a->all_ticks;
    sum->core_ticks += b->core_ticks - a->core_ticks;
    sum->ipis += b->ipis - a->ipis;
    sum->ctxsw += b->ctxsw - a->ctxsw;
}

/* One slice of target <t>: its sessions, and its processes sampled around
 * them. A warm-up slice is not counted. */
static void
run_slice(struct target *t, bool counted)
{
    dst = t->dst;
    memcpy(pids, t->pids, sizeof(pids));
    npids = t->npids;
    lat = t->lat;
    nlat = t->nlat;
    long before = errors;
    struct sample s0 = {0}, s1 = {0};
    uint64_t now = now_ns();
    uint64_t t_warm = counted ? now : UINT64_MAX;
    bool ok = short_loop(t_warm, now + (uint64_t)(slice * 1e9), nmax, &s0);
    if (counted) {
        take(&s1, false, NULL);
        sample_add(&t->sum, &s0, &s1);
        t->nlat = nlat;
    }
    if (errors > before || !ok) {
        t->errors += errors - before;
        memcpy(t->last_error, last_error, sizeof(last_error));
    }
    errors = 0;
}

/*
 * Several targets measured in turn, slice by slice, for -t seconds each
 * (or -n sessions): a machine whose speed drifts over seconds (a busy
 * host) then slows each target alike, which rounds of seconds per target
 * cannot promise. One line per target, "target=K " and the keys of run_short.
 */
static int
run_short_turns(void)
{
    latcap = nmax + conc;
    for (int k = 0; k < ntargets; k++) {
        targets[k].lat = calloc((size_t)latcap, sizeof(*lat));
        if (targets[k].lat == NULL)
            return 1;
    }
    uint64_t t_warm_end = now_ns() + (uint64_t)(warm * 1e9);
    do {
        for (int k = 0; k < ntargets; k++)
            run_slice(&targets[k], false);
    } while (now_ns() < t_warm_end);
    uint64_t want_ns = (uint64_t)(dur * 1e9);
    bool more = true;
    /* Bounded: a slice ends by its own deadline, and each adds time. */
    while (more) {
        more = false;
        for (int k = 0; k < ntargets; k++) {
            struct target *t = &targets[k];
            if (t->sum.ns >= want_ns || t->nlat >= nmax || t->errors >= MAX_ERRORS)
                continue;
            run_slice(t, true);
            more = true;
        }
    }
    int rc = 0;
    struct sample zero = {0};
    for (int k = 0; k < ntargets; k++) {
        struct target *t = &targets[k];
        lat = t->lat;
        nlat = t->nlat;
        printf("target=%d ", k);
        print_short(&zero, &t->sum, (double)t->sum.ns / 1e9, t->errors, t->last_error);
        if (t->errors != 0 || t->nlat == 0)
            rc = 1;
    }
    return rc;
}

/* --- bulk ---------------------------------------------------------------- */

static bool
bulk_event(int i, uint32_t ev, bool both)
{
    struct conn *c = &conns[i];
    if (c->state == S_GREET) {
        ssize_t n = fill(c);
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        int r = n > 0 ? take_line(c, "220 ") : -1;
        if (r == 0)
            return true;
        const char *cmd = both ? "BULK BOTH\r\n" : "BULK UP\r\n";
        if (r == -1 || sendall(c->fd, cmd, strlen(cmd)) == -1) {
            fail("bulk_greeting", n == -1 ? errno : 0);
            return false;
        }
        c->state = S_DATA;
        ctl(EPOLL_CTL_MOD, i, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        return true;
    }
    if (c->state == S_DATA) {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            for (int rounds = 0; rounds < 16; rounds++) {
                ssize_t n = recv(c->fd, NULL, CHUNK, MSG_TRUNC | MSG_DONTWAIT);
                if (n > 0 && both) {
                    c->rx += (uint64_t)n;
                    continue;
                }
                if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                fail(n > 0 ? "bulk_unexpected_bytes" : "bulk_recv", n == -1 ? errno : 0);
                return false;
            }
        }
        if (ev & EPOLLOUT) {
            for (int rounds = 0; rounds < 16; rounds++) {
                ssize_t w = send(c->fd, xs, sizeof(xs), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                    c->tx += (uint64_t)w;
                    continue;
                }
                if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                fail("bulk_send", errno);
                return false;
            }
        }
        return true;
    }
    if (c->state == S_DRAIN) {
        char buf[CHUNK];
        for (int rounds = 0; rounds < 64; rounds++) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return true;
            if (n == -1) {
                fail("bulk_drain", errno);
                return false;
            }
            if (n == 0) {
                char *line = c->buf;
                unsigned long long rx = 0, tx = 0;
                if (!c->trailer || sscanf(line, "#250 rx=%llu tx=%llu", &rx, &tx) != 2) {
                    fail("bulk_no_trailer", 0);
                    return false;
                }
                if (rx != c->tx || tx != c->rx) {
                    fail("bulk_count_mismatch", 0);
                    return false;
                }
                conn_close(i);
                done_total++;
                return true;
            }
            size_t off = 0;
            if (!c->trailer) {
                char *h = memchr(buf, '#', (size_t)n);
                size_t data = h ? (size_t)(h - buf) : (size_t)n;
                c->rx += data;
                if (h == NULL)
                    continue;
                c->trailer = true;
                off = data;
            }
            size_t m = (size_t)n - off;
            if (c->len + m >= sizeof(c->buf)) {
                fail("bulk_trailer_long", 0);
                return false;
            }
            memcpy(c->buf + c->len, buf + off, m);
            c->len += (uint8_t)m;
            c->buf[c->len] = '\0';
        }
        return true;
    }
    return true;
}

static void
bulk_totals(uint64_t *tx, uint64_t *rx)
{
    *tx = *rx = 0;
    for (int i = 0; i < conc; i++) {
        *tx += conns[i].tx;
        *rx += conns[i].rx;
    }
}

static int
run_bulk(bool both)
{
    struct epoll_event evs[256];
    uint64_t t_start = now_ns();
    uint64_t t_warm = t_start + (uint64_t)(warm * 1e9);
    uint64_t t_end = t_warm + (uint64_t)(dur * 1e9);
    struct sample s0 = {0}, s1 = {0};
    uint64_t tx0 = 0, rx0 = 0, tx1 = 0, rx1 = 0;
    bool measured = false;
    for (int i = 0; i < conc; i++)
        if (!conn_start(i)) {
            printf("errors=%ld last_error=%s\n", errors, last_error);
            return 1;
        }
    while (errors == 0) {
        uint64_t now = now_ns();
        if (!measuring && now >= t_warm) {
            measuring = true;
            take(&s0, false, NULL);
            bulk_totals(&tx0, &rx0);
        }
        if (now >= t_end) {
            take(&s1, false, NULL);
            bulk_totals(&tx1, &rx1);
            measured = true;
            break;
        }
        int n = epoll_wait(epfd, evs, 256, 20);
        for (int k = 0; k < n && errors == 0; k++) {
            int i = (int)evs[k].data.u32;
            if (!bulk_event(i, evs[k].events, both))
                conn_close(i);
        }
    }
    /* Stop sending; the server answers EOF with its byte counts. */
    for (int i = 0; i < conc; i++) {
        if (conns[i].fd < 0)
            continue;
        if (conns[i].state != S_DATA) {
            fail("bulk_not_started", 0);
            conn_close(i);
            continue;
        }
        conns[i].state = S_DRAIN;
        conns[i].len = 0;
        shutdown(conns[i].fd, SHUT_WR);
        ctl(EPOLL_CTL_MOD, i, EPOLLIN | EPOLLRDHUP);
    }
    uint64_t t_kill = now_ns() + DRAIN_NS;
    while (done_total + errors < conc) {
        if (now_ns() >= t_kill) {
            fail("bulk_drain_timeout", 0);
            break;
        }
        int n = epoll_wait(epfd, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            if (conns[i].state == S_DRAIN && !bulk_event(i, evs[k].events, both))
                conn_close(i);
        }
    }
    double secs = measured ? (double)(s1.ns - s0.ns) / 1e9 : 0;
    uint64_t up = tx1 - tx0, down = rx1 - rx0;
    double gb = (double)(up + down) / 1e9;
    double cpu_ms = ticks_ms(s1.proc_ticks - s0.proc_ticks);
    double core_ms = ticks_ms(s1.core_ticks - s0.core_ticks);
    printf("streams=%d secs=%.3f up_bytes=%llu down_bytes=%llu gbps=%.2f up_gbps=%.2f "
           "down_gbps=%.2f cpu_ms=%.0f core_ms=%.0f cpu_ms_per_gb=%.1f core_ms_per_gb=%.1f "
           "ipi_per_mb=%.2f ctxsw_per_mb=%.2f verified=%lld errors=%ld last_error=%s",
           conc, secs, (unsigned long long)up, (unsigned long long)down,
           secs > 0 ? gb * 8 / secs : 0, secs > 0 ? (double)up * 8 / 1e9 / secs : 0,
           secs > 0 ? (double)down * 8 / 1e9 / secs : 0, cpu_ms, core_ms,
           gb > 0 ? cpu_ms / gb : 0, gb > 0 ? core_ms / gb : 0,
           gb > 0 ? (double)(s1.ipis - s0.ipis) / (gb * 1000) : 0,
           gb > 0 ? (double)(s1.ctxsw - s0.ctxsw) / (gb * 1000) : 0, (long long)done_total, errors,
           last_error[0] ? last_error : "-");
    print_shares(&s0, &s1, gb, "cpu_ms_per_gb", 1000.0);
    printf("\n");
    return errors == 0 && measured && gb > 0 ? 0 : 1;
}

/* --- idle sessions ------------------------------------------------------- */

/* The epoll slot of an idle child's control pipe: readable when the parent
 * asks for the count (or has died). */
#define CTL_SLOT UINT32_MAX

static bool ctl_ready;

static bool
idle_event(int i)
{
    struct conn *c = &conns[i];
    ssize_t n = fill(c);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    if (c->state == S_GREET && n > 0) {
        int r = take_line(c, "220 ");
        if (r == 0)
            return true;
        if (r == 1) {
            c->state = S_IDLE;
            done_total++;
            return true;
        }
    }
    fail(c->state == S_IDLE ? "idle_session_lost" : "idle_greeting", n == -1 ? errno : 0);
    return false;
}

static void
idle_pump(int ms, long *inflight)
{
    struct epoll_event evs[256];
    int n = epoll_wait(epfd, evs, 256, ms);
    for (int k = 0; k < n; k++) {
        if (evs[k].data.u32 == CTL_SLOT) {
            ctl_ready = true;
            continue;
        }
        int i = (int)evs[k].data.u32;
        if (conns[i].state == S_FREE)
            continue;
        enum state before = conns[i].state;
        if (!idle_event(i)) {
            conn_close(i);
            if (before == S_GREET)
                (*inflight)--;
        } else if (before == S_GREET && conns[i].state == S_IDLE) {
            (*inflight)--;
        }
    }
}

/* What an idle child tells its parent, twice: when all its sessions are
 * greeted (or it gave up), then how many it still held when asked. */
struct idle_report {
    long count;
    long errors;
    char last_error[160];
};

static void
report(int fd, long count)
{
    struct idle_report r = {.count = count, .errors = errors};
    memcpy(r.last_error, last_error, sizeof(r.last_error));
    if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(1);
}

/* One idle child: opens n sessions (at most -c connects in flight, within
 * -t s) and reads every greeting; reports; holds them, watching for losses,
 * until the parent writes to ctl (bounded: -t + 600 s); reports how many it
 * still holds; closes them with RST (no TIME_WAIT) and exits. */
static void
idle_child(long n, int ctl, int rep)
{
    close(epfd);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = CTL_SLOT};
    if (epfd == -1 || epoll_ctl(epfd, EPOLL_CTL_ADD, ctl, &e) == -1)
        _exit(1);
    nmax = n;
    uint64_t t_end = now_ns() + (uint64_t)(dur * 1e9);
    long next = 0, inflight = 0;
    while (done_total < nmax && errors < MAX_ERRORS) {
        if (now_ns() >= t_end) {
            fail("idle_open_timeout", 0);
            break;
        }
        while (next < nmax && inflight < conc && errors < MAX_ERRORS) {
            if (conn_start((int)next))
                inflight++;
            next++;
        }
        if (next == nmax && inflight == 0)
            break; /* every session started has ended: some failed */
        idle_pump(20, &inflight);
    }
    report(rep, done_total);
    uint64_t t_kill = t_end + 600 * NS;
    while (!ctl_ready && now_ns() < t_kill)
        idle_pump(50, &inflight);
    long held = 0;
    for (long i = 0; i < nmax; i++)
        held += conns[i].state == S_IDLE;
    report(rep, held);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    for (long i = 0; i < nmax; i++) {
        if (conns[i].fd >= 0)
            (void)setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conn_close((int)i);
    }
    _exit(0);
}

/* Reads one report of every child; false when a child did not send one. */
static bool
collect(const int *rep, int n, long *count)
{
    bool ok = true;
    *count = 0;
    for (int k = 0; k < n; k++) {
        struct idle_report r;
        ssize_t got;
        do
            got = read(rep[k], &r, sizeof(r));
        while (got == -1 && errno == EINTR);
        if (got != (ssize_t)sizeof(r)) {
            fail("idle_child_gone", 0);
            ok = false;
            continue;
        }
        *count += r.count;
        errors += r.errors;
        if (r.last_error[0] != '\0')
            memcpy(last_error, r.last_error, sizeof(last_error));
    }
    return ok;
}

/* Descriptors open in a process (/proc/PID/fd), -1 if it cannot be read. */
static long
proc_fds(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The sessions are opened by -j child processes (each under the descriptor
 * limit); this process samples memory before, once all are greeted and
 * settled, and after they closed. */
static int
run_idle(void)
{
    struct sample s0 = {0}, s1 = {0};
    take(&s0, true, &snaps[0]);
    uint64_t t_open = now_ns();
    int ctl[MAX_JOBS], rep[MAX_JOBS];
    pid_t kids[MAX_JOBS];
    int nk = 0;
    for (int k = 0; k < jobs; k++) {
        int cp[2], rp[2];
        if (pipe2(cp, O_CLOEXEC) == -1 || pipe2(rp, O_CLOEXEC) == -1) {
            fail("pipe", errno);
            break;
        }
        long share = nmax / jobs + (k < nmax % jobs);
        pid_t pid = fork();
        if (pid == -1) {
            fail("fork", errno);
            break;
        }
        if (pid == 0) {
            for (int j = 0; j < nk; j++) {
                close(ctl[j]);
                close(rep[j]);
            }
            close(cp[1]);
            close(rp[0]);
            src_next = (uint64_t)k; /* the children start at different sources */
            idle_child(share, cp[0], rp[1]);
        }
        close(cp[0]);
        close(rp[1]);
        ctl[nk] = cp[1];
        rep[nk] = rp[0];
        kids[nk++] = pid;
    }
    long greeted = 0, held = 0;
    bool all = nk == jobs && collect(rep, nk, &greeted);
    double secs_greeted = (double)(now_ns() - t_open) / 1e9;
    /* Let the proxy settle (deferred frees, pools); the children still
     * watch for losses. */
    struct timespec settle = {.tv_sec = (time_t)warm,
                              .tv_nsec = (long)((warm - (double)(time_t)warm) * 1e9)};
    while (nanosleep(&settle, &settle) == -1 && errno == EINTR)
        ;
    take(&s1, true, &snaps[1]);
    char fds[16 * MAX_PIDS] = "";
    long fds_max = 0;
    for (int i = 0; i < npids; i++) {
        long f = proc_fds(pids[i]);
        size_t l = strlen(fds);
        snprintf(fds + l, sizeof(fds) - l, "%s%ld", i ? "," : "", f);
        if (f > fds_max)
            fds_max = f;
    }
    for (int k = 0; k < nk; k++)
        if (write(ctl[k], "x", 1) != 1)
            fail("idle_ctl", errno);
    all = collect(rep, nk, &held) && all;
    for (int k = 0; k < nk; k++) {
        close(ctl[k]);
        close(rep[k]);
        int st;
        while (waitpid(kids[k], &st, 0) == -1 && errno == EINTR)
            ;
    }
    /* The children closed with RST; wait for the proxy to let go. */
    uint64_t t_wait = now_ns() + 15 * NS;
    long long mem, inuse = 0;
    do {
        usleep(100 * 1000);
        sockstat(&mem, &inuse);
    } while (inuse > s0.tcp_inuse + 64 && now_ns() < t_wait);
    /* Memory is measured twice: the rise when the sessions open and the
     * fall when they close; their mean halves what other processes on the
     * machine add or free meanwhile. */
    struct sample s2 = {0};
    usleep(200 * 1000);
    take(&s2, true, &snaps[2]);
    double n = held > 0 ? (double)held : 1;
    long long rise = 0, fall = 0;
    for (int i = 0; i < snaps[1].n; i++) {
        const char *name = snaps[1].name[i];
        if (!slab_counts(name))
            continue;
        long long b0 = snap_get(&snaps[0], name), b1 = snaps[1].bytes[i];
        long long b2 = snap_get(&snaps[2], name);
        rise += b1 - b0;
        fall += b1 - b2;
        if (verbose && ((b1 - b0) + (b1 - b2)) / 2 > (long long)n * 8)
            fprintf(stderr, "slab %-24s rise %6.0f fall %6.0f B/session\n", name,
                    (double)(b1 - b0) / n, (double)(b1 - b2) / n);
    }
    rise += s1.tcpmem_b - s0.tcpmem_b;
    fall += s1.tcpmem_b - s2.tcpmem_b;
    char kernel[64] = "kernel_b_per_session=na";
    if (s0.slab_b >= 0 && s1.slab_b >= 0 && s2.slab_b >= 0) /* /proc/slabinfo is root's */
        snprintf(kernel, sizeof(kernel), "kernel_b_per_session=%.0f", (double)(rise + fall) / 2 / n);
    printf("sessions=%ld greeted=%ld procs=%d secs_to_greeted=%.2f rss_before_kb=%lld "
           "rss_after_kb=%lld rss_b_per_session=%.0f "
           "rss_fall_b_per_session=%.0f kernel_rise_b_per_session=%.0f "
           "kernel_fall_b_per_session=%.0f %s tcpmem_delta_b=%lld "
           "slab_all_delta_b=%lld slab_pages_delta_b=%lld slab_shrunk=%d tcp_inuse_left=%lld "
           "pid_fds=%s fds_max=%ld errors=%ld last_error=%s\n",
           held, greeted, nk, secs_greeted, s0.rss_kb, s1.rss_kb,
           (double)(s1.rss_kb - s0.rss_kb) * 1024.0 / n,
           (double)(s1.rss_kb - s2.rss_kb) * 1024.0 / n, (double)rise / n, (double)fall / n, kernel,
           s1.tcpmem_b - s0.tcpmem_b, s1.slab_b - s0.slab_b, s1.slabpg_b - s0.slabpg_b,
           shrunk ? 1 : 0, inuse - s0.tcp_inuse, fds[0] ? fds : "-", fds_max, errors,
           last_error[0] ? last_error : "-");
    return all && errors == 0 && held == nmax && greeted == nmax ? 0 : 1;
}

/* --- probe --------------------------------------------------------------- */

static int
run_probe(void)
{
    uint64_t t_end = now_ns() + (uint64_t)(dur * 1e9);
    while (now_ns() < t_end) {
        errors = 0;
        if (conn_start(0)) {
            bool finished = false;
            while (!finished && now_ns() < t_end) {
                struct epoll_event ev;
                if (epoll_wait(epfd, &ev, 1, 50) == 1)
                    finished = short_event(0);
            }
            conn_close(0);
            if (finished && errors == 0) {
                printf("probe=ok\n");
                return 0;
            }
        }
        usleep(50 * 1000);
    }
    printf("probe=failed errors=%ld last_error=%s\n", errors, last_error[0] ? last_error : "-");
    return 1;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *m = argv[1];
    if (strcmp(m, "probe") == 0)
        mode = M_PROBE;
    else if (strcmp(m, "short") == 0)
        mode = M_SHORT;
    else if (strcmp(m, "up") == 0)
        mode = M_UP;
    else if (strcmp(m, "both") == 0)
        mode = M_BOTH;
    else if (strcmp(m, "idle") == 0)
        mode = M_IDLE;
    else
        usage();
    const char *addr = NULL, *srcs = "127.77.1.1";
    int ch;
    optind = 2;
    while ((ch = getopt(argc, argv, "a:S:s:c:n:t:w:p:b:k:j:l:v")) != -1) {
        switch (ch) {
        case 'v':
            verbose = true;
            break;
        case 'a':
            addr = optarg;
            if (ntargets == MAX_TARGETS || parse_addr(addr, &targets[ntargets++].dst) == -1)
                usage();
            break;
        case 'l':
            slice = atof(optarg);
            break;
        case 'S':
            srcs = optarg;
            break;
        case 's':
            nsrc = atoi(optarg);
            break;
        case 'c':
            conc = atoi(optarg);
            break;
        case 'n':
            nmax = atol(optarg);
            break;
        case 't':
            dur = atof(optarg);
            break;
        case 'w':
            warm = atof(optarg);
            break;
        case 'k':
            core = atoi(optarg);
            break;
        case 'j':
            jobs = atoi(optarg);
            break;
        case 'b':
            be_pid = atoi(optarg);
            break;
        case 'p': /* the processes of the last -a */
            if (ntargets == 0)
                usage();
            for (char *tok = strtok(optarg, ","); tok != NULL && targets[ntargets - 1].npids < MAX_PIDS;
                 tok = strtok(NULL, ","))
                targets[ntargets - 1].pids[targets[ntargets - 1].npids++] = atoi(tok);
            break;
        default:
            usage();
        }
    }
    struct in_addr sa;
    if (addr == NULL || parse_addr(addr, &dst) == -1 || inet_pton(AF_INET, srcs, &sa) != 1 ||
        nsrc < 1 || conc < 1 || nmax < 1 || jobs < 1 || jobs > MAX_JOBS || dur <= 0 || dur > 600 ||
        warm < 0 || warm > 60 || (ntargets > 1 && slice <= 0) ||
        (slice > 0 && (mode != M_SHORT || slice < 0.01 || slice > dur)))
        usage();
    npids = targets[0].npids;
    memcpy(pids, targets[0].pids, sizeof(pids));
    src_first = ntohl(sa.s_addr);
    clk_tck = sysconf(_SC_CLK_TCK);
    memset(xs, 'x', sizeof(xs));
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (mode == M_PROBE)
        conc = 1;
    /* idle: each of the -j children holds its share of the sessions. */
    long slots = mode == M_IDLE ? (nmax + jobs - 1) / jobs : conc;
    if (mode == M_IDLE && (rlim_t)slots + 16 > rl.rlim_cur) {
        fprintf(stderr,
                "loadgen: %ld sessions per process need more than the fd limit %llu"
                " (-j spreads them over more processes)\n",
                slots, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    conns = calloc((size_t)slots, sizeof(*conns));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || epfd == -1) {
        perror("loadgen");
        return 1;
    }
    for (long i = 0; i < slots; i++)
        conns[i].fd = -1;
    switch (mode) {
    case M_PROBE:
        return run_probe();
    case M_SHORT:
        return slice > 0 ? run_short_turns() : run_short();
    case M_UP:
        return run_bulk(false);
    case M_BOTH:
        return run_bulk(true);
    case M_IDLE:
        return run_idle();
    }
    return 2;
}
