/* ownaddr: the addresses mailedge itself listens on (src/edge/ownaddr.h). */
#include "ownaddr.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "listener.h"
#include "loop.h"
#include "sock.h"
#include "worker.h"

#define OWNADDR_MAX 256         /* local addresses kept; more are ignored */
#define OWNADDR_REFRESH_MS 1000

struct ownaddr {
    struct sockaddr_storage v[OWNADDR_MAX];
    size_t n;
    uint64_t at_ms;
    bool valid;
    unsigned port_lo, port_hi;  /* net.ipv4.ip_local_port_range */
    uint64_t ports_at_ms;
    bool ports_valid;
};

static bool
same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static void
refresh(struct ownaddr *o, uint64_t now)
{
    struct ifaddrs *ifa;

    o->at_ms = now;
    if (getifaddrs(&ifa) == -1)
        return; /* keep what we knew: out of descriptors, most likely */
    o->n = 0;
    for (struct ifaddrs *i = ifa; i != NULL && o->n < OWNADDR_MAX; i = i->ifa_next) {
        if (i->ifa_addr == NULL)
            continue;
        if (i->ifa_addr->sa_family == AF_INET)
            memcpy(&o->v[o->n++], i->ifa_addr, sizeof(struct sockaddr_in));
        else if (i->ifa_addr->sa_family == AF_INET6)
            memcpy(&o->v[o->n++], i->ifa_addr, sizeof(struct sockaddr_in6));
    }
    freeifaddrs(ifa);
    o->valid = true;
}

static struct ownaddr *
own(struct worker *w)
{
    if (w->own == NULL)
        w->own = calloc(1, sizeof(*w->own));
    return w->own;
}

static bool
is_local(struct worker *w, const struct sockaddr *dst)
{
    uint64_t now = loop_now(w->loop);

    if (own(w) == NULL)
        return false;
    if (!w->own->valid || now - w->own->at_ms >= OWNADDR_REFRESH_MS)
        refresh(w->own, now);
    for (size_t i = 0; i < w->own->n; i++)
        if (same_ip((const struct sockaddr *)&w->own->v[i], dst))
            return true;
    return false;
}

bool
ownaddr_is_listener(struct worker *w, const struct sockaddr *dst)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        const struct listener *l = &w->listeners[i];
        if (l->io.fd < 0 || l->bind == NULL)
            continue;
        const struct sockaddr *b = (const struct sockaddr *)&l->bind->addr;
        if (addr_reaches_bind(dst, b, l->bind->any))
            return true;
        if (addr_wildcard_covers(dst, b, l->bind->any) && is_local(w, dst))
            return true;
    }
    return false;
}

/*
 * Whether the kernel may pick <port> as the source port of a connect (the
 * ephemeral range, read at most once a second). Unknown: yes.
 */
static bool
ephemeral(struct worker *w, unsigned port)
{
    struct ownaddr *o = own(w);
    uint64_t now = loop_now(w->loop);
    if (o == NULL)
        return true;
    if (!o->ports_valid || now - o->ports_at_ms >= OWNADDR_REFRESH_MS) {
        FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
        o->ports_at_ms = now;
        o->ports_valid = f != NULL && fscanf(f, "%u %u", &o->port_lo, &o->port_hi) == 2;
        if (f != NULL)
            fclose(f);
    }
    return !o->ports_valid || (port >= o->port_lo && port <= o->port_hi);
}

bool
ownaddr_is_self_connection(struct worker *w, int fd, const struct sockaddr *dst)
{
    struct sockaddr_storage local;

    /* Only a connect that stayed on this host, to a port the kernel could
     * have picked as its own source port, can meet itself. */
    if (!addr_is_this_host(dst) || !ephemeral(w, addr_port(dst)) || sock_local(fd, &local) == -1)
        return false;
    return addr_equal((const struct sockaddr *)&local, dst);
}

void
ownaddr_free(struct worker *w)
{
    free(w->own);
    w->own = NULL;
}
