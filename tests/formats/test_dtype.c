#include <stdint.h>
#include <stdlib.h>

#include "base/rng.h"
#include "formats/dtype.h"
#include "formats/tensor.h"
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

/* the row converter (which may use F16C) agrees with the scalar one on
 * every half value */
static void test_f16_row_every_value(void) {
    uint16_t *h = malloc(65536 * 2);
    float *f = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    CHECK(dequantize_row(DT_F16, h, f, 65536) == 0);
    for (uint32_t i = 0; i < 65536; i++) {
        float s = f16_to_f32((uint16_t)i);
        CHECK_MSG(isnan(s) ? isnan(f[i]) : memcmp(&s, &f[i], 4) == 0, "half %04x: %g vs %g", i, f[i], s);
    }
    free(h);
    free(f);
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
    /* values -8..7 times 0.5: the most negative sets d = 0.5 exactly */
    float x[32], y[32];
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (float)((j % 16) - 8);
    uint8_t q[18];
    quantize_row_q4_0(x, q, 32);
    CHECK_EQ_INT(q[0] | (q[1] << 8), f32_to_f16(0.5f));
    CHECK_EQ_INT(q[2], 0x00);        /* elements 0 and 16: q = 0 */
    CHECK_EQ_INT(q[2 + 15], 0xff);   /* elements 15 and 31: q = 15 */
    CHECK_OK(dequantize_row(DT_Q4_0, q, y, 32), &(Err){0});
    for (int j = 0; j < 32; j++) CHECK(y[j] == x[j]);
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
    RUN(test_tensor_to_f32);
    return test_summary();
}
