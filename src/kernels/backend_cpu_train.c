/* backend_cpu_train: the CPU backend's training entries (kernels/backend.h):
 * each calls the pool-split CPU code of backend_cpu_par.c (row ops),
 * backend_cpu_backward*.c (single-op backwards, the training attention,
 * linear backward through cblas) and backend_cpu_lora.c (adapters). The
 * forwards training shares with inference (linear, norm, rope, act, add,
 * map, embed) are backend_cpu.c's -- linear replaced by linear_bf16 while
 * the bf16 matmul mode is on. */
#include <stdlib.h>

#include "base/mem.h"
#include "kernels/backend_cpu.h"
#include "kernels/backend_cpu_backward.h"
#include "kernels/backend_cpu_backward_arch.h"
#include "kernels/backend_cpu_lora.h"
#include "kernels/backend_cpu_par.h"
#include "kernels/gemm_bf16.h"
#include "kernels/ops.h"

/* Floats of each thread's tile for linear_backward_frozen: 4 MB, a block
 * of rows of a column slab that stays in cache while its product runs. */
#define WTILE_FLOATS (1L << 20)

/* ---- bf16 products (kernels/backend.h's set_matmul_bf16) ----
 *
 * The GEMMs of training's linears and adapters on F32 weights (trained,
 * or a frozen float32 base) and BF16 ones (a frozen bf16 base, read as
 * stored) take bf16 operands and f32 sums through kernels/gemm_bf16.h;
 * other weight types (F16, quantised frozen bases) keep their f32 path.
 * The forward's linear is backend_cpu.c's, shared with inference: while
 * the mode is on it is replaced by linear_bf16 (which hands the other
 * types back to it), so inference, and training in f32, run exactly the
 * code they ran before. */

static int bf16_on(Backend *be) { return ((BackendCpu *)be->impl)->bf16; }
static int bf16_type(int type) { return type == DT_F32 || type == DT_BF16; }

/* prec: training asks BPREC_EXACT; the bf16 mode, which the user chose
 * for training, rounds both operands whatever the call asks (the mode is
 * off for inference); other types go back with prec unchanged. */
static void linear_bf16(Backend *be, float *y, const float *x, int n, const QMat *w, const float *b,
                        BackendPrec prec) {
    ThreadPool *tp = cpu_pool(be);
    if (w->type == DT_F32)
        gemm_bf16_sgemm(tp, 0, 1, n, w->rows, w->cols, 1.0f, x, w->cols, w->data, w->cols, 0.0f, y, w->rows);
    else if (w->type == DT_BF16) gemm_bf16_xwt(tp, y, x, n, w->data, w->rows, w->cols);
    else {
        ((BackendCpu *)be->impl)->linear_f32(be, y, x, n, w, b, prec);
        return;
    }
    if (b) add_bias_forward(y, b, n, w->rows);
}

/* Where the CPU multiplies bf16 pairs natively: AVX512-BF16's vdpbf16ps
 * at the avx512 kernel levels (gemm_bf16_dot). AMX-BF16 (Sapphire Rapids
 * on: TDPBF16PS on 16×32 bf16 tiles) would be one more path inside
 * gemm_bf16_level.c chosen per call the same way, after
 * arch_prctl(ARCH_REQ_XCOMP_PERM) -- nothing here would change. Mode 2
 * forces the portable path where neither exists (the same values). */
static int cpu_set_matmul_bf16(Backend *be, int mode) {
    BackendCpu *c = be->impl;
    int on = mode == 2 || (mode == 1 && gemm_bf16_dot());
    if (on && !c->bf16) {
        c->linear_f32 = be->linear;
        be->linear = linear_bf16;
    } else if (!on && c->bf16) be->linear = c->linear_f32;
    c->bf16 = on;
    return on;
}

/* The GEMMs of a linear's backward: bf16 products in the bf16 mode on F32
 * and BF16 weights, else f32. */
static void cpu_linear_backward(Backend *be, float *dx, float *dW, float *db, const float *dy, const float *x,
                                const QMat *W, int T) {
    ThreadPool *tp = cpu_pool(be);
    if (bf16_on(be) && bf16_type(W->type)) {
        linear_backward_bf16(tp, dx, dW, db, dy, x, W, T);
        return;
    }
    if (W->type == DT_F32) {
        linear_backward(tp, dx, dW, db, dy, x, W->data, T, W->cols, W->rows);
        return;
    }
    /* a frozen base in its stored type: dx only, W converted tile by tile */
    BackendCpu *c = be->impl;
    size_t need = (size_t)tp_size(tp) * WTILE_FLOATS;
    if (c->wtile_floats < need) {
        free(c->wtile);
        c->wtile = xaligned_alloc(need * sizeof(float));
        c->wtile_floats = need;
    }
    linear_backward_frozen(tp, dx, dy, W, T, c->wtile, WTILE_FLOATS);
}

