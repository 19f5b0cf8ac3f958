/* dtype: type table, half/bfloat16 conversion, ggml block (de)quantisation. */
#include "formats/dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DTYPE_F16C 1
#include <immintrin.h>
#endif

#include "base/cpu_features.h"

typedef struct TypeInfo {
    int type;
    const char *name;    /* ggml name */
    const char *st_name; /* safetensors name or NULL */
    int block;           /* elements per block */
    size_t bytes;        /* bytes per block */
} TypeInfo;

static const TypeInfo TYPES[] = {
    {DT_F32, "f32", "F32", 1, 4},
    {DT_F16, "f16", "F16", 1, 2},
    {DT_BF16, "bf16", "BF16", 1, 2},
    {DT_Q8_0, "q8_0", NULL, QK8_0, sizeof(BlockQ8_0)},
    {DT_Q4_0, "q4_0", NULL, QK4_0, sizeof(BlockQ4_0)},
    {DT_Q4_1, "q4_1", NULL, QK4_1, sizeof(BlockQ4_1)},
    {DT_Q5_0, "q5_0", NULL, QK5_0, sizeof(BlockQ5_0)},
    {DT_Q5_1, "q5_1", NULL, QK5_1, sizeof(BlockQ5_1)},
    {DT_IQ4_NL, "iq4_nl", NULL, QK4_NL, sizeof(BlockIQ4_NL)},
    {DT_Q4_K, "q4_k", NULL, QK_K, sizeof(BlockQ4_K)},
    {DT_Q6_K, "q6_k", NULL, QK_K, sizeof(BlockQ6_K)},
    {DT_Q2_K, "q2_k", NULL, QK_K, sizeof(BlockQ2_K)}, /* dtype_kquant.c */
    {DT_Q3_K, "q3_k", NULL, QK_K, sizeof(BlockQ3_K)},
    {DT_Q5_K, "q5_k", NULL, QK_K, sizeof(BlockQ5_K)},
    {DT_IQ4_XS, "iq4_xs", NULL, QK_K, sizeof(BlockIQ4_XS)},
    {DT_I8, "i8", "I8", 1, 1},
    {DT_I16, "i16", "I16", 1, 2},
    {DT_I32, "i32", "I32", 1, 4},
    {DT_I64, "i64", "I64", 1, 8},
    {DT_F64, "f64", "F64", 1, 8},
    {DT_U8, "u8", "U8", 1, 1},
    {DT_BOOL, "bool", "BOOL", 1, 1},
    {DT_Q4_0_G16, "q4_0_g16", NULL, QK4_0_G16, 16 * sizeof(BlockQ4_0)},
    {DT_Q4_0_G4, "q4_0_g4", NULL, QK4_0_G4, 4 * sizeof(BlockQ4_0)},
    {DT_Q5_0_G4, "q5_0_g4", NULL, QKL_G4, 4 * sizeof(BlockQ5_0)},
    {DT_Q5_1_G4, "q5_1_g4", NULL, QKL_G4, 4 * sizeof(BlockQ5_1)},
    {DT_Q4_1_G4, "q4_1_g4", NULL, QKL_G4, 4 * sizeof(BlockQ4_1)},
    {DT_IQ4_NL_G4, "iq4_nl_g4", NULL, QKL_G4, 4 * sizeof(BlockIQ4_NL)},
    {DT_Q4_K_PAIRS, "q4_k_pairs", NULL, QK_K, sizeof(BlockQ4_K)},
    {DT_Q5_K_PAIRS, "q5_k_pairs", NULL, QK_K, sizeof(BlockQ5_K)},
    {DT_Q4_0_T16, "q4_0_t16", NULL, QK_T16, 16 * sizeof(BlockQ4_0)},
    {DT_Q8_0_T16, "q8_0_t16", NULL, QK_T16, 16 * sizeof(BlockQ8_0)},
    {DT_Q4_K_T16, "q4_k_t16", NULL, QK_T16, 2 * sizeof(BlockQ4_K)},
};
#define NTYPES (int)(sizeof(TYPES) / sizeof(TYPES[0]))

