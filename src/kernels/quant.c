#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/quant.h"
#include "kernels/quant_internal.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

int kernel_type_ok(int t) {
    return t == DT_F32 || t == DT_F16 || t == DT_BF16 || t == DT_Q8_0 || act_has_t16(t) || t == DT_Q4_K ||
           t == DT_Q4_K_PAIRS || t == DT_Q6_K || quant_legacy_type(t) || kquant_is(t); /* quant_legacy.c, quant_kquant.c */
}

int kernel_row_ok(int t, long n) { return kernel_type_ok(t) && n > 0 && dtype_nbytes(t, n) > 0; }

int kernel_vec_type(int weight) {
    return weight == DT_Q8_0 || act_has_t16(weight) || weight == DT_Q4_K || weight == DT_Q4_K_PAIRS || weight == DT_Q6_K ||
                   quant_legacy_type(weight) || kquant_is(weight)
               ? DT_Q8_0
               : DT_F32;
}

size_t kernel_act_bytes(int t, long n) {
    if (kernel_vec_type(t) == DT_F32) return (size_t)n * sizeof(float);
    return act_total_bytes(n) + (act_has_t16(t)                 ? act_q4_bytes(n) + 512 * (size_t)act_ngroups(n)
                                 : act_has_quads(t)             ? act_q4_bytes(n)
                                 : act_has_qk(t)                ? act_qk_bytes(n)
                                                                : 0);
}

/* n floats (a multiple of 32) to the quants and f16-rounded scales of Q8_0
 * blocks (SIMD below, else formats' scalar quantiser), with each block's
 * scaled sum sx and half sums s16 (quant_internal.h). The quants are
 * stored XOR bias (0x80: + 128, for Q8_0 weights; else 0). */
static void quantize_q8(const float *x, int8_t *q, float *dx, float *sx, float *s16, long n, uint8_t bias);

/* The block sums of quants q of block i, scaled by its dx. */
static inline void block_sums(int lo, int hi, float dx, float *sx, float *s16) {
    *sx = dx * (float)(lo + hi);
    s16[0] = dx * (float)lo;
    s16[1] = dx * (float)hi;
}

void kernel_quantize_act(int t, const float *x, void *out, long n) {
    if (kernel_vec_type(t) == DT_F32) {
        memcpy(out, x, (size_t)n * sizeof(float));
        return;
    }
    int8_t *q = out;
    float *dx = (float *)act_dx(out, n), *sx = dx + n / QK8_0, *s16 = sx + n / QK8_0;
    uint8_t bias = t == DT_Q8_0 ? 0x80 : 0; /* Q8_0's stored + 128 (quant_internal.h) */
    quantize_q8(x, q, dx, sx, s16, n, bias);
    memset(q + n, bias, act_qbytes(n) - (size_t)n); /* zeros */
    float *dxx = (float *)act_dxx(out, n), *sxx = (float *)act_sxx(out, n);
    for (long i = 0; i < n / QK8_0; i++)
        for (int j = 0; j < 8; j++) dxx[8 * i + j] = dx[i], sxx[8 * i + j] = sx[i];
    if (act_has_qk(t) && act_qk_bytes(n)) { /* the Q4_K order (quant_internal.h) */
        int8_t *qk = (int8_t *)act_qk(out, n);
        for (long i = 0; i < n / QK_K; i++)
            for (int part = 0; part < 4; part++)
                for (int j = 0; j < 4; j++) {
                    int sub = 2 * j + part / 2, half = part % 2;
                    memcpy(qk + QK_K * i + 64 * part + 16 * j, q + QK_K * i + 32 * sub + 16 * half, 16);
                }
    }
    if (!act_has_quads(t)) return;
    /* the quads of blocks of the wide Q4_0 dot (quant_internal.h) */
    int8_t *q4 = (int8_t *)act_q4(out, n);
    float *dx4 = (float *)act_dx4(out, n), *sx4 = (float *)act_sx4(out, n);
    for (long qd = 0; qd < act_nquads(n); qd++)
        for (int j = 0; j < 4; j++) {
            long b = 4 * qd + j;
            memcpy(q4 + 128 * qd + 16 * j, q + 32 * b, 16);
            memcpy(q4 + 128 * qd + 64 + 16 * j, q + 32 * b + 16, 16);
            for (int l = 0; l < 4; l++) dx4[16 * qd + 4 * j + l] = dx[b], sx4[16 * qd + 4 * j + l] = 2 * sx[b];
        }
    if (!act_has_t16(t)) return;
    /* the groups of the prefill's group micro-kernel and the T16 dots (quant_internal.h) */
    int8_t *t16 = (int8_t *)act_t16(out, n);
    for (long g = 0; g < act_ngroups(n); g++)
        for (int k = 0; k < 8; k++)
            for (int b = 0; b < 16; b++)
                memcpy(t16 + 512 * g + 64 * k + 4 * b, q + 32 * (16 * g + b) + (k < 4 ? 4 * k : 16 + 4 * (k - 4)), 4);
}

void kernel_act_to_f32(int t, const void *act, float *y, long n) {
    if (kernel_vec_type(t) == DT_F32) {
        memcpy(y, act, (size_t)n * sizeof(float));
        return;
    }
    const int8_t *q = act_q(act);
    const float *dx = act_dx(act, n);
    for (long i = 0; i < n; i++) y[i] = dx[i / QK8_0] * (float)act_quant(t, q, i);
}

/* ---- K-quant block fields ---- */

/* The 6-bit scale and min of Q4_K sub-block j from the 12 packed bytes (the
 * layout formats/dtype.c documents). */
