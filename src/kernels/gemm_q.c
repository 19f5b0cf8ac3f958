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
 * Each row's quads are unpacked once per tile into a small buffer
 * (pack_row), so the inner loop only loads them.
 *
 * Registers: 12 accumulators, 3 rows x (2 quant registers + scales), an
 * activation's scales and sums, temporaries: within the 32 of AVX-512
 * (4 x 4 would need 16 + 12 + 4 and spill).
 *
 * Every (row, activation) result is computed with the same operations in
 * the same order whatever its place in the tile, so a row of x gives the
 * same y in any batch.
 *
 * The other quantised types (AVX-512) have their own micro-kernel,
 * gemm_q_grp.c: each row unpacked once per tile into groups of 16 values
 * per int32 lane. At the avx2 level gemm_q_grp.c's maddubs version takes
 * Q4_0, Q4_1, Q5_0 and Q5_1 (~2x dequantise + sgemm, bench/gemm_q); Q8_0,
 * IQ4_NL and the K-quants keep sgemm there (gemm_q_act_type says which):
 * their 8-bit unsigned quants would saturate maddubs' int16 pairs. Where AMX-INT8 exists (Sapphire Rapids and
 * later; none on the machines this was written on) a tile kernel would go
 * here: TDPBUSD on 16 x 64-byte tiles of the same quads, behind
 * cpu_amx_request. */
#include "kernels/klevel.h" /* first: built once per kernel level */

#include <stdlib.h>

#include "base/mem.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_q.h"
#include "kernels/quant.h"
#include "kernels/quant_internal.h"

#define GEMM_RM 3
#define GEMM_RN 4
#define UNROLL_RM _Pragma("GCC unroll 3")

#if KERNELS_AVX512
#include <immintrin.h>

static int gemm_mk_type(int t) { return t == DT_Q8_0 || t == DT_Q4_0 || t == DT_Q4_0_G16 || dtype_t16_base(t); }

/* The quad of blocks b..b+3 of a Q4_0 or Q8_0 row as stored as two
 * registers of unsigned bytes, elements 0-15 then 16-31 of each block, one
 * block per 128-bit lane, and the blocks' f16 scales as floats, each over
 * its block's 4 lanes. (The regrouped layouts' rows are whole groups of
 * 512, which tile512 gives to the group micro-kernel.) */
static ALWAYS_INLINE void load_quad(int t, const char *row, long b, __m512i *lo, __m512i *hi, __m512 *dw) {
    const __m512i m4 = _mm512_set1_epi8(15);
    if (t == DT_Q4_0) {
        const BlockQ4_0 *q = (const BlockQ4_0 *)row + b;
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q[0].qs));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[1].qs), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[2].qs), 2);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[3].qs), 3);
        /* the scales: words 0, 9, 18, 27 of the quad's first 64 of 72 bytes */
        const __m512i words =
            _mm512_castsi256_si512(_mm256_setr_epi16(0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27));
        *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(words, _mm512_loadu_si512(q))));
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

/* A row's quads unpacked once per tile (pack_row), so that the
 * micro-kernel's inner loop only loads them: per quad, the two registers
 * of unsigned quants and the scales. */
#define PACKED_QUAD 192

static void pack_row(int t, const char *row, long nq, char *dst) {
    for (long qd = 0; qd < nq; qd++, dst += PACKED_QUAD) {
        __m512i lo, hi;
        __m512 dw;
        load_quad(t, row, 4 * qd, &lo, &hi, &dw);
        _mm512_store_si512(dst, lo);
        _mm512_store_si512(dst + 64, hi);
        _mm512_store_ps(dst + 128, dw);
    }
}

/* RM packed rows (pk, nq quads each, one after another; rows/rb: the same
 * rows as stored, for the blocks after the last quad) x RN activations
 * (stride bytes apart): out[j * os + i]. */
