/* dtype_kquant: the 256-element super-block types Q2_K, Q3_K, Q5_K and
 * IQ4_XS (ggml's layouts, formats/dtype.h): dequantisation and quantisers.
 * The quantisers follow the approach of ggml's reference ones (a per
 * sub-block fit, the sub-block scales coded against an f16 super-scale,
 * the quants rounded with the coded scales) with simpler fits: no
 * importance weights, least squares on the plain squared error. */
#include "formats/dtype.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

_Static_assert(sizeof(BlockQ2_K) == 84, "BlockQ2_K size");
_Static_assert(sizeof(BlockQ3_K) == 110, "BlockQ3_K size");
_Static_assert(sizeof(BlockQ5_K) == 176, "BlockQ5_K size");
_Static_assert(sizeof(BlockIQ4_XS) == 136, "BlockIQ4_XS size");

/* IQ4_NL/IQ4_XS's 16 levels (ggml's kvalues_iq4nl): denser near 0, where
 * most weights are. */
/* IQ4_XS uses IQ4_NL's 16 non-linear levels (IQ4_NL_VALUES, dtype_legacy.c). */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- field accessors (shared with the kernels' reference dots) ---- */

int q2k_quant(const BlockQ2_K *b, int i) {
    int half = i / 128, j = (i % 128) / 32, l = i % 32;
    return (b->qs[32 * half + l] >> (2 * j)) & 3;
}

int q3k_scale(const uint8_t *s, int j) {
    int lo = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

int q3k_quant(const BlockQ3_K *b, int i) {
    int half = i / 128, j = (i % 128) / 32, l = i % 32;
    int lo = (b->qs[32 * half + l] >> (2 * j)) & 3;
    int h = (b->hmask[l] >> (4 * half + j)) & 1;
    return lo + 4 * h - 4;
}

void q5k_scale_min(int j, const uint8_t *s, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

int q5k_quant(const BlockQ5_K *b, int i) {
    int j = i / 32, l = i % 32;
    int lo = j % 2 ? b->qs[32 * (j / 2) + l] >> 4 : b->qs[32 * (j / 2) + l] & 0xf;
    return lo | (((b->qh[l] >> j) & 1) << 4);
}

int iq4xs_scale(const BlockIQ4_XS *b, int j) {
    int lo = (b->scales_l[j / 2] >> (4 * (j % 2))) & 0xf, hi = (b->scales_h >> (2 * j)) & 3;
    return (lo | (hi << 4)) - 32;
}

int iq4xs_index(const BlockIQ4_XS *b, int i) {
    int j = i / 32, l = i % 32;
    const uint8_t *q = b->qs + 16 * j;
    return l < 16 ? q[l] & 0xf : q[l - 16] >> 4;
}

/* ---- dequantisation: x = (d*scale) * q - (dmin*min), in that order ----
 * Written per field group (not through the readers above, which the
 * kernels' references use) so that the compiler vectorises the inner
 * loops: the GEMM path converts whole matrices with these. */

void deq_q2_k(const void *src, float *dst, int64_t nb) {
    const BlockQ2_K *b = src;
    for (int64_t i = 0; i < nb; i++, dst += QK_K) {
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int half16 = 0; half16 < 2; half16++) {
                    int j = 8 * h + 2 * k + half16;
                    float s = d * (float)(b[i].scales[j] & 0xf), o = dmin * (float)(b[i].scales[j] >> 4);
                    const uint8_t *q = b[i].qs + 32 * h + 16 * half16;
                    float *y = dst + 16 * j;
                    for (int l = 0; l < 16; l++) y[l] = s * (float)((q[l] >> (2 * k)) & 3) - o;
                }
    }
}

void deq_q3_k(const void *src, float *dst, int64_t nb) {
    const BlockQ3_K *b = src;
    for (int64_t i = 0; i < nb; i++, dst += QK_K) {
        float d = f16_to_f32(b[i].d);
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int half16 = 0; half16 < 2; half16++) {
                    int j = 8 * h + 2 * k + half16;
                    float s = d * (float)q3k_scale(b[i].scales, j);
                    const uint8_t *q = b[i].qs + 32 * h + 16 * half16, *hm = b[i].hmask + 16 * half16;
                    float *y = dst + 16 * j;
                    for (int l = 0; l < 16; l++)
                        y[l] = s * (float)((int)((q[l] >> (2 * k)) & 3) + 4 * ((hm[l] >> (4 * h + k)) & 1) - 4);
                }
    }
}

void deq_q5_k(const void *src, float *dst, int64_t nb) {
    const BlockQ5_K *b = src;
    for (int64_t i = 0; i < nb; i++, dst += QK_K) {
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            q5k_scale_min(j, b[i].scales, &sc, &mn);
            float s = d * (float)sc, o = dmin * (float)mn;
            const uint8_t *q = b[i].qs + 32 * (j / 2);
            int sh = 4 * (j % 2);
            float *y = dst + 32 * j;
            for (int l = 0; l < 32; l++) y[l] = s * (float)(((q[l] >> sh) & 0xf) | (((b[i].qh[l] >> j) & 1) << 4)) - o;
        }
    }
}

