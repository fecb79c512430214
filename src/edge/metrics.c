/* metrics: counters and the Prometheus text renderer (pure). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint64_t metrics_lat_bounds_ms[METRICS_LAT_BUCKETS] = {1,   5,   10,   25,   50,   100,
                                                             250, 500, 1000, 2500, 5000, 10000};

static const char *const proxy_err_names[] = {"invalid", "timeout", "untrusted"};
static const char *const connect_err_names[] = {"refused", "timeout", "error"};

void
strbuf_addn(struct strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
strbuf_add(struct strbuf *b, const char *s)
{
    strbuf_addn(b, s, strlen(s));
}

void
strbuf_addf(struct strbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        strbuf_addn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    strbuf_addn(b, big, (size_t)n);
    free(big);
}

void
strbuf_json_str(struct strbuf *b, const char *s)
{
    strbuf_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            strbuf_addf(b, "\\%c", *p);
        else if (*p < 0x20)
            strbuf_addf(b, "\\u%04x", *p);
        else
            strbuf_addn(b, (const char *)p, 1);
    }
    strbuf_add(b, "\"");
}

int
metrics_init(struct metrics *m, size_t nlisteners, size_t nservers)
{
    m->listeners = calloc(nlisteners ? nlisteners : 1, sizeof(*m->listeners));
    m->servers = calloc(nservers ? nservers : 1, sizeof(*m->servers));
    if (m->listeners == NULL || m->servers == NULL) {
        metrics_free(m);
        return -1;
    }
    m->nlisteners = nlisteners;
    m->nservers = nservers;
    return 0;
}

void
metrics_free(struct metrics *m)
{
    free(m->listeners);
    free(m->servers);
    m->listeners = NULL;
    m->servers = NULL;
    m->nlisteners = m->nservers = 0;
}

void
metrics_connect_ok(struct metrics_server *s, uint64_t ms)
{
    size_t i = 0;

    s->connects++;
    s->lat_sum_ms += ms;
    while (i < METRICS_LAT_BUCKETS && ms > metrics_lat_bounds_ms[i])
        i++;
    if (i < METRICS_LAT_BUCKETS)
        s->lat_bucket[i]++;
    /* Slower than the last bound: only in +Inf, which is the count. */
}

/* ---- sums over workers ---- */

/* One counter of another worker's, which that worker may be writing now. */
static uint64_t
rd(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void
add_n(uint64_t *to, const uint64_t *from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        to[i] += rd(&from[i]);
}

void
metrics_listener_add(struct metrics_listener *to, const struct metrics_listener *from,
                     bool gauges)
{
    if (gauges)
        to->active += rd(&from->active);
    add_n(to->ended, from->ended, METRICS_REASONS_MAX);
    to->bytes_in += rd(&from->bytes_in);
    to->bytes_out += rd(&from->bytes_out);
    add_n(to->proxy_errors, from->proxy_errors, 3);
    to->refused_maxconn += rd(&from->refused_maxconn);
}

void
metrics_server_add(struct metrics_server *to, const struct metrics_server *from, bool gauges)
{
    if (gauges)
        to->active += rd(&from->active);
    to->connects += rd(&from->connects);
    add_n(to->connect_errors, from->connect_errors, 3);
    to->attempts_abandoned += rd(&from->attempts_abandoned);
    add_n(to->lat_bucket, from->lat_bucket, METRICS_LAT_BUCKETS);
    to->lat_sum_ms += rd(&from->lat_sum_ms);
}

void
metrics_backend_add(struct metrics_backend *to, const struct metrics_backend *from, bool gauges)
{
    if (gauges)
        to->queued += rd(&from->queued);
}

/* ---- rendering ---- */

/* A label value: backslash, double quote and newline escaped (exposition format 0.0.4). */
static void
add_label_value(struct strbuf *b, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\')
            strbuf_add(b, "\\\\");
        else if (*p == '"')
            strbuf_add(b, "\\\"");
        else if (*p == '\n')
            strbuf_add(b, "\\n");
        else
            strbuf_addn(b, p, 1);
    }
}

