/*
 * roundtrip_msg: options, marker, message, SEARCH replies and push payloads
 * of `mailedge roundtrip`. Pure: everything comes in as arguments.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "roundtrip_msg.h"
#include "util.h"

static void
seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Appends printf output at <*len>; returns -1 (and leaves *len) when it does not fit. */
static int
addf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len) {
        buf[*len] = '\0';
        return -1;
    }
    *len += (size_t)n;
    return 0;
}

const char *
rt_usage(void)
{
    return "usage: mailedge roundtrip --smtp URL --imap URL [options]\n"
           "  --smtp URL            smtp://host[:port] (STARTTLS) or smtps://host[:port]\n"
           "  --imap URL            imap://host[:port][/MAILBOX] (STARTTLS) or imaps://...\n"
           "  --user NAME           login for IMAP and SMTP AUTH (or $" RT_ENV_USER ")\n"
           "  --password-file PATH  password file (else $" RT_ENV_PASSWORD ")\n"
           "  --smtp-user NAME      SMTP AUTH login when it is not --user\n"
           "  --smtp-password-file PATH  its password (else $" RT_ENV_SMTP_PASSWORD "\n"
           "                        or the one above)\n"
           "  --from ADDR, --to ADDR  envelope and header addresses (default: the user)\n"
           "  --no-smtp-auth        send without AUTH (port 25, trusted network)\n"
           "  --starttls MODE       require (default), try or off, for smtp:// and imap://\n"
           "  --cacert FILE         CA certificates to verify servers with\n"
           "  --insecure            do not verify server certificates\n"
           "  --timeout D           per connection and per operation (default 10s)\n"
           "  --poll-attempts N     IMAP searches for the message (default 30)\n"
           "  --poll-interval D     between searches (default 2s)\n"
           "  --pushgateway URL     Prometheus Pushgateway (or $" RT_ENV_PUSHGATEWAY ")\n"
           "  --push-url URL        push monitor, HTTP GET (or $" RT_ENV_PUSH_URL ")\n"
           "  --job NAME            Pushgateway job and marker scope (default " RT_JOB_DEFAULT ")\n"
           "  --instance NAME       Pushgateway instance label\n"
           "  --backoff D           first push retry delay, doubled after (default 1s)\n"
           "exit: 0 ok and pushed, 1 round trip failed, 2 ok but every push failed, 3 usage\n";
}

enum {
    OPT_SMTP = 256,
    OPT_IMAP,
    OPT_USER,
    OPT_FROM,
    OPT_TO,
    OPT_PASSWORD_FILE,
    OPT_SMTP_USER,
    OPT_SMTP_PASSWORD_FILE,
    OPT_PUSHGATEWAY,
    OPT_PUSH_URL,
    OPT_JOB,
    OPT_INSTANCE,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_NO_SMTP_AUTH,
    OPT_STARTTLS,
    OPT_TIMEOUT,
    OPT_POLL_ATTEMPTS,
    OPT_POLL_INTERVAL,
    OPT_BACKOFF,
};

static const struct option longopts[] = {
    {"smtp", required_argument, NULL, OPT_SMTP},
    {"imap", required_argument, NULL, OPT_IMAP},
    {"user", required_argument, NULL, OPT_USER},
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"smtp-user", required_argument, NULL, OPT_SMTP_USER},
    {"smtp-password-file", required_argument, NULL, OPT_SMTP_PASSWORD_FILE},
    {"pushgateway", required_argument, NULL, OPT_PUSHGATEWAY},
    {"push-url", required_argument, NULL, OPT_PUSH_URL},
    {"job", required_argument, NULL, OPT_JOB},
    {"instance", required_argument, NULL, OPT_INSTANCE},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"no-smtp-auth", no_argument, NULL, OPT_NO_SMTP_AUTH},
    {"starttls", required_argument, NULL, OPT_STARTTLS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"poll-attempts", required_argument, NULL, OPT_POLL_ATTEMPTS},
    {"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
    {"backoff", required_argument, NULL, OPT_BACKOFF},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* --password, --password=x, --pass, --passwd, -p, -pX: a secret on the command line. */
static int
is_password_arg(const char *a)
{
    static const char *const names[] = {"--password", "--pass",          "--passwd",
                                        "--pw",       "--smtp-password", "--imap-password"};
    if (strncmp(a, "-p", 2) == 0)
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        size_t n = strlen(names[i]);
        if (strncmp(a, names[i], n) == 0 && (a[n] == '\0' || a[n] == '='))
            return 1;
    }
    return 0;
}