void deq_iq4_xs(const void *src, float *dst, int64_t nb) {
    const BlockIQ4_XS *b = src;
    for (int64_t i = 0; i < nb; i++, dst += QK_K) {
        float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 8; j++) {
            float s = d * (float)iq4xs_scale(&b[i], j);
            const uint8_t *q = b[i].qs + 16 * j;
            float *y = dst + 32 * j;
            for (int l = 0; l < 16; l++) {
                y[l] = s * (float)IQ4_NL_VALUES[q[l] & 0xf];
                y[l + 16] = s * (float)IQ4_NL_VALUES[q[l] >> 4];
            }
        }
    }
}

/* ---- Q4_K and Q5_K in pairs (DT_Q4_K_PAIRS, DT_Q5_K_PAIRS, dtype.h) ----
 * Element e of sub-block j is stored in nibble j % 2 of qs byte 32 (j / 2)
 * + e and in bit j of qh byte e; in pairs, in nibble e / 16 of byte 32 p +
 * 16 L + e % 16 and in bit 2p + e / 16 of plane byte 16 L + e % 16, for
 * the pair p and lane L that hold j (j = dtype_k_pair_first(p) + 2 L). */
static inline int pair_of(int j, int *lane) {
    int a = j % 4 < 2 ? j : j - 2; /* the pair's first sub-block: 0, 1, 4 or 5 */
    *lane = a != j;
    return (a % 4) * 2 + a / 4; /* dtype_k_pair_first(p) == a */
}

static size_t k_block_bytes(int base) { return base == DT_Q5_K ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K); }

/* 64-bit words of bytes (SWAR): every shift below is masked so that no
 * bit crosses a byte, so byte order does not matter. */
static inline uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
#define BYTES(b) (0x0101010101010101ull * (b))

/* One block into pairs: the nibbles eight pair bytes at a time, the plane
 * eight bytes and one pair at a time (bit j of qh[i] and of qh[16 + i] to
 * bits 2p, 2p + 1). A byte or a bit per step, as the way back below, made
 * a load of llama-3.2-1b Q5_K ~0.9 s slower; this ~0.1 s. */
static void to_pairs(int base, const uint8_t *src, uint8_t *dst) {
    const size_t at_qs = base == DT_Q5_K ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs);
    memcpy(dst, src, at_qs); /* d, dmin, scales (and qh, replaced below) */
    const uint8_t *qs = src + at_qs;
    for (int p = 0; p < 4; p++)
        for (int lane = 0; lane < 2; lane++) {
            const int j = dtype_k_pair_first(p) + 2 * lane;
            const uint8_t *sb = qs + 32 * (j / 2); /* elements 0-15 of sub-block j in sb[0..15], 16-31 in sb[16..31] */
            for (int h = 0; h < 2; h++) {
                uint64_t a = rd64(sb + 8 * h), b = rd64(sb + 16 + 8 * h), v;
                if (j % 2) v = (a >> 4 & BYTES(15)) | (b & BYTES(0xf0)); /* high nibbles */
                else v = (a & BYTES(15)) | (b & BYTES(15)) << 4;
                memcpy(dst + at_qs + 32 * p + 16 * lane + 8 * h, &v, 8);
            }
        }
    if (base != DT_Q5_K) return;
    const uint8_t *qh = src + offsetof(BlockQ5_K, qh);
    for (int lane = 0; lane < 2; lane++)
        for (int h = 0; h < 2; h++) {
            uint64_t a = rd64(qh + 8 * h), b = rd64(qh + 16 + 8 * h), v = 0;
            for (int p = 0; p < 4; p++) {
                const int j = dtype_k_pair_first(p) + 2 * lane;
                v |= (a >> j & BYTES(1)) << (2 * p) | (b >> j & BYTES(1)) << (2 * p + 1);
            }
            memcpy(dst + offsetof(BlockQ5_K, qh) + 16 * lane + 8 * h, &v, 8);
        }
}

