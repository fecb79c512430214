/*
 * Unit tests for fault: the MAILEDGE_TEST_FAULTS spec and the call counting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fault.h"

static void
test_parse_good(void **state)
{
    (void)state;
    struct fault_plan p;
    assert_int_equal(fault_parse("", &p), 0);
    for (int i = 0; i < FAULT_SITES; i++)
        assert_int_equal(p.nth[i], 0);
    assert_int_equal(fault_parse("buffer:1", &p), 0);
    assert_int_equal(p.nth[FAULT_BUFFER], 1);
    assert_int_equal(fault_parse("session:2,socket:30,pipe:1,epoll:4,timer:5", &p), 0);
    assert_int_equal(p.nth[FAULT_SESSION], 2);
    assert_int_equal(p.nth[FAULT_SOCKET], 30);
    assert_int_equal(p.nth[FAULT_PIPE], 1);
    assert_int_equal(p.nth[FAULT_EPOLL], 4);
    assert_int_equal(p.nth[FAULT_TIMER], 5);
    assert_int_equal(p.nth[FAULT_BUFFER], 0);
}

static void
test_parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "buffer", "buffer:", "buffer:0", "buffer:-1", "buffer:x", "nosuch:1",
        "buffer:1,", ",buffer:1", "buffer:1,,socket:2", "buffer:99999999999",
        "Buffer:1", "buffer :1", "buffer:1 ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fault_plan p;
        if (fault_parse(bad[i], &p) != -1)
            fail_msg("accepted '%s'", bad[i]);
    }
}

static void
test_only_the_nth_call_fails(void **state)
{
    (void)state;
    struct fault_plan p;
    assert_false(fault_hit(FAULT_BUFFER));   /* nothing armed */
    assert_int_equal(fault_parse("buffer:3", &p), 0);
    fault_arm(&p);
    assert_false(fault_hit(FAULT_SOCKET));
    assert_false(fault_hit(FAULT_BUFFER));
    assert_false(fault_hit(FAULT_BUFFER));
    assert_true(fault_hit(FAULT_BUFFER));
    for (int i = 0; i < 10; i++)
        assert_false(fault_hit(FAULT_BUFFER));
    struct fault_plan none = {0};
    fault_arm(&none);
    assert_false(fault_hit(FAULT_BUFFER));
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(fault_site_name(FAULT_PIPE), "pipe");
    assert_string_equal(fault_site_name(FAULT_SITES), "?");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_only_the_nth_call_fails),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
