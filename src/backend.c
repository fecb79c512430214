/* backend: server selection for new sessions. */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"

int
backend_init(struct backend *b, const struct conf_backend *conf)
{
    b->conf = conf;
    b->next = 0;
    b->held_head = b->held_tail = NULL;
    b->nheld = 0;
    b->srv = calloc(conf->nservers ? conf->nservers : 1, sizeof(*b->srv));
    if (b->srv == NULL)
        return -1;
    for (size_t i = 0; i < conf->nservers; i++) {
        b->srv[i].up = conf->check == CHECK_NONE;
        b->srv[i].last_result = -1;
    }
    return 0;
}

void
backend_free(struct backend *b)
{
    free(b->srv);
    b->srv = NULL;
}

bool
backend_server_usable(const struct backend *b, const struct conf_server *srv)
{
    size_t i = (size_t)(srv - b->conf->servers);
    return i < b->conf->nservers && b->srv[i].up && (!srv->is_name || b->srv[i].naddrs > 0);
}

size_t
backend_servers_up(const struct backend *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->conf->nservers; i++)
        n += backend_server_usable(b, &b->conf->servers[i]);
    return n;
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
backend_server_addr(const struct backend *b, const struct conf_server *srv, size_t k,
                    unsigned route_port, struct sockaddr_storage *out)
{
    if (srv->is_name) {
        const struct backend_server *st = &b->srv[srv - b->conf->servers];
        if (k >= st->naddrs)
            return -1;
        memcpy(out, &st->addrs[k], sizeof(*out));
        addr_set_port((struct sockaddr *)out, srv->has_port ? srv->port : route_port);
    } else {
        if (k > 0)
            return -1;
        memcpy(out, &srv->addr, sizeof(*out));
        if (srv->has_port)
            return 0;
    }
    if (srv->has_port)
        return 0;
    if (route_port == 0)
        return -1;
    addr_set_port((struct sockaddr *)out, route_port);
    return 0;
}
