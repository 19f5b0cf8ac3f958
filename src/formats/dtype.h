/* dtype: tensor element types, their block layouts, and conversions to f32.
 *
 * The numbering follows ggml's (GGUF stores these numbers on disk), so a
 * GGUF tensor's type field is a DType without translation. Types that only
 * safetensors has (U8, BOOL) take numbers ggml does not use.
 *
 * Quantised types store fixed-size blocks of elements; a row of n elements
 * must be a whole number of blocks. Block layouts are ggml's:
 *   Q8_0: f16 scale d, 32 int8 q             -> x = d*q
 *   Q4_0: f16 scale d, 16 bytes of nibbles   -> x = d*(q-8); byte j holds
 *         element j (low nibble) and element j+16 (high nibble)
 *   Q4_K: super-block of 256 = 8 sub-blocks of 32 with 6-bit scales/mins
 *   Q6_K: super-block of 256 = 16 sub-blocks of 16 with int8 scales */
#ifndef ALOE_FORMATS_DTYPE_H
#define ALOE_FORMATS_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum DType {
    DT_F32 = 0,
    DT_F16 = 1,
    DT_Q4_0 = 2,
    DT_Q8_0 = 8,
    DT_Q4_K = 12,
    DT_Q6_K = 14,
    DT_I8 = 24,
    DT_I16 = 25,
    DT_I32 = 26,
    DT_I64 = 27,
    DT_F64 = 28,
    DT_BF16 = 30,
    DT_U8 = 100, /* safetensors only */
    DT_BOOL = 101,
    DT_INVALID = -1
} DType;

#define QK8_0 32
#define QK4_0 32
#define QK_K 256

/* Blocks as stored on disk (packed, little-endian, no padding). */
typedef struct BlockQ8_0 {
    uint16_t d; /* f16 */
    int8_t qs[QK8_0];
} BlockQ8_0;

typedef struct BlockQ4_0 {
    uint16_t d; /* f16 */
    uint8_t qs[QK4_0 / 2];
} BlockQ4_0;

typedef struct BlockQ4_K {
    uint16_t d;          /* f16 super-scale of the sub-block scales */
    uint16_t dmin;       /* f16 super-scale of the sub-block mins */
    uint8_t scales[12];  /* 8 scales + 8 mins, 6 bits each */
    uint8_t qs[QK_K / 2];/* 4-bit quants */
} BlockQ4_K;

typedef struct BlockQ6_K {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* one per 16 elements */
    uint16_t d;               /* f16 */
} BlockQ6_K;

/* Lower-case ggml name ("f32", "q8_0", "bf16"), or "?" for unknown. */
const char *dtype_name(int t);
/* Parses ggml names ("q8_0") and safetensors names ("F32", "BF16", "I64")
 * case-insensitively; DT_INVALID if unknown. */
int dtype_from_name(const char *s);
/* Name safetensors uses in its header ("F32"), or NULL if it has none. */
const char *dtype_st_name(int t);
/* 1 for a type this code knows (size and block layout). */
int dtype_valid(int t);
int dtype_is_quantized(int t);
/* Elements per block (1 for plain types); 0 for unknown types. */
int dtype_block_size(int t);
/* Bytes per block (element size for plain types); 0 for unknown types. */
size_t dtype_block_bytes(int t);
/* Bytes for n elements; 0 if t is unknown or n is not a whole number of
 * blocks (or overflows). */
size_t dtype_nbytes(int t, int64_t n);
/* 1 if dequantize_row/dtype_to_f32 can convert this type to f32. */
int dtype_can_dequantize(int t);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

/* Converts n elements of type t at src (any alignment) to f32. Handles F32,
 * F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K (and the integer types by value).
 * Returns 0, or -1 if the type is not convertible or n is not a whole number
 * of blocks. */
int dequantize_row(int t, const void *src, float *dst, int64_t n);

/* Quantises n floats (n a multiple of 32) into blocks at dst
 * (dtype_nbytes(type, n) bytes), the way ggml's reference quantiser does. */
void quantize_row_q8_0(const float *src, void *dst, int64_t n);
void quantize_row_q4_0(const float *src, void *dst, int64_t n);
/* n floats (a multiple of 256) into K-quant super-blocks. The layouts are
 * ggml's (so llama.cpp reads the result); the fits are simpler than
 * ggml's: Q4_K fits each sub-block of 32 as x ~ s*q - o (q in 0..15,
 * o >= 0) from its min/max with a few shrunken ranges refined by least
 * squares, keeping the least squared error; Q6_K tries 19 scales around
 * "largest magnitude -> -32" for each 16 values, each refined by least
 * squares, likewise. The sub-block scales are then coded in 6 (Q4_K) or
 * 8 (Q6_K) bits against an f16 super-scale, and the quants are rounded
 * with the coded scales. */
void quantize_row_q4_k(const float *src, void *dst, int64_t n);
void quantize_row_q6_k(const float *src, void *dst, int64_t n);
/* Converts n floats to F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K at dst; -1 for
 * other types or a bad n. */
int quantize_row(int t, const float *src, void *dst, int64_t n);

#endif
