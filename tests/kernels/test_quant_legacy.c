/* Dots of Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows, as stored and regrouped
 * in fours (kernels/quant_legacy.c, quant_legacy_avx512.c) with
 * the Q8_0 activation: the regrouping's round trip, the reference against
 * the format (dequantised weights times the activation's values, in
 * double), every fast path (AVX2 and, where built, AVX-512; one row, rows,
 * several activations) against the reference, the matmul, and the kernels'
 * row dequantisation against formats'.
 *
 * The bound. A block b of 32 contributes terms of magnitude at most
 *   A_b = sum_j (|d_b| Q + |m_b|) |y_j|   (y_j = dx_b * quant, the
 * activation's value; Q the largest |weight quant| the dot multiplies:
 * 15 Q4_1, 31 Q5_1, 31 + 16 Q5_0 (q and the offset 16 separately), 127
 * IQ4_NL; m_b = 0 without a min). The integer block sums are exact; each
 * path then rounds a block's few products (<= 5 roundings) and sums nb
 * blocks (plus up to 8 lanes and a separate offset sum), so each is within
 * (nb + 10) u A of the exact value (A = sum A_b, u = 2^-24, the standard
 * gamma_k bound of a k-term float sum), and two paths within twice that. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/threads.h"
#include "levels.h"
#include "test.h"

/* the stored types, then each regrouped in fours (formats/dtype.h: rows of
 * whole groups of 128 only) */
#define NT 8
static const int TYPES[NT] = {DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_IQ4_NL, DT_Q4_1_G4, DT_Q5_0_G4, DT_Q5_1_G4, DT_IQ4_NL_G4};
#define NL 7
static const long LENS[NL] = {32, 64, 96, 224, 896, 32 * 37, 384};

static float *rand_vec(Rng *r, long n, float scale) {
    float *v = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) v[i] = rng_normal(r) * scale + (i / 32 % 3 == 1 ? 0.4f * scale : 0);
    return v;
}

static float f16_at(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

/* A of the bound above for weight row wq (type t) and activation act. */
static double term_scale(int t, const void *wq, const void *act, long n) {
    float *y = xmalloc((size_t)n * sizeof(float));
    kernel_act_to_f32(t, act, y, n);
    const int s = dtype_legacy_g4_base(t) ? dtype_legacy_g4_base(t) : t; /* the stored type */
    double Q = s == DT_Q4_1 ? 15 : s == DT_Q5_1 ? 31 : s == DT_Q5_0 ? 47 : 127, A = 0;
    int has_m = s == DT_Q4_1 || s == DT_Q5_1;
    for (long b = 0; b < n / 32; b++) {
        uint8_t blk[sizeof(BlockQ5_1)];
        dtype_legacy_block(t, wq, b, blk);
        double d = fabs(f16_at(blk)), m = has_m ? fabs(f16_at(blk + 2)) : 0, sy = 0;
        for (int j = 0; j < 32; j++) sy += fabs(y[32 * b + j]);
        A += (d * Q + m) * sy;
    }
    free(y);
    return A;
}

static double bound(int t, const void *wq, const void *act, long n) {
    return 2 * (double)(n / 32 + 10) * 0x1p-24 * term_scale(t, wq, act, n);
}

static void test_kernel_types(void) {
    /* the loaders' choice: rows of whole groups of 128 in fours where the
     * AVX2 dots run, else as stored */
    int avx512 = kernel_use_avx512(0);
    kernel_use_avx512(avx512);
    int g4 = kernel_level() >= KL_AVX2 && !avx512;
    CHECK_EQ_INT(kernel_weight_type(DT_Q5_0, 896), g4 ? DT_Q5_0_G4 : DT_Q5_0);
    CHECK_EQ_INT(kernel_weight_type(DT_Q5_1, 4864), g4 ? DT_Q5_1_G4 : DT_Q5_1);
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_1, 896), g4 ? DT_Q4_1_G4 : DT_Q4_1);
    CHECK_EQ_INT(kernel_weight_type(DT_IQ4_NL, 896), g4 ? DT_IQ4_NL_G4 : DT_IQ4_NL);
    CHECK_EQ_INT(kernel_weight_type(DT_Q5_0, 864), DT_Q5_0); /* 27 blocks: not whole groups */
    CHECK_EQ_INT(kernel_weight_type(DT_IQ4_NL, 864), DT_IQ4_NL);
    for (int i = 0; i < NT; i++) {
        int t = TYPES[i];
        CHECK_MSG(kernel_type_ok(t), "%s", dtype_name(t));
        CHECK(kernel_row_ok(t, 896) && !kernel_row_ok(t, 48));
        CHECK_EQ_INT(kernel_vec_type(t), DT_Q8_0);
        CHECK(kernel_act_bytes(t, 896) >= kernel_act_bytes(DT_Q8_0, 896));
    }
}

