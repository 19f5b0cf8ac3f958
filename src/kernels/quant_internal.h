/* quant_internal: what quant.c (dispatch, references, AVX2) and
 * quant_avx512.c share: the layout of a quantised activation and the
 * AVX-512 entry points. Not part of the kernels' interface. */
#ifndef ALOE_KERNELS_QUANT_INTERNAL_H
#define ALOE_KERNELS_QUANT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formats/dtype.h"

/* The activation of quantised weights (kernel_quantize_act), for n values
 * in nb = n/32 blocks:
 *   int8 q[n]          the quants, Q8_0's blocks of 32 one after another,
 *                      padded to a multiple of 64 bytes (so that the wide
 *                      kernels load two blocks with one instruction); for
 *                      Q8_0 weights stored + 128 as unsigned bytes, so that
 *                      VPDPBUSD multiplies them (unsigned) by the signed
 *                      weights directly, less 128 times the weights' sum
 *                      (act_quant reads them back);
 *   float dx[nb]       each block's scale (rounded to f16, as Q8_0 stores it);
 *   float sx[nb]       dx * the sum of the block's quants;
 *   float s16[2 nb]    the same for each half of 16;
 *   float dxx[8 nb]    dx, each repeated 8 times, and
 *   float sxx[8 nb]    sx the same way: a pair of blocks' values as one
 *                      16-lane vector (lanes 0-7 block b, 8-15 block b+1),
 *                      as the wide kernels' products come, with one load
 *                      instead of a permute.
 * The sums serve the dots whose weights carry an offset (Q4_0's 8, Q4_K's
 * mins, Q6_K's 32): computed once per matmul, they cost nothing per row.
 * The whole is a multiple of 64 bytes, so a batch of activations stays
 * aligned. */
static inline size_t act_qbytes(long n) { return ((size_t)n + 63) & ~(size_t)63; }
static inline size_t act_total_bytes(long n) {
    return act_qbytes(n) + ((20 * (size_t)(n / QK8_0) * sizeof(float) + 63) & ~(size_t)63);
}
static inline const int8_t *act_q(const void *a) { return (const int8_t *)a; }
static inline const float *act_dx(const void *a, long n) {
    return (const float *)((const char *)a + act_qbytes(n));
}
static inline const float *act_sx(const void *a, long n) { return act_dx(a, n) + n / QK8_0; }
static inline const float *act_s16(const void *a, long n) { return act_dx(a, n) + 2 * (n / QK8_0); }
/* Quant i of an activation for weights of weight_type, as a signed value.
 * (Written as an XOR back to int8, not as (uint8) - 128: gcc 12 at -O2
 * -march=native vectorises a dot with the latter into wrong results.) */
static inline int act_quant(int weight_type, const int8_t *q, long i) {
    return weight_type == DT_Q8_0 ? (int8_t)((uint8_t)q[i] ^ 0x80) : q[i];
}
static inline const float *act_dxx(const void *a, long n) { return act_dx(a, n) + 4 * (n / QK8_0); }
static inline const float *act_sxx(const void *a, long n) { return act_dx(a, n) + 12 * (n / QK8_0); }

/* For Q4_0 weights (and Q4_1, Q5_0, Q5_1, IQ4_NL: act_has_quads) the
 * activation goes on (after act_total_bytes) with the first 4 nq blocks
 * (nq = nb / 4 quads) once more, in the order of the wide Q4_0 dot, which
 * takes four blocks per register, one per 128-bit lane:
 *   int8 q4[128 nq]    per quad of blocks: the first 16 quants of each of
 *                      its 4 blocks, then the last 16 of each (a Q4_0
 *                      block's low nibbles are elements 0-15, its high ones
 *                      16-31, so one AND and one shift line 64 bytes of
 *                      weights up with each half);
 *   float dx4[16 nq]   each block's dx repeated 4 times (its 4 lanes), and
 *   float sx4[16 nq]   2 sx the same way (the 4 lanes take 8 sx in all).
 * The last nb % 4 blocks are read from the common layout. Written in every
 * build (one layout), read by the AVX-512 and the AVX2 dots (the latter
 * takes two blocks a 256-bit register: 32 of the 64 bytes). */
