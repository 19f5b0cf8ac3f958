/* Kernels: each fast path against its plain reference on random data.
 * Dot tolerances are relative to the scale of the terms summed, S = sum of
 * |w·x|, so they hold for any size. A float32 sum of n terms is within
 * γ_n·S of the exact one (γ_n = n·u, u = 2^-24) in the worst case; with
 * terms of random sign the partial sums grow as sqrt(k), and the error's
 * standard deviation is ~u·S (the rounding model of
 * tests/model/logit_budget.h). Two evaluations in different orders:
 * √2·u·S; 1e-5·S is 120 of those standard deviations, and above the worst
 * case too wherever n <= 167. (The quantised dots' integer block sums are
 * exact; only their float scaling and accumulation round.) */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/rng.h"
#include "kernels/attention.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/threads.h"
#include "levels.h"
#include "offset_mass.h"
#include "test.h"

static float *rand_vec(Rng *r, long n, float scale) {
    float *v = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) v[i] = rng_normal(r) * scale;
    return v;
}

/* The weight types the kernels compute with (formats/dtype.h numbers), and
 * the in-memory layouts of Q4_0 (rows of whole 512- and 128-value groups),
 * Q4_K (in pairs) and Q4_0 / Q8_0 / Q4_K in T16 groups. */
static const int TYPES[] = {DT_F32,      DT_F16,     DT_BF16,       DT_Q8_0,     DT_Q4_0,    DT_Q4_K,
                            DT_Q6_K,     DT_Q4_0_G16, DT_Q4_0_G4,  DT_Q4_K_PAIRS, DT_Q4_0_T16, DT_Q8_0_T16,
                            DT_Q4_K_T16};
#define N_TYPES 13

/* The part of the float bound the T16 dots add (quant_avx512.c): they sum
 * each block's products with the weights' integer offset o folded in
 * (Q4_0's 8 steps, Q8_0's stored + 128), dw dx sum((q + o) y), and take
 * o dw sum(dx y) back at the end, so beside sum|w x| their float terms
 * carry offset_mass.h's mass over blocks of 32. Zero for the other types,
 * whose terms are the products themselves (or carry an offset of 8 steps,
 * within the margin the 1e-5 leaves). */
static double offset_mass(int t, const float *w, const float *x, long n) {
    return dtype_t16_base(t) ? offset_mass_of(w, x, n, 32) : 0;
}

static void test_vec_dot_matches_reference(void) {
    Rng r;
    rng_seed(&r, 3);
    /* 1 to 7 blocks past whole quads of blocks (the wide Q4_0 dot's step);
     * for the float types also tails of 8 and of 1-7 values (77, 4123) */
    /* 896: seven quads (groups of 4 blocks, DT_Q4_0_G4) */
    long sizes[] = {32, 77, 96, 128, 192, 224, 896, 1024 + 32, 4096, 4096 + 27};
    for (int si = 0; si < 10; si++) {
        long n = sizes[si];
        float *w = rand_vec(&r, n, 0.5f), *x = rand_vec(&r, n, 2.0f);
        void *wq = xmalloc(dtype_nbytes(DT_F32, n)), *xq = xmalloc(kernel_act_bytes(DT_Q4_0, n) + dtype_nbytes(DT_F32, n));
        double scale = 0;
        for (long i = 0; i < n; i++) scale += fabs(w[i] * x[i]);
        for (int ti = 0; ti < N_TYPES; ti++) {
            int t = TYPES[ti];
            if (!kernel_row_ok(t, n)) continue; /* K-quants: multiples of 256 */
            quantize_row(t, w, wq, n);
            kernel_quantize_act(t, x, xq, n);
            float fast = vec_dot(t, wq, xq, n), ref = vec_dot_ref(t, wq, xq, n);
            CHECK_MSG(fabs(fast - ref) <= 1e-5 * (scale + offset_mass(t, w, x, n)), "%s n=%ld: %g vs %g", dtype_name(t), n,
                      fast, ref);
            if (kernel_vec_type(t) == DT_F32) { /* the four-activation dot, its tails too */
                size_t xs = (size_t)n * sizeof(float);
                float *x4 = xmalloc(4 * xs), multi[4];
                for (long i = 0; i < 4 * n; i++) x4[i] = x[i % n] * (float)(1 + (i * 7919 % 13)) / 7; /* four different */
                vec_dot_multi(t, wq, x4, xs, 4, n, multi, 1);
                for (int k = 0; k < 4; k++) {
                    float r4 = vec_dot_ref(t, wq, x4 + k * n, n);
                    CHECK_MSG(fabs(multi[k] - r4) <= 1e-5 * 2 * scale, "%s n=%ld multi[%d]: %g vs %g", dtype_name(t), n,
                              k, multi[k], r4);
                }
                free(x4);
            }
        }
        /* odd lengths for the float types exercise the scalar tails */
        float fast = dot_f32(w, x, n - 5);
        double ref = 0;
        for (long i = 0; i < n - 5; i++) ref += (double)w[i] * x[i];
        CHECK(fabs(fast - ref) <= 1e-5 * scale);
        free(w), free(x), free(wq), free(xq);
    }
}

static void test_dequantize_matches_formats(void) {
    Rng r;
    rng_seed(&r, 9);
    long n = 1536; /* whole super-blocks and groups */
    float *x = rand_vec(&r, n, 1.0f), *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
    void *row = xmalloc((size_t)n * 4);
    for (int ti = 0; ti < N_TYPES; ti++) {
        quantize_row(TYPES[ti], x, row, n);
        dequantize_row(TYPES[ti], row, a, n);
        kernel_dequantize_row(TYPES[ti], row, b, n);
        CHECK_MSG(!memcmp(a, b, (size_t)n * 4), "%s: kernel_dequantize_row differs", dtype_name(TYPES[ti]));
    }
    free(x), free(a), free(b), free(row);
}

/* The K-quant dots (fast and reference) equal the dot of the dequantised
 * weights with the dequantised activation, computed in double: the integer
 * sums are exact, so only float rounding separates them (1e-5 of the sum
 * of |terms|). The single-row and four-activation paths agree as well. */
