/*
 * Unit tests for mailreply: SMTP multi-line greetings, IMAP, POP3, Redis
 * and the PostgreSQL answer to a StartupMessage (byte vectors, as
 * PostgreSQL 15 sends them); every truncation of a complete reply is
 * NEED_MORE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailreply.h"
#include "testutil.h"
#include "util.h"

struct case_ {
    enum mr_kind kind;
    const char *in;
    enum mr_result want;
    int code;        /* SMTP code expected, or 0 */
    const char *why; /* MR_BAD: expected reason; else NULL */
};

static const struct case_ cases[] = {
    {MR_SMTP_GREETING, "220 mx.example ESMTP\r\n", MR_OK, 220, NULL},
    {MR_SMTP_GREETING, "220\r\n", MR_OK, 220, NULL},
    {MR_SMTP_GREETING, "220 bare LF\n", MR_OK, 220, NULL},
    {MR_SMTP_GREETING, "220-mx.example ESMTP\r\n220-more\r\n220 done\r\n", MR_OK, 220, NULL},
    {MR_SMTP_GREETING, "220-postscreen\r\n", MR_NEED_MORE, 0, NULL},
    {MR_SMTP_GREETING, "220-a\r\n220-b\r\n", MR_NEED_MORE, 0, NULL},
    {MR_SMTP_GREETING, "554 5.7.1 go away\r\n", MR_BAD, 554, "greeting refuses service (5xx)"},
    {MR_SMTP_GREETING, "421 4.3.2 busy\r\n", MR_BAD, 421, "service not available (421)"},
    {MR_SMTP_GREETING, "450 later\r\n", MR_BAD, 450, "temporary failure greeting (4xx)"},
    {MR_SMTP_GREETING, "250 hello\r\n", MR_BAD, 250, "greeting is not 220"},
    {MR_SMTP_GREETING, "220-a\r\n554 b\r\n", MR_BAD, 220, "reply lines disagree on the code"},
    {MR_SMTP_GREETING, "HTTP/1.1 400 Bad Request\r\n", MR_BAD, 0, "not an SMTP reply"},
    {MR_SMTP_GREETING, "H", MR_BAD, 0, "not an SMTP reply"},
    {MR_SMTP_GREETING, "22x", MR_BAD, 0, "not an SMTP reply"},
    {MR_SMTP_GREETING, "2200 x\r\n", MR_BAD, 0, "not an SMTP reply"},
    {MR_SMTP_GREETING, "* OK imap\r\n", MR_BAD, 0, "not an SMTP reply"},
    {MR_SMTP_GREETING, "22\r\n", MR_BAD, 0, "not an SMTP reply"},
    {MR_SMTP_GREETING, "", MR_NEED_MORE, 0, NULL},
    {MR_SMTP_QUIT, "221 2.0.0 Bye\r\n", MR_OK, 221, NULL},
    {MR_SMTP_QUIT, "250 ok\r\n", MR_BAD, 250, "unexpected reply to QUIT"},
    {MR_IMAP_GREETING, "* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n", MR_OK, 0, NULL},
    {MR_IMAP_GREETING, "* ok ready\r\n", MR_OK, 0, NULL},
    {MR_IMAP_GREETING, "* OK\r\n", MR_OK, 0, NULL},
    {MR_IMAP_GREETING, "* PREAUTH logged in\r\n", MR_OK, 0, NULL},
    {MR_IMAP_GREETING, "* BYE too many connections\r\n", MR_BAD, 0, "server said BYE"},
    {MR_IMAP_GREETING, "* OKAY\r\n", MR_BAD, 0, "not an IMAP greeting"},
    {MR_IMAP_GREETING, "220 smtp\r\n", MR_BAD, 0, "not an IMAP greeting"},
    {MR_IMAP_GREETING, "*x", MR_BAD, 0, "not an IMAP greeting"},
    {MR_IMAP_GREETING, "* OK", MR_NEED_MORE, 0, NULL},
    {MR_IMAP_LOGOUT, "* BYE Logging out\r\na OK Logout completed.\r\n", MR_OK, 0, NULL},
    {MR_IMAP_LOGOUT, "a OK\r\n", MR_OK, 0, NULL},
    {MR_IMAP_LOGOUT, "* BYE Logging out\r\n", MR_NEED_MORE, 0, NULL},
    {MR_IMAP_LOGOUT, "a BAD no\r\n", MR_BAD, 0, "LOGOUT not OK"},
    {MR_IMAP_LOGOUT, "b OK\r\n", MR_BAD, 0, "unexpected reply to LOGOUT"},
    {MR_POP3_STATUS, "+OK Dovecot ready.\r\n", MR_OK, 0, NULL},
    {MR_POP3_STATUS, "+OK\r\n", MR_OK, 0, NULL},
    {MR_POP3_STATUS, "-ERR [SYS/TEMP] busy\r\n", MR_BAD, 0, "server said -ERR"},
    {MR_POP3_STATUS, "+OKAY\r\n", MR_BAD, 0, "not a POP3 reply"},
    {MR_POP3_STATUS, "* OK imap\r\n", MR_BAD, 0, "not a POP3 reply"},
    {MR_REDIS_PING, "+PONG\r\n", MR_OK, 0, NULL},
    {MR_REDIS_PING, "-NOAUTH Authentication required.\r\n", MR_OK, 0, NULL},
    {MR_REDIS_PING, "-WRONGPASS invalid username-password pair\r\n", MR_OK, 0, NULL},
    {MR_REDIS_PING, "-LOADING Redis is loading the dataset in memory\r\n", MR_BAD, 0,
     "server is loading its dataset"},
    {MR_REDIS_PING, "-ERR unknown command\r\n", MR_BAD, 0, "error reply to PING"},
    {MR_REDIS_PING, "+PONGS\r\n", MR_BAD, 0, "unexpected reply to PING"},
    {MR_REDIS_PING, "$4\r\nPONG\r\n", MR_BAD, 0, "not a Redis reply"},
    {MR_REDIS_PING, "+PON", MR_NEED_MORE, 0, NULL},
    {MR_PG_STARTUP, "", MR_NEED_MORE, 0, NULL},
    {MR_PG_STARTUP, "N", MR_BAD, 0, "not a PostgreSQL reply"},
    {MR_PG_STARTUP, "HTTP/1.1 400 Bad Request\r\n", MR_BAD, 0, "not a PostgreSQL reply"},
    {MR_PG_STARTUP, "220 mx ESMTP\r\n", MR_BAD, 0, "not a PostgreSQL reply"},
};

