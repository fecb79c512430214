/*
 * bench/shim/sharedaccept.c: measurement only (docs/performance.md, "N
 * workers, unpinned"), never shipped. LD_PRELOAD'ed into mailedge with
 * `workers N`, it makes the workers share one listening socket instead of
 * one SO_REUSEPORT socket each: what a supervisor that binds before the fork
 * would do. Before its first fork() the supervisor binds SHIM_SHARED
 * (A.B.C.D:PORT); a worker's bind() to that address gets the shared socket
 * (dup3 onto its descriptor), and epoll_ctl() watches it with EPOLLEXCLUSIVE,
 * so the kernel wakes one waiting worker per connection and a worker that
 * is not waiting is not handed any. EPOLLEXCLUSIVE cannot be modified, so a
 * MOD becomes DEL and ADD (events 0, accepting paused: DEL only).
 *
 *   cc -shared -fPIC -o sharedaccept.so bench/shim/sharedaccept.c -ldl
 *   SHIM_SHARED=127.77.0.1:PORT LD_PRELOAD=./sharedaccept.so mailedge -c CONF
 *
 * (CONF with `workers 2` and a listener bound to 127.77.0.1:PORT.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 16

static int shared_fd = -1;
static int mine[MAXFD], nmine; /* descriptors that are the shared socket */

static int
want(struct sockaddr_in *sa)
{
    const char *e = getenv("SHIM_SHARED");
    if (e == NULL)
        return -1;
    const char *colon = strrchr(e, ':');
    if (colon == NULL || colon - e >= 32)
        return -1;
    char host[32];
    memcpy(host, e, (size_t)(colon - e));
    host[colon - e] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int
is_mine(int fd)
{
    for (int i = 0; i < nmine; i++)
        if (mine[i] == fd)
            return 1;
    return 0;
}

pid_t
fork(void)
{
    static pid_t (*real)(void);
    if (real == NULL)
        real = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
    struct sockaddr_in sa;
    if (shared_fd < 0 && want(&sa) == 0) {
        int one = 1;
        shared_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        (void)setsockopt(shared_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        (void)setsockopt(shared_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(shared_fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(shared_fd, 1024) == -1)
            abort();
    }
    return real();
}

int
bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    struct sockaddr_in sa;
    if (shared_fd >= 0 && fd != shared_fd && addr->sa_family == AF_INET && want(&sa) == 0 &&
        memcmp(&((const struct sockaddr_in *)addr)->sin_addr, &sa.sin_addr, 4) == 0 &&
        ((const struct sockaddr_in *)addr)->sin_port == sa.sin_port && nmine < MAXFD) {
        if (dup3(shared_fd, fd, O_CLOEXEC) == -1)
            return -1;
        mine[nmine++] = fd;
        return 0;
    }
    return real(fd, addr, len);
}

int
epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
    static int (*real)(int, int, int, struct epoll_event *);
    if (real == NULL)
        real = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
    if (!is_mine(fd))
        return real(ep, op, fd, ev);
    /* DEL of one that a paused MOD already took out: not an error. */
    (void)real(ep, EPOLL_CTL_DEL, fd, NULL);
    if (op == EPOLL_CTL_DEL)
        return 0;
    if (ev->events == 0)
        return 0;
    struct epoll_event x = *ev;
    x.events |= EPOLLEXCLUSIVE;
    return real(ep, EPOLL_CTL_ADD, fd, &x);
}