static void test_k_quant_dots_match_dequantised(void) {
    Rng r;
    rng_seed(&r, 12);
    long n = 256 * 6;
    float *w = rand_vec(&r, n, 0.05f), *wd = xmalloc((size_t)n * 4), *xd = xmalloc((size_t)n * 4 * 5);
    w[100] = 1.5f; /* an outlier sub-block */
    size_t xbs[3] = {kernel_act_bytes(DT_Q4_K, n), kernel_act_bytes(DT_Q6_K, n), kernel_act_bytes(DT_Q4_K_PAIRS, n)};
    CHECK(xbs[0] % 64 == 0 && xbs[1] % 64 == 0 && xbs[1] > dtype_nbytes(DT_Q8_0, n) && xbs[0] > xbs[1] && xbs[2] == xbs[0]);
    char *xq = xmalloc(xbs[0] * 5);
    float *xs = rand_vec(&r, 5 * n, 1.0f);
    void *wq = xmalloc((size_t)n * 4);
    int types[3] = {DT_Q4_K, DT_Q6_K, DT_Q4_K_PAIRS};
    for (int ti = 0; ti < 3; ti++) {
        int t = types[ti];
        size_t xb = xbs[ti];
        for (int k = 0; k < 5; k++) {
            for (long i = 0; i < n; i++) xs[k * n + i] *= (float)(k + 1);
            kernel_quantize_act(t, xs + k * n, xq + k * xb, n);
            kernel_act_to_f32(t, xq + k * xb, xd + k * n, n);
        }
        quantize_row(t, w, wq, n);
        dequantize_row(t, wq, wd, n);
        float multi[5];
        vec_dot_multi(t, wq, xq, xb, 5, n, multi, 1);
        for (int k = 0; k < 5; k++) {
            double exact = 0, scale = 0;
            for (long i = 0; i < n; i++) exact += (double)wd[i] * xd[k * n + i], scale += fabs((double)wd[i] * xd[k * n + i]);
            float fast = vec_dot(t, wq, xq + k * xb, n), ref = vec_dot_ref(t, wq, xq + k * xb, n);
            CHECK_MSG(fabs(fast - exact) <= 1e-5 * scale, "%s: fast %g vs exact %g", dtype_name(t), fast, exact);
            CHECK_MSG(fabs(ref - exact) <= 1e-5 * scale, "%s: ref %g vs exact %g", dtype_name(t), ref, exact);
            CHECK_MSG(fabs(multi[k] - exact) <= 1e-5 * scale, "%s: multi[%d] %g vs exact %g", dtype_name(t), k,
                      multi[k], exact);
        }
    }
    free(w), free(wd), free(xd), free(xq), free(wq), free(xs);
}

/* Q4_0 rows against several activations at once (the batched decode's
 * dot): each equals the reference, for rows of whole quads of blocks and
 * of 1-3 blocks more. */
static void test_q4_0_multi(void) {
    Rng r;
    rng_seed(&r, 13);
    long sizes[] = {128, 160, 192, 224, 32 * 37};
    for (int si = 0; si < 5; si++) {
        long n = sizes[si];
        size_t xb = kernel_act_bytes(DT_Q4_0, n);
        CHECK(xb % 64 == 0 && xb >= kernel_act_bytes(DT_Q8_0, n));
        float *w = rand_vec(&r, n, 0.5f), *x = rand_vec(&r, 5 * n, 2.0f), got[5];
        char *xq = xmalloc(5 * xb), *wq = xmalloc(dtype_nbytes(DT_Q4_0, n));
        quantize_row(DT_Q4_0, w, wq, n);
        for (int k = 0; k < 5; k++) kernel_quantize_act(DT_Q4_0, x + k * n, xq + k * xb, n);
        vec_dot_multi(DT_Q4_0, wq, xq, xb, 5, n, got, 1);
        for (int k = 0; k < 5; k++) {
            double scale = 0;
            for (long i = 0; i < n; i++) scale += fabs(w[i] * x[k * n + i]);
            float ref = vec_dot_ref(DT_Q4_0, wq, xq + k * xb, n);
            CHECK_MSG(fabs(got[k] - ref) <= 1e-5 * scale, "n=%ld act %d: %g vs %g", n, k, got[k], ref);
        }
        free(w), free(x), free(xq), free(wq);
    }
}

/* Several rows against 1 to 7 activations at once (the batched decode's
 * chunk of rows; activations go four, three, two or one at a time): each
 * result equals the single dot of that row and activation. */
static void test_multi_rows_any_batch(void) {
    Rng r;
    rng_seed(&r, 17);
    const long n = 512;
    const int types[10] = {DT_Q8_0,       DT_Q4_0,     DT_Q4_K,     DT_Q6_K,    DT_Q4_0_G16,
                           DT_Q4_0_G4,    DT_Q4_K_PAIRS, DT_Q4_0_T16, DT_Q8_0_T16, DT_Q4_K_T16},
              nrows = 5;
    for (int ti = 0; ti < 10; ti++) {
        int t = types[ti];
        size_t rb = dtype_nbytes(t, n), xb = kernel_act_bytes(t, n);
        float *w = rand_vec(&r, nrows * n, 0.5f), *x = rand_vec(&r, 7 * n, 2.0f), got[7 * 5];
        char *wq = xmalloc(rb * nrows), *xq = xmalloc(7 * xb);
        for (int i = 0; i < nrows; i++) quantize_row(t, w + i * n, wq + i * rb, n);
        for (int k = 0; k < 7; k++) kernel_quantize_act(t, x + k * n, xq + k * xb, n);
        for (int na = 1; na <= 7; na++) {
            vec_dot_multi_rows(t, wq, rb, nrows, xq, xb, na, n, got, nrows);
            for (int k = 0; k < na; k++)
                for (int i = 0; i < nrows; i++) {
                    float one = vec_dot(t, wq + i * rb, xq + k * xb, n);
                    double scale = offset_mass(t, w + i * n, x + k * n, n);
                    for (long j = 0; j < n; j++) scale += fabs(w[i * n + j] * x[k * n + j]);
                    CHECK_MSG(fabs(got[k * nrows + i] - one) <= 1e-5 * scale, "%s, %d activations: row %d act %d: %g vs %g",
                              dtype_name(t), na, i, k, got[k * nrows + i], one);
                }
        }
        free(w), free(x), free(wq), free(xq);
    }
}

static void test_quantize_activations(void) {
    Rng r;
    rng_seed(&r, 10);
    long n = 1024;
    float *x = rand_vec(&r, n, 3.0f);
    x[5] = 0, x[40] = -7.5f; /* a block whose extreme is negative */
    for (int i = 64; i < 96; i++) x[i] = 0; /* an all-zero block */
    /* the activation holds Q8_0's quants and scales: random floats have no
     * exact ties, so they equal formats' scalar quantiser's */
    char *a = xmalloc(dtype_nbytes(DT_Q8_0, n)), *b = xmalloc(kernel_act_bytes(DT_Q8_0, n));
    float *ya = xmalloc((size_t)n * 4), *yb = xmalloc((size_t)n * 4);
    quantize_row(DT_Q8_0, x, a, n);
    dequantize_row(DT_Q8_0, a, ya, n);
    kernel_quantize_act(DT_Q8_0, x, b, n);
    kernel_act_to_f32(DT_Q8_0, b, yb, n);
    CHECK(!memcmp(ya, yb, (size_t)n * 4));
    CHECK(kernel_act_bytes(DT_Q8_0, n) % 64 == 0 && kernel_act_bytes(DT_Q4_K, 4096 + 32) % 64 == 0);
    free(x), free(a), free(b), free(ya), free(yb);
}

/* The matmul of one type and batch size against the double reference. For
 * quantised weights on the row-dot path, the activation is quantised too,
 * so the reference gets the same quantised activation. */
