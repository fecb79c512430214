/*
 * Unit tests for roundtrip_msg: options and their checks (password on the
 * command line refused, credentials in command-line URLs refused), the
 * marker, the message, SEARCH replies, push URLs and bodies, backoff and
 * logfmt quoting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "roundtrip_msg.h"
#include "util.h"

#define MAXARGS 64

/* Parses a space-separated command line (no quoting needed in these tests). */
static int
parse(const char *line, struct rt_opts *o, char *err, size_t cap)
{
    static char buf[1024];
    static char *argv[MAXARGS];
    int argc = 0;
    snprintf(buf, sizeof(buf), "roundtrip %s", line);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < MAXARGS - 1;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    err[0] = '\0';
    return rt_parse_args(argc, argv, o, err, cap);
}

#define BASE "--smtp smtp://mx:587 --imap imaps://mx --user u@example.org"

static void
test_args_defaults(void **state)
{
    (void)state;
    struct rt_opts o;
    char err[256];
    assert_int_equal(parse(BASE, &o, err, sizeof(err)), 0);
    assert_string_equal(o.smtp_url, "smtp://mx:587");
    assert_string_equal(o.imap_url, "imaps://mx");
    assert_int_equal(o.timeout_ms, RT_TIMEOUT_DEFAULT_MS);
    assert_int_equal(o.poll_attempts, RT_POLL_ATTEMPTS_DEFAULT);
    assert_int_equal(o.poll_interval_ms, RT_POLL_INTERVAL_DEFAULT_MS);
    assert_int_equal(o.backoff_ms, RT_BACKOFF_DEFAULT_MS);
    assert_int_equal(o.starttls, RT_STARTTLS_REQUIRE);
    assert_int_equal(o.smtp_auth, 1);
    assert_string_equal(o.job, RT_JOB_DEFAULT);
    struct rt_env env = {0};
    assert_int_equal(rt_check(&o, &env, 1, err, sizeof(err)), 0);
    assert_string_equal(o.from, "u@example.org");
    assert_string_equal(o.to, "u@example.org");
}

static void
test_args_all(void **state)
{
    (void)state;
    struct rt_opts o;
    char err[256];
    assert_int_equal(parse(BASE " --from a@b.c --to d@e.f --timeout 3s --poll-attempts 5"
                                " --poll-interval 250ms --backoff 10ms --job mx1 --instance eu-1"
                                " --starttls off --no-smtp-auth --cacert /ca.pem"
                                " --password-file /run/pw --pushgateway http://pg:9091"
                                " --push-url https://kuma/api/push/abc",
                           &o, err, sizeof(err)),
                     0);
    assert_int_equal(o.timeout_ms, 3000);
    assert_int_equal(o.poll_attempts, 5);
    assert_int_equal(o.poll_interval_ms, 250);
    assert_int_equal(o.backoff_ms, 10);
    assert_int_equal(o.starttls, RT_STARTTLS_OFF);
    assert_int_equal(o.smtp_auth, 0);
    assert_string_equal(o.password_file, "/run/pw");
    assert_string_equal(o.cacert, "/ca.pem");
    struct rt_env env = {.pushgateway = "http://other", .user = "other"};
    assert_int_equal(rt_check(&o, &env, 1, err, sizeof(err)), 0);
    assert_string_equal(o.pushgateway, "http://pg:9091"); /* the command line wins */
    assert_string_equal(o.user, "u@example.org");
    assert_string_equal(o.from, "a@b.c");
    assert_int_equal(parse(BASE " --starttls try", &o, err, sizeof(err)), 0);
    assert_int_equal(o.starttls, RT_STARTTLS_TRY);
    assert_int_equal(parse(BASE " --help", &o, err, sizeof(err)), 0);
    assert_int_equal(o.help, 1);
}

