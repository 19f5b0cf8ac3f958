/* The prefill's integer GEMM (kernels/gemm_q.c, tiled by matmul.c): every
 * quantised weight type at every kernel level, shapes that leave partial
 * tiles, micro-kernel remainders and blocks after the last whole quad,
 * with no pool and with two threads, against
 *  - the decode path (vec_dot_rows on the type's activation: the same
 *    int8 quants, so only the float scaling and summation differ),
 *  - matmul_forward_ref on x as the kernels quantise it (the same values),
 *  - the plain product with the unquantised x, within the activation
 *    quantisation bound.
 *
 * The bounds (u = 2^-24). One evaluation sums m float terms c_t, each an
 * exact integer block sum (|.| < 2^24) times at most 3 rounded factors
 * (weight scale, dx, and for the offsets the sums sx) and, in the fused
 * dx*S - off*sx, one more rounding: relative error <= 4u + O(u^2); any
 * order of addition errs by <= (m - 1) u sum|c_t| (Higham, 4.2). The
 * kernels split a block of 32 into at most 16 float terms (8 lanes at
 * AVX2, each a scale part and an offset part), so m <= n/2. So one evaluation is within
 * (m + 3) u sum|c_t| of the exact sum of its terms; the reference's
 * weights (dequantize_row, f32) are within 2u|w| of the exact weights, so
 * (m + 8) u sum|c_t| covers the distance to matmul_forward_ref, and twice
 * that the distance between two evaluations. sum|c_t|: with w = d*q - o
 * (o the block's offset in weight units: Q8_0's 128 d here ~ max|w|,
 * Q4_0's 8 d = max|w|, the K-quants' mins, within max|w| plus a step), the
 * scale part is <= sum (|w| + o)|y| and the offset part <= o sum|y|: so
 * sum|c_t| <= sum|w y| + 2 sum_j o_j sum_{i in j}|y_i| with o_j <= 2 max|w|
 * over each 16 values (offset_mass). The factor 4 on sum|w y| is the slack
 * of tests/kernels/test_quant_kquant.c for Q2_K/Q3_K's half-blocks sharing
 * one dx.
 * Against the unquantised x: q = round(x / d) with d = max|x| / 127, and
 * dx = d rounded to f16 (relative error <= 2^-11), so |x - dx q| <= d/2 +
 * 127 |d - dx| <= (0.5 + 127 * 2^-11)(1 + 2^-11) dx < 0.563 dx (0.57: the
 * reciprocal 1/d is rounded too); summed over the row, sum_b 0.57 dx_b
 * sum_{i in b} |w_i|, plus the float bound above. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "kernels/gemm_q.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/threads.h"
#include "levels.h"
#include "test.h"

static const int TYPES[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_IQ4_NL,
                            DT_Q4_K, DT_Q5_K, DT_Q6_K, DT_Q2_K, DT_Q3_K, DT_IQ4_XS, DT_Q4_0_G16, DT_Q4_0_G4,
                            DT_Q4_0_T16, DT_Q8_0_T16, DT_Q4_K_T16};
#define N_TYPES ((int)(sizeof TYPES / sizeof TYPES[0]))

static float *rand_vec(Rng *r, long n, float scale) {
    float *v = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) v[i] = rng_normal(r) * scale;
    return v;
}

/* The float bound (file comment) of one evaluation against the exact sum
 * of its terms, for weights w and activation values y (n of each). */
static double float_bound(const float *w, const float *y, long n) {
    double s = 0, om = 0;
    for (long i = 0; i < n; i++) s += fabs((double)w[i] * y[i]);
    for (long j = 0; j < n / 16; j++) {
        double mw = 0, sy = 0;
        for (int i = 0; i < 16; i++) mw = fmax(mw, fabs(w[16 * j + i])), sy += fabs(y[16 * j + i]);
        om += 2 * (2 * mw) * sy;
    }
    double m = n / 2.0;
    return (m + 8) * 0x1p-24 * (4 * s + om) + 1e-30;
}

typedef struct Shape {
    int rows, cols, extra; /* n = matmul_gemm_min_rows + extra */
} Shape;

/* One type, shape and pool: the three comparisons of the file comment.
 * Returns 0 on the first failure, described in msg. */
