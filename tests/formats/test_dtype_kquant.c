/* Q2_K, Q3_K, Q5_K, IQ4_XS (formats/dtype_kquant.c): the type table,
 * dequantisation of hand-made blocks against values computed by hand from
 * ggml's layouts (ggml-common.h, dequantize_row_* in ggml-quants.c), and
 * the quantisers' error. */
#include <math.h>
#include <string.h>

#include "formats/dtype.h"
#include "test.h"

static void test_table(void) {
    static const struct {
        int t;
        const char *name;
        size_t bytes;
    } T[] = {{DT_Q2_K, "q2_k", 84}, {DT_Q3_K, "q3_k", 110}, {DT_Q5_K, "q5_k", 176}, {DT_IQ4_XS, "iq4_xs", 136}};
    CHECK_EQ_INT(DT_Q2_K, 10); /* ggml's numbers, as GGUF stores them */
    CHECK_EQ_INT(DT_Q3_K, 11);
    CHECK_EQ_INT(DT_Q5_K, 13);
    CHECK_EQ_INT(DT_IQ4_XS, 23);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_STR(dtype_name(T[i].t), T[i].name);
        CHECK_EQ_INT(dtype_from_name(T[i].name), T[i].t);
        CHECK_EQ_INT(dtype_block_size(T[i].t), 256);
        CHECK(dtype_block_bytes(T[i].t) == T[i].bytes);
        CHECK(dtype_is_quantized(T[i].t) && dtype_can_dequantize(T[i].t));
        CHECK(dtype_nbytes(T[i].t, 512) == 2 * T[i].bytes);
        CHECK(dtype_nbytes(T[i].t, 300) == 0);
        float x[256] = {0}, y[256];
        unsigned char buf[176];
        CHECK(quantize_row(T[i].t, x, buf, 256) == 0);
        CHECK(dequantize_row(T[i].t, buf, y, 256) == 0);
        CHECK(dequantize_row(T[i].t, buf, y, 100) == -1);
        for (int k = 0; k < 256; k++) CHECK(y[k] == 0);
    }
}

/* f16 1.0 = 0x3c00, 0.5 = 0x3800, 0.25 = 0x3400, 2.0 = 0x4000 */

/* Q2_K: element e = 128h + 32k + l is bits 2k of qs[32h + l]; sub-block
 * e/16 has scales[e/16] = sc | m << 4; x = d*sc*q - dmin*m. */
static void test_q2_k_block(void) {
    BlockQ2_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3800, b.dmin = 0x3400; /* 0.5, 0.25 */
    for (int j = 0; j < 16; j++) b.scales[j] = (uint8_t)((j % 16) | ((15 - j) << 4));
    b.qs[5] = 0xe4;       /* fields 0..3: q = 0, 1, 2, 3 for e = 5, 37, 69, 101 */
    b.qs[32 + 20] = 0x1b; /* q = 3, 2, 1, 0 for e = 148, 180, 212, 244 */
    float y[256];
    CHECK(dequantize_row(DT_Q2_K, &b, y, 256) == 0);
    /* e=5: sub 0 (sc 0, m 15): 0 - 0.25*15 */
    CHECK(y[5] == -3.75f);
    /* e=37: sub 2 (sc 2, m 13), q 1: 0.5*2*1 - 0.25*13 = -2.25 */
    CHECK(y[37] == -2.25f);
    /* e=69: sub 4 (sc 4, m 11), q 2: 4 - 2.75 */
    CHECK(y[69] == 1.25f);
    /* e=101: sub 6 (sc 6, m 9), q 3: 9 - 2.25 */
    CHECK(y[101] == 6.75f);
    /* e=148: sub 9 (sc 9, m 6), q 3: 13.5 - 1.5 */
    CHECK(y[148] == 12.0f);
    /* e=180: sub 11 (sc 11, m 4), q 2: 11 - 1 */
    CHECK(y[180] == 10.0f);
    /* e=212: sub 13 (sc 13, m 2), q 1: 6.5 - 0.5 */
    CHECK(y[212] == 6.0f);
    /* e=244: sub 15 (sc 15, m 0), q 0 */
    CHECK(y[244] == 0.0f);
    /* an untouched element of sub-block 1 (sc 1, m 14): q 0 -> -3.5 */
    CHECK(y[16] == -3.5f);
}

/* Q3_K: scale j stored + 32, low nibble in scales[j] (j < 8) or the high
 * nibble of scales[j-8], top 2 bits at 2(j/4) of scales[8 + j%4]; q = low
 * 2 bits (as Q2_K) + 4*(bit 4h+k of hmask[l]) - 4. */