static inline long act_nquads(long n) { return n / QK8_0 / 4; }
static inline size_t act_q4_bytes(long n) { return 256 * (size_t)act_nquads(n); }
static inline const int8_t *act_q4(const void *a, long n) { return (const int8_t *)a + act_total_bytes(n); }
static inline const float *act_dx4(const void *a, long n) {
    return (const float *)(act_q4(a, n) + 128 * act_nquads(n));
}
static inline const float *act_sx4(const void *a, long n) { return act_dx4(a, n) + 16 * act_nquads(n); }

/* After the quads, the first 16 ng blocks (ng = nb / 16 groups) once more
 * for the prefill's group micro-kernel (gemm_q.c), which gives each block
 * of 16 its own int32 lane: per group, 8 x 64 bytes, part k < 4 holding
 * in lane b quants 4k..4k+3 of block b, part 4 + k quants 16+4k..16+4k+3
 * (the low and the high nibbles of bytes 4k..4k+3 of a Q4_0 block). */
static inline long act_ngroups(long n) { return n / QK8_0 / 16; }
static inline const int8_t *act_t16(const void *a, long n) { return act_q4(a, n) + act_q4_bytes(n); }

/* Whether weights of type t take the quads above and the groups of the
 * prefill: Q4_0 as stored and regrouped (DT_Q4_0_G4, DT_Q4_0_G16,
 * DT_Q4_0_T16, formats/dtype.h). The T16 layouts' decode dot reads the
 * groups too (act_has_t16: DT_Q8_0_T16 and DT_Q4_K_T16 as well, whose
 * activation is then signed, as Q4_0's). The types of quant_legacy.c (Q4_1, Q5_0, Q5_1,
 * IQ4_NL), whose blocks lay out their nibbles as Q4_0's, take the quads
 * only (act_has_quads): their AVX2 dot reads two blocks a register. */
static inline int act_has_q4(int t) { return dtype_q4_0_group_blocks(t) > 0; }
static inline int act_has_t16(int t) { return act_has_q4(t) || dtype_is_t16(t); }
static inline int quant_legacy_type(int t) {
    return t == DT_Q4_1 || t == DT_Q5_0 || t == DT_Q5_1 || t == DT_IQ4_NL || dtype_legacy_g4_base(t);
}
static inline int act_has_quads(int t) { return act_has_t16(t) || quant_legacy_type(t); }

/* Block i of a Q4_0 row of layout t (dtype_q4_0_group_blocks: as stored,
 * or in groups of 4 or 16): its 16 bytes of nibbles, in place or (T16,
 * whose blocks are spread over four parts) gathered into buf, and its f16
 * scale in *d. */
static inline const uint8_t *q4_0_block(int t, const void *row, long i, uint16_t *d, uint8_t buf[16]) {
    if (t == DT_Q4_0_T16) {
        *d = dtype_t16_block(t, (const uint8_t *)row + (size_t)(i >> 4) * 16 * sizeof(BlockQ4_0), (int)(i & 15), buf);
        return buf;
    }
    const int g = dtype_q4_0_group_blocks(t);
    const int lg = g == 16 ? 4 : g == 4 ? 2 : 0; /* shifts, not divisions, where g is not a constant */
    const long j = i & (g - 1);
    const uint8_t *p = (const uint8_t *)row + (size_t)(i >> lg) * g * sizeof(BlockQ4_0);
    memcpy(d, p + 2 * j, 2);
    return p + 2 * g + 16 * j;
}

/* For Q4_K and Q5_K weights (n a multiple of 256) the activation goes on instead
 * with its quants once more, each super-block of 256 in the order of the
 * wide Q4_K dot: the first 16 of sub-blocks 0, 2, 4, 6, then their last 16,
 * then the same for sub-blocks 1, 3, 5, 7. (A Q4_K super-block's 128 bytes
 * of quants hold sub-block 2j in the low nibbles of bytes 32j..32j+31 and
 * 2j+1 in the high ones: two 128-bit lane shuffles of its two 64-byte
 * halves give registers whose nibbles, masked or shifted, line up with
 * these 64-byte parts, four lanes per sub-block.) */
