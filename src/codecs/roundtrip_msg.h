/*
 * roundtrip_msg: the pure parts of `mailedge roundtrip`: options and their
 * checks, the marker, the test message, IMAP SEARCH replies, and what is
 * pushed (Pushgateway URL and body, push-monitor URL). No I/O: the caller
 * reads the environment, files, the clock and random bytes.
 */
#ifndef MAILEDGE_ROUNDTRIP_MSG_H
#define MAILEDGE_ROUNDTRIP_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Exit statuses (docs/roundtrip.md). */
#define RT_EXIT_OK 0
#define RT_EXIT_FAILED 1
#define RT_EXIT_PUSH_FAILED 2
#define RT_EXIT_USAGE 3

/* Defaults. */
#define RT_TIMEOUT_DEFAULT_MS 10000
#define RT_POLL_ATTEMPTS_DEFAULT 30
#define RT_POLL_INTERVAL_DEFAULT_MS 2000
#define RT_BACKOFF_DEFAULT_MS 1000
#define RT_PUSH_ATTEMPTS 3
#define RT_JOB_DEFAULT "mailedge_roundtrip"

/* Limits. */
#define RT_POLL_ATTEMPTS_MAX 1000
#define RT_TOKEN_LEN 32 /* hex characters of the 16 random bytes */
#define RT_NAME_MAX 64  /* --job, --instance */
#define RT_ADDR_MAX 254 /* --from, --to (RFC 5321 path limit) */
#define RT_UIDS_MAX 1000
#define RT_HEADER "X-Mailedge-Roundtrip"

/* The environment variables read (names documented in docs/roundtrip.md). */
#define RT_ENV_USER "MAILEDGE_ROUNDTRIP_USER"
#define RT_ENV_PASSWORD "MAILEDGE_ROUNDTRIP_PASSWORD"
#define RT_ENV_SMTP_PASSWORD "MAILEDGE_ROUNDTRIP_SMTP_PASSWORD"
#define RT_ENV_PUSHGATEWAY "MAILEDGE_ROUNDTRIP_PUSHGATEWAY"
#define RT_ENV_PUSH_URL "MAILEDGE_ROUNDTRIP_PUSH_URL"

enum rt_starttls {
    RT_STARTTLS_REQUIRE, /* smtp:// and imap:// must upgrade (default) */
    RT_STARTTLS_TRY,     /* upgrade when offered */
    RT_STARTTLS_OFF,     /* plaintext (tests, or a trusted network) */
};

struct rt_opts {
    const char *smtp_url; /* smtp:// or smtps:// */
    const char *imap_url; /* imap:// or imaps://, optional /MAILBOX */
    const char *user;
    const char *from, *to;
    const char *password_file;
    const char *smtp_user;          /* SMTP AUTH login when not the IMAP user */
    const char *smtp_password_file; /* its password, when not the IMAP one */
    const char *pushgateway;        /* http(s) base or full /metrics/job/... URL */
    const char *push_url;           /* http(s), Uptime Kuma style */
    const char *job;
    const char *instance;
    const char *cacert;
    int insecure;
    int smtp_auth; /* 1 unless --no-smtp-auth */
    enum rt_starttls starttls;
    uint64_t timeout_ms;
    uint64_t poll_interval_ms;
    uint64_t backoff_ms;
    unsigned poll_attempts;
    int help;
    /* Where the push URLs came from: command-line values may not carry
     * credentials (user:pass@). */
    int pushgateway_from_env, push_url_from_env;
};

/* What the environment supplies (NULL when unset). */
struct rt_env {
    const char *user;
    const char *password;
    const char *pushgateway;
    const char *push_url;
};

/*
 * Parses the command line (<argv>[0] is "roundtrip") into <o>, defaults
 * first. Returns 0, or -1 with a message in <err> (usage error: exit 3).
 * A password option (--password, --pass, -p...) is refused with a message
 * naming --password-file and MAILEDGE_ROUNDTRIP_PASSWORD.
 */
int rt_parse_args(int argc, char **argv, struct rt_opts *o, char *err, size_t errcap);

/*
 * Fills what the command line left unset from <env> (user, push URLs),
 * derives --from/--to from a user that is an address, and checks the
 * whole: URLs and their schemes, no credentials in command-line URLs,
 * addresses, job and instance names, a user and a password source.
 * <have_password> says whether a password will be available (env or file).
 * Returns 0, or -1 with a message in <err>.
 */
