/* gemm_q_grp: the prefill's integer GEMM tile for the weight types other
 * than Q8_0 and Q4_0 (gemm_q.c has theirs): Q4_K, Q5_K, Q6_K, Q2_K, Q3_K,
 * IQ4_XS and the 32-blocks Q4_1, Q5_0, Q5_1, IQ4_NL. One register-blocked
 * micro-kernel (GRP_RM rows x GRP_RN activations) serves them all; only
 * the unpacking of a row differs per type.
 *
 * Why one layout for all: their decode kernels, tiled, were slower than
 * dequantise + sgemm (0.5-0.9x) because each (row, activation) pair
 * repeats the unpacking and scales every 64 values. Here a row is
 * unpacked once per tile (and kept for the thread's next tile of the same
 * rows: packed_rows) into "units" of 256 values, each 4 registers of
 * unsigned quants in the group layout: register r, int32 lane g holds
 * values 4r..4r+3 of group g (values 16g..16g+15 of the unit). Chained
 * over the 4 registers, VPDPBUSD sums each group of 16 into its own lane,
 * and every type's scales are per 16 or per 32 (Q4_K/Q5_K/IQ4_XS's 32 and
 * the 32-blocks take two lanes): one conversion and one FMA per unit turn
 * the 16 lane sums into floats, scaled by the weight's scales times the
 * activation's dx (lane g: block g / 2). Per (row, activation) and 256
 * values that is 4 VPDPBUSD, a conversion, a multiply and an FMA (and one
 * more FMA for the mins), against ~4x that in the decode kernels.
 *
 * The activation (the decode path's: int8 blocks of 32, dx, s16) is put
 * into the same layout once per tile (relayout), with per unit its dx and
 * s16 per lane and the integer start of each lane's sum: weights stored
 * unsigned with an integer offset o (w = scale (u - o): Q6_K 32, Q3_K 4,
 * Q5_0 16, the IQ4 levels + 128) take the offset off exactly through that
 * start, -o times the lane's sum of activation quants; the types with
 * mins (Q4_K, Q5_K, Q2_K, Q4_1, Q5_1: w = scale u - off) take them
 * through the activation's half-block sums s16, one FMA per unit.
 * A row whose length is not a multiple of 256 (32-blocks) is padded with
 * zero quants and zero scales on both sides: the padding adds exact zeros.
 *
 * Every (row, activation) result takes the same operations in the same
 * order wherever it sits in the tile, so a row of x gives the same y in
 * any batch (tests/kernels/test_gemm_int8.c checks it bit for bit). */
#include "kernels/klevel.h" /* first: built once per kernel level */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/gemm_q.h"
#include "kernels/quant_internal.h"

#if KERNELS_AVX512
#include <immintrin.h>

#define UNIT_VALUES 256
#define GRP_RM 3
#define GRP_RN 4
#define GRP_UNROLL_RM _Pragma("GCC unroll 3")
/* a packed weight unit: 256 quants, 16 float scales, 16 float offsets */
#define PK_UNIT 384
/* a relaid activation unit: 256 quants, 16 dx, 16 s16, 16 int32 starts */
#define AX_UNIT 448

#include "kernels/gemm_q_unpack.h"

int gemm_grp_type(int t) { return grp_ioff(t) || grp_mins(t); }

/* Unit 256 values in natural order (nat[k] = values 64k..64k+63) to the
 * group layout (file comment): a 4 x 4 transpose of each group's int32s. */
static ALWAYS_INLINE void to_groups(const __m512i nat[4], __m512i out[4]) {
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    __m512i a = _mm512_permutex2var_epi32(nat[0], i01, nat[1]); /* dwords 0, 1 of groups 0-7 */
    __m512i b = _mm512_permutex2var_epi32(nat[0], i23, nat[1]); /* dwords 2, 3 */
    __m512i c = _mm512_permutex2var_epi32(nat[2], i01, nat[3]); /* the same for groups 8-15 */
    __m512i d = _mm512_permutex2var_epi32(nat[2], i23, nat[3]);
    out[0] = _mm512_shuffle_i64x2(a, c, _MM_SHUFFLE(1, 0, 1, 0));
    out[1] = _mm512_shuffle_i64x2(a, c, _MM_SHUFFLE(3, 2, 3, 2));
    out[2] = _mm512_shuffle_i64x2(b, d, _MM_SHUFFLE(1, 0, 1, 0));
    out[3] = _mm512_shuffle_i64x2(b, d, _MM_SHUFFLE(3, 2, 3, 2));
}

