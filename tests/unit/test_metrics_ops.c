/*
 * Unit tests for the metrics operators alert on: health transitions and
 * the time of the last one, lost log lines, the process metrics (their
 * rendering, and the parser of /proc/PID/stat behind them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "metrics.h"
#include "procstat.h"

static char *
render(const struct metrics *m)
{
    struct strbuf out = {0};
    assert_int_equal(metrics_render(m, &out), 0);
    return out.p;
}

static void
test_transitions_and_log(void **state)
{
    (void)state;
    struct metrics m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(metrics_init(&m, 0, 2), 0);
    m.servers[0] = (struct metrics_server){.backend = "mail", .name = "mx1", .checked = true,
                                           .went_up = 3, .went_down = 2, .last_change = 1700000000};
    m.servers[1] = (struct metrics_server){.backend = "web", .name = "w", .checked = false};
    m.log_lines_failed = 7;
    char *t = render(&m);
    assert_non_null(strstr(t, "# TYPE mailedge_server_health_transitions_total counter\n"
                              "mailedge_server_health_transitions_total{backend=\"mail\","
                              "server=\"mx1\",to=\"up\"} 3\n"
                              "mailedge_server_health_transitions_total{backend=\"mail\","
                              "server=\"mx1\",to=\"down\"} 2\n#"));
    assert_non_null(strstr(t, "# TYPE mailedge_server_health_last_change_timestamp_seconds gauge\n"
                              "mailedge_server_health_last_change_timestamp_seconds{backend="
                              "\"mail\",server=\"mx1\"} 1700000000\n#"));
    /* A server without a health check never changes: no sample. */
    assert_null(strstr(t, "server=\"w\",to="));
    assert_null(strstr(t, "last_change_timestamp_seconds{backend=\"web\""));
    assert_non_null(strstr(t, "# TYPE mailedge_log_lines_failed_total counter\n"
                              "mailedge_log_lines_failed_total 7\n"));
    /* Without process_info, no process_* family at all. */
    assert_null(strstr(t, "process_"));
    free(t);
    metrics_free(&m);
}

static void
test_process_family(void **state)
{
    (void)state;
    struct metrics m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(metrics_init(&m, 0, 0), 0);
    m.process_info = true;
    m.process = (struct metrics_process){.start_time = 1765000000, .open_fds = 12,
                                         .max_fds = 20000, .resident_bytes = 4096000};
    char *t = render(&m);
    assert_non_null(strstr(t, "# TYPE process_start_time_seconds gauge\n"
                              "process_start_time_seconds 1765000000\n"));
    assert_non_null(strstr(t, "# TYPE process_open_fds gauge\nprocess_open_fds 12\n"));
    assert_non_null(strstr(t, "# TYPE process_max_fds gauge\nprocess_max_fds 20000\n"));
    assert_non_null(strstr(t, "# TYPE process_resident_memory_bytes gauge\n"
                              "process_resident_memory_bytes 4096000\n"));
    free(t);
    metrics_free(&m);
}

static void
test_parse_stat(void **state)
{
    (void)state;
    /* A name with spaces and ')' inside: fields count from its last ')'. */
    static const char line[] =
        "4242 (mail (edge) x) S 1 4242 4242 0 -1 4194560 310 0 0 0 5 3 0 0 20 0 1 0 "
        "987654 123456789 2222 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    uint64_t ticks = 0, pages = 0;
    assert_int_equal(procstat_parse_stat(line, strlen(line), &ticks, &pages), 0);
    assert_int_equal(ticks, 987654);
    assert_int_equal(pages, 2222);

    static const char *const bad[] = {
        "",
        "4242 no name S 1 2 3",
        "4242 (x) S 1 4242 4242 0 -1 4194560 310 0 0 0 5 3 0 0 20 0 1 0\n", /* cut short */
        "4242 (x) S 1 4242 4242 0 -1 4194560 310 0 0 0 5 3 0 0 20 0 1 0 9x9 1 2 3\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(procstat_parse_stat(bad[i], strlen(bad[i]), &ticks, &pages), -1);
}

static void
test_read_self(void **state)
{
    (void)state;
    struct metrics_process p;
    struct rlimit rl;
    memset(&p, 0, sizeof(p));
    assert_int_equal(procstat_read(&p), 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(p.max_fds, rl.rlim_cur);
    assert_true(p.open_fds >= 3); /* stdin, stdout, stderr */
    assert_true(p.resident_bytes > 0);
    assert_true(p.start_time > 1500000000); /* after 2017: boot time + ticks */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions_and_log),
        cmocka_unit_test(test_process_family),
        cmocka_unit_test(test_parse_stat),
        cmocka_unit_test(test_read_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
