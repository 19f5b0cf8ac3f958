/* Training with bf16 products (kernels/backend.h's set_matmul_bf16, `aloe
 * train --matmul bf16`): the CPU backend's training GEMMs each take both
 * operands rounded to bf16 and sum in f32, and whole models still train
 * within what that rounding explains of the PyTorch float32 gold.
 *
 * Two levels, two kinds of bound:
 *
 *  - Each op (linear on F32 and BF16 weights, linear_backward, lora,
 *    lora_backward, with and without dropout) against a double reference
 *    that rounds the same operands to bf16 (formats/dtype.h's
 *    f32_to_bf16) and sums exactly. A product of two bf16 values is exact
 *    in f32, so what is left is f32 summation: γ_n·(|α|·Σ|a||b| + |c0|)
 *    with γ_n = n·u/(1 − n·u), u = 2^-24, n = K plus the roundings after
 *    the sum (α, the += into c0, a bias or a dropout scale: ≤ 3). Tight:
 *    the bf16 rounding itself is ~2^-9 relative, 10^4 times larger, so
 *    products of unrounded operands (an f32 fallback), a wrong transpose
 *    or a lost += fail it -- and each check also asserts that the f32
 *    reference lies outside the bound, so the bound does resolve bf16.
 *
 *  - Whole models (the four gold fixtures: SFT, DPO and LoRA) against the
 *    gold. Rounding an operand to bf16 (8 significant bits, nearest) moves
 *    it by at most u_b = 2^-8 relative, uniformly: rms u_b/√3. A GEMM's
 *    product of two rounded operands is off by rms u_b·sqrt(2/3) relative,
 *    and a sum of K such products of mixed signs by the same rms relative
 *    to its result (the independent errors add like the terms: both grow
 *    as √K). Modelled as in test_decoder_train.c (independent stages, in
 *    quadrature, 6 standard deviations for the largest element):
 *      logits pass through G = 4·L + 1 GEMMs in series (per layer q/k/v
 *        then o, gate/up then down; the LM head); LoRA doubles a
 *        projection's chain (x·Aᵀ, then ·Bᵀ): 8·L + 1.
 *        LOGIT bound: 6·u_b·sqrt(2/3)·sqrt(G) of the logits' rms, rms <=
 *        0.125 of their range (test_decoder_train.c): of the range
 *        0.75·u_b·sqrt(2/3)·sqrt(G) (L = 2: 7.2e-3; LoRA 1.0e-2).
 *      a gradient passes forward and back through the chain and one
 *        weight-gradient GEMM: 2·G + 1 stages; 6σ of its rms, and a
 *        tensor's max >= 2 rms (test_decoder_train.c): of the tensor's max
 *        3·u_b·sqrt(2/3)·sqrt(2·G + 1) (L = 2: 4.2e-2; LoRA 5.7e-2).
 *      a log-probability log p_y = z_y − logsumexp(z): with the logits'
 *        errors independent of rms σ_z = u_b·sqrt(2/3)·sqrt(G)·rms(z), its
 *        error Δz_y − Σ p_j·Δz_j has variance σ_z²·(1 − 2p_y + Σp_j²) <=
 *        2σ_z². Over n tokens (independent): the SFT loss (their mean)
 *        6·sqrt(2/n)·σ_z, a DPO sequence log-prob (their sum)
 *        6·sqrt(2n)·σ_z. The sigmoid DPO loss's weight β·σ(−β·h) of a pair
 *        moves by at most β·|Δh| relative (d/dh of its log is β·σ(βh) <=
 *        β), h the pair's margin of four log-probs: that adds to the
 *        gradient bound, and the loss itself moves by at most β·|Δh|.
 *    Each bound adds the float32 budget of the same comparison
 *    (test_decoder_train.c: 2e-6 logits, 1e-5 gradients and losses). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/dtype.h"
#include "formats/safetensors.h"
#include "kernels/backend.h"
#include "kernels/backend_cpu_lora.h"
#include "kernels/gemm_bf16.h"
#include "test.h"
#include "train/decoder_train.h"
#include "train/fixture_trees.h"
#include "train/gold_fixture.h"
#include "train/lora.h"
#include "train/loss.h"
#include "train/run.h"

#define U_BF16 0x1p-8
#define SQRT_2_3 0.816496580927726
#define F32_LOGIT_TOL 2e-6
#define F32_GRAD_TOL 1e-5

/* ---- ops against a double reference on bf16-rounded operands ---- */

