/*
 * Unit tests for tlshello: hand-built ClientHellos (TLS 1.2 without
 * extensions, TLS 1.3, a ~1.7 KB post-quantum-sized one with the server
 * name last), hellos split across TLS records (every split point, 1-byte
 * records), hellos captured from openssl s_client and Python (in
 * tests/vectors), every truncation point, every one-byte corruption of
 * every length field, one input per rejection with its reason, the 16 KiB
 * bound, and the host name check. Inputs end at a PROT_NONE guard page so
 * an over-read faults even without ASan (picohttpparser's trick).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"
#include "tlshello.h"
#include "util.h"

#define BUF_MAX (4 * TH_HELLO_MAX)

/* ---- the guard page ---- */

static int
setup_guard(void **state)
{
    (void)state;
    return guard_map(BUF_MAX);
}

static enum th_result
parse(const uint8_t *data, size_t len, struct th_hello *h, const char **why)
{
    return tlshello_parse(at_guard(data, len), len, h, why);
}

/* ---- building hellos ---- */

struct w {
    uint8_t *p;
    size_t n;
};

static void
w8(struct w *w, unsigned v)
{
    w->p[w->n++] = (uint8_t)v;
}

static void
w16(struct w *w, unsigned v)
{
    w8(w, v >> 8 & 0xff);
    w8(w, v & 0xff);
}

static void
w24(struct w *w, unsigned v)
{
    w8(w, v >> 16 & 0xff);
    w16(w, v & 0xffff);
}

static void
wbytes(struct w *w, const void *b, size_t n)
{
    memcpy(w->p + w->n, b, n);
    w->n += n;
}

static void
wfill(struct w *w, uint8_t v, size_t n)
{
    memset(w->p + w->n, v, n);
    w->n += n;
}

/* Patches a 16-bit length at <at> to cover everything written since at + 2. */
static void
w16_back(struct w *w, size_t at)
{
    size_t len = w->n - at - 2;
    w->p[at] = (uint8_t)(len >> 8);
    w->p[at + 1] = (uint8_t)len;
}

/* Offsets (in the handshake message) of the bytes of every length field. */
struct lens {
    size_t at[64];
    size_t n;
};

static void
mark(struct lens *l, size_t at, size_t width)
{
    for (size_t i = 0; l != NULL && i < width; i++)
        l->at[l->n++] = at + i;
}

struct spec {
    const char *sni;    /* NULL: no server_name extension */
    bool no_extensions; /* a TLS 1.2 hello without an extension block */
    size_t key_share;   /* bytes of an X25519MLKEM768 share (1216), 0: x25519 only */
    size_t padding;     /* bytes of a padding extension (RFC 7685), 0: none */
    bool sni_last;      /* server_name after the big extensions */
};

static void
ext_sni(struct w *w, const char *name, struct lens *l)
{
    w16(w, 0x0000);
    size_t at = w->n;
    mark(l, at, 2);
    w16(w, 0);
    size_t list = w->n;
    mark(l, list, 2);
    w16(w, 0);
    w8(w, 0); /* host_name */
    mark(l, w->n, 2);
    w16(w, (unsigned)strlen(name));
    wbytes(w, name, strlen(name));
    w16_back(w, list);
    w16_back(w, at);
}

/*
 * Writes a ClientHello handshake message (type, length, body) as a client
 * would; <l> collects the offsets of its length fields. Returns its length.
 */
