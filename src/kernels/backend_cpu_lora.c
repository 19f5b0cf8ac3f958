/* backend_cpu_lora: the CPU backend's LoRA adapters (kernels/backend.h's
 * lora, lora_backward, lora_merge): the GEMMs of one adapted linear layer
 * through cblas, split over the pool, and the dropout masks they read.
 * Moved from train/ (lora.c, par.c): the trainer now asks the backend. */
#include "kernels/backend_cpu_lora.h"

#include <cblas.h>

#include "base/rng.h"
#include "kernels/gemm_bf16.h"

/* One GEMM of an adapter, cblas_sgemm's row-major form (ta, tb: 1 =
 * transposed): f32 products, or with bf16 products from operands rounded
 * to bf16 (training's bf16 matmul mode), on the calling thread either way
 * -- the callers below run inside pool tasks. */
static void gemm(int bf16, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc) {
    if (bf16) gemm_bf16_sgemm(NULL, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
                    lda, b, ldb, beta, c, ldc);
}

static void forward(int bf16, float *y, float *u, const float *x, const float *A, const float *B, int T, int in,
                    int out, int r, float scale) {
    gemm(bf16, 0, 1, T, r, in, 1.0f, x, in, A, in, 0.0f, u, r);
    gemm(bf16, 0, 1, T, out, r, scale, u, r, B, r, 1.0f, y, out);
}

void lora_forward(float *y, float *u, const float *x, const float *A, const float *B, int T, int in, int out, int r,
                  float scale) {
    forward(0, y, u, x, A, B, T, in, out, r, scale);
}

void lora_backward(float *dx, float *dA, float *dB, float *du, const float *dy, const float *x, const float *u,
                   const float *A, const float *B, int T, int in, int out, int r, float scale) {
    /* dB += scale·dyᵀ·u;  du = scale·dy·B;  dA += duᵀ·x;  dx += du·A */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, T, scale, dy, out, u, r, 1.0f, dB, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, out, scale, dy, out, B, r, 0.0f, du, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, T, 1.0f, du, r, x, in, 1.0f, dA, in);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, in, r, 1.0f, du, r, A, in, 1.0f, dx, in);
}

/* One 64-bit hash per two elements: element e uses the low (even e) or
 * high (odd e) half of rng_mix(key + LORA_DROPOUT_GOLDEN·(e/2 + 1)). With backward set,
 * out += in·inv_keep where kept; else out = in·inv_keep or 0. */
static void dropout_span(const LoraDropout *d, float *out, const float *in, uint64_t e0, uint64_t e1, int backward) {
    for (uint64_t e = e0; e < e1;) {
        uint64_t h = rng_mix(d->key + LORA_DROPOUT_GOLDEN * ((e >> 1) + 1));
        uint32_t bits[2] = {(uint32_t)h, (uint32_t)(h >> 32)};
        for (unsigned k = (unsigned)(e & 1); k < 2 && e < e1; k++, e++) {
            int kept = bits[k] >= d->threshold;
            if (backward) {
                if (kept) out[e - e0] += in[e - e0] * d->inv_keep;
            } else {
                out[e - e0] = kept ? in[e - e0] * d->inv_keep : 0.0f;
            }
        }
    }
}

void lora_dropout_rows(const LoraDropout *d, float *xd, const float *x, long t0, long t1, int in) {
    dropout_span(d, xd, x, (uint64_t)t0 * in, (uint64_t)t1 * in, 0);
}

void lora_dropout_backward_rows(const LoraDropout *d, float *dx, const float *g, long t0, long t1, int in) {
    dropout_span(d, dx, g, (uint64_t)t0 * in, (uint64_t)t1 * in, 1);
}

/* ---- LoRA ---- */

typedef struct LoraJob {
    float *y, *u, *dx, *dA, *dB, *du, *xd;
    const float *x, *dy, *A, *B, *u_saved;
    const LoraDropout *drop;
    int T, in, out, r, phase;
    int bf16; /* bf16 products (gemm) */
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
    forward(j->bf16, j->y + t0 * j->out, j->u + t0 * j->r, x, j->A, j->B, (int)(t1 - t0), j->in, j->out, j->r,
            j->scale);
}

