/*
 * util: small pure helpers shared by the parsers: numbers, durations,
 * sizes and bounded string copies. No I/O, no allocation.
 */
#ifndef MAILEDGE_UTIL_H
#define MAILEDGE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The struct of type <type> whose field <member> is at <ptr>: how a timer,
 * io or defer callback finds the object it is embedded in. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * A rate limit (log lines that could repeat per event): true, and <*last>
 * set to <now>, when none passed yet (<*last> is 0: monotonic milliseconds
 * are never 0) or at least <every_ms> went by since the last that did.
 */
static inline bool
util_due(uint64_t *last, uint64_t now, uint64_t every_ms)
{
    if (*last != 0 && now - *last < every_ms)
        return false;
    *last = now;
    return true;
}

/* A 64-bit mixing step (splitmix64's finalizer): the seeded hashes of the
 * tables keyed by client addresses. */
static inline uint64_t
util_mix(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

/*
 * Parses a decimal unsigned integer made of digits only (no sign, no
 * spaces) that is <= max. Returns 0 and stores it in <out>, or -1.
 */
int util_parse_uint(const char *s, uint64_t max, uint64_t *out);

/*
 * Parses a duration: digits followed by a unit "ms", "s", "m" or "h"
 * ("30s", "1500ms", "30m"). A bare number is refused: units are mandatory
 * so "30" is never silently seconds or milliseconds. Returns 0 and the
 * value in milliseconds in <out_ms>, or -1.
 */
int util_parse_duration(const char *s, uint64_t *out_ms);

/*
 * Parses a size: digits with an optional unit "k" or "m" (powers of 1024).
 * Returns 0 and the value in bytes in <out>, or -1.
 */
int util_parse_size(const char *s, uint64_t *out);

/*
 * Copies <src> into <dst> of capacity <cap> (> 0), always NUL-terminated.
 * Returns 0, or -1 when <src> did not fit (dst then holds a truncated copy).
 */
int util_strlcpy(char *dst, const char *src, size_t cap);

/* CLOCK_MONOTONIC in milliseconds (the loop's time, the supervisor's, the blocking commands'). */
uint64_t util_monotonic_ms(void);

/*
 * Decimal and fixed-width lower-case hex of <v> into <out>, without stdio
 * (the session log line is formatted on every session's close). <out> holds
 * at least 21 bytes (decimal) or <width> + 1 bytes (hex, 1 to 16 digits); the
 * result is NUL-terminated and its length returned.
 */
size_t util_fmt_u64(char *out, uint64_t v);
size_t util_fmt_hex(char *out, uint64_t v, unsigned width);

/* The longest cut of <s> at or before <n> (<= strlen(s)) that does not
 * split a UTF-8 character: <n>, less the bytes of a split one. */
size_t util_utf8_cut(const char *s, size_t n);

/* What a failed connect, read or write says to a person (the commands'
 * results): short lower-case words for the errors met most, else strerror. */
const char *util_errno_text(int e);

#endif