static size_t
hello_msg(uint8_t *out, const struct spec *sp, struct lens *l)
{
    struct w w = {out, 0};
    static const uint8_t suites[] = {0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2f};

    if (l != NULL)
        l->n = 0;
    w8(&w, 1);
    mark(l, w.n, 3);
    w24(&w, 0);
    w16(&w, 0x0303);
    wfill(&w, 0xa5, 32); /* random */
    mark(l, w.n, 1);
    w8(&w, 32);
    wfill(&w, 0xb6, 32); /* legacy_session_id */
    mark(l, w.n, 2);
    w16(&w, sizeof(suites));
    wbytes(&w, suites, sizeof(suites));
    mark(l, w.n, 1);
    w8(&w, 1);
    w8(&w, 0);
    if (!sp->no_extensions) {
        size_t exts = w.n;
        mark(l, exts, 2);
        w16(&w, 0);
        if (sp->sni != NULL && !sp->sni_last)
            ext_sni(&w, sp->sni, l);
        w16(&w, 0x002b); /* supported_versions */
        mark(l, w.n, 2);
        w16(&w, 3);
        w8(&w, 2);
        w16(&w, 0x0304);
        w16(&w, 0x000a); /* supported_groups */
        mark(l, w.n, 2);
        w16(&w, 4);
        w16(&w, 2);
        w16(&w, sp->key_share ? 0x11ec : 0x001d);
        w16(&w, 0x0033); /* key_share */
        size_t ks = w.n;
        mark(l, ks, 2);
        w16(&w, 0);
        size_t shares = w.n;
        w16(&w, 0);
        if (sp->key_share) {
            w16(&w, 0x11ec); /* X25519MLKEM768 */
            w16(&w, (unsigned)sp->key_share);
            wfill(&w, 0xc7, sp->key_share);
        }
        w16(&w, 0x001d);
        w16(&w, 32);
        wfill(&w, 0xd8, 32);
        w16_back(&w, shares);
        w16_back(&w, ks);
        w16(&w, 0x0010); /* ALPN: h2, http/1.1 */
        mark(l, w.n, 2);
        w16(&w, 14);
        w16(&w, 12);
        w8(&w, 2);
        wbytes(&w, "h2", 2);
        w8(&w, 8);
        wbytes(&w, "http/1.1", 8);
        if (sp->padding) {
            w16(&w, 0x0015);
            mark(l, w.n, 2);
            w16(&w, (unsigned)sp->padding);
            wfill(&w, 0, sp->padding);
        }
        if (sp->sni != NULL && sp->sni_last)
            ext_sni(&w, sp->sni, l);
        w16_back(&w, exts);
    }
    size_t body = w.n - 4;
    out[1] = (uint8_t)(body >> 16);
    out[2] = (uint8_t)(body >> 8);
    out[3] = (uint8_t)body;
    return w.n;
}

/*
 * Wraps handshake bytes in records of <frag> payload bytes each (the last
 * one shorter), as a client that fragments would. Returns the length.
 */
static size_t
records(uint8_t *out, const uint8_t *msg, size_t len, size_t frag)
{
    size_t n = 0;

    for (size_t off = 0; off < len; off += frag) {
        size_t k = len - off < frag ? len - off : frag;
        out[n++] = 22;
        out[n++] = 3;
        out[n++] = 1;
        out[n++] = (uint8_t)(k >> 8);
        out[n++] = (uint8_t)k;
        memcpy(out + n, msg + off, k);
        n += k;
    }
    return n;
}

/* Two records: the first with <first> handshake bytes, the second with the rest. */
static size_t
records_split(uint8_t *out, const uint8_t *msg, size_t len, size_t first)
{
    size_t n = records(out, msg, first, first);
    return n + records(out + n, msg + first, len - first, len - first);
}

/* ---- checks ---- */

static void
expect_ok(const uint8_t *data, size_t len, const char *sni, size_t end)
{
    struct th_hello h;
    const char *why = "unset";

    enum th_result r = parse(data, len, &h, &why);
    if (r != TH_OK)
        fail_msg("expected TH_OK, got %d (%s)", r, why ? why : "-");
    assert_null(why);
    assert_int_equal(h.end, end);
    if (sni == NULL) {
        assert_false(h.has_sni);
        return;
    }
    assert_true(h.has_sni);
    assert_int_equal(h.sni_len, strlen(sni));
    assert_memory_equal(h.sni, sni, h.sni_len);
}

/* Every proper prefix of a complete hello is NEED_MORE, with need a true lower bound. */
static void
expect_prefixes(const uint8_t *data, size_t end)
{
    for (size_t k = 0; k < end; k++) {
        struct th_hello h;
        const char *why = NULL;
        enum th_result r = parse(data, k, &h, &why);
        if (r != TH_NEED_MORE)
            fail_msg("prefix of %zu of %zu bytes: got %d (%s)", k, end, r, why ? why : "-");
        assert_true(h.need > k);
        assert_true(h.need <= end);
        assert_false(h.has_sni);
    }
}