static int check_matmul(ThreadPool *tp, int t, int n, int rows, int cols, double *worst) {
    Rng r;
    rng_derive(&r, 4, (uint64_t)t, (uint64_t)n);
    float *wf = rand_vec(&r, (long)rows * cols, 0.3f), *x = rand_vec(&r, (long)n * cols, 1.0f);
    size_t rb = dtype_nbytes(t, cols);
    char *wq = xmalloc(rb * (size_t)rows);
    for (int i = 0; i < rows; i++) quantize_row(t, wf + (long)i * cols, wq + i * rb, cols);
    QMat w = {t, wq, rows, cols};
    float *xr = xmalloc((size_t)n * cols * 4), *y = xmalloc((size_t)n * rows * 4), *yr = xmalloc((size_t)n * rows * 4);
    void *tmp = xmalloc(kernel_act_bytes(t, cols) + (size_t)cols * 4);
    for (int i = 0; i < n; i++) {
        /* the values the path multiplies: x quantised for the decode dots and the integer GEMM
         * (by the kernels' quantiser: formats' rounds exact ties away from zero, theirs to even),
         * rounded to bf16 against BF16 weights when prefill takes the vdpbf16ps path, else as is */
        int at = matmul_act_type(t, n), vt = at == DT_BF16 ? DT_BF16 : kernel_vec_type(at);
        if (vt == DT_Q8_0) {
            kernel_quantize_act(at, x + (long)i * cols, tmp, cols);
            kernel_act_to_f32(at, tmp, xr + (long)i * cols, cols);
        } else {
            quantize_row(vt, x + (long)i * cols, tmp, cols);
            dequantize_row(vt, tmp, xr + (long)i * cols, cols);
        }
    }
    matmul_forward(tp, y, x, n, &w);
    matmul_forward_ref(yr, xr, n, &w);
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        for (int o = 0; o < rows; o++) {
            double scale = 0;
            for (int c = 0; c < cols; c++) scale += fabs(wf[(long)o * cols + c] * xr[(long)i * cols + c]);
            double err = fabs(y[(long)i * rows + o] - yr[(long)i * rows + o]) / scale;
            if (err > *worst) *worst = err;
            if (err > 1e-5) ok = 0;
        }
    free(wf), free(x), free(wq), free(xr), free(y), free(yr), free(tmp);
    return ok;
}

static void test_matmul_matches_reference(void) {
    ThreadPool *tp = tp_create(2);
    /* one to three activations left after groups of four (the batched dots' remainders) */
    int batches[] = {1, 3, 4, 5, 6, 0};
    double worst = 0;
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int b = 0; b < 6; b++) {
            /* the last batch size takes the GEMM path */
            int n = batches[b] ? batches[b] : matmul_gemm_min_rows(TYPES[ti]) + 1;
            int cols = dtype_block_size(TYPES[ti]) > 256 ? dtype_block_size(TYPES[ti]) : 256;
            CHECK_MSG(check_matmul(tp, TYPES[ti], n, 100, cols, &worst), "%s n=%d: relative error %g > 1e-5",
                      dtype_name(TYPES[ti]), n, worst);
            /* no pool: the caller's thread, scratch of its own */
            CHECK_MSG(check_matmul(NULL, TYPES[ti], n, 100, cols, &worst), "%s n=%d without a pool: %g",
                      dtype_name(TYPES[ti]), n, worst);
        }
    tp_free(tp);
}

/* A group of matrices on one input equals one matmul each, exactly, on the
 * decode path (one task over all rows, mixed types as in a Q4_K_M file)
 * and on the GEMM path. */
static void test_matmul_group_equals_separate(void) {
    ThreadPool *tp = tp_create(2);
    const int cols = 512, rows[3] = {192, 64, 130};
    const int types[][3] = {{DT_Q8_0, DT_Q8_0, DT_Q8_0},
                            {DT_Q4_K, DT_Q6_K, DT_Q4_K},
                            {DT_F32, DT_Q4_0, DT_BF16},
                            {DT_Q4_0_G16, DT_Q4_0, DT_Q4_0_G16},
                            {DT_Q4_0_G4, DT_Q4_0_G16, DT_Q4_0_G4},
                            {DT_Q4_K_PAIRS, DT_Q6_K, DT_Q4_K_PAIRS},
                            {DT_Q8_0_T16, DT_Q4_0_T16, DT_Q8_0},
                            {DT_Q4_K_T16, DT_Q6_K, DT_Q4_K}};
    Rng r;
    rng_seed(&r, 77);
    for (int ti = 0; ti < 8; ti++)
        for (int ni = 0; ni < 3; ni++) {
            const int n = ni == 0 ? 1 : ni == 1 ? 3 : 64; /* the last on the GEMM path */
            QMat w[3];
            float *ys[3], *want[3];
            const QMat *ws[3];
            float *x = rand_vec(&r, (long)n * cols, 1.0f);
            for (int m = 0; m < 3; m++) {
                float *wf = rand_vec(&r, (long)rows[m] * cols, 0.3f);
                size_t rb = dtype_nbytes(types[ti][m], cols);
                char *q = xmalloc(rb * (size_t)rows[m]);
                for (int i = 0; i < rows[m]; i++) quantize_row(types[ti][m], wf + (long)i * cols, q + i * rb, cols);
                free(wf);
                w[m] = (QMat){types[ti][m], q, rows[m], cols};
                ws[m] = &w[m];
                ys[m] = xmalloc((size_t)n * rows[m] * sizeof(float));
                want[m] = xmalloc((size_t)n * rows[m] * sizeof(float));
                matmul_forward(tp, want[m], x, n, &w[m]);
            }
            matmul_forward_group(tp, 3, ys, x, n, ws);
            for (int m = 0; m < 3; m++) {
                CHECK_MSG(!memcmp(ys[m], want[m], (size_t)n * rows[m] * sizeof(float)), "types set %d, n=%d, matrix %d",
                          ti, n, m);
                free(ys[m]), free(want[m]), free((void *)w[m].data);
            }
            free(x);
        }
    tp_free(tp);
}

/* The head sizes with their own SIMD path (64, 128) and one without (40),
 * a prefill of several tokens and a decode token of another sequence, with
 * and without a sliding window, against the double reference. */
