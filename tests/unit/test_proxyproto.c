/*
 * Unit tests for proxyproto: the spec's vectors (HAProxy
 * doc/proxy-protocol.txt), every truncation point, one-byte corruptions,
 * encode/decode round trips, and inputs ending at a PROT_NONE guard page so
 * an over-read faults even without ASan (picohttpparser's trick).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "addr.h"
#include "proxyproto.h"
#include "testutil.h"
#include "util.h"


/* A string literal as (bytes, length); the literals may hold NULs. */
#define B(s) (const uint8_t *)(s), sizeof(s) - 1
#define SIG "\x0d\x0a\x0d\x0a\x00\x0d\x0a" "QUIT" "\x0a"

/* Spec 2.2 example: TCP over IPv4, 192.168.0.1:56324 -> 192.168.0.11:443. */
#define V2_TCP4 SIG "\x21\x11\x00\x0c" "\xc0\xa8\x00\x01" "\xc0\xa8\x00\x0b" "\xdc\x04\x01\xbb"
#define V2_TCP6                                                                        \
    SIG "\x21\x21\x00\x24"                                                             \
        "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"             \
        "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"             \
        "\x03\xe8\x00\x19"
/* INET plus AUTHORITY "mail.example.com", a 3-byte NOOP and an empty custom TLV. */
#define V2_TCP4_TLV                                                                    \
    SIG "\x21\x11\x00\x28" "\xc0\xa8\x00\x01" "\xc0\xa8\x00\x0b" "\xdc\x04\x01\xbb"      \
        "\x02\x00\x10" "mail.example.com" "\x04\x00\x03" "\x00\x00\x00" "\xe0\x00\x00"
#define V2_LOCAL SIG "\x20\x00\x00\x00"

#define V1_TCP4 "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
#define V1_TCP4_MAX "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
#define V1_TCP6_MAX                                                                    \
    "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "                              \
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
#define V1_UNKNOWN_MAX                                                                 \
    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "                           \
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"

struct vec {
    const char *name;
    const uint8_t *data;
    size_t len;
    enum pp_accept accept;
    enum pp_result result;
    size_t consumed;
    bool local;
    const char *src, *dst;  /* addr_format() of the decoded addresses */
    const char *authority;
    const char *why;        /* PP_INVALID only */
};

/* Complete valid headers: the base of the truncation and corruption sweeps. */
static const struct vec valid[] = {
    { "v1 tcp4 spec", B(V1_TCP4), PP_ACCEPT_ANY, PP_OK, 47, false, "192.168.0.1:56324",
      "192.168.0.11:443", NULL, NULL },
    { "v1 tcp4 max (56)", B(V1_TCP4_MAX), PP_ACCEPT_V1, PP_OK, 56, false,
      "255.255.255.255:65535", "255.255.255.255:65535", NULL, NULL },
    { "v1 tcp4 zeros", B("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"), PP_ACCEPT_ANY, PP_OK, 32, false,
      "0.0.0.0:0", "0.0.0.0:0", NULL, NULL },
    { "v1 tcp6 max (104)", B(V1_TCP6_MAX), PP_ACCEPT_ANY, PP_OK, 104, false,
      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
      "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", NULL, NULL },
    { "v1 tcp6 short", B("PROXY TCP6 ::1 2001:DB8::2 1 25\r\n"), PP_ACCEPT_ANY, PP_OK, 33, false,
      "[::1]:1", "[2001:db8::2]:25", NULL, NULL },
    { "v1 tcp6 mapped", B("PROXY TCP6 ::ffff:192.0.2.1 ::1 1000 25\r\n"), PP_ACCEPT_ANY, PP_OK,
      41, false, "[::ffff:192.0.2.1]:1000", "[::1]:25", NULL, NULL },
    { "v1 unknown", B("PROXY UNKNOWN\r\n"), PP_ACCEPT_ANY, PP_OK, 15, true, NULL, NULL, NULL,
      NULL },
    { "v1 unknown max (107)", B(V1_UNKNOWN_MAX), PP_ACCEPT_ANY, PP_OK, 107, true, NULL, NULL,
      NULL, NULL },
    { "v1 unknown junk", B("PROXY UNKNOWN \x01\xff garbage\r\n"), PP_ACCEPT_ANY, PP_OK, 26, true,
      NULL, NULL, NULL, NULL },
    { "v2 local", B(V2_LOCAL), PP_ACCEPT_ANY, PP_OK, 16, true, NULL, NULL, NULL, NULL },
    { "v2 tcp4 spec", B(V2_TCP4), PP_ACCEPT_ANY, PP_OK, 28, false, "192.168.0.1:56324",
      "192.168.0.11:443", NULL, NULL },
    { "v2 tcp6", B(V2_TCP6), PP_ACCEPT_V2, PP_OK, 52, false, "[2001:db8::1]:1000",
      "[2001:db8::2]:25", NULL, NULL },
    { "v2 tcp4 tlvs", B(V2_TCP4_TLV), PP_ACCEPT_ANY, PP_OK, 56, false, "192.168.0.1:56324",
      "192.168.0.11:443", "mail.example.com", NULL },
    { "v2 local with addresses", B(SIG "\x20\x11\x00\x0c" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                       "\x00\x01\x00\x02"),
      PP_ACCEPT_ANY, PP_OK, 28, true, NULL, NULL, NULL, NULL },
    { "v2 local skips junk", B(SIG "\x20\x00\x00\x03" "\xff\xff\xff"), PP_ACCEPT_ANY, PP_OK, 19,
      true, NULL, NULL, NULL, NULL },
    { "v2 local dgram", B(SIG "\x20\x22\x00\x00"), PP_ACCEPT_ANY, PP_OK, 16, true, NULL, NULL,
      NULL, NULL },
    { "v2 proxy unspec", B(SIG "\x21\x00\x00\x00"), PP_ACCEPT_ANY, PP_OK, 16, true, NULL, NULL,
      NULL, NULL },
    { "v2 proxy unspec body", B(SIG "\x21\x00\x00\x02" "ab"), PP_ACCEPT_ANY, PP_OK, 18, true,
      NULL, NULL, NULL, NULL },
    { "v2 tcp4 empty authority", B(SIG "\x21\x11\x00\x0f" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                       "\x00\x01\x00\x02" "\x02\x00\x00"),
      PP_ACCEPT_ANY, PP_OK, 31, false, "1.2.3.4:1", "5.6.7.8:2", "", NULL },
};

