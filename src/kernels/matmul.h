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
 * f32 + sgemm, whose batched pass equals the f32 model's of the same
 * weights bit for bit (the tests of that property turn it off). Returns
 * the previous setting; process-wide, not to be changed while kernels run. */
int matmul_prefill_int8(int on);

/* How matmul_forward takes n rows of x for weights of this type: `type`
 * when it quantises them (kernel_quantize_act(type): the decode path, and
 * the integer GEMM where the kernel level has one for the type,
 * kernels/gemm_q.h), DT_BF16 for BF16 W when prefill rounds x to bf16
 * (gemm_bf16_prefill), DT_F32 when it multiplies them as they are. */
int matmul_act_type(int type, int n);

/* y[n][rows] = x[n][cols] · Wᵀ. y must not alias x. */
void matmul_forward(ThreadPool *tp, float *y, const float *x, int n, const QMat *w);
/* ys[m] = x · ws[m]ᵀ for k matrices with the same cols: on the decode path
 * (few rows) one task over all their rows, else each its own GEMM. The
 * results equal k matmul_forward calls exactly. */
void matmul_forward_group(ThreadPool *tp, int k, float *const ys[], const float *x, int n, const QMat *const ws[]);
/* The same with plain loops over dequantised rows, in double: the reference
 * the tests compare against. */
void matmul_forward_ref(float *y, const float *x, int n, const QMat *w);

/* Pointer to row r of W. */
static inline const void *qmat_row(const QMat *w, long r) {
    return (const char *)w->data + r * dtype_nbytes(w->type, w->cols);
}

#endif
