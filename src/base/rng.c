#include "base/rng.h"

#include <math.h>
#include <stdlib.h>

#include "base/mem.h"

uint64_t splitmix64(uint64_t *state) { return rng_mix(*state += 0x9e3779b97f4a7c15ULL); }

void rng_seed(Rng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&st);
}

void rng_derive(Rng *r, uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t st = seed;
    uint64_t x = splitmix64(&st);
    st = x ^ (a * 0xd1342543de82ef95ULL);
    x = splitmix64(&st);
    st = x ^ (b * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL);
    rng_seed(r, splitmix64(&st));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(Rng *r, uint64_t n) {
    /* Rejection sampling: drop the top partial block to avoid bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

float rng_normal(Rng *r) {
    /* Box-Muller; u1 kept away from 0 so log() is finite. */
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void rng_shuffle_int(Rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void rng_sample(Rng *r, int n, int k, int *out) {
    int *idx = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) idx[i] = i;
    /* Partial Fisher-Yates: the first k slots become the sample. */
    for (int i = 0; i < k && i < n; i++) {
        int j = i + (int)rng_below(r, (uint64_t)(n - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        out[i] = idx[i];
    }
    free(idx);
}
