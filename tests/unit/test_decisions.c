/*
 * Unit tests for decisions: the LAPI stream answers of tests/vectors
 * (empty, startup with expired decisions under "deleted", community
 * lists) fed whole, byte by byte and in uneven chunks; the shape checks;
 * each decision's fields and their refusals; the size cap; Go durations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "decisions.h"
#include "testutil.h"

#define BIG (1u << 20)

/* Feeds <len> bytes of <body> in chunks of <chunk> and then ends it. */
static enum decisions_rc
feed_all(struct decisions *d, const char *body, size_t len, size_t chunk)
{
    enum decisions_rc rc = DECISIONS_MORE;
    for (size_t at = 0; at < len && rc != DECISIONS_ERROR; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        rc = decisions_feed(d, body + at, n);
        if (rc == DECISIONS_DONE && at + n < len)
            assert_int_equal(rc, DECISIONS_DONE);
    }
    if (rc == DECISIONS_ERROR)
        return rc;
    return decisions_end(d);
}

static struct decisions *
parse(const char *body, size_t chunk, enum decisions_rc want)
{
    struct decisions *d = decisions_new(BIG);
    assert_non_null(d);
    enum decisions_rc rc = feed_all(d, body, strlen(body), chunk);
    if (rc != want)
        fail_msg("%s: rc %d, want %d (%s)", body, rc, want, decisions_error(d));
    if (rc == DECISIONS_ERROR)
        assert_true(decisions_error(d)[0] != '\0');
    else
        assert_string_equal(decisions_error(d), "");
    return d;
}

static char *
vector(const char *name)
{
    static char buf[65536];
    size_t n = read_vector(name, (uint8_t *)buf, sizeof(buf) - 1);
    buf[n] = '\0';
    return buf;
}

static void
assert_net(const struct decision *x, const char *text)
{
    char buf[64];
    assert_string_equal(cidr_format(&x->net, buf, sizeof(buf)), text);
}

static void
test_empty(void **state)
{
    (void)state;
    static const size_t chunks[] = { 1, 2, 7, 4096 };
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct decisions *d = parse(vector("decisions_empty.json"), chunks[c], DECISIONS_DONE);
        assert_int_equal(decisions_count(d, false), 0);
        assert_int_equal(decisions_count(d, true), 0);
        struct decision x;
        const char *why = NULL;
        assert_int_equal(decisions_get(d, false, 0, &x, &why), -1);
        assert_non_null(why);
        decisions_free(d);
    }
    /* [] is as empty as null. */
    struct decisions *d = parse("{\"new\":[],\"deleted\":[]}\n", 4096, DECISIONS_DONE);
    assert_int_equal(decisions_count(d, false), 0);
    decisions_free(d);
}

static void
check_startup(struct decisions *d)
{
    struct decision x;
    const char *why = NULL;

    assert_int_equal(decisions_count(d, true), 2);
    assert_int_equal(decisions_count(d, false), 5);

    assert_int_equal(decisions_get(d, true, 0, &x, &why), 0);
    assert_net(&x, "127.0.0.65/32");
    assert_int_equal(x.duration_ms, -1500);
    assert_int_equal(x.id, 3);
    assert_int_equal(x.type, DECISION_BAN);
    assert_string_equal(x.origin, "cscli");
    assert_string_equal(x.scenario, "manual 'ban' from 'localhost'");
    assert_int_equal(decisions_get(d, true, 1, &x, &why), 0);
    assert_net(&x, "127.0.8.0/24");
    assert_int_equal(x.duration_ms, -(2 * 3600000 + 3250));

    assert_int_equal(decisions_get(d, false, 0, &x, &why), 0);
    assert_net(&x, "127.0.0.66/32");
    assert_int_equal(x.duration_ms, 3599720);
    assert_int_equal(x.id, 7);
    assert_int_equal(decisions_get(d, false, 1, &x, &why), 0);
    assert_net(&x, "127.0.9.0/24");
    assert_int_equal(x.duration_ms, 3 * 3600000 + 59 * 60000 + 58100);
    assert_int_equal(decisions_get(d, false, 2, &x, &why), 0);
    assert_net(&x, "2001:db8::66/128");
    assert_int_equal(x.type, DECISION_CAPTCHA);
    assert_string_equal(x.origin, "crowdsec");
    assert_string_equal(x.scenario, "mailedge/pregreet");
    assert_int_equal(decisions_get(d, false, 3, &x, &why), 0);
    assert_net(&x, "2001:db8:1::/48");
    assert_int_equal(x.duration_ms, 3600000);
    /* IPv4-mapped: the IPv4 address; a custom type is "other". */
    assert_int_equal(decisions_get(d, false, 4, &x, &why), 0);
    assert_int_equal(x.net.family, AF_INET);
    assert_net(&x, "192.0.2.7/32");
    assert_int_equal(x.type, DECISION_OTHER);
    assert_int_equal(x.duration_ms, 500);
    assert_int_equal(decisions_get(d, false, 5, &x, &why), -1);
}

