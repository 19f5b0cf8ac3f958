#include "train/par.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/ops.h"
#include "train/backward.h"
#include "train/loss.h"

typedef struct RowJob {
    float *out, *dx, *dw, *part;
    const float *x, *y, *w, *dy, *gate, *up;
    const int32_t *labels;
    const int *pos;
    const float *inv_freq;
    long n;
    int dim, heads, flag;
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
    const int nth = tp_size(tp);
    float *part = dw ? xmalloc((size_t)nth * dim * sizeof *part) : NULL;
    RowJob j = {.dx = dx, .dw = dw, .part = part, .dy = dy, .x = x, .w = w, .n = n, .dim = dim, .eps = eps};
    tp_run(tp, rmsnorm_bwd_task, &j);
    if (dw)
        for (int p = 0; p < nth; p++)
            for (int i = 0; i < dim; i++) dw[i] += part[(long)p * dim + i];
    free(part);
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
