/* gemm_q: the tiles of the prefill's integer GEMM on quantised weights
 * (matmul.c cuts y = x · Wᵀ into tiles and shares them among the threads;
 * this file multiplies one tile).
 *
 * The activation is quantised once per matmul to int8 blocks of 32 (the
 * decode path's layout, quant_internal.h), so a weight block meets int8
 * activations in integer multiply-adds and no weight is ever dequantised
 * to f32. A tile is nrows rows of W (a chunk that stays in L2) times nx
 * activations.
 *
 * Q8_0 and Q4_0 with AVX-512 VNNI: a register-blocked micro-kernel of
 * GEMM_RM rows x GEMM_RN activations. Per quad of 4 blocks, each weight
 * row is unpacked once into two registers (one 128-bit lane per block:
 * elements 0-15 of the four blocks, then 16-31), the layout of the Q4_0
 * activation's quads (act_q4), and each activation's quad is loaded once;
 * every (row, activation) pair then costs two VPDPBUSD, giving each
 * block's sum in 4 int32 lanes, one conversion and two FMAs (the scales:
 * dw * (dx * S - c * sx)). Against the decode kernel's one row x four
 * activations (quant_avx512.c), the weight unpacking is shared by four
 * activations and the activation's loads by three rows. Both weight types
 * take the Q4_0 activation (gemm_q_act_type): it holds the quads. VPDPBUSD
 * multiplies unsigned by signed bytes, so the weights are made unsigned:
 * Q4_0's nibbles are (q in 0..15, w = d (q - 8)); Q8_0's are stored
 * + 128 (XOR 0x80), and the offset comes off per block through the
 * activation's sums sx: sum(w y) = dw (dx sum(u y) - off sx), off = 8 for
 * Q4_0 and 128 for Q8_0 (4 lanes per block take a quarter each; act_sx4
 * already holds 2 sx: the factor is 1 or 16).
 *
 * Registers: 12 accumulators, 3 rows x (2 quant registers + scales), 4
 * registers of one activation and temporaries: under the 32 of AVX-512
 * (3 x 4 measured faster than 4 x 4, which spills, and 4 x 3).
 *
 * Every (row, activation) result is computed with the same operations in
 * the same order whatever its place in the tile, so a row of x gives the
 * same y in any batch (infer/generate.h relies on rows being
 * independent).
 *
 * Other types and levels: the tile goes through vec_dot_multi_rows (one
 * row against four activations at a time; the K-quants' and the legacy
 * types' AVX-512 and AVX2 kernels, the scalar references at the scalar
 * level) on the decode activation: tiled, those already beat dequantising
 * to f32. Where AMX-INT8 exists (Sapphire Rapids and later; none on the
 * machines this was written on) a tile kernel would go here: TDPBUSD on
 * 16 x 64-byte tiles of the same quads, behind cpu_amx_request. */
#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/gemm_q.h"
#include "kernels/quant.h"
#include "kernels/quant_internal.h"

#define GEMM_RM 3
#define GEMM_RN 4
#define UNROLL_RM _Pragma("GCC unroll 3")

#if KERNELS_AVX512
#include <immintrin.h>

static int gemm_mk_type(int t) { return t == DT_Q8_0 || t == DT_Q4_0; }

/* The quad of blocks b..b+3 of a row as two registers of unsigned bytes,
 * elements 0-15 then 16-31 of each block, one block per 128-bit lane, and
 * the blocks' f16 scales as floats, each over its block's 4 lanes. */
static ALWAYS_INLINE void load_quad(int q4, const char *row, long b, __m512i *lo, __m512i *hi, __m512 *dw) {
    if (q4) {
        const BlockQ4_0 *q = (const BlockQ4_0 *)row + b;
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q[0].qs));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[1].qs), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[2].qs), 2);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[3].qs), 3);
        /* the scales: words 0, 9, 18, 27 of the quad's first 64 of 72 bytes */
        const __m512i words =
            _mm512_castsi256_si512(_mm256_setr_epi16(0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27));
        *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(words, _mm512_loadu_si512(q))));
        const __m512i m4 = _mm512_set1_epi8(15);
        *lo = _mm512_and_si512(v, m4);
        *hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        return;
    }
    const BlockQ8_0 *q = (const BlockQ8_0 *)row + b;
    __m512i vl = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q[0].qs));
    __m512i vh = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(q[0].qs + 16)));
    vl = _mm512_inserti32x4(vl, _mm_loadu_si128((const __m128i *)q[1].qs), 1);
    vh = _mm512_inserti32x4(vh, _mm_loadu_si128((const __m128i *)(q[1].qs + 16)), 1);
    vl = _mm512_inserti32x4(vl, _mm_loadu_si128((const __m128i *)q[2].qs), 2);
    vh = _mm512_inserti32x4(vh, _mm_loadu_si128((const __m128i *)(q[2].qs + 16)), 2);
    vl = _mm512_inserti32x4(vl, _mm_loadu_si128((const __m128i *)q[3].qs), 3);
    vh = _mm512_inserti32x4(vh, _mm_loadu_si128((const __m128i *)(q[3].qs + 16)), 3);
    const __m512i b8 = _mm512_set1_epi8((char)0x80);
    *lo = _mm512_xor_si512(vl, b8); /* w + 128: unsigned */
    *hi = _mm512_xor_si512(vh, b8);
    /* the scales: words 0, 17, 34, 51 of the quad's first 128 of 136 bytes
     * (indices from 32 on pick from the second 64) */
    const __m512i words =
        _mm512_castsi256_si512(_mm256_setr_epi16(0, 0, 0, 0, 17, 17, 17, 17, 34, 34, 34, 34, 51, 51, 51, 51));
    __m512i sv = _mm512_permutex2var_epi16(_mm512_loadu_si512(q), words, _mm512_loadu_si512((const char *)q + 64));
    *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(sv));
}

