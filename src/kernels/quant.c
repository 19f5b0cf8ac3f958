#include "kernels/quant.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

static const char *const KTYPE_NAMES[KT_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};

const char *ktype_name(KType t) { return (unsigned)t < KT_COUNT ? KTYPE_NAMES[t] : "?"; }

int ktype_parse(const char *s) {
    for (int i = 0; i < KT_COUNT; i++)
        if (!strcmp(s, KTYPE_NAMES[i])) return i;
    return -1;
}

size_t ktype_row_bytes(KType t, long n) {
    switch (t) {
    case KT_F32: return (size_t)n * 4;
    case KT_F16:
    case KT_BF16: return (size_t)n * 2;
    case KT_Q8_0: return (size_t)(n / QK) * sizeof(BlockQ8_0);
    case KT_Q4_0: return (size_t)(n / QK) * sizeof(BlockQ4_0);
    default: return 0;
    }
}

int ktype_row_ok(KType t, long n) {
    if (n <= 0 || (unsigned)t >= KT_COUNT) return 0;
    return (t != KT_Q8_0 && t != KT_Q4_0) || n % QK == 0;
}

KType ktype_vec_type(KType weight) {
    return weight == KT_Q8_0 || weight == KT_Q4_0 ? KT_Q8_0 : KT_F32;
}

/* ---- half and bfloat16 ---- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
#endif
}

uint16_t f32_to_f16(float f) {
#ifdef __F16C__
    return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    uint32_t u = f32_bits(f), sign = (u >> 16) & 0x8000;
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0));
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (au < 0x38800000u) {
        /* subnormal half (or zero): round au * 2^24 to an integer, ties to even */
        float v = bits_f32(au) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)lrintf(v));
    }
    /* normal: drop 13 mantissa bits with round-to-nearest-even */
    uint32_t r = au + 0xfffu + ((au >> 13) & 1);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
#endif
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- quantise / dequantise (the rounding rules of ggml) ---- */

