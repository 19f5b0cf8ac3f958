/* quant_avx512: the quantised dots (Q8_0, Q4_0, Q4_K, Q6_K weights against
 * the Q8_0 activation of quant_internal.h) with AVX-512 BW/VL/VNNI.
 *
 * Why a second set beside the AVX2 one: on one core the AVX2 dots unpack
 * 16-36 GB/s of weights (in cache), about what one core streams from
 * memory, so decoding a quantised model on two cores was bound by the
 * kernel, not by memory. Here every instruction covers two blocks of 32
 * (one 512-bit register) and the integer products are one VPDPBUSD each;
 * the weight scales of a pair of blocks come from one load and one word
 * permute (a 16-block gather was tried: on Zen 5 it costs more than the
 * dots it feeds), and the activation's come pre-expanded to the lanes.
 * Figures: bench/matvec_speed.sh, docs/BENCHMARKS.md.
 *
 * The results equal the reference dots up to float reordering (the
 * integer sums are exact); tests/kernels/test_kernels.c checks both
 * against vec_dot_ref with this path on and off. */
#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/quant_internal.h"

#if KERNELS_AVX512
#include <immintrin.h>


/* The f16 scales (first field of each block) of a pair of blocks of
 * `stride` bytes as floats: lanes 0-7 the first, 8-15 the second (0 when
 * there is only one: the load is masked to the first block, so it never
 * reads past the row). One load and one word permute: gathering 16 scales
 * at once is slower on the processors this was measured on. */
static ALWAYS_INLINE __m512i pair_scales_load(const void *b, int stride, int both) {
    int w1 = stride / 2;
    return both ? _mm512_maskz_loadu_epi16((__mmask32)((1ull << (w1 + 1)) - 1), b)
                : _mm512_maskz_loadu_epi16((__mmask32)1, b);
}
static ALWAYS_INLINE __m512 pair_scales_of(__m512i v, int stride) {
    int w1 = stride / 2;
    __m256i idx = _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, (short)w1, (short)w1, (short)w1, (short)w1, (short)w1,
                                    (short)w1, (short)w1, (short)w1);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(_mm512_castsi256_si512(idx), v)));
}
static ALWAYS_INLINE __m512 pair_scales(const void *b, int stride, int both) {
    return pair_scales_of(pair_scales_load(b, stride, both), stride);
}

/* ---- Q8_0 and Q4_0: two blocks per register ---- */

/* Two Q8_0 blocks' quants (the second 0 when only one is left). */
static ALWAYS_INLINE __m512i load_q8_pair(const BlockQ8_0 *b, int both) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)b[0].qs);
    if (!both) return _mm512_zextsi256_si512(lo);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)b[1].qs), 1);
}

/* Two Q4_0 blocks' nibbles as unsigned bytes in element order: 128-bit
 * lanes [low nibbles of b0, high of b0, low of b1, high of b1]. */
static ALWAYS_INLINE __m512i load_q4_pair(const BlockQ4_0 *b, int both) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)b[0].qs));
    v = both ? _mm512_mask_broadcast_i32x4(v, (__mmask16)0xff00, _mm_loadu_si128((const __m128i *)b[1].qs))
             : _mm512_maskz_mov_epi32((__mmask16)0x00ff, v);
    v = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(v, _mm512_set1_epi8(15));
}

/* One pair of blocks (b, b + 1; b alone when `both` is 0) of a Q8_0 or
 * Q4_0 row against NX activations, into acc[k]. Q8_0: VPDPBUSD multiplies
 * unsigned by signed, so the activation comes stored + 128 (unsigned) and
 * the signed weights are used as they are, each sum starting from -128
 * times the weights' sum (exact, -128 weights included). Q4_0: nibbles q in 0..15 stay
 * unsigned, w = d (q - 8), so sum(w y) = d (dx sum(q y) - 8 sx): each of
 * a block's 8 lanes takes d (dx S - sx), 8 times the offset in all. The
 * activation's scales come pre-expanded to the lanes (act_dxx, act_sxx). */
