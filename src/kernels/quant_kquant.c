/* quant_kquant: dots of Q2_K, Q3_K, Q5_K and IQ4_XS rows (formats/
 * dtype_kquant.c's layouts) with the quantised activation of
 * quant_internal.h: Q8_0 blocks of 32 with their scaled sums per 32 (sx)
 * and per 16 (s16). Q2_K and Q3_K have a scale per 16 values, so one
 * activation block meets two weight scales; their offsets (Q2_K's mins,
 * Q3_K's stored q + 4) come off through s16, Q5_K's mins through sx, as
 * for Q4_K. IQ4_XS's levels are signed: dotted with the sign trick.
 *
 * Every type has a plain reference (kquant_dot_ref) and an AVX2 dot
 * (VPDPBUSD on 256 bits where the build has AVX-512 VNNI or AVX-VNNI, else
 * maddubs) and an AVX-512 one (kquant512_dot_n, 64 weights a step), which
 * quant_avx512.c's dispatch calls. */
#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/quant_internal.h"

#include <string.h>

int kquant_is(int t) { return t == DT_Q2_K || t == DT_Q3_K || t == DT_Q5_K || t == DT_IQ4_XS || t == DT_Q5_K_PAIRS; }

/* ---- references: the plain definitions ---- */

float kquant_dot_ref(int t, const void *row, const void *act, long n) {
    const int8_t *xq = act_q(act);
    const float *dx = act_dx(act, n);
    float sum = 0;
    for (long i = 0; i < n / QK_K; i++) {
        const int8_t *y = xq + QK_K * i;
        const float *dxi = dx + 8 * i;
        switch (t) {
        case DT_Q2_K: { /* w = d*sc*q - dmin*m per 16 */
            const BlockQ2_K *b = (const BlockQ2_K *)row + i;
            float d = half(b->d), dmin = half(b->dmin);
            for (int j = 0; j < 16; j++) {
                int dot = 0, sy = 0;
                for (int l = 0; l < 16; l++) dot += q2k_quant(b, 16 * j + l) * y[16 * j + l], sy += y[16 * j + l];
                sum += dxi[j / 2] * (d * (float)(b->scales[j] & 0xf) * (float)dot - dmin * (float)(b->scales[j] >> 4) * (float)sy);
            }
            break;
        }
        case DT_Q3_K: { /* w = d*sc*q per 16 */
            const BlockQ3_K *b = (const BlockQ3_K *)row + i;
            float d = half(b->d);
            for (int j = 0; j < 16; j++) {
                int dot = 0;
                for (int l = 0; l < 16; l++) dot += q3k_quant(b, 16 * j + l) * y[16 * j + l];
                sum += dxi[j / 2] * d * (float)q3k_scale(b->scales, j) * (float)dot;
            }
            break;
        }
        case DT_Q5_K:
        case DT_Q5_K_PAIRS: { /* w = d*sc*q - dmin*m per 32 */
            BlockQ5_K stored;
            const BlockQ5_K *b = (const BlockQ5_K *)row + i;
            if (t == DT_Q5_K_PAIRS) dtype_k_pairs_block(t, row, i, &stored), b = &stored;
            float d = half(b->d), dmin = half(b->dmin);
            for (int j = 0; j < 8; j++) {
                int sc, mn, dot = 0, sy = 0;
                q5k_scale_min(j, b->scales, &sc, &mn);
                for (int l = 0; l < 32; l++) dot += q5k_quant(b, 32 * j + l) * y[32 * j + l], sy += y[32 * j + l];
                sum += dxi[j] * (d * (float)sc * (float)dot - dmin * (float)mn * (float)sy);
            }
            break;
        }
        case DT_IQ4_XS: { /* w = d*sc*L[q] per 32 */
            const BlockIQ4_XS *b = (const BlockIQ4_XS *)row + i;
            float d = half(b->d);
            for (int j = 0; j < 8; j++) {
                int dot = 0;
                for (int l = 0; l < 32; l++) dot += IQ4_NL_VALUES[iq4xs_index(b, 32 * j + l)] * y[32 * j + l];
                sum += dxi[j] * d * (float)iq4xs_scale(b, j) * (float)dot;
            }
            break;
        }
        default: return 0;
        }
    }
    return sum;
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)


