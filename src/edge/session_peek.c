/*
 * session_peek: what the client sends first, read with MSG_PEEK so that its
 * bytes stay in the socket for the relay: the inbound PROXY header
 * (READ_PROXY, only that is consumed) and the TLS ClientHello (PEEK_HELLO,
 * which picks the route).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "addr.h"
#include "conf.h"
#include "log.h"
#include "proxyproto.h"
#include "session_int.h"
#include "tlshello.h"

/*
 * Peeks at up to <cap> bytes from the client, leaving them in the socket.
 * Returns how many; 0 when there is nothing yet (wait for the next edge)
 * or when the session ended: a client that closed before <what> (a bare
 * connect-and-close probe, not an attack) or an error.
 */
static ssize_t
peek_client(struct session *s, uint8_t *buf, size_t cap, const char *what)
{
    ssize_t n;
    do {
        n = recv(s->cio.fd, buf, cap, MSG_PEEK);
    } while (n == -1 && errno == EINTR);
    if (n > 0)
        return n;
    if (n == 0)
        session_close(s, END_CLIENT_CLOSED, what);
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        s->c_rd = false;
    else
        session_close(s, END_CLIENT_RESET, strerror(errno));
    return 0;
}

/* --- inbound PROXY header ------------------------------------------------ */

void
session_read_proxy(struct session *s)
{
    uint8_t buf[PP_HEADER_MAX];
    ssize_t n;
    /* Peek, so that the bytes after the header stay in the socket and are
     * relayed like any other client byte (splice needs them there). */
    n = peek_client(s, buf, sizeof(buf), "closed before sending a PROXY header");
    if (n == 0)
        return;
    struct pp_header hdr;
    size_t consumed = 0;
    const char *why = NULL;
    switch (proxyproto_decode(buf, (size_t)n, lconf(s)->accept_proxy, &hdr, &consumed, &why)) {
    case PP_NEED_MORE:
        if (s->c_hup) {
            session_close(s, END_PROXY_INVALID, "truncated PROXY header");
            return;
        }
        s->c_rd = false; /* edge-triggered: the next segment wakes us */
        return;
    case PP_NOT_PROXY:
        session_close(s, END_PROXY_INVALID, "no PROXY header");
        return;
    case PP_INVALID:
        session_close(s, END_PROXY_INVALID, why ? why : "invalid PROXY header");
        return;
    case PP_OK:
        break;
    }
    /* Consume exactly the header; it is already in the socket buffer. */
    ssize_t r;
    do {
        r = recv(s->cio.fd, buf, consumed, 0);
    } while (r == -1 && errno == EINTR);
    if (r != (ssize_t)consumed) {
        session_close(s, END_CLIENT_RESET, r == -1 ? strerror(errno) : "short read");
        return;
    }
    if (!hdr.local) {
        /* A TCP6 header may carry ::ffff:a.b.c.d: the client is IPv4. */
        addr_unmap(&hdr.src);
        addr_unmap(&hdr.dst);
        sa_store(&s->client, &hdr.src);
        sa_store(&s->local, &hdr.dst);
    }
    session_begin(s);
}

/* --- ClientHello --------------------------------------------------------- */

static void
log_hello(const struct session *s, const char *result, const char *why)
{
    if (!log_enabled(LOG_DEBUG))
        return;
    log_begin(LOG_DEBUG, "hello");
    log_hex("id", s->id, 16);
    log_str("result", result);
    if (s->sni != NULL && s->sni[0] != '\0')
        log_str("sni", s->sni);
    if (why != NULL)
        log_str("error", why);
    log_u64("bytes", s->hello_seen);
    log_end();
}

/*
 * Reads away what the client sent (at most twice the hello bound) before a
 * refusal: closing a socket with unread input sends RST, and the client
 * should see the alert and a FIN instead.
 */
void
session_discard_peeked(struct session *s)
{
    uint8_t buf[TH_HELLO_MAX];

    for (int i = 0; i < 2; i++) {
        ssize_t n;
        do {
            n = recv(s->cio.fd, buf, sizeof(buf), MSG_DONTWAIT);
        } while (n == -1 && errno == EINTR);
        if (n < (ssize_t)sizeof(buf))
            break;
    }
}

/*
 * Refuses a client whose ClientHello was well formed with a fatal alert in
 * the clear, as a server would before its ServerHello: unrecognized_name
 * when it sent a name (RFC 6066 3), handshake_failure when it sent none
 * (RFC 8446 6.2). Best effort, once, like session_say_goodbye().
 */
static void
refuse_tls(struct session *s, const struct th_hello *h)
{
    uint8_t alert[] = {21, 3, 3, 0, 2, 2, h->has_sni ? 112 : 40};

    session_discard_peeked(s);
    ssize_t n = send(s->cio.fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        s->down.bytes += (uint64_t)n;
}

/*
 * The hello is parsed (or is not TLS at all): pick the route. No usable
 * server name goes to the default route, or is refused with sni-required.
 */
static void
hello_done(struct session *s, enum th_result r, const struct th_hello *h, const char *why)
{
    const struct conf_listener *lc = lconf(s);
    const char *sni = NULL;

    if (r == TH_OK && h->has_sni) {
        if (tlshello_host_name(h->sni, h->sni_len, s->sni, TH_HOST_MAX) > 0)
            sni = s->sni;
        else
            why = "server name is not a host name";
    } else if (r == TH_OK) {
        why = "no server name in the ClientHello";
    }
    log_hello(s, r == TH_OK ? "ok" : r == TH_NOT_TLS ? "not_tls" : "invalid", why);
    if (sni == NULL && lc->sni_required) {
        if (r == TH_OK)
            refuse_tls(s, h);
        else
            session_discard_peeked(s);
        session_close(s, END_SNI_REQUIRED, why);
        return;
    }
    const struct conf_route *route = conf_listener_route(lc, sni);
    if (route == NULL) {
        refuse_tls(s, h);
        session_close(s, END_SNI_NO_ROUTE, NULL);
        return;
    }
    session_start_connect(s, route);
}

/*
 * Peeks at the ClientHello: the bytes stay in the socket and reach the
 * backend untouched, like the bytes after an inbound PROXY header. The
 * hello is re-parsed from the start on each arrival; with edge-triggered
 * epoll, NEED_MORE waits for the next segment.
 */
void
session_peek_hello(struct session *s)
{
    uint8_t buf[TH_HELLO_MAX];
    int avail = 0;
    ssize_t n;

    /* Until the bytes the last parse asked for are there, a segment costs an
     * ioctl, not a 16 KiB peek and parse: a client dribbling one byte at a
     * time cannot make us re-parse its hello thousands of times. */
    if (s->hello_need > 0 && !s->c_hup && ioctl(s->cio.fd, FIONREAD, &avail) == 0 &&
        avail >= 0 && (size_t)avail < s->hello_need) {
        s->hello_seen = (size_t)avail;
        s->c_rd = false;
        return;
    }
    n = peek_client(s, buf, sizeof(buf), "closed before sending a ClientHello");
    if (n == 0)
        return;
    s->hello_seen = (size_t)n;
    struct th_hello h;
    const char *why = NULL;
    enum th_result r = tlshello_parse(buf, (size_t)n, &h, &why);
    if (r == TH_NEED_MORE) {
        if (s->c_hup) {
            session_discard_peeked(s);
            session_close(s, END_CLIENT_CLOSED, "closed in the middle of its ClientHello");
            return;
        }
        s->hello_need = h.need;
        s->c_rd = false; /* edge-triggered: the next segment wakes us */
        return;
    }
    hello_done(s, r, &h, why);
}
