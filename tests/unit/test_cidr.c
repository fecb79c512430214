/*
 * Unit tests for cidr: parsing, host-bit checks, matching (IPv4-mapped
 * peers included), formatting.
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
#include "cidr.h"
#include "util.h"

struct parse_case {
    const char *in;
    int rc;
    const char *formatted;  /* cidr_format() when rc == 0, else the expected why or NULL */
};

static void
test_parse_table(void **state)
{
    static const struct parse_case cases[] = {
        { "10.0.0.0/8", 0, "10.0.0.0/8" },
        { "0.0.0.0/0", 0, "0.0.0.0/0" },
        { "192.0.2.1", 0, "192.0.2.1/32" },
        { "192.0.2.1/32", 0, "192.0.2.1/32" },
        { "192.0.2.128/25", 0, "192.0.2.128/25" },
        { "fd7a:115c:a1e0::/48", 0, "fd7a:115c:a1e0::/48" },
        { "::/0", 0, "::/0" },
        { "::1", 0, "::1/128" },
        { "2001:db8::1/128", 0, "2001:db8::1/128" },
        { "::ffff:0:0/96", 0, "::ffff:0.0.0.0/96" },
        { "2001:db8::/33", 0, "2001:db8::/33" },
        { "10.0.0.1/8", -1, "host bits set beyond the prefix length" },
        { "192.0.2.129/25", -1, "host bits set beyond the prefix length" },
        { "fd7a:115c:a1e0::1/48", -1, "host bits set beyond the prefix length" },
        { "2001:db8:8000::/33", 0, "2001:db8:8000::/33" },
        { "2001:db8:1::/33", -1, "host bits set beyond the prefix length" },
        { "2001:db8:4000::/33", -1, "host bits set beyond the prefix length" },
        { "10.0.0.0/33", -1, "prefix length must be 0 to 32" },
        { "::/129", -1, "prefix length must be 0 to 128" },
        { "10.0.0.0/", -1, "missing prefix length after '/'" },
        { "/8", -1, "missing address before '/'" },
        { "", -1, "empty network" },
        { "10.0.0.0/-1", -1, NULL },
        { "10.0.0.0/8/8", -1, NULL },
        { "10.0.0.0/ 8", -1, NULL },
        { "10.0.0/8", -1, "invalid IPv4 address" },
        { "010.0.0.0/8", -1, "invalid IPv4 address" },
        { "10.0.0.0 /8", -1, NULL },
        { "fe80::1%eth0", -1, NULL },
        { "gggg::/16", -1, "invalid IPv6 address" },
        { "host.example/8", -1, NULL },
        { "0000000000000000000000000000000000000000000000000000000000000000000::/8", -1, NULL },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct cidr c;
        const char *why = NULL;
        char buf[64];
        int rc = cidr_parse(cases[i].in, &c, &why);
        if (rc != cases[i].rc)
            fail_msg("cidr_parse(\"%s\"): rc %d (%s)", cases[i].in, rc, why ? why : "-");
        if (rc != 0) {
            assert_non_null(why);
            if (cases[i].formatted != NULL && strcmp(why, cases[i].formatted) != 0)
                fail_msg("cidr_parse(\"%s\"): why \"%s\"", cases[i].in, why);
            continue;
        }
        cidr_format(&c, buf, sizeof(buf));
        if (strcmp(buf, cases[i].formatted) != 0)
            fail_msg("cidr_parse(\"%s\"): formatted %s", cases[i].in, buf);
    }
}

struct match_case {
    const char *net;
    const char *addr;  /* addr_parse() text, port optional */
    bool match;
};

static void
test_match_table(void **state)
{
    static const struct match_case cases[] = {
        { "10.0.0.0/8", "10.1.2.3", true },
        { "10.0.0.0/8", "11.0.0.0", false },
        { "10.0.0.0/8", "9.255.255.255", false },
        { "192.0.2.128/25", "192.0.2.128", true },
        { "192.0.2.128/25", "192.0.2.255", true },
        { "192.0.2.128/25", "192.0.2.127", false },
        { "192.0.2.1", "192.0.2.1:25", true },
        { "192.0.2.1", "192.0.2.2", false },
        { "0.0.0.0/0", "255.255.255.255", true },
        { "0.0.0.0/0", "::1", false },
        /* IPv4-mapped peers of a dual-stack listener match IPv4 prefixes. */
        { "10.0.0.0/8", "::ffff:10.9.8.7", true },
        { "10.0.0.0/8", "::ffff:11.9.8.7", false },
        { "10.0.0.0/8", "::10.9.8.7", false },
        { "10.0.0.0/8", "64:ff9b::10.9.8.7", false },
        { "0.0.0.0/0", "::ffff:1.2.3.4", true },
        /* ...and an IPv6 spelling of mapped space matches AF_INET peers. */
        { "::ffff:10.0.0.0/104", "10.1.2.3", true },
        { "::ffff:10.0.0.0/104", "11.1.2.3", false },
        { "::/0", "1.2.3.4", true },
        { "fd7a:115c:a1e0::/48", "fd7a:115c:a1e0:ab12::1", true },
        { "fd7a:115c:a1e0::/48", "fd7a:115c:a1e1::1", false },
        { "2001:db8::/33", "2001:db8:7fff::1", true },
        { "2001:db8::/33", "2001:db8:8000::1", false },
        { "::1", "::1", true },
        { "::1", "::2", false },
        { "::/0", "2001:db8::1", true },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct cidr c;
        struct sockaddr_storage ss;
        assert_int_equal(cidr_parse(cases[i].net, &c, NULL), 0);
        assert_int_equal(addr_parse(cases[i].addr, ADDR_PORT_OPTIONAL, &ss, NULL, NULL), 0);
        if (cidr_match(&c, (struct sockaddr *)&ss) != cases[i].match)
            fail_msg("cidr_match(%s, %s) != %d", cases[i].net, cases[i].addr, cases[i].match);
    }
}

static void
test_match_any(void **state)
{
    struct cidr list[3];
    struct sockaddr_storage ss;
    (void)state;

    assert_int_equal(cidr_parse("10.0.0.0/8", &list[0], NULL), 0);
    assert_int_equal(cidr_parse("192.168.0.0/16", &list[1], NULL), 0);
    assert_int_equal(cidr_parse("fd00::/8", &list[2], NULL), 0);
    addr_parse("192.168.4.4", ADDR_PORT_OPTIONAL, &ss, NULL, NULL);
    assert_true(cidr_match_any(list, 3, (struct sockaddr *)&ss));
    assert_false(cidr_match_any(list, 1, (struct sockaddr *)&ss));
    assert_false(cidr_match_any(list, 0, (struct sockaddr *)&ss));
    addr_parse("fd12::1", ADDR_PORT_OPTIONAL, &ss, NULL, NULL);
    assert_true(cidr_match_any(list, 3, (struct sockaddr *)&ss));
    addr_parse("fe80::1", ADDR_PORT_OPTIONAL, &ss, NULL, NULL);
    assert_false(cidr_match_any(list, 3, (struct sockaddr *)&ss));

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_false(cidr_match_any(list, 3, (struct sockaddr *)&ss));
}

static void
test_format_small(void **state)
{
    struct cidr c;
    char buf[5];
    (void)state;

    assert_int_equal(cidr_parse("10.0.0.0/8", &c, NULL), 0);
    assert_string_equal(cidr_format(&c, buf, sizeof(buf)), "10.0");
    c.family = 0;
    assert_string_equal(cidr_format(&c, buf, sizeof(buf)), "inva");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_any),
        cmocka_unit_test(test_format_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
