/*
 * check: active health checks, one small session per checked server, in
 * the worker's loop (a socket, a timer, no threads, nothing blocking).
 * A check connects, sends the backend's PROXY header (with the checker's
 * own real addresses, never v1 UNKNOWN or v2 LOCAL) in one write unless
 * the check says otherwise, completes a TLS handshake for the TLS kinds,
 * reads the whole greeting before writing a byte, says QUIT/LOGOUT, reads
 * the answer and closes with close_notify (TLS) and a FIN (docs/config.md,
 * "check"). Results go to the server's state in struct backend; rise and
 * fall decide up/down. A server that is down is logged when it starts
 * failing and again at a falling rate while it stays down.
 */
#ifndef MAILEDGE_CHECK_H
#define MAILEDGE_CHECK_H

#include <stddef.h>

struct backend;
struct loop;
struct checks;

/* Why a check failed (CHECK_PASSED: it did not). Labels in logs and metrics. */
enum check_result {
    CHECK_PASSED,
    CHECK_L4_REFUSED,   /* connect refused */
    CHECK_L4_TIMEOUT,   /* connect did not finish in time */
    CHECK_L4_ERROR,     /* another connect or socket error (unreachable, out of descriptors) */
    CHECK_BAD_GREETING, /* not a greeting of the protocol, * BYE, -ERR, bad reply to QUIT */
    CHECK_4XX,          /* SMTP 4xx greeting (421: not available) */
    CHECK_5XX,          /* SMTP 5xx greeting */
    CHECK_READ_TIMEOUT, /* connected, but the reply did not come in time */
    CHECK_CLOSED_EARLY, /* the server closed or reset before the exchange ended */
    CHECK_TLS_FAILED,   /* TLS checks: the handshake failed (an alert, not TLS at all) */
    CHECK_RESULT_COUNT
};

/* "passed", "l4_refused", ... */
const char *check_result_name(enum check_result r);

/*
 * Creates a check in <loop> for every server of every backend with a check
 * among <backends>[0..<nbackends>) (a generation's) and schedules the first
 * one at once; *<out> is the set (NULL when no server is checked). Returns
 * 0, or -1 when out of memory (logged); *<out> may then hold the checks
 * made so far, for check_free_all().
 */
int check_start_all(struct checks **out, struct loop *loop, struct backend *backends,
                    size_t nbackends);

/* Stops every check of <cs> (drain): closes its socket, cancels its timer.
 * Idempotent; NULL is a no-op. */
void check_stop_all(struct checks *cs);

/* Stops and frees every check of *<cs>, and sets it to NULL. */
void check_free_all(struct checks **cs);

#endif
