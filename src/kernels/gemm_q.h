/* gemm_q: one tile of the prefill's integer GEMM on quantised weights
 * (gemm_q.c; matmul.c tiles the product and shares the tiles among the
 * threads). Built per kernel level (klevel.h): AVX-512 VNNI has a
 * register-blocked micro-kernel for Q8_0 and Q4_0 (gemm_q.c) and one for
 * every other quantised type (gemm_q_grp.c); the other levels keep
 * dequantise + sgemm (gemm_q_act_type). */
#ifndef ALOE_KERNELS_GEMM_Q_H
#define ALOE_KERNELS_GEMM_Q_H

#include <stddef.h>

/* Whether this level multiplies weights of type t with the integer GEMM,
 * and how: DT_F32 where it has no tile kernel faster than dequantising to
 * f32 + sgemm (then matmul.c does that), else the type whose activation
 * layout (kernel_quantize_act, kernel_act_bytes) gemm_q_tile expects: t
 * itself, or DT_Q4_0 (its quads of blocks) for the micro-kernel's Q8_0
 * too. Its quants are the same values as t's activation's. */
int gemm_q_act_type(int t);

/* nrows rows of W (type t, rb bytes apart, n values each) times nx
 * activations (gemm_q_act_type(t)'s layout, stride bytes apart):
 * out[k * out_stride + r] = row r · activation k, as vec_dot_multi_rows. */
void gemm_q_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                 float *out, size_t out_stride);

/* gemm_q_grp.c (called by gemm_q.c only): whether its micro-kernel takes
 * type t at this level (then on t's own activation), and its tile, as
 * gemm_q_tile. */
int gemm_grp_type(int t);
void gemm_grp_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                   float *out, size_t out_stride);

/* gemm_q_amx.c (called by gemm_q.c only, where kernel_amx()): whether its
 * AMX-INT8 tile takes type t (on gemm_q_act_type(t)'s activation), and
 * that tile, as gemm_q_tile. */
int gemm_amx_type(int t);
void gemm_amx_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                   float *out, size_t out_stride);

#endif