/* Everything else: payload after headers, prefixes, refusals. */
static const struct vec cases[] = {
    /* Bytes after the header are client payload and are not consumed. */
    { "v1 + payload", B(V1_TCP4 "EHLO x\r\n"), PP_ACCEPT_ANY, PP_OK, 47, false,
      "192.168.0.1:56324", "192.168.0.11:443", NULL, NULL },
    { "v1 unknown + payload", B("PROXY UNKNOWN\r\n\r\n"), PP_ACCEPT_ANY, PP_OK, 15, true, NULL,
      NULL, NULL, NULL },
    { "v2 + payload", B(V2_TCP4 "\x0d\x0a\x0d\x0a"), PP_ACCEPT_ANY, PP_OK, 28, false,
      "192.168.0.1:56324", "192.168.0.11:443", NULL, NULL },
    { "v2 local + payload", B(V2_LOCAL "QUIT\r\n"), PP_ACCEPT_V2, PP_OK, 16, true, NULL, NULL,
      NULL, NULL },

    /* Not a PROXY header (of an accepted version). */
    { "smtp", B("EHLO mail.example.com\r\n"), PP_ACCEPT_ANY, PP_NOT_PROXY, 0, false, NULL, NULL,
      NULL, NULL },
    { "http", B("GET "), PP_ACCEPT_ANY, PP_NOT_PROXY, 0, false, NULL, NULL, NULL, NULL },
    { "lowercase", B("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_NOT_PROXY, 0,
      false, NULL, NULL, NULL, NULL },
    { "PROXYX", B("PROXYX"), PP_ACCEPT_ANY, PP_NOT_PROXY, 0, false, NULL, NULL, NULL, NULL },
    { "PROXY tab", B("PROXY\tTCP4"), PP_ACCEPT_ANY, PP_NOT_PROXY, 0, false, NULL, NULL, NULL,
      NULL },
    { "v1 when v2 only", B(V1_TCP4), PP_ACCEPT_V2, PP_NOT_PROXY, 0, false, NULL, NULL, NULL,
      NULL },
    { "v1 prefix when v2 only", B("PRO"), PP_ACCEPT_V2, PP_NOT_PROXY, 0, false, NULL, NULL, NULL,
      NULL },
    { "v2 when v1 only", B(V2_TCP4), PP_ACCEPT_V1, PP_NOT_PROXY, 0, false, NULL, NULL, NULL,
      NULL },
    { "v2 prefix when v1 only", B("\r\n\r\n"), PP_ACCEPT_V1, PP_NOT_PROXY, 0, false, NULL, NULL,
      NULL, NULL },
    { "bad v2 signature", B("\x0d\x0a\x0d\x0a\x00\x0d\x0a" "QUIX" "\x0a\x21\x00\x00\x00"),
      PP_ACCEPT_ANY, PP_NOT_PROXY, 0, false, NULL, NULL, NULL, NULL },
    { "NUL", B("\0"), PP_ACCEPT_ANY, PP_NOT_PROXY, 0, false, NULL, NULL, NULL, NULL },
    { "accept none", B(V1_TCP4), (enum pp_accept)0, PP_NOT_PROXY, 0, false, NULL, NULL, NULL,
      NULL },

    /* Valid so far. */
    { "empty", B(""), PP_ACCEPT_ANY, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },
    { "empty v1", B(""), PP_ACCEPT_V1, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },
    { "empty v2", B(""), PP_ACCEPT_V2, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },
    { "PRO", B("PRO"), PP_ACCEPT_ANY, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },
    { "CRLF", B("\r\n"), PP_ACCEPT_ANY, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },
    { "v1 partial port", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 6553"), PP_ACCEPT_ANY, PP_NEED_MORE, 0,
      false, NULL, NULL, NULL, NULL },
    { "v1 CR only", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), PP_ACCEPT_ANY, PP_NEED_MORE, 0, false,
      NULL, NULL, NULL, NULL },
    { "v1 unknown 106 bytes",
      B("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxx"),
      PP_ACCEPT_ANY, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },
    { "v2 length beyond the data", B(SIG "\x21\x11\x00\x0d" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                         "\x00\x01\x00\x02"),
      PP_ACCEPT_ANY, PP_NEED_MORE, 0, false, NULL, NULL, NULL, NULL },

    /* Spec 2.1 violations. */
    { "v1 leading zero octet", B("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: IPv4 octet with a leading zero" },
    { "v1 leading zero octet 2", B("PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: IPv4 octet with a leading zero" },
    { "v1 leading zero early", B("PROXY TCP4 1.02"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL,
      NULL, NULL, "v1: IPv4 octet with a leading zero" },
    { "v1 leading zero port", B("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: port with a leading zero" },
    { "v1 leading zero dport", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: port with a leading zero" },
    { "v1 port 65536", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), PP_ACCEPT_ANY, PP_INVALID,
      0, false, NULL, NULL, NULL, "v1: port above 65535" },
    { "v1 port 65536 early", B("PROXY TCP4 1.2.3.4 5.6.7.8 65536"), PP_ACCEPT_ANY, PP_INVALID,
      0, false, NULL, NULL, NULL, "v1: port above 65535" },
    { "v1 port 6 digits", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: port above 65535" },
    { "v1 port junk", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2xxxxx\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: invalid character in port" },
    { "v1 port sign", B("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: invalid character in port" },
    { "v1 double space", B("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: empty field (two spaces in a row?)" },
    { "v1 double space 2", B("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID,
      0, false, NULL, NULL, NULL, "v1: empty field (two spaces in a row?)" },
    { "v1 space before CRLF", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: extra field after the destination port" },
    { "v1 extra field", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: extra field after the destination port" },
    { "v1 double space after PROXY", B("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
    { "v1 LF only", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: LF without CR" },
    { "v1 CR then junk", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: CR not followed by LF" },
    { "v1 CR CR LF", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: CR not followed by LF" },
    { "v1 missing dport", B("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: line ends before the destination port" },
    { "v1 missing fields", B("PROXY TCP4 1.2.3.4\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: line ends before the destination port" },
    { "v1 no addresses", B("PROXY TCP4\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v1: no addresses after the protocol" },
    { "v1 TCP4 with IPv6", B("PROXY TCP4 ::1 ::1 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: IPv6 address in a TCP4 line" },
    { "v1 TCP4 with mapped", B("PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: IPv6 address in a TCP4 line" },
    { "v1 TCP6 with IPv4", B("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: IPv4 address in a TCP6 line" },
    { "v1 TCP6 with IPv4 dst", B("PROXY TCP6 ::1 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID,
      0, false, NULL, NULL, NULL, "v1: IPv4 address in a TCP6 line" },
    { "v1 octet 256", B("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: IPv4 octet above 255" },
    { "v1 three octets", B("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: IPv4 address with fewer than four octets" },
    { "v1 five octets", B("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: more than four IPv4 octets" },
    { "v1 empty octet", B("PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: empty IPv4 octet" },
    { "v1 trailing dot", B("PROXY TCP4 1.2.3. 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: IPv4 address ends with an empty octet" },
    { "v1 IPv4 bad char", B("PROXY TCP4 1.2.3.a 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: invalid character in IPv4 address" },
    { "v1 tab separator", B("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: invalid character in IPv4 address" },
    { "v1 IPv4 junk", B("PROXY TCP4 1.2.3.4xxxxxxxxxxxx 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: invalid character in IPv4 address" },
    { "v1 IPv6 bad char", B("PROXY TCP6 ::g ::1 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: invalid character in IPv6 address" },
    { "v1 IPv6 zone", B("PROXY TCP6 fe80::1%2 ::1 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: invalid character in IPv6 address" },
    { "v1 IPv6 malformed", B("PROXY TCP6 1:2:3 ::1 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0,
      false, NULL, NULL, NULL, "v1: invalid IPv6 address" },
    { "v1 IPv6 mapped leading zero", B("PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n"), PP_ACCEPT_ANY,
      PP_INVALID, 0, false, NULL, NULL, NULL, "v1: invalid IPv6 address" },
    { "v1 IPv6 no colon", B("PROXY TCP6 ffff ::1 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: IPv6 address without a colon" },
    { "v1 IPv6 too long",
      B("PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0000:0000 ::1 1 2\r\n"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v1: address too long" },
    { "v1 TCP5", B("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
    { "v1 lowercase tcp4", B("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID,
      0, false, NULL, NULL, NULL, "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
    { "v1 TCP44", B("PROXY TCP44 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
    { "v1 UDP4", B("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
    { "v1 UNKNOWNX", B("PROXY UNKNOWNX\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v1: protocol is not TCP4, TCP6 or UNKNOWN" },
    { "v1 unknown LF", B("PROXY UNKNOWN\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v1: LF without CR" },
    { "v1 unknown bare CR", B("PROXY UNKNOWN a\rb\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: CR not followed by LF" },
    { "v1 unknown bare LF", B("PROXY UNKNOWN a\nb\r\n"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v1: LF without CR" },
    { "v1 107 bytes no CRLF",
      B("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxx"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v1: no CRLF within 107 bytes" },
    { "v1 108 bytes",
      B("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxx\r\n"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v1: no CRLF within 107 bytes" },

    /* Spec 2.2 violations. */
    { "v2 version 1", B(SIG "\x11\x11\x00\x0c"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v2: version is not 2" },
    { "v2 version 3 early", B(SIG "\x31"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: version is not 2" },
    { "v2 command 2", B(SIG "\x22\x11\x00\x0c"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL,
      NULL, NULL, "v2: command is neither LOCAL nor PROXY" },
    { "v2 command 15", B(SIG "\x2f"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: command is neither LOCAL nor PROXY" },
    { "v2 family 4", B(SIG "\x21\x41\x00\x0c"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v2: unknown address family or transport" },
    { "v2 transport 3", B(SIG "\x21\x13"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v2: unknown address family or transport" },
    { "v2 local family 4", B(SIG "\x20\x41\x00\x00"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL,
      NULL, NULL, "v2: unknown address family or transport" },
    { "v2 udp4", B(SIG "\x21\x12\x00\x0c" "\x01\x02\x03\x04\x05\x06\x07\x08" "\x00\x01\x00\x02"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: datagram transport over a stream connection" },
    { "v2 udp6", B(SIG "\x21\x22"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: datagram transport over a stream connection" },
    { "v2 unix dgram", B(SIG "\x21\x32"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: datagram transport over a stream connection" },
    { "v2 inet short block", B(SIG "\x21\x11\x00\x0b" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                   "\x00\x01\x00"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: length shorter than the address block" },
    { "v2 inet zero length", B(SIG "\x21\x11\x00\x00"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v2: length shorter than the address block" },
    { "v2 inet6 short block", B(SIG "\x21\x21\x00\x23"), PP_ACCEPT_ANY, PP_INVALID, 0, false,
      NULL, NULL, NULL, "v2: length shorter than the address block" },
    { "v2 inet6 with inet block", B(SIG "\x21\x21\x00\x0c" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                        "\x00\x01\x00\x02"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL,
      "v2: length shorter than the address block" },
    { "v2 too long", B(SIG "\x21\x11\x03\xf1"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL,
      NULL, "v2: header longer than we accept" },
    { "v2 local too long", B(SIG "\x20\x00\xff\xff"), PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL,
      NULL, NULL, "v2: header longer than we accept" },
    { "v2 truncated TLV", B(SIG "\x21\x11\x00\x0e" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                "\x00\x01\x00\x02" "\x04\x00"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v2: truncated TLV header" },
    { "v2 TLV overrun", B(SIG "\x21\x11\x00\x14" "\x01\x02\x03\x04\x05\x06\x07\x08"
                              "\x00\x01\x00\x02" "\x02\x00\x06" "abcde"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v2: TLV overruns the header" },
    { "v2 TLV overrun max", B(SIG "\x21\x11\x00\x0f" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                  "\x00\x01\x00\x02" "\x04\xff\xff"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v2: TLV overruns the header" },
    { "v2 duplicate authority", B(SIG "\x21\x11\x00\x14" "\x01\x02\x03\x04\x05\x06\x07\x08"
                                      "\x00\x01\x00\x02" "\x02\x00\x02" "ab" "\x02\x00\x00"),
      PP_ACCEPT_ANY, PP_INVALID, 0, false, NULL, NULL, NULL, "v2: duplicate AUTHORITY TLV" },
};

static int
setup_guard(void **state)
{
    (void)state;
    return guard_map((size_t)sysconf(_SC_PAGESIZE));
}

static const char *
fmt(const struct sockaddr_storage *ss, char *buf)
{
    return addr_format((const struct sockaddr *)ss, buf, ADDR_STRLEN);
}

/* Decodes one vector (at the guard page) and checks every output. */
static void
check_vec(const struct vec *v)
{
    struct pp_header h;
    size_t consumed = 999;
    const char *why = NULL;
    char a[ADDR_STRLEN], b[ADDR_STRLEN];

    enum pp_result r = proxyproto_decode(at_guard(v->data, v->len), v->len, v->accept, &h,
                                         &consumed, &why);
    if (r != v->result)
        fail_msg("%s: result %d, want %d (%s)", v->name, r, v->result, why ? why : "-");
    if (r == PP_INVALID) {
        assert_non_null(why);
        if (v->why != NULL && strcmp(why, v->why) != 0)
            fail_msg("%s: why \"%s\", want \"%s\"", v->name, why, v->why);
    }
    if (r != PP_OK) {
        assert_int_equal(consumed, 0);
        return;
    }
    if (consumed != v->consumed || h.local != v->local)
        fail_msg("%s: consumed %zu local %d", v->name, consumed, h.local);
    assert_int_equal(h.version, v->data[0] == 'P' ? PP_V1 : PP_V2);
    if (!v->local) {
        if (strcmp(fmt(&h.src, a), v->src) != 0 || strcmp(fmt(&h.dst, b), v->dst) != 0)
            fail_msg("%s: %s -> %s", v->name, a, b);
    }
    if (v->authority == NULL) {
        assert_null(h.authority);
        assert_int_equal(h.authority_len, 0);
    } else {
        assert_non_null(h.authority);
        assert_int_equal(h.authority_len, strlen(v->authority));
        assert_memory_equal(h.authority, v->authority, h.authority_len);
        /* It points into the caller's buffer, inside the header. */
        assert_true(h.authority >= guard_end - v->len);
        assert_true(h.authority + h.authority_len <= guard_end - v->len + consumed);
    }
}

static void
test_valid_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid); i++)
        check_vec(&valid[i]);
}

static void
test_other_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        check_vec(&cases[i]);
}

/* Same as check_vec but in an ordinary buffer: results must not depend on placement. */
static void
test_vectors_plain_buffer(void **state)
{
    uint8_t buf[PP_HEADER_MAX + 64];
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct pp_header h;
        size_t consumed;
        const char *why;
        memcpy(buf, cases[i].data, cases[i].len);
        enum pp_result r = proxyproto_decode(buf, cases[i].len, cases[i].accept, &h, &consumed,
                                             &why);
        if (r != cases[i].result)
            fail_msg("%s: result %d in a plain buffer", cases[i].name, r);
    }
}

static void
test_spec_v2_bytes(void **state)
{
    /* Spec 2.2, written out byte by byte rather than through the macros. */
    static const uint8_t local[16] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                                       0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00 };
    static const uint8_t inet[28] = {
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
        0x21,                   /* version 2, PROXY */
        0x11,                   /* AF_INET, STREAM */
        0x00, 0x0c,             /* 12 bytes follow */
        192, 168, 0, 1,         /* source address */
        192, 168, 0, 11,        /* destination address */
        0xdc, 0x04,             /* source port 56324 */
        0x01, 0xbb,             /* destination port 443 */
    };
    struct pp_header h;
    size_t consumed;
    const char *why;
    char a[ADDR_STRLEN];
    (void)state;

    assert_int_equal(proxyproto_decode(at_guard(local, 16), 16, PP_ACCEPT_V2, &h, &consumed,
                                       &why),
                     PP_OK);
    assert_int_equal(consumed, 16);
    assert_true(h.local);
    assert_int_equal(h.version, PP_V2);

    assert_int_equal(proxyproto_decode(at_guard(inet, 28), 28, PP_ACCEPT_ANY, &h, &consumed,
                                       &why),
                     PP_OK);
    assert_int_equal(consumed, 28);
    assert_false(h.local);
    assert_string_equal(fmt(&h.src, a), "192.168.0.1:56324");
    assert_string_equal(fmt(&h.dst, a), "192.168.0.11:443");
    assert_memory_equal(inet, V2_TCP4, 28);
    assert_memory_equal(local, V2_LOCAL, 16);
}

/* Builds a v2 header of <body> bytes: the family's address block, then one NOOP TLV. */
static size_t
build_v2(uint8_t *buf, uint8_t vercmd, uint8_t fam, size_t body)
{
    memcpy(buf, SIG, 12);
    buf[12] = vercmd;
    buf[13] = fam;
    buf[14] = (uint8_t)(body >> 8);
    buf[15] = (uint8_t)body;
    for (size_t i = 0; i < body; i++)
        buf[16 + i] = (uint8_t)(i * 7 + 1);
    size_t block = fam == 0x11 ? 12 : fam == 0x21 ? 36 : body;
    if (body >= block + 3) {
        buf[16 + block] = 0x04;
        buf[16 + block + 1] = (uint8_t)((body - block - 3) >> 8);
        buf[16 + block + 2] = (uint8_t)(body - block - 3);
    }
    return 16 + body;
}

static void
test_v2_sizes(void **state)
{
    uint8_t buf[PP_HEADER_MAX + 16];
    struct pp_header h;
    size_t consumed, n;
    const char *why;
    (void)state;

    /* UNIX: 216-byte block, decoded as local. */
    n = build_v2(buf, 0x21, 0x31, 216);
    assert_int_equal(proxyproto_decode(at_guard(buf, n), n, PP_ACCEPT_ANY, &h, &consumed, &why),
                     PP_OK);
    assert_true(h.local);
    assert_int_equal(consumed, 232);

    /* Exactly PP_HEADER_MAX is accepted, one more is not. */
    n = build_v2(buf, 0x21, 0x11, PP_HEADER_MAX - 16);
    assert_int_equal(n, PP_HEADER_MAX);
    assert_int_equal(proxyproto_decode(at_guard(buf, n), n, PP_ACCEPT_ANY, &h, &consumed, &why),
                     PP_OK);
    assert_int_equal(consumed, PP_HEADER_MAX);
    assert_false(h.local);
    n = build_v2(buf, 0x21, 0x21, PP_HEADER_MAX - 16);
    assert_int_equal(proxyproto_decode(at_guard(buf, n), n, PP_ACCEPT_ANY, &h, &consumed, &why),
                     PP_OK);
    n = build_v2(buf, 0x20, 0x00, PP_HEADER_MAX - 16);
    assert_int_equal(proxyproto_decode(at_guard(buf, n), n, PP_ACCEPT_ANY, &h, &consumed, &why),
                     PP_OK);
    assert_true(h.local);

    n = build_v2(buf, 0x21, 0x11, PP_HEADER_MAX - 15);
    assert_int_equal(proxyproto_decode(at_guard(buf, n), n, PP_ACCEPT_ANY, &h, &consumed, &why),
                     PP_INVALID);
    /* Refused from the 16 fixed bytes alone, without waiting for the body. */
    assert_int_equal(proxyproto_decode(at_guard(buf, 16), 16, PP_ACCEPT_ANY, &h, &consumed,
                                       &why),
                     PP_INVALID);
    assert_string_equal(why, "v2: header longer than we accept");
}

/* Spec 2.1/2.2: a header may arrive in pieces; each prefix is "need more". */
static void
test_every_truncation(void **state)
{
    uint8_t big[PP_HEADER_MAX];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        const struct vec *v = &valid[i];
        for (size_t n = 0; n < v->len; n++) {
            struct pp_header h;
            size_t consumed = 7;
            const char *why = NULL;
            enum pp_result r = proxyproto_decode(at_guard(v->data, n), n, v->accept, &h,
                                                 &consumed, &why);
            if (r != PP_NEED_MORE)
                fail_msg("%s: prefix of %zu bytes gave %d (%s)", v->name, n, r,
                         why ? why : "-");
            assert_int_equal(consumed, 0);
        }
    }
    /* The big ones too. */
    size_t n = build_v2(big, 0x21, 0x21, PP_HEADER_MAX - 16);
    for (size_t k = 0; k < n; k++) {
        struct pp_header h;
        size_t consumed;
        const char *why;
        assert_int_equal(
            proxyproto_decode(at_guard(big, k), k, PP_ACCEPT_ANY, &h, &consumed, &why),
            PP_NEED_MORE);
    }
}

/* The encoder's view of a decoded header, for consistency checks. */
static void
check_reencode(const char *name, const struct pp_header *h)
{
    uint8_t out[PP_HEADER_MAX];
    struct pp_header h2;
    size_t consumed;
    const char *why;

    if (h->local)
        return;
    size_t n = proxyproto_encode(h->version, (const struct sockaddr *)&h->src,
                                 (const struct sockaddr *)&h->dst, NULL, out, sizeof(out));
    if (n == 0)
        fail_msg("%s: decoded header does not re-encode", name);
    if (proxyproto_decode(out, n, PP_ACCEPT_ANY, &h2, &consumed, &why) != PP_OK ||
        consumed != n)
        fail_msg("%s: re-encoded header does not decode", name);
    struct sockaddr_storage s1 = h->src, d1 = h->dst, s2 = h2.src, d2 = h2.dst;
    addr_unmap(&s1);
    addr_unmap(&d1);
    addr_unmap(&s2);
    addr_unmap(&d2);
    if (!addr_equal((struct sockaddr *)&s1, (struct sockaddr *)&s2) ||
        !addr_equal((struct sockaddr *)&d1, (struct sockaddr *)&d2))
        fail_msg("%s: addresses change through encode/decode", name);
}

/*
 * Every byte of every valid header set to every value: never a crash, never
 * consumed > len, and a header that still decodes is self-consistent.
 */
static void
test_every_corruption(void **state)
{
    uint8_t buf[PP_HEADER_MAX];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(valid); i++) {
        const struct vec *v = &valid[i];
        memcpy(buf, v->data, v->len);
        for (size_t pos = 0; pos < v->len; pos++) {
            for (unsigned val = 0; val < 256; val++) {
                struct pp_header h;
                size_t consumed = 7;
                const char *why = NULL;
                char name[96];
                buf[pos] = (uint8_t)val;
                const uint8_t *p = at_guard(buf, v->len);
                enum pp_result r = proxyproto_decode(p, v->len, PP_ACCEPT_ANY, &h, &consumed,
                                                     &why);
                snprintf(name, sizeof(name), "%s byte %zu = 0x%02x", v->name, pos, val);
                if (r == PP_INVALID && why == NULL)
                    fail_msg("%s: invalid without a reason", name);
                if (r != PP_OK) {
                    assert_int_equal(consumed, 0);
                    continue;
                }
                if (consumed == 0 || consumed > v->len)
                    fail_msg("%s: consumed %zu of %zu", name, consumed, v->len);
                if (h.version == PP_V2) {
                    size_t total = 16 + ((size_t)p[14] << 8 | p[15]);
                    if (consumed != total)
                        fail_msg("%s: consumed %zu, length field says %zu", name, consumed,
                                 total);
                }
                if (h.authority != NULL &&
                    (h.authority < p || h.authority + h.authority_len > p + consumed))
                    fail_msg("%s: authority outside the header", name);
                check_reencode(name, &h);
                /* A TCP4 line has one spelling: it must re-encode to the same bytes. */
                if (h.version == PP_V1 && !h.local && h.src.ss_family == AF_INET) {
                    uint8_t out[PP_V1_MAX];
                    size_t n = proxyproto_encode(PP_V1, (struct sockaddr *)&h.src,
                                                 (struct sockaddr *)&h.dst, NULL, out,
                                                 sizeof(out));
                    if (n != consumed || memcmp(out, p, n) != 0)
                        fail_msg("%s: TCP4 line is not canonical", name);
                }
            }
            buf[pos] = v->data[pos];
        }
    }
}

/* The v2 fixed bytes specifically: every value of ver/cmd, family, length. */
static void
test_v2_fixed_fields(void **state)
{
    uint8_t buf[64];
    (void)state;

    memcpy(buf, V2_TCP4, 28);
    for (unsigned val = 0; val < 256; val++) {
        struct pp_header h;
        size_t consumed;
        const char *why;
        enum pp_result r;

        buf[12] = (uint8_t)val;
        r = proxyproto_decode(at_guard(buf, 28), 28, PP_ACCEPT_ANY, &h, &consumed, &why);
        if (val == 0x20 || val == 0x21)
            assert_int_equal(r, PP_OK);
        else
            assert_int_equal(r, PP_INVALID);
        buf[12] = 0x21;

        buf[13] = (uint8_t)val;
        r = proxyproto_decode(at_guard(buf, 28), 28, PP_ACCEPT_ANY, &h, &consumed, &why);
        if (val == 0x00 || val == 0x11 || val == 0x31) {
            assert_int_equal(r, PP_OK);
            assert_int_equal(h.local, val != 0x11);
        } else {
            assert_int_equal(r, PP_INVALID);
        }
        buf[13] = 0x11;

        /* Length low byte: short is invalid, long is incomplete, 12 is the one. */
        buf[15] = (uint8_t)val;
        r = proxyproto_decode(at_guard(buf, 28), 28, PP_ACCEPT_ANY, &h, &consumed, &why);
        if (val < 12)
            assert_int_equal(r, PP_INVALID);
        else if (val == 12)
            assert_int_equal(r, PP_OK);
        else
            assert_int_equal(r, PP_NEED_MORE);
        buf[15] = 0x0c;

        /* Length high byte: any nonzero value makes it >= 256 bytes more. */
        buf[14] = (uint8_t)val;
        r = proxyproto_decode(at_guard(buf, 28), 28, PP_ACCEPT_ANY, &h, &consumed, &why);
        if (val == 0)
            assert_int_equal(r, PP_OK);
        else if (16 + ((size_t)val << 8 | 0x0c) > PP_HEADER_MAX)
            assert_int_equal(r, PP_INVALID);
        else
            assert_int_equal(r, PP_NEED_MORE);
        buf[14] = 0x00;
    }
}

static void
test_invalid_reasons_distinct(void **state)
{
    const char *seen[64];
    size_t n = 0;
    (void)state;

    /* Two different failure kinds never share a message. */
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        if (cases[i].result != PP_INVALID)
            continue;
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup = dup || strcmp(seen[k], cases[i].why) == 0;
        if (!dup && n < ARRAY_LEN(seen))
            seen[n++] = cases[i].why;
    }
    assert_true(n >= 30);
    for (size_t k = 0; k < n; k++)
        assert_true(strncmp(seen[k], "v1: ", 4) == 0 || strncmp(seen[k], "v2: ", 4) == 0);
}

/* ---- encoder ----------------------------------------------------------- */

static struct sockaddr_storage
sa(const char *text)
{
    struct sockaddr_storage ss;
    assert_int_equal(addr_parse(text, ADDR_PORT_OPTIONAL, &ss, NULL, NULL), 0);
    return ss;
}

struct enc_case {
    const char *name;
    enum pp_version version;
    const char *src, *dst, *authority;
    const uint8_t *want;
    size_t want_len;
};

static void
test_encode_exact(void **state)
{
    static const struct enc_case enc[] = {
        { "v1 tcp4", PP_V1, "192.168.0.1:56324", "192.168.0.11:443", NULL, B(V1_TCP4) },
        { "v1 tcp4 authority ignored", PP_V1, "192.168.0.1:56324", "192.168.0.11:443",
          "mail.example.com", B(V1_TCP4) },
        { "v1 tcp4 from mapped", PP_V1, "[::ffff:192.168.0.1]:56324",
          "[::ffff:192.168.0.11]:443", NULL, B(V1_TCP4) },
        { "v1 tcp4 one mapped", PP_V1, "[::ffff:192.168.0.1]:56324", "192.168.0.11:443", NULL,
          B(V1_TCP4) },
        { "v1 tcp6", PP_V1, "[2001:db8::1]:1000", "[2001:db8::2]:25", NULL,
          B("PROXY TCP6 2001:db8::1 2001:db8::2 1000 25\r\n") },
        { "v1 tcp6 max", PP_V1, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
          "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", NULL, B(V1_TCP6_MAX) },
        { "v1 mixed", PP_V1, "[2001:db8::1]:1000", "192.168.0.11:25", NULL,
          B("PROXY TCP6 2001:db8::1 ::ffff:192.168.0.11 1000 25\r\n") },
        { "v1 mixed other way", PP_V1, "192.168.0.1:1000", "[2001:db8::2]:25", NULL,
          B("PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 1000 25\r\n") },
        { "v2 tcp4", PP_V2, "192.168.0.1:56324", "192.168.0.11:443", NULL, B(V2_TCP4) },
        { "v2 tcp4 from mapped", PP_V2, "[::ffff:192.168.0.1]:56324",
          "[::ffff:192.168.0.11]:443", NULL, B(V2_TCP4) },
        { "v2 tcp4 empty authority", PP_V2, "192.168.0.1:56324", "192.168.0.11:443", "",
          B(V2_TCP4) },
        { "v2 tcp6", PP_V2, "[2001:db8::1]:1000", "[2001:db8::2]:25", NULL, B(V2_TCP6) },
        { "v2 tcp4 authority", PP_V2, "192.168.0.1:56324", "192.168.0.11:443", "mx.example",
          B(SIG "\x21\x11\x00\x19" "\xc0\xa8\x00\x01" "\xc0\xa8\x00\x0b" "\xdc\x04\x01\xbb"
                "\x02\x00\x0a" "mx.example") },
        { "v2 mixed", PP_V2, "[2001:db8::1]:1000", "192.168.0.11:25", NULL,
          B(SIG "\x21\x21\x00\x24"
                "\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc0\xa8\x00\x0b"
                "\x03\xe8\x00\x19") },
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(enc); i++) {
        struct sockaddr_storage s = sa(enc[i].src), d = sa(enc[i].dst);
        uint8_t buf[PP_HEADER_MAX + 8];
        size_t n = proxyproto_encode(enc[i].version, (struct sockaddr *)&s,
                                     (struct sockaddr *)&d, enc[i].authority, buf, sizeof(buf));
        if (n != enc[i].want_len || memcmp(buf, enc[i].want, n) != 0)
            fail_msg("%s: encoded %zu bytes, want %zu", enc[i].name, n, enc[i].want_len);

        /* Too small: 0, and not a byte written. */
        for (size_t cap = 0; cap < n; cap++) {
            uint8_t small[PP_HEADER_MAX];
            memset(small, 0xa5, sizeof(small));
            assert_int_equal(proxyproto_encode(enc[i].version, (struct sockaddr *)&s,
                                               (struct sockaddr *)&d, enc[i].authority, small,
                                               cap),
                             0);
            for (size_t k = 0; k < sizeof(small); k++)
                assert_int_equal(small[k], 0xa5);
        }
        /* Exactly enough. */
        uint8_t *exact = guard_end - n;
        assert_int_equal(proxyproto_encode(enc[i].version, (struct sockaddr *)&s,
                                           (struct sockaddr *)&d, enc[i].authority, exact, n),
                         n);
        assert_memory_equal(exact, enc[i].want, n);
    }
}

static void
test_encode_refusals(void **state)
{
    struct sockaddr_storage s = sa("192.0.2.1:1"), d = sa("192.0.2.2:2"), u;
    uint8_t buf[PP_HEADER_MAX * 2];
    char longname[PP_HEADER_MAX + 1];
    (void)state;

    memset(&u, 0, sizeof(u));
    u.ss_family = AF_UNIX;
    assert_int_equal(proxyproto_encode(PP_V1, (struct sockaddr *)&u, (struct sockaddr *)&d,
                                       NULL, buf, sizeof(buf)),
                     0);
    assert_int_equal(proxyproto_encode(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&u,
                                       NULL, buf, sizeof(buf)),
                     0);
    assert_int_equal(proxyproto_encode((enum pp_version)3, (struct sockaddr *)&s,
                                       (struct sockaddr *)&d, NULL, buf, sizeof(buf)),
                     0);
    /* An AUTHORITY that would push the header past what any of us accepts. */
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(proxyproto_encode(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d,
                                       longname, buf, sizeof(buf)),
                     0);
    /* The longest that fits is accepted by our own decoder. */
    longname[PP_HEADER_MAX - 16 - 12 - 3] = '\0';
    size_t n = proxyproto_encode(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d, longname,
                                 buf, sizeof(buf));
    assert_int_equal(n, PP_HEADER_MAX);
    struct pp_header h;
    size_t consumed;
    const char *why;
    assert_int_equal(proxyproto_decode(buf, n, PP_ACCEPT_ANY, &h, &consumed, &why), PP_OK);
    assert_int_equal(h.authority_len, strlen(longname));
}

static void
test_encode_local(void **state)
{
    uint8_t buf[32];
    (void)state;

    memset(buf, 0xa5, sizeof(buf));
    assert_int_equal(proxyproto_encode_v2_local(buf, 15), 0);
    assert_int_equal(buf[0], 0xa5);
    assert_int_equal(proxyproto_encode_v2_local(buf, 0), 0);
    assert_int_equal(proxyproto_encode_v2_local(buf, 16), 16);
    assert_memory_equal(buf, V2_LOCAL, 16);
    assert_int_equal(buf[16], 0xa5);
    assert_int_equal(proxyproto_encode_v2_local(buf, sizeof(buf)), 16);
}

struct trip_case {
    const char *src, *dst, *authority;
    bool zero_ports;
    int v1_family, v2_family;  /* of the decoded header */
};

static void
test_round_trip(void **state)
{
    static const struct trip_case trips[] = {
        { "192.0.2.1:1234", "198.51.100.7:25", NULL, false, AF_INET, AF_INET },
        { "192.0.2.1:1234", "198.51.100.7:25", NULL, true, AF_INET, AF_INET },
        { "[2001:db8::1]:65535", "[2001:db8::2]:587", NULL, false, AF_INET6, AF_INET6 },
        { "[2001:db8::1]:1", "[::1]:1", NULL, true, AF_INET6, AF_INET6 },
        { "[::ffff:192.0.2.1]:1000", "[::ffff:198.51.100.7]:25", NULL, false, AF_INET, AF_INET },
        { "[::ffff:192.0.2.1]:1000", "198.51.100.7:25", NULL, false, AF_INET, AF_INET },
        { "[2001:db8::1]:1000", "198.51.100.7:25", NULL, false, AF_INET6, AF_INET6 },
        { "192.0.2.1:1000", "[2001:db8::2]:993", NULL, false, AF_INET6, AF_INET6 },
        { "[::]:1", "[::]:2", NULL, false, AF_INET6, AF_INET6 },
        { "192.0.2.1:1234", "198.51.100.7:25", "mail.example.com", false, AF_INET, AF_INET },
        { "[2001:db8::1]:1000", "[2001:db8::2]:143", "imap.example.org", false, AF_INET6,
          AF_INET6 },
        { "[2001:db8::1]:1000", "198.51.100.7:465", "smtp.example.org", false, AF_INET6,
          AF_INET6 },
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(trips); i++) {
        for (int v = PP_V1; v <= PP_V2; v++) {
            struct sockaddr_storage s = sa(trips[i].src), d = sa(trips[i].dst);
            uint8_t buf[PP_HEADER_MAX];
            struct pp_header h;
            size_t consumed;
            const char *why = NULL;
            if (trips[i].zero_ports) {
                addr_set_port((struct sockaddr *)&s, 0);
                addr_set_port((struct sockaddr *)&d, 0);
            }
            size_t n = proxyproto_encode((enum pp_version)v, (struct sockaddr *)&s,
                                         (struct sockaddr *)&d, trips[i].authority, buf,
                                         sizeof(buf));
            assert_true(n > 0);
            if (v == PP_V1)
                assert_true(n <= PP_V1_MAX);
            enum pp_result r = proxyproto_decode(at_guard(buf, n), n,
                                                 v == PP_V1 ? PP_ACCEPT_V1 : PP_ACCEPT_V2, &h,
                                                 &consumed, &why);
            if (r != PP_OK)
                fail_msg("trip %zu v%d: %d (%s)", i, v, r, why ? why : "-");
            assert_int_equal(consumed, n);
            assert_false(h.local);
            assert_int_equal(h.version, v);
            int fam = v == PP_V1 ? trips[i].v1_family : trips[i].v2_family;
            assert_int_equal(h.src.ss_family, fam);
            assert_int_equal(h.dst.ss_family, fam);
            addr_unmap(&s);
            addr_unmap(&d);
            addr_unmap(&h.src);
            addr_unmap(&h.dst);
            assert_true(addr_equal((struct sockaddr *)&s, (struct sockaddr *)&h.src));
            assert_true(addr_equal((struct sockaddr *)&d, (struct sockaddr *)&h.dst));
            if (v == PP_V2 && trips[i].authority != NULL) {
                assert_int_equal(h.authority_len, strlen(trips[i].authority));
                assert_memory_equal(h.authority, trips[i].authority, h.authority_len);
            } else {
                assert_null(h.authority);
            }
        }
    }
}

/* ---- tests/vectors ----------------------------------------------------- */

static void
test_vector_files(void **state)
{
    static const struct {
        const char *file;
        const uint8_t *data;
        size_t len;
    } files[] = {
        { "v1_tcp4.txt", B(V1_TCP4) },
        { "v1_tcp4_max.txt", B(V1_TCP4_MAX) },
        { "v1_tcp6_max.txt", B(V1_TCP6_MAX) },
        { "v1_unknown.txt", B("PROXY UNKNOWN\r\n") },
        { "v1_unknown_max.txt", B(V1_UNKNOWN_MAX) },
        { "v2_local.bin", B(V2_LOCAL) },
        { "v2_tcp4.bin", B(V2_TCP4) },
        { "v2_tcp6.bin", B(V2_TCP6) },
        { "v2_tcp4_tlv.bin", B(V2_TCP4_TLV) },
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        uint8_t buf[PP_HEADER_MAX];
        struct pp_header h;
        size_t consumed;
        const char *why;
        size_t n = read_vector(files[i].file, buf, sizeof(buf));
        if (n != files[i].len || memcmp(buf, files[i].data, n) != 0)
            fail_msg("%s differs from the test's copy", files[i].file);
        assert_int_equal(proxyproto_decode(at_guard(buf, n), n, PP_ACCEPT_ANY, &h, &consumed,
                                           &why),
                         PP_OK);
        assert_int_equal(consumed, n);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_vectors),
        cmocka_unit_test(test_other_vectors),
        cmocka_unit_test(test_vectors_plain_buffer),
        cmocka_unit_test(test_spec_v2_bytes),
        cmocka_unit_test(test_v2_sizes),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_every_corruption),
        cmocka_unit_test(test_v2_fixed_fields),
        cmocka_unit_test(test_invalid_reasons_distinct),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_encode_local),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_vector_files),
    };
    return cmocka_run_group_tests(tests, setup_guard, guard_unmap);
}
