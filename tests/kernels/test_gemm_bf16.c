/* The bf16 GEMM (kernels/gemm_bf16.h) against double-precision references,
 * at every kernel level this CPU runs (levels.h) and, where the CPU has
 * AVX512-BF16, both with the dot instructions and without (the portable
 * path); on the caller's thread and on a pool of two; for shapes that are
 * not multiples of the tile (MR × NR), of the k block (KC, 256) or of the
 * row block (MC, 256), k odd, every combination of transposes and operand
 * types, alpha and beta.
 *
 * Tolerances, derived. u = 2^-24 (f32's unit roundoff), γ_j = j·u/(1-j·u);
 * ã = f32_to_bf16(a), the rounding the kernel must do when it packs f32.
 *  1. Against the exact product of the rounded operands, in double
 *     (its own error, k·2^-53 relative, is negligible): a product of two
 *     bf16 values (8-bit significands) is exact in f32, so only the f32
 *     operations round, each by a factor (1+δ), |δ| <= u. A product of
 *     block b (KC values of k) passes through at most kc_b additions in its
 *     tile accumulator (vdpbf16ps: two per pair; FMA: one per value), one
 *     multiplication by alpha and at most nkb additions into C (nkb = the
 *     number of k blocks <= k); beta·C0 through one multiplication and at
 *     most nkb additions. So at most k + 1 + k <= 2k + 2 factors per term,
 *     and (Higham, Accuracy and Stability of Numerical Algorithms, lemma
 *     3.1 applied term by term)
 *         |C - C_exact(ã, b̃)| <= γ_{2k+2} · (|alpha|·Σ|ã||b̃| + |beta|·|C0|).
 *     The dot path treats bf16 subnormals as zero (DAZ); the data here has
 *     none (|values| >= 2^-12), test_subnormals_dot_flushes checks it apart.
 *  2. Against the exact product of the f32 operands: rounding to bf16
 *     moves each by at most 2^-8 relative (8 significant bits, nearest),
 *     so |ãb̃ - ab| <= ((1+2^-8)^2 - 1)|a||b|, and Σ|ã||b̃| <= (1+2^-8)^2·Σ|a||b|:
 *         |C - C_exact(a, b)| <= ((1+2^-8)^2-1)·|alpha|·Σ|a||b|
 *                                + γ_{2k+2}·((1+2^-8)^2·|alpha|·Σ|a||b| + |beta|·|C0|).
 *  3. One thread or two: bitwise equal (each element of C is computed by one
 *     thread in one order; the split is over columns of C).
 * A quarter of the f32 inputs lie exactly halfway between two bf16 values,
 * so rounding half up (or truncating) instead of half to even moves
 * results by ~2^-9 of a term: far beyond tolerance 1 when k is small. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu_features.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/dtype.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/threads.h"
#include "levels.h"
#include "test.h"

static double gamma_n(double j) { return j * 0x1p-24 / (1 - j * 0x1p-24); }

static float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

/* A random f32 in ±[2^-12, 4): a bf16 value, then, one time in four,
 * exactly halfway to the next bf16 value; otherwise random low bits. */
static float rand_value(Rng *r) {
    float v;
    do v = (float)(rng_uniform(r) * 8 - 4);
    while (fabsf(v) < 0x1p-12f);
    uint32_t u;
    memcpy(&u, &v, 4);
    if (rng_below(r, 4) == 0) u = (u & 0xffff0000u) | 0x8000u; /* a tie */
    memcpy(&v, &u, 4);
    return v;
}

/* One shape's operands, logical (A m×k, B k×n, C0 m×n), and the
 * references: exact sums on rounded and on f32 values and the scales. */
typedef struct Case {
    int m, n, k;
    float *a, *b, *c0;
    double *ab_r, *abs_r, *ab_f, *abs_f; /* m×n: Σ ã b̃, Σ|ã||b̃|, Σ a b, Σ|a||b| */
} Case;