static void
expect_reject(const uint8_t *data, size_t len, enum th_result want, const char *want_why)
{
    struct th_hello h;
    const char *why = NULL;

    enum th_result r = parse(data, len, &h, &why);
    if (r != want || why == NULL || strcmp(why, want_why) != 0)
        fail_msg("expected %d '%s', got %d '%s'", want, want_why, r, why ? why : "(null)");
    assert_false(h.has_sni);
}

/* ---- complete hellos ---- */

static uint8_t msg[BUF_MAX], in[BUF_MAX];

static void
test_tls13_sni(void **state)
{
    (void)state;
    struct spec sp = {.sni = "mail.example.org"};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, m);
    expect_ok(in, n, "mail.example.org", n);

    struct th_hello h;
    const char *why;
    assert_int_equal(parse(in, n, &h, &why), TH_OK);
    assert_int_equal(h.version, 0x0303);
    expect_prefixes(in, n);
}

static void
test_tls12_no_extensions(void **state)
{
    (void)state;
    struct spec sp = {.no_extensions = true};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, m);
    expect_ok(in, n, NULL, n);
    expect_prefixes(in, n);
}

static void
test_no_sni(void **state)
{
    (void)state;
    struct spec sp = {0};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, m);
    expect_ok(in, n, NULL, n);
}

/* Post-quantum key shares make hellos of 1.5-2 KB: more than one TCP segment. */
static void
test_post_quantum_size(void **state)
{
    (void)state;
    struct spec sp = {
        .sni = "autodiscover.example.org", .key_share = 1216, .padding = 300, .sni_last = true};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, m);
    assert_true(n > 1600 && n < 1800);
    expect_ok(in, n, "autodiscover.example.org", n);
    expect_prefixes(in, n);
}

/* The bytes after the hello (the next record, early data) are not its business. */
static void
test_bytes_after(void **state)
{
    (void)state;
    struct spec sp = {.sni = "a.example"};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, m);
    memcpy(in + n, "\x17\x03\x03\x00\x05hello", 10);
    expect_ok(in, n + 10, "a.example", n);
    memcpy(in + n, "junk", 4);
    expect_ok(in, n + 4, "a.example", n);

    /* The hello's record may hold more handshake bytes after it. */
    memcpy(msg + m, "\x02\x00\x00\x00", 4);
    n = records(in, msg, m + 4, m + 4);
    expect_ok(in, n, "a.example", n - 4);
}

static void
test_captured_clients(void **state)
{
    (void)state;
    static const struct {
        const char *file, *sni;
        uint16_t version;
    } v[] = {
        {"tlshello_openssl_tls13_sni.bin", "mail.example.org", 0x0303},
        {"tlshello_openssl_tls12_sni.bin", "mail.example.org", 0x0303},
        {"tlshello_openssl_nosni.bin", NULL, 0x0303},
        {"tlshello_python_sni.bin", "MTA-STS.Example.ORG", 0x0303},
    };
    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        size_t n = read_vector(v[i].file, in, sizeof(in));
        assert_true(n > 100);
        expect_ok(in, n, v[i].sni, n);
        expect_prefixes(in, n);
        /* The same hello, fragmented by a client that splits records. */
        size_t m = n - 5;
        memcpy(msg, in + 5, m);
        size_t k = records(in, msg, m, 7);
        expect_ok(in, k, v[i].sni, k);
    }
}

/* ---- records ---- */

static void
test_split_every_point(void **state)
{
    (void)state;
    struct spec sp = {.sni = "imap.example.net", .sni_last = true};
    size_t m = hello_msg(msg, &sp, NULL);
    for (size_t first = 1; first < m; first++) {
        size_t n = records_split(in, msg, m, first);
        expect_ok(in, n, "imap.example.net", n);
    }
    /* A few split points with every prefix too. */
    size_t points[] = {1, 3, 4, 5, 40, m / 2, m - 5, m - 1};
    for (size_t i = 0; i < ARRAY_LEN(points); i++) {
        size_t n = records_split(in, msg, m, points[i]);
        expect_prefixes(in, n);
    }
}

