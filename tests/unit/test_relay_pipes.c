/*
 * Unit tests for the relay pool's pipe cap (the headroom of src/edge/fdbudget.h):
 * with the cap reached, a half copies through a buffer instead of holding
 * one more pipe; lowering the cap closes idle pipes. Unix socket pairs
 * stand in for the client and the server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

static int
open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* A source with bytes waiting and a destination whose peer never reads. */
struct path {
    int src[2], dst[2];
};

static void
path_open(struct path *p)
{
    static char junk[256 * 1024];
    int small = 4096;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->src), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->dst), 0);
    assert_int_equal(setsockopt(p->dst[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    assert_true(send(p->src[1], junk, sizeof(junk), 0) > 0);
}

static void
path_close(struct path *p)
{
    close(p->src[0]);
    close(p->src[1]);
    close(p->dst[0]);
    close(p->dst[1]);
}

/* Pumps until blocked; bytes stay pending in <h>. */
static void
pump_stuck(struct relay_pool *pool, struct relay_half *h, struct path *p)
{
    struct relay_end src = {.fd = p->src[0], .rd = true}, dst = {.fd = p->dst[0], .wr = true};
    bool moved = false;

    assert_int_equal(relay_pump(pool, h, &src, &dst, 1 << 20, &moved), RELAY_BLOCKED);
    assert_true(moved);
    assert_true(h->pending > 0);
}

static void
test_pipe_cap(void **state)
{
    struct relay_pool *pool = relay_pool_new(4);
    struct relay_half a, b;
    struct path pa, pb;

    (void)state;
    assert_non_null(pool);
    relay_pool_set_pipes_max(pool, 1);
    path_open(&pa);
    path_open(&pb);
    relay_half_init(&a, RELAY_SPLICE);
    relay_half_init(&b, RELAY_SPLICE);
    pump_stuck(pool, &a, &pa);
    assert_true(a.pipe[0] >= 0); /* the one pipe */
    assert_false(a.copy);
    pump_stuck(pool, &b, &pb);
    assert_int_equal(b.pipe[0], -1); /* no second pipe: copies */
    assert_true(b.copy);
    assert_non_null(b.buf);
    relay_half_release(pool, &a);
    relay_half_release(pool, &b);
    path_close(&pa);
    path_close(&pb);
    relay_pool_free(pool);
}

static void
test_lower_cap_closes_idle_pipes(void **state)
{
    struct relay_pool *pool = relay_pool_new(4);
    struct relay_half h;
    struct path p;
    int before;

    (void)state;
    assert_non_null(pool);
    path_open(&p);
    relay_half_init(&h, RELAY_SPLICE);
    pump_stuck(pool, &h, &p);
    /* Drain the destination: the pipe empties and goes back to the pool, idle. */
    for (;;) {
        char buf[65536];
        struct relay_end src = {.fd = p.src[0]}, dst = {.fd = p.dst[0], .wr = true};
        bool moved = false;
        while (recv(p.dst[1], buf, sizeof(buf), 0) > 0)
            ;
        relay_pump(pool, &h, &src, &dst, 1 << 20, &moved);
        if (h.pending == 0)
            break;
    }
    assert_int_equal(h.pipe[0], -1);
    before = open_fds();
    relay_pool_set_pipes_max(pool, 0);
    assert_int_equal(open_fds(), before - 2);
    relay_half_release(pool, &h);
    path_close(&p);
    relay_pool_free(pool);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_cap),
        cmocka_unit_test(test_lower_cap_closes_idle_pipes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
