/*
 * Unit tests for abuse: token bucket, concurrency, bans after N violations
 * and their expiry, the allow list, IPv6 keying by prefix, bans by hand,
 * and eviction under 100,000 distinct keys with a bounded table. The clock
 * is a number the tests move.
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

#include "abuse.h"
#include "abuse_client.h"
#include "cidr.h"

static struct abuse *
table(size_t cap, const struct abuse_policy *p, struct events *ev)
{
    struct abuse *t = abuse_new(cap, 0x1234567890abcdefull, ev != NULL ? on_event : NULL, ev, NULL);
    assert_non_null(t);
    abuse_set_policy(t, p);
    return t;
}

static void
test_concurrency(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.per_ip = 2, .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    struct abuse_ticket a, b, c;

    assert_int_equal(admit(t, "192.0.2.1", 1000, &a), ABUSE_ADMIT);
    assert_true(a.counted);
    assert_int_equal(admit(t, "192.0.2.1", 1000, &b), ABUSE_ADMIT);
    assert_int_equal(admit(t, "192.0.2.1", 1000, &c), ABUSE_PER_IP);
    assert_false(c.counted);
    /* Another client is not affected. */
    assert_int_equal(admit(t, "192.0.2.2", 1000, NULL), ABUSE_ADMIT);
    assert_int_equal(abuse_live(t), 3);
    release(t, "192.0.2.1", &a);
    assert_int_equal(admit(t, "192.0.2.1", 1001, &c), ABUSE_ADMIT);
    assert_int_equal(abuse_stats(t)->refused[ABUSE_PER_IP], 1);
    assert_int_equal(ev.starts, 0);
    abuse_free(t);
}

static void
test_token_bucket(void **state)
{
    (void)state;
    struct events ev = {0};
    /* 3 per second, burst 3: one token every 333 ms. */
    struct abuse_policy p = {.rate = 3, .rate_period_ms = 1000, .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    uint64_t now = 50000;

    for (int i = 0; i < 3; i++) {
        struct abuse_ticket tk;
        assert_int_equal(admit(t, "198.51.100.9", now, &tk), ABUSE_ADMIT);
        release(t, "198.51.100.9", &tk);
    }
    assert_int_equal(admit(t, "198.51.100.9", now, NULL), ABUSE_RATE);
    assert_int_equal(admit(t, "198.51.100.9", now + 300, NULL), ABUSE_RATE);
    /* One interval later, exactly one token. */
    assert_int_equal(admit(t, "198.51.100.9", now + 334, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "198.51.100.9", now + 334, NULL), ABUSE_RATE);
    /* After a full period the whole burst is back, not more. */
    now += 5000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(t, "198.51.100.9", now, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "198.51.100.9", now, NULL), ABUSE_RATE);
    assert_int_equal(abuse_stats(t)->refused[ABUSE_RATE], 4);
    abuse_free(t);
}

static void
test_ban_after_n_and_expiry(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.per_ip = 1,
                             .ban_after = 3,
                             .ban_ms = 10000,
                             .ban_window_ms = 60000,
                             .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    struct abuse_ticket held;
    uint64_t now = 1000;

    assert_int_equal(admit(t, "203.0.113.5", now, &held), ABUSE_ADMIT);
    assert_int_equal(admit(t, "203.0.113.5", now + 1, NULL), ABUSE_PER_IP);
    assert_int_equal(admit(t, "203.0.113.5", now + 2, NULL), ABUSE_PER_IP);
    assert_int_equal(ev.starts, 0);
    assert_int_equal(admit(t, "203.0.113.5", now + 3, NULL), ABUSE_PER_IP);
    assert_int_equal(ev.starts, 1);
    assert_string_equal(ev.last, "203.0.113.5");
    assert_int_equal(ev.last_reason, ABUSE_BAN_PER_IP);
    assert_int_equal(abuse_stats(t)->bans_active, 1);
    /* Banned even once the session that was over the limit ended. */
    release(t, "203.0.113.5", &held);
    assert_int_equal(admit(t, "203.0.113.5", now + 100, NULL), ABUSE_BANNED);
    assert_int_equal(admit(t, "203.0.113.6", now + 100, NULL), ABUSE_ADMIT);
    /* The sweep before the end keeps it; after the end it reports the end. */
    abuse_sweep(t, now + 5000);
    assert_int_equal(ev.ends, 0);
    assert_int_equal(admit(t, "203.0.113.5", now + 10002, NULL), ABUSE_BANNED);
    abuse_sweep(t, now + 10003);
    assert_int_equal(ev.ends, 1);
    assert_string_equal(ev.last_why, "expired");
    assert_int_equal(abuse_stats(t)->bans_active, 0);
    assert_int_equal(admit(t, "203.0.113.5", now + 10004, NULL), ABUSE_ADMIT);
    abuse_free(t);
}