static void
test_one_byte_records(void **state)
{
    (void)state;
    struct spec sp = {.sni = "x.example"};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, 1);
    assert_int_equal(n, 6 * m);
    expect_ok(in, n, "x.example", n);
    expect_prefixes(in, n);
}

static void
test_post_quantum_records(void **state)
{
    (void)state;
    struct spec sp = {
        .sni = "mta-sts.example.org", .key_share = 1216, .padding = 300, .sni_last = true};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t frags[] = {512, 1000, 1400, 1460, m - 10, m - 1};
    for (size_t i = 0; i < ARRAY_LEN(frags); i++) {
        size_t n = records(in, msg, m, frags[i]);
        expect_ok(in, n, "mta-sts.example.org", n);
    }
    /* The name itself split between two records. */
    size_t at = m - strlen("mta-sts.example.org") / 2;
    size_t n = records_split(in, msg, m, at);
    expect_ok(in, n, "mta-sts.example.org", n);
    expect_prefixes(in, n);
}

/*
 * Re-parsing only once <need> bytes are there (what the session does)
 * reaches the end in a few parses, however the input trickles in.
 */
static void
test_need_hint(void **state)
{
    (void)state;
    struct spec sp = {.sni = "mail.example.org", .key_share = 1216, .padding = 300};
    size_t m = hello_msg(msg, &sp, NULL);
    size_t frags[] = {m, 1, 100};
    for (size_t i = 0; i < ARRAY_LEN(frags); i++) {
        size_t n = records(in, msg, m, frags[i]);
        size_t need = 0, parses = 0;
        enum th_result r = TH_NEED_MORE;
        for (size_t have = 0; have <= n && r == TH_NEED_MORE; have++) {
            if (have < need)
                continue;
            struct th_hello h;
            const char *why;
            r = parse(in, have, &h, &why);
            parses++;
            need = h.need;
        }
        assert_int_equal(r, TH_OK);
        /* One byte at a time, records of 1 and 100: a bounded number of parses. */
        assert_true(parses <= 64);
    }
}

/* ---- the 16 KiB bound ---- */

static void
test_size_bound(void **state)
{
    (void)state;
    struct th_hello h;
    const char *why;

    /* A hello that fits: padding up to the last byte of TH_HELLO_MAX. */
    struct spec sp = {.sni = "big.example", .padding = 1};
    size_t m = hello_msg(msg, &sp, NULL);
    sp.padding = 1 + (TH_HELLO_MAX - 5 - m);
    m = hello_msg(msg, &sp, NULL);
    size_t n = records(in, msg, m, m);
    assert_int_equal(n, TH_HELLO_MAX);
    expect_ok(in, n, "big.example", n);
    in[n] = 0x17;
    expect_ok(in, n + 1, "big.example", n);

    /* One byte more does not, and says so as soon as the length is known. */
    sp.padding++;
    m = hello_msg(msg, &sp, NULL);
    n = records(in, msg, m, 16384);
    expect_reject(in, n, TH_INVALID, "ClientHello does not fit in 16384 bytes");
    expect_reject(in, 9, TH_INVALID, "ClientHello does not fit in 16384 bytes");

    /* Small records: the same hello in many records goes over the bound. */
    sp.padding = 3000;
    m = hello_msg(msg, &sp, NULL);
    n = records(in, msg, m, 1);
    assert_true(n > TH_HELLO_MAX);
    expect_reject(in, n, TH_INVALID, "ClientHello does not fit in 16384 bytes");
    expect_reject(in, TH_HELLO_MAX, TH_INVALID, "ClientHello does not fit in 16384 bytes");
    assert_int_equal(parse(in, 600, &h, &why), TH_NEED_MORE);
    assert_true(h.need <= TH_HELLO_MAX);
    /* Refused once the least completion would pass the bound, not only at it. */
    assert_int_equal(parse(in, TH_HELLO_MAX - 100, &h, &why), TH_INVALID);

    /* A declared length of 2^24 - 1. */
    memcpy(in, "\x16\x03\x01\x00\x04\x01\xff\xff\xff", 9);
    expect_reject(in, 9, TH_INVALID, "ClientHello does not fit in 16384 bytes");
}

