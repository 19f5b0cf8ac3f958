/* Error budgets for logits (tests/model): each tolerance computed from
 * the model's shape and the reference logits by a stated rounding model,
 * not from measured errors. The model, as in docs/TESTING.md:
 *   tol = LAMBDA · gain · sigma · sqrt(stages) · rho
 *  - sigma: the relative error one rounding stage adds to its result
 *    (float32 reduction of length K: u·sqrt(K/6), the recursive sum's
 *    rounding errors as independent uniform ones; a value stored in
 *    f16/bf16: 2^-11/√3, 2^-8/√3; a quantised block: its step over
 *    sqrt(12), the step from the block's max, which for normal values is
 *    ~2.1 rms over 32 and ~1.77 rms over 16);
 *  - stages: how many such stages a logit passes through, errors summed
 *    in quadrature (a relative error carries through a matmul unchanged);
 *  - rho: the reference logits' rms over their range (the errors scale
 *    with the logits' rms, the tolerance is relative to the range);
 *  - LAMBDA = 6: the largest of <= 1e5 independent normal errors stays
 *    below 6 standard deviations (probability of exceeding ~2e-4);
 *  - gain 1 for round-to-nearest formats (errors relative to each value);
 *    2 for block quantisation (the error is absolute within a block, so
 *    values far below their block's max, frequent in heavy-tailed
 *    activations, carry relative errors above the block average).
 * Also gguf_f32_copy: a quantised file's exact weights as an F32 file. */
#ifndef TESTS_MODEL_LOGIT_BUDGET_H
#define TESTS_MODEL_LOGIT_BUDGET_H

#include <math.h>
#include <stdlib.h>

#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "model/decoder.h"
#include "test.h"


#define LAMBDA 6.0
#define U32 0x1p-24
#define SIGMA_Q8 (2.1 / (127 * 3.4641)) /* max/127 step, /sqrt(12), max ~2.1 rms */
#define SIGMA_Q4_0 (2.1 / (8 * 3.4641))  /* max/8 step, /sqrt(12) */
#define SIGMA_Q6_K (1.77 / (32 * 3.4641)) /* 16-value sub-blocks: max ~1.77 rms, step max/32 */

static inline double budget(double sigma, double stages, double gain, double rho) {
    return LAMBDA * gain * sigma * sqrt(stages) * rho;
}

/* rms / range of the reference logits */
static inline double logit_rho(const float *ref, long n) {
    double s = 0, lo = ref[0], hi = ref[0];
    for (long i = 0; i < n; i++) s += (double)ref[i] * ref[i], lo = fmin(lo, ref[i]), hi = fmax(hi, ref[i]);
    return sqrt(s / n) / (hi - lo);
}

/* Two float32 evaluations of the forward (aloe's and PyTorch's, or two
 * of aloe's paths): the reductions a logit passes through per layer are
 * RMSNorm (D), q/k/v (D), scores (head_dim), the weighted sum of values
 * (T positions), o (heads·head_dim), RMSNorm (D), gate/up (D), down (F);
 * then the final norm and the head (D each). Each contributes u·sqrt(K/6)
 * in quadrature: sigma u, stages ΣK/6; two evaluations: √2. */
static inline double gold_tol(const ModelConfig *c, int T, double rho) {
    double K = c->n_layers * (4.0 * c->hidden_size + c->head_dim + T + (double)c->n_heads * c->head_dim +
                              c->intermediate_size) + 2.0 * c->hidden_size;
    return budget(U32 * sqrt(2), K / 6, 1, rho);
}

/* Matrices stored in `type`, against the f32 model: one rounding stage per
 * matrix a logit passes through (embedding; q/k/v, o, gate, up, down per
 * layer; head: 7L + 2), on top of the float32 arithmetic. */
static inline double weight_tol(int type, const ModelConfig *c, int T, double rho) {
    double g = gold_tol(c, T, rho), stages = 7.0 * c->n_layers + 2;
    switch (type) {
    case DT_F16: return g + budget(0x1p-11 / sqrt(3), stages, 1, rho);
    case DT_BF16: return g + budget(0x1p-8 / sqrt(3), stages, 1, rho);
    case DT_Q8_0: return g + budget(SIGMA_Q8, stages, 2, rho);
    case DT_Q4_0: return g + budget(SIGMA_Q4_0, stages, 2, rho);
    case DT_Q6_K: return g + budget(SIGMA_Q6_K, stages, 2, rho);
    default: return g;
    }
}

/* Decoding with Q8_0 activations against the same weights in f32: each
 * matmul input is quantised once (q/k/v share one, gate/up share one:
 * 4 per layer, and the head's: 4L + 1). */
static inline double act_q8_tol(const ModelConfig *c, double rho) {
    return budget(SIGMA_Q8, 4.0 * c->n_layers + 1, 2, rho);
}

/* An f16 KV cache: every key and value rounded once to f16 (2L stages),
 * round-to-nearest, on top of the float32 arithmetic. */
static inline double kv_f16_tol(const ModelConfig *c, int T, double rho) {
    return gold_tol(c, T, rho) + budget(0x1p-11 / sqrt(3), 2.0 * c->n_layers, 1, rho);
}

/* A copy of a GGUF file in tmpdir with every tensor converted to F32: the
 * exact values the file's quantised weights stand for. */
static inline char *gguf_f32_copy(const char *path, Err *e) {
    Gguf *g = gguf_open(path, e);
    if (!g) return NULL;
    GgufWriter *w = gguf_writer_new();
    for (int i = 0; i < gguf_n_kv(g); i++) gguf_set_kv(w, gguf_kv(g, i));
    int n = gguf_n_tensors(g), rc = 0;
    float **bufs = xcalloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n && !rc; i++) {
        TensorView t = *gguf_tensor(g, i);
        if (t.dtype != DT_F32) {
            rc = !(bufs[i] = tensor_to_f32_alloc(&t, e));
            t.dtype = DT_F32, t.data = bufs[i], t.nbytes = (size_t)tensor_numel(&t) * sizeof(float);
        }
        rc = rc || gguf_writer_add_tensor(w, &t, e);
    }
    char *dir = test_tmpdir(), *out = xasprintf("%s/f32-copy.gguf", dir);
    rc = rc || gguf_writer_write(w, out, e);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs), free(dir);
    gguf_close(g);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

#endif
