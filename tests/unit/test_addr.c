/*
 * Unit tests for addr: parsing "ip:port" forms, formatting, unmapping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"
#include "util.h"

struct parse_case {
    const char *in;
    enum addr_port mode;
    int rc;
    const char *formatted;  /* addr_format() of the result when rc == 0 */
    bool any;
};

static void
test_parse_table(void **state)
{
    static const struct parse_case cases[] = {
        { "1.2.3.4:25", ADDR_PORT_REQUIRED, 0, "1.2.3.4:25", false },
        { "0.0.0.0:587", ADDR_PORT_REQUIRED, 0, "0.0.0.0:587", false },
        { "255.255.255.255:65535", ADDR_PORT_REQUIRED, 0, "255.255.255.255:65535", false },
        { "[::1]:25", ADDR_PORT_REQUIRED, 0, "[::1]:25", false },
        { "[2001:db8::1]:993", ADDR_PORT_REQUIRED, 0, "[2001:db8::1]:993", false },
        { "[::ffff:1.2.3.4]:25", ADDR_PORT_REQUIRED, 0, "[::ffff:1.2.3.4]:25", false },
        { ":25", ADDR_PORT_REQUIRED, 0, "[::]:25", true },
        { "*:25", ADDR_PORT_REQUIRED, 0, "[::]:25", true },
        { "1.2.3.4", ADDR_PORT_OPTIONAL, 0, "1.2.3.4:0", false },
        { "[::1]", ADDR_PORT_OPTIONAL, 0, "[::1]:0", false },
        { "::1", ADDR_PORT_OPTIONAL, 0, "[::1]:0", false },
        { "2001:db8::25", ADDR_PORT_OPTIONAL, 0, "[2001:db8::25]:0", false },
        { "*", ADDR_PORT_OPTIONAL, 0, "[::]:0", true },
        { "1.2.3.4:25", ADDR_PORT_OPTIONAL, 0, "1.2.3.4:25", false },
        { "1.2.3.4", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[::1]", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "::1", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "::1:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "*", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "", ADDR_PORT_OPTIONAL, -1, NULL, false },
        { ":", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.4:", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.4:0", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.4:65536", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.4:-1", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.4:25x", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.4: 25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "01.2.3.4:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.04:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "1.2.3.256:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "mail.example.com:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[::1:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[::1]25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[1.2.3.4]:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[fe80::1%eth0]:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[]:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "**:25", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[::1]:", ADDR_PORT_REQUIRED, -1, NULL, false },
        { "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]:25",
          ADDR_PORT_REQUIRED, -1, NULL, false },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct sockaddr_storage ss;
        bool any = !cases[i].any;
        const char *why = NULL;
        char buf[ADDR_STRLEN];
        int rc = addr_parse(cases[i].in, cases[i].mode, &ss, &any, &why);
        if (rc != cases[i].rc)
            fail_msg("addr_parse(\"%s\"): rc %d (%s)", cases[i].in, rc, why ? why : "-");
        if (rc != 0) {
            assert_non_null(why);
            continue;
        }
        addr_format((const struct sockaddr *)&ss, buf, sizeof(buf));
        if (strcmp(buf, cases[i].formatted) != 0 || any != cases[i].any)
            fail_msg("addr_parse(\"%s\"): got %s any=%d", cases[i].in, buf, any);
    }
}

static void
test_parse_null_any(void **state)
{
    struct sockaddr_storage ss;
    (void)state;
    assert_int_equal(addr_parse(":25", ADDR_PORT_REQUIRED, &ss, NULL, NULL), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(addr_parse("x", ADDR_PORT_REQUIRED, &ss, NULL, NULL), -1);
}

static void
test_len_port(void **state)
{
    struct sockaddr_storage ss;
    (void)state;

    assert_int_equal(addr_parse("1.2.3.4:25", ADDR_PORT_REQUIRED, &ss, NULL, NULL), 0);
    assert_int_equal(addr_len((struct sockaddr *)&ss), sizeof(struct sockaddr_in));
    assert_int_equal(addr_port((struct sockaddr *)&ss), 25);
    addr_set_port((struct sockaddr *)&ss, 65535);
    assert_int_equal(addr_port((struct sockaddr *)&ss), 65535);

    assert_int_equal(addr_parse("[::1]:587", ADDR_PORT_REQUIRED, &ss, NULL, NULL), 0);
    assert_int_equal(addr_len((struct sockaddr *)&ss), sizeof(struct sockaddr_in6));
    assert_int_equal(addr_port((struct sockaddr *)&ss), 587);
    addr_set_port((struct sockaddr *)&ss, 1);
    assert_int_equal(addr_port((struct sockaddr *)&ss), 1);

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_int_equal(addr_len((struct sockaddr *)&ss), 0);
    assert_int_equal(addr_port((struct sockaddr *)&ss), 0);
    addr_set_port((struct sockaddr *)&ss, 25);
    assert_int_equal(addr_port((struct sockaddr *)&ss), 0);
}

static void
test_unmap(void **state)
{
    struct sockaddr_storage ss;
    char buf[ADDR_STRLEN];
    (void)state;

    assert_int_equal(addr_parse("[::ffff:192.0.2.7]:4000", ADDR_PORT_REQUIRED, &ss, NULL, NULL),
                     0);
    addr_unmap(&ss);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_string_equal(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "192.0.2.7:4000");

    /* Not mapped: untouched. */
    assert_int_equal(addr_parse("[2001:db8::1]:25", ADDR_PORT_REQUIRED, &ss, NULL, NULL), 0);
    addr_unmap(&ss);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(addr_parse("[::192.0.2.7]:25", ADDR_PORT_REQUIRED, &ss, NULL, NULL), 0);
    addr_unmap(&ss);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(addr_parse("1.2.3.4:25", ADDR_PORT_REQUIRED, &ss, NULL, NULL), 0);
    addr_unmap(&ss);
    assert_string_equal(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "1.2.3.4:25");
}

static void
test_format(void **state)
{
    struct sockaddr_in6 sin6;
    char buf[ADDR_STRLEN], small[6];
    (void)state;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", &sin6.sin6_addr);
    sin6.sin6_port = htons(65535);
    sin6.sin6_scope_id = 4294967295u;
    assert_string_equal(addr_format((struct sockaddr *)&sin6, buf, sizeof(buf)),
                        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe%4294967295]:65535");
    assert_string_equal(addr_format_ip((struct sockaddr *)&sin6, buf, sizeof(buf)),
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe%4294967295");
    sin6.sin6_scope_id = 0;
    assert_string_equal(addr_format_ip((struct sockaddr *)&sin6, buf, sizeof(buf)),
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    /* Truncates, always terminated. */
    assert_string_equal(addr_format((struct sockaddr *)&sin6, small, sizeof(small)), "[ffff");

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_string_equal(addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "unknown");
}

static void
test_equal(void **state)
{
    struct sockaddr_storage a, b;
    (void)state;

    addr_parse("1.2.3.4:25", ADDR_PORT_REQUIRED, &a, NULL, NULL);
    addr_parse("1.2.3.4:25", ADDR_PORT_REQUIRED, &b, NULL, NULL);
    assert_true(addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    addr_parse("1.2.3.4:26", ADDR_PORT_REQUIRED, &b, NULL, NULL);
    assert_false(addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    addr_parse("1.2.3.5:25", ADDR_PORT_REQUIRED, &b, NULL, NULL);
    assert_false(addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    addr_parse("[::ffff:1.2.3.4]:25", ADDR_PORT_REQUIRED, &b, NULL, NULL);
    assert_false(addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    addr_parse("[::1]:25", ADDR_PORT_REQUIRED, &a, NULL, NULL);
    addr_parse("[::1]:25", ADDR_PORT_REQUIRED, &b, NULL, NULL);
    assert_true(addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    addr_parse("[::2]:25", ADDR_PORT_REQUIRED, &b, NULL, NULL);
    assert_false(addr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
}

/* "a b c" of addr_interleave_first()'s output for the space-separated <in>. */
static void
interleave_first(const char *in, int first, const char *want)
{
    struct sockaddr_storage v[16], out[16];
    char buf[512], copy[256], a[ADDR_STRLEN];
    size_t n = 0;

    util_strlcpy(copy, in, sizeof(copy));
    for (char *tok = strtok(copy, " "); tok != NULL; tok = strtok(NULL, " "))
        assert_int_equal(addr_parse(tok, ADDR_PORT_OPTIONAL, &v[n++], NULL, NULL), 0);
    size_t m = first == AF_INET6 ? addr_interleave(v, n, out)
                                 : addr_interleave_first(v, n, out, first);
    buf[0] = '\0';
    for (size_t i = 0; i < m; i++) {
        addr_format_ip((struct sockaddr *)&out[i], a, sizeof(a));
        strcat(buf, i ? " " : "");
        strcat(buf, a);
    }
    assert_string_equal(buf, want);
}

static void
interleave(const char *in, const char *want)
{
    interleave_first(in, AF_INET6, want);
}

static void
test_interleave(void **state)
{
    (void)state;
    /* IPv4 first (IPv6 lost recently): the same alternation, from v4. */
    interleave_first("::1 ::2 1.1.1.1 2.2.2.2", AF_INET, "1.1.1.1 ::1 2.2.2.2 ::2");
    interleave_first("::1 1.1.1.1", AF_INET, "1.1.1.1 ::1");
    interleave_first("::1 ::2", AF_INET, "::1 ::2");
    interleave_first("1.1.1.1 ::1 ::2 ::3", AF_INET, "1.1.1.1 ::1 ::2 ::3");
    interleave("1.1.1.1 2.2.2.2 ::1 ::2", "::1 1.1.1.1 ::2 2.2.2.2");
    interleave("::1 ::2 ::3 1.1.1.1", "::1 1.1.1.1 ::2 ::3");
    interleave("1.1.1.1 ::1 2.2.2.2 3.3.3.3", "::1 1.1.1.1 2.2.2.2 3.3.3.3");
    interleave("1.1.1.1 2.2.2.2", "1.1.1.1 2.2.2.2");
    interleave("::2 ::1", "::2 ::1");
    interleave("3.3.3.3", "3.3.3.3");
    interleave("", "");

    /* Other families are dropped; the count says so. */
    struct sockaddr_storage v[3], out[3];
    memset(v, 0, sizeof(v));
    addr_parse("1.1.1.1", ADDR_PORT_OPTIONAL, &v[0], NULL, NULL);
    v[1].ss_family = AF_UNIX;
    addr_parse("[::1]:25", ADDR_PORT_OPTIONAL, &v[2], NULL, NULL);
    assert_int_equal(addr_interleave(v, 3, out), 2);
    assert_int_equal(out[0].ss_family, AF_INET6);
    assert_int_equal(addr_port((struct sockaddr *)&out[0]), 25);
    assert_int_equal(out[1].ss_family, AF_INET);
}

/* addr_reaches_bind(dst, bind): the config check for routes back to ourselves. */
static void
test_reaches_bind(void **state)
{
    (void)state;
    static const struct {
        const char *dst, *bind;
        bool reaches;
    } cases[] = {
        {"127.0.0.1:25", "127.0.0.1:25", true},
        {"127.0.0.1:26", "127.0.0.1:25", false},
        {"127.0.0.2:25", "127.0.0.1:25", false},
        {"192.0.2.1:25", "192.0.2.1:25", true},
        {"127.0.0.9:25", "0.0.0.0:25", true},
        {"0.0.0.0:25", "0.0.0.0:25", true},
        {"192.0.2.1:25", "0.0.0.0:25", false}, /* maybe local: only known at run time */
        {"[::1]:25", "0.0.0.0:25", false},
        {"[::1]:25", "[::]:25", true},
        {"127.0.0.1:25", "[::]:25", false},     /* [::] without ":PORT" is IPv6 only */
        {"127.0.0.1:25", ":25", true},          /* dual-stack */
        {"[::1]:25", ":25", true},
        {"[::ffff:127.0.0.1]:25", "[::]:25", true},
        {"0.0.0.0:25", "127.0.0.1:25", true},
        {"0.0.0.0:25", "192.0.2.1:25", false},
        {"[2001:db8::1]:25", "[2001:db8::1]:25", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage d, b;
        bool any = false;
        assert_int_equal(addr_parse(cases[i].dst, ADDR_PORT_REQUIRED, &d, NULL, NULL), 0);
        assert_int_equal(addr_parse(cases[i].bind, ADDR_PORT_REQUIRED, &b, &any, NULL), 0);
        if (addr_reaches_bind((struct sockaddr *)&d, (struct sockaddr *)&b, any) !=
            cases[i].reaches)
            fail_msg("%s -> bind %s: expected %d", cases[i].dst, cases[i].bind,
                     cases[i].reaches);
    }
}

static void
test_loopback(void **state)
{
    (void)state;
    static const struct {
        const char *a;
        bool loopback, this_host;
    } cases[] = {
        {"127.0.0.1", true, true},     {"127.255.0.9", true, true},
        {"128.0.0.1", false, false},   {"0.0.0.0", false, true},
        {"::1", true, true},           {"::", false, true},
        {"::ffff:127.0.0.5", true, true}, {"::ffff:10.0.0.1", false, false},
        {"::2", false, false},         {"2001:db8::1", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss = {0};
        if (strchr(cases[i].a, ':') != NULL) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, cases[i].a, &s6->sin6_addr), 1);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, cases[i].a, &s4->sin_addr), 1);
        }
        if (addr_is_loopback((struct sockaddr *)&ss) != cases[i].loopback ||
            addr_is_this_host((struct sockaddr *)&ss) != cases[i].this_host)
            fail_msg("%s: expected loopback %d, this host %d", cases[i].a, cases[i].loopback,
                     cases[i].this_host);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_null_any),
        cmocka_unit_test(test_len_port),
        cmocka_unit_test(test_unmap),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_interleave),
        cmocka_unit_test(test_reaches_bind),
        cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
