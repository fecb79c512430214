/*
 * Unit tests for probeurl: schemes, default ports, IPv6 literals, proxy=,
 * HTTP paths and every refusal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "probeurl.h"
#include "util.h"

struct ok_case {
    const char *in;
    enum probe_scheme sc;
    const char *host;
    unsigned port;
    enum probe_proxy proxy;
    const char *path;
};

static void
test_good(void **state)
{
    (void)state;
    static const struct ok_case cases[] = {
        {"tcp://127.0.0.1:25", PS_TCP, "127.0.0.1", 25, PROBE_PROXY_NONE, ""},
        {"smtp://mx.example", PS_SMTP, "mx.example", 25, PROBE_PROXY_NONE, ""},
        {"SMTP://mx.example", PS_SMTP, "mx.example", 25, PROBE_PROXY_NONE, ""},
        {"smtps://mx", PS_SMTPS, "mx", 465, PROBE_PROXY_NONE, ""},
        {"imap://mx", PS_IMAP, "mx", 143, PROBE_PROXY_NONE, ""},
        {"imaps://mx", PS_IMAPS, "mx", 993, PROBE_PROXY_NONE, ""},
        {"pop3://mx", PS_POP3, "mx", 110, PROBE_PROXY_NONE, ""},
        {"pop3s://mx", PS_POP3S, "mx", 995, PROBE_PROXY_NONE, ""},
        {"postgres://db", PS_POSTGRES, "db", 5432, PROBE_PROXY_NONE, ""},
        {"postgresql://db/app", PS_POSTGRES, "db", 5432, PROBE_PROXY_NONE, ""},
        {"redis://cache/0", PS_REDIS, "cache", 6379, PROBE_PROXY_NONE, ""},
        {"http://web", PS_HTTP, "web", 80, PROBE_PROXY_NONE, "/"},
        {"https://web:8443/healthz", PS_HTTPS, "web", 8443, PROBE_PROXY_NONE, "/healthz"},
        {"http://web/a?b=1&proxy=v2&c=2", PS_HTTP, "web", 80, PROBE_PROXY_V2, "/a?b=1&c=2"},
        {"http://web?proxy=v1", PS_HTTP, "web", 80, PROBE_PROXY_V1, "/"},
        {"smtp://[::1]:2525?proxy=v2", PS_SMTP, "::1", 2525, PROBE_PROXY_V2, ""},
        {"imap://[2001:db8::1]", PS_IMAP, "2001:db8::1", 143, PROBE_PROXY_NONE, ""},
        {"smtp://mx:25/", PS_SMTP, "mx", 25, PROBE_PROXY_NONE, ""},
        {"pop3://mx:65535?proxy=v1", PS_POP3, "mx", 65535, PROBE_PROXY_V1, ""},
        {"smtp://mx#frag", PS_SMTP, "mx", 25, PROBE_PROXY_NONE, ""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct probe_url u;
        const char *why = NULL;
        int rc = probeurl_parse(cases[i].in, &u, &why);
        if (rc != 0)
            print_error("'%s': %s\n", cases[i].in, why);
        assert_int_equal(rc, 0);
        assert_int_equal(u.scheme, cases[i].sc);
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_int_equal(u.proxy, cases[i].proxy);
        assert_string_equal(u.path, cases[i].path);
    }
}

#define EXPECT_WHY "expect= takes statuses 100-599 and classes 1xx-5xx, comma-separated"

static void
test_bad(void **state)
{
    (void)state;
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"", "not a URL (expected scheme://host[:port])"},
        {"127.0.0.1:25", "not a URL (expected scheme://host[:port])"},
        {"ftp://h", "unknown scheme (tcp smtp smtps imap imaps pop3 pop3s postgres redis http "
                    "https)"},
        {"://h", "unknown scheme (tcp smtp smtps imap imaps pop3 pop3s postgres redis http "
                 "https)"},
        {"tcp://h", "tcp:// needs a port"},
        {"smtp://", "missing host"},
        {"smtp://:25", "missing host"},
        {"smtp://h:", "bad port (1 to 65535)"},
        {"smtp://h:0", "bad port (1 to 65535)"},
        {"smtp://h:65536", "bad port (1 to 65535)"},
        {"smtp://h:2x", "bad port (1 to 65535)"},
        {"smtp://h:1234567", "bad port (1 to 65535)"},
        {"smtp://user:pw@h", "credentials in the URL are not accepted"},
        {"redis://:pw@h", "credentials in the URL are not accepted"},
        {"smtp://[::1", "missing ']' after an IPv6 address"},
        {"smtp://[]:25", "empty IPv6 address"},
        {"smtp://[127.0.0.1]", "brackets hold an IPv6 address"},
        {"smtp://[::1]x", "unexpected character after the host"},
        {"smtp://[::g]", "bad character in IPv6 address"},
        {"smtp://h$x", "bad character in host name"},
        {"smtp://h?proxy=v3", "proxy= must be v1 or v2"},
        {"smtp://h?proxy=", "proxy= must be v1 or v2"},
        {"smtp://h?foo=1", "unknown query parameter (only proxy=v1 or proxy=v2)"},
        {"http://h/a b", "control character or space in the path"},
        {"http://h/?a=\x01", "control character or space in the query"},
        {"http://h/?expect=", "expect= needs statuses (like 2xx or 200,204,3xx)"},
        {"http://h/?expect=600", EXPECT_WHY},
        {"http://h/?expect=099", EXPECT_WHY},
        {"http://h/?expect=2x", EXPECT_WHY},
        {"http://h/?expect=2xxx", EXPECT_WHY},
        {"http://h/?expect=20x", EXPECT_WHY},
        {"http://h/?expect=200,,3xx", EXPECT_WHY},
        {"http://h/?expect=200,", "expect= ends with a comma"},
        {"smtp://h?expect=2xx", "expect= is for http:// and https:// only"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct probe_url u;
        const char *why = NULL;
        int rc = probeurl_parse(cases[i].in, &u, &why);
        if (rc != -1)
            print_error("'%s' parsed\n", cases[i].in);
        assert_int_equal(rc, -1);
        assert_non_null(why);
        assert_string_equal(why, cases[i].why);
    }
}

static void
test_long(void **state)
{
    (void)state;
    char s[PROBEURL_HOST_MAX + PROBEURL_PATH_MAX + 64];
    struct probe_url u;
    const char *why = NULL;
    strcpy(s, "smtp://");
    memset(s + 7, 'a', PROBEURL_HOST_MAX);
    s[7 + PROBEURL_HOST_MAX] = '\0';
    assert_int_equal(probeurl_parse(s, &u, &why), -1);
    assert_string_equal(why, "host name too long");
    strcpy(s, "http://h/");
    memset(s + 9, 'a', PROBEURL_PATH_MAX);
    s[9 + PROBEURL_PATH_MAX] = '\0';
    assert_int_equal(probeurl_parse(s, &u, &why), -1);
    assert_string_equal(why, "path too long");
}

static int
live(const char *url, long status)
{
    struct probe_url u;
    const char *why = NULL;
    assert_int_equal(probeurl_parse(url, &u, &why), 0);
    return probeurl_status_live(&u, status);
}

static void
test_expect(void **state)
{
    (void)state;
    /* Default: 2xx and 3xx; 404 and 500 are not live. */
    assert_true(live("http://h/", 200));
    assert_true(live("http://h/", 204));
    assert_true(live("http://h/", 302));
    assert_true(live("http://h/", 399));
    assert_false(live("http://h/", 199));
    assert_false(live("http://h/", 404));
    assert_false(live("http://h/", 500));
    assert_false(live("http://h/", 0));
    assert_false(live("http://h/", 1000));
    assert_false(live("http://h/", -200));
    /* Classes and codes, mixed; upper-case X too. */
    assert_true(live("https://h/x?expect=2xx", 299));
    assert_false(live("https://h/x?expect=2xx", 301));
    assert_true(live("http://h/?expect=200,204,3XX", 204));
    assert_true(live("http://h/?expect=200,204,3XX", 307));
    assert_false(live("http://h/?expect=200,204,3XX", 201));
    assert_true(live("http://h/?expect=404", 404));
    assert_false(live("http://h/?expect=404", 200));
    assert_true(live("http://h/?expect=1xx,599", 100));
    assert_true(live("http://h/?expect=1xx,599", 599));
    assert_false(live("http://h/?expect=1xx,599", 598));
    /* expect= leaves the request; the other parameters stay, in order. */
    struct probe_url u;
    const char *why = NULL;
    assert_int_equal(probeurl_parse("http://h/p?a=1&expect=2xx&proxy=v2&b=2", &u, &why), 0);
    assert_string_equal(u.path, "/p?a=1&b=2");
    assert_int_equal(u.proxy, PROBE_PROXY_V2);
    /* The last expect= wins. */
    assert_int_equal(probeurl_parse("http://h/?expect=200&expect=404", &u, &why), 0);
    assert_false(probeurl_status_live(&u, 200));
    assert_true(probeurl_status_live(&u, 404));
}

