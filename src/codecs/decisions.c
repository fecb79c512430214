/*
 * decisions: the LAPI decision stream with json-c. The tokener keeps its
 * state between chunks; strict mode (no comments, no single quotes, no
 * trailing commas) and UTF-8 validation on; json-c still takes
 * single-quoted keys and NaN, harmless here. A NUL byte anywhere is
 * refused here, because json-c reads one as the end of its input.
 */
#include "decisions.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Root object, the two arrays, a decision and its fields, with room for
 * nested values a later LAPI may add to a decision. */
#define DEPTH 16

enum state { ST_PARSING, ST_DONE, ST_ERROR };

struct decisions {
    json_tokener *tok;
    json_object *root;
    json_object *list[2]; /* "new", "deleted"; borrowed from root; NULL: null */
    size_t max_body, total;
    enum state st;
    char err[160];
};

/* The reason is <what> followed by <detail>, and where. */
static enum decisions_rc
fail(struct decisions *d, const char *what, const char *detail, size_t at)
{
    d->st = ST_ERROR;
    snprintf(d->err, sizeof(d->err), "%s%s (byte %zu)", what, detail, at);
    return DECISIONS_ERROR;
}

struct decisions *
decisions_new(size_t max_body)
{
    struct decisions *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    if ((d->tok = json_tokener_new_ex(DEPTH)) == NULL) {
        free(d);
        return NULL;
    }
    json_tokener_set_flags(d->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    d->max_body = max_body;
    return d;
}

void
decisions_free(struct decisions *d)
{
    if (d == NULL)
        return;
    json_tokener_free(d->tok);
    json_object_put(d->root);
    free(d);
}

static bool
all_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    }
    return true;
}

/* The shape of a complete answer: an object with "new" and "deleted",
 * each an array or null. */
static enum decisions_rc
check_shape(struct decisions *d)
{
    static const char *const keys[2] = { "new", "deleted" };

    if (!json_object_is_type(d->root, json_type_object))
        return fail(d, "answer is not a JSON object", "", d->total);
    for (int k = 0; k < 2; k++) {
        json_object *v;
        if (!json_object_object_get_ex(d->root, keys[k], &v))
            return fail(d, "answer without ", keys[k], d->total);
        if (v != NULL && !json_object_is_type(v, json_type_array))
            return fail(d, "neither an array nor null: ", keys[k], d->total);
        d->list[k] = v;
    }
    d->st = ST_DONE;
    return DECISIONS_DONE;
}

enum decisions_rc
decisions_feed(struct decisions *d, const char *buf, size_t len)
{
    if (d->st == ST_ERROR)
        return DECISIONS_ERROR;
    size_t at = d->total;
    if (len > d->max_body - d->total) {
        d->total = d->max_body;
        char cap[32];
        snprintf(cap, sizeof(cap), "%zu", d->max_body);
        return fail(d, "answer longer than the limit in bytes: ", cap, at);
    }
    d->total += len;
    if (len == 0)
        return d->st == ST_DONE ? DECISIONS_DONE : DECISIONS_MORE;
    const char *nul = memchr(buf, '\0', len);
    if (nul != NULL)
        return fail(d, "NUL byte in answer", "", at + (size_t)(nul - buf));
    if (d->st == ST_DONE) {
        if (!all_space(buf, len))
            return fail(d, "data after the answer", "", at);
        return DECISIONS_DONE;
    }
    if (len > INT_MAX)
        return fail(d, "chunk too large", "", at);

    json_object *o = json_tokener_parse_ex(d->tok, buf, (int)len);
    enum json_tokener_error e = json_tokener_get_error(d->tok);
    if (o == NULL) {
        if (e == json_tokener_continue)
            return DECISIONS_MORE;
        return fail(d, "invalid JSON: ", json_tokener_error_desc(e),
                    at + json_tokener_get_parse_end(d->tok));
    }
    d->root = o;
    size_t end = json_tokener_get_parse_end(d->tok);
    if (end < len && !all_space(buf + end, len - end))
        return fail(d, "data after the answer", "", at + end);
    return check_shape(d);
}

enum decisions_rc
decisions_end(struct decisions *d)
{
    if (d->st == ST_DONE)
        return DECISIONS_DONE;
    if (d->st == ST_PARSING)
        return fail(d, "truncated answer", "", d->total);
    return DECISIONS_ERROR;
}

const char *
decisions_error(const struct decisions *d)
{
    return d->st == ST_ERROR ? d->err : "";
}

size_t
decisions_count(const struct decisions *d, bool deleted)
{
    if (d->st != ST_DONE || d->list[deleted] == NULL)
        return 0;
    return json_object_array_length(d->list[deleted]);
}

const char *
decision_type_name(enum decision_type t)
{
    switch (t) {
    case DECISION_BAN:
        return "ban";
    case DECISION_CAPTCHA:
        return "captcha";
    default:
        return "other";
    }
}

/* ---- Go durations ---- */

static const struct {
    const char *name;
    uint64_t ns;
} units[] = {
    { "ns", 1 },
    { "us", 1000 },
    { "\xc2\xb5s", 1000 }, /* U+00B5 micro sign */
    { "\xce\xbcs", 1000 }, /* U+03BC Greek small letter mu */
    { "ms", 1000000 },
    { "s", 1000000000ull },
    { "m", 60ull * 1000000000ull },
    { "h", 3600ull * 1000000000ull },
};

