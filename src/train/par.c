#include "train/par.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/ops.h"
#include "train/backward.h"
#include "train/backward_arch.h"
#include "train/lora.h"
#include "train/loss.h"

typedef struct RowJob {
    float *out, *dx, *dw, *part;
    const float *x, *y, *w, *dy, *gate, *up;
    const int32_t *labels;
    const int *pos;
    const float *inv_freq;
    long n;
    int dim, heads, flag, kind;
    float eps, scale;
    double *sums;
    int *counts;
} RowJob;

/* ---- RMSNorm ---- */

static void rmsnorm_fwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    if (t1 > t0) rmsnorm_forward(j->out + t0 * j->dim, j->x + t0 * j->dim, j->w, (int)(t1 - t0), j->dim, j->eps);
}

void par_rmsnorm_forward(ThreadPool *tp, float *out, const float *x, const float *w, int n, int dim, float eps) {
    RowJob j = {.out = out, .x = x, .w = w, .n = n, .dim = dim, .eps = eps};
    tp_run(tp, rmsnorm_fwd_task, &j);
}

/* Runs a norm backward task whose threads each write their rows' weight
 * gradient into their own part of j->part (given one per thread here), then
 * adds the parts into j->dw in thread order: the sum is the same for the
 * same thread count, whatever the scheduling. */
static void run_with_parts(ThreadPool *tp, ThreadTask task, RowJob *j) {
    const int nth = tp_size(tp);
    j->part = j->dw ? xmalloc((size_t)nth * j->dim * sizeof *j->part) : NULL;
    tp_run(tp, task, j);
    if (j->dw)
        for (int p = 0; p < nth; p++)
            for (int i = 0; i < j->dim; i++) j->dw[i] += j->part[(long)p * j->dim + i];
    free(j->part);
    j->part = NULL;
}

/* Each thread adds its rows' weight gradient into its own zeroed part. */
static void rmsnorm_bwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    float *dw = j->dw ? j->part + (long)ith * j->dim : NULL;
    if (dw) memset(dw, 0, (size_t)j->dim * sizeof *dw);
    if (t1 > t0)
        rmsnorm_backward(j->dx + t0 * j->dim, dw, j->dy + t0 * j->dim, j->x + t0 * j->dim, j->w, (int)(t1 - t0),
                         j->dim, j->eps);
}

void par_rmsnorm_backward(ThreadPool *tp, float *dx, float *dw, const float *dy, const float *x, const float *w,
                          int n, int dim, float eps) {
    RowJob j = {.dx = dx, .dw = dw, .dy = dy, .x = x, .w = w, .n = n, .dim = dim, .eps = eps};
    run_with_parts(tp, rmsnorm_bwd_task, &j);
}

/* ---- the other norms (train/backward_arch.h) ---- */

static void norm_fwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    if (t1 > t0)
        norm_forward((TrainNorm)j->kind, j->out + t0 * j->dim, j->x + t0 * j->dim, j->w, (int)(t1 - t0), j->dim,
                     j->eps);
}

void par_norm_forward(ThreadPool *tp, int kind, float *out, const float *x, const float *w, int n, int dim,
                      float eps) {
    if (kind == TNORM_RMS) {
        par_rmsnorm_forward(tp, out, x, w, n, dim, eps);
        return;
    }
    RowJob j = {.out = out, .x = x, .w = w, .n = n, .dim = dim, .eps = eps, .kind = kind};
    tp_run(tp, norm_fwd_task, &j);
}

static void norm_bwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    float *dw = j->dw ? j->part + (long)ith * j->dim : NULL;
    if (dw) memset(dw, 0, (size_t)j->dim * sizeof *dw);
    if (t1 > t0)
        norm_backward((TrainNorm)j->kind, j->dx + t0 * j->dim, dw, j->dy + t0 * j->dim, j->x + t0 * j->dim, j->w,
                      (int)(t1 - t0), j->dim, j->eps);
}

void par_norm_backward(ThreadPool *tp, int kind, float *dx, float *dw, const float *dy, const float *x,
                       const float *w, int n, int dim, float eps) {
    if (kind == TNORM_RMS) {
        par_rmsnorm_backward(tp, dx, dw, dy, x, w, n, dim, eps);
        return;
    }
    if (kind == TNORM_LAYER) dw = NULL; /* no weight */
    RowJob j = {.dx = dx, .dw = dw, .dy = dy, .x = x, .w = w, .n = n, .dim = dim, .eps = eps, .kind = kind};
    run_with_parts(tp, norm_bwd_task, &j);
}

/* ---- GeGLU ---- */

static void geglu_fwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long i0, i1;
    tp_split(j->n, ith, nth, &i0, &i1);
    if (i1 > i0) geglu_tanh_forward(j->out + i0, j->gate + i0, j->up + i0, i1 - i0);
}

static void geglu_bwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long i0, i1;
    tp_split(j->n, ith, nth, &i0, &i1);
    if (i1 > i0) geglu_backward(j->dx + i0, j->out + i0, j->dy + i0, j->gate + i0, j->up + i0, i1 - i0);
}

