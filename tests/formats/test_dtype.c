#include <stdint.h>
#include <stdlib.h>

#include "base/rng.h"
#include "formats/dtype.h"
#include "formats/tensor.h"
#include "base/cpu_features.h"
#include "test.h"

static void test_type_table(void) {
    CHECK_EQ_INT(dtype_block_size(DT_Q8_0), 32);
    CHECK_EQ_INT(dtype_block_bytes(DT_Q8_0), 34);
    CHECK_EQ_INT(dtype_block_bytes(DT_Q4_0), 18);
    CHECK_EQ_INT(dtype_block_bytes(DT_Q4_K), 144);
    CHECK_EQ_INT(dtype_block_bytes(DT_Q6_K), 210);
    CHECK_EQ_INT(dtype_nbytes(DT_Q4_K, 512), 288);
    CHECK_EQ_INT(dtype_nbytes(DT_Q8_0, 33), 0); /* not whole blocks */
    CHECK_EQ_INT(dtype_nbytes(DT_BF16, 3), 6);
    CHECK_EQ_INT(dtype_from_name("BF16"), DT_BF16);
    CHECK_EQ_INT(dtype_from_name("q8_0"), DT_Q8_0);
    CHECK_EQ_INT(dtype_from_name("I64"), DT_I64);
    CHECK_EQ_INT(dtype_from_name("nope"), DT_INVALID);
    CHECK_EQ_STR(dtype_st_name(DT_F16), "F16");
    CHECK(dtype_st_name(DT_Q8_0) == NULL);
}

static void test_f16_known_values(void) {
    CHECK_EQ_INT(f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(f32_to_f16(0.5f), 0x3800);
    CHECK_EQ_INT(f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even = inf */
    CHECK_EQ_INT(f32_to_f16(0x1p-24f), 0x0001);
    CHECK_EQ_INT(f32_to_f16(0x1p-25f), 0x0000);     /* tie to even: 0 */
    CHECK_EQ_INT(f32_to_f16(0x1.8p-24f), 0x0002);   /* 1.5 ulp -> 2 */
    CHECK_EQ_INT(f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
    CHECK_EQ_INT(f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02);
    CHECK_EQ_INT(f32_to_f16(INFINITY), 0x7c00);
    CHECK(isnan(f16_to_f32(f32_to_f16(NAN))));
    CHECK(f16_to_f32(0x3555) > 0.333f && f16_to_f32(0x3555) < 0.3334f);
    CHECK(f16_to_f32(0x0001) == 0x1p-24f);
}

static void test_f16_roundtrip_every_value(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* nan */
        CHECK_EQ_INT(f32_to_f16(f16_to_f32((uint16_t)h)), h);
    }
}

/* the row converter agrees with the scalar one on every half value, both
 * with F16C (when the CPU has it) and with the scalar loop forced; starting
 * one value in (odd address) and with lengths that leave a tail of 1..7 */
static void f16_rows_check(const char *path) {
    uint16_t *h = malloc(65536 * 2 + 2);
    float *f = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    h[65536] = 0x3c00;
    int64_t lens[] = {65536, 65535, 65529, 7, 1, 0};
    for (int k = 0; k < 6; k++)
        for (int off = 0; off <= 1; off++) {
            int64_t n = lens[k];
            memset(f, 0xff, 65536 * 4);
            CHECK(dequantize_row(DT_F16, h + off, f, n) == 0);
            for (int64_t i = 0; i < n; i++) {
                float s = f16_to_f32(h[i + off]);
                CHECK_MSG(isnan(s) ? isnan(f[i]) : memcmp(&s, &f[i], 4) == 0, "%s n %lld off %d half %04x: %g vs %g",
                          path, (long long)n, off, h[i + off], f[i], s);
            }
        }
    free(h);
    free(f);
}

static void test_f16_row_every_value(void) {
    int hw = dtype_f16_hw(-1);
#if defined(__x86_64__)
    /* the portable (x86-64-v2) build still converts with F16C where the CPU
     * has it (the kernels' probe says so): without the run-time choice F16
     * loading is ~20x slower */
    CHECK_EQ_INT(hw, (cpu_features()->bits & CPU_F16C) != 0);
#endif
    f16_rows_check(hw ? "f16c" : "scalar");
    CHECK_EQ_INT(dtype_f16_hw(0), 0);
    f16_rows_check("scalar (forced)");
    CHECK_EQ_INT(dtype_f16_hw(1), hw);
}

static void test_bf16(void) {
    CHECK_EQ_INT(f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(f32_to_bf16(-3.0f), 0xc040);
    CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80); /* tie to even */
    CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1.8p-8f), 0x3f81);
    CHECK_EQ_INT(f32_to_bf16(1.0f + 0x1.8p-7f), 0x3f82); /* tie to even */
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))));
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        CHECK_EQ_INT(f32_to_bf16(bf16_to_f32((uint16_t)h)), h);
    }
}