/* The blocks after the last whole quad (nb % 4 of them) of row w against
 * activation x, the plain way: a short remainder at a row's end that the
 * usual shapes (rows of a multiple of 128 values) never have. The
 * activation's quants there are in the common layout, signed. */
static float tail_dot(int q4, const char *row, const void *x, long b0, long n) {
    const int8_t *y = act_q(x);
    const float *dx = act_dx(x, n);
    float s = 0;
    for (long b = b0; b < n / QK8_0; b++) {
        int isum = 0;
        float dw;
        if (q4) {
            const BlockQ4_0 *q = (const BlockQ4_0 *)row + b;
            for (int i = 0; i < 16; i++)
                isum += ((q->qs[i] & 15) - 8) * y[32 * b + i] + ((q->qs[i] >> 4) - 8) * y[32 * b + 16 + i];
            dw = half(q->d);
        } else {
            const BlockQ8_0 *q = (const BlockQ8_0 *)row + b;
            for (int i = 0; i < 32; i++) isum += q->qs[i] * y[32 * b + i];
            dw = half(q->d);
        }
        s += dw * dx[b] * (float)isum;
    }
    return s;
}

/* RM rows (rb bytes apart) x RN activations (stride bytes apart):
 * out[j * os + i]. */
static ALWAYS_INLINE void micro(int q4, const char *rows, size_t rb, const char *act, size_t stride, long n, int RM,
                                int RN, float *out, size_t os) {
    __m512 acc[GEMM_RM][GEMM_RN];
    UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    }
    const long nb = n / QK8_0, nq = act_nquads(n);
    /* sx4 holds 2 sx per lane: Q4_0's offset 8 is 2 sx over each of 4
     * lanes; Q8_0's 128 is 32 sx, 16 times that */
    const __m512 off = _mm512_set1_ps(q4 ? 1.0f : 16.0f);
    for (long qd = 0; qd < nq; qd++) {
        __m512i lo[GEMM_RM], hi[GEMM_RM];
        __m512 dw[GEMM_RM];
        UNROLL_RM for (int i = 0; i < RM; i++) load_quad(q4, rows + i * rb, 4 * qd, &lo[i], &hi[i], &dw[i]);
        UNROLL_NX for (int j = 0; j < RN; j++) {
            const char *x = act + j * stride;
            const int8_t *y = act_q4(x, n) + 128 * qd;
            __m512i ya = _mm512_loadu_si512(y), yb = _mm512_loadu_si512(y + 64);
            __m512 dx = _mm512_loadu_ps(act_dx4(x, n) + 16 * qd);
            __m512 sx = _mm512_mul_ps(off, _mm512_loadu_ps(act_sx4(x, n) + 16 * qd));
            UNROLL_RM for (int i = 0; i < RM; i++) {
                __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[i], ya);
                s = _mm512_dpbusd_epi32(s, hi[i], yb);
                acc[i][j] = _mm512_fmadd_ps(dw[i], _mm512_fmsub_ps(dx, _mm512_cvtepi32_ps(s), sx), acc[i][j]);
            }
        }
    }
    UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) {
            float r = _mm512_reduce_add_ps(acc[i][j]);
            if (4 * nq < nb) r += tail_dot(q4, rows + i * rb, act + j * stride, 4 * nq, n);
            out[j * os + i] = r;
        }
    }
}

/* The micro-kernel's instances: RM and RN constants (each its own code,
 * registers allocated for its size). */
#define MK_CASE(RM, RN)                                                                                                \
    case (RM) * 8 + (RN): micro(q4, rows, rb, act, stride, n, RM, RN, out, os); break;

