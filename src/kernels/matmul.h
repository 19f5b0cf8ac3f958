/* matmul: y = x · Wᵀ for a weight matrix W of a kernel type (quant.h), the operation
 * that dominates a decoder's time.
 *
 * Two regimes, as in llama.cpp:
 *  - few rows of x (decode; a handful of sequences decoded together): the
 *    weights are streamed once from memory and each row of W is dotted with
 *    every row of x while it is in cache (quantised W against Q8_0-quantised
 *    x). Memory-bound, split over the pool's threads by rows of W.
 *  - many rows of x (prefill): a real GEMM. Quantised W with a tile
 *    kernel at the running level (AVX-512: Q8_0, Q4_0, Q4_K, Q6_K): x is quantised
 *    once to int8 blocks (the decode path's activation) and the product
 *    is cut into tiles (a chunk of W's rows x a chunk of x's rows, sized
 *    for L2) shared dynamically among the threads, each multiplied with
 *    integer dot products (kernels/gemm_q.c: a register-blocked VNNI
 *    micro-kernel for Q8_0/Q4_0, the decode path's row x four activations
 *    kernels for Q4_K/Q6_K); no weight is dequantised, and the result
 *    carries the int8 activation error the decode path does. f32 W goes
 *    straight to OpenBLAS sgemm; other W is dequantised tile by tile
 *    into f32 and then multiplied, which costs O(|W|) against the
 *    O(n·|W|) of the product. Each thread runs a single-threaded sgemm on
 *    its share of W's rows. */
#ifndef ALOE_KERNELS_MATMUL_H
#define ALOE_KERNELS_MATMUL_H

#include "kernels/quant.h"
#include "kernels/threads.h"

/* A weight matrix view: rows × cols values of `type`, row-major, each row
 * dtype_nbytes(type, cols) bytes. The data is not owned (it may be
 * memory-mapped). */
typedef struct QMat {
    int type; /* DType */
    const void *data;
    int rows, cols;
} QMat;

/* The number of rows of x from which the GEMM path is used for weights of
 * this type at the running kernel level: measured crossovers on
 * AVX2/AVX-512 (f32 ~8; f16/bf16 ~12; quantised types 12 with the VNNI
 * micro-kernel, else 40: matmul.c). */
int matmul_gemm_min_rows(int type);

/* Whether the prefill of quantised W is the integer GEMM (default: yes,
 * where the level has one for the type; gemm_q.h) or, off, dequantise to
 * f32 + sgemm. Returns the previous setting; process-wide, not to be
 * changed while kernels run. A process-wide speed switch (benchmarks,
 * `aloe speed` comparisons): a caller that needs x unrounded asks for it
 * per call (MATMUL_EXACT) instead. */
int matmul_prefill_int8(int on);

/* Per call: what a product may do to x (kernels/backend.h's BackendPrec
 * for the CPU). MATMUL_FAST: x rounded as matmul_act_type says (the
 * decode path's int8 blocks and the integer prefill GEMM for quantised W,
 * bf16 for BF16 W), inference's fast paths. MATMUL_EXACT: x
 * multiplied in float32 against W's values widened exactly -- the f32 dots
 * for F32/F16/BF16 W with few rows, else W dequantised tile by tile +
 * sgemm: y equals the product with an F32 copy of W to float32
 * summation (training's forward, which its backward differentiates). */
typedef enum MatmulPrec { MATMUL_FAST = 0, MATMUL_EXACT = 1 } MatmulPrec;

/* How matmul_forward takes n rows of x for weights of this type: `type`
 * when it quantises them (kernel_quantize_act(type): the decode path, and
 * the integer GEMM where the kernel level has one for the type,
 * kernels/gemm_q.h), DT_BF16 for BF16 W when prefill and decode round x
 * to bf16 (gemm_bf16_infer), DT_F32 when it multiplies them as they are. */
int matmul_act_type(int type, int n);
/* The same for a call with precision prec (MATMUL_EXACT: always DT_F32). */
int matmul_act_type_prec(int type, int n, MatmulPrec prec);

/* y[n][rows] = x[n][cols] · Wᵀ, MATMUL_FAST. y must not alias x. */
void matmul_forward(ThreadPool *tp, float *y, const float *x, int n, const QMat *w);
void matmul_forward_prec(ThreadPool *tp, float *y, const float *x, int n, const QMat *w, MatmulPrec prec);
/* ys[m] = x · ws[m]ᵀ for k matrices with the same cols: on the decode path
 * (few rows) one task over all their rows, else each its own GEMM. The
 * results equal k matmul_forward(_prec) calls exactly. */
void matmul_forward_group(ThreadPool *tp, int k, float *const ys[], const float *x, int n, const QMat *const ws[]);
void matmul_forward_group_prec(ThreadPool *tp, int k, float *const ys[], const float *x, int n,
                               const QMat *const ws[], MatmulPrec prec);
/* The same with plain loops over dequantised rows, in double: the reference
 * the tests compare against. */
void matmul_forward_ref(float *y, const float *x, int n, const QMat *w);

/* W's bytes; a pointer to row r of W. */
static inline size_t qmat_bytes(const QMat *w) { return dtype_nbytes(w->type, w->cols) * (size_t)w->rows; }
static inline const void *qmat_row(const QMat *w, long r) {
    return (const char *)w->data + r * dtype_nbytes(w->type, w->cols);
}

#endif