static double bf(float v) { return bf16_to_f32(f32_to_bf16(v)); }

static double gamma_n(int n) { return n * 0x1p-24 / (1 - n * 0x1p-24); }

/* Reference of c = c0 + α·op(A)·op(B) (c0 NULL: 0), row-major m×n with rows
 * ldc apart: ref (operands rounded to bf16), ref32 (unrounded) and the
 * f32 summation bound with `after` roundings after the sum. */
typedef struct Ref {
    double *ref, *ref32, *bound;
} Ref;

static Ref ref_gemm(int ta, int tb, int m, int n, int k, double alpha, const float *a, int lda, const float *b,
                    int ldb, const float *c0, int ldc, int after) {
    Ref r = {xmalloc((size_t)m * n * sizeof(double)), xmalloc((size_t)m * n * sizeof(double)),
             xmalloc((size_t)m * n * sizeof(double))};
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0, s32 = 0, mag = 0;
            for (int p = 0; p < k; p++) {
                float av = ta ? a[(long)p * lda + i] : a[(long)i * lda + p];
                float bv = tb ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                s += bf(av) * bf(bv), s32 += (double)av * bv, mag += fabs(bf(av) * bf(bv));
            }
            double base = c0 ? c0[(long)i * ldc + j] : 0;
            r.ref[i * n + j] = base + alpha * s;
            r.ref32[i * n + j] = base + alpha * s32;
            r.bound[i * n + j] = gamma_n(k + after) * (fabs(alpha) * mag + fabs(base));
        }
    return r;
}

static void ref_free(Ref *r) { free(r->ref), free(r->ref32), free(r->bound); }

/* got (m×n, rows ldc apart) within the bound of ref everywhere, and ref32
 * outside it somewhere (the check tells bf16 products from f32 ones). */
static void check_ref(const char *what, const float *got, int m, int n, int ldc, const Ref *r) {
    double worst = 0, resolves = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double b = r->bound[i * n + j];
            worst = fmax(worst, fabs(got[(long)i * ldc + j] - r->ref[i * n + j]) / b);
            resolves = fmax(resolves, fabs(r->ref32[i * n + j] - r->ref[i * n + j]) / b);
        }
    CHECK_MSG(worst <= 1, "%s: %.3g of the f32-summation bound off the bf16-operand reference", what, worst);
    CHECK_MSG(resolves > 1, "%s: f32 products would pass too (%.3g of the bound)", what, resolves);
}

static float *randv(Rng *g, long n, float scale) {
    float *v = xmalloc((size_t)n * sizeof(float));
    for (long i = 0; i < n; i++) v[i] = scale * (float)rng_normal(g);
    return v;
}

static float *copyv(const float *v, long n) {
    float *c = xmalloc((size_t)n * sizeof(float));
    memcpy(c, v, (size_t)n * sizeof(float));
    return c;
}

/* Odd sizes (k odd: the pair packing's padding; n not a multiple of the
 * register tile) on 3 threads. */
enum { T = 37, IN = 70, OUT = 45, R = 5 };