/* The on-disk structs must have ggml's exact sizes. */
_Static_assert(sizeof(BlockQ8_0) == 34, "BlockQ8_0 size");
_Static_assert(sizeof(BlockQ4_0) == 18, "BlockQ4_0 size");
_Static_assert(sizeof(BlockQ4_K) == 144, "BlockQ4_K size");
_Static_assert(sizeof(BlockQ6_K) == 210, "BlockQ6_K size");
_Static_assert(sizeof(BlockQ5_K) <= 16 * sizeof(BlockQ4_0), "quantize_row's group buffer");

static const TypeInfo *info(int t) {
    for (int i = 0; i < NTYPES; i++)
        if (TYPES[i].type == t) return &TYPES[i];
    return NULL;
}

const char *dtype_name(int t) {
    const TypeInfo *ti = info(t);
    return ti ? ti->name : "?";
}

const char *dtype_st_name(int t) {
    const TypeInfo *ti = info(t);
    return ti ? ti->st_name : NULL;
}

int dtype_from_name(const char *s) {
    if (!s) return DT_INVALID;
    for (int i = 0; i < NTYPES; i++) /* an in-memory layout is not a type one asks for */
        if (!dtype_regrouped_from(TYPES[i].type) && !strcasecmp(s, TYPES[i].name))
            return TYPES[i].type;
    return DT_INVALID;
}

int dtype_valid(int t) { return info(t) != NULL; }

int dtype_is_quantized(int t) {
    const TypeInfo *ti = info(t);
    return ti && ti->block > 1;
}

int dtype_block_size(int t) {
    const TypeInfo *ti = info(t);
    return ti ? ti->block : 0;
}

size_t dtype_block_bytes(int t) {
    const TypeInfo *ti = info(t);
    return ti ? ti->bytes : 0;
}

size_t dtype_nbytes(int t, int64_t n) {
    const TypeInfo *ti = info(t);
    if (!ti || n < 0 || n % ti->block) return 0;
    uint64_t blocks = (uint64_t)n / (uint64_t)ti->block;
    if (blocks > SIZE_MAX / ti->bytes) return 0;
    return (size_t)blocks * ti->bytes;
}

int dtype_can_dequantize(int t) { return info(t) != NULL; }

/* ---- half and bfloat16 ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or nan (keep nan quiet and non-zero) */
        return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | ((a >> 13) & 0x3ff) : 0);
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds past 65504: inf */
    if (a < 0x38800000u) {
        /* below the smallest normal half (2^-14): subnormal or zero.
         * Scaling by 2^24 makes the subnormal mantissa the integer part;
         * rintf rounds to nearest even in the default mode. */
        float v = bits_f32(a) * 0x1p24f;
        return sign | (uint16_t)rintf(v);
    }
    /* normal: rebias exponent, round mantissa 23 -> 10 bits to nearest even */
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- dequantisation ---- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void deq_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(BlockQ8_0), dst += QK8_0) {
        float d = f16_to_f32(rd16(src));
        const int8_t *q = (const int8_t *)(src + 2);
        for (int j = 0; j < QK8_0; j++) dst[j] = d * (float)q[j];
    }
}

static void deq_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(BlockQ4_0), dst += QK4_0) {
        float d = f16_to_f32(rd16(src));
        const uint8_t *q = src + 2;
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = d * (float)((q[j] & 0xf) - 8);
            dst[j + QK4_0 / 2] = d * (float)((q[j] >> 4) - 8);
        }
    }
}

/* DT_Q4_0_G4 / _G16 (dtype.h): per group of g blocks, the scales, then the
 * nibbles. Block j of a group: scale at 2j, nibbles at 2g + 16j. */
static void deq_q4_0_grouped(const uint8_t *src, float *dst, int64_t ng, int g) {
    for (int64_t k = 0; k < ng; k++, src += g * sizeof(BlockQ4_0))
        for (int j = 0; j < g; j++, dst += QK4_0) {
            uint8_t b[sizeof(BlockQ4_0)]; /* the block as stored */
            memcpy(b, src + 2 * j, 2);
            memcpy(b + 2, src + 2 * g + 16 * j, 16);
            deq_q4_0(b, dst, 1);
        }
}

void dtype_q4_0_regroup(const void *src_, void *dst_, int64_t n, int g) {
    const uint8_t *src = src_;
    uint8_t *dst = dst_;
    for (int64_t k = 0; k < n / (QK4_0 * g); k++, dst += g * sizeof(BlockQ4_0))
        for (int j = 0; j < g; j++, src += sizeof(BlockQ4_0)) {
            memcpy(dst + 2 * j, src, 2);
            memcpy(dst + 2 * g + 16 * j, src + 2, 16);
        }
}