static ALWAYS_INLINE void q8q4_pair_of(int q4, __m512i w, __m512 dw, long b, int both, const void *const *x, long n,
                                       int NX, __m512 *acc) {
    const __mmask16 lanes = both ? (__mmask16)0xffff : (__mmask16)0x00ff;
    __m512i base = _mm512_setzero_si512();
    if (!q4) /* the activation is stored + 128: each sum starts at -128 * the
              * weights' sum, once for all the activations */
        base = _mm512_sub_epi32(_mm512_setzero_si512(),
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), w));
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        /* the activation is padded to 64 bytes: a lone last block reads
         * zeros (and meets zero weights) in the upper half */
        __m512i y = _mm512_loadu_si512(act_q(x[k]) + 32 * b);
        /* unsigned times signed: Q4_0's nibbles times the activation, or
         * the biased activation times Q8_0's weights */
        __m512i s = q4 ? _mm512_dpbusd_epi32(base, w, y) : _mm512_dpbusd_epi32(base, y, w);
        __m512 dx = _mm512_maskz_loadu_ps(lanes, act_dxx(x[k], n) + 8 * b);
        if (q4) /* dw * (dx * S - sx): the 8 lanes of a block take 8 times its offset */
            acc[k] = _mm512_fmadd_ps(
                dw, _mm512_fmsub_ps(dx, _mm512_cvtepi32_ps(s), _mm512_maskz_loadu_ps(lanes, act_sxx(x[k], n) + 8 * b)),
                acc[k]);
        else
            acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(s), acc[k]);
    }
}
static ALWAYS_INLINE void q8q4_pair(int q4, const void *row, long b, int both, const void *const *x, long n, int NX,
                                    __m512 *acc) {
    const int stride = q4 ? (int)sizeof(BlockQ4_0) : (int)sizeof(BlockQ8_0);
    __m512i w = q4 ? load_q4_pair((const BlockQ4_0 *)row + b, both) : load_q8_pair((const BlockQ8_0 *)row + b, both);
    q8q4_pair_of(q4, w, pair_scales((const char *)row + b * stride, stride, both), b, both, x, n, NX, acc);
}

/* Four Q4_0 blocks (b .. b + 3) against NX activations, one block per
 * 128-bit lane: a register of the four blocks' 16 bytes of nibbles gives
 * with one AND their elements 0-15 and with a shift 16-31, which the
 * activation's quad layout (act_q4) lines up with; the f16 scales of the
 * four (words 0, 9, 18, 27 of the quad) come with one word permute of the
 * quad's first 64 bytes. Per block this is about two thirds of the
 * instructions of q8q4_pair, whose 8 lanes per block repeat the scale work
 * (bench/matvec_speed.sh: Q4_0 in cache ~1.4x). */
static ALWAYS_INLINE void q4_quad(const BlockQ4_0 *row, long b, __m512i head, __m128i tail, const void *const *x, long n,
                                  int NX, __m512 *acc) {
    /* head: the quad's bytes 0-63 of the 72, tail 56-71 (q4_quad_load) */
#ifdef __AVX512VBMI__
    (void)row;
    /* the 4 x 16 bytes of nibbles out of bytes 0-63 (indices < 64) and
     * 56-71 (64 + i: byte 56 + i) of the quad, one permute */
    static const uint8_t pick[64] = {2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
                                     20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
                                     38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
                                     64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79};
    __m512i v = _mm512_permutex2var_epi8(head, _mm512_loadu_si512(pick), _mm512_castsi128_si512(tail));
#else
    (void)tail;
    const BlockQ4_0 *q = row + b;
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q[0].qs));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[1].qs), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[2].qs), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)q[3].qs), 3);
#endif
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    const __m512i words = _mm512_castsi256_si512(_mm256_setr_epi16(0, 0, 0, 0, 9, 9, 9, 9, 18, 18, 18, 18, 27, 27, 27, 27));
    __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(words, head)));
    const long at = 32 * b, at4 = 4 * b; /* b is a multiple of 4 */
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        const int8_t *y = act_q4(x[k], n) + at;
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(y));
        s = _mm512_dpbusd_epi32(s, hi, _mm512_loadu_si512(y + 64));
        /* dw * (dx * S - 2 sx) per lane: a block's 4 lanes take its offset 8 sx */
        acc[k] = _mm512_fmadd_ps(
            dw, _mm512_fmsub_ps(_mm512_loadu_ps(act_dx4(x[k], n) + at4), _mm512_cvtepi32_ps(s),
                                _mm512_loadu_ps(act_sx4(x[k], n) + at4)),
            acc[k]);
    }
}

