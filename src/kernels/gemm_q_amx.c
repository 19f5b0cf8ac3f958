/* gemm_q_amx: the prefill's integer GEMM tile on AMX-INT8 (Sapphire Rapids
 * and later) for every quantised type the AVX-512 levels multiply with
 * integers (gemm_q.c, gemm_q_grp.c), used where kernel_amx() says so
 * (dispatch.h: the CPU has the tiles, the OS granted them, ALOE_AMX is not
 * 0).
 *
 * TDPBSSD multiplies a tile A of 16 x K signed bytes by a tile B of K/4 x
 * 64 (16 columns of K bytes, each 4 consecutive bytes of a column side by
 * side) into 16 x 16 int32 sums C. Here A is 16 activations' int8 quants
 * as the decode path lays them out (a row per activation, `stride` apart:
 * loaded where they lie), B 16 weight rows' quants, made signed (u - o,
 * gemm_q_unpack.h: every type's values fit a signed byte) and packed once
 * per 16 rows of the tile, and K the span of one weight scale: 32, or 16
 * for Q6_K, Q2_K and Q3_K. A C tile then holds, for 16 activations x 16
 * rows, one block's integer sums, which the vector unit scales as the VNNI
 * kernels do: per activation m (a row of C, 16 weight rows wide)
 * acc[m] += (sc dx[m]) cvt(C[m]) - off s[m] (the second term for the types
 * with mins; s: the activation's block sums). Two C tiles alternate, so
 * the tile unit can multiply one block while the vector unit scales the
 * one before.
 *
 * The activation's quants are the VNNI kernels' (same blocks, same
 * rounding): the results differ from theirs only in the order of the float
 * sums. Every (row, activation) result takes the same operations wherever
 * it sits in the tile (padding rows are exact zeros), so a row of x gives
 * the same y in any batch. */
#include "kernels/klevel.h" /* first: built once per kernel level */

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/gemm_q.h"
#include "kernels/quant_internal.h"

#if KERNELS_AVX512
#include <immintrin.h>

#include "kernels/amx_tiles.h"
#include "kernels/gemm_q_unpack.h"

#define AMX_FN __attribute__((target("amx-tile,amx-int8")))

/* 16 packed weight rows, per unit of 256 values: 64 lines of 64 bytes of
 * quants (line l: values 4l..4l+3 of each of the 16 rows, B's layout),
 * then per group of 16 values a line of the rows' scales, then one of
 * their offsets (mins; written and read only for the types with mins). */
#define AMX_QLINES 64
#define AMX_UNIT (AMX_QLINES * 64 + 2 * 16 * 64)

static int amx_k(int t) { return t == DT_Q6_K || t == DT_Q2_K || t == DT_Q3_K ? 16 : 32; }

/* The integer offset o of w = scale (u - o) (gemm_q_unpack.h's, and
 * Q8_0's and Q4_0's, which gemm_q.c's own micro-kernel takes elsewhere). */
static int amx_ioff(int t) { return t == DT_Q8_0 || t == DT_Q8_0_T16 ? 128 : act_has_q4(t) ? 8 : grp_ioff(t); }

int gemm_amx_type(int t) { return t == DT_Q8_0 || t == DT_Q8_0_T16 || act_has_q4(t) || grp_ioff(t) || grp_mins(t); }

/* amx_pack for the T16 layouts (formats/dtype.h), a group of 16 blocks
 * (two units) at a time: part p of a row's group is dword p of each of its
 * blocks, so one transpose of the 16 rows' part p gives, for every block,
 * its line p in B's layout -- no unpacking per block (Q4_0's nibble parts
 * split into two: the low nibbles are the block's values 4p.., the high
 * ones 16 + 4p..). No offsets' lines: the integer offset goes into the
 * quants, and amx_scale reads those lines only for types with mins. */
