/* backend_cpu: what the CPU backend's files (backend_cpu*.c) share; not for
 * callers of the interface (kernels/backend.h). */
#ifndef ALOE_KERNELS_BACKEND_CPU_H
#define ALOE_KERNELS_BACKEND_CPU_H

#include "kernels/backend.h"

typedef struct BackendCpu {
    ThreadPool *tp;      /* not owned; NULL: the calling thread alone */
    float *wtile;        /* per-thread conversion tiles of a frozen base's backward */
    size_t wtile_floats; /* allocated, all threads */
    /* training's products in bf16 (set_matmul_bf16, backend_cpu_train.c),
     * and the linear it replaced while on */
    int bf16;
    void (*linear_f32)(Backend *be, float *y, const float *x, int n, const QMat *w, const float *b, BackendPrec prec);
} BackendCpu;

static inline ThreadPool *cpu_pool(Backend *be) { return ((BackendCpu *)be->impl)->tp; }
/* Whether a row op of `values` floats over `rows` rows is worth waking the pool for. */
int cpu_par_worth(Backend *be, long values, long rows);
/* RoPE (backward: its transpose) of rows [r0, r1) of x, single-threaded. */
void cpu_rope_rows(const BackendRope *r, float *x, long r0, long r1, int backward);
/* Fills be's training entries (backend_cpu_train.c). */
void backend_cpu_train_ops(Backend *be);
double cpu_nll_sum(Backend *be, const float *logits, const int32_t *labels, int T, int V, int *n_valid);
void cpu_nll_sum_backward(Backend *be, float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                          float scale);

#endif