/* A row (nu units) packed: per unit the group-layout quants, scales and
 * offsets (PK_UNIT bytes). */
static void pack_row(int t, const char *row, long n, long nu, char *dst) {
    for (long u = 0; u < nu; u++, dst += PK_UNIT) {
        __m512i nat[4], g[4];
        __m512 sc, off;
        unpack_unit(t, row, u, n / QK8_0, nat, &sc, &off);
        to_groups(nat, g);
        for (int r = 0; r < 4; r++) _mm512_store_si512(dst + 64 * r, g[r]);
        _mm512_store_ps(dst + 256, sc);
        _mm512_store_ps(dst + 320, off);
    }
}

/* An activation (the common layout, signed quants) relaid in units
 * (AX_UNIT bytes each): group-layout quants, dx and s16 per lane, and the
 * lanes' starts -o * (sum of the lane's 16 quants). */
static void relay_act(const void *act, long n, long nu, int o, char *dst) {
    const int8_t *q = act_q(act);
    const float *dx = act_dx(act, n), *s16 = act_s16(act, n);
    const long nb = n / QK8_0;
    const __m512i ones = _mm512_set1_epi8(1), neg = _mm512_set1_epi32(-o);
    for (long u = 0; u < nu; u++, dst += AX_UNIT) {
        __m512i nat[4], g[4];
        long left = n - UNIT_VALUES * u; /* values of this unit in the row */
        if (left >= UNIT_VALUES) {
            for (int k = 0; k < 4; k++) nat[k] = _mm512_loadu_si512(q + UNIT_VALUES * u + 64 * k);
        } else {
            for (int k = 0; k < 4; k++) {
                long m = left - 64 * k; /* bytes of this register in the row */
                __mmask64 mk = m >= 64 ? ~(__mmask64)0 : m <= 0 ? 0 : (((__mmask64)1 << m) - 1);
                nat[k] = _mm512_maskz_loadu_epi8(mk, q + UNIT_VALUES * u + 64 * k);
            }
        }
        to_groups(nat, g);
        __m512i sum = _mm512_setzero_si512();
        for (int r = 0; r < 4; r++) {
            _mm512_store_si512(dst + 64 * r, g[r]);
            sum = _mm512_dpbusd_epi32(sum, ones, g[r]);
        }
        long blocks = nb - 8 * u < 8 ? nb - 8 * u : 8;
        __m256 d8 = _mm256_maskz_loadu_ps((__mmask8)((1u << blocks) - 1), dx + 8 * u);
        _mm512_store_ps(dst + 256, pairs_ps(d8));
        _mm512_store_ps(dst + 320, _mm512_maskz_loadu_ps((__mmask16)((1u << (2 * blocks)) - 1), s16 + 16 * u));
        _mm512_store_si512(dst + 384, _mm512_mullo_epi32(sum, neg));
    }
}

/* RM packed rows (pk, pks bytes apart) x RN relaid activations (ax, axs
 * bytes apart), nu units: out[j * os + i]. The int32 sums of a unit stay
 * in registers across its 4 quant registers (RM x RN of them), each pair
 * then one conversion and its float scaling. */
