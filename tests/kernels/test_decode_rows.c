/* The decode path's row dots (one activation against consecutive weight
 * rows, matmul_dots' chunks): the paths that take several rows per pass
 * must give, row for row, the single-row dot's value bit for bit — decode's
 * gold tests and the batch-invariance tests rely on a row's value not
 * depending on which chunk, pass or thread it fell in.
 *
 * - vec_dot_rows of F32/F16/BF16 rows (two rows per pass at the AVX-512
 *   levels for rows of more than 4096 values, quant.c) against vec_dot of
 *   each row: every row count 1-7 (odd
 *   counts leave a single row), widths with and without the 64-, 16- and
 *   8-value tails; and against the scalar reference within 1e-5·S
 *   (tests/kernels/test_kernels.c derives that bound).
 * - matmul_forward's row-dot path (claims of dot_chunk rows, 2-64 by the
 *   row's bytes, matmul.c) against vec_dot of each row, with a pool of 1,
 *   2 and 3 threads and without one: every row is computed exactly once,
 *   whatever the chunking (row counts that are not multiples of any chunk,
 *   f16 rows so wide that a chunk is 2 rows, Q4_0 rows small enough for
 *   64), and a group of matrices with rows of different sizes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/threads.h"
#include "levels.h"
#include "test.h"

static float *rand_vec(Rng *r, long n, float scale) {
    float *v = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) v[i] = rng_normal(r) * scale;
    return v;
}

static const int FLOAT_TYPES[] = {DT_F32, DT_F16, DT_BF16};

static void test_float_rows_equal_single_dots(void) {
    Rng r;
    rng_seed(&r, 41);
    /* 64-value steps only; + a 16-value step; + 8 and 1-7 value tails; an
     * FFN's width; the last two past FLOAT_ROWS_MIN_N (4096: the two-row
     * path), the last with every tail */
    const long widths[] = {128, 64 * 3 + 16, 77, 2048 + 16 + 8 + 5, 8192, 4096 + 64 + 16 + 8 + 5};
    for (int wi = 0; wi < 6; wi++) {
        const long n = widths[wi];
        const int max_rows = 7;
        float *w = rand_vec(&r, max_rows * n, 0.5f), *x = rand_vec(&r, n, 2.0f);
        for (int ti = 0; ti < 3; ti++) {
            int t = FLOAT_TYPES[ti];
            size_t rb = dtype_nbytes(t, n);
            char *q = xmalloc(rb * max_rows);
            for (int i = 0; i < max_rows; i++) quantize_row(t, w + i * n, q + i * rb, n);
            for (int nrows = 1; nrows <= max_rows; nrows++) {
                float got[7];
                vec_dot_rows(t, q, rb, nrows, x, n, got);
                for (int i = 0; i < nrows; i++) {
                    float one = vec_dot(t, q + i * rb, x, n), ref = vec_dot_ref(t, q + i * rb, x, n);
                    double scale = 0;
                    for (long j = 0; j < n; j++) scale += fabs(w[i * n + j] * x[j]);
                    CHECK_MSG(!memcmp(&got[i], &one, sizeof one), "%s n=%ld, %d rows: row %d %.9g vs single %.9g",
                              dtype_name(t), n, nrows, i, got[i], one);
                    CHECK_MSG(fabs(got[i] - ref) <= 1e-5 * scale, "%s n=%ld, %d rows: row %d %g vs reference %g",
                              dtype_name(t), n, nrows, i, got[i], ref);
                }
            }
            free(q);
        }
        free(w), free(x);
    }
}

/* One matrix of `rows` x `cols` of type t through matmul_forward (n = 1:
 * the row dots) equals vec_dot of each row against the activation
 * matmul_dots makes (kernel_quantize_act), or for BF16 rows whose x is
 * rounded to bf16 (matmul_act_type), gemm_bf16_rows of the row alone. */
