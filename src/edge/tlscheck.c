/*
 * tlscheck: OpenSSL for health checks (see tlscheck.h). One client context
 * for the process, made on first use: TLS 1.2 or later, no verification,
 * no session resumption (each check is a full handshake, like a new client).
 */
#include "tlscheck.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct tlscheck {
    SSL *ssl;
    bool notified; /* close_notify sent */
    char err[160];
};

static SSL_CTX *ctx;

static SSL_CTX *
context(void)
{
    if (ctx != NULL)
        return ctx;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (c == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    ctx = c;
    return ctx;
}

struct tlscheck *
tlscheck_new(int fd, const char *sni)
{
    SSL_CTX *c = context();
    if (c == NULL)
        return NULL;
    struct tlscheck *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->ssl = SSL_new(c);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1 ||
        (sni != NULL && sni[0] != '\0' && SSL_set_tlsext_host_name(t->ssl, sni) != 1)) {
        tlscheck_free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(t->ssl);
    return t;
}

/* Maps the outcome of an SSL call that returned rc <= 0. */
static enum tlscheck_io
outcome(struct tlscheck *t, int rc)
{
    int sys = errno;
    int e = SSL_get_error(t->ssl, rc);
    unsigned long code = ERR_peek_error();
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return TLSC_WANT;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(t->err, sizeof(t->err), "%s", "close_notify from the server");
        return TLSC_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (code == 0 && (rc == 0 || sys == 0)) {
            snprintf(t->err, sizeof(t->err), "%s", "connection closed (no close_notify)");
            ERR_clear_error();
            return TLSC_CLOSED;
        }
        if (code == 0) {
            snprintf(t->err, sizeof(t->err), "%s", strerror(sys));
            return TLSC_ERROR;
        }
        break;
    default:
        break;
    }
    if (code != 0) {
        const char *r = ERR_reason_error_string(code);
        snprintf(t->err, sizeof(t->err), "TLS: %s", r != NULL ? r : "error");
        /* An unexpected EOF in OpenSSL 3 is an error code, but a close. */
        if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return TLSC_CLOSED;
        }
    } else {
        snprintf(t->err, sizeof(t->err), "TLS error %d", e);
    }
    ERR_clear_error();
    return TLSC_ERROR;
}

enum tlscheck_io
tlscheck_handshake(struct tlscheck *t)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    return rc == 1 ? TLSC_DONE : outcome(t, rc);
}

enum tlscheck_io
tlscheck_read(struct tlscheck *t, void *buf, size_t cap, size_t *n)
{
    ERR_clear_error();
    *n = 0;
    if (SSL_read_ex(t->ssl, buf, cap, n) == 1)
        return TLSC_DONE;
    return outcome(t, 0);
}

enum tlscheck_io
tlscheck_write(struct tlscheck *t, const void *buf, size_t len)
{
    size_t n = 0;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, buf, len, &n) == 1 && n == len)
        return TLSC_DONE;
    enum tlscheck_io r = outcome(t, 0);
    if (r == TLSC_WANT) {
        snprintf(t->err, sizeof(t->err), "%s", "socket buffer full");
        return TLSC_ERROR;
    }
    return r;
}

void
tlscheck_close_notify(struct tlscheck *t)
{
    if (t->notified)
        return;
    t->notified = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

const char *
tlscheck_error(const struct tlscheck *t)
{
    return t->err;
}

void
tlscheck_free(struct tlscheck *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t);
}