static void test_q8_0_roundtrip(void) {
    Rng r;
    rng_seed(&r, 7);
    float x[128], y[128];
    for (int i = 0; i < 128; i++) x[i] = (float)(rng_uniform(&r) * 2 - 1) * (1 + i / 32);
    uint8_t q[4 * 34];
    quantize_row_q8_0(x, q, 128);
    CHECK_OK(dequantize_row(DT_Q8_0, q, y, 128), &(Err){0});
    for (int b = 0; b < 4; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        /* half a quantisation step, plus the f16 rounding of the scale */
        float tol = amax / 127 * 0.5f + amax * 1e-3f;
        for (int j = 0; j < 32; j++) CHECK_NEAR(y[32 * b + j], x[32 * b + j], tol);
    }
    /* a known block: d = 127/127 = 1, values are exact integers */
    float k[32];
    for (int j = 0; j < 32; j++) k[j] = (float)(j * 4 - 64 > 127 ? 127 : j * 4 - 64);
    k[0] = -127;
    quantize_row_q8_0(k, q, 32);
    CHECK_EQ_INT(q[0] | (q[1] << 8), 0x3c00); /* d = 1.0 in f16 */
    CHECK_EQ_INT((int8_t)q[2], -127);
    CHECK_EQ_INT((int8_t)q[2 + 5], -44);
    dequantize_row(DT_Q8_0, q, y, 32);
    for (int j = 0; j < 32; j++) CHECK(y[j] == k[j]);
}

static void test_q4_0_known_and_roundtrip(void) {
    /* A known block, asymmetric between its halves (ggml: element j in
     * byte j's low nibble, element j + 16 in its high one), so swapped
     * nibbles or halves show. Values 0.5·(k - 8) with k the intended
     * nibble; x[0] = -4 has the largest magnitude, so d = -4/-8 = 0.5
     * exactly, and x/d + 8.5 = k + 0.5 truncates to k. First half
     * k = j, second half k = (3j + 5) mod 16. */
    float x[32], y[32];
    for (int j = 0; j < 16; j++) {
        x[j] = 0.5f * (float)(j - 8);
        x[j + 16] = 0.5f * (float)((3 * j + 5) % 16 - 8);
    }
    uint8_t q[18];
    quantize_row_q4_0(x, q, 32);
    CHECK_EQ_INT(q[0] | (q[1] << 8), 0x3800); /* d = 0.5 in f16 */
    CHECK_EQ_INT(q[2 + 0], 0x50);  /* element 0: k 0; element 16: k 5 */
    CHECK_EQ_INT(q[2 + 1], 0x81);  /* element 1: 1; element 17: 8 */
    CHECK_EQ_INT(q[2 + 2], 0xb2);  /* element 2: 2; element 18: 11 */
    CHECK_EQ_INT(q[2 + 15], 0x2f); /* element 15: 15; element 31: 50 mod 16 = 2 */
    CHECK_OK(dequantize_row(DT_Q4_0, q, y, 32), &(Err){0});
    for (int j = 0; j < 32; j++) CHECK_MSG(y[j] == x[j], "element %d: %g, expected %g", j, y[j], x[j]);
    /* the same bytes read back by hand: d·(nibble - 8) */
    uint8_t hand[18] = {0x00, 0x38, 0x50, 0x81, 0xb2};
    for (int j = 3; j < 16; j++) hand[2 + j] = (uint8_t)(j | ((3 * j + 5) % 16) << 4);
    CHECK_OK(dequantize_row(DT_Q4_0, hand, y, 32), &(Err){0});
    CHECK(y[0] == -4.0f && y[16] == -1.5f && y[1] == -3.5f && y[17] == 0.0f && y[18] == 1.5f && y[31] == -3.0f);
    Rng r;
    rng_seed(&r, 9);
    float a[64], b[64];
    uint8_t qa[36];
    for (int i = 0; i < 64; i++) a[i] = (float)(rng_uniform(&r) * 2 - 1);
    quantize_row_q4_0(a, qa, 64);
    dequantize_row(DT_Q4_0, qa, b, 64);
    for (int blk = 0; blk < 2; blk++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(a[32 * blk + j]));
        /* half a step, or one step for the value clamped at q = 15 */
        for (int j = 0; j < 32; j++) CHECK_NEAR(b[32 * blk + j], a[32 * blk + j], amax / 8 + amax * 2e-3f);
    }
}