static ALWAYS_INLINE void micro(int mins, const char *pk, size_t pks, const char *ax, size_t axs, long nu, int RM,
                                int RN, float *out, size_t os) {
    __m512 acc[GRP_RM][GRP_RN];
    GRP_UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    }
    for (long u = 0; u < nu; u++) {
        const char *pw = pk + u * PK_UNIT, *px = ax + u * AX_UNIT;
        __m512i s[GRP_RM][GRP_RN];
        UNROLL_NX for (int j = 0; j < RN; j++) {
            __m512i start = _mm512_load_si512(px + j * axs + 384);
            GRP_UNROLL_RM for (int i = 0; i < RM; i++) s[i][j] = start;
        }
        _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
            __m512i w[GRP_RM];
            GRP_UNROLL_RM for (int i = 0; i < RM; i++) w[i] = _mm512_load_si512(pw + i * pks + 64 * r);
            UNROLL_NX for (int j = 0; j < RN; j++) {
                __m512i y = _mm512_load_si512(px + j * axs + 64 * r);
                GRP_UNROLL_RM for (int i = 0; i < RM; i++) s[i][j] = _mm512_dpbusd_epi32(s[i][j], w[i], y);
            }
        }
        UNROLL_NX for (int j = 0; j < RN; j++) {
            __m512 dx = _mm512_load_ps(px + j * axs + 256);
            GRP_UNROLL_RM for (int i = 0; i < RM; i++) {
                const float *wi = (const float *)(pw + i * pks + 256);
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_load_ps(wi), dx), _mm512_cvtepi32_ps(s[i][j]), acc[i][j]);
                if (mins)
                    acc[i][j] = _mm512_fnmadd_ps(_mm512_load_ps(wi + 16), _mm512_load_ps(px + j * axs + 320), acc[i][j]);
            }
        }
    }
    GRP_UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) out[j * os + i] = _mm512_reduce_add_ps(acc[i][j]);
    }
}

#define GRP_HAVE 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
/* ---- the avx2 level (no VNNI): Q4_0, Q4_1, Q5_0, Q5_1 ----
 * The same scheme on 256-bit registers, without VPDPBUSD: units of 128
 * values (4 blocks of 32, 8 groups of 16), 4 registers of 32 bytes whose
 * 8 int32 lanes are the groups in the order 0, 2, 4, 6, 1, 3, 5, 7 (what
 * a 4 x 4 int32 transpose within each 128-bit lane gives from the 4
 * blocks in element order), so lane k is block k % 4. maddubs multiplies
 * unsigned by signed bytes into int16 pairs with saturation: the quants
 * u <= 31 (5 bits) and |y| <= 127 keep a pair below 2 * 31 * 127 = 7874
 * and the 4 registers' sum below 31496 < 32767, so one int16 add chain
 * and one madd make each group's int32 sum, exactly. (Q8_0's 8-bit
 * weights would saturate; IQ4_NL's levels + 128 too: they keep sgemm.) */
#include <immintrin.h>

#define UNIT_VALUES 128
#define GRP_RM 2
#define GRP_RN 4
#define GRP_UNROLL_RM _Pragma("GCC unroll 2")
/* a packed weight unit: 128 quants, 8 float scales, 8 float offsets */
#define PK_UNIT 192
/* a relaid activation unit: 128 quants, 8 dx, 8 s16, 8 int32 starts */
#define AX_UNIT 224

static int grp_ioff(int t) { return act_has_q4(t) ? 8 : t == DT_Q5_0 || t == DT_Q5_0_G4 ? 16 : 0; }

static int grp_mins(int t) { return t == DT_Q4_1 || t == DT_Q5_1 || t == DT_Q4_1_G4 || t == DT_Q5_1_G4; }

int gemm_grp_type(int t) { return grp_ioff(t) || grp_mins(t); }

/* Four 32-value pieces in element order (a..d) to the group layout: per
 * 128-bit lane a 4 x 4 int32 transpose. */