static inline void q4k_scale_min(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* The 6-bit quant (0..63, stored q + 32) of element i of a Q6_K block. */
static inline int q6k_quant(const BlockQ6_K *b, int i) {
    int half = i / 128, k = (i % 128) / 32, l = i % 32;
    const uint8_t *ql = b->ql + 64 * half + 32 * (k & 1), *qh = b->qh + 32 * half;
    int lo = k < 2 ? ql[l] & 0xf : ql[l] >> 4;
    return lo | (((qh[l] >> (2 * k)) & 3) << 4);
}

/* ---- reference dots: the plain definitions ---- */

/* A K-quant row against the activation (quants xq, block scales dx): each
 * Q4_K sub-block of 32 is one activation block, w = d*sc*q - dmin*m, so its
 * dot is dx * (d*sc*sum(q*qx) - dmin*m*sum(qx)); a Q6_K block of 32 has two
 * scales of 16, w = d*sc*(q - 32). */
static float dot_q4_k_ref(int t, const BlockQ4_K *w, const int8_t *xq, const float *dx, long nb) {
    float sum = 0;
    for (long i = 0; i < nb; i++) {
        BlockQ4_K b = w[i];
        if (t == DT_Q4_K_PAIRS) dtype_k_pairs_block(t, w, i, &b); /* as stored */
        float d = half(b.d), dmin = half(b.dmin);
        for (int j = 0; j < 8; j++) {
            const int8_t *a = xq + 32 * (i * 8 + j);
            int sc, mn, dot = 0, sx = 0;
            q4k_scale_min(j, b.scales, &sc, &mn);
            for (int l = 0; l < 32; l++) {
                int q = j % 2 ? b.qs[32 * (j / 2) + l] >> 4 : b.qs[32 * (j / 2) + l] & 0xf;
                dot += q * a[l];
                sx += a[l];
            }
            sum += dx[i * 8 + j] * (d * (float)sc * (float)dot - dmin * (float)mn * (float)sx);
        }
    }
    return sum;
}

static float dot_q6_k_ref(const BlockQ6_K *w, const int8_t *xq, const float *dx, long nb) {
    float sum = 0;
    for (long i = 0; i < nb; i++) {
        float d = half(w[i].d);
        for (int j = 0; j < 8; j++) {
            const int8_t *a = xq + 32 * (i * 8 + j);
            int dot = 0;
            for (int l = 0; l < 32; l++)
                dot += w[i].scales[2 * j + l / 16] * (q6k_quant(&w[i], 32 * j + l) - 32) * a[l];
            sum += dx[i * 8 + j] * d * (float)dot;
        }
    }
    return sum;
}

float vec_dot_ref(int t, const void *row, const void *act, long n) {
    float sum = 0;
    if (quant_legacy_type(t)) return legacy_dot_ref(t, row, act, n); /* stored or regrouped */
    switch (t) {
    case DT_F32:
    case DT_F16:
    case DT_BF16: {
        const float *x = act;
        for (long i = 0; i < n; i++) {
            float w = t == DT_F32    ? ((const float *)row)[i]
                      : t == DT_F16 ? f16_to_f32(((const uint16_t *)row)[i])
                                    : bf16_to_f32(((const uint16_t *)row)[i]);
            sum += w * x[i];
        }
        return sum;
    }
    case DT_Q8_0: {
        const BlockQ8_0 *w = row;
        const int8_t *xq = act_q(act);
        const float *dx = act_dx(act, n);
        for (long i = 0; i < n / QK8_0; i++) {
            int s = 0;
            for (int j = 0; j < QK8_0; j++) s += w[i].qs[j] * act_quant(DT_Q8_0, xq, 32 * i + j);
            sum += half(w[i].d) * dx[i] * (float)s;
        }
        return sum;
    }
    case DT_Q8_0_T16: {
        const int8_t *xq = act_q(act);
        const float *dx = act_dx(act, n);
        for (long i = 0; i < n / QK8_0; i++) {
            int8_t qs[QK8_0];
            uint16_t d = dtype_t16_block(t, (const char *)row + (i / 16) * 16 * sizeof(BlockQ8_0), (int)(i % 16), (uint8_t *)qs);
            int s = 0;
            for (int j = 0; j < QK8_0; j++) s += qs[j] * xq[32 * i + j];
            sum += half(d) * dx[i] * (float)s;
        }
        return sum;
    }
    case DT_Q4_0:
    case DT_Q4_0_G4:
    case DT_Q4_0_G16:
    case DT_Q4_0_T16: {
        const int8_t *xq = act_q(act);
        const float *dx = act_dx(act, n);
        for (long i = 0; i < n / QK8_0; i++) {
            uint16_t d;
            uint8_t buf[16];
            const uint8_t *qs = q4_0_block(t, row, i, &d, buf);
            int s = 0;
            for (int j = 0; j < QK8_0 / 2; j++)
                s += ((qs[j] & 15) - 8) * xq[32 * i + j] + ((qs[j] >> 4) - 8) * xq[32 * i + j + QK8_0 / 2];
            sum += half(d) * dx[i] * (float)s;
        }
        return sum;
    }
    case DT_Q4_K:
    case DT_Q4_K_PAIRS: return dot_q4_k_ref(t, row, act_q(act), act_dx(act, n), n / QK_K);
    case DT_Q4_K_T16:
        for (long i = 0; i < n / QK_K; i++) { /* a super-block at a time, as stored */
            BlockQ4_K b;
            dtype_q4k_t16_block((const char *)row + (i / 2) * 2 * sizeof(BlockQ4_K), (int)(i % 2), &b);
            sum += dot_q4_k_ref(DT_Q4_K, &b, act_q(act) + QK_K * i, act_dx(act, n) + 8 * i, 1);
        }
        return sum;
    case DT_Q6_K: return dot_q6_k_ref(row, act_q(act), act_dx(act, n), n / QK_K);
    case DT_Q2_K: case DT_Q3_K: case DT_Q5_K: case DT_IQ4_XS: case DT_Q5_K_PAIRS: return kquant_dot_ref(t, row, act, n);
    default: return 0;
    }
}

/* ---- fast dots ---- */

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

/* Sum of products of signed bytes, as 8 int32 lanes: the sign of x moves
 * onto y so that maddubs (unsigned x signed) can be used; |x| <= 127 keeps
 * the pairwise int16 sums from saturating. */
static inline __m256 mul_sum_i8(__m256i x, __m256i y) {
    __m256i ax = _mm256_sign_epi8(x, x), sy = _mm256_sign_epi8(y, x);
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
#else
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
#endif
    return _mm256_cvtepi32_ps(s);
}

static inline __m256i load_xq(const int8_t *xq, long i) { return _mm256_loadu_si256((const __m256i *)(xq + 32 * i)); }
/* A block of a Q8_0 weight's activation, stored + 128, back to signed. */
static inline __m256i load_xq_q8(const int8_t *xq, long i) {
    return _mm256_xor_si256(load_xq(xq, i), _mm256_set1_epi8((char)0x80));
}

static ALWAYS_INLINE float dot_q8_0(int pf, const BlockQ8_0 *w, const int8_t *xq, const float *dx, long nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    long i = 0;
    for (; i + 1 < nb; i += 2) {
        prefetch_ahead(pf, &w[i], 1);
        __m256 p0 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[i].qs), load_xq_q8(xq, i));
        __m256 p1 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[i + 1].qs), load_xq_q8(xq, i + 1));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(half(w[i].d) * dx[i]), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(half(w[i + 1].d) * dx[i + 1]), p1, acc1);
    }
    for (; i < nb; i++) {
        __m256 p = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[i].qs), load_xq_q8(xq, i));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(half(w[i].d) * dx[i]), p, acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static inline __m256i unpack_q4(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(15);
    __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

/* dot_u8s8 (quant_internal.h): unsigned quants up to 63 (Q4_0, Q4_K, Q6_K)
 * keep maddubs' pairwise int16 sums below 32767. */

/* Q4_0 with the nibbles kept unsigned: sum((q - 8) * y) = sum(q * y) -
 * 8 * sum(y), the block sums coming with the activation (sx = dx * sum(y),
 * kernel_quantize_act), which saves the sign trick and the offset per
 * block. Two scalar chains collect the offsets. */
static inline __m256i unpack_q4_u(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

/* The per-block dot: the blocks past the last whole quad of a row as
 * stored (dot_q4_0_quads below does the rest). */
static ALWAYS_INLINE float dot_q4_0(int pf, const void *w, const int8_t *xq, const float *dx, const float *sx, long nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float off0 = 0, off1 = 0;
    long i = 0;
    for (; i + 1 < nb; i += 2) {
        if (!(i & 3)) prefetch_ahead(pf, (const BlockQ4_0 *)w + i, 1); /* 72 bytes every other step */
        uint16_t h0, h1;
        const uint8_t *q0 = q4_0_block(DT_Q4_0, w, i, &h0, NULL), *q1 = q4_0_block(DT_Q4_0, w, i + 1, &h1, NULL);
        float d0 = half(h0), d1 = half(h1);
        __m256 p0 = _mm256_cvtepi32_ps(dot_u8s8(unpack_q4_u(q0), load_xq(xq, i)));
        __m256 p1 = _mm256_cvtepi32_ps(dot_u8s8(unpack_q4_u(q1), load_xq(xq, i + 1)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * dx[i]), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * dx[i + 1]), p1, acc1);
        off0 += d0 * sx[i];
        off1 += d1 * sx[i + 1];
    }
    for (; i < nb; i++) {
        uint16_t h;
        const uint8_t *q = q4_0_block(DT_Q4_0, w, i, &h, NULL);
        float d = half(h);
        __m256 p = _mm256_cvtepi32_ps(dot_u8s8(unpack_q4_u(q), load_xq(xq, i)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d * dx[i]), p, acc0);
        off0 += d * sx[i];
    }
    return hsum8(_mm256_add_ps(acc0, acc1)) - 8 * (off0 + off1);
}

/* Q4_0 against the activation's quads (act_q4, quant_internal.h): two
 * blocks a step in one register, lane 0 block A, lane 1 block B. The
 * pair's low nibbles (elements 0-15 of each) meet the quad's first 32
 * bytes, the high nibbles (16-31) the 32 bytes 64 on; two maddubs added
 * in int16 (a pair of products |u y| <= 2 * 15 * 127, two pairs 7620 <
 * 32767) and one madd give each block's sum in 4 int32 lanes, which one
 * FMA scales by dw dx (act_dx4: dx per lane) and one more collects the
 * offset as dw * 2 sx per lane (act_sx4; the 4 lanes make the 8 sx).
 * Against the per-block dot above (one 16-byte load, a lane insert and a
 * madd per block, the scale and offset in scalar code) ~9 instead of ~13
 * operations a block; regrouped rows (g = 16: the scales of 16 blocks in one
 * place, each pair's nibbles in one 32-byte load; g = 4 the same per quad) ~7: llama-3.2-1b Q4_0
 * decode 24 -> 37-39 tokens/s on a Zen 3 (docs/BENCHMARKS.md, run 13). The blocks past
 * the last whole quad (nb % 4, never in a regrouped row) take the
 * per-block dot. */
static ALWAYS_INLINE __m256 q4_pair(__m256i v, const int8_t *x, __m256 dwdx, __m256 acc) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x)),
                                 _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x + 64))));
    __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, _mm256_set1_epi16(1)));
    return _mm256_fmadd_ps(dwdx, p, acc);
}

