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

#endif
