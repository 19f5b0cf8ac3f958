/* The Q2_K, Q3_K, Q5_K, IQ4_XS dots and Q5_K in pairs' (DT_Q5_K_PAIRS, the
 * AVX2 layout; kernels/quant_kquant.c): the plain
 * reference against the dequantised weights and the activation's own
 * values, and every fast path (vec_dot, vec_dot_rows, vec_dot_multi,
 * vec_dot_multi_rows; with the AVX-512 dispatch on and off) against the
 * reference, within a derived float-summation bound; kernel_dequantize_row
 * against formats' dequantize_row, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/quant.h"
#include "levels.h"
#include "offset_mass.h"
#include "test.h"

#define NT 5
static const int TYPES[NT] = {DT_Q2_K, DT_Q3_K, DT_Q5_K, DT_IQ4_XS, DT_Q5_K_PAIRS};

static float rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* Float-summation bound between two evaluations of the same dot (or one
 * and the exact value of its terms). Each evaluation sums m terms c_t,
 * m = 2 per sub-block of 16 (a scale part and an offset part), each an
 * exact integer (|sum| < 2^24) times at most 3 rounded float factors (d*sc
 * or dmin*m, dx): relative error <= 3u + O(u^2) <= 4u; any order of
 * addition errs by <= (m-1)u sum|c_t| (Higham, 4.2). So one evaluation is
 * within (m+3)u sum|c_t| of the exact terms' sum, two within 2(m+4)u
 * sum|c_t|. sum|c_t|: with w = d*sc*q - o (o the sub-block's offset: Q2_K,
 * Q5_K mins, Q3_K's 4*d*sc; 0 for IQ4_XS), the scale part is <= sum (|w| +
 * o)|y| and the offset part <= o sum|y|: sum|c_t| <= sum|w y| + 2 sum_j o_j
 * sum_{l in j} |y_l|. The fits keep o within the sub-block's values plus
 * one step (o <= max|w| + step <= 2 max|w| per sub-block), so offset_mass
 * takes o_j = 2 max|w|, i.e. sum|c_t| <= sum|w y| + offset_mass. The
 * factor 4 on sum|w y| below is slack for the Q2_K/Q3_K pairs of
 * half-blocks sharing one dx (a third rounded factor on both parts). */
static double sum_bound(const float *w, const float *x, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += fabs((double)w[i] * x[i]);
    double m = 2.0 * n / 16;
    return 2 * (m + 4) * 0x1p-24 * 4 * s + 1e-30;
}

/* 2 sum_j o_j sum|y| over sub-blocks of 16 with o_j = 2 max|w| (above);
 * the caller scales it by 2(m+4)u. */
static double offset_mass(const float *w, const float *x, long n) { return offset_mass_of(w, x, n, 16); }

static void check_type(int t, int avx512) {
    enum { N = 256 * 6, NX = 5, ROWS = 3 };
    uint64_t s = 99 + (uint64_t)t;
    float *w = xmalloc(sizeof(float) * N * ROWS), *wd = xmalloc(sizeof(float) * N * ROWS);
    float *x = xmalloc(sizeof(float) * N * NX), *xd = xmalloc(sizeof(float) * N * NX);
    for (long i = 0; i < (long)N * ROWS; i++) w[i] = 0.05f * rnd(&s) + (i % 97 == 3 ? 0.4f : 0.0f) + (i / 256 % 3 == 1 ? 0.03f : 0.0f);
    for (long i = 0; i < (long)N * NX; i++) x[i] = rnd(&s) * (float)(1 + i / N);
    size_t rb = dtype_nbytes(t, N), xb = kernel_act_bytes(t, N);
    CHECK(kernel_type_ok(t) && kernel_row_ok(t, N) && !kernel_row_ok(t, 300) && kernel_vec_type(t) == DT_Q8_0);
    CHECK(xb % 64 == 0);
    char *wq = xmalloc(rb * ROWS), *xq = xmalloc(xb * NX);
    for (int r = 0; r < ROWS; r++) {
        CHECK(quantize_row(t, w + (long)r * N, wq + r * rb, N) == 0);
        CHECK(dequantize_row(t, wq + r * rb, wd + (long)r * N, N) == 0);
        float *kd = xmalloc(sizeof(float) * N);
        kernel_dequantize_row(t, wq + r * rb, kd, N);
        CHECK(!memcmp(kd, wd + (long)r * N, sizeof(float) * N));
        free(kd);
    }
    for (int k = 0; k < NX; k++) {
        kernel_quantize_act(t, x + (long)k * N, xq + k * xb, N);
        kernel_act_to_f32(t, xq + k * xb, xd + (long)k * N, N);
    }
    float rows[ROWS], multi[NX], mrows[NX * ROWS];
    for (int r = 0; r < ROWS; r++) vec_dot_multi(t, wq + r * rb, xq, xb, NX, N, multi + 0, 1), (void)0;
    for (int k = 0; k < NX; k++) {
        vec_dot_rows(t, wq, rb, ROWS, xq + k * xb, N, rows);
        for (int r = 0; r < ROWS; r++) {
            const float *wr = wd + (long)r * N, *xr = xd + (long)k * N;
            double exact = 0;
            for (long i = 0; i < N; i++) exact += (double)wr[i] * xr[i];
            double tol = sum_bound(wr, xr, N) + 2 * (2.0 * N / 16 + 4) * 0x1p-24 * offset_mass(wr, xr, N);
            float ref = vec_dot_ref(t, wq + r * rb, xq + k * xb, N), fast = vec_dot(t, wq + r * rb, xq + k * xb, N);
            CHECK_MSG(fabs(ref - exact) <= tol, "%s: ref %.9g vs exact %.9g (tol %.3g)", dtype_name(t), ref, exact, tol);
            CHECK_MSG(fabs(fast - ref) <= tol, "%s avx512=%d: fast %.9g vs ref %.9g (tol %.3g)", dtype_name(t), avx512, fast, ref, tol);
            CHECK_MSG(fabs(rows[r] - ref) <= tol, "%s: rows %.9g vs ref %.9g", dtype_name(t), rows[r], ref);
        }
    }
    vec_dot_multi_rows(t, wq, rb, ROWS, xq, xb, NX, N, mrows, ROWS);
    for (int r = 0; r < ROWS; r++) {
        vec_dot_multi(t, wq + r * rb, xq, xb, NX, N, multi, 1);
        for (int k = 0; k < NX; k++) {
            const float *wr = wd + (long)r * N, *xr = xd + (long)k * N;
            double tol = sum_bound(wr, xr, N) + 2 * (2.0 * N / 16 + 4) * 0x1p-24 * offset_mass(wr, xr, N);
            float ref = vec_dot_ref(t, wq + r * rb, xq + k * xb, N);
            CHECK_MSG(fabs(multi[k] - ref) <= tol, "%s: multi %.9g vs ref %.9g", dtype_name(t), multi[k], ref);
            CHECK_MSG(fabs(mrows[k * ROWS + r] - ref) <= tol, "%s: multi_rows %.9g vs ref %.9g", dtype_name(t),
                      mrows[k * ROWS + r], ref);
        }
    }
    free(w), free(wd), free(x), free(xd), free(wq), free(xq);
}

