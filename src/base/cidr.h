/*
 * cidr: IPv4/IPv6 network prefixes ("10.0.0.0/8", "fd7a::/48", or a bare
 * address meaning a single host) and matching socket addresses against
 * them. Pure: no I/O. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * matches IPv4 prefixes, as the client it stands for.
 */
#ifndef MAILEDGE_CIDR_H
#define MAILEDGE_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    int family;          /* AF_INET or AF_INET6 */
    uint8_t addr[16];    /* network byte order; 4 bytes used for AF_INET */
    unsigned prefix;     /* 0..32 or 0..128 */
};

/*
 * Parses <s>. Host bits beyond the prefix must be zero ("10.0.0.1/8" is
 * refused: it is almost always a typo). Returns 0, or -1 with a short
 * reason in <*why> (a static string).
 */
int cidr_parse(const char *s, struct cidr *out, const char **why);

/* True when <sa> (AF_INET or AF_INET6) lies inside <c>. */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* True when <sa> lies inside any of the <n> prefixes of <list>. */
bool cidr_match_any(const struct cidr *list, size_t n, const struct sockaddr *sa);

/*
 * True when <c> is too wide to trust as a source of PROXY headers (whoever
 * is inside can claim any client address): an IPv4 prefix shorter than /8;
 * an IPv6 prefix that covers all of ::ffff:0:0/96 (it trusts every IPv4
 * peer) or, inside it, one shorter than /104 (a /8 of IPv4); any other IPv6
 * prefix shorter than /32 (an ISP's allocation: as many /48 sites as a /8
 * has /24s) unless it lies inside fc00::/7 (unique local) or fe80::/10
 * (link-local), which never reach the Internet. docs/config.md has the rule.
 */
bool cidr_is_wide(const struct cidr *c);

/* Writes "addr/prefix" into <buf>; returns <buf>. */
char *cidr_format(const struct cidr *c, char *buf, size_t cap);

#endif