static void test_attention_head_sizes(void) {
    ThreadPool *tp = tp_create(2);
    Rng r;
    rng_seed(&r, 15);
    const int dims[3] = {40, 64, 128};
    for (int di = 0; di < 3; di++)
        for (int window = 0; window <= 9; window += 9) {
            AttnShape s = {.n_heads = 8, .n_kv_heads = 2, .head_dim = dims[di], .window = window};
            int row = s.n_kv_heads * s.head_dim, len = 70;
            float *ka = rand_vec(&r, (long)len * row, 1), *va = rand_vec(&r, (long)len * row, 1);
            int n = 4, pos[4] = {66, 67, 68, 20};
            AttnCache c[4] = {{ka, va, 0, 0, DT_F32}, {ka, va, 0, 0, DT_F32}, {ka, va, 0, 0, DT_F32}, {ka + 3L * row, va + 3L * row, 0, 0, DT_F32}};
            long no = (long)n * s.n_heads * s.head_dim;
            float *q = rand_vec(&r, no, 2), *out = xmalloc((size_t)no * 4), *ref = xmalloc((size_t)no * 4);
            attention_forward_ref(ref, q, n, &s, c, pos);
            for (int pool = 0; pool < 2; pool++) { /* also without a pool, on the caller's thread */
                attention_forward(pool ? tp : NULL, out, q, n, &s, c, pos);
                double worst = 0;
                for (long i = 0; i < no; i++) worst = fmax(worst, fabs(out[i] - ref[i]));
                /* vs the double reference: outputs are softmax-weighted
                 * means of values (|v| <~ 4); the scores q·k/sqrt(hd) (q
                 * of sd 2, k of sd 1: |s| <~ 12) carry the float dot's
                 * error ~u·|s| ~ 7e-7, which moves a weight by that
                 * relative, the output by ~u·|s|·|v| ~ 3e-6 at the worst
                 * position; the mean itself ~u·|v|: 1e-5 absolute */
                CHECK_MSG(worst <= 1e-5, "head_dim %d, window %d, %s: max error %g", dims[di], window,
                          pool ? "2 threads" : "no pool", worst);
            }
            /* the same keys and values head-major (the decoder's layout):
             * head h's position p at h * len * head_dim + p * head_dim */
            int hd = s.head_dim;
            float *kh = xmalloc((size_t)len * row * 4), *vh = xmalloc((size_t)len * row * 4);
            for (int p = 0; p < len; p++)
                for (int h = 0; h < s.n_kv_heads; h++)
                    for (int i = 0; i < hd; i++) {
                        kh[((long)h * len + p) * hd + i] = ka[(long)p * row + h * hd + i];
                        vh[((long)h * len + p) * hd + i] = va[(long)p * row + h * hd + i];
                    }
            AttnCache ch[4];
            for (int t = 0; t < n; t++) ch[t] = (AttnCache){kh, vh, hd, (long)len * hd, DT_F32};
            ch[3].k = kh + 3L * hd, ch[3].v = vh + 3L * hd; /* the other sequence: starts 3 positions on */
            attention_forward(tp, out, q, n, &s, ch, pos);
            double worst = 0;
            for (long i = 0; i < no; i++) worst = fmax(worst, fabs(out[i] - ref[i]));
            CHECK_MSG(worst <= 1e-5, "head-major cache, head_dim %d, window %d: max error %g", hd, window, worst);
            attention_forward_ref(out, q, n, &s, ch, pos);
            worst = 0;
            for (long i = 0; i < no; i++) worst = fmax(worst, fabs(out[i] - ref[i]));
            CHECK_MSG(worst <= 1e-9, "head-major cache, reference: max error %g", worst);
            /* the same cache in f16: the kernel against the reference on
             * the same half values, and near the f32 result */
            uint16_t *k16 = xmalloc((size_t)len * row * 2), *v16 = xmalloc((size_t)len * row * 2);
            quantize_row(DT_F16, kh, k16, (long)len * row);
            quantize_row(DT_F16, vh, v16, (long)len * row);
            for (int t = 0; t < n; t++) ch[t] = (AttnCache){k16, v16, hd, (long)len * hd, DT_F16};
            ch[3].k = k16 + 3L * hd, ch[3].v = v16 + 3L * hd;
            float *ref16 = xmalloc((size_t)no * 4);
            attention_forward_ref(ref16, q, n, &s, ch, pos);
            for (int pool = 0; pool < 2; pool++) {
                attention_forward(pool ? tp : NULL, out, q, n, &s, ch, pos);
                double w16 = 0, w32 = 0;
                for (long i = 0; i < no; i++) w16 = fmax(w16, fabs(out[i] - ref16[i]));
                for (long i = 0; i < no; i++) w32 = fmax(w32, fabs(out[i] - ref[i]));
                /* w16: the same budget as above (same values); w32: the
                 * keys and values rounded to f16, relative sd 2^-11/√3 =
                 * 2.8e-4 each. A score q·k/sqrt(hd) moves by sd 2.8e-4
                 * times rms(q)·rms(k) = 2 (the sum's sqrt(hd) cancels),
                 * 5.6e-4, and the output by the weights' change times
                 * (v - out) (|v - out| <~ 2), averaged over positions by
                 * sqrt(Σp²) <= 0.7 (attention split over two or more
                 * positions; concentrated on one it moves nothing): sd
                 * <= 7.8e-4; the values' own rounding adds sd <= 2.8e-4 ·
                 * 2 · 0.7 = 4e-4; together 8.8e-4, 6 sd: 5.3e-3 ~ 5e-3 */
                CHECK_MSG(w16 <= 1e-5 && w32 <= 5e-3, "f16 cache, head_dim %d, window %d, %s: %g from the reference "
                          "on the same values, %g from f32", hd, window, pool ? "2 threads" : "no pool", w16, w32);
            }
            free(k16), free(v16), free(ref16);
            free(kh), free(vh);
            free(ka), free(va), free(q), free(out), free(ref);
        }
    tp_free(tp);
}

static void test_attention_matches_reference(void) {
    ThreadPool *tp = tp_create(2);
    Rng r;
    rng_seed(&r, 5);
    AttnShape s = {.n_heads = 6, .n_kv_heads = 2, .head_dim = 40};
    int row = s.n_kv_heads * s.head_dim, len = 37;
    float *ka = rand_vec(&r, (long)len * row, 1), *va = rand_vec(&r, (long)len * row, 1);
    float *kb = rand_vec(&r, (long)len * row, 1), *vb = rand_vec(&r, (long)len * row, 1);
    /* a prefill of 4 tokens of sequence a, then one decode token of b */
    int n = 5, pos[5] = {30, 31, 32, 33, 0};
    AttnCache c[5] = {{ka, va, 0, 0, DT_F32}, {ka, va, 0, 0, DT_F32}, {ka, va, 0, 0, DT_F32}, {ka, va, 0, 0, DT_F32}, {kb, vb, 0, 0, DT_F32}};
    float *q = rand_vec(&r, (long)n * s.n_heads * s.head_dim, 1);
    long no = (long)n * s.n_heads * s.head_dim;
    float *out = xmalloc((size_t)no * 4), *ref = xmalloc((size_t)no * 4);
    attention_forward(tp, out, q, n, &s, c, pos);
    attention_forward_ref(ref, q, n, &s, c, pos);
    for (long i = 0; i < no; i++) CHECK_NEAR(out[i], ref[i], 1e-5);
    /* position 0 attends to itself only: the output is its value vector */
    for (int h = 0; h < s.n_heads; h++)
        for (int i = 0; i < s.head_dim; i++)
            CHECK_NEAR(out[(4L * s.n_heads + h) * s.head_dim + i], vb[(h / 3) * s.head_dim + i], 1e-6);
    /* a sliding window of 8 keeps the last 8 positions only */
    s.window = 8;
    attention_forward(tp, out, q, n, &s, c, pos);
    attention_forward_ref(ref, q, n, &s, c, pos);
    for (long i = 0; i < no; i++) CHECK_NEAR(out[i], ref[i], 1e-5);
    AttnCache c8 = {ka + 26L * row, va + 26L * row, 0, 0, DT_F32};
    int p8 = 7;
    /* token 3 (pos 33) over positions 26..33 == a query at 7 over 8 keys */
    attention_forward_ref(ref, q + 3L * s.n_heads * s.head_dim, 1, &(AttnShape){.n_heads = 6, .n_kv_heads = 2, .head_dim = 40}, &c8, &p8);
    for (long i = 0; i < (long)s.n_heads * s.head_dim; i++)
        CHECK_NEAR(out[3L * s.n_heads * s.head_dim + i], ref[i], 1e-5);
    free(ka), free(va), free(kb), free(vb), free(q), free(out), free(ref);
    tp_free(tp);
}