/* n values of Q4_0 or Q8_0 blocks into groups of the T16 layout `to`
 * (dtype.h): the scales, then the quants' dwords part by part. */
static void t16_regroup(int to, const uint8_t *src, uint8_t *dst, int64_t n) {
    const int q8 = to == DT_Q8_0_T16, parts = q8 ? 8 : 4;
    const size_t bs = q8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
    for (int64_t k = 0; k < n / QK_T16; k++, dst += 32 + 64 * parts)
        for (int j = 0; j < 16; j++, src += bs) {
            memcpy(&dst[2 * j], src, 2); /* the scales first */
            for (int p = 0; p < parts; p++)
                for (int i = 0; i < 4; i++) dst[32 + 64 * p + 4 * j + i] = src[2 + 4 * p + i] ^ (q8 ? 0x80 : 0);
        }
}

/* A T16 group's 16 blocks back in the stored layout. */
static void t16_ungroup(int t, const uint8_t *src, uint8_t *dst) {
    const size_t bs = t == DT_Q8_0_T16 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
    for (int j = 0; j < 16; j++, dst += bs) {
        uint16_t d = dtype_t16_block(t, src, j, dst + 2);
        memcpy(dst, &d, 2);
    }
}

static void q4k_scale_min(int j, const uint8_t *s, int *sc, int *mn);

/* Field v (0-31) of a DT_Q4_K_T16 header's 6-bit stream (dtype.h): bits
 * 6v..6v+5 of bytes 8-31, little-endian. */
static int q4kt_field(const uint8_t *g, int v) {
    const int bit = 6 * v;
    return ((g[8 + bit / 8] | (bit / 8 + 1 < 24 ? g[9 + bit / 8] << 8 : 0)) >> (bit % 8)) & 63;
}
static void q4kt_set_field(uint8_t *g, int v, int x) {
    const int bit = 6 * v;
    const unsigned w = (unsigned)x << (bit % 8);
    g[8 + bit / 8] |= (uint8_t)w;
    if (w >> 8) g[9 + bit / 8] |= (uint8_t)(w >> 8);
}

/* n values of Q4_K into DT_Q4_K_T16 groups (dtype.h): the two
 * super-blocks' d and dmin, their 16 scales and 16 mins as one stream of
 * 6-bit fields, each sub-block's nibbles in Q4_0's order spread over the
 * four parts. */
static void q4k_t16_regroup(const uint8_t *src, uint8_t *dst, int64_t n) {
    for (int64_t k = 0; k < n / QK_T16; k++, dst += 2 * sizeof(BlockQ4_K)) {
        memset(dst, 0, 32);
        for (int h = 0; h < 2; h++, src += sizeof(BlockQ4_K)) {
            BlockQ4_K b; /* src may sit at any byte */
            memcpy(&b, src, sizeof b);
            memcpy(dst + 2 * h, &b.d, 2), memcpy(dst + 4 + 2 * h, &b.dmin, 2);
            for (int j = 0; j < 8; j++) {
                const int i = 8 * h + j; /* the sub-block's lane */
                int sc, mn;
                q4k_scale_min(j, b.scales, &sc, &mn);
                q4kt_set_field(dst, i, sc), q4kt_set_field(dst, 16 + i, mn);
                /* element e of sub-block j: byte 32 (j / 2) + e, the low nibble
                 * for even j; byte x of the new 16: elements x and 16 + x */
                const uint8_t *q = b.qs + 32 * (j / 2);
                for (int x = 0; x < 16; x++)
                    dst[32 + 64 * (x / 4) + 4 * i + x % 4] =
                        (uint8_t)(j % 2 ? (q[x] >> 4) | (q[16 + x] & 0xf0) : (q[x] & 15) | q[16 + x] << 4);
            }
        }
    }
}

/* The packing of 8 scales and 8 mins q4k_scale_min reads (dtype.h's
 * BlockQ4_K; the inverse of q4k_scale_min). */
