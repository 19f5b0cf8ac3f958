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
 *   Q4_1, Q5_0, Q5_1, IQ4_NL: see the block at the end
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
    DT_Q4_1 = 3, /* Q4_1, Q5_0, Q5_1, IQ4_NL: dtype_legacy.c */
    DT_Q5_0 = 6,
    DT_Q5_1 = 7,
    DT_IQ4_NL = 20,
    DT_Q8_0 = 8,
    DT_Q4_K = 12,
    DT_Q6_K = 14,
    DT_Q2_K = 10, /* dtype_kquant.c */
    DT_Q3_K = 11,
    DT_Q5_K = 13,
    DT_IQ4_XS = 23,
    DT_I8 = 24,
    DT_I16 = 25,
    DT_I32 = 26,
    DT_I64 = 27,
    DT_F64 = 28,
    DT_BF16 = 30,
    DT_U8 = 100, /* safetensors only */
    DT_BOOL = 101,
    DT_Q4_0_G16 = 102, /* in memory only (below) */
    DT_Q4_0_G4 = 103,  /* in memory only (below) */
    DT_Q5_0_G4 = 104,  /* in memory only (dtype_legacy.c, below) */
    DT_Q5_1_G4 = 105,  /* in memory only */
    DT_Q4_1_G4 = 106,  /* in memory only */
    DT_IQ4_NL_G4 = 107, /* in memory only */
    DT_Q4_K_PAIRS = 108, /* in memory only (dtype_kquant.c, below) */
    DT_Q5_K_PAIRS = 109, /* in memory only */
    DT_Q4_0_T16 = 110, /* in memory only (below) */
    DT_Q8_0_T16 = 111, /* in memory only */
    DT_Q4_K_T16 = 112, /* in memory only (below) */
    DT_INVALID = -1
} DType;

#define QK8_0 32
#define QK4_0 32
#define QK_K 256

/* DT_Q4_0_G16: Q4_0 regrouped for the AVX-512 and AVX2 decode (kernels/
 * quant_avx512.c, quant.c), never in a file (GGUF readers and writers refuse types
 * from 100 on). A "block" of 512 values is 16 Q4_0 blocks of a row, same
 * values, same 288 bytes, reordered: their 16 f16 scales (32 bytes), then
 * their 16 x 16 bytes of nibbles in order. One 64-byte load then holds four
 * blocks' nibbles (a 32-byte one two blocks') and one conversion gives
 * sixteen (eight) scales, where the stored layout needs a byte permute and
 * a word permute per four blocks (two loads and two scalar conversions per
 * two).
 * DT_Q4_0_G4: the same with groups of 4 blocks (128 values, 72 bytes: 4
 * scales, then 4 x 16 bytes of nibbles), for the AVX2 decode of rows that
 * are not whole groups of 16 blocks (qwen2.5-0.5b's 896 and 4864 values).
 * A stored Q4_0 row is the same thing with groups of one block
 * (dtype_q4_0_group_blocks). */
#define QK4_0_G4 128
#define QK4_0_G16 512

/* DT_Q4_0_T16 and DT_Q8_0_T16: Q4_0 and Q8_0 in groups of 16 blocks (512
 * values) for the AVX-512 decode and prefill (kernels/quant_avx512.c,
 * gemm_q.c), never in a file. A group is the 16 blocks' f16 scales (32
 * bytes), then parts of 64 bytes: part k holds dword k (bytes 4k..4k+3) of
 * each block's quants, block j at bytes 4j..4j+3 -- 4 parts of nibble
 * bytes for Q4_0 (288 bytes a group, as stored), 8 parts of quants for
 * Q8_0, each stored XOR 0x80 (w + 128 as an unsigned byte; 544 bytes, as
 * stored). So every int32 lane of a 64-byte load is one block: VPDPBUSD
 * gathers a block's products in its own lane, the 16 lanes meet the 16
 * scales as one conversion gives them, and neither the quants nor the
 * scales are permuted (the activation's act_t16 parts line up, kernels/
 * quant_internal.h). Q8_0's + 128 makes its quants unsigned, as VPDPBUSD
 * wants, for 128 times the activation's block sums, which the activation
 * carries (Q4_0's offset 8 works the same way). */
