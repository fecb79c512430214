/*
 * Unit tests for the configuration loader: the struct a good file gives
 * (defaults, inheritance, implicit backends, env expansion, includes), and
 * for every class of mistake the exact LINE:COL and message. Also replays
 * the .conf files of tests/configs/good and tests/configs/bad (run from the
 * repository root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "tlshello.h"
#include "util.h"

#define MS_S 1000ull
#define MS_M (60 * MS_S)

static struct conf *
load_ok(const char *text)
{
    struct conf *c = NULL;
    struct diag_list d = {0};

    int r = conf_load_string("test.conf", text, strlen(text), false, &c, &d);
    if (r != 0) {
        diag_list_print(&d, stderr);
        fail_msg("expected the configuration to load");
    }
    assert_int_equal(d.n, 0);
    assert_non_null(c);
    diag_list_free(&d);
    return c;
}

static void
print_addr(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    addr_format((const struct sockaddr *)ss, buf, cap);
}

static void
assert_addr(const struct sockaddr_storage *ss, const char *want)
{
    char buf[ADDR_STRLEN];

    print_addr(ss, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

/* ---- good configurations ---- */

static void
test_maxconn(void **state)
{
    (void)state;
    struct conf *c = load_ok("global {\n    maxconn 5000\n}\n"
                             "backend b {\n    server s 10.0.0.5:25\n}\n"
                             "listener imap {\n    bind :143\n    protocol imap\n"
                             "    route -> b\n    maxconn 3000\n}\n"
                             "listener smtp {\n    bind :25\n    protocol smtp\n"
                             "    route -> b\n}\n");
    assert_int_equal(c->global.maxconn, 5000);
    assert_int_equal(c->listeners[0].maxconn, 3000);
    assert_int_equal(c->listeners[1].maxconn, 0);
    conf_free(c);
    c = load_ok("listener one {\n    bind 127.0.0.9:2525\n    protocol smtp\n"
                "    route -> 10.0.0.5:25\n}\n");
    assert_int_equal(c->global.maxconn, 0);
    assert_int_equal(c->global.workers, 1);
    assert_false(c->global.verify_on_start);
    assert_int_equal(c->global.verify_timeout_ms, 60000);
    conf_free(c);
    c = load_ok("global {\n    verify on-start timeout 2m\n}\n"
                "listener one {\n    bind 127.0.0.9:2525\n    protocol smtp\n"
                "    route -> 10.0.0.5:25\n}\n");
    assert_true(c->global.verify_on_start);
    assert_int_equal(c->global.verify_timeout_ms, 120000);
    conf_free(c);
    c = load_ok("global {\n    workers 4\n}\n"
                "listener one {\n    bind 127.0.0.9:2525\n    protocol smtp\n"
                "    route -> 10.0.0.5:25\n}\n");
    assert_int_equal(c->global.workers, 4);
    conf_free(c);
}

static void
test_abuse_settings(void **state)
{
    (void)state;
    struct conf *c = load_ok("listener a {\n"
                             " bind 127.0.0.1:25\n protocol smtp\n route -> 127.0.0.1:26\n"
                             " limit per-ip 20\n limit rate 30/m\n limit ipv6-prefix 48\n"
                             " limit table 1000\n ban 15m after 5 within 2m\n"
                             " allow 100.64.0.0/10 ::1\n allow 192.0.2.7\n pregreet reject\n"
                             "}\n"
                             "listener b {\n"
                             " bind 127.0.0.1:27\n protocol tcp\n route -> 127.0.0.1:26\n"
                             " limit rate 2/s\n"
                             "}\n");
    const struct conf_listener *a = &c->listeners[0], *b = &c->listeners[1];
    assert_int_equal(a->limit_per_ip, 20);
    assert_int_equal(a->limit_rate, 30);
    assert_int_equal(a->limit_rate_ms, MS_M);
    assert_int_equal(a->limit_v6_prefix, 48);
    assert_int_equal(a->limit_table, 1000);
    assert_int_equal(a->ban_after, 5);
    assert_int_equal(a->ban_ms, 15 * MS_M);
    assert_int_equal(a->ban_window_ms, 2 * MS_M);
    assert_int_equal(a->nallow, 3);
    assert_int_equal(a->pregreet, PREGREET_REJECT);
    assert_int_equal(b->limit_per_ip, 0);
    assert_int_equal(b->limit_rate, 2);
    assert_int_equal(b->limit_rate_ms, MS_S);
    assert_int_equal(b->limit_v6_prefix, 64);
    assert_int_equal(b->limit_table, 65536);
    assert_int_equal(b->ban_after, 0);
    assert_int_equal(b->pregreet, PREGREET_OFF);
    conf_free(c);
}

static void
test_defaults(void **state)
{
    (void)state;
    struct conf *c = load_ok("backend b {\n"
                             "    server s1 10.0.0.5:25\n"
                             "}\n"
                             "listener smtp {\n"
                             "    bind 127.0.0.1:2525\n"
                             "    protocol smtp\n"
                             "    route -> b\n"
                             "}\n");
    assert_string_equal(c->global.log_path, "");
    assert_int_equal(c->global.log_format, LOG_FORMAT_LOGFMT);
    assert_false(c->global.log_debug);
    assert_int_equal(c->global.grace_ms, 30 * MS_S);
    assert_int_equal(c->global.splice, CONF_SPLICE_AUTO);

    assert_int_equal(c->nbackends, 1);
    const struct conf_backend *b = &c->backends[0];
    assert_string_equal(b->name, "b");
    assert_int_equal(b->nservers, 1);
    assert_string_equal(b->servers[0].name, "s1");
    assert_string_equal(b->servers[0].host, "10.0.0.5");
    assert_true(b->servers[0].has_port);
    assert_addr(&b->servers[0].addr, "10.0.0.5:25");
    assert_int_equal(b->send_proxy, 0);
    assert_int_equal(b->balance, BALANCE_ROUND_ROBIN);
    assert_int_equal(b->timeout_connect_ms, 5 * MS_S);
    assert_int_equal(b->check, CHECK_NONE);
    assert_int_equal(b->servers[0].check_port, 0);
    assert_string_equal(b->pos.file, "test.conf");
    assert_int_equal(b->pos.line, 1);
    assert_int_equal(b->servers[0].pos.line, 2);

    assert_int_equal(c->nlisteners, 1);
    const struct conf_listener *l = &c->listeners[0];
    assert_string_equal(l->name, "smtp");
    assert_int_equal(l->nbinds, 1);
    assert_addr(&l->binds[0].addr, "127.0.0.1:2525");
    assert_false(l->binds[0].any);
    assert_int_equal(l->binds[0].pos.line, 5);
    assert_int_equal(l->binds[0].pos.col, 10);
    assert_int_equal(l->proto, PROTO_SMTP);
    assert_int_equal(l->accept_proxy, 0);
    assert_int_equal(l->ntrusted, 0);
    assert_ptr_equal(l->route.backend, &c->backends[0]);
    assert_int_equal(l->route.port, 0);
    assert_int_equal(l->route.pos.line, 7);
    assert_int_equal(l->timeout_proxy_ms, 3 * MS_S);
    assert_int_equal(l->timeout_idle_ms, 30 * MS_M);
    assert_int_equal(c->nfiles, 1);
    assert_ptr_equal(l->pos.file, c->files[0]);
    conf_free(c);
}

static void
test_everything_set(void **state)
{
    (void)state;
    struct conf *c = load_ok("# a comment line\n"
                             "global {   # comment after a brace\n"
                             "    log \"/var/log/mail edge.log\" format json level debug\n"
                             "    grace 0s\n"
                             "    splice off\n"
                             "}\n"
                             "\n"
                             "backend mailbox {\n"
                             "    server a [fd00::5]:2525\n"
                             "    server b fd00::6\n"
                             "    server c 10.0.0.7\n"
                             "    send-proxy v1\n"
                             "    balance first\n"
                             "    timeout connect 250ms\n"
                             "}\n"
                             "listener relay-in {\n"
                             "    bind 127.0.0.1:2525 [::1]:2525\n"
                             "    bind [2001:db8::1]:587\n"
                             "    protocol submission\n"
                             "    accept-proxy any from 100.64.0.0/10 fd7a:115c:a1e0::/48\n"
                             "    accept-proxy any from 10.1.2.3\n"
                             "    route -> mailbox:587   # port for servers without one\n"
                             "    timeout proxy 1500ms\n"
                             "    timeout idle 2h\n"
                             "}\n");
    assert_string_equal(c->global.log_path, "/var/log/mail edge.log");
    assert_int_equal(c->global.log_format, LOG_FORMAT_JSON);
    assert_true(c->global.log_debug);
    assert_int_equal(c->global.grace_ms, 0);
    assert_int_equal(c->global.splice, CONF_SPLICE_OFF);

    const struct conf_backend *b = conf_find_backend(c, "mailbox");
    assert_non_null(b);
    assert_int_equal(b->nservers, 3);
    assert_string_equal(b->servers[0].host, "fd00::5");
    assert_true(b->servers[0].has_port);
    assert_addr(&b->servers[0].addr, "[fd00::5]:2525");
    assert_string_equal(b->servers[1].host, "fd00::6");
    assert_false(b->servers[1].has_port);
    assert_string_equal(b->servers[2].host, "10.0.0.7");
    assert_false(b->servers[2].has_port);
    assert_int_equal(b->send_proxy, 1);
    assert_int_equal(b->balance, BALANCE_FIRST);
    assert_int_equal(b->timeout_connect_ms, 250);

    const struct conf_listener *l = &c->listeners[0];
    assert_int_equal(l->nbinds, 3);
    assert_addr(&l->binds[1].addr, "[::1]:2525");
    assert_addr(&l->binds[2].addr, "[2001:db8::1]:587");
    assert_int_equal(l->proto, PROTO_SUBMISSION);
    assert_int_equal(l->accept_proxy, PP_ACCEPT_ANY);
    assert_int_equal(l->ntrusted, 3);
    assert_int_equal(l->trusted[0].family, AF_INET);
    assert_int_equal(l->trusted[0].prefix, 10);
    assert_int_equal(l->trusted[1].family, AF_INET6);
    assert_int_equal(l->trusted[1].prefix, 48);
    assert_int_equal(l->trusted[2].prefix, 32);
    assert_ptr_equal(l->route.backend, b);
    assert_int_equal(l->route.port, 587);
    assert_int_equal(l->timeout_proxy_ms, 1500);
    assert_int_equal(l->timeout_idle_ms, 120 * MS_M);
    conf_free(c);
}

