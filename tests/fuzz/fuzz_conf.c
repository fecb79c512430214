/*
 * Fuzz target for the configuration loader: any text, includes disabled.
 * Besides memory errors it checks what the runtime relies on: success
 * means no diagnostics, every route points into the conf's own backends,
 * every port a connect needs is there, and failure leaves no conf.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct conf *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        const struct conf_backend *b = l->route.backend;
        if (l->nbinds == 0 || b == NULL || b < c->backends || b >= c->backends + c->nbackends)
            abort();
        if (conf_find_backend(c, b->name) != b || b->nservers == 0)
            abort();
        for (size_t s = 0; s < b->nservers; s++) {
            if (!b->servers[s].has_port && l->route.port == 0)
                abort();
        }
        if (l->timeout_proxy_ms == 0 || l->timeout_idle_ms == 0 || l->accept_proxy > 3)
            abort();
        if ((l->accept_proxy != 0) != (l->ntrusted != 0))
            abort();
        if (conf_proto_name(l->proto)[0] == '\0')
            abort();
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        if (c->backends[i].timeout_connect_ms == 0 || c->backends[i].name[0] == '\0')
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
