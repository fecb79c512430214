/*
 * bench/shim/spin.c: measurement only (bench/profile.sh spin), never
 * shipped. LD_PRELOAD'ed into mailedge, it polls epoll without sleeping
 * for up to SPIN_US microseconds before each blocking epoll_wait: what a
 * bounded busy-poll in loop.c would do (HAProxy has `busy-polling`, which
 * never sleeps at all).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

static long long
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int
epoll_wait(int ep, struct epoll_event *ev, int max, int timeout)
{
    static int (*real)(int, struct epoll_event *, int, int);
    static long long spin = -1;
    if (real == NULL)
        real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
    if (spin < 0) {
        const char *e = getenv("SPIN_US");
        spin = (e ? atoll(e) : 100) * 1000;
    }
    if (timeout == 0 || spin == 0)
        return real(ep, ev, max, timeout);
    long long end = now_ns() + spin;
    do {
        int n = real(ep, ev, max, 0);
        if (n != 0)
            return n;
    } while (now_ns() < end);
    return real(ep, ev, max, timeout);
}
