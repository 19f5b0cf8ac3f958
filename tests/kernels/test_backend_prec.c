/* test_backend_prec: the precision contract of the backend's linear ops
 * (kernels/backend.h, BackendPrec) on the CPU backend, at every kernel
 * level, for the weight types the engine multiplies in place and row
 * counts on both sides of matmul_gemm_min_rows (the decode dots and the
 * prefill GEMMs):
 *  - BPREC_EXACT is the product of x with W's values widened exactly:
 *    within float32 summation of the double product of the dequantised
 *    rows, whatever the type and the number of rows;
 *  - with the backward (linear_backward, a frozen W): the adjoint identity
 *    <dy, linear(x)> = <linear_backward(dy), x> -- the gradient check of a
 *    linear map -- holds to float32 summation for BPREC_EXACT (and for
 *    BPREC_INFER where it takes x as it is): the forward is the function
 *    the backward differentiates;
 *  - BPREC_INFER rounds x exactly where matmul_act_type says (int8 blocks
 *    for quantised W on the decode dots and in the integer prefill GEMM,
 *    bf16 for the BF16 prefill), within that rounding's bound of the exact
 *    product, and beyond the float32 bound somewhere (the two precisions
 *    are told apart), and nowhere else within it;
 *  - linear_group equals its linear calls bit for bit in both precisions;
 *  - the reference backend (backend_ref.c) computes both as EXACT.
 *
 * Bounds (u = 2^-24, K = cols). Float32: one sum of K products, each of a
 * weight dequantised with at most one rounding (scale x quant) and an
 * f32 x, in any order: |y - y_exact| <= (K + 2) u sum|w x| (Higham 3.1).
 * The adjoint identity: the two sides are the same double sum over (t, o,
 * i) of dy w x, each side computed through one float32 product per
 * element, so they differ by at most (K_in + K_out + 4) u sum |dy||w||x|
 * (A below). int8 rounding: test_gemm_int8.c's: |x - dx q| < 0.57 dx per
 * value (dx the block's f16 scale), so the product moves by at most
 * 0.57 sum_b dx_b sum_{i in b} |w_i|, plus the integer kernels' float
 * error, bounded there by (K/2 + 8) u (4 sum|w x| + 4 max|w| sum|x|) (the
 * offsets of types with mins). bf16 rounding of x: 2^-8 sum|w x| plus the
 * float bound. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ref.c"
#include "base/mem.h"
#include "base/rng.h"
#include "kernels/backend.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "levels.h"
#include "test.h"

#define U 0x1p-24

static const int TYPES[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q4_K, DT_Q6_K, DT_Q5_K};
#define N_TYPES ((int)(sizeof TYPES / sizeof TYPES[0]))
enum { ROWS = 52, COLS = 256, MAXN = 40 };

typedef struct Case {
    int type, n;
    void *wq;
    float *wd; /* W's values as stored, widened [ROWS][COLS] */
    QMat w;
    float *x, *dy; /* [n][COLS], [n][ROWS] */
} Case;

static void case_init(Case *c, int type, int n) {
    Rng r;
    rng_derive(&r, 2026, (uint64_t)type, (uint64_t)n);
    c->type = type, c->n = n;
    size_t rb = dtype_nbytes(type, COLS);
    c->wq = xmalloc(rb * ROWS);
    c->wd = xmalloc((size_t)ROWS * COLS * sizeof(float));
    float *wf = xmalloc((size_t)ROWS * COLS * sizeof(float));
    for (long i = 0; i < (long)ROWS * COLS; i++) wf[i] = rng_normal(&r) * 0.3f;
    for (int o = 0; o < ROWS; o++) {
        quantize_row(type, wf + (long)o * COLS, (char *)c->wq + o * rb, COLS);
        dequantize_row(type, (char *)c->wq + o * rb, c->wd + (long)o * COLS, COLS);
    }
    free(wf);
    c->w = (QMat){type, c->wq, ROWS, COLS};
    c->x = xmalloc((size_t)n * COLS * sizeof(float));
    c->dy = xmalloc((size_t)n * ROWS * sizeof(float));
    for (long i = 0; i < (long)n * COLS; i++) c->x[i] = rng_normal(&r);
    for (long i = 0; i < (long)n * ROWS; i++) c->dy[i] = rng_normal(&r);
}

static void case_free(Case *c) { free(c->wq), free(c->wd), free(c->x), free(c->dy); }