static Case make_case(int m, int n, int k, uint64_t seed) {
    Case t = {.m = m, .n = n, .k = k};
    Rng r;
    rng_seed(&r, seed);
    t.a = xmalloc((size_t)m * k * 4), t.b = xmalloc((size_t)k * n * 4), t.c0 = xmalloc((size_t)m * n * 4);
    for (long i = 0; i < (long)m * k; i++) t.a[i] = rand_value(&r);
    for (long i = 0; i < (long)k * n; i++) t.b[i] = rand_value(&r);
    for (long i = 0; i < (long)m * n; i++) t.c0[i] = rand_value(&r);
    size_t mn = (size_t)m * n * sizeof(double);
    t.ab_r = xmalloc(mn), t.abs_r = xmalloc(mn), t.ab_f = xmalloc(mn), t.abs_f = xmalloc(mn);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sr = 0, ar = 0, sf = 0, af = 0;
            for (int p = 0; p < k; p++) {
                double x = t.a[(long)i * k + p], y = t.b[(long)p * n + j];
                double xr = bf16_round((float)x), yr = bf16_round((float)y);
                sr += xr * yr, ar += fabs(xr * yr), sf += x * y, af += fabs(x * y);
            }
            t.ab_r[(long)i * n + j] = sr, t.abs_r[(long)i * n + j] = ar;
            t.ab_f[(long)i * n + j] = sf, t.abs_f[(long)i * n + j] = af;
        }
    return t;
}

static void free_case(Case *t) {
    free(t->a), free(t->b), free(t->c0), free(t->ab_r), free(t->abs_r), free(t->ab_f), free(t->abs_f);
}

/* X (rows × cols, logical) stored for op(stored) = X: as is or transposed,
 * f32 or bf16; ld = its row length plus 3 (strides are not widths). */
static GemmMat store(const float *x, int rows, int cols, int trans, int bf16, void **mem) {
    long sr = trans ? cols : rows, sc = trans ? rows : cols, ld = sc + 3;
    char *p = xmalloc((size_t)(sr * ld) * 4);
    for (long i = 0; i < rows; i++)
        for (long j = 0; j < cols; j++) {
            long at = trans ? j * ld + i : i * ld + j;
            float v = x[i * cols + j];
            if (bf16)
                ((uint16_t *)p)[at] = f32_to_bf16(v);
            else
                ((float *)p)[at] = v;
        }
    *mem = p;
    return (GemmMat){p, bf16, trans, ld};
}

/* Runs one case in every layout, checks tolerances 1-3; returns 0 at the
 * first failure (with the message out). */
static int check_case(const Case *t, ThreadPool *tp, char *msg, size_t msz) {
    const float alphas[] = {1.0f, -0.75f}, betas[] = {0.0f, 0.5f};
    const int m = t->m, n = t->n, k = t->k;
    const long ldc = n + 5;
    float *c1 = xmalloc((size_t)m * ldc * 4), *c2 = xmalloc((size_t)m * ldc * 4);
    const double g = gamma_n(2.0 * k + 2), ub = 0x1p-8, rr = (1 + ub) * (1 + ub);
    int ok = 1;
    for (int v = 0; v < 32 && ok; v++) {
        int ta = v & 1, tb = v >> 1 & 1, a16 = v >> 2 & 1, b16 = v >> 3 & 1;
        float alpha = alphas[v >> 4 & 1], beta = betas[(v >> 4 & 1) ^ (v & 1)];
        void *ma, *mb;
        GemmMat a = store(t->a, m, k, ta, a16, &ma), b = store(t->b, k, n, tb, b16, &mb);
        for (int i = 0; i < m; i++)
            for (long j = 0; j < ldc; j++) {
                /* beta = 0: C is only written, NaN must not leak through */
                float c0 = j < n ? t->c0[(long)i * n + j] : 7.0f;
                c1[i * ldc + j] = c2[i * ldc + j] = beta == 0 && j < n ? NAN : c0;
            }
        gemm_bf16(NULL, m, n, k, alpha, a, b, beta, c1, ldc);
        gemm_bf16(tp, m, n, k, alpha, a, b, beta, c2, ldc);
        for (int i = 0; i < m && ok; i++)
            for (long j = 0; j < ldc && ok; j++) {
                long at = i * ldc + j, lt = (long)i * n + j;
                const char *why = NULL;
                double got = c1[at], want = 0, tol = 0;
                if (memcmp(&c1[at], &c2[at], 4)) why = "1 thread != 2 threads";
                else if (j >= n) {
                    if (got != 7.0f) why = "wrote past n";
                } else {
                    double cb = beta * (double)t->c0[lt];
                    want = alpha * t->ab_r[lt] + cb;
                    tol = g * (fabs(alpha) * t->abs_r[lt] + fabs(cb));
                    if (!(fabs(got - want) <= tol)) why = "vs rounded operands";
                    else {
                        want = alpha * t->ab_f[lt] + cb;
                        tol = (rr - 1) * fabs(alpha) * t->abs_f[lt] + g * (rr * fabs(alpha) * t->abs_f[lt] + fabs(cb));
                        if (!(fabs(got - want) <= tol)) why = "vs f32 operands";
                    }
                }
                if (why) {
                    snprintf(msg, msz,
                             "m=%d n=%d k=%d ta=%d tb=%d a:%s b:%s alpha=%g beta=%g dot=%d: C[%d][%ld] %s: %.9g vs %.9g "
                             "(tol %.3g)",
                             m, n, k, ta, tb, a16 ? "bf16" : "f32", b16 ? "bf16" : "f32", alpha, beta, gemm_bf16_dot(), i,
                             j, why, got, want, tol);
                    ok = 0;
                }
            }
        free(ma), free(mb);
    }
    free(c1), free(c2);
    return ok;
}

