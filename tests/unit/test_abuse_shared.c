/*
 * Unit tests for abuse tables shared by workers (src/edge/abuse.c with a
 * struct abuse_share): two handles on one block of a region, as two
 * workers would hold them. limit per-ip counts the sessions of both, a
 * ban made through one refuses through the other and is reported once,
 * the rate limit is one bucket, a worker that comes back (restarted after
 * a crash, here also from a forked child) drops the counts of its
 * predecessor and of no one else, and counts move with their entries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "abuse.h"
#include "abuse_client.h"
#include "cidr.h"
#include "shm.h"

/* Worker <w> of 2's handle on the table "smtp" of <s>. */
static struct abuse *
handle(struct shm *s, unsigned w, const struct abuse_policy *p, struct events *ev)
{
    struct abuse_share sh = {.shm = s, .name = "smtp", .worker = w, .nworkers = 2};
    struct abuse *t = abuse_new(64, 0x1234567890abcdefull ^ w, ev != NULL ? on_event : NULL, ev,
                                &sh);
    assert_non_null(t);
    assert_int_equal(abuse_set_policy(t, p), 0);
    return t;
}

static void
test_per_ip_across_workers(void **state)
{
    (void)state;
    struct shm *s = shm_create(64u << 20);
    struct abuse_policy p = {.per_ip = 2, .v6_prefix = 64};
    struct abuse *a = handle(s, 0, &p, NULL), *b = handle(s, 1, &p, NULL);
    struct abuse_ticket ta, tb;

    assert_ptr_equal(abuse_stats(a), abuse_stats(b)); /* one table, one set of stats */
    assert_int_equal(admit(a, "192.0.2.1", 0, &ta), ABUSE_ADMIT);
    assert_int_equal(admit(b, "192.0.2.1", 0, &tb), ABUSE_ADMIT);
    assert_int_equal(admit(a, "192.0.2.1", 0, NULL), ABUSE_PER_IP);
    assert_int_equal(admit(b, "192.0.2.1", 0, NULL), ABUSE_PER_IP);
    assert_int_equal(abuse_live(a), 2);
    assert_int_equal(abuse_stats(b)->refused[ABUSE_PER_IP], 2);
    /* A worker gives back only what it counted. */
    release(b, "192.0.2.1", &tb);
    release(b, "192.0.2.1", &tb);
    assert_int_equal(abuse_live(a), 1);
    assert_int_equal(admit(a, "192.0.2.1", 1, &tb), ABUSE_ADMIT);
    assert_int_equal(admit(b, "192.0.2.1", 1, NULL), ABUSE_PER_IP);
    abuse_free(a);
    abuse_free(b);
    shm_destroy(s);
}

