/*
 * receiver: the receiving side's settings for a backend. A backend has no
 * protocol of its own: it is the protocol of the listeners that route to
 * it (for tls and tcp listeners: the backend's check, else the listener's
 * well-known port). Each (protocol, port) pair the edge connects to is one
 * service on the receiver. Facts behind the text: ../../docs/operations.md,
 * "Setting up the receiving side", and the field notes it cites.
 */
#include "receiver.h"

#include <netinet/in.h>
#include <string.h>

#include "addr.h"

#define SERVICES_MAX 32

enum kind { K_SMTP, K_SUBMISSION, K_SMTPS, K_IMAP, K_IMAPS, K_POP3, K_POP3S, K_UNKNOWN };

static const struct {
    const char *name;     /* in comments */
    const char *stalwart; /* its protocol value */
    unsigned port;        /* the well-known port */
    bool smtp, tls;
} kinds[] = {
    [K_SMTP] = {"smtp", "smtp", 25, true, false},
    [K_SUBMISSION] = {"submission", "smtp", 587, true, false},
    [K_SMTPS] = {"submissions (implicit TLS)", "smtp", 465, true, true},
    [K_IMAP] = {"imap", "imap", 143, false, false},
    [K_IMAPS] = {"imaps (implicit TLS)", "imap", 993, false, true},
    [K_POP3] = {"pop3", "pop3", 110, false, false},
    [K_POP3S] = {"pop3s (implicit TLS)", "pop3", 995, false, true},
    [K_UNKNOWN] = {"unknown protocol", "", 0, false, false},
};

struct service {
    enum kind kind;
    unsigned port;
    const struct conf_listener *l; /* the first that routes here */
};

struct services {
    struct service v[SERVICES_MAX];
    size_t n;
    bool more;            /* some did not fit */
    bool v6_clients;      /* a listener routing here takes IPv6 clients */
};

unsigned
receiver_software(const char *name)
{
    if (strcmp(name, "postfix") == 0)
        return RECEIVER_POSTFIX;
    if (strcmp(name, "dovecot") == 0)
        return RECEIVER_DOVECOT;
    if (strcmp(name, "stalwart") == 0)
        return RECEIVER_STALWART;
    return 0;
}

static enum kind
kind_of(const struct conf_listener *l, const struct conf_backend *b)
{
    switch (l->proto) {
    case PROTO_SMTP:
        return K_SMTP;
    case PROTO_SUBMISSION:
        return K_SUBMISSION;
    case PROTO_IMAP:
        return K_IMAP;
    case PROTO_POP3:
        return K_POP3;
    case PROTO_TLS:
    case PROTO_TCP:
        break;
    }
    switch (b->check) {
    case CHECK_SMTP:
        return K_SMTP;
    case CHECK_SMTPS:
        return K_SMTPS;
    case CHECK_IMAP:
        return K_IMAP;
    case CHECK_IMAPS:
        return K_IMAPS;
    case CHECK_POP3:
        return K_POP3;
    case CHECK_POP3S:
        return K_POP3S;
    default:
        break;
    }
    unsigned port = l->nbinds > 0 ? addr_port((const struct sockaddr *)&l->binds[0].addr) : 0;
    for (size_t k = 0; k < K_UNKNOWN; k++) {
        /* A tls listener on 25, 587, 143 or 110 would be odd: only the TLS ports count. */
        if (kinds[k].port == port && (l->proto == PROTO_TCP || kinds[k].tls))
            return (enum kind)k;
    }
    return K_UNKNOWN;
}

static void
add_service(struct services *s, enum kind k, unsigned port, const struct conf_listener *l)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].kind == k && s->v[i].port == port)
            return;
    }
    if (s->n == SERVICES_MAX) {
        s->more = true;
        return;
    }
    s->v[s->n++] = (struct service){k, port, l};
}

static void
add_route(struct services *s, const struct conf_listener *l, const struct conf_route *r,
          const struct conf_backend *b)
{
    if (r->backend != b)
        return;
    enum kind k = kind_of(l, b);
    for (size_t i = 0; i < b->nservers; i++) {
        unsigned port = r->port != 0 ? r->port : b->servers[i].port;
        if (port != 0)
            add_service(s, k, port, l);
    }
    for (size_t i = 0; i < l->nbinds; i++) {
        if (l->binds[i].any || l->binds[i].addr.ss_family == AF_INET6)
            s->v6_clients = true;
    }
}

