/*
 * Unit tests for adminreq: the Host check (DNS rebinding), Origin and
 * Sec-Fetch-Site (web pages), the /bans query parameters (encoded NULs,
 * duplicates, unknown keys), the widest ban and the bearer token.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "adminreq.h"
#include "testutil.h"

static struct sockaddr_storage
sa(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

struct host_case {
    const char *host;  /* NULL: no Host header */
    const char *local; /* the address the request arrived on */
    bool ok;
};

static void
test_host(void **state)
{
    static const char *const names[] = {"admin.example.org", "192.0.2.80", "2001:db8::80"};
    static const struct host_case cases[] = {
        {NULL, "127.0.0.1", true}, /* HTTP/1.0 without Host: not a browser */
        {"127.0.0.1:9100", "127.0.0.1", true},
        {"127.0.0.1", "127.0.0.1", true},
        {"127.0.0.1:9200", "127.0.0.1", true}, /* a tunnel may change the port */
        {"127.0.0.2:9100", "127.0.0.1", false},
        {"localhost:9100", "127.0.0.1", true},
        {"LocalHost.:9100", "127.0.0.1", true},
        {"localhost:9100", "192.0.2.1", false}, /* not on loopback: localhost is someone else */
        {"[::1]:9100", "::1", true},
        {"[::1]", "::1", true},
        {"[0:0::1]:9100", "::1", true},
        {"[::1]:9100", "127.0.0.1", false},
        {"127.0.0.1:9100", "::ffff:127.0.0.1", true}, /* dual-stack socket, IPv4 client */
        {"admin.example.org", "127.0.0.1", true},
        {"ADMIN.example.org.:443", "127.0.0.1", true},
        {"192.0.2.80:9100", "127.0.0.1", true},
        {"[2001:db8:0::80]:9100", "127.0.0.1", true},
        /* DNS rebinding: the attacker's name. */
        {"attacker.example:9100", "127.0.0.1", false},
        {"admin.example.org.attacker.example", "127.0.0.1", false},
        {"127.0.0.1.attacker.example", "127.0.0.1", false},
        /* Malformed. */
        {"", "127.0.0.1", false},
        {":9100", "127.0.0.1", false},
        {"127.0.0.1:", "127.0.0.1", false},
        {"127.0.0.1:0", "127.0.0.1", false},
        {"127.0.0.1:65536", "127.0.0.1", false},
        {"127.0.0.1:009100", "127.0.0.1", false},
        {"127.0.0.1:9100:1", "127.0.0.1", false},
        {"127.0.0.1 ", "127.0.0.1", false},
        {"user@127.0.0.1", "127.0.0.1", false},
        {"[::1", "::1", false},
        {"[]:9100", "::1", false},
        {"[::1]x", "::1", false},
        {"[localhost]", "::1", false},
        {".", "127.0.0.1", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage local = sa(cases[i].local, 9100);
        const char *why =
            adminreq_check_host(cases[i].host, (const struct sockaddr *)&local, names, 3);
        if ((why == NULL) != cases[i].ok)
            fail_msg("Host %s on %s: %s", cases[i].host ? cases[i].host : "(none)",
                     cases[i].local, why ? why : "accepted");
    }
}

static void
test_host_unknown_local(void **state)
{
    static const char *const names[] = {"admin.example.org"};
    struct sockaddr_storage none;
    (void)state;
    memset(&none, 0, sizeof(none));
    assert_null(adminreq_check_host("admin.example.org", (struct sockaddr *)&none, names, 1));
    assert_non_null(adminreq_check_host("127.0.0.1", (struct sockaddr *)&none, names, 1));
    assert_non_null(adminreq_check_host("localhost", (struct sockaddr *)&none, names, 1));
}

static void
test_host_guard_page(void **state)
{
    static const char *const inputs[] = {"127.0.0.1:9100", "[::1]:9100", "localhost", "x:",
                                         "[::1"};
    struct sockaddr_storage local = sa("127.0.0.1", 9100);
    (void)state;
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        size_t len = strlen(inputs[i]) + 1; /* the NUL is the last byte before the guard */
        const char *h = (const char *)at_guard((const uint8_t *)inputs[i], len);
        (void)adminreq_check_host(h, (const struct sockaddr *)&local, NULL, 0);
    }
}

static void
test_origin_and_fetch_site(void **state)
{
    (void)state;
    assert_null(adminreq_check_origin(NULL, "127.0.0.1:9100"));
    assert_null(adminreq_check_origin("http://127.0.0.1:9100", "127.0.0.1:9100"));
    assert_null(adminreq_check_origin("HTTPS://Admin.example.org", "admin.example.org"));
    assert_non_null(adminreq_check_origin("http://evil.example", "127.0.0.1:9100"));
    assert_non_null(adminreq_check_origin("http://127.0.0.1:8080", "127.0.0.1:9100"));
    assert_non_null(adminreq_check_origin("null", "127.0.0.1:9100"));
    assert_non_null(adminreq_check_origin("http://127.0.0.1:9100", NULL));
    assert_non_null(adminreq_check_origin("ftp://127.0.0.1:9100", "127.0.0.1:9100"));
    assert_non_null(adminreq_check_origin("http://127.0.0.1:9100/", "127.0.0.1:9100"));

    assert_null(adminreq_check_fetch_site(NULL));
    assert_null(adminreq_check_fetch_site("same-origin"));
    assert_null(adminreq_check_fetch_site("none"));
    assert_non_null(adminreq_check_fetch_site("same-site")); /* another port of localhost */
    assert_non_null(adminreq_check_fetch_site("cross-site"));
    assert_non_null(adminreq_check_fetch_site(""));
}