static inline size_t act_qk_bytes(long n) { return n % QK_K ? 0 : (size_t)n; }
/* The types whose activation has that order: the wide Q4_K / Q5_K dots
 * (AVX-512) and the two in pairs (AVX2; formats/dtype.h). */
static inline int act_has_qk(int t) { return t == DT_Q4_K || t == DT_Q5_K || dtype_k_pairs_base(t); }
static inline const int8_t *act_qk(const void *a, long n) { return (const int8_t *)a + act_total_bytes(n); }

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Loops over the NX activations of the quantised dots: unrolled, so that
 * their accumulators stay in registers (gcc 12 otherwise kept them on the
 * stack for NX = 4: a store-to-load chain per block, four activations
 * costing ~5x one). */
#define UNROLL_NX _Pragma("GCC unroll 4")

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>

/* Each loop step of the row dots first asks for the bytes PREFETCH_AHEAD
 * further on (`lines` cache lines, covering what a step reads): into L1
 * (T0, prefetch_ahead) or into L2 (T1, prefetch_ahead_l2), whichever was
 * measured faster for that kernel; ALOE_PREFETCH=l1|l2|off puts every
 * kernel on one (dispatch.h). On two cores streaming from memory the
 * hardware prefetcher alone left the quantised dots short: Q4_0 went from
 * 39 to 44 GB/s with T0 at 8 KB (4 and 16 KB gave less; one burst per
 * row, nothing), batched decode from 178-188 to 223-226 tokens/s
 * (qwen2.5-0.5b -b 8 Q8_0), -b 4 Q4_0 +7-12%, llama-3.2-1b -b 4 Q4_K
 * +19-27%. Into L2 instead (bench/prefetch_ab: one 256 MB matrix, 2
 * threads, the modes alternating call by call so that the host's moving
 * bandwidth weighs on each alike), against T0, on the Zen 4 this was tuned
 * on: the AVX-512 dots of BF16 1.20x, F16 1.30x, F32 1.11x, Q4_0 regrouped
 * 1.14x, Q8_0 1.04-1.11x, Q4_K 1.03x, Q5_K 1.14x, Q6_K 1.07x, and the
 * bandwidth probe (stream.c) 1.07-1.10x, where the 16-bit rows had lost
 * with T0; but the stored Q4_0 quads 0.72x, Q2_K/Q3_K/IQ4_XS/Q5_1/IQ4_NL
 * 0.90-0.94x, and at the avx2 level Q8_0/Q4_0 0.68x (the others there
 * 0.95-1.03x): those keep T0. 8-24 KB ahead all alike. Prefetches past a
 * matrix's end are harmless. */
#define PREFETCH_AHEAD 8192
/* The kernels' loops take the mode as pf, a constant in the default's
 * copy: every exported function that prefetches runs its body through
 * WITH_PREFETCH_MODE. A test of kernel_prefetch_mode in the loops (as it was) left
 * the loads behind the prefetches' branches and their addresses in
 * registers of their own, and cost the regrouped Q4_0 dot from memory 8%
 * of its speed and Q5_K's 20% on an Intel Xeon (AMX): 0.89 and 0.68 of a
 * plain read of the same bytes, 0.97 and 0.89 without it. */
static ALWAYS_INLINE void prefetch_lines(int pf, const void *p, int lines, int l2) {
    if (pf == 0 /* KPF_OFF */) return;
    if (pf == 2 /* KPF_L2 */ || (l2 && pf == 3 /* KPF_AUTO */))
        _Pragma("GCC unroll 16") for (int i = 0; i < lines; i++) _mm_prefetch((const char *)p + PREFETCH_AHEAD + 64 * i, _MM_HINT_T1);
    else
        _Pragma("GCC unroll 16") for (int i = 0; i < lines; i++) _mm_prefetch((const char *)p + PREFETCH_AHEAD + 64 * i, _MM_HINT_T0);
}
static ALWAYS_INLINE void prefetch_ahead(int pf, const void *p, int lines) { prefetch_lines(pf, p, lines, 0); }

