/*
 * Unit tests for the log's batching and its stdio-free number formatting:
 * inside a batch, lines reach the file only at log_batch_end() (or when the
 * batch is full), always as whole lines, in order; outside a batch each line
 * is written at once; log_flush() writes what is gathered.
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

#include "log.h"
#include "util.h"

static char path[] = "/tmp/mailedge-test-log-XXXXXX";

static size_t
file_size(void)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (size_t)st.st_size;
}

/* The file's lines: count, and each one ends in '\n' and starts with "ts=". */
static size_t
whole_lines(void)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = 0;
    assert_non_null(f);
    while (fgets(buf, sizeof(buf), f) != NULL) {
        assert_true(strncmp(buf, "ts=", 3) == 0);
        assert_true(buf[strlen(buf) - 1] == '\n');
        n++;
    }
    fclose(f);
    return n;
}

static int
setup(void **state)
{
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    log_setup(LOG_FORMAT_LOGFMT, false);
    assert_int_equal(log_open(path), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    log_open(NULL);
    unlink(path);
    return 0;
}

static void
session_line(uint64_t i)
{
    log_begin(LOG_INFO, "session");
    log_hex("id", i, 16);
    log_u64("bytes_in", i * 1000);
    log_str("reason", "client_closed");
    log_end();
}

static void
test_batch_written_at_end(void **state)
{
    (void)state;
    size_t before = file_size();
    log_batch_begin();
    session_line(1);
    session_line(2);
    assert_int_equal(file_size(), before); /* gathered, not written */
    log_batch_end();
    assert_true(file_size() > before);
    assert_int_equal(whole_lines(), 2);
    /* Outside a batch: at once. */
    session_line(3);
    assert_int_equal(whole_lines(), 3);
    assert_int_equal(log_lines_failed(), 0);
}

static void
test_full_batch_flushes_whole_lines(void **state)
{
    (void)state;
    size_t lines0 = whole_lines();
    log_batch_begin();
    for (uint64_t i = 0; i < 1000; i++)
        session_line(i);
    /* Far more than a batch holds: most lines are out already, all whole. */
    size_t mid = whole_lines();
    assert_true(mid > lines0);
    assert_true(mid < lines0 + 1000);
    log_flush();
    assert_int_equal(whole_lines(), lines0 + 1000);
    log_batch_end();
    assert_int_equal(whole_lines(), lines0 + 1000);
}

static void
test_fields_without_stdio(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(util_fmt_u64(buf, 0), 1);
    assert_string_equal(buf, "0");
    util_fmt_u64(buf, 18446744073709551615ull);
    assert_string_equal(buf, "18446744073709551615");
    util_fmt_u64(buf, 1000);
    assert_string_equal(buf, "1000");
    assert_int_equal(util_fmt_hex(buf, 0x84261b99324a34eaull, 16), 16);
    assert_string_equal(buf, "84261b99324a34ea");
    util_fmt_hex(buf, 0xab, 4);
    assert_string_equal(buf, "00ab");

    size_t lines0 = whole_lines();
    session_line(0x1f);
    FILE *f = fopen(path, "r");
    char line[512] = "";
    assert_non_null(f);
    for (size_t i = 0; i <= lines0; i++)
        assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_non_null(strstr(line, " level=info event=session id=000000000000001f bytes_in=31000 "
                                 "reason=client_closed\n"));
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(strlen("ts=2026-12-06T12:00:00.000Z"), (size_t)(strchr(line, ' ') - line));
    assert_true(line[22] == '.' && line[26] == 'Z');
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_written_at_end),
        cmocka_unit_test(test_full_batch_flushes_whole_lines),
        cmocka_unit_test(test_fields_without_stdio),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