static int
parse_dur(const char *opt, const char *v, uint64_t min_ms, uint64_t *out, char *err, size_t cap)
{
    if (util_parse_duration(v, out) == -1) {
        seterr(err, cap, "%s: '%s' is not a duration (a number with ms, s, m or h: 10s)", opt, v);
        return -1;
    }
    if (*out < min_ms) {
        seterr(err, cap, "%s: '%s' is too short (at least %llums)", opt, v,
               (unsigned long long)min_ms);
        return -1;
    }
    return 0;
}

int
rt_parse_args(int argc, char **argv, struct rt_opts *o, char *err, size_t errcap)
{
    memset(o, 0, sizeof(*o));
    o->smtp_auth = 1;
    o->starttls = RT_STARTTLS_REQUIRE;
    o->timeout_ms = RT_TIMEOUT_DEFAULT_MS;
    o->poll_interval_ms = RT_POLL_INTERVAL_DEFAULT_MS;
    o->backoff_ms = RT_BACKOFF_DEFAULT_MS;
    o->poll_attempts = RT_POLL_ATTEMPTS_DEFAULT;
    o->job = RT_JOB_DEFAULT;

    /* Before getopt, which would take "--pass" for a prefix of "--password-file". */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        size_t fl = strncmp(argv[i], "--password-file", 15) == 0        ? 15
                    : strncmp(argv[i], "--smtp-password-file", 20) == 0 ? 20
                                                                        : 0;
        if (fl > 0 && (argv[i][fl] == '\0' || argv[i][fl] == '=')) {
            if (argv[i][fl] == '\0')
                i++; /* its value is a path, whatever it looks like */
            continue;
        }
        if (is_password_arg(argv[i])) {
            seterr(err, errcap,
                   "refusing a password on the command line (it shows in ps and shell "
                   "history): use --password-file PATH or $" RT_ENV_PASSWORD);
            return -1;
        }
    }

    optind = 0; /* GNU: start afresh (the command may be parsed more than once in tests) */
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        uint64_t v;
        switch (ch) {
        case OPT_SMTP:
            o->smtp_url = optarg;
            break;
        case OPT_IMAP:
            o->imap_url = optarg;
            break;
        case OPT_USER:
            o->user = optarg;
            break;
        case OPT_FROM:
            o->from = optarg;
            break;
        case OPT_TO:
            o->to = optarg;
            break;
        case OPT_PASSWORD_FILE:
            o->password_file = optarg;
            break;
        case OPT_SMTP_USER:
            o->smtp_user = optarg;
            break;
        case OPT_SMTP_PASSWORD_FILE:
            o->smtp_password_file = optarg;
            break;
        case OPT_PUSHGATEWAY:
            o->pushgateway = optarg;
            break;
        case OPT_PUSH_URL:
            o->push_url = optarg;
            break;
        case OPT_JOB:
            o->job = optarg;
            break;
        case OPT_INSTANCE:
            o->instance = optarg;
            break;
        case OPT_CACERT:
            o->cacert = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = 1;
            break;
        case OPT_NO_SMTP_AUTH:
            o->smtp_auth = 0;
            break;
        case OPT_STARTTLS:
            if (strcmp(optarg, "require") == 0)
                o->starttls = RT_STARTTLS_REQUIRE;
            else if (strcmp(optarg, "try") == 0)
                o->starttls = RT_STARTTLS_TRY;
            else if (strcmp(optarg, "off") == 0)
                o->starttls = RT_STARTTLS_OFF;
            else {
                seterr(err, errcap, "--starttls: '%s' is not require, try or off", optarg);
                return -1;
            }
            break;
        case OPT_TIMEOUT:
            if (parse_dur("--timeout", optarg, 100, &o->timeout_ms, err, errcap) == -1)
                return -1;
            break;
        case OPT_POLL_INTERVAL:
            if (parse_dur("--poll-interval", optarg, 0, &o->poll_interval_ms, err, errcap) == -1)
                return -1;
            break;
        case OPT_BACKOFF:
            if (parse_dur("--backoff", optarg, 0, &o->backoff_ms, err, errcap) == -1)
                return -1;
            break;
        case OPT_POLL_ATTEMPTS:
            if (util_parse_uint(optarg, RT_POLL_ATTEMPTS_MAX, &v) == -1 || v == 0) {
                seterr(err, errcap, "--poll-attempts: '%s' is not a number from 1 to %d", optarg,
                       RT_POLL_ATTEMPTS_MAX);
                return -1;
            }
            o->poll_attempts = (unsigned)v;
            break;
        case 'h':
            o->help = 1;
            return 0;
        case ':':
            seterr(err, errcap, "%s needs a value", argv[optind - 1]);
            return -1;
        default:
            if (optopt != 0 && optopt < 256)
                seterr(err, errcap, "unknown option '-%c'", optopt);
            else
                seterr(err, errcap, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        seterr(err, errcap, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    return 0;
}

/* "scheme://" prefix match, case-insensitive; returns the rest or NULL. */
static const char *
after_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    if (strncasecmp(url, scheme, n) != 0 || strncmp(url + n, "://", 3) != 0)
        return NULL;
    return url + n + 3;
}

/* Checks the authority of <rest> (after "://"): a host, no controls or spaces. */
static int
check_url_rest(const char *opt, const char *rest, int allow_userinfo, char *err, size_t cap)
{
    size_t auth = strcspn(rest, "/?#");
    if (auth == 0) {
        seterr(err, cap, "%s: the URL has no host", opt);
        return -1;
    }
    const char *at = memchr(rest, '@', auth);
    if (at != NULL && !allow_userinfo) {
        seterr(err, cap,
               "%s: refusing credentials in a command-line URL (use the user and password "
               "options, or pass the URL in the environment)",
               opt);
        return -1;
    }
    if (at != NULL && at + 1 == rest + auth) {
        seterr(err, cap, "%s: the URL has no host", opt);
        return -1;
    }
    for (const char *p = rest; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            seterr(err, cap, "%s: spaces and control characters are not allowed in a URL", opt);
            return -1;
        }
    }
    return 0;
}