#define QK_T16 512
/* DT_Q4_K_T16: Q4_K in groups of two super-blocks (512 values, 288 bytes,
 * as stored) for the AVX-512 decode (kernels/quant_avx512.c), never in a
 * file: the T16 layout with a sub-block of 32 per int32 lane. A group is
 *   bytes 0-7    d of super-blocks 0 and 1, then their dmin (f16);
 *   bytes 8-31   a little-endian stream of 32 fields of 6 bits: field i
 *                (bits 6i..6i+5) sub-block i's scale, field 16 + i its
 *                min (i = 8 s + j: sub-block j of super-block s);
 *   bytes 32-287 4 parts of 64 bytes: part p holds in lane i bytes
 *                4p..4p+3 of sub-block i's 16 nibble bytes, which are
 *                in Q4_0's order (byte k: element k low, 16 + k high).
 * So the quants meet the activation's act_t16 parts as Q4_0_T16's do (the
 * same activation), the 16 scales and mins come out of the stream in three
 * vector operations with VBMI (a byte permute, a multishift, an AND), ~8
 * without, where the stored packing takes ~12 per super-block,
 * and a group's 16 sub-block sums are one conversion and one FMA. */
static inline int dtype_is_t16(int t) { return t == DT_Q4_0_T16 || t == DT_Q8_0_T16 || t == DT_Q4_K_T16; }
/* Super-block h (0 or 1) of a DT_Q4_K_T16 group as stored (a BlockQ4_K's
 * 144 bytes into out). */
void dtype_q4k_t16_block(const void *group, int h, void *out);
/* The stored type of a T16 layout of 32-value blocks (DT_Q4_0 or DT_Q8_0), else 0. */
static inline int dtype_t16_base(int t) { return t == DT_Q4_0_T16 ? DT_Q4_0 : t == DT_Q8_0_T16 ? DT_Q8_0 : 0; }
/* Block j (< 16) of a T16 group: its f16 scale, and its quants as stored
 * in `qs` (Q4_0: 16 nibble bytes; Q8_0: 32 signed quants). */
static inline uint16_t dtype_t16_block(int t, const void *group, int j, uint8_t *qs) {
    const uint8_t *g = (const uint8_t *)group;
    const int parts = t == DT_Q8_0_T16 ? 8 : 4;
    const uint8_t bias = t == DT_Q8_0_T16 ? 0x80 : 0;
    for (int k = 0; k < parts; k++)
        for (int i = 0; i < 4; i++) qs[4 * k + i] = g[32 + 64 * k + 4 * j + i] ^ bias;
    return (uint16_t)(g[2 * j] | g[2 * j + 1] << 8);
}

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

/* ---- Q2_K, Q3_K, Q5_K, IQ4_XS (dtype_kquant.c) ----
 * Super-blocks of 256, ggml's layouts (ggml-common.h):
 *   Q2_K: 16 sub-blocks of 16, x = d*sc*q - dmin*m, q 2 bits (0..3), sc and
 *         m 4 bits each (scales[j] = sc | m << 4). Element e = 128h + 32k + l
 *         (l < 32) is bits 2k..2k+1 of qs[32h + l].
 *   Q3_K: 16 sub-blocks of 16, x = d*sc*q, q 3 bits signed (-4..3): the low
 *         2 bits as Q2_K's qs, the third bit (set: +4, stored q + 4) bit
 *         4h + k of hmask[l]; sc 6 bits (stored sc + 32): low 4 bits in the
 *         nibbles of scales[0..7] (j < 8 low nibble of byte j, else high of
 *         byte j-8), top 2 bits in bits 2(j/4).. of scales[8 + j%4].
 *   Q5_K: Q4_K's 8 sub-blocks of 32 and scale/min packing, q 5 bits: the
 *         low 4 as Q4_K's, the fifth bit j of qh[l] (sub-block j, l < 32).
 *   IQ4_XS: 8 sub-blocks of 32, x = d*sc*L[q], L the 16 IQ4 levels, q 4 bits
 *         (Q4_0's order within a sub-block: byte l low nibble element l,
 *         high nibble l + 16), sc 6 bits (stored sc + 32): low 4 bits in
 *         nibble j%2 of scales_l[j/2], top 2 bits at bits 2j of scales_h. */
typedef struct BlockQ2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d, dmin; /* f16 */
} BlockQ2_K;

typedef struct BlockQ3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d; /* f16 */
} BlockQ3_K;

typedef struct BlockQ5_K {
    uint16_t d, dmin; /* f16 */
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} BlockQ5_K;

typedef struct BlockIQ4_XS {
    uint16_t d; /* f16 */
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} BlockIQ4_XS;

/* IQ4_XS's levels are IQ4_NL's: IQ4_NL_VALUES, declared below. */