/* dot_u8s8 (quant_internal.h): u <= 63 here, so maddubs' pairwise sums
 * stay below 2*63*128 < 32767. Lanes 0-3 are the first 16 bytes, 4-7 the
 * last 16. */

static inline __m256i load_y(const int8_t *xq, long b) { return _mm256_loadu_si256((const __m256i *)(xq + 32 * b)); }

/* Two scales of 16 as one vector: lanes 0-3 s0, lanes 4-7 s1. */
static inline __m256 two_scales(float s0, float s1) { return _mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0)); }

/* Q2_K and Q3_K share a walk: for each half h of 128 and k = 0..3, the 2-bit
 * field k of the half's 32 bytes of qs is elements 128h + 32k + 0..31, one
 * activation block; Q3_K adds its high bit from hmask. The sixteen scales
 * (d*sc, and Q2_K's dmin*m) are made once per super-block; the offsets go
 * through s16 in one FMA per 8 sub-blocks. */
static ALWAYS_INLINE void dot_q23_n(int pf, int q3, const void *row, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *s16[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n), s16[k] = act_s16(act[k], n);
    __m256 acc[4], acco[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = acco[k] = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    for (long i = 0; i < n / QK_K; i++) {
        float sc[16], off[16];
        const uint8_t *qs;
        __m256i hm = _mm256_setzero_si256();
        if (q3) {
            const BlockQ3_K *b = (const BlockQ3_K *)row + i;
            float d = half(b->d);
            for (int j = 0; j < 16; j++) sc[j] = d * (float)q3k_scale(b->scales, j), off[j] = 4 * sc[j];
            qs = b->qs;
            hm = _mm256_loadu_si256((const __m256i *)b->hmask);
            prefetch_ahead(pf, b, 2);
        } else {
            const BlockQ2_K *b = (const BlockQ2_K *)row + i;
            float d = half(b->d), dmin = half(b->dmin);
            for (int j = 0; j < 16; j++) sc[j] = d * (float)(b->scales[j] & 0xf), off[j] = dmin * (float)(b->scales[j] >> 4);
            qs = b->qs;
            prefetch_ahead(pf, b, 2);
        }
        __m256 o0 = _mm256_loadu_ps(off), o1 = _mm256_loadu_ps(off + 8);
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            acco[k] = _mm256_fmadd_ps(o0, _mm256_loadu_ps(s16[k] + 16 * i), acco[k]);
            acco[k] = _mm256_fmadd_ps(o1, _mm256_loadu_ps(s16[k] + 16 * i + 8), acco[k]);
        }
        for (int h = 0; h < 2; h++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
            for (int f = 0; f < 4; f++) {
                /* 16-bit shifts: the masks keep each byte's own bits */
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * f), m3);
                if (q3) q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + f), m1), 2));
                int j = 8 * h + 2 * f;
                long blk = 8 * i + 4 * h + f;
                __m256 s = two_scales(sc[j], sc[j + 1]);
                UNROLL_NX
                for (int k = 0; k < NX; k++) {
                    __m256 p = _mm256_cvtepi32_ps(dot_u8s8(q, load_y(x[k], blk)));
                    acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(s, _mm256_set1_ps(dx[k][blk])), p, acc[k]);
                }
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(acc[k]) - hsum8(acco[k]);
}

/* Q5_K: Q4_K's nibbles plus the fifth bit, one activation block per
 * sub-block of 32; the mins through sx. */