static void check_linear(Backend *be, Rng *g, int wtype) {
    float *x = randv(g, (long)T * IN, 1), *w = randv(g, (long)OUT * IN, 0.2f), *b = randv(g, OUT, 0.5f);
    uint16_t *w16 = xmalloc((size_t)OUT * IN * 2);
    /* BF16 weights: w holds their values; F32: w unrounded, which the op must round */
    for (long i = 0; i < (long)OUT * IN; i++) {
        w16[i] = f32_to_bf16(w[i]);
        if (wtype == DT_BF16) w[i] = bf16_to_f32(w16[i]);
    }
    QMat W = {wtype, wtype == DT_BF16 ? (const void *)w16 : (const void *)w, OUT, IN};
    float *y = randv(g, (long)T * OUT, 1); /* overwritten */
    be->linear(be, y, x, T, &W, b, BPREC_EXACT);
    /* the bias as a c0 of a GEMM with one more rounding */
    float *bias_rows = xmalloc((size_t)T * OUT * sizeof(float));
    for (int t = 0; t < T; t++) memcpy(bias_rows + (long)t * OUT, b, OUT * sizeof(float));
    Ref r = ref_gemm(0, 1, T, OUT, IN, 1, x, IN, w, IN, bias_rows, OUT, 1);
    check_ref(wtype == DT_BF16 ? "linear (BF16 weights)" : "linear (F32 weights)", y, T, OUT, OUT, &r);
    ref_free(&r);

    /* backward: dx += dy·W; dW += dyᵀ·x (F32 only); db += Σ dy in f32 */
    float *dy = randv(g, (long)T * OUT, 1), *dx = randv(g, (long)T * IN, 1), *dW = randv(g, (long)OUT * IN, 1);
    float *db = randv(g, OUT, 1), *dx0 = copyv(dx, (long)T * IN), *dW0 = copyv(dW, (long)OUT * IN);
    float *db0 = copyv(db, OUT);
    be->linear_backward(be, dx, wtype == DT_F32 ? dW : NULL, db, dy, x, &W, T);
    r = ref_gemm(0, 0, T, IN, OUT, 1, dy, OUT, w, IN, dx0, IN, 1);
    check_ref("linear_backward dx", dx, T, IN, IN, &r);
    ref_free(&r);
    if (wtype == DT_F32) {
        r = ref_gemm(1, 0, OUT, IN, T, 1, dy, OUT, x, IN, dW0, IN, 1);
        check_ref("linear_backward dW", dW, OUT, IN, IN, &r);
        ref_free(&r);
    }
    double worst = 0;
    for (int o = 0; o < OUT; o++) {
        double s = db0[o], mag = fabs(db0[o]);
        for (int t = 0; t < T; t++) s += dy[(long)t * OUT + o], mag += fabs(dy[(long)t * OUT + o]);
        worst = fmax(worst, fabs(db[o] - s) / (gamma_n(T) * mag));
    }
    CHECK_MSG(worst <= 1, "linear_backward db: %.3g of the f32 bound (the bias gradient is not a product)", worst);
    free(x), free(w), free(w16), free(b), free(y), free(bias_rows), free(dy), free(dx), free(dW), free(db);
    free(dx0), free(dW0), free(db0);
}

/* An adapter, forward and backward, each GEMM against the reference; the
 * second GEMM of a chain takes the kernel's own first result (u, du) so
 * that the check is of one GEMM at a time. */