static void test_q3_k_block(void) {
    BlockQ3_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3c00;
    /* scale 0 = 31 (stored 63: nibble 15, top 3), scale 5 = -32 (stored 0),
     * scale 10 = 1 (stored 33: nibble 1, top 2), others stored 32 (0) */
    uint8_t st[16];
    for (int j = 0; j < 16; j++) st[j] = 32;
    st[0] = 63, st[5] = 0, st[10] = 33;
    for (int j = 0; j < 16; j++) {
        if (j < 8) b.scales[j] |= st[j] & 0xf;
        else b.scales[j - 8] |= (uint8_t)((st[j] & 0xf) << 4);
        b.scales[8 + j % 4] |= (uint8_t)((st[j] >> 4) << (2 * (j / 4)));
    }
    b.qs[3] = 0x03;     /* e = 3: low 3 */
    b.hmask[3] = 0x01;  /* e = 3: bit 0 (h 0, k 0) set: q = 3 + 4 - 4 = 3 */
    b.qs[32 + 10] = 0x20; /* e = 128 + 64 + 10 = 202 (k 2): low 2; bit 6 of hmask[10] clear: q = -2 */
    b.qs[16 + 4] = 0x04;  /* e = 32 + 20 = 52... k 1, l 20: low 1 */
    b.hmask[20] = 0x02;   /* e = 52: bit 1 set: q = 1 */
    float y[256];
    CHECK(dequantize_row(DT_Q3_K, &b, y, 256) == 0);
    CHECK(y[3] == 31.0f * 3);           /* sub 0 */
    CHECK(y[4] == 31.0f * -4);          /* sub 0, q all zero: -4 */
    CHECK(y[202] == 0.0f * -2);         /* sub 12 (scale 0) */
    CHECK(y[52] == 0.0f);               /* sub 3: scale 0 */
    CHECK(y[80] == -32.0f * -4);        /* sub 5, q -4 */
    CHECK(y[165] == 1.0f * -4);         /* sub 10 */
    /* the scale reader */
    CHECK_EQ_INT(q3k_scale(b.scales, 0), 31);
    CHECK_EQ_INT(q3k_scale(b.scales, 5), -32);
    CHECK_EQ_INT(q3k_scale(b.scales, 10), 1);
    CHECK_EQ_INT(q3k_scale(b.scales, 7), 0);
    CHECK_EQ_INT(q3k_quant(&b, 52), 1);
}

/* Q5_K: Q4_K's scales; sub-block j's nibble from qs[32(j/2) + l] (low for
 * even j), the fifth bit j of qh[l]. */
static void test_q5_k_block(void) {
    BlockQ5_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3800, b.dmin = 0x4000; /* 0.5, 2 */
    /* sub 1: sc 3, m 5 (bytes 1 and 5); sub 6: sc 40 = 0b101000 (low 8 in
     * byte 10, top 2 in byte 2's bits 6-7), m 17 = 0b010001 (low 1 in byte
     * 10's high nibble, top 1 in byte 6's bits 6-7) */
    b.scales[1] = 3, b.scales[5] = 5;
    b.scales[10] = 0x18, b.scales[2] = 2 << 6, b.scales[6] = 1 << 6;
    b.qs[7] = 0xa0;         /* sub 1, l 7: nibble 10 */
    b.qh[7] = 0x02;         /* its fifth bit: q = 26 */
    b.qs[96 + 9] = 0x0c;    /* sub 6, l 9: nibble 12 */
    b.qh[9] = 0x40;         /* q = 28 */
    float y[256];
    CHECK(dequantize_row(DT_Q5_K, &b, y, 256) == 0);
    CHECK(y[32 + 7] == 1.5f * 26 - 10.0f);   /* 29 */
    CHECK(y[32 + 8] == -10.0f);               /* q 0 */
    CHECK(y[192 + 9] == 20.0f * 28 - 34.0f);  /* 526 */
    CHECK(y[0] == 0.0f);                      /* sub 0: sc 0, m 0 */
}

/* IQ4_XS: scale j = (nibble j%2 of scales_l[j/2] | bits 2j of scales_h << 4)
 * - 32; element l < 16 of sub-block j is level[low nibble of qs[16j + l]],
 * l >= 16 level[high nibble of qs[16j + l - 16]]. */
