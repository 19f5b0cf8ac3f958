/* kernel_funcs: the functions of the SIMD kernel sources (klevel.h), as
 * X-macro lists X(return type, name, (parameters), (arguments)) from which
 * dispatch.c makes the table of one level, the per-level declarations and
 * the public functions.
 *
 * KERNEL_DISPATCHED: through the chosen level's table (one indirect call
 * per call: every entry works on a row, a matrix or a whole batch, never
 * on one element, so the jump is noise).
 * KERNEL_FIXED: the same at every level (the scalar references, the type
 * tables, the layout of an activation): always the scalar build's, so that
 * a test compares each level with code built without vector extensions. */
#ifndef ALOE_KERNELS_KERNEL_FUNCS_H
#define ALOE_KERNELS_KERNEL_FUNCS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/attention.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_q.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/stream.h"

#define KERNEL_DISPATCHED(X)                                                                                         \
    X(float, vec_dot, (int t, const void *row, const void *act, long n), (t, row, act, n))                           \
    X(void, vec_dot_rows, (int t, const void *rows, size_t rb, int nrows, const void *act, long n, float *out),      \
      (t, rows, rb, nrows, act, n, out))                                                                             \
    X(void, vec_dot_multi,                                                                                           \
      (int t, const void *row, const void *act, size_t stride, int n, long len, float *out, size_t out_stride),      \
      (t, row, act, stride, n, len, out, out_stride))                                                                \
    X(void, vec_dot_multi_rows,                                                                                      \
      (int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int n, long len, float *out,   \
       size_t out_stride),                                                                                           \
      (t, rows, rb, nrows, act, stride, n, len, out, out_stride))                                                    \
    X(void, kernel_quantize_act, (int t, const float *x, void *out, long n), (t, x, out, n))                         \
    X(int, gemm_q_act_type, (int t), (t))                                                                            \
    X(void, gemm_q_tile,                                                                                             \
      (int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n, float *out,    \
       size_t out_stride),                                                                                           \
      (t, rows, rb, nrows, act, stride, nx, n, out, out_stride))                                                     \
    X(void, kernel_dequantize_row, (int t, const void *row, float *y, long n), (t, row, y, n))                       \
    X(int, kernel_use_avx512, (int on), (on))                                                                        \
    X(int, kernel_weight_type, (int t, long cols), (t, cols))                                                        \
    X(float, dot_f32, (const float *a, const float *b, long n), (a, b, n))                                           \
    X(void, axpy_f32, (float *y, float a, const float *x, long n), (y, a, x, n))                                     \
    X(void, rmsnorm_forward, (float *out, const float *x, const float *w, int n, int dim, float eps),                \
      (out, x, w, n, dim, eps))                                                                                      \
    X(void, rmsnorm_offset_forward,                                                                                  \
      (float *out, const float *x, const float *w, float offset, int n, int dim, float eps),                         \
      (out, x, w, offset, n, dim, eps))                                                                              \
    X(void, layernorm_noparam_forward, (float *out, const float *x, int n, int dim, float eps),                      \
      (out, x, n, dim, eps))                                                                                         \
    X(void, clamp_forward, (float *x, long n, float c), (x, n, c))                                                   \
    X(void, softcap_forward, (float *x, long n, float cap), (x, n, cap))                                             \
    X(void, scale_forward, (float *x, long n, float s), (x, n, s))                                                   \
    X(void, add_forward, (float *x, const float *y, long n), (x, y, n))                                              \
    X(void, add_bias_forward, (float *x, const float *b, int n, int dim), (x, b, n, dim))                            \
    X(void, swiglu_forward, (float *out, const float *gate, const float *up, long n), (out, gate, up, n))            \
    X(void, geglu_tanh_forward, (float *out, const float *gate, const float *up, long n), (out, gate, up, n))        \
    X(void, softmax_forward, (float *x, int n), (x, n))                                                              \
    X(void, rope_forward, (float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved),   \
      (x, n_heads, head_dim, pos, inv_freq, interleaved))                                                            \
    X(void, rope_forward_scaled,                                                                                     \
      (float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved, float mscale),          \
      (x, n_heads, head_dim, pos, inv_freq, interleaved, mscale))                                                    \
    X(void, attention_forward,                                                                                       \
      (ThreadPool * tp, float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,              \
       const int *pos),                                                                                              \
      (tp, out, q, n, s, caches, pos))                                                                               \
    X(void, gemm_bf16_level,                                                                                         \
      (ThreadPool * tp, int m, int n, int k, float alpha, GemmMat a, GemmMat b, float beta, float *c, long ldc,      \
       int dot),                                                                                                     \
      (tp, m, n, k, alpha, a, b, beta, c, ldc, dot))                                                                 \
    X(void, gemm_bf16_round, (const float *x, uint16_t *out, long n), (x, out, n))                                   \
    X(void, gemm_bf16_xwt_level,                                                                                     \
      (ThreadPool * tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols, int dot),             \
      (tp, y, x, n, w, rows, cols, dot))                                                                             \
    X(void, gemm_bf16_rows, (const uint16_t *rows, size_t rb, int nrows, const uint16_t *x, long n, float *out, int dot), \
      (rows, rb, nrows, x, n, out, dot))                                                                             \
    X(void, gemm_bf16_amx_rows, (const uint16_t *w, int nrows, int cols, const uint16_t *xb, int n, float *y, int ldy), \
      (w, nrows, cols, xb, n, y, ldy))                                                                               \
    X(double, stream_read_seconds,                                                                                   \
      (ThreadPool * tp, const QMat *const *mats, int n, StreamOrder order, uint64_t *bits),                          \
      (tp, mats, n, order, bits))

#define KERNEL_FIXED(X)                                                                                              \
    X(int, kernel_type_ok, (int t), (t))                                                                             \
    X(int, kernel_row_ok, (int t, long n), (t, n))                                                                   \
    X(int, kernel_vec_type, (int t), (t))                                                                            \
    X(size_t, kernel_act_bytes, (int t, long n), (t, n))                                                             \
    X(void, kernel_act_to_f32, (int t, const void *act, float *y, long n), (t, act, y, n))                           \
    X(float, vec_dot_ref, (int t, const void *row, const void *act, long n), (t, row, act, n))                       \
    X(float, gelu_tanh, (float x), (x))                                                                              \
    X(void, rope_inv_freq, (float *inv_freq, int rot_dim, double theta, const RopeScaling *scaling),                \
      (inv_freq, rot_dim, theta, scaling))                                                                           \
    X(void, attention_forward_ref,                                                                                   \
      (float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches, const int *pos),              \
      (out, q, n, s, caches, pos))

/* Applies M(level) to every level built (Makefile: KLEVELS, same order as
 * cpu.h's KernelLevel). */
#define KERNEL_LEVELS(M) M(scalar) M(avx2) M(avx512) M(avx512vbmi)

#endif