/* Field readers: quant of element e (0..255) as the value it multiplies
 * (Q3_K: -4..3; Q5_K: 0..31; IQ4_XS: the level index 0..15), sub-block
 * scales (Q3_K, IQ4_XS: signed, -32..31; Q5_K: Q4_K's 6-bit scale/min). */
int q2k_quant(const BlockQ2_K *b, int e);
int q3k_scale(const uint8_t *scales, int j);
int q3k_quant(const BlockQ3_K *b, int e);
void q5k_scale_min(int j, const uint8_t *scales, int *sc, int *mn);
int q5k_quant(const BlockQ5_K *b, int e);
int iq4xs_scale(const BlockIQ4_XS *b, int j);
int iq4xs_index(const BlockIQ4_XS *b, int e);
/* nb super-blocks at src to f32 (dequantize_row's cases). */
void deq_q2_k(const void *src, float *dst, int64_t nb);
void deq_q3_k(const void *src, float *dst, int64_t nb);
void deq_q5_k(const void *src, float *dst, int64_t nb);
void deq_iq4_xs(const void *src, float *dst, int64_t nb);
/* n floats (a multiple of 256) into super-blocks: per sub-block an affine
 * (Q2_K, Q5_K: min/max, then shrunk ranges refined by least squares) or
 * symmetric fit (Q3_K: largest magnitude -> -4 on a grid of 17 scales;
 * IQ4_XS: -> the level -127, 15 scales; each refined by least squares),
 * keeping the least squared error; the sub-block scales coded against f16
 * super-scales, the quants rounded with the coded scales. */
void quantize_row_q2_k(const float *src, void *dst, int64_t n);
void quantize_row_q3_k(const float *src, void *dst, int64_t n);
void quantize_row_q5_k(const float *src, void *dst, int64_t n);
void quantize_row_iq4_xs(const float *src, void *dst, int64_t n);
/* ---- end of dtype_kquant.c ---- */

/* Lower-case ggml name ("f32", "q8_0", "bf16"), or "?" for unknown. */
const char *dtype_name(int t);
/* Parses ggml names ("q8_0") and safetensors names ("F32", "BF16", "I64")
 * case-insensitively; DT_INVALID if unknown. */
int dtype_from_name(const char *s);
/* Blocks a group of a Q4_0 layout: 1 for DT_Q4_0, 4 for DT_Q4_0_G4, 16
 * for DT_Q4_0_G16 and DT_Q4_0_T16, else 0. Inline: the kernels ask per row
 * and per block. */
static inline int dtype_q4_0_group_blocks(int t) {
    return t == DT_Q4_0 ? 1 : t == DT_Q4_0_G4 ? 4 : t == DT_Q4_0_G16 || t == DT_Q4_0_T16 ? 16 : 0;
}
/* n values (a multiple of 32 g) of Q4_0 blocks into the order of groups of
 * g blocks (the layout of dtype_q4_0_group_blocks' types; src and dst do
 * not overlap). */
void dtype_q4_0_regroup(const void *src, void *dst, int64_t n, int g);
/* The in-memory layouts (types from 102 on: Q4_0 in groups of 4 or 16,
 * the 32-value types in fours, Q4_K / Q5_K in pairs, the T16 layouts): the stored type a layout regroups, or 0
 * for any other type; and n values of a row of that stored type into
 * layout `to` (src and dst do not overlap). */
int dtype_regrouped_from(int to);
void dtype_regroup(int to, const void *src, void *dst, int64_t n);
/* Name safetensors uses in its header ("F32"), or NULL if it has none. */
const char *dtype_st_name(int t);
/* 1 for a type this code knows (size and block layout). */
int dtype_valid(int t);
int dtype_is_quantized(int t);
/* The type llama.cpp's quantiser gives a matrix whose rows of `cols`
 * values are not whole blocks of `t` (llama-quant.cpp's fallbacks): Q2_K,
 * Q3_K and IQ4_XS take IQ4_NL, Q4_K takes Q5_0, Q5_K Q5_1, Q6_K Q8_0;
 * F16 when even that does not fit (or t has no fallback); t itself when
 * the rows fit. Vectors and float types are the caller's business. */
int dtype_row_fallback(int t, int64_t cols);
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
/* Whether dequantize_row converts F16 rows with the CPU's F16C (chosen at
 * run time; the same bits as f16_to_f32). enable 0 forces the scalar loop,
 * 1 allows F16C again, -1 only asks. For tests: not thread-safe. */
int dtype_f16_hw(int enable);

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

