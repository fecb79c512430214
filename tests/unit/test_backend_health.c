/*
 * Unit tests for the health a backend keeps of its servers: rise and fall
 * (backend_health_step, backend_server_checked) and the queue of held
 * clients a passing check wakes (backend_hold, backend_unhold,
 * backend_wake). No sockets, no loop: results are fed by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "util.h"

static void
test_rise(void **state)
{
    (void)state;
    struct backend_server st = {.up = false};
    /* rise 3: up on the third pass in a row, and only then. */
    assert_false(backend_health_step(&st, true, 3, 2));
    assert_false(backend_health_step(&st, true, 3, 2));
    assert_false(st.up);
    assert_true(backend_health_step(&st, true, 3, 2));
    assert_true(st.up);
    /* Further passes change nothing; the count stops at rise. */
    assert_false(backend_health_step(&st, true, 3, 2));
    assert_int_equal(st.passes, 3);
}

static void
test_failure_restarts_rise(void **state)
{
    (void)state;
    struct backend_server st = {.up = false};
    assert_false(backend_health_step(&st, true, 2, 2));
    assert_false(backend_health_step(&st, false, 2, 2));
    assert_int_equal(st.passes, 0);
    assert_false(backend_health_step(&st, true, 2, 2));
    assert_false(st.up);
    assert_true(backend_health_step(&st, true, 2, 2));
    assert_true(st.up);
}

static void
test_fall(void **state)
{
    (void)state;
    struct backend_server st = {.up = true};
    /* fall 3: a pass between failures starts the count again. */
    assert_false(backend_health_step(&st, false, 2, 3));
    assert_false(backend_health_step(&st, false, 2, 3));
    assert_false(backend_health_step(&st, true, 2, 3));
    assert_int_equal(st.fails, 0);
    assert_false(backend_health_step(&st, false, 2, 3));
    assert_false(backend_health_step(&st, false, 2, 3));
    assert_true(st.up);
    assert_true(backend_health_step(&st, false, 2, 3));
    assert_false(st.up);
    /* Down stays down; the count stops at fall. */
    assert_false(backend_health_step(&st, false, 2, 3));
    assert_int_equal(st.fails, 3);
}

static void
test_rise_fall_one(void **state)
{
    (void)state;
    struct backend_server st = {.up = false};
    assert_true(backend_health_step(&st, true, 1, 1));
    assert_true(backend_health_step(&st, false, 1, 1));
    assert_true(backend_health_step(&st, true, 1, 1));
}

static struct conf_server servers[2];
static struct conf_backend bconf;
static struct backend be;
static struct metrics_server msrv[2];
static struct metrics_backend mbk;

/* Two checked servers, down until they pass <rise> checks. */
static void
setup(unsigned rise, unsigned fall)
{
    memset(servers, 0, sizeof(servers));
    memset(&bconf, 0, sizeof(bconf));
    memset(msrv, 0, sizeof(msrv));
    memset(&mbk, 0, sizeof(mbk));
    bconf.servers = servers;
    bconf.nservers = 2;
    bconf.check = CHECK_SMTP;
    bconf.check_rise = rise;
    bconf.check_fall = fall;
    assert_int_equal(backend_init(&be, &bconf), 0);
    be.srv[0].m = &msrv[0];
    be.srv[1].m = &msrv[1];
    be.qm = &mbk;
}

static void
test_server_checked(void **state)
{
    (void)state;
    setup(1, 2);
    assert_false(be.srv[0].up);
    assert_int_equal(be.srv[0].last_result, -1);
    assert_true(backend_server_checked(&be, 0, 0, true, 1000));
    assert_true(be.srv[0].up);
    assert_true(msrv[0].up);
    assert_int_equal(be.srv[0].last_result, 0);
    assert_int_equal(be.srv[0].last_check_ms, 1000);
    assert_false(backend_server_checked(&be, 0, 3, false, 2000));
    assert_true(msrv[0].up);
    assert_int_equal(msrv[0].check_failures[3], 1);
    assert_true(backend_server_checked(&be, 0, 4, false, 3000));
    assert_false(be.srv[0].up);
    assert_false(msrv[0].up);
    assert_int_equal(msrv[0].check_failures[4], 1);
    assert_int_equal(be.srv[0].last_result, 4);
    assert_int_equal(be.srv[0].last_check_ms, 3000);
    /* A pass counts no failure; the other server was never touched. */
    backend_server_checked(&be, 0, 0, true, 4000);
    assert_int_equal(msrv[0].check_failures[0], 0);
    assert_false(be.srv[1].up);
    backend_free(&be);
}

struct client {
    struct backend_waiter w;
    int id;
    bool fails; /* its connects fail at once: it is held again */
};

static char woken[64];

static void
on_wake(struct backend_waiter *w)
{
    struct client *c = container_of(w, struct client, w);
    char one[8];
    assert_true(backend_unhold(&be, w));
    snprintf(one, sizeof(one), "%s%d", woken[0] ? " " : "", c->id);
    strcat(woken, one);
    if (c->fails)
        backend_hold(&be, w);
}

static void
test_wake(void **state)
{
    (void)state;
    struct client c[4];
    setup(1, 1);
    for (int i = 0; i < 4; i++) {
        c[i] = (struct client){.w = {.wake = on_wake}, .id = i, .fails = i == 1};
        backend_hold(&be, &c[i].w);
    }
    assert_int_equal(be.nheld, 4);
    assert_int_equal(mbk.queued, 4);
    /* Nobody leaves while no server is up. */
    backend_wake(&be);
    assert_string_equal(woken, "");
    /* A client that hangs up leaves from the middle. */
    assert_true(backend_unhold(&be, &c[2].w));
    assert_false(backend_unhold(&be, &c[2].w));
    assert_int_equal(mbk.queued, 3);
    /* Up: those held now, oldest first, each once; the one whose connects
     * failed waits at the tail for the next pass. */
    backend_server_checked(&be, 1, 0, true, 1);
    backend_wake(&be);
    assert_string_equal(woken, "0 1 3");
    assert_int_equal(be.nheld, 1);
    assert_int_equal(mbk.queued, 1);
    assert_ptr_equal(be.held_head, &c[1].w);
    assert_ptr_equal(be.held_tail, &c[1].w);
    woken[0] = '\0';
    c[1].fails = false;
    backend_wake(&be);
    assert_string_equal(woken, "1");
    assert_null(be.held_head);
    assert_null(be.held_tail);
    assert_int_equal(mbk.queued, 0);
    backend_free(&be);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rise),
        cmocka_unit_test(test_failure_restarts_rise),
        cmocka_unit_test(test_fall),
        cmocka_unit_test(test_rise_fall_one),
        cmocka_unit_test(test_server_checked),
        cmocka_unit_test(test_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