/* sum_i |w_oi x_ti| */
static double abs_dot(const Case *c, int t, int o) {
    double s = 0;
    for (int i = 0; i < COLS; i++) s += fabs((double)c->wd[(long)o * COLS + i] * c->x[(long)t * COLS + i]);
    return s;
}

/* The exact product in double, y[t][o]. */
static double exact_dot(const Case *c, int t, int o) {
    double s = 0;
    for (int i = 0; i < COLS; i++) s += (double)c->wd[(long)o * COLS + i] * c->x[(long)t * COLS + i];
    return s;
}

/* The bound of rounding row t of x as `act` (matmul_act_type) for output o. */
static double act_bound(const Case *c, int act, int t, int o) {
    const float *w = c->wd + (long)o * COLS, *x = c->x + (long)t * COLS;
    double s = abs_dot(c, t, o);
    if (act == DT_F32) return 0;
    if (act == DT_BF16) return 0x1p-8 * s;
    double q = 0, mw = 0, sx = 0;
    for (int b = 0; b < COLS / 32; b++) {
        double mx = 0, sw = 0;
        for (int i = 0; i < 32; i++) mx = fmax(mx, fabs(x[32 * b + i])), sw += fabs(w[32 * b + i]);
        q += 0.57 * (mx / 127) * (1 + 0x1p-10) * sw; /* dx: max/127 rounded to f16 */
    }
    for (int i = 0; i < COLS; i++) mw = fmax(mw, fabs(w[i])), sx += fabs(x[i]);
    return q + (COLS / 2.0 + 8) * U * (4 * s + 4 * mw * sx);
}

/* Worst |y - exact| over its bound (float bound + act's), and whether some
 * output exceeded the float bound alone. */
static double worst_ratio(const Case *c, const float *y, int act, int *beyond_float) {
    double worst = 0;
    *beyond_float = 0;
    for (int t = 0; t < c->n; t++)
        for (int o = 0; o < ROWS; o++) {
            double err = fabs(y[(long)t * ROWS + o] - exact_dot(c, t, o));
            double fb = (COLS + 2) * U * abs_dot(c, t, o) + 1e-30;
            *beyond_float |= err > fb;
            worst = fmax(worst, err / (fb + act_bound(c, act, t, o)));
        }
    return worst;
}

/* |<dy, y> - <dx, x>| over its bound, dx from the backward of a frozen W.
 * be: a CPU backend with or without a pool. (With two threads the frozen
 * backward once split W's columns at in/2 = 128, inside a K-quant's
 * super-block of 256, and dequantised from there; it now splits at whole
 * blocks, and the pooled backend is checked too.) */
static double adjoint_ratio(Backend *be, const Case *c, const float *y) {
    float *dx = xcalloc((size_t)c->n * COLS, sizeof(float));
    be->linear_backward(be, dx, NULL, NULL, c->dy, c->x, &c->w, c->n);
    double s1 = 0, s2 = 0, A = 0;
    for (int t = 0; t < c->n; t++) {
        for (int o = 0; o < ROWS; o++) s1 += (double)c->dy[(long)t * ROWS + o] * y[(long)t * ROWS + o];
        for (int i = 0; i < COLS; i++) s2 += (double)dx[(long)t * COLS + i] * c->x[(long)t * COLS + i];
        for (int o = 0; o < ROWS; o++) A += fabs(c->dy[(long)t * ROWS + o]) * abs_dot(c, t, o);
    }
    free(dx);
    return fabs(s1 - s2) / ((COLS + ROWS + 4) * U * A + 1e-30);
}