/* One block in pairs back as stored, a nibble and a bit at a time (the
 * references' and tests' way, written from the definition above). */
static void from_pairs(int base, const uint8_t *src, uint8_t *dst) {
    const size_t at_qs = base == DT_Q5_K ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs);
    memcpy(dst, src, at_qs);
    memset(dst + at_qs, 0, QK_K / 2);
    if (base == DT_Q5_K) memset(dst + offsetof(BlockQ5_K, qh), 0, QK_K / 8);
    for (int j = 0; j < 8; j++) {
        int lane, p = pair_of(j, &lane);
        for (int e = 0; e < 32; e++) {
            size_t pb = 16 * (size_t)lane + (size_t)(e % 16); /* the byte of the pair, of the plane */
            int q = (src[at_qs + 32 * (size_t)p + pb] >> (4 * (e / 16))) & 15;
            dst[at_qs + 32 * (size_t)(j / 2) + (size_t)e] |= (uint8_t)(q << (4 * (j % 2)));
            if (base == DT_Q5_K) {
                int bit = (src[offsetof(BlockQ5_K, qh) + pb] >> (2 * p + e / 16)) & 1;
                dst[offsetof(BlockQ5_K, qh) + (size_t)e] |= (uint8_t)(bit << j);
            }
        }
    }
}

void dtype_k_pairs_regroup(int base, const void *src, void *dst, int64_t n) {
    const size_t bb = k_block_bytes(base);
    for (int64_t k = 0; k < n / QK_K; k++) to_pairs(base, (const uint8_t *)src + k * bb, (uint8_t *)dst + k * bb);
}

void dtype_k_pairs_block(int t, const void *row, int64_t i, void *out) {
    const int base = dtype_k_pairs_base(t);
    from_pairs(base, (const uint8_t *)row + i * k_block_bytes(base), out);
}

/* ---- fits ---- */

/* Squared error of x ~ s*q - o with q = round((x+o)/s) in [0, qmax]. */
static float affine_err(const float *x, int n, float s, float o, int qmax) {
    float is = s > 0 ? 1.0f / s : 0.0f, err = 0;
    for (int i = 0; i < n; i++) {
        int q = clampi((int)nearbyintf((x[i] + o) * is), 0, qmax);
        float r = s * (float)q - o - x[i];
        err += r * r;
    }
    return err;
}

/* The affine fit x ~ s*q - o (q in 0..qmax, s >= 0, o >= 0: the stored min
 * is unsigned, so a sub-block wholly above 0 gets o = 0, as ggml does):
 * the min/max fit, then ranges shrunk by steps of qmax/30, each refined by
 * least squares on the q it gives (ggml's make_qkx2_quants searches the
 * same way, weighted); keeps the least squared error. */
static void affine_fit(const float *x, int n, int qmax, float *scale, float *offset) {
    float lo = 0, hi = x[0];
    for (int i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    if (hi <= lo) {
        *scale = 0, *offset = -lo;
        return;
    }
    float best_s = (hi - lo) / (float)qmax, best_o = -lo, best = affine_err(x, n, best_s, best_o, qmax);
    for (int k = 1; k <= 15; k++) {
        float s = (hi - lo) / ((float)qmax * (1.0f + (float)k / 30.0f)), o = -lo;
        double sq = 0, sqq = 0, sx = 0, sxq = 0;
        for (int i = 0; i < n; i++) {
            int q = clampi((int)nearbyintf((x[i] + o) / s), 0, qmax);
            sq += q, sqq += (double)q * q, sx += x[i], sxq += (double)x[i] * q;
        }
        double det = n * sqq - sq * sq;
        if (det > 0) {
            double a = (n * sxq - sq * sx) / det, c = (sx - a * sq) / n; /* x ~ a*q + c */
            if (c > 0) a = sqq > 0 ? sxq / sqq : 0, c = 0;
            if (a > 0) {
                float e = affine_err(x, n, (float)a, (float)-c, qmax);
                if (e < best) best = e, best_s = (float)a, best_o = (float)-c;
            }
        }
        float e = affine_err(x, n, s, o, qmax);
        if (e < best) best = e, best_s = s, best_o = o;
    }
    *scale = best_s, *offset = best_o;
}

/* Squared error of x ~ s*q with q = round(x/s) in [qmin, qmax]. */
static float sym_err(const float *x, int n, float s, int qmin, int qmax) {
    float is = s != 0 ? 1.0f / s : 0.0f, err = 0;
    for (int i = 0; i < n; i++) {
        int q = clampi((int)nearbyintf(x[i] * is), qmin, qmax);
        float r = s * (float)q - x[i];
        err += r * r;
    }
    return err;
}

/* The symmetric fit x ~ s*q (q in qmin..qmax, qmin = -qmax-1): the value of
 * largest magnitude (its sign kept) mapped to qmin*(1 + k/40), k = -8..8,
 * each grid's q refitted by least squares (ggml's make_q3_quants); keeps
 * the least squared error. */
static float sym_fit(const float *x, int n, int qmin, int qmax) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax == 0) return 0;
    float best_s = max / (float)qmin, best = sym_err(x, n, best_s, qmin, qmax);
    for (int k = -8; k <= 8; k++) {
        float s = max / ((float)qmin * (1.0f + (float)k / 40.0f)), is = 1 / s;
        double sxq = 0, sqq = 0;
        for (int i = 0; i < n; i++) {
            int q = clampi((int)nearbyintf(x[i] * is), qmin, qmax);
            sxq += (double)x[i] * q, sqq += (double)q * q;
        }
        if (sqq <= 0) continue;
        float ls = (float)(sxq / sqq), e = sym_err(x, n, ls, qmin, qmax);
        if (e < best) best = e, best_s = ls;
    }
    return best_s;
}

