/*
 * roundtrip: `mailedge roundtrip`, the I/O half (libcurl easy handles,
 * one at a time). The pure half (options, marker, message, SEARCH replies,
 * push payloads) is roundtrip_msg.
 *
 * Every IMAP poll is a new connection, so the server shows a fresh view of
 * the mailbox and a stuck connection costs at most one --timeout; the
 * connection that found the message also deletes it and the leftovers.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "roundtrip.h"
#include "roundtrip_msg.h"
#include "util.h"

#define PASSWORD_MAX 1024   /* bytes, NUL included */
#define RESP_MAX (1u << 20) /* untagged IMAP replies we keep per command */
#define MSG_MAX 4096
#define URL_MAX 4096
#define REASON_MAX (CURL_ERROR_SIZE + 64)

struct run {
    struct rt_opts o;
    char password[PASSWORD_MAX];
    char smtp_password[PASSWORD_MAX];
    char token[RT_TOKEN_LEN + 1];
    char imap_url[URL_MAX];
    char errbuf[CURL_ERROR_SIZE];
    char reason[REASON_MAX];
};

static void
sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* The first line of <path>, without its line end. Returns 0, or -1 with <err> set. */
static int
read_password_file(const char *opt, const char *path, char *out, size_t cap, char *err,
                   size_t errcap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errcap, "%s %s: %s", opt, path, strerror(errno));
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            close(fd);
            snprintf(err, errcap, "%s %s: longer than %zu bytes", opt, path, cap - 1);
            return -1;
        }
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            snprintf(err, errcap, "%s %s: %s", opt, path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    out[len] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    if (out[0] == '\0') {
        snprintf(err, errcap, "%s %s: empty", opt, path);
        return -1;
    }
    return 0;
}

/* The password from <file> (wins) or <envval> into <out> (PASSWORD_MAX); -1 after a message. */
static int
load_password(const char *file, const char *envval, const char *envname, char *out)
{
    char err[512];
    if (file != NULL) {
        const char *opt =
            strcmp(envname, RT_ENV_PASSWORD) == 0 ? "--password-file" : "--smtp-password-file";
        if (read_password_file(opt, file, out, PASSWORD_MAX, err, sizeof(err)) == -1) {
            fprintf(stderr, "mailedge roundtrip: %s\n", err);
            return -1;
        }
        return 0;
    }
    if (envval == NULL || strlen(envval) >= PASSWORD_MAX) {
        fprintf(stderr, "mailedge roundtrip: $%s is %s\n", envname, envval ? "too long" : "unset");
        return -1;
    }
    memcpy(out, envval, strlen(envval) + 1);
    return 0;
}

/* --- libcurl glue */

struct upload {
    const char *data;
    size_t len, off;
};

static size_t
cb_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct upload *u = arg;
    size_t n = size * nitems;
    if (n > u->len - u->off)
        n = u->len - u->off;
    memcpy(buf, u->data + u->off, n);
    u->off += n;
    return n;
}

struct resp {
    char *data;
    size_t len;
};

static size_t
cb_collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct resp *r = arg;
    size_t n = size * nmemb;
    if (n > RESP_MAX - r->len)
        return 0; /* CURLE_WRITE_ERROR: a reply this big is not ours to keep */
    char *p = realloc(r->data, r->len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + r->len, ptr, n);
    r->len += n;
    p[r->len] = '\0';
    r->data = p;
    return n;
}

static size_t
cb_discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

/* A handle for the mail servers: timeouts, TLS policy, the error buffer. */
static CURL *
mail_handle(struct run *r, const char *url, const char *protocols)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    r->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)r->o.timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)r->o.timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    long ssl = r->o.starttls == RT_STARTTLS_REQUIRE ? (long)CURLUSESSL_ALL
               : r->o.starttls == RT_STARTTLS_TRY   ? (long)CURLUSESSL_TRY
                                                    : (long)CURLUSESSL_NONE;
    curl_easy_setopt(h, CURLOPT_USE_SSL, ssl);
    if (r->o.cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->o.cacert);
    if (r->o.insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return h;
}