/* A step's weight loads first, before its prefetches and the rest: the
 * empty asm takes the loaded registers, so gcc emits the loads ahead of
 * everything after it (and cannot fold them into later instructions).
 * From memory the loads leading the step read faster than the same loads
 * behind the prefetches and the scales' arithmetic, as gcc had scheduled
 * them: in the decode of llama-3.2-1b on an Intel Xeon (AMX, 2 threads,
 * `aloe speed`'s bound in the same run), Q6_K 84% -> 92-93%, and with the
 * constant prefetch mode Q4_0 (T16) 83-86% -> 87-89%, Q4_K 76% -> 86%. */
#define LF_CAT2(a, b) a##b
#define LF_CAT(a, b) LF_CAT2(a, b)
#define LF_COUNT(_1, _2, _3, _4, N, ...) N
#define LOADS_FIRST(...) LF_CAT(LOADS_FIRST_, LF_COUNT(__VA_ARGS__, 4, 3, 2, 1))(__VA_ARGS__)
#define LOADS_FIRST_1(a) __asm__ volatile("" : "+v"(a))
#define LOADS_FIRST_2(a, b) __asm__ volatile("" : "+v"(a), "+v"(b))
#define LOADS_FIRST_3(a, b, c) __asm__ volatile("" : "+v"(a), "+v"(b), "+v"(c))
#define LOADS_FIRST_4(a, b, c, d) __asm__ volatile("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d))
static ALWAYS_INLINE void prefetch_ahead_l2(int pf, const void *p, int lines) { prefetch_lines(pf, p, lines, 1); }
#endif

extern int kernel_prefetch_mode; /* dispatch.h: KPF_AUTO unless ALOE_PREFETCH says otherwise */
extern int kernel_prefetch_intel_on; /* dispatch.h, kernel_prefetch_intel */
/* The mode a dot that auto sends into L1 on AMD and into L2 on Intel
 * (kernel_prefetch_intel) runs in: for a test outside its loops, each arm
 * a call with the mode a constant. */
#define PF_INTEL_L2(pf) ((pf) == 3 && kernel_prefetch_intel_on)
/* Runs the statement(s) with `pf` the prefetch mode (dispatch.h's
 * KPF_OFF 0, KPF_L1 1, KPF_L2 2, KPF_AUTO 3): a constant in the copy the
 * default (auto) runs, the variable in the one the other modes share,
 * whose loops test it at each step as every mode's once did (so
 * bench/prefetch_ab's l1 / l2 / off pay that test against auto). Two
 * copies, not one per mode: four made the kernel sources 3.7x slower to
 * compile and CI's mutation stage (incremental rebuilds of them) 2.5x
 * longer, 29 minutes in all. */
#define WITH_PREFETCH_MODE(...)                                                                                        \
    do {                                                                                                               \
        if (kernel_prefetch_mode == 3) {                                                                               \
            const int pf = 3;                                                                                          \
            __VA_ARGS__;                                                                                               \
        } else {                                                                                                       \
            const int pf = kernel_prefetch_mode;                                                                       \
            __VA_ARGS__;                                                                                               \
        }                                                                                                              \
    } while (0)

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
/* The sum of the 4 floats of s, of the 8 of v (every AVX2 dot ends with
 * it). */
static inline float hsum4(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float hsum8(__m256 v) { return hsum4(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))); }

/* Element j (a constant, 0-3) of each 128-bit lane of v in all four of
 * that lane's elements: one in-lane shuffle (vshufps), where broadcasting
 * one element of eight takes a lane-crossing permute, which costs more:
 * on a Zen 3 the AVX2 Q6_K dot in cache 30.8-31.5 -> 28.6-29.5 us
 * (build/bench/matvec_speed 1 256 2048 1 q6_k, twelve runs alternating). */
static ALWAYS_INLINE __m256 bcast_in_lanes(__m256 v, int j) {
    return j == 0   ? _mm256_shuffle_ps(v, v, 0x00)
           : j == 1 ? _mm256_shuffle_ps(v, v, 0x55)
           : j == 2 ? _mm256_shuffle_ps(v, v, 0xaa)
                    : _mm256_shuffle_ps(v, v, 0xff);
}