static void
test_postgres_names(void **state)
{
    (void)state;
    static const struct {
        const char *in, *user, *db;
    } cases[] = {
        {"postgres://db", "postgres", "postgres"},
        {"postgres://db/", "postgres", "postgres"},
        {"postgres://db/app", "postgres", "app"},
        {"postgresql://db:5433/app?user=monitor", "monitor", "app"},
        {"postgres://db?user=monitor&proxy=v2", "monitor", "monitor"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct probe_url u;
        const char *why = NULL;
        assert_int_equal(probeurl_parse(cases[i].in, &u, &why), 0);
        assert_string_equal(u.pg_user, cases[i].user);
        assert_string_equal(u.pg_db, cases[i].db);
        assert_string_equal(u.path, "");
    }
    struct probe_url u;
    const char *why = NULL;
    assert_int_equal(probeurl_parse("postgres://db/a/b", &u, &why), -1);
    assert_string_equal(why, "the path of a postgres:// URL is a database name (1 to 63 characters)");
    assert_int_equal(probeurl_parse("postgres://db?user=", &u, &why), -1);
    assert_string_equal(why, "user= takes a PostgreSQL user name (1 to 63 characters)");
    assert_int_equal(probeurl_parse("postgres://db/"
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                    &u, &why),
                     -1);
    /* user= is a postgres parameter only. */
    assert_int_equal(probeurl_parse("redis://db?user=x", &u, &why), -1);
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(probeurl_scheme_name(PS_POP3S), "pop3s");
    assert_string_equal(probeurl_scheme_name(PS_POSTGRES), "postgres");
    assert_true(probeurl_scheme_tls(PS_IMAPS));
    assert_true(probeurl_scheme_tls(PS_HTTPS));
    assert_false(probeurl_scheme_tls(PS_SMTP));
    assert_false(probeurl_scheme_tls(PS_TCP));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_postgres_names),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