static void
test_global_timeouts_inherited(void **state)
{
    (void)state;
    struct conf *c = load_ok("listener a {\n"
                             "    bind :25\n"
                             "    protocol smtp\n"
                             "    route -> b1\n"
                             "    timeout idle 5m\n"
                             "}\n"
                             "backend b1 {\n"
                             "    server s 10.0.0.1:25\n"
                             "}\n"
                             "backend b2 {\n"
                             "    server s 10.0.0.2:25\n"
                             "    timeout connect 9s\n"
                             "}\n"
                             "global {\n" /* after its users: order does not matter */
                             "    timeout connect 2s\n"
                             "    timeout proxy 1s\n"
                             "    timeout idle 1h\n"
                             "}\n");
    assert_int_equal(c->backends[0].timeout_connect_ms, 2 * MS_S);
    assert_int_equal(c->backends[1].timeout_connect_ms, 9 * MS_S);
    assert_int_equal(c->listeners[0].timeout_proxy_ms, 1 * MS_S);
    assert_int_equal(c->listeners[0].timeout_idle_ms, 5 * MS_M);
    conf_free(c);
}

static void
test_implicit_backend(void **state)
{
    (void)state;
    struct conf *c = load_ok("global {\n"
                             "    timeout connect 1s\n"
                             "}\n"
                             "backend mailbox {\n"
                             "    server s 10.0.0.5\n"
                             "}\n"
                             "listener https {\n"
                             "    bind :443\n"
                             "    protocol tls\n"
                             "    route -> 127.0.0.1:8443\n"
                             "}\n"
                             "listener https6 {\n"
                             "    bind [::1]:444\n"
                             "    protocol tls\n"
                             "    route -> [::1]:8443\n"
                             "}\n"
                             "listener again {\n"
                             "    bind 127.0.0.1:445\n"
                             "    protocol tcp\n"
                             "    route -> 127.0.0.1:8443\n"
                             "}\n"
                             "listener mail {\n"
                             "    bind 127.0.0.1:25\n"
                             "    protocol smtp\n"
                             "    route -> mailbox:25\n"
                             "}\n");
    assert_int_equal(c->nbackends, 3);
    const struct conf_backend *b = conf_find_backend(c, "127.0.0.1:8443");
    assert_non_null(b);
    assert_int_equal(b->nservers, 1);
    assert_string_equal(b->servers[0].name, "127.0.0.1:8443");
    assert_string_equal(b->servers[0].host, "127.0.0.1");
    assert_true(b->servers[0].has_port);
    assert_addr(&b->servers[0].addr, "127.0.0.1:8443");
    assert_int_equal(b->send_proxy, 0);
    assert_int_equal(b->timeout_connect_ms, 1 * MS_S);
    assert_int_equal(b->pos.line, 10);
    assert_int_equal(b->pos.col, 14);
    assert_ptr_equal(c->listeners[0].route.backend, b);
    assert_ptr_equal(c->listeners[2].route.backend, b);
    assert_int_equal(c->listeners[0].route.port, 0);

    const struct conf_backend *b6 = conf_find_backend(c, "[::1]:8443");
    assert_non_null(b6);
    assert_string_equal(b6->servers[0].host, "::1");
    assert_ptr_equal(c->listeners[1].route.backend, b6);
    assert_ptr_equal(c->listeners[3].route.backend, conf_find_backend(c, "mailbox"));
    assert_int_equal(c->listeners[3].route.port, 25);
    assert_null(conf_find_backend(c, "nothing"));
    conf_free(c);
}

/* Enough backends that the array moves several times: pointers must follow. */
static void
test_route_pointers_after_growth(void **state)
{
    (void)state;
    char text[16384];
    size_t len = 0;

    len += (size_t)snprintf(text + len, sizeof(text) - len,
                            "listener first {\n bind :1\n protocol tcp\n route -> b0\n}\n");
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "backend b%d {\n server s 10.0.0.%d:25\n}\n", i, i + 1);
    snprintf(text + len, sizeof(text) - len,
             "listener last {\n bind :2\n protocol tcp\n route -> b39\n}\n"
             "listener ip {\n bind :3\n protocol tcp\n route -> 10.9.9.9:9\n}\n");
    struct conf *c = load_ok(text);
    assert_int_equal(c->nbackends, 41);
    assert_ptr_equal(c->listeners[0].route.backend, &c->backends[0]);
    assert_ptr_equal(c->listeners[1].route.backend, &c->backends[39]);
    assert_ptr_equal(c->listeners[2].route.backend, &c->backends[40]);
    assert_string_equal(c->listeners[1].route.backend->name, "b39");
    conf_free(c);
}

static void
test_binds(void **state)
{
    (void)state;
    struct conf *c = load_ok("backend b {\n server s 10.0.0.5:25\n}\n"
                             "listener a {\n"
                             "    bind :25 *:110\n"
                             "    bind 0.0.0.0:143 [::]:143\n" /* v6-only [::]: no overlap */
                             "    bind 127.0.0.1:587 127.0.0.2:587 [::1]:587\n"
                             "    protocol tcp\n"
                             "    route -> b\n"
                             "}\n");
    const struct conf_listener *l = &c->listeners[0];
    assert_int_equal(l->nbinds, 7);
    assert_true(l->binds[0].any);
    assert_int_equal(l->binds[0].addr.ss_family, AF_INET6);
    assert_int_equal(addr_port((const struct sockaddr *)&l->binds[0].addr), 25);
    assert_true(l->binds[1].any);
    assert_int_equal(addr_port((const struct sockaddr *)&l->binds[1].addr), 110);
    assert_false(l->binds[2].any);
    assert_addr(&l->binds[2].addr, "0.0.0.0:143");
    assert_false(l->binds[3].any);
    assert_addr(&l->binds[3].addr, "[::]:143");
    assert_addr(&l->binds[6].addr, "[::1]:587");
    conf_free(c);
}

static void
test_env_expansion(void **state)
{
    (void)state;
    setenv("MAILEDGE_T_HOST", "10.1.2.3", 1);
    setenv("MAILEDGE_T_EMPTY", "", 1);
    setenv("MAILEDGE_T_SPACE", "a b # c", 1);
    setenv("MAILEDGE_T_PROTO", "imap", 1);
    unsetenv("MAILEDGE_T_UNSET");
    struct conf *c = load_ok("global {\n"
                             "    log \"/tmp/$HOME-${MAILEDGE_T_SPACE}.log\"\n"
                             "}\n"
                             "backend b {\n"
                             "    server s ${MAILEDGE_T_HOST}:25\n"
                             "    server t ${MAILEDGE_T_UNSET:-10.0.0.9}:${MAILEDGE_T_EMPTY:-26}\n"
                             "    server u 10.0.0.${MAILEDGE_T_EMPTY}7:25\n"
                             "}\n"
                             "listener l${MAILEDGE_T_PROTO} {\n"
                             "    bind :${MAILEDGE_T_UNSET:-143}\n"
                             "    protocol ${MAILEDGE_T_PROTO}\n"
                             "    route -> b\n"
                             "    timeout idle \"${MAILEDGE_T_UNSET:-45m}\"\n"
                             "}\n");
    assert_string_equal(c->global.log_path, "/tmp/$HOME-a b # c.log");
    assert_int_equal(c->listeners[0].timeout_idle_ms, 45 * MS_M);
    const struct conf_backend *b = &c->backends[0];
    assert_addr(&b->servers[0].addr, "10.1.2.3:25");
    assert_string_equal(b->servers[0].host, "10.1.2.3");
    assert_addr(&b->servers[1].addr, "10.0.0.9:26");
    assert_string_equal(b->servers[2].host, "10.0.0.7");
    assert_string_equal(c->listeners[0].name, "limap");
    assert_int_equal(c->listeners[0].proto, PROTO_IMAP);
    assert_int_equal(addr_port((const struct sockaddr *)&c->listeners[0].binds[0].addr), 143);
    conf_free(c);
}

/* Only error classes with columns that depend on the environment live here. */
static void
test_env_value_never_splits(void **state)
{
    (void)state;
    struct conf *c = NULL;
    struct diag_list d = {0};
    setenv("MAILEDGE_T_TWO", "smtp imap", 1);
    const char *text = "listener a {\n"
                       "    protocol ${MAILEDGE_T_TWO}\n"
                       "}\n";
    assert_int_equal(conf_load_string("e.conf", text, strlen(text), false, &c, &d), -1);
    assert_null(c);
    assert_true(d.n >= 1);
    assert_int_equal(d.v[0].line, 2);
    assert_int_equal(d.v[0].col, 14);
    assert_non_null(strstr(d.v[0].msg, "bad protocol 'smtp imap'"));
    diag_list_free(&d);
}

static void
test_crlf_and_no_final_newline(void **state)
{
    (void)state;
    struct conf *c = load_ok("backend b {\r\n  server s 10.0.0.1:25\r\n}\r\n"
                             "listener a {\r\n  bind :25\r\n  protocol smtp\r\n  route -> b\r\n}");
    assert_int_equal(c->nlisteners, 1);
    conf_free(c);
}

/* ---- TLS: route sni, sni-required, timeout hello, send-proxy v2 authority ---- */