static ALWAYS_INLINE float dot_q4_0_quads(int pf, int g, const void *w, const void *act, long n) {
    const long nb = n / QK8_0, nq = act_nquads(n);
    const int8_t *x4 = act_q4(act, n);
    const float *dx4 = act_dx4(act, n), *sx4 = act_sx4(act, n), *dx = act_dx(act, n), *sx = act_sx(act, n);
    /* two chains each: even and odd pairs */
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, off[2] = {acc[0], acc[0]};
    if (g == 16) {
        /* per group of 16 blocks: 8 pairs, the scales converted once and
         * multiplied by the blocks' dx (act_dx) eight at a time, each 8
         * then with the even blocks' in lanes 0-3 and the odd ones' in 4-7,
         * so that a pair's two are element p % 4 of each 128-bit lane; the
         * offsets d sx (act_sx) eight at a time: two multiplies and two FMAs
         * per group where a multiply and an FMA per pair did (in cache, one
         * Zen 3 core, 256 x 2048: G16 16.5 -> 15.3 us, G4 18.5 -> 17.7) */
        const __m256i evens_odds = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        for (long gi = 0; gi < nb / 16; gi++) {
            const uint8_t *grp = (const uint8_t *)w + (size_t)gi * 16 * sizeof(BlockQ4_0);
            prefetch_ahead(pf, grp, 5); /* the group's 288 bytes, 8 KB on */
            __m256 d[2] = {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)grp)),
                           _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(grp + 16)))};
            __m256 dd[2];
            for (int k = 0; k < 2; k++) {
                dd[k] = _mm256_permutevar8x32_ps(_mm256_mul_ps(d[k], _mm256_loadu_ps(dx + 16 * gi + 8 * k)), evens_odds);
                off[k] = _mm256_fmadd_ps(d[k], _mm256_loadu_ps(sx + 16 * gi + 8 * k), off[k]);
            }
            _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++) {
                long qd = 4 * gi + p / 2;
                int h = p % 2;
                __m256i v = _mm256_loadu_si256((const __m256i *)(grp + 32 + 32 * p));
                acc[h] = q4_pair(v, x4 + 128 * qd + 32 * h, bcast_in_lanes(dd[p / 4], p % 4), acc[h]);
            }
        }
        return hsum8(_mm256_add_ps(acc[0], acc[1])) - 8 * hsum8(_mm256_add_ps(off[0], off[1]));
    }
    /* a quad a step: as stored (g = 1) two scalar conversions and a lane
     * insert per pair, regrouped in fours (g = 4) one conversion of the
     * four scales and one 32-byte load per pair */
    const uint8_t *b = w;
    if (g == 4) { /* each quad's four d times their dx at once; the offsets d sx four at once */
        __m128 offq = _mm_setzero_ps();
        for (long qd = 0; qd < nq; qd++, b += 4 * sizeof(BlockQ4_0)) {
            if (!(qd & 1)) prefetch_ahead(pf, b, 3); /* 144 bytes every other quad */
            __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)b));
            __m256 dd = _mm256_castps128_ps256(_mm_mul_ps(d4, _mm_loadu_ps(dx + 4 * qd)));
            offq = _mm_fmadd_ps(d4, _mm_loadu_ps(sx + 4 * qd), offq);
            acc[0] = q4_pair(_mm256_loadu_si256((const __m256i *)(b + 8)), x4 + 128 * qd,
                             _mm256_permutevar8x32_ps(dd, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)), acc[0]);
            acc[1] = q4_pair(_mm256_loadu_si256((const __m256i *)(b + 40)), x4 + 128 * qd + 32,
                             _mm256_permutevar8x32_ps(dd, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3)), acc[1]);
        }
        return hsum8(_mm256_add_ps(acc[0], acc[1])) - 8 * hsum4(offq);
    }
    for (long qd = 0; qd < nq; qd++, b += 4 * sizeof(BlockQ4_0)) {
        if (!(qd & 1)) prefetch_ahead(pf, b, 3); /* 144 bytes every other quad */
        __m256 dwa, dwb;
        __m256i va, vb;
        if (g == 4) {
            __m256 d4 = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)b)));
            dwa = _mm256_permutevar8x32_ps(d4, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
            dwb = _mm256_permutevar8x32_ps(d4, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
            va = _mm256_loadu_si256((const __m256i *)(b + 8));
            vb = _mm256_loadu_si256((const __m256i *)(b + 40));
        } else {
            const BlockQ4_0 *q = (const BlockQ4_0 *)b;
            dwa = _mm256_set_m128(_mm_set1_ps(half(q[1].d)), _mm_set1_ps(half(q[0].d)));
            dwb = _mm256_set_m128(_mm_set1_ps(half(q[3].d)), _mm_set1_ps(half(q[2].d)));
            va = _mm256_loadu2_m128i((const __m128i *)q[1].qs, (const __m128i *)q[0].qs);
            vb = _mm256_loadu2_m128i((const __m128i *)q[3].qs, (const __m128i *)q[2].qs);
        }
        acc[0] = q4_pair(va, x4 + 128 * qd, _mm256_mul_ps(dwa, _mm256_loadu_ps(dx4 + 16 * qd)), acc[0]);
        acc[1] = q4_pair(vb, x4 + 128 * qd + 32, _mm256_mul_ps(dwb, _mm256_loadu_ps(dx4 + 16 * qd + 8)), acc[1]);
        off[0] = _mm256_fmadd_ps(dwa, _mm256_loadu_ps(sx4 + 16 * qd), off[0]);
        off[1] = _mm256_fmadd_ps(dwb, _mm256_loadu_ps(sx4 + 16 * qd + 8), off[1]);
    }
    float r = hsum8(_mm256_sub_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(off[0], off[1])));
    if (4 * nq < nb) /* the last nb % 4 blocks, from the common layout (never in a regrouped row) */
        r += dot_q4_0(pf, b, act_q(act) + 32 * 4 * nq, act_dx(act, n) + 4 * nq, act_sx(act, n) + 4 * nq, nb - 4 * nq);
    return r;
}

/* ---- K-quants against Q8_0 activations ----
 * One weight row against NX activations (1 or 4; a constant at every call,
 * so the loops over k unroll): the weights of each 32 values are unpacked
 * once and dotted with every activation's block. */

/* Q4_K sub-blocks j and j+1 (the low and high nibbles of 32 bytes)
 * against activation blocks b0+j, b0+j+1, with their scales in element
 * j % 4, j % 4 + 1 of each 128-bit lane of sv[k][j / 4] (sv_halves); into
 * two accumulators. */
static ALWAYS_INLINE void q4k_pair(const uint8_t *qs, __m256 sv[][2], int j, const int8_t *const *x, long b0, int NX,
                                   __m256 acc[2][4]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 16 * j));
    __m256i q0 = _mm256_and_si256(b, m4), q1 = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        __m256i y0 = load_xq(x[k], b0 + j), y1 = load_xq(x[k], b0 + j + 1);
        acc[0][k] = _mm256_fmadd_ps(bcast_in_lanes(sv[k][j / 4], j % 4), _mm256_cvtepi32_ps(dot_u8s8(q0, y0)), acc[0][k]);
        acc[1][k] = _mm256_fmadd_ps(bcast_in_lanes(sv[k][j / 4], j % 4 + 1), _mm256_cvtepi32_ps(dot_u8s8(q1, y1)),
                                    acc[1][k]);
    }
}

/* Per super-block and activation: the eight sub-block scales d*sc*dx as
 * two vectors of four per 128-bit lane (sv_halves, sv_times_dx; element
 * j % 4 of sv[k][j / 4] broadcast for sub-block j), and the mins' part
 * dmin * sum_j m_j * dx_j * sum(y_j) as one FMA over the precomputed
 * block sums (kernel_quantize_act). */