static void check_lora(Backend *be, Rng *g, double p_drop) {
    const float scale = 1.75f;
    float *x = randv(g, (long)T * IN, 1), *A = randv(g, (long)R * IN, 0.3f), *B = randv(g, (long)OUT * R, 0.3f);
    float *y = randv(g, (long)T * OUT, 1), *y0 = copyv(y, (long)T * OUT);
    float *u = xmalloc((size_t)T * R * sizeof(float)), *du = xmalloc((size_t)T * R * sizeof(float));
    float *xd = xmalloc((size_t)T * IN * sizeof(float));
    LoraDropout d;
    lora_dropout_init(&d, p_drop, 7, 3, 1, LORA_UP);
    BackendLora a = {.A = A, .B = B, .in = IN, .out = OUT, .r = R, .scale = scale, .drop = p_drop > 0 ? &d : NULL,
                     .u = u, .du = du, .xd = xd};
    /* x' = dropout(x), and the mask as dropout(1): 0 or 1/(1-p) */
    float *xp = xmalloc((size_t)T * IN * sizeof(float)), *mask = xmalloc((size_t)T * IN * sizeof(float));
    float *ones = xmalloc((size_t)T * IN * sizeof(float));
    for (long i = 0; i < (long)T * IN; i++) ones[i] = 1;
    if (a.drop) {
        lora_dropout_rows(&d, xp, x, 0, T, IN);
        lora_dropout_rows(&d, mask, ones, 0, T, IN);
    } else memcpy(xp, x, (size_t)T * IN * sizeof(float)), memcpy(mask, ones, (size_t)T * IN * sizeof(float));
    char what[64];
    be->lora(be, y, x, T, &a);
    Ref r = ref_gemm(0, 1, T, R, IN, 1, xp, IN, A, IN, NULL, R, 0);
    snprintf(what, sizeof what, "lora u (dropout %.1f)", p_drop);
    check_ref(what, u, T, R, R, &r);
    ref_free(&r);
    r = ref_gemm(0, 1, T, OUT, R, scale, u, R, B, R, y0, OUT, 2);
    snprintf(what, sizeof what, "lora y (dropout %.1f)", p_drop);
    check_ref(what, y, T, OUT, OUT, &r);
    ref_free(&r);

    /* backward: dB += s·dyᵀ·u; du = s·dy·B; dA += duᵀ·x'; dx += mask·(du·A) */
    float *dy = randv(g, (long)T * OUT, 1), *dx = randv(g, (long)T * IN, 1), *dA = randv(g, (long)R * IN, 1);
    float *dB = randv(g, (long)OUT * R, 1), *dx0 = copyv(dx, (long)T * IN), *dA0 = copyv(dA, (long)R * IN);
    float *dB0 = copyv(dB, (long)OUT * R);
    be->lora_backward(be, dx, dA, dB, dy, x, T, &a);
    r = ref_gemm(1, 0, OUT, R, T, scale, dy, OUT, u, R, dB0, R, 2);
    snprintf(what, sizeof what, "lora dB (dropout %.1f)", p_drop);
    check_ref(what, dB, OUT, R, R, &r);
    ref_free(&r);
    r = ref_gemm(0, 0, T, R, OUT, scale, dy, OUT, B, R, NULL, R, 1);
    snprintf(what, sizeof what, "lora du (dropout %.1f)", p_drop);
    check_ref(what, du, T, R, R, &r);
    ref_free(&r);
    r = ref_gemm(1, 0, R, IN, T, 1, du, R, xp, IN, dA0, IN, 1);
    snprintf(what, sizeof what, "lora dA (dropout %.1f)", p_drop);
    check_ref(what, dA, R, IN, IN, &r);
    ref_free(&r);
    /* dx: the product, then scaled by the mask (one rounding) and added */
    r = ref_gemm(0, 0, T, IN, R, 1, du, R, A, IN, NULL, IN, 3);
    for (long i = 0; i < (long)T * IN; i++) {
        r.ref[i] = dx0[i] + mask[i] * r.ref[i], r.ref32[i] = dx0[i] + mask[i] * r.ref32[i];
        r.bound[i] = r.bound[i] * fabs(mask[i]) + gamma_n(R + 3) * fabs(dx0[i]);
    }
    snprintf(what, sizeof what, "lora dx (dropout %.1f)", p_drop);
    check_ref(what, dx, T, IN, IN, &r);
    ref_free(&r);
    free(x), free(A), free(B), free(y), free(y0), free(u), free(du), free(xd), free(xp), free(mask), free(ones);
    free(dy), free(dx), free(dA), free(dB), free(dx0), free(dA0), free(dB0);
}

/* Every op at both paths this CPU has: the BF16 dot instructions (where
 * AVX512-BF16 is) and the portable one (forced: mode 2). */
