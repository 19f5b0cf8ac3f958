/* sha1: RFC 3174 SHA-1. Used only to check git blob ids (the hub names a
 * small file by SHA-1 of "blob <size>\0" + content); SHA-1 is not collision
 * resistant, so nothing security-relevant may rest on it alone. */
#ifndef ALOE_BASE_SHA1_H
#define ALOE_BASE_SHA1_H

#include <stddef.h>
#include <stdint.h>

typedef struct Sha1 {
    uint32_t h[5];
    uint64_t total; /* bytes so far */
    uint8_t buf[64];
    size_t buflen;
} Sha1;

void sha1_init(Sha1 *c);
void sha1_update(Sha1 *c, const void *data, size_t len);
void sha1_final(Sha1 *c, uint8_t out[20]);
void sha1_to_hex(const uint8_t digest[20], char hex[41]);
/* Hex digest of data into hex[41]. */
void sha1_hex(const void *data, size_t len, char hex[41]);
/* Starts the git blob id of a `size`-byte file: feeds "blob <size>\0";
 * the content follows through sha1_update. */
void sha1_init_git_blob(Sha1 *c, unsigned long long size);

#endif