static ALWAYS_INLINE void to_groups2(__m256i a, __m256i b, __m256i c, __m256i d, __m256i out[4]) {
    __m256i t0 = _mm256_unpacklo_epi32(a, b), t1 = _mm256_unpackhi_epi32(a, b);
    __m256i t2 = _mm256_unpacklo_epi32(c, d), t3 = _mm256_unpackhi_epi32(c, d);
    out[0] = _mm256_unpacklo_epi64(t0, t2), out[1] = _mm256_unpackhi_epi64(t0, t2);
    out[2] = _mm256_unpacklo_epi64(t1, t3), out[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* Block b of a Q4_0/Q4_1/Q5_0/Q5_1 row: 32 unsigned quants in element
 * order, its scale and its offset (Q4_1/Q5_1: -m). */
static ALWAYS_INLINE __m256i block2(int t, const char *row, long b, float *sc, float *off) {
    const uint8_t *qs, *qhp = NULL;
    uint8_t buf[16]; /* a T16 block's nibbles, gathered */
    *off = 0;
    const int base = dtype_legacy_g4_base(t);
    if (base) { /* Q4_1 / Q5_0 / Q5_1 regrouped in fours (kernel_weight_type) */
        float m;
        const size_t bytes = base == DT_Q5_0 ? sizeof(BlockQ5_0) : base == DT_Q5_1 ? sizeof(BlockQ5_1) : sizeof(BlockQ4_1);
        __m256i u = legacy_g4_quants(base, (const uint8_t *)row + (size_t)(b / 4) * 4 * bytes, (int)(b % 4), sc, &m);
        *off = base == DT_Q5_0 ? 0 : -m;
        return u;
    }
    switch (t) {
    case DT_Q4_0: {
        const BlockQ4_0 *q = (const BlockQ4_0 *)row + b;
        qs = q->qs, *sc = half(q->d);
        break;
    }
    case DT_Q4_0_G4:
    case DT_Q4_0_G16:
    case DT_Q4_0_T16: { /* regrouped (kernel_weight_type) */
        uint16_t d;
        qs = q4_0_block(t, row, b, &d, buf), *sc = half(d);
        break;
    }
    case DT_Q4_1: {
        const BlockQ4_1 *q = (const BlockQ4_1 *)row + b;
        qs = q->qs, *sc = half(q->d), *off = -half(q->m);
        break;
    }
    case DT_Q5_0: {
        const BlockQ5_0 *q = (const BlockQ5_0 *)row + b;
        qs = q->qs, qhp = q->qh, *sc = half(q->d);
        break;
    }
    default: {
        const BlockQ5_1 *q = (const BlockQ5_1 *)row + b;
        qs = q->qs, qhp = q->qh, *sc = half(q->d), *off = -half(q->m);
        break;
    }
    }
    __m128i v = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(15);
    __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
    if (qhp) { /* bit i of the 32-bit qh is element i's fifth bit: spread to bytes, test */
        uint32_t qh;
        memcpy(&qh, qhp, 4);
        __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                            _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL));
        const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bits), bits);
        u = _mm256_or_si256(u, _mm256_and_si256(set, _mm256_set1_epi8(16)));
    }
    return u;
}

/* 8 lanes in the group order: lane k = v[k % 4]. */
static ALWAYS_INLINE __m256 quad_lanes(__m128 v) { return _mm256_set_m128(v, v); }

static void pack_row(int t, const char *row, long n, long nu, char *dst) {
    const long nb = n / QK8_0;
    for (long u = 0; u < nu; u++, dst += PK_UNIT) {
        __m256i blk[4], g[4];
        float sc[4], off[4];
        for (int k = 0; k < 4; k++) {
            long b = 4 * u + k;
            sc[k] = off[k] = 0;
            blk[k] = b < nb ? block2(t, row, b, &sc[k], &off[k]) : _mm256_setzero_si256();
        }
        to_groups2(blk[0], blk[1], blk[2], blk[3], g);
        for (int r = 0; r < 4; r++) _mm256_store_si256((__m256i *)(dst + 32 * r), g[r]);
        _mm256_store_ps((float *)(dst + 128), quad_lanes(_mm_loadu_ps(sc)));
        _mm256_store_ps((float *)(dst + 160), quad_lanes(_mm_loadu_ps(off)));
    }
}