static int check_gemm(ThreadPool *tp, int t, Shape sh, char *msg, size_t cap) {
    const int rows = sh.rows, cols = sh.cols, n = matmul_gemm_min_rows(t) + sh.extra;
    Rng r;
    rng_derive(&r, 1414, (uint64_t)t, (uint64_t)(rows * 7919 + cols * 31 + n));
    float *wf = rand_vec(&r, (long)rows * cols, 0.3f), *x = rand_vec(&r, (long)n * cols, 1.0f);
    /* a few rows of x far larger or smaller than the rest: each row has its own scales */
    for (int i = 0; i < cols; i++) x[i] *= 40.0f, x[(long)(n - 1) * cols + i] *= 0.01f;
    size_t rb = dtype_nbytes(t, cols);
    char *wq = xmalloc(rb * (size_t)rows);
    float *wd = xmalloc((size_t)rows * cols * sizeof(float));
    for (int i = 0; i < rows; i++) {
        quantize_row(t, wf + (long)i * cols, wq + i * rb, cols);
        dequantize_row(t, wq + i * rb, wd + (long)i * cols, cols);
    }
    QMat w = {t, wq, rows, cols};
    /* x as the kernels see it (Q8_0-rounded), and each block's dx */
    float *xr = xmalloc((size_t)n * cols * sizeof(float)), *dx = xmalloc((size_t)n * (cols / 32) * sizeof(float));
    BlockQ8_0 *xb = xmalloc(dtype_nbytes(DT_Q8_0, cols));
    void *act = xaligned_alloc(kernel_act_bytes(t, cols));
    for (int k = 0; k < n; k++) {
        /* the values exactly (formats' quantiser rounds ties away from zero, the kernels' to even) */
        kernel_quantize_act(t, x + (long)k * cols, act, cols);
        kernel_act_to_f32(t, act, xr + (long)k * cols, cols);
        quantize_row(DT_Q8_0, x + (long)k * cols, xb, cols); /* the same scales */
        for (int b = 0; b < cols / 32; b++) dx[k * (cols / 32) + b] = f16_to_f32(xb[b].d);
    }
    const int int8 = gemm_q_act_type(t) != DT_F32;
    float *y = xmalloc((size_t)n * rows * sizeof(float)), *yr = xmalloc((size_t)n * rows * sizeof(float));
    float *yd = xmalloc((size_t)rows * sizeof(float));
    matmul_forward(tp, y, x, n, &w);
    matmul_forward_ref(yr, xr, n, &w);
    int ok = 1;
    for (int k = 0; k < n && ok; k++) {
        kernel_quantize_act(t, x + (long)k * cols, act, cols);
        vec_dot_rows(t, wq, rb, rows, act, cols, yd);
        for (int o = 0; o < rows && ok; o++) {
            const float *wr = wd + (long)o * cols, *xk = xr + (long)k * cols;
            double e = float_bound(wr, xk, cols), got = y[(long)k * rows + o];
            double quant = 0, exact = 0;
            for (int b = 0; b < cols / 32; b++) {
                double sw = 0;
                for (int i = 0; i < 32; i++) sw += fabs(wr[32 * b + i]);
                quant += 0.57 * dx[k * (cols / 32) + b] * sw;
            }
            for (int i = 0; i < cols; i++) exact += (double)wr[i] * x[(long)k * cols + i];
            if (!int8) {
                /* dequantise + sgemm at this level (gemm_q_act_type): x as it is */
                if (fabs(got - exact) > e) {
                    snprintf(msg, cap, "%s %dx%d n=%d: x row %d, W row %d: sgemm path %.9g, exact %.9g (bound %.3g)",
                             dtype_name(t), rows, cols, n, k, o, got, exact, e);
                    ok = 0;
                }
            } else if (fabs(got - yd[o]) > 2 * e) {
                snprintf(msg, cap, "%s %dx%d n=%d: x row %d, W row %d: gemm %.9g, decode dots %.9g (bound %.3g)",
                         dtype_name(t), rows, cols, n, k, o, got, yd[o], 2 * e);
                ok = 0;
            } else if (fabs(got - yr[(long)k * rows + o]) > e) {
                snprintf(msg, cap, "%s %dx%d n=%d: x row %d, W row %d: gemm %.9g, reference %.9g (bound %.3g)",
                         dtype_name(t), rows, cols, n, k, o, got, yr[(long)k * rows + o], e);
                ok = 0;
            } else if (fabs(got - exact) > quant + e) {
                snprintf(msg, cap, "%s %dx%d n=%d: x row %d, W row %d: gemm %.9g, unquantised x %.9g (bound %.3g)",
                         dtype_name(t), rows, cols, n, k, o, got, exact, quant + e);
                ok = 0;
            }
        }
    }
    free(wf), free(x), free(wq), free(wd), free(xr), free(dx), free(xb), free(y), free(yr), free(yd), free(act);
    return ok;
}