/* ---- quantisers ---- */

void quantize_row_q2_k(const float *src, void *dst, int64_t n) {
    BlockQ2_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16], offset[16], max_s = 0, max_o = 0;
        for (int j = 0; j < 16; j++) {
            affine_fit(src + 16 * j, 16, 3, &scale[j], &offset[j]);
            max_s = fmaxf(max_s, scale[j]), max_o = fmaxf(max_o, offset[j]);
        }
        /* 4-bit codes: the largest scale/min maps to 15 */
        b[i].d = f32_to_f16(max_s / 15), b[i].dmin = f32_to_f16(max_o / 15);
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        memset(b[i].qs, 0, sizeof b[i].qs);
        for (int j = 0; j < 16; j++) {
            int sc = d > 0 ? clampi((int)nearbyintf(scale[j] / d), 0, 15) : 0;
            int mn = dmin > 0 ? clampi((int)nearbyintf(offset[j] / dmin), 0, 15) : 0;
            b[i].scales[j] = (uint8_t)(sc | (mn << 4));
            float s = d * (float)sc, o = dmin * (float)mn, is = s > 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 16; l++) {
                int e = 16 * j + l, q = clampi((int)nearbyintf((src[e] + o) * is), 0, 3);
                b[i].qs[32 * (e / 128) + e % 32] |= (uint8_t)(q << (2 * ((e % 128) / 32)));
            }
        }
    }
}

void quantize_row_q3_k(const float *src, void *dst, int64_t n) {
    BlockQ3_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[16], amax = 0, max = 0;
        for (int j = 0; j < 16; j++) {
            scale[j] = sym_fit(src + 16 * j, 16, -4, 3);
            if (fabsf(scale[j]) > amax) amax = fabsf(scale[j]), max = scale[j];
        }
        /* 6-bit signed codes: the scale of largest magnitude maps to -32 */
        b[i].d = f32_to_f16(max / -32);
        float d = f16_to_f32(b[i].d);
        memset(b[i].scales, 0, 12), memset(b[i].qs, 0, sizeof b[i].qs), memset(b[i].hmask, 0, sizeof b[i].hmask);
        for (int j = 0; j < 16; j++) {
            int sc = d != 0 ? clampi((int)nearbyintf(scale[j] / d), -32, 31) : 0, u = sc + 32;
            if (j < 8) b[i].scales[j] |= (uint8_t)(u & 0xf);
            else b[i].scales[j - 8] |= (uint8_t)((u & 0xf) << 4);
            b[i].scales[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
            float s = d * (float)sc, is = s != 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 16; l++) {
                int e = 16 * j + l, q = clampi((int)nearbyintf(src[e] * is), -4, 3) + 4;
                int half = e / 128, k = (e % 128) / 32, p = e % 32;
                b[i].qs[32 * half + p] |= (uint8_t)((q & 3) << (2 * k));
                b[i].hmask[p] |= (uint8_t)((q >> 2) << (4 * half + k));
            }
        }
    }
}

