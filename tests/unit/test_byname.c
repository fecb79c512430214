/*
 * Unit tests for byname: long-lived state found by name, made the first
 * time a name appears; entries keep their address, name and value.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "byname.h"

static int made, unmade;

static void *
make(void *arg, const char *name)
{
    if (arg != NULL && strcmp(name, arg) == 0)
        return NULL; /* the one that fails */
    made++;
    return strdup(name);
}

static void
unmake(void *value)
{
    unmade++;
    free(value);
}

static void
test_get_makes_once(void **state)
{
    struct byname t = {0};

    (void)state;
    made = unmade = 0;
    assert_null(byname_find(&t, "front"));
    struct byname_entry *e = byname_get(&t, "front", make, NULL);
    assert_non_null(e);
    assert_string_equal(e->name, "front");
    assert_string_equal(e->value, "front");
    assert_ptr_equal(byname_get(&t, "front", make, NULL), e);
    assert_ptr_equal(byname_find(&t, "front"), e);
    assert_int_equal(made, 1);
    /* Many more names: the first entry, its name and value stay where they were. */
    const char *name = e->name;
    void *value = e->value;
    for (int i = 0; i < 1000; i++) {
        char n[16];
        snprintf(n, sizeof(n), "l%d", i);
        assert_non_null(byname_get(&t, n, make, NULL));
    }
    assert_int_equal(t.n, 1001);
    assert_ptr_equal(byname_find(&t, "front"), e);
    assert_ptr_equal(e->name, name);
    assert_ptr_equal(e->value, value);
    byname_free(&t, unmake);
    assert_int_equal(unmade, 1001);
    assert_int_equal(t.n, 0);
    assert_null(t.v);
}

static void
test_names_alone(void **state)
{
    struct byname t = {0};

    (void)state;
    struct byname_entry *a = byname_get(&t, "mx1", NULL, NULL);
    assert_non_null(a);
    assert_null(a->value);
    assert_ptr_equal(byname_get(&t, "mx1", NULL, NULL), a);
    assert_non_null(byname_get(&t, "", NULL, NULL));
    assert_int_equal(t.n, 2);
    byname_free(&t, NULL);
}

static void
test_failed_make_adds_nothing(void **state)
{
    struct byname t = {0};

    (void)state;
    made = 0;
    assert_non_null(byname_get(&t, "a", make, "bad"));
    assert_null(byname_get(&t, "bad", make, "bad"));
    assert_int_equal(t.n, 1);
    assert_null(byname_find(&t, "bad"));
    assert_non_null(byname_get(&t, "bad", make, NULL));
    assert_int_equal(t.n, 2);
    byname_free(&t, unmake);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_makes_once),
        cmocka_unit_test(test_names_alone),
        cmocka_unit_test(test_failed_make_adds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
