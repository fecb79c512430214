/*
 * Unit test for loop_batch(): the number of events of the pass that is
 * running, the load signal the session reads before it connects (two
 * events in one pass: the process has work queued; one: it is idle).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "loop.h"

static struct loop *l;
static int seen[4], nseen, want;

static void
on_readable(struct io *io, uint32_t ev)
{
    char c;
    (void)ev;
    assert_int_equal(read(io->fd, &c, 1), 1);
    seen[nseen++] = loop_batch(l);
    if (nseen == want)
        loop_stop(l);
}

/* <n> pipes made readable before the pass: what each callback saw. */
static void
pass_with(int n)
{
    int p[2][2];
    struct io io[2];
    l = loop_new();
    assert_non_null(l);
    nseen = 0;
    want = n;
    for (int i = 0; i < n; i++) {
        assert_int_equal(pipe(p[i]), 0);
        io[i].fd = p[i][0];
        io[i].cb = on_readable;
        assert_int_equal(loop_add(l, &io[i], EPOLLIN), 0);
        assert_int_equal(write(p[i][1], "x", 1), 1);
    }
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < n; i++) {
        loop_del(l, &io[i]);
        close(p[i][0]);
        close(p[i][1]);
    }
    loop_free(l);
}

static void
test_batch_counts_the_pass(void **state)
{
    (void)state;
    pass_with(1);
    assert_int_equal(nseen, 1);
    assert_int_equal(seen[0], 1);
    pass_with(2);
    assert_int_equal(nseen, 2);
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_counts_the_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
