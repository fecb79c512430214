/*
 * libFuzzer target for cidr_parse and addr_parse: no crash, and whatever
 * parses must format back to text that parses to the same value.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 256

static void
check(bool ok)
{
    if (!ok)
        abort();
}

static void
fuzz_cidr(const char *s)
{
    struct cidr c, c2;
    const char *why = NULL;
    char text[96];

    if (cidr_parse(s, &c, &why) != 0) {
        check(why != NULL);
        return;
    }
    check(c.family == AF_INET || c.family == AF_INET6);
    check(c.prefix <= (c.family == AF_INET ? 32u : 128u));
    cidr_format(&c, text, sizeof(text));
    check(cidr_parse(text, &c2, &why) == 0);
    check(c2.family == c.family && c2.prefix == c.prefix &&
          memcmp(c2.addr, c.addr, sizeof(c.addr)) == 0);

    /* The network address lies inside its own prefix, in both spellings. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (c.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, c.addr, 4);
        check(cidr_match(&c, (struct sockaddr *)&ss));
        struct sockaddr_in6 m;
        memset(&m, 0, sizeof(m));
        m.sin6_family = AF_INET6;
        m.sin6_addr.s6_addr[10] = 0xff;
        m.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&m.sin6_addr.s6_addr[12], c.addr, 4);
        check(cidr_match(&c, (struct sockaddr *)&m));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, c.addr, 16);
        check(cidr_match(&c, (struct sockaddr *)&ss));
    }
    check(cidr_match_any(&c, 1, (struct sockaddr *)&ss));
}

static void
fuzz_addr(const char *s, enum addr_port mode)
{
    struct sockaddr_storage ss, ss2;
    bool any = false, any2;
    const char *why = NULL;
    char text[ADDR_STRLEN];

    if (addr_parse(s, mode, &ss, &any, &why) != 0) {
        check(why != NULL);
        return;
    }
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    check(sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
    check(addr_len(sa) > 0);
    if (mode == ADDR_PORT_REQUIRED)
        check(addr_port(sa) > 0);
    if (any)
        check(sa->sa_family == AF_INET6 &&
              IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr));

    if (addr_port(sa) != 0) {
        addr_format(sa, text, sizeof(text));
        check(addr_parse(text, ADDR_PORT_REQUIRED, &ss2, &any2, &why) == 0);
    } else {
        addr_format_ip(sa, text, sizeof(text));
        check(addr_parse(text, ADDR_PORT_OPTIONAL, &ss2, &any2, &why) == 0);
    }
    check(addr_equal(sa, (const struct sockaddr *)&ss2));

    /* The bare address is a host prefix that matches it. */
    struct cidr c;
    addr_format_ip(sa, text, sizeof(text));
    check(cidr_parse(text, &c, &why) == 0);
    check(c.prefix == (sa->sa_family == AF_INET ? 32u : 128u));
    check(cidr_match(&c, sa));

    addr_unmap(&ss);
    check(cidr_match(&c, (const struct sockaddr *)&ss));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[TEXT_MAX + 1];

    if (size > TEXT_MAX)
        size = TEXT_MAX;
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    fuzz_cidr(s);
    fuzz_addr(s, ADDR_PORT_REQUIRED);
    fuzz_addr(s, ADDR_PORT_OPTIONAL);
    return 0;
}
