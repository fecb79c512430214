/*
 * libFuzzer target for adminreq: the Host, Origin and Sec-Fetch-Site
 * checks and the /bans query parameters, on bytes an admin client sends.
 * Input: header values separated by newlines (Host, Origin,
 * Sec-Fetch-Site), then "key=value&..." pairs as MHD decodes them (NULs
 * kept). No crash, and what passes holds what the contract says.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adminreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 1024

static void
check(bool ok)
{
    if (!ok)
        abort();
}

/* The next line of <*p> (up to <end>) as a C string in <out>; NULL at the end. */
static const char *
next_line(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
    if (*p >= end)
        return NULL;
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl != NULL ? nl : end) - *p);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p = nl != NULL ? nl + 1 : end;
    return out;
}

static void
fuzz_params(const uint8_t *p, size_t len)
{
    struct adminreq_params prm = {0};
    const uint8_t *end = p + len;

    while (p < end) {
        const uint8_t *amp = memchr(p, '&', (size_t)(end - p));
        const uint8_t *stop = amp != NULL ? amp : end;
        const uint8_t *eq = memchr(p, '=', (size_t)(stop - p));
        const char *key = (const char *)p;
        size_t klen = (size_t)((eq != NULL ? eq : stop) - p);
        const char *val = eq != NULL ? (const char *)eq + 1 : NULL;
        size_t vlen = eq != NULL ? (size_t)(stop - eq - 1) : 0;
        struct adminreq_params before = prm;
        if (adminreq_param(&prm, key, klen, val, vlen) == NULL) {
            /* Accepted: a value of printable bytes, within the limit, no earlier one. */
            check(val != NULL && vlen > 0 && vlen <= ADMINREQ_VALUE_MAX);
            for (size_t i = 0; i < vlen; i++)
                check((unsigned char)val[i] >= 0x20 && val[i] != 0x7f);
            check(memcmp(&before, &prm, sizeof(prm)) != 0);
        } else {
            check(memcmp(&before, &prm, sizeof(prm)) == 0);
        }
        p = amp != NULL ? amp + 1 : end;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"admin.example.org", "192.0.2.80", "2001:db8::80"};
    char host[TEXT_MAX], origin[TEXT_MAX], site[TEXT_MAX];
    const uint8_t *p = data, *end = data + size;
    struct sockaddr_in local4 = {.sin_family = AF_INET, .sin_port = htons(9100)};
    struct sockaddr_in6 local6 = {.sin6_family = AF_INET6, .sin6_port = htons(9100)};

    local4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    local6.sin6_addr = in6addr_loopback;
    const char *h = next_line(&p, end, host, sizeof(host));
    const char *o = next_line(&p, end, origin, sizeof(origin));
    const char *s = next_line(&p, end, site, sizeof(site));
    bool ok4 = adminreq_check_host(h, (const struct sockaddr *)&local4, names, 3) == NULL;
    bool ok6 = adminreq_check_host(h, (const struct sockaddr *)&local6, names, 3) == NULL;
    if (h != NULL && (ok4 || ok6)) {
        /* An accepted Host is a name, an address and at most a port: no space, slash, @. */
        check(strpbrk(h, " /@?#\\") == NULL && h[0] != '\0');
        /* ... and its own origin passes the Origin check. */
        char own[TEXT_MAX + 16];
        memcpy(own, "http://", 7);
        memcpy(own + 7, h, strlen(h) + 1);
        check(adminreq_check_origin(own, h) == NULL);
    }
    (void)adminreq_check_origin(o, h);
    (void)adminreq_check_fetch_site(s);
    if (p < end)
        fuzz_params(p, (size_t)(end - p));
    return 0;
}
