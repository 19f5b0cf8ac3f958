/* rng: small, fast, reproducible random numbers (xoshiro256**, seeded by
 * splitmix64). Every random choice in a run is drawn from a stream derived
 * from (--seed, item, purpose), so results do not depend on thread timing. */
#ifndef ALOE_BASE_RNG_H
#define ALOE_BASE_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* A stream for one purpose of one item: rng_seed(mix(seed, a, b)). */
void rng_derive(Rng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, n) without modulo bias. n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/* Uniform in [0, 1). */
double rng_uniform(Rng *r);
float rng_normal(Rng *r);
/* Fisher-Yates shuffle of n ints. */
void rng_shuffle_int(Rng *r, int *a, int n);
/* Picks k distinct indices out of [0, n) into out (k <= n). */
void rng_sample(Rng *r, int n, int k, int *out);
uint64_t splitmix64(uint64_t *state);
/* splitmix64's finaliser: a bijection of 64 bits that mixes every input bit
 * into every output bit; rng_mix(x + 0x9e3779b97f4a7c15 * (i + 1)) is the
 * i-th output of splitmix64 started at x, computed directly (counter-based
 * random bits, e.g. one mask per element that the backward recomputes). */
static inline uint64_t rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