static void test_iq4_xs_block(void) {
    BlockIQ4_XS b;
    memset(&b, 0, sizeof b);
    b.d = 0x3400; /* 0.25 */
    /* sub 0: stored 33 (1); sub 3: stored 0 (-32); sub 7: stored 63 (31);
     * the rest stored 32 (0): nibble 0, top 2 */
    uint8_t st[8] = {33, 32, 32, 0, 32, 32, 32, 63};
    for (int j = 0; j < 8; j++) {
        b.scales_l[j / 2] |= (uint8_t)((st[j] & 0xf) << (4 * (j % 2)));
        b.scales_h |= (uint16_t)((st[j] >> 4) << (2 * j));
    }
    b.qs[2] = 0xf0;          /* sub 0: l 2 level[0] = -127, l 18 level[15] = 113 */
    b.qs[48 + 5] = 0x08;     /* sub 3: l 5 level[8] = 1, l 21 level[0] */
    b.qs[112 + 15] = 0x7c;   /* sub 7: l 15 level[12] = 53, l 31 level[7] = -10 */
    float y[256];
    CHECK(dequantize_row(DT_IQ4_XS, &b, y, 256) == 0);
    CHECK(y[2] == 0.25f * -127);
    CHECK(y[18] == 0.25f * 113);
    CHECK(y[96 + 5] == -8.0f * 1);
    CHECK(y[96 + 21] == -8.0f * -127);
    CHECK(y[224 + 15] == 7.75f * 53);
    CHECK(y[224 + 31] == 7.75f * -10);
    CHECK(y[40] == 0.0f); /* sub 1: scale 0 */
}

