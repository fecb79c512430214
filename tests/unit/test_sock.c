/*
 * Unit tests for the delayed-ACK mode of src/base/sock.h: sock_delay_acks()
 * leaves a socket in the kernel's interactive mode (TCP_QUICKACK reads 0);
 * without it a new connection acknowledges at once (1), the kernel's
 * start; a connect with delay_acks completes on its first write. Loopback
 * only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

static int
quickack(int fd)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &v, &len), 0);
    return v;
}

/* A listener on 127.0.0.1 and an ephemeral port; <sa> gets its address. */
static int
listener(struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lfd = sock_listen((struct sockaddr *)sa, false, false, 16);
    assert_true(lfd >= 0);
    socklen_t len = sizeof(*sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)sa, &len), 0);
    return lfd;
}

/*
 * Connects (delay_acks as given) and waits until connected; writes one byte
 * first when <first> is set (a PROXY header's place); then accepts.
 */
static void
pair(bool delay_acks, bool first, int *cfd, int *afd)
{
    struct sockaddr_in sa;
    struct sockaddr_storage peer;
    int lfd = listener(&sa);
    *cfd = sock_connect((struct sockaddr *)&sa, NULL, delay_acks);
    assert_true(*cfd >= 0);
    struct pollfd p = {.fd = *cfd, .events = POLLOUT};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(sock_error(*cfd), 0);
    if (first)
        assert_int_equal(send(*cfd, "x", 1, 0), 1);
    struct pollfd q = {.fd = lfd, .events = POLLIN};
    assert_int_equal(poll(&q, 1, 5000), 1);
    *afd = sock_accept(lfd, &peer);
    assert_true(*afd >= 0);
    close(lfd);
}

/*
 * With delay_acks the handshake's last ACK waits for the first write: the
 * write completes the connection, the byte is there once accepted, and the
 * socket stays in the mode.
 */
static void
test_connect_delay_acks(void **state)
{
    int c, a;
    char b;
    (void)state;
    pair(true, true, &c, &a);
    struct pollfd r = {.fd = a, .events = POLLIN};
    assert_int_equal(poll(&r, 1, 5000), 1);
    assert_int_equal(recv(a, &b, 1, 0), 1);
    assert_int_equal(quickack(c), 0);
    assert_int_equal(quickack(a), 1);
    close(c);
    close(a);
}

static void
test_connect_default_acks_at_once(void **state)
{
    int c, a;
    (void)state;
    pair(false, false, &c, &a);
    assert_int_equal(quickack(c), 1);
    assert_int_equal(quickack(a), 1);
    sock_delay_acks(a);
    assert_int_equal(quickack(a), 0);
    close(c);
    close(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_delay_acks),
        cmocka_unit_test(test_connect_default_acks_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