static void test_ops_round_both_operands(void) {
    ThreadPool *tp = tp_create(3);
    Backend *be = backend_cpu_new(tp);
    CHECK(be->set_matmul_bf16 != NULL);
    CHECK_EQ_INT(be->set_matmul_bf16(be, 2), 1);
    for (int dot = gemm_bf16_dot(); dot >= 0; dot--) {
        int was = gemm_bf16_use_dot(dot);
        printf("  %s path\n", dot ? "vdpbf16ps" : "portable");
        Rng g;
        rng_seed(&g, 11 + (uint64_t)dot);
        check_linear(be, &g, DT_F32);
        check_linear(be, &g, DT_BF16);
        check_lora(be, &g, 0);
        check_lora(be, &g, 0.3);
        gemm_bf16_use_dot(was);
    }
    backend_free(be);
    tp_free(tp);
}

/* Mode 1 takes bf16 exactly where the dot instructions are; mode 0 puts
 * back the f32 products bit for bit; F16 weights keep their f32 path in
 * the bf16 mode. */
static void test_modes(void) {
    ThreadPool *tp = tp_create(2);
    Backend *be = backend_cpu_new(tp), *f32 = backend_cpu_new(tp);
    CHECK_EQ_INT(be->set_matmul_bf16(be, 1), gemm_bf16_dot());
    int was = gemm_bf16_use_dot(0);
    CHECK_EQ_INT(be->set_matmul_bf16(be, 1), 0);
    gemm_bf16_use_dot(was);
    Rng g;
    rng_seed(&g, 5);
    float *x = randv(&g, (long)T * IN, 1), *w = randv(&g, (long)OUT * IN, 0.2f);
    uint16_t *w16 = xmalloc((size_t)OUT * IN * 2);
    for (long i = 0; i < (long)OUT * IN; i++) w16[i] = f32_to_f16(w[i]);
    QMat W = {DT_F32, w, OUT, IN}, H = {DT_F16, w16, OUT, IN};
    float *a = xmalloc((size_t)T * OUT * 4), *b = xmalloc((size_t)T * OUT * 4), *c = xmalloc((size_t)T * OUT * 4);
    f32->linear(f32, a, x, T, &W, NULL, BPREC_EXACT);
    CHECK_EQ_INT(be->set_matmul_bf16(be, 2), 1);
    be->linear(be, b, x, T, &W, NULL, BPREC_EXACT);
    CHECK_MSG(memcmp(a, b, (size_t)T * OUT * 4) != 0, "the bf16 mode gave the f32 products");
    CHECK_EQ_INT(be->set_matmul_bf16(be, 0), 0);
    be->linear(be, c, x, T, &W, NULL, BPREC_EXACT);
    CHECK_MSG(memcmp(a, c, (size_t)T * OUT * 4) == 0, "mode 0 after bf16: not the f32 products");
    /* F16: the f32 path in either mode */
    f32->linear(f32, a, x, T, &H, NULL, BPREC_EXACT);
    be->set_matmul_bf16(be, 2);
    be->linear(be, b, x, T, &H, NULL, BPREC_EXACT);
    CHECK(memcmp(a, b, (size_t)T * OUT * 4) == 0);
    float *dx = xcalloc((size_t)T * IN, 4), *dx2 = xcalloc((size_t)T * IN, 4);
    f32->linear_backward(f32, dx, NULL, NULL, a, x, &H, T);
    be->linear_backward(be, dx2, NULL, NULL, a, x, &H, T);
    CHECK(memcmp(dx, dx2, (size_t)T * IN * 4) == 0);
    free(x), free(w), free(w16), free(a), free(b), free(c), free(dx), free(dx2);
    backend_free(be), backend_free(f32);
    tp_free(tp);
}

/* ---- whole models against the gold ---- */

/* GEMMs in series to the logits (the comment above) */
static double gemms(int L, int lora) { return (lora ? 8.0 : 4.0) * L + 1; }
/* the logits' relative rms error: u_b·sqrt(2/3) per GEMM, in quadrature */
static double sigma_rel(int L, int lora) { return U_BF16 * SQRT_2_3 * sqrt(gemms(L, lora)); }
static double logit_tol(int L, int lora) { return 6 * sigma_rel(L, lora) * 0.125 + F32_LOGIT_TOL; }
static double grad_tol(int L, int lora) {
    return 3 * U_BF16 * SQRT_2_3 * sqrt(2 * gemms(L, lora) + 1) + F32_GRAD_TOL;
}

