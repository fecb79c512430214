/*
 * Unit tests for metrics: the exact Prometheus text for a small fixture,
 * label value escaping, the latency histogram and the growing string.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const char *const reasons[] = {"client_closed", "proxy_invalid"};

static const char *const check_reasons[] = {"passed", "l4_refused", "5xx"};

static void
fixture(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
    assert_int_equal(metrics_init(m, 1, 1), 0);
    m->version = "1.2.3";
    m->reason_names = reasons;
    m->nreasons = 2;
    m->listeners[0].name = "smtp";
    m->listeners[0].active = 2;
    m->listeners[0].ended[0] = 5;
    m->listeners[0].ended[1] = 1;
    m->listeners[0].bytes_in = 100;
    m->listeners[0].bytes_out = 2000;
    m->listeners[0].proxy_errors[METRICS_PROXY_INVALID] = 1;
    m->listeners[0].refused_maxconn = 7;
    m->fd_limit = 20000;
    m->fd_reserved = 78;
    m->maxconn = 9650;
    m->servers[0].backend = "mail";
    m->servers[0].name = "mx1";
    m->servers[0].connect_errors[METRICS_CONNECT_REFUSED] = 3;
    m->servers[0].attempts_abandoned = 2;
    metrics_connect_ok(&m->servers[0], 0);
    metrics_connect_ok(&m->servers[0], 7);
    metrics_connect_ok(&m->servers[0], 20000);
    m->check_reason_names = check_reasons;
    m->ncheck_reasons = 3;
    m->servers[0].checked = true;
    m->servers[0].up = true;
    m->servers[0].check_failures[2] = 4;
}

static const char expected[] =
    "# HELP mailedge_build_info Always 1; the version in a label.\n"
    "# TYPE mailedge_build_info gauge\n"
    "mailedge_build_info{version=\"1.2.3\"} 1\n"
    "# HELP mailedge_sessions_active Sessions open now, per listener.\n"
    "# TYPE mailedge_sessions_active gauge\n"
    "mailedge_sessions_active{listener=\"smtp\"} 2\n"
    "# HELP mailedge_sessions_total Sessions ended, per listener and end reason (the log's "
    "reason=).\n"
    "# TYPE mailedge_sessions_total counter\n"
    "mailedge_sessions_total{listener=\"smtp\",reason=\"client_closed\"} 5\n"
    "mailedge_sessions_total{listener=\"smtp\",reason=\"proxy_invalid\"} 1\n"
    "# HELP mailedge_bytes_total Bytes relayed by ended sessions, per listener; direction in: "
    "client to server, out: to the client.\n"
    "# TYPE mailedge_bytes_total counter\n"
    "mailedge_bytes_total{listener=\"smtp\",direction=\"in\"} 100\n"
    "mailedge_bytes_total{listener=\"smtp\",direction=\"out\"} 2000\n"
    "# HELP mailedge_maxconn_refusals_total Clients accepted only to get the protocol's "
    "try-again-later, because the process or the listener was at maxconn, per listener.\n"
    "# TYPE mailedge_maxconn_refusals_total counter\n"
    "mailedge_maxconn_refusals_total{listener=\"smtp\"} 7\n"
    "# HELP mailedge_proxy_header_errors_total Inbound PROXY headers refused, per listener and "
    "reason.\n"
    "# TYPE mailedge_proxy_header_errors_total counter\n"
    "mailedge_proxy_header_errors_total{listener=\"smtp\",reason=\"invalid\"} 1\n"
    "mailedge_proxy_header_errors_total{listener=\"smtp\",reason=\"timeout\"} 0\n"
    "mailedge_proxy_header_errors_total{listener=\"smtp\",reason=\"untrusted\"} 0\n"
    "# HELP mailedge_server_connects_total Successful connects to a server, per backend and "
    "server.\n"
    "# TYPE mailedge_server_connects_total counter\n"
    "mailedge_server_connects_total{backend=\"mail\",server=\"mx1\"} 3\n"
    "# HELP mailedge_server_connect_errors_total Failed connects to a server, per backend, "
    "server and reason.\n"
    "# TYPE mailedge_server_connect_errors_total counter\n"
    "mailedge_server_connect_errors_total{backend=\"mail\",server=\"mx1\",reason=\"refused\"} 3\n"
    "mailedge_server_connect_errors_total{backend=\"mail\",server=\"mx1\",reason=\"timeout\"} 0\n"
    "mailedge_server_connect_errors_total{backend=\"mail\",server=\"mx1\",reason=\"error\"} 0\n"
    "# HELP mailedge_server_connect_attempts_abandoned_total Connect attempts of sessions given "
    "up because another address of the server connected first (Happy Eyeballs).\n"
    "# TYPE mailedge_server_connect_attempts_abandoned_total counter\n"
    "mailedge_server_connect_attempts_abandoned_total{backend=\"mail\",server=\"mx1\"} 2\n"
    "# HELP mailedge_server_connect_duration_seconds Time from connect start to connected, for "
    "successful connects.\n"
    "# TYPE mailedge_server_connect_duration_seconds histogram\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.001\"} "
    "1\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.005\"} "
    "1\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.01\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.025\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.05\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.1\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.25\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"0.5\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"1\"} 2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"2.5\"} "
    "2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"5\"} 2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"10\"} 2\n"
    "mailedge_server_connect_duration_seconds_bucket{backend=\"mail\",server=\"mx1\",le=\"+Inf\"} "
    "3\n"
    "mailedge_server_connect_duration_seconds_sum{backend=\"mail\",server=\"mx1\"} 20.007\n"
    "mailedge_server_connect_duration_seconds_count{backend=\"mail\",server=\"mx1\"} 3\n"
    "# HELP mailedge_server_up 1 when new sessions may use the server (always, without a health "
    "check).\n"
    "# TYPE mailedge_server_up gauge\n"
    "mailedge_server_up{backend=\"mail\",server=\"mx1\"} 1\n"
    "# HELP mailedge_server_sessions_active Sessions connecting or connected to the server now "
    "(what least-conn compares).\n"
    "# TYPE mailedge_server_sessions_active gauge\n"
    "mailedge_server_sessions_active{backend=\"mail\",server=\"mx1\"} 0\n"
    "# HELP mailedge_server_check_failures_total Failed health checks, per backend, server and "
    "reason (checked servers only).\n"
    "# TYPE mailedge_server_check_failures_total counter\n"
    "mailedge_server_check_failures_total{backend=\"mail\",server=\"mx1\",reason=\"l4_refused\"} "
    "0\n"
    "mailedge_server_check_failures_total{backend=\"mail\",server=\"mx1\",reason=\"5xx\"} 4\n"
    "# HELP mailedge_server_health_transitions_total Health transitions (up/down changes) of a "
    "checked server, per backend, server and the state it went to.\n"
    "# TYPE mailedge_server_health_transitions_total counter\n"
    "mailedge_server_health_transitions_total{backend=\"mail\",server=\"mx1\",to=\"up\"} 0\n"
    "mailedge_server_health_transitions_total{backend=\"mail\",server=\"mx1\",to=\"down\"} 0\n"
    "# HELP mailedge_server_health_last_change_timestamp_seconds Unix time of the last health "
    "change of a checked server (0: none yet).\n"
    "# TYPE mailedge_server_health_last_change_timestamp_seconds gauge\n"
    "mailedge_server_health_last_change_timestamp_seconds{backend=\"mail\",server=\"mx1\"} 0\n"
    "# HELP mailedge_log_lines_failed_total Log lines that could not be written, or only in part "
    "(disk full, closed pipe).\n"
    "# TYPE mailedge_log_lines_failed_total counter\n"
    "mailedge_log_lines_failed_total 0\n"
    "# HELP mailedge_descriptors_limit RLIMIT_NOFILE when the configuration was last loaded.\n"
    "# TYPE mailedge_descriptors_limit gauge\n"
    "mailedge_descriptors_limit 20000\n"
    "# HELP mailedge_descriptors_reserved Descriptors kept for all but sessions: checks, "
    "resolver, admin, listeners.\n"
    "# TYPE mailedge_descriptors_reserved gauge\n"
    "mailedge_descriptors_reserved 78\n"
    "# HELP mailedge_maxconn Sessions at most, for the whole process (configured, or derived "
    "from the limit).\n"
    "# TYPE mailedge_maxconn gauge\n"
    "mailedge_maxconn 9650\n";

static void
test_render_fixture(void **state)
{
    (void)state;
    struct metrics m;
    struct strbuf out = {0};

    fixture(&m);
    assert_int_equal(metrics_render(&m, &out), 0);
    assert_non_null(out.p);
    assert_int_equal(out.len, strlen(out.p));
    assert_string_equal(out.p, expected);
    free(out.p);
    metrics_free(&m);
}

static void
test_label_escaping(void **state)
{
    (void)state;
    struct metrics m;
    struct strbuf out = {0};

    fixture(&m);
    m.listeners[0].name = "a\\b\"c\nd";
    assert_int_equal(metrics_render(&m, &out), 0);
    assert_non_null(strstr(out.p, "mailedge_sessions_active{listener=\"a\\\\b\\\"c\\nd\"} 2\n"));
    /* No raw newline inside a sample line: every line is a comment or name{...} value. */
    for (char *line = out.p; *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || strncmp(line, "mailedge_", 9) == 0);
        line = nl + 1;
    }
    free(out.p);
    metrics_free(&m);
}

