/*
 * tlshello: finds the server name (SNI, RFC 6066 3) in a TLS ClientHello
 * (RFC 8446 4.1.2; RFC 5246 7.4.1.2 for TLS 1.2 and older). Pure: no I/O,
 * no allocation. The hello may be split over several TLS records (RFC 8446
 * 5.1) and arrive in pieces: re-run the parser from the start when more
 * bytes arrive, after out->need of them are there. Only the first
 * TH_HELLO_MAX bytes are ever looked at.
 */
#ifndef MAILEDGE_TLSHELLO_H
#define MAILEDGE_TLSHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TH_HELLO_MAX 16384     /* bytes of records (headers included) a hello may span */
#define TH_NAME_MAX 255        /* longest server name taken from a hello */
#define TH_HOST_MAX 254        /* a DNS host name (253) and its NUL */

enum th_result {
    TH_OK,          /* a complete, well-formed ClientHello */
    TH_NEED_MORE,   /* well-formed so far; out->need is the least input that may complete it */
    TH_NOT_TLS,     /* the first bytes are not a TLS handshake record; *why says which */
    TH_INVALID,     /* a TLS handshake, but no well-formed ClientHello in TH_HELLO_MAX; *why */
};

struct th_hello {
    uint16_t version;          /* legacy_version (0x0303 for TLS 1.2 and 1.3) */
    bool has_sni;              /* a server_name extension with a host_name */
    size_t sni_len;
    uint8_t sni[TH_NAME_MAX];  /* the host_name as sent: not NUL-terminated, not checked */
    size_t end;                /* TH_OK: offset just past the hello's last byte */
    size_t need;               /* TH_NEED_MORE: do not parse again before this many bytes */
};

/*
 * Parses the ClientHello at the start of <buf> (<len> bytes). Returns
 * TH_OK with <out> filled; TH_NEED_MORE with out->need > len (and at most
 * TH_HELLO_MAX); TH_NOT_TLS or TH_INVALID with <*why> set to a static
 * phrase, distinct for each kind of rejection. Every field is checked
 * against what remains of the message; the whole hello is parsed, not just
 * up to the server name.
 */
enum th_result tlshello_parse(const uint8_t *buf, size_t len, struct th_hello *out,
                              const char **why);

/*
 * Checks that <name> (<len> bytes) is a DNS host name once one trailing dot
 * is dropped: labels of letters, digits and hyphens, 1 to 63 bytes, not
 * starting or ending with a hyphen, 253 bytes in all (RFC 1123 2.1). Writes
 * it in lower case with a NUL into <out> (<cap> bytes). Returns its length,
 * or -1 when it is not a host name or does not fit.
 */
int tlshello_host_name(const uint8_t *name, size_t len, char *out, size_t cap);

#endif