static void test_rmsnorm_softmax_swiglu(void) {
    Rng r;
    rng_seed(&r, 6);
    int dim = 77;
    float *x = rand_vec(&r, 2L * dim, 3), *w = rand_vec(&r, dim, 1), out[2 * 77];
    rmsnorm_forward(out, x, w, 2, dim, 1e-5f);
    for (int t = 0; t < 2; t++) {
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)x[t * dim + i] * x[t * dim + i];
        double inv = 1 / sqrt(ss / dim + 1e-5);
        for (int i = 0; i < dim; i++) CHECK_NEAR(out[t * dim + i], w[i] * x[t * dim + i] * inv, 1e-5);
    }
    float s[4] = {1, 2, 3, 1000};
    softmax_forward(s, 4);
    CHECK_NEAR(s[3], 1.0, 1e-6);
    float s2[3] = {0, log(2), log(5)};
    softmax_forward(s2, 3);
    CHECK_NEAR(s2[0], 0.125, 1e-6);
    CHECK_NEAR(s2[2], 0.625, 1e-6);
    float g[3] = {0, 1, -2}, u[3] = {5, 2, 1}, o[3];
    swiglu_forward(o, g, u, 3);
    CHECK_NEAR(o[0], 0, 0);
    CHECK_NEAR(o[1], 2 * 1 / (1 + exp(-1.0)), 1e-6);
    CHECK_NEAR(o[2], -2 / (1 + exp(2.0)), 1e-6);
    free(x), free(w);
}

/* SwiGLU and softmax take their exp from a polynomial where SIMD is
 * compiled (ops.c): within a few float ulps of the double values over the
 * whole range, extremes included (no NaN, no infinity). */
static void test_exp_accuracy(void) {
    enum { N = 2003 };
    float g[N], u[N], o[N];
    for (int i = 0; i < N; i++) g[i] = -100.0f + 200.0f * (float)i / (N - 1), u[i] = 1.0f;
    g[0] = -1e30f, g[1] = 1e30f, g[2] = -88.5f, g[3] = 88.5f, g[4] = 0;
    swiglu_forward(o, g, u, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = (double)g[i] / (1 + exp(-(double)g[i]));
        double err = fabs(o[i] - want) / fmax(fabs(want), 1e-30);
        if (fabs(want) > 1e-30 && err > worst) worst = err;
        CHECK_MSG(isfinite(o[i]) && (fabs(want) > 1e-30 ? err < 1e-6 : fabs(o[i]) < 1e-20), "silu(%g) = %g, want %g",
                  g[i], o[i], want);
    }
    printf("  silu: worst relative error %.2e\n", worst);
    float s[N];
    double sum = 0;
    for (int i = 0; i < N; i++) s[i] = (float)(i % 97) * -1.3f, sum += exp((double)s[i]);
    softmax_forward(s, N);
    for (int i = 0; i < N; i++) {
        double want = exp((double)((float)(i % 97) * -1.3f)) / sum;
        CHECK_MSG(fabs(s[i] - want) <= 1e-6 * want + 1e-38, "softmax[%d] %g, want %g", i, s[i], want);
    }
}

static void test_rope_layouts(void) {
    int hd = 16, heads = 3;
    float inv[8];
    rope_inv_freq(inv, hd, 10000.0, NULL);
    CHECK_NEAR(inv[0], 1.0, 0);
    CHECK_NEAR(inv[1], pow(10000.0, -2.0 / 16), 1e-7);
    Rng r;
    rng_seed(&r, 7);
    float *x = rand_vec(&r, (long)heads * hd, 1), hf[48], il[48];
    /* HF layout by hand: pairs (i, i + 8) rotate by pos * inv[i] */
    memcpy(hf, x, sizeof hf);
    rope_forward(hf, heads, hd, 5, inv, 0);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < 8; i++) {
            double a = 5.0 * inv[i], x0 = x[h * hd + i], x1 = x[h * hd + i + 8];
            CHECK_NEAR(hf[h * hd + i], x0 * cos(a) - x1 * sin(a), 1e-5);
            CHECK_NEAR(hf[h * hd + i + 8], x1 * cos(a) + x0 * sin(a), 1e-5);
        }
    /* llama.cpp's converter permutes rows so that HF pair (i, i+8) becomes
     * (2i, 2i+1): interleaved RoPE on permuted data = permuted HF RoPE. */
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < 8; i++) il[h * hd + 2 * i] = x[h * hd + i], il[h * hd + 2 * i + 1] = x[h * hd + i + 8];
    rope_forward(il, heads, hd, 5, inv, 1);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < 8; i++) {
            CHECK_NEAR(il[h * hd + 2 * i], hf[h * hd + i], 1e-6);
            CHECK_NEAR(il[h * hd + 2 * i + 1], hf[h * hd + i + 8], 1e-6);
        }
    /* Llama 3 scaling: highest frequencies kept, lowest divided by factor */
    RopeScaling sc = {ROPE_SCALING_LLAMA3, 8.0f, 1.0f, 4.0f, 8192};
    float scaled[64], base[64];
    rope_inv_freq(base, 128, 500000.0, NULL);
    rope_inv_freq(scaled, 128, 500000.0, &sc);
    CHECK_NEAR(scaled[0], base[0], 0);
    CHECK_NEAR(scaled[63], base[63] / 8, 1e-12);
    for (int i = 1; i < 64; i++) CHECK(scaled[i] <= base[i] && scaled[i] >= base[i] / 8 && scaled[i] < scaled[i - 1]);
    free(x);
}

typedef struct SumCtx {
    long n;
    long partial[8];
} SumCtx;

static void sum_task(void *ctx, int ith, int nth) {
    SumCtx *c = ctx;
    long a, b, s = 0;
    tp_split(c->n, ith, nth, &a, &b);
    for (long i = a; i < b; i++) s += i;
    c->partial[ith] = s;
}

typedef struct SharedCtx {
    long n;
    TpCounter next;
    _Atomic long sum;
} SharedCtx;

static void shared_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    SharedCtx *c = ctx;
    long a, b;
    while (tp_next(&c->next, c->n, 7, &a, &b)) {
        long s = 0;
        for (long i = a; i < b; i++) s += i;
        atomic_fetch_add(&c->sum, s);
    }
}

static void test_thread_pool(void) {
    ThreadPool *tp = tp_create(2);
    CHECK_EQ_INT(tp_size(tp), 2);
    for (int round = 0; round < 5000; round++) {
        SumCtx c = {.n = 1000 + round % 7};
        tp_run(tp, sum_task, &c);
        long s = c.partial[0] + c.partial[1];
        CHECK_EQ_INT(s, c.n * (c.n - 1) / 2);
        SharedCtx d = {.n = 500 + round % 11};
        tp_run_shared(tp, shared_task, &d); /* static and shared tasks interleaved */
        CHECK_EQ_INT(atomic_load(&d.sum), d.n * (d.n - 1) / 2);
        if (round % 1000 == 0) usleep(5000); /* let the workers fall asleep */
    }
    tp_free(tp);
}