static void quantize_q8_0(const float *x, BlockQ8_0 *b, long n) {
    for (long i = 0; i < n / QK; i++, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < QK; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void quantize_q4_0(const float *x, BlockQ4_0 *b, long n) {
    for (long i = 0; i < n / QK; i++, x += QK) {
        /* the value of largest magnitude maps to -8, keeping its sign */
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
        float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = f32_to_f16(d);
        for (int j = 0; j < QK / 2; j++) {
            int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + QK / 2] * id + 8.5f);
            lo = lo > 15 ? 15 : lo;
            hi = hi > 15 ? 15 : hi;
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void quantize_row(KType t, const float *x, void *row, long n) {
    switch (t) {
    case KT_F32: memcpy(row, x, (size_t)n * 4); break;
    case KT_F16:
        for (long i = 0; i < n; i++) ((uint16_t *)row)[i] = f32_to_f16(x[i]);
        break;
    case KT_BF16:
        for (long i = 0; i < n; i++) ((uint16_t *)row)[i] = f32_to_bf16(x[i]);
        break;
    case KT_Q8_0: quantize_q8_0(x, row, n); break;
    case KT_Q4_0: quantize_q4_0(x, row, n); break;
    default: break;
    }
}

void dequantize_row(KType t, const void *row, float *y, long n) {
    switch (t) {
    case KT_F32: memcpy(y, row, (size_t)n * 4); break;
    case KT_F16:
        for (long i = 0; i < n; i++) y[i] = f16_to_f32(((const uint16_t *)row)[i]);
        break;
    case KT_BF16:
        for (long i = 0; i < n; i++) y[i] = bf16_to_f32(((const uint16_t *)row)[i]);
        break;
    case KT_Q8_0: {
        const BlockQ8_0 *b = row;
        for (long i = 0; i < n / QK; i++) {
            float d = f16_to_f32(b[i].d);
            for (int j = 0; j < QK; j++) y[i * QK + j] = d * b[i].qs[j];
        }
        break;
    }
    case KT_Q4_0: {
        const BlockQ4_0 *b = row;
        for (long i = 0; i < n / QK; i++) {
            float d = f16_to_f32(b[i].d);
            for (int j = 0; j < QK / 2; j++) {
                y[i * QK + j] = d * ((b[i].qs[j] & 15) - 8);
                y[i * QK + j + QK / 2] = d * ((b[i].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    default: break;
    }
}

/* ---- reference dots: the plain definitions ---- */

float vec_dot_ref(KType t, const void *row, const void *act, long n) {
    float sum = 0;
    switch (t) {
    case KT_F32:
    case KT_F16:
    case KT_BF16: {
        const float *x = act;
        for (long i = 0; i < n; i++) {
            float w = t == KT_F32    ? ((const float *)row)[i]
                      : t == KT_F16 ? f16_to_f32(((const uint16_t *)row)[i])
                                    : bf16_to_f32(((const uint16_t *)row)[i]);
            sum += w * x[i];
        }
        return sum;
    }
    case KT_Q8_0: {
        const BlockQ8_0 *w = row, *x = act;
        for (long i = 0; i < n / QK; i++) {
            int s = 0;
            for (int j = 0; j < QK; j++) s += w[i].qs[j] * x[i].qs[j];
            sum += f16_to_f32(w[i].d) * f16_to_f32(x[i].d) * (float)s;
        }
        return sum;
    }
    case KT_Q4_0: {
        const BlockQ4_0 *w = row;
        const BlockQ8_0 *x = act;
        for (long i = 0; i < n / QK; i++) {
            int s = 0;
            for (int j = 0; j < QK / 2; j++)
                s += ((w[i].qs[j] & 15) - 8) * x[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + QK / 2];
            sum += f16_to_f32(w[i].d) * f16_to_f32(x[i].d) * (float)s;
        }
        return sum;
    }
    default: return 0;
    }
}

/* ---- fast dots ---- */

#if defined(__AVX2__) && defined(__FMA__)
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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

static float dot_q8_0(const BlockQ8_0 *w, const BlockQ8_0 *x, long nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    long i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256 p0 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[i].qs),
                               _mm256_loadu_si256((const __m256i *)x[i].qs));
        __m256 p1 = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[i + 1].qs),
                               _mm256_loadu_si256((const __m256i *)x[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w[i].d) * f16_to_f32(x[i].d)), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w[i + 1].d) * f16_to_f32(x[i + 1].d)), p1, acc1);
    }
    for (; i < nb; i++) {
        __m256 p = mul_sum_i8(_mm256_loadu_si256((const __m256i *)w[i].qs),
                              _mm256_loadu_si256((const __m256i *)x[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w[i].d) * f16_to_f32(x[i].d)), p, acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static inline __m256i unpack_q4(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(15);
    __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

static float dot_q4_0(const BlockQ4_0 *w, const BlockQ8_0 *x, long nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    long i = 0;
    for (; i + 1 < nb; i += 2) {
        __m256 p0 = mul_sum_i8(unpack_q4(w[i].qs), _mm256_loadu_si256((const __m256i *)x[i].qs));
        __m256 p1 = mul_sum_i8(unpack_q4(w[i + 1].qs), _mm256_loadu_si256((const __m256i *)x[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w[i].d) * f16_to_f32(x[i].d)), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w[i + 1].d) * f16_to_f32(x[i + 1].d)), p1, acc1);
    }
    for (; i < nb; i++) {
        __m256 p = mul_sum_i8(unpack_q4(w[i].qs), _mm256_loadu_si256((const __m256i *)x[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(w[i].d) * f16_to_f32(x[i].d)), p, acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
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
static float dot_f16(const uint16_t *w, const float *x, long n) { DOT_BODY(load8_f16, f16_to_f32) }
static float dot_bf16(const uint16_t *w, const float *x, long n) { DOT_BODY(load8_bf16, bf16_to_f32) }
#undef ID

float dot_f32(const float *a, const float *b, long n) { return dot_f32_w(a, b, n); }

float vec_dot(KType t, const void *row, const void *act, long n) {
    switch (t) {
    case KT_F32: return dot_f32_w(row, act, n);
    case KT_F16: return dot_f16(row, act, n);
    case KT_BF16: return dot_bf16(row, act, n);
    case KT_Q8_0: return dot_q8_0(row, act, n / QK);
    case KT_Q4_0: return dot_q4_0(row, act, n / QK);
    default: return 0;
    }
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

float vec_dot(KType t, const void *row, const void *act, long n) {
    if (t == KT_F32) return dot_f32(row, act, n);
    return vec_dot_ref(t, row, act, n);
}

void axpy_f32(float *y, float a, const float *x, long n) {
    for (long i = 0; i < n; i++) y[i] += a * x[i];
}
#endif
