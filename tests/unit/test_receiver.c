/*
 * Unit tests for receiver (issue 18): the receiving side's settings printed
 * for a configuration, compared whole with tests/vectors/receiver_*.txt
 * (read them: they are the reference output), and the cases around them:
 * which software gets printed, a backend without PROXY, an unknown
 * protocol, no route, no known source address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "conf.h"
#include "receiver.h"
#include "testutil.h"

static struct conf *
load(const char *text)
{
    struct conf *c = NULL;
    struct diag_list d = {0};

    if (conf_load_string("r.conf", text, strlen(text), false, &c, &d) != 0) {
        diag_list_print(&d, stderr);
        fail_msg("expected the configuration to load");
    }
    diag_list_free(&d);
    return c;
}

/* receiver_print() of backend <name> into a new string (free it). */
static char *
print(const struct conf *c, const char *name, const char *const *src, size_t nsrc,
      unsigned which)
{
    struct sockaddr_storage ss[4];
    char *buf = NULL;
    size_t len = 0;

    assert_true(nsrc <= 4);
    for (size_t i = 0; i < nsrc; i++)
        assert_int_equal(addr_parse(src[i], ADDR_PORT_OPTIONAL, &ss[i], NULL, NULL), 0);
    const struct conf_backend *b = conf_find_backend(c, name);
    assert_non_null(b);
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    receiver_print(fp, c, b, ss, nsrc, which);
    fclose(fp);
    return buf;
}

/* MAILEDGE_REGEN_VECTORS=1 writes the output as the new vector (review the diff). */
static void
assert_vector(const char *got, const char *vector)
{
    static uint8_t want[16384];
    if (getenv("MAILEDGE_REGEN_VECTORS") != NULL) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", VECTORS_DIR, vector);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(got, fp);
        fclose(fp);
    }
    size_t n = read_vector(vector, want, sizeof(want) - 1);
    want[n] = '\0';
    if (strcmp(got, (const char *)want) != 0)
        fail_msg("output differs from tests/vectors/%s; got:\n%s", vector, got);
}

static const char *const two_src[] = {"192.0.2.10", "2001:db8::10"};

static const char smtp_conf[] = "backend mx {\n"
                                "    server a 192.0.2.25:10025\n"
                                "    server b [2001:db8::25]:10025\n"
                                "    send-proxy v2\n"
                                "}\n"
                                "backend sub {\n"
                                "    server a 192.0.2.26\n"
                                "    send-proxy v1\n"
                                "}\n"
                                "listener smtp {\n"
                                "    bind :25\n"
                                "    protocol smtp\n"
                                "    route -> mx\n"
                                "}\n"
                                "listener submission {\n"
                                "    bind 203.0.113.1:587\n"
                                "    protocol submission\n"
                                "    route -> sub:10587\n"
                                "}\n"
                                "listener submissions {\n"
                                "    bind 203.0.113.1:465\n"
                                "    protocol tls\n"
                                "    route -> sub:10465\n"
                                "}\n";

static void
test_smtp_vectors(void **state)
{
    (void)state;
    struct conf *c = load(smtp_conf);
    char *out = print(c, "mx", two_src, 2, RECEIVER_ALL);
    assert_vector(out, "receiver_mx.txt");
    free(out);
    out = print(c, "sub", two_src, 1, RECEIVER_ALL);
    assert_vector(out, "receiver_sub.txt");
    free(out);
    conf_free(c);
}

static const char mailbox_conf[] = "backend box {\n"
                                   "    server a [2001:db8::143]:10143\n"
                                   "    send-proxy v2\n"
                                   "}\n"
                                   "backend boxtls {\n"
                                   "    server a 192.0.2.143:10993\n"
                                   "    send-proxy v1\n"
                                   "    check imaps\n"
                                   "}\n"
                                   "listener imap {\n"
                                   "    bind 203.0.113.1:143\n"
                                   "    protocol imap\n"
                                   "    route -> box\n"
                                   "}\n"
                                   "listener pop3 {\n"
                                   "    bind 203.0.113.1:110\n"
                                   "    protocol pop3\n"
                                   "    route -> box:10110\n"
                                   "}\n"
                                   "listener imaps {\n"
                                   "    bind 203.0.113.1:9993\n"
                                   "    protocol tls\n"
                                   "    route -> boxtls\n"
                                   "}\n";

static void
test_mailbox_vectors(void **state)
{
    (void)state;
    struct conf *c = load(mailbox_conf);
    char *out = print(c, "box", two_src + 1, 1, RECEIVER_ALL);
    assert_vector(out, "receiver_box.txt");
    free(out);
    out = print(c, "boxtls", two_src, 1, RECEIVER_DOVECOT);
    assert_vector(out, "receiver_boxtls_dovecot.txt");
    free(out);
    conf_free(c);
}