static int check_rows_once(ThreadPool *tp, int t, int rows, int cols, Rng *r) {
    float *wf = rand_vec(r, (long)rows * cols, 0.3f), *x = rand_vec(r, cols, 1.0f);
    size_t rb = dtype_nbytes(t, cols);
    char *q = xmalloc(rb * (size_t)rows), *act = xmalloc(kernel_act_bytes(t, cols));
    for (int i = 0; i < rows; i++) quantize_row(t, wf + (long)i * cols, q + i * rb, cols);
    kernel_quantize_act(t, x, act, cols);
    float *y = xmalloc((size_t)rows * sizeof(float));
    for (int i = 0; i < rows; i++) y[i] = NAN; /* a row never written stays NaN: memcmp fails */
    QMat m = {t, q, rows, cols};
    matmul_forward(tp, y, x, 1, &m);
    int bad = -1, bf16x = matmul_act_type(t, 1) == DT_BF16;
    uint16_t *xb = xmalloc((size_t)cols * 2);
    gemm_bf16_round(x, xb, cols);
    for (int i = 0; i < rows && bad < 0; i++) {
        float one;
        if (bf16x)
            gemm_bf16_rows((const uint16_t *)(q + i * rb), rb, 1, xb, cols, &one, 1);
        else
            one = vec_dot(t, q + i * rb, act, cols);
        if (memcmp(&y[i], &one, sizeof one)) bad = i;
    }
    if (bad >= 0) fprintf(stderr, "  %s %dx%d, %d threads: row %d differs\n", dtype_name(t), rows, cols, tp_size(tp), bad);
    free(wf), free(x), free(q), free(act), free(y), free(xb);
    return bad < 0;
}

static void test_row_dots_cover_every_row_once(void) {
    Rng r;
    rng_seed(&r, 43);
    ThreadPool *pools[3] = {tp_create(1), tp_create(2), tp_create(3)};
    /* (type, cols): f16 rows of 16 KB (chunks of 2), of 4 KB (4), Q4_0
     * rows of 144 bytes (64), Q8_0 of 2176 (6), bf16/f32 of odd widths */
    const struct {
        int t, cols;
    } cases[] = {{DT_F16, 8192}, {DT_F16, 2048}, {DT_Q4_0, 256}, {DT_Q8_0, 2048}, {DT_BF16, 2048 + 40}, {DT_F32, 77}};
    const int row_counts[] = {1, 2, 3, 129, 301};
    for (int c = 0; c < 6; c++)
        for (int ri = 0; ri < 5; ri++) {
            int rows = row_counts[ri];
            if (cases[c].cols >= 8192 && rows > 129) continue; /* enough chunks already; keeps the test short */
            for (int p = 0; p < 3; p++)
                CHECK_MSG(check_rows_once(pools[p], cases[c].t, rows, cases[c].cols, &r), "%s %dx%d, %d threads",
                          dtype_name(cases[c].t), rows, cases[c].cols, p + 1);
            CHECK_MSG(check_rows_once(NULL, cases[c].t, rows, cases[c].cols, &r), "%s %dx%d without a pool",
                      dtype_name(cases[c].t), rows, cases[c].cols);
        }
    for (int p = 0; p < 3; p++) tp_free(pools[p]);
}

/* A group whose matrices' rows differ in bytes (the chunk follows the
 * largest): each matrix's values equal its own matmul's, bit for bit. */
static void test_group_mixed_row_sizes(void) {
    Rng r;
    rng_seed(&r, 47);
    ThreadPool *tp = tp_create(2);
    const int cols = 1024, rows[3] = {131, 33, 67}, types[3] = {DT_F16, DT_Q4_0, DT_F32};
    float *x = rand_vec(&r, cols, 1.0f);
    QMat w[3];
    const QMat *ws[3];
    float *ys[3], *want[3];
    for (int m = 0; m < 3; m++) {
        float *wf = rand_vec(&r, (long)rows[m] * cols, 0.3f);
        size_t rb = dtype_nbytes(types[m], cols);
        char *q = xmalloc(rb * (size_t)rows[m]);
        for (int i = 0; i < rows[m]; i++) quantize_row(types[m], wf + (long)i * cols, q + i * rb, cols);
        free(wf);
        w[m] = (QMat){types[m], q, rows[m], cols};
        ws[m] = &w[m];
        ys[m] = xmalloc((size_t)rows[m] * sizeof(float));
        want[m] = xmalloc((size_t)rows[m] * sizeof(float));
        matmul_forward(NULL, want[m], x, 1, &w[m]);
    }
    matmul_forward_group(tp, 3, ys, x, 1, ws);
    for (int m = 0; m < 3; m++) {
        CHECK_MSG(!memcmp(ys[m], want[m], (size_t)rows[m] * sizeof(float)), "matrix %d (%s)", m, dtype_name(types[m]));
        free(ys[m]), free(want[m]), free((void *)w[m].data);
    }
    free(x);
    tp_free(tp);
}

int main(void) {
    RUN_LEVELS(test_float_rows_equal_single_dots);
    RUN_LEVELS(test_row_dots_cover_every_row_once);
    RUN_LEVELS(test_group_mixed_row_sizes);
    return test_summary();
}
