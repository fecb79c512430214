/*
 * Unit tests for banset: exact addresses, nested ranges (the longest
 * wins, deleting the inner one uncovers the outer), IPv6 /64 and /128,
 * IPv4-mapped peers and prefixes, expiry at its boundary, replacement,
 * the cap, interned strings, walking with a cursor, and 100,000 entries
 * checked against a plain list. The clock is a number the tests move.
 * banset_new_in(): the set made in a shared region works the same, a
 * child process sees what the parent added and the parent what the child
 * deleted (the workers of a host), and freeing it gives every byte back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
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

static struct sockaddr_storage
peer(const char *s)
{
    struct sockaddr_storage ss;
    bool any;
    const char *why = NULL;
    if (addr_parse(s, ADDR_PORT_OPTIONAL, &ss, &any, &why) != 0)
        fail_msg("%s: %s", s, why);
    return ss;
}

/* The prefix the set answers for <addr> at <now>, or "-". */
static const char *
hit(const struct banset *s, const char *addr, uint64_t now)
{
    static char buf[64];
    struct sockaddr_storage ss = peer(addr);
    const struct banset_entry *e = banset_lookup(s, (const struct sockaddr *)&ss, now);
    if (e == NULL)
        return "-";
    return cidr_format(&e->net, buf, sizeof(buf));
}

static int
add(struct banset *s, const char *n, uint64_t until)
{
    struct cidr c = net(n);
    return banset_add(s, &c, until, "cscli", "manual");
}

static int
del(struct banset *s, const char *n)
{
    struct cidr c = net(n);
    return banset_del(s, &c);
}

static void
test_exact(void **state)
{
    (void)state;
    struct banset *s = banset_new(16, 1);
    assert_non_null(s);
    assert_string_equal(hit(s, "192.0.2.1", 0), "-");
    assert_int_equal(add(s, "192.0.2.1", 100), 0);
    assert_string_equal(hit(s, "192.0.2.1", 0), "192.0.2.1/32");
    assert_string_equal(hit(s, "192.0.2.2", 0), "-");
    assert_string_equal(hit(s, "[::ffff:192.0.2.1]:25", 0), "192.0.2.1/32");
    assert_string_equal(hit(s, "192.0.2.1:25", 0), "192.0.2.1/32");
    assert_int_equal(del(s, "192.0.2.1"), 0);
    assert_int_equal(del(s, "192.0.2.1"), -1);
    assert_string_equal(hit(s, "192.0.2.1", 0), "-");
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.ips, 0);
    assert_int_equal(st.ranges, 0);
    banset_free(s);
}

static void
test_nested_ranges(void **state)
{
    (void)state;
    struct banset *s = banset_new(16, 2);
    assert_int_equal(add(s, "10.1.0.0/16", 100), 0);
    assert_int_equal(add(s, "10.1.2.0/24", 100), 0);
    assert_int_equal(add(s, "10.1.2.3", 100), 0);
    assert_int_equal(add(s, "0.0.0.0/0", 100), 0);
    assert_string_equal(hit(s, "10.1.2.3", 0), "10.1.2.3/32");
    assert_string_equal(hit(s, "10.1.2.4", 0), "10.1.2.0/24");
    assert_string_equal(hit(s, "10.1.3.4", 0), "10.1.0.0/16");
    assert_string_equal(hit(s, "10.2.0.1", 0), "0.0.0.0/0");
    /* IPv4 prefixes never answer for IPv6 peers. */
    assert_string_equal(hit(s, "2001:db8::1", 0), "-");
    assert_int_equal(del(s, "10.1.2.3"), 0);
    assert_string_equal(hit(s, "10.1.2.3", 0), "10.1.2.0/24");
    assert_int_equal(del(s, "10.1.2.0/24"), 0);
    assert_string_equal(hit(s, "10.1.2.3", 0), "10.1.0.0/16");
    assert_int_equal(del(s, "10.1.0.0/16"), 0);
    assert_string_equal(hit(s, "10.1.2.3", 0), "0.0.0.0/0");
    assert_int_equal(del(s, "0.0.0.0/0"), 0);
    assert_string_equal(hit(s, "10.1.2.3", 0), "-");
    /* Deleting a prefix that is only covered removes nothing. */
    assert_int_equal(add(s, "10.1.0.0/16", 100), 0);
    assert_int_equal(del(s, "10.1.2.0/24"), -1);
    assert_string_equal(hit(s, "10.1.2.3", 0), "10.1.0.0/16");
    /* Odd prefix lengths. */
    assert_int_equal(add(s, "192.0.2.128/25", 100), 0);
    assert_string_equal(hit(s, "192.0.2.127", 0), "-");
    assert_string_equal(hit(s, "192.0.2.128", 0), "192.0.2.128/25");
    assert_string_equal(hit(s, "192.0.2.255", 0), "192.0.2.128/25");
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.ips, 0);
    assert_int_equal(st.ranges, 2);
    banset_free(s);
}