static double rms_of(const float *v, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s / n);
}

static int bf16_on(Fixture *f) { return f->m.be->set_matmul_bf16(f->m.be, 2) == 1 ? 0 : -1; }

/* The logits of the forward rows against `key` (LOGIT bound). */
static int check_logits(Fixture *f, const char *arch, const char *key, int lora, Err *e) {
    json_t *rows = json_object_get(json_object_get(f->root, "forward"), "input_ids");
    const TensorView *lv = st_get(f->want, key, e);
    float *want = lv ? tensor_to_f32_alloc(lv, e) : NULL;
    if (!want) return -1;
    const int V = f->m.cfg.vocab_size;
    const double tol = logit_tol(f->m.cfg.n_layers, lora);
    int rc = 0;
    for (size_t r = 0; r < json_array_size(rows) && !rc; r++) {
        int n;
        int32_t *ids = json_ids(json_array_get(rows, r), &n);
        float *logits = xmalloc((size_t)n * V * sizeof(float));
        rc = td_forward(&f->m, f->tp, ids, n, logits, e);
        double err = rc ? 0 : range_err(logits, want + r * (size_t)n * V, (long)n * V);
        printf("  %s%s row %zu: logits within %.2e of the range (bound %.2e)\n", arch, lora ? " LoRA" : "", r, err,
               tol);
        if (!rc && err > tol)
            rc = err_set(e, ERR_INTERNAL, "%s row %zu: bf16 logits off by %.3g of the range (bound %.3g)", arch, r,
                         err, tol);
        free(ids), free(logits);
    }
    free(want);
    return rc;
}

/* The SFT example: loss (against `loss_key` of `section`) and gradients. */
static int check_sft(Fixture *f, const char *arch, const char *section, const char *prefix, int lora, Err *e) {
    int T_, n = 0;
    int32_t *ids, *labels = sft_labels(f->root, &ids, &T_);
    const int V = f->m.cfg.vocab_size, L = f->m.cfg.n_layers;
    float *logits = xmalloc((size_t)T_ * V * sizeof(float));
    int rc = td_forward(&f->m, f->tp, ids, T_, logits, e);
    if (!rc) {
        double loss = xent_forward(logits, labels, T_, V, &n);
        double want = json_number_value(json_object_get(json_object_get(f->root, section), "loss"));
        double sz = sigma_rel(L, lora) * rms_of(logits, (long)T_ * V);
        double tol = 6 * sqrt(2.0 / n) * sz + F32_GRAD_TOL * want;
        printf("  %s%s SFT loss %.7f vs %.7f (bound %.2e)\n", arch, lora ? " LoRA" : "", loss, want, tol);
        if (fabs(loss - want) > tol) rc = err_set(e, ERR_INTERNAL, "%s: bf16 SFT loss %.9g vs %.9g", arch, loss, want);
        xent_backward(logits, logits, labels, T_, V, n, 1.0f);
        td_zero_grad(&f->m);
        td_backward(&f->m, f->tp, logits);
    }
    if (!rc) rc = check_grads_tol(f, prefix, lora, arch, grad_tol(L, lora), e);
    free(ids), free(labels), free(logits);
    return rc;
}

static void sft_full(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    if (!rc) rc = bf16_on(&f) || check_logits(&f, arch, "forward.logits", 0, &e) ||
                  check_sft(&f, arch, "sft", "sft.grad.", 0, &e);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
}

static void sft_lora(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    char *lora_dir = rc ? NULL : xasprintf("%s-lora", f.dir);
    if (!rc) rc = td_lora_load(&f.m, lora_dir, &e) || bf16_on(&f) ||
                  check_logits(&f, arch, "lora.forward.logits", 1, &e) ||
                  check_sft(&f, arch, "lora", "lora.grad.", 1, &e);
    free(lora_dir);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
}

/* Summed log-prob of the completion (after n_prompt) with bf16 products,
 * and its bound from the logits' range. */
