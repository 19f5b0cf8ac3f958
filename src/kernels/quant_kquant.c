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
 * maddubs); the AVX-512 dispatch of quant.c / quant_avx512.c uses the same
 * 256-bit dots for these types. */
#include "kernels/quant_internal.h"

#include <string.h>

int kquant_is(int t) { return t == DT_Q2_K || t == DT_Q3_K || t == DT_Q5_K || t == DT_IQ4_XS; }

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
        case DT_Q5_K: { /* w = d*sc*q - dmin*m per 32 */
            const BlockQ5_K *b = (const BlockQ5_K *)row + i;
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
                for (int l = 0; l < 32; l++) dot += IQ4_LEVELS[iq4xs_index(b, 32 * j + l)] * y[32 * j + l];
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

static inline float hsum8k(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sums of u*s (u unsigned <= 63 here, s signed bytes) over groups of four
 * as 8 int32 lanes: lanes 0-3 the first 16 bytes, 4-7 the last 16. Without
 * VNNI, maddubs' pairwise int16 sums stay below 2*63*128 < 32767. */
static inline __m256i dot_u8s8k(__m256i u, __m256i s) {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

static inline __m256i load_y(const int8_t *xq, long b) { return _mm256_loadu_si256((const __m256i *)(xq + 32 * b)); }

/* Two scales of 16 as one vector: lanes 0-3 s0, lanes 4-7 s1. */
static inline __m256 two_scales(float s0, float s1) { return _mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0)); }

/* Q2_K and Q3_K share a walk: for each half h of 128 and k = 0..3, the 2-bit
 * field k of the half's 32 bytes of qs is elements 128h + 32k + 0..31, one
 * activation block; Q3_K adds its high bit from hmask. The sixteen scales
 * (d*sc, and Q2_K's dmin*m) are made once per super-block; the offsets go
 * through s16 in one FMA per 8 sub-blocks. */
static ALWAYS_INLINE void dot_q23_n(int q3, const void *row, const void *const *act, int NX, long n, float *out) {
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
            prefetch_ahead(b, 2);
        } else {
            const BlockQ2_K *b = (const BlockQ2_K *)row + i;
            float d = half(b->d), dmin = half(b->dmin);
            for (int j = 0; j < 16; j++) sc[j] = d * (float)(b->scales[j] & 0xf), off[j] = dmin * (float)(b->scales[j] >> 4);
            qs = b->qs;
            prefetch_ahead(b, 2);
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
                    __m256 p = _mm256_cvtepi32_ps(dot_u8s8k(q, load_y(x[k], blk)));
                    acc[k] = _mm256_fmadd_ps(_mm256_mul_ps(s, _mm256_set1_ps(dx[k][blk])), p, acc[k]);
                }
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8k(acc[k]) - hsum8k(acco[k]);
}

/* Q5_K: Q4_K's nibbles plus the fifth bit, one activation block per
 * sub-block of 32; the mins through sx. */
static ALWAYS_INLINE void dot_q5_k_n(const BlockQ5_K *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *sx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n);
    __m256 acc[4], accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = accm[k] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(15), m1 = _mm256_set1_epi8(1);
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&w[i], 3);
        float d = half(w[i].d), dmin = half(w[i].dmin), sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            int s, m;
            q5k_scale_min(j, w[i].scales, &s, &m);
            sc[j] = d * (float)s, mn[j] = dmin * (float)m;
        }
        __m256 mnv = _mm256_loadu_ps(mn);
        UNROLL_NX
        for (int k = 0; k < NX; k++) accm[k] = _mm256_fmadd_ps(mnv, _mm256_loadu_ps(sx[k] + 8 * i), accm[k]);
        __m256i qh = _mm256_loadu_si256((const __m256i *)w[i].qh);
        for (int j = 0; j < 8; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * (j / 2)));
            __m256i q = j % 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
            q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, j), m1), 4));
            long blk = 8 * i + j;
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                __m256 p = _mm256_cvtepi32_ps(dot_u8s8k(q, load_y(x[k], blk)));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(sc[j] * dx[k][blk]), p, acc[k]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8k(acc[k]) - hsum8k(accm[k]);
}

/* IQ4_XS: the levels looked up by a byte shuffle; they are signed, so
 * their sign moves onto the activation (|L| <= 127, and |y| <= 127 keeps
 * maddubs' pairwise sums from saturating). */
static ALWAYS_INLINE void dot_iq4_xs_n(const BlockIQ4_XS *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n);
    __m256 acc[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = _mm256_setzero_ps();
    const __m128i lut = _mm_loadu_si128((const __m128i *)IQ4_LEVELS), m4 = _mm_set1_epi8(15);
    for (long i = 0; i < n / QK_K; i++) {
        prefetch_ahead(&w[i], 3);
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
                __m256 p = _mm256_cvtepi32_ps(dot_u8s8k(aL, sy));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(s * dx[k][blk]), p, acc[k]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8k(acc[k]);
}

static ALWAYS_INLINE void dot_n(int t, const void *row, const void *const *act, int NX, long n, float *out) {
    switch (t) {
    case DT_Q2_K: dot_q23_n(0, row, act, NX, n, out); break;
    case DT_Q3_K: dot_q23_n(1, row, act, NX, n, out); break;
    case DT_Q5_K: dot_q5_k_n(row, act, NX, n, out); break;
    case DT_IQ4_XS: dot_iq4_xs_n(row, act, NX, n, out); break;
    default:
        for (int k = 0; k < NX; k++) out[k] = 0;
        break;
    }
}

void kquant_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    switch (nx) {
    case 1: dot_n(t, row, act, 1, n, out); break;
    case 2: dot_n(t, row, act, 2, n, out); break;
    case 3: dot_n(t, row, act, 3, n, out); break;
    default: dot_n(t, row, act, 4, n, out); break;
    }
}

#else /* no AVX2: the references */

void kquant_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    for (int k = 0; k < nx; k++) out[k] = kquant_dot_ref(t, row, act[k], n);
}

#endif