static int
check_url(const char *opt, const char *url, const char *const *schemes, size_t nschemes,
          int allow_userinfo, char *err, size_t cap)
{
    for (size_t i = 0; i < nschemes; i++) {
        const char *rest = after_scheme(url, schemes[i]);
        if (rest != NULL)
            return check_url_rest(opt, rest, allow_userinfo, err, cap);
    }
    char want[64] = "";
    size_t len = 0;
    for (size_t i = 0; i < nschemes; i++)
        (void)addf(want, sizeof(want), &len, "%s%s://", i ? " or " : "", schemes[i]);
    seterr(err, cap, "%s: '%.200s' is not a %s URL", opt, url, want);
    return -1;
}

/* A mailbox address for the envelope and headers: local@domain, printable, no <>"(),;: or space. */
static int
addr_valid(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > RT_ADDR_MAX)
        return 0;
    const char *at = strrchr(a, '@');
    if (at == NULL || at == a || at[1] == '\0')
        return 0;
    for (const char *p = a; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7f || strchr("<>\"(),;:\\[]", c) != NULL)
            return 0;
    }
    return 1;
}

/* Job and instance: they go into a URL path, a header and a search string. */
static int
name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RT_NAME_MAX)
        return 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

int
rt_check(struct rt_opts *o, const struct rt_env *env, int have_password, char *err, size_t errcap)
{
    static const char *const smtp_schemes[] = {"smtp", "smtps"};
    static const char *const imap_schemes[] = {"imap", "imaps"};
    static const char *const http_schemes[] = {"http", "https"};

    if (o->smtp_url == NULL) {
        seterr(err, errcap, "--smtp URL is required");
        return -1;
    }
    if (o->imap_url == NULL) {
        seterr(err, errcap, "--imap URL is required");
        return -1;
    }
    if (check_url("--smtp", o->smtp_url, smtp_schemes, 2, 0, err, errcap) == -1 ||
        check_url("--imap", o->imap_url, imap_schemes, 2, 0, err, errcap) == -1)
        return -1;
    if (o->user == NULL && env != NULL && env->user != NULL && env->user[0] != '\0')
        o->user = env->user;
    if (o->pushgateway == NULL && env != NULL && env->pushgateway != NULL &&
        env->pushgateway[0] != '\0') {
        o->pushgateway = env->pushgateway;
        o->pushgateway_from_env = 1;
    }
    if (o->push_url == NULL && env != NULL && env->push_url != NULL && env->push_url[0] != '\0') {
        o->push_url = env->push_url;
        o->push_url_from_env = 1;
    }
    if (o->pushgateway != NULL && check_url("--pushgateway", o->pushgateway, http_schemes, 2,
                                            o->pushgateway_from_env, err, errcap) == -1)
        return -1;
    if (o->push_url != NULL) {
        if (check_url("--push-url", o->push_url, http_schemes, 2, o->push_url_from_env, err,
                      errcap) == -1)
            return -1;
        if (strchr(o->push_url, '#') != NULL) {
            seterr(err, errcap, "--push-url: a URL with a #fragment cannot take parameters");
            return -1;
        }
    }
    if (o->user == NULL || o->user[0] == '\0') {
        seterr(err, errcap, "no user: give --user NAME or set " RT_ENV_USER);
        return -1;
    }
    for (const char *p = o->user; *p; p++) {
        if ((unsigned char)*p < ' ' || *p == 0x7f) {
            seterr(err, errcap, "--user: control characters are not allowed");
            return -1;
        }
    }
    if (o->smtp_user != NULL) {
        if (o->smtp_user[0] == '\0') {
            seterr(err, errcap, "--smtp-user: empty");
            return -1;
        }
        for (const char *p = o->smtp_user; *p; p++) {
            if ((unsigned char)*p < ' ' || *p == 0x7f) {
                seterr(err, errcap, "--smtp-user: control characters are not allowed");
                return -1;
            }
        }
    }
    if (!o->smtp_auth && (o->smtp_user != NULL || o->smtp_password_file != NULL)) {
        seterr(err, errcap, "--no-smtp-auth contradicts --smtp-user and --smtp-password-file");
        return -1;
    }
    if (!have_password) {
        seterr(err, errcap, "no password: give --password-file PATH or set " RT_ENV_PASSWORD);
        return -1;
    }
    if (o->from == NULL && strchr(o->user, '@') != NULL)
        o->from = o->user;
    if (o->to == NULL && strchr(o->user, '@') != NULL)
        o->to = o->user;
    if (o->from == NULL || o->to == NULL) {
        seterr(err, errcap, "--%s ADDR is required when the user is not an address",
               o->from == NULL ? "from" : "to");
        return -1;
    }
    if (!addr_valid(o->from)) {
        seterr(err, errcap, "--from: '%.300s' is not a plain address (local@domain)", o->from);
        return -1;
    }
    if (!addr_valid(o->to)) {
        seterr(err, errcap, "--to: '%.300s' is not a plain address (local@domain)", o->to);
        return -1;
    }
    if (!name_valid(o->job)) {
        seterr(err, errcap, "--job: '%.100s' must be 1 to %d of A-Z a-z 0-9 _ - .", o->job,
               RT_NAME_MAX);
        return -1;
    }
    if (o->instance != NULL && !name_valid(o->instance)) {
        seterr(err, errcap, "--instance: '%.100s' must be 1 to %d of A-Z a-z 0-9 _ - .",
               o->instance, RT_NAME_MAX);
        return -1;
    }
    if (o->insecure && o->cacert != NULL) {
        seterr(err, errcap, "--insecure and --cacert contradict each other");
        return -1;
    }
    return 0;
}