/* The quad at block b's bytes 0-63 and 56-71, as q4_quad takes them. */
#define q4_quad_load(row, b, head, tail)                                                                               \
    (head = _mm512_loadu_si512((const BlockQ4_0 *)(row) + (b)),                                                         \
     tail = _mm_loadu_si128((const __m128i *)((const char *)((const BlockQ4_0 *)(row) + (b)) + 56)))

/* A Q8_0 or Q4_0 row against NX activations, four blocks at a time into
 * two accumulators (the FMA latency); Q4_0 eight at a time while whole
 * quads last. */
static ALWAYS_INLINE void dot_q8q4_n(int pf, int q4, const void *row, const void *const *x, int NX, long n, float *out) {
    const long nb = n / QK8_0;
    __m512 acc0[4], acc1[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc0[k] = acc1[k] = _mm512_setzero_ps();
    long b = 0;
    if (q4) {
        const long end = 4 * act_nquads(n);
        __m512i h0, h1;
        __m128i t0, t1;
        for (; b + 8 <= end; b += 8) {
            /* the quants first (LOADS_FIRST, quant_internal.h) */
            q4_quad_load(row, b, h0, t0), q4_quad_load(row, b + 4, h1, t1);
            LOADS_FIRST(h0, t0, h1, t1);
            prefetch_ahead(pf, (const BlockQ4_0 *)row + b, 3); /* 144 bytes a step */
            q4_quad((const BlockQ4_0 *)row, b, h0, t0, x, n, NX, acc0);
            q4_quad((const BlockQ4_0 *)row, b + 4, h1, t1, x, n, NX, acc1);
        }
        if (b < end) q4_quad_load(row, b, h0, t0), q4_quad((const BlockQ4_0 *)row, b, h0, t0, x, n, NX, acc0), b += 4;
    }
    for (; b + 4 <= nb; b += 4) {
        if (!q4) { /* the quants and scales first (LOADS_FIRST, quant_internal.h) */
            const BlockQ8_0 *q = (const BlockQ8_0 *)row + b;
            __m512i w0 = load_q8_pair(q, 1), w1 = load_q8_pair(q + 2, 1);
            __m512i d0 = pair_scales_load(q, sizeof *q, 1), d1 = pair_scales_load(q + 2, sizeof *q, 1);
            LOADS_FIRST(w0, w1, d0, d1);
            prefetch_ahead_l2(pf, q, 3); /* 136 bytes a step, into L2 (quant_internal.h) */
            q8q4_pair_of(0, w0, pair_scales_of(d0, sizeof *q), b, 1, x, n, NX, acc0);
            q8q4_pair_of(0, w1, pair_scales_of(d1, sizeof *q), b + 2, 1, x, n, NX, acc1);
            continue;
        }
        /* <= 144 bytes; Q4_0's last blocks into L1 */
        prefetch_ahead(pf, (const BlockQ4_0 *)row + b, 3);
        q8q4_pair(q4, row, b, 1, x, n, NX, acc0);
        q8q4_pair(q4, row, b + 2, 1, x, n, NX, acc1);
    }
    if (b + 2 <= nb) q8q4_pair(q4, row, b, 1, x, n, NX, acc0), b += 2;
    if (b < nb) q8q4_pair(q4, row, b, 0, x, n, NX, acc1);
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k]));
}

/* ---- the T16 layouts: a block per int32 lane ----
 * Q4_0 and Q8_0 in groups of 16 blocks whose quants' dwords are
 * transposed (DT_Q4_0_T16, DT_Q8_0_T16, formats/dtype.h), against the
 * activation's groups (act_t16, quant_internal.h): part k of both holds
 * dword k of each of the 16 blocks, so per group and activation 8
 * VPDPBUSD leave each block's integer sum in its own lane, one conversion
 * and one FMA with the 16 scales (dw * dx, one product) take them all,
 * and the offsets' part (Q4_0's 8, Q8_0's stored + 128, times the
 * activation's block sums) is one FMA into its own accumulator. No
 * permute anywhere. Q4_0's high nibbles are dotted where they lie (AND
 * 0xF0: 16 times the value) in a chain of their own whose sum is exact
 * and a multiple of 16, shifted back by 4 before it joins the low one's:
 * one AND per part where masking them down took a shift and an AND. Per
 * group 23 vector operations on ports 0 and 5 where this dot took 27 and
 * the AVX-512 dot of DT_Q4_0_G16 (since replaced by this one) ~39; from
 * memory, one thread, the regrouped Q4_0 rows of 2048 / 4096 / 8192
 * values went from 0.89-0.92 of a plain read of the same bytes to
 * 1.00 (see docs/BENCHMARKS.md, "Decode: Q4_0's high nibbles in place").
 * Q4_K in T16 groups (DT_Q4_K_T16) is the same dot on the same activation
 * with a sub-block of 32 per lane: its scales d*sc come out of the group's
 * header (q4kt_scales16) where Q4_0's are one conversion, and its mins'
 * part, dmin*m times the block sums, is the second accumulator (taken back
 * once: no offset to multiply). Where the stored Q4_K dot took ~36 vector
 * operations per super-block, this takes ~40 per two. */
