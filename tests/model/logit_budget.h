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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "kernels/matmul.h"
#include "model/decoder.h"
#include "model_logits.h"
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
 * 4 per layer, and the head's: 4L + 1). The same int8 blocks of 32 (step
 * max/127, gain 2 as for the weights' blocks) are what the integer
 * prefill GEMM multiplies (kernels/matmul.h), for every quantised type. */
static inline double act_q8_tol(const ModelConfig *c, double rho) {
    return budget(SIGMA_Q8, 4.0 * c->n_layers + 1, 2, rho);
}

/* The activation stage of a pass whose matmul inputs are rounded to `act`
 * (matmul_act_type: what the kernels multiply x as), on top of the
 * weights' and the float32 budgets: int8 blocks (any quantised act type):
 * act_q8_tol; bf16 (the BF16 prefill, round to nearest even: relative
 * error uniform in ±2^-8, rms 2^-8/√3 per value, gain 1 -- relative to
 * each value, as weight_tol counts bf16 weights), one stage per matmul
 * input as above (4L + 1: q/k/v and gate/up share the rounded x, each GEMM
 * of a group rounding the same x the same way); DT_F32: none. */
static inline double act_tol(int act, const ModelConfig *c, double rho) {
    if (act == DT_F32) return 0;
    if (act == DT_BF16) return budget(0x1p-8 / sqrt(3), 4.0 * c->n_layers + 1, 1, rho);
    return act_q8_tol(c, rho);
}

/* The coarser of two activation formats: int8 blocks over bf16 over f32. */
static inline int act_coarser(int a, int b) {
    int ra = a == DT_F32 ? 0 : a == DT_BF16 ? 1 : 2, rb = b == DT_F32 ? 0 : b == DT_BF16 ? 1 : 2;
    return ra >= rb ? a : b;
}

/* What a forward of n rows at once through m multiplies its matmul inputs
 * as (matmul_act_type for each matrix, at the running kernel level and
 * settings): the coarsest over its matrices, counted for every stage (a
 * file mixing types -- Q4_K_M, K-quants with Q8_0 fallbacks -- gets an
 * upper bound). n: the rows of the call (the head's too: the tests ask for
 * every position's logits). */
static inline int model_act_type(const Model *m, int n) {
    int a = matmul_act_type(m->w.lm_head.type, n);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const LayerWeights *w = &m->w.layers[l];
        const QMat *mats[] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++) a = act_coarser(a, matmul_act_type(mats[i]->type, n));
    }
    return a;
}

/* act_tol of a forward of n rows through m. */
static inline double model_act_tol(const Model *m, int n, double rho) {
    return act_tol(model_act_type(m, n), &m->cfg, rho);
}

/* model_act_tol of a batched pass of n rows through the model file at
 * path (loaded for its matrices' types). -1 (e set) if it does not load. */
static inline double file_act_tol(const char *path, int n, double rho, Err *e) {
    Model *m = model_load(path, 1, e);
    if (!m) return -1;
    double tol = model_act_tol(m, n, rho);
    model_free(m);
    return tol;
}

/* A quantised file's batched pass over ids (n tokens, one sequence)
 * against `own`, the logits of the same weights in f32 (its F32 copy), both
 * ways the prefill takes it (kernels/matmul.h):
 *  - by default (got, the caller's logits_of), the integer GEMM rounds x
 *    to int8 blocks where the kernel level has one for a matrix's type:
 *    within two float32 evaluations and that activation stage (gold_tol +
 *    model_act_tol);
 *  - with it off (matmul_prefill_int8(0): dequantise + sgemm), the
 *    products are the F32 copy's: its logits bit for bit. */
static inline void check_batched_own(const char *path, const int32_t *ids, int n, const float *got, const float *own,
                                     int V) {
    Err e = {0};
    Model *m = model_load(path, 1, &e);
    CHECK_MSG(m, "%s: %s", path, e.msg);
    long nv = (long)n * V;
    double rho = logit_rho(own, nv), tol = gold_tol(&m->cfg, n, rho) + model_act_tol(m, n, rho);
    int act = model_act_type(m, n);
    model_free(m);
    double rel = rel_err(got, own, (size_t)nv);
    int was = matmul_prefill_int8(0);
    float *exact = NULL;
    int rc = logits_of(path, ids, n, &exact, NULL, &e);
    matmul_prefill_int8(was);
    int same = !rc && !memcmp(exact, own, (size_t)nv * sizeof(float));
    free(exact);
    CHECK_OK(rc, &e);
    printf("  %-26s batched vs its own weights: %.2e (budget %.2e, activations %s); int8 prefill off: %s\n",
           strrchr(path, '/') ? strrchr(path, '/') + 1 : path, rel, tol, dtype_name(act), same ? "equal" : "DIFFERENT");
    CHECK_MSG(rel <= tol, "%s: batched %.3g of the range from its own weights in f32 (budget %.3g, activations %s)",
              path, rel, tol, dtype_name(act));
    CHECK_MSG(same, "%s: with the int8 prefill off, not the logits of its f32 copy bit for bit", path);
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
