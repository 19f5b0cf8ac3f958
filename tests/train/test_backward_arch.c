/* The backward of each operation OLMo, OLMo 2, Gemma 2/3 and Phi-3 add
 * (kernels/backend_cpu_backward_arch.h, and backend_cpu_backward.h's attention with AttnOpts:
 * a window, a score scale and soft-capping) against central finite differences of a
 * float64 reference of its forward, on L = Σ r·y with a fixed random r.
 *
 * Tolerances. The reference is written here in double from the equations
 * (tests/data/arch/README.md), fed the same float inputs, so:
 *  - the numeric gradient: h = 1e-5 in double; truncation h²/6·|L'''|
 *    (<~ 50 for these smooth unit-scale functions) <= 1e-9, rounding
 *    2^-53·|L|/h (|L| <~ 100) <= 1e-9: about 2e-9 in all;
 *  - the analytic float32 gradient: each element is a sum of K <= 70
 *    products (attention's rows; norms K = dim <= 24), rounded with
 *    relative error <= K·u (u = 6e-8) of the sum of the terms' magnitudes,
 *    which is <= ~8·gmax for unit-scale inputs: <= 70·6e-8·8 = 3.4e-5 of
 *    gmax for attention, 1.2e-5 for the norms, ~1e-6 elementwise.
 * So a gradient element passes within 1e-4·gmax + 1e-8 (3x over the
 * worst case); a wrong formula (a missing factor, a sign, an unmasked
 * entry) is off by O(gmax). The float32 forward is checked against the
 * reference too, within 1e-5·max|y| (K·u for K <= 70, one rounding of
 * tanh/exp each): the backward is only right for the forward it undoes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "kernels/ops.h"
#include "test.h"
#include "kernels/backend_cpu_backward.h"
#include "kernels/backend_cpu_backward_arch.h"

/* A float64 reference: y[ny] from the variable x[nx], other inputs in ctx. */
typedef void (*RefFn)(void *ctx, const double *x, double *y);

static void fill(float *x, long n, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed);
    for (long i = 0; i < n; i++) x[i] = scale * (float)rng_normal(&r);
}