static void
test_histogram_bounds(void **state)
{
    (void)state;
    struct metrics_server s;

    memset(&s, 0, sizeof(s));
    metrics_connect_ok(&s, 1);     /* le 0.001: bounds are inclusive */
    metrics_connect_ok(&s, 2);     /* le 0.005 */
    metrics_connect_ok(&s, 10000); /* le 10 */
    metrics_connect_ok(&s, 10001); /* only +Inf */
    assert_int_equal(s.connects, 4);
    assert_int_equal(s.lat_bucket[0], 1);
    assert_int_equal(s.lat_bucket[1], 1);
    assert_int_equal(s.lat_bucket[METRICS_LAT_BUCKETS - 1], 1);
    assert_int_equal(s.lat_sum_ms, 20004);
}

static void
test_empty(void **state)
{
    (void)state;
    struct metrics m;
    struct strbuf out = {0};

    memset(&m, 0, sizeof(m));
    assert_int_equal(metrics_init(&m, 0, 0), 0);
    assert_int_equal(metrics_render(&m, &out), 0);
    /* Every family is announced even with no listener: HELP and TYPE only. */
    assert_non_null(strstr(out.p, "# TYPE mailedge_sessions_total counter\n"
                                  "# HELP mailedge_bytes_total"));
    assert_non_null(strstr(out.p, "mailedge_build_info{version=\"\"} 1\n"));
    free(out.p);
    metrics_free(&m);
}