static ALWAYS_INLINE void dot_q5_k_n(int pf, const BlockQ5_K *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *sx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n);
    /* two accumulators per activation (even and odd sub-blocks): with one,
     * the FMA latency bounded the single-token dot (with the scales by
     * permute and the two-operation fifth bit below, llama-3.2-1b Q5_K
     * decode 19-21 -> 26 tokens/s on a Zen 3) */
    __m256 acc[2][4], accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[0][k] = acc[1][k] = accm[k] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), sixteen = _mm256_set1_epi8(16);
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead(pf, &w[i], 3);
        __m256 scv, mnv, sv[4][2], sch[2];
        kq_scale_vectors(w[i].d, w[i].dmin, w[i].scales, &scv, &mnv);
        sv_halves(scv, sch);
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            sv_times_dx(sch, dx[k] + 8 * i, sv[k]); /* d sc_j dx_j: element j % 4 of sv[k][j / 4]'s lanes */
            accm[k] = _mm256_fmadd_ps(mnv, _mm256_loadu_ps(sx[k] + 8 * i), accm[k]);
        }
        __m256i qh = _mm256_loadu_si256((const __m256i *)w[i].qh);
        _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * (j / 2)));
            __m256i q = j % 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
            /* bit j of each qh byte to bit 4 (a 16-bit shift moves both
             * bytes of a lane alike), then masked */
            __m256i h = j <= 4 ? _mm256_slli_epi16(qh, 4 - j) : _mm256_srli_epi16(qh, j - 4);
            q = _mm256_or_si256(q, _mm256_and_si256(h, sixteen));
            long blk = 8 * i + j;
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                __m256 p = _mm256_cvtepi32_ps(dot_u8s8(q, load_y(x[k], blk)));
                acc[j % 2][k] = _mm256_fmadd_ps(bcast_in_lanes(sv[k][j / 4], j % 4), p, acc[j % 2][k]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(_mm256_add_ps(acc[0][k], acc[1][k])) - hsum8(accm[k]);
}

/* DT_Q5_K_PAIRS (formats/dtype.h) against the activation's Q4_K order
 * (act_qk): Q4_K in pairs' step (quant.c, dot_q4_k_pairs_n) with each
 * half's fifth bits ORed in from the plane, one constant shift and an AND
 * for both sub-blocks of the pair (quants up to 31: a pair of products |u
 * y| <= 2 * 31 * 127, two pairs 15748 < 32767 in the int16 add). Per two
 * sub-blocks ~16 operations where dot_q5_k_n takes ~19. */
static ALWAYS_INLINE __m256i fifth_bits(__m256i plane, int b) { /* bit b of each byte to bit 4, alone */
    __m256i h = b < 4 ? _mm256_slli_epi16(plane, 4 - b) : b > 4 ? _mm256_srli_epi16(plane, b - 4) : plane;
    return _mm256_and_si256(h, _mm256_set1_epi8(16));
}

static ALWAYS_INLINE void q5k_pairs_step(const BlockQ5_K *b, __m256i plane, int p, const int8_t *const *x,
                                         const __m256 *sd, int NX, __m256 acc[2][4]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * p));
    __m256i lo = _mm256_or_si256(_mm256_and_si256(v, m4), fifth_bits(plane, 2 * p));
    __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), fifth_bits(plane, 2 * p + 1));
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        const int8_t *y = x[k] + 128 * (p / 2) + 32 * (p % 2);
        __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y)),
                                     _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 64))));
        __m256 d = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, _mm256_set1_epi16(1)));
        acc[p % 2][k] = _mm256_fmadd_ps(bcast_in_lanes(sd[k], p), d, acc[p % 2][k]);
    }
}

static ALWAYS_INLINE void dot_q5_k_pairs_n(int pf, const BlockQ5_K *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *sx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_qk(act[k], n), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n);
    __m256 acc[2][4], accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[0][k] = acc[1][k] = accm[k] = _mm256_setzero_ps();
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead(pf, &w[i], 3);
        __m256 scv, mnv, sd[4];
        kq_scale_vectors(w[i].d, w[i].dmin, w[i].scales, &scv, &mnv);
        const int8_t *xi[4];
        kpairs_superblock(scv, mnv, dx, sx, x, i, NX, sd, accm, xi);
        __m256i plane = _mm256_loadu_si256((const __m256i *)w[i].qh);
        /* spelled out so that p is a constant */
        q5k_pairs_step(&w[i], plane, 0, xi, sd, NX, acc);
        q5k_pairs_step(&w[i], plane, 1, xi, sd, NX, acc);
        q5k_pairs_step(&w[i], plane, 2, xi, sd, NX, acc);
        q5k_pairs_step(&w[i], plane, 3, xi, sd, NX, acc);
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(_mm256_sub_ps(_mm256_add_ps(acc[0][k], acc[1][k]), accm[k]));
}