/* Per-element readings of the K-quant layouts, written independently of
 * the block loops in dtype.c, over random block bytes. */
static float q4k_elem(const uint8_t *blk, int i) {
    float d = f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
    float dmin = f16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
    const uint8_t *s = blk + 4, *qs = blk + 16;
    int sub = i / 32, pair = i / 64, w = i % 64;
    int q = w < 32 ? qs[pair * 32 + w] & 15 : qs[pair * 32 + w - 32] >> 4;
    int sc, mn;
    if (sub < 4) {
        sc = s[sub] & 63;
        mn = s[sub + 4] & 63;
    } else {
        sc = (s[sub + 4] & 15) + ((s[sub - 4] >> 6) * 16);
        mn = (s[sub + 4] >> 4) + ((s[sub] >> 6) * 16);
    }
    return d * sc * q - dmin * mn;
}

static float q6k_elem(const uint8_t *blk, int i) {
    const uint8_t *ql = blk, *qh = blk + 128;
    const int8_t *sc = (const int8_t *)(blk + 192);
    float d = f16_to_f32((uint16_t)(blk[208] | blk[209] << 8));
    int h = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
    uint8_t lo = ql[h * 64 + l + (quarter & 1) * 32];
    int low4 = quarter >= 2 ? lo >> 4 : lo & 15;
    int high2 = (qh[h * 32 + l] >> (2 * quarter)) & 3;
    int scale = sc[h * 8 + l / 16 + 2 * quarter];
    return d * scale * ((low4 | high2 << 4) - 32);
}

static void test_k_quants_match_layout(void) {
    Rng r;
    rng_seed(&r, 11);
    uint8_t b4[2 * 144], b6[2 * 210];
    for (size_t i = 0; i < sizeof b4; i++) b4[i] = (uint8_t)rng_u64(&r);
    for (size_t i = 0; i < sizeof b6; i++) b6[i] = (uint8_t)rng_u64(&r);
    /* keep the f16 scales finite and small */
    for (int k = 0; k < 2; k++) {
        b4[k * 144 + 1] = 0x20;
        b4[k * 144 + 3] = 0x21;
        b6[k * 210 + 209] = 0x22;
    }
    float y[512];
    CHECK_OK(dequantize_row(DT_Q4_K, b4, y, 512), &(Err){0});
    for (int i = 0; i < 512; i++) CHECK_NEAR(y[i], q4k_elem(b4 + (i / 256) * 144, i % 256), 1e-6 * (1 + fabsf(y[i])));
    CHECK_OK(dequantize_row(DT_Q6_K, b6, y, 512), &(Err){0});
    for (int i = 0; i < 512; i++) CHECK_NEAR(y[i], q6k_elem(b6 + (i / 256) * 210, i % 256), 1e-6 * (1 + fabsf(y[i])));
    CHECK(dequantize_row(DT_Q6_K, b6, y, 100) == -1);
}

/* Blocks built byte by byte, with the values worked out by hand from
 * ggml's documented layout (not from dtype.c's reading of it). */
