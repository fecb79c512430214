/*
 * receiver: what the receiving side of a backend must say so that both ends
 * agree on the PROXY protocol (issue 18): Postfix master.cf service lines,
 * Dovecot settings, Stalwart listeners, with the ports, the PROXY version
 * and the edge's source addresses taken from the configuration. Pure: it
 * writes text to a stream; the caller finds the source addresses
 * (src/cmd/receiver_config.c). docs/operations.md, "Setting up the
 * receiving side", explains the output.
 */
#ifndef MAILEDGE_RECEIVER_H
#define MAILEDGE_RECEIVER_H

#include <stdio.h>
#include <sys/socket.h>

#include "conf.h"

/* Server software, as bits: --for picks some. */
#define RECEIVER_POSTFIX 1u
#define RECEIVER_DOVECOT 2u
#define RECEIVER_STALWART 4u
#define RECEIVER_ALL 7u

/* "postfix", "dovecot" or "stalwart" to its bit; 0: none of them. */
unsigned receiver_software(const char *name);

/*
 * Writes the settings of the receivers of backend <b> of <c>, for the
 * software in <which> that speaks its protocol (smtp: Postfix and Stalwart;
 * imap and pop3: Dovecot and Stalwart). <src> holds the <nsrc> addresses
 * the edge connects from (ports ignored); none: a placeholder is written.
 */
void receiver_print(FILE *out, const struct conf *c, const struct conf_backend *b,
                    const struct sockaddr_storage *src, size_t nsrc, unsigned which);

#endif