static void amx_pack_t16(int t, const char *rows, size_t rb, int nr, long nu, char *dst) {
    const int q8 = t == DT_Q8_0_T16;
    const __m512i o = _mm512_set1_epi8((char)amx_ioff(t)), m4 = _mm512_set1_epi8(15);
    const size_t gb = 16 * (q8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0));
    for (long u = 0; u < nu; u += 2, dst += 2 * AMX_UNIT) {
        const char *grp = rows + (size_t)(u / 2) * gb;
        __m512i v[16];
        for (int p = 0; p < 8; p++) {
            for (int r = 0; r < 16; r++) {
                if (r >= nr) {
                    v[r] = _mm512_setzero_si512();
                    continue;
                }
                const char *g = grp + (size_t)r * rb + 32;
                __m512i w = q8 ? _mm512_loadu_si512(g + 64 * p)
                          : p < 4 ? _mm512_and_si512(_mm512_loadu_si512(g + 64 * p), m4)
                                  : _mm512_and_si512(_mm512_srli_epi16(_mm512_loadu_si512(g + 64 * (p - 4)), 4), m4);
                v[r] = _mm512_sub_epi8(w, o);
            }
            transpose16(v); /* v[b]: dword p of block b of each row */
            for (int b = 0; b < 16; b++) _mm512_store_si512(dst + (size_t)(b / 8) * AMX_UNIT + 64 * (8 * (b % 8) + p), v[b]);
        }
        for (int h = 0; h < 2; h++) { /* unit u + h: blocks 8h..8h+7, a scale per 16 values */
            for (int r = 0; r < 16; r++)
                v[r] = r < nr ? _mm512_castps_si512(pairs_ps(_mm256_cvtph_ps(_mm_loadu_si128(
                                    (const __m128i *)(grp + (size_t)r * rb + 16 * h)))))
                              : _mm512_setzero_si512();
            transpose16(v);
            char *lines = dst + (size_t)h * AMX_UNIT + 64 * AMX_QLINES;
            for (int g = 0; g < 16; g++) _mm512_store_si512(lines + 64 * g, v[g]);
        }
    }
}

/* nr <= 16 rows of type t (rb bytes apart, n values) into the packed
 * layout (AMX_UNIT bytes per unit of 256 values); rows nr..15 are zeros. */
static void amx_pack(int t, const char *rows, size_t rb, int nr, long n, long nu, char *dst) {
    if (dtype_t16_base(t)) {
        amx_pack_t16(t, rows, rb, nr, nu, dst);
        return;
    }
    const __m512i o = _mm512_set1_epi8((char)amx_ioff(t));
    const long nb = n / QK8_0;
    alignas(64) int8_t q[16][256];
    alignas(64) float sc[16][16], off[16][16];
    for (long u = 0; u < nu; u++, dst += AMX_UNIT) {
        for (int r = 0; r < 16; r++) {
            if (r >= nr) {
                memset(q[r], 0, sizeof q[r]), memset(sc[r], 0, sizeof sc[r]), memset(off[r], 0, sizeof off[r]);
                continue;
            }
            __m512i nat[4];
            __m512 s, f;
            unpack_unit(t, rows + (size_t)r * rb, u, nb, nat, &s, &f);
            for (int k = 0; k < 4; k++) _mm512_store_si512(q[r] + 64 * k, _mm512_sub_epi8(nat[k], o));
            _mm512_store_ps(sc[r], s);
            _mm512_store_ps(off[r], f);
        }
        __m512i v[16];
        for (int k = 0; k < 4; k++) { /* values 64k..64k+63: lines 16k..16k+15 */
            for (int r = 0; r < 16; r++) v[r] = _mm512_load_si512(q[r] + 64 * k);
            transpose16(v);
            for (int l = 0; l < 16; l++) _mm512_store_si512(dst + 64 * (16 * k + l), v[l]);
        }
        for (int r = 0; r < 16; r++) v[r] = _mm512_castps_si512(_mm512_load_ps(sc[r]));
        transpose16(v);
        for (int g = 0; g < 16; g++) _mm512_store_si512(dst + 64 * AMX_QLINES + 64 * g, v[g]);
        if (!grp_mins(t)) continue; /* the offsets' lines: read by amx_scale only for types with mins */
        for (int r = 0; r < 16; r++) v[r] = _mm512_castps_si512(_mm512_load_ps(off[r]));
        transpose16(v);
        for (int g = 0; g < 16; g++) _mm512_store_si512(dst + 64 * AMX_QLINES + 1024 + 64 * g, v[g]);
    }
}

