/*
 * bench/bansets.c: the remote-ban figures of `make bench` (issue 20):
 * memory and lookup cost of a banset of 100,000 decisions, and the
 * parser's cost on the LAPI answer that carries them.
 *
 *   bansets [-n DECISIONS] [-l LOOKUPS] [-r REPEATS]
 *
 * The decisions are a fixed mix (xorshift with a fixed seed), all
 * distinct: 75% IPv4 /32, 10% IPv4 /24, 1% IPv4 /16, 10% IPv6 /128, 3%
 * IPv6 /64, 1% IPv6 /48; origins and scenarios from a handful of names.
 *  1. the set built from them directly: resident memory (/proc/self/statm)
 *     before and after, per 1,000 decisions, and the set's own count;
 *  2. lookups of addresses inside entries (hit) and outside all (miss), in
 *     the same family mix, median of -r runs of -l lookups, in ns each;
 *  3. the same decisions as a LAPI answer (JSON), taken as the bouncer
 *     takes a whole list, one loop pass at a time: fed to the parser in 32
 *     KiB chunks (total time, the longest feed call, the parser's resident
 *     memory at its peak), read into a second set in batches of 256 (the
 *     longest batch), then the parsed answer freed and the set it replaces
 *     (the first one) emptied and freed in the bouncer's steps (the
 *     longest step of each); last, the second set dropped on expiry in
 *     batches of 256 (the longest batch).
 * Times are the thread's CPU time. Prints the lines of the bench report; exit 1 if a check fails (a lookup
 * that should hit misses, the parsed set differs).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "banset.h"
#include "cidr.h"
#include "decisions.h"

#define CHUNK 32768 /* bytes parsed per pass (BOUNCER_PASS_BYTES) */
#define BATCH 256   /* decisions applied per pass (BOUNCER_BATCH) */
#define RETIRE 1024 /* entries of a replaced set emptied per pass */
#define SPENT 8     /* blocks of a parsed answer freed per pass */

static const char *const origins[] = { "CAPI", "lists", "crowdsec", "cscli" };
static const char *const scenarios[] = {
    "crowdsecurity/ssh-bf",        "crowdsecurity/http-probing", "crowdsecurity/postfix-spam",
    "crowdsecurity/dovecot-spam",  "crowdsecurity/ssh-slow-bf",  "firehol_cruzit_web_attacks",
    "mailedge/pregreet",           "mailedge/limit-rate",        "manual 'ban' from 'localhost'",
    "crowdsecurity/http-bad-user-agent",
};