static ALWAYS_INLINE void micro(int q4, const char *pk, const char *rows, size_t rb, const char *act, size_t stride,
                                long n, int RM, int RN, float *out, size_t os) {
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
        UNROLL_RM for (int i = 0; i < RM; i++) {
            const char *p = pk + (i * nq + qd) * PACKED_QUAD;
            lo[i] = _mm512_load_si512(p), hi[i] = _mm512_load_si512(p + 64), dw[i] = _mm512_load_ps(p + 128);
        }
        UNROLL_NX for (int j = 0; j < RN; j++) {
            const char *x = act + j * stride;
            const int8_t *y = act_q4(x, n) + 128 * qd;
            __m512i ya = _mm512_loadu_si512(y), yb = _mm512_loadu_si512(y + 64);
            __m512 dx = _mm512_loadu_ps(act_dx4(x, n) + 16 * qd);
            __m512 sx = q4 ? _mm512_loadu_ps(act_sx4(x, n) + 16 * qd)
                           : _mm512_mul_ps(off, _mm512_loadu_ps(act_sx4(x, n) + 16 * qd));
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

/* The micro-kernel's instances: the type, RM and RN constants (each its
 * own code, registers allocated for its size). */
#define MK_CASE(Q4, RM, RN)                                                                                            \
    case (Q4) * 64 + (RM) * 8 + (RN): micro(Q4, pk, rows, rb, act, stride, n, RM, RN, out, os); break;
#define MK_CASES(Q4)                                                                                                   \
    MK_CASE(Q4, 3, 4) MK_CASE(Q4, 3, 3) MK_CASE(Q4, 3, 2) MK_CASE(Q4, 3, 1) MK_CASE(Q4, 2, 4) MK_CASE(Q4, 2, 3)         \
    MK_CASE(Q4, 2, 2) MK_CASE(Q4, 2, 1) MK_CASE(Q4, 1, 4) MK_CASE(Q4, 1, 3) MK_CASE(Q4, 1, 2) MK_CASE(Q4, 1, 1)

static void micro_any(int q4, const char *pk, const char *rows, size_t rb, const char *act, size_t stride, long n,
                      int rm, int rn, float *out, size_t os) {
    switch (q4 * 64 + rm * 8 + rn) {
        MK_CASES(0)
        MK_CASES(1)
    default: break;
    }
}

/* ---- Q4_0 in groups of 16 blocks: a block per int32 lane ----
 * Where rows are whole groups of 512 values. The quad micro-kernel above
 * spends per (row, activation) pair and 4 blocks two VPDPBUSD and three
 * float operations (a conversion and two FMAs for the scales: every block
 * spans 4 lanes). Here a block's 32 products gather in one int32 lane over
 * 8 VPDPBUSD (the activation's act_t16 parts, each 4 quants of every
 * block of the group), so per pair and 16 blocks it is 8 VPDPBUSD and
 * three float operations: 11 vector operations where the quads take 20,
 * the scales' work a quarter of it. The rows are packed per tile into the
 * same parts: a group's 8 x 64 bytes of unsigned nibbles, then its 16
 * scales as floats. */
#define PACKED_GROUP 576

/* Group g of a Q4_0 row, stored or regrouped: q[j] the nibble bytes of
 * blocks 4j..4j+3 (one block per 128-bit lane), *dw their 16 scales. */
static ALWAYS_INLINE void load_group(int t, const char *row, long g, __m512i q[4], __m512 *dw) {
    if (t == DT_Q4_0_G16) { /* the group's 16 scales, then its 16 blocks' nibbles */
        const char *p = row + (size_t)g * 16 * sizeof(BlockQ4_0);
        *dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
        for (int j = 0; j < 4; j++) q[j] = _mm512_loadu_si512(p + 32 + 64 * j);
        return;
    }
    const BlockQ4_0 *b = (const BlockQ4_0 *)row + 16 * g;
    uint16_t d[16];
    for (int i = 0; i < 16; i++) d[i] = b[i].d;
    *dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)b[4 * j].qs));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)b[4 * j + 1].qs), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)b[4 * j + 2].qs), 2);
        q[j] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)b[4 * j + 3].qs), 3);
    }
}

/* A row's ng groups into the parts of act_t16 (quant_internal.h): part k
 * gathers dword k (bytes 4k..4k+3) of each block, its low nibbles part k,
 * its high ones part 4 + k. */
