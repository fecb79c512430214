/*
 * Unit tests for the wide-trust warning of accept-proxy (issue 18): which
 * networks cidr_is_wide() calls too wide to trust as PROXY sources, and the
 * loader's "warning:" diagnostic at the network's LINE:COL, which does not
 * fail the load.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "conf.h"

static void
test_wide_table(void **state)
{
    (void)state;
    static const struct {
        const char *net;
        bool wide;
    } cases[] = {
        {"0.0.0.0/0", true},
        {"0.0.0.0/1", true},
        {"10.0.0.0/7", true},
        {"10.0.0.0/8", false},   /* a private /8: the widest accepted */
        {"8.0.0.0/8", false},    /* width is the measure, not the owner */
        {"192.168.0.0/16", false},
        {"192.0.2.1", false},
        {"::/0", true},
        {"::/80", true},         /* covers ::ffff:0:0/96: every IPv4 peer */
        {"::ffff:0:0/96", true},
        {"::ffff:0.0.0.0/100", true},
        {"::ffff:10.0.0.0/104", false},
        {"::1", false},
        {"2000::/3", true},
        {"2001:db8::/31", true},
        {"2001:db8::/32", false},
        {"2001:db8:1::/48", false},
        {"fc00::/7", false},     /* unique local: the IPv6 private range */
        {"fd00::/8", false},
        {"fe80::/10", false},    /* link-local */
        {"fe00::/9", true},
        {"fc00::/6", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cidr c;
        assert_int_equal(cidr_parse(cases[i].net, &c, NULL), 0);
        if (cidr_is_wide(&c) != cases[i].wide)
            fail_msg("%s: expected %s", cases[i].net, cases[i].wide ? "wide" : "not wide");
    }
}

#define BASE "listener in {\n    bind 127.0.0.1:2525\n    protocol smtp\n"
#define TAIL "    route -> 127.0.0.1:25\n}\n"

static void
test_loader_warns(void **state)
{
    (void)state;
    const char *text = BASE "    accept-proxy v2 from 10.0.0.0/8 0.0.0.0/0\n"
                            "    accept-proxy v2 from ::/0 fd00::/8\n" TAIL;
    struct conf *c = NULL;
    struct diag_list d = {0};

    assert_int_equal(conf_load_string("w.conf", text, strlen(text), false, &c, &d), 0);
    assert_non_null(c);
    assert_int_equal(d.n, 2);
    assert_true(d.v[0].warning);
    assert_int_equal(d.v[0].line, 4);
    assert_int_equal(d.v[0].col, 37);
    assert_string_equal(d.v[0].msg, "warning: accept-proxy from 0.0.0.0/0 trusts a wide range: any "
                                    "host in it can claim any client address; list only your "
                                    "proxies");
    assert_true(d.v[1].warning);
    assert_int_equal(d.v[1].line, 5);
    assert_int_equal(d.v[1].col, 26);
    /* Trusted all the same: a warning changes nothing. */
    assert_int_equal(c->listeners[0].ntrusted, 4);

    char buf[512];
    conf_diag_text(&d.v[1], buf, sizeof(buf));
    assert_string_equal(buf, "w.conf:5:26: warning: accept-proxy from ::/0 trusts a wide range: "
                             "any host in it can claim any client address; list only your "
                             "proxies");
    diag_list_free(&d);
    conf_free(c);
}

static void
test_loader_quiet(void **state)
{
    (void)state;
    const char *text = BASE "    accept-proxy any from 10.0.0.0/8 127.0.0.1 fc00::/7 ::1\n" TAIL;
    struct conf *c = NULL;
    struct diag_list d = {0};

    assert_int_equal(conf_load_string("q.conf", text, strlen(text), false, &c, &d), 0);
    assert_int_equal(d.n, 0);
    diag_list_free(&d);
    conf_free(c);
}

/* An error elsewhere still fails the load; the warning is listed with it. */
static void
test_warning_with_error(void **state)
{
    (void)state;
    const char *text = BASE "    accept-proxy v1 from 0.0.0.0/0\n    bogus\n" TAIL;
    struct conf *c = NULL;
    struct diag_list d = {0};

    assert_int_equal(conf_load_string("e.conf", text, strlen(text), false, &c, &d), -1);
    assert_null(c);
    assert_int_equal(d.n, 2);
    assert_true(d.v[0].warning);
    assert_false(d.v[1].warning);
    diag_list_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wide_table),
        cmocka_unit_test(test_loader_warns),
        cmocka_unit_test(test_loader_quiet),
        cmocka_unit_test(test_warning_with_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