struct item {
    struct cidr net;
    uint8_t origin, scenario;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The thread's CPU time: on a shared machine, wall time would count the
 * other processes' turns as ours. */
static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t
rss_bytes(void)
{
    unsigned long size = 0, res = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp == NULL)
        return 0;
    if (fscanf(fp, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(fp);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Entry <i>: distinct by construction (the index, scrambled by an odd
 * multiplier, is the varying part; each kind has its own space). */
static void
make_item(size_t i, size_t n, struct item *it)
{
    struct cidr *c = &it->net;
    uint32_t x = (uint32_t)(i * 2654435761u);
    unsigned pct = (unsigned)(i * 100 / n);

    memset(it, 0, sizeof(*it));
    it->origin = (uint8_t)(next() % 4);
    it->scenario = (uint8_t)(next() % 10);
    if (pct < 75) { /* 10.0.0.0/8, 172.16.0.0/12 */
        c->family = AF_INET;
        c->prefix = 32;
        uint32_t a = (i & 1) ? (0x0a000000u | (x & 0xffffff)) : (0xac100000u | (x & 0xfffff));
        a = htonl(a);
        memcpy(c->addr, &a, 4);
    } else if (pct < 85) { /* /24s in 100.64.0.0/10 */
        c->family = AF_INET;
        c->prefix = 24;
        uint32_t a = htonl(0x64400000u | ((uint32_t)i << 8 & 0x3fff00u));
        memcpy(c->addr, &a, 4);
    } else if (pct < 86) { /* /16s in 198.0.0.0/8 to 201.0.0.0/8 */
        c->family = AF_INET;
        c->prefix = 16;
        uint32_t a = htonl((0xc6u + ((uint32_t)i >> 8 & 3)) << 24 | ((uint32_t)i << 16 & 0xff0000u));
        memcpy(c->addr, &a, 4);
    } else {
        c->family = AF_INET6;
        c->addr[0] = 0x20;
        c->addr[1] = 0x01;
        c->addr[2] = 0x0d;
        c->addr[3] = 0xb8;
        if (pct < 96) { /* 2001:db8:1::/48 hosts */
            c->prefix = 128;
            c->addr[5] = 1;
            memcpy(c->addr + 12, &x, 4);
            c->addr[11] = (uint8_t)(i >> 16);
        } else if (pct < 99) { /* /64s in 2001:db8:2::/48 */
            c->prefix = 64;
            c->addr[5] = 2;
            c->addr[6] = (uint8_t)(i >> 8);
            c->addr[7] = (uint8_t)i;
        } else { /* /48s in 2001:db8:8000::/33 */
            c->prefix = 48;
            c->addr[4] = (uint8_t)(0x80 | ((i >> 8) & 0x7f));
            c->addr[5] = (uint8_t)i;
        }
    }
}

/* An address inside <c> (hit) with random host bits. */
static void
inside(const struct cidr *c, struct sockaddr_storage *ss)
{
    uint8_t a[16];
    memcpy(a, c->addr, 16);
    unsigned len = c->family == AF_INET ? 4 : 16;
    for (unsigned b = c->prefix; b < len * 8; b++) {
        if (next() & 1)
            a[b / 8] |= (uint8_t)(0x80 >> (b % 8));
    }
    memset(ss, 0, sizeof(*ss));
    if (c->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
    }
}

/* An address outside every entry, in the same family mix. */
static void
outside(size_t i, size_t n, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (i * 100 / n < 86) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        uint32_t a = htonl(0xcb000000u | (uint32_t)(next() & 0xffffff)); /* 203/8 */
        memcpy(&sin->sin_addr, &a, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        uint64_t r = next();
        sin6->sin6_addr.s6_addr[0] = 0x2a;
        memcpy(&sin6->sin6_addr.s6_addr[8], &r, 8);
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median over <reps> runs of the ns per lookup of <addrs>; <*hits> counts. */
static double
time_lookups(const struct banset *s, const struct sockaddr_storage *addrs, size_t na, size_t nl,
             int reps, size_t *hits)
{
    double runs[32];
    if (reps > 32)
        reps = 32;
    for (int r = 0; r < reps; r++) {
        size_t h = 0;
        double t0 = now_ns();
        for (size_t i = 0; i < nl; i++)
            h += banset_lookup(s, (const struct sockaddr *)&addrs[i % na], 1) != NULL;
        runs[r] = (now_ns() - t0) / (double)nl;
        *hits = h;
    }
    qsort(runs, (size_t)reps, sizeof(runs[0]), cmp_double);
    return runs[reps / 2];
}

static char *
make_body(const struct item *items, size_t n, size_t *len)
{
    size_t cap = n * 240 + 64, l = 0;
    char *b = malloc(cap);
    if (b == NULL)
        return NULL;
    l += (size_t)snprintf(b + l, cap - l, "{\"deleted\":null,\"new\":[");
    for (size_t i = 0; i < n; i++) {
        char net[64];
        cidr_format(&items[i].net, net, sizeof(net));
        bool host = items[i].net.prefix == (items[i].net.family == AF_INET ? 32u : 128u);
        if (host)
            *strchr(net, '/') = '\0';
        l += (size_t)snprintf(b + l, cap - l,
                              "%s{\"duration\":\"%zuh%zum%zu.%03zus\",\"id\":%zu,\"origin\":\"%s\","
                              "\"scenario\":\"%s\",\"scope\":\"%s\",\"type\":\"ban\",\"value\":\"%s\"}",
                              i ? "," : "", 1 + i % 167, i % 60, i % 60, i % 1000, i + 1,
                              origins[items[i].origin], scenarios[items[i].scenario],
                              host ? "Ip" : "Range", net);
    }
    l += (size_t)snprintf(b + l, cap - l, "]}");
    *len = l;
    return b;
}

int
main(int argc, char **argv)
{
    size_t n = 100000, nl = 2000000;
    int reps = 5, opt;

    while ((opt = getopt(argc, argv, "n:l:r:")) != -1) {
        switch (opt) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 'l':
            nl = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bansets [-n DECISIONS] [-l LOOKUPS] [-r REPEATS]\n");
            return 2;
        }
    }
    if (n < 100 || nl < 1 || reps < 1) {
        fprintf(stderr, "bansets: -n at least 100, -l and -r at least 1\n");
        return 2;
    }
    int failed = 0;
    size_t got_retire;
    struct item *items = calloc(n, sizeof(*items));
    size_t na = n < 65536 ? n : 65536;
    struct sockaddr_storage *hit = calloc(na, sizeof(*hit)), *miss = calloc(na, sizeof(*miss));
    if (items == NULL || hit == NULL || miss == NULL)
        return 1;
    for (size_t i = 0; i < n; i++)
        make_item(i, n, &items[i]);

    /* 1. memory */
    size_t rss0 = rss_bytes();
    struct banset *s = banset_new(n, 0x5eed);
    if (s == NULL)
        return 1;
    for (size_t i = 0; i < n; i++) {
        if (banset_add(s, &items[i].net, UINT64_MAX, origins[items[i].origin],
                       scenarios[items[i].scenario]) != 0)
            failed = 1;
    }
    size_t rss1 = rss_bytes();
    struct banset_stats st;
    banset_stats(s, &st);
    if (st.ips + st.ranges != n)
        failed = 1;

    /* 2. lookups */
    for (size_t i = 0; i < na; i++) {
        inside(&items[next() % n].net, &hit[i]);
        outside(next() % n, n, &miss[i]);
    }
    size_t hits_h = 0, hits_m = 0;
    double ns_hit = time_lookups(s, hit, na, nl, reps, &hits_h);
    double ns_miss = time_lookups(s, miss, na, nl, reps, &hits_m);
    if (hits_h != nl || hits_m != 0)
        failed = 1;
    struct banset *empty = banset_new(n, 1);
    size_t dummy = 0;
    double ns_empty = time_lookups(empty, hit, na, nl, reps, &dummy);
    banset_free(empty);

    /* 3. a whole list as the bouncer takes it, one loop pass at a time */
    size_t len = 0;
    char *body = make_body(items, n, &len);
    if (body == NULL)
        return 1;
    size_t rss2 = rss_bytes();
    struct decisions *d = decisions_new(len);
    double longest_feed = 0, t_parse = 0, t0, dt;
    enum decisions_rc rc = DECISIONS_MORE;
    for (size_t at = 0; at < len && rc == DECISIONS_MORE; at += CHUNK) {
        size_t k = len - at < CHUNK ? len - at : CHUNK;
        t0 = now_ns();
        rc = decisions_feed(d, body + at, k);
        if (at + k == len && rc != DECISIONS_ERROR)
            rc = decisions_end(d);
        dt = now_ns() - t0;
        t_parse += dt;
        if (dt > longest_feed)
            longest_feed = dt;
    }
    size_t rss3 = rss_bytes();
    if (rc != DECISIONS_DONE || decisions_count(d, false) != n) {
        fprintf(stderr, "bansets: parse: %s\n", decisions_error(d));
        failed = 1;
    }
    struct banset *s2 = banset_new(n, 0xbeef);
    double longest_batch = 0, t_load = 0;
    size_t cnt = decisions_count(d, false);
    for (size_t i = 0; i < cnt; i += BATCH) {
        t0 = now_ns();
        for (size_t j = i; j < i + BATCH && j < cnt; j++) {
            struct decision x;
            if (decisions_get(d, false, j, &x, NULL) != 0 ||
                banset_add(s2, &x.net, 1000 + (uint64_t)x.duration_ms, x.origin, x.scenario) != 0)
                failed = 1;
        }
        dt = now_ns() - t0;
        t_load += dt;
        if (dt > longest_batch)
            longest_batch = dt;
    }
    struct banset_stats st2;
    banset_stats(s2, &st2);
    if (st2.ips != st.ips || st2.ranges != st.ranges)
        failed = 1;
    /* The answer is dropped, and the set it replaces (<s>) emptied and freed, as the bouncer does. */
    double longest_drop = 0;
    bool freed;
    do {
        t0 = now_ns();
        freed = decisions_free_some(d, SPENT);
        dt = now_ns() - t0;
        if (dt > longest_drop)
            longest_drop = dt;
    } while (!freed);
    free(body);
    double longest_retire = 0;
    do {
        t0 = now_ns();
        got_retire = banset_expire(s, UINT64_MAX, RETIRE);
        if (got_retire == 0)
            banset_free(s);
        dt = now_ns() - t0;
        if (dt > longest_retire)
            longest_retire = dt;
    } while (got_retire > 0);
    s = NULL;
    double longest_expire = 0;
    size_t dropped = 0, got;
    do {
        t0 = now_ns();
        got = banset_expire(s2, UINT64_MAX, BATCH);
        dt = now_ns() - t0;
        if (dt > longest_expire)
            longest_expire = dt;
        dropped += got;
    } while (got > 0);
    if (dropped != n)
        failed = 1;

    printf("remote bans (bench/bansets.c alone, before the proxies; times are its CPU time):"
           " %zu decisions, %zu addresses and %zu ranges, 86%% IPv4\n",
           n, st.ips, st.ranges);
    printf("  set, resident memory:   %.1f KiB per 1,000 decisions (RSS %.1f -> %.1f MiB;"
           " the set counts %.1f KiB per 1,000)\n",
           (double)(rss1 - rss0) / 1024.0 / ((double)n / 1000.0), (double)rss0 / 1048576.0,
           (double)rss1 / 1048576.0, (double)st.bytes / 1024.0 / ((double)n / 1000.0));
    printf("  lookup (accept path):   hit %.0f ns, miss %.0f ns, empty set %.0f ns"
           " (median of %d runs of %zu)\n",
           ns_hit, ns_miss, ns_empty, reps, nl);
    printf("  LAPI answer, %.1f MB:   parsed in %zu-byte chunks in %.0f ms, longest feed call"
           " %.2f ms; parser's peak +%.0f MiB RSS\n",
           (double)len / 1e6, (size_t)CHUNK, t_parse / 1e6, longest_feed / 1e6,
           (double)(rss3 > rss2 ? rss3 - rss2 : 0) / 1048576.0);
    printf("  into the set:           %.0f ms in batches of %d, longest batch %.2f ms;"
           " expiry of all in batches of %d: longest %.2f ms\n",
           t_load / 1e6, BATCH, longest_batch / 1e6, BATCH, longest_expire / 1e6);
    printf("  drop (loop passes):     the parsed answer freed in %.2f ms at most a pass;"
           " the replaced set emptied and freed in %.2f ms at most a pass\n",
           longest_drop / 1e6, longest_retire / 1e6);
    if (failed)
        printf("  FAILED: a check of bench/bansets.c did not hold\n");
    banset_free(s);
    banset_free(s2);
    free(items);
    free(hit);
    free(miss);
    return failed;
}