static void pack_row_groups(int t, const char *row, long ng, char *dst) {
    const __m512i m4 = _mm512_set1_epi8(15);
    if (dtype_t16_base(t)) { /* in the parts already (formats/dtype.h): Q8_0's + 128, Q4_0's nibbles split */
        const int q8 = t == DT_Q8_0_T16;
        const size_t gb = 16 * (q8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0));
        for (long g = 0; g < ng; g++, dst += PACKED_GROUP, row += gb) {
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512(row + 32 + 64 * k);
                _mm512_store_si512(dst + 64 * k, q8 ? v : _mm512_and_si512(v, m4));
                _mm512_store_si512(dst + 64 * (4 + k), q8 ? _mm512_loadu_si512(row + 32 + 64 * (4 + k))
                                                          : _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
            }
            _mm512_store_ps(dst + 512, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)row)));
        }
        return;
    }
    for (long g = 0; g < ng; g++, dst += PACKED_GROUP) {
        __m512i q[4];
        __m512 dw;
        load_group(t, row, g, q, &dw);
        for (int k = 0; k < 4; k++) {
            /* lanes 0-7: dword k of blocks 0-7 (lane 4l + k of q[0], then of q[1]) */
            const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(k),
                                                 _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28));
            __m512i lo8 = _mm512_permutex2var_epi32(q[0], idx, q[1]), hi8 = _mm512_permutex2var_epi32(q[2], idx, q[3]);
            __m512i c = _mm512_inserti64x4(lo8, _mm512_castsi512_si256(hi8), 1);
            _mm512_store_si512(dst + 64 * k, _mm512_and_si512(c, m4));
            _mm512_store_si512(dst + 64 * (4 + k), _mm512_and_si512(_mm512_srli_epi16(c, 4), m4));
        }
        _mm512_store_ps(dst + 512, dw);
    }
}

/* RM rows packed by pack_row_groups (ng groups each, one row after
 * another) x RN activations: out[j * os + i]. Per pair and group the
 * integer sums of its 16 blocks, then w·y = dw (dx S - o sx) per lane,
 * o the weights' integer offset (Q4_0's 8, Q8_0_T16's 128). */
static ALWAYS_INLINE void micro_groups(const char *pk, long ng, const char *act, size_t stride, long n, int RM, int RN,
                                       float o, float *out, size_t os) {
    __m512 acc[GEMM_RM][GEMM_RN];
    UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    }
    const __m512 eight = _mm512_set1_ps(o);
    for (long g = 0; g < ng; g++) {
        const char *pg = pk + g * PACKED_GROUP;
        __m512i s[GEMM_RM][GEMM_RN];
        UNROLL_RM for (int i = 0; i < RM; i++) {
            UNROLL_NX for (int j = 0; j < RN; j++) s[i][j] = _mm512_setzero_si512();
        }
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
            __m512i w[GEMM_RM];
            UNROLL_RM for (int i = 0; i < RM; i++) w[i] = _mm512_load_si512(pg + (size_t)i * ng * PACKED_GROUP + 64 * k);
            UNROLL_NX for (int j = 0; j < RN; j++) {
                __m512i y = _mm512_loadu_si512(act_t16(act + j * stride, n) + 512 * g + 64 * k);
                UNROLL_RM for (int i = 0; i < RM; i++) s[i][j] = _mm512_dpbusd_epi32(s[i][j], w[i], y);
            }
        }
        UNROLL_NX for (int j = 0; j < RN; j++) {
            const char *x = act + j * stride;
            __m512 dx = _mm512_loadu_ps(act_dx(x, n) + 16 * g), sx8 = _mm512_mul_ps(eight, _mm512_loadu_ps(act_sx(x, n) + 16 * g));
            UNROLL_RM for (int i = 0; i < RM; i++) {
                __m512 dw = _mm512_load_ps(pg + (size_t)i * ng * PACKED_GROUP + 512);
                acc[i][j] = _mm512_fmadd_ps(dw, _mm512_fmsub_ps(dx, _mm512_cvtepi32_ps(s[i][j]), sx8), acc[i][j]);
            }
        }
    }
    UNROLL_RM for (int i = 0; i < RM; i++) {
        UNROLL_NX for (int j = 0; j < RN; j++) out[j * os + i] = _mm512_reduce_add_ps(acc[i][j]);
    }
}

#define MG_CASE(RM, RN)                                                                                                \
    case (RM) * 8 + (RN): micro_groups(pk, ng, act, stride, n, RM, RN, o, out, os); break;

static void micro_groups_any(const char *pk, long ng, const char *act, size_t stride, long n, int rm, int rn, float o,
                             float *out, size_t os) {
    switch (rm * 8 + rn) {
        MG_CASE(3, 4) MG_CASE(3, 3) MG_CASE(3, 2) MG_CASE(3, 1) MG_CASE(2, 4) MG_CASE(2, 3)
        MG_CASE(2, 2) MG_CASE(2, 1) MG_CASE(1, 4) MG_CASE(1, 3) MG_CASE(1, 2) MG_CASE(1, 1)
    default: break;
    }
}

