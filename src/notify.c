/* notify: sd_notify(3) when built with libsystemd (HAVE_SYSTEMD). */
#include "notify.h"

#include <stddef.h>

#if defined(HAVE_SYSTEMD) && HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

bool
notify_available(void)
{
    return true;
}

void
notify_send(const char *state)
{
    /* A datagram to a local socket: it does not block the loop. */
    (void)sd_notify(0, state);
}

uint64_t
notify_watchdog_ms(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    /* Ping at half the interval, as sd_watchdog_enabled(3) advises. */
    uint64_t ms = usec / 2000u;
    return ms > 0 ? ms : 1;
}
#else
bool
notify_available(void)
{
    return false;
}

void
notify_send(const char *state)
{
    (void)state;
}

uint64_t
notify_watchdog_ms(void)
{
    return 0;
}
#endif
