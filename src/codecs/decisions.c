/*
 * decisions: the LAPI decision stream with json-c, fed as it arrives.
 *
 * A tree of 100,000 json-c objects costs about 1.5 KB a decision, so the
 * decisions are not left in one tree. A small scanner follows the
 * structure of the bytes (strings, brackets, the keys of the top object)
 * and routes each object inside the "new" and "deleted" arrays to a
 * tokener of its own; once complete, that object becomes a struct
 * decision (about 220 bytes) and is freed, and the main tokener receives
 * "null " in its place (json-c keeps a null as a NULL pointer: no object
 * per decision to allocate, nor to free in one call at the end). json-c parses and validates both streams; the
 * scanner only cuts them, and the two must agree at the end (as many
 * placeholders as decisions). Keys of the top object with an escape in
 * them are refused, so that the scanner and json-c read the same keys.
 *
 * Strict mode (no comments, no single-quoted values, no trailing commas);
 * json-c still takes single-quoted keys and NaN, harmless here. Two checks
 * are ours, on the raw bytes: a NUL byte is refused (json-c reads one as
 * the end of its input), and UTF-8 is validated here across chunks,
 * because json-c 0.16's own validation refuses a character split between
 * two chunks.
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

/* What the scanner is in, inside an array it routes. */
enum elem { EL_NONE, EL_OBJECT, EL_OTHER };

struct rec {
    struct decision d;
    const char *why; /* NULL: usable */
};

/* Records in blocks, so that growing never copies (a copy of megabytes
 * would stall one feed call). */
#define BLOCK 1024

struct list {
    struct rec **blk;
    size_t n, nblk, blkcap;
};

#define KEY_MAX 8

struct decisions {
    json_tokener *tok;  /* the answer, with placeholders */
    json_tokener *etok; /* the decision being routed */
    json_object *root;
    struct list list[2]; /* "new", "deleted" */
    size_t max_body, total;
    uint8_t u8_need;      /* continuation bytes still due */
    uint8_t u8_lo, u8_hi; /* the range of the next one */
    enum state st;
    /* the scanner */
    size_t depth;         /* containers open */
    char type[3];         /* '{' or '[': the containers at depth 1 and 2 */
    bool in_str, esc;
    bool key_next;        /* the next string at depth 1 is a key */
    bool in_key;
    char key[KEY_MAX + 1];
    size_t keylen;
    int value_of;         /* the list whose value is at depth 1 now; -1 none */
    int routing;          /* the list of the array at depth 2; -1 none */
    enum elem el;
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
    d->tok = json_tokener_new_ex(DEPTH);
    d->etok = json_tokener_new_ex(DEPTH);
    if (d->tok == NULL || d->etok == NULL) {
        decisions_free(d);
        return NULL;
    }
    json_tokener_set_flags(d->tok, JSON_TOKENER_STRICT);
    json_tokener_set_flags(d->etok, JSON_TOKENER_STRICT);
    d->max_body = max_body;
    d->value_of = d->routing = -1;
    return d;
}

void
decisions_free(struct decisions *d)
{
    if (d == NULL)
        return;
    if (d->tok != NULL)
        json_tokener_free(d->tok);
    if (d->etok != NULL)
        json_tokener_free(d->etok);
    json_object_put(d->root);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < d->list[k].nblk; i++)
            free(d->list[k].blk[i]);
        free(d->list[k].blk);
    }
    free(d);
}