static void test_k_quants_hand_block(void) {
    /* Q4_K: d = 0.5, dmin = 0.25; x = d*sc*q - dmin*m */
    uint8_t b[144] = {0};
    b[1] = 0x38, b[3] = 0x34;    /* f16 0.5, 0.25 */
    uint8_t *s = b + 4, *qs = b + 16;
    s[0] = 3, s[4] = 2;          /* sub-block 0: sc 3, m 2 (high bits of s[0], s[4]: 0) */
    s[1] = 0x81, s[5] = 0x44;    /* sub-block 1: sc 1, m 4; top bits 2 and 1 go to sub-block 5 */
    s[8] = 0x13;                 /* sub-block 4: sc 3 | 0<<4, m 1 | 0<<4 */
    s[9] = 0xa5;                 /* sub-block 5: sc 5 | 2<<4 = 37, m 10 | 1<<4 = 26 */
    qs[0] = 0x97;                /* element 0 (sub-block 0): 7; element 32 (sub-block 1): 9 */
    qs[64 + 3] = 0xc1;           /* element 131 (sub-block 4): 1; element 163 (sub-block 5): 12 */
    float y[256];
    CHECK_OK(dequantize_row(DT_Q4_K, b, y, 256), &(Err){0});
    CHECK(y[0] == 10.0f);        /* 0.5*3*7 - 0.25*2 */
    CHECK(y[1] == -0.5f);        /* q = 0: -0.25*2 */
    CHECK(y[32] == 3.5f);        /* 0.5*1*9 - 0.25*4 */
    CHECK(y[131] == 1.25f);      /* 0.5*3*1 - 0.25*1 */
    CHECK(y[163] == 215.5f);     /* 0.5*37*12 - 0.25*26 */
    CHECK(y[255] == 0.0f);       /* sub-block 7: sc = m = 0 */

    /* Q6_K: d = 0.5; x = d*sc*(q - 32), q = low 4 bits | high 2 bits << 4 */
    uint8_t c[210] = {0};
    uint8_t *ql = c, *qh = c + 128;
    int8_t *sc = (int8_t *)(c + 192);
    c[209] = 0x38;               /* f16 0.5 */
    sc[0] = 2, sc[1] = -3, sc[2] = 4, sc[4] = 1, sc[15] = -7;
    ql[0] = 0xe5;                /* element 0: low 5; element 64: low 14 */
    qh[0] = 0x0b;                /* element 0: high 3; element 32: high 2; element 64: high 0 */
    ql[32] = 0x01;               /* element 32: low 1 */
    ql[64 + 32 + 20] = 0xf0;     /* element 128+96+20 = 244: low 15 */
    qh[32 + 20] = 0xc0;          /* element 244: high 3 */
    CHECK_OK(dequantize_row(DT_Q6_K, c, y, 256), &(Err){0});
    CHECK(y[0] == 21.0f);        /* 0.5*2*(53-32) */
    CHECK(y[17] == 48.0f);       /* q = 0, scale sc[1]: 0.5*-3*-32 */
    CHECK(y[32] == 2.0f);        /* 0.5*4*(33-32) */
    CHECK(y[64] == -9.0f);       /* 0.5*1*(14-32) */
    CHECK(y[244] == -108.5f);    /* 0.5*-7*(63-32) */
}

/* RMS of x - dequantise(quantise(x)) over n values, relative to rms(x). */
static double roundtrip_rel_rms(int t, const float *x, int n, double *max_err) {
    void *q = malloc(dtype_nbytes(t, n));
    float *y = malloc((size_t)n * sizeof *y);
    *max_err = 0;
    if (quantize_row(t, x, q, n) || dequantize_row(t, q, y, n)) *max_err = INFINITY;
    double se = 0, sx = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)y[i] - x[i];
        se += d * d, sx += (double)x[i] * x[i];
        *max_err = fabs(d) > *max_err ? fabs(d) : *max_err;
    }
    free(q), free(y);
    return sqrt(se / sx);
}

/* The K-quant quantisers: error bounds on Gaussian rows (values a
 * normal quantiser of these bit widths reaches: Q4_K ~ 4.5 bits/weight
 * beats Q4_0's 4.5 bits, Q6_K ~ 6.6 bits is ~4x finer), and edge rows
 * (constant, zero, one outlier) that must come back exactly or bounded. */
