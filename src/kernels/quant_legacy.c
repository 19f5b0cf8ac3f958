/* quant_legacy: dots of Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows (layouts:
 * formats/dtype.h) with the Q8_0 activation of quant_internal.h: the plain
 * reference, and the AVX2 dot (AVX-512: quant_legacy_avx512.c).
 *
 * Every type has blocks of 32, one activation block each. With q the
 * block's quants and y the activation's (scale dx, block sum sx = dx *
 * sum(y)), a block's share of the dot is
 *   Q4_1, Q5_1: dx * (d * sum(q y) + m * sum(y)) = d dx sum(q y) + m sx
 *   Q5_0:       d dx (sum(q y) - 16 sum(y))      = d (dx sum(q y) - 16 sx)
 *   IQ4_NL:     d dx sum(v[q] y)                 (v: the grid, signed)
 * so the unsigned quants (0..31) meet the activation in one unsigned x
 * signed byte product, and the mins and offsets cost one scalar FMA per
 * block from the sums that come with the activation. */
#include "kernels/klevel.h" /* first: built once per kernel level */
#include <string.h>

#include "kernels/quant.h"
#include "kernels/quant_internal.h"

/* A block's layout: bytes, where qs and qh lie (qh < 0: none), whether it
 * has a min m (at byte 2). */
typedef struct Legacy {
    int bytes, qs, qh, has_m;
} Legacy;

/* The stored type of t, regrouped in fours (dtype.h) or not. */
static ALWAYS_INLINE int stored_type(int t) { return dtype_legacy_g4_base(t) ? dtype_legacy_g4_base(t) : t; }

/* The stored block's layout, for a regrouped type too (dtype_legacy_block
 * reads its blocks back as stored). */
static ALWAYS_INLINE Legacy legacy_layout(int t) {
    switch (stored_type(t)) {
    case DT_Q4_1: return (Legacy){sizeof(BlockQ4_1), 4, -1, 1};
    case DT_Q5_0: return (Legacy){sizeof(BlockQ5_0), 6, 2, 0};
    case DT_Q5_1: return (Legacy){sizeof(BlockQ5_1), 8, 4, 1};
    default: return (Legacy){sizeof(BlockIQ4_NL), 2, -1, 0};
    }
}

/* Whether t's blocks are Q5_0's (their offset of 16 through sx), IQ4_NL's
 * (grid indices), stored or regrouped. */
static ALWAYS_INLINE int is_q5_0(int t) { return stored_type(t) == DT_Q5_0; }
static ALWAYS_INLINE int is_iq4nl(int t) { return stored_type(t) == DT_IQ4_NL; }

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4); /* little-endian, as GGUF */
    return v;
}

float legacy_dot_ref(int t, const void *row, const void *act, long n) {
    const Legacy L = legacy_layout(t);
    const int8_t *y = act_q(act);
    const float *dx = act_dx(act, n);
    float sum = 0;
    for (long b = 0; b < n / 32; b++) {
        uint8_t blk[sizeof(BlockQ5_1)]; /* the block as stored */
        dtype_legacy_block(t, row, b, blk);
        const int8_t *a = y + 32 * b;
        uint32_t qh = L.qh >= 0 ? ld32(blk + L.qh) : 0;
        float d = f16_to_f32(ld16(blk)), m = L.has_m ? f16_to_f32(ld16(blk + 2)) : 0;
        int s = 0, sy = 0;
        for (int j = 0; j < 32; j++) {
            int byte = blk[L.qs + j % 16];
            int q = (j < 16 ? byte & 0xf : byte >> 4) | (int)((qh >> j) & 1) << 4;
            s += (is_iq4nl(t) ? IQ4_NL_VALUES[q] : q) * a[j];
            sy += a[j];
        }
        if (is_q5_0(t)) sum += dx[b] * d * (float)(s - 16 * sy);
        else if (L.has_m) sum += dx[b] * (d * (float)s + m * (float)sy);
        else sum += dx[b] * d * (float)s;
    }
    return sum;
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

/* dot_u8s8 (quant_internal.h): u <= 127 (quants <= 31, |grid values| <=
 * 127) and |s| <= 127 give pairwise sums of at most 2*127*127 = 32258. */

/* The 32 bits of qh as bytes 0x10 (bit set) or 0: byte j from bit j. Each
 * 128-bit lane of the broadcast holds all four bytes of qh; the shuffle
 * puts byte j/8 in byte j, the AND and compare test bit j%8. */
static inline __m256i fifth_bits(uint32_t qh) {
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), pick);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

