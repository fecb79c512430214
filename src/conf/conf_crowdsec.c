/*
 * conf_crowdsec: remote bans from a CrowdSec Local API (global crowdsec and
 * crowdsec-* directives) and which listeners enforce shared bans
 * (shared-bans on|off). The poller is src/edge/bouncer.c; docs/config.md
 * ("crowdsec") and docs/scaling.md say what each setting does.
 */
#include "conf.h"

#include <stdlib.h>
#include <string.h>

#include "conf_int.h"
#include "util.h"

#define DEFAULT_INTERVAL_MS 10000
#define DEFAULT_RESYNC_MS (5ull * 60 * 1000)
#define DEFAULT_MAX_BANS 200000
#define DEFAULT_MAX_ANSWER (64ull << 20)
#define INTERVAL_MIN_MS 1000
#define INTERVAL_MAX_MS (60ull * 60 * 1000)
#define RESYNC_MAX_MS (24ull * 60 * 60 * 1000)
#define MAX_BANS_MAX 10000000
#define MAX_ANSWER_MIN (64ull << 10)
#define MAX_ANSWER_MAX (1ull << 30)

static void
cs_option_seen(struct ctx *x, const struct lex_word *w)
{
    if (x->cs_opt_pos.line == 0)
        x->cs_opt_pos = cf_pos_of(x, w);
}