static int logp(Fixture *f, TrainDecoder *m, const int32_t *ids, int n, int n_prompt, int backward, float weight,
                double *lp, int *cnt, double *bound, Err *e) {
    const int V = m->cfg.vocab_size;
    float *logits = xmalloc((size_t)n * V * sizeof(float));
    int32_t *labels = xmalloc((size_t)n * sizeof *labels);
    int rc = completion_logp(m, f->tp, ids, n, n_prompt, logits, labels, lp, cnt, e);
    if (!rc) {
        if (bound) *bound = 6 * sqrt(2.0 * *cnt) * sigma_rel(m->cfg.n_layers, 0) * rms_of(logits, (long)n * V);
        if (backward) {
            seq_logprob_backward(logits, logits, labels, n, V, weight);
            td_backward(m, f->tp, logits);
        }
    }
    free(logits), free(labels);
    return rc;
}

/* The dpo section: the policy (bf16 products) against the f32 reference
 * model tiny-<arch>-ref (f32, as `aloe train` computes reference
 * log-probs): log-probs, the mean sigmoid loss and the gradients. */
static void dpo(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    TrainDecoder ref;
    memset(&ref, 0, sizeof ref);
    char *ref_dir = rc ? NULL : xasprintf("%s-ref", f.dir);
    if (!rc) rc = bf16_on(&f) || td_init(&ref, &f.m.cfg, &e) || td_load(&ref, ref_dir, &e);
    json_t *dj = json_object_get(f.root, "dpo"), *jp = json_object_get(dj, "pairs");
    const double beta = json_number_value(json_object_get(dj, "beta"));
    DpoConfig cfg = {DPO_SIGMOID, beta, 0, 0};
    const int np = (int)json_array_size(jp);
    DpoPair *pairs = xcalloc((size_t)np, sizeof *pairs);
    double max_dh = 0;
    static const char *const keys[4] = {"policy_chosen_logp", "policy_rejected_logp", "ref_chosen_logp",
                                        "ref_rejected_logp"};
    for (int i = 0; i < np && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        int n_prompt, n[2];
        int32_t *prompt = json_ids(json_object_get(p, "prompt_ids"), &n_prompt);
        int32_t *seq[2] = {json_ids(json_object_get(p, "chosen_ids"), &n[0]),
                           json_ids(json_object_get(p, "rejected_ids"), &n[1])};
        double lp[4], bound[4];
        int cnt[4];
        for (int s = 0; s < 2 && !rc; s++)
            rc = logp(&f, &f.m, seq[s], n[s], n_prompt, 0, 0, &lp[s], &cnt[s], &bound[s], &e) ||
                 logp(&f, &ref, seq[s], n[s], n_prompt, 0, 0, &lp[2 + s], &cnt[2 + s], NULL, &e);
        for (int k = 0; k < 4 && !rc; k++) {
            double want = json_number_value(json_object_get(p, keys[k]));
            if (k >= 2) bound[k] = 0;
            bound[k] += F32_GRAD_TOL * fabs(want);
            if (fabs(lp[k] - want) > bound[k])
                rc = err_set(&e, ERR_INTERNAL, "%s pair %d %s: %.9g vs %.9g (bound %.3g)", arch, i, keys[k], lp[k],
                             want, bound[k]);
        }
        if (!rc) max_dh = fmax(max_dh, bound[0] + bound[1] + bound[2] + bound[3]);
        pairs[i] = (DpoPair){lp[0], lp[1], lp[2], lp[3], cnt[0], cnt[1]};
        free(prompt), free(seq[0]), free(seq[1]);
    }
    DpoPairOut *outs = xcalloc((size_t)np, sizeof *outs);
    double *dc = xcalloc((size_t)np, sizeof *dc), *dr = xcalloc((size_t)np, sizeof *dr);
    DpoStats st;
    double loss = dpo_batch(&cfg, pairs, np, outs, &st, dc, dr);
    double want_loss = json_number_value(json_object_get(dj, "mean_loss"));
    double loss_tol = beta * max_dh + F32_GRAD_TOL * want_loss;
    if (!rc) printf("  %s DPO loss %.7f vs %.7f (bound %.2e)\n", arch, loss, want_loss, loss_tol);
    if (!rc && fabs(loss - want_loss) > loss_tol)
        rc = err_set(&e, ERR_INTERNAL, "%s: bf16 DPO loss %.9g vs %.9g", arch, loss, want_loss);
    td_zero_grad(&f.m);
    for (int i = 0; i < np && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        int n_prompt, n;
        int32_t *prompt = json_ids(json_object_get(p, "prompt_ids"), &n_prompt);
        for (int s = 0; s < 2 && !rc; s++) {
            int32_t *ids = json_ids(json_object_get(p, s ? "rejected_ids" : "chosen_ids"), &n);
            double lp;
            int cnt;
            rc = logp(&f, &f.m, ids, n, n_prompt, 1, (float)(s ? dr[i] : dc[i]), &lp, &cnt, NULL, &e);
            free(ids);
        }
        free(prompt);
    }
    if (!rc) rc = check_grads_tol(&f, "dpo.grad.", 0, arch, grad_tol(f.m.cfg.n_layers, 0) + beta * max_dh, &e);
    free(pairs), free(outs), free(dc), free(dr), free(ref_dir);
    td_free(&ref);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
}

