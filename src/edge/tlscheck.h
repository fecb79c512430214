/*
 * tlscheck: the client side of a TLS health check (OpenSSL on the check's
 * own non-blocking socket). Liveness only: the certificate is not verified
 * (the server is addressed by IP, and a check must not fail over a renewal);
 * an optional server name goes in the ClientHello for servers that pick
 * their certificate by it. src/edge/check.c drives these from its state machine.
 */
#ifndef MAILEDGE_TLSCHECK_H
#define MAILEDGE_TLSCHECK_H

#include <stddef.h>
#include <sys/types.h>

struct tlscheck;

enum tlscheck_io {
    TLSC_DONE,   /* finished (handshake) or bytes moved (read, write) */
    TLSC_WANT,   /* call again when the socket is readable or writable */
    TLSC_CLOSED, /* the server closed: close_notify, or a FIN without one */
    TLSC_ERROR,  /* a TLS or socket error; tlscheck_error() says which */
};

/* A TLS client on connected socket fd (not owned), asking for sni when not
 * NULL or "". NULL when out of memory or OpenSSL cannot start. */
struct tlscheck *tlscheck_new(int fd, const char *sni);

/* Advances the handshake. */
enum tlscheck_io tlscheck_handshake(struct tlscheck *t);

/* Reads application data: TLSC_DONE with *n > 0 bytes in buf. */
enum tlscheck_io tlscheck_read(struct tlscheck *t, void *buf, size_t cap, size_t *n);

/* Writes all of buf (a command line) as one record: TLSC_DONE, or
 * TLSC_ERROR/TLSC_CLOSED; TLSC_WANT (a full socket buffer) is reported as
 * an error, since a check writes a few bytes to an empty socket. */
enum tlscheck_io tlscheck_write(struct tlscheck *t, const void *buf, size_t len);

/* Sends close_notify (once; what the socket takes now). */
void tlscheck_close_notify(struct tlscheck *t);

/* What went wrong, for the log: OpenSSL's reason or the system error. */
const char *tlscheck_error(const struct tlscheck *t);

void tlscheck_free(struct tlscheck *t);

#endif