/* vec_dot_ref is the format's dot: sum of dequantize_row's weights times
 * the activation's values (kernel_act_to_f32), here in double. */
static void test_reference_is_the_format(void) {
    Rng r;
    rng_seed(&r, 21);
    for (int li = 0; li < NL; li++) {
        long n = LENS[li];
        float *w = rand_vec(&r, n, 0.3f), *x = rand_vec(&r, n, 1.5f), *wd = xmalloc((size_t)n * 4), *xd = xmalloc((size_t)n * 4);
        for (int i = 0; i < NT; i++) {
            int t = TYPES[i];
            if (!dtype_nbytes(t, n)) continue; /* a regrouped type, not whole groups */
            char *wq = xmalloc(dtype_nbytes(t, n)), *xq = xmalloc(kernel_act_bytes(t, n));
            quantize_row(t, w, wq, n);
            kernel_quantize_act(t, x, xq, n);
            dequantize_row(t, wq, wd, n);
            kernel_act_to_f32(t, xq, xd, n);
            double exact = 0;
            for (long j = 0; j < n; j++) exact += (double)wd[j] * xd[j];
            /* the dequantised weights and activation values are themselves
             * rounded (<= 2 roundings each): within the same bound */
            float ref = vec_dot_ref(t, wq, xq, n);
            double tol = bound(t, wq, xq, n);
            CHECK_MSG(fabs(ref - exact) <= tol, "%s n=%ld: ref %.9g, format %.9g (bound %.3g)", dtype_name(t), n, ref,
                      exact, tol);
            free(wq), free(xq);
        }
        free(w), free(x), free(wd), free(xd);
    }
}

/* Every fast path against the reference, with the AVX-512 dots on and off
 * (off: the AVX2 ones; where the build has no AVX-512 both are AVX2): one
 * row (vec_dot), 3 rows (vec_dot_rows), 5 activations (vec_dot_multi: four
 * at once, then one), 3 rows x 1..5 activations (vec_dot_multi_rows). */
static void test_fast_dots_match_reference(void) {
    Rng r;
    rng_seed(&r, 22);
    double worst = 0;
    for (int on = 1; on >= 0; on--) {
        int was = kernel_use_avx512(on);
        for (int li = 0; li < NL; li++) {
            long n = LENS[li];
            float *w = rand_vec(&r, 3 * n, 0.3f), *x = rand_vec(&r, 5 * n, 1.5f);
            for (int i = 0; i < NT; i++) {
                int t = TYPES[i];
                if (!dtype_nbytes(t, n)) continue;
                size_t rb = dtype_nbytes(t, n), xb = kernel_act_bytes(t, n);
                char *wq = xmalloc(3 * rb), *xq = xmalloc(5 * xb);
                for (int k = 0; k < 3; k++) quantize_row(t, w + k * n, wq + k * rb, n);
                for (int k = 0; k < 5; k++) kernel_quantize_act(t, x + k * n, xq + k * xb, n);
                float ref[3][5], tol[3][5], rows[3], multi[5], mr[5 * 3];
                for (int k = 0; k < 3; k++)
                    for (int a = 0; a < 5; a++)
                        ref[k][a] = vec_dot_ref(t, wq + k * rb, xq + a * xb, n),
                        tol[k][a] = (float)bound(t, wq + k * rb, xq + a * xb, n);
#define NEAR(got, k, a, what)                                                                                          \
    do {                                                                                                               \
        double e_ = fabs((got) - ref[k][a]);                                                                           \
        worst = fmax(worst, e_ / tol[k][a]);                                                                           \
        CHECK_MSG(e_ <= tol[k][a], "%s n=%ld avx512=%d %s row %d act %d: %.9g vs ref %.9g (bound %.3g)",              \
                  dtype_name(t), n, on, what, k, a, (got), ref[k][a], tol[k][a]);                                      \
    } while (0)
                for (int k = 0; k < 3; k++) NEAR(vec_dot(t, wq + k * rb, xq, n), k, 0, "vec_dot");
                vec_dot_rows(t, wq, rb, 3, xq + xb, n, rows);
                for (int k = 0; k < 3; k++) NEAR(rows[k], k, 1, "vec_dot_rows");
                vec_dot_multi(t, wq + rb, xq, xb, 5, n, multi, 1);
                for (int a = 0; a < 5; a++) NEAR(multi[a], 1, a, "vec_dot_multi");
                for (int na = 1; na <= 5; na++) {
                    vec_dot_multi_rows(t, wq, rb, 3, xq, xb, na, n, mr, 3);
                    for (int a = 0; a < na; a++)
                        for (int k = 0; k < 3; k++) NEAR(mr[a * 3 + k], k, a, "vec_dot_multi_rows");
                }
#undef NEAR
                free(wq), free(xq);
            }
            free(w), free(x);
        }
        kernel_use_avx512(was);
    }
    printf("  largest |fast - ref| / bound: %.3g\n", worst);
}