static void
test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const struct case_ *c = &cases[i];
        struct mr_reply r;
        enum mr_result got = mailreply_classify(c->kind, c->in, strlen(c->in), &r);
        if (got != c->want)
            print_error("case %zu '%s': got %s\n", i, c->in, mailreply_result_name(got));
        assert_int_equal(got, c->want);
        if (c->code)
            assert_int_equal(r.code, c->code);
        if (c->why)
            assert_string_equal(r.why, c->why);
        if (got == MR_OK)
            assert_null(r.why);
    }
}

/* Every proper prefix of a complete OK reply is NEED_MORE. */
static void
test_truncation(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const struct case_ *c = &cases[i];
        if (c->want != MR_OK)
            continue;
        size_t n = strlen(c->in);
        for (size_t k = 0; k < n; k++) {
            struct mr_reply r;
            enum mr_result got = mailreply_classify(c->kind, c->in, k, &r);
            if (got != MR_NEED_MORE)
                print_error("case %zu cut at %zu: %s\n", i, k, mailreply_result_name(got));
            assert_int_equal(got, MR_NEED_MORE);
        }
        struct mr_reply r;
        assert_int_equal(mailreply_classify(c->kind, c->in, n, &r), MR_OK);
        assert_int_equal(r.consumed, n);
    }
}

/* PostgreSQL messages: type, length, body. */
#define PG_AUTH_OK "R\0\0\0\x08\0\0\0\0"
#define PG_AUTH_MD5 "R\0\0\0\x0c\0\0\0\x05\x01\x02\x03\x04"
#define PG_AUTH_SASL "R\0\0\0\x17\0\0\0\x0a" "SCRAM-SHA-256\0\0"
#define PG_57P03                                                                                   \
    "E\0\0\0\x4c" "SFATAL\0VFATAL\0C57P03\0Mthe database system is not accepting connections\0\0"
