/*
 * Unit tests for the loop's timer reservations: each owner reserves room
 * for its own timers (loop_timer_reserve) and gives it back
 * (loop_timer_release); the room is the sum of what the owners hold, so
 * every reserved timer can be armed without allocating.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "loop.h"

#define N 300 /* more than the first allocation of the heap (256) */

static void
on_timer(struct timer *t)
{
    (void)t;
}

/* Arms every timer of <v>: an assertion fails in the loop when one has no room. */
static void
arm_all(struct loop *l, struct timer *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        timer_init(&v[i], on_timer);
        loop_timer_at(l, &v[i], 1000 + i);
    }
}

static void
cancel_all(struct loop *l, struct timer *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        loop_timer_cancel(l, &v[i]);
}

static void
test_reservations_add_up(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct timer *a = calloc(N, sizeof(*a)), *b = calloc(N, sizeof(*b));
    assert_non_null(l);
    assert_non_null(a);
    assert_non_null(b);
    /* Two owners of N timers each: 2N armed at once. */
    assert_int_equal(loop_timer_reserve(l, N), 0);
    assert_int_equal(loop_timer_reserve(l, N), 0);
    arm_all(l, a, N);
    arm_all(l, b, N);
    /* One leaves; another comes with as many: no growth needed, none failed. */
    cancel_all(l, a, N);
    loop_timer_release(l, N);
    assert_int_equal(loop_timer_reserve(l, N), 0);
    arm_all(l, a, N);
    cancel_all(l, a, N);
    cancel_all(l, b, N);
    loop_timer_release(l, N);
    loop_timer_release(l, N);
    loop_free(l);
    free(a);
    free(b);
}

static void
test_small_owners(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct timer *v = calloc(N, sizeof(*v));
    assert_non_null(l);
    assert_non_null(v);
    /* N owners of one timer each, like listeners or sessions. */
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(loop_timer_reserve(l, 1), 0);
        timer_init(&v[i], on_timer);
        loop_timer_at(l, &v[i], 5000 - i);
    }
    for (size_t i = 0; i < N; i++) {
        loop_timer_cancel(l, &v[i]);
        loop_timer_release(l, 1);
    }
    loop_free(l);
    free(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reservations_add_up),
        cmocka_unit_test(test_small_owners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