static const char sni_text[] = "global {\n"
                               "    timeout hello 3s\n"
                               "}\n"
                               "backend mailbox {\n"
                               "    server s 10.0.0.5\n"
                               "    send-proxy v2 authority\n"
                               "}\n"
                               "backend web {\n"
                               "    server w 127.0.0.1:8443\n"
                               "}\n"
                               "listener https {\n"
                               "    bind :443\n"
                               "    route sni mta-sts.example.org AUTOCONFIG.Example.org. "
                               "autodiscover.example.org -> mailbox:443\n"
                               "    route sni *.example.net -> web\n"
                               "    route -> 127.0.0.1:8080\n"
                               "    protocol tls\n" /* after the routes: order does not matter */
                               "    timeout hello 2s\n"
                               "}\n"
                               "listener imaps {\n"
                               "    bind :993\n"
                               "    protocol tls\n"
                               "    sni-required\n"
                               "    route sni mail.example.org -> mailbox:993\n"
                               "}\n"
                               "listener submissions {\n"
                               "    bind :465\n"
                               "    protocol tls\n"
                               "    route -> web\n"
                               "}\n"
                               "listener pop3s {\n"
                               "    bind :995\n"
                               "    protocol tls\n"
                               "    route -> mailbox:995\n"
                               "}\n"
                               "listener smtp {\n"
                               "    bind :25\n"
                               "    protocol smtp\n"
                               "    route -> mailbox:25\n"
                               "}\n";

static void
test_sni_routes(void **state)
{
    (void)state;
    struct conf *c = load_ok(sni_text);
    const struct conf_backend *mailbox = conf_find_backend(c, "mailbox");
    const struct conf_backend *web = conf_find_backend(c, "web");
    assert_true(mailbox->send_authority);
    assert_int_equal(mailbox->send_proxy, 2);
    assert_false(web->send_authority);

    const struct conf_listener *l = &c->listeners[0];
    assert_int_equal(l->proto, PROTO_TLS);
    assert_int_equal(l->nsni_routes, 2);
    const struct conf_sni_route *r = &l->sni_routes[0];
    assert_int_equal(r->nnames, 3);
    assert_string_equal(r->names[0].name, "mta-sts.example.org");
    assert_string_equal(r->names[1].name, "autoconfig.example.org"); /* lower case, no dot */
    assert_false(r->names[1].wildcard);
    assert_int_equal(r->names[1].pos.line, 13);
    assert_int_equal(r->names[1].pos.col, 35);
    assert_ptr_equal(r->route.backend, mailbox);
    assert_int_equal(r->route.port, 443);
    assert_int_equal(r->route.pos.line, 13);
    r = &l->sni_routes[1];
    assert_int_equal(r->nnames, 1);
    assert_string_equal(r->names[0].name, "example.net");
    assert_true(r->names[0].wildcard);
    assert_ptr_equal(r->route.backend, web);
    assert_int_equal(r->route.port, 0);
    assert_ptr_equal(l->route.backend, conf_find_backend(c, "127.0.0.1:8080"));
    assert_false(l->sni_required);
    assert_true(l->peek_hello);
    assert_int_equal(l->timeout_hello_ms, 2 * MS_S);

    l = &c->listeners[1];
    assert_true(l->sni_required);
    assert_null(l->route.backend); /* no default route: sni-required refuses the rest */
    assert_int_equal(l->nsni_routes, 1);
    assert_int_equal(l->sni_routes[0].route.port, 993);
    assert_true(l->peek_hello);
    assert_int_equal(l->timeout_hello_ms, 3 * MS_S); /* the global one */

    /* No SNI route, no sni-required, no authority: connect at once. */
    assert_false(c->listeners[2].peek_hello);
    /* Only the AUTHORITY TLV needs the name. */
    assert_true(c->listeners[3].peek_hello);
    assert_int_equal(c->listeners[3].nsni_routes, 0);
    /* Never on a server-first listener, even to a backend with authority. */
    assert_false(c->listeners[4].peek_hello);
    conf_free(c);
}

static const struct conf_route *
route_for(const struct conf_listener *l, const char *sent)
{
    char name[TH_HOST_MAX];

    if (sent == NULL)
        return conf_listener_route(l, NULL);
    /* What the session does with the name from the hello. */
    if (tlshello_host_name((const uint8_t *)sent, strlen(sent), name, sizeof(name)) < 0)
        return conf_listener_route(l, NULL);
    return conf_listener_route(l, name);
}

static void
test_sni_match(void **state)
{
    (void)state;
    struct conf *c = load_ok(sni_text);
    const struct conf_listener *l = &c->listeners[0];
    const struct conf_route *mail = &l->sni_routes[0].route, *net = &l->sni_routes[1].route;

    assert_ptr_equal(route_for(l, "mta-sts.example.org"), mail);
    assert_ptr_equal(route_for(l, "autoconfig.example.org"), mail);
    assert_ptr_equal(route_for(l, "AutoDiscover.EXAMPLE.org"), mail);  /* case-insensitive */
    assert_ptr_equal(route_for(l, "autodiscover.example.org."), mail); /* trailing dot */
    assert_ptr_equal(route_for(l, "www.example.org"), &l->route);
    assert_ptr_equal(route_for(l, "example.org"), &l->route);
    assert_ptr_equal(route_for(l, "a.example.net"), net);
    assert_ptr_equal(route_for(l, "A-1.Example.NET."), net);
    assert_ptr_equal(route_for(l, "a.b.example.net"), &l->route); /* exactly one label */
    assert_ptr_equal(route_for(l, "example.net"), &l->route);
    assert_ptr_equal(route_for(l, "xexample.net"), &l->route);
    assert_ptr_equal(route_for(l, NULL), &l->route);
    assert_ptr_equal(route_for(l, "mta-sts.example.org.evil"), &l->route);

    l = &c->listeners[1];
    assert_ptr_equal(route_for(l, "mail.example.org"), &l->sni_routes[0].route);
    assert_ptr_equal(route_for(l, "MAIL.EXAMPLE.ORG."), &l->sni_routes[0].route);
    assert_null(route_for(l, "other.example.org"));
    assert_null(route_for(l, NULL));
    /* A listener without SNI routes: always the default. */
    l = &c->listeners[2];
    assert_ptr_equal(route_for(l, "mail.example.org"), &l->route);
    assert_ptr_equal(route_for(l, NULL), &l->route);
    conf_free(c);
}

/* Routes are tried in order: an earlier exact name before a later wildcard is fine. */
static void
test_sni_order(void **state)
{
    (void)state;
    struct conf *c = load_ok("backend b {\n    server s 10.0.0.1:1\n}\n"
                             "listener l {\n"
                             "    bind :443\n"
                             "    protocol tls\n"
                             "    route sni mail.example.org -> 127.0.0.2:1\n"
                             "    route sni *.example.org example.org -> b\n"
                             "    route sni *.mail.example.org -> 127.0.0.3:1\n"
                             "    sni-required\n"
                             "    route -> b\n" /* with sni-required: names nothing matches */
                             "}\n");
    const struct conf_listener *l = &c->listeners[0];
    assert_int_equal(l->nsni_routes, 3);
    assert_ptr_equal(route_for(l, "mail.example.org"), &l->sni_routes[0].route);
    assert_ptr_equal(route_for(l, "imap.example.org"), &l->sni_routes[1].route);
    assert_ptr_equal(route_for(l, "example.org"), &l->sni_routes[1].route);
    assert_ptr_equal(route_for(l, "x.mail.example.org"), &l->sni_routes[2].route);
    assert_ptr_equal(route_for(l, "other.example"), &l->route);
    assert_true(l->sni_required);
    conf_free(c);
}

/* ---- include (real files in a temporary directory) ---- */

static char tmpdir[256];

static void
write_file(const char *rel, const char *text)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int
make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mailedge-test-conf-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    char sub[512];
    snprintf(sub, sizeof(sub), "%s/conf.d", tmpdir);
    return mkdir(sub, 0700);
}

static int
remove_tmpdir(void **state)
{
    (void)state;
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int
load_path(const char *rel, struct conf **c, struct diag_list *d)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    return conf_load(path, c, d);
}

static void
test_include(void **state)
{
    (void)state;
    struct conf *c = NULL;
    struct diag_list d = {0};

    write_file("main.conf", "include backends.conf   # relative to this file\n"
                            "include conf.d/*.conf\n"
                            "include conf.d/*.none\n" /* a pattern may match nothing */
                            "listener c {\n bind :27\n protocol smtp\n route -> b2\n}\n");
    write_file("backends.conf", "backend b1 {\n server s 10.0.0.1:25\n}\n"
                                "backend b2 {\n server s 10.0.0.2:25\n}\n");
    write_file("conf.d/20-b.conf", "include ../nested.conf\n"
                                   "listener b {\n bind :26\n protocol smtp\n route -> b1\n}\n");
    write_file("conf.d/10-a.conf", "listener a {\n bind :25\n protocol smtp\n route -> b1\n}\n");
    write_file("nested.conf", "global {\n grace 5s\n}\n");
    if (load_path("main.conf", &c, &d) != 0) {
        diag_list_print(&d, stderr);
        fail_msg("include failed");
    }
    assert_int_equal(c->nlisteners, 3);
    assert_string_equal(c->listeners[0].name, "a"); /* glob results are sorted */
    assert_string_equal(c->listeners[1].name, "b");
    assert_string_equal(c->listeners[2].name, "c");
    assert_int_equal(c->global.grace_ms, 5 * MS_S);
    assert_non_null(strstr(c->listeners[0].pos.file, "conf.d/10-a.conf"));
    assert_non_null(strstr(c->backends[0].pos.file, "/backends.conf"));
    assert_ptr_equal(c->listeners[1].route.backend, &c->backends[0]);
    assert_int_equal(c->nfiles, 5);
    conf_free(c);
    diag_list_free(&d);
}

/* Loads <rel> expecting failure with the first diagnostic at <line>:<col> saying <msg>. */
static void
expect_file_error(const char *rel, const char *file_suffix, int line, int col, const char *msg)
{
    struct conf *c = NULL;
    struct diag_list d = {0};

    assert_int_equal(load_path(rel, &c, &d), -1);
    assert_null(c);
    assert_true(d.n >= 1);
    size_t fl = strlen(d.v[0].file), sl = strlen(file_suffix);
    if (fl < sl || strcmp(d.v[0].file + fl - sl, file_suffix) != 0 || d.v[0].line != line ||
        d.v[0].col != col || strstr(d.v[0].msg, msg) == NULL) {
        diag_list_print(&d, stderr);
        fail_msg("expected %s:%d:%d: %s", file_suffix, line, col, msg);
    }
    diag_list_free(&d);
}

