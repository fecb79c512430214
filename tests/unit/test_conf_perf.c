/*
 * Unit tests for busy-poll off|DURATION in the global block (microseconds
 * or any duration, at most 10ms): its default, values, and the LINE:COL of
 * every mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf.h"

#define ONE_L "listener l {\n    bind 127.0.0.1:2525\n    protocol smtp\n    route -> 10.0.0.1:25\n}\n"

static struct conf *
load_global(const char *global_line, struct diag_list *d)
{
    char text[512];
    struct conf *c = NULL;
    snprintf(text, sizeof(text), "global {\n    %s\n}\n" ONE_L, global_line);
    conf_load_string("test.conf", text, strlen(text), false, &c, d);
    return c;
}

static struct conf *
load_ok(const char *global_line)
{
    struct diag_list d = {0};
    struct conf *c = load_global(global_line, &d);
    if (c == NULL) {
        diag_list_print(&d, stderr);
        fail_msg("expected '%s' to load", global_line);
    }
    diag_list_free(&d);
    return c;
}

static void
load_bad(const char *global_line, int col, const char *msg)
{
    struct diag_list d = {0};
    struct conf *c = load_global(global_line, &d);
    assert_null(c);
    if (d.n == 0 || d.v[0].line != 2 || d.v[0].col != col || strstr(d.v[0].msg, msg) == NULL) {
        diag_list_print(&d, stderr);
        fail_msg("expected 2:%d: %s", col, msg);
    }
    diag_list_free(&d);
}

static void
test_busy_poll(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        uint32_t us;
    } ok[] = {
        {"grace 1s", 0},          {"busy-poll off", 0},    {"busy-poll 50us", 50},
        {"busy-poll 0us", 0},     {"busy-poll 2ms", 2000}, {"busy-poll 10000us", 10000},
        {"busy-poll 10ms", 10000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct conf *c = load_ok(ok[i].line);
        assert_int_equal(c->global.busy_poll_us, ok[i].us);
        conf_free(c);
    }
    load_bad("busy-poll 10001us", 15, "busy-poll '10001us' is too long (at most 10ms)");
    load_bad("busy-poll 1s", 15, "busy-poll '1s' is too long (at most 10ms)");
    load_bad("busy-poll fast", 15, "bad value 'fast' for busy-poll: expected off or a duration");
    load_bad("busy-poll us", 15, "bad value 'us' for busy-poll");
    load_bad("busy-poll -5us", 15, "bad value '-5us' for busy-poll");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