static void
collect(const struct conf *c, const struct conf_backend *b, struct services *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        add_route(s, l, &l->route, b);
        for (size_t j = 0; j < l->nsni_routes; j++)
            add_route(s, l, &l->sni_routes[j].route, b);
    }
}

/* The edge's addresses (as /32 and /128 networks with <nets>), separated by <sep>, in <quote>. */
static void
print_sources(FILE *out, const struct sockaddr_storage *src, size_t nsrc, bool nets,
              const char *sep, const char *quote)
{
    char ip[ADDR_STRLEN];

    if (nsrc == 0) {
        fprintf(out, "%sEDGE_ADDRESS%s", quote, quote);
        return;
    }
    for (size_t i = 0; i < nsrc; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&src[i];
        addr_format_ip(sa, ip, sizeof(ip));
        fprintf(out, "%s%s%s", i > 0 ? sep : "", quote, ip);
        if (nets)
            fprintf(out, "/%d", sa->sa_family == AF_INET ? 32 : 128);
        fprintf(out, "%s", quote);
    }
}

static void
print_postfix(FILE *out, const struct conf_backend *b, const struct services *s,
              const struct sockaddr_storage *src, size_t nsrc)
{
    fprintf(out, "\n# Postfix, master.cf (\"haproxy\" reads PROXY v1, and v2 since Postfix 3.5)\n");
    if (b->send_proxy == 2)
        fprintf(out, "# This backend sends PROXY v2: Postfix 3.5 or later is needed. An older\n"
                     "# Postfix reads only v1: set 'send-proxy v1' in backend %s for it.\n",
                b->name);
    for (size_t i = 0; i < s->n; i++) {
        const struct service *v = &s->v[i];
        if (!kinds[v->kind].smtp)
            continue;
        if (v->kind == K_SMTP) {
            fprintf(out,
                    "%-10u inet  n       -       -       -       1       postscreen\n"
                    "  -o postscreen_upstream_proxy_protocol=haproxy\n"
                    "  -o postscreen_upstream_proxy_timeout=5s\n"
                    "# postscreen hands clients to the \"smtpd pass\" service of master.cf.\n"
                    "# Without postscreen: smtpd with -o smtpd_upstream_proxy_protocol=haproxy\n",
                    v->port);
            continue;
        }
        fprintf(out,
                "%-10u inet  n       -       -       -       -       smtpd\n"
                "  -o smtpd_upstream_proxy_protocol=haproxy\n"
                "  -o smtpd_upstream_proxy_timeout=5s\n",
                v->port);
        if (v->kind == K_SMTPS)
            fprintf(out, "  -o smtpd_tls_wrappermode=yes\n");
    }
    fprintf(out, "# Postfix takes the header from any peer on these ports: let only the edge\n"
                 "# (");
    print_sources(out, src, nsrc, false, ", ", "");
    fprintf(out, ") reach them.\n");
    if (s->v6_clients)
        fprintf(out, "# main.cf: inet_protocols = all (or ipv6): with ipv4 only, Postfix answers\n"
                     "# 421 to a header that carries an IPv6 client.\n");
}

static void
print_dovecot(FILE *out, const struct services *s, const struct sockaddr_storage *src,
              size_t nsrc)
{
    fprintf(out, "\n# Dovecot, dovecot.conf (reads PROXY v1 and v2); haproxy_trusted_networks\n"
                 "# is global: keep any other proxy's addresses on the same line.\n"
                 "haproxy_trusted_networks = ");
    print_sources(out, src, nsrc, true, " ", "");
    fprintf(out, "\n");
    for (size_t i = 0; i < s->n; i++) {
        const struct service *v = &s->v[i];
        if (kinds[v->kind].smtp || v->kind == K_UNKNOWN)
            continue;
        bool imap = v->kind == K_IMAP || v->kind == K_IMAPS;
        fprintf(out,
                "service %s-login {\n"
                "  inet_listener %s_mailedge_%u {\n"
                "    port = %u\n"
                "    haproxy = yes\n"
                "%s"
                "  }\n"
                "}\n",
                imap ? "imap" : "pop3", imap ? "imap" : "pop3", v->port, v->port,
                kinds[v->kind].tls ? "    ssl = yes\n" : "");
    }
}