/* ---- rejections: each with its own reason ---- */

struct reject {
    const char *name;
    enum th_result result;
    const char *why;
};

/* Builds input <i> of the rejection table into <out>; returns its length. */
static size_t
build_reject(size_t i, uint8_t *out)
{
    struct w w = {msg, 0};
    struct spec sp = {.sni = "mail.example.org"};
    size_t m, at;

    /* Most cases are a body written by hand; the header is fixed up at the end. */
    w8(&w, 1);
    w24(&w, 0);
    switch (i) {
    case 0: /* SMTP, not TLS */
        memcpy(out, "EHLO client.example\r\n", 21);
        return 21;
    case 1: /* SSLv2-compatible hello */
        memcpy(out, "\x80\x2e\x01\x03\x01", 5);
        return 5;
    case 2:
        memcpy(out, "\x16\x02\x00\x00\x10", 5);
        return 5;
    case 3:
        memcpy(out, "\x16\x03\x01\x40\x01", 5);
        return 5;
    case 4:
        memcpy(out, "\x16\x03\x01\x00\x00", 5);
        return 5;
    case 5: /* a second record of type application_data */
    case 6: /* a second record of version 2 */
        m = hello_msg(msg, &sp, NULL);
        m = records_split(out, msg, m, 20);
        if (i == 5)
            out[25] = 23;
        else
            out[26] = 2;
        return m;
    case 7: /* a ServerHello */
        m = hello_msg(msg, &sp, NULL);
        msg[0] = 2;
        return records(out, msg, m, m);
    case 8:
        wfill(&w, 3, 10);
        break;
    case 9:
        w16(&w, 0x0200);
        wfill(&w, 0, 32);
        break;
    case 10:
        w16(&w, 0x0303);
        wfill(&w, 0, 32);
        break;
    case 11:
        w16(&w, 0x0303);
        wfill(&w, 0, 32);
        w8(&w, 33);
        wfill(&w, 0, 33);
        break;
    case 12:
        w16(&w, 0x0303);
        wfill(&w, 0, 32);
        w8(&w, 32);
        wfill(&w, 0, 10);
        break;
    case 13:
    case 14:
    case 15:
    case 16:
    case 17:
    case 18:
    case 19:
    case 20:
    case 21:
        w16(&w, 0x0303);
        wfill(&w, 0, 32);
        w8(&w, 0);
        if (i == 13) {
            w8(&w, 0);
            break;
        }
        w16(&w, i == 14 ? 3 : i == 15 ? 8 : 2);
        if (i == 14 || i == 15) {
            wfill(&w, 0x13, 4);
            break;
        }
        w16(&w, 0x1301);
        if (i == 16)
            break;
        w8(&w, i == 17 ? 0 : i == 18 ? 2 : 1);
        w8(&w, 0);
        if (i == 17 || i == 18)
            break;
        if (i == 19) {
            w8(&w, 0);
            break;
        }
        w16(&w, i == 20 ? 9 : 4);
        wfill(&w, 0xaa, 8);
        break;
    default:
        break;
    }
    if (i >= 22) {
        /* Extension cases: a valid start, then the extension block by hand. */
        w16(&w, 0x0303);
        wfill(&w, 0, 32);
        w8(&w, 0);
        w16(&w, 2);
        w16(&w, 0x1301);
        w8(&w, 1);
        w8(&w, 0);
        at = w.n;
        w16(&w, 0);
        switch (i) {
        case 22: /* 3 bytes: not even an extension header */
            wfill(&w, 0x0a, 3);
            break;
        case 23:
            w16(&w, 0x000a);
            w16(&w, 5);
            wfill(&w, 0, 4);
            break;
        case 24:
            ext_sni(&w, "a.example", NULL);
            ext_sni(&w, "b.example", NULL);
            break;
        case 25:
            w16(&w, 0);
            w16(&w, 1);
            w8(&w, 0);
            break;
        case 26:
            w16(&w, 0);
            w16(&w, 4);
            w16(&w, 1);
            w16(&w, 0);
            break;
        case 27:
            w16(&w, 0);
            w16(&w, 2);
            w16(&w, 0);
            break;
        case 28:
            w16(&w, 0);
            w16(&w, 4);
            w16(&w, 2);
            w16(&w, 0);
            break;
        case 29:
            w16(&w, 0);
            w16(&w, 7);
            w16(&w, 5);
            w8(&w, 0);
            w16(&w, 3);
            wbytes(&w, "ab", 2);
            break;
        case 30:
            w16(&w, 0);
            w16(&w, 12);
            w16(&w, 10);
            w8(&w, 0);
            w16(&w, 2);
            wbytes(&w, "ab", 2);
            w8(&w, 0);
            w16(&w, 2);
            wbytes(&w, "cd", 2);
            break;
        case 31:
            w16(&w, 0);
            w16(&w, 5);
            w16(&w, 3);
            w8(&w, 0);
            w16(&w, 0);
            break;
        case 32:
            w16(&w, 0);
            w16(&w, 5 + 256);
            w16(&w, 3 + 256);
            w8(&w, 0);
            w16(&w, 256);
            wfill(&w, 'a', 256);
            break;
        default:
            break;
        }
        w16_back(&w, at);
        if (i == 33) {
            /* extensions length one more than what follows */
            msg[at + 1]++;
        } else if (i == 34) {
            /* a byte after the extensions */
            w8(&w, 0);
        } else if (i == 35) {
            /* one byte where the extensions length should be */
            w.n = at + 1;
        }
    }
    m = w.n;
    size_t body = m - 4;
    msg[1] = (uint8_t)(body >> 16);
    msg[2] = (uint8_t)(body >> 8);
    msg[3] = (uint8_t)body;
    return records(out, msg, m, m);
}