static void check_type_rows(Backend *cpu, Backend *one, Backend *ref, int type, int n) {
    Case c;
    case_init(&c, type, n);
    size_t ny = (size_t)n * ROWS;
    float *ye = xmalloc(ny * sizeof(float)), *yi = xmalloc(ny * sizeof(float)), *yr = xmalloc(ny * sizeof(float));
    float *g[3] = {xmalloc(ny * sizeof(float)), xmalloc(ny * sizeof(float)), xmalloc(ny * sizeof(float))};
    cpu->linear(cpu, ye, c.x, n, &c.w, NULL, BPREC_EXACT);
    cpu->linear(cpu, yi, c.x, n, &c.w, NULL, BPREC_INFER);
    int act = matmul_act_type(type, n), beyond_e, beyond_i, beyond_r;
    double re = worst_ratio(&c, ye, DT_F32, &beyond_e), ri = worst_ratio(&c, yi, act, &beyond_i);
    double ae = fmax(adjoint_ratio(one, &c, ye), adjoint_ratio(cpu, &c, ye)), ai = adjoint_ratio(one, &c, yi);
    /* a group of three: each output equals its own call's, both precisions */
    const QMat *ws[3] = {&c.w, &c.w, &c.w};
    int group_same = 1;
    for (int p = 0; p < 2; p++) {
        BackendPrec prec = p ? BPREC_INFER : BPREC_EXACT;
        cpu->linear_group(cpu, 3, g, c.x, n, ws, NULL, prec);
        for (int k = 0; k < 3; k++) group_same &= !memcmp(g[k], p ? yi : ye, ny * sizeof(float));
    }
    double rr = 0;
    for (int p = 0; p < 2; p++) {
        ref->linear(ref, yr, c.x, n, &c.w, NULL, p ? BPREC_INFER : BPREC_EXACT);
        rr = fmax(rr, worst_ratio(&c, yr, DT_F32, &beyond_r));
    }
    const char *tn = dtype_name(type);
    CHECK_MSG(re <= 1, "%s n=%d: EXACT %.3g of the float32 bound from the exact product", tn, n, re);
    CHECK_MSG(ae <= 1, "%s n=%d: EXACT forward and the backward break the adjoint identity (%.3g of its bound)", tn, n,
              ae);
    CHECK_MSG(ri <= 1, "%s n=%d: INFER (x as %s) %.3g of its bound from the exact product", tn, n, dtype_name(act), ri);
    CHECK_MSG(group_same, "%s n=%d: linear_group differs from its linear calls", tn, n);
    CHECK_MSG(rr <= 1, "%s n=%d: the reference backend %.3g of the float32 bound", tn, n, rr);
    /* the rounding is really there where matmul_act_type says, and only there */
    CHECK_MSG(beyond_i == (act != DT_F32), "%s n=%d: INFER with x as %s %s the float32 bound", tn, n, dtype_name(act),
              beyond_i ? "beyond" : "within");
    if (act == DT_F32) CHECK_MSG(ai <= 1, "%s n=%d: INFER takes x as f32 but breaks the adjoint identity (%.3g)", tn, n, ai);
    free(ye), free(yi), free(yr), free(g[0]), free(g[1]), free(g[2]);
    case_free(&c);
}

static void test_linear_precision(void) {
    ThreadPool *tp = tp_create(2);
    Backend *cpu = backend_cpu_new(tp), *one = backend_cpu_new(NULL), *ref = backend_ref_new(1);
    int rounded = 0;
    for (int k = 0; k < N_TYPES; k++) {
        const int ns[] = {1, 5, matmul_gemm_min_rows(TYPES[k]) - 1, matmul_gemm_min_rows(TYPES[k]), MAXN};
        for (int j = 0; j < 5; j++) {
            check_type_rows(cpu, one, ref, TYPES[k], ns[j]);
            rounded += matmul_act_type(TYPES[k], ns[j]) != DT_F32;
        }
    }
    backend_free(cpu), backend_free(one), backend_free(ref);
    tp_free(tp);
    /* every level rounds x for quantised W on the decode dots at least */
    CHECK(rounded > 0);
}

/* MATMUL_EXACT through matmul.h itself: what the CPU backend maps
 * BPREC_EXACT to, with no pool (the caller's thread) as well. */
static void test_matmul_exact_no_pool(void) {
    for (int k = 0; k < N_TYPES; k++) {
        Case c;
        case_init(&c, TYPES[k], MAXN);
        float *y = xmalloc((size_t)MAXN * ROWS * sizeof(float));
        matmul_forward_prec(NULL, y, c.x, MAXN, &c.w, MATMUL_EXACT);
        int beyond;
        double r = worst_ratio(&c, y, DT_F32, &beyond);
        CHECK_EQ_INT(matmul_act_type_prec(TYPES[k], MAXN, MATMUL_EXACT), DT_F32);
        free(y);
        case_free(&c);
        CHECK_MSG(r <= 1, "%s: MATMUL_EXACT %.3g of the float32 bound", dtype_name(TYPES[k]), r);
    }
}

int main(void) {
    RUN_LEVELS(test_linear_precision);
    RUN_LEVELS(test_matmul_exact_no_pool);
    return test_summary();
}
