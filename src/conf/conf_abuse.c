/*
 * conf_abuse: the abuse-control directives of a listener block (limit, ban,
 * allow, pregreet); src/edge/abuse.c applies them.
 */
#include "conf.h"

#include <string.h>

#include "conf_int.h"
#include "util.h"

#define LIMIT_USAGE "limit per-ip N | limit rate N/s|N/m|N/h | limit ipv6-prefix N | limit table N"

#define LIMIT_TABLE_MIN 16
#define LIMIT_TABLE_MAX (1u << 24)
#define LIMIT_MAX 1000000
#define BAN_AFTER_MAX 1000
#define BAN_MAX_MS (30ull * 24 * 60 * 60 * 1000)
#define DEFAULT_BAN_WINDOW_MS (10ull * 60 * 1000)

static bool
count_word(struct ctx *x, const struct lex_word *w, uint64_t min, uint64_t max, const char *what,
           uint64_t *out)
{
    if (util_parse_uint(w->text, max, out) != 0 || *out < min) {
        cf_errw(x, w, "bad %s '%s': expected a number from %llu to %llu", what, w->text,
                (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    return true;
}

/* limit rate N/s|N/m|N/h */
static void
limit_rate(struct ctx *x, const struct lex_word *w)
{
    struct conf_listener *l = cf_cur_listener(x);
    char num[32];
    const char *slash = strchr(w->text, '/');
    uint64_t n, unit;

    if (slash == NULL || (size_t)(slash - w->text) >= sizeof(num) || slash == w->text) {
        cf_errw(x, w, "bad rate '%s': expected new sessions per second, minute or hour, like 30/m",
                w->text);
        return;
    }
    memcpy(num, w->text, (size_t)(slash - w->text));
    num[slash - w->text] = '\0';
    if (strcmp(slash + 1, "s") == 0)
        unit = 1000;
    else if (strcmp(slash + 1, "m") == 0)
        unit = 60000;
    else if (strcmp(slash + 1, "h") == 0)
        unit = 3600000;
    else {
        cf_errw(x, w, "bad rate unit '%s' in '%s': expected s, m or h, like 30/m", slash + 1,
                w->text);
        return;
    }
    if (util_parse_uint(num, LIMIT_MAX, &n) != 0 || n == 0) {
        cf_errw(x, w, "bad rate '%s': expected a number from 1 to %u before '/'", w->text,
                (unsigned)LIMIT_MAX);
        return;
    }
    l->limit_rate = (unsigned)n;
    l->limit_rate_ms = unit;
}

static void
cf_d_limit(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);
    uint64_t v;

    (void)n;
    if (cf_is_word(&w[1], "per-ip")) {
        if (cf_first_use(x, D_LIMIT_PER_IP, &w[1], "limit per-ip") &&
            count_word(x, &w[2], 1, LIMIT_MAX, "limit per-ip", &v))
            l->limit_per_ip = (unsigned)v;
    } else if (cf_is_word(&w[1], "rate")) {
        if (cf_first_use(x, D_LIMIT_RATE, &w[1], "limit rate"))
            limit_rate(x, &w[2]);
    } else if (cf_is_word(&w[1], "ipv6-prefix")) {
        if (cf_first_use(x, D_LIMIT_V6, &w[1], "limit ipv6-prefix") &&
            count_word(x, &w[2], 16, 128, "IPv6 prefix length", &v))
            l->limit_v6_prefix = (unsigned)v;
    } else if (cf_is_word(&w[1], "table")) {
        if (cf_first_use(x, D_LIMIT_TABLE, &w[1], "limit table") &&
            count_word(x, &w[2], LIMIT_TABLE_MIN, LIMIT_TABLE_MAX, "limit table size", &v))
            l->limit_table = (unsigned)v;
    } else {
        cf_errw(x, &w[1], "unknown limit '%s' (usage: " LIMIT_USAGE ")", w[1].text);
    }
}

/* ban DURATION after N [within DURATION] */
static void
cf_d_ban(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);
    uint64_t ms, after, window = DEFAULT_BAN_WINDOW_MS;

    if (util_parse_duration(w[1].text, &ms) != 0 || ms == 0) {
        cf_errw(x, &w[1], "bad ban duration '%s': expected a duration like 15m, 1h", w[1].text);
        return;
    }
    if (ms > BAN_MAX_MS) {
        cf_errw(x, &w[1], "ban duration '%s' is too long (at most 720h)", w[1].text);
        return;
    }
    if (!cf_is_word(&w[2], "after")) {
        cf_errw(x, &w[2], "expected 'after' (usage: ban DURATION after N [within DURATION])");
        return;
    }
    if (!count_word(x, &w[3], 1, BAN_AFTER_MAX, "violation count", &after))
        return;
    if (n > 4) {
        if (!cf_is_word(&w[4], "within") || n != 6) {
            cf_errw(x, &w[4],
                    "expected 'within DURATION' (usage: ban DURATION after N [within "
                    "DURATION])");
            return;
        }
        if (!cf_duration(x, &w[5], false, &window))
            return;
    }
    l->ban_ms = ms;
    l->ban_after = (unsigned)after;
    l->ban_window_ms = window;
}

static void
cf_d_allow(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_listener *l = cf_cur_listener(x);

    cf_cidr_list(x, w, 1, n, &l->allow, &l->nallow, "100.64.0.0/10 or an address");
}

static void
cf_d_pregreet(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    if (cf_is_word(&w[1], "count"))
        cf_cur_listener(x)->pregreet = PREGREET_COUNT;
    else if (cf_is_word(&w[1], "reject"))
        cf_cur_listener(x)->pregreet = PREGREET_REJECT;
    else if (cf_is_word(&w[1], "off"))
        cf_cur_listener(x)->pregreet = PREGREET_OFF;
    else
        cf_errw(x, &w[1], "bad pregreet '%s': expected count, reject or off", w[1].text);
}

/* The abuse-control directives of a listener block, after those of
 * conf_listener.c (the list continues its hint of "unknown directive"). */
static const struct directive abuse_v[] = {
    {"limit", D_COUNT, false, 2, 2, LIMIT_USAGE, cf_d_limit},
    {"ban", D_BAN, true, 3, 5, "ban DURATION after N [within DURATION]", cf_d_ban},
    {"allow", D_COUNT, false, 1, MANY, "allow CIDR ...", cf_d_allow},
    {"pregreet", D_PREGREET, true, 1, 1, "pregreet count|reject|off", cf_d_pregreet},
};
const struct directive_table cf_abuse_dirs = {abuse_v, ARRAY_LEN(abuse_v),
                                              "limit, ban, allow, pregreet"};