static void
test_startup_any_chunking(void **state)
{
    (void)state;
    const char *body = vector("decisions_startup.json");
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        struct decisions *d = parse(body, chunk, DECISIONS_DONE);
        check_startup(d);
        decisions_free(d);
    }
    struct decisions *d = parse(body, strlen(body), DECISIONS_DONE);
    check_startup(d);
    decisions_free(d);
}

static void
test_community_lists(void **state)
{
    (void)state;
    struct decisions *d = parse(vector("decisions_capi.json"), 100, DECISIONS_DONE);
    struct decision x;
    const char *why = NULL;

    assert_int_equal(decisions_count(d, true), 0);
    assert_int_equal(decisions_count(d, false), 4);
    assert_int_equal(decisions_get(d, false, 0, &x, &why), 0);
    assert_net(&x, "198.51.100.23/32");
    assert_string_equal(x.origin, "lists");
    assert_string_equal(x.scenario, "firehol_cruzit_web_attacks");
    assert_int_equal(x.duration_ms, 23 * 3600000 + 59 * 60000 + 10123);
    assert_int_equal(decisions_get(d, false, 1, &x, &why), 0);
    assert_net(&x, "2001:db8:ffff::9/128");
    assert_int_equal(decisions_get(d, false, 2, &x, &why), 0);
    assert_net(&x, "203.0.113.200/32");
    assert_string_equal(x.origin, "CAPI");
    assert_int_equal(decisions_get(d, false, 3, &x, &why), 0);
    assert_net(&x, "203.0.113.0/25");
    decisions_free(d);
}

/* Answers refused as a whole. */
static void
test_bad_answers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "hello",
        "[]",
        "null",
        "\"new\"",
        "42",
        "{}",
        "{\"new\":null}",
        "{\"deleted\":null}",
        "{\"new\":{},\"deleted\":null}",
        "{\"new\":\"x\",\"deleted\":null}",
        "{\"new\":null,\"deleted\":7}",
        "{\"new\":null,\"deleted\":null}x",
        "{\"new\":null,\"deleted\":null}{}",
        "{\"new\":null,\"deleted\":null,}",
        "{\"new\":'x',\"deleted\":null}",
        "{\"new\":null,\"deleted\":null /* c */}",
        "{\"new\":[1,],\"deleted\":null}",
        "{\"new\":null,\"deleted\":nul}",
        "{\"new\":null,\"deleted\":null",
        "{\"new\":[{\"value\":\"1.2.3.4\"",
        "{\"new\":[\"\xff\xfe\"],\"deleted\":null}",
        "{\"new\":[\"\xc3\x28\"],\"deleted\":null}",
        "{\"new\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],\"deleted\":null}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t chunk = 1; chunk <= 5; chunk += 4) {
            struct decisions *d = parse(bad[i], chunk, DECISIONS_ERROR);
            assert_int_equal(decisions_count(d, false), 0);
            assert_int_equal(decisions_count(d, true), 0);
            /* Sticky: more bytes do not revive it. */
            assert_int_equal(decisions_feed(d, " ", 1), DECISIONS_ERROR);
            assert_int_equal(decisions_end(d), DECISIONS_ERROR);
            decisions_free(d);
        }
    }
}