static void
test_ipv6(void **state)
{
    (void)state;
    struct banset *s = banset_new(16, 3);
    assert_int_equal(add(s, "2001:db8:1:2::/64", 100), 0);
    assert_int_equal(add(s, "2001:db8:1:2::66", 100), 0);
    assert_int_equal(add(s, "2001:db8::/32", 100), 0);
    assert_string_equal(hit(s, "2001:db8:1:2::66", 0), "2001:db8:1:2::66/128");
    assert_string_equal(hit(s, "[2001:db8:1:2::67]:993", 0), "2001:db8:1:2::/64");
    assert_string_equal(hit(s, "2001:db8:1:3::1", 0), "2001:db8::/32");
    assert_string_equal(hit(s, "2001:db9::1", 0), "-");
    assert_string_equal(hit(s, "192.0.2.1", 0), "-");
    assert_int_equal(add(s, "2001:db8:1:2:0:0:0:8000/113", 100), 0);
    assert_string_equal(hit(s, "2001:db8:1:2::ffff", 0), "2001:db8:1:2::8000/113");
    assert_string_equal(hit(s, "2001:db8:1:2::7fff", 0), "2001:db8:1:2::/64");
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.ips, 1);
    assert_int_equal(st.ranges, 3);
    banset_free(s);
}

static void
test_mapped(void **state)
{
    (void)state;
    struct banset *s = banset_new(16, 4);
    /* A mapped prefix is kept as the IPv4 one. */
    assert_int_equal(add(s, "::ffff:198.51.100.0/120", 100), 0);
    assert_int_equal(add(s, "198.51.100.0/24", 200), 1);
    assert_string_equal(hit(s, "198.51.100.9", 0), "198.51.100.0/24");
    assert_string_equal(hit(s, "::ffff:198.51.100.9", 0), "198.51.100.0/24");
    assert_int_equal(del(s, "::ffff:198.51.100.0/120"), 0);
    assert_string_equal(hit(s, "198.51.100.9", 0), "-");
    assert_int_equal(add(s, "::ffff:198.51.100.9", 100), 0);
    assert_string_equal(hit(s, "198.51.100.9", 0), "198.51.100.9/32");
    /* An IPv6 prefix shorter than /96 over the mapped space holds IPv4. */
    assert_int_equal(add(s, "::/80", 100), 0);
    assert_string_equal(hit(s, "203.0.113.1", 0), "::/80");
    assert_string_equal(hit(s, "::ffff:203.0.113.1", 0), "::/80");
    assert_string_equal(hit(s, "198.51.100.9", 0), "198.51.100.9/32");
    assert_string_equal(hit(s, "::1", 0), "::/80");
    assert_int_equal(del(s, "::/80"), 0);
    assert_int_equal(add(s, "2001:db8::/32", 100), 0);
    assert_string_equal(hit(s, "203.0.113.1", 0), "-");
    assert_int_equal(add(s, "::/0", 100), 0);
    assert_string_equal(hit(s, "203.0.113.1", 0), "::/0");
    banset_free(s);
}

static void
test_expiry_boundary(void **state)
{
    (void)state;
    struct banset *s = banset_new(16, 5);
    assert_int_equal(add(s, "10.0.0.0/8", 2000), 0);
    assert_int_equal(add(s, "10.0.0.1", 1000), 0);
    assert_string_equal(hit(s, "10.0.0.1", 999), "10.0.0.1/32");
    /* Expired at its own millisecond: the covering range answers. */
    assert_string_equal(hit(s, "10.0.0.1", 1000), "10.0.0.0/8");
    assert_string_equal(hit(s, "10.0.0.1", 2000), "-");
    assert_int_equal(banset_expire(s, 999, 10), 0);
    assert_int_equal(banset_expire(s, 1000, 10), 1);
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.ips, 0);
    assert_int_equal(st.ranges, 1);
    assert_int_equal(banset_expire(s, 5000, 10), 1);
    banset_stats(s, &st);
    assert_int_equal(st.ranges, 0);

    /* The budget bounds the work, earliest first. */
    char a[32];
    for (int i = 0; i < 10; i++) {
        snprintf(a, sizeof(a), "192.0.2.%d", i);
        assert_int_equal(add(s, a, (uint64_t)(100 - i)), 0);
    }
    assert_int_equal(banset_expire(s, 1000, 3), 3);
    assert_string_equal(hit(s, "192.0.2.9", 0), "-");
    assert_string_equal(hit(s, "192.0.2.7", 0), "-");
    assert_string_equal(hit(s, "192.0.2.6", 0), "192.0.2.6/32");
    assert_int_equal(banset_expire(s, 93, 100), 0);
    assert_int_equal(banset_expire(s, 94, 100), 1);
    assert_int_equal(banset_expire(s, 1000, 100), 6);
    assert_int_equal(banset_expire(s, 1000, 100), 0);
    banset_free(s);
}