/* A host name or an IP literal (IPv6 in brackets), then an optional :PORT. */
static bool
authority_ok(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0)
        return false;
    if (s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++)
            if (!(s[i] == ':' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
                  (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        for (; i < len && s[i] != ':'; i++)
            if (!cf_name_char(s[i]))
                return false;
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    uint64_t port;
    char p[8];
    if (s[i] != ':' || len - i - 1 == 0 || len - i - 1 >= sizeof(p))
        return false;
    memcpy(p, s + i + 1, len - i - 1);
    p[len - i - 1] = '\0';
    return util_parse_uint(p, 65535, &port) == 0 && port > 0;
}

/* crowdsec URL: http://127.0.0.1:8080 (the Local API; its path prefix allowed) */
static void
cf_d_crowdsec(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_crowdsec *cs = &x->c->global.crowdsec;
    const char *u = w[1].text;
    size_t skip = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;

    (void)n;
    const char *host = u + skip;
    size_t hlen = strcspn(host, "/");
    bool ok = skip != 0 && authority_ok(host, hlen);
    for (const char *p = host + hlen; ok && *p != '\0'; p++)
        ok = cf_name_char(*p) || *p == '/' || *p == '~';
    if (!ok) {
        cf_errw(x, &w[1],
                "bad crowdsec URL '%s': expected the Local API's address like "
                "http://127.0.0.1:8080 (http or https, a host and a port, no query, no user)",
                u);
        return;
    }
    if (util_strlcpy(cs->url, u, sizeof(cs->url)) != 0) {
        cf_errw(x, &w[1], "crowdsec URL is too long (at most %zu bytes)", sizeof(cs->url) - 1);
        cs->url[0] = '\0';
        return;
    }
    size_t len = strlen(cs->url);
    while (len > skip && cs->url[len - 1] == '/')
        cs->url[--len] = '\0';
    cs->pos = cf_pos_of(x, &w[0]);
}

/* crowdsec-key-file PATH | crowdsec-key-env NAME: the bouncer key, never in the text */
static void
cf_d_crowdsec_key(struct ctx *x, const struct lex_word *w, size_t n)
{
    bool file = cf_is_word(&w[0], "crowdsec-key-file");

    (void)n;
    cs_option_seen(x, &w[0]);
    if (x->cs_key_pos.line != 0) {
        cf_errw(x, &w[0], "the crowdsec key is given twice: use crowdsec-key-file or "
                          "crowdsec-key-env, not both");
        return;
    }
    x->cs_key_pos = cf_pos_of(x, &w[1]);
    if (!file) {
        const char *v = w[1].text;
        bool ok = v[0] != '\0' && !(v[0] >= '0' && v[0] <= '9');
        for (const char *p = v; ok && *p != '\0'; p++)
            ok = *p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                 (*p >= '0' && *p <= '9');
        if (!ok || util_strlcpy(x->cs_key_env, v, sizeof(x->cs_key_env)) != 0) {
            cf_errw(x, &w[1], "bad environment variable name '%s' for crowdsec-key-env", v);
            x->cs_key_env[0] = '\0';
        }
        return;
    }
    if (!x->allow_include) {
        cf_errw(x, &w[0],
                "crowdsec-key-file is not allowed when the configuration is loaded from memory");
        return;
    }
    if (w[1].text[0] != '/') {
        cf_errw(x, &w[1], "crowdsec-key-file needs an absolute path, not '%s'", w[1].text);
        return;
    }
    if (util_strlcpy(x->cs_key_path, w[1].text, sizeof(x->cs_key_path)) != 0) {
        cf_errw(x, &w[1], "crowdsec-key-file path is too long");
        x->cs_key_path[0] = '\0';
    }
}

/* crowdsec-interval DURATION | crowdsec-resync DURATION|off */
static void
cf_d_crowdsec_interval(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_crowdsec *cs = &x->c->global.crowdsec;
    bool resync = cf_is_word(&w[0], "crowdsec-resync");
    uint64_t ms;

    (void)n;
    cs_option_seen(x, &w[0]);
    if (resync && cf_is_word(&w[1], "off")) {
        cs->resync_ms = UINT64_MAX;
        return;
    }
    if (!cf_duration(x, &w[1], false, &ms))
        return;
    if (resync ? ms < INTERVAL_MIN_MS || ms > RESYNC_MAX_MS
               : ms < INTERVAL_MIN_MS || ms > INTERVAL_MAX_MS) {
        cf_errw(x, &w[1], resync ? "crowdsec-resync '%s' is out of range: 1s to 24h, or off"
                                 : "crowdsec-interval '%s' is out of range: 1s to 1h",
                w[1].text);
        return;
    }
    if (resync)
        cs->resync_ms = ms;
    else
        cs->interval_ms = ms;
}

/* crowdsec-captcha ban|ignore: what a captcha decision is at layer 4 */
static void
cf_d_crowdsec_captcha(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    cs_option_seen(x, &w[0]);
    if (cf_is_word(&w[1], "ban"))
        x->c->global.crowdsec.captcha_ban = true;
    else if (cf_is_word(&w[1], "ignore"))
        x->c->global.crowdsec.captcha_ban = false;
    else
        cf_errw(x, &w[1], "bad crowdsec-captcha '%s': expected ban or ignore", w[1].text);
}

/* crowdsec-origins WORD... | crowdsec-scenarios-containing WORD... | ...-not-containing */
static void
cf_d_crowdsec_words(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_crowdsec *cs = &x->c->global.crowdsec;
    struct conf_cs_words *v = cf_is_word(&w[0], "crowdsec-origins") ? &cs->origins
                              : cf_is_word(&w[0], "crowdsec-scenarios-containing")
                                  ? &cs->scen_in
                                  : &cs->scen_out;

    cs_option_seen(x, &w[0]);
    for (size_t i = 1; i < n; i++) {
        const char *t = w[i].text;
        bool ok = t[0] != '\0';
        for (const char *p = t; ok && *p != '\0'; p++)
            ok = cf_name_char(*p) || *p == '/' || *p == ':';
        if (!ok || util_strlcpy(v->v[v->n], t, CONF_CS_WORD_MAX) != 0) {
            cf_errw(x, &w[i],
                    "bad %s word '%s': letters, digits and _ . - / : only, at most %d bytes",
                    w[0].text, t, CONF_CS_WORD_MAX - 1);
            continue;
        }
        v->n++;
    }
}

/* crowdsec-max-bans N | crowdsec-max-answer SIZE */
static void
cf_d_crowdsec_max(struct ctx *x, const struct lex_word *w, size_t n)
{
    struct conf_crowdsec *cs = &x->c->global.crowdsec;
    uint64_t v;

    (void)n;
    cs_option_seen(x, &w[0]);
    if (cf_is_word(&w[0], "crowdsec-max-bans")) {
        if (util_parse_uint(w[1].text, MAX_BANS_MAX, &v) != 0 || v == 0)
            cf_errw(x, &w[1], "bad crowdsec-max-bans '%s': expected a count from 1 to %d",
                    w[1].text, MAX_BANS_MAX);
        else
            cs->max_bans = v;
        return;
    }
    if (util_parse_size(w[1].text, &v) != 0 || v < MAX_ANSWER_MIN || v > MAX_ANSWER_MAX)
        cf_errw(x, &w[1], "bad crowdsec-max-answer '%s': expected a size from 64k to 1g",
                w[1].text);
    else
        cs->max_answer = v;
}

/* shared-bans on|off (listener): remote bans, and bans by hand for every listener */
static void
cf_d_shared_bans(struct ctx *x, const struct lex_word *w, size_t n)
{
    (void)n;
    if (cf_is_word(&w[1], "on"))
        cf_cur_listener(x)->shared_bans_off = false;
    else if (cf_is_word(&w[1], "off"))
        cf_cur_listener(x)->shared_bans_off = true;
    else
        cf_errw(x, &w[1], "bad shared-bans '%s': expected on or off", w[1].text);
}

/* The crowdsec directives of the global block and a listener's shared-bans
 * (conf.c reads the tables; the lists are the hints of "unknown directive"). */
static const struct directive crowdsec_v[] = {
    {"crowdsec", D_COUNT, true, 1, 1, "crowdsec URL", cf_d_crowdsec},
    {"crowdsec-key-file", D_COUNT, true, 1, 1, "crowdsec-key-file PATH", cf_d_crowdsec_key},
    {"crowdsec-key-env", D_COUNT, true, 1, 1, "crowdsec-key-env NAME", cf_d_crowdsec_key},
    {"crowdsec-interval", D_COUNT, true, 1, 1, "crowdsec-interval DURATION", cf_d_crowdsec_interval},
    {"crowdsec-resync", D_COUNT, true, 1, 1, "crowdsec-resync DURATION|off", cf_d_crowdsec_interval},
    {"crowdsec-captcha", D_COUNT, true, 1, 1, "crowdsec-captcha ban|ignore", cf_d_crowdsec_captcha},
    {"crowdsec-origins", D_COUNT, true, 1, CONF_CS_FILTERS_MAX, "crowdsec-origins NAME ...",
     cf_d_crowdsec_words},
    {"crowdsec-scenarios-containing", D_COUNT, true, 1, CONF_CS_FILTERS_MAX,
     "crowdsec-scenarios-containing WORD ...", cf_d_crowdsec_words},
    {"crowdsec-scenarios-not-containing", D_COUNT, true, 1, CONF_CS_FILTERS_MAX,
     "crowdsec-scenarios-not-containing WORD ...", cf_d_crowdsec_words},
    {"crowdsec-max-bans", D_COUNT, true, 1, 1, "crowdsec-max-bans N", cf_d_crowdsec_max},
    {"crowdsec-max-answer", D_COUNT, true, 1, 1, "crowdsec-max-answer SIZE", cf_d_crowdsec_max},
};
const struct directive_table cf_crowdsec_dirs = {
    crowdsec_v, ARRAY_LEN(crowdsec_v),
    "crowdsec, crowdsec-*"};

static const struct directive shared_bans_v[] = {
    {"shared-bans", D_COUNT, true, 1, 1, "shared-bans on|off", cf_d_shared_bans},
};
const struct directive_table cf_shared_bans_dirs = {shared_bans_v, ARRAY_LEN(shared_bans_v),
                                                    "shared-bans"};

void
cf_crowdsec_finish(struct ctx *x)
{
    struct conf_crowdsec *cs = &x->c->global.crowdsec;

    if (cs->interval_ms == 0)
        cs->interval_ms = DEFAULT_INTERVAL_MS;
    if (cs->resync_ms == 0)
        cs->resync_ms = DEFAULT_RESYNC_MS;
    if (cs->max_bans == 0)
        cs->max_bans = DEFAULT_MAX_BANS;
    if (cs->max_answer == 0)
        cs->max_answer = DEFAULT_MAX_ANSWER;
    if (cs->url[0] == '\0') {
        if (x->cs_opt_pos.line != 0)
            cf_errp(x, &x->cs_opt_pos,
                    "crowdsec-* settings need 'crowdsec URL' too (the Local API's address)");
        return;
    }
    if (x->cs_key_pos.line == 0) {
        cf_errp(x, &cs->pos,
                "crowdsec needs its bouncer key: add crowdsec-key-file PATH or crowdsec-key-env "
                "NAME (made with 'cscli bouncers add NAME')");
        return;
    }
    if (x->cs_key_path[0] != '\0') {
        cf_read_secret(x, x->cs_key_path, &x->cs_key_pos, "crowdsec-key-file", 1, cs->key,
                       sizeof(cs->key), &cs->key_len);
        return;
    }
    if (x->cs_key_env[0] == '\0')
        return;
    const char *v = getenv(x->cs_key_env);
    size_t len = v != NULL ? strlen(v) : 0;
    bool ok = len > 0 && len < sizeof(cs->key);
    for (size_t i = 0; ok && i < len; i++)
        ok = v[i] > 0x20 && v[i] < 0x7f;
    if (!ok) {
        cf_errp(x, &x->cs_key_pos,
                "crowdsec-key-env %s: the variable is %s (expected one token of printable "
                "characters without spaces)",
                x->cs_key_env, v == NULL ? "not set" : "not a usable key");
        return;
    }
    memcpy(cs->key, v, len + 1);
    cs->key_len = len;
}