static void
test_args_password_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        BASE " --password secret", BASE " --password=secret", BASE " --pass secret",
        BASE " --passwd=x",        BASE " -p secret",         BASE " -psecret",
        BASE " --imap-password x", BASE " --smtp-password=x",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct rt_opts o;
        char err[256];
        assert_int_equal(parse(bad[i], &o, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "refusing a password on the command line"));
        assert_non_null(strstr(err, "--password-file"));
        assert_non_null(strstr(err, RT_ENV_PASSWORD));
    }
    /* --password-file's value is a path, even one that looks like an option */
    struct rt_opts o;
    char err[256];
    assert_int_equal(parse(BASE " --password-file -pfile", &o, err, sizeof(err)), 0);
    assert_string_equal(o.password_file, "-pfile");
    assert_int_equal(parse(BASE " --password-file=/x", &o, err, sizeof(err)), 0);
    assert_string_equal(o.password_file, "/x");
    assert_int_equal(parse(BASE " --smtp-password-file -pw --smtp-user s@x.y", &o, err,
                           sizeof(err)),
                     0);
    assert_string_equal(o.smtp_password_file, "-pw");
    assert_string_equal(o.smtp_user, "s@x.y");
    assert_int_equal(parse(BASE " --smtp-password-file=/s", &o, err, sizeof(err)), 0);
    assert_string_equal(o.smtp_password_file, "/s");
}

struct bad_case {
    const char *args;
    const char *msg;
};

static void
test_args_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {BASE " --timeout 10", "not a duration"},
        {BASE " --timeout 5ms", "too short"},
        {BASE " --poll-interval x", "not a duration"},
        {BASE " --backoff 1", "not a duration"},
        {BASE " --poll-attempts 0", "--poll-attempts"},
        {BASE " --poll-attempts 1001", "--poll-attempts"},
        {BASE " --poll-attempts -1", "--poll-attempts"},
        {BASE " --starttls maybe", "--starttls"},
        {BASE " --bogus", "unknown option '--bogus'"},
        {BASE " -x", "unknown option '-x'"},
        {BASE " extra", "unexpected argument 'extra'"},
        {BASE " --timeout", "--timeout needs a value"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct rt_opts o;
        char err[256];
        assert_int_equal(parse(cases[i].args, &o, err, sizeof(err)), -1);
        if (strstr(err, cases[i].msg) == NULL)
            fail_msg("%s: got '%s', want '%s'", cases[i].args, err, cases[i].msg);
    }
}

static void
test_check_bad(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"--imap imap://mx --user u@x.y", "--smtp URL is required"},
        {"--smtp smtp://mx --user u@x.y", "--imap URL is required"},
        {"--smtp http://mx --imap imap://mx --user u@x.y", "not a smtp:// or smtps:// URL"},
        {"--smtp smtp://mx --imap pop3://mx --user u@x.y", "not a imap:// or imaps:// URL"},
        {"--smtp smtp:// --imap imap://mx --user u@x.y", "no host"},
        {"--smtp smtp://u:pw@mx --imap imap://mx --user u@x.y", "refusing credentials"},
        {"--smtp smtp://mx --imap imap://u:pw@mx --user u@x.y", "refusing credentials"},
        {"--smtp smtp://mx --imap imap://mx", "no user"},
        {"--smtp smtp://mx --imap imap://mx --user u", "--from ADDR is required"},
        {"--smtp smtp://mx --imap imap://mx --user u --from a@b", "--to ADDR is required"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --from a", "not a plain address"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --to <a@b>", "not a plain address"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --job a/b", "--job"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --job a;b", "--job"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --instance a\"b", "--instance"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --pushgateway ftp://pg", "http://"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --pushgateway http://a:b@pg",
         "refusing credentials"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --push-url http://k/p#x", "fragment"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --insecure --cacert /c", "contradict"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --no-smtp-auth --smtp-user s",
         "contradicts"},
        {"--smtp smtp://mx --imap imap://mx --user u@x.y --no-smtp-auth --smtp-password-file /p",
         "contradicts"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct rt_opts o;
        char err[256];
        assert_int_equal(parse(cases[i].args, &o, err, sizeof(err)), 0);
        struct rt_env env = {0};
        assert_int_equal(rt_check(&o, &env, 1, err, sizeof(err)), -1);
        if (strstr(err, cases[i].msg) == NULL)
            fail_msg("%s: got '%s', want '%s'", cases[i].args, err, cases[i].msg);
    }
}

