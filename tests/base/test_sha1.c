/* SHA-1 (RFC 3174) against the RFC's own test vectors, messages that end at
 * every padding boundary, input split at every offset, and git blob ids
 * (what the hub lists for small files). */
#include <stdlib.h>

#include "base/sha1.h"
#include "test.h"

static void digest_hex(const void *data, size_t len, size_t repeat, char hex[41]) {
    Sha1 c;
    uint8_t d[20];
    sha1_init(&c);
    for (size_t i = 0; i < repeat; i++) sha1_update(&c, data, len);
    sha1_final(&c, d);
    sha1_to_hex(d, hex);
}

static void test_rfc3174_vectors(void) {
    /* RFC 3174 section 7.3: TEST1..TEST4 with their repeat counts. */
    char hex[41];
    digest_hex("abc", 3, 1, hex);
    CHECK_EQ_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *t2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_hex(t2, strlen(t2), 1, hex);
    CHECK_EQ_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    digest_hex("a", 1, 1000000, hex);
    CHECK_EQ_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    const char *t4 = "0123456701234567012345670123456701234567012345670123456701234567";
    digest_hex(t4, strlen(t4), 10, hex);
    CHECK_EQ_STR(hex, "dea356a2cddd90c7a7ecedc5ebb563934f460452");
    sha1_hex("", 0, hex);
    CHECK_EQ_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static void test_padding_boundaries(void) {
    /* Lengths around 56 and 64 bytes, where the length field spills into a
     * second block (values from coreutils sha1sum). */
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {{55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"}, {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
             {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"}, {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
             {65, "11655326c708d70319be2610e8a57d9a5b959d3b"}, {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
             {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"}};
    char a[128], hex[41];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sha1_hex(a, v[i].n, hex);
        CHECK_MSG(!strcmp(hex, v[i].hex), "%zu x 'a': %s, expected %s", v[i].n, hex, v[i].hex);
    }
}

static void test_split_updates(void) {
    /* Feeding a message in two parts at any offset gives the one-shot digest. */
    unsigned char m[300];
    for (size_t i = 0; i < sizeof m; i++) m[i] = (unsigned char)(i * 37 + 11);
    char whole[41], split[41];
    sha1_hex(m, sizeof m, whole);
    for (size_t cut = 0; cut <= sizeof m; cut++) {
        Sha1 c;
        uint8_t d[20];
        sha1_init(&c);
        sha1_update(&c, m, cut);
        sha1_update(&c, m + cut, sizeof m - cut);
        sha1_final(&c, d);
        sha1_to_hex(d, split);
        CHECK_MSG(!strcmp(whole, split), "split at %zu: %s != %s", cut, split, whole);
    }
}

static void test_git_blob_ids(void) {
    /* Values from `git hash-object`. */
    Sha1 c;
    uint8_t d[20];
    char hex[41];
    sha1_init_git_blob(&c, 0);
    sha1_final(&c, d);
    sha1_to_hex(d, hex);
    CHECK_EQ_STR(hex, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    sha1_init_git_blob(&c, 12);
    sha1_update(&c, "hello world\n", 12);
    sha1_final(&c, d);
    sha1_to_hex(d, hex);
    CHECK_EQ_STR(hex, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
}

int main(void) {
    RUN(test_rfc3174_vectors);
    RUN(test_padding_boundaries);
    RUN(test_split_updates);
    RUN(test_git_blob_ids);
    return test_summary();
}