static void
test_include_errors(void **state)
{
    (void)state;
    write_file("missing.conf", "\n  include nope.conf\n");
    expect_file_error("missing.conf", "/missing.conf", 2, 3, "cannot open '");

    write_file("loop-a.conf", "include loop-b.conf\n");
    write_file("loop-b.conf", "\ninclude loop-a.conf\n");
    expect_file_error("loop-a.conf", "/loop-b.conf", 2, 1, "include loop");

    char sub[512];
    snprintf(sub, sizeof(sub), "%s/selfdir", tmpdir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file("selfdir/self.conf", "include *.conf\n");
    expect_file_error("selfdir/self.conf", "/selfdir/self.conf", 1, 1, "include loop");

    /* A chain deeper than the limit: deep0 includes deep1 ... deep19. */
    for (int i = 0; i < 20; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "deep%d.conf", i);
        snprintf(text, sizeof(text), "include deep%d.conf\n", i + 1);
        write_file(name, text);
    }
    expect_file_error("deep0.conf", "/deep15.conf", 1, 1, "nested too deeply");

    write_file("inblock.conf", "global {\n    include x.conf\n}\n");
    expect_file_error("inblock.conf", "/inblock.conf", 2, 5, "only allowed at the top level");

    write_file("conf.d/bad.inc", "listener x {\n    bind 1.2.3.4\n}\n");
    write_file("badinc.conf", "include conf.d/bad.inc\n");
    expect_file_error("badinc.conf", "conf.d/bad.inc", 2, 10, "missing port");

    write_file("open.inc", "backend x {\n    server s 10.0.0.1:25\n");
    write_file("openinc.conf", "include open.inc\n}\n");
    expect_file_error("openinc.conf", "/open.inc", 1, 1, "unterminated backend x block");

    expect_file_error("does-not-exist.conf", "/does-not-exist.conf", 0, 0, "cannot open");
    expect_file_error("conf.d", "/conf.d", 0, 0, "is a directory");
}

static void
test_include_disabled(void **state)
{
    (void)state;
    struct conf *c = NULL;
    struct diag_list d = {0};
    const char *text = "include /etc/passwd\n";

    assert_int_equal(conf_load_string("mem", text, strlen(text), false, &c, &d), -1);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].line, 1);
    assert_int_equal(d.v[0].col, 1);
    assert_non_null(strstr(d.v[0].msg, "include is not allowed"));
    diag_list_free(&d);
}

/* ---- errors: each class with its exact position ---- */

struct bad_case {
    const char *text;
    int line, col;
    const char *msg;
};

#define LST(body) "listener l {\n" body "}\n" /* line 1 is the header */
#define ONE_L "listener one {\n    bind 127.0.0.9:2525\n    protocol smtp\n    route -> 10.0.0.5:25\n}\n"
#define OKL "    bind :25\n    protocol smtp\n    route -> b\n"

static void
test_admin(void **state)
{
    (void)state;
    struct conf *c = load_ok("backend b {\n    server s1 10.0.0.5:25\n}\n"
                             "listener smtp {\n    bind 127.0.0.1:2525\n"
                             "    protocol smtp\n    route -> b\n}\n");
    assert_false(c->global.admin_set);
    conf_free(c);

    c = load_ok("global {\n    admin 127.0.0.1:9100\n}\n" ONE_L);
    assert_true(c->global.admin_set);
    assert_false(c->global.admin_allow_remote);
    assert_addr(&c->global.admin.addr, "127.0.0.1:9100");
    assert_int_equal(c->global.admin.pos.line, 2);
    assert_int_equal(c->global.admin.pos.col, 11);
    conf_free(c);

    c = load_ok("global {\n    admin [::1]:9100\n}\n" ONE_L);
    assert_addr(&c->global.admin.addr, "[::1]:9100");
    conf_free(c);

    /* The same port as a listener on another address is fine. */
    c = load_ok("global {\n    admin 127.0.0.2:2525\n}\n"
                "listener smtp {\n    bind 127.0.0.1:2525\n"
                "    protocol smtp\n    route -> 10.0.0.5:25\n}\n");
    conf_free(c);

    c = load_ok("global {\n    admin 0.0.0.0:9100 allow-remote\n}\n" ONE_L);
    assert_true(c->global.admin_set);
    assert_true(c->global.admin_allow_remote);
    assert_addr(&c->global.admin.addr, "0.0.0.0:9100");
    conf_free(c);

    c = load_ok("global {\n    admin :9100 allow-remote\n}\n" ONE_L);
    assert_true(c->global.admin.any);
    conf_free(c);
}

static void
test_check(void **state)
{
    (void)state;
    /* Defaults: interval 2s, timeout 10s (above postscreen's 6s greet
     * wait, whatever the interval), rise 2, fall 3, the backend's header. */
    struct conf *c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    check smtp\n}\n" ONE_L);
    const struct conf_backend *b = &c->backends[0];
    assert_int_equal(b->check, CHECK_SMTP);
    assert_int_equal(b->check_interval_ms, 2 * MS_S);
    assert_int_equal(b->check_timeout_ms, 10 * MS_S);
    assert_int_equal(b->check_send_proxy, 0);
    assert_string_equal(b->check_sni, "");
    assert_int_equal(b->check_rise, 2);
    assert_int_equal(b->check_fall, 3);
    assert_string_equal(conf_check_name(b->check), "smtp");
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:25 check-port 2526\n"
                "    server s2 10.0.0.6 check-port 143\n"
                "    check imap interval 200ms rise 1 fall 5\n}\n" ONE_L);
    b = &c->backends[0];
    assert_int_equal(b->check, CHECK_IMAP);
    assert_int_equal(b->check_interval_ms, 200);
    assert_int_equal(b->check_timeout_ms, 10 * MS_S);
    assert_int_equal(b->check_rise, 1);
    assert_int_equal(b->check_fall, 5);
    assert_int_equal(b->servers[0].check_port, 2526);
    assert_true(b->servers[0].has_port);
    assert_int_equal(b->servers[1].check_port, 143);
    assert_false(b->servers[1].has_port);
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:25 backup check-port 2526\n"
                "    server s2 10.0.0.6:25 check-port 143 backup\n"
                "    server s3 10.0.0.7:25\n    balance least-conn\n"
                "    happy-eyeballs-delay 100ms\n}\n" ONE_L);
    b = &c->backends[0];
    assert_true(b->servers[0].backup);
    assert_int_equal(b->servers[0].check_port, 2526);
    assert_true(b->servers[1].backup);
    assert_int_equal(b->servers[1].check_port, 143);
    assert_false(b->servers[2].backup);
    assert_int_equal(b->balance, BALANCE_LEAST_CONN);
    assert_string_equal(conf_balance_name(b->balance), "least-conn");
    assert_int_equal(b->he_delay_ms, 100);
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:25\n}\n" ONE_L);
    b = &c->backends[0];
    assert_int_equal(b->he_delay_ms, 250);
    assert_false(b->servers[0].backup);
    assert_string_equal(conf_balance_name(b->balance), "round-robin");
    conf_free(c);

    c = load_ok("backend b {\n    server s1 Mx1.Example.ORG.:2525\n    server s2 mx2.example.org\n"
                "    server s3 [::1]:25\n}\n" ONE_L);
    b = &c->backends[0];
    assert_true(b->servers[0].is_name);
    assert_string_equal(b->servers[0].host, "mx1.example.org");
    assert_int_equal(b->servers[0].port, 2525);
    assert_true(b->servers[0].has_port);
    assert_true(b->servers[1].is_name);
    assert_string_equal(b->servers[1].host, "mx2.example.org");
    assert_false(b->servers[1].has_port);
    assert_false(b->servers[2].is_name);
    assert_int_equal(b->servers[2].port, 25);
    conf_free(c);

    c = load_ok("global {\n    resolvers 127.0.0.53 127.0.0.1:5353 [::1]:53 ::1\n}\n"
                "backend b {\n    server s1 localhost:25\n}\n" ONE_L);
    assert_int_equal(c->global.nresolvers, 4);
    assert_int_equal(addr_port((const struct sockaddr *)&c->global.resolvers[0]), 53);
    assert_int_equal(addr_port((const struct sockaddr *)&c->global.resolvers[1]), 5353);
    assert_int_equal(c->global.resolvers[2].ss_family, AF_INET6);
    assert_int_equal(addr_port((const struct sockaddr *)&c->global.resolvers[3]), 53);
    assert_true(c->backends[0].servers[0].is_name);
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:110\n"
                "    check pop3 timeout 9s interval 30s\n}\n" ONE_L);
    b = &c->backends[0];
    assert_int_equal(b->check, CHECK_POP3);
    assert_int_equal(b->check_interval_ms, 30 * MS_S);
    assert_int_equal(b->check_timeout_ms, 9 * MS_S);
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    check tcp interval 10s\n}\n" ONE_L);
    assert_int_equal(c->backends[0].check, CHECK_TCP);
    assert_int_equal(c->backends[0].check_timeout_ms, 10 * MS_S);
    conf_free(c);

    /* The checks send the backend's header, also when send-proxy comes later... */
    c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    check smtp\n    send-proxy v2\n}\n" ONE_L);
    assert_int_equal(c->backends[0].send_proxy, 2);
    assert_int_equal(c->backends[0].check_send_proxy, 2);
    conf_free(c);
    /* ... unless the check says otherwise (a health port without PROXY). */
    c = load_ok("backend b {\n    server s1 10.0.0.5:30125 check-port 30145\n    send-proxy v2\n"
                "    check smtp send-proxy none\n}\n" ONE_L);
    assert_int_equal(c->backends[0].send_proxy, 2);
    assert_int_equal(c->backends[0].check_send_proxy, 0);
    conf_free(c);
    c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    check tcp send-proxy v1\n}\n" ONE_L);
    assert_int_equal(c->backends[0].send_proxy, 0);
    assert_int_equal(c->backends[0].check_send_proxy, 1);
    conf_free(c);

    /* TLS kinds, with a server name to ask for. */
    static const struct {
        const char *word;
        enum check_kind kind;
    } tls[] = {{"tls", CHECK_TLS}, {"smtps", CHECK_SMTPS}, {"imaps", CHECK_IMAPS}, {"pop3s", CHECK_POP3S}};
    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "backend b {\n    server s1 10.0.0.5:465\n    check %s sni MX.Example.ORG. "
                 "interval 30s\n}\n" ONE_L,
                 tls[i].word);
        c = load_ok(text);
        assert_int_equal(c->backends[0].check, tls[i].kind);
        assert_string_equal(conf_check_name(c->backends[0].check), tls[i].word);
        assert_string_equal(c->backends[0].check_sni, "mx.example.org");
        assert_int_equal(c->backends[0].check_interval_ms, 30 * MS_S);
        conf_free(c);
    }
}