/* ---- the 32-element types llama.cpp falls back to (dtype_legacy.c) ----
 * Its K-quant presets need rows that are multiples of 256; other rows
 * (Qwen2.5-0.5B's 896) take Q5_0 (for Q4_K), Q5_1 (Q5_K), IQ4_NL (IQ4_XS,
 * Q2_K, Q3_K). Layouts are ggml's; in every one byte j of qs holds element
 * j (low nibble) and element j+16 (high nibble), and in the 5-bit types
 * bit j of the little-endian 32-bit qh is element j's fifth bit:
 *   Q4_1:   f16 d, f16 m, 16 bytes of nibbles      -> x = d*q + m
 *   Q5_0:   f16 d, 4 bytes qh, 16 bytes of nibbles -> x = d*(q - 16)
 *   Q5_1:   f16 d, f16 m, 4 bytes qh, 16 bytes     -> x = d*q + m
 *   IQ4_NL: f16 d, 16 bytes of nibbles             -> x = d*IQ4_NL_VALUES[q]
 *           (a non-linear grid, denser near 0 where weights cluster) */
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK4_NL 32

typedef struct BlockQ4_1 {
    uint16_t d, m; /* f16 */
    uint8_t qs[QK4_1 / 2];
} BlockQ4_1;

typedef struct BlockQ5_0 {
    uint16_t d; /* f16 */
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} BlockQ5_0;

typedef struct BlockQ5_1 {
    uint16_t d, m; /* f16 */
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} BlockQ5_1;

typedef struct BlockIQ4_NL {
    uint16_t d; /* f16 */
    uint8_t qs[QK4_NL / 2];
} BlockIQ4_NL;

/* IQ4_NL's 16 grid values (ggml's kvalues_iq4nl). */
extern const int8_t IQ4_NL_VALUES[16];

/* nb blocks of type t (one of the four above) at src to 32*nb floats; -1
 * for another type. dequantize_row calls this. */
int dequantize_blocks_legacy(int t, const uint8_t *src, float *dst, int64_t nb);
/* n floats (a multiple of 32) to blocks at dst. Q4_1/Q5_1 map each block's
 * min/max to 0 and 15/31, Q5_0 its largest magnitude (sign kept) to -16,
 * each value rounded to the nearest step, as ggml's reference quantisers
 * do. IQ4_NL searches the scale as llama-quantize does (without an
 * importance matrix): candidates map the largest magnitude to grid values
 * near the end of the grid, each refitted by x^2-weighted least squares,
 * keeping the best fit; the values are then re-rounded to the grid with
 * that scale. */
void quantize_row_q4_1(const float *src, void *dst, int64_t n);
void quantize_row_q5_0(const float *src, void *dst, int64_t n);
void quantize_row_q5_1(const float *src, void *dst, int64_t n);
void quantize_row_iq4_nl(const float *src, void *dst, int64_t n);

/* DT_Q4_1_G4, DT_Q5_0_G4, DT_Q5_1_G4, DT_IQ4_NL_G4: the 32-value types
 * above regrouped in fours for the AVX2 decode (kernels/quant_legacy.c),
 * never in a file (as DT_Q4_0_G4). A "block" of 128 values is 4 stored
 * blocks of a row, the same bytes reordered (80 / 88 / 96 / 72 bytes):
 *   the 4 blocks' f16 d, then (Q4_1, Q5_1) their 4 f16 m;
 *   (Q5_0, Q5_1) their fifth bits as a 16-byte plane: bit 4h + 2s + l of
 *     byte i is the fifth bit of element 16s + i of block 2h + l (h: the
 *     pair, l: the block in it, s: the half, elements 0-15 or 16-31);
 *   their 4 x 16 bytes of nibbles in order.
 * The AVX2 dot converts a group's 4 d at once (and multiplies them by the
 * activation's 4 dx at once), reads a pair's nibbles with one 32-byte load,
 * and the fifth bits of each of its 32-byte halves (the pair's elements
 * 0-15, or 16-31) with one shift of the plane, per 128-bit lane by its own
 * count, and one AND: bit 4h + 2s + l reaches bit 4 by a left shift of 4 -
 * b or a right shift of b - 4 without crossing a byte. The stored layout
 * spreads each block's 32 bits with a byte shuffle, an AND and a compare
 * per half, and gathers each pair's scales and nibbles from two places. */