static void
set_reason(struct run *r, CURLcode rc, const char *what)
{
    snprintf(r->reason, sizeof(r->reason), "%s%s%s", what ? what : "", what ? ": " : "",
             r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
}

/* --- SMTP */

static int
send_message(struct run *r)
{
    char msg[MSG_MAX];
    size_t len = rt_message(msg, sizeof(msg), r->o.from, r->o.to, r->o.job, r->token, time(NULL));
    if (len == 0) {
        snprintf(r->reason, sizeof(r->reason), "message does not fit");
        return -1;
    }
    CURL *h = mail_handle(r, r->o.smtp_url, "smtp,smtps");
    if (h == NULL) {
        snprintf(r->reason, sizeof(r->reason), "libcurl: cannot create a handle");
        return -1;
    }
    char from[RT_ADDR_MAX + 3], to[RT_ADDR_MAX + 3];
    snprintf(from, sizeof(from), "<%s>", r->o.from);
    snprintf(to, sizeof(to), "<%s>", r->o.to);
    struct curl_slist *rcpt = curl_slist_append(NULL, to);
    struct upload up = {.data = msg, .len = len};
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, cb_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    if (r->o.smtp_auth) {
        /* AUTH happens when the server offers it (after STARTTLS); a port 25
         * MX that offers none takes the message without. */
        curl_easy_setopt(h, CURLOPT_USERNAME, r->o.smtp_user ? r->o.smtp_user : r->o.user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, r->smtp_password);
    }
    CURLcode rc = rcpt != NULL ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
    if (rc != CURLE_OK)
        set_reason(r, rc, NULL);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}

/* --- IMAP */

static CURL *
imap_handle(struct run *r)
{
    CURL *h = mail_handle(r, r->imap_url, "imap,imaps");
    if (h == NULL)
        return NULL;
    curl_easy_setopt(h, CURLOPT_USERNAME, r->o.user);
    curl_easy_setopt(h, CURLOPT_PASSWORD, r->password);
    return h;
}

/* One custom command on <h>; its untagged replies in <out> (caller frees). */
static CURLcode
imap_command(struct run *r, CURL *h, const char *cmd, struct resp *out)
{
    out->data = NULL;
    out->len = 0;
    r->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, cmd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    return curl_easy_perform(h);
}

/* UID SEARCH for the run's message (<own>) or all of the job's; the count or -1. */
static int
imap_search(struct run *r, CURL *h, int own, uint32_t *uids, size_t cap, CURLcode *rcp)
{
    char cmd[256];
    if (rt_search_cmd(cmd, sizeof(cmd), r->o.job, own ? r->token : NULL) == 0)
        return -1;
    struct resp resp;
    CURLcode rc = imap_command(r, h, cmd, &resp);
    *rcp = rc;
    int n = -1;
    if (rc != CURLE_OK)
        set_reason(r, rc, "search");
    else if ((n = rt_search_parse(resp.data ? resp.data : "", resp.len, uids, cap)) < 0)
        snprintf(r->reason, sizeof(r->reason), "search: unexpected reply or more than %zu hits",
                 cap);
    free(resp.data);
    return n;
}

/* Marks <uids> \Deleted and expunges exactly them (UIDPLUS), else the mailbox. */
static int
imap_delete(struct run *r, CURL *h, const uint32_t *uids, size_t n)
{
    static char set[RT_UIDS_MAX * 11 + 1];
    if (rt_uid_set(set, sizeof(set), uids, n) == 0)
        return -1;
    static char cmd[sizeof(set) + 64];
    struct resp resp;
    snprintf(cmd, sizeof(cmd), "UID STORE %s +FLAGS.SILENT (\\Deleted)", set);
    CURLcode rc = imap_command(r, h, cmd, &resp);
    free(resp.data);
    if (rc != CURLE_OK) {
        set_reason(r, rc, "store \\Deleted");
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "UID EXPUNGE %s", set);
    rc = imap_command(r, h, cmd, &resp);
    free(resp.data);
    if (rc != CURLE_OK) {
        /* No UIDPLUS (RFC 4315): the mailbox is the monitor's own. */
        rc = imap_command(r, h, "EXPUNGE", &resp);
        free(resp.data);
    }
    if (rc != CURLE_OK) {
        set_reason(r, rc, "expunge");
        return -1;
    }
    return 0;
}

/*
 * Polls until the message is there. Returns 1 found (time in <found_at>),
 * 0 not found in time, -1 IMAP failed (login refused, or no search ever
 * answered). <*keep> is the handle of the last good search, for cleanup.
 */
static int
poll_message(struct run *r, uint64_t *found_at, CURL **keep)
{
    static uint32_t uids[RT_UIDS_MAX];
    int searched = 0;
    *keep = NULL;
    for (unsigned a = 1; a <= r->o.poll_attempts; a++) {
        if (a > 1)
            sleep_ms(r->o.poll_interval_ms);
        CURL *h = imap_handle(r);
        if (h == NULL) {
            snprintf(r->reason, sizeof(r->reason), "libcurl: cannot create a handle");
            return -1;
        }
        CURLcode rc = CURLE_OK;
        int n = imap_search(r, h, 1, uids, RT_UIDS_MAX, &rc);
        if (n > 0) {
            *found_at = util_monotonic_ms();
            *keep = h;
            return 1;
        }
        if (rc == CURLE_LOGIN_DENIED) {
            curl_easy_cleanup(h);
            return -1; /* a password or a missing mailbox (libcurl: the same code) */
        }
        if (n == 0) {
            searched = 1;
            if (a == r->o.poll_attempts) {
                *keep = h;
                break;
            }
        } else {
            fprintf(stderr, "mailedge roundtrip: imap poll %u/%u: %s\n", a, r->o.poll_attempts,
                    r->reason);
        }
        curl_easy_cleanup(h);
    }
    if (!searched)
        return -1;
    snprintf(r->reason, sizeof(r->reason), "not found after %u searches", r->o.poll_attempts);
    return 0;
}

/* Deletes the job's marked messages; returns how many, or -1. */
static int
cleanup(struct run *r, CURL *h)
{
    static uint32_t uids[RT_UIDS_MAX];
    char saved[REASON_MAX];
    memcpy(saved, r->reason, sizeof(saved));
    CURLcode rc;
    int n = imap_search(r, h, 0, uids, RT_UIDS_MAX, &rc);
    if (n > 0 && imap_delete(r, h, uids, (size_t)n) == -1)
        n = -1;
    if (n < 0)
        fprintf(stderr, "mailedge roundtrip: cleanup: %s\n", r->reason);
    memcpy(r->reason, saved, sizeof(saved));
    return n;
}

/* --- pushes */

static int
http_once(const char *url, const char *body, long timeout_ms, long *status, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (h == NULL)
        return -1;
    errbuf[0] = '\0';
    struct curl_slist *hdr = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mailedge-roundtrip/" MAILEDGE_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb_discard);
    if (body != NULL) {
        hdr = curl_slist_append(NULL, "Content-Type: text/plain; version=0.0.4");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    }
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    else if (errbuf[0] == '\0')
        snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}

/* RT_PUSH_ATTEMPTS tries with backoff; the URL is never printed (it may hold a token). */
static int
push(const struct run *r, const char *label, const char *url, const char *body)
{
    char errbuf[CURL_ERROR_SIZE];
    for (unsigned a = 1; a <= RT_PUSH_ATTEMPTS; a++) {
        if (a > 1)
            sleep_ms(rt_backoff_ms(r->o.backoff_ms, a - 1));
        long status;
        if (http_once(url, body, (long)r->o.timeout_ms, &status, errbuf) == 0) {
            if (status >= 200 && status < 300)
                return 0;
            fprintf(stderr, "mailedge roundtrip: push %s attempt %u/%d: HTTP %ld\n", label, a,
                    RT_PUSH_ATTEMPTS, status);
        } else {
            fprintf(stderr, "mailedge roundtrip: push %s attempt %u/%d: %s\n", label, a,
                    RT_PUSH_ATTEMPTS, errbuf);
        }
    }
    return -1;
}

/* --- the command */

static int
usage_error(const char *msg)
{
    fprintf(stderr, "mailedge roundtrip: %s\n(mailedge roundtrip --help lists the options)\n", msg);
    return RT_EXIT_USAGE;
}

int
roundtrip_main(int argc, char **argv)
{
    static struct run run;
    struct run *r = &run;
    char err[512];
    memset(r, 0, sizeof(*r));
    if (rt_parse_args(argc, argv, &r->o, err, sizeof(err)) == -1)
        return usage_error(err);
    if (r->o.help) {
        fputs(rt_usage(), stdout);
        return RT_EXIT_OK;
    }
    struct rt_env env = {.user = getenv(RT_ENV_USER),
                         .password = getenv(RT_ENV_PASSWORD),
                         .pushgateway = getenv(RT_ENV_PUSHGATEWAY),
                         .push_url = getenv(RT_ENV_PUSH_URL)};
    const char *envpw = env.password != NULL && env.password[0] != '\0' ? env.password : NULL;
    if (rt_check(&r->o, &env, r->o.password_file != NULL || envpw != NULL, err, sizeof(err)) == -1)
        return usage_error(err);
    if (load_password(r->o.password_file, envpw, RT_ENV_PASSWORD, r->password) == -1)
        return RT_EXIT_USAGE;
    const char *envsmtp = getenv(RT_ENV_SMTP_PASSWORD);
    if (envsmtp != NULL && envsmtp[0] == '\0')
        envsmtp = NULL;
    if (r->o.smtp_password_file == NULL && envsmtp == NULL)
        memcpy(r->smtp_password, r->password, sizeof(r->password));
    else if (load_password(r->o.smtp_password_file, envsmtp, RT_ENV_SMTP_PASSWORD,
                           r->smtp_password) == -1)
        return RT_EXIT_USAGE;
    if (rt_imap_url(r->imap_url, sizeof(r->imap_url), r->o.imap_url) == 0)
        return usage_error("--imap: URL too long");
    char pg_url[URL_MAX];
    if (r->o.pushgateway != NULL &&
        rt_pushgateway_url(pg_url, sizeof(pg_url), r->o.pushgateway, r->o.job, r->o.instance) == 0)
        return usage_error("--pushgateway: URL too long");

    uint8_t rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        fprintf(stderr, "mailedge roundtrip: getrandom: %s\n", strerror(errno));
        return RT_EXIT_FAILED;
    }
    rt_token(rnd, r->token);
    /* CURLOPT_NOSIGNAL also stops libcurl from ignoring SIGPIPE for us. */
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mailedge roundtrip: libcurl initialisation failed\n");
        return RT_EXIT_FAILED;
    }

    struct rt_result res = {0};
    int stale = -2; /* -2 cleanup not attempted, -1 failed */
    uint64_t t0 = util_monotonic_ms(), found_at = 0;
    if (send_message(r) == -1) {
        res.stage = "smtp";
    } else {
        CURL *h = NULL;
        int found = poll_message(r, &found_at, &h);
        if (found == 1) {
            res.ok = 1;
            res.duration_ms = found_at - t0;
        } else {
            res.stage = found == 0 ? "timeout" : "imap";
        }
        if (h != NULL) {
            int n = cleanup(r, h);
            /* the run's own message is one of the job's when it was found */
            stale = n < 0 ? -1 : n - (found == 1 && n > 0 ? 1 : 0);
            curl_easy_cleanup(h);
        }
    }
    if (!res.ok)
        res.reason = r->reason;
    res.finished = time(NULL);
    res.stale_deleted = stale > 0 ? (unsigned)stale : 0;

    /* Pushes: failures too, so a dead mail path shows as "down", not silence. */
    const char *pg_state = "none", *pu_state = "none";
    int configured = 0, pushed = 0;
    if (r->o.pushgateway != NULL) {
        char body[2048];
        configured++;
        if (rt_pushgateway_body(body, sizeof(body), &res) != 0 &&
            push(r, "pushgateway", pg_url, body) == 0) {
            pushed++;
            pg_state = "ok";
        } else {
            pg_state = "failed";
        }
    }
    if (r->o.push_url != NULL) {
        char url[URL_MAX];
        configured++;
        if (rt_push_url(url, sizeof(url), r->o.push_url, &res) != 0 &&
            push(r, "push-url", url, NULL) == 0) {
            pushed++;
            pu_state = "ok";
        } else {
            pu_state = "failed";
        }
    }
    curl_global_cleanup();

    char line[1024] = "";
    char num[32];
    rt_logfmt_add(line, sizeof(line), "roundtrip", res.ok ? "ok" : "failed");
    if (res.ok) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)res.duration_ms);
        rt_logfmt_add(line, sizeof(line), "duration_ms", num);
    } else {
        rt_logfmt_add(line, sizeof(line), "stage", res.stage);
        rt_logfmt_add(line, sizeof(line), "reason", res.reason);
    }
    rt_logfmt_add(line, sizeof(line), "token", r->token);
    if (stale >= 0) {
        snprintf(num, sizeof(num), "%d", stale);
        rt_logfmt_add(line, sizeof(line), "stale_deleted", num);
    } else if (stale == -1) {
        rt_logfmt_add(line, sizeof(line), "cleanup", "failed");
    }
    rt_logfmt_add(line, sizeof(line), "pushgateway", pg_state);
    rt_logfmt_add(line, sizeof(line), "push_url", pu_state);
    rt_logfmt_add(line, sizeof(line), "push",
                  configured == 0 ? "none"
                  : pushed > 0    ? "ok"
                                  : "failed");
    printf("%s\n", line);
    fflush(stdout);
    explicit_bzero(r->password, sizeof(r->password));
    explicit_bzero(r->smtp_password, sizeof(r->smtp_password));

    if (!res.ok)
        return RT_EXIT_FAILED;
    return configured > 0 && pushed == 0 ? RT_EXIT_PUSH_FAILED : RT_EXIT_OK;
}