/* One row from block b0 on against NX activations, a block a step (the
 * blocks past a row's last whole quad; dot_legacy_quads does the rest); T
 * and NX are constants at each call, so the type's branches fold away. The
 * block's weights are unpacked once for all the activations. */
static ALWAYS_INLINE void dot_legacy_from(int pf, int T, const uint8_t *row, const void *const *act, int NX, long n, long b0,
                                          float *out) {
    const Legacy L = legacy_layout(T);
    const int8_t *x[4];
    const float *dx[4], *sx[4];
    __m256 acc[4];
    float off[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++)
        x[k] = act_q(act[k]), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n), acc[k] = _mm256_setzero_ps(), off[k] = 0;
    const __m128i m4 = _mm_set1_epi8(15);
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES));
    for (long b = b0; b < n / 32; b++) {
        const uint8_t *blk = row + b * L.bytes;
        if (!(b & 3)) prefetch_ahead(pf, blk, 2);
        float d = half(ld16(blk)), m = L.has_m ? half(ld16(blk + 2)) : 0;
        __m128i raw = _mm_loadu_si128((const __m128i *)(blk + L.qs));
        /* elements 0-15 (low nibbles), then 16-31 (high) */
        __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
        if (L.qh >= 0) q = _mm256_or_si256(q, fifth_bits(ld32(blk + L.qh)));
        __m256i w = q;
        if (T == DT_IQ4_NL) w = _mm256_shuffle_epi8(grid, q); /* the grid values, signed */
        __m256i aw = T == DT_IQ4_NL ? _mm256_sign_epi8(w, w) : q;
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            __m256i y = _mm256_loadu_si256((const __m256i *)(x[k] + 32 * b));
            /* IQ4_NL's signed values: |w| times y with w's sign moved onto y */
            if (T == DT_IQ4_NL) y = _mm256_sign_epi8(y, w);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx[k][b]), _mm256_cvtepi32_ps(dot_u8s8(aw, y)), acc[k]);
            if (L.has_m) off[k] += m * sx[k][b];
            else if (is_q5_0(T)) off[k] += d * sx[k][b];
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++) out[k] = hsum8(acc[k]) + (is_q5_0(T) ? -16 * off[k] : off[k]);
}

/* The fifth bits of a pair of Q5 blocks as bytes 0x10 or 0, for the
 * pair's vector of elements 0-15 (hi = 0: bits 0-15 of each block's qh)
 * or 16-31 (hi = 1: bits 16-31). hq holds qh of block A in bytes 0-3 and
 * of block B in bytes 4-7 of each 128-bit lane: lane 0 takes A's bytes,
 * lane 1 B's; then fifth_bits' AND and compare. */
static ALWAYS_INLINE __m256i pair_fifth_bits(__m256i hq, int hi) {
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5,
                                          5, 5, 5, 5, 5);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(hq, hi ? _mm256_add_epi8(pick, _mm256_set1_epi8(2)) : pick);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

/* The fifth bits of half s (elements 0-15 or 16-31) of pair h of a group
 * of Q5_0/Q5_1 regrouped in fours (dtype.h), from its plane p broadcast to
 * both 128-bit lanes: bit 4h + 2s of each byte for lane 0 (block 2h), the
 * next bit for lane 1 (block 2h+1), shifted to bit 4 (a left shift of 4 - b
 * or a right one of b - 4 moves no bit across a byte), as bytes 0x10 or 0. */
static ALWAYS_INLINE __m256i plane_fifth_bits(__m256i p, int h, int s) {
    const int b = 4 * h + 2 * s;
    __m256i v = b < 4 ? _mm256_sllv_epi32(p, _mm256_setr_epi32(4 - b, 4 - b, 4 - b, 4 - b, 3 - b, 3 - b, 3 - b, 3 - b))
                      : _mm256_srlv_epi32(p, _mm256_setr_epi32(b - 4, b - 4, b - 4, b - 4, b - 3, b - 3, b - 3, b - 3));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* One row against NX activations' quads (act_q4, quant_internal.h): two
 * blocks a step in one register, lane 0 block A, lane 1 block B, as the
 * AVX2 Q4_0 dot (quant.c q4_pair). The pair's low nibbles (elements 0-15
 * of each, with the fifth bits) meet the quad's first 64 bytes, the high
 * nibbles (16-31) the 64 bytes after; each block's scale and min cover its
 * 4 lanes. Against dot_legacy_from's block a step (a lane insert, a madd,
 * a convert and an FMA per block, two scalar conversions of f16 and the
 * offset in scalar code) about half the vector operations a block: the
 * pair's 2 or 4 f16 fields and its two qh words gathered in a
 * general-purpose register and moved over once each, one madd, convert and
 * FMA per pair, the offsets as one FMA per pair. Q5's quants (<= 31) keep
 * the two halves' maddubs sums added in int16 below 32767 (2 * 2 * 31 *
 * 127 = 15748); IQ4_NL's grid values (|v| <= 127) each take their own
 * madd. Offsets: sx4 holds 2 sx per lane (4 lanes: 8 sx), so Q5_0's 16 sx
 * is 2 d sx4 over the 4 lanes, Q4_1/Q5_1's m sx is m sx4 / 8. The last nb
 * % 4 blocks: dot_legacy_from. */