static double *to_d(const float *x, long n) {
    double *d = xmalloc((size_t)n * sizeof *d);
    for (long i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* The float32 forward y32 against the reference at x. */
static int fwd_ok(RefFn f, void *ctx, const float *x, long nx, const float *y32, long ny, const char *what) {
    double *xd = to_d(x, nx), *y = xmalloc((size_t)ny * sizeof *y);
    f(ctx, xd, y);
    double ymax = 0, worst = 0;
    long at = 0;
    for (long i = 0; i < ny; i++) ymax = fmax(ymax, fabs(y[i]));
    for (long i = 0; i < ny; i++)
        if (fabs(y[i] - y32[i]) > worst) worst = fabs(y[i] - y32[i]), at = i;
    free(xd), free(y);
    if (worst > 1e-5 * ymax + 1e-9) {
        test_fail(__FILE__, __LINE__, "%s forward[%ld]: off by %.3g (max |y| %.3g)", what, at, worst, ymax);
        return 0;
    }
    return 1;
}

/* grad[nx] (float32, analytic) against the central difference of
 * L = Σ r·y(x) of the reference. */
static int fd_ok(RefFn f, void *ctx, const float *x, long nx, long ny, const float *r, const float *grad,
                 const char *what) {
    double *xd = to_d(x, nx), *y = xmalloc((size_t)ny * sizeof *y);
    double gmax = 0;
    for (long i = 0; i < nx; i++) gmax = fmax(gmax, fabs(grad[i]));
    const double h = 1e-5;
    int ok = 1;
    for (long i = 0; i < nx && ok; i++) {
        double keep = xd[i], lp = 0, lm = 0;
        xd[i] = keep + h;
        f(ctx, xd, y);
        for (long j = 0; j < ny; j++) lp += r[j] * y[j];
        xd[i] = keep - h;
        f(ctx, xd, y);
        for (long j = 0; j < ny; j++) lm += r[j] * y[j];
        xd[i] = keep;
        double num = (lp - lm) / (2 * h);
        if (fabs(num - grad[i]) > 1e-4 * gmax + 1e-8) {
            test_fail(__FILE__, __LINE__, "%s[%ld]: analytic %.9g, numeric %.9g (max |grad| %.3g)", what, i,
                      grad[i], num, gmax);
            ok = 0;
        }
    }
    if (ok && gmax == 0) test_fail(__FILE__, __LINE__, "%s: the gradient is all zero (the check would not bite)", what);
    free(xd), free(y);
    return ok && gmax > 0;
}

/* ---- norms ---- */

enum { NN = 3, ND = 24 }; /* 3 rows of 24: a whole projection width (OLMo 2's q/k norm) */

typedef struct NormCtx {
    TrainNorm kind;
    float x[NN * ND], w[ND];
    int var_is_w; /* the variable: w (1) or x (0) */
} NormCtx;

static void norm_ref(void *p, const double *v, double *y) {
    NormCtx *c = p;
    for (int t = 0; t < NN; t++) {
        double x[ND], w[ND], mu = 0, ss = 0;
        for (int i = 0; i < ND; i++) {
            x[i] = c->var_is_w ? c->x[t * ND + i] : v[t * ND + i];
            w[i] = c->var_is_w ? v[i] : c->w[i];
        }
        if (c->kind == TNORM_LAYER) {
            for (int i = 0; i < ND; i++) mu += x[i];
            mu /= ND;
        }
        for (int i = 0; i < ND; i++) ss += (x[i] - mu) * (x[i] - mu);
        double r = 1 / sqrt(ss / ND + 1e-6);
        for (int i = 0; i < ND; i++) {
            double wi = c->kind == TNORM_LAYER ? 1 : c->kind == TNORM_RMS_1P ? 1 + w[i] : w[i];
            y[t * ND + i] = (x[i] - mu) * r * wi;
        }
    }
}

static void check_norm(TrainNorm kind, const char *name) {
    NormCtx c = {.kind = kind};
    float y[NN * ND], r[NN * ND], dx[NN * ND] = {0}, dw[ND] = {0};
    fill(c.x, NN * ND, 11, 1.5f);
    fill(c.w, ND, 12, 0.5f);
    fill(r, NN * ND, 13, 1.0f);
    for (int i = 0; i < ND; i++) c.x[i] += 0.7f; /* a row with a mean: LayerNorm's centring matters */
    norm_forward(kind, y, c.x, c.w, NN, ND, 1e-6f);
    norm_backward(kind, dx, kind == TNORM_LAYER ? NULL : dw, r, c.x, c.w, NN, ND, 1e-6f);
    char what[64];
    snprintf(what, sizeof what, "%s dx", name);
    CHECK(fwd_ok(norm_ref, &c, c.x, NN * ND, y, NN * ND, name));
    CHECK(fd_ok(norm_ref, &c, c.x, NN * ND, NN * ND, r, dx, what));
    if (kind != TNORM_LAYER) {
        c.var_is_w = 1;
        snprintf(what, sizeof what, "%s dw", name);
        CHECK(fd_ok(norm_ref, &c, c.w, ND, NN * ND, r, dw, what));
    }
}

static void test_norms(void) {
    check_norm(TNORM_RMS, "rmsnorm over a projection's width");
    check_norm(TNORM_RMS_1P, "(1+w) rmsnorm");
    check_norm(TNORM_LAYER, "layernorm without parameters");
}

/* The (1+w) norm is not the plain one: Gemma's stored weights are offsets. */
static void test_norm_1p_offset(void) {
    float x[ND], w[ND], a[ND], b[ND], w1[ND];
    fill(x, ND, 1, 1.0f);
    fill(w, ND, 2, 0.3f);
    for (int i = 0; i < ND; i++) w1[i] = 1.0f + w[i];
    norm_forward(TNORM_RMS_1P, a, x, w, 1, ND, 1e-6f);
    rmsnorm_forward(b, x, w1, 1, ND, 1e-6f);
    for (int i = 0; i < ND; i++) CHECK_NEAR(a[i], b[i], 4e-7 * fabs(b[i]) + 1e-7); /* two roundings apart */
}

/* ---- elementwise ---- */

enum { EN = 40 };

typedef struct EltCtx {
    float a[EN], b[EN], cap;
    int which; /* 0 softcap, 1 geglu wrt gate, 2 geglu wrt up, 3 clamp */
} EltCtx;

static double gelu_tanh_ref(double x) { return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

static void elt_ref(void *p, const double *v, double *y) {
    EltCtx *c = p;
    for (int i = 0; i < EN; i++) switch (c->which) {
        case 0: y[i] = c->cap * tanh(v[i] / c->cap); break;
        case 1: y[i] = gelu_tanh_ref(v[i]) * c->b[i]; break;
        case 2: y[i] = gelu_tanh_ref(c->a[i]) * v[i]; break;
        default: y[i] = v[i] < -c->cap ? -c->cap : v[i] > c->cap ? c->cap : v[i];
        }
}

static void test_softcap(void) {
    EltCtx c = {.cap = 3.0f, .which = 0};
    float y[EN], r[EN], dx[EN] = {0}, dd[EN];
    fill(c.a, EN, 21, 3.0f); /* reaches well into tanh's bend */
    fill(r, EN, 22, 1.0f);
    memcpy(y, c.a, sizeof y);
    softcap_forward(y, EN, c.cap);
    softcap_backward(dx, r, y, EN, c.cap);
    CHECK(fwd_ok(elt_ref, &c, c.a, EN, y, EN, "softcap"));
    CHECK(fd_ok(elt_ref, &c, c.a, EN, EN, r, dx, "softcap dx"));
    /* in place (dx == dy) gives the same values */
    memcpy(dd, r, sizeof dd);
    softcap_backward(dd, dd, y, EN, c.cap);
    for (int i = 0; i < EN; i++) CHECK(dd[i] == dx[i]);
}

static void test_geglu(void) {
    EltCtx c = {.which = 1};
    float y[EN], r[EN], dg[EN] = {0}, du[EN] = {0};
    fill(c.a, EN, 31, 2.0f);
    fill(c.b, EN, 32, 1.0f);
    fill(r, EN, 33, 1.0f);
    geglu_tanh_forward(y, c.a, c.b, EN);
    geglu_backward(dg, du, r, c.a, c.b, EN);
    CHECK(fwd_ok(elt_ref, &c, c.a, EN, y, EN, "geglu"));
    CHECK(fd_ok(elt_ref, &c, c.a, EN, EN, r, dg, "geglu dgate"));
    c.which = 2;
    CHECK(fd_ok(elt_ref, &c, c.b, EN, EN, r, du, "geglu dup"));
}

static void test_clamp(void) {
    EltCtx c = {.cap = 1.0f, .which = 3};
    float y[EN], r[EN], dx[EN] = {0};
    fill(c.a, EN, 41, 1.5f);
    /* keep every input 1e-3 away from the bounds: the differences step
     * 1e-5 and must not straddle a kink */
    for (int i = 0; i < EN; i++)
        if (fabsf(fabsf(c.a[i]) - c.cap) < 1e-3f) c.a[i] *= 1.01f;
    fill(r, EN, 42, 1.0f);
    memcpy(y, c.a, sizeof y);
    clamp_forward(y, EN, c.cap);
    clamp_backward(dx, r, y, EN, c.cap);
    int clamped = 0;
    for (int i = 0; i < EN; i++) clamped += dx[i] == 0;
    CHECK(clamped > 5 && clamped < EN - 5); /* both sides of the kink are exercised */
    CHECK(fwd_ok(elt_ref, &c, c.a, EN, y, EN, "clamp"));
    CHECK(fd_ok(elt_ref, &c, c.a, EN, EN, r, dx, "clamp dx"));
    float dd[EN]; /* in place (dx == dy): the same values */
    memcpy(dd, r, sizeof dd);
    clamp_backward(dd, dd, y, EN, c.cap);
    for (int i = 0; i < EN; i++) CHECK(dd[i] == dx[i]);
}

/* ---- scaled embedding ---- */

enum { EV = 5, EDIM = 6, ET = 7 };

typedef struct EmbCtx {
    int32_t ids[ET];
    float scale;
} EmbCtx;

static void emb_ref(void *p, const double *E, double *y) {
    EmbCtx *c = p;
    for (int t = 0; t < ET; t++)
        for (int i = 0; i < EDIM; i++) y[t * EDIM + i] = (double)c->scale * E[c->ids[t] * EDIM + i];
}

static void test_embedding_scale(void) {
    EmbCtx c = {{0, 3, 3, 1, 4, 0, 2}, sqrtf(6.0f)}; /* repeated ids: their gradients add */
    float E[EV * EDIM], y[ET * EDIM], r[ET * EDIM], dE[EV * EDIM] = {0};
    fill(E, EV * EDIM, 51, 1.0f);
    fill(r, ET * EDIM, 52, 1.0f);
    embedding_scaled_forward(y, E, c.ids, ET, EDIM, c.scale);
    embedding_scaled_backward(dE, r, c.ids, ET, EDIM, c.scale);
    CHECK(fwd_ok(emb_ref, &c, E, EV * EDIM, y, ET * EDIM, "scaled embedding"));
    CHECK(fd_ok(emb_ref, &c, E, EV * EDIM, ET * EDIM, r, dE, "scaled embedding dE"));
}

/* ---- RoPE with LongRoPE's factors and scale ---- */

enum { RH = 2, RD = 8 };

typedef struct RopeCtx {
    float inv_freq[RD / 2], scale;
    int pos, interleaved;
} RopeCtx;

static void rope_ref(void *p, const double *x, double *y) {
    RopeCtx *c = p;
    for (int h = 0; h < RH; h++)
        for (int i = 0; i < RD / 2; i++) {
            /* the angle as the kernels round it: float(pos) · inv_freq in float */
            double a = (float)((float)c->pos * c->inv_freq[i]);
            double co = cos(a) * c->scale, si = sin(a) * c->scale;
            int i0 = c->interleaved ? 2 * i : i, i1 = c->interleaved ? 2 * i + 1 : i + RD / 2;
            double x0 = x[h * RD + i0], x1 = x[h * RD + i1];
            y[h * RD + i0] = x0 * co - x1 * si;
            y[h * RD + i1] = x1 * co + x0 * si;
        }
}

static void test_rope_scaled(void) {
    /* Phi-3's LongRoPE: inv_freq_i = 1 / (factor_i · θ^(2i/d)), and cos and
     * sin times sqrt(1 + ln(s)/ln(L0)) for a context extension s */
    const float factors[RD / 2] = {1.0f, 1.25f, 2.5f, 6.0f};
    for (int il = 0; il < 2; il++) {
        RopeCtx c = {.scale = sqrtf(1.0f + logf(32.0f) / logf(4096.0f)), .pos = 13, .interleaved = il};
        for (int i = 0; i < RD / 2; i++) c.inv_freq[i] = 1.0f / (factors[i] * powf(10000.0f, 2.0f * i / RD));
        float x[RH * RD], y[RH * RD], r[RH * RD], dx[RH * RD];
        fill(x, RH * RD, 61, 1.0f);
        fill(r, RH * RD, 62, 1.0f);
        memcpy(y, x, sizeof y);
        rope_forward_scaled(y, RH, RD, c.pos, c.inv_freq, il, c.scale);
        memcpy(dx, r, sizeof dx);
        rope_scaled_backward(dx, RH, RD, c.pos, c.inv_freq, il, c.scale);
        CHECK(fwd_ok(rope_ref, &c, x, RH * RD, y, RH * RD, "scaled rope"));
        CHECK(fd_ok(rope_ref, &c, x, RH * RD, RH * RD, r, dx, il ? "scaled rope dx (interleaved)" : "scaled rope dx"));
        /* scale 1 is the engine's rope_forward, bit for bit */
        float a[RH * RD], b[RH * RD];
        memcpy(a, x, sizeof a), memcpy(b, x, sizeof b);
        rope_forward_scaled(a, RH, RD, c.pos, c.inv_freq, il, 1.0f);
        rope_forward(b, RH, RD, c.pos, c.inv_freq, il);
        CHECK(!memcmp(a, b, sizeof a));
    }
}

/* ---- attention: sliding window, score scale, soft-capping, packing ---- */

/* 70 tokens: more than one 64-row block, so a block's key span starts at
 * the window of its first row, not at 0. */
enum { AT = 70, AH = 2, AKV = 1, AD = 4 };

typedef struct AttCtx {
    float q[AT * AH * AD], k[AT * AKV * AD], v[AT * AKV * AD];
    int seg[AT];
    AttnDims d;
    AttnOpts o;
    int var; /* 0 q, 1 k, 2 v */
} AttCtx;

static void att_ref(void *p, const double *x, double *y) {
    AttCtx *c = p;
    const AttnDims *d = &c->d;
    const AttnOpts *o = &c->o;
    const double scale = o->scale > 0 ? o->scale : 1 / sqrt((double)AD);
    double s[AT];
    for (int h = 0; h < AH; h++)
        for (int t = 0; t < AT; t++) {
            int g = h / (AH / AKV), lo = d->seg_start ? d->seg_start[t] : 0;
            if (o->window > 0 && t - o->window + 1 > lo) lo = t - o->window + 1;
            double mx = -INFINITY, sum = 0;
            for (int u = lo; u <= t; u++) {
                double dot = 0;
                for (int i = 0; i < AD; i++) {
                    double qi = c->var == 0 ? x[(t * AH + h) * AD + i] : c->q[(t * AH + h) * AD + i];
                    double ki = c->var == 1 ? x[(u * AKV + g) * AD + i] : c->k[(u * AKV + g) * AD + i];
                    dot += qi * ki;
                }
                s[u] = dot * scale;
                if (o->softcap > 0) s[u] = o->softcap * tanh(s[u] / o->softcap);
                mx = fmax(mx, s[u]);
            }
            for (int u = lo; u <= t; u++) sum += s[u] = exp(s[u] - mx);
            for (int i = 0; i < AD; i++) {
                double o = 0;
                for (int u = lo; u <= t; u++)
                    o += s[u] / sum * (c->var == 2 ? x[(u * AKV + g) * AD + i] : c->v[(u * AKV + g) * AD + i]);
                y[(t * AH + h) * AD + i] = o;
            }
        }
}

static void check_attention(int window, float scale, float softcap, int packed, const char *name) {
    AttCtx *c = xcalloc(1, sizeof *c);
    ThreadPool *tp = tp_create(3);
    fill(c->q, AT * AH * AD, 71, 1.5f);
    fill(c->k, AT * AKV * AD, 72, 1.5f);
    fill(c->v, AT * AKV * AD, 73, 1.0f);
    int lens[2] = {66, 4};
    for (int i = 0, t = 0; packed && i < 2; t += lens[i++])
        for (int j = 0; j < lens[i]; j++) c->seg[t + j] = t;
    c->d = (AttnDims){AT, AH, AKV, AD, packed ? c->seg : NULL};
    c->o = (AttnOpts){scale, softcap, window};
    float *y = xcalloc(AT * AH * AD, sizeof *y), *r = xmalloc(AT * AH * AD * sizeof *r);
    float *att = xmalloc((size_t)AH * AT * AT * sizeof *att);
    float *dq = xcalloc(AT * AH * AD, sizeof *dq), *dk = xcalloc(AT * AKV * AD, sizeof *dk);
    float *dv = xcalloc(AT * AKV * AD, sizeof *dv);
    fill(r, AT * AH * AD, 74, 1.0f);
    attn_train_forward_opts(tp, y, att, c->q, c->k, c->v, &c->d, &c->o);
    attn_train_backward_opts(tp, dq, dk, dv, r, att, c->q, c->k, c->v, &c->d, &c->o);
    char what[96];
    CHECK(fwd_ok(att_ref, c, c->q, AT * AH * AD, y, AT * AH * AD, name));
    snprintf(what, sizeof what, "%s dq", name);
    CHECK(fd_ok(att_ref, c, c->q, AT * AH * AD, AT * AH * AD, r, dq, what));
    c->var = 1;
    snprintf(what, sizeof what, "%s dk", name);
    CHECK(fd_ok(att_ref, c, c->k, AT * AKV * AD, AT * AH * AD, r, dk, what));
    c->var = 2;
    snprintf(what, sizeof what, "%s dv", name);
    CHECK(fd_ok(att_ref, c, c->v, AT * AKV * AD, AT * AH * AD, r, dv, what));
    if (window > 0) /* the probabilities outside the window are exactly 0 */
        for (int h = 0; h < AH; h++)
            for (int t = window; t < AT; t++) CHECK(att[((long)h * AT + t) * AT + t - window] == 0.0f);
    free(y), free(r), free(att), free(dq), free(dk), free(dv), free(c);
    tp_free(tp);
}

static void test_attention(void) {
    check_attention(5, 0, 0, 0, "sliding window");
    check_attention(7, 0, 0, 1, "sliding window, packed");
    check_attention(0, 0.3f, 2.0f, 0, "soft-capped scores with a scale");
    check_attention(6, 0.7f, 1.5f, 1, "window, scale and soft-capping, packed");
}

int main(void) {
    test_run("norms (rms over a projection width, (1+w) rms, layernorm)", test_norms);
    test_run("(1+w) rmsnorm is rmsnorm with weight 1+w", test_norm_1p_offset);
    test_run("soft-capping", test_softcap);
    test_run("geglu (tanh)", test_geglu);
    test_run("clamp (clip_qkv)", test_clamp);
    test_run("scaled embedding", test_embedding_scale);
    test_run("rope with longrope factors and scale", test_rope_scaled);
    test_run("attention with window, scale, soft-capping", test_attention);
    return test_summary();
}