static void
test_replace(void **state)
{
    (void)state;
    struct banset *s = banset_new(4, 6);
    struct cidr c = net("192.0.2.1");
    assert_int_equal(banset_add(s, &c, 100, "crowdsec", "ssh-bf"), 0);
    assert_int_equal(banset_add(s, &c, 500, "cscli", "manual"), 1);
    struct sockaddr_storage ss = peer("192.0.2.1");
    const struct banset_entry *e = banset_lookup(s, (struct sockaddr *)&ss, 200);
    assert_non_null(e);
    assert_int_equal(e->expires_ms, 500);
    assert_string_equal(e->origin, "cscli");
    assert_string_equal(e->scenario, "manual");
    /* The heap follows the new expiry, also when it moves earlier. */
    assert_int_equal(banset_expire(s, 499, 10), 0);
    assert_int_equal(banset_add(s, &c, 50, NULL, NULL), 1);
    e = banset_lookup(s, (struct sockaddr *)&ss, 0);
    assert_string_equal(e->origin, "");
    assert_string_equal(e->scenario, "");
    assert_int_equal(banset_expire(s, 50, 10), 1);
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.ips, 0);
    /* Host bits beyond the prefix are ignored in a key made by hand. */
    struct cidr r = net("10.0.0.0/8");
    r.addr[3] = 7;
    assert_int_equal(banset_add(s, &r, 100, "a", "b"), 0);
    assert_int_equal(add(s, "10.0.0.0/8", 100), 1);
    r.prefix = 33;
    assert_int_equal(banset_add(s, &r, 100, "a", "b"), -1);
    r.family = AF_UNIX;
    r.prefix = 8;
    assert_int_equal(banset_del(s, &r), -1);
    banset_free(s);
}

static void
test_full(void **state)
{
    (void)state;
    struct banset *s = banset_new(3, 7);
    assert_int_equal(add(s, "192.0.2.1", 10), 0);
    assert_int_equal(add(s, "192.0.2.2", 10), 0);
    assert_int_equal(add(s, "192.0.2.0/24", 10), 0);
    assert_int_equal(add(s, "192.0.2.3", 10), -1);
    assert_int_equal(add(s, "2001:db8::/32", 10), -1);
    /* Replacing needs no room. */
    assert_int_equal(add(s, "192.0.2.1", 20), 1);
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.full_refusals, 2);
    assert_int_equal(st.ips, 2);
    assert_int_equal(st.ranges, 1);
    assert_true(st.bytes > 0);
    assert_int_equal(banset_expire(s, 10, 10), 2);
    assert_int_equal(add(s, "192.0.2.3", 10), 0);
    banset_clear(s);
    banset_stats(s, &st);
    assert_int_equal(st.ips + st.ranges, 0);
    assert_int_equal(st.full_refusals, 2);
    assert_string_equal(hit(s, "192.0.2.1", 0), "-");
    assert_int_equal(add(s, "192.0.2.9", 10), 0);
    assert_string_equal(hit(s, "192.0.2.9", 0), "192.0.2.9/32");
    banset_free(s);
}

