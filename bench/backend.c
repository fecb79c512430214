/*
 * bench/backend.c: the mail server behind the proxies in `make bench`.
 *
 *   backend -p ADDR:PORT [-d ADDR:PORT]
 *
 * One thread, one epoll loop, level-triggered. Two listeners:
 *   -p  behind a proxy: waits for a PROXY header (v1 or v2; anything else
 *       is taken as commands), discards it, then greets;
 *   -d  direct: greets at once (server speaks first, as SMTP does); optional.
 * After "220 bench ESMTP\r\n" it reads lines:
 *   QUIT        -> "221 bye\r\n", close (the server closes first, as in SMTP)
 *   BULK UP     -> discard every byte until EOF
 *   BULK BOTH   -> discard every byte until EOF and send 'x' bytes meanwhile
 * A bulk session ends with "#250 rx=N tx=M\r\n" and a close, so the load
 * generator can check that every byte arrived. Runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <unistd.h>

#define CHUNK (256 * 1024)
#define LINE_MAX_LEN 128
#define HDR_MAX 536 /* v2: 16 + up to 520 bytes of addresses and TLVs we accept */

enum phase { P_HDR, P_CMD, P_SINK, P_TRAILER };

struct conn {
    enum phase phase;
    bool both;      /* source bytes while sinking */
    bool out_armed; /* EPOLLOUT registered */
    uint16_t len;   /* bytes in buf */
    uint16_t toff;  /* trailer bytes already written */
    uint16_t tlen;
    uint64_t rx, tx;
    char buf[HDR_MAX];
};

static const char greeting[] = "220 bench ESMTP\r\n";
static const char v2sig[12] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
static char xs[CHUNK];
static char scratch[CHUNK];
static struct conn **conns;
static int maxfd;
static int epfd;
static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void
die(const char *what)
{
    perror(what);
    exit(1);
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

static int
listen_on(const char *s)
{
    struct sockaddr_in sa;
    if (parse_addr(s, &sa) == -1) {
        fprintf(stderr, "backend: bad address %s\n", s);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 4096) == -1)
        die(s);
    return fd;
}

static void
ctl(int op, int fd, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &e) == -1 && op != EPOLL_CTL_DEL)
        die("epoll_ctl");
}

static void
drop(int fd)
{
    free(conns[fd]);
    conns[fd] = NULL;
    close(fd); /* also leaves the epoll set */
}

/* Writes a short reply whole; a fresh socket always has room for it. */
static int
say(int fd, const char *s, size_t n)
{
    return send(fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Length of a complete PROXY header at the start of buf, 0 if more is
 * needed, -1 if buf does not start with one. */
static int
proxy_len(const char *buf, size_t n)
{
    if (n >= 1 && buf[0] == '\r') {
        if (n < 16)
            return memcmp(buf, v2sig, n < 12 ? n : 12) == 0 ? 0 : -1;
        if (memcmp(buf, v2sig, 12) != 0)
            return -1;
        size_t total = 16 + (((size_t)(uint8_t)buf[14] << 8) | (uint8_t)buf[15]);
        if (total > HDR_MAX)
            return -1;
        return n >= total ? (int)total : 0;
    }
    if (n >= 1 && buf[0] == 'P') {
        size_t m = n < 6 ? n : 6;
        if (memcmp(buf, "PROXY ", m) != 0)
            return -1;
        for (size_t i = 1; i < n && i < 108; i++)
            if (buf[i - 1] == '\r' && buf[i] == '\n')
                return (int)i + 1;
        return n >= 108 ? -1 : 0;
    }
    return n == 0 ? 0 : -1;
}

static void
arm_out(int fd, struct conn *c, bool on)
{
    if (c->out_armed == on)
        return;
    c->out_armed = on;
    ctl(EPOLL_CTL_MOD, fd, EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0));
}

/* Sends the trailer; closes when it is all out. */
static void
trailer(int fd, struct conn *c)
{
    while (c->toff < c->tlen) {
        ssize_t w = send(fd, c->buf + c->toff, c->tlen - c->toff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Output only: the input is at EOF and would wake us forever. */
            c->out_armed = true;
            ctl(EPOLL_CTL_MOD, fd, EPOLLOUT);
            return;
        }
        if (w <= 0) {
            drop(fd);
            return;
        }
        c->toff += (uint16_t)w;
    }
    drop(fd);
}

static void
start_trailer(int fd, struct conn *c)
{
    c->phase = P_TRAILER;
    int n = snprintf(c->buf, sizeof(c->buf), "#250 rx=%llu tx=%llu\r\n",
                     (unsigned long long)c->rx, (unsigned long long)c->tx);
    c->tlen = (uint16_t)n;
    c->toff = 0;
    trailer(fd, c);
}

/* Handles complete command lines in c->buf. Returns -1 when fd was dropped. */
static int
commands(int fd, struct conn *c)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl == NULL) {
            if (c->len >= LINE_MAX_LEN) {
                drop(fd);
                return -1;
            }
            return 0;
        }
        size_t ll = (size_t)(nl - c->buf) + 1;
        if (ll >= 6 && memcmp(c->buf, "QUIT\r\n", 6) == 0) {
            (void)say(fd, "221 bye\r\n", 9);
            drop(fd);
            return -1;
        }
        bool up = ll >= 9 && memcmp(c->buf, "BULK UP\r\n", 9) == 0;
        bool both = ll >= 11 && memcmp(c->buf, "BULK BOTH\r\n", 11) == 0;
        if (!up && !both) {
            (void)say(fd, "500 what\r\n", 10);
            drop(fd);
            return -1;
        }
        /* Bytes after the command line are data. */
        c->rx += c->len - ll;
        c->len = 0;
        c->phase = P_SINK;
        c->both = both;
        if (both)
            arm_out(fd, c, true);
        return 0;
    }
}