/* IQ4_XS: the levels looked up by a byte shuffle; they are signed, so
 * their sign moves onto the activation (|L| <= 127, and |y| <= 127 keeps
 * maddubs' pairwise sums from saturating). */
static ALWAYS_INLINE void dot_iq4_xs_n(int pf, const BlockIQ4_XS *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n);
    __m256 acc[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = _mm256_setzero_ps();
    const __m128i lut = _mm_loadu_si128((const __m128i *)IQ4_NL_VALUES), m4 = _mm_set1_epi8(15);
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead(pf, &w[i], 3);
        float d = half(w[i].d);
        for (int j = 0; j < 8; j++) {
            __m128i b = _mm_loadu_si128((const __m128i *)(w[i].qs + 16 * j));
            __m128i lo = _mm_shuffle_epi8(lut, _mm_and_si128(b, m4));
            __m128i hi = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(b, 4), m4));
            __m256i L = _mm256_set_m128i(hi, lo), aL = _mm256_sign_epi8(L, L);
            float s = d * (float)iq4xs_scale(&w[i], j);
            long blk = 8 * i + j;
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                __m256i sy = _mm256_sign_epi8(load_y(x[k], blk), L);
                __m256 p = _mm256_cvtepi32_ps(dot_u8s8(aL, sy));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(s * dx[k][blk]), p, acc[k]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(acc[k]);
}

static ALWAYS_INLINE void dot_n(int pf, int t, const void *row, const void *const *act, int NX, long n, float *out) {
    switch (t) {
    case DT_Q2_K: dot_q23_n(pf, 0, row, act, NX, n, out); break;
    case DT_Q3_K: dot_q23_n(pf, 1, row, act, NX, n, out); break;
    case DT_Q5_K: dot_q5_k_n(pf, row, act, NX, n, out); break;
    case DT_Q5_K_PAIRS: dot_q5_k_pairs_n(pf, row, act, NX, n, out); break;
    case DT_IQ4_XS: dot_iq4_xs_n(pf, row, act, NX, n, out); break;
    default:
        for (int k = 0; k < NX; k++) out[k] = 0;
        break;
    }
}

/* F(pf, t, row, act, NX, n, out) with NX the constant nx (1 to 4) */
#define KQ_BY_NX(F)                                                                                                    \
    switch (nx) {                                                                                                      \
    case 1: F(pf, t, row, act, 1, n, out); break;                                                                      \
    case 2: F(pf, t, row, act, 2, n, out); break;                                                                      \
    case 3: F(pf, t, row, act, 3, n, out); break;                                                                      \
    default: F(pf, t, row, act, 4, n, out); break;                                                                     \
    }

static ALWAYS_INLINE void dot_nx(int pf, int t, const void *row, const void *const *act, int nx, long n, float *out) {
    KQ_BY_NX(dot_n);
}

void kquant_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    WITH_PREFETCH_MODE(dot_nx(pf, t, row, act, nx, n, out));
}

#if KERNELS_AVX512
/* ---- AVX-512: 64 weights (two activation blocks) per instruction ----
 * Each step makes 64 unsigned quants lined up with 64 consecutive
 * activation quants (two blocks: their dx come as one 16-lane vector from
 * act_dxx), dots them with VPDPBUSD into 16 int32 lanes, and scales the
 * lanes by a 16-lane vector of sub-block scales. */

static inline __m512i bcast32(const uint8_t *p) { return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512i dpbusd512(__m512i u, __m512i s) { return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s); }

/* Sub-block scales unpacked in registers. Scalar loops that store them to
 * an array and load the array as a vector stall on store forwarding, which
 * cost these dots as much as their products. Each returns exactly the
 * values of the scalar definitions (formats/dtype_kquant.c). */

/* Q2_K: d * (scales[j] & 15) in *scv, dmin * (scales[j] >> 4) in *offv. */
static ALWAYS_INLINE void q2k_scales16(const BlockQ2_K *b, __m512 *scv, __m512 *offv) {
    __m128i v = _mm_loadu_si128((const __m128i *)b->scales), m4 = _mm_set1_epi8(15);
    *scv = _mm512_mul_ps(_mm512_set1_ps(half(b->d)), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, m4))));
    *offv = _mm512_mul_ps(_mm512_set1_ps(half(b->dmin)),
                          _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m4))));
}