static void test_sft_llama3(void) { sft_full("llama3"); }
static void test_sft_qwen2(void) { sft_full("qwen2"); }
static void test_sft_mistral(void) { sft_full("mistral"); }
static void test_sft_qwen3(void) { sft_full("qwen3"); }
static void test_lora_llama3(void) { sft_lora("llama3"); }
static void test_lora_qwen2(void) { sft_lora("qwen2"); }
static void test_lora_mistral(void) { sft_lora("mistral"); }
static void test_lora_qwen3(void) { sft_lora("qwen3"); }
static void test_dpo_llama3(void) { dpo("llama3"); }
static void test_dpo_qwen2(void) { dpo("qwen2"); }
static void test_dpo_mistral(void) { dpo("mistral"); }
static void test_dpo_qwen3(void) { dpo("qwen3"); }

/* ---- a whole run ---- */

/* `aloe train` with matmul 2 (bf16 on any CPU) trains, records the mode
 * in its checkpoint, and --resume with f32 products is refused naming
 * --matmul. */
static void test_run_records_matmul(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *data = path_join(tmp, "trees.jsonl"), *out = path_join(tmp, "out");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    TrainRunOptions o;
    train_run_defaults(&o);
    o.kind = RUN_SFT, o.model = model, o.data = data, o.out = out;
    o.steps = 3, o.lr = 1e-3, o.quiet = 1, o.threads = 2, o.lora_r = 4, o.matmul = 2, o.stop_after = 2;
    int rc = train_run(&o, NULL, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    o.resume = 1, o.matmul = 0;
    rc = train_run(&o, NULL, &e);
    CHECK(rc == -1 && strstr(e.msg, "--matmul"));
    if (rc) printf("  %s\n", e.msg);
    o.matmul = 2;
    rc = train_run(&o, NULL, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    o.matmul = 3;
    CHECK(train_run(&o, NULL, &e) == -1 && strstr(e.msg, "--matmul"));
    free(model), free(tmp), free(data), free(out);
}

int main(void) {
    RUN(test_ops_round_both_operands);
    RUN(test_modes);
    RUN(test_sft_llama3);
    RUN(test_sft_qwen2);
    RUN(test_sft_mistral);
    RUN(test_sft_qwen3);
    RUN(test_lora_llama3);
    RUN(test_lora_qwen2);
    RUN(test_lora_mistral);
    RUN(test_lora_qwen3);
    RUN(test_dpo_llama3);
    RUN(test_dpo_qwen2);
    RUN(test_dpo_mistral);
    RUN(test_dpo_qwen3);
    RUN(test_run_records_matmul);
    return test_summary();
}