/* Extreme blocks: every quant at its largest (IQ4_NL: the grid's -127 and
 * 113), activations at +-127, so the int16 pairs of maddubs and the signs
 * of IQ4_NL's values are tried at their limits. */
static void test_extreme_blocks(void) {
    for (int on = 1; on >= 0; on--) {
        int was = kernel_use_avx512(on);
        for (int i = 0; i < NT; i++) {
            int t = TYPES[i], s = dtype_legacy_g4_base(t) ? dtype_legacy_g4_base(t) : t; /* s: as stored */
            long n = s == t ? 96 : 128;
            size_t bb = dtype_block_bytes(s);
            char *wq = xmalloc(dtype_nbytes(t, n)), *xq = xmalloc(kernel_act_bytes(t, n));
            memset(wq, 0xff, dtype_nbytes(t, n)); /* all quants 15/31; scales f16 NaN: set below */
            for (long b = 0; b < n / 32; b++) {
                uint16_t one = 0x3c00, half_ = 0xb800;
                memcpy(wq + b * bb, &one, 2);
                if (s == DT_Q4_1 || s == DT_Q5_1) memcpy(wq + b * bb + 2, &half_, 2);
                if (s == DT_IQ4_NL && b == 1) memset(wq + b * bb + 2, 0x00, 16); /* all -127 */
                if (s == DT_IQ4_NL && b == 2) memset(wq + b * bb + 2, 0x0f, 16); /* -127 and 113 */
            }
            if (s != t) { /* the same blocks regrouped */
                char *g = xmalloc(dtype_nbytes(t, n));
                dtype_legacy_regroup(s, wq, g, n);
                free(wq), wq = g;
            }
            float *x = xmalloc((size_t)n * 4);
            for (long j = 0; j < n; j++) x[j] = j % 3 ? 1.0f : -1.0f; /* quants +-127 */
            kernel_quantize_act(t, x, xq, n);
            float ref = vec_dot_ref(t, wq, xq, n), got = vec_dot(t, wq, xq, n), multi[4];
            double tol = bound(t, wq, xq, n);
            CHECK_MSG(fabs(got - ref) <= tol, "%s avx512=%d: %.9g vs %.9g", dtype_name(t), on, got, ref);
            char *x4 = xmalloc(4 * kernel_act_bytes(t, n));
            for (int k = 0; k < 4; k++) memcpy(x4 + k * kernel_act_bytes(t, n), xq, kernel_act_bytes(t, n));
            vec_dot_multi(t, wq, x4, kernel_act_bytes(t, n), 4, n, multi, 1);
            for (int k = 0; k < 4; k++) CHECK_MSG(fabs(multi[k] - ref) <= tol, "%s multi: %.9g vs %.9g", dtype_name(t), multi[k], ref);
            free(wq), free(xq), free(x), free(x4);
        }
        kernel_use_avx512(was);
    }
}

/* kernel_dequantize_row gives formats' dequantize_row values exactly. */
static void test_kernel_dequantize(void) {
    Rng r;
    rng_seed(&r, 23);
    long n = 896;
    float *w = rand_vec(&r, n, 0.3f), *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
    for (int i = 0; i < NT; i++) {
        char *wq = xmalloc(dtype_nbytes(TYPES[i], n));
        quantize_row(TYPES[i], w, wq, n);
        dequantize_row(TYPES[i], wq, a, n);
        kernel_dequantize_row(TYPES[i], wq, b, n);
        CHECK_MSG(!memcmp(a, b, (size_t)n * 4), "%s", dtype_name(TYPES[i]));
        free(wq);
    }
    free(w), free(a), free(b);
}

/* The matmul on the decode path (row dots, 1-5 rows of x) and the GEMM
 * path (matmul_act_type) against matmul_forward_ref, which gets the
 * activation as the path sees it (Q8_0-rounded on the dot path). The
 * relative bound 1e-5 of the sum of |w x| is test_kernels.c's: the dot
 * bound above with nb = 28 is 2 * 38 * 127 u ~ 6e-4 of A, but A
 * overstates sum|w x| by the ratio of Q to the typical quant only; the
 * measured error is ~1e-7. */