/* Q3_K: d * q3k_scale(j) (6 bits - 32: the low 4 from byte j's low nibble
 * or byte j-8's high one, the high 2 from byte 8 + j%4 at bit 2(j/4)). The
 * 12 bytes are read as 8 + 4 (a 16-byte load could pass the row's end). */
static ALWAYS_INLINE __m512 q3k_scales16(const BlockQ3_K *b) {
    uint32_t u;
    memcpy(&u, b->scales + 8, 4);
    __m128i t = _mm_loadl_epi64((const __m128i *)b->scales);
    __m128i lo = _mm_and_si128(_mm_unpacklo_epi64(t, _mm_srli_epi16(t, 4)), _mm_set1_epi8(15));
    __m512i hi = _mm512_srlv_epi32(_mm512_set1_epi32((int)u), _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6));
    hi = _mm512_and_si512(hi, _mm512_setr_epi32(0x03, 0x0300, 0x030000, 0x03000000, 0x03, 0x0300, 0x030000, 0x03000000,
                                                0x03, 0x0300, 0x030000, 0x03000000, 0x03, 0x0300, 0x030000, 0x03000000));
    /* lane j holds byte j%4 of u shifted; move it down to the low byte */
    hi = _mm512_srlv_epi32(hi, _mm512_setr_epi32(0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24, 0, 8, 16, 24));
    __m512i q = _mm512_or_si512(_mm512_cvtepu8_epi32(lo), _mm512_slli_epi32(hi, 4));
    return _mm512_mul_ps(_mm512_set1_ps(half(b->d)), _mm512_cvtepi32_ps(_mm512_sub_epi32(q, _mm512_set1_epi32(32))));
}

/* IQ4_XS: d * iq4xs_scale(j) (6 bits - 32: the low 4 from nibble j of
 * scales_l, the high 2 from scales_h at bit 2j). */
static ALWAYS_INLINE __m256 iq4xs_scales8(const BlockIQ4_XS *b) {
    uint32_t l;
    memcpy(&l, b->scales_l, 4);
    __m128i v = _mm_cvtsi32_si128((int)l), m4 = _mm_set1_epi8(15);
    __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    __m256i hi = _mm256_srlv_epi32(_mm256_set1_epi32(b->scales_h), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    hi = _mm256_slli_epi32(_mm256_and_si256(hi, _mm256_set1_epi32(3)), 4);
    __m256i q = _mm256_sub_epi32(_mm256_or_si256(_mm256_cvtepu8_epi32(nib), hi), _mm256_set1_epi32(32));
    return _mm256_mul_ps(_mm256_set1_ps(half(b->d)), _mm256_cvtepi32_ps(q));
}

/* Q2_K / Q3_K: fields f and f+1 of a half's 32 bytes are the two blocks
 * 8i + 4h + f, f+1 (64 consecutive activation quants); the int32 lanes
 * take sub-blocks 8h+2f .. 8h+2f+3, four lanes each, so the scales are one
 * permute of the super-block's sixteen. */
static ALWAYS_INLINE void dot512_q23_n(int pf, int q3, const void *row, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dxx[4], *s16[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dxx[k] = act_dxx(act[k], n), s16[k] = act_s16(act[k], n);
    __m512 acc[4], acco[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = acco[k] = _mm512_setzero_ps();
    const __m512i m3 = _mm512_set1_epi8(3), m1 = _mm512_set1_epi8(1);
    const __m512i quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    for (long i = 0; i < n / QK_K; i++) {
        __m512 scv, offv;
        const uint8_t *qs, *hmask = NULL;
        if (q3) {
            const BlockQ3_K *b = (const BlockQ3_K *)row + i;
            scv = q3k_scales16(b), offv = _mm512_mul_ps(_mm512_set1_ps(4), scv);
            qs = b->qs, hmask = b->hmask;
            prefetch_ahead(pf, b, 2);
        } else {
            const BlockQ2_K *b = (const BlockQ2_K *)row + i;
            q2k_scales16(b, &scv, &offv);
            qs = b->qs;
            prefetch_ahead(pf, b, 2);
        }
        UNROLL_NX
        for (int k = 0; k < NX; k++) acco[k] = _mm512_fmadd_ps(offv, _mm512_loadu_ps(s16[k] + 16 * i), acco[k]);
        __m512i hm = q3 ? bcast32(hmask) : _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            __m512i v = bcast32(qs + 32 * h);
            for (int f = 0; f < 4; f += 2) {
                /* per-half 16-bit shifts: the masks keep each byte's own bits */
                __m512i cnt = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * f)), _mm256_set1_epi16((short)(2 * f + 2)), 1);
                __m512i q = _mm512_and_si512(_mm512_srlv_epi16(v, cnt), m3);
                if (q3) {
                    __m512i hc = _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * h + f)), _mm256_set1_epi16((short)(4 * h + f + 1)), 1);
                    q = _mm512_or_si512(q, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hm, hc), m1), 2));
                }
                __m512 s = _mm512_permutexvar_ps(_mm512_add_epi32(quarter, _mm512_set1_epi32(8 * h + 2 * f)), scv);
                long blk = 8 * i + 4 * h + f;
                UNROLL_NX
                for (int k = 0; k < NX; k++) {
                    __m512i y = _mm512_loadu_si512((const void *)(x[k] + 32 * blk));
                    __m512 p = _mm512_cvtepi32_ps(dpbusd512(q, y));
                    acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_loadu_ps(dxx[k] + 8 * blk)), p, acc[k]);
                }
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = _mm512_reduce_add_ps(acc[k]) - _mm512_reduce_add_ps(acco[k]);
}

