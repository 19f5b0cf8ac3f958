/* gemm_bf16: C = alpha·op(A)·op(B) + beta·C with the products taken in
 * bfloat16 and the sums in f32 -- the "bf16 matmul" of mixed-precision
 * training (PyTorch's autocast on CPU) and the prefill product on BF16
 * weights (llama.cpp's vec_dot_type for BF16).
 *
 * Each operand is f32 or already bf16. f32 values are rounded to bf16
 * (nearest, ties to even: formats/dtype.h's f32_to_bf16, NaN kept a NaN)
 * when the operand is packed; C stays f32 and is never rounded to bf16.
 * A product of two bf16 values is exact in f32, so the only errors are the
 * operands' rounding (≤ 2^-8 relative each, f32 inputs only) and the f32
 * summation (≤ γ_k·Σ|a||b| as for sgemm).
 *
 * Two paths, chosen per call: where the CPU has AVX512-BF16 and the kernel
 * level is avx512 or above, `vdpbf16ps` (two products and their sum per
 * f32 lane, 32 multiply-adds per instruction; like every BF16 dot
 * instruction it treats bf16 subnormals, |x| < 2^-126, as zero); elsewhere
 * a portable path widens bf16 to f32 and uses FMA (the same values, for
 * tests and for training on CPUs without BF16); and where the CPU also
 * has AMX-BF16 and the tiles are in use, the dot path's register tile is
 * four AMX C tiles (gemm_bf16_amx_tile32: TDPBF16PS, the same products,
 * the sums in the tile unit's order). All are cache-blocked (KC values of
 * k -- AMX_KC with the tiles --, MC rows of A, NC columns of B per task)
 * around an MR×NR register tile; the work is split over the pool by
 * columns of C, so every element of C is computed by one thread in one
 * order: the result does not depend on the number of threads. */
#ifndef ALOE_KERNELS_GEMM_BF16_H
#define ALOE_KERNELS_GEMM_BF16_H

#include <stdint.h>

#include "kernels/threads.h"

/* An operand: a row-major matrix of f32 or bf16 (uint16_t bits) values,
 * rows `ld` elements apart; op(X) = X, or Xᵀ when trans. */
typedef struct GemmMat {
    const void *p;
    int bf16;  /* 1: p holds bf16 values; 0: f32, rounded to bf16 when packed */
    int trans; /* 1: op(X) = Xᵀ */
    long ld;
} GemmMat;

/* C[m][n] = alpha·op(A)[m][k]·op(B)[k][n] + beta·C, C row-major with rows
 * ldc apart. beta == 0: C is only written (it may hold NaN); alpha == 0 or
 * k == 0: A and B are not read. tp NULL: on the caller's thread (the form
 * to call from inside a pool task: tp_run is not reentrant). Memory for
 * the packed operands is allocated per call (about m·k·2 bytes plus 128 KB
 * per thread). */
void gemm_bf16(ThreadPool *tp, int m, int n, int k, float alpha, GemmMat a, GemmMat b, float beta, float *c,
               long ldc);

/* cblas_sgemm's shape (CblasRowMajor; trans_a/trans_b 0 = CblasNoTrans, 1
 * = CblasTrans) on f32 operands, with bf16 products and f32 sums: the
 * call a CPU backend makes for a linear layer's forward and backward when
 * the bf16 matmul precision is chosen (docs/DESIGN.md §5). */