static ALWAYS_INLINE void dot_q4_k_n(int pf, const BlockQ4_K *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *sx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n);
    const long nb = n / QK_K;
    /* one activation: two accumulators (even and odd sub-blocks), else the
     * FMA latency, one per 16 bytes of weights, would bound the dot */
    __m256 acc[2][4], accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[0][k] = acc[1][k] = accm[k] = _mm256_setzero_ps();
    for (long i = 0; i < nb; i++) {
        prefetch_ahead(pf, &w[i], 3); /* 144 bytes a super-block */
        __m256 scv, mnv;
        q4k_scale_vectors(&w[i], &scv, &mnv);
        __m256 sv[4][2], sch[2];
        sv_halves(scv, sch);
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            sv_times_dx(sch, dx[k] + 8 * i, sv[k]);
            accm[k] = _mm256_fmadd_ps(mnv, _mm256_loadu_ps(sx[k] + 8 * i), accm[k]);
        }
        /* spelled out so that j is a constant (see q6k_step) */
        q4k_pair(w[i].qs, sv, 0, x, i * 8, NX, acc);
        q4k_pair(w[i].qs, sv, 2, x, i * 8, NX, acc);
        q4k_pair(w[i].qs, sv, 4, x, i * 8, NX, acc);
        q4k_pair(w[i].qs, sv, 6, x, i * 8, NX, acc);
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(_mm256_sub_ps(_mm256_add_ps(acc[0][k], acc[1][k]), accm[k]));
}

/* DT_Q4_K_PAIRS (formats/dtype.h) against the activation's Q4_K order
 * (act_qk): pair p's 32 bytes hold sub-block a = dtype_k_pair_first(p)
 * in 128-bit lane 0 and a + 2 in lane 1, each packed as a Q4_0 block, and
 * act_qk holds the same two sub-blocks' elements 0-15 in 32 bytes and
 * their elements 16-31 64 bytes on, so the Q4_0 quads' step (q4_pair)
 * dots a pair: two maddubs joined in int16 (a pair of products |u y| <=
 * 2 * 15 * 127, two pairs 7620 < 32767), one widening, one conversion,
 * one FMA, where the stored layout's halves of two sub-blocks in each lane
 * take two of each (q4k_pair). The scales d sc dx are permuted once per
 * super-block to the pairs' lanes (0 4 1 5 | 2 6 3 7), so pair p's are
 * element p of each lane (bcast_in_lanes). The mins as in dot_q4_k_n. In
 * cache on one Zen 3 core (256 x 2048) 21.7 -> 20.3 us; two cores from
 * memory 26.3 -> 29.1 GB/s (docs/BENCHMARKS.md). */
static ALWAYS_INLINE void q4k_pairs_step(const BlockQ4_K *b, int p, const int8_t *const *x, const __m256 *sd, int NX,
                                         __m256 acc[2][4]) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * p));
    UNROLL_NX
    for (int k = 0; k < NX; k++)
        acc[p % 2][k] = q4_pair(v, x[k] + 128 * (p / 2) + 32 * (p % 2), bcast_in_lanes(sd[k], p), acc[p % 2][k]);
}

static ALWAYS_INLINE void dot_q4_k_pairs_n(int pf, const BlockQ4_K *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *sx[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_qk(act[k], n), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n);
    const long nb = n / QK_K;
    __m256 acc[2][4], accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[0][k] = acc[1][k] = accm[k] = _mm256_setzero_ps();
    for (long i = 0; i < nb; i++) {
        prefetch_ahead(pf, &w[i], 3); /* 144 bytes a super-block */
        __m256 scv, mnv, sd[4];
        q4k_scale_vectors(&w[i], &scv, &mnv);
        const int8_t *xi[4];
        kpairs_superblock(scv, mnv, dx, sx, x, i, NX, sd, accm, xi);
        /* spelled out so that p is a constant (see q6k_step) */
        q4k_pairs_step(&w[i], 0, xi, sd, NX, acc);
        q4k_pairs_step(&w[i], 1, xi, sd, NX, acc);
        q4k_pairs_step(&w[i], 2, xi, sd, NX, acc);
        q4k_pairs_step(&w[i], 3, xi, sd, NX, acc);
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(_mm256_sub_ps(_mm256_add_ps(acc[0][k], acc[1][k]), accm[k]));
}

/* The 6-bit quants (0..63) of half h of a Q6_K block: q[k] holds elements
 * 128h + 32k .. +31 in order. Each high-bit pair is masked where it lies
 * and shifted straight to bits 4-5 (16-bit shifts cannot carry across
 * bytes once masked). */
static inline void q6k_unpack(const BlockQ6_K *b, int h, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
    __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
    __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
    q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0c)), 2));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                           _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8((char)0xc0)), 2));
}

/* Q6_K: the quants (0..63) are dotted unsigned, each sub-block of 32 as
 * int32 lanes 0-3 (its first 16 values) and 4-7 (the other 16), which a
 * vector of the two scales multiplies; the offset of 32 comes off once per
 * super-block through the activation's half-block sums. */
/* One Q6_K sub-block j (of 32) of half h against activation block b:
 * lanes 0-3 take scale 8h+2j, lanes 4-7 scale 8h+2j+1, each times the
 * block's dx. sd[k], made once per half: lanes 0-3 the half's even scales
 * times d and dx of its blocks 0-3, lanes 4-7 its odd ones, so that a
 * sub-block's pair is element j of each 128-bit lane: one in-lane shuffle
 * per activation (bcast_in_lanes). */
static ALWAYS_INLINE void q6k_step(__m256i q, const __m256 *sd, int j, const int8_t *const *x, long b, int NX,
                                   __m256 *acc) {
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        __m256 v = _mm256_cvtepi32_ps(dot_u8s8(q, load_xq(x[k], b)));
        acc[k] = _mm256_fmadd_ps(bcast_in_lanes(sd[k], j), v, acc[k]);
    }
}

static ALWAYS_INLINE void dot_q6_k_n(int pf, const BlockQ6_K *w, const void *const *act, int NX, long n, float *out) {
    const int8_t *x[4];
    const float *dx[4], *s16[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n), s16[k] = act_s16(act[k], n);
    const long nb = n / QK_K;
    __m256 acc[2][4], acco[4]; /* two accumulators for one activation, as in Q4_K */
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[0][k] = acc[1][k] = acco[k] = _mm256_setzero_ps();
    for (long i = 0; i < nb; i++) {
        prefetch_ahead(pf, &w[i], 4); /* 210 bytes a super-block */
        __m128i sc8 = _mm_loadu_si128((const __m128i *)w[i].scales);
        __m256 d = _mm256_set1_ps(half(w[i].d));
        __m256 sc[2] = {_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8))),
                        _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc8, 8))))};
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            acco[k] = _mm256_fmadd_ps(sc[0], _mm256_loadu_ps(s16[k] + 16 * i), acco[k]);
            acco[k] = _mm256_fmadd_ps(sc[1], _mm256_loadu_ps(s16[k] + 16 * i + 8), acco[k]);
        }
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6k_unpack(&w[i], h, q);
            long b = i * 8 + 4 * h;
            /* the half's even scales in lanes 0-3, odd ones in 4-7, times
             * its 4 dx in each 128-bit lane */
            const __m256 sch = _mm256_permutevar8x32_ps(sc[h], _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
            __m256 sd[4];
            UNROLL_NX
            for (int k = 0; k < NX; k++) sd[k] = _mm256_mul_ps(sch, _mm256_broadcast_ps((const __m128 *)(dx[k] + b)));
            /* spelled out so that j is a constant (compilers do not unroll
             * this loop themselves, leaving q[] on the stack) */
            q6k_step(q[0], sd, 0, x, b, NX, acc[0]);
            q6k_step(q[1], sd, 1, x, b + 1, NX, acc[NX == 1]);
            q6k_step(q[2], sd, 2, x, b + 2, NX, acc[0]);
            q6k_step(q[3], sd, 3, x, b + 3, NX, acc[NX == 1]);
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(_mm256_add_ps(acc[0][k], acc[1][k])) - 32 * hsum8(acco[k]);
}