static void
test_reasons(void **state)
{
    (void)state;
    struct decisions *d = parse("{\"new\":null", 3, DECISIONS_ERROR);
    assert_string_equal(decisions_error(d), "truncated answer (byte 11)");
    decisions_free(d);
    d = parse("{\"deleted\":null}", 3, DECISIONS_ERROR);
    assert_string_equal(decisions_error(d), "answer without new (byte 16)");
    decisions_free(d);
    d = parse("{\"new\":null,\"deleted\":null} !", 100, DECISIONS_ERROR);
    assert_string_equal(decisions_error(d), "invalid JSON: unexpected character (byte 28)");
    decisions_free(d);
    d = parse("{\"new\":null,\"deleted\":null} !", 28, DECISIONS_ERROR);
    assert_string_equal(decisions_error(d), "data after the answer (byte 28)");
    decisions_free(d);
    d = parse("{\"new\":null,\"deleted\":nope}", 100, DECISIONS_ERROR);
    assert_non_null(strstr(decisions_error(d), "invalid JSON: "));
    decisions_free(d);

    /* A NUL byte ends json-c's input; it is refused instead. */
    d = decisions_new(BIG);
    static const char nul[] = "{\"new\":null,\0\"deleted\":null}";
    assert_int_equal(decisions_feed(d, nul, sizeof(nul) - 1), DECISIONS_ERROR);
    assert_string_equal(decisions_error(d), "NUL byte in answer (byte 12)");
    decisions_free(d);
}

static void
test_trailing_space_and_done(void **state)
{
    (void)state;
    struct decisions *d = decisions_new(BIG);
    const char *a = "{\"new\":null,\"deleted\":null}\r\n";
    assert_int_equal(decisions_feed(d, a, strlen(a)), DECISIONS_DONE);
    assert_int_equal(decisions_feed(d, " \n", 2), DECISIONS_DONE);
    assert_int_equal(decisions_feed(d, "", 0), DECISIONS_DONE);
    assert_int_equal(decisions_end(d), DECISIONS_DONE);
    assert_int_equal(decisions_feed(d, "{", 1), DECISIONS_ERROR);
    assert_int_equal(decisions_count(d, false), 0);
    decisions_free(d);
}

static void
test_max_body(void **state)
{
    (void)state;
    const char *a = "{\"new\":null,\"deleted\":null}";
    size_t n = strlen(a);

    struct decisions *d = decisions_new(n);
    assert_int_equal(feed_all(d, a, n, 5), DECISIONS_DONE);
    decisions_free(d);

    d = decisions_new(n - 1);
    assert_int_equal(feed_all(d, a, n, 5), DECISIONS_ERROR);
    assert_non_null(strstr(decisions_error(d), "answer longer than the limit"));
    decisions_free(d);

    /* Whitespace after the answer counts too. */
    d = decisions_new(n + 1);
    assert_int_equal(decisions_feed(d, a, n), DECISIONS_DONE);
    assert_int_equal(decisions_feed(d, "  ", 2), DECISIONS_ERROR);
    decisions_free(d);
}

struct entry_case {
    const char *json; /* one decision */
    int rc;
    const char *net;  /* rc 0: the prefix */
};