static void
test_queue(void **state)
{
    (void)state;
    /* Defaults: holding off, queue-max 1000. */
    struct conf *c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    check smtp\n}\n" ONE_L);
    assert_int_equal(c->backends[0].queue_timeout_ms, 0);
    assert_int_equal(c->backends[0].queue_max, 1000);
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    queue-timeout 30s\n"
                "    queue-max 5\n    check smtp\n}\n" ONE_L);
    assert_int_equal(c->backends[0].queue_timeout_ms, 30 * MS_S);
    assert_int_equal(c->backends[0].queue_max, 5);
    conf_free(c);

    c = load_ok("backend b {\n    server s1 10.0.0.5:25\n    queue-timeout 0s\n"
                "    queue-max 1000000\n}\n" ONE_L);
    assert_int_equal(c->backends[0].queue_timeout_ms, 0);
    assert_int_equal(c->backends[0].queue_max, 1000000);
    conf_free(c);

    /* The implicit backend of a route -> ADDR gets the defaults too. */
    c = load_ok("listener l {\n    bind :25\n    protocol smtp\n    route -> 10.0.0.9:25\n}\n");
    assert_int_equal(c->backends[0].queue_timeout_ms, 0);
    assert_int_equal(c->backends[0].queue_max, 1000);
    conf_free(c);
}

