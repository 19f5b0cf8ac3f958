/* dtype_legacy: the 32-element block types Q4_1, Q5_0, Q5_1 and IQ4_NL
 * (layouts in dtype.h): dequantisation, and quantisers that round as ggml's
 * reference code does, so a block aloe writes is one llama.cpp reads and
 * (for the same floats) the block llama-quantize writes. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "formats/dtype.h"

/* Products and sums are rounded one at a time, as ggml's reference code
 * (built without FMA contraction) computes them: clang would otherwise fuse
 * the scale search's w*q*x into FMAs and pick other scales for a few blocks
 * than llama-quantize does (gcc in ISO C mode does not fuse). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* The on-disk structs must have ggml's exact sizes. */
_Static_assert(sizeof(BlockQ4_1) == 20, "BlockQ4_1 size");
_Static_assert(sizeof(BlockQ5_0) == 22, "BlockQ5_0 size");
_Static_assert(sizeof(BlockQ5_1) == 24, "BlockQ5_1 size");
_Static_assert(sizeof(BlockIQ4_NL) == 18, "BlockIQ4_NL size");

const int8_t IQ4_NL_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The 32 quants of a block: nibbles from qs (element j low, j+16 high),
 * plus bit j of qh as 16 for the 5-bit types (qh = 0 otherwise). */
static void unpack32(const uint8_t *qs, uint32_t qh, int q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (qs[j] & 0xf) | (int)((qh >> j) & 1) << 4;
        q[j + 16] = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
    }
}

/* A stored block of the four types: d, m (dtype_legacy_has_m), qh
 * (dtype_legacy_has_qh), the 16 bytes of nibbles; a group of four: dtype.h. */
static int qs_at(int base) { return 2 + 2 * dtype_legacy_has_m(base) + 4 * dtype_legacy_has_qh(base); }

/* Bit i of x (0-7) as bit 0 of byte i: the multiply copies x to every
 * byte, the AND keeps bit i in byte i, adding 0x7f carries a set bit to
 * bit 7 (no byte overflows), the shift brings it to bit 0. A loader
 * regroups every Q5_0 / Q5_1 matrix: bit by bit, with a branch per bit, it
 * took a fifth of a 128-token qwen2.5-0.5b run. */
static uint64_t bits_to_bytes(uint32_t x) {
    uint64_t t = ((uint64_t)(x & 0xff) * 0x0101010101010101ull) & 0x8040201008040201ull;
    return ((t + 0x7f7f7f7f7f7f7f7full) >> 7) & 0x0101010101010101ull;
}

void dtype_legacy_regroup(int base, const void *src_, void *dst_, int64_t n) {
    const uint8_t *src = src_;
    uint8_t *dst = dst_;
    const int has_m = dtype_legacy_has_m(base), has_qh = dtype_legacy_has_qh(base), bytes = (int)dtype_block_bytes(base);
    for (int64_t k = 0; k < n / QKL_G4; k++, dst += 4 * bytes) {
        uint8_t *plane = dst + dtype_legacy_g4_plane_at(base), *qs = dst + dtype_legacy_g4_nibbles_at(base);
        uint64_t half[2] = {0, 0}; /* plane bytes 0-7 and 8-15 */
        for (int j = 0; j < 4; j++, src += bytes) {
            memcpy(dst + 2 * j, src, 2); /* d */
            if (has_m) memcpy(dst + 8 + 2 * j, src + 2, 2);
            if (has_qh) {
                uint32_t qh = rd32(src + 2 + 2 * has_m);
                for (int s = 0; s < 2; s++)
                    for (int e = 0; e < 2; e++) /* elements 16s + 8e .. +7 */
                        half[e] |= bits_to_bytes(qh >> (16 * s + 8 * e)) << (4 * (j / 2) + 2 * s + j % 2);
            }
            memcpy(qs + 16 * j, src + qs_at(base), 16);
        }
        if (has_qh)
            for (int i = 0; i < 16; i++) plane[i] = (uint8_t)(half[i / 8] >> (8 * (i % 8)));
    }
}

