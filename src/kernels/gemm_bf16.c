/* gemm_bf16: the entry points of gemm_bf16.h and the choice of path; the
 * GEMM itself is gemm_bf16_level.c, built per kernel level. */
#include "kernels/gemm_bf16.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu_features.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/threads.h"
#include "base/mem.h"

/* AVX512-BF16 is checked here, at run time, rather than made a kernel
 * level (docs/DESIGN.md §4b): it is independent of VBMI, the level above
 * avx512, so a level stacked on avx512vbmi would leave Cooper Lake (BF16,
 * no VBMI) without it -- and one kernel does not justify a fifth build of
 * every kernel source and a fifth pass of every kernel test. */
static _Atomic int dot_allowed = 1;

int gemm_bf16_use_dot(int on) { return atomic_exchange(&dot_allowed, on ? 1 : 0); }

int gemm_bf16_dot(void) {
    return atomic_load_explicit(&dot_allowed, memory_order_relaxed) && kernel_level() >= KL_AVX512 &&
           (cpu_features()->bits & CPU_AVX512BF16);
}

int gemm_bf16_amx_gemm(void) { return gemm_bf16_dot() && kernel_amx() && (cpu_features()->bits & CPU_AMX_BF16); }

void gemm_bf16(ThreadPool *tp, int m, int n, int k, float alpha, GemmMat a, GemmMat b, float beta, float *c,
               long ldc) {
    gemm_bf16_level(tp, m, n, k, alpha, a, b, beta, c, ldc, gemm_bf16_amx_gemm() ? 2 : gemm_bf16_dot());
}

void gemm_bf16_sgemm(ThreadPool *tp, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    gemm_bf16(tp, m, n, k, alpha, (GemmMat){a, 0, trans_a != 0, lda}, (GemmMat){b, 0, trans_b != 0, ldb}, beta, c,
              ldc);
}

void gemm_bf16_xwt(ThreadPool *tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols) {
    gemm_bf16_xwt_level(tp, y, x, n, w, rows, cols, gemm_bf16_dot());
}

/* Prefill on BF16 weights through the dot path rounds the activations to
 * bf16, as llama.cpp's BF16 product does: about twice the speed of
 * dequantise + sgemm, and the logits then differ from the f32 evaluation
 * of the same weights by one bf16 rounding per matmul input (2^-8
 * relative at most), which the model tests budget
 * (tests/model/logit_budget.h, act_tol). On by default for inference;
 * ALOE_BF16_INFER=0 in the environment (read at the first call) or
 * gemm_bf16_set_infer(0) turns it off. Training never takes it: its
 * linear asks for exact x per call (kernels/backend.h, BPREC_EXACT), so
 * its forward is the function its backward differentiates. */
static _Atomic int infer_on = 1;
static pthread_once_t infer_once = PTHREAD_ONCE_INIT;
static void infer_env(void) {
    const char *v = getenv("ALOE_BF16_INFER");
    if (v && !strcmp(v, "0")) atomic_store(&infer_on, 0);
}

int gemm_bf16_set_infer(int on) {
    pthread_once(&infer_once, infer_env);
    return atomic_exchange(&infer_on, on ? 1 : 0);
}

int gemm_bf16_infer(void) {
    pthread_once(&infer_once, infer_env);
    return atomic_load_explicit(&infer_on, memory_order_relaxed) && gemm_bf16_dot();
}

int gemm_bf16_amx(void) { return gemm_bf16_infer() && kernel_amx() && (cpu_features()->bits & CPU_AMX_BF16); }

/* Rows of W per claim: 64 rows of a 2048-wide W packed are 256 KB (L2),
 * and a 2048-row W gives each of 2 threads 16 claims. */
#define AMX_ROWS 64

typedef struct AmxJob {
    float *y;
    const float *x;
    const uint16_t *w;
    uint16_t *xb;
    int n, rows, cols;
    TpCounter round, next;
} AmxJob;

static void amx_round_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    AmxJob *j = ctx;
    long t0, t1;
    while (tp_next(&j->round, j->n, 16, &t0, &t1))
        for (long t = t0; t < t1; t++) gemm_bf16_round(j->x + t * j->cols, j->xb + t * j->cols, j->cols);
}

static void amx_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    AmxJob *j = ctx;
    long r0, r1;
    while (tp_next(&j->next, j->rows, AMX_ROWS, &r0, &r1))
        gemm_bf16_amx_rows(j->w + r0 * j->cols, (int)(r1 - r0), j->cols, j->xb, j->n, j->y + r0, j->rows);
}

void gemm_bf16_amx_xwt(ThreadPool *tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols) {
    if (cols % 32) { /* not whole chunks of the tiles' 32 values */
        gemm_bf16_xwt(tp, y, x, n, w, rows, cols);
        return;
    }
    /* x rounded, in whole blocks of 32 tokens (the tiles load 16 at a time, two blocks per step) */
    long npad = ((long)n + 31) / 32 * 32;
    AmxJob j = {.y = y, .x = x, .w = w, .n = n, .rows = rows, .cols = cols};
    j.xb = xaligned_alloc((size_t)npad * (size_t)cols * 2);
    memset(j.xb + (size_t)n * cols, 0, (size_t)(npad - n) * (size_t)cols * 2);
    tp_run_shared(tp, amx_round_task, &j);
    tp_run_shared(tp, amx_task, &j);
    free(j.xb);
}