/* Deterministic pseudo-normal values (sum of 4 uniforms, scaled). */
static float rnd(uint64_t *s) {
    float v = 0;
    for (int k = 0; k < 4; k++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        v += (float)((*s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
    }
    return v * 1.7320508f; /* variance 1 */
}

/* Quantise -> dequantise error. Bound, per sub-block of m values with
 * range R = max - min (affine types) or the largest magnitude A (symmetric
 * ones), for a q of B levels:
 *  - the candidate fits include the plain one (step R/(B-1), or A/|qmin|),
 *    and the least-squares search keeps the smallest error, so before the
 *    scales are coded the rms error is at most that of rounding to the
 *    plain grid, step/sqrt(12) per value for values spread over the steps
 *    (rounding to nearest: |err| <= step/2, uniform: rms step/sqrt(12));
 *  - coding the scale in c bits against the largest sub-block scale moves
 *    it by at most half a code, d/2; the quants are rounded again with the
 *    coded scale, so the error is still at most half the coded step except
 *    at the range's ends, which move by (B-1)*d/2 at most; a sub-block of
 *    small scale (code 1-2) can lose up to half its range this way.
 * The rms over the row is therefore bounded by the plain grid's rms times
 * a factor for the coding, taken as 1.5 for 6-bit codes (Q3_K, Q5_K,
 * IQ4_XS: codes of the large sub-blocks are >= 16, a <= 3% change) and 2
 * for Q2_K's 4-bit codes (>= 8 on most sub-blocks: <= 6% change, plus its
 * 4-bit min); IQ4_XS's levels are non-uniform with a largest gap of 24/127
 * of the range-half (vs 1/8 for a uniform 4-bit grid), so its plain step is
 * taken as A*24/127. Gaussian rows, 16 super-blocks: the rms of the
 * plain-grid error is computed from the data, not assumed. */
static void test_quantise_error(void) {
    static const struct {
        int t, sub, levels, affine;
        double coding;
    } T[] = {{DT_Q2_K, 16, 4, 1, 2.0}, {DT_Q3_K, 16, 8, 0, 1.5}, {DT_Q5_K, 32, 32, 1, 1.5}, {DT_IQ4_XS, 32, 16, 0, 1.5}};
    enum { N = 4096 };
    static float x[N], y[N];
    static unsigned char buf[N / 256 * 176];
    uint64_t s = 42;
    for (int i = 0; i < N; i++) x[i] = rnd(&s) * (1.0f + (float)(i / 256) * 0.3f); /* super-blocks of various sizes */
    for (int c = 0; c < 4; c++) {
        CHECK(quantize_row(T[c].t, x, buf, N) == 0);
        CHECK(dequantize_row(T[c].t, buf, y, N) == 0);
        double e2 = 0, plain2 = 0;
        for (int b = 0; b < N / T[c].sub; b++) {
            const float *v = x + b * T[c].sub;
            float lo = 0, hi = v[0], amax = 0;
            for (int i = 0; i < T[c].sub; i++) lo = fminf(lo, v[i]), hi = fmaxf(hi, v[i]), amax = fmaxf(amax, fabsf(v[i]));
            double step = T[c].affine ? (hi - lo) / (T[c].levels - 1)
                          : T[c].t == DT_IQ4_XS ? amax * 24.0 / 127.0
                                                : amax / (T[c].levels / 2);
            plain2 += T[c].sub * step * step / 12;
        }
        for (int i = 0; i < N; i++) e2 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        double rms = sqrt(e2 / N), bound = T[c].coding * sqrt(plain2 / N);
        printf("  %-7s rms error %.4f, bound %.4f\n", dtype_name(T[c].t), rms, bound);
        CHECK_MSG(rms <= bound, "%s: rms error %g above %g", dtype_name(T[c].t), rms, bound);
        /* what the quantiser wrote reads back identically (the codes in range) */
        static unsigned char again[N / 256 * 176];
        CHECK(quantize_row(T[c].t, y, again, N) == 0);
        static float z[N];
        CHECK(dequantize_row(T[c].t, again, z, N) == 0);
        double e3 = 0;
        for (int i = 0; i < N; i++) e3 += ((double)z[i] - y[i]) * ((double)z[i] - y[i]);
        CHECK_MSG(sqrt(e3 / N) <= bound, "%s: requantising its own output moved it by %g", dtype_name(T[c].t), sqrt(e3 / N));
    }
}

/* Random blocks (every bit pattern of the quants and scales; the f16
 * scales finite): dequantize_row equals the definition through the field
 * readers, (d*scale)*q - dmin*min, bit for bit. */
static void test_random_blocks_match_readers(void) {
    uint64_t s = 5;
    unsigned char raw[4 * 176];
    float y[4 * 256];
    for (int ti = 0; ti < 4; ti++) {
        int t = (int[]){DT_Q2_K, DT_Q3_K, DT_Q5_K, DT_IQ4_XS}[ti];
        for (int rep = 0; rep < 8; rep++) {
            for (size_t i = 0; i < sizeof raw; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, raw[i] = (unsigned char)(s >> 56);
            size_t bb = dtype_block_bytes(t);
            for (int b = 0; b < 4; b++) {
                unsigned char *blk = raw + b * bb;
                /* finite halves in [2^-15, 2): exponent field < 16 */
                size_t dpos = t == DT_Q2_K ? 80 : t == DT_Q3_K ? 108 : 0;
                blk[dpos + 1] &= 0x3f;
                if (t == DT_Q2_K || t == DT_Q5_K) blk[dpos + 3] &= 0x3f;
            }
            CHECK(dequantize_row(t, raw, y, 4 * 256) == 0);
            for (int b = 0; b < 4; b++)
                for (int e = 0; e < 256; e++) {
                    const void *blk = raw + b * bb;
                    float want;
                    if (t == DT_Q2_K) {
                        const BlockQ2_K *q = blk;
                        int sc = q->scales[e / 16] & 0xf, mn = q->scales[e / 16] >> 4;
                        want = f16_to_f32(q->d) * (float)sc * (float)q2k_quant(q, e) - f16_to_f32(q->dmin) * (float)mn;
                    } else if (t == DT_Q3_K) {
                        const BlockQ3_K *q = blk;
                        want = f16_to_f32(q->d) * (float)q3k_scale(q->scales, e / 16) * (float)q3k_quant(q, e);
                    } else if (t == DT_Q5_K) {
                        const BlockQ5_K *q = blk;
                        int sc, mn;
                        q5k_scale_min(e / 32, q->scales, &sc, &mn);
                        want = f16_to_f32(q->d) * (float)sc * (float)q5k_quant(q, e) - f16_to_f32(q->dmin) * (float)mn;
                    } else {
                        const BlockIQ4_XS *q = blk;
                        want = f16_to_f32(q->d) * (float)iq4xs_scale(q, e / 32) * (float)IQ4_NL_VALUES[iq4xs_index(q, e)];
                    }
                    CHECK_MSG(y[256 * b + e] == want, "%s: block %d element %d: %g, want %g", dtype_name(t), b, e,
                              y[256 * b + e], want);
                }
        }
    }
}

int main(void) {
    RUN(test_table);
    RUN(test_q2_k_block);
    RUN(test_q3_k_block);
    RUN(test_q5_k_block);
    RUN(test_iq4_xs_block);
    RUN(test_random_blocks_match_readers);
    RUN(test_quantise_error);
    return test_summary();
}
