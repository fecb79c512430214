/*
 * Unit tests for decisions_free_some(): a parsed answer freed in steps
 * (the bouncer frees one a few blocks per loop pass): every kind of
 * answer ends freed (ASan and the SAN build check nothing leaks or is
 * freed twice), each step frees at most its budget, nothing can be read
 * once freeing began.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decisions.h"

#define DEC "{\"duration\":\"1h\",\"origin\":\"cscli\",\"scenario\":\"s\",\"scope\":\"Ip\"," \
            "\"type\":\"ban\",\"value\":\"192.0.2.%zu\"}"

/* {"new":[<n_new> decisions, and 7 if <odd>],"deleted":[<n_del> decisions]} */
static char *
answer(size_t n_new, size_t n_del, bool odd, size_t *len)
{
    size_t cap = (n_new + n_del) * 140 + 64, l = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    l += (size_t)snprintf(b + l, cap - l, "{\"new\":[");
    for (size_t i = 0; i < n_new; i++)
        l += (size_t)snprintf(b + l, cap - l, "%s" DEC, i ? "," : "", i % 256);
    if (odd)
        l += (size_t)snprintf(b + l, cap - l, "%s7", n_new ? "," : "");
    l += (size_t)snprintf(b + l, cap - l, "],\"deleted\":[");
    for (size_t i = 0; i < n_del; i++)
        l += (size_t)snprintf(b + l, cap - l, "%s" DEC, i ? "," : "", i % 256);
    l += (size_t)snprintf(b + l, cap - l, "]}");
    assert_true(l < cap);
    *len = l;
    return b;
}

/* Frees <d> <budget> at a time; the number of calls. */
static size_t
free_steps(struct decisions *d, size_t budget)
{
    size_t steps = 1;
    while (!decisions_free_some(d, budget)) {
        assert_int_equal(decisions_count(d, false), 0);
        assert_int_equal(decisions_count(d, true), 0);
        struct decision x;
        assert_int_equal(decisions_get(d, false, 0, &x, NULL), -1);
        steps++;
        assert_true(steps < 1000);
    }
    return steps;
}

static struct decisions *
parsed(const char *body, size_t len, enum decisions_rc want)
{
    struct decisions *d = decisions_new(len + 1);
    assert_non_null(d);
    enum decisions_rc rc = decisions_feed(d, body, len);
    if (rc == DECISIONS_MORE)
        rc = decisions_end(d);
    assert_int_equal(rc, want);
    return d;
}

static void
test_null_and_empty(void **state)
{
    (void)state;
    assert_true(decisions_free_some(NULL, 1));
    const char *e = "{\"new\":null,\"deleted\":null}";
    assert_int_equal(free_steps(parsed(e, strlen(e), DECISIONS_DONE), 1), 1);
    struct decisions *d = decisions_new(100);
    assert_non_null(d);
    assert_true(decisions_free_some(d, 1)); /* nothing fed */
}

/* 3,000 new (3 blocks, and an element that is no object) and 1,500
 * deleted (2 blocks): one block of records or of placeholders a step. */
static void
test_steps(void **state)
{
    (void)state;
    size_t len;
    char *body = answer(3000, 1500, true, &len);
    struct decisions *d = parsed(body, len, DECISIONS_DONE);
    assert_int_equal(decisions_count(d, false), 3001);
    assert_int_equal(decisions_count(d, true), 1500);
    /* 3 + 2 blocks of records, 3 + 2 of placeholders (the rest goes with the last) */
    assert_int_equal(free_steps(d, 1), 10);
    d = parsed(body, len, DECISIONS_DONE);
    assert_int_equal(free_steps(d, 4), 3);
    d = parsed(body, len, DECISIONS_DONE);
    assert_int_equal(free_steps(d, 1000), 1);
    free(body);
}

/* Unusable answers too: cut in the middle of "deleted", data after it. */
static void
test_failed_answers(void **state)
{
    (void)state;
    size_t len;
    char *body = answer(2100, 1100, false, &len);
    struct decisions *d = parsed(body, len - 500, DECISIONS_ERROR);
    assert_true(free_steps(d, 1) > 3);
    body[len - 1] = ']';
    d = parsed(body, len, DECISIONS_ERROR);
    assert_true(free_steps(d, 1) > 3);
    free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_and_empty),
        cmocka_unit_test(test_steps),
        cmocka_unit_test(test_failed_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
