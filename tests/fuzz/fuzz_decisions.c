/*
 * libFuzzer target for decisions (the LAPI decision stream) and the
 * banset it feeds. The first byte picks a chunk size; the rest is the
 * body. Beyond "no crash" (abort() otherwise):
 *  - the outcome does not depend on the chunking: fed whole and fed in
 *    chunks, the same result and the same counts;
 *  - an error has a reason and no decisions; DONE has no reason;
 *  - every decision read is a valid prefix with NUL-terminated strings, or
 *    is refused with a reason;
 *  - each decision added to a banset is found again by its network
 *    address, as that prefix or a longer one, and deleted by it;
 *  - against json-c alone building the whole tree (the reference): an
 *    answer we accept is one json-c accepts, with lists of the same
 *    lengths, objects where we read decisions and ids that match; a plain
 *    ASCII answer json-c accepts (no quote ' and no backslash), with the
 *    right shape, we accept too;
 *  - the input as a Go duration: parsed or refused, never both.
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "banset.h"
#include "cidr.h"
#include "decisions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 65536
#define MAX_DECISIONS 64

static void
check(bool ok)
{
    if (!ok)
        abort();
}

/* Feeds <len> bytes in chunks of <chunk>, each in its own heap block so
 * that ASan sees an over-read. */
static enum decisions_rc
feed(struct decisions *d, const uint8_t *data, size_t len, size_t chunk)
{
    enum decisions_rc rc = DECISIONS_MORE;
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        char *p = malloc(n);
        check(p != NULL);
        memcpy(p, data + at, n);
        rc = decisions_feed(d, p, n);
        free(p);
        if (rc == DECISIONS_ERROR)
            return rc;
    }
    return decisions_end(d);
}

static void
to_sockaddr(const struct cidr *c, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (c->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, c->addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, c->addr, 16);
    }
}

static void
check_decisions(const struct decisions *d, struct banset *set)
{
    for (int del = 0; del < 2; del++) {
        size_t n = decisions_count(d, del);
        for (size_t i = 0; i < n && i < MAX_DECISIONS; i++) {
            struct decision x;
            const char *why = NULL;
            if (decisions_get(d, del, i, &x, &why) != 0) {
                check(why != NULL);
                continue;
            }
            check(x.net.family == AF_INET || x.net.family == AF_INET6);
            check(x.net.prefix <= (x.net.family == AF_INET ? 32u : 128u));
            check(memchr(x.origin, '\0', sizeof(x.origin)) != NULL);
            check(memchr(x.scenario, '\0', sizeof(x.scenario)) != NULL);
            check(x.type == DECISION_BAN || x.type == DECISION_CAPTCHA ||
                  x.type == DECISION_OTHER);

            int rc = banset_add(set, &x.net, UINT64_MAX, x.origin, x.scenario);
            check(rc == 0 || rc == 1);
            struct sockaddr_storage ss;
            to_sockaddr(&x.net, &ss);
            const struct banset_entry *e = banset_lookup(set, (struct sockaddr *)&ss, 0);
            check(e != NULL && e->net.family == x.net.family && e->net.prefix >= x.net.prefix);
            check(cidr_match(&x.net, (struct sockaddr *)&ss));
            if (e->net.prefix == x.net.prefix)
                check(strcmp(e->origin, x.origin) == 0 && strcmp(e->scenario, x.scenario) == 0);
        }
    }
    /* Everything added goes again by its own prefix. */
    for (int del = 0; del < 2; del++) {
        size_t n = decisions_count(d, del);
        for (size_t i = 0; i < n && i < MAX_DECISIONS; i++) {
            struct decision x;
            if (decisions_get(d, del, i, &x, NULL) == 0)
                banset_del(set, &x.net);
        }
    }
    struct banset_stats st;
    banset_stats(set, &st);
    check(st.ips == 0 && st.ranges == 0);
}

/* json-c alone on the whole input: the root object, or NULL. */
static json_object *
reference(const uint8_t *data, size_t size)
{
    if (size == 0 || size > MAX_BODY || memchr(data, '\0', size) != NULL)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(16);
    check(tok != NULL);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    if (o != NULL) {
        for (size_t i = json_tokener_get_parse_end(tok); i < size; i++) {
            if (data[i] != ' ' && data[i] != '\n' && data[i] != '\r' && data[i] != '\t') {
                json_object_put(o);
                o = NULL;
                break;
            }
        }
    }
    json_tokener_free(tok);
    return o;
}

static bool
plain_ascii(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] < 0x20 && data[i] != '\n' && data[i] != '\r' && data[i] != '\t')
            return false;
        if (data[i] >= 0x7f || data[i] == '\'' || data[i] == '\\')
            return false;
    }
    return true;
}

static void
compare(const struct decisions *d, enum decisions_rc rc, const uint8_t *data, size_t size)
{
    static const char *const keys[2] = { "new", "deleted" };
    json_object *ref = reference(data, size);
    json_object *lists[2] = { NULL, NULL };
    bool shape = ref != NULL && json_object_is_type(ref, json_type_object);
    for (int k = 0; k < 2 && shape; k++) {
        shape = json_object_object_get_ex(ref, keys[k], &lists[k]) &&
                (lists[k] == NULL || json_object_is_type(lists[k], json_type_array));
    }
    if (rc == DECISIONS_DONE) {
        check(shape);
        for (int k = 0; k < 2; k++) {
            size_t n = lists[k] ? json_object_array_length(lists[k]) : 0;
            check(decisions_count(d, k) == n);
            for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(lists[k], i);
                struct decision x;
                const char *why = NULL;
                int r = decisions_get(d, k, i, &x, &why);
                bool obj = json_object_is_type(o, json_type_object);
                check(obj || (r == -1 && strcmp(why, "decision is not an object") == 0));
                json_object *id;
                if (r == 0 && json_object_object_get_ex(o, "id", &id) && id != NULL)
                    check(x.id == json_object_get_uint64(id));
            }
        }
    } else if (shape && plain_ascii(data, size)) {
        check(false);
    }
    json_object_put(ref);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++;
    size--;

    struct decisions *whole = decisions_new(MAX_BODY);
    struct decisions *parts = decisions_new(MAX_BODY);
    struct banset *set = banset_new(2 * MAX_DECISIONS, 42);
    check(whole != NULL && parts != NULL && set != NULL);
    enum decisions_rc a = feed(whole, data, size, size ? size : 1);
    enum decisions_rc b = feed(parts, data, size, chunk);
    check(a == b && a != DECISIONS_MORE);
    for (int del = 0; del < 2; del++)
        check(decisions_count(whole, del) == decisions_count(parts, del));
    if (a == DECISIONS_ERROR) {
        check(decisions_error(whole)[0] != '\0' && decisions_error(parts)[0] != '\0');
        check(decisions_count(whole, false) == 0 && decisions_count(whole, true) == 0);
    } else {
        check(decisions_error(whole)[0] == '\0');
        check_decisions(parts, set);
    }
    compare(whole, a, data, size);
    decisions_free(whole);
    decisions_free(parts);
    banset_free(set);

    char s[64];
    size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    int64_t ms = 7;
    int rc = decisions_duration(s, &ms);
    check(rc == 0 || (rc == -1 && ms == 7));
    return 0;
}
