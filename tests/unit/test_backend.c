/*
 * Unit tests for backend: which server a new session tries first under
 * balance first, round-robin and least-conn, and backup servers used only
 * while no primary is up. No sockets: the state is set by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "backend.h"

#define NSRV 4

static struct conf_server servers[NSRV];
static struct conf_backend bconf;
static struct backend be;

/* Four IP-literal servers, <nbackup> of them (the last ones) backups, all up. */
static void
setup(enum balance bal, size_t nbackup)
{
    memset(servers, 0, sizeof(servers));
    memset(&bconf, 0, sizeof(bconf));
    for (size_t i = 0; i < NSRV; i++)
        servers[i].backup = i >= NSRV - nbackup;
    bconf.servers = servers;
    bconf.nservers = NSRV;
    bconf.balance = bal;
    bconf.check = CHECK_NONE;
    assert_int_equal(backend_init(&be, &bconf), 0);
}

/* The servers a session walks, in order, as indexes: "0 1 2". */
static void
walk(const char *want)
{
    char buf[64] = "";
    size_t first = backend_first(&be);
    const struct conf_server *s;
    for (size_t k = 0; (s = backend_server_at(&be, first, k)) != NULL; k++) {
        if (!backend_server_eligible(&be, s))
            continue;
        char one[8];
        snprintf(one, sizeof(one), "%s%zu", buf[0] ? " " : "", (size_t)(s - servers));
        strcat(buf, one);
    }
    assert_string_equal(buf, want);
}

static void
test_first(void **state)
{
    (void)state;
    setup(BALANCE_FIRST, 0);
    walk("0 1 2 3");
    walk("0 1 2 3");
    be.srv[0].up = false;
    walk("1 2 3");
    walk("1 2 3");
    backend_free(&be);
}

static void
test_round_robin_skips_down(void **state)
{
    (void)state;
    setup(BALANCE_ROUND_ROBIN, 0);
    walk("0 1 2 3");
    walk("1 2 3 0");
    be.srv[2].up = false;
    /* The turn passes over a down server instead of doubling its neighbour's share. */
    walk("3 0 1");
    walk("0 1 3");
    walk("1 3 0");
    walk("3 0 1");
    backend_free(&be);
}

static void
test_least_conn(void **state)
{
    (void)state;
    setup(BALANCE_LEAST_CONN, 0);
    be.srv[0].active = 3;
    be.srv[1].active = 1;
    be.srv[2].active = 5;
    be.srv[3].active = 1;
    /* Fewest active; a tie goes in turn. */
    assert_int_equal(backend_first(&be), 1);
    assert_int_equal(backend_first(&be), 3);
    assert_int_equal(backend_first(&be), 1);
    backend_take(&be, &servers[1]);
    assert_int_equal(backend_first(&be), 3);
    backend_take(&be, &servers[3]);
    backend_take(&be, &servers[3]);
    assert_int_equal(backend_first(&be), 1);
    /* A down server is never chosen, however idle. */
    be.srv[2].active = 0;
    be.srv[2].up = false;
    assert_int_equal(backend_first(&be), 1);
    backend_release(&be, &servers[0]);
    backend_release(&be, &servers[0]);
    backend_release(&be, &servers[0]);
    backend_release(&be, &servers[0]); /* never below 0 */
    assert_int_equal(be.srv[0].active, 0);
    assert_int_equal(backend_first(&be), 0);
    backend_free(&be);
}

static void
test_backup(void **state)
{
    (void)state;
    setup(BALANCE_ROUND_ROBIN, 2); /* 0 1 primaries, 2 3 backups */
    walk("0 1");
    walk("1 0");
    assert_int_equal(backend_servers_up(&be), 4);
    be.srv[0].up = false;
    walk("1");
    assert_false(backend_server_eligible(&be, &servers[2]));
    be.srv[1].up = false;
    /* No primary up: the backups, in turn; they count as up for holding. */
    assert_int_equal(backend_servers_up(&be), 2);
    assert_true(backend_server_eligible(&be, &servers[2]));
    walk("2 3");
    walk("3 2");
    be.srv[1].up = true;
    walk("1");
    backend_free(&be);

    setup(BALANCE_LEAST_CONN, 2);
    be.srv[0].up = be.srv[1].up = false;
    be.srv[2].active = 4;
    assert_int_equal(backend_first(&be), 3);
    be.srv[0].up = true;
    assert_int_equal(backend_first(&be), 0);
    backend_free(&be);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first),
        cmocka_unit_test(test_round_robin_skips_down),
        cmocka_unit_test(test_least_conn),
        cmocka_unit_test(test_backup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