/* Q8_0 weights of -128 (valid in a GGUF file, never written by the
 * quantisers) and a row of an odd number of blocks: every path equals the
 * reference exactly in its integer part. */
static void test_q8_0_extreme_quants(void) {
    long n = 32 * 19;
    BlockQ8_0 *w = xmalloc(sizeof(BlockQ8_0) * 19);
    float *x = xmalloc((size_t)n * 4);
    void *xq = xmalloc(kernel_act_bytes(DT_Q8_0, n));
    for (long i = 0; i < n; i++) x[i] = (float)((i * 37) % 255 - 127) / 16;
    for (int b = 0; b < 19; b++) {
        w[b].d = f32_to_f16(0.01f * (float)(b + 1));
        for (int j = 0; j < 32; j++) w[b].qs[j] = (int8_t)(j % 3 == 0 ? -128 : (b * 7 + j * 13) % 255 - 127);
    }
    kernel_quantize_act(DT_Q8_0, x, xq, n);
    for (int on = 0; on < 2; on++) {
        int was = kernel_use_avx512(on);
        float fast = vec_dot(DT_Q8_0, w, xq, n), ref = vec_dot_ref(DT_Q8_0, w, xq, n);
        CHECK_MSG(fabs(fast - ref) <= 1e-5 * fabs(ref), "avx512 %d: %g vs %g", on, fast, ref);
        kernel_use_avx512(was);
    }
    free(w), free(x), free(xq);
}

/* The same checks on the AVX2 dots when the build also has AVX-512 ones
 * (which the other tests use), so that both stay right. */
/* DT_Q4_0_G16, DT_Q4_0_G4 and DT_Q4_0_T16 are Q4_0 regrouped, DT_Q8_0_T16
 * Q8_0 (formats/dtype.h): the same bytes in another order (Q8_0_T16's
 * quants + 128), the same values, the same dots up to the order of the
 * float sums (the block sums are exact integers; 1e-5 of the sum of
 * |terms|, as above, the T16 ones' offsets included: offset_mass); they
 * are the layouts models load Q4_0 and Q8_0 matrices into where the SIMD
 * dots run: T16 for rows of whole 512-value groups where the AVX-512 dots
 * run, G16 for them where the AVX2 ones do, G4 for the other rows of whole
 * 128-value groups there (the AVX-512 dots read the stored quads); and
 * none has a user-facing name. */
static void check_regrouped(int t, long n) {
    Rng r;
    rng_seed(&r, 21);
    const int base = dtype_regrouped_from(t), g = dtype_block_size(t) / 32;
    float *w = rand_vec(&r, n, 0.5f), *x = rand_vec(&r, 4 * n, 2.0f), *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
    CHECK_EQ_INT((int)dtype_nbytes(t, n), (int)dtype_nbytes(base, n));
    CHECK(dtype_nbytes(t, 32 * g + 32) == 0 && !kernel_row_ok(t, 32 * g + 32));
    CHECK_EQ_INT(dtype_from_name(dtype_name(t)), DT_INVALID);
    size_t rb = dtype_nbytes(base, n);
    char *q = xmalloc(rb), *gq = xmalloc(rb), *g2 = xmalloc(rb);
    quantize_row(base, w, q, n);
    quantize_row(t, w, gq, n);
    dtype_regroup(t, q, g2, n);
    CHECK(!memcmp(gq, g2, rb) && memcmp(gq, q, rb)); /* regrouped, not copied */
    if (dtype_t16_base(t)) /* every block back as stored, bytes and scale */
        for (long i = 0; i < n / 32; i++) {
            const size_t bs = base == DT_Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0);
            uint8_t qs[32];
            uint16_t d = dtype_t16_block(t, gq + (i / 16) * 16 * bs, (int)(i % 16), qs), d0;
            memcpy(&d0, q + i * bs, 2);
            CHECK_MSG(d == d0 && !memcmp(qs, q + i * bs + 2, bs - 2), "%s block %ld", dtype_name(t), i);
        }
    dequantize_row(base, q, a, n);
    dequantize_row(t, gq, b, n);
    CHECK(!memcmp(a, b, (size_t)n * 4));
    kernel_dequantize_row(t, gq, b, n);
    CHECK(!memcmp(a, b, (size_t)n * 4));
    size_t xb = kernel_act_bytes(t, n);
    CHECK(xb == kernel_act_bytes(DT_Q4_0, n));
    char *xq = xaligned_alloc(4 * xb);
    for (int k = 0; k < 4; k++) kernel_quantize_act(t, x + k * n, xq + k * xb, n);
    float multi[4];
    vec_dot_multi(t, gq, xq, xb, 4, n, multi, 1);
    for (int k = 0; k < 4; k++) {
        double scale = 0;
        for (long i = 0; i < n; i++) scale += fabs(a[i] * x[k * n + i]);
        scale += offset_mass(t, w, x + k * n, n);
        /* the stored type's dots take their own activation (Q8_0's + 128) */
        char *xs = xaligned_alloc(kernel_act_bytes(base, n));
        kernel_quantize_act(base, x + k * n, xs, n);
        float got = vec_dot(t, gq, xq + k * xb, n), stored = vec_dot(base, q, xs, n);
        float ref = vec_dot_ref(base, q, xs, n);
        free(xs);
        CHECK_MSG(fabs(got - ref) <= 1e-5 * scale && fabs(got - stored) <= 1e-5 * scale, "%s act %d: %g, stored %g, ref %g",
                  dtype_name(t), k, got, stored, ref);
        CHECK_MSG(fabs(vec_dot_ref(t, gq, xq + k * xb, n) - ref) <= 1e-5 * scale, "%s act %d: ref of the groups",
                  dtype_name(t), k);
        CHECK_MSG(fabs(multi[k] - ref) <= 1e-5 * scale, "%s act %d: four at once %g, ref %g", dtype_name(t), k, multi[k], ref);
    }
    free(w), free(x), free(a), free(b), free(q), free(gq), free(g2), free(xq);
}

static void test_q4_0_regrouped(void) {
    check_regrouped(DT_Q4_0_G16, 3 * QK4_0_G16);
    check_regrouped(DT_Q4_0_G4, 7 * QK4_0_G4); /* qwen2.5-0.5b's 896 */
    check_regrouped(DT_Q4_0_T16, 3 * QK_T16);
    check_regrouped(DT_Q8_0_T16, 3 * QK_T16);
    /* the loaders' choice: T16 groups where the AVX-512 dots run, groups
     * of 16 where the AVX2 ones do, groups of 4 there for the other rows
     * of whole quads, as stored on the scalar level */
    int avx512 = kernel_use_avx512(0);
    kernel_use_avx512(avx512);
    int simd = kernel_level() >= KL_AVX2;
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_0, 3 * QK4_0_G16), avx512 ? DT_Q4_0_T16 : simd ? DT_Q4_0_G16 : DT_Q4_0);
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_0, 896), simd && !avx512 ? DT_Q4_0_G4 : DT_Q4_0);
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_0, 4864), simd && !avx512 ? DT_Q4_0_G4 : DT_Q4_0);
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_0, 864), DT_Q4_0); /* 27 blocks: not whole quads */
    CHECK_EQ_INT(kernel_weight_type(DT_Q8_0, 3 * QK4_0_G16), avx512 ? DT_Q8_0_T16 : DT_Q8_0);
    CHECK_EQ_INT(kernel_weight_type(DT_Q8_0, 896), DT_Q8_0);
}