static inline __m256 load8_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline __m256 load8_bf16(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* Four accumulators hide the FMA latency; the tail is scalar. */
#define DOT_BODY(LOAD, SCALAR)                                                       \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                      \
    long i = 0;                                                                      \
    for (; i + 32 <= n; i += 32) {                                                   \
        a0 = _mm256_fmadd_ps(LOAD(w + i), _mm256_loadu_ps(x + i), a0);               \
        a1 = _mm256_fmadd_ps(LOAD(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);       \
        a2 = _mm256_fmadd_ps(LOAD(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);     \
        a3 = _mm256_fmadd_ps(LOAD(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);     \
    }                                                                                \
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD(w + i), _mm256_loadu_ps(x + i), a0); \
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));    \
    for (; i < n; i++) s += SCALAR(w[i]) * x[i];                                     \
    return s;

#define ID(v) (v)
static float dot_f32_w(const float *w, const float *x, long n) { DOT_BODY(_mm256_loadu_ps, ID) }
static float dot8_f16(const uint16_t *w, const float *x, long n) { DOT_BODY(load8_f16, f16_to_f32) }
static float dot8_bf16(const uint16_t *w, const float *x, long n) { DOT_BODY(load8_bf16, bf16_to_f32) }
#undef ID
float dot_f32(const float *a, const float *b, long n) { return dot_f32_w(a, b, n); }

#ifdef __AVX512F__
/* Weight rows of float types under AVX-512: 64 values a step in four
 * 512-bit accumulators, the last < 16 values by the 256-bit dot (TAIL).
 * Converting 16-bit floats costs an instruction per vector, and at 256
 * bits one core converted bf16/f16 rows at ~24 G values/s, about what it
 * streams from memory, so two cores decoding a bf16 model (Hugging Face's
 * usual) fell short of the memory bound; at 512 bits the conversion costs
 * half as much per value. */
/* In two halves, the load and the conversion, for the row dots that load
 * a step's weights first (LOADS_FIRST, quant_internal.h); load16_* both. */
static inline __m512 raw16_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline __m256i raw16_16(const uint16_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline __m512 cvt16_f32(__m512 v) { return v; }
static inline __m512 cvt16_f16(__m256i v) { return _mm512_cvtph_ps(v); }
static inline __m512 cvt16_bf16(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }
static inline __m512 load16_f32(const float *p) { return raw16_f32(p); }
static inline __m512 load16_f16(const uint16_t *p) { return cvt16_f16(raw16_16(p)); }
static inline __m512 load16_bf16(const uint16_t *p) { return cvt16_bf16(raw16_16(p)); }
/* The prefetch into L2 of quant_internal.h, as the quantised dots: with
 * it two cores stream 16-bit rows 1.2-1.4x faster (F16 8192 x 2048 and
 * 16384 x 8192 from memory, runs alternating call by call); a prefetch
 * into L1 (T0), tried before, cut one core's stream from ~15.5 to ~10.4
 * GB/s (docs/BENCHMARKS.md "Decode of 16-bit weights"). */
#define ROW_DOT_BODY(RAW, CVT, TAIL)                                                             \
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                  \
    long i = 0;                                                                                  \
    for (; i + 64 <= n; i += 64) {                                                               \
        __typeof__(RAW(w)) r0 = RAW(w + i), r1 = RAW(w + i + 16), r2 = RAW(w + i + 32), r3 = RAW(w + i + 48); \
        LOADS_FIRST(r0, r1, r2, r3);                                                             \
        prefetch_ahead_l2(pf, w + i, (int)sizeof *w);                                            \
        a0 = _mm512_fmadd_ps(CVT(r0), _mm512_loadu_ps(x + i), a0);                               \
        a1 = _mm512_fmadd_ps(CVT(r1), _mm512_loadu_ps(x + i + 16), a1);                          \
        a2 = _mm512_fmadd_ps(CVT(r2), _mm512_loadu_ps(x + i + 32), a2);                          \
        a3 = _mm512_fmadd_ps(CVT(r3), _mm512_loadu_ps(x + i + 48), a3);                          \
    }                                                                                            \
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(CVT(RAW(w + i)), _mm512_loadu_ps(x + i), a0); \
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + TAIL(w + i, x + i, n - i);
static ALWAYS_INLINE float dot_row_f32(int pf, const float *w, const float *x, long n) {
    ROW_DOT_BODY(raw16_f32, cvt16_f32, dot_f32_w)
}
static ALWAYS_INLINE float dot_f16(int pf, const uint16_t *w, const float *x, long n) {
    ROW_DOT_BODY(raw16_16, cvt16_f16, dot8_f16)
}
static ALWAYS_INLINE float dot_bf16(int pf, const uint16_t *w, const float *x, long n) {
    ROW_DOT_BODY(raw16_16, cvt16_bf16, dot8_bf16)
}

/* Two rows against one x: each row's sum is ROW_DOT_BODY's, operation for
 * operation (its own four accumulators, the same FMAs in the same order,
 * the same reduction and tail), so out[r] is bit-identical to the one-row
 * dot of row r; the x vectors are loaded once for both rows. In the
 * decode path x is up to 14336 floats (56 KB, an FFN's down projection),
 * more than L1 holds beside the weight stream: one row at a time read it
 * from L2 once per row, here once per two. Taken only for x longer than
 * FLOAT_ROWS_MIN_N floats: with x in L1 (2048 columns) two interleaved
 * row streams were slower than one (f16 8192 x 2048: ~12.5 against ~15.5
 * GB/s of one core; 2048 x 8192: ~13.3 against ~12.1; CPU time, a loaded machine,
 * interleaved runs, docs/BENCHMARKS.md "Decode of 16-bit weights"). */
#define FLOAT_ROWS_MIN_N 4096
#define ROW_DOT2_BODY(RAW, CVT, TAIL)                                                                \
    const __m512 z = _mm512_setzero_ps();                                                            \
    __m512 a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;                           \
    long i = 0;                                                                                      \
    for (; i + 64 <= n; i += 64) {                                                                   \
        __typeof__(RAW(w0)) r0 = RAW(w0 + i), r1 = RAW(w0 + i + 16), r2 = RAW(w0 + i + 32), r3 = RAW(w0 + i + 48); \
        __typeof__(RAW(w1)) s0 = RAW(w1 + i), s1 = RAW(w1 + i + 16), s2 = RAW(w1 + i + 32), s3 = RAW(w1 + i + 48); \
        LOADS_FIRST(r0, r1, r2, r3);                                                                 \
        LOADS_FIRST(s0, s1, s2, s3);                                                                 \
        prefetch_ahead_l2(pf, w0 + i, (int)sizeof *w0);                                              \
        prefetch_ahead_l2(pf, w1 + i, (int)sizeof *w1);                                              \
        __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);                        \
        __m512 x2 = _mm512_loadu_ps(x + i + 32), x3 = _mm512_loadu_ps(x + i + 48);                   \
        a0 = _mm512_fmadd_ps(CVT(r0), x0, a0);                                                       \
        b0 = _mm512_fmadd_ps(CVT(s0), x0, b0);                                                       \
        a1 = _mm512_fmadd_ps(CVT(r1), x1, a1);                                                       \
        b1 = _mm512_fmadd_ps(CVT(s1), x1, b1);                                                       \
        a2 = _mm512_fmadd_ps(CVT(r2), x2, a2);                                                       \
        b2 = _mm512_fmadd_ps(CVT(s2), x2, b2);                                                       \
        a3 = _mm512_fmadd_ps(CVT(r3), x3, a3);                                                       \
        b3 = _mm512_fmadd_ps(CVT(s3), x3, b3);                                                       \
    }                                                                                                \
    for (; i + 16 <= n; i += 16) {                                                                   \
        __m512 x0 = _mm512_loadu_ps(x + i);                                                          \
        a0 = _mm512_fmadd_ps(CVT(RAW(w0 + i)), x0, a0);                                              \
        b0 = _mm512_fmadd_ps(CVT(RAW(w1 + i)), x0, b0);                                              \
    }                                                                                                \
    out[0] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + TAIL(w0 + i, x + i, n - i); \
    out[1] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(b0, b1), _mm512_add_ps(b2, b3))) + TAIL(w1 + i, x + i, n - i);
static ALWAYS_INLINE void dot2_row_f32(int pf, const float *w0, const float *w1, const float *x, long n, float out[2]) {
    ROW_DOT2_BODY(raw16_f32, cvt16_f32, dot_f32_w)
}
static ALWAYS_INLINE void dot2_row_f16(int pf, const uint16_t *w0, const uint16_t *w1, const float *x, long n, float out[2]) {
    ROW_DOT2_BODY(raw16_16, cvt16_f16, dot8_f16)
}
static ALWAYS_INLINE void dot2_row_bf16(int pf, const uint16_t *w0, const uint16_t *w1, const float *x, long n, float out[2]) {
    ROW_DOT2_BODY(raw16_16, cvt16_bf16, dot8_bf16)
}