static void relay_act(const void *act, long n, long nu, int o, char *dst) {
    const int8_t *q = act_q(act);
    const float *dx = act_dx(act, n), *s16 = act_s16(act, n);
    const long nb = n / QK8_0;
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (long u = 0; u < nu; u++, dst += AX_UNIT) {
        __m256i blk[4], g[4];
        float d4[4], s8[8];
        for (int k = 0; k < 4; k++) {
            long b = 4 * u + k;
            int in = b < nb;
            blk[k] = in ? _mm256_loadu_si256((const __m256i *)(q + 32 * b)) : _mm256_setzero_si256();
            d4[k] = in ? dx[b] : 0;
            s8[k] = in ? s16[2 * b] : 0, s8[4 + k] = in ? s16[2 * b + 1] : 0; /* groups 2k, 2k+1 */
        }
        to_groups2(blk[0], blk[1], blk[2], blk[3], g);
        __m256i sum = _mm256_setzero_si256();
        for (int r = 0; r < 4; r++) {
            _mm256_store_si256((__m256i *)(dst + 32 * r), g[r]);
            /* |y| <= 127: the int16 pairs of ones * y do not saturate */
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, g[r]), ones16));
        }
        _mm256_store_ps((float *)(dst + 128), quad_lanes(_mm_loadu_ps(d4)));
        _mm256_store_ps((float *)(dst + 160), _mm256_loadu_ps(s8));
        _mm256_store_si256((__m256i *)(dst + 192), _mm256_mullo_epi32(sum, _mm256_set1_epi32(-o)));
    }
}

/* RM packed rows x RN relaid activations, as the AVX-512 micro-kernel;
 * each row's 4 quant registers stay loaded while the RN activations pass. */
static ALWAYS_INLINE void micro(int mins, const char *pk, size_t pks, const char *ax, size_t axs, long nu, int RM,
                                int RN, float *out, size_t os) {
    __m256 acc[GRP_RM][GRP_RN];
    GRP_UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
    }
    const __m256i ones16 = _mm256_set1_epi16(1);
    for (long u = 0; u < nu; u++) {
        const char *pw = pk + u * PK_UNIT, *px = ax + u * AX_UNIT;
        GRP_UNROLL_RM for (int i = 0; i < RM; i++) {
            const char *wi = pw + i * pks;
            __m256i w0 = _mm256_load_si256((const __m256i *)wi), w1 = _mm256_load_si256((const __m256i *)(wi + 32));
            __m256i w2 = _mm256_load_si256((const __m256i *)(wi + 64)), w3 = _mm256_load_si256((const __m256i *)(wi + 96));
            __m256 sc = _mm256_load_ps((const float *)(wi + 128));
            UNROLL_NX for (int j = 0; j < RN; j++) {
                const char *y = px + j * axs;
                __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, _mm256_load_si256((const __m256i *)y)),
                                             _mm256_maddubs_epi16(w1, _mm256_load_si256((const __m256i *)(y + 32))));
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w2, _mm256_load_si256((const __m256i *)(y + 64))));
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(w3, _mm256_load_si256((const __m256i *)(y + 96))));
                __m256i s = _mm256_add_epi32(_mm256_madd_epi16(p, ones16), _mm256_load_si256((const __m256i *)(y + 192)));
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(sc, _mm256_load_ps((const float *)(y + 128))),
                                            _mm256_cvtepi32_ps(s), acc[i][j]);
                if (mins)
                    acc[i][j] = _mm256_fnmadd_ps(_mm256_load_ps((const float *)(wi + 160)),
                                                 _mm256_load_ps((const float *)(y + 160)), acc[i][j]);
            }
        }
    }
    GRP_UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) out[j * os + i] = hsum8(acc[i][j]);
    }
}

#define GRP_HAVE 1
#endif

#ifdef GRP_HAVE
/* The micro-kernel's instances (either level's `micro`): mins, RM and RN
 * constants, RM up to the level's GRP_RM, RN up to GRP_RN (4). */
#define GM_CASE(M, RM, RN)                                                                                             \
    case (M) * 64 + (RM) * 8 + (RN): micro(M, pk, pks, ax, axs, nu, RM, RN, out, os); break;
#define GM_CASES_RM(M, RM) GM_CASE(M, RM, 4) GM_CASE(M, RM, 3) GM_CASE(M, RM, 2) GM_CASE(M, RM, 1)
#if GRP_RM == 3
#define GM_CASES(M) GM_CASES_RM(M, 3) GM_CASES_RM(M, 2) GM_CASES_RM(M, 1)
#else
#define GM_CASES(M) GM_CASES_RM(M, 2) GM_CASES_RM(M, 1)
#endif
_Static_assert(GRP_RM <= 3 && GRP_RN == 4, "GM_CASES lists the micro-kernel's instances up to 3 x 4");

