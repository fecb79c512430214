/*
 * cidr: network prefixes and matching. IPv4 prefixes also match IPv4-mapped
 * IPv6 peers (::ffff:a.b.c.d), which is what a dual-stack listener reports
 * for an IPv4 client; an IPv6 prefix over ::ffff:0:0/96 matches AF_INET
 * peers likewise, so both spellings of a trusted network behave the same.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define TEXT_MAX 64

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int
fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return -1;
}

/* True when the first <prefix> bits of a and b are equal. */
static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned bytes = prefix / 8, bits = prefix % 8;

    if (memcmp(a, b, bytes) != 0)
        return false;
    if (bits == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - bits));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

/* True when any bit after the first <prefix> of <a> (<len> bytes) is set. */
static bool
host_bits_set(const uint8_t *a, size_t len, unsigned prefix)
{
    for (size_t i = prefix / 8; i < len; i++) {
        uint8_t keep = 0;
        if (i == prefix / 8 && prefix % 8 != 0)
            keep = (uint8_t)(0xff << (8 - prefix % 8));
        if ((a[i] & (uint8_t)~keep) != 0)
            return true;
    }
    return false;
}

int
cidr_parse(const char *s, struct cidr *out, const char **why)
{
    char text[TEXT_MAX];
    uint64_t prefix;

    memset(out, 0, sizeof(*out));
    if (s == NULL || *s == '\0')
        return fail(why, "empty network");
    const char *slash = strchr(s, '/');
    size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (n == 0)
        return fail(why, "missing address before '/'");
    if (n >= sizeof(text))
        return fail(why, "address too long");
    memcpy(text, s, n);
    text[n] = '\0';

    if (memchr(text, ':', n) != NULL) {
        if (memchr(text, '%', n) != NULL)
            return fail(why, "IPv6 zone identifiers are not supported");
        if (inet_pton(AF_INET6, text, out->addr) != 1)
            return fail(why, "invalid IPv6 address");
        out->family = AF_INET6;
    } else {
        if (inet_pton(AF_INET, text, out->addr) != 1)
            return fail(why, "invalid IPv4 address");
        out->family = AF_INET;
    }
    unsigned max = out->family == AF_INET ? 32 : 128;

    if (slash == NULL) {
        prefix = max;
    } else if (slash[1] == '\0') {
        return fail(why, "missing prefix length after '/'");
    } else if (util_parse_uint(slash + 1, max, &prefix) != 0) {
        return fail(why, out->family == AF_INET ? "prefix length must be 0 to 32"
                                                : "prefix length must be 0 to 128");
    }
    out->prefix = (unsigned)prefix;
    if (host_bits_set(out->addr, max / 8, out->prefix))
        return fail(why, "host bits set beyond the prefix length");
    return 0;
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    uint8_t addr[16];
    int family;

    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        family = AF_INET6;
    } else {
        return false;
    }

    if (c->family == AF_INET && family == AF_INET6) {
        if (memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) != 0)
            return false;
        memmove(addr, addr + 12, 4);
        family = AF_INET;
    } else if (c->family == AF_INET6 && family == AF_INET) {
        memmove(addr + 12, addr, 4);
        memcpy(addr, v4mapped_prefix, sizeof(v4mapped_prefix));
        family = AF_INET6;
    }
    if (c->family != family)
        return false;
    return prefix_equal(c->addr, addr, c->prefix);
}

bool
cidr_match_any(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; i < n; i++) {
        if (cidr_match(&list[i], sa))
            return true;
    }
    return false;
}

bool
cidr_is_wide(const struct cidr *c)
{
    static const uint8_t ula[16] = {0xfc}, link_local[16] = {0xfe, 0x80};
    uint8_t mapped[16] = {0};

    if (c->family == AF_INET)
        return c->prefix < 8;
    memcpy(mapped, v4mapped_prefix, sizeof(v4mapped_prefix));
    if (prefix_equal(c->addr, mapped, c->prefix < 96 ? c->prefix : 96))
        return c->prefix < 96 + 8;
    if (c->prefix >= 7 && prefix_equal(c->addr, ula, 7))
        return false;
    if (c->prefix >= 10 && prefix_equal(c->addr, link_local, 10))
        return false;
    return c->prefix < 32;
}

char *
cidr_format(const struct cidr *c, char *buf, size_t cap)
{
    char text[INET6_ADDRSTRLEN];

    if (cap == 0)
        return buf;
    if ((c->family != AF_INET && c->family != AF_INET6) ||
        inet_ntop(c->family, c->addr, text, sizeof(text)) == NULL) {
        snprintf(buf, cap, "invalid");
        return buf;
    }
    snprintf(buf, cap, "%s/%u", text, c->prefix);
    return buf;
}
