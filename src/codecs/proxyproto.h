/*
 * proxyproto: PROXY protocol v1 and v2 (HAProxy doc/proxy-protocol.txt),
 * pure encoder and decoder. No I/O, no allocation: the decoder works on the
 * caller's buffer and is meant to be re-run from the start each time more
 * bytes arrive (headers are small and bounded).
 */
#ifndef MAILEDGE_PROXYPROTO_H
#define MAILEDGE_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PP_V1_MAX 107          /* spec 2.1: the longest v1 line, CRLF included */
#define PP_V2_SIG_LEN 12
#define PP_V2_HDR_LEN 16       /* signature, ver/cmd, fam, len */
#define PP_HEADER_MAX 1024     /* the most we accept inbound, TLVs included */

enum pp_version { PP_V1 = 1, PP_V2 = 2 };
enum pp_accept { PP_ACCEPT_V1 = 1, PP_ACCEPT_V2 = 2, PP_ACCEPT_ANY = 3 };

enum pp_result {
    PP_OK,          /* a complete valid header; *consumed says how long */
    PP_NEED_MORE,   /* valid so far, incomplete */
    PP_NOT_PROXY,   /* the bytes are not a PROXY header of an accepted version */
    PP_INVALID,     /* a PROXY header, but broken; *why says how */
};

struct pp_header {
    enum pp_version version;
    bool local;      /* v2 LOCAL, or v1 UNKNOWN: use the real peer, src/dst unset */
    struct sockaddr_storage src, dst;  /* AF_INET or AF_INET6 when !local */
    /* v2 only: the AUTHORITY TLV (0x02), pointing into the caller's buffer. */
    const uint8_t *authority;
    size_t authority_len;
};

/*
 * Decodes a header at the start of <buf> (<len> bytes) of a version allowed
 * by <accept>. On PP_OK fills <out> and sets <*consumed> to the header
 * length: the bytes after it are client payload. On PP_INVALID sets <*why>
 * to a static description. v2 UNIX/UNSPEC families and v1 UNKNOWN decode as
 * local. A header longer than PP_HEADER_MAX is PP_INVALID.
 */
enum pp_result proxyproto_decode(const uint8_t *buf, size_t len, enum pp_accept accept,
                                 struct pp_header *out, size_t *consumed, const char **why);

/*
 * Encodes a PROXY header for a connection from <src> to <dst> (AF_INET or
 * AF_INET6; IPv4-mapped IPv6 addresses are written as IPv4). When the two
 * families differ, the IPv4 one is promoted to IPv4-mapped IPv6 so both
 * fit one TCP6/INET6 header. <authority> (may be NULL) adds a v2 AUTHORITY
 * TLV. Returns the number of bytes written, or 0 if <cap> is too small or
 * an address is of another family.
 */
size_t proxyproto_encode(enum pp_version v, const struct sockaddr *src,
                         const struct sockaddr *dst, const char *authority, uint8_t *buf,
                         size_t cap);

/* The 16-byte v2 LOCAL header (health checks); returns 16, or 0 if cap < 16. */
size_t proxyproto_encode_v2_local(uint8_t *buf, size_t cap);

#endif
