/* quant: dot products of one weight row with an activation vector, for the
 * weight types the kernels compute with directly. Types and block layouts
 * are formats/dtype.h's (ggml's), so memory-mapped GGUF tensors are used in
 * place; conversions and quantisers live there too.
 *
 * Quantised rows (Q8_0, Q4_0, Q4_K, Q6_K) are dotted with activations
 * quantised to Q8_0 blocks, as llama.cpp does (it uses Q8_K, blocks of
 * 256, for the K-quants; a K-quant sub-block of 32 lines up with one Q8_0
 * block, so one activation form serves all four): integer multiply-adds
 * are twice as wide as float ones and the activation is quantised once per matmul, not once
 * per row. F32/F16/BF16 rows are dotted with f32 activations.
 *
 * Every fast dot has a plain scalar reference (`*_ref`) beside it; the
 * tests compare them. The SIMD paths are written under #ifdef __AVX2__ /
 * __FMA__ / __F16C__, and AVX-512 BW/VL/VNNI for the quantised dots
 * (quant_avx512.c); this file is compiled once per kernel level and the
 * level is chosen at run time (cpu.h, dispatch.h, klevel.h). */
#ifndef ALOE_KERNELS_QUANT_H
#define ALOE_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "formats/dtype.h"

/* Whether the kernels compute with weights of this DType directly
 * (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K; and Q4_1, Q5_0, Q5_1, IQ4_NL:
 * quant_legacy.c); other types are converted at load. */
int kernel_type_ok(int dtype);
/* Whether a row of n values of dtype suits the kernels (whole blocks). */
int kernel_row_ok(int dtype, long n);

/* The activation type a weight type is dotted with: DT_Q8_0 for quantised
 * weights, DT_F32 otherwise. */
int kernel_vec_type(int weight_dtype);

/* An activation prepared for weights of type t: n floats as f32 (float
 * weights), or for quantised weights Q8_0's quants and scales (laid out
 * for the kernels, with block sums that the offsets of Q4_0 and the
 * K-quants need; quant_internal.h). kernel_act_bytes: its size, a multiple
 * of 64 for quantised weights. kernel_act_to_f32: its values back as floats. */
size_t kernel_act_bytes(int t, long n);
void kernel_quantize_act(int t, const float *x, void *out, long n);
void kernel_act_to_f32(int t, const void *act, float *y, long n);

/* Dot product of a weight row (type t, n values) with an activation made
 * by kernel_quantize_act(t) (vec_dot_ref reads only its Q8_0 blocks). */
float vec_dot(int t, const void *row, const void *act, long n);
float vec_dot_ref(int t, const void *row, const void *act, long n);

/* Whether the quantised dots use their AVX-512 versions (default: yes
 * where the running kernel level has them; the avx2 and scalar levels
 * have none: 0); returns the previous setting. For tests and
 * benchmarks comparing the two; not to be changed while kernels run. */
int kernel_use_avx512(int on);

/* The layout in which this level's kernels read a matrix of type t with
 * rows of `cols` values fastest: for Q4_0 at the SIMD levels DT_Q4_0_G16
 * (rows of whole 512-value groups), where the AVX2 dots run DT_Q4_0_G4
 * for the other rows of whole 128-value quads; else t itself. A model loader
 * regroups such matrices once (model_place_weights). */
int kernel_weight_type(int t, long cols);

/* Dots of nrows consecutive weight rows (row_bytes apart) with one
 * activation: out[r] = vec_dot(t, row r, act, n), with the type dispatch
 * paid once per call rather than once per row (a row of a small model's
 * matrix is ~30 ns of work). Rows are dotted one after another: dotting
 * four side by side was tried and streams from memory ~30% slower here. */
void vec_dot_rows(int t, const void *rows, size_t row_bytes, int nrows, const void *act, long n, float *out);

/* Dots of one weight row with n activations (each made by
 * kernel_quantize_act(t), `stride` bytes apart): out[i * out_stride] for i < n. The row is
 * read once for every four activations. */
void vec_dot_multi(int t, const void *row, const void *act, size_t stride, int n, long len, float *out,
                   size_t out_stride);

/* vec_dot_multi for nrows consecutive rows (row_bytes apart): out[i *
 * out_stride + r], with the dispatch paid once per call (the batched
 * decode's path; per row it cost ~10% of a small model's dots). */
void vec_dot_multi_rows(int t, const void *rows, size_t row_bytes, int nrows, const void *act, size_t stride, int n,
                        long len, float *out, size_t out_stride);

/* A row of a kernel type to f32 (SIMD; same values as formats'
 * dequantize_row). */
void kernel_dequantize_row(int t, const void *row, float *y, long n);

/* Plain f32 helpers used by the other kernels. */
float dot_f32(const float *a, const float *b, long n);
/* y += a * x */
void axpy_f32(float *y, float a, const float *x, long n);

#endif