/* nrows consecutive float rows (rb bytes apart) against x, two at a time. */
static ALWAYS_INLINE void float_rows(int pf, int t, const char *rows, size_t rb, int nrows, const float *x, long n, float *out) {
    int r = 0;
    for (; r + 2 <= nrows; r += 2) {
        const char *p = rows + (size_t)r * rb;
        if (t == DT_F32) dot2_row_f32(pf, (const float *)p, (const float *)(p + rb), x, n, out + r);
        else if (t == DT_F16) dot2_row_f16(pf, (const uint16_t *)p, (const uint16_t *)(p + rb), x, n, out + r);
        else dot2_row_bf16(pf, (const uint16_t *)p, (const uint16_t *)(p + rb), x, n, out + r);
    }
    if (r < nrows) out[r] = vec_dot(t, rows + (size_t)r * rb, x, n);
}
#define HAVE_FLOAT_ROWS 1
#else
static ALWAYS_INLINE float dot_row_f32(int pf, const float *w, const float *x, long n) { (void)pf; return dot_f32_w(w, x, n); }
static ALWAYS_INLINE float dot_f16(int pf, const uint16_t *w, const float *x, long n) { (void)pf; return dot8_f16(w, x, n); }
static ALWAYS_INLINE float dot_bf16(int pf, const uint16_t *w, const float *x, long n) { (void)pf; return dot8_bf16(w, x, n); }
#endif


/* ---- one weight row against several activations ----
 * The batched decode path: the row is loaded (and unpacked) once and dotted
 * with four activations, so a batch costs little more memory traffic than
 * one token. Fewer than four repeat the last activation. */

/* t: Q8_0 or a Q4_0 layout (act_has_q4) */
static inline __m256i load_w_q(int t, const void *row, long i, float *dw) {
    if (t != DT_Q8_0) {
        uint16_t h;
        uint8_t buf[16];
        const uint8_t *qs = q4_0_block(t, row, i, &h, buf);
        *dw = half(h);
        return unpack_q4(qs);
    }
    const BlockQ8_0 *b = (const BlockQ8_0 *)row + i;
    *dw = half(b->d);
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

static inline __m256 mul_sum_signed(__m256i aw, __m256i w, __m256i y) {
    __m256i sy = _mm256_sign_epi8(y, w);
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sy);
#else
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sy), _mm256_set1_epi16(1));
#endif
    return _mm256_cvtepi32_ps(s);
}

static ALWAYS_INLINE void dot4_q(int pf, int t, const void *row, const void *const x[4], long n, float out[4]) {
    const int q4 = t != DT_Q8_0;
    long nb = n / QK8_0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (long i = 0; i < nb; i++) {
        float dw;
        if (!(i & 1)) prefetch_ahead(pf, (const char *)row + i * (q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0)), 1);
        __m256i w = load_w_q(t, row, i, &dw), aw = _mm256_sign_epi8(w, w);
#define ACC(k, acc)                                                                                  \
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * act_dx(x[k], n)[i]),                                   \
                          mul_sum_signed(aw, w, q4 ? load_xq(act_q(x[k]), i) : load_xq_q8(act_q(x[k]), i)), acc)
        ACC(0, a0);
        ACC(1, a1);
        ACC(2, a2);
        ACC(3, a3);
#undef ACC
    }
    out[0] = hsum8(a0), out[1] = hsum8(a1), out[2] = hsum8(a2), out[3] = hsum8(a3);
}

#define DOT4_BODY(LOAD, SCALAR)                                                                   \
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                   \
    long i = 0;                                                                                   \
    for (; i + 8 <= n; i += 8) {                                                                  \
        __m256 wv = LOAD(w + i);                                                                  \
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[0] + i), a0);                                  \
        a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[1] + i), a1);                                  \
        a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[2] + i), a2);                                  \
        a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[3] + i), a3);                                  \
    }                                                                                             \
    out[0] = hsum8(a0), out[1] = hsum8(a1), out[2] = hsum8(a2), out[3] = hsum8(a3);               \
    for (; i < n; i++)                                                                            \
        for (int k = 0; k < 4; k++) out[k] += SCALAR(w[i]) * x[k][i];

#define ID(v) (v)
static void dot4_8_f32(const float *w, const float *const x[4], long n, float out[4]) { DOT4_BODY(_mm256_loadu_ps, ID) }
static void dot4_8_f16(const uint16_t *w, const float *const x[4], long n, float out[4]) {
    DOT4_BODY(load8_f16, f16_to_f32)
}
static void dot4_8_bf16(const uint16_t *w, const float *const x[4], long n, float out[4]) {
    DOT4_BODY(load8_bf16, bf16_to_f32)
}
#undef ID

#ifdef __AVX512F__
/* As ROW_DOT_BODY, for four activations: 16 values a step (the weights
 * converted once for all four), the last < 16 by the 256-bit dot. Each
 * step asks for the weights 8 KB on, as the quantised dots do: batched bf16
 * decode (qwen2.5-0.5b -b 4) 115-116 -> 124 tok/s, f32 unchanged. */
#define ROW_DOT4_BODY(LOAD16, TAIL)                                                               \
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
    long i = 0;                                                                                   \
    for (; i + 16 <= n; i += 16) {                                                                \
        prefetch_ahead(pf, w + i, 1);                                                                 \
        __m512 wv = LOAD16(w + i);                                                                \
        UNROLL_NX                                                                                 \
        for (int k = 0; k < 4; k++) a[k] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x[k] + i), a[k]);  \
    }                                                                                             \
    const float *xt[4] = {x[0] + i, x[1] + i, x[2] + i, x[3] + i};                                \
    TAIL(w + i, xt, n - i, out);                                                                  \
    for (int k = 0; k < 4; k++) out[k] += _mm512_reduce_add_ps(a[k]);
static ALWAYS_INLINE void dot4_f32(int pf, const float *w, const float *const x[4], long n, float out[4]) {
    ROW_DOT4_BODY(load16_f32, dot4_8_f32)
}
static ALWAYS_INLINE void dot4_f16(int pf, const uint16_t *w, const float *const x[4], long n, float out[4]) {
    ROW_DOT4_BODY(load16_f16, dot4_8_f16)
}
static ALWAYS_INLINE void dot4_bf16(int pf, const uint16_t *w, const float *const x[4], long n, float out[4]) {
    ROW_DOT4_BODY(load16_bf16, dot4_8_bf16)
}
#else
static ALWAYS_INLINE void dot4_f32(int pf, const float *w, const float *const x[4], long n, float out[4]) { (void)pf; dot4_8_f32(w, x, n, out); }
static ALWAYS_INLINE void dot4_f16(int pf, const uint16_t *w, const float *const x[4], long n, float out[4]) { (void)pf; dot4_8_f16(w, x, n, out); }
static ALWAYS_INLINE void dot4_bf16(int pf, const uint16_t *w, const float *const x[4], long n, float out[4]) { (void)pf; dot4_8_bf16(w, x, n, out); }
#endif

/* The quantised dots: the AVX-512 ones (quant_avx512.c) where the build
 * has them and they are on, else the AVX2 ones above. */
static int avx512_on = KERNELS_AVX512;

int kernel_use_avx512(int on) {
    int was = avx512_on;
    avx512_on = on && KERNELS_AVX512;
    return was;
}

/* Whether the AVX-512 code takes rows of type t: every type when it is on,
 * except the layouts only the AVX2 code reads (Q4_0 in groups of 4 or 16
 * and the 32-value types in fours, Q4_K and Q5_K in pairs: a matrix
 * regrouped while it was off stays readable when it is on again); and the
 * T16 layouts, which only it reads fast, always (placed while it was on,
 * read while it is off: the AVX-512 dot still runs where the build has it,
 * elsewhere quant_dot's reference). */
#if KERNELS_AVX512
static int avx512_takes(int t) {
    if (dtype_is_t16(t)) return 1; /* no other dot reads them fast */
    return avx512_on && t != DT_Q4_0_G4 && t != DT_Q4_0_G16 && !dtype_k_pairs_base(t) && !dtype_legacy_g4_base(t);
}
#endif