static void test_dots_match_reference(void) {
    for (int i = 0; i < NT; i++) check_type(TYPES[i], 1);
}

static void test_dots_without_avx512(void) {
    int was = kernel_use_avx512(0);
    for (int i = 0; i < NT; i++) check_type(TYPES[i], 0);
    kernel_use_avx512(was);
}

/* Extreme quants: every weight quant and scale at its largest (Q2_K q 3,
 * Q3_K q -4 with scale -32, Q5_K q 31, IQ4_XS level -127) against
 * activations of +-127: the int32 sums and the non-VNNI int16 pairs must
 * not overflow. */
static void test_extremes(void) {
    enum { N = 512 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = i % 3 ? 1.0f : -1.0f;
    for (int ti = 0; ti < NT; ti++) {
        int t = TYPES[ti];
        size_t rb = dtype_nbytes(t, N), xb = kernel_act_bytes(t, N);
        unsigned char *wq = xmalloc(rb);
        memset(wq, 0xff, rb); /* every field all ones */
        for (size_t b = 0; b < rb; b += rb / 2) {
            /* f16 fields 1.0 (0x3c00) */
            if (t == DT_Q2_K) memcpy(wq + b + 80, "\x00\x3c\x00\x3c", 4);
            if (t == DT_Q3_K) memcpy(wq + b + 108, "\x00\x3c", 2), memset(wq + b, 0, 32); /* hmask clear: q -4.. */
            if (t == DT_Q5_K || t == DT_Q5_K_PAIRS) memcpy(wq + b, "\x00\x3c\x00\x3c", 4); /* all fifth bits set */
            if (t == DT_IQ4_XS) memcpy(wq + b, "\x00\x3c", 2), memset(wq + b + 8, 0, 128); /* level -127 */
        }
        float wd[N], xd[N];
        CHECK(dequantize_row(t, wq, wd, N) == 0);
        char *xq = xmalloc(xb);
        kernel_quantize_act(t, x, xq, N);
        kernel_act_to_f32(t, xq, xd, N);
        double exact = 0;
        for (int i = 0; i < N; i++) exact += (double)wd[i] * xd[i];
        float ref = vec_dot_ref(t, wq, xq, N), fast = vec_dot(t, wq, xq, N);
        double tol = sum_bound(wd, xd, N) + 2 * (2.0 * N / 16 + 4) * 0x1p-24 * offset_mass(wd, xd, N); /* as above */
        CHECK_MSG(fabs(ref - exact) <= tol && fabs(fast - exact) <= tol, "%s: ref %g fast %g exact %g", dtype_name(t), ref, fast, exact);
        free(wq), free(xq);
    }
}

int main(void) {
    RUN_LEVELS(test_dots_match_reference);
    RUN_LEVELS(test_dots_without_avx512);
    RUN_LEVELS(test_extremes);
    return test_summary();
}
