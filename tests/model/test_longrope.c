/* test_longrope: Phi-3's LongRoPE across original_max_position_embeddings
 * while decoding, on tests/data/arch/models/tiny-phi3 (original 64,
 * max 256; short factors [1, 1.25, 2.5, 4], long [1.5, 4, 12, 40]).
 *
 * The rule (README, Supported architectures; tests/data/arch/README.md):
 * a sequence's factors are fixed by its KV cache's context, as llama.cpp
 * fixes them by n_ctx: long when the cache holds more than
 * original_max_position_embeddings positions, short otherwise. A
 * sequence therefore never switches mid-way, and every decode step equals
 * a fresh forward of the whole sequence in a cache of the same size.
 * (transformers instead recomputes the whole cache with the long factors
 * at the step that crosses; an engine that keeps its cache cannot, since
 * every later layer's keys depend on the earlier layers' RoPE.)
 *
 * Tolerance: the decode and the fresh forward evaluate the same equations
 * on the same floats; they differ only where the batched matmul groups the
 * rows of a long prefill differently from one-row decode steps, a float32
 * rounding of the dot products (hidden 32, intermediate 64): 1e-4 of the
 * logits' range is far below that (~u·sqrt(K)·|logit| ~ 1e-6) times the
 * ~10 stages and far above nothing. The factors it guards move logits by
 * >= 1 (tests/data/arch/quirks.json: long_short_swap 10.6). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "model/decoder.h"
#include "test.h"

#define PHI3 "tests/data/arch/models/tiny-phi3"

/* Max |a - b| over the range of b. */
static double rel(const float *a, const float *b, int n) {
    double lo = b[0], hi = b[0], w = 0;
    for (int i = 0; i < n; i++) lo = fmin(lo, b[i]), hi = fmax(hi, b[i]), w = fmax(w, fabs((double)a[i] - b[i]));
    return w / (hi - lo);
}

static void test_decode_across_the_switch(void) {
    Err e = {0};
    Model *m = model_load(PHI3, 2, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    if (!m) return;
    int orig = m->cfg.rope.original_max_pos, V = m->cfg.vocab_size;
    CHECK_EQ_INT(orig, 64);
    /* a prompt of 40 (< 64) then decoding one token at a time to 80 (> 64) */
    enum { P = 40, N = 80, CTX = 96 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 37 + 11) % 1000);
    float *step = xmalloc((size_t)N * V * sizeof(float)), *fresh = xmalloc((size_t)N * V * sizeof(float));
    KvCache kv, kf;
    CHECK_OK(kv_cache_init(&kv, m, CTX, &e), &e);
    CHECK_OK(model_forward(m, &kv, ids, P, 0, step, 1, &e), &e);
    for (int t = P; t < N; t++) CHECK_OK(model_forward(m, &kv, ids + t, 1, t, step + (size_t)t * V, 0, &e), &e);
    CHECK_OK(kv_cache_init(&kf, m, CTX, &e) || model_forward(m, &kf, ids, N, 0, fresh, 1, &e), &e);
    double worst = 0, before = 0;
    for (int t = 0; t < N; t++) {
        double d = rel(step + (size_t)t * V, fresh + (size_t)t * V, V);
        if (t >= orig) worst = fmax(worst, d);
        else before = fmax(before, d);
    }
    CHECK_MSG(worst <= 1e-4, "after the crossing: decode vs a fresh forward %.3g of the range", worst);
    CHECK_MSG(before <= 1e-4, "before the crossing: decode vs a fresh forward %.3g of the range", before);
    /* the same ids in a cache of at most 64 positions take the short
     * factors: different logits (the rule is the cache's size) */
    KvCache ks;
    float *shrt = xmalloc((size_t)P * V * sizeof(float));
    CHECK_OK(kv_cache_init(&ks, m, orig, &e) || model_forward(m, &ks, ids, P, 0, shrt, 1, &e), &e);
    CHECK_MSG(rel(shrt, fresh, P * V) > 0.01, "short and long factors gave the same logits");
    /* caches of the two regimes do not share prefixes (infer's prefix cache) */
    CHECK(!kv_cache_compatible(&ks, &kf));
    KvCache k2;
    CHECK_OK(kv_cache_init(&k2, m, CTX + 8, &e), &e);
    CHECK(kv_cache_compatible(&k2, &kf));
    kv_cache_free(&kv), kv_cache_free(&kf), kv_cache_free(&ks), kv_cache_free(&k2);
    free(step), free(fresh), free(shrt);
    model_free(m);
}

int main(void) {
    RUN(test_decode_across_the_switch);
    return test_summary();
}