/* Every path this level has: with and without the dot instructions. */
static void test_gemm_matches_reference(void) {
    static const int shapes[][3] = {
        {1, 1, 1},     {3, 5, 2},      {7, 33, 5},   {8, 32, 256},  {9, 31, 257},
        {13, 70, 259}, {37, 65, 513},  {5, 300, 40}, {300, 40, 31}, {17, 600, 7},
    };
    ThreadPool *tp = tp_create(2);
    int was = gemm_bf16_use_dot(1);
    const int paths = gemm_bf16_dot() ? 2 : 1;
    char msg[512];
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        Case t = make_case(shapes[s][0], shapes[s][1], shapes[s][2], 100 + (uint64_t)s);
        int ok = 1;
        for (int p = 0; p < paths && ok; p++) {
            gemm_bf16_use_dot(p == 0);
            ok = check_case(&t, tp, msg, sizeof msg);
        }
        free_case(&t);
        if (!ok) {
            gemm_bf16_use_dot(was);
            tp_free(tp);
            CHECK_MSG(0, "%s", msg);
        }
    }
    gemm_bf16_use_dot(was);
    tp_free(tp);
}

/* The dot path runs where it should: gemm_bf16_dot() says so exactly when
 * the level is avx512 or above and the CPU has AVX512-BF16, and then the
 * instruction is what ran -- it treats a bf16 subnormal as zero, which the
 * portable path does not: 2^-130 · 2^10 is 2^-120 there (a normal f32), 0
 * with vdpbf16ps. */
static void test_subnormals_dot_flushes(void) {
    int was = gemm_bf16_use_dot(1);
    int expect = kernel_level() >= KL_AVX512 && (cpu_features()->bits & CPU_AVX512BF16);
    CHECK_EQ_INT(gemm_bf16_dot(), expect);
    const float a[2] = {0x1p-130f, 1.0f}, b[2] = {0x1p10f, 0.0f};
    for (int p = 0; p < 2; p++) {
        gemm_bf16_use_dot(p == 0);
        float c = -1;
        gemm_bf16_sgemm(NULL, 0, 0, 1, 1, 2, 1.0f, a, 2, b, 1, 0.0f, &c, 1);
        if (gemm_bf16_dot())
            CHECK_MSG(c == 0.0f, "dot path: %g, expected 0 (bf16 subnormal as zero)", c);
        else
            CHECK_MSG(c == 0x1p-120f, "portable path: %g, expected 2^-120", c);
    }
    gemm_bf16_use_dot(was);
}

/* Rounding on packing is formats' f32_to_bf16, specials included: a NaN
 * stays a NaN (its row of C is NaN, the others are not), ±inf times a
 * positive value is ±inf, values round to nearest even -- 1 + 2^-8 (a tie)
 * to 1, 1 + 3·2^-8 (a tie) to 1 + 2^-6... checked through a 1×1 product
 * with 1. */
