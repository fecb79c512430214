/*
 * Unit tests for the admin endpoint's settings of the global block:
 * admin-host, admin-widest-ban and admin-token-file (the token read from a
 * file whose mode and owner are checked), with their defaults and the
 * LINE:COL of every mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "conf_load.h"

#define ONE_L "listener l {\n    bind 127.0.0.1:2525\n    protocol smtp\n    route -> 10.0.0.1:25\n}\n"
#define ADMIN "global {\n    admin 127.0.0.1:9100\n"

static void
test_defaults_and_values(void **state)
{
    (void)state;
    struct conf *c = load_ok(ADMIN "}\n" ONE_L, false);
    assert_int_equal(c->global.nadmin_hosts, 0);
    assert_int_equal(c->global.admin_token_len, 0);
    assert_int_equal(c->global.admin_ban_v4, 16);
    assert_int_equal(c->global.admin_ban_v6, 32);
    conf_free(c);

    c = load_ok(ADMIN "    admin-host admin.example.org 192.0.2.80 2001:DB8:0::80\n"
                      "    admin-widest-ban 24 48\n}\n" ONE_L,
                false);
    assert_int_equal(c->global.nadmin_hosts, 3);
    assert_string_equal(c->global.admin_hosts[0], "admin.example.org");
    assert_string_equal(c->global.admin_hosts[1], "192.0.2.80");
    assert_string_equal(c->global.admin_hosts[2], "2001:db8::80"); /* as adminreq compares */
    assert_int_equal(c->global.admin_ban_v4, 24);
    assert_int_equal(c->global.admin_ban_v6, 48);
    conf_free(c);
}

static void
test_mistakes(void **state)
{
    (void)state;
    load_bad(ADMIN "    admin-widest-ban 0 32\n}\n" ONE_L, false, 3, 22,
             "bad IPv4 prefix length '0' for admin-widest-ban: expected 1 to 32");
    load_bad(ADMIN "    admin-widest-ban 16 129\n}\n" ONE_L, false, 3, 25,
             "bad IPv6 prefix length '129'");
    load_bad(ADMIN "    admin-widest-ban 16\n}\n" ONE_L, false, 3, 5, "admin-widest-ban");
    load_bad(ADMIN "    admin-host evil.example:80\n}\n" ONE_L, false, 3, 16,
             "bad admin-host 'evil.example:80'");
    load_bad(ADMIN "    admin-host a b c d e f g h i\n}\n" ONE_L, false, 3, 32,
             "too many arguments for 'admin-host'");
    load_bad(ADMIN "    admin-host a\n    admin-host b\n}\n" ONE_L, false, 4, 5,
             "duplicate 'admin-host'");
    load_bad("global {\n    admin-widest-ban 24 48\n}\n" ONE_L, false, 2, 5,
             "admin-host, admin-token-file and admin-widest-ban need 'admin ADDR:PORT' too");
    load_bad(ADMIN "    admin-token-file /etc/mailedge/token\n}\n" ONE_L, false, 3, 5,
             "not allowed when the configuration is loaded from memory");
    load_bad(ADMIN "    admin-token-file token\n}\n" ONE_L, true, 3, 22,
             "admin-token-file needs an absolute path");
}

/* A token file with <content> and <mode>; returns its path in <path>. */
static void
token_file(char *path, size_t cap, const char *content, mode_t mode)
{
    snprintf(path, cap, "/tmp/mailedge-test-token-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void
with_token(const char *content, mode_t mode, int col, const char *msg)
{
    char path[64], text[512];
    token_file(path, sizeof(path), content, mode);
    snprintf(text, sizeof(text), ADMIN "    admin-token-file %s\n}\n" ONE_L, path);
    if (msg == NULL) {
        struct conf *c = load_ok(text, true);
        size_t len = strcspn(content, "\r\n");
        assert_int_equal(c->global.admin_token_len, len);
        assert_memory_equal(c->global.admin_token, content, len);
        assert_int_equal(c->global.admin_token[len], '\0');
        conf_free(c);
    } else {
        load_bad(text, true, 3, col, msg);
    }
    unlink(path);
}

static void
test_token_file(void **state)
{
    (void)state;
    with_token("0123456789abcdef0123456789abcdef\n", 0600, 0, NULL);
    with_token("0123456789abcdef", 0400, 0, NULL);
    with_token("0123456789abcdef0123456789abcdef\r\n", 0640, 0, NULL);
    with_token("0123456789abcdef\n", 0644, 22, "is open to others (mode 644)");
    with_token("0123456789abcdef\n", 0660, 22, "is open to others (mode 660)");
    with_token("0123456789abcdef\n", 0602, 22, "is open to others");
    with_token("0123456789abcde\n", 0600, 22, "must hold one token of 16 to 256 printable");
    with_token("0123456789 abcdef\n", 0600, 22, "must hold one token");
    with_token("0123456789abcdef\n\n", 0600, 22, "must hold one token");
    with_token("", 0600, 22, "must hold one token");
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    with_token(big, 0600, 22, "must hold one token");

    load_bad(ADMIN "    admin-token-file /nonexistent/token\n}\n" ONE_L, true, 3, 22,
             "cannot open admin-token-file /nonexistent/token");
    load_bad(ADMIN "    admin-token-file /tmp\n}\n" ONE_L, true, 3, 22, "is not a regular file");
    if (geteuid() == 0) {
        /* Another user's file: that user chose the token. */
        char path[64], text[512];
        token_file(path, sizeof(path), "0123456789abcdef\n", 0600);
        assert_int_equal(chown(path, 12345, 12345), 0);
        snprintf(text, sizeof(text), ADMIN "    admin-token-file %s\n}\n" ONE_L, path);
        load_bad(text, true, 3, 22, "belongs to uid 12345");
        unlink(path);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_mistakes),
        cmocka_unit_test(test_token_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