void dtype_legacy_block(int t, const void *row, int64_t b, uint8_t *out) {
    const int base = dtype_legacy_g4_base(t);
    if (!base) {
        size_t bytes = dtype_block_bytes(t);
        memcpy(out, (const uint8_t *)row + (size_t)b * bytes, bytes);
        return;
    }
    const int has_m = dtype_legacy_has_m(base), j = (int)(b % 4);
    const uint8_t *grp = (const uint8_t *)row + (size_t)(b / 4) * 4 * dtype_block_bytes(base);
    const uint8_t *plane = grp + dtype_legacy_g4_plane_at(base);
    memcpy(out, grp + 2 * j, 2);
    if (has_m) memcpy(out + 2, grp + 8 + 2 * j, 2);
    if (dtype_legacy_has_qh(base)) {
        uint32_t qh = 0;
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < 16; i++) qh |= (uint32_t)(plane[i] >> (4 * (j / 2) + 2 * s + j % 2) & 1) << (16 * s + i);
        wr32(out + 2 + 2 * has_m, qh);
    }
    memcpy(out + qs_at(base), grp + dtype_legacy_g4_nibbles_at(base) + 16 * j, 16);
}

/* Each value is computed as ggml's dequantize_row_* does (q*d + m, d*(q -
 * 16), d*value: one product, then the sum), so the floats are the same. */
int dequantize_blocks_legacy(int t, const uint8_t *src, float *dst, int64_t nb) {
    if (dtype_legacy_g4_base(t)) { /* nb groups of 4: each block as stored */
        for (int64_t b = 0; b < 4 * nb; b++) {
            uint8_t blk[sizeof(BlockQ5_1)];
            dtype_legacy_block(t, src, b, blk);
            dequantize_blocks_legacy(dtype_legacy_g4_base(t), blk, dst + 32 * b, 1);
        }
        return 0;
    }
    size_t bytes = dtype_block_bytes(t);
    int q[32];
    for (int64_t b = 0; b < nb; b++, src += bytes, dst += 32) {
        float d = f16_to_f32(rd16(src));
        switch (t) {
        case DT_Q4_1: {
            float m = f16_to_f32(rd16(src + 2));
            unpack32(src + 4, 0, q);
            for (int j = 0; j < 32; j++) dst[j] = (float)q[j] * d + m;
            break;
        }
        case DT_Q5_0:
            unpack32(src + 6, rd32(src + 2), q);
            for (int j = 0; j < 32; j++) dst[j] = (float)(q[j] - 16) * d;
            break;
        case DT_Q5_1: {
            float m = f16_to_f32(rd16(src + 2));
            unpack32(src + 8, rd32(src + 4), q);
            for (int j = 0; j < 32; j++) dst[j] = (float)q[j] * d + m;
            break;
        }
        case DT_IQ4_NL:
            unpack32(src + 2, 0, q);
            for (int j = 0; j < 32; j++) dst[j] = d * (float)IQ4_NL_VALUES[q[j]];
            break;
        default: return -1;
        }
    }
    return 0;
}

/* Packs 32 quants (0..31) into nibbles and the fifth bits. */
static uint32_t pack32(const int q[32], uint8_t *qs) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xf) | (q[j + 16] & 0xf) << 4);
        qh |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    return qh;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Q4_1 and Q5_1 (top = 15 or 31): the block's min to 0 and max to top,
 * each value to (x - min)/d + 0.5 truncated (ggml's rounding, halves up;
 * the clamp only guards float rounding at the top). The quants come from
 * the exact d and min, the stored ones are their f16 roundings (as ggml). */
static void affine_block(const float *x, int top, uint16_t *hd, uint16_t *hm, int q[32]) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        min = x[j] < min ? x[j] : min;
        max = x[j] > max ? x[j] : max;
    }
    float d = (max - min) / (float)top, id = d != 0 ? 1.0f / d : 0.0f;
    *hd = f32_to_f16(d), *hm = f32_to_f16(min);
    for (int j = 0; j < 32; j++) {
        float v = (x[j] - min) * id + 0.5f;
        q[j] = clampi(v > 0 ? (int)v : 0, 0, top);
    }
}

void quantize_row_q4_1(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    int q[32];
    for (int64_t b = 0; b < n / QK4_1; b++, src += QK4_1, dst += sizeof(BlockQ4_1)) {
        uint16_t hd, hm;
        affine_block(src, 15, &hd, &hm, q);
        wr16(dst, hd), wr16(dst + 2, hm);
        pack32(q, dst + 4);
    }
}