static void
test_entries(void **state)
{
    (void)state;
    static const struct entry_case cases[] = {
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", 0,
          "1.2.3.4/32" },
        { "{\"value\":\"1.2.3.4/32\",\"scope\":\"ip\",\"type\":\"ban\",\"duration\":\"1h\"}", 0,
          "1.2.3.4/32" },
        { "{\"value\":\"::1/128\",\"scope\":\"ip\",\"type\":\"ban\",\"duration\":\"1h\"}", 0,
          "::1/128" },
        { "{\"value\":\"1.2.3.0/24\",\"scope\":\"range\",\"type\":\"ban\",\"duration\":\"1h\"}", 0,
          "1.2.3.0/24" },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Range\",\"type\":\"ban\",\"duration\":\"1h\"}", 0,
          "1.2.3.4/32" },
        { "{\"value\":\"::ffff:10.0.0.0/104\",\"scope\":\"Range\",\"type\":\"ban\",\"duration\":"
          "\"1h\"}",
          0, "10.0.0.0/8" },
        { "{\"value\":\"2001:db8::/32\",\"scope\":\"Range\",\"type\":\"ban\",\"duration\":\"1h\","
          "\"id\":18446744073709551615,\"origin\":null,\"scenario\":null,\"until\":\"x\","
          "\"meta\":{\"a\":[1,2]}}",
          0, "2001:db8::/32" },
        /* refused */
        { "{\"value\":\"1.2.3.0/24\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", -1,
          NULL },
        { "{\"value\":\"1.2.3.1/24\",\"scope\":\"Range\",\"type\":\"ban\",\"duration\":\"1h\"}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Country\",\"type\":\"ban\",\"duration\":\"1h\"}",
          -1, NULL },
        { "{\"value\":\"FR\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1 hour\"}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":3600}", -1, NULL },
        { "{\"value\":16909060,\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":[],\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":true,\"duration\":\"1h\"}", -1, NULL },
        { "{\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\"}", -1, NULL },
        { "{\"value\":null,\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}", -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\","
          "\"origin\":7}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\","
          "\"id\":-1}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\","
          "\"id\":\"7\"}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\","
          "\"id\":1.5}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\\u0000x\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\"}",
          -1, NULL },
        { "{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"ban\",\"duration\":\"1h\","
          "\"id\":NaN}",
          -1, NULL },
        { "\"1.2.3.4\"", -1, NULL },
        { "null", -1, NULL },
        { "[]", -1, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body), "{\"deleted\":null,\"new\":[%s]}", cases[i].json);
        struct decisions *d = parse(body, 13, DECISIONS_DONE);
        assert_int_equal(decisions_count(d, false), 1);
        struct decision x;
        const char *why = NULL;
        int rc = decisions_get(d, false, 0, &x, &why);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d (%s)", cases[i].json, rc, why ? why : "");
        if (rc == 0)
            assert_net(&x, cases[i].net);
        else
            assert_non_null(why);
        decisions_free(d);
    }
}

static void
test_entry_fields(void **state)
{
    (void)state;
    char scen[300];
    memset(scen, 's', sizeof(scen) - 1);
    scen[sizeof(scen) - 1] = '\0';
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"new\":[{\"value\":\"1.2.3.4\",\"scope\":\"Ip\",\"type\":\"Ban\",\"duration\":"
             "\"1h\",\"origin\":\"a-rather-long-origin-name-of-more-than-32\","
             "\"scenario\":\"%s\",\"id\":18446744073709551615}],\"deleted\":null}",
             scen);
    struct decisions *d = parse(body, 64, DECISIONS_DONE);
    struct decision x;
    assert_int_equal(decisions_get(d, false, 0, &x, NULL), 0);
    assert_int_equal(x.type, DECISION_BAN);
    assert_int_equal(strlen(x.origin), sizeof(x.origin) - 1);
    assert_int_equal(strlen(x.scenario), sizeof(x.scenario) - 1);
    assert_true(x.id == UINT64_MAX);
    assert_string_equal(decision_type_name(DECISION_BAN), "ban");
    assert_string_equal(decision_type_name(DECISION_CAPTCHA), "captcha");
    assert_string_equal(decision_type_name(DECISION_OTHER), "other");
    decisions_free(d);
}

