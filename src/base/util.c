/*
 * util: number, duration and size parsing, bounded string copy, errno words, the
 * monotonic clock of the blocking commands.
 * Strict on purpose: config values are digits and a unit, nothing else
 * (no sign, no spaces, no hex), and every overflow is an error.
 */
#include "util.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* Parses the digits in [s, s+n); -1 if empty, not all digits, or > max. */
static int
parse_digits(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Length of the leading run of decimal digits. */
static size_t
digits_len(const char *s)
{
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

int
util_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL)
        return -1;
    return parse_digits(s, strlen(s), max, out);
}

int
util_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {
        { "ms", 1 },
        { "s", 1000 },
        { "m", (uint64_t)60 * 1000 },
        { "h", (uint64_t)60 * 60 * 1000 },
    };
    uint64_t v;

    if (s == NULL)
        return -1;
    size_t n = digits_len(s);
    if (parse_digits(s, n, UINT64_MAX, &v) != 0)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (strcmp(s + n, units[i].name) != 0)
            continue;
        if (v > UINT64_MAX / units[i].ms)
            return -1;
        *out_ms = v * units[i].ms;
        return 0;
    }
    return -1;
}

int
util_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mult;

    if (s == NULL)
        return -1;
    size_t n = digits_len(s);
    if (parse_digits(s, n, UINT64_MAX, &v) != 0)
        return -1;
    const char *unit = s + n;
    if (unit[0] == '\0')
        mult = 1;
    else if ((unit[0] == 'k' || unit[0] == 'K') && unit[1] == '\0')
        mult = 1024;
    else if ((unit[0] == 'm' || unit[0] == 'M') && unit[1] == '\0')
        mult = (uint64_t)1024 * 1024;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

size_t
util_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t
util_fmt_hex(char *out, uint64_t v, unsigned width)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = width; i > 0; i--) {
        out[i - 1] = digits[v & 0xf];
        v >>= 4;
    }
    out[width] = '\0';
    return width;
}

int
util_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);

    if (cap == 0)
        return -1;
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

uint64_t
util_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t
util_utf8_cut(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

const char *
util_errno_text(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return "connection refused";
    case ETIMEDOUT:
        return "timed out";
    case ECONNRESET:
        return "connection reset";
    case EHOSTUNREACH:
        return "host unreachable";
    case ENETUNREACH:
        return "network unreachable";
    case EADDRNOTAVAIL:
        return "address not available";
    default:
        return strerror(e);
    }
}
