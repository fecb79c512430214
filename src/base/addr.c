/*
 * addr: IP literal + port parsing and formatting. Pure: only inet_pton and
 * inet_ntop, never a resolver (host names are the config layer's business).
 */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define HOST_MAX 64  /* longest literal we try: an IPv6 text address is <= 45 */

static int
fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return -1;
}

/* Parses a port; 0 is refused because it is never what an operator means. */
static int
parse_port(const char *s, unsigned *port, const char **why)
{
    uint64_t v;

    if (*s == '\0')
        return fail(why, "missing port after ':'");
    if (util_parse_uint(s, 65535, &v) != 0 || v == 0)
        return fail(why, "port must be a number from 1 to 65535");
    *port = (unsigned)v;
    return 0;
}

static void
set_v6(struct sockaddr_storage *out, const struct in6_addr *a, unsigned port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = *a;
    sin6->sin6_port = htons((uint16_t)port);
}

static void
set_v4(struct sockaddr_storage *out, const struct in_addr *a, unsigned port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)out;

    sin->sin_family = AF_INET;
    sin->sin_addr = *a;
    sin->sin_port = htons((uint16_t)port);
}

/* Copies [s, s+n) into host (NUL-terminated); -1 when too long. */
static int
copy_host(char host[HOST_MAX], const char *s, size_t n)
{
    if (n >= HOST_MAX)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int
addr_parse(const char *s, enum addr_port mode, struct sockaddr_storage *out, bool *any,
           const char **why)
{
    char host[HOST_MAX];
    const char *port_s = NULL;
    unsigned port = 0;
    struct in_addr a4;
    struct in6_addr a6;

    memset(out, 0, sizeof(*out));
    if (any != NULL)
        *any = false;
    if (s == NULL || *s == '\0')
        return fail(why, "empty address");

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL)
            return fail(why, "missing ']' after IPv6 address");
        if (strchr(s + 1, '%') != NULL && strchr(s + 1, '%') < end)
            return fail(why, "IPv6 zone identifiers are not supported");
        if (copy_host(host, s + 1, (size_t)(end - s - 1)) != 0 ||
            inet_pton(AF_INET6, host, &a6) != 1)
            return fail(why, "invalid IPv6 address");
        if (end[1] == ':')
            port_s = end + 2;
        else if (end[1] != '\0')
            return fail(why, "expected ':PORT' after ']'");
        if (port_s == NULL && mode == ADDR_PORT_REQUIRED)
            return fail(why, "missing port");
        if (port_s != NULL && parse_port(port_s, &port, why) != 0)
            return -1;
        set_v6(out, &a6, port);
        return 0;
    }

    const char *colon = strchr(s, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL) {
        /* Two colons: a bare IPv6 literal, which cannot carry a port. */
        if (strchr(s, '%') != NULL)
            return fail(why, "IPv6 zone identifiers are not supported");
        if (copy_host(host, s, strlen(s)) != 0 || inet_pton(AF_INET6, host, &a6) != 1)
            return fail(why, "invalid address (IPv6 with a port is written [addr]:port)");
        if (mode == ADDR_PORT_REQUIRED)
            return fail(why, "missing port (IPv6 with a port is written [addr]:port)");
        set_v6(out, &a6, 0);
        return 0;
    }

    size_t host_len = colon != NULL ? (size_t)(colon - s) : strlen(s);
    if (colon != NULL)
        port_s = colon + 1;
    if (port_s == NULL && mode == ADDR_PORT_REQUIRED)
        return fail(why, "missing port");
    if (port_s != NULL && parse_port(port_s, &port, why) != 0)
        return -1;

    if (host_len == 0 || (host_len == 1 && s[0] == '*')) {
        set_v6(out, &in6addr_any, port);
        if (any != NULL)
            *any = true;
        return 0;
    }
    /* glibc's inet_pton already refuses leading zeros ("01.2.3.4"): no octal surprise. */
    if (copy_host(host, s, host_len) != 0 || inet_pton(AF_INET, host, &a4) != 1) {
        memset(out, 0, sizeof(*out));
        return fail(why, "not an IP address");
    }
    set_v4(out, &a4, port);
    return 0;
}

socklen_t
addr_len(const struct sockaddr *sa)
{
    switch (sa->sa_family) {
    case AF_INET:
        return sizeof(struct sockaddr_in);
    case AF_INET6:
        return sizeof(struct sockaddr_in6);
    default:
        return 0;
    }
}

unsigned
addr_port(const struct sockaddr *sa)
{
    switch (sa->sa_family) {
    case AF_INET:
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    case AF_INET6:
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    default:
        return 0;
    }
}