void
rt_token(const uint8_t rnd[16], char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 16; i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[RT_TOKEN_LEN] = '\0';
}

int
rt_token_valid(const char *s)
{
    for (int i = 0; i < RT_TOKEN_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return s[RT_TOKEN_LEN] == '\0';
}

size_t
rt_marker(char *buf, size_t cap, const char *job, const char *token)
{
    size_t len = 0;
    if (addf(buf, cap, &len, "job=%s; token=%s", job, token) == -1)
        return 0;
    return len;
}

int
rt_marker_parse(const char *value, const char *job, char *token)
{
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "job=", 4) != 0)
        return -1;
    p += 4;
    const char *semi = strchr(p, ';');
    if (semi == NULL || semi == p)
        return -1;
    if (job != NULL && (strlen(job) != (size_t)(semi - p) || strncmp(p, job, strlen(job)) != 0))
        return -1;
    p = semi + 1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "token=", 6) != 0)
        return -1;
    p += 6;
    char t[RT_TOKEN_LEN + 1];
    size_t n = 0;
    while (n < RT_TOKEN_LEN && p[n] != '\0') {
        t[n] = p[n];
        n++;
    }
    t[n] = '\0';
    if (n != RT_TOKEN_LEN || !rt_token_valid(t))
        return -1;
    p += n;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p != '\0')
        return -1;
    memcpy(token, t, RT_TOKEN_LEN + 1);
    return 0;
}

