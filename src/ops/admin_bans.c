/* admin_bans: GET, POST and DELETE /bans (docs/operations.md). */
#include "admin_bans.h"

#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "abuse.h"
#include "addr.h"
#include "adminreq.h"
#include "bouncer.h"
#include "cidr.h"
#include "conf.h"
#include "loop.h"
#include "util.h"

#define DEFAULT_BAN_MS (60ull * 60 * 1000)
#define MAX_BAN_MS (30ull * 24 * 60 * 60 * 1000)
#define ADMIN_REMOTE_LIST 1000 /* remote bans listed by GET /bans at most */

/* <msg> is ours (no JSON escapes needed): never text from the request. */
static unsigned
fail(const struct admin_bans_req *r, struct strbuf *body, unsigned status, const char *msg)
{
    strbuf_addf(body, "{\"error\":\"%s\"}\n", msg);
    if (r->error != NULL)
        *r->error = msg;
    return status;
}

/*
 * What a write must carry besides its parameters; 0 when it does, else the
 * status of the refusal (its body in <body>).
 */
static unsigned
write_allowed(const struct conf_global *g, const struct admin_bans_req *r, struct strbuf *body)
{

    if (r->admin_header == NULL || strcmp(r->admin_header, "1") != 0)
        return fail(r, body, 403,
                    "POST and DELETE need the header 'Mailedge-Admin: 1' (a web page cannot "
                    "send it)");
    if (g->admin_token_len > 0 &&
        !adminreq_bearer_ok(r->authorization, g->admin_token, g->admin_token_len))
        return fail(r, body, 401, "POST and DELETE need 'Authorization: Bearer TOKEN' with the "
                               "token of admin-token-file");
    if (r->has_body)
        return fail(r, body, 400, "parameters go in the query string; send no body");
    return 0;
}

/* A ban by hand of <c> may be added (POST); else the status of the refusal. */
static unsigned
width_allowed(const struct conf_global *g, const struct admin_bans_req *r, const struct cidr *c,
              bool force, struct strbuf *body)
{

    switch (adminreq_ban_width(c, g->admin_ban_v4, g->admin_ban_v6, force)) {
    case ADMINREQ_WIDTH_OK:
        return 0;
    case ADMINREQ_WIDTH_ZERO:
        return fail(r, body, 400, "a ban of a /0 prefix (every address) is never allowed");
    case ADMINREQ_WIDTH_WIDE:
        break;
    }
    strbuf_addf(body,
                "{\"error\":\"addr= is wider than /%u, the widest ban admin-widest-ban allows; "
                "add force=1 to ban it anyway\"}\n",
                c->family == AF_INET ? g->admin_ban_v4 : g->admin_ban_v6);
    if (r->error != NULL)
        *r->error = "addr= is wider than admin-widest-ban allows, without force=1";
    return 400;
}

/* Wall-clock seconds of the monotonic <ms> of loop <l>. */
static long long
wall_seconds(const struct loop *l, uint64_t ms)
{
    uint64_t now = loop_now(l);
    return (long long)time(NULL) + (long long)((ms > now ? ms - now : 0) + 999) / 1000;
}

struct list_ctx {
    const struct loop *loop;
    const char *listener;
    struct strbuf *body;
    size_t n;
};

static void
list_one(void *arg, const char *text, enum abuse_ban_reason reason, uint64_t until_ms)
{
    struct list_ctx *x = arg;
    uint64_t now = loop_now(x->loop);

    /* Keys, names and reasons never need JSON escapes: addresses, [A-Za-z0-9_.-]. */
    strbuf_addf(x->body,
                "%s{\"key\":\"%s\",\"listener\":\"%s\",\"reason\":\"%s\",\"until\":%lld,"
                "\"remaining_ms\":%llu}",
                x->n++ ? "," : "", text, x->listener, abuse_ban_reason_name(reason),
                wall_seconds(x->loop, until_ms), (unsigned long long)(until_ms - now));
}

static bool
all_listeners(const char *listener)
{
    return listener == NULL || listener[0] == '\0' || strcmp(listener, "all") == 0;
}

/*
 * The abuse table of configured listener <i> of <c> when the request names
 * it (one listener, or all for NULL, "" or "all"); else NULL. A ban by hand
 * for all (<adding>) goes to the listeners that enforce shared bans only.
 */
static struct abuse *
selected(const struct admin_view *v, const struct conf *c, size_t i, const char *listener,
         bool adding)
{
    const struct conf_listener *l = &c->listeners[i];
    if (!all_listeners(listener) && strcmp(listener, l->name) != 0)
        return NULL;
    if (adding && all_listeners(listener) && l->shared_bans_off)
        return NULL;
    return v->abuse(v->arg, l->name);
}

