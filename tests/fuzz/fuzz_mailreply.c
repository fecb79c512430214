/*
 * libFuzzer target for mailreply_classify (every kind) and probeurl_parse:
 * no crash, no read past the input, and the contract holds: NEED_MORE only
 * within the caps, a complete reply never consumes more than it was given,
 * BAD always carries a reason, and a prefix of an OK reply is NEED_MORE.
 * A postgres:// URL that parses always makes a StartupMessage.
 * The first byte picks the kind; the rest is the server's bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailreply.h"
#include "probeurl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define URL_MAX 2048

static void
check(int ok)
{
    if (!ok)
        abort();
}

static void
fuzz_kind(enum mr_kind kind, const char *buf, size_t len)
{
    struct mr_reply r;
    enum mr_result res = mailreply_classify(kind, buf, len, &r);
    switch (res) {
    case MR_NEED_MORE:
        check(len <= MR_REPLY_MAX + MR_LINE_MAX);
        break;
    case MR_OK:
        check(r.why == NULL);
        check(r.consumed > 0 && r.consumed <= len);
        /* The same reply, cut one byte short, is incomplete. */
        {
            struct mr_reply r2;
            check(mailreply_classify(kind, buf, r.consumed - 1, &r2) == MR_NEED_MORE);
        }
        break;
    case MR_BAD:
        check(r.why != NULL);
        check(r.consumed <= len);
        break;
    }
    if (r.text != NULL)
        check(r.text >= buf && r.text + r.text_len <= buf + len);
}

static void
fuzz_url(const uint8_t *data, size_t size)
{
    char s[URL_MAX + 1];
    struct probe_url u;
    const char *why = NULL;
    if (size > URL_MAX)
        size = URL_MAX;
    memcpy(s, data, size);
    s[size] = '\0';
    if (probeurl_parse(s, &u, &why) == 0) {
        check(u.host[0] != '\0' && u.port != 0);
        check(strlen(u.host) < sizeof(u.host) && strlen(u.path) < sizeof(u.path));
        check(strlen(u.pg_user) < sizeof(u.pg_user) && strlen(u.pg_db) < sizeof(u.pg_db));
        if (u.scheme == PS_POSTGRES) {
            char msg[256];
            check(mailreply_pg_startup(u.pg_user, u.pg_db, msg, sizeof(msg)) > 0);
        }
    } else {
        check(why != NULL);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* A private copy so ASan catches any read past the end. */
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, len);
    switch (data[0] % 8) {
    case 0:
        fuzz_kind(MR_SMTP_GREETING, buf, len);
        break;
    case 1:
        fuzz_kind(MR_SMTP_QUIT, buf, len);
        break;
    case 2:
        fuzz_kind(MR_IMAP_GREETING, buf, len);
        break;
    case 3:
        fuzz_kind(MR_IMAP_LOGOUT, buf, len);
        break;
    case 4:
        fuzz_kind(MR_POP3_STATUS, buf, len);
        break;
    case 5:
        fuzz_kind(MR_REDIS_PING, buf, len);
        break;
    case 6:
        fuzz_kind(MR_PG_STARTUP, buf, len);
        break;
    default:
        fuzz_url(data + 1, len);
        break;
    }
    free(buf);
    return 0;
}