/* Origins and scenarios are shared, and freed with their last entry. */
static void
test_interned(void **state)
{
    (void)state;
    struct banset *s = banset_new(64, 8);
    char a[32], scen[300];
    memset(scen, 'x', sizeof(scen) - 1);
    scen[sizeof(scen) - 1] = '\0';
    struct banset_stats st0, st1, st2;
    banset_stats(s, &st0);
    for (int i = 0; i < 40; i++) {
        snprintf(a, sizeof(a), "192.0.2.%d", i);
        struct cidr c = net(a);
        assert_int_equal(banset_add(s, &c, 100, i % 2 ? "CAPI" : "crowdsec", scen), 0);
    }
    banset_stats(s, &st1);
    const struct banset_entry *e1, *e3;
    struct sockaddr_storage p1 = peer("192.0.2.1"), p3 = peer("192.0.2.3");
    e1 = banset_lookup(s, (struct sockaddr *)&p1, 0);
    e3 = banset_lookup(s, (struct sockaddr *)&p3, 0);
    assert_ptr_equal(e1->origin, e3->origin);
    assert_ptr_equal(e1->scenario, e3->scenario);
    assert_string_equal(e1->origin, "CAPI");
    assert_int_equal(strlen(e1->scenario), 255);
    /* Cut at 255 bytes between characters: 300 bytes of 3-byte ones. */
    char euros[301];
    for (int i = 0; i < 100; i++)
        memcpy(euros + 3 * i, "\xe2\x82\xac", 3);
    euros[300] = '\0';
    struct cidr c9 = net("198.51.100.9");
    assert_int_equal(banset_add(s, &c9, 100, euros, euros + 1), 0);
    struct sockaddr_storage p9 = peer("198.51.100.9");
    const struct banset_entry *e9 = banset_lookup(s, (struct sockaddr *)&p9, 0);
    assert_int_equal(strlen(e9->origin), 255);
    assert_int_equal(strlen(e9->scenario), 254); /* starts mid-character: 2 + 84 * 3 */
    assert_int_equal(banset_del(s, &c9), 0);
    assert_int_equal(banset_expire(s, 100, 1000), 40);
    banset_stats(s, &st2);
    /* The strings went with the entries; the tables stay. */
    assert_true(st2.bytes < st1.bytes);
    assert_true(st2.bytes >= st0.bytes);
    banset_free(s);
}

struct walk {
    size_t visits;
    uint8_t *seen; /* by the entry's expiry, which is its number */
};

static void
on_entry(void *arg, const struct banset_entry *e)
{
    struct walk *w = arg;
    w->visits++;
    w->seen[e->expires_ms]++;
}

static void
test_walk(void **state)
{
    (void)state;
    struct banset *s = banset_new(100, 9);
    uint8_t seen[101] = { 0 };
    struct walk w = { 0, seen };
    size_t pos = 0;
    assert_int_equal(banset_walk(s, &pos, 10, on_entry, &w), 0);
    assert_int_equal(pos, 0);
    char a[32];
    for (int i = 1; i <= 50; i++) {
        snprintf(a, sizeof(a), "192.0.2.%d", i);
        assert_int_equal(add(s, a, (uint64_t)i), 0);
    }
    /* Holes from deletions are skipped. */
    assert_int_equal(del(s, "192.0.2.5"), 0);
    assert_int_equal(del(s, "192.0.2.50"), 0);
    size_t calls = 0;
    do {
        size_t n = banset_walk(s, &pos, 7, on_entry, &w);
        assert_true(n <= 7);
        calls++;
        /* Changes between calls: an entry present throughout is seen once. */
        if (calls == 2) {
            assert_int_equal(del(s, "192.0.2.2"), 0);
            assert_int_equal(add(s, "192.0.2.2", 2), 0);
        }
    } while (pos != 0);
    assert_int_equal(w.visits, 48);
    for (int i = 1; i <= 50; i++)
        assert_int_equal(seen[i], i == 5 || i == 50 ? 0 : 1);
    assert_int_equal(calls, 7);
    banset_free(s);
}