static void
family(struct strbuf *b, const char *name, const char *type, const char *help)
{
    strbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k1="v1",k2="v2"...} value; labels is a NULL-terminated key, value list. */
static void
sample(struct strbuf *b, const char *name, const char *const *labels, const char *value)
{
    strbuf_add(b, name);
    if (labels[0] != NULL) {
        strbuf_add(b, "{");
        for (size_t i = 0; labels[i] != NULL; i += 2) {
            if (i > 0)
                strbuf_add(b, ",");
            strbuf_add(b, labels[i]);
            strbuf_add(b, "=\"");
            add_label_value(b, labels[i + 1]);
            strbuf_add(b, "\"");
        }
        strbuf_add(b, "}");
    }
    strbuf_add(b, " ");
    strbuf_add(b, value);
    strbuf_add(b, "\n");
}

static void
sample_u64(struct strbuf *b, const char *name, const char *const *labels, uint64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    sample(b, name, labels, num);
}

/* Milliseconds as seconds, exactly: "0.25", "12", "0.001". */
static void
ms_as_seconds(uint64_t ms, char *buf, size_t cap)
{
    if (ms % 1000 == 0) {
        snprintf(buf, cap, "%llu", (unsigned long long)(ms / 1000));
        return;
    }
    int n = snprintf(buf, cap, "%llu.%03llu", (unsigned long long)(ms / 1000),
                     (unsigned long long)(ms % 1000));
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = '\0';
}

static void
render_listeners(const struct metrics *m, struct strbuf *b)
{
    family(b, "mailedge_sessions_active", "gauge", "Sessions open now, per listener.");
    for (size_t i = 0; i < m->nlisteners; i++) {
        const char *l[] = {"listener", m->listeners[i].name, NULL};
        sample_u64(b, "mailedge_sessions_active", l, m->listeners[i].active);
    }
    family(b, "mailedge_sessions_total", "counter",
           "Sessions ended, per listener and end reason (the log's reason=).");
    for (size_t i = 0; i < m->nlisteners; i++) {
        for (size_t r = 0; r < m->nreasons && r < METRICS_REASONS_MAX; r++) {
            const char *l[] = {"listener", m->listeners[i].name, "reason", m->reason_names[r],
                               NULL};
            sample_u64(b, "mailedge_sessions_total", l, m->listeners[i].ended[r]);
        }
    }
    family(b, "mailedge_bytes_total", "counter",
           "Bytes relayed by ended sessions, per listener; direction in: client to server, "
           "out: to the client.");
    for (size_t i = 0; i < m->nlisteners; i++) {
        const char *in[] = {"listener", m->listeners[i].name, "direction", "in", NULL};
        const char *out[] = {"listener", m->listeners[i].name, "direction", "out", NULL};
        sample_u64(b, "mailedge_bytes_total", in, m->listeners[i].bytes_in);
        sample_u64(b, "mailedge_bytes_total", out, m->listeners[i].bytes_out);
    }
    family(b, "mailedge_maxconn_refusals_total", "counter",
           "Clients accepted only to get the protocol's try-again-later, because the process or "
           "the listener was at maxconn, per listener.");
    for (size_t i = 0; i < m->nlisteners; i++) {
        const char *l[] = {"listener", m->listeners[i].name, NULL};
        sample_u64(b, "mailedge_maxconn_refusals_total", l, m->listeners[i].refused_maxconn);
    }
    family(b, "mailedge_proxy_header_errors_total", "counter",
           "Inbound PROXY headers refused, per listener and reason.");
    for (size_t i = 0; i < m->nlisteners; i++) {
        for (size_t r = 0; r < 3; r++) {
            const char *l[] = {"listener", m->listeners[i].name, "reason", proxy_err_names[r],
                               NULL};
            sample_u64(b, "mailedge_proxy_header_errors_total", l, m->listeners[i].proxy_errors[r]);
        }
    }
}

