#include "base/sha1.h"

#include <stdio.h>
#include <string.h>

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* RFC 3174 section 6.1 (method 1: the 80-word schedule). */
static void compress(Sha1 *c, const uint8_t *p) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 80; t++) w[t] = ROL(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ cc ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ cc ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t temp = ROL(a, 5) + f + e + w[t] + k;
        e = d;
        d = cc;
        cc = ROL(b, 30);
        b = a;
        a = temp;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

void sha1_init(Sha1 *c) {
    c->h[0] = 0x67452301;
    c->h[1] = 0xEFCDAB89;
    c->h[2] = 0x98BADCFE;
    c->h[3] = 0x10325476;
    c->h[4] = 0xC3D2E1F0;
    c->total = 0;
    c->buflen = 0;
}

void sha1_update(Sha1 *c, const void *data, size_t len) {
    const uint8_t *p = data;
    c->total += len;
    if (c->buflen) {
        size_t take = 64 - c->buflen;
        if (take > len) take = len;
        memcpy(c->buf + c->buflen, p, take);
        c->buflen += take;
        p += take;
        len -= take;
        if (c->buflen < 64) return;
        compress(c, c->buf);
        c->buflen = 0;
    }
    /* Whole blocks straight from the input: hashing multi-GB files. */
    for (; len >= 64; p += 64, len -= 64) compress(c, p);
    memcpy(c->buf, p, len);
    c->buflen = len;
}

void sha1_final(Sha1 *c, uint8_t out[20]) {
    uint64_t bits = c->total * 8;
    /* Pad: 0x80, zeros up to 56 mod 64, then the length in bits, big-endian. */
    uint8_t pad[72] = {0x80};
    size_t npad = (c->buflen < 56 ? 56 : 120) - c->buflen;
    for (int i = 0; i < 8; i++) pad[npad + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, pad, npad + 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void sha1_to_hex(const uint8_t digest[20], char hex[41]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 20; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[40] = 0;
}

void sha1_hex(const void *data, size_t len, char hex[41]) {
    Sha1 c;
    uint8_t d[20];
    sha1_init(&c);
    sha1_update(&c, data, len);
    sha1_final(&c, d);
    sha1_to_hex(d, hex);
}

void sha1_init_git_blob(Sha1 *c, unsigned long long size) {
    char head[32];
    int n = snprintf(head, sizeof head, "blob %llu", size);
    sha1_init(c);
    sha1_update(c, head, (size_t)n + 1); /* the NUL is part of the header */
}