/* Super-block i of the AVX2 Q4_K / Q5_K dots in pairs (quant.c,
 * quant_kquant.c), for each of NX activations: its eight sub-block scales
 * (scv) times its dx, permuted into the pairs' order (lane p: pair p's
 * first sub-block, 4 + p: its second) for bcast_in_lanes, the mins' part
 * (mnv times its sx) added into accm, and its quants of the super-block. */
static ALWAYS_INLINE void kpairs_superblock(__m256 scv, __m256 mnv, const float *const dx[4], const float *const sx[4],
                                            const int8_t *const x[4], long i, int NX, __m256 sd[4], __m256 accm[4],
                                            const int8_t *xi[4]) {
    const __m256i to_pairs = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        sd[k] = _mm256_permutevar8x32_ps(_mm256_mul_ps(scv, _mm256_loadu_ps(dx[k] + 8 * i)), to_pairs);
        accm[k] = _mm256_fmadd_ps(mnv, _mm256_loadu_ps(sx[k] + 8 * i), accm[k]);
        xi[k] = x[k] + QK_K * i;
    }
}

/* The eight sub-block scales of a super-block (lane j: sub-block j) as
 * two vectors whose lanes each hold sub-blocks 0-3 (h[0]) or 4-7 (h[1]),
 * for bcast_in_lanes; then times an activation's eight dx (sv_times_dx). */
static ALWAYS_INLINE void sv_halves(__m256 sc, __m256 h[2]) {
    h[0] = _mm256_permute2f128_ps(sc, sc, 0x00);
    h[1] = _mm256_permute2f128_ps(sc, sc, 0x11);
}
static ALWAYS_INLINE void sv_times_dx(const __m256 h[2], const float *dx, __m256 sv[2]) {
    sv[0] = _mm256_mul_ps(h[0], _mm256_broadcast_ps((const __m128 *)dx));
    sv[1] = _mm256_mul_ps(h[1], _mm256_broadcast_ps((const __m128 *)(dx + 4)));
}

/* Sums of u*s over groups of four bytes (u unsigned, s signed) as 8 int32
 * lanes. Without VNNI, maddubs adds pairs into int16 with saturation: the
 * caller keeps 2*max(u)*max|s| below 32767 (its bound is written there). */
static inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}
#endif

/* The block scales are converted twice per 32 values in the dot loops: use
 * the F16C instruction where there is one rather than a function call. */
static inline float half(uint16_t h) {
#ifdef __F16C__
    return _cvtsh_ss(h);
#else
    return f16_to_f32(h);
#endif
}

#if defined(__AVX2__)

/* Block j (0-3) of a group of Q4_1 / Q5_0 / Q5_1 / IQ4_NL regrouped in
 * fours (base: the stored type; the layout: formats/dtype.h) at grp: its
 * 32 quants (0..31; IQ4_NL: grid indices 0..15) in element order, its d,
 * and its m (Q4_1, Q5_1; else 0). Q5's elements 0-15 take bit 4h + l of
 * each byte of the plane (h = j / 2, l = j % 2), 16-31 the bit two above,
 * moved to bit 4 (shifted to bit 0 and masked, then up by 4: 16-bit shifts
 * carry nothing across a byte once masked). For the prefill's packing and
 * the row dequantisation; the decode dot reads pairs (quant_legacy.c). */
static inline __m256i legacy_g4_quants(int base, const uint8_t *grp, int j, float *d, float *m) {
    const int has_m = dtype_legacy_has_m(base);
    uint16_t f[2] = {0, 0};
    memcpy(&f[0], grp + 2 * j, 2);
    if (has_m) memcpy(&f[1], grp + 8 + 2 * j, 2);
    *d = half(f[0]), *m = has_m ? half(f[1]) : 0;
    const __m128i one = _mm_set1_epi8(1), m4 = _mm_set1_epi8(15);
    __m128i v = _mm_loadu_si128((const __m128i *)(grp + dtype_legacy_g4_nibbles_at(base) + 16 * j));
    __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
    if (dtype_legacy_has_qh(base)) {
        __m128i p = _mm_loadu_si128((const __m128i *)(grp + dtype_legacy_g4_plane_at(base)));
        const int b = 4 * (j / 2) + j % 2;
        lo = _mm_or_si128(lo, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(p, _mm_cvtsi32_si128(b)), one), 4));
        hi = _mm_or_si128(hi, _mm_slli_epi16(_mm_and_si128(_mm_srl_epi16(p, _mm_cvtsi32_si128(b + 2)), one), 4));
    }
    return _mm256_set_m128i(hi, lo);
}