static ALWAYS_INLINE void dot_legacy_quads(int pf, int T, const uint8_t *row, const void *const *act, int NX, long n,
                                           float *out) {
    const Legacy L = legacy_layout(T);
    const long nb = n / 32, nq = act_nquads(n);
    const int8_t *x4[4];
    const float *dx4[4], *sx4[4];
    __m256 acc[2][4], off[2][4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        x4[k] = act_q4(act[k], n), dx4[k] = act_dx4(act[k], n), sx4[k] = act_sx4(act[k], n);
        acc[0][k] = acc[1][k] = off[0][k] = off[1][k] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES));
    for (long qd = 0; qd < nq; qd++) {
        const uint8_t *grp = row + 4 * qd * L.bytes;
        prefetch_ahead(pf, grp, 2);
        /* the quad's two pairs spelled out: h a constant keeps the
         * accumulators in registers (indexed at run time they went through
         * the stack, a store-to-load chain per pair) */
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            const uint8_t *a = grp + 2 * h * L.bytes, *b = a + L.bytes;
            __m256i v = _mm256_loadu2_m128i((const __m128i *)(b + L.qs), (const __m128i *)(a + L.qs));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (L.qh >= 0) {
                __m256i hq = _mm256_broadcastq_epi64(
                    _mm_cvtsi64_si128((long long)((uint64_t)ld32(b + L.qh) << 32 | ld32(a + L.qh))));
                lo = _mm256_or_si256(lo, pair_fifth_bits(hq, 0));
                hi = _mm256_or_si256(hi, pair_fifth_bits(hq, 1));
            }
            __m256i alo = lo, ahi = hi;
            if (T == DT_IQ4_NL) { /* the grid values, signed: |v| against y with v's sign */
                lo = _mm256_shuffle_epi8(grid, lo), hi = _mm256_shuffle_epi8(grid, hi);
                alo = _mm256_sign_epi8(lo, lo), ahi = _mm256_sign_epi8(hi, hi);
            }
            /* d (and m) of A and B: f16 fields 0 (1) and 2 (3) */
            __m256 f = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi64_si128(
                (long long)(L.has_m ? (uint64_t)ld32(b) << 32 | ld32(a) : (uint64_t)ld16(b) << 32 | ld16(a)))));
            __m256 dw = _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
            __m256 mw = L.has_m ? _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3)) : dw;
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                const int8_t *y = x4[k] + 128 * qd + 32 * h;
                __m256i ylo = _mm256_loadu_si256((const __m256i *)y), yhi = _mm256_loadu_si256((const __m256i *)(y + 64));
                __m256i s;
                if (T == DT_IQ4_NL)
                    s = _mm256_add_epi32(dot_u8s8(alo, _mm256_sign_epi8(ylo, lo)), dot_u8s8(ahi, _mm256_sign_epi8(yhi, hi)));
                else
                    s = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(alo, ylo), _mm256_maddubs_epi16(ahi, yhi)),
                                          _mm256_set1_epi16(1));
                __m256 dwdx = _mm256_mul_ps(dw, _mm256_loadu_ps(dx4[k] + 16 * qd + 8 * h));
                acc[h][k] = _mm256_fmadd_ps(dwdx, _mm256_cvtepi32_ps(s), acc[h][k]);
                if (L.has_m || is_q5_0(T))
                    off[h][k] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(sx4[k] + 16 * qd + 8 * h), off[h][k]);
            }
        }
    }
    const float oscale = is_q5_0(T) ? -2.0f : 0.125f;
    UNROLL_NX
    for (int k = 0; k < NX; k++)
        out[k] = hsum8(_mm256_add_ps(acc[0][k], acc[1][k])) + oscale * hsum8(_mm256_add_ps(off[0][k], off[1][k]));
    if (4 * nq < nb) { /* the last nb % 4 blocks, from the common layout */
        float rest[4];
        dot_legacy_from(pf, T, row, act, NX, n, 4 * nq, rest);
        UNROLL_NX
        for (int k = 0; k < NX; k++) out[k] += rest[k];
    }
}