static void test_specials(void) {
    const float ties[][2] = {{1 + 0x1p-8f, 1}, {1 + 3 * 0x1p-8f, 1 + 0x1p-6f}, {-(1 + 0x1p-8f), -1},
                             {1 + 0x1p-8f + 0x1p-20f, 1 + 0x1p-7f}, {0x1.fffffep127f, INFINITY}};
    for (int i = 0; i < 5; i++) {
        float one = 1.0f, c = 0;
        gemm_bf16_sgemm(NULL, 0, 0, 1, 1, 1, 1.0f, &ties[i][0], 1, &one, 1, 0.0f, &c, 1);
        CHECK_MSG(c == ties[i][1], "%a rounds to %a, expected %a", ties[i][0], c, ties[i][1]);
    }
    enum { M = 3, N = 40, K = 20 };
    float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M * K; i++) a[i] = 0.5f;
    for (int i = 0; i < K * N; i++) b[i] = 0.25f;
    a[1 * K + 3] = NAN;
    a[2 * K + 19] = INFINITY;
    gemm_bf16_sgemm(NULL, 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    for (int j = 0; j < N; j++) {
        CHECK_MSG(c[j] == K * 0.125f, "row 0, col %d: %g", j, c[j]);
        CHECK_MSG(isnan(c[N + j]), "row 1 (a NaN), col %d: %g", j, c[N + j]);
        CHECK_MSG(isinf(c[2 * N + j]) && c[2 * N + j] > 0, "row 2 (+inf), col %d: %g", j, c[2 * N + j]);
    }
}

/* alpha = 0 or k = 0: C = beta·C, A and B unread (NULL here); m or n = 0:
 * nothing written. */
static void test_degenerate(void) {
    float c[6] = {1, 2, 3, 4, 5, 6};
    gemm_bf16_sgemm(NULL, 0, 0, 2, 3, 4, 0.0f, NULL, 4, NULL, 3, 2.0f, c, 3);
    for (int i = 0; i < 6; i++) CHECK(c[i] == 2.0f * (float)(i + 1));
    gemm_bf16_sgemm(NULL, 1, 1, 2, 3, 0, 1.0f, NULL, 1, NULL, 1, 0.0f, c, 3);
    for (int i = 0; i < 6; i++) CHECK(c[i] == 0.0f);
    c[0] = 9;
    gemm_bf16_sgemm(NULL, 0, 0, 0, 3, 4, 1.0f, NULL, 4, NULL, 3, 0.0f, c, 3);
    gemm_bf16_sgemm(NULL, 0, 0, 2, 0, 4, 1.0f, NULL, 4, NULL, 3, 0.0f, c, 3);
    CHECK(c[0] == 9);
}

/* The prefill form: y = x·Wᵀ on bf16 W equals the general call, bit for
 * bit. Even widths take its own driver at AVX-512 with BF16 (W's rows
 * broadcast, x packed: gemm_bf16_xwt_level): tokens past one panel of 32
 * and not a multiple of it, rows that leave a partial tile of 8 and a
 * partial block of 64, widths with a partial block of 256 values, one
 * pair; an odd width takes the general GEMM. With the AMX tiles off: the
 * general GEMM on them sums in another order (test_amx_gemm). */
static void test_xwt(void) {
    static const int shapes[][3] = {{19, 45, 67}, {40, 70, 600}, {33, 9, 2}, {5, 130, 512}, {64, 8, 256}};
    Rng r;
    rng_seed(&r, 5);
    int amx = kernel_set_amx(0);
    ThreadPool *tp = tp_create(2);
    for (int si = 0; si < 5; si++) {
        const int T = shapes[si][0], R = shapes[si][1], C = shapes[si][2];
        float *x = xmalloc((size_t)T * C * 4), *y1 = xmalloc((size_t)T * R * 4), *y2 = xmalloc((size_t)T * R * 4);
        uint16_t *w = xmalloc((size_t)R * C * 2);
        for (int i = 0; i < T * C; i++) x[i] = rand_value(&r);
        for (int i = 0; i < R * C; i++) w[i] = f32_to_bf16(rand_value(&r));
        gemm_bf16(NULL, T, R, C, 1.0f, (GemmMat){x, 0, 0, C}, (GemmMat){w, 1, 1, C}, 0.0f, y2, R);
        for (int pool = 0; pool < 2; pool++) {
            for (int i = 0; i < T * R; i++) y1[i] = NAN; /* every element written */
            gemm_bf16_xwt(pool ? tp : NULL, y1, x, T, w, R, C);
            CHECK_MSG(!memcmp(y1, y2, (size_t)T * R * 4), "%dx%d by %d, %s", T, R, C, pool ? "2 threads" : "no pool");
        }
        free(x), free(y1), free(y2), free(w);
    }
    tp_free(tp);
    kernel_set_amx(amx);
}

