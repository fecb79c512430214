/*
 * Unit tests for util: numbers, durations, sizes, bounded copies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>

#include <string.h>

#include "util.h"

struct num_case {
    const char *in;
    uint64_t max;
    int rc;
    uint64_t want;
};

static void
test_parse_uint(void **state)
{
    static const struct num_case cases[] = {
        { "0", 10, 0, 0 },
        { "10", 10, 0, 10 },
        { "11", 10, -1, 0 },
        { "007", 10, 0, 7 },
        { "65535", 65535, 0, 65535 },
        { "65536", 65535, -1, 0 },
        { "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
        { "18446744073709551616", UINT64_MAX, -1, 0 },
        { "99999999999999999999", UINT64_MAX, -1, 0 },
        { "", 10, -1, 0 },
        { "-1", 10, -1, 0 },
        { "+1", 10, -1, 0 },
        { " 1", 10, -1, 0 },
        { "1 ", 10, -1, 0 },
        { "0x10", 100, -1, 0 },
        { "1a", 100, -1, 0 },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        int rc = util_parse_uint(cases[i].in, cases[i].max, &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].want))
            fail_msg("util_parse_uint(\"%s\"): rc %d value %llu", cases[i].in, rc,
                     (unsigned long long)v);
    }
    assert_int_equal(util_parse_uint(NULL, 10, &(uint64_t){ 0 }), -1);
}

struct unit_case {
    const char *in;
    int rc;
    uint64_t want;
};

static void
test_parse_duration(void **state)
{
    static const struct unit_case cases[] = {
        { "30s", 0, 30000 },
        { "1500ms", 0, 1500 },
        { "0ms", 0, 0 },
        { "30m", 0, 30ULL * 60 * 1000 },
        { "2h", 0, 2ULL * 3600 * 1000 },
        { "18446744073709551615ms", 0, UINT64_MAX },
        { "18446744073709551615s", -1, 0 },
        { "18446744073709551h", -1, 0 },
        { "5124095576030h", 0, 5124095576030ULL * 3600000ULL },
        { "5124095576031h", -1, 0 },
        { "30", -1, 0 },
        { "", -1, 0 },
        { "s", -1, 0 },
        { "ms", -1, 0 },
        { "30 s", -1, 0 },
        { "30S", -1, 0 },
        { "30sec", -1, 0 },
        { "30d", -1, 0 },
        { "1.5s", -1, 0 },
        { "-1s", -1, 0 },
        { "30ss", -1, 0 },
        { "30mss", -1, 0 },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        int rc = util_parse_duration(cases[i].in, &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].want))
            fail_msg("util_parse_duration(\"%s\"): rc %d value %llu", cases[i].in, rc,
                     (unsigned long long)v);
    }
}

static void
test_parse_size(void **state)
{
    static const struct unit_case cases[] = {
        { "0", 0, 0 },
        { "512", 0, 512 },
        { "16k", 0, 16384 },
        { "16K", 0, 16384 },
        { "2m", 0, 2 * 1024 * 1024 },
        { "2M", 0, 2 * 1024 * 1024 },
        { "18446744073709551615", 0, UINT64_MAX },
        { "18014398509481983k", 0, 18014398509481983ULL * 1024 },
        { "18014398509481984k", -1, 0 },
        { "17592186044416m", -1, 0 },
        { "", -1, 0 },
        { "k", -1, 0 },
        { "16kb", -1, 0 },
        { "16g", -1, 0 },
        { "16 k", -1, 0 },
        { "-16k", -1, 0 },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t v = 12345;
        int rc = util_parse_size(cases[i].in, &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].want))
            fail_msg("util_parse_size(\"%s\"): rc %d value %llu", cases[i].in, rc,
                     (unsigned long long)v);
    }
}

static void
test_strlcpy(void **state)
{
    char buf[8];
    (void)state;

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(util_strlcpy(buf, "abc", sizeof(buf)), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(util_strlcpy(buf, "1234567", sizeof(buf)), 0);
    assert_string_equal(buf, "1234567");
    assert_int_equal(util_strlcpy(buf, "12345678", sizeof(buf)), -1);
    assert_string_equal(buf, "1234567");
    assert_int_equal(util_strlcpy(buf, "", sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(util_strlcpy(buf, "abc", 1), -1);
    assert_string_equal(buf, "");
}

/* One wording per errno, for probe's results and verify's evidence alike. */
static void
test_errno_text(void **state)
{
    (void)state;
    assert_string_equal(util_errno_text(ECONNREFUSED), "connection refused");
    assert_string_equal(util_errno_text(ETIMEDOUT), "timed out");
    assert_string_equal(util_errno_text(ECONNRESET), "connection reset");
    assert_string_equal(util_errno_text(EHOSTUNREACH), "host unreachable");
    assert_string_equal(util_errno_text(ENETUNREACH), "network unreachable");
    assert_string_equal(util_errno_text(EADDRNOTAVAIL), "address not available");
    assert_string_equal(util_errno_text(EACCES), strerror(EACCES));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_errno_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