static const struct reject rejects[] = {
    {"smtp", TH_NOT_TLS, "not a TLS handshake record"},
    {"sslv2", TH_NOT_TLS, "not a TLS handshake record"},
    {"record v2", TH_NOT_TLS, "record version is not 3.x"},
    {"record 2^14+1", TH_INVALID, "record longer than 2^14 bytes"},
    {"empty record", TH_INVALID, "empty handshake record"},
    {"app data inside", TH_INVALID, "a record of another type inside the ClientHello"},
    {"v2 record inside", TH_INVALID, "record version inside the ClientHello is not 3.x"},
    {"server hello", TH_INVALID, "first handshake message is not a ClientHello"},
    {"short body", TH_INVALID, "ClientHello too short for its version and random"},
    {"version 2", TH_INVALID, "ClientHello version is not 3.x"},
    {"no session id", TH_INVALID, "ClientHello ends before its session id"},
    {"session id 33", TH_INVALID, "session id longer than 32 bytes"},
    {"session id cut", TH_INVALID, "session id runs past the ClientHello"},
    {"suites length cut", TH_INVALID, "ClientHello ends before its cipher suites"},
    {"suites odd", TH_INVALID, "cipher suites length is zero or odd"},
    {"suites cut", TH_INVALID, "cipher suites run past the ClientHello"},
    {"no compression byte", TH_INVALID, "ClientHello ends before its compression methods"},
    {"compression 0", TH_INVALID, "no compression methods"},
    {"compression cut", TH_INVALID, "compression methods run past the ClientHello"},
    {"extensions length cut", TH_INVALID, "ClientHello ends inside its extensions length"},
    {"extensions over", TH_INVALID, "extensions run past the ClientHello"},
    {"extensions under", TH_INVALID, "bytes after the extensions"},
    {"extension header cut", TH_INVALID, "extension header runs past the extensions"},
    {"extension cut", TH_INVALID, "extension runs past the extensions"},
    {"two server_name", TH_INVALID, "two server_name extensions"},
    {"server_name 1 byte", TH_INVALID, "server_name extension too short for its list length"},
    {"server_name list", TH_INVALID, "server_name list length does not match its extension"},
    {"server_name empty", TH_INVALID, "empty server_name list"},
    {"entry header cut", TH_INVALID, "server_name entry header runs past its list"},
    {"name cut", TH_INVALID, "server name runs past its list"},
    {"two host names", TH_INVALID, "two host names in server_name"},
    {"empty name", TH_INVALID, "empty server name"},
    {"name 256", TH_INVALID, "server name longer than 255 bytes"},
    {"extensions +1", TH_INVALID, "extensions run past the ClientHello"},
    {"byte after", TH_INVALID, "bytes after the extensions"},
    {"ext length 1 byte", TH_INVALID, "ClientHello ends inside its extensions length"},
};