/* 100,000 decisions in 16 KB chunks: counted, each one readable. */
static void
test_huge(void **state)
{
    (void)state;
    size_t n = 100000, cap = n * 160 + 64, len = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    len += (size_t)snprintf(body + len, cap - len, "{\"deleted\":null,\"new\":[");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"duration\":\"%zus\",\"id\":%zu,\"origin\":\"CAPI\","
                                "\"scenario\":\"crowdsecurity/ssh-bf\",\"scope\":\"Ip\","
                                "\"type\":\"ban\",\"value\":\"10.%zu.%zu.%zu\"}",
                                i ? "," : "", i + 1, i, (i >> 16) & 255, (i >> 8) & 255, i & 255);
    }
    len += (size_t)snprintf(body + len, cap - len, "]}");
    assert_true(len < cap);

    struct decisions *d = decisions_new(len);
    assert_int_equal(feed_all(d, body, len, 16384), DECISIONS_DONE);
    assert_int_equal(decisions_count(d, false), n);
    for (size_t i = 0; i < n; i++) {
        struct decision x;
        assert_int_equal(decisions_get(d, false, i, &x, NULL), 0);
        assert_int_equal(x.id, i);
        assert_int_equal(x.duration_ms, (int64_t)(i + 1) * 1000);
        assert_int_equal(x.net.addr[3], i & 255);
    }
    decisions_free(d);

    /* One byte short of the cap: refused, whatever arrived before. */
    d = decisions_new(len - 1);
    assert_int_equal(feed_all(d, body, len, 16384), DECISIONS_ERROR);
    assert_int_equal(decisions_count(d, false), 0);
    decisions_free(d);
    free(body);
}

struct duration_case {
    const char *in;
    int rc;
    int64_t ms;
};

static void
test_duration(void **state)
{
    (void)state;
    static const struct duration_case cases[] = {
        { "3h59m58.1s", 0, 14398100 },
        { "-1.5s", 0, -1500 },
        { "59m59.72s", 0, 3599720 },
        { "1h", 0, 3600000 },
        { "500ms", 0, 500 },
        { "0", 0, 0 },
        { "-0", 0, 0 },
        { "+2s", 0, 2000 },
        { "0s", 0, 0 },
        { ".5s", 0, 500 },
        { "5.s", 0, 5000 },
        { "1h1h", 0, 7200000 },
        { "1.9ms", 0, 1 },
        { "-1.9ms", 0, -1 },
        { "1500us", 0, 1 },
        { "1500\xc2\xb5s", 0, 1 },
        { "1500\xce\xbcs", 0, 1 },
        { "999999ns", 0, 0 },
        { "2562047h47m16.854s", 0, INT64_C(9223372036854) },
        { "-167h59m59.123456789s", 0, -(167 * 3600000 + 59 * 60000 + 59123) },
        { "1.000000000000000000001s", 0, 1000 },
        { "2562048h", -1, 0 },
        { "9223372036854775808ns", -1, 0 },
        { "99999999999999999999s", -1, 0 },
        { "", -1, 0 },
        { "-", -1, 0 },
        { "1", -1, 0 },
        { "1.5", -1, 0 },
        { "h", -1, 0 },
        { ".s", -1, 0 },
        { "1x", -1, 0 },
        { "1e3s", -1, 0 },
        { " 1s", -1, 0 },
        { "1s ", -1, 0 },
        { "1.2.3s", -1, 0 },
        { "--1s", -1, 0 },
        { "1S", -1, 0 },
        { "1d", -1, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = 12345;
        int rc = decisions_duration(cases[i].in, &ms);
        if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
            fail_msg("'%s': rc %d ms %lld, want rc %d ms %lld", cases[i].in, rc, (long long)ms,
                     cases[i].rc, (long long)cases[i].ms);
    }
    int64_t ms;
    assert_int_equal(decisions_duration(NULL, &ms), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_startup_any_chunking),
        cmocka_unit_test(test_community_lists),
        cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_trailing_space_and_done),
        cmocka_unit_test(test_max_body),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_entry_fields),
        cmocka_unit_test(test_huge),
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
