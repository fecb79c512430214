/* notify: sd_notify(3) when built with libsystemd (HAVE_SYSTEMD). */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* Non-blocking, close-on-exec, and a listening stream socket. */
static int
prepare_fds(int n)
{
    for (int fd = NOTIFY_LISTEN_FDS_START; fd < NOTIFY_LISTEN_FDS_START + n; fd++) {
        int type = 0, listening = 0;
        socklen_t len = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
            return -1;
        len = sizeof(listening);
        if (type != SOCK_STREAM ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1 || !listening) {
            errno = ENOTSOCK;
            return -1;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
            fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
            return -1;
    }
    return n;
}

#if defined(HAVE_SYSTEMD) && HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

bool
notify_available(void)
{
    return true;
}

void
notify_send(const char *state)
{
    /* A datagram to a local socket: it does not block the loop. */
    (void)sd_notify(0, state);
}

int
notify_listen_fds(void)
{
    int n = sd_listen_fds(1);
    if (n < 0) {
        errno = -n;
        return -1;
    }
    return prepare_fds(n);
}

uint64_t
notify_watchdog_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    /* Ping at half the interval, as sd_watchdog_enabled(3) advises. */
    uint64_t ms = usec / 2000u;
    return ms > 0 ? ms : 1;
}
#else
bool
notify_available(void)
{
    return false;
}

/* The same protocol as sd_listen_fds(3), for builds without libsystemd. */
int
notify_listen_fds(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    uint64_t p = 0, n = 0;
    int rc = 0;
    if (pid == NULL || fds == NULL)
        goto out;
    if (util_parse_uint(pid, UINT32_MAX, &p) == -1 || util_parse_uint(fds, 1000, &n) == -1) {
        errno = EINVAL;
        rc = -1;
        goto out;
    }
    if (p != (uint64_t)getpid())
        goto out;
    rc = prepare_fds((int)n);
out:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}

void
notify_send(const char *state)
{
    (void)state;
}

uint64_t
notify_watchdog_ms(void)
{
    return 0;
}
#endif