static const struct bad_case bad_cases[] = {
    /* holding clients */
    {"backend b {\n    server s 10.0.0.1:25\n    queue-timeout soon\n}\n", 3, 19,
     "bad duration 'soon': expected a duration like 30s, 500ms, 5m"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-timeout 25h\n}\n", 3, 19,
     "duration '25h' is too long (at most 24h)"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-timeout\n}\n", 3, 5, "queue-timeout"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-timeout 1s\n    queue-timeout 2s\n}\n",
     4, 5, "duplicate 'queue-timeout'"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-max 0\n}\n", 3, 15,
     "bad queue-max '0': expected a count from 1 to 1000000"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-max 1000001\n}\n", 3, 15,
     "bad queue-max '1000001'"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-max -1\n}\n", 3, 15,
     "bad queue-max '-1'"},
    {"backend b {\n    server s 10.0.0.1:25\n    queue-max 5 6\n}\n", 3, 17, "queue-max"},
    {LST("    queue-max 5\n"), 2, 5, "unknown directive 'queue-max' in a listener block"},
    /* maxconn */
    {"global {\n    maxconn 0\n}\n", 2, 13,
     "bad maxconn '0': expected a count of sessions from 1 to 10000000"},
    {LST("    maxconn 10000001\n" OKL), 2, 13, "bad maxconn '10000001'"},
    {LST("    maxconn many\n" OKL), 2, 13, "bad maxconn 'many'"},
    {LST("    maxconn 5\n    maxconn 6\n" OKL), 3, 5, "duplicate 'maxconn'"},
    {"backend b {\n    server s 10.0.0.1:25\n    maxconn 5\n}\n", 3, 5,
     "unknown directive 'maxconn' in a backend block"},
    /* health checks */
    {"backend b {\n    server s 10.0.0.1:25\n    check http\n}\n", 3, 11,
     "bad check 'http': expected tcp, smtp, imap, pop3, tls, smtps, imaps or pop3s"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp send-proxy v3\n}\n", 3, 27,
     "bad check send-proxy 'v3': expected none, v1 or v2"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp sni mx.example.org\n}\n", 3, 16,
     "check option 'sni' needs a TLS check (tls, smtps, imaps or pop3s)"},
    {"backend b {\n    server s 10.0.0.1:465\n    check smtps sni 10.0.0.1\n}\n", 3, 21,
     "bad check sni '10.0.0.1': expected a DNS host name like mx.example.org"},
    {"backend b {\n    server s 10.0.0.1:465\n    check tls sni a..b\n}\n", 3, 19,
     "bad check sni 'a..b'"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp send-proxy none send-proxy v1\n}\n",
     3, 32, "duplicate check option 'send-proxy'"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp every 2s\n}\n", 3, 16,
     "unknown check option 'every'"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp interval\n}\n", 3, 16,
     "check option 'interval' needs a value"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp interval 10ms\n}\n", 3, 25,
     "check interval '10ms' is too short"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp timeout 0s\n}\n", 3, 24,
     "a timeout of 0 is impossible"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp rise 0\n}\n", 3, 21,
     "bad rise '0': expected a count from 1 to 100"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp fall 1000\n}\n", 3, 21,
     "bad fall '1000'"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp rise 2 rise 3\n}\n", 3, 23,
     "duplicate check option 'rise'"},
    {"backend b {\n    server s 10.0.0.1:25\n    check smtp\n    check imap\n}\n", 4, 5,
     "duplicate 'check'"},
    {"backend b {\n    server s 10.0.0.1:25 check-port 0\n}\n", 2, 37,
     "bad check-port '0': expected a port number from 1 to 65535"},
    {"backend b {\n    server s 10.0.0.1:25 check-port\n}\n", 2, 26,
     "check-port needs a port number"},
    {"backend b {\n    server s 10.0.0.1:25 check 25\n}\n", 2, 26,
     "unknown server option 'check' (expected check-port N or backup)"},
    {"backend b {\n    server s 10.0.0.1:25 backup backup\n}\n", 2, 33,
     "duplicate server option 'backup'"},
    {"backend b {\n    server s 10.0.0.1:25 check-port 26 check-port\n}\n", 2, 40,
     "duplicate server option 'check-port'"},
    {"backend b {\n    server s 10.0.0.1:25 backup check-port\n}\n", 2, 33,
     "check-port needs a port number"},
    {"backend b {\n    server s 10.0.0.1:25\n    balance fewest\n}\n", 3, 13,
     "bad balance 'fewest': expected round-robin, first or least-conn"},
    {"backend b {\n    server s 10.0.0.1:25\n    happy-eyeballs-delay 5ms\n}\n", 3, 26,
     "bad happy-eyeballs-delay '5ms': expected 10ms to 10s"},
    {"backend b {\n    server s 10.0.0.1:25\n    happy-eyeballs-delay 0s\n}\n", 3, 26,
     "a timeout of 0 is impossible"},
    {"backend b {\n    server s 10.0.0.1:25\n    happy-eyeballs-delay 1m\n}\n", 3, 26,
     "bad happy-eyeballs-delay '1m'"},
    {LST("    happy-eyeballs-delay 100ms\n"), 2, 5,
     "unknown directive 'happy-eyeballs-delay' in a listener block"},
    {"backend b {\n    check smtp\n    server s 10.0.0.1\n}\n" ONE_L, 3, 12,
     "server 's' has no port to check"},
    /* lexical */
    {"backend b {\n    server s \"10.0.0.1:25\n}\n", 2, 14, "unterminated quoted word"},
    {"backend b {\n    server s \"10.0.0.1\"25\n}\n", 2, 24, "expected a blank after the closing"},
    {"backend b {\n    server s ab\"c\n}\n", 2, 16, "'\"' inside a word"},
    {"global {\n    log \"/a\\nb\"\n}\n", 2, 12, "unknown escape"},
    {"backend b {\n    server s ${MAILEDGE_T_NOPE}:25\n}\n", 2, 14,
     "environment variable 'MAILEDGE_T_NOPE' is not set"},
    {"backend b {\n    server s \"x${MAILEDGE_T_NOPE}\"\n}\n", 2, 16, "is not set"},
    {"backend b {\n    server s ${MAILEDGE_T_NOPE\n}\n", 2, 14, "unterminated variable reference"},
    {"backend b {\n    server s ${9X}\n}\n", 2, 14, "bad variable reference"},
    {"backend b {\n    server s ${X-1}\n}\n", 2, 14, "bad variable reference"},
    {"global {\n    grace 1s\x01\n}\n", 2, 13, "invalid character 0x01"},
    /* admin */
    {"global {\n    admin 0.0.0.0:9100\n}\n" ONE_L, 2, 11,
     "admin address '0.0.0.0:9100' is not a loopback address"},
    {"global {\n    admin :9100\n}\n" ONE_L, 2, 11, "is not a loopback address"},
    {"global {\n    admin [2001:db8::1]:9100\n}\n" ONE_L, 2, 11, "is not a loopback address"},
    {"global {\n    admin 127.0.0.1\n}\n" ONE_L, 2, 11, "bad admin address '127.0.0.1'"},
    {"global {\n    admin 127.0.0.1:9100 remote\n}\n" ONE_L, 2, 26,
     "unknown admin option 'remote' (expected allow-remote)"},
    {"global {\n    admin 127.0.0.1:9100\n    admin 127.0.0.1:9101\n}\n" ONE_L, 3, 5,
     "duplicate 'admin'"},
    {"global {\n    admin 127.0.0.1:25\n}\n" LST(OKL) "backend b {\n    server s 10.0.0.1:25\n}\n",
     2, 11, "admin 127.0.0.1:25 overlaps bind :25 of listener 'l' at line 5 col 10"},
    {"listener l {\n    admin 127.0.0.1:9100\n}\n", 2, 5, "admin"},
    /* structure */
    {"}\n", 1, 1, "'}' without an open block"},
    {"bind :25\n", 1, 1, "statement outside a block: 'bind' belongs in a listener block"},
    {"hello world\n", 1, 1, "statement outside a block: unknown keyword 'hello'"},
    {"frontend x {\n    bind :25\n}\n", 1, 1, "unknown block 'frontend'"},
    {"global { splice off\n}\n", 1, 10, "unexpected text after '{'"},
    {"listener l\n", 1, 11, "expected '{' at the end of the line"},
    {"listener {\n}\n", 1, 1, "listener needs a name"},
    {"backend a b {\n}\n", 1, 11, "unexpected 'b' after 'backend a'"},
    {"global foo {\n}\n", 1, 8, "unexpected 'foo' after 'global'"},
    {"{\n}\n", 1, 1, "'{' without a block header"},
    {"backend b {\n    server s 10.0.0.1:25\n", 1, 1, "unterminated backend b block"},
    {"backend b {\n    server s 10.0.0.1:25\nlistener l {\n}\n", 3, 1,
     "missing '}' before this line: backend b (opened at line 1)"},
    {"backend b {\n    server s 10.0.0.1:25\n    foo {\n}\n", 3, 9, "blocks do not nest"},
    {"backend b {\n    server s 10.0.0.1:25 }\n", 2, 26, "'}' must be alone on its line"},
    {"global {\n}\nglobal {\n}\n", 3, 1, "duplicate global block (first at line 1)"},
    {"backend b {\n    include x.conf\n}\n", 2, 5, "include is only allowed at the top level"},
    {"include a.conf\n", 1, 1, "include is not allowed"},
    /* names */
    {"backend b-{\n}\n", 1, 9, "bad backend name 'b-{'"},
    {"listener \"a b\" {\n}\n", 1, 10, "bad listener name 'a b'"},
    {"backend aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa {\n}\n", 1, 9,
     "is too long (at most 63 characters)"},
    {"backend \"\" {\n}\n", 1, 9, "empty backend name"},
    {"backend b {\n    server s 10.0.0.1:25\n}\nbackend b {\n    server s 10.0.0.1:25\n}\n", 4, 9,
     "duplicate backend 'b' (first defined at line 1)"},
    {"backend b {\n    server s 10.0.0.1:25\n}\n" LST(OKL) LST(OKL), 9, 10,
     "duplicate listener 'l' (first defined at line 4)"},
    {"backend b {\n    server s 10.0.0.1:25\n    server s 10.0.0.2:25\n}\n", 3, 12,
     "duplicate server 's' in backend 'b' (first at line 2)"},
    {"backend b {\n    server s/1 10.0.0.1:25\n}\n", 2, 12, "bad server name 's/1'"},
    /* unknown directives and argument counts */
    {"global {\n    threads 4\n}\n", 2, 5,
     "unknown directive 'threads' in a global block (allowed: log, grace, splice, busy-poll, admin, "
     "admin-host, admin-token-file, admin-widest-ban, resolvers, timeout, user, group, maxconn, "
     "workers, verify, crowdsec, crowdsec-*)"},
    {"global {\n    verify sometimes\n}\n", 2, 12,
     "bad value 'sometimes' for verify: expected on-start or off"},
    {"global {\n    verify on-start timeout\n}\n", 2, 21,
     "verify: expected 'timeout DURATION' after 'on-start'"},
    {"global {\n    verify on-start timeout 0s\n}\n", 2, 29, "bad verify timeout '0s'"},
    {"global {\n    workers 0\n}\n", 2, 13,
     "bad workers '0': expected auto or a count of processes from 1 to 64"},
    {"global {\n    workers 65\n}\n", 2, 13, "bad workers '65'"},
    {"global {\n    workers 2\n    workers 3\n}\n", 3, 5, "duplicate"},
    {"backend b {\n    server s 10.0.0.1:25\n    bind :25\n}\n", 3, 5,
     "allowed: server, send-proxy, balance, check, timeout, queue-timeout, queue-max, "
     "happy-eyeballs-delay); 'bind' "
     "belongs in a listener block"},
    {LST("    throttle per-ip 20\n"), 2, 5,
     "unknown directive 'throttle' in a listener block (allowed: bind, protocol, accept-proxy, route, "
     "sni-required, timeout, limit, ban, allow, pregreet, shared-bans)"},
    {"backend b {\n    server s\n}\n", 2, 5,
     "too few arguments for 'server' (usage: server NAME HOST[:PORT] [check-port N] [backup])"},
    {"backend b {\n    server s 10.0.0.1:25 check-port 25 backup x\n}\n", 2, 47,
     "too many arguments for 'server'"},
    {LST("    protocol smtp imap\n"), 2, 19, "too many arguments for 'protocol'"},
    {LST("    bind\n"), 2, 5, "too few arguments for 'bind' (usage: bind ADDR:PORT ...)"},
    {"global {\n    timeout 5s\n}\n", 2, 5, "too few arguments for 'timeout'"},
    {"global {\n    log stderr format json level debug extra\n}\n", 2, 40,
     "too many arguments for 'log'"},
    /* values */
    {"global {\n    grace 30\n}\n", 2, 11,
     "bad duration '30': expected a duration like 30s, 500ms, 5m"},
    {"global {\n    grace 25h\n}\n", 2, 11, "too long (at most 24h)"},
    {"global {\n    timeout connect 0s\n}\n", 2, 21, "a timeout of 0 is impossible"},
    {LST("    timeout idle 0ms\n"), 2, 18, "a timeout of 0 is impossible"},
    {LST("    timeout proxy 1.5s\n"), 2, 19, "bad duration '1.5s'"},
    {"global {\n    timeout read 5s\n}\n", 2, 13,
     "unknown timeout 'read' (allowed in a global block: connect, proxy, idle, hello)"},
    {LST("    timeout connect 5s\n"), 2, 13,
     "timeout connect does not belong in a listener block (set it in a backend or the global "
     "block)"},
    {"backend b {\n    timeout idle 5s\n}\n", 2, 13,
     "timeout idle does not belong in a backend block"},
    {"global {\n    splice yes\n}\n", 2, 12, "bad value 'yes' for splice: expected on, off or auto"},
    {"global {\n    log syslog\n}\n", 2, 9, "log destination must be 'stderr' or an absolute path"},
    {"global {\n    log stderr format xml\n}\n", 2, 23,
     "bad log format 'xml': expected logfmt or json"},
    {"global {\n    log stderr level trace\n}\n", 2, 22,
     "bad log level 'trace': expected info or debug"},
    {"global {\n    log stderr colour red\n}\n", 2, 16, "unknown log option 'colour'"},
    {"global {\n    log stderr format\n}\n", 2, 16, "'format' needs a value: logfmt or json"},
    {"global {\n    log stderr level info level debug\n}\n", 2, 27,
     "log option 'level' given twice"},
    {LST("    protocol smtps\n"), 2, 14,
     "bad protocol 'smtps': expected smtp, submission, imap, pop3, tls or tcp"},
    {"backend b {\n    send-proxy v3\n}\n", 2, 16, "bad PROXY version 'v3': expected v1 or v2"},
    {"backend b {\n    balance leastconn\n}\n", 2, 13,
     "bad balance 'leastconn': expected round-robin, first or least-conn"},
    /* addresses */
    {"backend b {\n    server s mail_x.example.org:25\n}\n", 2, 14,
     "bad server address 'mail_x.example.org:25': not an IP address (expected an IP address "
     "like 10.0.0.5:25 or [fd00::5]:25, or a host name like mx1.example.org:25)"},
    {"backend b {\n    server s -mx.example.org\n}\n", 2, 14,
     "bad server address '-mx.example.org'"},
    {"backend b {\n    server s mx..example.org:25\n}\n", 2, 14,
     "bad server address 'mx..example.org:25'"},
    {"backend b {\n    server s mx.example.org:0\n}\n", 2, 14,
     "bad server address 'mx.example.org:0': bad port (expected a number from 1 to 65535)"},
    {"backend b {\n    server s mx.example.org:smtp\n}\n", 2, 14, "bad port"},
    {"backend b {\n    server s mx.example.org:25:26\n}\n", 2, 14,
     "bad server address 'mx.example.org:25:26'"},
    {"backend b {\n    server s 10.0.0.300:25\n}\n", 2, 14,
     "bad server address '10.0.0.300:25'"},
    {"global {\n    resolvers 127.0.0.1 dns.example.org\n}\n", 2, 25,
     "bad resolver address 'dns.example.org': not an IP address (expected an IP address like "
     "10.0.0.53, 127.0.0.1:5353 or [::1]:53)"},
    {"global {\n    resolvers 0.0.0.0\n}\n", 2, 15,
     "bad resolver address '0.0.0.0': a resolver needs a specific IP address"},
    {"global {\n    resolvers 127.0.0.1:0\n}\n", 2, 15, "bad resolver address '127.0.0.1:0'"},
    {"global {\n    resolvers 1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 "
     "1.1.1.9\n}\n",
     2, 79, "too many resolvers (at most 8)"},
    {"global {\n    resolvers\n}\n", 2, 5, "too few arguments for 'resolvers'"},
    {"backend b {\n    server s 10.0.0.1:99999\n}\n", 2, 14,
     "port must be a number from 1 to 65535"},
    {"backend b {\n    server s :25\n}\n", 2, 14, "not a wildcard"},
    {"backend b {\n    server s 0.0.0.0:25\n}\n", 2, 14, "not a wildcard"},
    {"backend b {\n    server s [fd00::1\n}\n", 2, 14, "missing ']'"},
    {LST("    bind 127.0.0.1:25 1.2.3.4\n"), 2, 23, "bad bind address '1.2.3.4': missing port"},
    {LST("    bind ::1:25\n"), 2, 10, "[addr]:port"},
    {LST("    bind [::1]:0\n"), 2, 10, "port must be a number from 1 to 65535"},
    {LST("    accept-proxy v2 from 10.0.0.1/8\n"), 2, 26,
     "bad network '10.0.0.1/8': host bits set beyond the prefix length"},
    {LST("    accept-proxy v2 from 10.0.0.0/33\n"), 2, 26, "prefix length must be 0 to 32"},
    {LST("    accept-proxy v3 from 10.0.0.0/8\n"), 2, 18,
     "bad PROXY version 'v3': expected v1, v2 or any"},
    {LST("    accept-proxy v2 10.0.0.0/8\n"), 2, 21, "expected 'from' after 'accept-proxy v2'"},
    {LST("    accept-proxy v2 from\n"), 2, 21, "at least one network after 'from'"},
    {LST("    accept-proxy v2 from 10.0.0.0/8\n    accept-proxy v1 from 10.1.0.0/16\n"), 3, 18,
     "accept-proxy v1 conflicts with the version given at line 2"},
    /* once-only directives */
    {LST(OKL "    protocol imap\n"), 5, 5,
     "duplicate 'protocol' (first at line 3; it may appear once per block)"},
    {LST(OKL "    route -> c\n"), 5, 5, "duplicate 'route ->' (first at line 4"},
    {LST(OKL "    timeout idle 1m\n    timeout idle 2m\n"), 6, 5,
     "duplicate 'timeout idle' (first at line 5"},
    {"backend b {\n    send-proxy v1\n    send-proxy v2\n}\n", 3, 5, "duplicate 'send-proxy'"},
    {"backend b {\n    balance first\n    balance first\n}\n", 3, 5, "duplicate 'balance'"},
    {"backend b {\n    timeout connect 1s\n    timeout connect 1s\n}\n", 3, 5,
     "duplicate 'timeout connect'"},
    {"global {\n    grace 1s\n    grace 2s\n}\n", 3, 5, "duplicate 'grace'"},
    {"global {\n    timeout proxy 1s\n    timeout proxy 2s\n}\n", 3, 5,
     "duplicate 'timeout proxy'"},
    /* missing required */
    {"backend b {\n}\n", 1, 1, "backend 'b' has no server (add: server NAME ADDR[:PORT])"},
    {"backend b {\n    server s 10.0.0.1:25\n}\nlistener l {\n    protocol smtp\n    route -> "
     "b\n}\n",
     4, 1, "listener 'l' has no bind"},
    {"backend b {\n    server s 10.0.0.1:25\n}\nlistener l {\n    bind :25\n    route -> b\n}\n", 4,
     1, "listener 'l' has no protocol"},
    {"listener l {\n    bind :25\n    protocol smtp\n}\n", 1, 1,
     "listener 'l' has no route (add: route -> BACKEND[:PORT])"},
    {"global {\n}\n", 0, 0, "no listener is defined"},
    {"", 0, 0, "no listener is defined"},
    /* routes */
    {LST("    bind :25\n    protocol smtp\n    route -> nope\n") "backend a {\n    server s "
                                                                 "10.0.0.1:25\n}\n"
                                                                 "backend b {\n    server s "
                                                                 "10.0.0.1:25\n}\n",
     4, 14, "route to unknown backend 'nope' (defined backends: a, b)"},
    {LST("    bind :25\n    protocol smtp\n    route -> nope:25\n"), 4, 14,
     "route to unknown backend 'nope' (no backend is defined)"},
    {"backend b {\n    server s1 10.0.0.1:25\n    server s2 10.0.0.2\n}\n" LST(
         "    bind :25\n    protocol smtp\n    route -> b\n"),
     8, 14, "route -> b needs a port: server 's2' of backend 'b' has none (write route -> b:PORT)"},
    {LST("    bind :25\n    protocol smtp\n    route -> 10.0.0.1\n"), 4, 14,
     "route to the address '10.0.0.1' needs a port"},
    {LST("    bind :25\n    protocol smtp\n    route -> fd00::1\n"), 4, 14,
     "an IPv6 address with a port is written [ADDR]:PORT"},
    {LST("    route -> b:0\n"), 2, 14, "bad port '0' in route"},
    {LST("    route -> b:smtp\n"), 2, 14, "bad port 'smtp' in route"},
    {LST("    route -> :25\n"), 2, 14, "a route needs a backend or a specific IP address"},
    {LST("    route -> b/c\n"), 2, 14, "bad route target 'b/c'"},
    {LST("    route b\n"), 2, 11, "expected '->' or 'sni' after 'route' (usage: route -> "
                                "BACKEND[:PORT] or route sni NAME... -> BACKEND[:PORT])"},
    {LST("    route ->\n"), 2, 11, "route takes one target after '->'"},
    {LST("    route -> a b\n"), 2, 16, "route takes one target after '->'"},
    /* TLS: route sni, sni-required, timeout hello, send-proxy v2 authority */
    {LST("    bind :993\n    protocol imap\n    route sni a.example -> b\n    route -> b\n"), 4, 11,
     "route sni on a imap listener: the server speaks first, so waiting for a TLS ClientHello "
     "would stall its greeting (use protocol tls"},
    {LST("    route sni a.example -> b\n    protocol submission\n    route -> b\n    bind :1\n"),
     2, 11, "route sni on a submission listener: the server speaks first"},
    {LST("    bind :1\n    protocol tcp\n    route sni a.example -> b\n    route -> b\n"), 4, 11,
     "route sni needs protocol tls: a tcp listener's clients may wait for the server"},
    {LST(OKL "    sni-required\n"), 5, 5, "sni-required on a smtp listener: the server speaks first"},
    {LST("    bind :110\n    protocol pop3\n    timeout hello 2s\n    route -> b\n"), 4, 5,
     "timeout hello on a pop3 listener: the server speaks first"},
    {LST("    bind :443\n    protocol tls\n    route sni a.example -> b\n"), 1, 1,
     "listener 'l' has no default route for clients that match no route sni (add: route -> "
     "BACKEND[:PORT], or sni-required to refuse them)"},
    {LST("    bind :443\n    protocol tls\n    sni-required\n"), 1, 1,
     "listener 'l' has no route (add: route -> BACKEND[:PORT])"},
    {LST("    route sni -> b\n"), 2, 15, "route sni needs at least one server name before '->'"},
    {LST("    route sni\n"), 2, 11, "route sni needs at least one server name before '->'"},
    {LST("    route sni a.example b\n"), 2, 11,
     "route sni without '->' (usage: route sni NAME... -> BACKEND[:PORT])"},
    {LST("    route sni a.example ->\n"), 2, 25, "route takes one target after '->'"},
    {LST("    route sni a.example -> b c\n"), 2, 30, "route takes one target after '->'"},
    {LST("    route sni a.example -> b:0\n"), 2, 28, "bad port '0' in route"},
    {LST("    route sni a.example -> :443\n"), 2, 28,
     "a route needs a backend or a specific IP address"},
    {LST("    route sni ok.example a_b.example -> b\n"), 2, 26,
     "bad server name 'a_b.example' in route sni: expected a host name like mail.example.org or "
     "a wildcard like *.example.org"},
    {LST("    route sni mail.*.example -> b\n"), 2, 15,
     "bad server name 'mail.*.example' in route sni: a wildcard is a whole first label"},
    {LST("    route sni * -> b\n"), 2, 15, "a wildcard is a whole first label"},
    {LST("    route sni *.*.example -> b\n"), 2, 15, "a wildcard is a whole first label"},
    {LST("    route sni *. -> b\n"), 2, 15, "bad server name '*.' in route sni"},
    {LST("    route sni -a.example -> b\n"), 2, 15, "bad server name '-a.example'"},
    {LST("    route sni 192.0.2.1 -> b\n"), 2, 15,
     "'192.0.2.1' is an IP address: TLS clients never send one as server name"},
    {LST("    route sni a.example A.Example. -> b\n"), 2, 25,
     "server name 'A.Example.' is already routed at line 2"},
    {LST("    route sni *.example.org -> b\n    route sni *.Example.org -> c\n"), 3, 15,
     "server name '*.Example.org' is already routed at line 2"},
    {LST("    route sni *.example.org -> b\n    route sni x.y mail.example.org -> c\n"), 3, 19,
     "server name 'mail.example.org' never matches: '*.example.org' at line 2 comes first and "
     "takes it (routes are tried in order)"},
    {LST("    route sni a.example -> b\n    route -> b\n    route -> c\n"), 4, 5,
     "duplicate 'route ->' (first at line 3"},
    {LST("    sni-required\n    sni-required\n"), 3, 5, "duplicate 'sni-required'"},
    {LST("    sni-required yes\n"), 2, 18, "too many arguments for 'sni-required'"},
    {LST("    timeout hello 0s\n"), 2, 19, "a timeout of 0 is impossible"},
    {LST("    timeout hello 2s\n    timeout hello 3s\n"), 3, 5, "duplicate 'timeout hello'"},
    {"global {\n    timeout hello 25h\n}\n", 2, 19, "too long (at most 24h)"},
    {"backend b {\n    timeout hello 1s\n}\n", 2, 13,
     "timeout hello does not belong in a backend block (set it in a listener or the global "
     "block)"},
    {"backend b {\n    server s 10.0.0.1:25\n    send-proxy v1 authority\n}\n", 3, 19,
     "authority needs send-proxy v2: PROXY v1 has no TLVs to carry it"},
    {"backend b {\n    server s 10.0.0.1:25\n    send-proxy v2 auth\n}\n", 3, 19,
     "unknown send-proxy option 'auth' (expected authority)"},
    {"backend b {\n    server s 10.0.0.1:25\n    send-proxy v2 authority x\n}\n", 3, 29,
     "too many arguments for 'send-proxy' (usage: send-proxy v1|v2 [authority])"},
    {"backend b {\n    server s 10.0.0.1\n}\n" LST(
         "    bind :443\n    protocol tls\n    route sni a.example -> b\n    route -> b:443\n"),
     7, 28, "route -> b needs a port: server 's' of backend 'b' has none"},
    {"backend b {\n    server s 10.0.0.1:1\n}\n" LST(
         "    bind :443\n    protocol tls\n    route sni a.example -> nope\n    route -> b\n"),
     7, 28, "route to unknown backend 'nope' (defined backends: b)"},
    /* bind overlaps */
    {"backend b {\n    server s 10.0.0.1:25\n}\n"
     "listener a {\n    bind 10.0.0.1:25\n    protocol smtp\n    route -> b\n}\n"
     "listener c {\n    bind 127.0.0.1:26 10.0.0.1:25\n    protocol smtp\n    route -> b\n}\n",
     10, 23, "bind 10.0.0.1:25 is already used by listener 'a' at line 5 col 10"},
    {"backend b {\n    server s 10.0.0.1:25\n}\n"
     "listener a {\n    bind :25\n    protocol smtp\n    route -> b\n}\n"
     "listener c {\n    bind 0.0.0.0:25\n    protocol smtp\n    route -> b\n}\n",
     10, 10, "bind 0.0.0.0:25 overlaps :25 of listener 'a' at line 5 col 10: a wildcard covers"},
    {"backend b {\n    server s 10.0.0.1:25\n}\n"
     "listener a {\n    bind [::]:25\n    protocol smtp\n    route -> b\n}\n"
     "listener c {\n    bind *:25\n    protocol smtp\n    route -> b\n}\n",
     10, 10, "bind :25 overlaps [::]:25 of listener 'a'"},
    {"backend b {\n    server s 10.0.0.1:25\n}\n"
     "listener a {\n    bind 0.0.0.0:25 [::1]:25 127.0.0.1:25\n    protocol smtp\n    route -> "
     "b\n}\n",
     5, 30, "bind 127.0.0.1:25 overlaps 0.0.0.0:25 of listener 'a'"},
    {"backend b {\n    server s 10.0.0.1:25\n}\n"
     "listener a {\n    bind :25\n    bind :25\n    protocol smtp\n    route -> b\n}\n",
     6, 10, "bind :25 is already used by listener 'a' at line 5 col 10"},
};