void quantize_row_q5_1(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    int q[32];
    for (int64_t b = 0; b < n / QK5_1; b++, src += QK5_1, dst += sizeof(BlockQ5_1)) {
        uint16_t hd, hm;
        affine_block(src, 31, &hd, &hm, q);
        wr16(dst, hd), wr16(dst + 2, hm);
        wr32(dst + 4, pack32(q, dst + 8));
    }
}

/* Q5_0, as Q4_0: the largest magnitude (its sign kept) to -16, so the
 * whole range 0..31 is used on that value's side; the other side ends at
 * 15 (a value at +16 steps is clamped to 15, one step off). */
void quantize_row_q5_0(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    int q[32];
    for (int64_t b = 0; b < n / QK5_0; b++, src += QK5_0, dst += sizeof(BlockQ5_0)) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(src[j]) > amax) amax = fabsf(src[j]), max = src[j];
        float d = max / -16.0f, id = d != 0 ? 1.0f / d : 0.0f;
        wr16(dst, f32_to_f16(d));
        for (int j = 0; j < 32; j++) {
            float v = src[j] * id + 16.5f;
            q[j] = clampi(v > 0 ? (int)v : 0, 0, 31);
        }
        wr32(dst + 2, pack32(q, dst + 6));
    }
}

/* The grid index nearest v (grid values, v scaled to the grid); a tie goes
 * to the upper value, as ggml's search does. */
static int iq4nl_nearest(float v) {
    if (v <= IQ4_NL_VALUES[0]) return 0;
    if (v >= IQ4_NL_VALUES[15]) return 15;
    int hi = 1;
    while (v >= IQ4_NL_VALUES[hi]) hi++; /* IQ4_NL_VALUES[hi-1] <= v < IQ4_NL_VALUES[hi] */
    return v - IQ4_NL_VALUES[hi - 1] < IQ4_NL_VALUES[hi] - v ? hi - 1 : hi;
}

/* For the grid scale 1/id: rounds each value to the grid and fits the
 * scale d by least squares weighted by x^2 (weights of large magnitude
 * matter most to a layer's output): d = sum(w q x) / sum(w q^2). The fit's
 * weighted squared error is sum(w x^2) - d*sum(w q x), so the largest
 * sum(w q x)^2 / sum(w q^2) is the best fit. */
static void iq4nl_fit(const float *x, float id, float *sumqx, float *sumq2) {
    *sumqx = *sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        float q = IQ4_NL_VALUES[iq4nl_nearest(id * x[j])], w = x[j] * x[j];
        *sumqx += w * q * x[j];
        *sumq2 += w * q * q;
    }
}

/* The scale: the largest magnitude `max` mapped to +127 (clamped to the
 * grid's 113), then to -127 + k for k = -7..7 (the grid's long negative
 * end, where a small shift changes which values round where), each
 * refitted; the best weighted fit is kept (ggml's search with ntry = 7,
 * what llama-quantize runs without an importance matrix). The values are
 * then rounded to the grid with the kept scale. */
void quantize_row_iq4_nl(const float *src, void *dst_, int64_t n) {
    uint8_t *dst = dst_;
    int q[32];
    for (int64_t b = 0; b < n / QK4_NL; b++, src += QK4_NL, dst += sizeof(BlockIQ4_NL)) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(src[j]) > amax) amax = fabsf(src[j]), max = src[j];
        float d = 0;
        if (amax >= 1e-15f) {
            float sumqx, sumq2;
            d = max / 127.0f;
            iq4nl_fit(src, 1 / d, &sumqx, &sumq2);
            if (sumq2 > 0) d = sumqx / sumq2;
            float best = d * sumqx;
            for (int k = -7; k <= 7; k++) {
                iq4nl_fit(src, (float)(k + IQ4_NL_VALUES[0]) / max, &sumqx, &sumq2);
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2) d = sumqx / sumq2, best = d * sumqx;
            }
        }
        wr16(dst, f32_to_f16(d));
        float id = d != 0 ? 1 / d : 0;
        for (int j = 0; j < 32; j++) q[j] = iq4nl_nearest(id * src[j]);
        pack32(q, dst + 2);
    }
}