static const char *
param(struct adminreq_params *p, const char *key, const char *val, size_t vlen)
{
    return adminreq_param(p, key, strlen(key), val, vlen);
}

static void
test_params(void **state)
{
    struct adminreq_params p = {0};
    char longv[ADMINREQ_VALUE_MAX + 2];
    (void)state;

    assert_null(param(&p, "addr", "192.0.2.10", 10));
    assert_null(param(&p, "listener", "smtp", 4));
    assert_null(param(&p, "duration", "1h", 2));
    assert_null(param(&p, "force", "1", 1));
    assert_string_equal(p.addr, "192.0.2.10");
    assert_string_equal(p.listener, "smtp");
    assert_string_equal(p.duration, "1h");
    assert_string_equal(p.force, "1");
    /* Twice, even with the same value. */
    assert_non_null(param(&p, "addr", "192.0.2.10", 10));
    assert_string_equal(p.addr, "192.0.2.10");

    memset(&p, 0, sizeof(p));
    /* addr=192.0.2.10%00garbage as decoded: the NUL shows in the size. */
    assert_non_null(param(&p, "addr", "192.0.2.10\0garbage", 18));
    assert_null(p.addr);
    assert_non_null(param(&p, "addr", "192.0.2.10\n", 11));
    assert_non_null(param(&p, "addr", "192.0.2.10\x7f", 11));
    assert_non_null(param(&p, "addr", NULL, 0)); /* "?addr" */
    assert_non_null(param(&p, "addr", "", 0));   /* "?addr=" */
    assert_non_null(param(&p, "adr", "192.0.2.10", 10));
    assert_non_null(param(&p, "Addr", "192.0.2.10", 10));
    assert_non_null(adminreq_param(&p, "addrx", 4 + 1, "1", 1));
    assert_non_null(adminreq_param(&p, "addr\0x", 6, "192.0.2.10", 10)); /* key with a NUL */
    assert_non_null(adminreq_param(&p, NULL, 0, "1", 1));
    memset(longv, 'a', sizeof(longv));
    assert_non_null(param(&p, "listener", longv, ADMINREQ_VALUE_MAX + 1));
    assert_null(param(&p, "listener", longv, ADMINREQ_VALUE_MAX));
    assert_null(p.addr);
}

static void
test_ban_width(void **state)
{
    struct cidr c;
    (void)state;

    assert_int_equal(cidr_parse("0.0.0.0/0", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, false), ADMINREQ_WIDTH_ZERO);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, true), ADMINREQ_WIDTH_ZERO);
    assert_int_equal(cidr_parse("::/0", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, true), ADMINREQ_WIDTH_ZERO);
    assert_int_equal(cidr_parse("10.0.0.0/8", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, false), ADMINREQ_WIDTH_WIDE);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, true), ADMINREQ_WIDTH_OK);
    assert_int_equal(adminreq_ban_width(&c, 8, 32, false), ADMINREQ_WIDTH_OK);
    assert_int_equal(cidr_parse("10.1.0.0/16", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, false), ADMINREQ_WIDTH_OK);
    assert_int_equal(cidr_parse("192.0.2.7", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 32, 128, false), ADMINREQ_WIDTH_OK);
    assert_int_equal(cidr_parse("2001:db8::/32", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, false), ADMINREQ_WIDTH_OK);
    assert_int_equal(adminreq_ban_width(&c, 16, 48, false), ADMINREQ_WIDTH_WIDE);
    assert_int_equal(cidr_parse("2001:db8::/31", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, false), ADMINREQ_WIDTH_WIDE);
    /* The IPv6 limit applies to IPv6 prefixes: /17 is narrow for IPv4 only. */
    assert_int_equal(cidr_parse("2000::/17", &c, NULL), 0);
    assert_int_equal(adminreq_ban_width(&c, 16, 32, false), ADMINREQ_WIDTH_WIDE);
}

static void
test_bearer(void **state)
{
    static const char tok[] = "0123456789abcdef0123";
    size_t n = sizeof(tok) - 1;
    (void)state;

    assert_true(adminreq_bearer_ok("Bearer 0123456789abcdef0123", tok, n));
    assert_true(adminreq_bearer_ok("bearer   0123456789abcdef0123 ", tok, n));
    assert_false(adminreq_bearer_ok(NULL, tok, n));
    assert_false(adminreq_bearer_ok("", tok, n));
    assert_false(adminreq_bearer_ok("Bearer", tok, n));
    assert_false(adminreq_bearer_ok("Bearer ", tok, n));
    assert_false(adminreq_bearer_ok("Basic 0123456789abcdef0123", tok, n));
    assert_false(adminreq_bearer_ok("Bearer 0123456789abcdef012", tok, n));
    assert_false(adminreq_bearer_ok("Bearer 0123456789abcdef01234", tok, n));
    assert_false(adminreq_bearer_ok("Bearer 0123456789abcdef0124", tok, n));
    assert_false(adminreq_bearer_ok("Bearer0123456789abcdef0123", tok, n));
    assert_false(adminreq_bearer_ok("Bearer 0123456789abcdef0123", tok, 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_host_unknown_local),
        cmocka_unit_test(test_host_guard_page),
        cmocka_unit_test(test_origin_and_fetch_site),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_ban_width),
        cmocka_unit_test(test_bearer),
    };
    if (guard_map(4096) != 0)
        return 1;
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    guard_unmap(NULL);
    return rc;
}
