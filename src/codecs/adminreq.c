/* adminreq: checks of admin requests (adminreq.h). Pure: no I/O. */
#include "adminreq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

#define HOST_NAME_MAX_LEN 253

/* The 4 or 16 bytes of <sa>'s address, an IPv4-mapped IPv6 address as IPv4. */
static size_t
ip_bytes(const struct sockaddr *sa, const uint8_t **out)
{
    if (sa->sa_family == AF_INET) {
        *out = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        return 4;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        *out = a->s6_addr + 12;
        return 4;
    }
    *out = a->s6_addr;
    return 16;
}

static bool
name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.';
}

/* ":PORT" (1 to 65535, at most 5 digits), or nothing. */
static bool
port_ok(const char *p)
{
    if (*p == '\0')
        return true;
    if (*p++ != ':')
        return false;
    unsigned v = 0;
    size_t n = 0;
    for (; p[n] >= '0' && p[n] <= '9'; n++) {
        if (n == 5)
            return false;
        v = v * 10 + (unsigned)(p[n] - '0');
    }
    return n > 0 && p[n] == '\0' && v >= 1 && v <= 65535;
}

/* <name> (<len> bytes, no trailing dot) equals <want> without case, ignoring <want>'s trailing dot. */
static bool
name_eq(const char *name, size_t len, const char *want)
{
    size_t wl = strlen(want);
    if (wl > 0 && want[wl - 1] == '.')
        wl--;
    return wl == len && strncasecmp(name, want, len) == 0;
}

const char *
adminreq_check_host(const char *host, const struct sockaddr *local, const char *const *names,
                    size_t n)
{
    static const char *const wrong = "the Host header names neither this admin address nor an "
                                     "admin-host name";
    char ip[INET6_ADDRSTRLEN];
    uint8_t bin[16];
    const uint8_t *mine = NULL;
    size_t len;
    int family;

    if (host == NULL)
        return NULL;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        len = end != NULL ? (size_t)(end - host - 1) : 0;
        if (end == NULL || len == 0 || len >= sizeof(ip) || !port_ok(end + 1))
            return "bad Host header";
        memcpy(ip, host + 1, len);
        ip[len] = '\0';
        family = AF_INET6;
    } else {
        for (len = 0; name_char(host[len]); len++)
            ;
        if (len == 0 || len > HOST_NAME_MAX_LEN || !port_ok(host + len))
            return "bad Host header";
        if (host[len - 1] == '.')
            len--; /* a fully qualified name */
        if (len == 0)
            return "bad Host header";
        family = AF_INET;
        if (len < sizeof(ip)) {
            memcpy(ip, host, len);
            ip[len] = '\0';
        } else {
            ip[0] = '\0';
        }
    }
    if (inet_pton(family, ip, bin) == 1) {
        size_t need = family == AF_INET ? 4 : 16;
        if (ip_bytes(local, &mine) == need && memcmp(mine, bin, need) == 0)
            return NULL;
        /* An address among the names: compared as written (normalised by inet_ntop). */
        char canon[INET6_ADDRSTRLEN];
        if (inet_ntop(family, bin, canon, sizeof(canon)) == NULL)
            return wrong;
        for (size_t i = 0; i < n; i++)
            if (strcasecmp(names[i], canon) == 0)
                return NULL;
        return wrong;
    }
    if (family == AF_INET6)
        return "bad Host header";
    if (addr_is_loopback(local) && name_eq(host, len, "localhost"))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (name_eq(host, len, names[i]))
            return NULL;
    return wrong;
}

const char *
adminreq_check_origin(const char *origin, const char *host)
{
    if (origin == NULL)
        return NULL;
    size_t skip = strncasecmp(origin, "http://", 7) == 0    ? 7
                  : strncasecmp(origin, "https://", 8) == 0 ? 8
                                                            : 0;
    if (skip == 0 || host == NULL || strcasecmp(origin + skip, host) != 0)
        return "cross-origin requests are refused (the Origin header is not this endpoint's)";
    return NULL;
}

const char *
adminreq_check_fetch_site(const char *site)
{
    if (site == NULL || strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0)
        return NULL;
    return "cross-site requests are refused (Sec-Fetch-Site)";
}

const char *
adminreq_param(struct adminreq_params *p, const char *key, size_t klen, const char *val,
               size_t vlen)
{
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {
        {"addr", offsetof(struct adminreq_params, addr)},
        {"listener", offsetof(struct adminreq_params, listener)},
        {"duration", offsetof(struct adminreq_params, duration)},
        {"force", offsetof(struct adminreq_params, force)},
    };
    const char **slot = NULL;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (key != NULL && klen == strlen(keys[i].name) && memcmp(key, keys[i].name, klen) == 0)
            slot = (const char **)(void *)((char *)p + keys[i].off);
    }
    if (slot == NULL)
        return "unknown parameter (expected addr, listener, duration or force)";
    if (*slot != NULL)
        return "a parameter is given twice";
    if (val == NULL || vlen == 0)
        return "a parameter has no value";
    if (vlen > ADMINREQ_VALUE_MAX)
        return "a parameter value is too long";
    for (size_t i = 0; i < vlen; i++)
        if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f)
            return "a parameter value holds a NUL or another control character";
    *slot = val;
    return NULL;
}

enum adminreq_width
adminreq_ban_width(const struct cidr *c, unsigned v4, unsigned v6, bool force)
{
    if (c->prefix == 0)
        return ADMINREQ_WIDTH_ZERO;
    if (!force && c->prefix < (c->family == AF_INET ? v4 : v6))
        return ADMINREQ_WIDTH_WIDE;
    return ADMINREQ_WIDTH_OK;
}

bool
adminreq_bearer_ok(const char *auth, const char *token, size_t len)
{
    if (auth == NULL || len == 0 || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *t = auth + 7;
    while (*t == ' ')
        t++;
    size_t tl = strlen(t);
    while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
        tl--;
    /* The length of the token is not a secret; its bytes are. */
    return tl == len && CRYPTO_memcmp(t, token, len) == 0;
}
