/* Every backward against central finite differences of its forward, on a
 * scalar loss L = Σ r·y with a fixed random r (so dy = r). The forwards are
 * float32, so differences use h = 1e-2 and the tolerance is 2e-3 of the
 * gradient's largest magnitude (plus 1e-6). The budget behind it, for one
 * element x_i:
 *  - truncation: h²/6 times L's third derivative in x_i, <~ 10 here
 *    (smooth functions of unit-scale inputs; 0 for linear): <= 1.7e-4;
 *  - the float rounding of the outputs x_i touches (the others are the
 *    same floats in both calls and cancel): u·sqrt(K/6)·|y| per output
 *    (the rounding model of tests/model/logit_budget.h), summed in
 *    quadrature over the n touched outputs with weights |r| <~ 4, 6
 *    standard deviations, over 2h. The largest case relative to its gmax
 *    is attention's dk (n = 48 outputs of <= 6-term sums, |y| <~ 2 as
 *    averages of values, gmax 1.2): 6·6e-8·1·2·sqrt(48)·4/0.02 ~ 1e-3
 *    absolute, 8e-4 of gmax; linear (n = 6, K = 7, |y| <~ 8, gmax 2.4):
 *    6e-4 of gmax; SwiGLU is elementwise (n = 1, K = 1, gmax 0.7): 4e-4;
 *  - x_i ± h rounded in float: relative 2u·|x_i|/h ~ 5e-5 of the gradient.
 * Together <= 1e-3 of gmax, under 2e-3·gmax; a wrong formula is off by
 * O(gmax). */
#include <math.h>
#include <stdlib.h>

#include "base/mem.h"
#include "base/rng.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "test.h"
#include "kernels/backend_cpu_backward.h"

static void fill(float *x, long n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = rng_normal(&r);
}

