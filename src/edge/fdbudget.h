/*
 * fdbudget: how the descriptors of the process (RLIMIT_NOFILE) are shared
 * out. A fixed reserve for everything that is not a session (the process
 * itself, listening sockets, the admin endpoint, health checks, the
 * resolver, the crowdsec poller), a headroom for what sessions use beyond their two sockets
 * (Happy Eyeballs attempts in flight, splice pipes), and the rest, two
 * descriptors each (client and backend), for sessions: maxconn. Pure
 * arithmetic; docs/config.md ("maxconn") gives the derivation in words.
 */
#ifndef MAILEDGE_FDBUDGET_H
#define MAILEDGE_FDBUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The reserve, in parts. */
#define FDB_PROCESS 32   /* std streams, log file (and its reopen), epoll, signalfd, notify
                          * socket, the files a reload reads, one refusal at a time */
#define FDB_PER_BIND 2   /* its socket, and a new one a reload may bind before closing it */
#define FDB_ADMIN 36     /* 32 connections (src/ops/admin.c), its socket, MHD's epoll, spare */
#define FDB_PER_CHECK 8  /* a check's Happy Eyeballs attempts (BACKEND_ADDRS_MAX) */
#define FDB_RESOLVER 16  /* c-ares: UDP and TCP sockets to the name servers */
#define FDB_BOUNCER 6    /* crowdsec: the connection to the Local API, Happy Eyeballs, and
                          * libcurl's resolver thread (a socket pair) */
#define FDB_SESSION 2    /* client and backend socket */
#define FDB_HEADROOM_MIN 8
#define FDB_HEADROOM_DIV 32 /* headroom: 1/32 of what the reserve leaves */

struct fdbudget_in {
    uint64_t nofile;  /* RLIMIT_NOFILE (soft) */
    size_t binds;     /* bind addresses of all listeners */
    size_t checks;    /* servers with a health check */
    bool admin;       /* admin endpoint configured */
    bool resolver;    /* a server is a DNS name */
    bool bouncer;     /* crowdsec configured */
    unsigned maxconn; /* global maxconn; 0: derived */
};

struct fdbudget {
    uint64_t nofile;
    size_t reserve;     /* descriptors sessions never use */
    size_t pipes;       /* splice pipes (2 descriptors each) sessions may hold together */
    size_t connects;    /* connect attempts in flight beyond the first of each session */
    size_t maxconn_fit; /* sessions the limit has room for */
    size_t maxconn;     /* in force: the configured one if it fits, else maxconn_fit */
};

/* Shares out in->nofile; see the header comment. */
void fdbudget_plan(const struct fdbudget_in *in, struct fdbudget *out);

#endif
