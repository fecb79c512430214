/*
 * libFuzzer target for tlshello_parse and tlshello_host_name. Beyond "no
 * crash" (abort() otherwise):
 *  - each result keeps its contract (need, end, why, name length);
 *  - prefixes of an accepted or incomplete input are NEED_MORE, with need
 *    a true lower bound of where the hello ends;
 *  - an accepted hello re-fragmented into records of other sizes gives the
 *    same server name, or is refused by the 16 KiB bound;
 *  - the host name check is idempotent and yields lower-case LDH names.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlshello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok)
{
    if (!ok)
        abort();
}

/* Parses a copy that ends where the heap block ends, so ASan sees over-reads. */
static enum th_result
parse_exact(const uint8_t *data, size_t len, struct th_hello *h, const char **why)
{
    uint8_t *p = malloc(len ? len : 1);
    check(p != NULL);
    memcpy(p, data, len);
    enum th_result r = tlshello_parse(p, len, h, why);
    free(p);
    return r;
}

static void
check_prefixes(const uint8_t *data, size_t end, size_t limit)
{
    /* All of them is quadratic: a stride keeps a 16 KiB input cheap. */
    size_t step = end / 64 + 1;
    for (size_t k = 0; k < end; k += (k + step < end ? step : 1)) {
        struct th_hello h;
        const char *why = NULL;
        check(parse_exact(data, k, &h, &why) == TH_NEED_MORE);
        check(h.need > k && h.need <= limit && !h.has_sni);
    }
}

/* The handshake bytes of the records up to <end>. */
static size_t
handshake_bytes(const uint8_t *data, size_t end, uint8_t *out)
{
    size_t pos = 0, n = 0;
    while (pos < end) {
        size_t rec = (size_t)data[pos + 3] << 8 | data[pos + 4];
        pos += 5;
        size_t k = end - pos < rec ? end - pos : rec;
        memcpy(out + n, data + pos, k);
        n += k;
        pos += k;
    }
    return n;
}

static size_t
records(uint8_t *out, const uint8_t *msg, size_t len, size_t frag)
{
    size_t n = 0;
    for (size_t off = 0; off < len; off += frag) {
        size_t k = len - off < frag ? len - off : frag;
        out[n++] = 22;
        out[n++] = 3;
        out[n++] = 3;
        out[n++] = (uint8_t)(k >> 8);
        out[n++] = (uint8_t)k;
        memcpy(out + n, msg + off, k);
        n += k;
    }
    return n;
}

static void
check_refragment(const uint8_t *data, const struct th_hello *h)
{
    static uint8_t msg[TH_HELLO_MAX], out[6 * TH_HELLO_MAX];
    static const size_t frags[] = {1, 5, 64, 1460, 16384};

    size_t m = handshake_bytes(data, h->end, msg);
    check(m >= 4 && m == 4 + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]));
    for (size_t i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
        size_t n = records(out, msg, m, frags[i]);
        struct th_hello h2;
        const char *why = NULL;
        enum th_result r = parse_exact(out, n, &h2, &why);
        if (n > TH_HELLO_MAX) {
            check(r == TH_INVALID);
            continue;
        }
        check(r == TH_OK && h2.end == n && h2.has_sni == h->has_sni);
        check(h2.sni_len == h->sni_len && memcmp(h2.sni, h->sni, h->sni_len) == 0);
    }
}

static void
check_host_name(const uint8_t *name, size_t len)
{
    char out[TH_HOST_MAX], again[TH_HOST_MAX];
    int n = tlshello_host_name(name, len, out, sizeof(out));
    if (n < 0) {
        check(out[0] == '\0');
        return;
    }
    check(n > 0 && n <= 253 && (size_t)n == strlen(out));
    check((size_t)n == len || ((size_t)n == len - 1 && name[len - 1] == '.'));
    for (int i = 0; i < n; i++) {
        char c = out[i];
        check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
        char lower = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
        check(c == lower);
    }
    check(tlshello_host_name((const uint8_t *)out, (size_t)n, again, sizeof(again)) == n);
    check(strcmp(out, again) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct th_hello h;
    const char *why = NULL;
    enum th_result r = parse_exact(data, size, &h, &why);

    switch (r) {
    case TH_OK:
        check(why == NULL);
        check(h.end > 0 && h.end <= size && h.end <= TH_HELLO_MAX);
        check(!h.has_sni || (h.sni_len >= 1 && h.sni_len <= TH_NAME_MAX));
        check(data[0] == 22 && data[1] == 3);
        /* The bytes after the hello do not matter. */
        {
            struct th_hello h2;
            check(parse_exact(data, h.end, &h2, &why) == TH_OK && h2.end == h.end);
            check(h2.has_sni == h.has_sni && h2.sni_len == h.sni_len &&
                  memcmp(h2.sni, h.sni, h.sni_len) == 0);
        }
        check_prefixes(data, h.end, h.end);
        check_refragment(data, &h);
        if (h.has_sni)
            check_host_name(h.sni, h.sni_len);
        break;
    case TH_NEED_MORE:
        check(why == NULL && !h.has_sni);
        check(size < TH_HELLO_MAX && h.need > size && h.need <= TH_HELLO_MAX);
        check_prefixes(data, size, h.need);
        break;
    case TH_NOT_TLS:
        check(why != NULL && why[0] != '\0' && !h.has_sni);
        check(size >= 1 && (data[0] != 22 || (size >= 2 && data[1] != 3)));
        break;
    case TH_INVALID:
        check(why != NULL && why[0] != '\0' && !h.has_sni);
        check(size >= 5 && data[0] == 22 && data[1] == 3);
        break;
    default:
        abort();
    }
    /* The raw input as a name, too: a fuzzer finds the corners quickly. */
    if (size <= 300)
        check_host_name(data, size);
    return 0;
}