/* 100,000 entries, addresses and ranges of both families, against a list. */
static void
test_100k(void **state)
{
    (void)state;
    size_t n = 100000;
    struct banset *s = banset_new(n, 0x1234567890abcdefull);
    struct cidr *list = calloc(n, sizeof(*list));
    assert_non_null(list);
    for (size_t i = 0; i < n; i++) {
        struct cidr *c = &list[i];
        uint32_t x = (uint32_t)i;
        switch (i % 4) {
        case 0: /* 10.x.y.z/32 */
        case 1:
            c->family = AF_INET;
            c->prefix = 32;
            c->addr[0] = 10;
            c->addr[1] = (uint8_t)(x >> 16);
            c->addr[2] = (uint8_t)(x >> 8);
            c->addr[3] = (uint8_t)x;
            break;
        case 2: /* 172.16.0.0/12 space, /24s */
            c->family = AF_INET;
            c->prefix = 24;
            c->addr[0] = (uint8_t)(100 + (x >> 16));
            c->addr[1] = (uint8_t)(x >> 8);
            c->addr[2] = (uint8_t)x;
            break;
        default: /* 2001:db8:x::/64 and 2001:db8:x::1/128 */
            c->family = AF_INET6;
            c->prefix = (x / 4) % 2 ? 128 : 64;
            c->addr[0] = 0x20;
            c->addr[1] = 0x01;
            c->addr[2] = 0x0d;
            c->addr[3] = 0xb8;
            c->addr[4] = (uint8_t)(x >> 16);
            c->addr[5] = (uint8_t)(x >> 8);
            c->addr[6] = (uint8_t)x;
            if (c->prefix == 128)
                c->addr[15] = 1;
            break;
        }
        assert_int_equal(banset_add(s, c, 1000 + i, i % 3 ? "CAPI" : "crowdsec", "x"), 0);
    }
    struct banset_stats st;
    banset_stats(s, &st);
    assert_int_equal(st.ips + st.ranges, n);
    assert_int_equal(st.full_refusals, 0);
    struct cidr extra = net("192.0.2.1");
    assert_int_equal(banset_add(s, &extra, 1, "a", "b"), -1);

    /* Every entry answers for its own first address, and a second address
     * inside each range answers with the range. */
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (list[i].family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, list[i].addr, 4);
            if (list[i].prefix == 24)
                ((uint8_t *)&sin->sin_addr)[3] = 77;
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, list[i].addr, 16);
            if (list[i].prefix == 64)
                sin6->sin6_addr.s6_addr[15] = 2;
        }
        const struct banset_entry *e = banset_lookup(s, (struct sockaddr *)&ss, 0);
        assert_non_null(e);
        assert_int_equal(e->expires_ms, 1000 + i);
    }
    assert_string_equal(hit(s, "11.0.0.1", 0), "-");
    assert_string_equal(hit(s, "2001:db9::1", 0), "-");

    uint8_t *seen = calloc(n + 1000, 1);
    struct walk w = { 0, seen };
    size_t pos = 0;
    do
        banset_walk(s, &pos, 4096, on_entry, &w);
    while (pos != 0);
    assert_int_equal(w.visits, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[1000 + i], 1);

    /* Half expire, in budgets; the rest still answer. */
    size_t dropped = 0, got;
    while ((got = banset_expire(s, 1000 + n / 2 - 1, 1000)) > 0) {
        assert_true(got <= 1000);
        dropped += got;
    }
    assert_int_equal(dropped, n / 2);
    size_t deleted = 0;
    for (size_t i = 0; i < n; i += 97) {
        int rc = banset_del(s, &list[i]);
        assert_int_equal(rc, i < n / 2 ? -1 : 0);
        deleted += rc == 0;
    }
    banset_stats(s, &st);
    assert_int_equal(st.ips + st.ranges, n / 2 - deleted);
    free(seen);
    free(list);
    banset_free(s);
}

/* The entry the set answers for <addr> at <now>, or NULL. */
static const struct banset_entry *
look(const struct banset *s, const char *addr, uint64_t now)
{
    struct sockaddr_storage ss = peer(addr);
    return banset_lookup(s, (const struct sockaddr *)&ss, now);
}

static int
add_s(struct banset *s, const char *n, uint64_t until, const char *scenario)
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
    assert_int_equal(add_s(s, "192.0.2.1", 100, "manual"), 0);
    assert_int_equal(add_s(s, "10.1.0.0/16", 50, "ssh-bf"), 0);
    assert_int_equal(add_s(s, "2001:db8::/32", 100, "manual"), 0);
    assert_int_equal(add_s(s, "192.0.2.1", 200, "other"), 1);
    assert_int_equal(add_s(s, "192.0.2.9", 100, "x"), 0);
    assert_int_equal(add_s(s, "192.0.2.10", 100, "x"), -1); /* full */
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
    assert_int_equal(add_s(s, "192.0.2.1", 100, "again"), 0);
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
    assert_int_equal(add_s(s, "198.51.100.7", 100, "parent"), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const struct banset_entry *e = look(s, "198.51.100.7", 0);
        int ok = e != NULL && strcmp(e->scenario, "parent") == 0;
        struct cidr c = net("198.51.100.7");
        ok = ok && banset_del(s, &c) == 0 && add_s(s, "203.0.113.0/24", 100, "child") == 0;
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
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_nested_ranges),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_mapped),
        cmocka_unit_test(test_expiry_boundary),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_interned),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_100k),
        cmocka_unit_test(test_in_region),
        cmocka_unit_test(test_seen_by_another_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