void
addr_set_port(struct sockaddr *sa, unsigned port)
{
    switch (sa->sa_family) {
    case AF_INET:
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
        break;
    case AF_INET6:
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
        break;
    default:
        break;
    }
}

void
addr_unmap(struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    struct sockaddr_in sin;

    if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
        return;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = sin6->sin6_port;
    memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &sin, sizeof(sin));
}

char *
addr_format_ip(const struct sockaddr *sa, char *buf, size_t cap)
{
    char tmp[INET6_ADDRSTRLEN];

    if (cap == 0)
        return buf;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, tmp, sizeof(tmp));
        snprintf(buf, cap, "%s", tmp);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, tmp, sizeof(tmp));
        if (sin6->sin6_scope_id != 0)
            snprintf(buf, cap, "%s%%%u", tmp, (unsigned)sin6->sin6_scope_id);
        else
            snprintf(buf, cap, "%s", tmp);
    } else {
        snprintf(buf, cap, "unknown");
    }
    return buf;
}

/* Appends the decimal <v> at <p>; returns the end. */
static char *
put_dec(char *p, unsigned v)
{
    return p + util_fmt_u64(p, v);
}

/* "1.2.3.4:25" by hand: the session log line formats three per session. */
static void
format_v4(const struct sockaddr_in *sin, char *out)
{
    const uint8_t *b = (const uint8_t *)&sin->sin_addr;
    char *p = out;
    for (int i = 0; i < 4; i++) {
        p = put_dec(p, b[i]);
        *p++ = i < 3 ? '.' : ':';
    }
    put_dec(p, ntohs(sin->sin_port));
}

char *
addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[ADDR_STRLEN], out[ADDR_STRLEN + 8];

    if (cap == 0)
        return buf;
    if (sa->sa_family == AF_INET) {
        format_v4((const struct sockaddr_in *)(const void *)sa, out);
    } else {
        addr_format_ip(sa, ip, sizeof(ip));
        char *p = out;
        if (sa->sa_family == AF_INET6) {
            *p++ = '[';
            size_t n = strlen(ip);
            memcpy(p, ip, n);
            p += n;
            *p++ = ']';
            *p++ = ':';
            put_dec(p, addr_port(sa));
        } else {
            memcpy(out, ip, strlen(ip) + 1);
        }
    }
    (void)util_strlcpy(buf, out, cap);
    return buf;
}

bool
addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

bool
addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

bool
addr_is_this_host(const struct sockaddr *sa)
{
    return addr_is_loopback(sa) || addr_is_unspecified(sa);
}

bool
addr_is_unspecified(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

bool
addr_wildcard_covers(const struct sockaddr *dst, const struct sockaddr *bind, bool dualstack)
{
    if (addr_port(dst) != addr_port(bind) || !addr_is_unspecified(bind))
        return false;
    return dualstack || dst->sa_family == bind->sa_family;
}

bool
addr_reaches_bind(const struct sockaddr *dst, const struct sockaddr *bind, bool dualstack)
{
    if (addr_port(dst) != addr_port(bind))
        return false;
    if (addr_equal(dst, bind))
        return true;
    /* A wildcard listens on the loopback addresses too; 0.0.0.0 and :: as a
     * destination mean this host, which a loopback bind answers. */
    if (addr_wildcard_covers(dst, bind, dualstack))
        return addr_is_this_host(dst);
    return addr_is_unspecified(dst) && addr_is_this_host(bind) &&
           (dualstack || dst->sa_family == bind->sa_family);
}

size_t
addr_interleave(const struct sockaddr_storage *in, size_t n, struct sockaddr_storage *out)
{
    return addr_interleave_first(in, n, out, AF_INET6);
}

size_t
addr_interleave_first(const struct sockaddr_storage *in, size_t n, struct sockaddr_storage *out,
                      int first)
{
    size_t i6 = 0, i4 = 0, o = 0;
    bool six = first != AF_INET;

    for (;;) {
        int want = six ? AF_INET6 : AF_INET;
        size_t *ip = six ? &i6 : &i4;
        while (*ip < n && in[*ip].ss_family != want)
            (*ip)++;
        if (*ip < n) {
            out[o++] = in[(*ip)++];
        } else {
            /* This family is used up: the rest of the other, in order. */
            size_t *jp = six ? &i4 : &i6;
            int other = six ? AF_INET : AF_INET6;
            for (; *jp < n; (*jp)++) {
                if (in[*jp].ss_family == other)
                    out[o++] = in[*jp];
            }
            return o;
        }
        six = !six;
    }
}