static void test_k_quants_roundtrip(void) {
    enum { N = 256 * 16 };
    float *x = malloc(N * sizeof *x);
    Rng r;
    rng_seed(&r, 21);
    for (int i = 0; i < N; i++) x[i] = (float)rng_normal(&r) * (i < N / 2 ? 1.0f : 0.01f);
    double m4, m6, m0, m8;
    double e4 = roundtrip_rel_rms(DT_Q4_K, x, N, &m4), e6 = roundtrip_rel_rms(DT_Q6_K, x, N, &m6);
    double e0 = roundtrip_rel_rms(DT_Q4_0, x, N, &m0), e8 = roundtrip_rel_rms(DT_Q8_0, x, N, &m8);
    printf("  relative rms error: q4_0 %.4f, q4_k %.4f, q6_k %.4f, q8_0 %.4f\n", e0, e4, e6, e8);
    CHECK_MSG(e4 < 0.10, "q4_k relative rms error %.4f", e4);
    CHECK_MSG(e4 < e0, "q4_k error %.4f not below q4_0's %.4f", e4, e0);
    CHECK_MSG(e6 < 0.025, "q6_k relative rms error %.4f", e6);
    CHECK_MSG(e6 < e4 / 3, "q6_k error %.4f not well below q4_k's %.4f", e6, e4);
    /* the largest error: a few quantisation steps of the widest sub-block
     * (|x| < ~4.5 here, 16 steps in Q4_K, 64 in Q6_K) */
    CHECK_MSG(m4 < 0.6, "q4_k max error %.3f", m4);
    CHECK_MSG(m6 < 0.12, "q6_k max error %.3f", m6);
    /* edge rows */
    float y[256];
    uint8_t q[210];
    for (int t = 0; t < 2; t++) {
        int type = t ? DT_Q6_K : DT_Q4_K;
        for (int i = 0; i < 256; i++) x[i] = 0;
        CHECK(quantize_row(type, x, q, 256) == 0);
        CHECK(dequantize_row(type, q, y, 256) == 0);
        for (int i = 0; i < 256; i++) CHECK(y[i] == 0);
        for (int i = 0; i < 256; i++) x[i] = i == 77 ? 100.0f : 0.001f * (float)(i % 7);
        CHECK(quantize_row(type, x, q, 256) == 0);
        CHECK(dequantize_row(type, q, y, 256) == 0);
        CHECK_NEAR(y[77], 100.0f, 1.0f);
        /* the sub-block scales are coded relative to the largest, so
         * sub-blocks 10^4 times narrower than the outlier's lose their
         * resolution; their error stays within their own range (0.006) */
        for (int i = 0; i < 256; i++)
            if (i / 32 != 77 / 32) CHECK_NEAR(y[i], x[i], 0.0061f);
    }
    /* constant: the min alone (m = 63 against an f16 dmin: 11 bits) */
    for (int i = 0; i < 256; i++) x[i] = -0.75f;
    quantize_row(DT_Q4_K, x, q, 256);
    dequantize_row(DT_Q4_K, q, y, 256);
    for (int i = 0; i < 256; i++) CHECK_NEAR(y[i], -0.75f, 0.75f / 2048);
    free(x);
}

static void test_tensor_to_f32(void) {
    uint16_t h[6];
    for (int i = 0; i < 6; i++) h[i] = f32_to_f16((float)i - 2.5f);
    TensorView t = {.name = "t", .dtype = DT_F16, .ndim = 2, .shape = {2, 3, 1, 1}, .data = h, .nbytes = 12};
    Err e;
    float *f = tensor_to_f32_alloc(&t, &e);
    CHECK(f != NULL);
    CHECK(f[5] == 2.5f);
    free(f);
    CHECK_EQ_INT(tensor_rows(&t), 2);
    CHECK_EQ_INT(tensor_row_bytes(&t), 6);
    CHECK_OK(tensor_check_shape(&t, 2, (int64_t[]){-1, 3}, &e), &e);
    CHECK(tensor_check_shape(&t, 2, (int64_t[]){3, 2}, &e) == -1);
    CHECK_MSG(strstr(e.msg, "tensor t: shape [2, 3], expected [3, 2]"), "%s", e.msg);
    float buf[6];
    t.nbytes = 10;
    CHECK(tensor_to_f32(&t, buf, &e) == -1);
    CHECK_MSG(strstr(e.msg, "10 bytes do not hold 6 elements of f16"), "%s", e.msg);
}

int main(void) {
    RUN(test_type_table);
    RUN(test_f16_known_values);
    RUN(test_f16_roundtrip_every_value);
    RUN(test_f16_row_every_value);
    RUN(test_bf16);
    RUN(test_q8_0_roundtrip);
    RUN(test_q4_0_known_and_roundtrip);
    RUN(test_k_quants_match_layout);
    RUN(test_k_quants_hand_block);
    RUN(test_k_quants_roundtrip);
    RUN(test_tensor_to_f32);
    return test_summary();
}