/* rb bytes of random Q4_K / Q5_K super-blocks of bb bytes (every nibble
 * and bit, whatever a quantiser writes) with finite d and dmin (f16
 * exponents below 31). */
static void rand_k_blocks(Rng *r, uint8_t *q, size_t rb, size_t bb) {
    for (size_t i = 0; i < rb; i++) q[i] = (uint8_t)(rng_u64(r) >> 56);
    for (size_t k = 0; k < rb / bb; k++) q[k * bb + 1] &= 0x3b, q[k * bb + 3] &= 0x3b;
}

/* DT_Q4_K_T16 is Q4_K in groups of two super-blocks with its scales and
 * nibbles repacked (formats/dtype.h): on random bytes (every nibble and
 * bit of the 6-bit scales and mins, whatever a quantiser writes) every
 * super-block comes back byte for byte and dequantises to the same values;
 * on a quantised row, and on the extremes (quants 15, scales and mins 63,
 * activations +-127), its dots -- one row, four activations at once, the
 * reference of the groups -- equal the stored row's reference up to the
 * order of the float sums (check_regrouped's 1e-5 of the sum of |terms|);
 * the loaders choose it for rows of whole groups where the AVX-512 dots
 * run, and it has no user-facing name. */
static void test_q4_k_t16(void) {
    Rng r;
    rng_seed(&r, 29);
    const long n = 3 * QK_T16;
    const size_t rb = dtype_nbytes(DT_Q4_K, n), bb = sizeof(BlockQ4_K);
    CHECK_EQ_INT((int)dtype_nbytes(DT_Q4_K_T16, n), (int)rb);
    CHECK_EQ_INT(dtype_regrouped_from(DT_Q4_K_T16), DT_Q4_K);
    uint8_t *q = xmalloc(rb), *tq = xmalloc(rb), *back = xmalloc(rb);
    float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
    rand_k_blocks(&r, q, rb, bb);
    dtype_regroup(DT_Q4_K_T16, q, tq, n);
    CHECK(memcmp(tq, q, rb) != 0); /* reordered, not copied */
    for (long k = 0; k < n / QK_K; k++) dtype_q4k_t16_block(tq + (k / 2) * 2 * bb, (int)(k % 2), back + k * bb);
    for (long k = 0; k < n / QK_K; k++)
        CHECK_MSG(!memcmp(back + k * bb, q + k * bb, bb), "super-block %ld back as stored", k);
    dequantize_row(DT_Q4_K, q, a, n);
    dequantize_row(DT_Q4_K_T16, tq, b, n);
    CHECK(!memcmp(a, b, (size_t)n * 4));
    kernel_dequantize_row(DT_Q4_K_T16, tq, b, n);
    CHECK(!memcmp(a, b, (size_t)n * 4));
    /* the extremes: every quant 15, every scale and min 63, d 1, dmin 1 */
    memset(q, 0xff, rb);
    for (long k = 0; k < n / QK_K; k++) memcpy(q + k * bb, "\x00\x3c\x00\x3c", 4);
    dtype_regroup(DT_Q4_K_T16, q, tq, n);
    const size_t xb = kernel_act_bytes(DT_Q4_K_T16, n), xs = kernel_act_bytes(DT_Q4_K, n);
    char *xq = xaligned_alloc(4 * xb), *xk = xaligned_alloc(xs);
    float *x = xmalloc((size_t)n * 4 * 4), multi[4];
    for (int k = 0; k < 4; k++) {
        for (long i = 0; i < n; i++) x[k * n + i] = (i + k) % 3 ? 1.0f : -1.0f; /* quants +-127 */
        kernel_quantize_act(DT_Q4_K_T16, x + k * n, xq + k * xb, n);
    }
    dequantize_row(DT_Q4_K, q, a, n);
    vec_dot_multi(DT_Q4_K_T16, tq, xq, xb, 4, n, multi, 1);
    for (int k = 0; k < 4; k++) {
        kernel_quantize_act(DT_Q4_K, x + k * n, xk, n);
        float ref = vec_dot_ref(DT_Q4_K, q, xk, n), got = vec_dot(DT_Q4_K_T16, tq, xq + k * xb, n);
        double scale = 0;
        for (long i = 0; i < n; i++) scale += fabs(a[i] * x[k * n + i]);
        CHECK_MSG(fabs(got - ref) <= 1e-5 * scale && fabs(multi[k] - ref) <= 1e-5 * scale, "extremes, act %d: %g, four %g, ref %g",
                  k, got, multi[k], ref);
        CHECK(fabs(vec_dot_ref(DT_Q4_K_T16, tq, xq + k * xb, n) - ref) <= 1e-5 * scale);
    }
    free(q), free(tq), free(back), free(a), free(b), free(xq), free(xk), free(x);
    check_regrouped(DT_Q4_K_T16, 3 * QK_T16);
    int avx512 = kernel_use_avx512(0);
    kernel_use_avx512(avx512);
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_K, 3 * QK_T16), avx512 ? DT_Q4_K_T16 : kernel_level() >= KL_AVX2 ? DT_Q4_K_PAIRS : DT_Q4_K);
    CHECK_EQ_INT(kernel_weight_type(DT_Q4_K, 3 * QK_K), avx512 ? DT_Q4_K : kernel_level() >= KL_AVX2 ? DT_Q4_K_PAIRS : DT_Q4_K);
}

/* DT_Q4_K_PAIRS and DT_Q5_K_PAIRS are Q4_K and Q5_K with their bits
 * reordered (formats/dtype.h): on random bytes every block comes back
 * byte for byte and dequantises to the same values (every nibble and bit
 * position, whatever a quantiser writes); the loaders choose them where
 * the AVX2 dots run (every row: whole super-blocks), and they have no
 * user-facing name. For Q4_K in pairs (Q5_K's: test_quant_kquant.c), on a
 * quantised row its dots, one and four activations at once, equal the
 * stored row's reference up to the order of the float sums (1e-5 of the
 * sum of |terms|, as above), also with every quant at 15 against
 * activations of +-127 (the int16 add of two maddubs: 7620). */
