/* sampler: picks the next token from a row of logits.
 *
 * The steps and their order are transformers' (generate() with do_sample):
 * repetition penalty over the tokens seen so far (prompt and output; a
 * positive logit is divided by the penalty, a negative one multiplied),
 * then temperature, top-k, top-p (the smallest set of most likely tokens
 * whose probabilities sum to >= top_p), min-p (drop tokens less likely than
 * min_p times the most likely one), and a draw from what is left.
 * temperature 0 means greedy (argmax after the repetition penalty). Draws
 * come from the sampler's own seeded stream, so a seed repeats a run. */
#ifndef ALOE_INFER_SAMPLER_H
#define ALOE_INFER_SAMPLER_H

#include <stdint.h>

#include "base/err.h"
#include "base/rng.h"

typedef struct SamplerParams {
    float temperature;        /* 0 = greedy */
    int top_k;                /* 0 = off */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off */
    uint64_t seed;
} SamplerParams;

typedef struct Sampler {
    SamplerParams p;
    Rng rng;
    int vocab;
    void *cand;  /* vocab (logit, id) pairs: scratch */
    float *prob; /* vocab scratch */
} Sampler;

/* Greedy defaults: temperature 0, no top-k/p, min-p, penalty; seed 0. */
void sampler_params_default(SamplerParams *p);
/* Checks ranges (temperature >= 0, top_p in (0,1], min_p in [0,1),
 * penalty > 0, top_k >= 0); -1 with e naming the field. */
int sampler_params_check(const SamplerParams *p, Err *e);
void sampler_init(Sampler *s, const SamplerParams *p, int vocab);
void sampler_free(Sampler *s);
/* The next token. logits (vocab values) is modified. history: the ids seen
 * so far, for the repetition penalty (may be NULL when n_history is 0). */
int32_t sampler_sample(Sampler *s, float *logits, const int32_t *history, int n_history);

#endif