/* Q4_0 / Q4_0_G16 rows of whole groups (n % 512 == 0) and the T16
 * layouts (always whole groups), as tile512. */
static void tile_groups(int t, const char *rows, size_t rb, int nrows, const char *act, size_t stride, int nx, long n,
                        float *out, size_t out_stride) {
    const long ng = act_ngroups(n);
    char *pk = xaligned_alloc((size_t)(GEMM_RM * ng) * PACKED_GROUP);
    for (int r = 0; r < nrows; r += GEMM_RM) {
        int rm = nrows - r < GEMM_RM ? nrows - r : GEMM_RM;
        const char *rr = rows + (size_t)r * rb;
        for (int i = 0; i < rm; i++) pack_row_groups(t, rr + (size_t)i * rb, ng, pk + (size_t)i * ng * PACKED_GROUP);
        for (int a = 0; a < nx; a += GEMM_RN) {
            int rn = nx - a < GEMM_RN ? nx - a : GEMM_RN;
            micro_groups_any(pk, ng, act + (size_t)a * stride, stride, n, rm, rn, t == DT_Q8_0_T16 ? 128.0f : 8.0f,
                             out + (size_t)a * out_stride + r, out_stride);
        }
    }
    free(pk);
}

/* t: Q8_0, Q4_0, Q4_0_G16 (whose rows are whole quads: no tail) or a T16
 * layout */
static void tile512(int t, const char *rows, size_t rb, int nrows, const char *act, size_t stride, int nx, long n,
                    float *out, size_t out_stride) {
    const int q4 = t != DT_Q8_0;
    if (dtype_t16_base(t) || (q4 && n % 512 == 0)) {
        tile_groups(t, rows, rb, nrows, act, stride, nx, n, out, out_stride);
        return;
    }
    /* rows outermost: GEMM_RM rows, packed once, stay in L1 while the
     * tile's activations (sized for L2 by matmul.c) pass by */
    const long nq = act_nquads(n);
    char *pk = xaligned_alloc((size_t)(GEMM_RM * nq + 1) * PACKED_QUAD);
    for (int r = 0; r < nrows; r += GEMM_RM) {
        int rm = nrows - r < GEMM_RM ? nrows - r : GEMM_RM;
        const char *rr = rows + (size_t)r * rb;
        for (int i = 0; i < rm; i++) pack_row(t, rr + (size_t)i * rb, nq, pk + i * nq * PACKED_QUAD);
        for (int a = 0; a < nx; a += GEMM_RN) {
            int rn = nx - a < GEMM_RN ? nx - a : GEMM_RN;
            micro_any(q4, pk, rr, rb, act + (size_t)a * stride, stride, n, rm, rn, out + (size_t)a * out_stride + r,
                      out_stride);
        }
    }
    free(pk);
}
#endif

int gemm_q_act_type(int t) {
#if KERNELS_AVX512
    /* measured against dequantise + sgemm (docs/BENCHMARKS.md, one
     * thread, bench/gemm_q): this micro-kernel ~2x, gemm_q_grp.c's 1.9-2.9x */
    if (gemm_mk_type(t)) return DT_Q4_0; /* the quads (file comment) */
#endif
    /* avx2: gemm_q_grp.c's maddubs micro-kernel for the 4- and 5-bit
     * 32-blocks; scalar: none */
    return gemm_grp_type(t) ? t : DT_F32;
}

void gemm_q_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                 float *out, size_t out_stride) {
#if KERNELS_AVX512
    if (kernel_amx() && gemm_amx_type(t)) {
        gemm_amx_tile(t, rows, rb, nrows, act, stride, nx, n, out, out_stride);
        return;
    }
    if (gemm_mk_type(t)) {
        tile512(t, rows, rb, nrows, act, stride, nx, n, out, out_stride);
        return;
    }
#endif
    if (gemm_grp_type(t)) {
        gemm_grp_tile(t, rows, rb, nrows, act, stride, nx, n, out, out_stride);
        return;
    }
    vec_dot_multi_rows(t, rows, rb, nrows, act, stride, nx, n, out, out_stride);
}