#define PG_STARTING "E\0\0\0\x37" "SFATAL\0C57P03\0Mthe database system is starting up\0\0"
#define PG_NO_ROLE "E\0\0\0\x2c" "SFATAL\0C28000\0Mrole \"x\" does not exist\0\0"
#define PG_NO_CODE "E\0\0\0\x10" "Mgone away\0\0"
#define PG_NEGOTIATE "v\0\0\0\x0c\0\0\0\x00\0\0\0\0"

struct pg_case {
    const char *in;
    size_t len;
    enum mr_result want;
    char type;
    uint32_t auth;
    const char *sqlstate, *text, *why;
};

#define PG(s) s, sizeof(s) - 1

static const struct pg_case pg_cases[] = {
    {PG(PG_AUTH_OK), MR_OK, 'R', 0, "", NULL, NULL},
    {PG(PG_AUTH_MD5), MR_OK, 'R', 5, "", NULL, NULL},
    {PG(PG_AUTH_SASL), MR_OK, 'R', 10, "", NULL, NULL},
    {PG(PG_NO_ROLE), MR_OK, 'E', 0, "28000", "role \"x\" does not exist", NULL},
    {PG(PG_NO_CODE), MR_OK, 'E', 0, "", "gone away", NULL},
    {PG(PG_NEGOTIATE), MR_OK, 'v', 0, "", NULL, NULL},
    {PG(PG_57P03), MR_BAD, 'E', 0, "57P03", "the database system is not accepting connections",
     "rejecting connections"},
    {PG(PG_STARTING), MR_BAD, 'E', 0, "57P03", "the database system is starting up",
     "rejecting connections"},
    /* Broken: lengths below 4 or above the cap, a short auth request, a
     * field without its NUL, no final NUL. */
    {PG("R\0\0\0\x03"), MR_BAD, 0, 0, "", NULL, "not a PostgreSQL reply (bad message length)"},
    {PG("E\x7f\xff\xff\xff"), MR_BAD, 0, 0, "", NULL,
     "not a PostgreSQL reply (bad message length)"},
    {PG("R\0\0\0\x04"), MR_BAD, 'R', 0, "", NULL, "short PostgreSQL authentication request"},
    {PG("E\0\0\0\x07" "C57P"), MR_BAD, 'E', 0, "", NULL, "malformed PostgreSQL ErrorResponse"},
    {PG("E\0\0\0\x0b" "C57P03\0"), MR_BAD, 'E', 0, "57P03", NULL,
     "malformed PostgreSQL ErrorResponse"},
    {PG("R\0\0\0"), MR_NEED_MORE, 0, 0, "", NULL, NULL},
};

static void
test_pg_startup(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(pg_cases); i++) {
        const struct pg_case *c = &pg_cases[i];
        struct mr_reply r;
        /* Followed by more of the server's messages: only the first is judged. */
        char buf[256];
        memcpy(buf, c->in, c->len);
        memcpy(buf + c->len, "S\0\0\0\x04", 5);
        enum mr_result got = mailreply_classify(MR_PG_STARTUP, buf, c->len + 5, &r);
        if (got != c->want)
            print_error("pg case %zu: got %s\n", i, mailreply_result_name(got));
        assert_int_equal(got, c->want);
        if (got == MR_NEED_MORE)
            continue;
        assert_int_equal(r.pg_type, c->type);
        assert_int_equal(r.pg_auth, c->auth);
        assert_string_equal(r.sqlstate, c->sqlstate);
        if (c->text != NULL) {
            assert_int_equal(r.text_len, strlen(c->text));
            assert_memory_equal(r.text, c->text, r.text_len);
        }
        if (c->why != NULL)
            assert_string_equal(r.why, c->why);
        else
            assert_null(r.why);
        if (got == MR_OK)
            assert_int_equal(r.consumed, c->len);
        /* Every proper prefix of a whole, well-formed message is NEED_MORE. */
        int whole = r.consumed == c->len && (got == MR_OK || c->sqlstate[0] != '\0');
        for (size_t k = 0; whole && k < c->len; k++)
            assert_int_equal(mailreply_classify(MR_PG_STARTUP, c->in, k, &r), MR_NEED_MORE);
    }
}