void par_act_forward(ThreadPool *tp, int gelu, float *out, const float *gate, const float *up, long n) {
    if (!gelu) {
        par_swiglu_forward(tp, out, gate, up, n);
        return;
    }
    RowJob j = {.out = out, .gate = gate, .up = up, .n = n};
    tp_run(tp, geglu_fwd_task, &j);
}

void par_act_backward(ThreadPool *tp, int gelu, float *dgate, float *dup, const float *dout, const float *gate,
                      const float *up, long n) {
    if (!gelu) {
        par_swiglu_backward(tp, dgate, dup, dout, gate, up, n);
        return;
    }
    RowJob j = {.dx = dgate, .out = dup, .dy = dout, .gate = gate, .up = up, .n = n};
    tp_run(tp, geglu_bwd_task, &j);
}

/* ---- SwiGLU and adds: elementwise ---- */

static void swiglu_fwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long i0, i1;
    tp_split(j->n, ith, nth, &i0, &i1);
    if (i1 > i0) swiglu_forward(j->out + i0, j->gate + i0, j->up + i0, i1 - i0);
}

void par_swiglu_forward(ThreadPool *tp, float *out, const float *gate, const float *up, long n) {
    RowJob j = {.out = out, .gate = gate, .up = up, .n = n};
    tp_run(tp, swiglu_fwd_task, &j);
}

static void swiglu_bwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long i0, i1;
    tp_split(j->n, ith, nth, &i0, &i1);
    if (i1 > i0) swiglu_backward(j->dx + i0, j->out + i0, j->dy + i0, j->gate + i0, j->up + i0, i1 - i0);
}

void par_swiglu_backward(ThreadPool *tp, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, long n) {
    RowJob j = {.dx = dgate, .out = dup, .dy = dout, .gate = gate, .up = up, .n = n};
    tp_run(tp, swiglu_bwd_task, &j);
}

static void add_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long i0, i1;
    tp_split(j->n, ith, nth, &i0, &i1);
    if (i1 > i0) add_forward(j->out + i0, j->y + i0, i1 - i0);
}

void par_add(ThreadPool *tp, float *x, const float *y, long n) {
    RowJob j = {.out = x, .y = y, .n = n};
    tp_run(tp, add_task, &j);
}

/* ---- RoPE ---- */

static void rope_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    const long stride = (long)j->heads * j->dim;
    for (long t = t0; t < t1; t++) {
        if (j->flag) rope_backward(j->out + t * stride, j->heads, j->dim, j->pos[t], j->inv_freq, 0);
        else rope_forward(j->out + t * stride, j->heads, j->dim, j->pos[t], j->inv_freq, 0);
    }
}

void par_rope_rows(ThreadPool *tp, float *x, int T, int heads, int head_dim, const int *pos, const float *inv_freq,
                   int backward) {
    RowJob j = {.out = x, .n = T, .heads = heads, .dim = head_dim, .pos = pos, .inv_freq = inv_freq, .flag = backward};
    tp_run(tp, rope_task, &j);
}

static void rope_scaled_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    const long stride = (long)j->heads * j->dim;
    for (long t = t0; t < t1; t++) {
        if (j->flag) rope_scaled_backward(j->out + t * stride, j->heads, j->dim, j->pos[t], j->inv_freq, 0, j->scale);
        else rope_forward_scaled(j->out + t * stride, j->heads, j->dim, j->pos[t], j->inv_freq, 0, j->scale);
    }
}

void par_rope_rows_scaled(ThreadPool *tp, float *x, int T, int heads, int head_dim, const int *pos,
                          const float *inv_freq, int backward, float mscale) {
    if (mscale == 1.0f) { /* the engine's own rope_forward */
        par_rope_rows(tp, x, T, heads, head_dim, pos, inv_freq, backward);
        return;
    }
    RowJob j = {.out = x, .n = T, .heads = heads, .dim = head_dim, .pos = pos, .inv_freq = inv_freq,
                .flag = backward, .scale = mscale};
    tp_run(tp, rope_scaled_task, &j);
}

/* ---- token cross-entropy ---- */

static void nll_fwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    j->sums[ith] = 0, j->counts[ith] = 0;
    if (t1 > t0)
        j->sums[ith] = token_nll_sum_forward(j->x + t0 * j->dim, j->labels + t0, (int)(t1 - t0), j->dim,
                                             &j->counts[ith]);
}

double par_token_nll_sum_forward(ThreadPool *tp, const float *logits, const int32_t *labels, int T, int V,
                                 int *n_valid) {
    const int nth = tp_size(tp);
    double *sums = xmalloc((size_t)nth * sizeof *sums);
    int *counts = xmalloc((size_t)nth * sizeof *counts);
    RowJob j = {.x = logits, .labels = labels, .n = T, .dim = V, .sums = sums, .counts = counts};
    tp_run(tp, nll_fwd_task, &j);
    double total = 0;
    int n = 0;
    for (int p = 0; p < nth; p++) total += sums[p], n += counts[p];
    free(sums), free(counts);
    if (n_valid) *n_valid = n;
    return total;
}

