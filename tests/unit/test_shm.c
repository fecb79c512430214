/*
 * Unit tests for shm: the region shared by the workers. Blocks come back
 * zeroed, are found again by name (also from a child process, at the same
 * address), freed space is reused and merged, and a lock whose holder
 * died is taken over.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "shm.h"

static void
test_alloc_zeroed_aligned_reused(void **state)
{
    (void)state;
    struct shm *s = shm_create(64u << 20);
    assert_non_null(s);
    size_t base = shm_used(s);
    unsigned char *a = shm_alloc(s, 1000);
    unsigned char *b = shm_alloc(s, 1u << 20);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_int_equal((uintptr_t)b % 64, 0);
    for (size_t i = 0; i < (1u << 20); i += 4096)
        assert_int_equal(b[i], 0);
    memset(a, 0xAA, 1000);
    memset(b, 0xBB, 1u << 20);
    shm_free(s, a);
    unsigned char *c = shm_alloc(s, 500);
    assert_ptr_equal(c, a); /* first fit takes the freed block */
    for (size_t i = 0; i < 500; i++)
        assert_int_equal(c[i], 0);
    shm_free(s, c);
    shm_free(s, b);
    assert_int_equal(shm_used(s), base);
    /* Everything merged back: one big block fits where the two were. */
    unsigned char *d = shm_alloc(s, (1u << 20) + 1000);
    assert_ptr_equal(d, a);
    for (size_t i = 0; i < (1u << 20) + 1000; i += 512)
        assert_int_equal(d[i], 0);
    shm_free(s, d);
    shm_destroy(s);
}

static void
test_full_region_says_null(void **state)
{
    (void)state;
    struct shm *s = shm_create(1u << 20);
    assert_non_null(s);
    assert_null(shm_alloc(s, 2u << 20));
    void *p = shm_alloc(s, 512u << 10);
    assert_non_null(p);
    assert_null(shm_alloc(s, 768u << 10));
    shm_free(s, p);
    assert_non_null(p = shm_alloc(s, 768u << 10));
    shm_free(s, p);
    shm_destroy(s);
}

static int inits;

static void
init_block(void *arg, void *block)
{
    inits++;
    *(int *)block = *(int *)arg;
}

static void
test_named_found_again_and_freed_at_last_put(void **state)
{
    (void)state;
    struct shm *s = shm_create(16u << 20);
    assert_non_null(s);
    int seven = 7, eight = 8;
    inits = 0;
    int *x = shm_named(s, "abuse", "smtp", 4096, init_block, &seven);
    int *y = shm_named(s, "abuse", "smtp", 4096, init_block, &eight);
    assert_ptr_equal(x, y);
    assert_int_equal(*x, 7);
    assert_int_equal(inits, 1);
    assert_null(shm_named(s, "abuse", "smtp", 8192, NULL, NULL)); /* another size */
    int *z = shm_named(s, "abuse", "imap", 4096, NULL, NULL);
    assert_non_null(z);
    assert_ptr_not_equal(x, z);
    assert_int_equal(*z, 0);
    shm_put(s, x);
    assert_ptr_equal(shm_named(s, "abuse", "smtp", 4096, NULL, NULL), x); /* one holder left + this */
    shm_put(s, x);
    shm_put(s, x);
    int *again = shm_named(s, "abuse", "smtp", 4096, init_block, &eight);
    assert_int_equal(*again, 8); /* made anew */
    shm_put(s, again);
    shm_put(s, z);
    shm_destroy(s);
}

static void
test_child_sees_the_same_block(void **state)
{
    (void)state;
    struct shm *s = shm_create(16u << 20);
    assert_non_null(s);
    shm_attach(s, 0, 2);
    assert_ptr_equal(shm_host(), s);
    assert_int_equal(shm_nworkers(), 2);
    unsigned long *n = shm_named(s, "count", "all", sizeof(*n), NULL, NULL);
    assert_non_null(n);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_attach(s, 1, 2);
        unsigned long *m = shm_named(s, "count", "all", sizeof(*m), NULL, NULL);
        *m = (m == n) ? 41 : 0;
        unsigned long *fresh = shm_alloc(s, 100);
        _exit(fresh == NULL ? 1 : 0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(*n, 41);
    shm_attach(NULL, 0, 1);
    assert_null(shm_host());
    assert_int_equal(shm_nworkers(), 1);
    shm_put(s, n);
    shm_destroy(s);
}

static void
test_lock_of_a_dead_holder_is_taken_over(void **state)
{
    (void)state;
    struct shm *s = shm_create(1u << 20);
    assert_non_null(s);
    struct shm_mutex *mu = shm_alloc(s, sizeof(*mu));
    assert_non_null(mu);
    assert_int_equal(shm_mutex_init(mu), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shm_mutex_lock(mu);
        _exit(0); /* dies holding it */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    shm_mutex_lock(mu);
    shm_mutex_unlock(mu);
    shm_mutex_lock(mu);
    shm_mutex_unlock(mu);
    shm_destroy(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_zeroed_aligned_reused),
        cmocka_unit_test(test_full_region_says_null),
        cmocka_unit_test(test_named_found_again_and_freed_at_last_put),
        cmocka_unit_test(test_child_sees_the_same_block),
        cmocka_unit_test(test_lock_of_a_dead_holder_is_taken_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