static void
render_servers(const struct metrics *m, struct strbuf *b)
{
    family(b, "mailedge_server_connects_total", "counter",
           "Successful connects to a server, per backend and server.");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        const char *l[] = {"backend", s->backend, "server", s->name, NULL};
        sample_u64(b, "mailedge_server_connects_total", l, s->connects);
    }
    family(b, "mailedge_server_connect_errors_total", "counter",
           "Failed connects to a server, per backend, server and reason.");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        for (size_t r = 0; r < 3; r++) {
            const char *l[] = {"backend", s->backend,           "server", s->name,
                               "reason",  connect_err_names[r], NULL};
            sample_u64(b, "mailedge_server_connect_errors_total", l, s->connect_errors[r]);
        }
    }
    family(b, "mailedge_server_connect_attempts_abandoned_total", "counter",
           "Connect attempts of sessions given up because another address of the server "
           "connected first (Happy Eyeballs).");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        const char *l[] = {"backend", s->backend, "server", s->name, NULL};
        sample_u64(b, "mailedge_server_connect_attempts_abandoned_total", l, s->attempts_abandoned);
    }
    family(b, "mailedge_server_connect_duration_seconds", "histogram",
           "Time from connect start to connected, for successful connects.");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        uint64_t cum = 0;
        char le[24];
        for (size_t k = 0; k < METRICS_LAT_BUCKETS; k++) {
            cum += s->lat_bucket[k];
            ms_as_seconds(metrics_lat_bounds_ms[k], le, sizeof(le));
            const char *l[] = {"backend", s->backend, "server", s->name, "le", le, NULL};
            sample_u64(b, "mailedge_server_connect_duration_seconds_bucket", l, cum);
        }
        /* Summed over workers while they count, a bucket may be a connect
         * ahead of the count: never let +Inf be below a bucket. */
        uint64_t count = cum > s->connects ? cum : s->connects;
        const char *inf[] = {"backend", s->backend, "server", s->name, "le", "+Inf", NULL};
        sample_u64(b, "mailedge_server_connect_duration_seconds_bucket", inf, count);
        const char *l[] = {"backend", s->backend, "server", s->name, NULL};
        char sum[32];
        ms_as_seconds(s->lat_sum_ms, sum, sizeof(sum));
        sample(b, "mailedge_server_connect_duration_seconds_sum", l, sum);
        sample_u64(b, "mailedge_server_connect_duration_seconds_count", l, count);
    }
    family(b, "mailedge_server_up", "gauge",
           "1 when new sessions may use the server (always, without a health check).");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        const char *l[] = {"backend", s->backend, "server", s->name, NULL};
        sample_u64(b, "mailedge_server_up", l, s->up ? 1 : 0);
    }
    family(b, "mailedge_server_sessions_active", "gauge",
           "Sessions connecting or connected to the server now (what least-conn compares).");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        const char *l[] = {"backend", s->backend, "server", s->name, NULL};
        sample_u64(b, "mailedge_server_sessions_active", l, s->active);
    }
    family(b, "mailedge_server_check_failures_total", "counter",
           "Failed health checks, per backend, server and reason (checked servers only).");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        /* Result 0 is "passed", not a failure. */
        for (size_t r = 1; s->checked && r < m->ncheck_reasons && r < METRICS_CHECK_REASONS_MAX;
             r++) {
            const char *l[] = {
                "backend", s->backend, "server", s->name, "reason", m->check_reason_names[r], NULL};
            sample_u64(b, "mailedge_server_check_failures_total", l, s->check_failures[r]);
        }
    }
}

static void
render_reloads(const struct metrics *m, struct strbuf *b)
{
    family(b, "mailedge_reloads_total", "counter",
           "Configuration reloads (SIGHUP), by result: success, or failure (the old config stayed).");
    const char *ok[] = {"result", "success", NULL};
    const char *failed[] = {"result", "failure", NULL};
    const char *none[] = {NULL};
    sample_u64(b, "mailedge_reloads_total", ok, m->reloads_ok);
    sample_u64(b, "mailedge_reloads_total", failed, m->reloads_failed);
    family(b, "mailedge_config_last_reload_successful", "gauge",
           "1 when the last reload (or the start) succeeded, else 0.");
    sample_u64(b, "mailedge_config_last_reload_successful", none, m->last_reload_ok ? 1 : 0);
    family(b, "mailedge_config_last_reload_success_timestamp_seconds", "gauge",
           "Unix time of the last successful reload, or of the start.");
    sample_u64(b, "mailedge_config_last_reload_success_timestamp_seconds", none,
               m->last_reload_ok_time);
}

