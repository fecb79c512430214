/*
 * Unit tests for fdbudget: the reserve, the headroom and maxconn derived
 * from RLIMIT_NOFILE and the configuration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fdbudget.h"

/* Every descriptor is accounted for, and sessions never reach the reserve. */
static void
check_sums(const struct fdbudget_in *in, const struct fdbudget *b)
{
    uint64_t used = b->reserve + (uint64_t)b->maxconn * FDB_SESSION + 2 * b->pipes + b->connects;
    if (in->nofile >= b->reserve + FDB_HEADROOM_MIN)
        assert_true(used <= in->nofile);
    assert_true(b->maxconn <= b->maxconn_fit);
}

static void
test_this_machine(void **state)
{
    /* 20,000 descriptors, one listener, one checked server, admin: the
     * numbers docs/config.md quotes. */
    struct fdbudget_in in = {.nofile = 20000, .binds = 1, .checks = 1, .admin = true};
    struct fdbudget b;

    (void)state;
    fdbudget_plan(&in, &b);
    assert_int_equal(b.reserve, 32 + 2 + 8 + 36);
    assert_int_equal(b.maxconn_fit, (20000 - 78 - (20000 - 78) / 32) / 2);
    assert_int_equal(b.maxconn, b.maxconn_fit);
    assert_int_equal(b.pipes, (20000 - 78) / 32 / 4);
    check_sums(&in, &b);
}

/* crowdsec: the poller's descriptors are in the reserve. */
static void
test_bouncer_reserve(void **state)
{
    struct fdbudget_in in = {.nofile = 1024, .binds = 1};
    struct fdbudget a, b;

    (void)state;
    fdbudget_plan(&in, &a);
    in.bouncer = true;
    fdbudget_plan(&in, &b);
    assert_int_equal(b.reserve, a.reserve + FDB_BOUNCER);
    check_sums(&in, &b);
}

static void
test_configured_maxconn(void **state)
{
    struct fdbudget_in in = {.nofile = 20000, .binds = 2, .checks = 3, .resolver = true,
                             .maxconn = 1000};
    struct fdbudget b;

    (void)state;
    fdbudget_plan(&in, &b);
    assert_int_equal(b.maxconn, 1000);
    /* The rest goes to the headroom: more pipes and connects. */
    assert_int_equal(2 * b.pipes + b.connects, 20000 - b.reserve - 2000);
    check_sums(&in, &b);
    /* Too large for the limit: what fits. */
    in.maxconn = 50000;
    fdbudget_plan(&in, &b);
    assert_int_equal(b.maxconn, b.maxconn_fit);
    assert_true(b.maxconn < 10000);
    check_sums(&in, &b);
}

static void
test_small_and_tiny_limits(void **state)
{
    struct fdbudget_in in = {.nofile = 300, .binds = 1, .checks = 1, .admin = true};
    struct fdbudget b;

    (void)state;
    fdbudget_plan(&in, &b);
    /* 222 left: the minimum headroom of 8, then 107 sessions. */
    assert_int_equal(b.maxconn, (300 - 78 - FDB_HEADROOM_MIN) / 2);
    assert_int_equal(b.pipes, 2);
    assert_int_equal(b.connects, 4);
    check_sums(&in, &b);
    /* No room at all: no session, never a negative count. */
    for (uint64_t n = 0; n < 78 + FDB_HEADROOM_MIN + 2; n++) {
        in.nofile = n;
        fdbudget_plan(&in, &b);
        assert_int_equal(b.maxconn, 0);
        check_sums(&in, &b);
    }
    in.nofile = 78 + FDB_HEADROOM_MIN + 2;
    fdbudget_plan(&in, &b);
    assert_int_equal(b.maxconn, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_this_machine),
        cmocka_unit_test(test_configured_maxconn),
        cmocka_unit_test(test_bouncer_reserve),
        cmocka_unit_test(test_small_and_tiny_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