/* The 6-bit scales (lanes 0-7 of *sc) and mins (*mn) of a Q4_K block as
 * int32 lanes, unpacked four at a time from the 12 packed bytes (the
 * layout q4k_scale_min reads one at a time). */
static ALWAYS_INLINE void q4k_scales8(const uint8_t *s, __m256i *sc, __m256i *mn) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4), memcpy(&u1, s + 4, 4), memcpy(&u2, s + 8, 4);
    uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    *sc = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)((uint64_t)sc_hi << 32 | sc_lo)));
    *mn = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)((uint64_t)mn_hi << 32 | mn_lo)));
}


/* The sub-block scales d*sc_j (lane j of *scv) and mins dmin*m_j (*mnv) of
 * a Q4_K or Q5_K block (the same d, dmin and 12 packed bytes) as floats,
 * computed in registers: a scalar loop that stores them to an array and
 * loads the array as a vector stalls on store forwarding (it made Q5_K's
 * decode a third of Q4_K's speed). */
static ALWAYS_INLINE void kq_scale_vectors(uint16_t d, uint16_t dmin, const uint8_t *scales, __m256 *scv,
                                           __m256 *mnv) {
    __m256i sci, mni;
    q4k_scales8(scales, &sci, &mni);
    *scv = _mm256_mul_ps(_mm256_set1_ps(half(d)), _mm256_cvtepi32_ps(sci));
    *mnv = _mm256_mul_ps(_mm256_set1_ps(half(dmin)), _mm256_cvtepi32_ps(mni));
}
static ALWAYS_INLINE void q4k_scale_vectors(const BlockQ4_K *b, __m256 *scv, __m256 *mnv) {
    kq_scale_vectors(b->d, b->dmin, b->scales, scv, mnv);
}
#endif

/* quant_kquant.c: Q2_K, Q3_K, Q5_K, IQ4_XS rows against this activation.
 * kquant_is: one of those types; kquant_dot_ref: the plain dot (reads the
 * Q8_0 blocks only); kquant_dot_n: the fast dot of one row with nx (1 to
 * 4) activations, out[k] for act[k]. */
int kquant_is(int t);
float kquant_dot_ref(int t, const void *row, const void *act, long n);
void kquant_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out);

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__) && \
    defined(__F16C__)
#define KERNELS_AVX512 1
/* Dots of a row of quantised type t (Q8_0, Q4_0, Q4_K, Q6_K) with four
 * activations (out[k] for act[k]), and of nrows consecutive rows (rb bytes
 * apart; one row: rb unused) with one activation: vec_dot_multi and
 * vec_dot_rows for these types. */
void quant512_dot4(int t, const void *row, const void *const act[4], long n, float out[4]);
void quant512_rows(int t, const void *rows, size_t rb, int nrows, const void *act, long n, float *out);
/* nrows rows against nx (1 to 4) activations: out[k * out_stride + r]. */
void quant512_rows_n(int t, const void *rows, size_t rb, int nrows, const void *const *act, int nx, long n, float *out,
                     size_t out_stride);
/* kquant_dot_n's AVX-512 version (quant_kquant.c). */
void kquant512_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out);

/* A Q4_K or Q5_K super-block's sub-block scales d*sc_j (*scv, lane j) and
 * mins dmin*m_j (*mnv) from its first 16 bytes (d, dmin, the 12 packed
 * bytes of 6-bit scales and mins: the same in both types), unpacked in
 * vector registers: two byte shuffles line up the low and high bits of all
 * 16 values (the layout q4k_scale_min reads one at a time). Per
 * super-block this replaces ~25 scalar and vector instructions that cost
 * as much as the dots themselves. */