static void
list_remote_one(void *arg, const struct banset_entry *e)
{
    struct list_ctx *x = arg;
    uint64_t now = loop_now(x->loop);
    char text[64];
    bool ip = e->net.prefix == (e->net.family == AF_INET ? 32 : 128);

    cidr_format(&e->net, text, sizeof(text));
    if (ip)
        text[strcspn(text, "/")] = '\0'; /* an address, as the local bans list it */
    strbuf_addf(x->body, "%s{\"key\":\"%s\",\"type\":\"%s\",\"origin\":", x->n++ ? "," : "",
                text, ip ? "ip" : "range");
    strbuf_json_str(x->body, e->origin);
    strbuf_add(x->body, ",\"scenario\":");
    strbuf_json_str(x->body, e->scenario);
    strbuf_addf(x->body, ",\"until\":%lld,\"remaining_ms\":%llu}",
                wall_seconds(x->loop, e->expires_ms),
                (unsigned long long)(e->expires_ms > now ? e->expires_ms - now : 0));
}

/*
 * The remote bans (src/edge/bouncer.c), at most ADMIN_REMOTE_LIST of them:
 * "remote":[...] and "remote_total", "remote_listed" after the local ones.
 */
static void
list_remote(const struct admin_view *v, struct strbuf *body)
{
    struct bouncer_status st;
    struct list_ctx x = {.loop = v->loop, .body = body};
    size_t pos = 0;

    if (v->remote_status == NULL || !v->remote_status(v->arg, &st))
        return;
    strbuf_add(body, ",\"remote\":[");
    v->remote_walk(v->arg, &pos, ADMIN_REMOTE_LIST, list_remote_one, &x);
    strbuf_addf(body, "],\"remote_total\":%zu,\"remote_listed\":%zu", st.ips + st.ranges, x.n);
}

static unsigned
list(const struct admin_view *v, const struct conf *c, const struct admin_bans_req *r,
     struct strbuf *body)
{
    struct list_ctx x = {.loop = v->loop, .body = body};

    strbuf_add(body, "{\"bans\":[");
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct abuse *t = selected(v, c, i, r->p.listener, false);
        if (t == NULL)
            continue;
        x.listener = c->listeners[i].name;
        abuse_bans_each(t, loop_now(v->loop), list_one, &x);
    }
    strbuf_add(body, "]");
    list_remote(v, body);
    strbuf_add(body, "}\n");
    return 200;
}

unsigned
admin_bans(const struct admin_view *v, const struct admin_bans_req *r, struct strbuf *body)
{
    const struct conf *c = v->conf(v->arg);
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    bool post = strcmp(r->method, "POST") == 0;
    bool del = strcmp(r->method, "DELETE") == 0;
    const struct adminreq_params *p = &r->p;

    if (r->client == NULL || !addr_is_loopback(r->client))
        return fail(r, body, 403, "/bans answers loopback clients only");
    if (!get && !post && !del)
        return fail(r, body, 405, "use GET, POST or DELETE");
    if (r->param_error != NULL)
        return fail(r, body, 400, r->param_error);
    if (get && (p->addr != NULL || p->duration != NULL || p->force != NULL))
        return fail(r, body, 400, "GET /bans takes only listener=");
    if (del && (p->duration != NULL || p->force != NULL))
        return fail(r, body, 400, "DELETE /bans takes only addr= and listener=");
    bool known = all_listeners(p->listener);
    for (size_t i = 0; !known && i < c->nlisteners; i++)
        known = strcmp(c->listeners[i].name, p->listener) == 0;
    if (!known)
        return fail(r, body, 404, "no such listener");
    if (get)
        return list(v, c, r, body);
    unsigned st = write_allowed(&c->global, r, body);
    if (st != 0)
        return st;

    struct cidr pfx;
    if (p->addr == NULL || cidr_parse(p->addr, &pfx, NULL) != 0)
        return fail(r, body, 400,
                    "addr= needs an address or a prefix, like 192.0.2.7 or 2001:db8::/48 "
                    "(host bits zero)");
    uint64_t now = loop_now(v->loop);
    size_t n = 0;
    if (del) {
        for (size_t i = 0; i < c->nlisteners; i++) {
            struct abuse *t = selected(v, c, i, p->listener, false);
            if (t != NULL)
                n += abuse_ban_remove(t, &pfx, now);
        }
        if (n == 0)
            return fail(r, body, 404, "no such ban");
        strbuf_addf(body, "{\"removed\":%zu}\n", n);
        return 200;
    }
    if (p->force != NULL && strcmp(p->force, "1") != 0)
        return fail(r, body, 400, "force= takes 1");
    if ((st = width_allowed(&c->global, r, &pfx, p->force != NULL, body)) != 0)
        return st;
    uint64_t ms = DEFAULT_BAN_MS;
    if (p->duration != NULL && (util_parse_duration(p->duration, &ms) != 0 || ms == 0 ||
                                ms > MAX_BAN_MS))
        return fail(r, body, 400, "duration= needs a duration like 15m or 24h (at most 720h)");
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct abuse *t = selected(v, c, i, p->listener, true);
        if (t == NULL)
            continue;
        if (abuse_ban_add(t, &pfx, now + ms, now) == -1)
            return fail(r, body, 507, "too many bans by hand on this listener");
        n++;
    }
    strbuf_addf(body, "{\"added\":%zu,\"until\":%lld}\n", n, wall_seconds(v->loop, now + ms));
    return 200;
}