static void
test_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rejects); i++) {
        size_t n = build_reject(i, in);
        struct th_hello h;
        const char *why = NULL;
        enum th_result r = parse(in, n, &h, &why);
        if (r != rejects[i].result || why == NULL || strcmp(why, rejects[i].why) != 0)
            fail_msg("%zu %s: expected %d '%s', got %d '%s'", i, rejects[i].name, rejects[i].result,
                     rejects[i].why, r, why ? why : "(null)");
        assert_false(h.has_sni);
    }
}

/* The reasons end up in logs: one rejection, one phrase. */
static void
test_reasons_distinct(void **state)
{
    (void)state;
    const char *seen[64];
    size_t n = 0;

    for (size_t i = 0; i < ARRAY_LEN(rejects); i++) {
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(seen[j], rejects[i].why) == 0;
        if (!dup)
            seen[n++] = rejects[i].why;
    }
    /* 36 inputs, 32 kinds (and the size bound, tested above). */
    assert_int_equal(n, 32);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++)
            assert_true(strcmp(seen[i], seen[j]) != 0);
    }
}

/* Not TLS is decided on the first bytes, before a whole header is there. */
static void
test_not_tls_early(void **state)
{
    (void)state;
    struct th_hello h;
    const char *why;

    expect_reject((const uint8_t *)"E", 1, TH_NOT_TLS, "not a TLS handshake record");
    expect_reject((const uint8_t *)"\x16\x00", 2, TH_NOT_TLS, "record version is not 3.x");
    expect_reject((const uint8_t *)"\x00", 1, TH_NOT_TLS, "not a TLS handshake record");
    assert_int_equal(parse((const uint8_t *)"", 0, &h, &why), TH_NEED_MORE);
    assert_int_equal(h.need, 9);
    assert_int_equal(parse((const uint8_t *)"\x16", 1, &h, &why), TH_NEED_MORE);
    assert_int_equal(parse((const uint8_t *)"\x16\x03", 2, &h, &why), TH_NEED_MORE);
    assert_int_equal(parse((const uint8_t *)"\x16\x03\x00\x00", 4, &h, &why), TH_NEED_MORE);
    /* Any minor version: SSL 3.0 to TLS 1.3 record headers. */
    for (unsigned minor = 0; minor < 5; minor++) {
        struct spec sp = {.sni = "v.example"};
        size_t m = hello_msg(msg, &sp, NULL);
        size_t n = records(in, msg, m, m);
        in[2] = (uint8_t)minor;
        expect_ok(in, n, "v.example", n);
    }
}

/* Every value of every byte of every length field: never a wrong server name. */
static void
test_length_corruptions(void **state)
{
    (void)state;
    struct lens l;
    struct spec specs[] = {
        {.sni = "mail.example.org"},
        {.sni = "mail.example.org", .padding = 16, .sni_last = true},
    };
    size_t checked = 0, oks = 0;
    for (size_t s = 0; s < ARRAY_LEN(specs); s++) {
        size_t m = hello_msg(msg, &specs[s], &l);
        assert_true(l.n >= 20);
        /* The record length too (offsets 3 and 4 of the input). */
        for (size_t f = 0; f < l.n + 2; f++) {
            size_t at = f < l.n ? l.at[f] + 5 : f - l.n + 3;
            size_t n = records(in, msg, m, m);
            uint8_t orig = in[at];
            for (unsigned v = 0; v < 256; v++) {
                if (v == orig)
                    continue;
                n = records(in, msg, m, m);
                in[at] = (uint8_t)v;
                struct th_hello h;
                const char *why = NULL;
                enum th_result r = parse(in, n, &h, &why);
                if (r == TH_NEED_MORE) {
                    assert_true(h.need > n);
                } else if (r == TH_OK) {
                    /* Success is possible: a longer record length does not
                     * matter once the hello is complete; a shifted reading
                     * may be well formed by chance (a handshake length cut
                     * after the compression methods is a hello without
                     * extensions; compression methods that swallow all but
                     * the ALPN extension leave something that reads as an
                     * extension block). It never yields another name. */
                    bool same =
                        h.has_sni && h.sni_len == 16 && memcmp(h.sni, "mail.example.org", 16) == 0;
                    if ((h.has_sni && !same) || h.end > n)
                        fail_msg("byte %zu = 0x%02x: got TH_OK, end %zu of %zu", at, v, h.end, n);
                    oks++;
                } else {
                    assert_int_equal(r, TH_INVALID);
                    assert_non_null(why);
                }
                checked++;
            }
        }
    }
    assert_true(checked > 10000);
    /* Mostly a record length that grew: the hello is complete before it. */
    assert_true(oks < checked / 20);
}