/* As Go's time.ParseDuration: [-+]? then one or more of a decimal number
 * (fraction allowed) and a unit; "0" alone needs no unit. */
int
decisions_duration(const char *s, int64_t *ms)
{
    bool neg = false;
    uint64_t total = 0;

    if (s == NULL)
        return -1;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    if (*s == '\0')
        return -1;
    while (*s != '\0') {
        uint64_t whole = 0, frac = 0, scale = 1;
        bool pre = false, post = false;
        for (; *s >= '0' && *s <= '9'; s++, pre = true) {
            if (whole > (UINT64_MAX - 9) / 10)
                return -1;
            whole = whole * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.') {
            for (s++; *s >= '0' && *s <= '9'; s++, post = true) {
                if (scale <= UINT64_MAX / 100) { /* further digits do not count */
                    frac = frac * 10 + (uint64_t)(*s - '0');
                    scale *= 10;
                }
            }
        }
        if (!pre && !post)
            return -1;
        size_t u = 0, ul = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].name);
            if (strncmp(s, units[i].name, l) == 0 && l > ul) {
                u = i;
                ul = l;
            }
        }
        if (ul == 0)
            return -1;
        s += ul;
        uint64_t unit = units[u].ns;
        if (whole > (uint64_t)INT64_MAX / unit)
            return -1;
        uint64_t v = whole * unit;
        if (frac > 0)
            v += (uint64_t)((double)frac * ((double)unit / (double)scale));
        if (v > (uint64_t)INT64_MAX || total > (uint64_t)INT64_MAX - v)
            return -1;
        total += v;
    }
    int64_t msv = (int64_t)(total / 1000000);
    *ms = neg ? -msv : msv;
    return 0;
}

/* ---- one decision ---- */

static const char *
str_field(json_object *o, const char *key, bool required, const char **why)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
        if (required)
            *why = "a field is missing";
        return required ? NULL : "";
    }
    if (!json_object_is_type(v, json_type_string)) {
        *why = "a field is not a string";
        return NULL;
    }
    const char *s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v)) {
        *why = "a field holds a NUL character"; /* "\u0000" */
        return NULL;
    }
    return s;
}

/* "::ffff:a.b.c.d/p" with p >= 96 -> "a.b.c.d/(p - 96)". */
static void
unmap(struct cidr *c)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (c->family == AF_INET6 && c->prefix >= 96 && memcmp(c->addr, mapped, 12) == 0) {
        memmove(c->addr, c->addr + 12, 4);
        memset(c->addr + 4, 0, 12);
        c->family = AF_INET;
        c->prefix -= 96;
    }
}

static int
parse_net(const char *scope, const char *value, struct cidr *net, const char **why)
{
    if (strcasecmp(scope, "ip") == 0) {
        if (cidr_parse(value, net, why) != 0)
            return -1;
        if (net->prefix != (net->family == AF_INET ? 32u : 128u)) {
            *why = "an Ip decision's value is not one address";
            return -1;
        }
    } else if (strcasecmp(scope, "range") == 0) {
        if (cidr_parse(value, net, why) != 0)
            return -1;
    } else {
        *why = "scope is neither Ip nor Range";
        return -1;
    }
    unmap(net);
    return 0;
}

int
decisions_get(const struct decisions *d, bool deleted, size_t i, struct decision *out,
              const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (i >= decisions_count(d, deleted)) {
        *why = "no such decision";
        return -1;
    }
    json_object *o = json_object_array_get_idx(d->list[deleted], i);
    if (!json_object_is_type(o, json_type_object)) {
        *why = "decision is not an object";
        return -1;
    }
    const char *value = str_field(o, "value", true, why);
    const char *scope = value ? str_field(o, "scope", true, why) : NULL;
    const char *type = scope ? str_field(o, "type", true, why) : NULL;
    const char *duration = type ? str_field(o, "duration", true, why) : NULL;
    const char *origin = duration ? str_field(o, "origin", false, why) : NULL;
    const char *scenario = origin ? str_field(o, "scenario", false, why) : NULL;
    if (scenario == NULL)
        return -1;
    if (parse_net(scope, value, &out->net, why) != 0)
        return -1;
    if (decisions_duration(duration, &out->duration_ms) != 0) {
        *why = "duration is not a Go duration";
        return -1;
    }
    if (strcasecmp(type, "ban") == 0)
        out->type = DECISION_BAN;
    else if (strcasecmp(type, "captcha") == 0)
        out->type = DECISION_CAPTCHA;
    else
        out->type = DECISION_OTHER;

    json_object *id;
    if (json_object_object_get_ex(o, "id", &id) && id != NULL) {
        if (!json_object_is_type(id, json_type_int) || json_object_get_int64(id) < 0) {
            *why = "id is not a positive integer";
            return -1;
        }
        out->id = json_object_get_uint64(id);
    }
    util_strlcpy(out->origin, origin, sizeof(out->origin));
    util_strlcpy(out->scenario, scenario, sizeof(out->scenario));
    return 0;
}