static void test_gemm_matches_decode_and_reference(void) {
    ThreadPool *tp = tp_create(2);
    /* legacy types (blocks of 32): 9 blocks (2 quads and one block after
     * them), 11 (3 after), 1 (no quad), 64 (whole quads, and with 400
     * rows of x several tiles of x, tile_round's x_tile being 132);
     * rows not a multiple of the micro-kernel's 3 and n not of its 4 */
    const Shape legacy[] = {{37, 288, 1}, {100, 352, 6}, {5, 32, 3}, {14, 2048, 0}, {7, 2048, 130}};
    /* K-quants: rows of whole super-blocks; Q4_0 regrouped: of whole
     * groups of 512 (G16, and Q4_0 / Q8_0 / Q4_K in T16), of 128 (G4: 896 and
     * 640 are not of 512) */
    const Shape kq[] = {{37, 512, 1}, {20, 768, 6}, {7, 2048, 130}}, g16[] = {{37, 512, 1}, {20, 1536, 6}, {7, 2048, 130}},
                g4[] = {{37, 128, 1}, {20, 896, 6}, {7, 640, 130}};
    for (int ti = 0; ti < N_TYPES; ti++) {
        int t = TYPES[ti], k = t == DT_Q4_K || t == DT_Q5_K || t == DT_Q6_K || t == DT_Q2_K || t == DT_Q3_K ||
                                  t == DT_IQ4_XS || t == DT_Q4_0_G16 || t == DT_Q4_0_G4 || dtype_is_t16(t);
        /* the decode path quantises x; the GEMM path where it is an integer GEMM */
        CHECK_EQ_INT(matmul_act_type(t, matmul_gemm_min_rows(t) - 1), t);
        CHECK_EQ_INT(matmul_act_type(t, matmul_gemm_min_rows(t)), gemm_q_act_type(t) != DT_F32 ? t : DT_F32);
        const Shape *s = t == DT_Q4_0_G16 || dtype_is_t16(t) ? g16 : t == DT_Q4_0_G4 ? g4 : k ? kq : legacy;
        int ns = k ? 3 : 5;
        for (int i = 0; i < ns; i++) {
            char msg[256] = "";
            CHECK_MSG(check_gemm(tp, t, s[i], msg, sizeof msg), "2 threads: %s", msg);
            /* no pool: the caller's thread, scratch of its own */
            CHECK_MSG(check_gemm(NULL, t, s[i], msg, sizeof msg), "no pool: %s", msg);
        }
    }
    tp_free(tp);
}

/* Where a micro-kernel runs (every quantised type with AVX-512: gemm_q.c's
 * for Q8_0 and Q4_0, gemm_q_grp.c's for the others), a row of x gives the
 * same y, bit for bit, wherever it sits in the batch: each (row,
 * activation) result takes the same operations in the same order. Rows of
 * 416 (13 blocks: a unit of 256 and a padded one) for the 32-blocks. */
static void test_rows_independent(void) {
    const int rows = 29;
    for (int ti = 0; ti < N_TYPES; ti++) {
        int t = TYPES[ti];
        if (gemm_q_act_type(t) == DT_F32) continue; /* no micro-kernel at this level */
        const int cols = dtype_block_size(t) == 32 ? 416 : 512;
        const int n = matmul_gemm_min_rows(t) + 5;
        Rng r;
        rng_derive(&r, 1415, (uint64_t)t, 0);
        float *wf = rand_vec(&r, (long)rows * cols, 0.3f), *x = rand_vec(&r, (long)(n + 1) * cols, 1.0f);
        size_t rb = dtype_nbytes(t, cols);
        char *wq = xmalloc(rb * rows);
        for (int i = 0; i < rows; i++) quantize_row(t, wf + (long)i * cols, wq + i * rb, cols);
        QMat w = {t, wq, rows, cols};
        float *a = xmalloc((size_t)(n + 1) * rows * sizeof(float)), *b = xmalloc((size_t)(n + 1) * rows * sizeof(float));
        matmul_forward(NULL, a, x + cols, n, &w); /* rows 1..n */
        matmul_forward(NULL, b, x, n + 1, &w);    /* the same, each one place later */
        CHECK_MSG(!memcmp(a, b + rows, (size_t)n * rows * sizeof(float)), "%s", dtype_name(t));
        free(wf), free(x), free(wq), free(a), free(b);
    }
}