static void
on_readable(int fd, struct conn *c)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        if (c->phase == P_SINK) {
            /* MSG_TRUNC on TCP: discard in the kernel, no copy. */
            ssize_t n = recv(fd, NULL, CHUNK, MSG_TRUNC | MSG_DONTWAIT);
            if (n > 0) {
                c->rx += (uint64_t)n;
                continue;
            }
            if (n == 0) {
                start_trailer(fd, c);
                return;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            drop(fd);
            return;
        }
        if (c->phase == P_TRAILER) {
            /* Bytes after EOF cannot come; anything else is a reset. */
            ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
            if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
            if (n != 0) {
                drop(fd);
                return;
            }
            return;
        }
        size_t room = sizeof(c->buf) - c->len;
        ssize_t n = recv(fd, c->buf + c->len, room, MSG_DONTWAIT);
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            drop(fd);
            return;
        }
        if (n == -1)
            return;
        c->len += (uint16_t)n;
        if (c->phase == P_HDR) {
            int h = proxy_len(c->buf, c->len);
            if (h == 0)
                continue;
            if (h > 0) {
                memmove(c->buf, c->buf + h, c->len - (size_t)h);
                c->len -= (uint16_t)h;
            }
            c->phase = P_CMD;
            if (say(fd, greeting, sizeof(greeting) - 1) == -1) {
                drop(fd);
                return;
            }
        }
        if (commands(fd, c) == -1)
            return;
    }
}

static void
on_writable(int fd, struct conn *c)
{
    if (c->phase == P_TRAILER) {
        trailer(fd, c);
        return;
    }
    if (c->phase != P_SINK || !c->both) {
        arm_out(fd, c, false);
        return;
    }
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t w = send(fd, xs, sizeof(xs), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            c->tx += (uint64_t)w;
            continue;
        }
        if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        drop(fd);
        return;
    }
}

static void
accept_all(int lfd, bool direct)
{
    for (int i = 0; i < 256; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return; /* EAGAIN, or a client gone already, or out of fds */
        if (fd >= maxfd) {
            close(fd);
            continue;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        conns[fd] = c;
        ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLRDHUP);
        if (direct) {
            c->phase = P_CMD;
            if (say(fd, greeting, sizeof(greeting) - 1) == -1)
                drop(fd);
        }
    }
}

int
main(int argc, char **argv)
{
    const char *paddr = NULL, *daddr = NULL;
    int ch;
    while ((ch = getopt(argc, argv, "p:d:")) != -1) {
        if (ch == 'p')
            paddr = optarg;
        else if (ch == 'd')
            daddr = optarg;
        else {
            fprintf(stderr, "usage: backend -p ADDR:PORT [-d ADDR:PORT]\n");
            return 2;
        }
    }
    if (paddr == NULL) {
        fprintf(stderr, "usage: backend -p ADDR:PORT [-d ADDR:PORT]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    maxfd = (int)(rl.rlim_cur > 1048576 ? 1048576 : rl.rlim_cur);
    conns = calloc((size_t)maxfd, sizeof(*conns));
    if (conns == NULL)
        die("calloc");
    memset(xs, 'x', sizeof(xs));
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd == -1)
        die("epoll_create1");
    int pfd = listen_on(paddr), dfd = daddr != NULL ? listen_on(daddr) : -1;
    ctl(EPOLL_CTL_ADD, pfd, EPOLLIN);
    if (dfd != -1)
        ctl(EPOLL_CTL_ADD, dfd, EPOLLIN);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 256, 500);
        if (n == -1 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == pfd || fd == dfd) {
                accept_all(fd, fd == dfd);
                continue;
            }
            struct conn *c = conns[fd];
            if (c == NULL)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                on_readable(fd, c);
            if (conns[fd] == c && (evs[i].events & EPOLLOUT))
                on_writable(fd, c);
        }
    }
    return 0;
}
