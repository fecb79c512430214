/*
 * bench/shim/pipesize.c: measurement only (bench/profile.sh pipes), never
 * shipped. LD_PRELOAD'ed into mailedge, it gives every pipe SHIM_PIPE bytes
 * of capacity (F_SETPIPE_SZ) and lets each splice into a pipe ask for that
 * much instead of 64 KiB: what a larger pipe in relay.c would do.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
size(void)
{
    const char *e = getenv("SHIM_PIPE");
    return e ? atoi(e) : 1 << 20;
}

int
pipe2(int fds[2], int flags)
{
    static int (*real)(int *, int);
    if (real == NULL)
        real = (int (*)(int *, int))dlsym(RTLD_NEXT, "pipe2");
    int r = real(fds, flags);
    if (r == 0)
        (void)fcntl(fds[1], F_SETPIPE_SZ, size());
    return r;
}

ssize_t
splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len, unsigned int flags)
{
    if (len == 65536)
        len = (size_t)size();
    return syscall(SYS_splice, in, off_in, out, off_out, len, flags);
}