static void nll_bwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long t0, t1;
    tp_split(j->n, ith, nth, &t0, &t1);
    if (t1 > t0)
        token_nll_sum_backward(j->dx + t0 * j->dim, j->x + t0 * j->dim, j->labels + t0, (int)(t1 - t0), j->dim,
                               j->scale);
}

void par_token_nll_sum_backward(ThreadPool *tp, float *dlogits, const float *logits, const int32_t *labels, int T,
                                int V, float scale) {
    RowJob j = {.dx = dlogits, .x = logits, .labels = labels, .n = T, .dim = V, .scale = scale};
    tp_run(tp, nll_bwd_task, &j);
}

/* ---- LoRA ---- */

typedef struct LoraJob {
    float *y, *u, *dx, *dA, *dB, *du, *xd;
    const float *x, *dy, *A, *B, *u_saved;
    const LoraDropout *drop;
    int T, in, out, r, phase;
    float scale;
} LoraJob;

/* With dropout the adapter reads xd = dropout(x), made by the same thread
 * from the same rows just before. */
static void lora_fwd_task(void *ctx, int ith, int nth) {
    const LoraJob *j = ctx;
    long t0, t1;
    tp_split(j->T, ith, nth, &t0, &t1);
    if (t1 <= t0) return;
    const float *x = j->x + t0 * j->in;
    if (j->drop) {
        lora_dropout_rows(j->drop, j->xd + t0 * j->in, x, t0, t1, j->in);
        x = j->xd + t0 * j->in;
    }
    lora_forward(j->y + t0 * j->out, j->u + t0 * j->r, x, j->A, j->B, (int)(t1 - t0), j->in, j->out, j->r, j->scale);
}

void par_lora_forward(ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B, int T,
                      int in, int out, int r, float scale, const LoraDropout *drop, float *xd) {
    LoraJob j = {.y = y, .u = u, .xd = xd, .x = x, .A = A, .B = B, .drop = drop, .T = T, .in = in, .out = out,
                 .r = r, .scale = scale};
    tp_run(tp, lora_fwd_task, &j);
}

/* Phase 0: dB += scale·dyᵀ·u (rows of B) and du = scale·dy·B (rows of x),
 * and with dropout xd = dropout(x) (rows); phase 1, once du and xd are
 * whole: dA += duᵀ·xd (columns of A), and without dropout dx += du·A
 * (rows). With dropout, phase 2 (xd is free again): xd = du·A, then
 * dx += dropout'(xd) (rows). */
static void lora_bwd_task(void *ctx, int ith, int nth) {
    const LoraJob *j = ctx;
    const int T = j->T, in = j->in, out = j->out, r = j->r;
    long t0, t1, a0, a1;
    tp_split(T, ith, nth, &t0, &t1);
    const float *x = j->drop ? j->xd : j->x;
    if (j->phase == 0) {
        tp_split(out, ith, nth, &a0, &a1);
        if (a1 > a0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(a1 - a0), r, T, j->scale, j->dy + a0, out,
                        j->u_saved, r, 1.0f, j->dB + a0 * r, r);
        if (t1 > t0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(t1 - t0), r, out, j->scale,
                        j->dy + t0 * out, out, j->B, r, 0.0f, j->du + t0 * r, r);
            if (j->drop) lora_dropout_rows(j->drop, j->xd + t0 * in, j->x + t0 * in, t0, t1, in);
        }
        return;
    }
    if (j->phase == 1) {
        tp_split(in, ith, nth, &a0, &a1);
        if (a1 > a0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, (int)(a1 - a0), T, 1.0f, j->du, r, x + a0, in,
                        1.0f, j->dA + a0, in);
        if (!j->drop && j->dx && t1 > t0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(t1 - t0), in, r, 1.0f, j->du + t0 * r, r,
                        j->A, in, 1.0f, j->dx + t0 * in, in);
        return;
    }
    if (t1 > t0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(t1 - t0), in, r, 1.0f, j->du + t0 * r, r, j->A,
                    in, 0.0f, j->xd + t0 * in, in);
        lora_dropout_backward_rows(j->drop, j->dx + t0 * in, j->xd + t0 * in, t0, t1, in);
    }
}

void par_lora_backward(ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy, const float *x,
                       const float *u, const float *A, const float *B, int T, int in, int out, int r, float scale,
                       const LoraDropout *drop, float *xd) {
    LoraJob j = {.dx = dx, .dA = dA, .dB = dB, .du = du, .xd = xd, .dy = dy, .x = x, .A = A, .B = B, .u_saved = u,
                 .drop = drop, .T = T, .in = in, .out = out, .r = r, .scale = scale};
    tp_run(tp, lora_bwd_task, &j);
    j.phase = 1;
    tp_run(tp, lora_bwd_task, &j);
    if (drop && dx) {
        j.phase = 2;
        tp_run(tp, lora_bwd_task, &j);
    }
}
