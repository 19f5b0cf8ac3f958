/* gemm_q_unpack: a quantised row's values unpacked 256 at a time into
 * unsigned bytes in element order with a scale (and an offset for the
 * types with mins) per group of 16 -- every weight type's values as
 * w = scale (u - o) - offset. Shared by the AVX-512 tiles of the prefill's
 * integer GEMM: gemm_q_grp.c (VNNI) and gemm_q_amx.c (AMX). Included by
 * kernel level sources only, inside their KERNELS_AVX512 sections. */
#ifndef ALOE_KERNELS_GEMM_Q_UNPACK_H
#define ALOE_KERNELS_GEMM_Q_UNPACK_H

#include <immintrin.h>
#include <string.h>

#include "kernels/quant_internal.h"

/* The integer offset o of w = scale (u - o), or 0 for the types with mins. */
static inline int grp_ioff(int t) {
    switch (t) {
    case DT_Q6_K: return 32;
    case DT_Q3_K: return 4;
    case DT_Q5_0: return 16;
    case DT_IQ4_XS:
    case DT_IQ4_NL: return 128;
    default: return 0;
    }
}

static inline int grp_mins(int t) {
    return t == DT_Q4_K || t == DT_Q4_K_T16 || t == DT_Q5_K || t == DT_Q2_K || t == DT_Q4_1 || t == DT_Q5_1;
}

/* 16 lanes: lane g = v[g / 2] (a scale per 32 over its two groups of 16). */
static ALWAYS_INLINE __m512 pairs_ps(__m256 v) {
    const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    return _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(v));
}

static ALWAYS_INLINE __m512i bcast32(const uint8_t *p) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* A 32-block's 32 quants in element order as unsigned bytes (IQ4_NL: the
 * level + 128; Q8_0: q + 128), its scale and offset (Q4_1/Q5_1: -m; the
 * others' integer offsets are grp_ioff's, and Q8_0's 128 and Q4_0's 8
 * gemm_q_amx.c's). */
static ALWAYS_INLINE __m256i legacy_block(int t, const char *row, long b, float *sc, float *off) {
    const uint8_t *qs;
    uint8_t buf[16]; /* a T16 block's nibbles, gathered */
    uint32_t qh = 0;
    *off = 0;
    if (t == DT_Q8_0) { /* + 128 as the IQ4 levels (gemm_q_amx.c only) */
        const BlockQ8_0 *q = (const BlockQ8_0 *)row + b;
        *sc = half(q->d);
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)q->qs), _mm256_set1_epi8((char)0x80));
    }
    if (act_has_q4(t)) { /* Q4_0 as stored or regrouped (gemm_q_amx.c only; it packs the T16 layouts itself): offset 8 */
        uint16_t d;
        qs = q4_0_block(t, row, b, &d, buf);
        *sc = half(d);
        t = DT_Q4_0;
    } else
    switch (t) {
    case DT_Q4_1: {
        const BlockQ4_1 *q = (const BlockQ4_1 *)row + b;
        qs = q->qs, *sc = half(q->d), *off = -half(q->m);
        break;
    }
    case DT_Q5_0: {
        const BlockQ5_0 *q = (const BlockQ5_0 *)row + b;
        qs = q->qs, *sc = half(q->d);
        memcpy(&qh, q->qh, 4);
        break;
    }
    case DT_Q5_1: {
        const BlockQ5_1 *q = (const BlockQ5_1 *)row + b;
        qs = q->qs, *sc = half(q->d), *off = -half(q->m);
        memcpy(&qh, q->qh, 4);
        break;
    }
    default: {
        const BlockIQ4_NL *q = (const BlockIQ4_NL *)row + b;
        qs = q->qs, *sc = half(q->d);
        break;
    }
    }
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(15);
    __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
    if (t == DT_IQ4_NL) {
        const __m128i lut = _mm_xor_si128(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES), _mm_set1_epi8((char)0x80));
        u = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(lut), u);
    } else if (t == DT_Q5_0 || t == DT_Q5_1) {
        /* bit i of qh is element i's fifth bit: qh is the byte mask */
        u = _mm256_or_si256(u, _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(16)));
    }
    return u;
}

/* Unit u of a row of type t (n values, nb = n / 32 blocks): its quants in
 * natural order, unsigned (nat), and per group of 16 the scale and the
 * offset of the mins (0 for the integer-offset types), zero past the row. */
