/*
 * Unit tests for the default number of workers (issue 19): conf_workers_auto()
 * turns the CPUs a process may run on into a count of workers, and a load
 * without `workers`, or with `workers auto`, takes it from conf_set_cpus().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "conf_load.h"

#define ONE_L "listener one {\n    bind 127.0.0.9:2525\n    protocol smtp\n    route -> 10.0.0.5:25\n}\n"

static void
test_auto_count(void **state)
{
    (void)state;
    static const struct {
        long cpus;
        unsigned workers;
    } t[] = {
        {-1, 1}, {0, 1}, {1, 1}, {2, 2}, {12, 12}, {64, 64}, {65, CONF_WORKERS_MAX}, {4096, 64},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (conf_workers_auto(t[i].cpus) != t[i].workers)
            fail_msg("%ld CPUs: %u workers, expected %u", t[i].cpus, conf_workers_auto(t[i].cpus),
                     t[i].workers);
    }
}

/* Without a conf_set_cpus() call (the commands, these tests): one worker. */
static void
test_default_unset(void **state)
{
    (void)state;
    struct conf *c = load_ok(ONE_L, false);
    assert_int_equal(c->global.workers, 1);
    assert_true(c->global.workers_auto);
    conf_free(c);
}

static void
test_default_follows_cpus(void **state)
{
    (void)state;
    conf_set_cpus(6);
    struct conf *c = load_ok(ONE_L, false);
    assert_int_equal(c->global.workers, 6);
    assert_true(c->global.workers_auto);
    conf_free(c);
    c = load_ok("global {\n    workers auto\n}\n" ONE_L, false);
    assert_int_equal(c->global.workers, 6);
    assert_true(c->global.workers_auto);
    conf_free(c);
    c = load_ok("global {\n    workers 3\n}\n" ONE_L, false);
    assert_int_equal(c->global.workers, 3);
    assert_false(c->global.workers_auto);
    conf_free(c);
    c = load_ok("global {\n    workers 1\n}\n" ONE_L, false);
    assert_int_equal(c->global.workers, 1);
    assert_false(c->global.workers_auto);
    conf_free(c);
    conf_set_cpus(1000);
    c = load_ok(ONE_L, false);
    assert_int_equal(c->global.workers, CONF_WORKERS_MAX);
    conf_free(c);
    conf_set_cpus(1);
}

static void
test_bad_values(void **state)
{
    (void)state;
    load_bad("global {\n    workers automatic\n}\n" ONE_L, false, 2, 13,
             "bad workers 'automatic': expected auto or a count of processes from 1 to 64");
    load_bad("global {\n    workers auto\n    workers 2\n}\n" ONE_L, false, 3, 5, "duplicate");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_count),
        cmocka_unit_test(test_default_unset),
        cmocka_unit_test(test_default_follows_cpus),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
