/*
 * session_abuse: the session's side of abuse control (src/edge/abuse.c): admit
 * or refuse the client once its address is final, and the pre-greet watch
 * of smtp listeners while relaying.
 */
#include <errno.h>
#include <string.h>

#include "abuse.h"
#include "addr.h"
#include "bouncer.h"
#include "dominant.h"
#include "log.h"
#include "conf.h"
#include "loop.h"
#include "session_int.h"
#include "worker.h"

/*
 * Refuses the client with the protocol's answer and closes: no backend
 * connection is made (or, for pregreet, it is dropped). What the client
 * sent is read away first, so the close is a FIN and the answer arrives.
 */
void
session_refuse(struct session *s, enum end_reason r, const char *detail)
{
    const char *msg = NULL;
    bool ban = r == END_BANNED || r == END_PREGREET;

    switch (lconf(s)->proto) {
    case PROTO_SMTP:
    case PROTO_SUBMISSION:
        msg = r == END_PREGREET ? "554 5.7.1 Protocol error: talked before the greeting\r\n"
              : ban             ? "554 5.7.1 Access denied\r\n"
                                : "421 4.7.0 Too many connections, try again later\r\n";
        break;
    case PROTO_IMAP:
        msg = ban ? "* BYE Access denied\r\n"
                  : "* BYE Too many connections, try again later\r\n";
        break;
    case PROTO_POP3:
        msg = ban ? "-ERR Access denied\r\n"
                  : "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
        break;
    case PROTO_TLS:
    case PROTO_TCP:
        break;
    }
    session_discard_peeked(s);
    if (s->bio.fd >= 0) {
        /* pregreet: the server's greeting may wait unread; closing over it would reset. */
        uint8_t buf[4096];
        for (int i = 0; i < 4 && recv(s->bio.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
            ;
    }
    session_tell(s, msg);
    session_close(s, r, detail);
}

/*
 * One address carried most of the listener's recent sessions: a relay in
 * front that sends no PROXY header would be limited and banned for all its
 * clients. Rate-bounded by src/edge/dominant.c.
 */
static void
warn_dominant(const struct session *s, const struct abuse_key *k, unsigned n)
{
    char a[ABUSE_KEY_STRLEN];

    log_begin(LOG_WARN, "dominant_client");
    log_str("listener", lconf(s)->name);
    log_str("client", abuse_key_format(k, a, sizeof(a)));
    log_u64("sessions", n);
    log_u64("of", DOMINANT_WINDOW);
    log_str("hint", "a relay without a PROXY header? give it accept-proxy ... from, or allow");
    log_end();
}

/* The client's address is final: limits and bans. False when refused. */
bool
session_admit(struct session *s)
{
    static const enum end_reason reasons[ABUSE_VERDICT_COUNT] = {
        [ABUSE_PER_IP] = END_LIMIT_PER_IP,
        [ABUSE_RATE] = END_LIMIT_RATE,
        [ABUSE_BANNED] = END_BANNED,
    };
    uint64_t now = loop_now(s->w->loop);
    struct abuse_key k;
    unsigned n;

    if (addr_equal(&s->client.sa, &s->peer.sa) &&
        (n = abuse_note_peer(s->l->abuse, &s->client.sa, now, &k)) > 0)
        warn_dominant(s, &k, n);
    /* Remote bans (src/edge/bouncer.c): after allow, before the listener's own. */
    const struct banset_entry *e;
    if (!lconf(s)->shared_bans_off && (e = bouncer_lookup(s->w, &s->client.sa)) != NULL &&
        !abuse_allowed(s->l->abuse, &s->client.sa)) {
        s->w->proc->remote_refused++; /* summed over workers (src/edge/status.c) */
        s->remote_ban = e;
        session_refuse(s, END_BANNED, NULL);
        return false;
    }
    enum abuse_verdict v = abuse_admit(s->l->abuse, &s->client.sa, now, &s->ticket);

    if (v == ABUSE_ADMIT) {
        /* An allowed client is never refused or struck, so not watched. */
        s->pg_watch = lconf(s)->pregreet != PREGREET_OFF &&
                      !abuse_allowed(s->l->abuse, &s->client.sa);
        return true;
    }
    session_refuse(s, reasons[v], NULL);
    return false;
}


/*
 * pregreet: until the backend's first bytes reached the client, the client
 * direction is not pumped; bytes the client sent by then are seen with a
 * peek (they stay in the socket) and make it a pre-greet client, counted,
 * and refused with pregreet reject. Returns false when the session ended.
 */
bool
session_pregreet_check(struct session *s)
{
    uint8_t byte;
    ssize_t n;

    if (s->down.bytes > 0 || !s->c_rd) {
        s->pg_watch = s->down.bytes == 0;
        return true;
    }
    do {
        n = recv(s->cio.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        s->c_rd = false;
        return true;
    }
    if (n <= 0) {
        /* EOF or an error: not a talker; the relay handles it. */
        s->pg_watch = false;
        return true;
    }
    s->pg_watch = false;
    s->talked_early = true;
    abuse_count_pregreet(s->l->abuse);
    if (lconf(s)->pregreet != PREGREET_REJECT)
        return true;
    abuse_violation(s->l->abuse, &s->client.sa, ABUSE_BAN_PREGREET, loop_now(s->w->loop));
    session_refuse(s, END_PREGREET, "sent bytes before the greeting");
    return false;
}
