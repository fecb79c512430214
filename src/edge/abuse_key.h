/*
 * abuse_key: how the abuse tables (src/edge/abuse.h) and the relay watch
 * (src/edge/dominant.h) name a client. Only the type, so that dominant can
 * keep keys without depending on the tables that use it.
 */
#ifndef MAILEDGE_ABUSE_KEY_H
#define MAILEDGE_ABUSE_KEY_H

#include <stdint.h>

/* A client: an IPv4 address, or an IPv6 address cut to its prefix. */
struct abuse_key {
    uint8_t a[16];    /* network order; 4 bytes used for IPv4, the rest zero */
    uint8_t family;   /* 4 or 6 */
    uint8_t prefix;   /* 32 for IPv4; the IPv6 prefix length */
};

#endif