/* ---- host names ---- */

static int
host(const char *s, char *out)
{
    return tlshello_host_name((const uint8_t *)s, strlen(s), out, TH_HOST_MAX);
}

static void
test_host_name(void **state)
{
    (void)state;
    char out[TH_HOST_MAX], long_name[300];

    assert_int_equal(host("Mail.Example.ORG", out), 16);
    assert_string_equal(out, "mail.example.org");
    assert_int_equal(host("mail.example.org.", out), 16);
    assert_string_equal(out, "mail.example.org");
    assert_int_equal(host("localhost", out), 9);
    assert_int_equal(host("xn--bcher-kva.example", out), 21);
    assert_int_equal(host("a-b.c9.example", out), 14);
    assert_int_equal(host("1.2.3.4", out), 7);

    static const char *const bad[] = {
        "",           ".",          "..",          "a..b",          ".a",     "a.b..",
        "-a.example", "a-.example", "a.-b",        "under_score.x", "sp ace", "tab\t",
        "a*.example", "*.example",  "caf\xc3\xa9", "a/b",           "a:443",  "[::1]",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        if (host(bad[i], out) != -1)
            fail_msg("'%s' taken as a host name", bad[i]);
        assert_string_equal(out, "");
    }
    /* A NUL inside. */
    assert_int_equal(tlshello_host_name((const uint8_t *)"a\0b", 3, out, sizeof(out)), -1);

    /* Labels of 63, names of 253 (254 with the trailing dot). */
    memset(long_name, 'a', 63);
    strcpy(long_name + 63, ".example");
    assert_int_equal(host(long_name, out), 71);
    memset(long_name, 'a', 64);
    strcpy(long_name + 64, ".example");
    assert_int_equal(host(long_name, out), -1);
    size_t n = 0;
    while (n + 2 <= 253) {
        long_name[n++] = 'b';
        long_name[n++] = '.';
    }
    long_name[n - 1] = 'c';
    long_name[n] = '\0';
    assert_int_equal(n, 252);
    strcpy(long_name + n, "d");
    assert_int_equal(host(long_name, out), 253);
    strcpy(long_name + n, "d.");
    assert_int_equal(host(long_name, out), 253);
    strcpy(long_name + n, "de");
    assert_int_equal(host(long_name, out), -1);

    /* The output capacity is respected. */
    assert_int_equal(tlshello_host_name((const uint8_t *)"abc", 3, out, 3), -1);
    assert_int_equal(tlshello_host_name((const uint8_t *)"abc", 3, out, 4), 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_sni),
        cmocka_unit_test(test_tls12_no_extensions),
        cmocka_unit_test(test_no_sni),
        cmocka_unit_test(test_post_quantum_size),
        cmocka_unit_test(test_bytes_after),
        cmocka_unit_test(test_captured_clients),
        cmocka_unit_test(test_split_every_point),
        cmocka_unit_test(test_one_byte_records),
        cmocka_unit_test(test_post_quantum_records),
        cmocka_unit_test(test_need_hint),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_reasons_distinct),
        cmocka_unit_test(test_not_tls_early),
        cmocka_unit_test(test_length_corruptions),
        cmocka_unit_test(test_host_name),
    };
    return cmocka_run_group_tests(tests, setup_guard, guard_unmap);
}