static void q4k_pack_scale_min(int j, int sc, int mn, uint8_t *s) {
    if (j < 4) {
        s[j] = (uint8_t)((s[j] & 0xc0) | sc), s[j + 4] = (uint8_t)((s[j + 4] & 0xc0) | mn);
    } else {
        s[j + 4] = (uint8_t)((sc & 15) | (mn & 15) << 4);
        s[j - 4] = (uint8_t)((s[j - 4] & 0x3f) | (sc >> 4) << 6), s[j] = (uint8_t)((s[j] & 0x3f) | (mn >> 4) << 6);
    }
}

void dtype_q4k_t16_block(const void *group, int h, void *out) {
    const uint8_t *g = group;
    BlockQ4_K b;
    memset(&b, 0, sizeof b);
    memcpy(&b.d, g + 2 * h, 2), memcpy(&b.dmin, g + 4 + 2 * h, 2);
    for (int j = 0; j < 8; j++) {
        const int i = 8 * h + j;
        q4k_pack_scale_min(j, q4kt_field(g, i), q4kt_field(g, 16 + i), b.scales);
        for (int x = 0; x < 16; x++) {
            const uint8_t v = g[32 + 64 * (x / 4) + 4 * i + x % 4];
            b.qs[32 * (j / 2) + x] |= (uint8_t)((v & 15) << (j % 2 ? 4 : 0));
            b.qs[32 * (j / 2) + 16 + x] |= (uint8_t)((v >> 4) << (j % 2 ? 4 : 0));
        }
    }
    memcpy(out, &b, sizeof b);
}

int dtype_regrouped_from(int to) {
    if (to == DT_Q4_K_T16) return DT_Q4_K;
    if (dtype_t16_base(to)) return dtype_t16_base(to);
    return dtype_q4_0_group_blocks(to) > 1 ? DT_Q4_0 : dtype_k_pairs_base(to) ? dtype_k_pairs_base(to) : dtype_legacy_g4_base(to);
}

void dtype_regroup(int to, const void *src, void *dst, int64_t n) {
    if (to == DT_Q4_K_T16) q4k_t16_regroup(src, dst, n);
    else if (dtype_t16_base(to)) t16_regroup(to, src, dst, n);
    else if (dtype_q4_0_group_blocks(to) > 1) dtype_q4_0_regroup(src, dst, n, dtype_q4_0_group_blocks(to));
    else if (dtype_k_pairs_base(to)) dtype_k_pairs_regroup(dtype_k_pairs_base(to), src, dst, n);
    else dtype_legacy_regroup(dtype_legacy_g4_base(to), src, dst, n);
}

/* Q4_K packs 8 six-bit scales and 8 six-bit mins into 12 bytes: sub-blocks
 * 0-3 use the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks
 * 4-7 take their low 4 bits from bytes 8-11 and their top 2 bits from the
 * spare high bits of bytes 0-3 (scales) and 4-7 (mins). */
static void q4k_scale_min(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Each 64 elements share 32 bytes of qs: the low nibbles are the first
 * sub-block of 32, the high nibbles the second. x = d*sc*q - dmin*mn. */
static void deq_q4_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(BlockQ4_K), dst += QK_K) {
        float d = f16_to_f32(rd16(src)), dmin = f16_to_f32(rd16(src + 2));
        const uint8_t *scales = src + 4, *q = src + 16;
        for (int j = 0; j < QK_K / 64; j++) {
            int sc0, m0, sc1, m1;
            q4k_scale_min(2 * j, scales, &sc0, &m0);
            q4k_scale_min(2 * j + 1, scales, &sc1, &m1);
            float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
            float *y = dst + 64 * j;
            for (int l = 0; l < 32; l++) {
                y[l] = d0 * (float)(q[32 * j + l] & 0xf) - o0;
                y[l + 32] = d1 * (float)(q[32 * j + l] >> 4) - o1;
            }
        }
    }
}

/* Q6_K: each half of 128 elements uses 64 bytes of ql and 32 of qh. Element
 * l + 32*k (k = 0..3, l < 32) takes its low 4 bits from ql[l + 32*(k&1)]
 * (low nibble for k < 2, high for k >= 2), its top 2 bits from bits 2k..2k+1
 * of qh[l], and its scale from scales[l/16 + 2k]; x = d*scale*(q - 32). */
