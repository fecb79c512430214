/*
 * probe: the `mailedge probe [--timeout D] URL...` command. Checks that
 * every target answers like a live server of its kind (a greeting read in
 * full, then a polite goodbye and a FIN), for container health checks and
 * start-up gating. A one-shot command: it blocks, resolves names with
 * getaddrinfo and runs one thread per target; it never runs inside the
 * proxy's event loop.
 */
#ifndef MAILEDGE_PROBE_H
#define MAILEDGE_PROBE_H

/* Default per-target timeout, milliseconds. */
#define PROBE_TIMEOUT_DEFAULT_MS 5000

/*
 * Runs the command; <argv>[0] is "probe". Prints one line per target to
 * stdout and usage errors to stderr. Returns the exit status: 0 every target
 * live, 1 at least one not live, 2 usage error (bad option, URL or scheme).
 */
int probe_main(int argc, char **argv);

#endif