static void
test_strikes_outside_window_do_not_add_up(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.per_ip = 1,
                             .ban_after = 2,
                             .ban_ms = 10000,
                             .ban_window_ms = 1000,
                             .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    struct abuse_ticket held;

    assert_int_equal(admit(t, "192.0.2.50", 0, &held), ABUSE_ADMIT);
    assert_int_equal(admit(t, "192.0.2.50", 10, NULL), ABUSE_PER_IP);
    assert_int_equal(admit(t, "192.0.2.50", 2000, NULL), ABUSE_PER_IP);
    assert_int_equal(ev.starts, 0);
    assert_int_equal(admit(t, "192.0.2.50", 2500, NULL), ABUSE_PER_IP);
    assert_int_equal(ev.starts, 1);
    abuse_free(t);
}

static void
test_ban_expiry_without_sweep(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.rate = 1, .rate_period_ms = 60000, .ban_after = 1, .ban_ms = 1000,
                             .ban_window_ms = 1000, .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);

    assert_int_equal(admit(t, "192.0.2.60", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "192.0.2.60", 1, NULL), ABUSE_RATE);
    assert_int_equal(ev.starts, 1);
    assert_int_equal(admit(t, "192.0.2.60", 1000, NULL), ABUSE_BANNED);
    /* After the ban: the end is reported at the next look, then the rate applies again. */
    assert_int_equal(admit(t, "192.0.2.60", 1001, NULL), ABUSE_RATE);
    assert_int_equal(ev.ends, 1);
    assert_int_equal(ev.starts, 2);
    abuse_free(t);
}

static void
test_allow_list(void **state)
{
    (void)state;
    struct events ev = {0};
    struct cidr allow[1];
    assert_int_equal(cidr_parse("100.64.0.0/10", &allow[0], NULL), 0);
    struct abuse_policy p = {.per_ip = 1, .rate = 1, .rate_period_ms = 60000, .ban_after = 1,
                             .ban_ms = 60000, .ban_window_ms = 60000, .v6_prefix = 64,
                             .allow = allow, .nallow = 1};
    struct abuse *t = table(64, &p, &ev);

    for (int i = 0; i < 100; i++) {
        struct abuse_ticket tk;
        assert_int_equal(admit(t, "100.64.1.2", 5, &tk), ABUSE_ADMIT);
        assert_false(tk.counted);
    }
    struct sockaddr_storage ss = sa("100.64.1.2");
    assert_false(abuse_violation(t, (struct sockaddr *)&ss, ABUSE_BAN_PREGREET, 5));
    /* Even a ban by hand of a wider prefix does not touch it. */
    struct cidr wide;
    assert_int_equal(cidr_parse("100.0.0.0/8", &wide, NULL), 0);
    assert_int_equal(abuse_ban_add(t, &wide, 100000, 5), 0);
    assert_int_equal(admit(t, "100.64.1.2", 6, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "100.1.1.1", 6, NULL), ABUSE_BANNED);
    /* IPv4-mapped counts as IPv4. */
    assert_int_equal(admit(t, "::ffff:100.64.9.9", 6, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "::ffff:100.9.9.9", 6, NULL), ABUSE_BANNED);
    assert_int_equal(ev.starts, 1);
    abuse_free(t);
}

static void
test_ipv6_prefix_keying(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.per_ip = 1, .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    struct abuse_ticket tk;

    assert_int_equal(admit(t, "2001:db8:1:2::1", 0, &tk), ABUSE_ADMIT);
    assert_int_equal(tk.v6_prefix, 64);
    char buf[ABUSE_KEY_STRLEN];
    struct abuse_key k;
    struct sockaddr_storage ss = sa("2001:db8:1:2::1");
    assert_true(abuse_key_of((struct sockaddr *)&ss, 64, &k));
    assert_string_equal(abuse_key_format(&k, buf, sizeof(buf)), "2001:db8:1:2::/64");
    /* Same /64, other host: the same client. */
    assert_int_equal(admit(t, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0, NULL), ABUSE_PER_IP);
    /* The next /64 is someone else. */
    assert_int_equal(admit(t, "2001:db8:1:3::1", 0, NULL), ABUSE_ADMIT);

    struct abuse_policy p48 = {.per_ip = 1, .v6_prefix = 48};
    abuse_set_policy(t, &p48);
    assert_int_equal(admit(t, "2001:db8:7:1::1", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "2001:db8:7:ffff::1", 0, NULL), ABUSE_PER_IP);

    ss = sa("2001:db8:abcd:ef12:3456::1");
    assert_true(abuse_key_of((struct sockaddr *)&ss, 60, &k));
    assert_string_equal(abuse_key_format(&k, buf, sizeof(buf)), "2001:db8:abcd:ef10::/60");
    assert_true(abuse_key_of((struct sockaddr *)&ss, 128, &k));
    assert_string_equal(abuse_key_format(&k, buf, sizeof(buf)), "2001:db8:abcd:ef12:3456::1");
    abuse_free(t);
}

