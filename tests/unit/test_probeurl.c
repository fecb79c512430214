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
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
