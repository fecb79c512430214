/*
 * Helpers of the abuse unit tests (test_abuse.c, test_abuse_shared.c): a
 * client address from text, a session admitted or given back by address,
 * and an event function that counts bans started and ended. Include after
 * <cmocka.h>.
 */
#ifndef MAILEDGE_ABUSE_CLIENT_H
#define MAILEDGE_ABUSE_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "abuse.h"

struct events {
    int starts, ends;
    char last[ABUSE_KEY_STRLEN];
    const char *last_why;
    enum abuse_ban_reason last_reason;
};

static void
on_event(void *arg, const struct abuse_event *ev)
{
    struct events *e = arg;
    if (ev->start)
        e->starts++;
    else
        e->ends++;
    snprintf(e->last, sizeof(e->last), "%s", ev->text);
    e->last_why = ev->why;
    e->last_reason = ev->reason;
}

static struct sockaddr_storage
sa(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    }
    return ss;
}

static enum abuse_verdict
admit(struct abuse *t, const char *ip, uint64_t now, struct abuse_ticket *tk)
{
    struct sockaddr_storage ss = sa(ip);
    struct abuse_ticket dummy;
    return abuse_admit(t, (struct sockaddr *)&ss, now, tk != NULL ? tk : &dummy);
}

static void
release(struct abuse *t, const char *ip, const struct abuse_ticket *tk)
{
    struct sockaddr_storage ss = sa(ip);
    abuse_release(t, (struct sockaddr *)&ss, tk);
}

#endif