static void
print_stalwart(FILE *out, const struct services *s, const struct sockaddr_storage *src,
               size_t nsrc)
{
    fprintf(out, "\n# Stalwart, config.toml (reads PROXY v1 and v2): trusted networks per\n"
                 "# listener, never the global server.proxy.trusted-networks, which every\n"
                 "# listener without its own list uses, the admin (http) one included.\n");
    bool first = true;
    for (size_t i = 0; i < s->n; i++) {
        const struct service *v = &s->v[i];
        if (v->kind == K_UNKNOWN)
            continue;
        fprintf(out,
                "%s[server.listener.\"mailedge-%s-%u\"]\n"
                "bind = [\"[::]:%u\"]\n"
                "protocol = \"%s\"\n"
                "%s"
                "proxy.trusted-networks = [",
                first ? "" : "\n", kinds[v->kind].stalwart, v->port, v->port,
                kinds[v->kind].stalwart,
                kinds[v->kind].tls ? "tls.implicit = true\n" : "");
        print_sources(out, src, nsrc, true, ", ", "\"");
        fprintf(out, "]\n");
        first = false;
    }
}

void
receiver_print(FILE *out, const struct conf *c, const struct conf_backend *b,
               const struct sockaddr_storage *src, size_t nsrc, unsigned which)
{
    struct services s;
    bool smtp = false, mailbox = false;

    collect(c, b, &s);
    fprintf(out, "# backend %s\n", b->name);
    for (size_t i = 0; i < s.n; i++) {
        const struct service *v = &s.v[i];
        fprintf(out, "# port %u: %s, from listener %s\n", v->port, kinds[v->kind].name,
                v->l->name);
        if (v->kind == K_UNKNOWN)
            fprintf(out, "#   (a %s listener, and no check names the protocol)\n",
                    conf_proto_name(v->l->proto));
        smtp |= kinds[v->kind].smtp;
        mailbox |= !kinds[v->kind].smtp && v->kind != K_UNKNOWN;
    }
    if (s.more)
        fprintf(out, "# (more than %d ports: the rest are left out)\n", SERVICES_MAX);
    if (s.n == 0) {
        fprintf(out, "# no listener routes to it: nothing to set up\n\n");
        return;
    }
    if (b->send_proxy == 0) {
        fprintf(out, "# mailedge sends no PROXY header: the receiver must not expect one on\n"
                     "# these ports, and sees every client as the edge (");
        print_sources(out, src, nsrc, false, ", ", "");
        fprintf(out, ").\n\n");
        return;
    }
    fprintf(out, "# mailedge sends a PROXY v%d header, connecting from ", b->send_proxy);
    print_sources(out, src, nsrc, false, ", ", "");
    fprintf(out, "\n");
    if (nsrc == 0)
        fprintf(out, "# (EDGE_ADDRESS: the address the edge connects from; it could not be "
                     "found)\n");
    if (!smtp && !mailbox) {
        fprintf(out, "# Nothing to print: name the protocol with a check in backend %s\n"
                     "# (check smtp, smtps, imap, imaps, pop3 or pop3s).\n\n",
                b->name);
        return;
    }
    bool any = false;
    if ((which & RECEIVER_POSTFIX) && smtp) {
        print_postfix(out, b, &s, src, nsrc);
        any = true;
    }
    if ((which & RECEIVER_DOVECOT) && mailbox) {
        print_dovecot(out, &s, src, nsrc);
        any = true;
    }
    if ((which & RECEIVER_STALWART) && (smtp || mailbox)) {
        print_stalwart(out, &s, src, nsrc);
        any = true;
    }
    if (!any)
        fprintf(out, "# Nothing for the chosen server software: it does not speak %s.\n",
                smtp ? "SMTP" : "IMAP or POP3");
    fprintf(out, "\n");
}