/* gemm_q_grp.c keeps a thread's last packed rows for its next tile of the
 * same rows, found by their bytes: new weights quantised into the same
 * buffer (the same address, type and shape) must be packed again, not
 * served from the cache. No pool: every tile on this thread. Against the
 * decode path within check_gemm's bound; the stale rows of other random
 * weights would be off by about the result's whole size. */
static void test_packed_rows_follow_the_bytes(void) {
    const int t = DT_Q4_1, rows = 7, cols = 512;
    if (gemm_q_act_type(t) == DT_F32) return; /* no micro-kernel at this level */
    const int n = matmul_gemm_min_rows(t) + 3;
    Rng r;
    rng_derive(&r, 1416, (uint64_t)t, 0);
    float *w1 = rand_vec(&r, (long)rows * cols, 0.3f), *w2 = rand_vec(&r, (long)rows * cols, 0.3f);
    float *x = rand_vec(&r, (long)n * cols, 1.0f);
    size_t rb = dtype_nbytes(t, cols);
    char *wq = xmalloc(rb * rows);
    float *y = xmalloc((size_t)n * rows * sizeof(float)), *yd = xmalloc((size_t)rows * sizeof(float));
    float *wd = xmalloc((size_t)cols * sizeof(float)), *xr = xmalloc((size_t)cols * sizeof(float));
    void *act = xaligned_alloc(kernel_act_bytes(t, cols));
    QMat w = {t, wq, rows, cols};
    for (int i = 0; i < rows; i++) quantize_row(t, w1 + (long)i * cols, wq + i * rb, cols);
    matmul_forward(NULL, y, x, n, &w);
    for (int i = 0; i < rows; i++) quantize_row(t, w2 + (long)i * cols, wq + i * rb, cols);
    matmul_forward(NULL, y, x, n, &w);
    int ok = 1;
    for (int k = 0; k < n && ok; k++) {
        kernel_quantize_act(t, x + (long)k * cols, act, cols);
        kernel_act_to_f32(t, act, xr, cols);
        vec_dot_rows(t, wq, rb, rows, act, cols, yd);
        for (int o = 0; o < rows && ok; o++) {
            dequantize_row(t, wq + o * rb, wd, cols);
            double e = 2 * float_bound(wd, xr, cols), got = y[(long)k * rows + o];
            ok = fabs(got - yd[o]) <= e;
            CHECK_MSG(ok, "x row %d, W row %d: gemm %.9g, decode dots %.9g (bound %.3g)", k, o, got, yd[o], e);
        }
    }
    free(w1), free(w2), free(x), free(wq), free(y), free(yd), free(wd), free(xr), free(act);
}

/* RUN_LEVELS runs the tests above with the AMX tiles and without them
 * wherever the CPU has them (levels.h): each pass notes which path it
 * had, and test_amx_and_vnni_both_ran checks both did. */
static int passes_amx, passes_vnni;

static void test_note_amx_pass(void) {
    if (kernel_amx()) passes_amx++;
    else if (kernel_level() >= KL_AVX512) passes_vnni++;
}

static void test_amx_and_vnni_both_ran(void) {
    int allowed = kernel_set_amx(1); /* ALOE_AMX=0 switches them off for the whole run */
    kernel_set_amx(allowed);
    if (kernel_level() < KL_AVX512) {
        CHECK_EQ_INT(passes_amx + passes_vnni, 0);
    } else if (kernel_amx_available() && allowed) {
        CHECK_MSG(passes_amx > 0 && passes_vnni > 0, "AMX passes %d, VNNI passes %d", passes_amx, passes_vnni);
    } else {
        CHECK_EQ_INT(passes_amx, 0);
        CHECK(passes_vnni > 0);
    }
}

int main(void) {
    RUN_LEVELS(test_note_amx_pass);
    test_run("test_amx_and_vnni_both_ran", test_amx_and_vnni_both_ran);
    RUN_LEVELS(test_gemm_matches_decode_and_reference);
    RUN_LEVELS(test_rows_independent);
    RUN_LEVELS(test_packed_rows_follow_the_bytes);
    return test_summary();
}