static double dotd(const float *a, const float *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

typedef double (*LossFn)(void *ctx);

/* Checks grad[i] against the central difference of loss() in x[i]. */
static int fd_ok(LossFn loss, void *ctx, float *x, const float *grad, long n, const char *what) {
    double gmax = 0;
    for (long i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    const float h = 1e-2f;
    for (long i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double fp = loss(ctx);
        x[i] = keep - h;
        double fm = loss(ctx);
        x[i] = keep;
        double num = (fp - fm) / (2.0 * h);
        if (fabs(num - grad[i]) > 2e-3 * gmax + 1e-6) {
            test_fail(__FILE__, __LINE__, "%s[%ld]: analytic %.7g, numeric %.7g (max |grad| %.3g)", what, i,
                      grad[i], num, gmax);
            return 0;
        }
    }
    return 1;
}

/* ---- linear ---- */

enum { LT = 17, LIN = 7, LOUT = 6 }; /* 17 rows: the GEMM path of matmul_forward */

typedef struct LinCtx {
    ThreadPool *tp;
    float x[LT * LIN], W[LOUT * LIN], b[LOUT], r[LT * LOUT], y[LT * LOUT];
} LinCtx;

static double lin_loss(void *p) {
    LinCtx *c = p;
    QMat w = {DT_F32, c->W, LOUT, LIN};
    matmul_forward(c->tp, c->y, c->x, LT, &w);
    add_bias_forward(c->y, c->b, LT, LOUT);
    return dotd(c->r, c->y, LT * LOUT);
}

static void test_linear_backward(void) {
    LinCtx *c = xcalloc(1, sizeof *c);
    c->tp = tp_create(2);
    fill(c->x, LT * LIN, 1);
    fill(c->W, LOUT * LIN, 2);
    fill(c->b, LOUT, 3);
    fill(c->r, LT * LOUT, 4);
    float dx[LT * LIN] = {0}, dW[LOUT * LIN] = {0}, db[LOUT] = {0};
    linear_backward(c->tp, dx, dW, db, c->r, c->x, c->W, LT, LIN, LOUT);
    int ok = fd_ok(lin_loss, c, c->x, dx, LT * LIN, "dx") && fd_ok(lin_loss, c, c->W, dW, LOUT * LIN, "dW") &&
             fd_ok(lin_loss, c, c->b, db, LOUT, "db");
    /* Accumulation: a second call doubles the gradients. */
    float dW2[LOUT * LIN];
    memcpy(dW2, dW, sizeof dW);
    linear_backward(c->tp, NULL, dW2, NULL, c->r, c->x, c->W, LT, LIN, LOUT);
    tp_free(c->tp);
    /* dW2 = dW + dW: one float rounding of the sum (u·2|dW|) on top of the
     * second call's own (the same floats as the first): 1e-5·(1 + |dW|)
     * is far above it and far below any doubling error */
    for (int i = 0; i < LOUT * LIN && ok; i++) ok = fabsf(dW2[i] - 2 * dW[i]) <= 1e-5f * (1 + fabsf(dW[i]));
    free(c);
    CHECK(ok);
}

/* ---- RMSNorm ---- */

enum { RN = 3, RD = 8 };

typedef struct NormCtx {
    float x[RN * RD], w[RD], r[RN * RD], y[RN * RD];
} NormCtx;

static double norm_loss(void *p) {
    NormCtx *c = p;
    rmsnorm_forward(c->y, c->x, c->w, RN, RD, 1e-6f);
    return dotd(c->r, c->y, RN * RD);
}

static void test_rmsnorm_backward(void) {
    NormCtx c;
    fill(c.x, RN * RD, 5);
    fill(c.w, RD, 6);
    fill(c.r, RN * RD, 7);
    float dx[RN * RD] = {0}, dw[RD] = {0};
    rmsnorm_backward(dx, dw, c.r, c.x, c.w, RN, RD, 1e-6f);
    CHECK(fd_ok(norm_loss, &c, c.x, dx, RN * RD, "dx"));
    CHECK(fd_ok(norm_loss, &c, c.w, dw, RD, "dw"));
}

/* ---- RoPE ---- */

enum { PH = 2, PD = 8 };

typedef struct RopeCtx {
    float x[PH * PD], r[PH * PD], y[PH * PD], inv_freq[PD / 2];
    int interleaved;
} RopeCtx;

static double rope_loss(void *p) {
    RopeCtx *c = p;
    memcpy(c->y, c->x, sizeof c->y);
    rope_forward(c->y, PH, PD, 5, c->inv_freq, c->interleaved);
    return dotd(c->r, c->y, PH * PD);
}

static void test_rope_backward(void) {
    /* With Llama-3 scaling, so the scaled frequencies are the ones undone. */
    RopeScaling sc = {ROPE_SCALING_LLAMA3, 8.0f, 1.0f, 4.0f, 16};
    for (int il = 0; il < 2; il++) {
        RopeCtx c;
        c.interleaved = il;
        rope_inv_freq(c.inv_freq, PD, 10000.0, &sc);
        fill(c.x, PH * PD, 8);
        fill(c.r, PH * PD, 9);
        float dx[PH * PD];
        memcpy(dx, c.r, sizeof dx);
        rope_backward(dx, PH, PD, 5, c.inv_freq, il);
        CHECK(fd_ok(rope_loss, &c, c.x, dx, PH * PD, il ? "dx interleaved" : "dx"));
    }
}

/* ---- SwiGLU ---- */

enum { SN = 20 };

typedef struct SwiCtx {
    float g[SN], u[SN], r[SN], y[SN];
} SwiCtx;

static double swi_loss(void *p) {
    SwiCtx *c = p;
    swiglu_forward(c->y, c->g, c->u, SN);
    return dotd(c->r, c->y, SN);
}

static void test_swiglu_backward(void) {
    SwiCtx c;
    fill(c.g, SN, 10);
    fill(c.u, SN, 11);
    fill(c.r, SN, 12);
    float dg[SN] = {0}, du[SN] = {0};
    swiglu_backward(dg, du, c.r, c.g, c.u, SN);
    CHECK(fd_ok(swi_loss, &c, c.g, dg, SN, "dgate"));
    CHECK(fd_ok(swi_loss, &c, c.u, du, SN, "dup"));
}

static void test_embedding_backward(void) {
    float dE[4 * 2] = {0}, dx[3 * 2] = {1, 2, 3, 4, 5, 6};
    int ids[3] = {2, 0, 2};
    embedding_backward(dE, dx, ids, 3, 2);
    CHECK(dE[0] == 3 && dE[1] == 4);
    CHECK(dE[4] == 6 && dE[5] == 8);
    CHECK(dE[2] == 0 && dE[6] == 0);
}

/* ---- attention ---- */

enum { AT = 6, AH = 4, AKV = 2, AD = 4 };

typedef struct AttCtx {
    ThreadPool *tp;
    AttnDims d;
    float q[AT * AH * AD], k[AT * AKV * AD], v[AT * AKV * AD], r[AT * AH * AD], y[AT * AH * AD];
    float att[AH * AT * AT];
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    attn_train_forward(c->tp, c->y, c->att, c->q, c->k, c->v, &c->d);
    return dotd(c->r, c->y, AT * AH * AD);
}

static void test_attention_forward_matches_engine_and_backward(void) {
    AttCtx *c = xcalloc(1, sizeof *c);
    c->tp = tp_create(3);
    c->d = (AttnDims){AT, AH, AKV, AD, NULL};
    fill(c->q, AT * AH * AD, 13);
    fill(c->k, AT * AKV * AD, 14);
    fill(c->v, AT * AKV * AD, 15);
    fill(c->r, AT * AH * AD, 16);
    att_loss(c);
    /* The engine's reference attention over a cache holding the same k/v. */
    AttnCache kv[AT];
    int pos[AT];
    for (int t = 0; t < AT; t++) kv[t] = (AttnCache){c->k, c->v, 0, 0, DT_F32}, pos[t] = t;
    AttnShape s = {.n_heads = AH, .n_kv_heads = AKV, .head_dim = AD};
    float ref[AT * AH * AD];
    attention_forward_ref(ref, c->q, AT, &s, kv, pos);
    int ok = 1;
    /* the reference accumulates in double: the float path's rounding over
     * AD-term scores and AT-term sums of unit-scale values is ~u·(AD + AT)
     * ~ 1e-6 worst case: 1e-5 absolute */
    for (int i = 0; i < AT * AH * AD && ok; i++) ok = fabsf(ref[i] - c->y[i]) <= 1e-5f;
    float dq[AT * AH * AD] = {0}, dk[AT * AKV * AD] = {0}, dv[AT * AKV * AD] = {0};
    attn_train_backward(c->tp, dq, dk, dv, c->r, c->att, c->q, c->k, c->v, &c->d);
    ok = ok && fd_ok(att_loss, c, c->q, dq, AT * AH * AD, "dq") && fd_ok(att_loss, c, c->k, dk, AT * AKV * AD, "dk") &&
         fd_ok(att_loss, c, c->v, dv, AT * AKV * AD, "dv");
    tp_free(c->tp);
    free(c);
    CHECK(ok);
}

/* Two packed sequences (tokens 0-2 and 3-5): each attends only inside its
 * own, and the gradients still match finite differences. */
static void test_packed_attention(void) {
    static const int seg[AT] = {0, 0, 0, 3, 3, 3};
    AttCtx *c = xcalloc(1, sizeof *c);
    c->tp = tp_create(2);
    c->d = (AttnDims){AT, AH, AKV, AD, seg};
    fill(c->q, AT * AH * AD, 21);
    fill(c->k, AT * AKV * AD, 22);
    fill(c->v, AT * AKV * AD, 23);
    fill(c->r, AT * AH * AD, 24);
    att_loss(c);
    /* Token 3 starts a sequence: it sees only itself, so its output is v[3]
     * (softmax weight exactly 1: exp(0)/exp(0); only a float product) */
    int ok = 1;
    for (int h = 0; h < AH && ok; h++)
        for (int i = 0; i < AD; i++) ok = ok && fabsf(c->y[(3 * AH + h) * AD + i] - c->v[(3 * AKV + h / 2) * AD + i]) < 1e-6f;
    float dq[AT * AH * AD] = {0}, dk[AT * AKV * AD] = {0}, dv[AT * AKV * AD] = {0};
    attn_train_backward(c->tp, dq, dk, dv, c->r, c->att, c->q, c->k, c->v, &c->d);
    ok = ok && fd_ok(att_loss, c, c->q, dq, AT * AH * AD, "dq") && fd_ok(att_loss, c, c->k, dk, AT * AKV * AD, "dk") &&
         fd_ok(att_loss, c, c->v, dv, AT * AKV * AD, "dv");
    tp_free(c->tp);
    free(c);
    CHECK(ok);
}

int main(void) {
    RUN(test_linear_backward);
    RUN(test_rmsnorm_backward);
    RUN(test_rope_backward);
    RUN(test_swiglu_backward);
    RUN(test_embedding_backward);
    RUN(test_attention_forward_matches_engine_and_backward);
    RUN(test_packed_attention);
    return test_summary();
}
