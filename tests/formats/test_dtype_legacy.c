/* The 32-element types Q4_1, Q5_0, Q5_1, IQ4_NL (formats/dtype_legacy.c):
 * the type table, dequantisation of hand-made blocks against values
 * computed here from ggml's definitions (bit-exact: every value is a small
 * integer times a power of two), and quantise -> dequantise within each
 * format's derived error bound on random rows. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "base/err.h"
#include "formats/dtype.h"
#include "test.h"

static void test_type_table(void) {
    const int t[4] = {DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_IQ4_NL}, bytes[4] = {20, 22, 24, 18};
    const char *names[4] = {"q4_1", "q5_0", "q5_1", "iq4_nl"};
    const int ids[4] = {3, 6, 7, 20}; /* ggml_type, as GGUF stores it */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(t[i], ids[i]);
        CHECK(dtype_valid(t[i]) && dtype_is_quantized(t[i]) && dtype_can_dequantize(t[i]));
        CHECK_EQ_INT(dtype_block_size(t[i]), 32);
        CHECK_EQ_INT((int)dtype_block_bytes(t[i]), bytes[i]);
        CHECK_EQ_INT((int)dtype_nbytes(t[i], 896), 28 * bytes[i]); /* Qwen2.5-0.5B's rows */
        CHECK_EQ_INT((int)dtype_nbytes(t[i], 48), 0);             /* not whole blocks */
        CHECK_EQ_STR(dtype_name(t[i]), names[i]);
        CHECK_EQ_INT(dtype_from_name(names[i]), t[i]);
        float x[33] = {0}, y[33];
        CHECK_EQ_INT(dequantize_row(t[i], x, y, 33), -1);
        CHECK_EQ_INT(quantize_row(t[i], x, y, 33), -1);
    }
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* Hand-made blocks. The quants differ between the halves (element j in
 * byte j's low nibble, j + 16 in its high one) and the fifth bits are an
 * irregular word, so swapped nibbles, halves or bit orders show:
 *   low nibble of byte j = j, high = (5j + 3) mod 16,
 *   qh = 0xA5C3F00F (little-endian; bit j is element j's fifth bit).
 * Scales are f16 powers of two and small sums of them, so every value is
 * exact in float and the comparison is ==. */
static const uint32_t QH = 0xA5C3F00Fu;
static int nib(int e) { return e < 16 ? e : (5 * (e - 16) + 3) % 16; }
static int fifth(int e) { return (int)(QH >> e & 1); }
static void fill_nibbles(uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(nib(j) | nib(j + 16) << 4);
}

static void test_known_blocks(void) {
    float y[64];
    uint8_t b[48];
    /* Q4_1: d = 0.5 (0x3800), m = -1.25 (0xBD00): x = 0.5 q - 1.25 */
    memset(b, 0, sizeof b);
    put16(b, 0x3800), put16(b + 2, 0xBD00), fill_nibbles(b + 4);
    CHECK_OK(dequantize_row(DT_Q4_1, b, y, 32), &(Err){0});
    for (int e = 0; e < 32; e++) CHECK_MSG(y[e] == 0.5f * nib(e) - 1.25f, "q4_1 element %d: %g", e, y[e]);
    CHECK(y[0] == -1.25f && y[15] == 6.25f && y[16] == 0.25f && y[17] == 2.75f);
    /* Q5_0: d = 0.25 (0x3400), qh, nibbles: x = 0.25 (q - 16), q = nibble + 16 * fifth bit */
    memset(b, 0, sizeof b);
    put16(b, 0x3400);
    for (int i = 0; i < 4; i++) b[2 + i] = (uint8_t)(QH >> 8 * i);
    fill_nibbles(b + 6);
    CHECK_OK(dequantize_row(DT_Q5_0, b, y, 32), &(Err){0});
    for (int e = 0; e < 32; e++)
        CHECK_MSG(y[e] == 0.25f * (nib(e) + 16 * fifth(e) - 16), "q5_0 element %d: %g", e, y[e]);
    CHECK(y[0] == 0.0f && y[4] == -3.0f && y[31] == 3.5f); /* e31: nibble 78 mod 16 = 14, fifth bit 1 */
    /* Q5_1: d = 0.125 (0x3000), m = 2 (0x4000): x = 0.125 q + 2 */
    memset(b, 0, sizeof b);
    put16(b, 0x3000), put16(b + 2, 0x4000);
    for (int i = 0; i < 4; i++) b[4 + i] = (uint8_t)(QH >> 8 * i);
    fill_nibbles(b + 8);
    CHECK_OK(dequantize_row(DT_Q5_1, b, y, 32), &(Err){0});
    for (int e = 0; e < 32; e++)
        CHECK_MSG(y[e] == 0.125f * (nib(e) + 16 * fifth(e)) + 2.0f, "q5_1 element %d: %g", e, y[e]);
    /* IQ4_NL: d = -0.5 (0xB800): x = -0.5 * grid[q], grid = ggml's kvalues_iq4nl */
    static const int grid[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    memset(b, 0, sizeof b);
    put16(b, 0xB800), fill_nibbles(b + 2);
    /* and a second block, d = 2 (0x4000), all nibbles 0xF0: 2*grid[0] low, 2*grid[15] high */
    put16(b + 18, 0x4000), memset(b + 20, 0xF0, 16);
    CHECK_OK(dequantize_row(DT_IQ4_NL, b, y, 64), &(Err){0});
    for (int e = 0; e < 32; e++) CHECK_MSG(y[e] == -0.5f * grid[nib(e)], "iq4_nl element %d: %g", e, y[e]);
    CHECK(y[0] == 63.5f && y[15] == -56.5f && y[32] == -254.0f && y[63] == 226.0f);
    for (int i = 0; i < 16; i++) CHECK_EQ_INT(IQ4_NL_VALUES[i], grid[i]);
}

/* Blocks the quantisers are known to produce (ggml's rounding). */
static void test_known_quantisation(void) {
    float x[32], y[32];
    uint8_t b[24];
    /* Q4_1 of x = 0.5 k - 1.25 (k = nib(e)), min -1.25 and max 6.25 both
     * present: d = 7.5 / 15 = 0.5 exactly, (x - min)/d = k, so the block is
     * the hand-made one and dequantises to x exactly. */
    for (int e = 0; e < 32; e++) x[e] = 0.5f * nib(e) - 1.25f;
    quantize_row_q4_1(x, b, 32);
    CHECK_EQ_INT(b[0] | b[1] << 8, 0x3800);
    CHECK_EQ_INT(b[2] | b[3] << 8, 0xBD00);
    for (int j = 0; j < 16; j++) CHECK_EQ_INT(b[4 + j], nib(j) | nib(j + 16) << 4);
    dequantize_row(DT_Q4_1, b, y, 32);
    for (int e = 0; e < 32; e++) CHECK(y[e] == x[e]);
    /* Q5_0 of x = 0.25 (q - 16) with q = 0 present (x = -4, the largest
     * magnitude, negative): d = -4 / -16 = 0.25, x/d + 16.5 = q + 0.5. */
    for (int e = 0; e < 32; e++) x[e] = 0.25f * ((nib(e) + 16 * fifth(e)) - 16);
    x[5] = -4.0f; /* element 5: q 0 */
    quantize_row_q5_0(x, b, 32);
    CHECK_EQ_INT(b[0] | b[1] << 8, 0x3400);
    uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
    CHECK_EQ_INT((int)qh, (int)(QH & ~(1u << 5)));
    dequantize_row(DT_Q5_0, b, y, 32);
    for (int e = 0; e < 32; e++) CHECK_MSG(y[e] == x[e], "q5_0 element %d: %g, expected %g", e, y[e], x[e]);
    /* Q5_1: x = 0.125 q + 2 with q 0 and 31 present: d = 3.875/31 = 0.125 */
    for (int e = 0; e < 32; e++) x[e] = 0.125f * (nib(e) + 16 * fifth(e)) + 2.0f;
    x[5] = 2.0f, x[6] = 2.0f + 0.125f * 31;
    quantize_row_q5_1(x, b, 32);
    CHECK_EQ_INT(b[0] | b[1] << 8, 0x3000);
    CHECK_EQ_INT(b[2] | b[3] << 8, 0x4000);
    dequantize_row(DT_Q5_1, b, y, 32);
    for (int e = 0; e < 32; e++) CHECK_MSG(y[e] == x[e], "q5_1 element %d: %g, expected %g", e, y[e], x[e]);
    /* IQ4_NL: a block on the grid (d = 0.5, values grid[nib(e)]) comes back
     * exactly: the candidate mapping the largest magnitude (-63.5 = 0.5 *
     * -127) to -127 has zero error, so the search keeps d = 0.5 */
    for (int e = 0; e < 32; e++) x[e] = 0.5f * IQ4_NL_VALUES[nib(e)];
    quantize_row_iq4_nl(x, b, 32);
    CHECK_EQ_INT(b[0] | b[1] << 8, 0x3800);
    dequantize_row(DT_IQ4_NL, b, y, 32);
    for (int e = 0; e < 32; e++) CHECK_MSG(y[e] == x[e], "iq4_nl element %d: %g, expected %g", e, y[e], x[e]);
    /* an all-zero block: d = 0, every quant the grid value nearest 0 (1,
     * index 8, as ggml), dequantised to 0 */
    memset(x, 0, sizeof x);
    quantize_row_iq4_nl(x, b, 32);
    CHECK_EQ_INT(b[0] | b[1] << 8, 0);
    CHECK_EQ_INT(b[2], 0x88);
    dequantize_row(DT_IQ4_NL, b, y, 32);
    for (int e = 0; e < 32; e++) CHECK(y[e] == 0);
}

/* Random rows with the shapes weights have: normal values, a few blocks
 * shifted (so Q4_1/Q5_1's min matters), some with one large outlier, one
 * all equal, one all zero. */
static void random_row(float *x, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = rng_normal(&r) * 0.05f;
    for (int b = 0; b < n / 32; b++) {
        if (b % 5 == 1)
            for (int j = 0; j < 32; j++) x[32 * b + j] += 0.3f;
        if (b % 7 == 2) x[32 * b + (int)rng_below(&r, 32)] *= 40;
        if (b % 11 == 3)
            for (int j = 0; j < 32; j++) x[32 * b + j] = -0.125f;
        if (b % 13 == 4)
            for (int j = 0; j < 32; j++) x[32 * b + j] = 0;
    }
}

/* Quantise -> dequantise error bounds, per block of 32 values x (u = 2^-24
 * the float rounding unit, h = 2^-11 the f16 one; stored scales are the f16
 * roundings of exact ones: |d' - d| <= h|d|, |m' - min| <= h|min| for
 * values in f16's normal range, which these are):
 *   Q4_1/Q5_1 (top T = 15/31, d = (max - min)/T): q = round((x - min)/d) in
 *     0..T, so |x - (min + q d)| <= d/2; the stored d', m' move a value by
 *     <= T h d + h |min|; the float steps (x - min, the product, q d' + m')
 *     add <= 8u (|x| + |min| + T d). Bound: d/2 + T h d + h|min| + 8u(...).
 *   Q5_0 (d = max/-16, |d| = amax/16): x/d in [-16, 16]; q = x/d + 16
 *     rounded, clamped to 31, so the error is <= |d|/2 below x/d = 15.5
 *     and <= |d| above (the clamped top step); + 16 h |d| + 8u amax.
 *   IQ4_NL (d chosen by the search, weights x^2): measured in the norm the
 *     search minimises, ||x (x - x')|| = sqrt(sum x^2 (x - x')^2). One
 *     candidate maps max to -127, i.e. scale c = amax/127 with every x/c
 *     in [-127, 127], whose nearest grid value is within 14 (the largest
 *     half-gap is 23/2; the top end 113 is 14 below 127): error <= 14 c
 *     each. The least-squares refit, the choice of the best candidate and
 *     the final re-rounding to the grid (nearest value for the kept d) can
 *     only lower the weighted error; f16's d' then moves each value by
 *     <= 127 h |d|. Bound: (14 c + 127 h |d| (1 + h)) ||x||, plus 1e-4
 *     relative for the search's float sums. */
static void check_roundtrip(int t, const float *x, int n) {
    const double u = 0x1p-24, h = 0x1p-11;
    float *y = malloc((size_t)n * sizeof(float));
    uint8_t *q = malloc(dtype_nbytes(t, n));
    CHECK_EQ_INT(quantize_row(t, x, q, n), 0);
    CHECK_EQ_INT(dequantize_row(t, q, y, n), 0);
    double worst = 0; /* error / bound, the largest */
    for (int b = 0; b < n / 32; b++) {
        const float *xb = x + 32 * b, *yb = y + 32 * b;
        double mn = xb[0], mx = xb[0], amax = 0, sx2 = 0, werr2 = 0;
        for (int j = 0; j < 32; j++) {
            mn = fmin(mn, xb[j]), mx = fmax(mx, xb[j]), amax = fmax(amax, fabs(xb[j]));
            sx2 += (double)xb[j] * xb[j], werr2 += (double)xb[j] * xb[j] * ((double)xb[j] - yb[j]) * ((double)xb[j] - yb[j]);
        }
        if (t == DT_IQ4_NL) {
            uint16_t hd;
            memcpy(&hd, q + 18 * b, 2);
            double d = fabs(f16_to_f32(hd)), bound = (14 * amax / 127 + 127 * h * d * (1 + h)) * sqrt(sx2) * (1 + 1e-4);
            if (sx2 > 0) worst = fmax(worst, sqrt(werr2) / bound);
            else CHECK(werr2 == 0);
            continue;
        }
        for (int j = 0; j < 32; j++) {
            double err = fabs((double)xb[j] - yb[j]), bound;
            if (t == DT_Q5_0) {
                double d = amax / 16, r = d > 0 ? fabs(xb[j] / d) : 0;
                /* the clamped top step is on the side opposite the largest magnitude */
                bound = (r < 15.25 ? 0.5 : 1.0) * d + 16 * h * d + 8 * u * amax;
            } else {
                int T = t == DT_Q4_1 ? 15 : 31;
                double d = (mx - mn) / T;
                bound = d / 2 + T * h * d + h * fabs(mn) + 8 * u * (fabs(xb[j]) + fabs(mn) + T * d);
            }
            if (err > bound) CHECK_MSG(err <= bound, "%s block %d element %d: error %g > bound %g", dtype_name(t), b, j, err, bound);
            if (bound > 0) worst = fmax(worst, err / bound);
        }
    }
    printf("  %-6s n=%d: largest error / bound %.3f\n", dtype_name(t), n, worst);
    CHECK(worst <= 1.0);
    free(y), free(q);
}

static void test_roundtrip_bounds(void) {
    const int t[4] = {DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_IQ4_NL};
    const int lens[3] = {32, 896, 32 * 61};
    for (int l = 0; l < 3; l++) {
        float *x = malloc((size_t)lens[l] * sizeof(float));
        random_row(x, lens[l], 100 + (uint64_t)l);
        for (int i = 0; i < 4; i++) check_roundtrip(t[i], x, lens[l]);
        free(x);
    }
}

/* The finer formats are finer: relative rms error on normal rows, Q5_1 <
 * Q5_0 < Q4_1 ~ IQ4_NL < Q4_0 (5 bits halve the step of 4; IQ4_NL's grid
 * is densest where normal values are). A quantiser that rounded the wrong
 * way or used the wrong scale would break the order. */
static double rel_rms(int t, const float *x, int n) {
    float *y = malloc((size_t)n * sizeof(float));
    uint8_t *q = malloc(dtype_nbytes(t, n));
    quantize_row(t, x, q, n);
    dequantize_row(t, q, y, n);
    double e = 0, s = 0;
    for (int i = 0; i < n; i++) e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]), s += (double)x[i] * x[i];
    free(y), free(q);
    return sqrt(e / s);
}

static void test_relative_precision(void) {
    enum { N = 32 * 256 };
    static float x[N];
    Rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < N; i++) x[i] = rng_normal(&r);
    double e40 = rel_rms(DT_Q4_0, x, N), e41 = rel_rms(DT_Q4_1, x, N), e50 = rel_rms(DT_Q5_0, x, N),
           e51 = rel_rms(DT_Q5_1, x, N), enl = rel_rms(DT_IQ4_NL, x, N);
    printf("  relative rms error: q4_0 %.4f q4_1 %.4f iq4_nl %.4f q5_0 %.4f q5_1 %.4f\n", e40, e41, enl, e50, e51);
    CHECK(e51 < e50 && e50 < e41 && e50 < enl && e41 < e40 && enl < e40);
}

int main(void) {
    RUN(test_type_table);
    RUN(test_known_blocks);
    RUN(test_known_quantisation);
    RUN(test_roundtrip_bounds);
    RUN(test_relative_precision);
    return test_summary();
}
