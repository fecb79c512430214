/*
 * Unit tests for banset_new_in(): the set made in a shared region works as
 * the private one (addresses, ranges, strings, expiry, a full set), a
 * child process sees what the parent added and the parent what the child
 * deleted (the workers of a host), and freeing it gives every byte back
 * to the region.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "addr.h"
#include "banset.h"
#include "cidr.h"
#include "shm.h"

static struct cidr
net(const char *s)
{
    struct cidr c;
    const char *why = NULL;
    if (cidr_parse(s, &c, &why) != 0)
        fail_msg("%s: %s", s, why);
    return c;
}

static const struct banset_entry *
look(const struct banset *s, const char *addr, uint64_t now)
{
    struct sockaddr_storage ss;
    bool any;
    const char *why = NULL;
    if (addr_parse(addr, ADDR_PORT_OPTIONAL, &ss, &any, &why) != 0)
        fail_msg("%s: %s", addr, why);
    return banset_lookup(s, (const struct sockaddr *)&ss, now);
}

static int
add(struct banset *s, const char *n, uint64_t until, const char *scenario)
{
    struct cidr c = net(n);
    return banset_add(s, &c, until, "cscli", scenario);
}

static void
test_in_region(void **state)
{
    (void)state;
    struct shm *shm = shm_create(16u << 20);
    assert_non_null(shm);
    size_t before = shm_used(shm);
    struct banset *s = banset_new_in(shm, 4, 7);
    assert_non_null(s);
    assert_true(shm_used(shm) > before);
    assert_int_equal(add(s, "192.0.2.1", 100, "manual"), 0);
    assert_int_equal(add(s, "10.1.0.0/16", 50, "ssh-bf"), 0);
    assert_int_equal(add(s, "2001:db8::/32", 100, "manual"), 0);
    assert_int_equal(add(s, "192.0.2.1", 200, "other"), 1);
    assert_int_equal(add(s, "192.0.2.9", 100, "x"), 0);
    assert_int_equal(add(s, "192.0.2.10", 100, "x"), -1); /* full */
    const struct banset_entry *e = look(s, "192.0.2.1", 0);
    assert_non_null(e);
    assert_string_equal(e->scenario, "other");
    assert_string_equal(e->origin, "cscli");
    assert_non_null(look(s, "10.1.2.3", 49));
    assert_null(look(s, "10.1.2.3", 50));
    assert_non_null(look(s, "2001:db8::1", 0));
    assert_int_equal(banset_expire(s, 60, 10), 1);
    banset_clear(s);
    assert_null(look(s, "192.0.2.1", 0));
    assert_int_equal(add(s, "192.0.2.1", 100, "again"), 0);
    banset_free(s);
    assert_int_equal(shm_used(shm), before);
    shm_destroy(shm);
}

static void
test_seen_by_another_process(void **state)
{
    (void)state;
    struct shm *shm = shm_create(16u << 20);
    assert_non_null(shm);
    struct banset *s = banset_new_in(shm, 64, 8);
    assert_int_equal(add(s, "198.51.100.7", 100, "parent"), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const struct banset_entry *e = look(s, "198.51.100.7", 0);
        int ok = e != NULL && strcmp(e->scenario, "parent") == 0;
        struct cidr c = net("198.51.100.7");
        ok = ok && banset_del(s, &c) == 0 && add(s, "203.0.113.0/24", 100, "child") == 0;
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_null(look(s, "198.51.100.7", 0));
    const struct banset_entry *e = look(s, "203.0.113.9", 0);
    assert_non_null(e);
    assert_string_equal(e->scenario, "child");
    banset_free(s);
    shm_destroy(shm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_region),
        cmocka_unit_test(test_seen_by_another_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