#define QKL_G4 128
/* The stored type of a regrouped one (DT_Q5_0 for DT_Q5_0_G4, ...), else 0. */
static inline int dtype_legacy_g4_base(int t) {
    return t == DT_Q5_0_G4     ? DT_Q5_0
           : t == DT_Q5_1_G4   ? DT_Q5_1
           : t == DT_Q4_1_G4   ? DT_Q4_1
           : t == DT_IQ4_NL_G4 ? DT_IQ4_NL
                               : 0;
}
/* The regrouped type of a stored one, else 0: the inverse of the map
 * above (the four regrouped types are numbered 104-107). */
static inline int dtype_legacy_g4_of(int t) {
    for (int g = DT_Q5_0_G4; g <= DT_IQ4_NL_G4; g++)
        if (t && dtype_legacy_g4_base(g) == t) return g;
    return 0;
}
/* DT_Q4_K_PAIRS, DT_Q5_K_PAIRS: Q4_K and Q5_K with their bits reordered
 * for the AVX2 decode (kernels/quant.c, quant_kquant.c), never in a file.
 * A block is one of the stored type's, 256 values in the same bytes (144,
 * 176): d, dmin and the 12 bytes of scales as stored;
 *   the 128 bytes of nibbles as four 32-byte pairs of sub-blocks: pair p
 *     holds sub-block dtype_k_pair_first(p) (0, 4, 1, 5) in bytes 0-15
 *     and the sub-block two after it (2, 6, 3, 7) in bytes 16-31, each as
 *     Q4_0 packs a block (byte i: element i in the low nibble, element
 *     16 + i in the high);
 *   (Q5_K, in place of its qh) the fifth bits as a 32-byte plane laid out
 *     as the pairs: bit 2p + h of byte 16L + i is the fifth bit of element
 *     16h + i of sub-block dtype_k_pair_first(p) + 2L.
 * Stored, each 32 bytes of nibbles hold sub-blocks 2k and 2k + 1 as low
 * and high nibbles, so each 128-bit half of a 32-byte load holds halves of
 * two sub-blocks whose activation scales differ; paired by 128-bit lane,
 * one int16 add joins a sub-block's two halves before one widening, one
 * conversion and one FMA per pair (two each stored), and the pairs are
 * the ones the activation's Q4_K order already has (kernels/
 * quant_internal.h, act_qk). A pair half's fifth bits are one constant
 * shift of the plane (bit 2p + h to bit 4; no bit crosses a byte) and an
 * AND, for both its sub-blocks at once. */
static inline int dtype_k_pair_first(int p) { return (p % 2) * 4 + p / 2; }
/* The stored type of a layout in pairs (DT_Q4_K for DT_Q4_K_PAIRS), else
 * 0; the layout in pairs of a stored type, else 0. */
static inline int dtype_k_pairs_base(int t) {
    return t == DT_Q4_K_PAIRS ? DT_Q4_K : t == DT_Q5_K_PAIRS ? DT_Q5_K : 0;
}
static inline int dtype_k_pairs_of(int t) { return t == DT_Q4_K ? DT_Q4_K_PAIRS : t == DT_Q5_K ? DT_Q5_K_PAIRS : 0; }
/* n values of stored type base (DT_Q4_K, DT_Q5_K) into its layout in pairs
 * (src and dst do not overlap), and block i of a row in pairs (type t)
 * back as stored. */
void dtype_k_pairs_regroup(int base, const void *src, void *dst, int64_t n);
void dtype_k_pairs_block(int t, const void *row, int64_t i, void *out);
/* Where a group of a stored type base lies, per the layout above: whether
 * its blocks have an m, a fifth bit; the byte offsets of its plane and of
 * its nibbles in the group. */
static inline int dtype_legacy_has_m(int base) { return base == DT_Q4_1 || base == DT_Q5_1; }
static inline int dtype_legacy_has_qh(int base) { return base == DT_Q5_0 || base == DT_Q5_1; }
static inline int dtype_legacy_g4_plane_at(int base) { return 8 + 8 * dtype_legacy_has_m(base); }
static inline int dtype_legacy_g4_nibbles_at(int base) {
    return dtype_legacy_g4_plane_at(base) + 16 * dtype_legacy_has_qh(base);
}
/* n values (a multiple of 128) of stored blocks of type base (Q4_1,
 * Q5_0, Q5_1 or IQ4_NL) into the regrouped layout (src and dst do not overlap). */
void dtype_legacy_regroup(int base, const void *src, void *dst, int64_t n);
/* Block b (of 32 values) of a row of type t, a legacy type stored or
 * regrouped, as it is stored (dtype_block_bytes of the stored type). */
void dtype_legacy_block(int t, const void *row, int64_t b, uint8_t *out);

#endif