enum { T16_Q4_0, T16_Q8_0, T16_Q4_K }; /* dot_t16_n's kinds */
static ALWAYS_INLINE void dot_t16_n(int pf, int kind, const void *row, const void *const *x, int NX, long n, float *out) {
    const int q8 = kind == T16_Q8_0;
    __m512 acc[4], acco[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k] = acco[k] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15), mf0 = _mm512_set1_epi8((char)0xF0);
    const size_t gb = 16 * (q8 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0)); /* DT_Q4_K_T16's 288 too */
    const char *g = row;
    for (long b = 0; b < n / QK8_0; b += 16, g += gb) {
        /* the group's quants first: loads that lead the loop body read from
         * memory measurably faster than the same loads behind the prefetches
         * and the scales (the asm keeps gcc from moving them; it would also
         * fold Q4_0's load into both ANDs: two loads) */
        __m512i v[8];
        _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++) {
            if (p >= 4 && !q8) break;
            v[p] = _mm512_loadu_si512(g + 32 + 64 * p);
            __asm__ volatile("" : "+v"(v[p]));
        }
        prefetch_ahead_l2(pf, g, q8 ? 9 : 5); /* 544 or 288 bytes a group */
        /* the 16 blocks' scales (Q4_K: the sub-blocks' d*sc) and what
         * multiplies their sums sx: the same scales times the offset
         * (Q4_0's 8, Q8_0's 128, at the end), Q4_K's mins dmin*m */
        __m512 sc, so;
        if (kind == T16_Q4_K) q4kt_scales16(g, &sc, &so);
        else so = sc = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g));
        /* parts 0-3 the low nibbles (Q8_0: quants 0-15), 4-7 the high ones x 16 (Q8_0: 16-31) */
        __m512i w[8];
        _Pragma("GCC unroll 4") for (int p = 0; p < 4; p++) {
            w[p] = q8 ? v[p] : _mm512_and_si512(v[p], m4);
            w[4 + p] = q8 ? v[4 + p] : _mm512_and_si512(v[p], mf0);
        }
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            const int8_t *y = act_t16(x[k], n) + 32 * b; /* 512 bytes a group */
            __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], _mm512_loadu_si512(y)), s;
            if (kind == T16_Q4_K) {
                /* one chain: the high nibbles' products (x 16) on top of 16
                 * times the low ones' sum, shifted back once (exact: |16 s0|
                 * < 2^20). An instruction fewer a group, and every one in
                 * this loop costs (docs/BENCHMARKS.md, "What a decode step's
                 * instructions cost"): 1B Q4_K decode +2.3%, 5 rounds; the
                 * shorter Q4_0 loop lost 3.7% with it, so Q4_0 keeps two */
                _Pragma("GCC unroll 3") for (int p = 1; p < 4; p++) s0 = _mm512_dpbusd_epi32(s0, w[p], _mm512_loadu_si512(y + 64 * p));
                s = _mm512_slli_epi32(s0, 4);
                _Pragma("GCC unroll 4") for (int p = 4; p < 8; p++) s = _mm512_dpbusd_epi32(s, w[p], _mm512_loadu_si512(y + 64 * p));
                s = _mm512_srai_epi32(s, 4);
            } else {
                /* two chains of four: VPDPBUSD's latency, and the high nibbles' scale */
                __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[4], _mm512_loadu_si512(y + 256));
                _Pragma("GCC unroll 3") for (int p = 1; p < 4; p++) {
                    s0 = _mm512_dpbusd_epi32(s0, w[p], _mm512_loadu_si512(y + 64 * p));
                    s1 = _mm512_dpbusd_epi32(s1, w[4 + p], _mm512_loadu_si512(y + 256 + 64 * p));
                }
                s = _mm512_add_epi32(s0, q8 ? s1 : _mm512_srai_epi32(s1, 4));
            }
            __m512 dwdx = _mm512_mul_ps(sc, _mm512_loadu_ps(act_dx(x[k], n) + b));
            acc[k] = _mm512_fmadd_ps(dwdx, _mm512_cvtepi32_ps(s), acc[k]);
            acco[k] = _mm512_fmadd_ps(so, _mm512_loadu_ps(act_sx(x[k], n) + b), acco[k]);
        }
    }
    /* the offsets' part taken off lane by lane, then one sum (two sums
     * per row were ~4 operations a group of a 2048-value row) */
    const __m512 o = _mm512_set1_ps(kind == T16_Q8_0 ? 128 : kind == T16_Q4_0 ? 8 : 1);
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = _mm512_reduce_add_ps(_mm512_fnmadd_ps(o, acco[k], acc[k]));
}