static ALWAYS_INLINE void kq45_scales16(const void *blk, __m256 *scv, __m256 *mnv) {
    __m128i v = _mm_loadu_si128((const __m128i *)blk); /* scale byte S_i at 4 + i */
    /* low bits: sc 0-3 from S0-3, sc 4-7 from S8-11 (low nibbles), mins
     * 0-3 from S4-7, mins 4-7 from S8-11 (high nibbles) */
    __m128i lo = _mm_shuffle_epi8(v, _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
    lo = _mm_mask_blend_epi8((__mmask16)0xf000, lo, _mm_srli_epi16(lo, 4));
    lo = _mm_and_si128(lo, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
    /* high 2 bits of sc 4-7 (top of S0-3) and mins 4-7 (top of S4-7) */
    __m128i hi = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
    hi = _mm_and_si128(_mm_srli_epi16(hi, 2), _mm_set1_epi8(0x30));
    __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_or_si128(lo, hi)));
    __m512 dd = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                      _mm512_castps128_ps512(_mm_cvtph_ps(v))); /* d x 8, dmin x 8 */
    f = _mm512_mul_ps(f, dd);
    *scv = _mm512_castps512_ps256(f);
    *mnv = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
}

/* A DT_Q4_K_T16 group's (formats/dtype.h) 16 sub-block scales d*sc_i
 * (*scv, lane i) and mins dmin*m_i (*mnv) from its header: the 32 6-bit
 * fields of bytes 8-31 to 32 bytes (scales, then mins), those to floats
 * times d and dmin. With VBMI a byte permute gives qword k the 8 bytes
 * that hold fields 8k..8k+7 (header bytes 8 + 6k on) and one multishift
 * takes each field to its byte; without, each 128-bit lane loads those
 * bytes, a byte shuffle gives each field a 16-bit window and a shift per
 * word brings it down. (The stored Q4_K packing took ~12 operations per
 * super-block, and this layout's first packing ~19 per group: the T16
 * Q4_K decode then ran 7% slower than with no header at all.) */
static ALWAYS_INLINE void q4kt_scales16(const void *group, __m512 *scv, __m512 *mnv) {
    const char *g = group;
#if defined(__AVX512VBMI__)
    const __m256i idx = _mm256_setr_epi8(8, 9, 10, 11, 12, 13, 14, 15, 14, 15, 16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24,
                                         25, 26, 27, 26, 27, 28, 29, 30, 31, 0, 0); /* the last two unused */
    const __m256i at = _mm256_set1_epi64x(0x2A241E18120C0600LL);                 /* bits 0, 6, ..., 42 */
    const __m256i f = _mm256_and_si256(
        _mm256_multishift_epi64_epi8(at, _mm256_permutexvar_epi8(idx, _mm256_loadu_si256((const __m256i *)g))),
        _mm256_set1_epi8(63));
#else
    /* lane L: header bytes 8 + 6L.. (fields 8L..8L+7 in its first 7 bytes;
     * the loads reach byte 42, inside the group's 288) */
    __m512i w = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(g + 8)));
    w = _mm512_inserti32x4(w, _mm_loadu_si128((const __m128i *)(g + 14)), 1);
    w = _mm512_inserti32x4(w, _mm_loadu_si128((const __m128i *)(g + 20)), 2);
    w = _mm512_inserti32x4(w, _mm_loadu_si128((const __m128i *)(g + 26)), 3);
    /* field j of a lane: bits 6j.. = byte 6j / 8 shifted by 6j % 8 */
    const __m512i pick = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 0, 1, 1, 2, 2, 3, 3, 4, 3, 4, 4, 5, 5, 6));
    const __m512i sh = _mm512_broadcast_i32x4(_mm_setr_epi16(0, 6, 4, 2, 0, 6, 4, 2));
    const __m256i f = _mm512_cvtepi16_epi8(
        _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_epi8(w, pick), sh), _mm512_set1_epi16(63)));
