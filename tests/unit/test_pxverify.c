/*
 * Unit tests for pxverify: one vector per verdict, with the bytes real
 * receivers send (Postfix 3.7 smtpd and postscreen, Dovecot 2.3, as
 * recorded in tests/interop and /work/shared's findings, and Stalwart's
 * documented answer), the IPv4/IPv6 pairing, and every truncation of each
 * vector read without a fault.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pxverify.h"
#include "testutil.h"
#include "util.h"

#define B(s) s, sizeof(s) - 1

struct vec {
    const char *name;
    enum pxv_proto proto;
    int sent;
    int connect_err;
    const char *rx;
    size_t rx_len;
    bool goodbye;
    enum pxv_end end;
    enum pxv_verdict want;
    const char *evidence; /* a substring of the evidence */
};

static const struct vec vecs[] = {
    {"smtpd proxy v2, agrees", PXV_SMTP, 2, 0,
     B("220 mx.example.test ESMTP\r\n221 2.0.0 Bye\r\n"), true, PXV_END_FIN, PXV_AGREES,
     "greeting \"220 mx.example.test ESMTP\""},
    {"postscreen teaser then greeting, agrees", PXV_SMTP, 1, 0,
     B("220-mx.example.test ESMTP\r\n220 mx.example.test ESMTP\r\n221 2.0.0 Bye\r\n"), true,
     PXV_END_FIN, PXV_AGREES, "220-mx"},
    {"no header, no PROXY, agrees", PXV_SMTP, 0, 0, B("220 mx ESMTP\r\n221 Bye\r\n"), true,
     PXV_END_FIN, PXV_AGREES, "greeting"},
    {"dovecot agrees", PXV_IMAP, 2, 0,
     B("* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n* BYE Logging out\r\na OK Logout "
       "completed (0.001 + 0.000 secs).\r\n"),
     true, PXV_END_FIN, PXV_AGREES, "Dovecot ready"},
    {"pop3 agrees", PXV_POP3, 1, 0, B("+OK Dovecot ready.\r\n+OK Logging out.\r\n"), true,
     PXV_END_FIN, PXV_AGREES, "+OK Dovecot"},
    {"agrees, no reply to QUIT", PXV_SMTP, 2, 0, B("220 mx ESMTP\r\n"), true, PXV_END_TIMEOUT,
     PXV_AGREES, "no reply to QUIT"},
    {"plain smtpd reads v1 as a command", PXV_SMTP, 1, 0,
     B("220 mx ESMTP\r\n502 5.5.2 Error: command not recognized\r\n221 2.0.0 Bye\r\n"), true,
     PXV_END_FIN, PXV_NOT_EXPECTING_PROXY, "502 5.5.2"},
    {"plain smtpd reads v2 (its QUIT\\n included)", PXV_SMTP, 2, 0,
     B("220 mx ESMTP\r\n500 5.5.2 Error: bad syntax\r\n500 5.5.2 Error: bad syntax\r\n221 "
       "2.0.0 Bye\r\n"),
     true, PXV_END_RESET, PXV_NOT_EXPECTING_PROXY, "500 5.5.2"},
    {"Stalwart, untrusted source: header read as SMTP", PXV_SMTP, 1, 0,
     B("220 mx Stalwart ESMTP at your service\r\n500 5.5.1 Invalid command.\r\n221 2.0.0 Bye."
       "\r\n"),
     true, PXV_END_FIN, PXV_NOT_EXPECTING_PROXY, "500 5.5.1"},
    {"plain dovecot reads v1", PXV_IMAP, 1, 0,
     B("* OK Dovecot ready.\r\nPROXY BAD Error in IMAP command TCP4: Unknown command.\r\n* BYE "
       "Logging out\r\na OK Logout completed.\r\n"),
     true, PXV_END_FIN, PXV_NOT_EXPECTING_PROXY, "PROXY BAD"},
    {"plain pop3 reads v1", PXV_POP3, 1, 0,
     B("+OK ready.\r\n-ERR Unknown command: PROXY\r\n+OK Logging out.\r\n"), true, PXV_END_FIN,
     PXV_NOT_EXPECTING_PROXY, "-ERR Unknown"},
    {"no header, postscreen 421 after 5 s", PXV_SMTP, 0, 0,
     B("421 4.3.2 No system resources\r\n"), false, PXV_END_FIN, PXV_EXPECTS_PROXY_NOT_SENT,
     "421 4.3.2"},
    {"no header, dovecot closes after 3 s", PXV_IMAP, 0, 0, "", 0, false, PXV_END_FIN,
     PXV_EXPECTS_PROXY_NOT_SENT, "closed without a greeting"},
    {"no header, reset", PXV_IMAP, 0, 0, "", 0, false, PXV_END_RESET,
     PXV_EXPECTS_PROXY_NOT_SENT, "reset"},
    {"dovecot, edge not trusted: closed", PXV_IMAP, 2, 0, "", 0, false, PXV_END_FIN,
     PXV_REFUSES_EDGE_AS_SOURCE, "closed right after the PROXY header"},
    {"postfix refuses the header (IPv6 off)", PXV_SMTP, 2, 0,
     B("421 4.3.0 mx.example.test Server local error\r\n"), false, PXV_END_FIN,
     PXV_REFUSES_EDGE_AS_SOURCE, "421 4.3.0"},
    {"no header, 554 refusal", PXV_SMTP, 0, 0, B("554 5.7.1 go away\r\n"), false, PXV_END_FIN,
     PXV_REFUSES_EDGE_AS_SOURCE, "554 5.7.1"},
    {"imap on an smtp backend", PXV_SMTP, 2, 0, B("* OK Dovecot ready.\r\n"), false, PXV_END_US,
     PXV_WRONG_PROTOCOL, "an IMAP greeting where SMTP was expected"},
    {"smtp on an imap backend", PXV_IMAP, 0, 0, B("220 mx ESMTP\r\n"), false, PXV_END_US,
     PXV_WRONG_PROTOCOL, "an SMTP greeting where IMAP"},
    {"pop3 on an imap backend", PXV_IMAP, 1, 0, B("+OK ready\r\n"), false, PXV_END_US,
     PXV_WRONG_PROTOCOL, "POP3 greeting"},
    {"TLS alert", PXV_SMTP, 1, 0, B("\x15\x03\x01\x00\x02\x02\x32"), false, PXV_END_FIN,
     PXV_WRONG_PROTOCOL, "TLS alert"},
    {"HTTP", PXV_IMAP, 1, 0, B("HTTP/1.1 400 Bad Request\r\n"), false, PXV_END_FIN,
     PXV_WRONG_PROTOCOL, "not an IMAP greeting: \"HTTP/1.1 400"},
    {"binary junk", PXV_SMTP, 0, 0, B("\x01\x02\x03"), false, PXV_END_FIN, PXV_WRONG_PROTOCOL,
     "\"???\""},
    {"connect refused", PXV_SMTP, 2, ECONNREFUSED, "", 0, false, PXV_END_US, PXV_NO_ANSWER,
     "connection refused"},
    {"connect reset", PXV_SMTP, 2, ECONNRESET, "", 0, false, PXV_END_US, PXV_NO_ANSWER,
     "connect: connection reset"},
    {"connect, other error", PXV_SMTP, 2, EACCES, "", 0, false, PXV_END_US, PXV_NO_ANSWER,
     "connect: Permission denied"},
    {"silence", PXV_SMTP, 2, 0, "", 0, false, PXV_END_TIMEOUT, PXV_NO_ANSWER, "timeout"},
    {"teaser only at the timeout", PXV_SMTP, 2, 0, B("220-mx ESMTP\r\n"), false, PXV_END_TIMEOUT,
     PXV_NO_ANSWER, "incomplete at the timeout"},
    {"no header: an error after the greeting is not ours", PXV_SMTP, 0, 0,
     B("220 mx\r\n500 odd\r\n221 Bye\r\n"), true, PXV_END_FIN, PXV_AGREES, "greeting"},
};