/* Q4_0 rows of whole groups regrouped: where the AVX-512 dots run, Q4_0
 * and Q8_0 in T16 groups (dot_t16_n; on an Intel Xeon with AMX, two
 * threads: llama-3.2-1b Q8_0 decode 16.6-16.8 -> 18.2-18.5 tokens/s, Q4_0
 * 28.1-30.4 -> 30.7-30.9); where the AVX2 ones do, Q4_0 in groups of 16
 * (llama-3.2-1b Q4_0 decode 32-34 tokens/s as stored, 37-39 regrouped, on
 * a Zen 3) and of 4 (rows of whole quads that are not whole groups of 16:
 * qwen2.5-0.5b), which the AVX-512 ones leave as stored (their quad dot
 * reads the stored layout; avx512_takes). Likewise the 32-value types in
 * fours and Q4_K and Q5_K in pairs for the AVX2 dots only. */
int kernel_weight_type(int t, long cols) {
    if (dtype_legacy_g4_of(t) && cols % QKL_G4 == 0 && !avx512_on) /* quant_legacy.c */
        return dtype_legacy_g4_of(t);
    if (dtype_k_pairs_of(t) && !avx512_on) return dtype_k_pairs_of(t); /* dot_q4_k_pairs_n, quant_kquant.c */
#if KERNELS_AVX512
    if ((t == DT_Q4_0 || t == DT_Q8_0) && cols % QK_T16 == 0 && avx512_on) /* dot_t16_n, quant_avx512.c */
        return t == DT_Q4_0 ? DT_Q4_0_T16 : DT_Q8_0_T16;
    if (t == DT_Q4_K && cols % QK_T16 == 0 && avx512_on) return DT_Q4_K_T16; /* dot_q4kt_n, quant_avx512.c */
#endif
    if (t != DT_Q4_0) return t;
    if (cols % QK4_0_G16 == 0) return DT_Q4_0_G16;
    return cols % QK4_0_G4 == 0 && !avx512_on ? DT_Q4_0_G4 : t;
}

/* dot_q4_0_quads into L2 on Intel where auto would ask L1 (dispatch.h,
 * kernel_prefetch_intel): the vendor tested once per row, each arm a call
 * with the mode a constant. */
static ALWAYS_INLINE float dot_q4_0_quads_auto(int pf, int g, const void *w, const void *act, long n) {
    return PF_INTEL_L2(pf) ? dot_q4_0_quads(2, g, w, act, n) : dot_q4_0_quads(pf, g, w, act, n);
}

static ALWAYS_INLINE void quant_dot(int pf, int t, const void *row, const void *act, long n, float *out) {
#if KERNELS_AVX512
    if (avx512_takes(t)) {
        quant512_rows(t, row, 0, 1, act, n, out);
        return;
    }
#endif
    if (dtype_is_t16(t)) { /* placed by an AVX-512 level, read by another: correct, not fast */
        *out = vec_dot_ref(t, row, act, n);
        return;
    }
    if (quant_legacy_type(t)) {
        legacy_dot_n(t, row, &act, 1, n, out);
        return;
    }
    switch (t) {
    case DT_Q8_0: *out = dot_q8_0(pf, row, act_q(act), act_dx(act, n), n / QK8_0); break;
    case DT_Q4_0: *out = dot_q4_0_quads_auto(pf, 1, row, act, n); break;
    case DT_Q4_0_G4: *out = dot_q4_0_quads_auto(pf, 4, row, act, n); break;
    case DT_Q4_0_G16: *out = dot_q4_0_quads_auto(pf, 16, row, act, n); break;
    case DT_Q4_K: dot_q4_k_n(pf, row, &act, 1, n, out); break;
    case DT_Q4_K_PAIRS: dot_q4_k_pairs_n(pf, row, &act, 1, n, out); break;
    case DT_Q2_K: case DT_Q3_K: case DT_Q5_K: case DT_IQ4_XS: case DT_Q5_K_PAIRS: kquant_dot_n(t, row, &act, 1, n, out); break;
    default: dot_q6_k_n(pf, row, &act, 1, n, out); break;
    }
}

static ALWAYS_INLINE void quant_dot4(int pf, int t, const void *row, const void *const x[4], long n, float r[4]) {
#if KERNELS_AVX512
    if (avx512_takes(t)) {
        quant512_dot4(t, row, x, n, r);
        return;
    }
#endif
    if (dtype_is_t16(t)) { /* as quant_dot */
        for (int k = 0; k < 4; k++) r[k] = vec_dot_ref(t, row, x[k], n);
        return;
    }
    if (t == DT_Q8_0 || act_has_q4(t)) {
        dot4_q(pf, t, row, x, n, r);
        return;
    }
    if (quant_legacy_type(t)) {
        legacy_dot_n(t, row, x, 4, n, r);
        return;
    }
    if (t == DT_Q4_K) dot_q4_k_n(pf, row, x, 4, n, r);
    else if (t == DT_Q4_K_PAIRS) dot_q4_k_pairs_n(pf, row, x, 4, n, r);
    else if (kquant_is(t)) kquant_dot_n(t, row, x, 4, n, r);
    else dot_q6_k_n(pf, row, x, 4, n, r);
}

static ALWAYS_INLINE void vec_dot_multi_pf(int pf, int t, const void *row, const void *act, size_t stride, int n,
                                          long len, float *out, size_t out_stride) {
    int a = 0;
    /* a remainder of one or two: single dots (the row is in L1 by then) */
    for (; n - a == 1 || n - a == 2; a++) out[(size_t)a * out_stride] = vec_dot(t, row, (const char *)act + (size_t)a * stride, len);
    for (; a < n; a += 4) {
        const void *x[4];
        for (int k = 0; k < 4; k++) x[k] = (const char *)act + (size_t)(a + k < n ? a + k : n - 1) * stride;
        float r[4];
        switch (t) {
        case DT_F32: dot4_f32(pf, row, (const float *const *)x, len, r); break;
        case DT_F16: dot4_f16(pf, row, (const float *const *)x, len, r); break;
        case DT_BF16: dot4_bf16(pf, row, (const float *const *)x, len, r); break;
        default: /* the quantised types (their activation Q8_0) */
            if (kernel_vec_type(t) == DT_Q8_0) quant_dot4(pf, t, row, x, len, r);
            else r[0] = r[1] = r[2] = r[3] = 0;
            break;
        }
        for (int k = 0; k < 4 && a + k < n; k++) out[(size_t)(a + k) * out_stride] = r[k];
    }
}

void vec_dot_multi(int t, const void *row, const void *act, size_t stride, int n, long len, float *out,
                   size_t out_stride) {
    WITH_PREFETCH_MODE(vec_dot_multi_pf(pf, t, row, act, stride, n, len, out, out_stride));
}

/* ---- row conversion to f32 for the GEMM path ---- */

/* 32 bytes as four vectors of 8 floats. */
static inline void u8x32_to_f32(__m256i q, __m256 out[4]) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

/* The same values as formats' deq_q4_k / deq_q6_k, in the same order of
 * operations (multiply, then subtract; (d*sc)*q), so the results are
 * bit-identical. Q4_K as stored or in pairs (DT_Q4_K_PAIRS: sub-block j's
 * elements 0-15 and 16-31 are the low and high nibbles of one 128-bit
 * lane of its pair). */
static void deq_q4_k_avx2(int t, const BlockQ4_K *b, float *y, long nb) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (long i = 0; i < nb; i++, y += QK_K) {
        float d = half(b[i].d), dmin = half(b[i].dmin);
        __m256i q[8]; /* sub-block j's 32 quants in element order */
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * k));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (t == DT_Q4_K_PAIRS) {
                int a = dtype_k_pair_first(k);
                q[a] = _mm256_permute2x128_si256(lo, hi, 0x20), q[a + 2] = _mm256_permute2x128_si256(lo, hi, 0x31);
            } else {
                q[2 * k] = lo, q[2 * k + 1] = hi;
            }
        }
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            q4k_scale_min(j, b[i].scales, &sc, &mn);
            __m256 f[4], ds = _mm256_set1_ps(d * (float)sc), o = _mm256_set1_ps(dmin * (float)mn);
            u8x32_to_f32(q[j], f);
            for (int k = 0; k < 4; k++) _mm256_storeu_ps(y + 32 * j + 8 * k, _mm256_sub_ps(_mm256_mul_ps(ds, f[k]), o));
        }
    }
}