/* ---- K-quants: a super-block of 256 values per step ---- */

/* Q4_K, a super-block per step: its two 64-byte halves of quants,
 * shuffled by 128-bit lanes, give registers a = bytes 0-15, 32-47, 64-79,
 * 96-111 and b = the other lanes; a's low nibbles are the first 16 values
 * of sub-blocks 0, 2, 4, 6, b's their last 16, the high nibbles the same
 * for 1, 3, 5, 7, which the activation's order (act_qk) lines up with. So
 * two pairs of VPDPBUSD give each sub-block's sum in 4 lanes (even
 * sub-blocks in one register, odd in the other), one conversion and one
 * FMA each. Sub-block j's weights are d*sc_j*q - dmin*m_j; the mins' part,
 * dmin * sum_j m_j * sx_j, is one FMA per super-block. */
static ALWAYS_INLINE void dot_q4_k_n(int pf, const BlockQ4_K *w, const void *const *x, int NX, long n, float *out) {
    __m512 acc[4][2];
    __m256 accm[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k][0] = acc[k][1] = _mm512_setzero_ps(), accm[k] = _mm256_setzero_ps();
    for (long i = 0; i < n / QK_K; i++) {
        /* the quants first (LOADS_FIRST, quant_internal.h) */
        __m512i h0 = _mm512_loadu_si512(w[i].qs), h1 = _mm512_loadu_si512(w[i].qs + 64);
        LOADS_FIRST(h0, h1);
        prefetch_ahead_l2(pf, &w[i], 3); /* 144 bytes a super-block */
        __m256 scv, mnv;
        kq45_scales16(&w[i], &scv, &mnv);
        __m512i q[4];
        kq45_nibbles(h0, h1, q);
        kq45_wide_step(q[0], q[1], q[2], q[3], scv, mnv, x, NX, n, i, acc, accm);
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        __m256 m = accm[k];
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[k][0], acc[k][1])) - _mm_cvtss_f32(s);
    }
}

/* Q6_K: the low nibbles of ql[64h..64h+63] are elements 128h..128h+63 in
 * order, the high nibbles elements 128h+64..127; the two high bits of each
 * come from qh[32h..32h+31] (bits 0-1, 2-3 for the first 64, 4-5, 6-7 for
 * the others), shifted within 64-bit lanes straight to bits 4-5 (the mask
 * after the shift keeps each byte's own bits). The quants (0..63) are dotted
 * unsigned; w = d*sc_g*(q - 32) per group g of 16, so the offset comes off
 * once per super-block through the activation's half-block sums. Each
 * int32 lane of a product covers 4 values: lane L of part p (64 values)
 * belongs to group 4p + L/4. */
