/* backend_cpu_par: the pool-split backwards of the row ops (see the header). */
#include "kernels/backend_cpu_par.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/backend_cpu_backward.h"
#include "kernels/backend_cpu_backward_arch.h"

typedef struct RowJob {
    float *out, *dx, *dw, *part;
    const float *x, *w, *dy, *gate, *up;
    long n;
    int dim, kind;
    float eps;
} RowJob;

/* ---- RMSNorm ---- */

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

/* ---- the other norms (backend_cpu_backward_arch.h) ---- */

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

static void geglu_bwd_task(void *ctx, int ith, int nth) {
    const RowJob *j = ctx;
    long i0, i1;
    tp_split(j->n, ith, nth, &i0, &i1);
    if (i1 > i0) geglu_backward(j->dx + i0, j->out + i0, j->dy + i0, j->gate + i0, j->up + i0, i1 - i0);
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

/* ---- SwiGLU: elementwise ---- */

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
