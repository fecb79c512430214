/* backend: server selection for new sessions. */
#include "backend.h"

#include <string.h>

#include "addr.h"

void
backend_init(struct backend *b, const struct conf_backend *conf)
{
    b->conf = conf;
    b->next = 0;
}

size_t
backend_first(struct backend *b)
{
    if (b->conf->balance == BALANCE_FIRST || b->conf->nservers == 0)
        return 0;
    size_t i = b->next % b->conf->nservers;
    b->next = i + 1;
    return i;
}

const struct conf_server *
backend_server_at(const struct backend *b, size_t first, size_t attempt)
{
    if (attempt >= b->conf->nservers)
        return NULL;
    return &b->conf->servers[(first + attempt) % b->conf->nservers];
}

int
backend_server_addr(const struct conf_server *srv, unsigned route_port,
                    struct sockaddr_storage *out)
{
    memcpy(out, &srv->addr, sizeof(*out));
    if (srv->has_port)
        return 0;
    if (route_port == 0)
        return -1;
    addr_set_port((struct sockaddr *)out, route_port);
    return 0;
}