#endif
    const __m512 dd = _mm512_cvtph_ps(_mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)g))); /* d0 d1 dmin0 dmin1 */
    const __m512i eight = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    *scv = _mm512_mul_ps(_mm512_permutexvar_ps(eight, dd), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(f))));
    *mnv = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_add_epi32(eight, _mm512_set1_epi32(2)), dd),
                         _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(f, 1))));
}

/* A Q4_K / Q5_K super-block's 128 bytes of nibbles in act_qk's order:
 * q[0] = alo, q[1] = blo, q[2] = ahi, q[3] = bhi (kq45_wide_step's
 * operands; the two 64-byte halves shuffled by 128-bit lanes, a = bytes
 * 32g..32g+15 of each group g, b = 32g+16..32g+31). */
static ALWAYS_INLINE void kq45_nibbles(const __m512i h0, const __m512i h1, __m512i q[4]) {
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512i a = _mm512_shuffle_i64x2(h0, h1, _MM_SHUFFLE(2, 0, 2, 0));
    __m512i b = _mm512_shuffle_i64x2(h0, h1, _MM_SHUFFLE(3, 1, 3, 1));
    q[0] = _mm512_and_si512(a, m4), q[1] = _mm512_and_si512(b, m4);
    q[2] = _mm512_and_si512(_mm512_srli_epi16(a, 4), m4), q[3] = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);
}

/* The wide Q4_K / Q5_K dot's step for super-block i: the unsigned quants
 * in act_qk's order (lo/hi: low/high nibbles' sub-blocks; a/b: elements
 * 0-15/16-31 of each; quant_avx512.c dot_q4_k_n explains the layout)
 * against NX activations: four VPDPBUSD give each sub-block's sum in four
 * lanes (even sub-blocks in one register, odd in the other), one FMA each
 * applies the scales, one FMA per super-block the mins through sx. */
static ALWAYS_INLINE void kq45_wide_step(__m512i alo, __m512i blo, __m512i ahi, __m512i bhi, __m256 scv, __m256 mnv,
                                         const void *const *x, int NX, long n, long i, __m512 acc[][2],
                                         __m256 *accm) {
    const __m512i even = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    _Pragma("GCC unroll 4") for (int k = 0; k < NX; k++) {
        __m512 sv = _mm512_castps256_ps512(_mm256_mul_ps(scv, _mm256_loadu_ps(act_dx(x[k], n) + 8 * i)));
        accm[k] = _mm256_fmadd_ps(mnv, _mm256_loadu_ps(act_sx(x[k], n) + 8 * i), accm[k]);
        const int8_t *y = act_qk(x[k], n) + QK_K * i;
        __m512i se = _mm512_dpbusd_epi32(_mm512_setzero_si512(), alo, _mm512_loadu_si512(y));
        se = _mm512_dpbusd_epi32(se, blo, _mm512_loadu_si512(y + 64));
        __m512i so = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ahi, _mm512_loadu_si512(y + 128));
        so = _mm512_dpbusd_epi32(so, bhi, _mm512_loadu_si512(y + 192));
        acc[k][0] = _mm512_fmadd_ps(_mm512_permutexvar_ps(even, sv), _mm512_cvtepi32_ps(se), acc[k][0]);
        acc[k][1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(odd, sv), _mm512_cvtepi32_ps(so), acc[k][1]);
    }
}
#else
#define KERNELS_AVX512 0
#endif

/* ---- Q4_1, Q5_0, Q5_1, IQ4_NL weights (quant_legacy.c; AVX-512:
 * quant_legacy_avx512.c): blocks of 32 against the Q8_0 activation, one
 * activation block each; Q4_1/Q5_1's min and Q5_0's offset of 16 through
 * the block sums sx. ---- */
float legacy_dot_ref(int t, const void *row, const void *act, long n);
/* One row of type t against nx (1 to 4) activations: out[k] for act[k]. */
void legacy_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out);
/* A row to f32 (kernel_dequantize_row; formats' values exactly). */
void legacy_dequantize_row(int t, const void *row, float *y, long n);
#if KERNELS_AVX512
void legacy512_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out);
#endif

#endif