/* A session counted under one prefix is given back to the same key after a policy change. */
static void
test_release_after_prefix_change(void **state)
{
    (void)state;
    struct abuse_policy p = {.per_ip = 1, .v6_prefix = 64};
    struct abuse *t = table(64, &p, NULL);
    struct abuse_ticket tk;

    assert_int_equal(admit(t, "2001:db8:5:6::1", 0, &tk), ABUSE_ADMIT);
    struct abuse_policy q = {.per_ip = 1, .v6_prefix = 48};
    abuse_set_policy(t, &q);
    assert_int_equal(abuse_live(t), 1);
    release(t, "2001:db8:5:6::1", &tk);
    assert_int_equal(abuse_live(t), 0);
    abuse_free(t);
}

static void
test_bans_by_hand(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    struct cidr c;

    assert_int_equal(cidr_parse("192.0.2.0/24", &c, NULL), 0);
    assert_int_equal(abuse_ban_add(t, &c, 5000, 0), 0);
    assert_int_equal(ev.starts, 1);
    assert_string_equal(ev.last, "192.0.2.0/24");
    assert_int_equal(admit(t, "192.0.2.77", 10, NULL), ABUSE_BANNED);
    assert_int_equal(admit(t, "192.0.3.77", 10, NULL), ABUSE_ADMIT);
    assert_int_equal(abuse_stats(t)->bans_active, 1);
    assert_int_equal(abuse_ban_remove(t, &c, 20), 1);
    assert_int_equal(ev.ends, 1);
    assert_string_equal(ev.last_why, "removed");
    assert_int_equal(admit(t, "192.0.2.77", 30, NULL), ABUSE_ADMIT);
    assert_int_equal(abuse_stats(t)->bans_active, 0);
    /* Expiry by the sweep. */
    assert_int_equal(abuse_ban_add(t, &c, 100, 30), 0);
    abuse_sweep(t, 100);
    assert_int_equal(ev.ends, 2);
    assert_string_equal(ev.last_why, "expired");
    /* Removing an automatic ban by its address. */
    struct abuse_policy q = {.per_ip = 1, .ban_after = 1, .ban_ms = 60000, .ban_window_ms = 1000,
                             .v6_prefix = 64};
    abuse_set_policy(t, &q);
    assert_int_equal(admit(t, "2001:db8::5", 200, NULL), ABUSE_ADMIT);
    assert_int_equal(admit(t, "2001:db8::6", 200, NULL), ABUSE_PER_IP);
    assert_int_equal(admit(t, "2001:db8::7", 201, NULL), ABUSE_BANNED);
    assert_int_equal(cidr_parse("2001:db8::9", &c, NULL), 0);
    assert_int_equal(abuse_ban_remove(t, &c, 202), 1);
    assert_int_equal(admit(t, "2001:db8::7", 203, NULL), ABUSE_PER_IP); /* still one session open */
    abuse_free(t);
}

static void
count_ban(void *arg, const char *text, enum abuse_ban_reason reason, uint64_t until)
{
    (void)text;
    (void)reason;
    (void)until;
    (*(size_t *)arg)++;
}

static void
test_rules_bounded(void **state)
{
    (void)state;
    struct abuse_policy p = {.v6_prefix = 64};
    struct abuse *t = table(64, &p, NULL);
    char ip[32];
    struct cidr c;

    for (unsigned i = 0; i < ABUSE_RULES_MAX; i++) {
        snprintf(ip, sizeof(ip), "10.%u.%u.0/24", i / 256, i % 256);
        assert_int_equal(cidr_parse(ip, &c, NULL), 0);
        assert_int_equal(abuse_ban_add(t, &c, 1000, 0), 0);
    }
    assert_int_equal(cidr_parse("11.0.0.0/8", &c, NULL), 0);
    assert_int_equal(abuse_ban_add(t, &c, 1000, 0), -1);
    size_t n = 0;
    abuse_bans_each(t, 1, count_ban, &n);
    assert_int_equal(n, ABUSE_RULES_MAX);
    /* Once they expired there is room again. */
    assert_int_equal(abuse_ban_add(t, &c, 5000, 1000), 0);
    abuse_free(t);
}

