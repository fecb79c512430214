/*
 * sock: thin wrappers for non-blocking TCP sockets. Every descriptor is
 * created SOCK_NONBLOCK | SOCK_CLOEXEC. Functions return -1 and leave errno
 * set; they never log (the caller knows the context).
 */
#ifndef MAILEDGE_SOCK_H
#define MAILEDGE_SOCK_H

#include <stdbool.h>
#include <sys/socket.h>

/*
 * A listening socket on <sa> with SO_REUSEADDR and TCP_NODELAY (inherited
 * by accepted sockets). <dualstack> clears IPV6_V6ONLY on an IPv6 wildcard
 * so one socket takes both families; other IPv6 sockets are v6-only.
 * <reuseport> sets SO_REUSEPORT (several workers on one address).
 */
int sock_listen(const struct sockaddr *sa, bool dualstack, bool reuseport, int backlog);

/*
 * Accepts one connection; <peer> gets its address with IPv4-mapped
 * addresses rewritten as IPv4. Returns the descriptor, or -1 (EAGAIN when
 * nothing is pending).
 */
int sock_accept(int lfd, struct sockaddr_storage *peer);

/*
 * Starts a non-blocking connect to <sa> from <src> (NULL: any). Returns the
 * descriptor (the connect may still be in progress), or -1. <delay_acks>:
 * sock_delay_acks() before the connect, for a caller that writes the moment
 * the connection is up (a PROXY header): the handshake's last ACK then
 * rides on that write instead of going alone (without a write it would
 * wait for the delayed-ACK timer, up to 200 ms, and leave the mode).
 */
int sock_connect(const struct sockaddr *sa, const struct sockaddr *src, bool delay_acks);

/*
 * Puts <fd> in the delayed-ACK (interactive) mode from the start
 * (TCP_QUICKACK 0): an ACK for bytes received waits a moment for data going
 * the other way to ride on, as the kernel does by itself once it has seen
 * a conversation. A mail session is one: every command and reply is
 * answered, so most pure ACKs are saved (2 of 24 segments of a short SMTP
 * session, 3 with delay_acks). Bulk is unchanged: every second full segment
 * is acknowledged at once in either mode. Best effort.
 */
void sock_delay_acks(int fd);

/* The pending socket error (SO_ERROR), 0 when none. */
int sock_error(int fd);

/* The local address of <fd>, IPv4-mapped rewritten as IPv4. -1 on failure. */
int sock_local(int fd, struct sockaddr_storage *out);

/* EMFILE, ENFILE, ENOBUFS, ENOMEM: out of descriptors or memory, for now. */
bool sock_exhausted(int err);

#endif