/* The general GEMM on AMX-BF16 tiles (gemm_bf16_amx_tile32), where this
 * pass has them ("+amx"; on such a CPU the pass must take them): it is
 * test_gemm_matches_reference's subject there, whose bound 1 holds for
 * it as for vdpbf16ps (two rounded additions per pair of k into a tile
 * accumulator, then the same updates of C: at most 2k + 2 factors per
 * term); here, besides, against the vdpbf16ps path on the same operands
 * within twice that bound (each within it of the exact sum), for shapes
 * that leave partial 32 x 32 tiles, k not a multiple of 32 (the tiles'
 * zero padding) and k past one block (AMX_KC, 1024) and two. */
static void test_amx_gemm(void) {
    if (!(cpu_features()->bits & CPU_AMX_BF16) || !kernel_amx() || !gemm_bf16_dot()) return; /* not this pass */
    CHECK(gemm_bf16_amx_gemm());
    static const int shapes[][3] = {{1, 1, 1}, {33, 45, 67}, {70, 40, 600}, {64, 96, 512}, {5, 130, 31}, {40, 33, 2100}};
    Rng r;
    rng_seed(&r, 9);
    ThreadPool *tp = tp_create(2);
    for (int si = 0; si < 6; si++) {
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *a = xmalloc((size_t)M * K * 4), *b = xmalloc((size_t)K * N * 4);
        float *y1 = xmalloc((size_t)M * N * 4), *y2 = xmalloc((size_t)M * N * 4);
        for (int i = 0; i < M * K; i++) a[i] = rand_value(&r);
        for (int i = 0; i < K * N; i++) b[i] = rand_value(&r);
        gemm_bf16_sgemm(tp, 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, y1, N); /* AMX */
        int was = kernel_set_amx(0);
        gemm_bf16_sgemm(tp, 0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, y2, N); /* vdpbf16ps */
        kernel_set_amx(was);
        int ok = 1;
        for (int i = 0; i < M && ok; i++)
            for (int j = 0; j < N && ok; j++) {
                double s = 0;
                for (int p = 0; p < K; p++) s += fabs((double)bf16_round(a[i * K + p]) * bf16_round(b[p * N + j]));
                double d = fabs((double)y1[i * N + j] - y2[i * N + j]), bound = 2 * gamma_n(2.0 * K + 2) * s;
                ok = d <= bound;
                CHECK_MSG(ok, "%dx%d by %d: C[%d][%d] AMX %.9g, vdpbf16ps %.9g (bound %.3g)", M, N, K, i, j, y1[i * N + j],
                          y2[i * N + j], bound);
            }
        free(a), free(b), free(y1), free(y2);
    }
    tp_free(tp);
}

/* The prefill on AMX-BF16 tiles (gemm_bf16_amx.c), where this pass has
 * them ("+amx", levels.h): y = bf16(x)·Wᵀ with x rounded as
 * gemm_bf16_round does; every product of two bf16 is exact in f32 and the
 * tile unit adds the C products of a row in some order of C - 1 rounded
 * additions into f32, so |y - exact| <= gamma_C sum|p| (Higham 4.2; no
 * subnormals here: |values| >= 2^-10). Tokens past one block of 32 and
 * not a multiple of 16, rows leaving partial blocks of 16 and an odd
 * number of blocks, widths of one chunk of 32 values and of many. A width
 * that is not whole chunks goes to gemm_bf16_xwt: bit for bit its result. */