/* The training norms by kind (backend_cpu_backward_arch.h's TrainNorm):
 * RMSNorm's offset is 0 or Gemma's 1. */
static TrainNorm train_norm(BackendNorm kind, float offset) {
    return kind == BNORM_LAYER_NOPARAM ? TNORM_LAYER : offset == 1.0f ? TNORM_RMS_1P : TNORM_RMS;
}

static void cpu_norm_backward(Backend *be, BackendNorm kind, float *dx, float *dw, const float *dy, const float *x,
                              const float *w, float offset, int n, int dim, float eps) {
    par_norm_backward(cpu_pool(be), train_norm(kind, offset), dx, dw, dy, x, w, n, dim, eps);
}

static void cpu_act_backward(Backend *be, BackendAct kind, float *dgate, float *dup, const float *dout,
                             const float *gate, const float *up, long n) {
    par_act_backward(cpu_pool(be), kind == BACT_GEGLU_TANH, dgate, dup, dout, gate, up, n);
}

static void cpu_map_backward(Backend *be, BackendMap kind, float *dx, const float *dy, const float *y, long n,
                             float c) {
    (void)be;
    if (kind == BMAP_CLAMP) clamp_backward(dx, dy, y, n, c);
    else if (kind == BMAP_SOFTCAP) softcap_backward(dx, dy, y, n, c);
    else /* scale: dx += c·dy (dx == dy or y: replaced) */
        for (long i = 0; i < n; i++) dx[i] = dx == dy || dx == y ? c * dy[i] : dx[i] + c * dy[i];
}

static void cpu_embed_backward(Backend *be, float *dE, const float *dx, const int32_t *ids, int T, int dim,
                               float scale) {
    (void)be;
    if (scale != 0 && scale != 1.0f) embedding_scaled_backward(dE, dx, ids, T, dim, scale);
    else embedding_backward(dE, dx, ids, T, dim);
}

static void cpu_attn_train(Backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                           const AttnDims *d, const AttnOpts *o) {
    attn_train_forward_opts(cpu_pool(be), out, att, q, k, v, d, o);
}

static void cpu_attn_train_backward(Backend *be, float *dq, float *dk, float *dv, const float *dout,
                                    const float *att, const float *q, const float *k, const float *v,
                                    const AttnDims *d, const AttnOpts *o) {
    attn_train_backward_opts(cpu_pool(be), dq, dk, dv, dout, att, q, k, v, d, o);
}

static void cpu_lora(Backend *be, float *y, const float *x, int T, const BackendLora *a) {
    if (bf16_on(be))
        par_lora_forward_bf16(cpu_pool(be), y, a->u, x, a->A, a->B, T, a->in, a->out, a->r, a->scale, a->drop, a->xd);
    else par_lora_forward(cpu_pool(be), y, a->u, x, a->A, a->B, T, a->in, a->out, a->r, a->scale, a->drop, a->xd);
}

static void cpu_lora_backward(Backend *be, float *dx, float *dA, float *dB, const float *dy, const float *x, int T,
                              const BackendLora *a) {
    if (bf16_on(be))
        par_lora_backward_bf16(cpu_pool(be), dx, dA, dB, a->du, dy, x, a->u, a->A, a->B, T, a->in, a->out, a->r,
                               a->scale, a->drop, a->xd);
    else
        par_lora_backward(cpu_pool(be), dx, dA, dB, a->du, dy, x, a->u, a->A, a->B, T, a->in, a->out, a->r, a->scale,
                          a->drop, a->xd);
}

static void cpu_lora_merge(Backend *be, float *W, const float *A, const float *B, int in, int out, int r,
                           float scale) {
    (void)be;
    lora_merge_f32(W, A, B, in, out, r, scale);
}

void backend_cpu_train_ops(Backend *be) {
    be->linear_backward = cpu_linear_backward;
    be->norm_backward = cpu_norm_backward;
    be->act_backward = cpu_act_backward;
    be->map_backward = cpu_map_backward;
    be->embed_backward = cpu_embed_backward;
    be->attn_train = cpu_attn_train;
    be->attn_train_backward = cpu_attn_train_backward;
    be->lora = cpu_lora;
    be->lora_backward = cpu_lora_backward;
    be->lora_merge = cpu_lora_merge;
    be->nll_sum = cpu_nll_sum;
    be->nll_sum_backward = cpu_nll_sum_backward;
    be->set_matmul_bf16 = cpu_set_matmul_bf16;
}