/* Tiles 0, 1: C (na x 16 int32); 2, 3: A (na activations x K bytes);
 * 4, 5: B (K / 4 lines of 64 bytes). */
AMX_FN static void amx_config(int na, int K) {
    alignas(64) TileCfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 2; i++) {
        c.rows[i] = (uint8_t)na, c.colsb[i] = 64;
        c.rows[2 + i] = (uint8_t)na, c.colsb[2 + i] = (uint16_t)K;
        c.rows[4 + i] = (uint8_t)(K / 4), c.colsb[4 + i] = 64;
    }
    MEM_BARRIER(); /* gcc 12's ldtilecfg builtin does not say that it reads c (gemm_bf16_amx.c) */
    _tile_loadconfig(&c);
}

/* The factors of 16 activations (act, stride bytes apart; na real, the
 * rest repeat the last) laid out for the scaling's broadcasts: dxt[16 b +
 * m] activation m's dx of block b, st[16 g + m] its sum of group g (the
 * block's sx where K is 32, the half's s16 where 16). */
static void act_tables(int K, const char *act, size_t stride, int na, long n, float *dxt, float *st) {
    const long nb = n / QK8_0, ng = n / K;
    for (int m = 0; m < 16; m++) {
        const char *a = act + (size_t)(m < na ? m : na - 1) * stride;
        const float *dx = act_dx(a, n), *s = K == 32 ? act_sx(a, n) : act_s16(a, n);
        for (long b = 0; b < nb; b++) dxt[16 * b + m] = dx[b];
        for (long g = 0; g < ng; g++) st[16 * g + m] = s[g];
    }
}

/* Group g's block sums (cb: C stored, one activation per 64-byte line)
 * into the accumulators: acc[m] += (sc dx[m]) cvt(C[m]) - off s[m]. */
static ALWAYS_INLINE void amx_scale(int mins, const char *lines, const int32_t cb[16][16], const float *dxb,
                                    const float *sg, __m512 acc[16]) {
    const __m512 sc = _mm512_load_ps((const float *)lines);
    const __m512 of = mins ? _mm512_load_ps((const float *)(lines + 1024)) : _mm512_setzero_ps();
    _Pragma("GCC unroll 16") for (int m = 0; m < 16; m++) {
        __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512(cb[m]));
        acc[m] = _mm512_fmadd_ps(c, _mm512_mul_ps(sc, _mm512_set1_ps(dxb[m])), acc[m]);
        if (mins) acc[m] = _mm512_fnmadd_ps(of, _mm512_set1_ps(sg[m]), acc[m]);
    }
}

/* Group g's block product into C tile c (from A tile a, B tile b: literal
 * numbers, which gcc's tile macros paste into the instruction), stored to
 * buf. */
#define AMX_ISSUE(c, a, b, g, buf)                                                                                     \
    do {                                                                                                               \
        _tile_zero(c);                                                                                                 \
        _tile_loadd(a, aq + (g) * K, (long)stride);                                                                    \
        _tile_loadd(b, pw + (size_t)((g) / per_unit) * AMX_UNIT + 64 * ((g) % per_unit * (K / 4)), 64);               \
        _tile_dpbssd(c, a, b);                                                                                         \
        _tile_stored(c, buf, 64);                                                                                      \
    } while (0)

/* 16 packed rows (pw; nr of them real) x na <= 16 activations (their
 * quants aq, stride bytes apart; their factors dxt, st: act_tables):
 * out[m * os + i] for m < na, i < nr. The tiles are configured for na and
 * K (amx_config). In program order the tiles of group g + 1 come before
 * the scaling of group g, so the tile unit works while the vector unit
 * scales (three groups ahead in four C tiles measured no faster). */