static void test_amx_xwt(void) {
    if (!gemm_bf16_amx()) return; /* no AMX-BF16 in this pass */
    static const int shapes[][3] = {{19, 45, 64}, {40, 70, 608}, {33, 9, 32}, {5, 130, 512}, {64, 16, 256}};
    Rng r;
    rng_seed(&r, 7);
    ThreadPool *tp = tp_create(2);
    for (int si = 0; si < 5; si++) {
        const int T = shapes[si][0], R = shapes[si][1], C = shapes[si][2];
        float *x = xmalloc((size_t)T * C * 4), *y = xmalloc((size_t)T * R * 4);
        uint16_t *w = xmalloc((size_t)R * C * 2);
        for (int i = 0; i < T * C; i++) x[i] = rand_value(&r);
        for (int i = 0; i < R * C; i++) w[i] = f32_to_bf16(rand_value(&r));
        for (int pool = 0; pool < 2; pool++) {
            for (int i = 0; i < T * R; i++) y[i] = NAN; /* every element written */
            gemm_bf16_amx_xwt(pool ? tp : NULL, y, x, T, w, R, C);
            int ok = 1;
            for (int t = 0; t < T && ok; t++)
                for (int o = 0; o < R && ok; o++) {
                    double s = 0, a = 0;
                    for (int c = 0; c < C; c++) {
                        double p = (double)bf16_round(x[t * C + c]) * bf16_to_f32(w[o * C + c]);
                        s += p, a += fabs(p);
                    }
                    double got = y[t * R + o];
                    ok = fabs(got - s) <= gamma_n(C) * a;
                    CHECK_MSG(ok, "%dx%d by %d, %s: y[%d][%d] %.9g, exact %.9g (bound %.3g)", T, R, C,
                              pool ? "2 threads" : "no pool", t, o, got, s, gamma_n(C) * a);
                }
        }
        free(x), free(y), free(w);
    }
    enum { T = 7, R = 20, C = 100 };
    float *x = xmalloc((size_t)T * C * 4), *y1 = xmalloc((size_t)T * R * 4), *y2 = xmalloc((size_t)T * R * 4);
    uint16_t *w = xmalloc((size_t)R * C * 2);
    for (int i = 0; i < T * C; i++) x[i] = rand_value(&r);
    for (int i = 0; i < R * C; i++) w[i] = f32_to_bf16(rand_value(&r));
    gemm_bf16_amx_xwt(tp, y1, x, T, w, R, C);
    gemm_bf16_xwt(tp, y2, x, T, w, R, C);
    CHECK(!memcmp(y1, y2, sizeof(float) * T * R));
    free(x), free(y1), free(y2), free(w);
    tp_free(tp);
}

/* matmul_forward's prefill on BF16 weights: through the dot path (equal
 * to gemm_bf16_xwt, bit for bit) exactly when asked for and the dot path
 * is on; otherwise the f32 path (x not rounded: within the f32 sum's
 * error of the exact product, 1e-5 of Σ|w x| as test_kernels.c, where
 * rounding x to bf16 would be off by up to 2^-9 of it). */