size_t
rt_search_cmd(char *buf, size_t cap, const char *job, const char *token)
{
    size_t len = 0;
    /* SEARCH HEADER is a substring match: "job=NAME;" cannot match
     * "job=OTHERNAME;" because names have no ';' and start right after '='. */
    int rc = token != NULL
                 ? addf(buf, cap, &len, "UID SEARCH HEADER " RT_HEADER " \"token=%s\"", token)
                 : addf(buf, cap, &len, "UID SEARCH HEADER " RT_HEADER " \"job=%s;\"", job);
    return rc == -1 ? 0 : len;
}

size_t
rt_message(char *buf, size_t cap, const char *from, const char *to, const char *job,
           const char *token, time_t now)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL)
        return 0;
    const char *domain = strrchr(from, '@');
    domain = domain != NULL ? domain + 1 : "mailedge.invalid";
    size_t len = 0;
    if (addf(buf, cap, &len,
             "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n"
             "From: <%s>\r\n"
             "To: <%s>\r\n"
             "Subject: mailedge roundtrip %s\r\n"
             "Message-ID: <mailedge-roundtrip.%s@%s>\r\n" RT_HEADER ": job=%s; token=%s\r\n"
             "Auto-Submitted: auto-generated\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=us-ascii\r\n"
             "\r\n"
             "Sent by mailedge roundtrip to measure end-to-end delivery.\r\n"
             "It deletes this message itself once it has found it.\r\n",
             wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, from, to, token, token, domain, job, token) == -1)
        return 0;
    return len;
}

int
rt_search_parse(const char *data, size_t len, uint32_t *uids, size_t cap)
{
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && data[eol] != '\n')
            eol++;
        size_t end = eol;
        if (end > i && data[end - 1] == '\r')
            end--;
        /* one line: data[i, end) */
        if (end - i >= 8 && strncasecmp(data + i, "* SEARCH", 8) == 0 &&
            (end - i == 8 || data[i + 8] == ' ')) {
            size_t p = i + 8;
            while (p < end) {
                if (data[p] == ' ') {
                    p++;
                    continue;
                }
                if (data[p] == '(')
                    break; /* "(MODSEQ n)" (RFC 7162) ends the list */
                if (data[p] < '0' || data[p] > '9')
                    return -1;
                uint64_t v = 0;
                while (p < end && data[p] >= '0' && data[p] <= '9') {
                    v = v * 10 + (uint64_t)(data[p] - '0');
                    if (v > UINT32_MAX)
                        return -1;
                    p++;
                }
                if (p < end && data[p] != ' ')
                    return -1;
                if (v == 0 || n >= cap)
                    return -1;
                uids[n++] = (uint32_t)v;
            }
        }
        i = eol + 1;
    }
    return (int)n;
}

size_t
rt_uid_set(char *buf, size_t cap, const uint32_t *uids, size_t n)
{
    if (n == 0 || cap == 0)
        return 0;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (addf(buf, cap, &len, i ? ",%u" : "%u", (unsigned)uids[i]) == -1)
            return 0;
    }
    return len;
}

size_t
rt_imap_url(char *buf, size_t cap, const char *url)
{
    const char *rest = strstr(url, "://");
    size_t len = 0;
    if (rest == NULL)
        return 0;
    rest += 3;
    const char *path = rest + strcspn(rest, "/?#");
    if (*path == '/' && path[1] != '\0' && path[1] != '?' && path[1] != '#') {
        if (addf(buf, cap, &len, "%s", url) == -1)
            return 0;
        return len;
    }
    /* host part, then "/INBOX", then whatever followed ("?...") */
    const char *tail = *path == '/' ? path + 1 : path;
    if (addf(buf, cap, &len, "%.*s/INBOX%s", (int)(path - url), url, tail) == -1)
        return 0;
    return len;
}

size_t
rt_pushgateway_url(char *buf, size_t cap, const char *base, const char *job, const char *instance)
{
    size_t len = 0;
    const char *rest = strstr(base, "://");
    if (rest != NULL && strstr(rest, "/metrics/job/") != NULL)
        return addf(buf, cap, &len, "%s", base) == -1 ? 0 : len;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    if (addf(buf, cap, &len, "%.*s/metrics/job/%s", (int)n, base, job) == -1)
        return 0;
    if (instance != NULL && addf(buf, cap, &len, "/instance/%s", instance) == -1)
        return 0;
    return len;
}