bool
decisions_free_some(struct decisions *d, size_t budget)
{
    if (d == NULL)
        return true;
    d->st = ST_ERROR; /* nothing to read any more: decisions_count() is 0 */
    util_strlcpy(d->err, "answer being freed", sizeof(d->err));
    for (int k = 0; k < 2; k++) {
        struct list *l = &d->list[k];
        for (; l->nblk > 0 && budget > 0; budget--)
            free(l->blk[--l->nblk]);
        if (l->nblk > 0)
            return false;
        l->n = 0;
    }
    /* The placeholders in the tree: nulls, still one free call each. */
    for (int k = 0; k < 2 && d->root != NULL; k++) {
        json_object *v;
        if (!json_object_object_get_ex(d->root, k ? "deleted" : "new", &v) ||
            !json_object_is_type(v, json_type_array))
            continue;
        for (size_t len = json_object_array_length(v); len > 0 && budget > 0; budget--) {
            size_t cut = len < BLOCK ? len : BLOCK;
            json_object_array_del_idx(v, len - cut, cut);
            len -= cut;
        }
        if (json_object_array_length(v) > 0)
            return false;
    }
    decisions_free(d);
    return true;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
all_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_space(p[i]))
            return false;
    }
    return true;
}

/* Well-formed UTF-8 (Unicode table 3-7: no overlong forms, no
 * surrogates, nothing above U+10FFFF), carried across chunks. The offset
 * of the first bad byte, or <n>. */
static size_t
utf8_check(struct decisions *d, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (d->u8_need > 0) {
            if (c < d->u8_lo || c > d->u8_hi)
                return i;
            d->u8_need--;
            d->u8_lo = 0x80;
            d->u8_hi = 0xbf;
            continue;
        }
        if (c < 0x80)
            continue;
        d->u8_lo = 0x80;
        d->u8_hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            d->u8_need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            d->u8_need = 2;
            if (c == 0xe0)
                d->u8_lo = 0xa0;
            else if (c == 0xed)
                d->u8_hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            d->u8_need = 3;
            if (c == 0xf0)
                d->u8_lo = 0x90;
            else if (c == 0xf4)
                d->u8_hi = 0x8f;
        } else {
            return i;
        }
    }
    return n;
}

/* The shape of a complete answer: an object with "new" and "deleted",
 * each an array or null; and each array as long as what was routed. */
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
        size_t n = v != NULL ? json_object_array_length(v) : 0;
        if (n != d->list[k].n)
            return fail(d, "invalid JSON: elements not separated in ", keys[k], d->total);
    }
    d->st = ST_DONE;
    return DECISIONS_DONE;
}

static void convert(json_object *o, struct rec *r);

static int
push(struct decisions *d, int k, json_object *o)
{
    struct list *l = &d->list[k];

    if (l->n == l->nblk * BLOCK) {
        if (l->nblk == l->blkcap) {
            size_t cap = l->blkcap ? l->blkcap * 2 : 16;
            struct rec **b = realloc(l->blk, cap * sizeof(struct rec *));
            if (b == NULL)
                return -1;
            l->blk = b;
            l->blkcap = cap;
        }
        if ((l->blk[l->nblk] = malloc(BLOCK * sizeof(struct rec))) == NULL)
            return -1;
        l->nblk++;
    }
    struct rec *r = &l->blk[l->n / BLOCK][l->n % BLOCK];
    l->n++;
    if (o != NULL) {
        convert(o, r);
    } else {
        memset(r, 0, sizeof(*r));
        r->why = "decision is not an object";
    }
    return 0;
}

/* Bytes for the main tokener: the answer minus the routed decisions. */
static enum decisions_rc
to_main(struct decisions *d, const char *p, size_t n, size_t at)
{
    if (n == 0 || d->st == ST_ERROR)
        return d->st == ST_ERROR ? DECISIONS_ERROR : DECISIONS_MORE;
    if (d->st == ST_DONE) {
        if (!all_space(p, n))
            return fail(d, "data after the answer", "", at);
        return DECISIONS_DONE;
    }
    json_object *o = json_tokener_parse_ex(d->tok, p, (int)n);
    if (o == NULL) {
        enum json_tokener_error e = json_tokener_get_error(d->tok);
        if (e == json_tokener_continue)
            return DECISIONS_MORE;
        return fail(d, "invalid JSON: ", json_tokener_error_desc(e),
                    at + json_tokener_get_parse_end(d->tok));
    }
    d->root = o;
    size_t end = json_tokener_get_parse_end(d->tok);
    if (end < n && !all_space(p + end, n - end))
        return fail(d, "data after the answer", "", at + end);
    return check_shape(d);
}