static void deq_q6_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t b = 0; b < nb; b++, src += sizeof(BlockQ6_K), dst += QK_K) {
        const uint8_t *ql = src, *qh = src + 128;
        const int8_t *sc = (const int8_t *)(src + 192);
        float d = f16_to_f32(rd16(src + 208));
        for (int half = 0; half < 2; half++) {
            float *y = dst + 128 * half;
            for (int l = 0; l < 32; l++) {
                int s = l / 16;
                int q0 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
                int q1 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[s] * q0;
                y[l + 32] = d * sc[s + 2] * q1;
                y[l + 64] = d * sc[s + 4] * q2;
                y[l + 96] = d * sc[s + 6] * q3;
            }
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

/* F16 rows to f32 with F16C, chosen at run time: the library is built for
 * x86-64-v2, which has no F16C, and the scalar f16_to_f32 loop is ~20x
 * slower (loading F16 weights, `aloe convert`). This one function is
 * compiled for AVX+F16C alone (formats sits below kernels, so it cannot use
 * the kernels' dispatch table); the conversion is exact, like f16_to_f32,
 * so both paths give the same bits. Returns how many values it converted
 * (a multiple of 8; the caller does the tail). */
#ifdef DTYPE_F16C
__attribute__((target("avx,f16c"))) static int64_t f16_row_f16c(const uint8_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
    return i;
}

static int f16_hw_off; /* dtype_f16_hw(0): tests run the scalar path */

/* F16C with the YMM state saved by the OS (base/cpu_features.h, probed once). */
static int f16_row_hw(void) { return !f16_hw_off && (cpu_features()->bits & CPU_F16C); }
#endif

int dtype_f16_hw(int enable) {
#ifdef DTYPE_F16C
    if (enable >= 0) f16_hw_off = !enable;
    return f16_row_hw();
#else
    (void)enable;
    return 0;
#endif
}

int dequantize_row(int t, const void *src_, float *dst, int64_t n) {
    const uint8_t *src = src_;
    const TypeInfo *ti = info(t);
    if (!ti || n < 0 || n % ti->block) return -1;
    int64_t nb = n / ti->block;
    switch (t) {
    case DT_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case DT_F16: {
        int64_t i = 0;
#ifdef DTYPE_F16C
        if (f16_row_hw()) i = f16_row_f16c(src, dst, n);
#endif
        for (; i < n; i++) dst[i] = f16_to_f32(rd16(src + 2 * i));
        return 0;
    }
    case DT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(rd16(src + 2 * i));
        return 0;
    case DT_Q8_0: deq_q8_0(src, dst, nb); return 0;
    case DT_Q4_0: deq_q4_0(src, dst, nb); return 0;
    case DT_Q4_0_G4:
    case DT_Q4_0_G16: deq_q4_0_grouped(src, dst, nb, dtype_q4_0_group_blocks(t)); return 0;
    case DT_Q4_0_T16:
    case DT_Q8_0_T16:
        for (int64_t g = 0; g < nb; g++) { /* a group at a time through the stored layout */
            uint8_t b[16 * sizeof(BlockQ8_0)];
            t16_ungroup(t, src + g * ti->bytes, b);
            dequantize_row(dtype_t16_base(t), b, dst + g * QK_T16, QK_T16);
        }
        return 0;
    case DT_Q4_1:
    case DT_Q5_0:
    case DT_Q5_1:
    case DT_IQ4_NL:
    case DT_Q5_0_G4:
    case DT_Q5_1_G4:
    case DT_Q4_1_G4:
    case DT_IQ4_NL_G4: return dequantize_blocks_legacy(t, src, dst, nb);
    case DT_Q4_K: deq_q4_k(src, dst, nb); return 0;
    case DT_Q4_K_T16:
        for (int64_t b = 0; b < 2 * nb; b++) {
            uint8_t blk[sizeof(BlockQ4_K)];
            dtype_q4k_t16_block(src + (b / 2) * ti->bytes, (int)(b % 2), blk);
            deq_q4_k(blk, dst + QK_K * b, 1);
        }
        return 0;
    case DT_Q4_K_PAIRS:
    case DT_Q5_K_PAIRS:
        for (int64_t b = 0; b < nb; b++) {
            BlockQ5_K blk; /* either type's block as stored */
            dtype_k_pairs_block(t, src, b, &blk);
            if (t == DT_Q4_K_PAIRS) deq_q4_k((const uint8_t *)&blk, dst + QK_K * b, 1);
            else deq_q5_k(&blk, dst + QK_K * b, 1);
        }
        return 0;
    case DT_Q6_K: deq_q6_k(src, dst, nb); return 0;
    case DT_Q2_K: deq_q2_k(src, dst, nb); return 0; /* dtype_kquant.c */
    case DT_Q3_K: deq_q3_k(src, dst, nb); return 0;
    case DT_Q5_K: deq_q5_k(src, dst, nb); return 0;
    case DT_IQ4_XS: deq_iq4_xs(src, dst, nb); return 0;
    case DT_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        return 0;
    case DT_I8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
        return 0;
    case DT_U8:
    case DT_BOOL:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
        return 0;
    case DT_I16:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(int16_t)rd16(src + 2 * i);
        return 0;
    case DT_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
        }
        return 0;
    case DT_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        return 0;
    }
    return -1;
}

/* ---- quantisation (ggml's reference rounding) ---- */

static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void quantize_row_q8_0(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    for (int64_t b = 0; b < n / QK8_0; b++, src += QK8_0, dst += sizeof(BlockQ8_0)) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(src[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        wr16(dst, f32_to_f16(d));
        int8_t *q = (int8_t *)(dst + 2);
        for (int j = 0; j < QK8_0; j++) q[j] = (int8_t)roundf(src[j] * id);
    }
}

/* The scale maps the value of largest magnitude (keeping its sign) to -8,
 * so the full nibble range 0..15 is used on the side that value is on. */
void quantize_row_q4_0(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    for (int64_t b = 0; b < n / QK4_0; b++, src += QK4_0, dst += sizeof(BlockQ4_0)) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK4_0; j++)
            if (fabsf(src[j]) > amax) {
                amax = fabsf(src[j]);
                max = src[j];
            }
        float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        wr16(dst, f32_to_f16(d));
        uint8_t *q = dst + 2;
        for (int j = 0; j < QK4_0 / 2; j++) {
            int a = (int)(src[j] * id + 8.5f), c = (int)(src[j + QK4_0 / 2] * id + 8.5f);
            a = a > 15 ? 15 : a;
            c = c > 15 ? 15 : c;
            q[j] = (uint8_t)(a | (c << 4));
        }
    }
}