static void
test_ban_in_one_refuses_in_other_reported_once(void **state)
{
    (void)state;
    struct shm *s = shm_create(64u << 20);
    struct events ea = {0}, eb = {0};
    struct abuse_policy p = {.per_ip = 1, .ban_after = 2, .ban_ms = 1000,
                             .ban_window_ms = 10000, .v6_prefix = 64};
    struct abuse *a = handle(s, 0, &p, &ea), *b = handle(s, 1, &p, &eb);

    assert_int_equal(admit(a, "198.51.100.7", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(b, "198.51.100.7", 1, NULL), ABUSE_PER_IP); /* strike 1, in b */
    assert_int_equal(admit(a, "198.51.100.7", 2, NULL), ABUSE_PER_IP); /* strike 2, in a: ban */
    assert_int_equal(ea.starts, 1);
    assert_int_equal(eb.starts, 0);
    assert_int_equal(admit(b, "198.51.100.7", 3, NULL), ABUSE_BANNED);
    assert_int_equal(abuse_stats(b)->bans_total, 1);
    /* Both sweep; the first one after the end reports it, the other finds nothing. */
    abuse_sweep(b, 1500);
    abuse_sweep(a, 1600);
    abuse_sweep(a, 2200);
    assert_int_equal(ea.ends + eb.ends, 1);
    assert_int_equal(eb.ends, 1);

    /* A ban by hand through worker 0 (the admin endpoint) holds in worker 1. */
    struct cidr c;
    assert_int_equal(cidr_parse("203.0.113.0/24", &c, NULL), 0);
    assert_int_equal(abuse_ban_add(a, &c, 9000, 3000), 0);
    assert_int_equal(admit(b, "203.0.113.9", 3001, NULL), ABUSE_BANNED);
    assert_int_equal(abuse_ban_remove(a, &c, 3002), 1);
    assert_int_equal(admit(b, "203.0.113.9", 3003, NULL), ABUSE_ADMIT);
    abuse_free(a);
    abuse_free(b);
    shm_destroy(s);
}

static void
test_rate_is_one_bucket(void **state)
{
    (void)state;
    struct shm *s = shm_create(64u << 20);
    struct abuse_policy p = {.rate = 4, .rate_period_ms = 4000, .v6_prefix = 64};
    struct abuse *a = handle(s, 0, &p, NULL), *b = handle(s, 1, &p, NULL);

    assert_int_equal(admit(a, "192.0.2.5", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(b, "192.0.2.5", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(a, "192.0.2.5", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(b, "192.0.2.5", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(a, "192.0.2.5", 0, NULL), ABUSE_RATE);
    assert_int_equal(admit(b, "192.0.2.5", 0, NULL), ABUSE_RATE);
    assert_int_equal(admit(b, "192.0.2.5", 1000, NULL), ABUSE_ADMIT);
    abuse_free(a);
    abuse_free(b);
    shm_destroy(s);
}

/* A child as worker 1 counts sessions and dies without giving them back. */
static void
test_restarted_worker_drops_dead_counts(void **state)
{
    (void)state;
    struct shm *s = shm_create(64u << 20);
    struct abuse_policy p = {.per_ip = 2, .v6_prefix = 64};
    struct abuse *a = handle(s, 0, &p, NULL);

    assert_int_equal(admit(a, "192.0.2.9", 0, NULL), ABUSE_ADMIT);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct abuse *b = handle(s, 1, &p, NULL);
        int ok = admit(b, "192.0.2.9", 1, NULL) == ABUSE_ADMIT &&
                 admit(b, "192.0.2.10", 1, NULL) == ABUSE_ADMIT;
        _exit(ok ? 0 : 1); /* no release, no abuse_free: as SIGKILL leaves it */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(abuse_live(a), 3);
    assert_int_equal(admit(a, "192.0.2.9", 2, NULL), ABUSE_PER_IP); /* the ghost counts */
    /* Worker 1 again: its column is zeroed, worker 0's session stays. */
    struct abuse *b = handle(s, 1, &p, NULL);
    assert_int_equal(abuse_live(a), 1);
    assert_int_equal(admit(b, "192.0.2.9", 3, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(a, "192.0.2.9", 3, NULL), ABUSE_PER_IP);
    abuse_free(a);
    abuse_free(b);
    shm_destroy(s);
}

/* Backward-shift deletion moves each worker's counts with the entry. */
static void
test_counts_move_with_entries(void **state)
{
    (void)state;
    struct shm *s = shm_create(64u << 20);
    struct abuse_policy p = {.per_ip = 3, .v6_prefix = 64};
    struct abuse *a = handle(s, 0, &p, NULL), *b = handle(s, 1, &p, NULL);
    char ip[32];
    struct abuse_ticket tk[64];

    /* 60 keys in 81 slots: long probe runs. Even keys get a session from
     * each worker, odd keys one that ends at once, so the sweep drops them. */
    for (int i = 0; i < 60; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 8, i);
        assert_int_equal(admit(a, ip, 0, &tk[i]), ABUSE_ADMIT);
        if (i % 2 == 0)
            assert_int_equal(admit(b, ip, 0, NULL), ABUSE_ADMIT);
        else
            release(a, ip, &tk[i]);
    }
    assert_int_equal(abuse_live(a), 60);
    abuse_sweep(a, 10000);
    assert_int_equal(abuse_stats(a)->entries, 30);
    assert_int_equal(abuse_live(b), 60);
    for (int i = 0; i < 60; i += 2) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 8, i);
        assert_int_equal(admit(b, ip, 10001, NULL), ABUSE_ADMIT); /* the third */
        assert_int_equal(admit(a, ip, 10001, NULL), ABUSE_PER_IP);
        release(a, ip, &tk[i]);
        assert_int_equal(admit(b, ip, 10002, NULL), ABUSE_ADMIT);
    }
    abuse_free(a);
    abuse_free(b);
    shm_destroy(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_ip_across_workers),
        cmocka_unit_test(test_ban_in_one_refuses_in_other_reported_once),
        cmocka_unit_test(test_rate_is_one_bucket),
        cmocka_unit_test(test_restarted_worker_drops_dead_counts),
        cmocka_unit_test(test_counts_move_with_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