static void micro_any(int q4, const char *rows, size_t rb, const char *act, size_t stride, long n, int rm, int rn,
                      float *out, size_t os) {
    switch (rm * 8 + rn) {
        MK_CASE(3, 4) MK_CASE(3, 3) MK_CASE(3, 2) MK_CASE(3, 1)
        MK_CASE(2, 4) MK_CASE(2, 3) MK_CASE(2, 2) MK_CASE(2, 1)
        MK_CASE(1, 4) MK_CASE(1, 3) MK_CASE(1, 2) MK_CASE(1, 1)
    default: break;
    }
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

/* The AVX2 micro-kernel, Q8_0 and Q4_0: GEMM_RM2 rows x GEMM_RN2
 * activations, a block of 32 per step (one 256-bit register), maddubs
 * (unsigned x signed bytes, pairs summed into int16) for the products.
 * Q4_0's nibbles are the unsigned side as they are (pairs <= 2 * 15 * 127,
 * no saturation; the offset 8 comes off through sx as at AVX-512: each of
 * a block's 8 lanes takes sx); Q8_0's weights move their sign onto the
 * activation (|w| <= 128, pairs <= 2 * 128 * 127 = 32512 < 32767). The
 * activation is the Q4_0 one (signed quants, dx, sx per block). 16
 * registers: 6 accumulators, 2 rows (quants, and |w| for Q8_0, and the
 * scale), an activation's quants, dx and sx, temporaries. */
#define GEMM_RM2 2
#define GEMM_RN2 3

static int gemm_mk_type(int t) { return t == DT_Q8_0 || t == DT_Q4_0; }

static ALWAYS_INLINE void micro2(int q4, const char *rows, size_t rb, const char *act, size_t stride, long n, int RM,
                                 int RN, float *out, size_t os) {
    __m256 acc[GEMM_RM2][GEMM_RN2];
    UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
    }
    const long nb = n / QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    for (long b = 0; b < nb; b++) {
        __m256i w[GEMM_RM2], aw[GEMM_RM2];
        __m256 dw[GEMM_RM2];
        UNROLL_RM for (int i = 0; i < RM; i++) {
            if (q4) {
                const BlockQ4_0 *q = (const BlockQ4_0 *)(rows + i * rb) + b;
                __m128i v = _mm_loadu_si128((const __m128i *)q->qs), m4 = _mm_set1_epi8(15);
                w[i] = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
                dw[i] = _mm256_set1_ps(half(q->d));
            } else {
                const BlockQ8_0 *q = (const BlockQ8_0 *)(rows + i * rb) + b;
                w[i] = _mm256_loadu_si256((const __m256i *)q->qs);
                aw[i] = _mm256_sign_epi8(w[i], w[i]);
                dw[i] = _mm256_set1_ps(half(q->d));
            }
        }
        UNROLL_NX for (int j = 0; j < RN; j++) {
            const char *x = act + j * stride;
            __m256i y = _mm256_loadu_si256((const __m256i *)(act_q(x) + 32 * b));
            __m256 dx = _mm256_broadcast_ss(act_dx(x, n) + b);
            __m256 sx = _mm256_broadcast_ss(act_sx(x, n) + b);
            UNROLL_RM for (int i = 0; i < RM; i++) {
                __m256i p = q4 ? _mm256_maddubs_epi16(w[i], y) : _mm256_maddubs_epi16(aw[i], _mm256_sign_epi8(y, w[i]));
                __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
                acc[i][j] = q4 ? _mm256_fmadd_ps(dw[i], _mm256_fmsub_ps(dx, s, sx), acc[i][j])
                               : _mm256_fmadd_ps(_mm256_mul_ps(dw[i], dx), s, acc[i][j]);
            }
        }
    }
    UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) out[j * os + i] = hsum8(acc[i][j]);
    }
}

#define MK_CASE2(RM, RN)                                                                                               \
    case (RM) * 8 + (RN): micro2(q4, rows, rb, act, stride, n, RM, RN, out, os); break;

static void micro_any(int q4, const char *rows, size_t rb, const char *act, size_t stride, long n, int rm, int rn,
                      float *out, size_t os) {
    switch (rm * 8 + rn) {
        MK_CASE2(2, 3) MK_CASE2(2, 2) MK_CASE2(2, 1) MK_CASE2(1, 3) MK_CASE2(1, 2) MK_CASE2(1, 1)
    default: break;
    }
}
#endif

#if KERNELS_AVX512
#define GEMM_MK 1
#define MK_RM GEMM_RM
#define MK_RN GEMM_RN
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define GEMM_MK 1
#define MK_RM GEMM_RM2
#define MK_RN GEMM_RN2
#else
#define GEMM_MK 0
#endif

int gemm_q_act_type(int t) {
#if GEMM_MK
    if (gemm_mk_type(t)) return DT_Q4_0; /* signed quants; at AVX-512 the quads (file comment) */
#endif
    return t;
}

void gemm_q_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                 float *out, size_t out_stride) {
#if GEMM_MK
    if (gemm_mk_type(t)) {
        /* rows outermost: a few rows of W stay in L1 while the tile's
         * activations (sized for L2 by matmul.c) pass by */
        const int q4 = t == DT_Q4_0;
        for (int r = 0; r < nrows; r += MK_RM) {
            int rm = nrows - r < MK_RM ? nrows - r : MK_RM;
            for (int a = 0; a < nx; a += MK_RN) {
                int rn = nx - a < MK_RN ? nx - a : MK_RN;
                micro_any(q4, (const char *)rows + (size_t)r * rb, rb, (const char *)act + (size_t)a * stride, stride,
                          n, rm, rn, out + (size_t)a * out_stride + r, out_stride);
            }
        }
        return;
    }
#endif
    vec_dot_multi_rows(t, rows, rb, nrows, act, stride, nx, n, out, out_stride);
}
