/*
 * ownaddr: whether an address a session is about to connect to is one of
 * mailedge's own listening sockets, so that a route back to ourselves (a
 * host name, or a local address under a wildcard bind, that the config
 * check could not see) ends at the first session instead of making it
 * connect to mailedge again and again.
 */
#ifndef MAILEDGE_OWNADDR_H
#define MAILEDGE_OWNADDR_H

#include <stdbool.h>
#include <sys/socket.h>

struct worker;

/*
 * True when a connect to <dst> would reach a listening socket of <w>'s
 * current listeners: the same address, a loopback address on a wildcard
 * bind's port, or one of the host's addresses on it (getifaddrs, asked at
 * most once a second, and only when the port is a wildcard bind's).
 */
bool ownaddr_is_listener(struct worker *w, const struct sockaddr *dst);

/*
 * True when the connected socket <fd> to <dst> is connected to itself
 * (a loopback connect to a free port in the ephemeral range can be).
 * A port outside net.ipv4.ip_local_port_range needs no getsockname(2).
 */
bool ownaddr_is_self_connection(struct worker *w, int fd, const struct sockaddr *dst);

/* Frees the address cache of <w>. */
void ownaddr_free(struct worker *w);

#endif