/* ---- K-quants ---- */

/* Squared error of x ~ s*q - o over n values with q = round((x+o)/s)
 * clamped to [qmin, qmax] (o = 0 for symmetric fits). */
static float fit_err(const float *x, int n, float s, float o, int qmin, int qmax) {
    float id = s != 0 ? 1.0f / s : 0.0f, err = 0;
    for (int i = 0; i < n; i++) {
        int q = (int)nearbyintf((x[i] + o) * id);
        q = q < qmin ? qmin : q > qmax ? qmax : q;
        float r = s * (float)q - o - x[i];
        err += r * r;
    }
    return err;
}

/* The affine fit x ~ s*q - o of one Q4_K sub-block (q in 0..15, o >= 0 so
 * that the stored min is non-negative, as ggml requires): starts from the
 * min/max fit and tries shrunken ranges, each refined by least squares on
 * the q it gives; keeps the least squared error. */
static void q4k_fit(const float *x, int n, float *scale, float *offset) {
    float lo = 0, hi = x[0];
    for (int i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (hi <= lo) {
        *scale = 0, *offset = -lo;
        return;
    }
    float best_s = (hi - lo) / 15, best_o = -lo, best = fit_err(x, n, best_s, best_o, 0, 15);
    for (int k = 0; k < 8; k++) {
        float s = (hi - lo) / (15.0f + 0.5f * (float)k), o = -lo;
        /* least squares of x against q (with o >= 0) */
        double sq = 0, sqq = 0, sx = 0, sxq = 0;
        for (int i = 0; i < n; i++) {
            int q = (int)nearbyintf((x[i] + o) / s);
            q = q < 0 ? 0 : q > 15 ? 15 : q;
            sq += q, sqq += (double)q * q, sx += x[i], sxq += (double)x[i] * q;
        }
        double det = n * sqq - sq * sq;
        if (det > 0) {
            double a = (n * sxq - sq * sx) / det, b = (sx - a * sq) / n; /* x ~ a*q + b */
            if (b > 0) a = sqq > 0 ? sxq / sqq : 0, b = 0;
            if (a > 0) {
                float e = fit_err(x, n, (float)a, (float)-b, 0, 15);
                if (e < best) best = e, best_s = (float)a, best_o = (float)-b;
            }
        }
        float e = fit_err(x, n, s, o, 0, 15);
        if (e < best) best = e, best_s = s, best_o = o;
    }
    *scale = best_s, *offset = best_o;
}

/* Packs 6-bit scale sc and min mn of sub-block j (the inverse of
 * q4k_scale_min). */
static void q4k_put_scale_min(int j, uint8_t *s, int sc, int mn) {
    if (j < 4) {
        s[j] = (uint8_t)((s[j] & 0xc0) | sc);
        s[j + 4] = (uint8_t)((s[j + 4] & 0xc0) | mn);
    } else {
        s[j + 4] = (uint8_t)((sc & 0xf) | ((mn & 0xf) << 4));
        s[j - 4] = (uint8_t)((s[j - 4] & 0x3f) | ((sc >> 4) << 6));
        s[j] = (uint8_t)((s[j] & 0x3f) | ((mn >> 4) << 6));
    }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void quantize_row_q4_k(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, dst += sizeof(BlockQ4_K)) {
        float scale[8], offset[8], max_s = 0, max_o = 0;
        for (int j = 0; j < 8; j++) {
            q4k_fit(src + 32 * j, 32, &scale[j], &offset[j]);
            max_s = fmaxf(max_s, scale[j]);
            max_o = fmaxf(max_o, offset[j]);
        }
        /* the super-scales map the largest sub-block scale/min to 63; the
         * rounded halves are used for the 6-bit codes and the quants */
        uint16_t hd = f32_to_f16(max_s / 63), hm = f32_to_f16(max_o / 63);
        float d = f16_to_f32(hd), dmin = f16_to_f32(hm);
        wr16(dst, hd);
        wr16(dst + 2, hm);
        uint8_t *scales = dst + 4, *qs = dst + 16;
        memset(scales, 0, 12);
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = d > 0 ? clampi((int)nearbyintf(scale[j] / d), 0, 63) : 0;
            mn[j] = dmin > 0 ? clampi((int)nearbyintf(offset[j] / dmin), 0, 63) : 0;
            q4k_put_scale_min(j, scales, sc[j], mn[j]);
        }
        for (int j = 0; j < 8; j++) {
            float s = d * (float)sc[j], o = dmin * (float)mn[j], is = s > 0 ? 1.0f / s : 0.0f;
            const float *x = src + 32 * j;
            uint8_t *q = qs + 32 * (j / 2);
            for (int l = 0; l < 32; l++) {
                int v = clampi((int)nearbyintf((x[l] + o) * is), 0, 15);
                if (j % 2 == 0) q[l] = (uint8_t)v;
                else q[l] = (uint8_t)(q[l] | (v << 4));
            }
        }
    }
}