/* Q4_1 / Q5_0 / Q5_1 / IQ4_NL regrouped in fours (formats/dtype.h) against
 * NX activations' quads: per group, its 4 d times each activation's 4 dx
 * in one multiply and the offsets (Q5_0: d sx, Q4_1/Q5_1: m sx; sx = dx
 * sum(y), act_sx) in one FMA; per pair one 32-byte load of nibbles, Q5's
 * fifth bits from the plane (plane_fifth_bits), the two halves' maddubs
 * added in int16 (IQ4_NL's each its own madd) as dot_legacy_quads', one
 * convert and one FMA. */
static ALWAYS_INLINE void dot_legacy_g4(int pf, int T, const uint8_t *row, const void *const *act, int NX, long n,
                                        float *out) {
    const int base = dtype_legacy_g4_base(T), iq = base == DT_IQ4_NL;
    const int has_m = dtype_legacy_has_m(base), has_qh = dtype_legacy_has_qh(base);
    const size_t gb = 4 * (size_t)legacy_layout(T).bytes; /* a group's bytes */
    const int at_plane = dtype_legacy_g4_plane_at(base), at_qs = dtype_legacy_g4_nibbles_at(base);
    const int8_t *x4[4];
    const float *dx[4], *sx[4];
    __m256 acc[2][4];
    __m128 off[4];
    UNROLL_NX
    for (int k = 0; k < NX; k++) {
        x4[k] = act_q4(act[k], n), dx[k] = act_dx(act[k], n), sx[k] = act_sx(act[k], n);
        acc[0][k] = acc[1][k] = _mm256_setzero_ps(), off[k] = _mm_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES));
    for (long gi = 0; gi < n / QKL_G4; gi++) {
        const uint8_t *grp = row + gi * gb;
        prefetch_ahead(pf, grp, 2);
        __m256i plane = has_qh ? _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(grp + at_plane)))
                               : _mm256_setzero_si256();
        __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)grp));
        __m128 o4 = has_m ? _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(grp + 8))) : d4; /* m, or d */
        __m256 dd[4];
        UNROLL_NX
        for (int k = 0; k < NX; k++) {
            dd[k] = _mm256_castps128_ps256(_mm_mul_ps(d4, _mm_loadu_ps(dx[k] + 4 * gi)));
            if (has_m || base == DT_Q5_0) off[k] = _mm_fmadd_ps(o4, _mm_loadu_ps(sx[k] + 4 * gi), off[k]);
        }
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(grp + at_qs + 32 * h));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            if (has_qh) {
                lo = _mm256_or_si256(lo, plane_fifth_bits(plane, h, 0));
                hi = _mm256_or_si256(hi, plane_fifth_bits(plane, h, 1));
            }
            __m256i alo = lo, ahi = hi;
            if (iq) { /* the grid values, signed: |v| against y with v's sign */
                lo = _mm256_shuffle_epi8(grid, lo), hi = _mm256_shuffle_epi8(grid, hi);
                alo = _mm256_sign_epi8(lo, lo), ahi = _mm256_sign_epi8(hi, hi);
            }
            const __m256i pair = _mm256_setr_epi32(2 * h, 2 * h, 2 * h, 2 * h, 2 * h + 1, 2 * h + 1, 2 * h + 1, 2 * h + 1);
            UNROLL_NX
            for (int k = 0; k < NX; k++) {
                const int8_t *y = x4[k] + 128 * gi + 32 * h;
                __m256i ylo = _mm256_loadu_si256((const __m256i *)y), yhi = _mm256_loadu_si256((const __m256i *)(y + 64));
                __m256i s;
                if (iq)
                    s = _mm256_add_epi32(dot_u8s8(alo, _mm256_sign_epi8(ylo, lo)), dot_u8s8(ahi, _mm256_sign_epi8(yhi, hi)));
                else
                    s = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(alo, ylo), _mm256_maddubs_epi16(ahi, yhi)),
                                          _mm256_set1_epi16(1));
                acc[h][k] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(dd[k], pair), _mm256_cvtepi32_ps(s), acc[h][k]);
            }
        }
    }
    UNROLL_NX
    for (int k = 0; k < NX; k++)
        out[k] = hsum8(_mm256_add_ps(acc[0][k], acc[1][k])) + (base == DT_Q5_0 ? -16.0f : 1.0f) * hsum4(off[k]);
}

/* A row to f32 for the GEMM path: the values of formats' scalar
 * dequantisation exactly (the same operations in the same order: q*d + m,
 * (q - 16)*d, d*value, each product rounded before the sum). */
