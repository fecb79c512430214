/*
 * libFuzzer target for what `mailedge roundtrip` reads from an IMAP server:
 * rt_search_parse (untagged replies, not NUL-terminated) and
 * rt_marker_parse (a marker header value). No crash, no read past the
 * input, and the contract holds: at most <cap> UIDs, none of them 0, and a
 * parsed marker's token is valid and rebuilds to the same header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "roundtrip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 16

static void
check(int ok)
{
    if (!ok)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t uids[CAP];
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    int n = rt_search_parse(copy, size, uids, CAP);
    check(n >= -1 && n <= CAP);
    for (int i = 0; i < n; i++)
        check(uids[i] != 0);

    copy[size] = '\0';
    char token[RT_TOKEN_LEN + 1];
    if (rt_marker_parse(copy, NULL, token) == 0) {
        check(rt_token_valid(token));
        char job[RT_NAME_MAX + 1];
        const char *p = strstr(copy, "job=");
        check(p != NULL);
        p += 4;
        size_t jl = strcspn(p, ";");
        if (jl <= RT_NAME_MAX) {
            memcpy(job, p, jl);
            job[jl] = '\0';
            char again[RT_TOKEN_LEN + 1];
            check(rt_marker_parse(copy, job, again) == 0 && strcmp(again, token) == 0);
        }
    }
    free(copy);
    return 0;
}