static ALWAYS_INLINE void dot_q6_k_n(int pf, const BlockQ6_K *w, const void *const *x, int NX, long n, float *out) {
    __m512 acc[4][2], acco[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) acc[k][0] = acc[k][1] = acco[k] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    /* group g of 16 lies in activation block g / 2 */
    const __m512i blk = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (long i = 0; i < n / QK_K; i++) {
        /* the quants first (LOADS_FIRST, quant_internal.h): in the decode
         * of llama-3.2-1b Q6_K, 84% of the bound -> 92-93% */
        __m512i qlv[2] = {_mm512_loadu_si512(w[i].ql), _mm512_loadu_si512(w[i].ql + 64)};
        __m512i qhv = _mm512_loadu_si512(w[i].qh);
        LOADS_FIRST(qlv[0], qlv[1], qhv);
        prefetch_ahead_l2(pf, &w[i], 4); /* 210 bytes a super-block */
        __m512 sc16 = _mm512_mul_ps(_mm512_set1_ps(half(w[i].d)),
                                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)w[i].scales))));
        __m512 s[4];
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            __m512 dx8 = _mm512_castps256_ps512(_mm256_loadu_ps(act_dx(x[k], n) + 8 * i));
            s[k] = _mm512_mul_ps(sc16, _mm512_permutexvar_ps(blk, dx8)); /* lane g: d * sc_g * dx */
            acco[k] = _mm512_fmadd_ps(sc16, _mm512_loadu_ps(act_s16(x[k], n) + 16 * i), acco[k]);
        }
        for (int h = 0; h < 2; h++) {
            __m512i ql = qlv[h];
            __m512i qh = h ? _mm512_shuffle_i64x2(qhv, qhv, 0xEE) : _mm512_shuffle_i64x2(qhv, qhv, 0x44);
            __m512i hi01 = _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2)), m30);
            __m512i hi23 = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2)), m30);
            __m512i q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), hi01);
            __m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), hi23);
            const __m512i g01 = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                                 _mm512_set1_epi32(8 * h));
            const __m512i g23 = _mm512_add_epi32(g01, _mm512_set1_epi32(4));
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                const int8_t *y = act_q(x[k]) + QK_K * i + 128 * h;
                __m512 p01 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q01, _mm512_loadu_si512(y)));
                __m512 p23 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q23, _mm512_loadu_si512(y + 64)));
                acc[k][0] = _mm512_fmadd_ps(_mm512_permutexvar_ps(g01, s[k]), p01, acc[k][0]);
                acc[k][1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(g23, s[k]), p23, acc[k][1]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++)
        out[k] = _mm512_reduce_add_ps(_mm512_add_ps(acc[k][0], acc[k][1])) - 32 * _mm512_reduce_add_ps(acco[k]);
}

static ALWAYS_INLINE void dot4_pf(int pf, int t, const void *row, const void *const act[4], long n, float out[4]) {
    switch (t) {
    case DT_Q8_0: dot_q8q4_n(pf, 0, row, act, 4, n, out); break;
    case DT_Q4_0: dot_q8q4_n(pf, 1, row, act, 4, n, out); break;
    case DT_Q4_0_T16: dot_t16_n(pf, T16_Q4_0, row, act, 4, n, out); break;
    case DT_Q8_0_T16: dot_t16_n(pf, T16_Q8_0, row, act, 4, n, out); break;
    case DT_Q4_K_T16: dot_t16_n(pf, T16_Q4_K, row, act, 4, n, out); break;
    case DT_Q4_1:
    case DT_Q5_0:
    case DT_Q5_1:
    case DT_IQ4_NL: legacy512_dot_n(t, row, act, 4, n, out); break;
    case DT_Q4_K: dot_q4_k_n(pf, row, act, 4, n, out); break;
    case DT_Q6_K: dot_q6_k_n(pf, row, act, 4, n, out); break;
    case DT_Q2_K: case DT_Q3_K: case DT_Q5_K: case DT_IQ4_XS: kquant512_dot_n(t, row, act, 4, n, out); break;
    default: out[0] = out[1] = out[2] = out[3] = 0; break;
    }
}

void quant512_dot4(int t, const void *row, const void *const act[4], long n, float out[4]) {
    WITH_PREFETCH_MODE(dot4_pf(pf, t, row, act, n, out));
}

/* The type's dot of one row with NX activations (a constant: the kernels
 * keep NX accumulators in registers), for each of nrows rows. */