/* Bytes of a routed decision; <last>: its closing brace is the last. */
static enum decisions_rc
to_elem(struct decisions *d, const char *p, size_t n, size_t at, bool last)
{
    if (n == 0)
        return DECISIONS_MORE;
    json_object *o = json_tokener_parse_ex(d->etok, p, (int)n);
    size_t end = json_tokener_get_parse_end(d->etok);
    if (o == NULL) {
        enum json_tokener_error e = json_tokener_get_error(d->etok);
        if (e != json_tokener_continue)
            return fail(d, "invalid JSON: ", json_tokener_error_desc(e), at + end);
        if (last)
            return fail(d, "invalid JSON: ", "unfinished decision", at + n);
        return DECISIONS_MORE;
    }
    if (!last || end != n) { /* the scanner and json-c disagree */
        json_object_put(o);
        return fail(d, "invalid JSON: ", "decision ends early", at + end);
    }
    int rc = push(d, d->routing, o);
    json_object_put(o);
    if (rc != 0)
        return fail(d, "out of memory", "", at);
    d->el = EL_NONE;
    return to_main(d, "null ", 5, at + n);
}

static int
key_list(const char *key)
{
    if (strcmp(key, "new") == 0)
        return 0;
    if (strcmp(key, "deleted") == 0)
        return 1;
    return -1;
}

/*
 * Follows the structure of <len> bytes and sends them on: routed
 * decisions to their tokener, the rest to the main one. Only what it
 * needs: string bounds, bracket depth, the keys of the top object.
 */
