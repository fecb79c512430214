/*
 * notify: the service manager's side channel (systemd sd_notify): READY,
 * STOPPING, STATUS and the watchdog ping. Without libsystemd at build time,
 * or without $NOTIFY_SOCKET at run time, every call does nothing.
 */
#ifndef MAILEDGE_NOTIFY_H
#define MAILEDGE_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* True when the binary was built with libsystemd. */
bool notify_available(void);

/* Sends <state> ("READY=1", "STOPPING=1", ...) if a manager listens. */
void notify_send(const char *state);

/*
 * The interval at which to send "WATCHDOG=1" (half of WatchdogSec), in
 * milliseconds, or 0 when no watchdog is asked for.
 */
uint64_t notify_watchdog_ms(void);

/*
 * Socket activation: the number of listening sockets the service manager
 * passed (LISTEN_FDS, for this process by LISTEN_PID), numbered from
 * NOTIFY_LISTEN_FDS_START. Each is made non-blocking and close-on-exec; the
 * variables are removed from the environment. 0 when none, -1 (with errno)
 * when the variables are malformed or a descriptor is not a listening
 * stream socket.
 */
#define NOTIFY_LISTEN_FDS_START 3
int notify_listen_fds(void);

#endif
