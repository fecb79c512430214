/*
 * Unit tests for the crowdsec settings of the global block and shared-bans
 * of a listener: defaults, values, the bouncer key from a file (mode and
 * owner checked, like admin-token-file) or from the environment, and the
 * LINE:COL of every mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "conf_load.h"

#define ONE_L "listener l {\n    bind 127.0.0.1:2525\n    protocol smtp\n    route -> 10.0.0.1:25\n}\n"
#define CS "global {\n    crowdsec http://127.0.0.1:8080/\n    crowdsec-key-env CS_TEST_KEY\n"

static void
test_off_by_default(void **state)
{
    (void)state;
    struct conf *c = load_ok(ONE_L, false);
    assert_string_equal(c->global.crowdsec.url, "");
    assert_false(c->listeners[0].shared_bans_off);
    conf_free(c);
}

static void
test_values(void **state)
{
    (void)state;
    setenv("CS_TEST_KEY", "abcdef0123456789", 1);
    struct conf *c = load_ok(CS "}\n" ONE_L, false);
    const struct conf_crowdsec *cs = &c->global.crowdsec;
    assert_string_equal(cs->url, "http://127.0.0.1:8080");
    assert_string_equal(cs->key, "abcdef0123456789");
    assert_int_equal(cs->key_len, 16);
    assert_int_equal(cs->interval_ms, 10000);
    assert_int_equal(cs->resync_ms, 5 * 60 * 1000);
    assert_false(cs->captcha_ban);
    assert_int_equal(cs->max_bans, 200000);
    assert_int_equal(cs->max_answer, 64 << 20);
    conf_free(c);

    /* With workers N: worker 0 syncs for all of them (src/edge/bouncer.c). */
    c = load_ok(CS "    workers 2\n}\n" ONE_L, false);
    assert_int_equal(c->global.workers, 2);
    assert_string_equal(c->global.crowdsec.url, "http://127.0.0.1:8080");
    conf_free(c);

    c = load_ok(CS "    crowdsec-interval 2s\n    crowdsec-resync off\n    crowdsec-captcha ban\n"
                   "    crowdsec-origins crowdsec cscli\n"
                   "    crowdsec-scenarios-containing ssh mailedge\n"
                   "    crowdsec-scenarios-not-containing http\n"
                   "    crowdsec-max-bans 1000\n    crowdsec-max-answer 1m\n}\n"
                   "listener l {\n    bind 127.0.0.1:2525\n    protocol smtp\n"
                   "    route -> 10.0.0.1:25\n    shared-bans off\n}\n",
                false);
    cs = &c->global.crowdsec;
    assert_int_equal(cs->interval_ms, 2000);
    assert_int_equal(cs->resync_ms, UINT64_MAX);
    assert_true(cs->captcha_ban);
    assert_int_equal(cs->origins.n, 2);
    assert_string_equal(cs->origins.v[1], "cscli");
    assert_int_equal(cs->scen_in.n, 2);
    assert_string_equal(cs->scen_out.v[0], "http");
    assert_int_equal(cs->max_bans, 1000);
    assert_int_equal(cs->max_answer, 1 << 20);
    assert_true(c->listeners[0].shared_bans_off);
    conf_free(c);
}

static void
test_mistakes(void **state)
{
    (void)state;
    setenv("CS_TEST_KEY", "abcdef0123456789", 1);
    load_bad("global {\n    crowdsec ftp://x:1\n    crowdsec-key-env CS_TEST_KEY\n}\n" ONE_L,
             false, 2, 14, "bad crowdsec URL 'ftp://x:1'");
    load_bad("global {\n    crowdsec http://u@h:1\n    crowdsec-key-env CS_TEST_KEY\n}\n" ONE_L,
             false, 2, 14, "bad crowdsec URL");
    load_bad("global {\n    crowdsec http://h:1/?a=b\n    crowdsec-key-env CS_TEST_KEY\n}\n" ONE_L,
             false, 2, 14, "bad crowdsec URL");
    load_bad("global {\n    crowdsec http://h:99999\n    crowdsec-key-env CS_TEST_KEY\n}\n" ONE_L,
             false, 2, 14, "bad crowdsec URL");
    load_bad("global {\n    crowdsec http://127.0.0.1:8080\n}\n" ONE_L, false, 2, 5,
             "crowdsec needs its bouncer key");
    load_bad("global {\n    crowdsec-interval 5s\n}\n" ONE_L, false, 2, 5,
             "crowdsec-* settings need 'crowdsec URL' too");
    load_bad(CS "    crowdsec-interval 100ms\n}\n" ONE_L, false, 4, 23,
             "crowdsec-interval '100ms' is out of range");
    load_bad(CS "    crowdsec-captcha maybe\n}\n" ONE_L, false, 4, 22,
             "bad crowdsec-captcha 'maybe'");
    load_bad(CS "    crowdsec-origins bad,comma\n}\n" ONE_L, false, 4, 22,
             "bad crowdsec-origins word 'bad,comma'");
    load_bad(CS "    crowdsec-max-answer 1k\n}\n" ONE_L, false, 4, 25, "bad crowdsec-max-answer");
    load_bad(CS "    crowdsec-key-file /x\n}\n" ONE_L, false, 4, 5,
             "the crowdsec key is given twice");
    load_bad("global {\n    crowdsec http://h:1\n    crowdsec-key-env CS_UNSET_KEY\n}\n" ONE_L,
             false, 3, 22, "crowdsec-key-env CS_UNSET_KEY: the variable is not set");
    setenv("CS_TEST_KEY", "two words", 1);
    load_bad(CS "}\n" ONE_L, false, 3, 22, "not a usable key");
    load_bad("listener l {\n    bind 127.0.0.1:2525\n    protocol smtp\n    route -> 10.0.0.1:25\n"
             "    shared-bans maybe\n}\n",
             false, 5, 17, "bad shared-bans 'maybe'");
}

static void
with_key(const char *content, mode_t mode, const char *msg)
{
    char path[] = "/tmp/mailedge-test-cskey-XXXXXX", text[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    snprintf(text, sizeof(text),
             "global {\n    crowdsec http://[::1]:8080\n    crowdsec-key-file %s\n}\n" ONE_L, path);
    if (msg == NULL) {
        struct conf *c = load_ok(text, true);
        size_t len = strcspn(content, "\r\n");
        assert_int_equal(c->global.crowdsec.key_len, len);
        assert_memory_equal(c->global.crowdsec.key, content, len);
        conf_free(c);
    } else {
        load_bad(text, true, 3, 23, msg);
    }
    unlink(path);
}

static void
test_key_file(void **state)
{
    (void)state;
    with_key("k\n", 0600, NULL);
    with_key("0123456789abcdef0123456789abcdef\n", 0640, NULL);
    with_key("0123456789abcdef\n", 0644, "crowdsec-key-file /tmp/");
    with_key("0123456789abcdef\n", 0604, "is open to others");
    with_key("a b\n", 0600, "must hold one token");
    with_key("", 0600, "must hold one token");
    load_bad("global {\n    crowdsec http://h:1\n    crowdsec-key-file /nonexistent\n}\n" ONE_L,
             true, 3, 23, "cannot open crowdsec-key-file /nonexistent");
    load_bad("global {\n    crowdsec http://h:1\n    crowdsec-key-file /k\n}\n" ONE_L, false, 3,
             5, "crowdsec-key-file is not allowed when the configuration is loaded from memory");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_mistakes),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