size_t
rt_pushgateway_body(char *buf, size_t cap, const struct rt_result *r)
{
    size_t len = 0;
    if (addf(buf, cap, &len,
             "# HELP mailedge_roundtrip_success 1 when the last round trip found its message.\n"
             "# TYPE mailedge_roundtrip_success gauge\n"
             "mailedge_roundtrip_success %d\n",
             r->ok ? 1 : 0) == -1)
        return 0;
    if (r->ok && addf(buf, cap, &len,
                      "# HELP mailedge_roundtrip_duration_seconds From sending to finding the "
                      "message, last successful run.\n"
                      "# TYPE mailedge_roundtrip_duration_seconds gauge\n"
                      "mailedge_roundtrip_duration_seconds %llu.%03llu\n",
                      (unsigned long long)(r->duration_ms / 1000),
                      (unsigned long long)(r->duration_ms % 1000)) == -1)
        return 0;
    if (addf(buf, cap, &len,
             "# HELP mailedge_roundtrip_last_run_timestamp_seconds When the last run ended.\n"
             "# TYPE mailedge_roundtrip_last_run_timestamp_seconds gauge\n"
             "mailedge_roundtrip_last_run_timestamp_seconds %lld\n"
             "# HELP mailedge_roundtrip_stale_deleted Marked messages of earlier runs deleted "
             "by the last run.\n"
             "# TYPE mailedge_roundtrip_stale_deleted gauge\n"
             "mailedge_roundtrip_stale_deleted %u\n",
             (long long)r->finished, r->stale_deleted) == -1)
        return 0;
    return len;
}

/* Percent-encodes <s> (RFC 3986 unreserved kept) into a query value. */
static int
add_pct(char *buf, size_t cap, size_t *len, const char *s, size_t max_in)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < max_in && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (plain ? addf(buf, cap, len, "%c", c) == -1
                  : addf(buf, cap, len, "%%%c%c", hex[c >> 4], hex[c & 15]) == -1)
            return -1;
    }
    return 0;
}

size_t
rt_push_url(char *buf, size_t cap, const char *base, const struct rt_result *r)
{
    size_t len = 0;
    size_t n = strlen(base);
    const char *sep = strchr(base, '?') == NULL                               ? "?"
                      : (n > 0 && (base[n - 1] == '?' || base[n - 1] == '&')) ? ""
                                                                              : "&";
    if (addf(buf, cap, &len, "%s%s", base, sep) == -1)
        return 0;
    if (r->ok) {
        if (addf(buf, cap, &len, "status=up&msg=OK&ping=%llu",
                 (unsigned long long)r->duration_ms) == -1)
            return 0;
        return len;
    }
    if (addf(buf, cap, &len, "status=down&msg=") == -1 ||
        add_pct(buf, cap, &len, r->stage != NULL ? r->stage : "failed", 32) == -1)
        return 0;
    if (r->reason != NULL && r->reason[0] != '\0' &&
        (add_pct(buf, cap, &len, ": ", 2) == -1 || add_pct(buf, cap, &len, r->reason, 200) == -1))
        return 0;
    return len;
}

uint64_t
rt_backoff_ms(uint64_t base_ms, unsigned attempt)
{
    if (attempt == 0)
        return 0;
    unsigned shift = attempt - 1;
    if (shift > 16)
        shift = 16;
    uint64_t v = base_ms << shift;
    return (v >> shift) == base_ms ? v : UINT64_MAX;
}

void
rt_logfmt_add(char *buf, size_t cap, const char *key, const char *value)
{
    size_t len = strlen(buf);
    if (value == NULL)
        value = "";
    int quote = value[0] == '\0';
    for (const char *p = value; !quote && *p; p++) {
        unsigned char c = (unsigned char)*p;
        quote = c <= ' ' || c == '"' || c == '=' || c == 0x7f;
    }
    if (addf(buf, cap, &len, "%s%s=%s", len ? " " : "", key, quote ? "\"" : "") == -1)
        return;
    for (const char *p = value; *p; p++) {
        unsigned char c = (unsigned char)*p;
        int rc;
        if (c == '"' || c == '\\')
            rc = addf(buf, cap, &len, "\\%c", c);
        else if (c < ' ' || c == 0x7f)
            rc = addf(buf, cap, &len, "?");
        else
            rc = addf(buf, cap, &len, "%c", c);
        if (rc == -1)
            return;
    }
    if (quote)
        (void)addf(buf, cap, &len, "\"");
}