static void test_prefill_routing(void) {
    enum { TMAX = 40, R = 70, C = 96 };
    Rng r;
    rng_seed(&r, 6);
    float x[TMAX * C], y[TMAX * R], want[TMAX * R];
    uint16_t w[R * C], xb[C];
    for (int i = 0; i < TMAX * C; i++) x[i] = rand_value(&r);
    for (int i = 0; i < R * C; i++) w[i] = f32_to_bf16(rand_value(&r));
    QMat qm = {DT_BF16, w, R, C};
    CHECK(TMAX >= matmul_gemm_min_rows(DT_BF16));
    ThreadPool *tp = tp_create(2);
    int was = gemm_bf16_set_infer(0);
    static const int ts[] = {TMAX, 3, 1}; /* prefill, then the decode path's row dots */
    for (int on = 0; on < 2; on++)
    for (int ti = 0; ti < 3; ti++) {
        const int T = ts[ti];
        gemm_bf16_set_infer(on);
        CHECK_EQ_INT(gemm_bf16_infer(), on && gemm_bf16_dot());
        CHECK_EQ_INT(matmul_act_type(DT_BF16, T), gemm_bf16_infer() ? DT_BF16 : DT_F32);
        matmul_forward(tp, y, x, T, &qm);
        if (T >= matmul_gemm_min_rows(DT_BF16))
            gemm_bf16_xwt(NULL, want, x, T, w, R, C);
        else
            for (int t = 0; t < T; t++) {
                gemm_bf16_round(x + t * C, xb, C);
                gemm_bf16_rows(w, C * 2, R, xb, C, want + t * R, 1);
            }
        if (gemm_bf16_infer() && T >= matmul_gemm_min_rows(DT_BF16) && gemm_bf16_amx()) {
            /* the AMX tiles: gemm_bf16_xwt's sums in another order, each
             * within gamma_C sum|p| of the exact one (test_amx_xwt) */
            for (int t = 0; t < T; t++)
                for (int o = 0; o < R; o++) {
                    double a = 0;
                    for (int c = 0; c < C; c++) a += fabs((double)bf16_round(x[t * C + c]) * bf16_to_f32(w[o * C + c]));
                    CHECK_MSG(fabs(y[t * R + o] - want[t * R + o]) <= 2 * gamma_n(C) * a, "AMX prefill: y[%d][%d] %.9g vs %.9g",
                              t, o, y[t * R + o], want[t * R + o]);
                }
            continue;
        }
        if (gemm_bf16_infer()) {
            CHECK_MSG(!memcmp(y, want, (size_t)T * R * sizeof *y), "%d rows, bf16 on: not the bf16 %s's result", T,
                      T >= matmul_gemm_min_rows(DT_BF16) ? "GEMM" : "row dots");
            continue;
        }
        for (int t = 0; t < T; t++)
            for (int o = 0; o < R; o++) {
                double s = 0, a = 0;
                for (int c = 0; c < C; c++) {
                    double p = (double)x[t * C + c] * bf16_to_f32(w[o * C + c]);
                    s += p, a += fabs(p);
                }
                CHECK_MSG(fabs(y[t * R + o] - s) <= 1e-5 * a, "prefill off: y[%d][%d] %.9g vs %.9g", t, o, y[t * R + o], s);
            }
    }
    gemm_bf16_set_infer(was);
    tp_free(tp);
}

/* The decode path's bf16 row dots (gemm_bf16_rows), both paths, on every
 * length class of the vdpbf16ps loop (128 a step, then 32, then a masked
 * tail): x rounds to bf16 as f32_to_bf16 does, bit for bit, and each
 * result is within the f32 summation bound of the exact dot of the rounded
 * operands (n roundings at most; the products of two bf16 values are exact
 * in f32; no subnormals among these values). A tail read past n or a
 * dropped block misses by a whole product, far beyond the bound. */
static void test_decode_rows(void) {
    static const int lens[] = {1, 7, 31, 32, 33, 96, 127, 128, 129, 200, 896};
    enum { R = 5, NMAX = 896 };
    Rng r;
    rng_seed(&r, 9);
    static float x[NMAX];
    static uint16_t w[R * (NMAX + 8)], xb[NMAX + 64];
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        const int n = lens[li], ld = n + 8; /* rows ld apart: the row stride is used */
        for (int i = 0; i < n; i++) x[i] = rand_value(&r);
        for (int i = 0; i < R * ld; i++) w[i] = f32_to_bf16(rand_value(&r));
        for (int i = 0; i < 64; i++) xb[n + i] = f32_to_bf16(1e30f); /* past the end: must not be read */
        gemm_bf16_round(x, xb, n);
        for (int i = 0; i < n; i++) CHECK_EQ_INT(xb[i], f32_to_bf16(x[i]));
        for (int dot = 0; dot < 2; dot++) {
            float out[R];
            gemm_bf16_rows(w, (size_t)ld * 2, R, xb, n, out, dot);
            for (int o = 0; o < R; o++) {
                double s = 0, a = 0;
                for (int i = 0; i < n; i++) {
                    double p = (double)bf16_to_f32(w[o * ld + i]) * bf16_to_f32(xb[i]);
                    s += p, a += fabs(p);
                }
                CHECK_MSG(fabs(out[o] - s) <= gamma_n(n) * a, "n %d dot %d row %d: %.9g vs %.9g", n, dot, o, out[o], s);
            }
        }
    }
}

int main(void) {
    RUN_LEVELS(test_decode_rows);
    RUN_LEVELS(test_gemm_matches_reference);
    RUN_LEVELS(test_subnormals_dot_flushes);
    RUN_LEVELS(test_specials);
    RUN_LEVELS(test_degenerate);
    RUN_LEVELS(test_xwt);
    RUN_LEVELS(test_amx_xwt);
    RUN_LEVELS(test_amx_gemm);
    RUN_LEVELS(test_prefill_routing);
    return test_summary();
}
