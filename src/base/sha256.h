/* sha256: FIPS 180-4 SHA-256, used for request-cache keys and download
 * verification. */
#ifndef ALOE_BASE_SHA256_H
#define ALOE_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct Sha256 {
    uint32_t h[8];
    uint64_t total;
    uint8_t buf[64];
    size_t buflen;
} Sha256;

void sha256_init(Sha256 *c);
void sha256_update(Sha256 *c, const void *data, size_t len);
void sha256_final(Sha256 *c, uint8_t out[32]);
/* Hex digest of data into hex[65]. */
void sha256_hex(const void *data, size_t len, char hex[65]);
void sha256_to_hex(const uint8_t digest[32], char hex[65]);

#endif
