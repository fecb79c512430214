/*
 * Fuzz target for the configuration loader: any text, includes disabled.
 * Besides memory errors it checks what the runtime relies on: success
 * means no diagnostics, every route points into the conf's own backends,
 * every port a connect needs is there, SNI is read only on tls listeners,
 * and failure leaves no conf.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "conf.h"
#include "tlshello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A route the runtime may take: a backend of this conf, with a port for every server. */
static void
check_route(const struct conf *c, const struct conf_route *r)
{
    const struct conf_backend *b = r->backend;

    if (b == NULL || b < c->backends || b >= c->backends + c->nbackends)
        abort();
    if (conf_find_backend(c, b->name) != b || b->nservers == 0)
        abort();
    for (size_t s = 0; s < b->nservers; s++) {
        if (!b->servers[s].has_port && r->port == 0)
            abort();
    }
}

static void
check(const struct conf *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        if (l->nbinds == 0)
            abort();
        /* Only sni-required may leave out the default route. */
        if (l->route.backend != NULL || !l->sni_required)
            check_route(c, &l->route);
        if (l->route.backend == NULL && l->nsni_routes == 0)
            abort();
        for (size_t j = 0; j < l->nsni_routes; j++) {
            const struct conf_sni_route *r = &l->sni_routes[j];
            check_route(c, &r->route);
            if (r->nnames == 0)
                abort();
            for (size_t k = 0; k < r->nnames; k++) {
                /* Names are stored as the runtime compares them. */
                char norm[TH_HOST_MAX];
                const char *nm = r->names[k].name;
                if (tlshello_host_name((const uint8_t *)nm, strlen(nm), norm, sizeof(norm)) < 0 ||
                    strcmp(norm, nm) != 0)
                    abort();
                if (conf_listener_route(l, nm) == NULL)
                    abort();
            }
        }
        /* SNI is read only on tls listeners: server-first ones must never wait. */
        if ((l->nsni_routes > 0 || l->sni_required) && l->proto != PROTO_TLS)
            abort();
        if (l->peek_hello && l->proto != PROTO_TLS)
            abort();
        if (conf_listener_route(l, NULL) != (l->route.backend != NULL ? &l->route : NULL))
            abort();
        if (l->timeout_proxy_ms == 0 || l->timeout_idle_ms == 0 || l->timeout_hello_ms == 0 ||
            l->accept_proxy > 3)
            abort();
        if ((l->accept_proxy != 0) != (l->ntrusted != 0))
            abort();
        if (conf_proto_name(l->proto)[0] == '\0')
            abort();
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct conf_backend *b = &c->backends[i];
        if (b->timeout_connect_ms == 0 || b->name[0] == '\0')
            abort();
        if (b->send_authority && b->send_proxy != 2)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf *c = NULL;
    struct diag_list d = {0};

    int r = conf_load_string("fuzz.conf", (const char *)data, size, false, &c, &d);
    if (r == 0) {
        if (c == NULL || d.n != 0)
            abort();
        check(c);
    } else if (c != NULL || d.n == 0) {
        abort();
    }
    for (size_t i = 0; i < d.n; i++) {
        if (strlen(d.v[i].msg) >= sizeof(d.v[i].msg) || d.v[i].line < 0 || d.v[i].col < 0)
            abort();
    }
    FILE *null = fopen("/dev/null", "w");
    if (null != NULL) {
        diag_list_print(&d, null);
        fclose(null);
    }
    conf_free(c);
    diag_list_free(&d);
    return 0;
}