static void deq_q6_k_avx2(const BlockQ6_K *b, float *y, long nb) {
    const __m256 c32 = _mm256_set1_ps(32);
    for (long i = 0; i < nb; i++, y += QK_K) {
        float d = half(b[i].d);
        for (int h = 0; h < 2; h++) {
            __m256i q[4];
            q6k_unpack(&b[i], h, q);
            for (int j = 0; j < 4; j++) {
                const int8_t *sc = b[i].scales + 8 * h + 2 * j;
                __m256 f[4], s0 = _mm256_set1_ps(d * (float)sc[0]), s1 = _mm256_set1_ps(d * (float)sc[1]);
                u8x32_to_f32(q[j], f);
                float *o = y + 128 * h + 32 * j;
                /* q - 32 is exact in float, as is the integer it replaces */
                _mm256_storeu_ps(o, _mm256_mul_ps(s0, _mm256_sub_ps(f[0], c32)));
                _mm256_storeu_ps(o + 8, _mm256_mul_ps(s0, _mm256_sub_ps(f[1], c32)));
                _mm256_storeu_ps(o + 16, _mm256_mul_ps(s1, _mm256_sub_ps(f[2], c32)));
                _mm256_storeu_ps(o + 24, _mm256_mul_ps(s1, _mm256_sub_ps(f[3], c32)));
            }
        }
    }
}

void kernel_dequantize_row(int t, const void *row, float *y, long n) {
    if (quant_legacy_type(t)) { /* stored or regrouped */
        legacy_dequantize_row(t, row, y, n);
        return;
    }
    switch (t) {
    case DT_F32: memcpy(y, row, (size_t)n * sizeof(float)); return;
    case DT_F16: {
        const uint16_t *h = row;
        long i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load8_f16(h + i));
        for (; i < n; i++) y[i] = f16_to_f32(h[i]);
        return;
    }
    case DT_BF16: {
        const uint16_t *h = row;
        long i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load8_bf16(h + i));
        for (; i < n; i++) y[i] = bf16_to_f32(h[i]);
        return;
    }
    case DT_Q8_0:
    case DT_Q4_0:
    case DT_Q4_0_G4:
    case DT_Q4_0_G16:
        for (long b = 0; b < n / QK8_0; b++) {
            float d;
            __m256i q = load_w_q(t, row, b, &d);
            __m256 vd = _mm256_set1_ps(d);
            for (int k = 0; k < 4; k++) {
                __m128i part = k < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
                if (k & 1) part = _mm_srli_si128(part, 8);
                __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(part));
                _mm256_storeu_ps(y + b * QK8_0 + k * 8, _mm256_mul_ps(vd, v));
            }
        }
        return;
    case DT_Q4_K:
    case DT_Q4_K_PAIRS: deq_q4_k_avx2(t, row, y, n / QK_K); return;
    case DT_Q6_K: deq_q6_k_avx2(row, y, n / QK_K); return;
    default: dequantize_row(t, row, y, n); return;
    }
}


/* Activations to Q8_0 quants and scales, once per matmul in the decode
 * path. The rounding is to nearest-even where ggml's scalar reference
 * rounds halves away from zero: the two differ only on exact ties (as in
 * llama.cpp's AVX2 code). */
static inline int hsum8_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static void quantize_q8(const float *x, int8_t *q, float *dx, float *sx, float *s16, long n, uint8_t bias) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (long i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h), d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        dx[i] = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
        __m256 vid = _mm256_set1_ps(id);
        __m256i qi[4];
        for (int k = 0; k < 4; k++)
            qi[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        /* int32 -> int8 with the lane order packs scramble undone */
        __m256i p16a = _mm256_packs_epi32(qi[0], qi[1]), p16b = _mm256_packs_epi32(qi[2], qi[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + 32 * i), _mm256_xor_si256(p8, _mm256_set1_epi8((char)bias)));
        block_sums(hsum8_i32(_mm256_add_epi32(qi[0], qi[1])), hsum8_i32(_mm256_add_epi32(qi[2], qi[3])), dx[i], &sx[i],
                   &s16[2 * i]);
    }
}

static ALWAYS_INLINE float vec_dot_pf(int pf, int t, const void *row, const void *act, long n) {
    switch (t) {
    case DT_F32: return dot_row_f32(pf, row, act, n);
    case DT_F16: return dot_f16(pf, row, act, n);
    case DT_BF16: return dot_bf16(pf, row, act, n);
    default: { /* the quantised types (their activation Q8_0) */
        if (kernel_vec_type(t) != DT_Q8_0) return 0;
        float r;
        quant_dot(pf, t, row, act, n, &r);
        return r;
    }
    }
}

float vec_dot(int t, const void *row, const void *act, long n) {
    float r = 0;
    WITH_PREFETCH_MODE(r = vec_dot_pf(pf, t, row, act, n));
    return r;
}

void axpy_f32(float *y, float a, const float *x, long n) {
    __m256 va = _mm256_set1_ps(a);
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

#else /* portable fallback */

float dot_f32(const float *a, const float *b, long n) {
    /* several partial sums let the compiler vectorise without -ffast-math */
    float s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

float vec_dot(int t, const void *row, const void *act, long n) {
    if (t == DT_F32) return dot_f32(row, act, n);
    return vec_dot_ref(t, row, act, n);
}

void axpy_f32(float *y, float a, const float *x, long n) {
    for (long i = 0; i < n; i++) y[i] += a * x[i];
}

void kernel_dequantize_row(int t, const void *row, float *y, long n) { dequantize_row(t, row, y, n); }

static void quantize_q8(const float *x, int8_t *q, float *dx, float *sx, float *s16, long n, uint8_t bias) {
    BlockQ8_0 b;
    for (long i = 0; i < n / QK8_0; i++) {
        quantize_row_q8_0(x + 32 * i, &b, QK8_0);
        for (int j = 0; j < QK8_0; j++) q[32 * i + j] = (int8_t)((uint8_t)b.qs[j] ^ bias);
        dx[i] = f16_to_f32(b.d);
        int lo = 0, hi = 0;
        for (int j = 0; j < QK8_0 / 2; j++) lo += b.qs[j], hi += b.qs[j + QK8_0 / 2];
        block_sums(lo, hi, dx[i], &sx[i], &s16[2 * i]);
    }
}

int kernel_use_avx512(int on) {
    (void)on;
    return 0;
}

int kernel_weight_type(int t, long cols) {
    (void)cols;
    return t;
}

void vec_dot_multi(int t, const void *row, const void *act, size_t stride, int n, long len, float *out,
                   size_t out_stride) {
    for (int a = 0; a < n; a++) out[(size_t)a * out_stride] = vec_dot(t, row, (const char *)act + (size_t)a * stride, len);
}

#endif

/* ---- rows of a matrix: the wide kernels where this build has them ---- */

void vec_dot_rows(int t, const void *rows, size_t rb, int nrows, const void *act, long n, float *out) {
#ifdef HAVE_FLOAT_ROWS
    if ((t == DT_F32 || t == DT_F16 || t == DT_BF16) && n > FLOAT_ROWS_MIN_N) {
        WITH_PREFETCH_MODE(float_rows(pf, t, rows, rb, nrows, act, n, out));
        return;
    }
#endif
#if KERNELS_AVX512
    if (avx512_takes(t) && kernel_vec_type(t) == DT_Q8_0) {
        quant512_rows(t, rows, rb, nrows, act, n, out);
        return;
    }
#endif
    for (int r = 0; r < nrows; r++) out[r] = vec_dot(t, (const char *)rows + r * rb, act, n);
}

void vec_dot_multi_rows(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int n,
                        long len, float *out, size_t out_stride) {
#if KERNELS_AVX512
    if (avx512_takes(t) && kernel_vec_type(t) == DT_Q8_0) {
        /* up to four activations a pass (two or three together too: one at a
         * time, as before, made two sequences cost two passes of the
         * arithmetic, as much as four) */
        for (int a = 0; a < n; a += 4) {
            const void *x[4];
            int nx = n - a < 4 ? n - a : 4;
            for (int k = 0; k < nx; k++) x[k] = (const char *)act + (size_t)(a + k) * stride;
            quant512_rows_n(t, rows, rb, nrows, x, nx, len, out + (size_t)a * out_stride, out_stride);
        }
        return;
    }
#endif
    for (int r = 0; r < nrows; r++) vec_dot_multi(t, (const char *)rows + r * rb, act, stride, n, len, out + r, out_stride);
}