AMX_FN static ALWAYS_INLINE void amx_block_k(int mins, int K, const char *pw, const int8_t *aq, size_t stride,
                                              const float *dxt, const float *st, int na, long n, float *out, size_t os,
                                              int nr) {
    const long ng = n / K;
    const int per_unit = 256 / K, bshift = K == 32 ? 0 : 1;
    alignas(64) int32_t cb[2][16][16];
    if (na < 16) memset(cb, 0, sizeof cb); /* the rows C leaves alone: scaled, never stored */
    __m512 acc[16];
    for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
#define SCALE_LINES(g) (pw + (size_t)((g) / per_unit) * AMX_UNIT + 64 * AMX_QLINES + 64 * ((g) * K / 16 % 16))
    AMX_ISSUE(0, 2, 4, 0L, cb[0]);
    for (long g = 0; g < ng; g += 2) {
        if (g + 1 < ng) AMX_ISSUE(1, 3, 5, g + 1, cb[1]);
        MEM_BARRIER();
        amx_scale(mins, SCALE_LINES(g), cb[0], dxt + 16 * (g >> bshift), st + 16 * g, acc);
        MEM_BARRIER();
        if (g + 1 < ng) {
            if (g + 2 < ng) AMX_ISSUE(0, 2, 4, g + 2, cb[0]);
            MEM_BARRIER();
            amx_scale(mins, SCALE_LINES(g + 1), cb[1], dxt + 16 * ((g + 1) >> bshift), st + 16 * (g + 1), acc);
            MEM_BARRIER();
        }
    }
#undef SCALE_LINES
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    for (int m = 0; m < na; m++) _mm512_mask_storeu_ps(out + (size_t)m * os, keep, acc[m]);
}

/* amx_block_k with mins and K constants (each its own code: registers
 * for the accumulators rather than spills). */
AMX_FN static void amx_block(int mins, int K, const char *pw, const int8_t *aq, size_t stride, const float *dxt,
                             const float *st, int na, long n, float *out, size_t os, int nr) {
    if (K == 32 && mins) amx_block_k(1, 32, pw, aq, stride, dxt, st, na, n, out, os, nr);
    else if (K == 32) amx_block_k(0, 32, pw, aq, stride, dxt, st, na, n, out, os, nr);
    else if (mins) amx_block_k(1, 16, pw, aq, stride, dxt, st, na, n, out, os, nr);
    else amx_block_k(0, 16, pw, aq, stride, dxt, st, na, n, out, os, nr);
}

/* The tile's rows are packed first, 16 at a time; then each block of 16
 * activations (its quants in L1 while the packed rows pass by from L2)
 * meets every block of rows. */
AMX_FN void gemm_amx_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx,
                          long n, float *out, size_t out_stride) {
    const int K = amx_k(t), mins = grp_mins(t);
    const long nu = (n + 255) / 256, nrb = (nrows + 15) / 16;
    const size_t pks = (size_t)nu * AMX_UNIT;
    char *pk = xaligned_alloc(pks * (size_t)nrb);
    float *dxt = xaligned_alloc((size_t)(n / QK8_0) * 16 * sizeof(float));
    float *st = xaligned_alloc((size_t)(n / K) * 16 * sizeof(float));
    for (long rbk = 0; rbk < nrb; rbk++) {
        int nr = nrows - 16 * (int)rbk < 16 ? nrows - 16 * (int)rbk : 16;
        amx_pack(t, (const char *)rows + (size_t)(16 * rbk) * rb, rb, nr, n, nu, pk + (size_t)rbk * pks);
    }
    MEM_BARRIER();
    int cfg = 0;
    for (int a = 0; a < nx; a += 16) {
        int na = nx - a < 16 ? nx - a : 16;
        const char *ab = (const char *)act + (size_t)a * stride;
        act_tables(K, ab, stride, na, n, dxt, st);
        if (na != cfg) amx_config(na, K), cfg = na;
        for (long rbk = 0; rbk < nrb; rbk++) {
            int nr = nrows - 16 * (int)rbk < 16 ? nrows - 16 * (int)rbk : 16;
            amx_block(mins, K, pk + (size_t)rbk * pks, act_q(ab), stride, dxt, st, na, n,
                      out + (size_t)a * out_stride + 16 * rbk, out_stride, nr);
        }
    }
    _tile_release();
    free(pk), free(dxt), free(st);
}
#else
int gemm_amx_type(int t) {
    (void)t;
    return 0;
}

void gemm_amx_tile(int t, const void *rows, size_t rb, int nrows, const void *act, size_t stride, int nx, long n,
                   float *out, size_t out_stride) {
    (void)t, (void)rows, (void)rb, (void)nrows, (void)act, (void)stride, (void)nx, (void)n, (void)out, (void)out_stride;
}
#endif