int rt_check(struct rt_opts *o, const struct rt_env *env, int have_password, char *err,
             size_t errcap);

/* Usage text for --help and usage errors. */
const char *rt_usage(void);

/*
 * Writes the 32-hex-digit token for 16 random bytes <rnd> into <out>
 * (capacity >= RT_TOKEN_LEN + 1).
 */
void rt_token(const uint8_t rnd[16], char *out);

/* Whether <s> is a token as rt_token makes them (32 lowercase hex digits). */
int rt_token_valid(const char *s);

/*
 * The marker header's value: "job=<job>; token=<token>". Returns its
 * length, or 0 when it does not fit.
 */
size_t rt_marker(char *buf, size_t cap, const char *job, const char *token);

/*
 * Extracts the token from a marker header value as rt_marker writes it
 * (whitespace around it tolerated). Returns 0 and the token in <token>
 * (capacity >= RT_TOKEN_LEN + 1), -1 when <value> is not a marker. <job>
 * (may be NULL) must match when given.
 */
int rt_marker_parse(const char *value, const char *job, char *token);

/*
 * The IMAP SEARCH criteria: the run's own message (<token> non-NULL) or
 * every message of the job (token NULL), as
 * `UID SEARCH HEADER X-Mailedge-Roundtrip "..."`. Returns the length, or 0.
 */
size_t rt_search_cmd(char *buf, size_t cap, const char *job, const char *token);

/*
 * The message, CRLF line ends, headers then a short body. <now> is the
 * Date. Returns its length, or 0 when it does not fit.
 */
size_t rt_message(char *buf, size_t cap, const char *from, const char *to, const char *job,
                  const char *token, time_t now);

/*
 * Collects the numbers of every `* SEARCH` line in an IMAP server's
 * untagged replies <data> (<len> bytes, not NUL-terminated; other lines are
 * skipped; a trailing "(MODSEQ n)" is ignored). Returns the count stored in
 * <uids> (at most <cap>), or -1 when a SEARCH line is malformed or there
 * are more than <cap> numbers.
 */
int rt_search_parse(const char *data, size_t len, uint32_t *uids, size_t cap);

/*
 * "1,5,7" for a UID set. Returns the length, or 0 when <n> is 0 or it
 * does not fit.
 */
size_t rt_uid_set(char *buf, size_t cap, const uint32_t *uids, size_t n);

/* IMAP mailbox URL: <url> with "/INBOX" added when it has no mailbox path. */
size_t rt_imap_url(char *buf, size_t cap, const char *url);

/* The outcome pushed and printed. */
struct rt_result {
    int ok;
    uint64_t duration_ms; /* send to found; meaningful when ok */
    time_t finished;      /* wall clock, for last_run_timestamp */
    const char *stage;    /* failure: "smtp", "imap", "timeout" */
    const char *reason;   /* failure: short text; may be NULL */
    unsigned stale_deleted;
};

/*
 * The Pushgateway URL: <base> (trailing slashes dropped) +
 * "/metrics/job/<job>" [+ "/instance/<instance>"], or <base> unchanged when
 * its path already holds "/metrics/job/". Returns the length, or 0.
 */
size_t rt_pushgateway_url(char *buf, size_t cap, const char *base, const char *job,
                          const char *instance);

/*
 * The text exposition body PUT to the Pushgateway: success, duration
 * (only when ok), last run timestamp, stale messages deleted. Returns the
 * length, or 0.
 */
size_t rt_pushgateway_body(char *buf, size_t cap, const struct rt_result *r);

/*
 * The push-monitor URL: <base> + "?" or "&" + "status=up&msg=OK&ping=<ms>"
 * on success, "status=down&msg=<stage: reason, percent-encoded>" on
 * failure. Returns the length, or 0.
 */
size_t rt_push_url(char *buf, size_t cap, const char *base, const struct rt_result *r);

/* Backoff before push attempt <attempt> + 1 (attempt >= 1): base << (attempt - 1). */
uint64_t rt_backoff_ms(uint64_t base_ms, unsigned attempt);

/*
 * Appends " key=value" to <buf> (NUL-terminated, capacity <cap>), quoting
 * the value logfmt-style when it holds spaces, quotes, '=' or controls
 * (controls become '?'). Truncates rather than overflows.
 */
void rt_logfmt_add(char *buf, size_t cap, const char *key, const char *value);

#endif