static bool
check_bad(const struct bad_case *t)
{
    struct conf *c = NULL;
    struct diag_list d = {0};
    bool ok;

    int r = conf_load_string("bad.conf", t->text, strlen(t->text), false, &c, &d);
    ok = r == -1 && c == NULL && d.n >= 1 && d.v[0].line == t->line && d.v[0].col == t->col &&
         strstr(d.v[0].msg, t->msg) != NULL && strcmp(d.v[0].file, "bad.conf") == 0;
    if (!ok) {
        fprintf(stderr, "--- expected %d:%d: %s\n--- for:\n%s--- got (%d):\n", t->line, t->col,
                t->msg, t->text, r);
        diag_list_print(&d, stderr);
    }
    conf_free(c);
    diag_list_free(&d);
    return ok;
}

static void
test_bad_cases(void **state)
{
    (void)state;
    int failed = 0;

    unsetenv("MAILEDGE_T_NOPE");
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++)
        failed += !check_bad(&bad_cases[i]);
    assert_int_equal(failed, 0);
}

/* One mistake must not hide the next ones, nor invent others. */
static void
test_keeps_going(void **state)
{
    (void)state;
    struct conf *c = NULL;
    struct diag_list d = {0};
    const char *text = "backend b {\n"
                       "    server s 10.0.0.1:25\n"
                       "    send-proxy v9\n" /* 3:16 */
                       "}\n"
                       "listener l {\n"
                       "    bind :25\n"
                       "    protocol smtpx\n" /* 7:14 */
                       "    route -> b\n"
                       "    timeout idle forever\n" /* 9:18 */
                       "}\n";
    assert_int_equal(conf_load_string("k.conf", text, strlen(text), false, &c, &d), -1);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.v[0].line, 3);
    assert_int_equal(d.v[1].line, 7);
    assert_int_equal(d.v[2].line, 9);
    assert_int_equal(d.v[2].col, 18);
    diag_list_free(&d);
}