static void micro_any(int mins, const char *pk, size_t pks, const char *ax, size_t axs, long nu, int rm, int rn,
                      float *out, size_t os) {
    switch (mins * 64 + rm * 8 + rn) {
        GM_CASES(0)
        GM_CASES(1)
    default: break;
    }
}

/* The rows of the last tile a thread packed, with a copy of their bytes:
 * matmul.c hands a thread the tiles of one chunk of W's rows against
 * successive chunks of x, and a chunk of x is small for wide rows (12
 * activations for 8192 values), where packing every tile again cost as
 * much as the products. A hit needs the same type and length and the same
 * bytes (memcmp: weights freed and others quantised at the same address
 * must not hit). Per thread (_Thread_local; the key's destructor frees it
 * when a pool thread ends). */
typedef struct GrpCache {
    char *raw, *pk;
    size_t raw_bytes, raw_cap, pk_cap;
    int t;
    long n;
} GrpCache;

static _Thread_local GrpCache cache;
static pthread_key_t cache_key;
static int cache_key_ok;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p) {
    GrpCache *c = p;
    free(c->raw), free(c->pk);
    memset(c, 0, sizeof *c);
}

static void cache_key_init(void) {
    cache_key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

static char *grow(char *p, size_t *cap, size_t want) {
    if (want <= *cap) return p;
    free(p);
    *cap = want + want / 4;
    return xaligned_alloc(*cap);
}

/* The tile's rows packed (nrows x pks bytes): from the cache when it holds
 * them. */
static const char *packed_rows(int t, const char *rows, size_t rb, int nrows, long n, long nu, size_t pks) {
    GrpCache *c = &cache;
    const size_t raw = (size_t)nrows * rb;
    if (c->raw && c->t == t && c->n == n && c->raw_bytes == raw && !memcmp(c->raw, rows, raw)) return c->pk;
    if (!c->raw) {
        pthread_once(&cache_once, cache_key_init);
        if (cache_key_ok) pthread_setspecific(cache_key, c);
    }
    c->raw = grow(c->raw, &c->raw_cap, raw);
    c->pk = grow(c->pk, &c->pk_cap, pks * (size_t)nrows);
    memcpy(c->raw, rows, raw);
    c->raw_bytes = raw, c->t = t, c->n = n;
    for (int r = 0; r < nrows; r++) pack_row(t, rows + (size_t)r * rb, n, nu, c->pk + (size_t)r * pks);
    return c->pk;
}

void gemm_grp_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                   float *out, size_t out_stride) {
    const long nu = (n + UNIT_VALUES - 1) / UNIT_VALUES;
    const size_t pks = (size_t)nu * PK_UNIT, axs = (size_t)nu * AX_UNIT;
    const int mins = grp_mins(t);
    /* the tile's activations relaid once (they stay in L2, sized by
     * matmul.c), then GRP_RM packed rows at a time pass them by */
    char *ax = xaligned_alloc(axs * (size_t)nx);
    for (int a = 0; a < nx; a++) relay_act((const char *)act + (size_t)a * stride, n, nu, grp_ioff(t), ax + (size_t)a * axs);
    const char *pk = packed_rows(t, rows, rb, nrows, n, nu, pks);
    for (int r = 0; r < nrows; r += GRP_RM) {
        int rm = nrows - r < GRP_RM ? nrows - r : GRP_RM;
        for (int a = 0; a < nx; a += GRP_RN) {
            int rn = nx - a < GRP_RN ? nx - a : GRP_RN;
            micro_any(mins, pk + (size_t)r * pks, pks, ax + (size_t)a * axs, axs, nu, rm, rn,
                      out + (size_t)a * out_stride + r, out_stride);
        }
    }
    free(ax);
}
#else
int gemm_grp_type(int t) {
    (void)t;
    return 0;
}

void gemm_grp_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                   float *out, size_t out_stride) {
    (void)t, (void)rows, (void)rb, (void)nrows, (void)act, (void)stride, (void)nx, (void)n, (void)out, (void)out_stride;
}
#endif
