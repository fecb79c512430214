/*
 * receiver_config: `mailedge receiver-config`. The edge binds no source
 * address when it connects to a server, so the address the receiver sees
 * is the one the kernel picks for the server's address: a UDP socket
 * connected to it (nothing is sent) reports it with getsockname(). Server
 * names are resolved with getaddrinfo, every address of them counted.
 */
#include "receiver_config.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "receiver.h"

#define DEFAULT_CONF "/etc/mailedge/mailedge.conf"
#define SOURCES_MAX 32

struct sources {
    struct sockaddr_storage v[SOURCES_MAX];
    size_t n;
};

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: mailedge receiver-config [-c FILE] [--for postfix|dovecot|stalwart] "
                "[BACKEND...]\n"
                "  -c FILE       configuration (default " DEFAULT_CONF ")\n"
                "  --for NAME    only this server software (repeatable; default: every one\n"
                "                that speaks the backend's protocol)\n"
                "  BACKEND       only these backends (default: all)\n"
                "exit: 0 printed, 1 invalid configuration, 2 usage error\n");
}

static void
add_source(struct sources *s, const struct sockaddr *server)
{
    struct sockaddr_storage to, me;
    socklen_t len = sizeof(me);
    int fd = socket(server->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return;
    memcpy(&to, server, addr_len(server));
    if (addr_port((const struct sockaddr *)&to) == 0)
        addr_set_port((struct sockaddr *)&to, 9); /* any port: only the route matters */
    if (connect(fd, (const struct sockaddr *)&to, addr_len(server)) == 0 &&
        getsockname(fd, (struct sockaddr *)&me, &len) == 0) {
        bool seen = false;
        addr_set_port((struct sockaddr *)&me, 0);
        for (size_t i = 0; i < s->n && !seen; i++)
            seen = addr_equal((const struct sockaddr *)&s->v[i], (const struct sockaddr *)&me);
        if (!seen && s->n < SOURCES_MAX)
            s->v[s->n++] = me;
    }
    close(fd);
}

static void
find_sources(const struct conf_backend *b, struct sources *s)
{
    s->n = 0;
    for (size_t i = 0; i < b->nservers; i++) {
        const struct conf_server *sv = &b->servers[i];
        if (!sv->is_name) {
            add_source(s, (const struct sockaddr *)&sv->addr);
            continue;
        }
        struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
        int rc = getaddrinfo(sv->host, "9", &hints, &res);
        if (rc != 0) {
            fprintf(stderr, "mailedge receiver-config: backend %s, server %s: cannot resolve %s: %s\n",
                    b->name, sv->name, sv->host, gai_strerror(rc));
            continue;
        }
        for (const struct addrinfo *a = res; a != NULL; a = a->ai_next)
            add_source(s, a->ai_addr);
        freeaddrinfo(res);
    }
}

int
receiver_config_main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF;
    unsigned which = 0;
    int i = 1;

    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--for") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mailedge receiver-config: %s needs a value\n", a);
                usage(stderr);
                return 2;
            }
            const char *val = argv[++i];
            if (a[1] == 'c') {
                path = val;
                continue;
            }
            unsigned bit = receiver_software(val);
            if (bit == 0) {
                fprintf(stderr,
                        "mailedge receiver-config: unknown server software '%s' (expected "
                        "postfix, dovecot or stalwart)\n",
                        val);
                return 2;
            }
            which |= bit;
        } else if (a[0] == '-') {
            fprintf(stderr, "mailedge receiver-config: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (which == 0)
        which = RECEIVER_ALL;

    struct conf *c = NULL;
    struct diag_list diags = {0};
    int loaded = conf_load(path, &c, &diags);
    diag_list_print(&diags, stderr);
    diag_list_free(&diags);
    if (loaded == -1)
        return 1;
    for (int k = i; k < argc; k++) {
        if (conf_find_backend(c, argv[k]) != NULL)
            continue;
        fprintf(stderr, "mailedge receiver-config: no backend '%s' in %s (backends:", argv[k],
                path);
        for (size_t j = 0; j < c->nbackends; j++)
            fprintf(stderr, "%s %s", j > 0 ? "," : "", c->backends[j].name);
        fprintf(stderr, ")\n");
        conf_free(c);
        return 2;
    }

    printf("# Receiving side for %s, printed by mailedge receiver-config\n"
           "# (docs/operations.md, \"Setting up the receiving side\").\n\n",
           path);
    struct sources src;
    for (size_t j = 0; j < c->nbackends; j++) {
        const struct conf_backend *b = &c->backends[j];
        bool wanted = i == argc;
        for (int k = i; k < argc && !wanted; k++)
            wanted = strcmp(argv[k], b->name) == 0;
        if (!wanted)
            continue;
        find_sources(b, &src);
        receiver_print(stdout, c, b, src.v, src.n, which);
    }
    conf_free(c);
    return fflush(stdout) == 0 ? 0 : 1;
}