/* The symmetric fit x ~ s*q (q in -32..31) of 16 Q6_K values: the largest
 * magnitude (its sign kept, as ggml does) mapped to -(32 + k/10) for
 * k = -9..9, each grid's q refitted by least squares (s = sum(xq) /
 * sum(qq)); keeps the least squared error. */
static float q6k_fit(const float *x) {
    float amax = 0, max = 0;
    for (int i = 0; i < 16; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax == 0) return 0;
    float best_s = max / -32, best = fit_err(x, 16, best_s, 0, -32, 31);
    for (int k = -9; k <= 9; k++) {
        float s = max / -(32.0f + 0.1f * (float)k), is = 1 / s;
        double sxq = 0, sqq = 0;
        for (int i = 0; i < 16; i++) {
            int q = (int)nearbyintf(x[i] * is);
            q = q < -32 ? -32 : q > 31 ? 31 : q;
            sxq += (double)x[i] * q, sqq += (double)q * q;
        }
        if (sqq <= 0) continue;
        float ls = (float)(sxq / sqq), e = fit_err(x, 16, ls, 0, -32, 31);
        if (e < best) best = e, best_s = ls;
    }
    return best_s;
}

void quantize_row_q6_k(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    for (int64_t b = 0; b < n / QK_K; b++, src += QK_K, dst += sizeof(BlockQ6_K)) {
        float scale[16], amax = 0;
        for (int j = 0; j < 16; j++) {
            scale[j] = q6k_fit(src + 16 * j);
            amax = fmaxf(amax, fabsf(scale[j]));
        }
        uint16_t hd = f32_to_f16(amax / 127);
        float d = f16_to_f32(hd);
        uint8_t *ql = dst, *qh = dst + 128;
        int8_t *sc = (int8_t *)(dst + 192);
        wr16(dst + 208, hd);
        memset(dst, 0, 192);
        int q[QK_K];
        for (int j = 0; j < 16; j++) {
            sc[j] = (int8_t)(d > 0 ? clampi((int)nearbyintf(scale[j] / d), -127, 127) : 0);
            float s = d * (float)sc[j], is = s != 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 16; l++) q[16 * j + l] = clampi((int)nearbyintf(src[16 * j + l] * is), -32, 31) + 32;
        }
        /* the bit layout deq_q6_k reads */
        for (int half = 0; half < 2; half++) {
            const int *v = q + 128 * half;
            uint8_t *L = ql + 64 * half, *H = qh + 32 * half;
            for (int l = 0; l < 32; l++) {
                L[l] = (uint8_t)((v[l] & 0xf) | ((v[l + 64] & 0xf) << 4));
                L[l + 32] = (uint8_t)((v[l + 32] & 0xf) | ((v[l + 96] & 0xf) << 4));
                H[l] = (uint8_t)((v[l] >> 4) | ((v[l + 32] >> 4) << 2) | ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
            }
        }
    }
}

