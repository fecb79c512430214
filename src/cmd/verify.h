/*
 * verify: the `mailedge verify [-c FILE] [BACKEND...]` command. For every
 * server of every (named) backend that an smtp, submission, imap or pop3
 * listener routes to, one connection with an IPv4 documentation client
 * (192.0.2.10) and one with an IPv6 one (2001:db8::10) in the backend's
 * PROXY header, made the way sessions connect (Happy Eyeballs through the
 * connector, the backend's PROXY version, the header in one write); it reads the whole greeting, says QUIT/LOGOUT, reads the answer
 * and closes with a FIN. src/codecs/pxverify.c names the outcome. A
 * one-shot blocking command (one thread per server), like probe.
 */
#ifndef MAILEDGE_VERIFY_H
#define MAILEDGE_VERIFY_H

/*
 * Runs the command; <argv>[0] is "verify". Prints one line per server and
 * client family to stdout. Returns 0 when every receiver agrees, 1 when one
 * does not, 2 on a usage error (bad option, unknown backend, a config that
 * does not load).
 */
int verify_main(int argc, char **argv, const char *default_conf);

#endif
