/*
 * roundtrip: the `mailedge roundtrip` command. Sends a marked message over
 * SMTP, polls IMAP until it is there, deletes it and the marked leftovers
 * of earlier runs, and pushes the result to a Pushgateway and/or a push
 * monitor. A one-shot blocking command (libcurl for SMTP, IMAP and HTTP);
 * it never runs inside the proxy's event loop. docs/roundtrip.md.
 */
#ifndef MAILEDGE_ROUNDTRIP_H
#define MAILEDGE_ROUNDTRIP_H

/*
 * Runs the command; <argv>[0] is "roundtrip". Prints one logfmt line to
 * stdout; retries, push failures and usage errors go to stderr. Returns
 * the exit status: 0 ok and at least one configured push ok (or none
 * configured), 1 round trip failed, 2 ok but every push failed, 3 usage or
 * configuration error.
 */
int roundtrip_main(int argc, char **argv);

#endif
