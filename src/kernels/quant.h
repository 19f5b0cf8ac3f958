/* quant: the weight storage types the kernels compute with, their block
 * layouts (bit-compatible with GGUF/ggml, so memory-mapped GGUF tensors are
 * used in place), conversions, and dot products of one weight row with an
 * activation vector.
 *
 * Quantised rows (Q8_0, Q4_0) are dotted with activations quantised to
 * Q8_0 blocks, as llama.cpp does: integer multiply-adds are twice as wide
 * as float ones and the activation is quantised once per matmul, not once
 * per row. F32/F16/BF16 rows are dotted with f32 activations.
 *
 * Every fast dot has a plain scalar reference (`*_ref`) beside it; the
 * tests compare them. SIMD paths are chosen at compile time (#ifdef
 * __AVX2__ / __FMA__ / __F16C__; the build uses -march=native). */
#ifndef ALOE_KERNELS_QUANT_H
#define ALOE_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum KType { KT_F32 = 0, KT_F16, KT_BF16, KT_Q8_0, KT_Q4_0, KT_COUNT } KType;

#define QK 32 /* values per Q8_0 / Q4_0 block */

typedef struct BlockQ8_0 {
    uint16_t d;      /* scale, IEEE half */
    int8_t qs[QK];   /* value = d * qs[i] */
} BlockQ8_0;

typedef struct BlockQ4_0 {
    uint16_t d;          /* scale, IEEE half */
    uint8_t qs[QK / 2];  /* value i = d * ((qs[i] & 15) - 8), value i+16 = d * ((qs[i] >> 4) - 8) */
} BlockQ4_0;

const char *ktype_name(KType t);
/* Parses "f32", "f16", "bf16", "q8_0", "q4_0"; returns -1 if unknown. */
int ktype_parse(const char *s);
/* Bytes of one row of n values (n a multiple of QK for quantised types). */
size_t ktype_row_bytes(KType t, long n);
/* Whether a row of n values can be stored in t. */
int ktype_row_ok(KType t, long n);

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f); /* round to nearest even */

/* Converts n floats into a row of type t (n a multiple of QK for Q8_0 /
 * Q4_0), rounding as ggml does; and back. */
void quantize_row(KType t, const float *x, void *row, long n);
void dequantize_row(KType t, const void *row, float *y, long n);

/* The activation type a weight type is dotted with: KT_Q8_0 for quantised
 * weights, KT_F32 otherwise. */
KType ktype_vec_type(KType weight);

/* Dot product of a weight row (type t, n values) with an activation in
 * ktype_vec_type(t) form. */
float vec_dot(KType t, const void *row, const void *act, long n);
float vec_dot_ref(KType t, const void *row, const void *act, long n);

/* Plain f32 helpers used by the other kernels. */
float dot_f32(const float *a, const float *b, long n);
/* y += a * x */
void axpy_f32(float *y, float a, const float *x, long n);

#endif