static ALWAYS_INLINE void deq_legacy(int T, const uint8_t *row, float *y, long n) {
    const Legacy L = legacy_layout(T);
    const __m128i m4 = _mm_set1_epi8(15);
    const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IQ4_NL_VALUES));
    for (long b = 0; b < n / 32; b++, y += 32) {
        const uint8_t *blk = row + b * L.bytes;
        __m256 d, m;
        __m256i q;
        if (dtype_legacy_g4_base(T)) { /* regrouped: block b % 4 of group b / 4 (the same bytes) */
            float df, mf;
            q = legacy_g4_quants(dtype_legacy_g4_base(T), row + (b - b % 4) * L.bytes, (int)(b % 4), &df, &mf);
            d = _mm256_set1_ps(df), m = _mm256_set1_ps(mf);
        } else {
            d = _mm256_set1_ps(half(ld16(blk))), m = _mm256_set1_ps(L.has_m ? half(ld16(blk + 2)) : 0);
            __m128i raw = _mm_loadu_si128((const __m128i *)(blk + L.qs));
            q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), _mm_and_si128(raw, m4));
            if (L.qh >= 0) q = _mm256_or_si256(q, fifth_bits(ld32(blk + L.qh)));
        }
        if (is_iq4nl(T)) q = _mm256_shuffle_epi8(grid, q);
        for (int k = 0; k < 4; k++) {
            __m128i part = k < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
            __m256i v = _mm256_cvtepi8_epi32(k & 1 ? _mm_srli_si128(part, 8) : part);
            if (is_q5_0(T)) v = _mm256_sub_epi32(v, _mm256_set1_epi32(16));
            __m256 f = _mm256_cvtepi32_ps(v), r = _mm256_mul_ps(f, d);
            _mm256_storeu_ps(y + 8 * k, L.has_m ? _mm256_add_ps(r, m) : r);
        }
    }
}

void legacy_dequantize_row(int t, const void *row, float *y, long n) {
    switch (t) {
    case DT_Q4_1: deq_legacy(DT_Q4_1, row, y, n); return;
    case DT_Q5_0: deq_legacy(DT_Q5_0, row, y, n); return;
    case DT_Q5_1: deq_legacy(DT_Q5_1, row, y, n); return;
    case DT_Q5_0_G4: deq_legacy(DT_Q5_0_G4, row, y, n); return;
    case DT_Q5_1_G4: deq_legacy(DT_Q5_1_G4, row, y, n); return;
    case DT_Q4_1_G4: deq_legacy(DT_Q4_1_G4, row, y, n); return;
    case DT_IQ4_NL_G4: deq_legacy(DT_IQ4_NL_G4, row, y, n); return;
    default: deq_legacy(DT_IQ4_NL, row, y, n); return;
    }
}

/* F(T, ..., NX) with NX the constant nx (1 to 4) */
#define BY_NX(F, T)                                                                                                    \
    switch (nx) {                                                                                                      \
    case 1: F(pf, T, row, act, 1, n, out); return;                                                                     \
    case 2: F(pf, T, row, act, 2, n, out); return;                                                                     \
    case 3: F(pf, T, row, act, 3, n, out); return;                                                                     \
    default: F(pf, T, row, act, 4, n, out); return;                                                                    \
    }
#define LEGACY_NX(T) BY_NX(dot_legacy_quads, T)
#define G4_NX(T) BY_NX(dot_legacy_g4, T)

static ALWAYS_INLINE void legacy_dot_pf(int pf, int t, const void *row, const void *const *act, int nx, long n,
                                       float *out) {
    switch (t) {
    case DT_Q4_1: LEGACY_NX(DT_Q4_1)
    case DT_Q5_0: LEGACY_NX(DT_Q5_0)
    case DT_Q5_1: LEGACY_NX(DT_Q5_1)
    case DT_Q5_0_G4: G4_NX(DT_Q5_0_G4)
    case DT_Q5_1_G4: G4_NX(DT_Q5_1_G4)
    case DT_Q4_1_G4: G4_NX(DT_Q4_1_G4)
    case DT_IQ4_NL_G4: G4_NX(DT_IQ4_NL_G4)
    default: LEGACY_NX(DT_IQ4_NL)
    }
}

void legacy_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    WITH_PREFETCH_MODE(legacy_dot_pf(pf, t, row, act, nx, n, out));
}
#else
void legacy_dequantize_row(int t, const void *row, float *y, long n) { dequantize_row(t, row, y, n); }

void legacy_dot_n(int t, const void *row, const void *const *act, int nx, long n, float *out) {
    for (int k = 0; k < nx; k++) out[k] = legacy_dot_ref(t, row, act[k], n);
}
#endif
