/* sock: socket helpers for the loop (Redis's anet, our shape). */
#include "sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "fault.h"

static void
set_int(int fd, int level, int opt, int val)
{
    /* Best effort: a failing option is not worth refusing the socket. */
    (void)setsockopt(fd, level, opt, &val, sizeof(val));
}

int
sock_listen(const struct sockaddr *sa, bool dualstack, bool reuseport, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (reuseport)
        set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (sa->sa_family == AF_INET6)
        set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, dualstack ? 0 : 1);
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    /* Accepted sockets inherit it: a client's urgent byte is relayed as
     * the data it is, not dropped. */
    set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1);
    if (bind(fd, sa, addr_len(sa)) == -1 || listen(fd, backlog) == -1) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int
sock_accept(int lfd, struct sockaddr_storage *peer)
{
    socklen_t len = sizeof(*peer);
    int fd;
    do {
        fd = accept4(lfd, (struct sockaddr *)peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd == -1 && errno == EINTR);
    if (fd >= 0)
        addr_unmap(peer);
    return fd;
}

void
sock_delay_acks(int fd)
{
    set_int(fd, IPPROTO_TCP, TCP_QUICKACK, 0);
}

int
sock_connect(const struct sockaddr *sa, const struct sockaddr *src, bool delay_acks)
{
    if (fault_hit(FAULT_SOCKET)) {
        errno = EMFILE;
        return -1;
    }
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    if (delay_acks)
        sock_delay_acks(fd);
    if (src != NULL && bind(fd, src, addr_len(src)) == -1)
        goto fail;
    if (connect(fd, sa, addr_len(sa)) == -1 && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int
sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return errno;
    return err;
}

int
sock_local(int fd, struct sockaddr_storage *out)
{
    socklen_t len = sizeof(*out);
    if (getsockname(fd, (struct sockaddr *)out, &len) == -1)
        return -1;
    addr_unmap(out);
    return 0;
}

bool
sock_exhausted(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}
