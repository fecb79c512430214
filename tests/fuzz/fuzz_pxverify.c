/*
 * libFuzzer target for pxverify_classify and pxverify_greeting_done: no
 * crash, no read past the receiver's bytes, and the contract holds: a
 * verdict in range, a fix always, evidence printable and NUL-terminated.
 * The first byte picks protocol, PROXY version sent, family and how the
 * connection ended; the rest is what the receiver sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pxverify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
    if (!ok)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t len = size - 1;
    /* A private copy so ASan catches any read past the end. */
    char *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, len);
    uint8_t c = data[0];
    struct pxv_input in = {.proto = (enum pxv_proto)(c % 3),
                           .sent = (c >> 2) % 3,
                           .ipv6 = (c & 0x10) != 0,
                           .rx = buf,
                           .rx_len = len,
                           .goodbye_sent = (c & 0x20) != 0,
                           .end = (enum pxv_end)((c >> 6) & 3)};
    struct pxv_result r4, r6;
    pxverify_classify(&in, &r6);
    check(r6.verdict < PXV_VERDICT_COUNT && r6.fix != NULL);
    check(memchr(r6.evidence, '\0', sizeof(r6.evidence)) != NULL);
    for (const char *p = r6.evidence; *p != '\0'; p++)
        check(*p >= 0x20 && *p < 0x7f);
    in.ipv6 = false;
    pxverify_classify(&in, &r4);
    pxverify_pair(&r4, &r6);
    check(r6.verdict < PXV_VERDICT_COUNT && r6.fix != NULL);
    (void)pxverify_greeting_done(in.proto, buf, len);
    free(buf);
    return 0;
}
