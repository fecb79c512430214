/*
 * libFuzzer target for proxyproto_decode/encode. Beyond "no crash": the
 * result must not depend on the accept mode except as documented, every
 * prefix of an accepted header must be PP_NEED_MORE, and an accepted header
 * must survive encode-then-decode with the same addresses (abort() if not).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok)
{
    if (!ok)
        abort();
}

static bool
same_endpoint(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    struct sockaddr_storage x = *a, y = *b;

    addr_unmap(&x);
    addr_unmap(&y);
    return addr_equal((const struct sockaddr *)&x, (const struct sockaddr *)&y);
}

/* Every proper prefix of an accepted header is "need more", read in place at the end of a heap block. */
static void
check_prefixes(const uint8_t *data, size_t consumed, enum pp_accept accept)
{
    uint8_t *block = malloc(consumed);
    check(block != NULL);
    for (size_t k = 0; k < consumed; k++) {
        struct pp_header h;
        size_t c = 1;
        const char *why = NULL;
        uint8_t *p = block + consumed - k;
        memcpy(p, data, k);
        check(proxyproto_decode(p, k, accept, &h, &c, &why) == PP_NEED_MORE);
        check(c == 0);
    }
    free(block);
}

static void
check_reencode(const uint8_t *data, const struct pp_header *h, size_t consumed)
{
    char authority[PP_HEADER_MAX + 1];
    const char *auth = NULL;
    uint8_t out[PP_HEADER_MAX];
    struct pp_header h2;
    size_t c2;
    const char *why = NULL;

    if (h->version == PP_V2 && h->authority != NULL && h->authority_len > 0 &&
        memchr(h->authority, '\0', h->authority_len) == NULL) {
        memcpy(authority, h->authority, h->authority_len);
        authority[h->authority_len] = '\0';
        auth = authority;
    }
    size_t n = proxyproto_encode(h->version, (const struct sockaddr *)&h->src,
                                 (const struct sockaddr *)&h->dst, auth, out, sizeof(out));
    check(n > 0);
    check(proxyproto_decode(out, n, PP_ACCEPT_ANY, &h2, &c2, &why) == PP_OK);
    check(c2 == n);
    check(!h2.local && h2.version == h->version);
    check(same_endpoint(&h->src, &h2.src));
    check(same_endpoint(&h->dst, &h2.dst));
    if (auth != NULL)
        check(h2.authority_len == h->authority_len &&
              memcmp(h2.authority, h->authority, h->authority_len) == 0);
    /* A TCP4 line has exactly one spelling (spec 2.1: no leading zeros). */
    if (h->version == PP_V1 && h->src.ss_family == AF_INET)
        check(n == consumed && memcmp(out, data, n) == 0);
}

static enum pp_result
run(const uint8_t *data, size_t size, enum pp_accept accept)
{
    struct pp_header h;
    size_t consumed = 12345;
    const char *why = NULL;
    enum pp_result r = proxyproto_decode(data, size, accept, &h, &consumed, &why);

    switch (r) {
    case PP_OK:
        check(consumed > 0 && consumed <= size);
        if (h.version == PP_V1) {
            check(consumed <= PP_V1_MAX);
            check(data[consumed - 2] == '\r' && data[consumed - 1] == '\n');
        } else {
            check(h.version == PP_V2 && consumed >= PP_V2_HDR_LEN);
            check(consumed == PP_V2_HDR_LEN + ((size_t)data[14] << 8 | data[15]));
            check(consumed <= PP_HEADER_MAX);
        }
        if (h.authority != NULL)
            check(h.authority >= data && h.authority + h.authority_len <= data + consumed);
        if (!h.local) {
            check(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
            check(h.src.ss_family == h.dst.ss_family);
            check_reencode(data, &h, consumed);
        }
        check_prefixes(data, consumed, accept);
        break;
    case PP_INVALID:
        check(why != NULL && why[0] != '\0');
        check(consumed == 0);
        break;
    case PP_NEED_MORE:
        check(size < PP_HEADER_MAX);
        check(consumed == 0);
        break;
    case PP_NOT_PROXY:
        check(consumed == 0);
        break;
    default:
        abort();
    }
    return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum pp_result v1 = run(data, size, PP_ACCEPT_V1);
    enum pp_result v2 = run(data, size, PP_ACCEPT_V2);
    enum pp_result any = run(data, size, PP_ACCEPT_ANY);

    /* The first byte decides the version; accept only filters. */
    if (size == 0)
        check(v1 == PP_NEED_MORE && v2 == PP_NEED_MORE && any == PP_NEED_MORE);
    else if (data[0] == 'P')
        check(v2 == PP_NOT_PROXY && any == v1);
    else if (data[0] == 0x0d)
        check(v1 == PP_NOT_PROXY && any == v2);
    else
        check(v1 == PP_NOT_PROXY && v2 == PP_NOT_PROXY && any == PP_NOT_PROXY);
    return 0;
}