/* Q5_K as the wide Q4_K dot (quant_avx512.c), on the activation's act_qk
 * order: the two 64-byte halves of qs, shuffled by 128-bit lanes, give a
 * (lane g: bytes 32g..32g+15) and b (32g+16..32g+31), whose low nibbles are
 * elements 0-15 (a) or 16-31 (b) of sub-block 2g and high nibbles the same
 * of 2g+1. The fifth bit of element l of sub-block j is bit j of qh[l], so
 * qh[0..15] (for a) or qh[16..31] (for b), broadcast to every lane and
 * tested against bit 2g (low nibbles) or 2g+1 (high), marks the bytes that
 * get + 16. Four VPDPBUSD a super-block give each sub-block's sum in four
 * lanes (even sub-blocks in one register, odd in the other), scaled by one
 * FMA each; the mins' part, dmin * sum_j m_j * sx_j, one FMA. (A loop over
 * 64-value groups with scalar scales was a third of Q4_K's speed.) */
static ALWAYS_INLINE void dot512_q5_k_n(int pf, const BlockQ5_K *w, const void *const *act, int NX, long n, float *out) {
    __m512 acc[4][2];
    __m256 accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k][0] = acc[k][1] = _mm512_setzero_ps(), accm[k] = _mm256_setzero_ps();
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i bit_lo = _mm512_setr_epi32(0x01010101, 0x01010101, 0x01010101, 0x01010101, 0x04040404, 0x04040404,
                                             0x04040404, 0x04040404, 0x10101010, 0x10101010, 0x10101010, 0x10101010,
                                             0x40404040, 0x40404040, 0x40404040, 0x40404040);
    const __m512i bit_hi = _mm512_slli_epi32(bit_lo, 1);
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead_l2(pf, &w[i], 3); /* 176 bytes a super-block */
        __m256 scv, mnv;
        kq45_scales16(&w[i], &scv, &mnv);
        __m512i q[4];
        /* not LOADS_FIRST (quant_internal.h): the quants ahead of the
         * prefetch read slower here (llama-3.2-1b Q5_K decode 92% of the
         * bound -> 83-84%) */
        kq45_nibbles(_mm512_loadu_si512(w[i].qs), _mm512_loadu_si512(w[i].qs + 64), q);
        __m512i alo = q[0], blo = q[1], ahi = q[2], bhi = q[3];
        __m512i qha = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)w[i].qh));
        __m512i qhb = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w[i].qh + 16)));
        alo = _mm512_mask_add_epi8(alo, _mm512_test_epi8_mask(qha, bit_lo), alo, sixteen);
        ahi = _mm512_mask_add_epi8(ahi, _mm512_test_epi8_mask(qha, bit_hi), ahi, sixteen);
        blo = _mm512_mask_add_epi8(blo, _mm512_test_epi8_mask(qhb, bit_lo), blo, sixteen);
        bhi = _mm512_mask_add_epi8(bhi, _mm512_test_epi8_mask(qhb, bit_hi), bhi, sixteen);
        kq45_wide_step(alo, blo, ahi, bhi, scv, mnv, act, NX, n, i, acc, accm);
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[k][0], acc[k][1])) - hsum8(accm[k]);
}