static void fwd_run(int bf16, ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B,
                    int T, int in, int out, int r, float scale, const LoraDropout *drop, float *xd) {
    LoraJob j = {.y = y, .u = u, .xd = xd, .x = x, .A = A, .B = B, .drop = drop, .T = T, .in = in, .out = out,
                 .r = r, .bf16 = bf16, .scale = scale};
    tp_run(tp, lora_fwd_task, &j);
}

void par_lora_forward(ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B, int T,
                      int in, int out, int r, float scale, const LoraDropout *drop, float *xd) {
    fwd_run(0, tp, y, u, x, A, B, T, in, out, r, scale, drop, xd);
}

void par_lora_forward_bf16(ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B, int T,
                           int in, int out, int r, float scale, const LoraDropout *drop, float *xd) {
    fwd_run(1, tp, y, u, x, A, B, T, in, out, r, scale, drop, xd);
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
            gemm(j->bf16, 1, 0, (int)(a1 - a0), r, T, j->scale, j->dy + a0, out, j->u_saved, r, 1.0f, j->dB + a0 * r,
                 r);
        if (t1 > t0) {
            gemm(j->bf16, 0, 0, (int)(t1 - t0), r, out, j->scale, j->dy + t0 * out, out, j->B, r, 0.0f,
                 j->du + t0 * r, r);
            if (j->drop) lora_dropout_rows(j->drop, j->xd + t0 * in, j->x + t0 * in, t0, t1, in);
        }
        return;
    }
    if (j->phase == 1) {
        tp_split(in, ith, nth, &a0, &a1);
        if (a1 > a0) gemm(j->bf16, 1, 0, r, (int)(a1 - a0), T, 1.0f, j->du, r, x + a0, in, 1.0f, j->dA + a0, in);
        if (!j->drop && j->dx && t1 > t0)
            gemm(j->bf16, 0, 0, (int)(t1 - t0), in, r, 1.0f, j->du + t0 * r, r, j->A, in, 1.0f, j->dx + t0 * in, in);
        return;
    }
    if (t1 > t0) {
        gemm(j->bf16, 0, 0, (int)(t1 - t0), in, r, 1.0f, j->du + t0 * r, r, j->A, in, 0.0f, j->xd + t0 * in, in);
        lora_dropout_backward_rows(j->drop, j->dx + t0 * in, j->xd + t0 * in, t0, t1, in);
    }
}

static void bwd_run(int bf16, ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy,
                    const float *x, const float *u, const float *A, const float *B, int T, int in, int out, int r,
                    float scale, const LoraDropout *drop, float *xd) {
    LoraJob j = {.dx = dx, .dA = dA, .dB = dB, .du = du, .xd = xd, .dy = dy, .x = x, .A = A, .B = B, .u_saved = u,
                 .drop = drop, .T = T, .in = in, .out = out, .r = r, .bf16 = bf16, .scale = scale};
    tp_run(tp, lora_bwd_task, &j);
    j.phase = 1;
    tp_run(tp, lora_bwd_task, &j);
    if (drop && dx) {
        j.phase = 2;
        tp_run(tp, lora_bwd_task, &j);
    }
}

void par_lora_backward(ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy, const float *x,
                       const float *u, const float *A, const float *B, int T, int in, int out, int r, float scale,
                       const LoraDropout *drop, float *xd) {
    bwd_run(0, tp, dx, dA, dB, du, dy, x, u, A, B, T, in, out, r, scale, drop, xd);
}

void par_lora_backward_bf16(ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy,
                            const float *x, const float *u, const float *A, const float *B, int T, int in, int out,
                            int r, float scale, const LoraDropout *drop, float *xd) {
    bwd_run(1, tp, dx, dA, dB, du, dy, x, u, A, B, T, in, out, r, scale, drop, xd);
}

void lora_merge_f32(float *W, const float *A, const float *B, int in, int out, int r, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, scale, B, r, A, in, 1.0f, W, in);
}