static void
test_check_env(void **state)
{
    (void)state;
    struct rt_opts o;
    char err[256];
    assert_int_equal(parse("--smtp smtps://mx --imap imap://mx", &o, err, sizeof(err)), 0);
    struct rt_env env = {.user = "mon@example.org",
                         .pushgateway = "https://user:tok@pg.example/",
                         .push_url = "https://kuma/api/push/tok?x=1"};
    assert_int_equal(rt_check(&o, &env, 1, err, sizeof(err)), 0);
    assert_string_equal(o.user, "mon@example.org");
    assert_string_equal(o.pushgateway, "https://user:tok@pg.example/"); /* env may hold creds */
    assert_int_equal(o.pushgateway_from_env, 1);
    assert_int_equal(o.push_url_from_env, 1);
    /* no password source */
    assert_int_equal(parse("--smtp smtps://mx --imap imap://mx", &o, err, sizeof(err)), 0);
    assert_int_equal(rt_check(&o, &env, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no password"));
}

static void
test_token_marker(void **state)
{
    (void)state;
    uint8_t rnd[16];
    for (int i = 0; i < 16; i++)
        rnd[i] = (uint8_t)(i * 17 + 1);
    char tok[RT_TOKEN_LEN + 1];
    rt_token(rnd, tok);
    assert_string_equal(tok, "0112233445566778899aabbccddeef00");
    assert_true(rt_token_valid(tok));
    assert_false(rt_token_valid("0112233445566778899AABBCCDDEEF00"));
    assert_false(rt_token_valid("0112"));

    char m[128];
    size_t mlen = rt_marker(m, sizeof(m), "job1", tok);
    assert_int_equal(mlen, strlen(m));
    assert_string_equal(m, "job=job1; token=0112233445566778899aabbccddeef00");
    assert_int_equal(rt_marker(m, 20, "job1", tok), 0);

    char out[RT_TOKEN_LEN + 1];
    assert_int_equal(
        rt_marker_parse("job=job1; token=0112233445566778899aabbccddeef00", "job1", out), 0);
    assert_string_equal(out, tok);
    assert_int_equal(
        rt_marker_parse(" job=job1;token=0112233445566778899aabbccddeef00\r\n", NULL, out), 0);
    assert_int_equal(
        rt_marker_parse("job=job12; token=0112233445566778899aabbccddeef00", "job1", out), -1);
    assert_int_equal(rt_marker_parse("job=b1; token=0112233445566778899aabbccddeef00", "job1", out),
                     -1);
    assert_int_equal(rt_marker_parse("job=job1; token=0112", "job1", out), -1);
    assert_int_equal(
        rt_marker_parse("job=job1; token=0112233445566778899aabbccddeef00x", "job1", out), -1);
    assert_int_equal(rt_marker_parse("token=0112233445566778899aabbccddeef00", NULL, out), -1);
    assert_int_equal(rt_marker_parse("job=; token=0112233445566778899aabbccddeef00", NULL, out),
                     -1);
}

static void
test_search_cmd(void **state)
{
    (void)state;
    char c[256];
    assert_true(rt_search_cmd(c, sizeof(c), "j", "0112233445566778899aabbccddeef00") > 0);
    assert_string_equal(
        c, "UID SEARCH HEADER X-Mailedge-Roundtrip \"token=0112233445566778899aabbccddeef00\"");
    assert_true(rt_search_cmd(c, sizeof(c), "mx.1", NULL) > 0);
    assert_string_equal(c, "UID SEARCH HEADER X-Mailedge-Roundtrip \"job=mx.1;\"");
    assert_int_equal(rt_search_cmd(c, 10, "j", NULL), 0);
}

static void
test_message(void **state)
{
    (void)state;
    char m[4096];
    const char *tok = "0112233445566778899aabbccddeef00";
    size_t n = rt_message(m, sizeof(m), "mon@a.example", "box@b.example", "j", tok,
                          (time_t)1795300246); /* Sat, 21 Nov 2026 22:30:46 UTC */
    assert_int_equal(n, strlen(m));
    assert_non_null(strstr(m, "Date: Sat, 21 Nov 2026 22:30:46 +0000\r\n"));
    assert_true(strncmp(m, "Date: ", 6) == 0);
    assert_non_null(strstr(m, "\r\nFrom: <mon@a.example>\r\n"));
    assert_non_null(strstr(m, "\r\nTo: <box@b.example>\r\n"));
    assert_non_null(strstr(m, "\r\nSubject: mailedge roundtrip "
                              "0112233445566778899aabbccddeef00\r\n"));
    assert_non_null(strstr(m, "\r\nX-Mailedge-Roundtrip: job=j; token="
                              "0112233445566778899aabbccddeef00\r\n"));
    assert_non_null(strstr(m, "\r\nMessage-ID: <mailedge-roundtrip."
                              "0112233445566778899aabbccddeef00@a.example>\r\n"));
    assert_non_null(strstr(m, "\r\n\r\n"));
    /* every line ends in CRLF, no bare LF */
    for (size_t i = 0; i < n; i++) {
        if (m[i] == '\n')
            assert_true(i > 0 && m[i - 1] == '\r');
    }
    assert_true(m[n - 1] == '\n');
    assert_int_equal(rt_message(m, 100, "a@b", "c@d", "j", tok, 0), 0);
}

static void
test_search_parse(void **state)
{
    (void)state;
    uint32_t u[8];
    const char *r1 = "* SEARCH 3 17 4294967295\r\n";
    assert_int_equal(rt_search_parse(r1, strlen(r1), u, 8), 3);
    assert_int_equal(u[0], 3);
    assert_int_equal(u[1], 17);
    assert_int_equal(u[2], 4294967295u);
    const char *r2 = "* 5 EXISTS\r\n* SEARCH\r\n";
    assert_int_equal(rt_search_parse(r2, strlen(r2), u, 8), 0);
    assert_int_equal(rt_search_parse("", 0, u, 8), 0);
    const char *r3 = "* search 1 2 (MODSEQ 917162500)\r\n* SEARCH 9\n";
    assert_int_equal(rt_search_parse(r3, strlen(r3), u, 8), 3);
    assert_int_equal(u[2], 9);
    const char *r4 = "* SEARCHX 1\r\n"; /* another reply, skipped */
    assert_int_equal(rt_search_parse(r4, strlen(r4), u, 8), 0);
    static const char *const bad[] = {
        "* SEARCH 1 x\r\n", "* SEARCH 4294967296\r\n",        "* SEARCH 0\r\n",
        "* SEARCH 1,2\r\n", "* SEARCH 1 2 3 4 5 6 7 8 9\r\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(rt_search_parse(bad[i], strlen(bad[i]), u, 8), -1);
    /* not NUL-terminated: the length bounds the read */
    char raw[] = {'*', ' ', 'S', 'E', 'A', 'R', 'C', 'H', ' ', '7'};
    assert_int_equal(rt_search_parse(raw, sizeof(raw), u, 8), 1);
    assert_int_equal(u[0], 7);
}

static void
test_uid_set_imap_url(void **state)
{
    (void)state;
    char b[64];
    uint32_t u[] = {1, 22, 333};
    assert_int_equal(rt_uid_set(b, sizeof(b), u, 3), 8);
    assert_string_equal(b, "1,22,333");
    assert_int_equal(rt_uid_set(b, sizeof(b), u, 0), 0);
    assert_int_equal(rt_uid_set(b, 5, u, 3), 0);

    char url[256];
    assert_true(rt_imap_url(url, sizeof(url), "imap://mx") > 0);
    assert_string_equal(url, "imap://mx/INBOX");
    assert_true(rt_imap_url(url, sizeof(url), "imaps://mx:993/") > 0);
    assert_string_equal(url, "imaps://mx:993/INBOX");
    assert_true(rt_imap_url(url, sizeof(url), "imaps://[::1]:993/Monitor") > 0);
    assert_string_equal(url, "imaps://[::1]:993/Monitor");
    assert_int_equal(rt_imap_url(url, 10, "imap://mx"), 0);
}

static void
test_pushgateway(void **state)
{
    (void)state;
    char u[256];
    assert_true(rt_pushgateway_url(u, sizeof(u), "http://pg:9091", "j", NULL) > 0);
    assert_string_equal(u, "http://pg:9091/metrics/job/j");
    assert_true(rt_pushgateway_url(u, sizeof(u), "http://pg:9091//", "j", "i1") > 0);
    assert_string_equal(u, "http://pg:9091/metrics/job/j/instance/i1");
    assert_true(
        rt_pushgateway_url(u, sizeof(u), "https://pg/prefix/metrics/job/x/site/eu", "j", "i1") > 0);
    assert_string_equal(u, "https://pg/prefix/metrics/job/x/site/eu");
    assert_int_equal(rt_pushgateway_url(u, 20, "http://pg:9091", "j", NULL), 0);

    char b[2048];
    struct rt_result ok = {
        .ok = 1, .duration_ms = 1234, .finished = 1795300246, .stale_deleted = 2};
    assert_true(rt_pushgateway_body(b, sizeof(b), &ok) > 0);
    assert_non_null(strstr(b, "\nmailedge_roundtrip_success 1\n"));
    assert_non_null(strstr(b, "\nmailedge_roundtrip_duration_seconds 1.234\n"));
    assert_non_null(strstr(b, "\nmailedge_roundtrip_last_run_timestamp_seconds 1795300246\n"));
    assert_non_null(strstr(b, "\nmailedge_roundtrip_stale_deleted 2\n"));
    assert_non_null(strstr(b, "# TYPE mailedge_roundtrip_success gauge\n"));
    struct rt_result bad = {.ok = 0, .duration_ms = 99, .finished = 5, .stage = "smtp"};
    assert_true(rt_pushgateway_body(b, sizeof(b), &bad) > 0);
    assert_non_null(strstr(b, "\nmailedge_roundtrip_success 0\n"));
    assert_null(strstr(b, "duration_seconds"));
    assert_int_equal(rt_pushgateway_body(b, 100, &ok), 0);
    ok.duration_ms = 7;
    assert_true(rt_pushgateway_body(b, sizeof(b), &ok) > 0);
    assert_non_null(strstr(b, "\nmailedge_roundtrip_duration_seconds 0.007\n"));
}

static void
test_push_url(void **state)
{
    (void)state;
    char u[512];
    struct rt_result ok = {.ok = 1, .duration_ms = 812};
    assert_true(rt_push_url(u, sizeof(u), "https://kuma/api/push/abc", &ok) > 0);
    assert_string_equal(u, "https://kuma/api/push/abc?status=up&msg=OK&ping=812");
    assert_true(rt_push_url(u, sizeof(u), "https://kuma/api/push/abc?x=1", &ok) > 0);
    assert_string_equal(u, "https://kuma/api/push/abc?x=1&status=up&msg=OK&ping=812");
    assert_true(rt_push_url(u, sizeof(u), "https://kuma/p?", &ok) > 0);
    assert_string_equal(u, "https://kuma/p?status=up&msg=OK&ping=812");
    struct rt_result bad = {.ok = 0, .stage = "imap", .reason = "Login denied: a&b=c"};
    assert_true(rt_push_url(u, sizeof(u), "http://k/p", &bad) > 0);
    assert_string_equal(u, "http://k/p?status=down&msg=imap%3A%20Login%20denied%3A%20a%26b%3Dc");
    struct rt_result bare = {.ok = 0};
    assert_true(rt_push_url(u, sizeof(u), "http://k/p", &bare) > 0);
    assert_string_equal(u, "http://k/p?status=down&msg=failed");
    assert_int_equal(rt_push_url(u, 20, "http://k/p", &ok), 0);
}

static void
test_backoff(void **state)
{
    (void)state;
    assert_int_equal(rt_backoff_ms(1000, 1), 1000);
    assert_int_equal(rt_backoff_ms(1000, 2), 2000);
    assert_int_equal(rt_backoff_ms(1000, 3), 4000);
    assert_int_equal(rt_backoff_ms(10, 0), 0);
    assert_int_equal(rt_backoff_ms(0, 5), 0);
    assert_true(rt_backoff_ms(UINT64_MAX / 2, 3) == UINT64_MAX);
}

static void
test_logfmt(void **state)
{
    (void)state;
    char b[128] = "";
    rt_logfmt_add(b, sizeof(b), "roundtrip", "ok");
    rt_logfmt_add(b, sizeof(b), "reason", "Login denied \"x\"\r\n");
    rt_logfmt_add(b, sizeof(b), "e", "");
    rt_logfmt_add(b, sizeof(b), "k", "a=b");
    assert_string_equal(b, "roundtrip=ok reason=\"Login denied \\\"x\\\"??\" e=\"\" k=\"a=b\"");
    char s[16] = "";
    rt_logfmt_add(s, sizeof(s), "key", "a very long value here");
    assert_true(strlen(s) < sizeof(s));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_defaults),
        cmocka_unit_test(test_args_all),
        cmocka_unit_test(test_args_password_refused),
        cmocka_unit_test(test_args_bad),
        cmocka_unit_test(test_check_bad),
        cmocka_unit_test(test_check_env),
        cmocka_unit_test(test_token_marker),
        cmocka_unit_test(test_search_cmd),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_search_parse),
        cmocka_unit_test(test_uid_set_imap_url),
        cmocka_unit_test(test_pushgateway),
        cmocka_unit_test(test_push_url),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_logfmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