/* IQ4_XS: the levels + 128 (1..241, unsigned) looked up by a byte shuffle
 * and dotted unsigned (VPDPBUSD sums into int32 without saturating); the
 * 128 comes off per block through sx. Sub-blocks j, j+1 are 32 bytes of
 * qs and blocks 8i+j, 8i+j+1; the nibbles go to 128-bit lanes lo(j),
 * hi(j), lo(j+1), hi(j+1), the order of the 64 activation quants. */
static ALWAYS_INLINE void dot512_iq4_xs_n(int pf, const BlockIQ4_XS *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dxx[4], *sx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dxx[k] = act_dxx(act[k], n), sx[k] = act_sx(act[k], n);
    __m512 acc[4];
    __m256 acco[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = _mm512_setzero_ps(), acco[k] = _mm256_setzero_ps();
    const __m128i lut128 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES), _mm_set1_epi8((char)0x80));
    const __m512i lut = _mm512_broadcast_i32x4(lut128), m4 = _mm512_set1_epi8(15);
    const __m512i pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead(pf, &w[i], 3);
        __m256 scv = iq4xs_scales8(&w[i]);
        __m512 sc16 = _mm512_castps256_ps512(scv);
        UNROLL_NX
        for (int k = 0; k < NX; k++) acco[k] = _mm256_fmadd_ps(scv, _mm256_loadu_ps(sx[k] + 8 * i), acco[k]);
        for (int j = 0; j < 8; j += 2) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(w[i].qs + 16 * j));
            __m256i lo = _mm256_and_si256(b, _mm256_set1_epi8(15)), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi8(15));
            __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); /* lo j, lo j+1, hi j, hi j+1 */
            idx = _mm512_shuffle_i64x2(idx, idx, _MM_SHUFFLE(3, 1, 2, 0));
            __m512i q = _mm512_shuffle_epi8(lut, _mm512_and_si512(idx, m4));
            /* lanes 0-7: sub-block j's scale, 8-15: j+1's */
            __m512 s = _mm512_permutexvar_ps(_mm512_add_epi32(pair, _mm512_set1_epi32(j)), sc16);
            long blk = 8 * i + j;
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                __m512i y = _mm512_loadu_si512((const void *)(x[k] + 32 * blk));
                __m512 p = _mm512_cvtepi32_ps(dpbusd512(q, y));
                acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(s, _mm512_loadu_ps(dxx[k] + 8 * blk)), p, acc[k]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = _mm512_reduce_add_ps(acc[k]) - 128 * hsum8(acco[k]);
}

static ALWAYS_INLINE void dot512_n(int pf, int t, const void *row, const void *const *act, int NX, long n, float *out) {
    switch (t) {
    case DT_Q2_K: dot512_q23_n(pf, 0, row, act, NX, n, out); break;
    case DT_Q3_K: dot512_q23_n(pf, 1, row, act, NX, n, out); break;
    case DT_Q5_K: dot512_q5_k_n(pf, row, act, NX, n, out); break;
    case DT_IQ4_XS: dot512_iq4_xs_n(pf, row, act, NX, n, out); break;
    default:
        for (int k = 0; k < NX; k++) out[k] = 0;
        break;
    }
}

static ALWAYS_INLINE void dot512_nx(int pf, int t, const void *row, const void *const *act, int nx, long n, float *out) {
    KQ_BY_NX(dot512_n);
}

void kquant512_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    WITH_PREFETCH_MODE(dot512_nx(pf, t, row, act, nx, n, out));
}
#endif

#else /* no AVX2: the references */

void kquant_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    for (int k = 0; k < nx; k++) out[k] = kquant_dot_ref(t, row, act[k], n);
}

#endif
