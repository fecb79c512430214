/* admin_bans: GET, POST and DELETE /bans (docs/operations.md). */
#include "admin_bans.h"

#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "abuse.h"
#include "cidr.h"
#include "loop.h"
#include "util.h"
#include "worker.h"

#define DEFAULT_BAN_MS (60ull * 60 * 1000)
#define MAX_BAN_MS (30ull * 24 * 60 * 60 * 1000)

static bool
loopback(const struct sockaddr *sa)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET)
        return ((const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr)[0] ==
               127;
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    return memcmp(a, &in6addr_loopback, 16) == 0 ||
           (memcmp(a, mapped, sizeof(mapped)) == 0 && a[12] == 127);
}

static unsigned
fail(struct strbuf *body, unsigned status, const char *msg)
{
    strbuf_addf(body, "{\"error\":\"%s\"}\n", msg);
    return status;
}

/* Wall-clock seconds of the monotonic <ms> of loop <w>. */
static long long
wall_seconds(const struct worker *w, uint64_t ms)
{
    uint64_t now = loop_now(w->loop);
    return (long long)time(NULL) + (long long)((ms > now ? ms - now : 0) + 999) / 1000;
}

struct list_ctx {
    const struct worker *w;
    const char *listener;
    struct strbuf *body;
    size_t n;
};

static void
list_one(void *arg, const char *text, enum abuse_ban_reason reason, uint64_t until_ms)
{
    struct list_ctx *x = arg;
    uint64_t now = loop_now(x->w->loop);

    /* Keys, names and reasons never need JSON escapes: addresses, [A-Za-z0-9_.-]. */
    strbuf_addf(x->body,
                "%s{\"key\":\"%s\",\"listener\":\"%s\",\"reason\":\"%s\",\"until\":%lld,"
                "\"remaining_ms\":%llu}",
                x->n++ ? "," : "", text, x->listener, abuse_ban_reason_name(reason),
                wall_seconds(x->w, until_ms), (unsigned long long)(until_ms - now));
}

static bool
all_listeners(const char *listener)
{
    return listener == NULL || listener[0] == '\0' || strcmp(listener, "all") == 0;
}

/*
 * The abuse state of configured listener <i> when the request names it
 * (one listener, or all for NULL, "" or "all"); else NULL.
 */
static struct worker_abuse *
selected(struct worker *w, size_t i, const char *listener)
{
    const char *name = w->conf->listeners[i].name;
    if (!all_listeners(listener) && strcmp(listener, name) != 0)
        return NULL;
    return worker_abuse_find(w, name);
}

static unsigned
list(struct worker *w, const struct admin_bans_req *r, struct strbuf *body)
{
    struct list_ctx x = {.w = w, .body = body};

    strbuf_add(body, "{\"bans\":[");
    for (size_t i = 0; i < w->conf->nlisteners; i++) {
        struct worker_abuse *wa = selected(w, i, r->listener);
        if (wa == NULL)
            continue;
        x.listener = wa->name;
        abuse_bans_each(wa->t, loop_now(w->loop), list_one, &x);
    }
    strbuf_add(body, "]}\n");
    return 200;
}

unsigned
admin_bans(struct worker *w, const struct admin_bans_req *r, struct strbuf *body)
{
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    bool post = strcmp(r->method, "POST") == 0;
    bool del = strcmp(r->method, "DELETE") == 0;

    if (!loopback(r->client))
        return fail(body, 403, "/bans answers loopback clients only");
    if (!get && !post && !del)
        return fail(body, 405, "use GET, POST or DELETE");
    bool known = all_listeners(r->listener);
    for (size_t i = 0; !known && i < w->conf->nlisteners; i++)
        known = strcmp(w->conf->listeners[i].name, r->listener) == 0;
    if (!known)
        return fail(body, 404, "no such listener");
    if (get)
        return list(w, r, body);

    struct cidr c;
    if (r->addr == NULL || cidr_parse(r->addr, &c, NULL) != 0)
        return fail(body, 400,
                    "addr= needs an address or a prefix, like 192.0.2.7 or 2001:db8::/48 "
                    "(host bits zero)");
    uint64_t now = loop_now(w->loop);
    size_t n = 0;
    if (del) {
        for (size_t i = 0; i < w->conf->nlisteners; i++) {
            struct worker_abuse *wa = selected(w, i, r->listener);
            if (wa != NULL)
                n += abuse_ban_remove(wa->t, &c, now);
        }
        if (n == 0)
            return fail(body, 404, "no such ban");
        strbuf_addf(body, "{\"removed\":%zu}\n", n);
        return 200;
    }
    uint64_t ms = DEFAULT_BAN_MS;
    if (r->duration != NULL && (util_parse_duration(r->duration, &ms) != 0 || ms == 0 ||
                                ms > MAX_BAN_MS))
        return fail(body, 400, "duration= needs a duration like 15m or 24h (at most 720h)");
    for (size_t i = 0; i < w->conf->nlisteners; i++) {
        struct worker_abuse *wa = selected(w, i, r->listener);
        if (wa == NULL)
            continue;
        if (abuse_ban_add(wa->t, &c, now + ms, now) == -1)
            return fail(body, 507, "too many bans by hand on this listener");
        n++;
    }
    strbuf_addf(body, "{\"added\":%zu,\"until\":%lld}\n", n, wall_seconds(w, now + ms));
    return 200;
}