#define ROWS_NX(NX)                                                                                                    \
    for (int r = 0; r < nrows; r++) {                                                                                  \
        float o[4];                                                                                                    \
        const char *row = w + r * rb;                                                                                  \
        switch (t) {                                                                                                   \
        case DT_Q8_0: dot_q8q4_n(pf, 0, row, act, NX, n, o); break;                                                        \
        case DT_Q4_0: dot_q8q4_n(pf, 1, row, act, NX, n, o); break;                                                        \
        case DT_Q4_0_T16: dot_t16_n(pf, T16_Q4_0, row, act, NX, n, o); break;                                                     \
        case DT_Q8_0_T16: dot_t16_n(pf, T16_Q8_0, row, act, NX, n, o); break;                                                     \
        case DT_Q4_K_T16: dot_t16_n(pf, T16_Q4_K, row, act, NX, n, o); break;                                                     \
        case DT_Q4_1:                                                                                                  \
        case DT_Q5_0:                                                                                                  \
        case DT_Q5_1:                                                                                                  \
        case DT_IQ4_NL: legacy512_dot_n(t, row, act, NX, n, o); break;                                                 \
        case DT_Q4_K: dot_q4_k_n(pf, (const BlockQ4_K *)row, act, NX, n, o); break;                                        \
        case DT_Q6_K: dot_q6_k_n(pf, (const BlockQ6_K *)row, act, NX, n, o); break;                                        \
        case DT_Q2_K: case DT_Q3_K: case DT_Q5_K: case DT_IQ4_XS: kquant512_dot_n(t, row, act, NX, n, o); break;          \
        default: o[0] = o[1] = o[2] = o[3] = 0; break;                                                                 \
        }                                                                                                              \
        for (int k = 0; k < NX; k++) out[k * out_stride + r] = o[k];                                                   \
    }

static ALWAYS_INLINE void rows_n_pf(int pf, int t, const void *rows, size_t rb, int nrows, const void *const *act,
                                   int nx, long n, float *out, size_t out_stride) {
    const char *w = rows;
    switch (nx) {
    case 1: ROWS_NX(1) break;
    case 2: ROWS_NX(2) break;
    case 3: ROWS_NX(3) break;
    default: ROWS_NX(4) break;
    }
}

void quant512_rows_n(int t, const void *rows, size_t rb, int nrows, const void *const *act, int nx, long n, float *out,
                     size_t out_stride) {
    WITH_PREFETCH_MODE(rows_n_pf(pf, t, rows, rb, nrows, act, nx, n, out, out_stride));
}

static ALWAYS_INLINE void rows_pf(int pf, int t, const void *rows, size_t rb, int nrows, const void *act, long n,
                                 float *out) {
    const char *w = rows;
    const void *x[1] = {act};
    switch (t) {
    case DT_Q8_0: for (int r = 0; r < nrows; r++) dot_q8q4_n(pf, 0, w + r * rb, x, 1, n, out + r); break;
    case DT_Q4_0: /* into L2 on Intel (dispatch.h, kernel_prefetch_intel) */
        if (PF_INTEL_L2(pf))
            for (int r = 0; r < nrows; r++) dot_q8q4_n(2, 1, w + r * rb, x, 1, n, out + r);
        else
            for (int r = 0; r < nrows; r++) dot_q8q4_n(pf, 1, w + r * rb, x, 1, n, out + r);
        break;
    case DT_Q4_0_T16: for (int r = 0; r < nrows; r++) dot_t16_n(pf, T16_Q4_0, w + r * rb, x, 1, n, out + r); break;
    case DT_Q8_0_T16: for (int r = 0; r < nrows; r++) dot_t16_n(pf, T16_Q8_0, w + r * rb, x, 1, n, out + r); break;
    case DT_Q4_K_T16: for (int r = 0; r < nrows; r++) dot_t16_n(pf, T16_Q4_K, w + r * rb, x, 1, n, out + r); break;
    case DT_Q4_1:
    case DT_Q5_0:
    case DT_Q5_1:
    case DT_IQ4_NL: for (int r = 0; r < nrows; r++) legacy512_dot_n(t, w + r * rb, x, 1, n, out + r); break;
    case DT_Q4_K: for (int r = 0; r < nrows; r++) dot_q4_k_n(pf, (const BlockQ4_K *)(w + r * rb), x, 1, n, out + r); break;
    case DT_Q6_K: for (int r = 0; r < nrows; r++) dot_q6_k_n(pf, (const BlockQ6_K *)(w + r * rb), x, 1, n, out + r); break;
    case DT_Q2_K: case DT_Q3_K: case DT_Q5_K: case DT_IQ4_XS:
        for (int r = 0; r < nrows; r++) kquant512_dot_n(t, w + r * rb, x, 1, n, out + r);
        break;
    default: for (int r = 0; r < nrows; r++) out[r] = 0; break;
    }
}

void quant512_rows(int t, const void *rows, size_t rb, int nrows, const void *act, long n, float *out) {
    WITH_PREFETCH_MODE(rows_pf(pf, t, rows, rb, nrows, act, n, out));
}
#endif