static ALWAYS_INLINE void unpack_unit(int t, const char *row, long u, long nb, __m512i nat[4], __m512 *sc,
                                      __m512 *off) {
    const __m512i m4 = _mm512_set1_epi8(15), m1 = _mm512_set1_epi8(1), m3 = _mm512_set1_epi8(3);
    switch (t) {
    case DT_Q4_K:
    case DT_Q5_K: {
        const BlockQ4_K *b4 = (const BlockQ4_K *)row + u;
        const BlockQ5_K *b5 = (const BlockQ5_K *)row + u;
        const void *blk = t == DT_Q4_K ? (const void *)b4 : (const void *)b5;
        const uint8_t *qs = t == DT_Q4_K ? b4->qs : b5->qs;
        __m256 scv, mnv;
        kq45_scales16(blk, &scv, &mnv);
        *sc = pairs_ps(scv), *off = pairs_ps(mnv);
        /* 32 bytes of qs: sub-block 2k in the low nibbles, 2k+1 in the high */
        const __m512i nib = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
        for (int k = 0; k < 4; k++) {
            nat[k] = _mm512_and_si512(_mm512_srlv_epi16(bcast32(qs + 32 * k), nib), m4);
            if (t == DT_Q5_K) {
                __m512i hc = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * k)), _mm256_set1_epi16((short)(2 * k + 1)), 1);
                nat[k] = _mm512_or_si512(nat[k], _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(bcast32(b5->qh), hc), m1), 4));
            }
        }
        return;
    }
    case DT_Q4_K_T16: { /* super-block u % 2 of group u / 2 (formats/dtype.h) */
        const char *g = row + (size_t)(u / 2) * 2 * sizeof(BlockQ4_K);
        const int h = (int)(u % 2);
        __m512 s16, m16;
        q4kt_scales16(g, &s16, &m16);
        *sc = pairs_ps(h ? _mm512_extractf32x8_ps(s16, 1) : _mm512_castps512_ps256(s16));
        *off = pairs_ps(h ? _mm512_extractf32x8_ps(m16, 1) : _mm512_castps512_ps256(m16));
        /* the parts' dwords transposed 4 x 4 per 128-bit lane: r[m]'s lane L
         * holds sub-block 4L + m's 16 nibble bytes (lanes 2h, 2h + 1 this
         * super-block's) */
        __m512i p[4], r[4];
        for (int k = 0; k < 4; k++) p[k] = _mm512_loadu_si512(g + 32 + 64 * k);
        __m512i t0 = _mm512_unpacklo_epi32(p[0], p[1]), t1 = _mm512_unpackhi_epi32(p[0], p[1]);
        __m512i t2 = _mm512_unpacklo_epi32(p[2], p[3]), t3 = _mm512_unpackhi_epi32(p[2], p[3]);
        r[0] = _mm512_unpacklo_epi64(t0, t2), r[1] = _mm512_unpackhi_epi64(t0, t2);
        r[2] = _mm512_unpacklo_epi64(t1, t3), r[3] = _mm512_unpackhi_epi64(t1, t3);
        /* values 64k.. : sub-block 2k's low nibbles (its elements 0-15), its
         * high ones (16-31), then sub-block 2k + 1's */
        const __m512i base = _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 16, 17, 18, 19, 16, 17, 18, 19);
        const __m512i shifts = _mm512_setr_epi32(0, 0, 0, 0, 0x40004, 0x40004, 0x40004, 0x40004, 0, 0, 0, 0, 0x40004,
                                                 0x40004, 0x40004, 0x40004);
        for (int k = 0; k < 4; k++) {
            const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(4 * (2 * h + k / 2)));
            const __m512i two = _mm512_permutex2var_epi32(r[2 * (k % 2)], idx, r[2 * (k % 2) + 1]);
            nat[k] = _mm512_and_si512(_mm512_srlv_epi16(two, shifts), m4);
        }
        return;
    }
    case DT_Q6_K: {
        const BlockQ6_K *b = (const BlockQ6_K *)row + u;
        *sc = _mm512_mul_ps(_mm512_set1_ps(half(b->d)),
                            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->scales))));
        *off = _mm512_setzero_ps();
        /* the decode kernel's unpacking (quant_avx512.c): low nibbles of
         * ql[64h..] are values 128h + 0..63, high ones 128h + 64..127; the
         * two high bits from qh, shifted within 64-bit lanes to bits 4-5 */
        const __m512i m30 = _mm512_set1_epi8(0x30);
        for (int h = 0; h < 2; h++) {
            __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
            __m512i qh = bcast32(b->qh + 32 * h);
            __m512i hi01 = _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2)), m30);
            __m512i hi23 = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2)), m30);
            nat[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), hi01);
            nat[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), hi23);
        }
        return;
    }
    case DT_Q2_K:
    case DT_Q3_K: {
        const uint8_t *qs, *hmask = NULL;
        float scs[16], offs[16];
        if (t == DT_Q3_K) {
            const BlockQ3_K *b = (const BlockQ3_K *)row + u;
            float d = half(b->d);
            const uint8_t *s = b->scales;
            for (int j = 0; j < 16; j++) { /* the 6-bit scale, stored + 32 (formats/dtype.h) */
                int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4, hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
                scs[j] = d * (float)((lo | hi << 4) - 32), offs[j] = 0;
            }
            qs = b->qs, hmask = b->hmask;
        } else {
            const BlockQ2_K *b = (const BlockQ2_K *)row + u;
            float d = half(b->d), dmin = half(b->dmin);
            for (int j = 0; j < 16; j++) scs[j] = d * (float)(b->scales[j] & 15), offs[j] = dmin * (float)(b->scales[j] >> 4);
            qs = b->qs;
        }
        *sc = _mm512_loadu_ps(scs), *off = _mm512_loadu_ps(offs);
        /* field f of the half's 32 bytes is values 128h + 32f + 0..31;
         * Q3_K's third bit is bit 4h + f of hmask */
        __m512i hm = t == DT_Q3_K ? bcast32(hmask) : _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i v = bcast32(qs + 32 * h);
            for (int f = 0; f < 4; f += 2) {
                __m512i cnt = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * f)), _mm256_set1_epi16((short)(2 * f + 2)), 1);
                __m512i q = _mm512_and_si512(_mm512_srlv_epi16(v, cnt), m3);
                if (t == DT_Q3_K) {
                    __m512i hc = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * h + f)), _mm256_set1_epi16((short)(4 * h + f + 1)), 1);
                    q = _mm512_or_si512(q, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hm, hc), m1), 2));
                }
                nat[2 * h + f / 2] = q;
            }
        }
        return;
    }
    case DT_IQ4_XS: {
        const BlockIQ4_XS *b = (const BlockIQ4_XS *)row + u;
        float d = half(b->d), scs[8];
        for (int j = 0; j < 8; j++) { /* the 6-bit scale, stored + 32 (formats/dtype.h) */
            int lo = (b->scales_l[j / 2] >> (4 * (j % 2))) & 15, hi = (b->scales_h >> (2 * j)) & 3;
            scs[j] = d * (float)((lo | hi << 4) - 32);
        }
        *sc = pairs_ps(_mm256_loadu_ps(scs)), *off = _mm512_setzero_ps();
        const __m128i lut128 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES), _mm_set1_epi8((char)0x80));
        const __m512i lut = _mm512_broadcast_i32x4(lut128);
        for (int p = 0; p < 4; p++) { /* sub-blocks 2p, 2p+1: 32 bytes, low nibbles elements 0-15 */
            __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * p));
            __m256i lo = _mm256_and_si256(v, _mm256_set1_epi8(15));
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
            __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); /* lo j, lo j+1, hi j, hi j+1 */
            idx = _mm512_shuffle_i64x2(idx, idx, _MM_SHUFFLE(3, 1, 2, 0));
            nat[p] = _mm512_shuffle_epi8(lut, idx);
        }
        return;
    }
    default: { /* the 32-blocks: blocks 8u + 2k and 8u + 2k + 1 in nat[k] */
        float scs[16], offs[16];
        for (int k = 0; k < 4; k++) {
            __m256i h[2];
            for (int e = 0; e < 2; e++) {
                long b = 8 * u + 2 * k + e;
                float s = 0, o = 0;
                h[e] = b < nb ? legacy_block(t, row, b, &s, &o) : _mm256_setzero_si256();
                scs[4 * k + 2 * e] = scs[4 * k + 2 * e + 1] = s;
                offs[4 * k + 2 * e] = offs[4 * k + 2 * e + 1] = o;
            }
            nat[k] = _mm512_inserti64x4(_mm512_castsi256_si512(h[0]), h[1], 1);
        }
        *sc = _mm512_loadu_ps(scs), *off = _mm512_loadu_ps(offs);
        return;
    }
    }
}

#endif
