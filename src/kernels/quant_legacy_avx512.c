/* quant_legacy_avx512: the Q4_1, Q5_0, Q5_1 and IQ4_NL dots of
 * quant_legacy.c with AVX-512 BW/VL/VNNI: two blocks per 512-bit register,
 * as quant_avx512.c's Q4_0 pair. The fifth bits of two Q5 blocks are one
 * 64-bit mask (bit i: byte i), so a masked move places them; IQ4_NL's grid
 * lookup is one byte shuffle, and its signed values meet VPDPBUSD (unsigned
 * x signed) as |v| times y negated where v < 0 (the quants |y| <= 127
 * negate exactly). The results equal legacy_dot_ref up to float
 * reordering (the integer sums are exact); tests/kernels/test_quant_legacy.c
 * checks it. */
#include "kernels/klevel.h" /* first: built once per kernel level */
#include <string.h>

#include "kernels/quant_internal.h"

#if KERNELS_AVX512
#include <immintrin.h>

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* T's layout: block bytes, offsets of qs and qh (-1: none), a min at 2. */
#define LAYOUT(T, B, QS, QH, HM)                                                                                       \
    const int B = T == DT_Q4_1 ? 20 : T == DT_Q5_0 ? 22 : T == DT_Q5_1 ? 24 : 18;                                      \
    const int QS = T == DT_Q4_1 ? 4 : T == DT_Q5_0 ? 6 : T == DT_Q5_1 ? 8 : 2;                                         \
    const int QH = T == DT_Q5_0 ? 2 : T == DT_Q5_1 ? 4 : -1;                                                           \
    const int HM = T == DT_Q4_1 || T == DT_Q5_1

static ALWAYS_INLINE void dot_legacy512(int pf, int T, const uint8_t *row, const void *const *x, int NX, long n, float *out) {
    LAYOUT(T, B, QS, QH, HM);
    const long nb = n / 32;
    __m512 acc[4];
    float off[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = _mm512_setzero_ps(), off[k] = 0;
    const __m512i m4 = _mm512_set1_epi8(15), shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    const __m512i grid = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES));
    for (long b = 0; b < nb; b += 2) {
        const int both = b + 1 < nb;
        const uint8_t *b0 = row + b * B, *b1 = b0 + B;
        if (!(b & 3)) prefetch_ahead(pf, b0, 2);
        /* 128-bit lanes: b0's elements 0-15, 16-31, then b1's (zeros if
         * there is no b1: nothing past the row is read) */
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b0 + QS)));
        v = both ? _mm512_mask_broadcast_i32x4(v, (__mmask16)0xff00, _mm_loadu_si128((const __m128i *)(b1 + QS)))
                 : _mm512_maskz_mov_epi32((__mmask16)0x00ff, v);
        v = _mm512_and_si512(_mm512_srlv_epi64(v, shift), m4);
        if (QH >= 0) {
            __mmask64 hb = (__mmask64)ld32(b0 + QH) | (both ? (__mmask64)ld32(b1 + QH) << 32 : 0);
            v = _mm512_or_si512(v, _mm512_maskz_mov_epi8(hb, _mm512_set1_epi8(0x10)));
        }
        __mmask64 neg = 0;
        if (T == DT_IQ4_NL) {
            __m512i w = _mm512_shuffle_epi8(grid, v);
            neg = _mm512_movepi8_mask(w);
            v = _mm512_abs_epi8(w);
        }
        float d0 = half(ld16(b0)), d1 = both ? half(ld16(b1)) : 0;
        float m0 = HM ? half(ld16(b0 + 2)) : 0, m1 = HM && both ? half(ld16(b1 + 2)) : 0;
        __m512 dw = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d0)), _mm256_set1_ps(d1), 1);
        const __mmask16 lanes = both ? (__mmask16)0xffff : (__mmask16)0x00ff;
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            /* the activation is padded to 64 bytes: a lone last block reads
             * zeros (and meets zero weights) in the upper half */
            __m512i y = _mm512_loadu_si512(act_q(x[k]) + 32 * b);
            if (T == DT_IQ4_NL) y = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, y);
            __m512 dx = _mm512_maskz_loadu_ps(lanes, act_dxx(x[k], n) + 8 * b);
            acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(s), acc[k]);
            const float *sx = act_sx(x[k], n) + b;
            if (HM) off[k] += m0 * sx[0] + (both ? m1 * sx[1] : 0);
            else if (T == DT_Q5_0) off[k] += d0 * sx[0] + (both ? d1 * sx[1] : 0);
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = _mm512_reduce_add_ps(acc[k]) + (T == DT_Q5_0 ? -16 * off[k] : off[k]);
}

#define LEGACY512_NX(T)                                                                                                \
    switch (nx) {                                                                                                      \
    case 1: dot_legacy512(pf, T, row, act, 1, n, out); return;                                                             \
    case 2: dot_legacy512(pf, T, row, act, 2, n, out); return;                                                             \
    case 3: dot_legacy512(pf, T, row, act, 3, n, out); return;                                                             \
    default: dot_legacy512(pf, T, row, act, 4, n, out); return;                                                            \
    }

static ALWAYS_INLINE void legacy512_dot_pf(int pf, int t, const void *row, const void *const *act, int nx, long n,
                                          float *out) {
    switch (t) {
    case DT_Q4_1: LEGACY512_NX(DT_Q4_1)
    case DT_Q5_0: LEGACY512_NX(DT_Q5_0)
    case DT_Q5_1: LEGACY512_NX(DT_Q5_1)
    default: LEGACY512_NX(DT_IQ4_NL)
    }
}

void legacy512_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    WITH_PREFETCH_MODE(legacy512_dot_pf(pf, t, row, act, nx, n, out));
}
#endif