static void
test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(vecs); i++) {
        const struct vec *v = &vecs[i];
        struct pxv_input in = {.proto = v->proto,
                               .sent = v->sent,
                               .connect_err = v->connect_err,
                               .rx = v->rx,
                               .rx_len = v->rx_len,
                               .goodbye_sent = v->goodbye,
                               .end = v->end};
        struct pxv_result r;
        pxverify_classify(&in, &r);
        if (r.verdict != v->want || strstr(r.evidence, v->evidence) == NULL)
            fail_msg("%s: got %s \"%s\", want %s with \"%s\"", v->name,
                     pxverify_name(r.verdict), r.evidence, pxverify_name(v->want), v->evidence);
        assert_non_null(r.fix);
        for (const char *p = r.evidence; *p != '\0'; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
    }
}

static void
classify_str(enum pxv_proto p, int sent, const char *rx, enum pxv_end end,
             struct pxv_result *r)
{
    struct pxv_input in = {
        .proto = p, .sent = sent, .rx = rx, .rx_len = strlen(rx), .goodbye_sent = true,
        .end = end};
    pxverify_classify(&in, r);
}

static void
test_pair(void **state)
{
    (void)state;
    struct pxv_result v4, v6;
    /* Postfix with inet_protocols = ipv4: IPv4 agrees, IPv6 gets 421. */
    classify_str(PXV_SMTP, 2, "220 mx\r\n221 Bye\r\n", PXV_END_FIN, &v4);
    classify_str(PXV_SMTP, 2, "421 4.3.0 mx Server local error\r\n", PXV_END_FIN, &v6);
    pxverify_pair(&v4, &v6);
    assert_int_equal(v4.verdict, PXV_AGREES);
    assert_int_equal(v6.verdict, PXV_REFUSES_IPV6);
    assert_non_null(strstr(v6.fix, "inet_protocols"));
    assert_non_null(strstr(v6.evidence, "421 4.3.0"));
    /* Both refused: the edge, not IPv6. */
    classify_str(PXV_IMAP, 2, "", PXV_END_FIN, &v4);
    classify_str(PXV_IMAP, 2, "", PXV_END_FIN, &v6);
    pxverify_pair(&v4, &v6);
    assert_int_equal(v6.verdict, PXV_REFUSES_EDGE_AS_SOURCE);
    /* IPv6 agrees too: unchanged. */
    classify_str(PXV_SMTP, 2, "220 mx\r\n221 Bye\r\n", PXV_END_FIN, &v4);
    classify_str(PXV_SMTP, 2, "220 mx\r\n221 Bye\r\n", PXV_END_FIN, &v6);
    pxverify_pair(&v4, &v6);
    assert_int_equal(v6.verdict, PXV_AGREES);
    pxverify_pair(NULL, &v6);
    pxverify_pair(&v4, NULL);
}