static void
abuse_family_u64(struct strbuf *b, const struct metrics *m, const char *name, const char *type,
                 const char *help, size_t offset)
{
    family(b, name, type, help);
    for (size_t i = 0; i < m->nlisteners; i++) {
        const struct abuse_stats *st = m->listeners[i].abuse;
        if (st == NULL)
            continue;
        const char *l[] = {"listener", m->listeners[i].name, NULL};
        uint64_t v;
        memcpy(&v, (const char *)st + offset, sizeof(v));
        sample_u64(b, name, l, v);
    }
}

static void
render_abuse(const struct metrics *m, struct strbuf *b)
{
    static const char *const refusal_names[] = {"", "limit_per_ip", "limit_rate", "banned"};
    _Static_assert(sizeof(refusal_names) / sizeof(refusal_names[0]) == ABUSE_VERDICT_COUNT,
                   "refusal_names must name every verdict");
    bool any = false;

    for (size_t i = 0; i < m->nlisteners; i++)
        any = any || m->listeners[i].abuse != NULL;
    if (!any)
        return;
    family(b, "mailedge_abuse_refusals_total", "counter",
           "Clients refused by abuse control before any backend connect, per listener and reason.");
    for (size_t i = 0; i < m->nlisteners; i++) {
        const struct abuse_stats *st = m->listeners[i].abuse;
        for (size_t r = 1; st != NULL && r < ABUSE_VERDICT_COUNT; r++) {
            const char *l[] = {"listener", m->listeners[i].name, "reason", refusal_names[r], NULL};
            sample_u64(b, "mailedge_abuse_refusals_total", l, st->refused[r]);
        }
    }
    abuse_family_u64(b, m, "mailedge_pregreet_total", "counter",
                     "SMTP clients that sent bytes before the server's greeting was relayed.",
                     offsetof(struct abuse_stats, pregreet));
    abuse_family_u64(b, m, "mailedge_bans_active", "gauge", "Bans in force now, per listener.",
                     offsetof(struct abuse_stats, bans_active));
    abuse_family_u64(b, m, "mailedge_bans_total", "counter",
                     "Bans started (automatic and by hand), per listener.",
                     offsetof(struct abuse_stats, bans_total));
    abuse_family_u64(b, m, "mailedge_abuse_table_entries", "gauge",
                     "Client keys tracked now, per listener.",
                     offsetof(struct abuse_stats, entries));
    abuse_family_u64(b, m, "mailedge_abuse_table_size", "gauge",
                     "Client keys a listener may track (limit table).",
                     offsetof(struct abuse_stats, capacity));
    abuse_family_u64(b, m, "mailedge_abuse_evictions_total", "counter",
                     "Idle client keys dropped to make room for new ones.",
                     offsetof(struct abuse_stats, evictions));
    abuse_family_u64(b, m, "mailedge_dominant_client_warnings_total", "counter",
                     "Warnings that one client address carried most of a listener's last 256 "
                     "sessions (a relay without a PROXY header?).",
                     offsetof(struct abuse_stats, dominant));
    abuse_family_u64(b, m, "mailedge_abuse_untracked_total", "counter",
                     "Clients admitted without a count: every tracked key had a session or a ban.",
                     offsetof(struct abuse_stats, untracked));
}