void gemm_bf16_sgemm(ThreadPool *tp, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* y[n][rows] = x[n][cols] · Wᵀ for a BF16 weight matrix W[rows][cols]
 * (rows cols apart), x rounded to bf16: the prefill product (matmul.c). */
void gemm_bf16_xwt(ThreadPool *tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols);

/* The prefill product on AMX-BF16 tiles (gemm_bf16_amx.c): y as
 * gemm_bf16_xwt, x rounded to bf16 the same way, the sums in another order
 * (within the f32 sum's error bound of gemm_bf16_xwt's, not bit for bit).
 * For matmul.c where gemm_bf16_amx() says so. The tiles take 32 values of
 * a row at a time: rows of other widths are gemm_bf16_xwt's. */
void gemm_bf16_amx_xwt(ThreadPool *tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols);
/* 1 when the inference prefill on BF16 weights takes the AMX tiles:
 * gemm_bf16_infer, and the tiles are in use (kernel_amx, dispatch.h) on a
 * CPU with AMX-BF16. */
int gemm_bf16_amx(void);
/* gemm_bf16_amx_xwt's level build: y[t][r] (ldy floats a token) for
 * nrows rows of W (cols bf16 each, contiguous) and the n tokens of xb (x
 * rounded, cols bf16 a token, zero rows up to a multiple of 32). */
void gemm_bf16_amx_rows(const uint16_t *w, int nrows, int cols, const uint16_t *xb, int n, float *y, int ldy);

/* The general GEMM's 32 x 32 register tile on AMX-BF16 (gemm_bf16_amx.c,
 * level builds, used by gemm_bf16_level.c between begin and end on one
 * thread): t[32][32] = 32 rows of packed A (bf16, lda values apart, k
 * zero-padded to a multiple of 32) times np pairs of a 32-column panel
 * of B (gemm_bf16_level.c's layout, zero past k up to a multiple of 16
 * pairs); np a multiple of 16. */
void gemm_bf16_amx_begin(void);
void gemm_bf16_amx_end(void);
void gemm_bf16_amx_tile32(const uint16_t *a, long lda, const uint16_t *panel, long np, float *t);
/* 1 when the general GEMM's dot path (gemm_bf16, training's --matmul
 * bf16) takes the AMX tiles: gemm_bf16_dot, and the tiles are in use
 * (kernel_amx, dispatch.h) on a CPU with AMX-BF16. */
int gemm_bf16_amx_gemm(void);

/* 1 when calls now take the BF16 dot instructions (vdpbf16ps): the CPU has
 * AVX512-BF16, the kernel level (dispatch.h) is avx512 or above, and
 * gemm_bf16_use_dot has not turned them off. */
int gemm_bf16_dot(void);
/* 1 when matmul_forward's MATMUL_FAST calls on BF16 weights round x to
 * bf16 and take the BF16 dot instructions: prefill (rows >=
 * matmul_gemm_min_rows) through gemm_bf16_xwt, decode (fewer rows)
 * through gemm_bf16_rows. The dot path is on
 * (gemm_bf16_dot) and the process has not turned it off, by
 * ALOE_BF16_INFER=0 in the environment (read at the first call) or
 * gemm_bf16_set_infer(0). On by default: it rounds the activations to
 * bf16, as llama.cpp does for BF16 weights, so the logits carry that
 * rounding against the f32 evaluation of the same weights (gemm_bf16.c);
 * exact calls (MATMUL_EXACT: training) never take it. */
int gemm_bf16_infer(void);
/* Sets the request (0/1); returns the previous one. Not while a matmul runs. */
int gemm_bf16_set_infer(int on);
/* Allows (1) or forbids (0) the dot instructions, for tests that compare
 * the two paths on one CPU; returns the previous setting. Not to be called
 * while a GEMM runs. */
int gemm_bf16_use_dot(int on);

/* The level build behind gemm_bf16 (gemm_bf16_level.c, one per kernel
 * level; dispatch.c jumps to the chosen one): dot 1 asks for the BF16 dot
 * path, which the build takes only where it has AVX-512 and the CPU
 * AVX512-BF16; dot 2 for that path on AMX tiles (gemm_bf16_amx_gemm). */
void gemm_bf16_level(ThreadPool *tp, int m, int n, int k, float alpha, GemmMat a, GemmMat b, float beta, float *c,
                     long ldc, int dot);

/* gemm_bf16_xwt's level build: where dot is 1, the CPU has AVX512-BF16 and
 * cols is even, W's rows are the broadcast operand as stored and x alone
 * is packed (bit for bit the general GEMM's result); else the general
 * GEMM. */
void gemm_bf16_xwt_level(ThreadPool *tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols,
                         int dot);

/* The decode product on BF16 weights (matmul.c's row dots): x rounded to
 * bf16 once (gemm_bf16_round: out[i] = x[i] to nearest even, n values),
 * then out[r] = row r · x for nrows rows of n bf16 values, rb bytes apart,
 * summed in f32: vdpbf16ps where dot is 1 and the CPU has AVX512-BF16 (at
 * an avx512 level or above), else each product widened to f32 (exact) and
 * added by FMA. Level builds, as gemm_bf16_level. */
void gemm_bf16_round(const float *x, uint16_t *out, long n);
void gemm_bf16_rows(const uint16_t *rows, size_t rb, int nrows, const uint16_t *x, long n, float *out, int dot);

#endif
