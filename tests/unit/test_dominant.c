/*
 * Unit tests for dominant: one client with more than half of the last 256
 * sessions is reported once the window is full, on the look every 64
 * sessions, then not again for 10 minutes; half exactly is not more than
 * half; IPv6 addresses differ by any bit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dominant.h"

/* 192.0.2.<last>, or with <six> 2001:db8::<last>. */
static struct abuse_key
key(int six, unsigned last)
{
    static const uint8_t v4[] = {192, 0, 2}, v6[] = {0x20, 0x01, 0x0d, 0xb8};
    struct abuse_key k;
    memset(&k, 0, sizeof(k));
    k.family = six ? 6 : 4;
    k.prefix = six ? 128 : 32;
    memcpy(k.a, six ? v6 : v4, six ? sizeof(v6) : sizeof(v4));
    k.a[six ? 15 : 3] = (uint8_t)last;
    return k;
}

static struct abuse_key
key4(unsigned last)
{
    return key(0, last);
}

static struct dominant d;

static void
test_majority(void **state)
{
    (void)state;
    struct abuse_key relay = key4(1), out;
    uint64_t now = 1000;
    memset(&d, 0, sizeof(d));
    /* 255 sessions: the window is not full yet, nothing is said. */
    for (unsigned i = 0; i < DOMINANT_WINDOW - 1; i++) {
        struct abuse_key k = i % 4 == 0 ? key4(100 + i % 50) : relay;
        assert_int_equal(dominant_note(&d, &k, now, &out), 0);
    }
    /* The 256th: a look, 3 in 4 are the relay's. */
    unsigned n = dominant_note(&d, &relay, now, &out);
    assert_int_equal(n, 192);
    assert_memory_equal(&out, &relay, sizeof(out));
    /* Not again within 10 minutes, however many more. */
    for (unsigned i = 0; i < 4 * DOMINANT_WINDOW; i++)
        assert_int_equal(dominant_note(&d, &relay, now + DOMINANT_WARN_MS - 1, &out), 0);
    /* Then at the next look. */
    unsigned said = 0;
    for (unsigned i = 0; i < DOMINANT_EVERY; i++)
        said += dominant_note(&d, &relay, now + DOMINANT_WARN_MS, &out) > 0;
    assert_int_equal(said, 1);
}

static void
test_half_is_not_more(void **state)
{
    (void)state;
    struct abuse_key a = key4(1), out;
    memset(&d, 0, sizeof(d));
    for (unsigned i = 0; i < 8 * DOMINANT_WINDOW; i++) {
        struct abuse_key k = i % 2 ? a : key4(2 + i % 200);
        assert_int_equal(dominant_note(&d, &k, 0, &out), 0);
    }
    /* Many clients, none big: nothing. */
    for (unsigned i = 0; i < 8 * DOMINANT_WINDOW; i++) {
        struct abuse_key k = key4(i % 251);
        assert_int_equal(dominant_note(&d, &k, 0, &out), 0);
    }
}

static void
test_ipv6_keys(void **state)
{
    (void)state;
    struct abuse_key out, k;
    memset(&d, 0, sizeof(d));
    /* 2001:db8::1 and 2001:db8::2 alternating: two clients, half each. */
    for (unsigned i = 0; i < 2 * DOMINANT_WINDOW; i++) {
        k = key(1, 1 + i % 2);
        assert_int_equal(dominant_note(&d, &k, 0, &out), 0);
    }
    /* The same address: reported. */
    unsigned said = 0;
    for (unsigned i = 0; i < DOMINANT_WINDOW; i++)
        said += dominant_note(&d, &k, 0, &out) > 0;
    assert_int_equal(said, 1);
    assert_int_equal(out.family, 6);
    assert_int_equal(out.a[15], 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_majority),
        cmocka_unit_test(test_half_is_not_more),
        cmocka_unit_test(test_ipv6_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
