/*
 * procstat: process metrics from /proc/self (see procstat.h).
 */
#include "procstat.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int
procstat_parse_stat(const char *text, size_t len, uint64_t *start_ticks, uint64_t *rss_pages)
{
    const char *p = NULL;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ')')
            p = text + i;
    if (p == NULL)
        return -1;
    const char *end = text + len;
    p++;
    /* Field 3 (state) is the first after the name; 22 and 24 are wanted. */
    int found = 0;
    for (int field = 3; field <= 24; field++) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            return -1;
        uint64_t v = 0;
        bool digits = *p >= '0' && *p <= '9';
        for (; p < end && *p != ' ' && *p != '\n'; p++)
            if (digits && *p >= '0' && *p <= '9' && v <= (UINT64_MAX - 9) / 10)
                v = v * 10 + (uint64_t)(*p - '0');
            else
                digits = false;
        if (field == 22 || field == 24) {
            if (!digits)
                return -1;
            *(field == 22 ? start_ticks : rss_pages) = v;
            found++;
        }
    }
    return found == 2 ? 0 : -1;
}

/* Reads a small file whole; returns its length or -1. */
static ssize_t
slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The boot time (btime) from /proc/stat, Unix seconds; 0 when unknown. */
static uint64_t
boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    unsigned long long bt = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %llu", &bt) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return bt;
}

/* Start time and resident memory from <path> (a /proc/PID/stat). */
static int
read_stat(const char *path, struct metrics_process *p)
{
    char buf[1024];
    uint64_t ticks, pages;
    ssize_t len = slurp(path, buf, sizeof(buf));
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (len < 0 || procstat_parse_stat(buf, (size_t)len, &ticks, &pages) == -1 || hz <= 0 ||
        page <= 0)
        return -1;
    p->start_time = boot_time() + ticks / (uint64_t)hz;
    p->resident_bytes = pages * (uint64_t)page;
    return 0;
}

int
procstat_read_pid(int pid, struct metrics_process *p)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    return read_stat(path, p);
}

int
procstat_read(struct metrics_process *p)
{
    if (read_stat("/proc/self/stat", p) == -1)
        return -1;

    /* Linux 6.2 and later give the count as the directory's size: no walk
     * over every descriptor (a worker publishes it every second). */
    struct stat sb;
    if (stat("/proc/self/fd", &sb) == 0 && sb.st_size > 0) {
        p->open_fds = (uint64_t)sb.st_size;
    } else {
        DIR *d = opendir("/proc/self/fd");
        if (d == NULL)
            return -1;
        uint64_t n = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        p->open_fds = n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return -1;
    p->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return 0;
}