static void
test_eviction_100k_keys(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.per_ip = 5, .rate = 10, .rate_period_ms = 1000, .ban_after = 3,
                             .ban_ms = 600000, .ban_window_ms = 60000, .v6_prefix = 64};
    const size_t cap = 1024;
    struct abuse *t = table(cap, &p, &ev);
    char ip[64];
    uint64_t now = 1000000;

    /* A client that is banned and one with a live session must survive the flood. */
    struct abuse_ticket live;
    assert_int_equal(admit(t, "192.0.2.1", now, &live), ABUSE_ADMIT);
    for (int i = 0; i < 5; i++)
        admit(t, "192.0.2.2", now, NULL);
    for (int i = 0; i < 3; i++)
        admit(t, "192.0.2.2", now, NULL);
    assert_int_equal(ev.starts, 1);

    for (unsigned i = 0; i < 100000; i++) {
        snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
        struct abuse_ticket tk;
        assert_int_equal(admit(t, ip, now + i / 100, &tk), ABUSE_ADMIT);
        release(t, ip, &tk);
        assert_true(abuse_stats(t)->entries <= cap);
    }
    assert_int_equal(abuse_stats(t)->entries, cap);
    assert_true(abuse_stats(t)->evictions >= 100000 - cap);
    assert_int_equal(abuse_stats(t)->untracked, 0);
    assert_int_equal(admit(t, "192.0.2.2", now + 1000, NULL), ABUSE_BANNED);
    /* 192.0.2.1's one session and the five of 192.0.2.2. */
    assert_int_equal(abuse_live(t), 6);
    release(t, "192.0.2.1", &live);
    assert_int_equal(abuse_live(t), 5);

    /* Idle, full buckets and no strikes: the sweep empties the table but the banned key. */
    abuse_sweep(t, now + 100000);
    assert_int_equal(abuse_stats(t)->entries, 1);
    abuse_free(t);
}

static void
test_full_of_live_sessions_fails_open(void **state)
{
    (void)state;
    struct abuse_policy p = {.per_ip = 1, .v6_prefix = 64};
    const size_t cap = 16;
    struct abuse *t = table(cap, &p, NULL);
    char ip[32];

    for (unsigned i = 0; i < cap; i++) {
        snprintf(ip, sizeof(ip), "10.0.0.%u", i + 1);
        assert_int_equal(admit(t, ip, 0, NULL), ABUSE_ADMIT);
    }
    /* Every key holds a session: the next one is admitted, not counted. */
    struct abuse_ticket tk;
    assert_int_equal(admit(t, "10.0.1.1", 0, &tk), ABUSE_ADMIT);
    assert_false(tk.counted);
    assert_int_equal(admit(t, "10.0.1.1", 1, &tk), ABUSE_ADMIT);
    assert_int_equal(abuse_stats(t)->untracked, 2);
    assert_int_equal(abuse_stats(t)->entries, cap);
    /* The existing ones are still limited. */
    assert_int_equal(admit(t, "10.0.0.1", 2, NULL), ABUSE_PER_IP);
    abuse_free(t);
}

static void
test_no_policy_tracks_nothing(void **state)
{
    (void)state;
    struct abuse_policy p = {.v6_prefix = 64};
    struct abuse *t = table(64, &p, NULL);

    for (int i = 0; i < 10; i++)
        assert_int_equal(admit(t, "192.0.2.1", 0, NULL), ABUSE_ADMIT);
    assert_int_equal(abuse_stats(t)->entries, 0);
    struct sockaddr_storage ss = sa("192.0.2.1");
    assert_false(abuse_violation(t, (struct sockaddr *)&ss, ABUSE_BAN_PREGREET, 0));
    abuse_free(t);
}

static void
test_pregreet_violation_bans(void **state)
{
    (void)state;
    struct events ev = {0};
    struct abuse_policy p = {.ban_after = 2, .ban_ms = 1000, .ban_window_ms = 10000,
                             .v6_prefix = 64};
    struct abuse *t = table(64, &p, &ev);
    struct sockaddr_storage ss = sa("198.51.100.20");

    assert_false(abuse_violation(t, (struct sockaddr *)&ss, ABUSE_BAN_PREGREET, 0));
    assert_true(abuse_violation(t, (struct sockaddr *)&ss, ABUSE_BAN_PREGREET, 1));
    assert_int_equal(ev.last_reason, ABUSE_BAN_PREGREET);
    assert_int_equal(admit(t, "198.51.100.20", 2, NULL), ABUSE_BANNED);
    assert_int_equal(admit(t, "198.51.100.20", 1001, NULL), ABUSE_ADMIT);
    abuse_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_ban_after_n_and_expiry),
        cmocka_unit_test(test_strikes_outside_window_do_not_add_up),
        cmocka_unit_test(test_ban_expiry_without_sweep),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_ipv6_prefix_keying),
        cmocka_unit_test(test_release_after_prefix_change),
        cmocka_unit_test(test_bans_by_hand),
        cmocka_unit_test(test_rules_bounded),
        cmocka_unit_test(test_eviction_100k_keys),
        cmocka_unit_test(test_full_of_live_sessions_fails_open),
        cmocka_unit_test(test_no_policy_tracks_nothing),
        cmocka_unit_test(test_pregreet_violation_bans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
