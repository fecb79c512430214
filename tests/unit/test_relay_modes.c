/*
 * Unit tests for the relay's modes (splice on|off|auto): auto copies a
 * small read and turns to splice after a read that fills its buffer, and
 * every byte arrives in order either way; a short read by copy ends the
 * pump without the read that would only say EAGAIN, or after the peer's FIN
 * was signalled (relay_end.fin) without the read that would only say EOF,
 * unless an error or urgent data was (relay_end.wary); the EOF is passed on
 * with a shutdown unless the caller closes the destination next
 * (relay_end.closes). Unix socket pairs stand in for the client and the
 * server.
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
struct rig {
    int src[2], dst[2];
    struct relay_pool *pool;
    struct relay_half h;
    size_t at; /* bytes checked at the destination */
};

static void
rig_open(struct rig *r, enum relay_mode mode)
{
    int big = 4 * BIG;
    memset(r, 0, sizeof(*r));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->src), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->dst), 0);
    (void)setsockopt(r->src[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    (void)setsockopt(r->dst[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    r->pool = relay_pool_new(4);
    assert_non_null(r->pool);
    relay_half_init(&r->h, mode);
}

static void
rig_close(struct rig *r)
{
    relay_half_release(r->pool, &r->h);
    relay_pool_free(r->pool);
    for (int i = 0; i < 2; i++) {
        close(r->src[i]);
        close(r->dst[i]);
    }
}

/* Sends <n> bytes of a counting pattern that starts at <from>. */
static void
feed(struct rig *r, size_t from, size_t n)
{
    static unsigned char b[BIG];
    assert_true(n <= sizeof(b));
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((from + i) % 251);
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(r->src[1], b + off, n - off, 0);
        assert_true(k > 0);
        off += (size_t)k;
    }
}

/* Reads what reached the destination and checks it continues the pattern. */
static void
drain_check(struct rig *r)
{
    unsigned char b[65536];
    ssize_t k;
    while ((k = recv(r->dst[1], b, sizeof(b), MSG_DONTWAIT)) > 0) {
        for (ssize_t i = 0; i < k; i++)
            assert_int_equal(b[i], (unsigned char)((r->at + (size_t)i) % 251));
        r->at += (size_t)k;
    }
}

/* What the kernel signalled about the source. */
enum signalled { NOTHING, FIN, WARY };

static enum relay_result
pump(struct rig *r, enum signalled sig, bool closes)
{
    struct relay_end src = {.fd = r->src[0], .rd = true, .fin = sig == FIN, .wary = sig == WARY},
                     dst = {.fd = r->dst[0], .wr = true, .closes = closes};
    bool moved = false;
    return relay_pump(r->pool, &r->h, &src, &dst, 1 << 22, &moved);
}

static void
test_auto_copies_small_then_splices_bulk(void **state)
{
    struct rig r;

    (void)state;
    rig_open(&r, RELAY_AUTO);
    feed(&r, 0, 100); /* a greeting */
    assert_int_equal(pump(&r, NOTHING, false), RELAY_BLOCKED);
    assert_true(r.h.copy);
    assert_int_equal(r.h.pipe[0], -1);
    assert_null(r.h.buf); /* back in the pool once empty */
    drain_check(&r);
    assert_int_equal(r.at, 100);

    feed(&r, 100, BIG); /* a message body: fills the buffer, then splices */
    while (r.at < 100 + BIG) {
        enum relay_result res = pump(&r, NOTHING, false);
        assert_true(res == RELAY_BLOCKED || res == RELAY_MORE);
        drain_check(&r);
    }
    assert_false(r.h.copy);
    assert_false(r.h.autosplice);
    assert_int_equal(r.h.bytes, 100 + BIG);

    feed(&r, 100 + BIG, 10); /* small again: stays spliced */
    assert_int_equal(pump(&r, NOTHING, false), RELAY_BLOCKED);
    drain_check(&r);
    assert_int_equal(r.at, 110 + BIG);
    assert_false(r.h.copy);
    rig_close(&r);
}

static void
test_splice_on_small(void **state)
{
    struct rig r;

    (void)state;
    rig_open(&r, RELAY_SPLICE);
    feed(&r, 0, 100);
    assert_int_equal(pump(&r, NOTHING, false), RELAY_BLOCKED);
    assert_false(r.h.copy);
    drain_check(&r);
    assert_int_equal(r.at, 100);
    rig_close(&r);
}

/*
 * 100 bytes, and the FIN behind them when <shut>. Without a signal the
 * short read ends the pump (the EOF waits for its own event). With the FIN
 * signalled, the pump takes the short read for the last bytes and passes
 * the EOF on without reading it: with no real FIN behind the bytes, it
 * still ends, which shows that it did not read. Wary, it reads on to
 * whatever is there.
 */
static void
short_read(enum relay_mode mode, bool shut, enum signalled sig, enum relay_result want,
           bool want_eof)
{
    struct rig r;

    rig_open(&r, mode);
    feed(&r, 0, 100);
    if (shut)
        assert_int_equal(shutdown(r.src[1], SHUT_WR), 0);
    assert_int_equal(pump(&r, sig, false), want);
    assert_int_equal(r.h.eof, want_eof);
    drain_check(&r);
    assert_int_equal(r.at, 100);
    rig_close(&r);
}

static void
test_short_copy_read_skips_the_eagain_read(void **state)
{
    (void)state;
    short_read(RELAY_AUTO, true, NOTHING, RELAY_BLOCKED, false);
    short_read(RELAY_COPY, true, NOTHING, RELAY_BLOCKED, false);
}

static void
test_fin_signalled_skips_the_eof_read(void **state)
{
    (void)state;
    short_read(RELAY_AUTO, true, FIN, RELAY_DONE, true);
    short_read(RELAY_COPY, true, FIN, RELAY_DONE, true);
    short_read(RELAY_AUTO, false, FIN, RELAY_DONE, true);
    short_read(RELAY_COPY, false, FIN, RELAY_DONE, true);
    /* A short splice proves nothing: splice always reads on. */
    short_read(RELAY_SPLICE, true, NOTHING, RELAY_DONE, true);
    short_read(RELAY_SPLICE, false, FIN, RELAY_BLOCKED, false);
}

static void
test_wary_reads_on(void **state)
{
    (void)state;
    short_read(RELAY_AUTO, true, WARY, RELAY_DONE, true);
    short_read(RELAY_COPY, true, WARY, RELAY_DONE, true);
    short_read(RELAY_AUTO, false, WARY, RELAY_BLOCKED, false);
    short_read(RELAY_COPY, false, WARY, RELAY_BLOCKED, false);
    short_read(RELAY_SPLICE, true, WARY, RELAY_DONE, true);
}

/* Wary, a splicing half copies from then on: splice(2) would stall at an
 * urgent mark (the integration test sends one). */
static void
test_wary_copies(void **state)
{
    struct rig r;

    (void)state;
    rig_open(&r, RELAY_SPLICE);
    feed(&r, 0, 100);
    assert_int_equal(pump(&r, WARY, false), RELAY_BLOCKED);
    assert_true(r.h.copy);
    drain_check(&r);
    assert_int_equal(r.at, 100);
    rig_close(&r);
}

/* The source's EOF is passed on with shutdown(SHUT_WR), unless the
 * destination is closed right after (relay_end.closes). */
static void
eof_passed_on(bool closes, bool want_fin)
{
    struct rig r;
    char b[16];

    rig_open(&r, RELAY_AUTO);
    assert_int_equal(shutdown(r.src[1], SHUT_WR), 0);
    assert_int_equal(pump(&r, FIN, closes), RELAY_DONE);
    assert_true(r.h.done);
    ssize_t n = recv(r.dst[1], b, sizeof(b), MSG_DONTWAIT);
    if (want_fin)
        assert_int_equal(n, 0);
    else
        assert_int_equal(n, -1); /* EAGAIN: no FIN until the caller closes */
    rig_close(&r);
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
        cmocka_unit_test(test_fin_signalled_skips_the_eof_read),
        cmocka_unit_test(test_wary_reads_on),
        cmocka_unit_test(test_wary_copies),
        cmocka_unit_test(test_eof_shutdown_unless_closing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