static void
test_pg_startup_encode(void **state)
{
    (void)state;
    static const char want[] = "\0\0\0\x43\0\x03\0\0"
                               "user\0monitor\0database\0app\0"
                               "application_name\0mailedge-probe\0\0";
    char out[128];
    size_t n = mailreply_pg_startup("monitor", "app", out, sizeof(out));
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    assert_int_equal(mailreply_pg_startup("monitor", "app", out, n - 1), 0);
    assert_int_equal(mailreply_pg_startup("", "app", out, sizeof(out)), 0);
    assert_int_equal(mailreply_pg_startup("u", "", out, sizeof(out)), 0);
    char longname[MR_PG_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(mailreply_pg_startup(longname, "app", out, sizeof(out)), 0);
    longname[MR_PG_NAME_MAX] = '\0';
    char big[256];
    assert_int_not_equal(mailreply_pg_startup(longname, longname, big, sizeof(big)), 0);
}

static void
test_text_and_consumed(void **state)
{
    (void)state;
    const char *in = "220-first line\r\n220 last\r\nEHLO";
    struct mr_reply r;
    assert_int_equal(mailreply_classify(MR_SMTP_GREETING, in, strlen(in), &r), MR_OK);
    assert_int_equal(r.text_len, strlen("220-first line"));
    assert_memory_equal(r.text, "220-first line", r.text_len);
    assert_int_equal(r.consumed, strlen(in) - 4);
}

/* A postscreen-style greeting of many continuation lines, then the caps. */
static void
test_caps(void **state)
{
    (void)state;
    static char buf[MR_REPLY_MAX + 2 * MR_LINE_MAX];
    struct mr_reply r;
    size_t n = 0;
    while (n + 10 < MR_REPLY_MAX) {
        memcpy(buf + n, "220-xxxx\r\n", 10);
        n += 10;
    }
    assert_int_equal(mailreply_classify(MR_SMTP_GREETING, buf, n, &r), MR_NEED_MORE);
    memcpy(buf + n, "220-xxxx\r\n", 10);
    n += 10;
    assert_int_equal(mailreply_classify(MR_SMTP_GREETING, buf, n, &r), MR_BAD);
    assert_string_equal(r.why, "reply too long");

    memset(buf, 'x', MR_LINE_MAX + 2);
    memcpy(buf, "220 ", 4);
    assert_int_equal(mailreply_classify(MR_SMTP_GREETING, buf, MR_LINE_MAX + 2, &r), MR_BAD);
    assert_string_equal(r.why, "reply line too long");
    buf[0] = '*';
    buf[1] = ' ';
    assert_int_equal(mailreply_classify(MR_IMAP_GREETING, buf, MR_LINE_MAX + 2, &r), MR_BAD);
    buf[0] = '+';
    assert_int_equal(mailreply_classify(MR_POP3_STATUS, buf, MR_LINE_MAX + 2, &r), MR_BAD);
    assert_int_equal(mailreply_classify(MR_REDIS_PING, buf, MR_LINE_MAX + 2, &r), MR_BAD);
}

static int
setup_guard(void **state)
{
    (void)state;
    return guard_map((size_t)sysconf(_SC_PAGESIZE));
}

/* Input ending exactly at a PROT_NONE page: any read past the end faults. */
static void
test_guard_page(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t n = strlen(cases[i].in);
        for (size_t k = 0; k <= n; k++) {
            const char *p = (const char *)at_guard((const uint8_t *)cases[i].in, k);
            struct mr_reply r;
            (void)mailreply_classify(cases[i].kind, p, k, &r);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_text_and_consumed),
        cmocka_unit_test(test_pg_startup),
        cmocka_unit_test(test_pg_startup_encode),
        cmocka_unit_test(test_caps),
        cmocka_unit_test_setup_teardown(test_guard_page, setup_guard, guard_unmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