static void test_k_pairs(void) {
    Rng r;
    rng_seed(&r, 23);
    const long n = 5 * QK_K;
    for (int base = DT_Q4_K; base; base = base == DT_Q4_K ? DT_Q5_K : 0) {
        const int t = dtype_k_pairs_of(base);
        size_t rb = dtype_nbytes(base, n), bb = rb / (n / QK_K);
        CHECK_EQ_INT((int)dtype_nbytes(t, n), (int)rb);
        CHECK_EQ_INT(dtype_from_name(dtype_name(t)), DT_INVALID);
        CHECK_EQ_INT(dtype_regrouped_from(t), base);
        CHECK_EQ_INT(dtype_k_pairs_base(t), base);
        uint8_t *q = xmalloc(rb), *pq = xmalloc(rb), *back = xmalloc(rb);
        float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
        rand_k_blocks(&r, q, rb, bb);
        dtype_regroup(t, q, pq, n);
        CHECK(memcmp(pq, q, rb) != 0); /* reordered, not copied */
        for (long k = 0; k < n / QK_K; k++) dtype_k_pairs_block(t, pq, k, back + k * bb);
        CHECK_MSG(!memcmp(back, q, rb), "%s: blocks back as stored", dtype_name(t));
        dequantize_row(base, q, a, n);
        dequantize_row(t, pq, b, n);
        CHECK(!memcmp(a, b, (size_t)n * 4));
        kernel_dequantize_row(t, pq, b, n);
        CHECK_MSG(!memcmp(a, b, (size_t)n * 4), "%s: kernel_dequantize_row", dtype_name(t));
        int avx512 = kernel_use_avx512(0);
        kernel_use_avx512(avx512);
        CHECK_EQ_INT(kernel_weight_type(base, 2048), kernel_level() >= KL_AVX2 && !avx512 ? t
                                                     : avx512 && base == DT_Q4_K         ? DT_Q4_K_T16 /* test_q4_k_t16 */
                                                                                         : base);
        free(q), free(pq), free(back), free(a), free(b);
    }
    CHECK_EQ_INT(kernel_weight_type(DT_Q6_K, 2048), DT_Q6_K);
    /* Q4_K in pairs: a quantised row's dots, and the extremes */
    size_t rb = dtype_nbytes(DT_Q4_K, n), xb = kernel_act_bytes(DT_Q4_K_PAIRS, n);
    uint8_t *q = xmalloc(rb), *pq = xmalloc(rb);
    float *w = rand_vec(&r, n, 0.5f), *x = rand_vec(&r, 4 * n, 2.0f), *a = xmalloc((size_t)n * 4);
    char *xq = xaligned_alloc(4 * xb);
    for (int extreme = 0; extreme < 2; extreme++) {
        if (extreme) {
            memset(q, 0xff, rb); /* quants 15, scales and mins 63 */
            for (long k = 0; k < n / QK_K; k++) memcpy(q + k * sizeof(BlockQ4_K), "\x00\x3c\x00\x00", 4); /* d 1, dmin 0 */
            for (long i = 0; i < 4 * n; i++) x[i] = i % 3 ? 1.0f : -1.0f; /* quants +-127 */
            dtype_regroup(DT_Q4_K_PAIRS, q, pq, n);
        } else {
            quantize_row(DT_Q4_K, w, q, n);
            quantize_row(DT_Q4_K_PAIRS, w, pq, n);
            uint8_t *again = xmalloc(rb);
            dtype_k_pairs_regroup(DT_Q4_K, q, again, n);
            CHECK(!memcmp(pq, again, rb));
            free(again);
        }
        dequantize_row(DT_Q4_K, q, a, n);
        for (int k = 0; k < 4; k++) kernel_quantize_act(DT_Q4_K_PAIRS, x + k * n, xq + k * xb, n);
        float multi[4];
        vec_dot_multi(DT_Q4_K_PAIRS, pq, xq, xb, 4, n, multi, 1);
        for (int k = 0; k < 4; k++) {
            double scale = 0;
            for (long i = 0; i < n; i++) scale += fabs(a[i] * x[k * n + i]);
            float ref = vec_dot_ref(DT_Q4_K, q, xq + k * xb, n), got = vec_dot(DT_Q4_K_PAIRS, pq, xq + k * xb, n);
            CHECK_MSG(fabs(got - ref) <= 1e-5 * scale, "extreme %d act %d: %g, ref %g", extreme, k, got, ref);
            CHECK_MSG(vec_dot_ref(DT_Q4_K_PAIRS, pq, xq + k * xb, n) == ref, "act %d: the pairs' reference", k);
            CHECK_MSG(fabs(multi[k] - ref) <= 1e-5 * scale, "extreme %d act %d: four at once %g, ref %g", extreme, k,
                      multi[k], ref);
        }
    }
    free(q), free(pq), free(w), free(x), free(a), free(xq);
}

/* The prefetch mode (dispatch.h) moves when bytes arrive, never what is
 * computed: every row dot is bit for bit the same in each mode, auto
 * with Intel's choices and without (kernel_prefetch_intel: the Q4_0 dots
 * it names run another copy of their loops). */
static void test_prefetch_modes_same_results(void) {
    Rng r;
    rng_seed(&r, 22);
    const long n = 2048;
    const int rows = 40;
    int was = kernel_prefetch(), was_intel = kernel_prefetch_intel();
    for (int ti = 0; ti < N_TYPES; ti++) {
        int t = TYPES[ti];
        size_t rb = dtype_nbytes(t, n);
        float *w = rand_vec(&r, rows * n, 0.5f), *x = rand_vec(&r, n, 2.0f), got[5][40];
        char *wq = xmalloc(rb * rows), *xq = xaligned_alloc(kernel_act_bytes(t, n));
        for (int i = 0; i < rows; i++) quantize_row(t, w + i * n, wq + i * rb, n);
        kernel_quantize_act(t, x, xq, n);
        for (int m = KPF_OFF; m <= KPF_AUTO + 1; m++) { /* the last: auto with the other vendor's choices */
            kernel_set_prefetch(m <= KPF_AUTO ? m : KPF_AUTO);
            kernel_set_prefetch_intel(m <= KPF_AUTO ? was_intel : !was_intel);
            vec_dot_rows(t, wq, rb, rows, xq, n, got[m]);
        }
        for (int m = 1; m < 5; m++) CHECK_MSG(!memcmp(got[0], got[m], sizeof got[0]), "%s, mode %d", dtype_name(t), m);
        free(w), free(x), free(wq), free(xq);
    }
    kernel_set_prefetch(was);
    kernel_set_prefetch_intel(was_intel);
}

static void test_dots_without_avx512(void) {
    int was = kernel_use_avx512(0);
    test_vec_dot_matches_reference();
    test_k_quant_dots_match_dequantised();
    test_q4_0_multi();
    test_matmul_matches_reference();
    test_q4_0_regrouped();
    test_k_pairs();
    kernel_use_avx512(was);
}

int main(void) {
    RUN_LEVELS(test_vec_dot_matches_reference);
    RUN_LEVELS(test_dequantize_matches_formats);
    RUN_LEVELS(test_k_quant_dots_match_dequantised);
    RUN_LEVELS(test_q4_0_multi);
    RUN_LEVELS(test_multi_rows_any_batch);
    RUN_LEVELS(test_quantize_activations);
    RUN_LEVELS(test_matmul_matches_reference);
    RUN_LEVELS(test_matmul_group_equals_separate);
    RUN_LEVELS(test_q8_0_extreme_quants);
    RUN_LEVELS(test_q4_0_regrouped);
    RUN_LEVELS(test_k_pairs);
    RUN_LEVELS(test_q4_k_t16);
    RUN_LEVELS(test_prefetch_modes_same_results);
    RUN_LEVELS(test_dots_without_avx512);
    RUN_LEVELS(test_attention_matches_reference);
    RUN_LEVELS(test_attention_head_sizes);
    RUN_LEVELS(test_rmsnorm_softmax_swiglu);
    RUN_LEVELS(test_exp_accuracy);
    RUN_LEVELS(test_rope_layouts);
    RUN(test_thread_pool);
    return test_summary();
}
