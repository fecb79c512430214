/*
 * addr: socket address parsing and formatting, pure (inet_pton/ntop only).
 * "1.2.3.4:25", "[2001:db8::1]:25", ":25" (every address), with an
 * optional port when the caller allows it.
 */
#ifndef MAILEDGE_ADDR_H
#define MAILEDGE_ADDR_H

#include <stdbool.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

/* Longest text addr_format() writes: "[" v6 "%" scope "]:" port, NUL. */
#define ADDR_STRLEN 64

/* Addresses of one server: kept per resolved name, tried per connect. */
#define ADDR_PER_NAME_MAX 8

enum addr_port { ADDR_PORT_REQUIRED, ADDR_PORT_OPTIONAL };

/* An IPv4 or IPv6 address in 28 bytes instead of the 128 of a
 * sockaddr_storage: what sessions and connectors keep per address. */
union sa {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* Stores <src> in <dst>; a family other than AF_INET and AF_INET6 leaves it zeroed. */
static inline void
sa_store(union sa *dst, const struct sockaddr_storage *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->ss_family == AF_INET)
        memcpy(&dst->in, src, sizeof(dst->in));
    else if (src->ss_family == AF_INET6)
        memcpy(&dst->in6, src, sizeof(dst->in6));
}

/*
 * Parses an IP literal with a port. ":PORT" and "*:PORT" give the IPv6
 * wildcard with <*any> set true (the caller binds dual-stack). With
 * ADDR_PORT_OPTIONAL a missing port leaves port 0. Returns 0, or -1 with
 * a static reason in <*why>.
 */
int addr_parse(const char *s, enum addr_port mode, struct sockaddr_storage *out, bool *any,
               const char **why);

/* Length of the sockaddr for its family (for bind/connect). */
socklen_t addr_len(const struct sockaddr *sa);

/* Port in host order (0 for other families). */
unsigned addr_port(const struct sockaddr *sa);
void addr_set_port(struct sockaddr *sa, unsigned port);

/*
 * Rewrites an IPv4-mapped IPv6 address (::ffff:a.b.c.d) in place as
 * AF_INET, so logs and PROXY headers show the IPv4 client. Others are
 * left alone.
 */
void addr_unmap(struct sockaddr_storage *ss);

/* Formats "1.2.3.4:25" or "[::1]:25" into <buf> (>= ADDR_STRLEN); returns <buf>. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* Formats the address alone, no port, no brackets; returns <buf>. */
char *addr_format_ip(const struct sockaddr *sa, char *buf, size_t cap);

/*
 * Orders <n> addresses for Happy Eyeballs (RFC 8305 4): IPv6 first, then
 * the families alternating (v6, v4, v6, v4, ...), each family keeping its
 * own order; what is left of the longer family goes at the end. Other
 * families are dropped. Writes <out> (room for <n>, not <in>); returns the
 * count.
 */
size_t addr_interleave(const struct sockaddr_storage *in, size_t n,
                       struct sockaddr_storage *out);

/* The same with <first> (AF_INET6 or AF_INET) leading instead of IPv6: a
 * family that failed recently goes second (RFC 8305 allows remembering). */
size_t addr_interleave_first(const struct sockaddr_storage *in, size_t n,
                             struct sockaddr_storage *out, int first);

/* True when both have the same family, address and port. */
bool addr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool addr_is_loopback(const struct sockaddr *sa);

/* True for 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, 0.0.0.0 and ::: a connect to these stays on this host. */
bool addr_is_this_host(const struct sockaddr *sa);

/* True for 0.0.0.0 and ::. */
bool addr_is_unspecified(const struct sockaddr *sa);

/*
 * True when <bind> is a wildcard (0.0.0.0 or ::, both families when
 * <dualstack>) on <dst>'s port and family: it listens on every local
 * address, so <dst> reaches it if <dst> is one of this host's.
 */
bool addr_wildcard_covers(const struct sockaddr *dst, const struct sockaddr *bind, bool dualstack);

/*
 * True when a connect to <dst> surely reaches a socket listening on
 * <bind> (dual-stack when <dualstack>): the same address and port, or a
 * wildcard bind and a loopback or unspecified <dst> on its port. The
 * host's other local addresses are not known here (addr_wildcard_covers).
 */
bool addr_reaches_bind(const struct sockaddr *dst, const struct sockaddr *bind, bool dualstack);

#endif