/* What operators alert on: health changes (flapping), lost log lines, the process. */
static void
render_ops(const struct metrics *m, struct strbuf *b)
{
    family(b, "mailedge_server_health_transitions_total", "counter",
           "Health transitions (up/down changes) of a checked server, per backend, server and the state it went to.");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        const char *up[] = {"backend", s->backend, "server", s->name, "to", "up", NULL};
        const char *down[] = {"backend", s->backend, "server", s->name, "to", "down", NULL};
        if (!s->checked)
            continue;
        sample_u64(b, "mailedge_server_health_transitions_total", up, s->went_up);
        sample_u64(b, "mailedge_server_health_transitions_total", down, s->went_down);
    }
    family(b, "mailedge_server_health_last_change_timestamp_seconds", "gauge",
           "Unix time of the last health change of a checked server (0: none yet).");
    for (size_t i = 0; i < m->nservers; i++) {
        const struct metrics_server *s = &m->servers[i];
        const char *l[] = {"backend", s->backend, "server", s->name, NULL};
        if (s->checked)
            sample_u64(b, "mailedge_server_health_last_change_timestamp_seconds", l,
                       s->last_change);
    }
    const char *none[] = {NULL};
    family(b, "mailedge_log_lines_failed_total", "counter",
           "Log lines that could not be written, or only in part (disk full, closed pipe).");
    sample_u64(b, "mailedge_log_lines_failed_total", none, m->log_lines_failed);
    if (!m->process_info)
        return;
    family(b, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    sample_u64(b, "process_start_time_seconds", none, m->process.start_time);
    family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    sample_u64(b, "process_open_fds", none, m->process.open_fds);
    family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    sample_u64(b, "process_max_fds", none, m->process.max_fds);
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    sample_u64(b, "process_resident_memory_bytes", none, m->process.resident_bytes);
}

const char *const metrics_sync_err_names[METRICS_SYNC_ERR_COUNT] = {
    [METRICS_SYNC_CONNECT] = "connect",         [METRICS_SYNC_TIMEOUT] = "timeout",
    [METRICS_SYNC_AUTH] = "auth",               [METRICS_SYNC_HTTP] = "http",
    [METRICS_SYNC_BAD_ANSWER] = "bad_answer",   [METRICS_SYNC_OVERSIZED] = "oversized",
};

/* Remote bans (src/edge/bouncer.c), when crowdsec is configured. */
static void
render_bansync(const struct metrics *m, struct strbuf *b)
{
    const struct metrics_bansync *s = &m->bansync;
    const char *none[] = {NULL};
    const char *ip[] = {"type", "ip", NULL}, *range[] = {"type", "range", NULL};

    family(b, "mailedge_remote_bans", "gauge",
           "Remote bans (CrowdSec decisions) held now, by type: single addresses or ranges.");
    sample_u64(b, "mailedge_remote_bans", ip, s->ips);
    sample_u64(b, "mailedge_remote_bans", range, s->ranges);
    family(b, "mailedge_ban_sync_up", "gauge",
           "1 when the last poll of the ban engine succeeded; 0: the last good set stays in force.");
    sample_u64(b, "mailedge_ban_sync_up", none, s->up);
    family(b, "mailedge_ban_sync_errors_total", "counter",
           "Failed polls of the ban engine, by kind.");
    for (size_t i = 0; i < METRICS_SYNC_ERR_COUNT; i++) {
        const char *l[] = {"kind", metrics_sync_err_names[i], NULL};
        sample_u64(b, "mailedge_ban_sync_errors_total", l, s->errors[i]);
    }
    family(b, "mailedge_ban_sync_last_success_timestamp_seconds", "gauge",
           "Unix time of the last successful poll of the ban engine (0: none yet).");
    sample_u64(b, "mailedge_ban_sync_last_success_timestamp_seconds", none, s->last_success);
    family(b, "mailedge_remote_decisions_ignored_total", "counter",
           "Decisions not enforced: a type other than ban (captcha unless crowdsec-captcha ban), "
           "left out by a filter, or unusable.");
    sample_u64(b, "mailedge_remote_decisions_ignored_total", none, s->ignored);
    family(b, "mailedge_remote_bans_dropped_total", "counter",
           "Decisions not kept because the remote-ban set was full (crowdsec-max-bans).");
    sample_u64(b, "mailedge_remote_bans_dropped_total", none, s->dropped_full);
    family(b, "mailedge_remote_ban_refusals_total", "counter",
           "Clients refused because of a remote ban.");
    sample_u64(b, "mailedge_remote_ban_refusals_total", none, s->refused);
}

