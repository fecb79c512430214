/*
 * Unit tests for the relay's modes (splice on|off|auto): auto copies a
 * small read and turns to splice after a read that fills its buffer, and
 * every byte arrives in order either way; a short read by copy ends the
 * pump without the read that would only say EAGAIN, unless the peer's FIN
 * was signalled (relay_end.fin); the EOF is passed on with a shutdown
 * unless the caller closes the destination next (relay_end.closes). Unix
 * socket pairs stand in for the client and the server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"

#define BIG (256 * 1024)

/* src[1] -> (relay) -> dst[1]: the pump reads src[0] and writes dst[0]. */
struct path {
    int src[2], dst[2];
};

static void
path_open(struct path *p)
{
    int big = 4 * BIG;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->src), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->dst), 0);
    (void)setsockopt(p->src[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    (void)setsockopt(p->dst[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
}

static void
path_close(struct path *p)
{
    close(p->src[0]);
    close(p->src[1]);
    close(p->dst[0]);
    close(p->dst[1]);
}

/* Sends <n> bytes of a counting pattern starting at <from>. */
static void
feed(struct path *p, size_t from, size_t n)
{
    static unsigned char b[BIG];
    assert_true(n <= sizeof(b));
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((from + i) % 251);
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(p->src[1], b + off, n - off, 0);
        assert_true(k > 0);
        off += (size_t)k;
    }
}

/* Reads what reached the destination and checks it continues the pattern at <*at>. */
static void
drain_check(struct path *p, size_t *at)
{
    unsigned char b[65536];
    ssize_t k;
    while ((k = recv(p->dst[1], b, sizeof(b), MSG_DONTWAIT)) > 0) {
        for (ssize_t i = 0; i < k; i++)
            assert_int_equal(b[i], (unsigned char)((*at + (size_t)i) % 251));
        *at += (size_t)k;
    }
}

static enum relay_result
pump_to(struct relay_pool *pool, struct relay_half *h, struct path *p, bool fin, bool closes)
{
    struct relay_end src = {.fd = p->src[0], .rd = true, .fin = fin},
                     dst = {.fd = p->dst[0], .wr = true, .closes = closes};
    bool moved = false;
    return relay_pump(pool, h, &src, &dst, 1 << 22, &moved);
}

static enum relay_result
pump(struct relay_pool *pool, struct relay_half *h, struct path *p, bool fin)
{
    return pump_to(pool, h, p, fin, false);
}

static void
test_auto_copies_small_then_splices_bulk(void **state)
{
    struct relay_pool *pool = relay_pool_new(4);
    struct relay_half h;
    struct path p;
    size_t at = 0;

    (void)state;
    assert_non_null(pool);
    path_open(&p);
    relay_half_init(&h, RELAY_AUTO);

    feed(&p, 0, 100); /* a greeting */
    assert_int_equal(pump(pool, &h, &p, false), RELAY_BLOCKED);
    assert_true(h.copy);
    assert_int_equal(h.pipe[0], -1);
    assert_null(h.buf); /* back in the pool once empty */
    drain_check(&p, &at);
    assert_int_equal(at, 100);

    feed(&p, 100, BIG); /* a message body: fills the buffer, then splices */
    while (at < 100 + BIG) {
        enum relay_result r = pump(pool, &h, &p, false);
        assert_true(r == RELAY_BLOCKED || r == RELAY_MORE);
        drain_check(&p, &at);
    }
    assert_int_equal(at, 100 + BIG);
    assert_false(h.copy);
    assert_false(h.autosplice);
    assert_int_equal(h.bytes, 100 + BIG);

    feed(&p, 100 + BIG, 10); /* small again: stays spliced */
    assert_int_equal(pump(pool, &h, &p, false), RELAY_BLOCKED);
    drain_check(&p, &at);
    assert_int_equal(at, 110 + BIG);
    assert_false(h.copy);

    relay_half_release(pool, &h);
    path_close(&p);
    relay_pool_free(pool);
}

static void
test_splice_on_small(void **state)
{
    struct relay_pool *pool = relay_pool_new(4);
    struct relay_half h;
    struct path p;
    size_t at = 0;

    (void)state;
    path_open(&p);
    relay_half_init(&h, RELAY_SPLICE);
    feed(&p, 0, 100);
    assert_int_equal(pump(pool, &h, &p, false), RELAY_BLOCKED);
    assert_false(h.copy);
    drain_check(&p, &at);
    assert_int_equal(at, 100);
    relay_half_release(pool, &h);
    path_close(&p);
    relay_pool_free(pool);
}

/*
 * 100 bytes and the FIN behind them. Without <fin> the short read ends the
 * pump (the EOF waits for its own event); with it, the pump reads on, sees
 * the EOF and passes it on.
 */
static void
short_read_then_eof(enum relay_mode mode, bool fin, enum relay_result want, bool want_eof)
{
    struct relay_pool *pool = relay_pool_new(4);
    struct relay_half h;
    struct path p;
    size_t at = 0;

    path_open(&p);
    relay_half_init(&h, mode);
    feed(&p, 0, 100);
    assert_int_equal(shutdown(p.src[1], SHUT_WR), 0);
    assert_int_equal(pump(pool, &h, &p, fin), want);
    assert_int_equal(h.eof, want_eof);
    drain_check(&p, &at);
    assert_int_equal(at, 100);
    relay_half_release(pool, &h);
    path_close(&p);
    relay_pool_free(pool);
}

static void
test_short_copy_read_skips_the_eagain_read(void **state)
{
    (void)state;
    short_read_then_eof(RELAY_AUTO, false, RELAY_BLOCKED, false);
    short_read_then_eof(RELAY_COPY, false, RELAY_BLOCKED, false);
}

static void
test_fin_signalled_reads_to_eof(void **state)
{
    (void)state;
    short_read_then_eof(RELAY_AUTO, true, RELAY_DONE, true);
    short_read_then_eof(RELAY_COPY, true, RELAY_DONE, true);
    /* A short splice proves nothing: splice always reads on. */
    short_read_then_eof(RELAY_SPLICE, false, RELAY_DONE, true);
}

/* The source's EOF is passed on with shutdown(SHUT_WR), unless the
 * destination is closed right after (relay_end.closes). */
static void
eof_passed_on(bool closes, bool want_fin)
{
    struct relay_pool *pool = relay_pool_new(4);
    struct relay_half h;
    struct path p;
    char b[16];

    path_open(&p);
    relay_half_init(&h, RELAY_AUTO);
    assert_int_equal(shutdown(p.src[1], SHUT_WR), 0);
    assert_int_equal(pump_to(pool, &h, &p, true, closes), RELAY_DONE);
    assert_true(h.done);
    ssize_t n = recv(p.dst[1], b, sizeof(b), MSG_DONTWAIT);
    if (want_fin)
        assert_int_equal(n, 0);
    else
        assert_int_equal(n, -1); /* EAGAIN: no FIN until the caller closes */
    relay_half_release(pool, &h);
    path_close(&p);
    relay_pool_free(pool);
}

static void
test_eof_shutdown_unless_closing(void **state)
{
    (void)state;
    eof_passed_on(false, true);
    eof_passed_on(true, false);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_copies_small_then_splices_bulk),
        cmocka_unit_test(test_splice_on_small),
        cmocka_unit_test(test_short_copy_read_skips_the_eagain_read),
        cmocka_unit_test(test_fin_signalled_reads_to_eof),
        cmocka_unit_test(test_eof_shutdown_unless_closing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