int dtype_row_fallback(int t, int64_t cols) {
    if (!dtype_is_quantized(t) || cols % dtype_block_size(t) == 0) return t;
    int f;
    switch (t) {
    case DT_Q2_K:
    case DT_Q3_K:
    case DT_IQ4_XS: f = DT_IQ4_NL; break;
    case DT_Q4_K: f = DT_Q5_0; break;
    case DT_Q5_K: f = DT_Q5_1; break;
    case DT_Q6_K: f = DT_Q8_0; break;
    default: return DT_F16;
    }
    return cols % dtype_block_size(f) == 0 ? f : DT_F16;
}

int quantize_row(int t, const float *src, void *dst, int64_t n) {
    const TypeInfo *ti = info(t);
    if (!ti || n < 0 || n % ti->block) return -1;
    uint8_t *d = dst;
    const int from = dtype_regrouped_from(t);
    if (from) { /* an in-memory layout: its stored type's blocks, a group at a time, regrouped */
        uint8_t b[16 * sizeof(BlockQ8_0)]; /* a group of any layout: at most 512 values, 544 bytes */
        _Static_assert(4 * sizeof(BlockQ5_1) <= sizeof b, "a group of four");
        for (int64_t k = 0; k < n / ti->block; k++, d += ti->bytes) {
            quantize_row(from, src + k * ti->block, b, ti->block);
            dtype_regroup(t, b, d, ti->block);
        }
        return 0;
    }
    switch (t) {
    case DT_F32: memcpy(dst, src, (size_t)n * 4); return 0;
    case DT_F16:
        for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, f32_to_f16(src[i]));
        return 0;
    case DT_BF16:
        for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, f32_to_bf16(src[i]));
        return 0;
    case DT_Q8_0: quantize_row_q8_0(src, dst, n); return 0;
    case DT_Q4_0: quantize_row_q4_0(src, dst, n); return 0;
    case DT_Q4_1: quantize_row_q4_1(src, dst, n); return 0;
    case DT_Q5_0: quantize_row_q5_0(src, dst, n); return 0;
    case DT_Q5_1: quantize_row_q5_1(src, dst, n); return 0;
    case DT_IQ4_NL: quantize_row_iq4_nl(src, dst, n); return 0;
    case DT_Q4_K: quantize_row_q4_k(src, dst, n); return 0;
    case DT_Q6_K: quantize_row_q6_k(src, dst, n); return 0;
    case DT_Q2_K: quantize_row_q2_k(src, dst, n); return 0; /* dtype_kquant.c */
    case DT_Q3_K: quantize_row_q3_k(src, dst, n); return 0;
    case DT_Q5_K: quantize_row_q5_k(src, dst, n); return 0;
    case DT_IQ4_XS: quantize_row_iq4_xs(src, dst, n); return 0;
    }
    return -1;
}