static void
test_software_choice(void **state)
{
    (void)state;
    struct conf *c = load(smtp_conf);
    char *out = print(c, "mx", two_src, 1, RECEIVER_POSTFIX);
    assert_non_null(strstr(out, "postscreen_upstream_proxy_protocol=haproxy"));
    assert_null(strstr(out, "Stalwart"));
    free(out);
    out = print(c, "mx", two_src, 1, RECEIVER_STALWART);
    assert_null(strstr(out, "Postfix,"));
    assert_non_null(strstr(out, "proxy.trusted-networks = [\"192.0.2.10/32\"]"));
    assert_null(strstr(out, "server.proxy.trusted-networks ="));
    free(out);
    out = print(c, "mx", two_src, 1, RECEIVER_DOVECOT);
    assert_non_null(strstr(out, "Nothing for the chosen server software: it does not speak SMTP."));
    assert_null(strstr(out, "haproxy_trusted_networks"));
    free(out);
    conf_free(c);

    assert_int_equal(receiver_software("postfix"), RECEIVER_POSTFIX);
    assert_int_equal(receiver_software("dovecot"), RECEIVER_DOVECOT);
    assert_int_equal(receiver_software("stalwart"), RECEIVER_STALWART);
    assert_int_equal(receiver_software("Postfix"), 0);
    assert_int_equal(receiver_software(""), 0);
}

static void
test_no_proxy_unknown_unrouted(void **state)
{
    (void)state;
    struct conf *c = load("backend plain {\n"
                          "    server a 192.0.2.25:2525\n"
                          "}\n"
                          "backend raw {\n"
                          "    server a 192.0.2.26:7000\n"
                          "    send-proxy v2\n"
                          "}\n"
                          "backend idle {\n"
                          "    server a 192.0.2.27:25\n"
                          "    send-proxy v2\n"
                          "}\n"
                          "listener smtp {\n"
                          "    bind :25\n"
                          "    protocol smtp\n"
                          "    route -> plain\n"
                          "}\n"
                          "listener raw {\n"
                          "    bind :7000\n"
                          "    protocol tcp\n"
                          "    route -> raw\n"
                          "}\n");
    char *out = print(c, "plain", two_src, 1, RECEIVER_ALL);
    assert_non_null(strstr(out, "# mailedge sends no PROXY header: the receiver must not expect "
                                "one on\n# these ports, and sees every client as the edge "
                                "(192.0.2.10).\n"));
    assert_null(strstr(out, "haproxy"));
    free(out);
    out = print(c, "raw", two_src, 1, RECEIVER_ALL);
    assert_non_null(strstr(out, "# port 7000: unknown protocol, from listener raw\n"
                                "#   (a tcp listener, and no check names the protocol)\n"));
    assert_non_null(strstr(out, "# Nothing to print: name the protocol with a check in backend "
                                "raw\n"));
    free(out);
    out = print(c, "idle", two_src, 1, RECEIVER_ALL);
    assert_string_equal(out, "# backend idle\n# no listener routes to it: nothing to set up\n\n");
    free(out);
    /* No source address known: a placeholder, said so. */
    out = print(c, "raw", NULL, 0, RECEIVER_ALL);
    assert_non_null(strstr(out, "connecting from EDGE_ADDRESS\n# (EDGE_ADDRESS: the address"));
    free(out);
    conf_free(c);
}

/* A port of unknown protocol is left out, and the others print as usual. */
static void
test_unknown_beside_known(void **state)
{
    (void)state;
    struct conf *c = load("backend mx {\n"
                          "    server a 192.0.2.25:10025\n"
                          "    send-proxy v1\n"
                          "}\n"
                          "listener raw {\n"
                          "    bind :7000\n"
                          "    protocol tcp\n"
                          "    route -> mx:7000\n"
                          "}\n"
                          "listener smtp {\n"
                          "    bind :25\n"
                          "    protocol smtp\n"
                          "    route -> mx\n"
                          "}\n");
    char *out = print(c, "mx", two_src, 1, RECEIVER_STALWART);
    assert_non_null(strstr(out, "# port 7000: unknown protocol, from listener raw\n"
                                "#   (a tcp listener, and no check names the protocol)\n"
                                "# port 10025: smtp, from listener smtp\n"));
    assert_non_null(strstr(out, "the admin (http) one included.\n"
                                "[server.listener.\"mailedge-smtp-10025\"]\n"));
    assert_null(strstr(out, "7000\"]"));
    free(out);
    conf_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_vectors),
        cmocka_unit_test(test_mailbox_vectors),
        cmocka_unit_test(test_software_choice),
        cmocka_unit_test(test_no_proxy_unknown_unrouted),
        cmocka_unit_test(test_unknown_beside_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
