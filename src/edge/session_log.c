/*
 * session_log: the one info line a session leaves when it ends, and the
 * reason= names.
 */
#include <stddef.h>

#include "addr.h"
#include "backend.h"
#include "banset.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "session_int.h"
#include "worker.h"

static const char *const end_reason_names[] = {
    [END_CLIENT_CLOSED] = "client_closed",     [END_BACKEND_CLOSED] = "backend_closed",
    [END_CLIENT_RESET] = "client_reset",       [END_BACKEND_RESET] = "backend_reset",
    [END_IDLE_TIMEOUT] = "idle_timeout",       [END_CONNECT_REFUSED] = "connect_refused",
    [END_CONNECT_TIMEOUT] = "connect_timeout", [END_PROXY_TIMEOUT] = "proxy_timeout",
    [END_PROXY_INVALID] = "proxy_invalid",     [END_PROXY_UNTRUSTED] = "proxy_untrusted",
    [END_SHUTDOWN] = "shutdown",               [END_RESOURCE] = "resource",
    [END_HELLO_TIMEOUT] = "hello_timeout",     [END_SNI_REQUIRED] = "sni_required",
    [END_SNI_NO_ROUTE] = "sni_no_route",       [END_QUEUE_TIMEOUT] = "queue_timeout",
    [END_QUEUE_FULL] = "queue_full",           [END_LIMIT_PER_IP] = "limit_per_ip",
    [END_LIMIT_RATE] = "limit_rate",           [END_BANNED] = "banned",
    [END_PREGREET] = "pregreet",               [END_BACKEND_LOOP] = "backend_loop",
};
_Static_assert(sizeof(end_reason_names) / sizeof(end_reason_names[0]) == END_REASON_COUNT,
               "end_reason_names must name every enum end_reason");

static const char *const state_names[] = {
    [SESSION_READ_PROXY] = "read_proxy", [SESSION_PEEK_HELLO] = "peek_hello",
    [SESSION_HOLDING] = "holding",       [SESSION_CONNECTING] = "connecting",
    [SESSION_RELAYING] = "relaying",     [SESSION_CLOSED] = "closed",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == SESSION_STATE_COUNT,
               "state_names must name every enum session_state");

const char *
session_state_name(enum session_state st)
{
    if ((size_t)st < SESSION_STATE_COUNT && state_names[st] != NULL)
        return state_names[st];
    return "unknown";
}

const char *
session_end_reason_name(enum end_reason r)
{
    if ((size_t)r < sizeof(end_reason_names) / sizeof(end_reason_names[0]) &&
        end_reason_names[r] != NULL)
        return end_reason_names[r];
    return "unknown";
}

void
session_log(const struct session *s, enum end_reason r, const char *detail)
{
    if (!log_enabled(LOG_INFO))
        return;
    char client[ADDR_STRLEN], peer[ADDR_STRLEN];
    const struct backend *b = s->backend;
    log_begin(LOG_INFO, "session");
    log_hex("id", s->id, 16);
    log_str("listener", lconf(s)->name);
    log_str("client", addr_format(&s->client.sa, client, sizeof(client)));
    log_str("peer", addr_format(&s->peer.sa, peer, sizeof(peer)));
    if (s->sni != NULL && s->sni[0] != '\0')
        log_str("sni", s->sni);
    log_str("backend", b != NULL ? b->conf->name : "-");
    log_str("server", s->srv ? s->srv->name : "-");
    if (s->srv != NULL) {
        char baddr[ADDR_STRLEN];
        log_str("backend_addr", addr_format(&s->baddr.sa, baddr, sizeof(baddr)));
    }
    if (s->nattempts > 0)
        log_u64("attempts", s->nattempts);
    log_u64("bytes_in", s->up.bytes);
    log_u64("bytes_out", s->down.bytes);
    log_u64("duration_ms", loop_now(s->w->loop) - s->start_ms);
    if (s->held_ever)
        log_u64("held_ms", s->held_ms);
    if (s->talked_early)
        log_u64("pregreet", 1);
    log_str("reason", session_end_reason_name(r));
    if (s->remote_ban != NULL) {
        /* A remote ban (src/edge/bouncer.c): the engine's origin and scenario. */
        log_str("ban_origin", s->remote_ban->origin);
        log_str("ban_scenario", s->remote_ban->scenario);
    }
    if (detail != NULL)
        log_str("error", detail);
    log_end();
}