static void
test_greeting_done(void **state)
{
    (void)state;
    assert_false(pxverify_greeting_done(PXV_SMTP, "", 0));
    assert_false(pxverify_greeting_done(PXV_SMTP, "220-teaser\r\n", 12));
    assert_true(pxverify_greeting_done(PXV_SMTP, "220-a\r\n220 b\r\n", 14));
    assert_true(pxverify_greeting_done(PXV_SMTP, "421 no\r\n", 8));
    assert_true(pxverify_greeting_done(PXV_SMTP, "* OK imap\r\n", 11));
    assert_true(pxverify_greeting_done(PXV_IMAP, "* OK imap\r\n", 11));
    assert_false(pxverify_greeting_done(PXV_IMAP, "* OK im", 7));
    assert_true(pxverify_greeting_done(PXV_POP3, "+OK\r\n", 5));
    assert_true(pxverify_greeting_done(PXV_IMAP, "\x15\x03", 2));
    assert_string_equal(pxverify_goodbye(PXV_SMTP), "QUIT\r\n");
    assert_string_equal(pxverify_goodbye(PXV_IMAP), "a LOGOUT\r\n");
    assert_string_equal(pxverify_goodbye(PXV_POP3), "QUIT\r\n");
    assert_string_equal(pxverify_name(PXV_REFUSES_IPV6), "refuses-ipv6");
    assert_string_equal(pxverify_name(PXV_VERDICT_COUNT), "?");
}

static int
setup_guard(void **state)
{
    (void)state;
    return guard_map((size_t)sysconf(_SC_PAGESIZE));
}

/* Every prefix of every vector, ending just before a PROT_NONE page. */
static void
test_guard_page(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(vecs); i++) {
        for (size_t k = 0; k <= vecs[i].rx_len; k++) {
            const char *p = (const char *)at_guard((const uint8_t *)vecs[i].rx, k);
            struct pxv_input in = {.proto = vecs[i].proto, .sent = vecs[i].sent, .rx = p,
                                   .rx_len = k, .goodbye_sent = true, .end = PXV_END_FIN};
            struct pxv_result r;
            pxverify_classify(&in, &r);
            assert_true(r.verdict < PXV_VERDICT_COUNT);
            (void)pxverify_greeting_done(vecs[i].proto, p, k);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_pair),
        cmocka_unit_test(test_greeting_done),
        cmocka_unit_test_setup_teardown(test_guard_page, setup_guard, guard_unmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