static void test_matmul(void) {
    ThreadPool *tp = tp_create(2);
    const int rows = 40, cols = 896;
    for (int i = 0; i < NT; i++) {
        int t = TYPES[i];
        int batches[3] = {1, 5, matmul_gemm_min_rows(t) + 1};
        for (int bi = 0; bi < 3; bi++) {
            int n = batches[bi];
            Rng r;
            rng_derive(&r, 24, (uint64_t)t, (uint64_t)n);
            float *wf = rand_vec(&r, (long)rows * cols, 0.3f), *x = rand_vec(&r, (long)n * cols, 1.0f);
            size_t rb = dtype_nbytes(t, cols);
            char *wq = xmalloc(rb * rows);
            for (int k = 0; k < rows; k++) quantize_row(t, wf + (long)k * cols, wq + k * rb, cols);
            QMat w = {t, wq, rows, cols};
            float *xr = xmalloc((size_t)n * cols * 4), *y = xmalloc((size_t)n * rows * 4), *yr = xmalloc((size_t)n * rows * 4);
            int vt = matmul_act_type(t, n);
            void *tmp = xmalloc(kernel_act_bytes(vt, cols));
            for (int k = 0; k < n; k++) {
                kernel_quantize_act(vt, x + (long)k * cols, tmp, cols); /* as the kernels see it (ties to even) */
                kernel_act_to_f32(vt, tmp, xr + (long)k * cols, cols);
            }
            matmul_forward(tp, y, x, n, &w);
            matmul_forward_ref(yr, xr, n, &w);
            float *wd = xmalloc((size_t)cols * 4);
            double worst = 0;
            for (int o = 0; o < rows; o++) {
                dequantize_row(t, wq + o * rb, wd, cols);
                for (int k = 0; k < n; k++) {
                    double s = 0;
                    for (int c = 0; c < cols; c++) s += fabs(wd[c] * xr[(long)k * cols + c]);
                    worst = fmax(worst, fabs(y[(long)k * rows + o] - yr[(long)k * rows + o]) / s);
                }
            }
            CHECK_MSG(worst <= 1e-5, "%s, %d rows of x: relative error %g", dtype_name(t), n, worst);
            free(wf), free(x), free(wq), free(xr), free(y), free(yr), free(tmp), free(wd);
        }
    }
    tp_free(tp);
}

/* Regrouping in fours keeps every block: each block read back through
 * dtype_legacy_block is the stored block, byte for byte (random bytes, so
 * every fifth-bit pattern and field value occurs), and the regrouped row
 * dequantises to the stored row's values. */
static void test_regroup_round_trip(void) {
    Rng r;
    rng_seed(&r, 25);
    for (int k = 0; k < 4; k++) {
        const int t = TYPES[4 + k], s = dtype_legacy_g4_base(t);
        const long n = 512;
        size_t bb = dtype_block_bytes(s), bytes = dtype_nbytes(s, n);
        CHECK_EQ_INT((int)dtype_nbytes(t, n), (int)bytes);
        CHECK_EQ_INT(dtype_from_name(dtype_name(t)), DT_INVALID); /* an in-memory layout: no user-facing name */
        CHECK(dtype_nbytes(t, 96) == 0 && !kernel_row_ok(t, 96));
        uint8_t *st = xmalloc(bytes), *g = xmalloc(bytes), blk[sizeof(BlockQ5_1)];
        for (size_t i = 0; i < bytes; i++) st[i] = (uint8_t)rng_u64(&r);
        for (long b = 0; b < n / 32; b++) st[b * bb + 1] = 0x3c; /* f16 fields finite: d = 1 + ..., m likewise */
        if (s == DT_Q4_1 || s == DT_Q5_1)
            for (long b = 0; b < n / 32; b++) st[b * bb + 3] = 0xb8;
        dtype_legacy_regroup(s, st, g, n);
        for (long b = 0; b < n / 32; b++) {
            dtype_legacy_block(t, g, b, blk);
            CHECK_MSG(!memcmp(blk, st + b * bb, bb), "%s block %ld", dtype_name(t), b);
        }
        float *a = xmalloc((size_t)n * 4), *c = xmalloc((size_t)n * 4);
        dequantize_row(s, st, a, n);
        dequantize_row(t, g, c, n);
        CHECK_MSG(!memcmp(a, c, (size_t)n * 4), "%s", dtype_name(t));
        free(st), free(g), free(a), free(c);
    }
}

int main(void) {
    RUN_LEVELS(test_regroup_round_trip);
    RUN_LEVELS(test_kernel_types);
    RUN_LEVELS(test_reference_is_the_format);
    RUN_LEVELS(test_fast_dots_match_reference);
    RUN_LEVELS(test_extreme_blocks);
    RUN_LEVELS(test_kernel_dequantize);
    RUN_LEVELS(test_matmul);
    return test_summary();
}