static void
test_strbuf(void **state)
{
    (void)state;
    struct strbuf b = {0};
    char big[3000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    strbuf_add(&b, "a");
    strbuf_addf(&b, "%s|%d", big, 42);
    assert_false(b.oom);
    assert_int_equal(b.len, 1 + 2999 + 3);
    assert_int_equal(strlen(b.p), b.len);
    assert_string_equal(b.p + b.len - 3, "|42");
    free(b.p);
}

/* The queue depth gauge: one sample per backend, after the server families. */
static void
test_queue_depth(void **state)
{
    (void)state;
    struct metrics m;
    struct metrics_backend qb[2] = {{"mail", 3}, {"imap\"x", 0}};
    struct strbuf out = {0};

    fixture(&m);
    m.backends = qb;
    m.nbackends = 2;
    assert_int_equal(metrics_render(&m, &out), 0);
    const char *want = "# HELP mailedge_queue_depth Clients held now, per backend, waiting for a "
                       "server to come up (queue-timeout).\n"
                       "# TYPE mailedge_queue_depth gauge\n"
                       "mailedge_queue_depth{backend=\"mail\"} 3\n"
                       "mailedge_queue_depth{backend=\"imap\\\"x\"} 0\n";
    assert_non_null(strstr(out.p, want));
    /* The family comes last. */
    assert_string_equal(out.p + out.len - strlen(want), want);
    free(out.p);
    metrics_free(&m);
}

/* Reload counters: only with reload_info, after everything else. */
static void
test_reloads(void **state)
{
    (void)state;
    struct metrics m;
    struct strbuf out = {0};

    fixture(&m);
    assert_int_equal(metrics_render(&m, &out), 0);
    assert_null(strstr(out.p, "reload"));
    out.len = 0;
    m.reload_info = true;
    m.reloads_ok = 7;
    m.reloads_failed = 2;
    m.last_reload_ok = false;
    m.last_reload_ok_time = 1795000000;
    assert_int_equal(metrics_render(&m, &out), 0);
    const char *want =
        "# HELP mailedge_reloads_total Configuration reloads (SIGHUP), by result: success, or "
        "failure (the old config stayed).\n"
        "# TYPE mailedge_reloads_total counter\n"
        "mailedge_reloads_total{result=\"success\"} 7\n"
        "mailedge_reloads_total{result=\"failure\"} 2\n"
        "# HELP mailedge_config_last_reload_successful 1 when the last reload (or the start) "
        "succeeded, else 0.\n"
        "# TYPE mailedge_config_last_reload_successful gauge\n"
        "mailedge_config_last_reload_successful 0\n"
        "# HELP mailedge_config_last_reload_success_timestamp_seconds Unix time of the last "
        "successful reload, or of the start.\n"
        "# TYPE mailedge_config_last_reload_success_timestamp_seconds gauge\n"
        "mailedge_config_last_reload_success_timestamp_seconds 1795000000\n";
    assert_string_equal(out.p + out.len - strlen(want), want);
    free(out.p);
    metrics_free(&m);
}

/* Remote bans (src/edge/bouncer.c): only with crowdsec, last; every error kind listed. */
static void
test_bansync(void **state)
{
    (void)state;
    struct metrics m;
    struct strbuf out = {0};

    fixture(&m);
    assert_int_equal(metrics_render(&m, &out), 0);
    assert_null(strstr(out.p, "remote"));
    assert_null(strstr(out.p, "ban_sync"));
    out.len = 0;
    m.bansync.on = true;
    m.bansync.up = true;
    m.bansync.ips = 100000;
    m.bansync.ranges = 12;
    m.bansync.errors[METRICS_SYNC_AUTH] = 3;
    m.bansync.errors[METRICS_SYNC_OVERSIZED] = 1;
    m.bansync.last_success = 1795000000;
    m.bansync.ignored = 4;
    m.bansync.dropped_full = 5;
    m.bansync.refused = 6;
    assert_int_equal(metrics_render(&m, &out), 0);
    const char *want =
        "# HELP mailedge_remote_bans Remote bans (CrowdSec decisions) held now, by type: single "
        "addresses or ranges.\n"
        "# TYPE mailedge_remote_bans gauge\n"
        "mailedge_remote_bans{type=\"ip\"} 100000\n"
        "mailedge_remote_bans{type=\"range\"} 12\n"
        "# HELP mailedge_ban_sync_up 1 when the last poll of the ban engine succeeded; 0: the "
        "last good set stays in force.\n"
        "# TYPE mailedge_ban_sync_up gauge\n"
        "mailedge_ban_sync_up 1\n"
        "# HELP mailedge_ban_sync_errors_total Failed polls of the ban engine, by kind.\n"
        "# TYPE mailedge_ban_sync_errors_total counter\n"
        "mailedge_ban_sync_errors_total{kind=\"connect\"} 0\n"
        "mailedge_ban_sync_errors_total{kind=\"timeout\"} 0\n"
        "mailedge_ban_sync_errors_total{kind=\"auth\"} 3\n"
        "mailedge_ban_sync_errors_total{kind=\"http\"} 0\n"
        "mailedge_ban_sync_errors_total{kind=\"bad_answer\"} 0\n"
        "mailedge_ban_sync_errors_total{kind=\"oversized\"} 1\n"
        "# HELP mailedge_ban_sync_last_success_timestamp_seconds Unix time of the last successful "
        "poll of the ban engine (0: none yet).\n"
        "# TYPE mailedge_ban_sync_last_success_timestamp_seconds gauge\n"
        "mailedge_ban_sync_last_success_timestamp_seconds 1795000000\n"
        "# HELP mailedge_remote_decisions_ignored_total Decisions not enforced: a type other than "
        "ban (captcha unless crowdsec-captcha ban), left out by a filter, or unusable.\n"
        "# TYPE mailedge_remote_decisions_ignored_total counter\n"
        "mailedge_remote_decisions_ignored_total 4\n"
        "# HELP mailedge_remote_bans_dropped_total Decisions not kept because the remote-ban set "
        "was full (crowdsec-max-bans).\n"
        "# TYPE mailedge_remote_bans_dropped_total counter\n"
        "mailedge_remote_bans_dropped_total 5\n"
        "# HELP mailedge_remote_ban_refusals_total Clients refused because of a remote ban.\n"
        "# TYPE mailedge_remote_ban_refusals_total counter\n"
        "mailedge_remote_ban_refusals_total 6\n";
    assert_string_equal(out.p + out.len - strlen(want), want);
    free(out.p);
    metrics_free(&m);
}

/* Abuse-control families: only listeners with stats, placed before the queue family. */
static void
test_abuse_families(void **state)
{
    (void)state;
    struct metrics m;
    struct strbuf out = {0};
    struct abuse_stats st = {.pregreet = 4, .bans_active = 2, .bans_total = 3, .entries = 10,
                             .capacity = 4096, .evictions = 7, .untracked = 1,
                             .dominant = 9};
    st.refused[ABUSE_PER_IP] = 5;
    st.refused[ABUSE_RATE] = 6;
    st.refused[ABUSE_BANNED] = 8;

    fixture(&m);
    assert_int_equal(metrics_render(&m, &out), 0);
    assert_null(strstr(out.p, "mailedge_bans_active"));
    free(out.p);
    out = (struct strbuf){0};
    m.listeners[0].abuse = &st;
    assert_int_equal(metrics_render(&m, &out), 0);
    static const char *const want[] = {
        "# TYPE mailedge_abuse_refusals_total counter\n",
        "mailedge_abuse_refusals_total{listener=\"smtp\",reason=\"limit_per_ip\"} 5\n",
        "mailedge_abuse_refusals_total{listener=\"smtp\",reason=\"limit_rate\"} 6\n",
        "mailedge_abuse_refusals_total{listener=\"smtp\",reason=\"banned\"} 8\n",
        "mailedge_pregreet_total{listener=\"smtp\"} 4\n",
        "# TYPE mailedge_bans_active gauge\nmailedge_bans_active{listener=\"smtp\"} 2\n",
        "mailedge_bans_total{listener=\"smtp\"} 3\n",
        "mailedge_abuse_table_entries{listener=\"smtp\"} 10\n",
        "mailedge_abuse_table_size{listener=\"smtp\"} 4096\n",
        "mailedge_abuse_evictions_total{listener=\"smtp\"} 7\n",
        "mailedge_abuse_untracked_total{listener=\"smtp\"} 1\n",
        "# TYPE mailedge_dominant_client_warnings_total counter\n"
        "mailedge_dominant_client_warnings_total{listener=\"smtp\"} 9\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(out.p, want[i]) == NULL)
            fail_msg("missing: %s", want[i]);
    }
    free(out.p);
    metrics_free(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_fixture),   cmocka_unit_test(test_bansync),   cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_histogram_bounds), cmocka_unit_test(test_empty),
        cmocka_unit_test(test_strbuf),           cmocka_unit_test(test_queue_depth),
        cmocka_unit_test(test_reloads),
        cmocka_unit_test(test_abuse_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