/* One gauge or counter per worker, labelled with its index. */
static void
worker_family(struct strbuf *b, const struct metrics *m, const char *name, const char *type,
              const char *help, size_t offset)
{
    family(b, name, type, help);
    for (size_t i = 0; i < m->nworkers; i++) {
        char idx[24];
        uint64_t v;
        snprintf(idx, sizeof(idx), "%zu", i);
        const char *l[] = {"worker", idx, NULL};
        memcpy(&v, (const char *)&m->workers[i] + offset, sizeof(v));
        sample_u64(b, name, l, v);
    }
}

/* The worker processes (workers N; one with workers 1). */
static void
render_workers(const struct metrics *m, struct strbuf *b)
{
    const char *none[] = {NULL};
    uint64_t running = 0;

    for (size_t i = 0; i < m->nworkers; i++)
        running += m->workers[i].running;
    family(b, "mailedge_workers", "gauge", "Worker processes running now.");
    sample_u64(b, "mailedge_workers", none, running);
    worker_family(b, m, "mailedge_worker_restarts_total", "counter",
                  "Worker processes started again after one died, per worker index.",
                  offsetof(struct metrics_worker, restarts));
    worker_family(b, m, "mailedge_worker_start_time_seconds", "gauge",
                  "Start time of the worker's process, Unix seconds.",
                  offsetof(struct metrics_worker, start_time));
    worker_family(b, m, "mailedge_worker_sessions_active", "gauge",
                  "Sessions open now in the worker (lingering ones included).",
                  offsetof(struct metrics_worker, sessions));
    worker_family(b, m, "mailedge_worker_open_fds", "gauge",
                  "Open file descriptors of the worker (each has its own limit: "
                  "mailedge_descriptors_limit).",
                  offsetof(struct metrics_worker, open_fds));
    worker_family(b, m, "mailedge_worker_resident_memory_bytes", "gauge",
                  "Resident memory of the worker's process in bytes.",
                  offsetof(struct metrics_worker, resident_bytes));
}

int
metrics_render(const struct metrics *m, struct strbuf *out)
{
    family(out, "mailedge_build_info", "gauge", "Always 1; the version in a label.");
    const char *v[] = {"version", m->version != NULL ? m->version : "", NULL};
    sample(out, "mailedge_build_info", v, "1");
    render_listeners(m, out);
    render_servers(m, out);
    render_ops(m, out);
    render_abuse(m, out);
    if (m->fd_limit != 0) {
        const char *none[] = {NULL};
        family(out, "mailedge_descriptors_limit", "gauge",
               "RLIMIT_NOFILE when the configuration was last loaded.");
        sample_u64(out, "mailedge_descriptors_limit", none, m->fd_limit);
        family(out, "mailedge_descriptors_reserved", "gauge",
               "Descriptors kept for all but sessions: checks, resolver, admin, listeners.");
        sample_u64(out, "mailedge_descriptors_reserved", none, m->fd_reserved);
        family(out, "mailedge_maxconn", "gauge",
               "Sessions at most, for the whole process (configured, or derived from the limit).");
        sample_u64(out, "mailedge_maxconn", none, m->maxconn);
    }
    if (m->nbackends > 0) {
        family(out, "mailedge_queue_depth", "gauge",
               "Clients held now, per backend, waiting for a server to come up (queue-timeout).");
        for (size_t i = 0; i < m->nbackends; i++) {
            const char *l[] = {"backend", m->backends[i].name, NULL};
            sample_u64(out, "mailedge_queue_depth", l, m->backends[i].queued);
        }
    }
    if (m->reload_info)
        render_reloads(m, out);
    if (m->bansync.on)
        render_bansync(m, out);
    if (m->nworkers > 0)
        render_workers(m, out);
    return out->oom ? -1 : 0;
}