static enum decisions_rc
scan(struct decisions *d, const char *buf, size_t len, size_t at)
{
    size_t start = 0;
    enum decisions_rc rc = DECISIONS_MORE;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (d->in_str) {
            if (d->esc) {
                d->esc = false;
            } else if (c == '\\') {
                d->esc = true;
                if (d->in_key)
                    return fail(d, "escaped key in answer", "", at + i);
            } else if (c == '"') {
                d->in_str = false;
                if (d->in_key) {
                    d->in_key = false;
                    d->key[d->keylen <= KEY_MAX ? d->keylen : 0] = '\0';
                }
            } else if (d->in_key && d->keylen <= KEY_MAX) {
                if (d->keylen < KEY_MAX)
                    d->key[d->keylen] = c;
                d->keylen++;
            }
            continue;
        }
        if (d->el == EL_OBJECT) {
            if (c == '\'')
                return fail(d, "invalid JSON: ", "single quote", at + i);
            if (c == '"') {
                d->in_str = true;
            } else if (c == '{' || c == '[') {
                d->depth++;
            } else if ((c == '}' || c == ']') && --d->depth == 2) {
                rc = to_elem(d, buf + start, i + 1 - start, at + start, true);
                if (rc == DECISIONS_ERROR)
                    return rc;
                start = i + 1;
            }
            continue;
        }
        if (d->depth == 2 && d->routing >= 0 && d->el == EL_NONE && !is_space(c) && c != ',' &&
            c != ']') {
            if (c == '{') {
                rc = to_main(d, buf + start, i - start, at + start);
                if (rc == DECISIONS_ERROR)
                    return rc;
                start = i;
                d->el = EL_OBJECT;
                d->depth++;
                json_tokener_reset(d->etok);
                continue;
            }
            if (push(d, d->routing, NULL) != 0)
                return fail(d, "out of memory", "", at + i);
            d->el = EL_OTHER;
        }
        switch (c) {
        case '\'':
            /* json-c takes single-quoted keys; the scanner would not see
             * where they end. */
            return fail(d, "invalid JSON: ", "single quote", at + i);
        case '"':
            d->in_str = true;
            if (d->depth == 1 && d->type[1] == '{' && d->key_next) {
                d->in_key = true;
                d->keylen = 0;
            }
            break;
        case '{':
        case '[':
            d->depth++;
            if (d->depth <= 2)
                d->type[d->depth] = c;
            if (d->depth == 1) {
                d->key_next = c == '{';
                d->key[0] = '\0';
            }
            if (d->depth == 2) {
                d->routing = c == '[' && d->type[1] == '{' ? d->value_of : -1;
                d->el = EL_NONE;
            }
            break;
        case '}':
        case ']':
            if (d->depth > 0 && --d->depth == 1)
                d->routing = -1;
            break;
        case ':':
            if (d->depth == 1 && d->type[1] == '{') {
                d->key_next = false;
                /* A later value for the same key replaces the earlier one,
                 * in json-c's object as in the lists. */
                d->value_of = key_list(d->key);
                if (d->value_of >= 0)
                    d->list[d->value_of].n = 0;
            }
            break;
        case ',':
            if (d->depth == 1 && d->type[1] == '{') {
                d->key_next = true;
                d->key[0] = '\0';
                d->value_of = -1;
            } else if (d->depth == 2) {
                d->el = EL_NONE;
            }
            break;
        default:
            break;
        }
    }
    if (d->el == EL_OBJECT)
        return to_elem(d, buf + start, len - start, at + start, false);
    return to_main(d, buf + start, len - start, at + start);
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
    size_t bad = utf8_check(d, (const uint8_t *)buf, len);
    if (bad < len)
        return fail(d, "invalid UTF-8", "", at + bad);
    if (d->st == ST_DONE) {
        if (!all_space(buf, len))
            return fail(d, "data after the answer", "", at);
        return DECISIONS_DONE;
    }
    if (len > INT_MAX)
        return fail(d, "chunk too large", "", at);
    enum decisions_rc rc = scan(d, buf, len, at);
    return d->st == ST_DONE ? DECISIONS_DONE : rc;
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
    return d->st == ST_DONE ? d->list[deleted].n : 0;
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
        for (size_t i = 0; i < ARRAY_LEN(units); i++) {
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

/* <src> into <dst> of <cap> bytes, cut if need be where no character is
 * split (the strings end up in logs and in JSON). */
static void
copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = util_utf8_cut(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A decision's object into <r>: fields checked, or the reason why not. */
static void
convert(json_object *o, struct rec *r)
{
    struct decision *out = &r->d;
    const char **why = &r->why;

    memset(r, 0, sizeof(*r));
    const char *value = str_field(o, "value", true, why);
    const char *scope = value ? str_field(o, "scope", true, why) : NULL;
    const char *type = scope ? str_field(o, "type", true, why) : NULL;
    const char *duration = type ? str_field(o, "duration", true, why) : NULL;
    const char *origin = duration ? str_field(o, "origin", false, why) : NULL;
    const char *scenario = origin ? str_field(o, "scenario", false, why) : NULL;
    if (scenario == NULL)
        return;
    if (parse_net(scope, value, &out->net, why) != 0)
        return;
    if (decisions_duration(duration, &out->duration_ms) != 0) {
        *why = "duration is not a Go duration";
        return;
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
            return;
        }
        out->id = json_object_get_uint64(id);
    }
    copy_cut(out->origin, sizeof(out->origin), origin);
    copy_cut(out->scenario, sizeof(out->scenario), scenario);
}

int
decisions_get(const struct decisions *d, bool deleted, size_t i, struct decision *out,
              const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (i >= decisions_count(d, deleted)) {
        memset(out, 0, sizeof(*out));
        *why = "no such decision";
        return -1;
    }
    const struct rec *r = &d->list[deleted].blk[i / BLOCK][i % BLOCK];
    if (r->why != NULL) {
        memset(out, 0, sizeof(*out));
        *why = r->why;
        return -1;
    }
    *out = r->d;
    return 0;
}