static void
test_diag_cap(void **state)
{
    (void)state;
    struct conf *c = NULL;
    struct diag_list d = {0};
    char text[4096];
    size_t len = 0;

    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "oops\n");
    assert_int_equal(conf_load_string("cap.conf", text, len, false, &c, &d), -1);
    assert_int_equal(d.n, 51);
    assert_int_equal(d.v[49].line, 50);
    assert_non_null(strstr(d.v[50].msg, "too many errors"));
    diag_list_free(&d);
}

static void
test_diag_print(void **state)
{
    (void)state;
    struct conf *c = NULL;
    struct diag_list d = {0};
    char *out = NULL;
    size_t outlen = 0;
    const char *text = "global {\n  grace soon\n}\n";

    assert_int_equal(conf_load_string("p.conf", text, strlen(text), false, &c, &d), -1);
    FILE *fp = open_memstream(&out, &outlen);
    assert_non_null(fp);
    diag_list_print(&d, fp);
    fclose(fp);
    assert_string_equal(out, "p.conf:2:9: bad duration 'soon': expected a duration like 30s, "
                             "500ms, 5m\n");
    free(out);
    diag_list_free(&d);
    assert_null(d.v);
    assert_int_equal(d.n, 0);
    diag_list_free(&d);
}

static void
test_helpers(void **state)
{
    (void)state;
    assert_string_equal(conf_proto_name(PROTO_SMTP), "smtp");
    assert_string_equal(conf_proto_name(PROTO_SUBMISSION), "submission");
    assert_string_equal(conf_proto_name(PROTO_IMAP), "imap");
    assert_string_equal(conf_proto_name(PROTO_POP3), "pop3");
    assert_string_equal(conf_proto_name(PROTO_TLS), "tls");
    assert_string_equal(conf_proto_name(PROTO_TCP), "tcp");
    assert_true(conf_proto_server_first(PROTO_SMTP));
    assert_true(conf_proto_server_first(PROTO_SUBMISSION));
    assert_true(conf_proto_server_first(PROTO_IMAP));
    assert_true(conf_proto_server_first(PROTO_POP3));
    assert_false(conf_proto_server_first(PROTO_TLS));
    assert_false(conf_proto_server_first(PROTO_TCP));
    conf_free(NULL);
}

/* ---- the example and test configuration files ---- */

static const char *
config_dir(const char *sub, char *buf, size_t cap)
{
    snprintf(buf, cap, "tests/configs/%s", sub);
    return buf;
}

static void
test_config_files_good(void **state)
{
    (void)state;
    char dir[256], path[600];
    int n = 0, failed = 0;
    DIR *dp = opendir(config_dir("good", dir, sizeof(dir)));

    if (dp == NULL) {
        fail_msg("cannot open %s (run from the repository root)", dir);
        return;
    }
    setenv("MAILBOX_IP", "100.100.1.2", 1);
    setenv("MAIL_DOMAIN", "example.org", 1);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".conf") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct conf *c = NULL;
        struct diag_list d = {0};
        if (conf_load(path, &c, &d) != 0) {
            diag_list_print(&d, stderr);
            failed++;
        }
        conf_free(c);
        diag_list_free(&d);
        n++;
    }
    closedir(dp);
    const char *examples[] = {"examples/local.conf", "examples/mailedge.conf",
                              "examples/https-sni.conf"};
    for (size_t i = 0; i < ARRAY_LEN(examples); i++) {
        struct conf *c = NULL;
        struct diag_list d = {0};
        if (conf_load(examples[i], &c, &d) != 0) {
            diag_list_print(&d, stderr);
            failed++;
        }
        conf_free(c);
        diag_list_free(&d);
    }
    assert_true(n > 0);
    assert_int_equal(failed, 0);
}

/* Each bad file starts with "# expect: LINE:COL: text" for its first diagnostic. */
static void
test_config_files_bad(void **state)
{
    (void)state;
    char dir[256], path[600];
    int n = 0, failed = 0;
    DIR *dp = opendir(config_dir("bad", dir, sizeof(dir)));

    if (dp == NULL) {
        fail_msg("cannot open %s (run from the repository root)", dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".conf") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char first[512] = "";
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        if (fgets(first, sizeof(first), fp) == NULL)
            first[0] = '\0';
        fclose(fp);
        first[strcspn(first, "\n")] = '\0';
        int line, col, off = 0;
        if (sscanf(first, "# expect: %d:%d: %n", &line, &col, &off) != 2 || off == 0) {
            fprintf(stderr, "%s: first line must be '# expect: LINE:COL: text'\n", path);
            failed++;
            continue;
        }
        struct conf *c = NULL;
        struct diag_list d = {0};
        int r = conf_load(path, &c, &d);
        if (r != -1 || d.n == 0 || d.v[0].line != line || d.v[0].col != col ||
            strstr(d.v[0].msg, first + off) == NULL) {
            fprintf(stderr, "%s: expected %d:%d: %s, got:\n", path, line, col, first + off);
            diag_list_print(&d, stderr);
            failed++;
        }
        conf_free(c);
        diag_list_free(&d);
        n++;
    }
    closedir(dp);
    assert_true(n > 0);
    assert_int_equal(failed, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_abuse_settings),
        cmocka_unit_test(test_maxconn),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_everything_set),
        cmocka_unit_test(test_global_timeouts_inherited),
        cmocka_unit_test(test_implicit_backend),
        cmocka_unit_test(test_route_pointers_after_growth),
        cmocka_unit_test(test_binds),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_value_never_splits),
        cmocka_unit_test(test_crlf_and_no_final_newline),
        cmocka_unit_test(test_sni_routes),
        cmocka_unit_test(test_sni_match),
        cmocka_unit_test(test_sni_order),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_include_errors),
        cmocka_unit_test(test_include_disabled),
        cmocka_unit_test(test_bad_cases),
        cmocka_unit_test(test_keeps_going),
        cmocka_unit_test(test_diag_cap),
        cmocka_unit_test(test_diag_print),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_config_files_good),
        cmocka_unit_test(test_config_files_bad),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_queue),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