void quantize_row_q5_k(const float *src, void *dst, int64_t n) {
    BlockQ5_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[8], offset[8], max_s = 0, max_o = 0;
        for (int j = 0; j < 8; j++) {
            affine_fit(src + 32 * j, 32, 31, &scale[j], &offset[j]);
            max_s = fmaxf(max_s, scale[j]), max_o = fmaxf(max_o, offset[j]);
        }
        b[i].d = f32_to_f16(max_s / 63), b[i].dmin = f32_to_f16(max_o / 63);
        float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        memset(b[i].scales, 0, 12), memset(b[i].qs, 0, sizeof b[i].qs), memset(b[i].qh, 0, sizeof b[i].qh);
        for (int j = 0; j < 8; j++) {
            int sc = d > 0 ? clampi((int)nearbyintf(scale[j] / d), 0, 63) : 0;
            int mn = dmin > 0 ? clampi((int)nearbyintf(offset[j] / dmin), 0, 63) : 0;
            /* the packing q4k_scale_min reads (formats/dtype.c) */
            if (j < 4) {
                b[i].scales[j] |= (uint8_t)sc, b[i].scales[j + 4] |= (uint8_t)mn;
            } else {
                b[i].scales[j + 4] = (uint8_t)((sc & 0xf) | ((mn & 0xf) << 4));
                b[i].scales[j - 4] |= (uint8_t)((sc >> 4) << 6), b[i].scales[j] |= (uint8_t)((mn >> 4) << 6);
            }
            float s = d * (float)sc, o = dmin * (float)mn, is = s > 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 32; l++) {
                int q = clampi((int)nearbyintf((src[32 * j + l] + o) * is), 0, 31);
                b[i].qs[32 * (j / 2) + l] |= (uint8_t)((q & 0xf) << (4 * (j % 2)));
                b[i].qh[l] |= (uint8_t)((q >> 4) << j);
            }
        }
    }
}

/* The IQ4 level nearest to v (levels ascending). */
static int iq4_nearest(float v) {
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabsf(v - (float)IQ4_NL_VALUES[k]) < fabsf(v - (float)IQ4_NL_VALUES[best])) best = k;
    return best;
}

/* IQ4_XS's fit of 32 values x ~ s*L[idx]: the largest magnitude (sign
 * kept) mapped to the level -127, then to the levels' end scaled by
 * (127 + k)/127 for k = -7..7, each refitted by least squares on the
 * indices it gives (ggml's quantize_row_iq4_nl_impl, unweighted); keeps the
 * largest sum(xL)^2/sum(LL), i.e. the least squared error. */
static float iq4_fit(const float *x) {
    float amax = 0, max = 0;
    for (int i = 0; i < 32; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
    if (amax == 0) return 0;
    float best_s = 0;
    double best = -1;
    for (int k = -7; k <= 7; k++) {
        float is = (-127.0f + (float)k) / max; /* max -> level near -127 */
        double sxq = 0, sqq = 0;
        for (int i = 0; i < 32; i++) {
            double q = IQ4_NL_VALUES[iq4_nearest(x[i] * is)];
            sxq += x[i] * q, sqq += q * q;
        }
        if (sqq > 0 && sxq * sxq / sqq > best) best = sxq * sxq / sqq, best_s = (float)(sxq / sqq);
    }
    return best_s;
}

void quantize_row_iq4_xs(const float *src, void *dst, int64_t n) {
    BlockIQ4_XS *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float scale[8], amax = 0, max = 0;
        for (int j = 0; j < 8; j++) {
            scale[j] = iq4_fit(src + 32 * j);
            if (fabsf(scale[j]) > amax) amax = fabsf(scale[j]), max = scale[j];
        }
        b[i].d = f32_to_f16(max / -32);
        float d = f16_to_f32(b[i].d);
        b[i].scales_h = 0;
        memset(b[i].scales_l, 0, sizeof b[i].scales_l), memset(b[i].qs, 0, sizeof b[i].qs);
        for (int j = 0; j < 8; j++) {
            int sc = d != 0 ? clampi((int)nearbyintf(scale[j] / d), -32, 31) : 0, u = sc + 32;
            b[i].scales_l[j / 2] |= (uint8_t)((u & 0xf) << (4 * (j % 2)));
            b[i].scales_h |= (uint16_t)((u >> 4) << (2 * j));
            float s = d * (float)sc, is = s != 0 ? 1.0f / s : 0.0f;
            for (int l = 0; l < 32; l++) {
                int q = iq4_nearest(src[32 * j + l] * is);
                b[i].qs[16 * j + l % 16] |= (uint8_t)(q << (4 * (l / 16)));
            }
        }
    }
}
