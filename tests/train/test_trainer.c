/* The trainer: one SFT step and one DPO accumulation against the PyTorch
 * fixtures, then learning on synthetic tasks (a tiny random model learns to
 * copy: SFT lowers held-out loss; DPO raises held-out reward accuracy well
 * above chance), with full fine-tuning and with LoRA. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/gold_fixture.h"
#include "train/trainer.h"

/* Constant learning rate 1e-3 over `steps`, AdamW defaults, the given DPO
 * settings: the trainer tests' usual configuration. */
static TrainerConfig plain_config(long steps, DpoConfig dpo) {
    TrainerConfig cfg = {0};
    cfg.schedule = (LrSchedule){LR_CONSTANT, 1e-3, 0, steps};
    cfg.adamw = adamw_defaults();
    cfg.dpo = dpo;
    return cfg;
}

/* Worst per-tensor error of the model's block against <prefix><name>. */
static double block_err(Fixture *f, const float *block, const char *prefix, Err *e) {
    double worst = 0;
    for (int i = 0; i < f->m.n_tensors; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, f->m.tensors[i].name);
        const TensorView *v = st_get(f->want, name, e);
        float *w = v ? tensor_to_f32_alloc(v, e) : NULL;
        if (!w) return INFINITY;
        worst = fmax(worst, scaled_err(block + f->m.tensors[i].offset, w, (long)f->m.tensors[i].numel));
        free(w);
    }
    return worst;
}

/* Parameters after one step vs adamw1.*, every parameter, with a bound
 * derived per element. Adam's first step (m̂ = g, sqrt(v̂) = |g| after the
 * bias corrections) moves p to p·(1 - lr·wd) - lr·f(c·g), f(x) = x/(|x|+eps),
 * c the clipping factor. Both sides run that formula on their own
 * gradient (ours: gmine, saved before the step; PyTorch's: sft.grad.*), so:
 *  - the gradients' difference moves f by at most
 *    |f(a) - f(b)| <= min(2, |a - b| / (eps + min(|a|, |b|)))
 *    (f's slope is eps/(|x|+eps)^2; through zero, f's two halves each
 *    change by at most |x|/eps). This is what makes |g| ~ eps parameters
 *    (e.g. all of k_proj.bias, whose true gradient is zero since softmax
 *    ignores a shift shared by all keys) sit anywhere in [-lr, lr] only
 *    when their gradients disagree at that scale, and pins the others;
 *  - each side's float32 rounding: the decay product and the subtraction
 *    (u·|p0| + u·|p1|), f's evaluation (g², sqrt, the bias-correction
 *    divisions, + eps, the quotient, the step-size product: <= 6u·lr),
 *    and the clipping factor and product (2u relative to g, so <= 2u·lr
 *    through f): per side u·(|p0| + |p1|) + 8u·lr, both sides twice that.
 * Where |g| << eps, f is linear (x/eps) and the bound is attained up to
 * the rounding terms: ratios near 1 there are the bound being tight, not
 * loose; where |g| >> eps, f is flat and the bound is the rounding.
 * Returns the worst |Δ| / bound over all parameters (<= 1 passes). */
static double step_err(Fixture *f, const float *p0, const float *gmine, double mine_norm, double lr, const AdamWConfig *aw,
                       double clip, double fx_norm, Err *e) {
    const double u = 0x1p-24, eps = aw->eps;
    /* clipping factors as each side computes them: torch's
     * max_norm / (norm + 1e-6), clamped to 1; ours the same in float */
    float cm = (float)clip / ((float)mine_norm + 1e-6f);
    double c_mine = cm < 1 ? cm : 1, c_fx = fmin(1, clip / (fx_norm + 1e-6));
    double worst = 0;
    for (int i = 0; i < f->m.n_tensors && isfinite(worst); i++) {
        const TdTensor *t = &f->m.tensors[i];
        char pn[160], gn[160];
        snprintf(pn, sizeof pn, "adamw1.%s", t->name);
        snprintf(gn, sizeof gn, "sft.grad.%s", t->name);
        const TensorView *pv = st_get(f->want, pn, e), *gv = pv ? st_get(f->want, gn, e) : NULL;
        float *w = gv ? tensor_to_f32_alloc(pv, e) : NULL, *g = w ? tensor_to_f32_alloc(gv, e) : NULL;
        if (!g) worst = INFINITY;
        /* the bound takes both gradients as given: they must agree to
         * test_decoder_train.c's 1e-5 of the tensor's largest element */
        else if (scaled_err(gmine + t->offset, g, (long)t->numel) > 1e-5)
            worst = INFINITY, err_set(e, ERR_INTERNAL, "%s: gradient off by %.3g of max", t->name,
                                      scaled_err(gmine + t->offset, g, (long)t->numel));
        for (size_t k = 0; g && k < t->numel; k++) {
            double a = c_mine * gmine[t->offset + k], b = c_fx * g[k];
            double df = fmin(2, fabs(a - b) / (eps + fmin(fabs(a), fabs(b))));
            double p1 = f->m.params[t->offset + k];
            double bound = lr * df + 2 * (u * (fabs(p0[t->offset + k]) + fabs(p1)) + 8 * u * lr);
            worst = fmax(worst, fabs(p1 - w[k]) / bound);
        }
        free(w), free(g);
    }
    return worst;
}

/* One full step as the fixture: SFT loss, clip to 1.0, AdamW (decay on every
 * tensor) -> adamw1.*, every parameter within step_err's bound. */
static void check_sft_step(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    json_t *sft = json_object_get(f.root, "sft"), *aw = json_object_get(f.root, "adamw");
    json_t *betas = json_object_get(aw, "betas");
    TrainerConfig cfg = {0};
    cfg.schedule = (LrSchedule){LR_CONSTANT, json_number_value(json_object_get(aw, "lr")), 0, 1};
    cfg.adamw = (AdamWConfig){json_number_value(json_array_get(betas, 0)), json_number_value(json_array_get(betas, 1)),
                              json_number_value(json_object_get(aw, "eps")),
                              json_number_value(json_object_get(aw, "weight_decay"))};
    cfg.decay = TRAIN_DECAY_ALL;
    cfg.max_grad_norm = (float)json_number_value(json_object_get(aw, "clip_grad_norm"));
    cfg.dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    Trainer t;
    CHECK_OK(trainer_init(&t, &f.m, f.tp, &cfg, &e), &e);
    int T, n_prompt = (int)json_integer_value(json_object_get(sft, "n_prompt"));
    int32_t *ids = json_ids(json_object_get(sft, "input_ids"), &T);
    uint8_t *target = xmalloc((size_t)T);
    for (int i = 0; i < T; i++) target[i] = i >= n_prompt;
    SftTokens ex = {ids, target, T};
    StepStats st;
    rc = trainer_sft_accumulate(&t, &ex, 1, &st, &e);
    double err = 0;
    double want_loss = json_number_value(json_object_get(sft, "loss"));
    double want_norm = json_number_value(json_object_get(sft, "grad_norm_before_clip"));
    float *p0 = xmalloc(f.m.n_params * sizeof *p0), *g0 = xmalloc(f.m.n_params * sizeof *g0);
    memcpy(p0, f.m.params, f.m.n_params * sizeof *p0);
    memcpy(g0, f.m.grads, f.m.n_params * sizeof *g0);
    if (!rc) {
        trainer_apply(&t, &st);
        err = step_err(&f, p0, g0, st.grad_norm, cfg.schedule.lr, &cfg.adamw, cfg.max_grad_norm, want_norm, &e);
    }
    free(p0), free(g0);
    free(ids), free(target);
    trainer_free(&t);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
    /* the loss: a mean of -log p over the targets, each moved by <= 2 x
     * the logits' error (gradient of l1 norm <= 2), the logits within the
     * f32 gold budget (<= 1.25e-6 of a range of 6.5-8.2 here): <= 2.1e-5
     * absolute on a loss of 7.3-7.8: 2.9e-6 relative, within 1e-5 */
    CHECK_NEAR(st.loss, want_loss, 1e-5 * want_loss);
    CHECK_EQ_INT(st.n_targets, T - n_prompt);
    /* the norm: every gradient element carries sd u·sqrt(3ΣK/6)·√2 ~ 3e-6
     * of its tensor's rms (test_decoder_train.c's GRAD_TOL model, ΣK <=
     * 2472), so the norm moves by ~3e-6 relative (sd): 6 sd, 1.8e-5 */
    CHECK_NEAR(st.grad_norm, want_norm, 2e-5 * want_norm);
    CHECK_NEAR(st.learning_rate, 1e-3, 1e-12);
    printf("  %s: worst parameter after the step: %.3g of its bound\n", arch, err);
    CHECK_MSG(err <= 1, "%s: a parameter after the step is %.3g times its bound from adamw1.*", arch, err);
}

/* DPO through the trainer's packed pairs: reference log-probs from the
 * perturbed copy, then the policy's gradients vs dpo.grad.* (1e-5). */
static void check_dpo_accumulate(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    TrainDecoder ref;
    char *ref_dir = xasprintf("%s-ref", f.dir);
    rc = td_init(&ref, &f.m.cfg, &e) || td_load(&ref, ref_dir, &e) ? -1 : 0;
    free(ref_dir);
    json_t *dpo = json_object_get(f.root, "dpo"), *jp = json_object_get(dpo, "pairs");
    int n = (int)json_array_size(jp);
    DpoTokens *pairs = xcalloc((size_t)n, sizeof *pairs);
    for (int i = 0; i < n; i++) {
        json_t *p = json_array_get(jp, i);
        int np;
        free(json_ids(json_object_get(p, "prompt_ids"), &np));
        pairs[i].n_prompt = np;
        pairs[i].chosen = json_ids(json_object_get(p, "chosen_ids"), &pairs[i].n_chosen);
        pairs[i].rejected = json_ids(json_object_get(p, "rejected_ids"), &pairs[i].n_rejected);
    }
    double *ref_lp = xcalloc((size_t)2 * n, sizeof *ref_lp);
    if (!rc) rc = trainer_ref_logps(&ref, f.tp, pairs, n, ref_lp, &e);
    for (int i = 0; i < n && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        double wc = json_number_value(json_object_get(p, "ref_chosen_logp"));
        double wr = json_number_value(json_object_get(p, "ref_rejected_logp"));
        if (fabs(ref_lp[2 * i] - wc) > 1e-5 * fabs(wc) || fabs(ref_lp[2 * i + 1] - wr) > 1e-5 * fabs(wr))
            rc = err_set(&e, ERR_INTERNAL, "pair %d: reference logps %.9g %.9g vs %.9g %.9g", i, ref_lp[2 * i],
                         ref_lp[2 * i + 1], wc, wr);
    }
    TrainerConfig cfg = plain_config(1, (DpoConfig){DPO_SIGMOID, json_number_value(json_object_get(dpo, "beta")), 0, 0});
    Trainer t;
    StepStats st;
    double err = 0;
    if (!rc) rc = trainer_init(&t, &f.m, f.tp, &cfg, &e);
    if (!rc) {
        rc = trainer_dpo_accumulate(&t, pairs, n, ref_lp, &st, &e);
        if (!rc) err = block_err(&f, f.m.grads, "dpo.grad.", &e);
        trainer_free(&t);
    }
    double want = json_number_value(json_object_get(dpo, "mean_loss"));
    for (int i = 0; i < n; i++) free((void *)pairs[i].chosen), free((void *)pairs[i].rejected);
    free(pairs), free(ref_lp);
    td_free(&ref);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_NEAR(st.loss, want, 1e-5 * want);
    CHECK_MSG(err <= 1e-5, "%s: DPO gradients off by %.3g of max", arch, err);
}

static void test_sft_step_llama3(void) { check_sft_step("llama3"); }
static void test_sft_step_qwen2(void) { check_sft_step("qwen2"); }
static void test_sft_step_mistral(void) { check_sft_step("mistral"); }
static void test_sft_step_qwen3(void) { check_sft_step("qwen3"); }
static void test_dpo_accumulate_llama3(void) { check_dpo_accumulate("llama3"); }
static void test_dpo_accumulate_qwen3(void) { check_dpo_accumulate("qwen3"); }

/* ---- learning on a synthetic task ---- */

/* A copy task over a 12-token vocabulary: prompt [0 x1 x2 x3 1], reply
 * [x1 x2 x3 2]; tokens 3..11 are the payload. */
enum { V = 12, NPROMPT = 5, TLEN = 9 };

static void make_example(Rng *r, int32_t *ids) {
    ids[0] = 0;
    for (int k = 1; k <= 3; k++) ids[k] = 3 + (int32_t)rng_below(r, V - 3);
    ids[4] = 1;
    for (int k = 0; k < 3; k++) ids[5 + k] = ids[1 + k];
    ids[8] = 2;
}

static void tiny_model(TrainDecoder *m, uint64_t seed) {
    ModelConfig c = {0};
    c.arch = ARCH_LLAMA;
    c.hidden_size = 32, c.intermediate_size = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
    c.head_dim = 8, c.vocab_size = V, c.max_pos = 64, c.norm_eps = 1e-6f;
    c.rope.type = ROPE_DEFAULT, c.rope.theta = 10000, c.rope.factor = 1;
    Err e;
    if (td_init(m, &c, &e)) abort();
    td_init_random(m, seed, 0.1f);
}

/* A bound on |Δ log p| between two evaluations of a completion's summed
 * log-prob that differ only in how the head's rows are blocked (the hidden
 * states are the same computation: same rows, same calls): each logit
 * z_tj = Σ_k x_tk W_jk (K = hidden size) is a float32 dot whose blocking
 * may change its summation order, and each order is within
 * γ_K·S_tj of the exact value (γ_K = K·u/(1 - K·u), S_tj = Σ_k |x_tk W_jk|),
 * so the two differ by <= 2γ_K·S_t (S_t = max_j S_tj). -log p_t =
 * m + log Σ exp(z - m) - z_label has gradient (p - onehot), of l1 norm <= 2,
 * so it moves by <= 2·2γ_K·S_t; its own float evaluation (x - m rounded,
 * expf to ~1 ulp) has relative error <= u·(R_t + 2) in the sum (R_t = the
 * row's range), i.e. <= u·(R_t + 2) in log Σ, on each side. The double
 * sums over rows and threads add ~1e-16 relative: nothing. Over the rows:
 *   B = Σ_t [4γ_K·S_t + 2u·(R_t + 2)]   (rows t in [t0, t1) with a label).
 * A blocking bug (a row's logits from the wrong row, a block boundary
 * counted twice or not at all) moves log p by a whole token's -log p
 * (~log V): far outside B. */
static double blocked_logp_bound(const TrainDecoder *m, const float *logits, const int32_t *labels, int t0, int t1) {
    const int K = m->cfg.hidden_size, V = m->cfg.vocab_size;
    const double u = 0x1p-24, gamma = K * u / (1 - K * u);
    double B = 0;
    for (int t = t0; t < t1; t++) {
        if (labels[t] == LOSS_IGNORE) continue;
        const float *x = m->xf + (size_t)t * K, *z = logits + (size_t)t * V;
        double S = 0, lo = z[0], hi = z[0];
        for (int j = 0; j < V; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += fabs((double)x[k] * ((const float *)m->w.lm_head.data)[(size_t)j * K + k]);
            S = fmax(S, s), lo = fmin(lo, z[j]), hi = fmax(hi, z[j]);
        }
        B += 4 * gamma * S + 2 * u * (hi - lo + 2);
    }
    return B;
}

/* A sequence longer than the rows of logits an SFT step holds at once
 * (several head blocks, the last one short): the step's loss and gradients
 * are those of the whole-sequence forward, loss and backward. */
static void test_sft_blocked_head_matches_whole(void) {
    enum { LONG_T = 300 };
    TrainDecoder m;
    tiny_model(&m, 7);
    m.cfg.max_pos = LONG_T;
    ThreadPool *tp = tp_create(2);
    Rng r;
    rng_seed(&r, 3);
    int32_t ids[LONG_T], labels[LONG_T];
    uint8_t target[LONG_T];
    for (int k = 0; k < LONG_T; k++) ids[k] = (int32_t)rng_below(&r, V), target[k] = k >= 20;
    loss_shift_labels(ids, target, LONG_T, labels);
    float *logits = xmalloc((size_t)LONG_T * V * sizeof *logits);
    Err e;
    int n;
    CHECK_OK(td_forward(&m, tp, ids, LONG_T, logits, &e), &e);
    double want_loss = token_nll_sum_forward(logits, labels, LONG_T, V, &n) / n;
    /* the mean of the per-row -log p: blocked_logp_bound over n */
    double loss_bound = blocked_logp_bound(&m, logits, labels, 0, LONG_T) / n;
    token_nll_sum_backward(logits, logits, labels, LONG_T, V, 1.0f / (float)n);
    td_backward(&m, tp, logits);
    float *want = xmalloc(m.n_params * sizeof *want);
    memcpy(want, m.grads, m.n_params * sizeof *want);
    td_zero_grad(&m);
    TrainerConfig cfg = plain_config(10, (DpoConfig){DPO_SIGMOID, 0.1, 0, 0});
    Trainer t;
    StepStats st;
    CHECK_OK(trainer_init(&t, &m, tp, &cfg, &e), &e);
    SftTokens ex = {ids, target, LONG_T};
    CHECK_OK(trainer_sft_accumulate(&t, &ex, 1, &st, &e), &e);
    CHECK_NEAR(st.loss, want_loss, loss_bound);
    /* gradients: the head's backward in blocks sums dW over blocks of rows
     * in another order: test_decoder_train.c's GRAD_TOL model */
    double err = scaled_err(m.grads, want, (long)m.n_params);
    CHECK_MSG(err <= 1e-5, "blocked head: gradients off by %.3g of max", err);
    trainer_free(&t);
    free(logits), free(want);
    td_free(&m);
    tp_free(tp);
}

/* DPO on a pair longer than a head block (the chosen/rejected boundary
 * inside a block): the trainer's blocked log-probs and gradients are those
 * of the whole packed forward with whole logits, for a head that trains
 * (full) and one that does not (LoRA, where the rows' factors come after). */
static void dpo_blocked_head(int lora) {
    enum { NP = 20, NC = 150, NR = 140 };
    TrainDecoder m;
    tiny_model(&m, 8);
    m.cfg.max_pos = NC + NR;
    Err e;
    if (lora) {
        LoraConfig lc = {4, 8, 0, 0x7f, 0};
        CHECK_OK(td_lora_attach(&m, &lc, &e), &e);
        td_lora_init(&m, 3);
        for (size_t k = 0; k < m.n_lora_params; k++)
            if (m.lora_params[k] == 0) m.lora_params[k] = 0.02f * (float)((int)(k % 5) - 2);
    }
    ThreadPool *tp = tp_create(2);
    Rng r;
    rng_seed(&r, 6);
    int32_t ids[NC + NR], labels[NC + NR];
    uint8_t target[NC + NR];
    for (int k = 0; k < NC + NR; k++) ids[k] = (int32_t)rng_below(&r, V);
    memcpy(ids + NC, ids, NP * sizeof *ids); /* the shared prompt */
    for (int k = 0; k < NC + NR; k++) target[k] = (k < NC ? k : k - NC) >= NP;
    loss_shift_labels(ids, target, NC, labels);
    loss_shift_labels(ids + NC, target + NC, NR, labels + NC);
    int seg[NC + NR], lens[2] = {NC, NR};
    td_pack_segments(lens, 2, seg);
    /* whole logits, by hand */
    float *logits = xmalloc((size_t)(NC + NR) * V * sizeof *logits);
    CHECK_OK(td_forward_packed(&m, tp, ids, seg, NC + NR, logits, &e), &e);
    DpoConfig dc = {DPO_SIGMOID, 0.5, 0, 0};
    DpoPair dp = {-token_nll_sum_forward(logits, labels, NC, V, NULL),
                  -token_nll_sum_forward(logits + NC * V, labels + NC, NR, V, NULL), -300, -310, NC - NP, NR - NP};
    /* rows of the whole packed pass: chosen [0, NC), rejected [NC, NC + NR) */
    double bound_c = blocked_logp_bound(&m, logits, labels, 0, NC), bound_r = blocked_logp_bound(&m, logits, labels, NC, NC + NR);
    double d_c, d_r;
    dpo_pair_backward(&dc, &dp, 1.0, &d_c, &d_r);
    token_nll_sum_backward(logits, logits, labels, NC, V, (float)-d_c);
    token_nll_sum_backward(logits + NC * V, logits + NC * V, labels + NC, NR, V, (float)-d_r);
    td_backward(&m, tp, logits);
    float *g = lora ? m.lora_grads : m.grads;
    size_t n = lora ? m.n_lora_params : m.n_params;
    float *want = xmalloc(n * sizeof *want);
    memcpy(want, g, n * sizeof *want);
    td_zero_grad(&m);
    /* the trainer */
    TrainerConfig cfg = plain_config(10, dc);
    Trainer t;
    StepStats st;
    CHECK_OK(trainer_init(&t, &m, tp, &cfg, &e), &e);
    DpoTokens pair = {ids, ids + NC, NC, NR, NP};
    double ref[2] = {-300, -310};
    CHECK_OK(trainer_dpo_accumulate(&t, &pair, 1, ref, &st, &e), &e);
    CHECK(t.logits_cap <= 128 * V); /* never the whole pair's logits */
    printf("  %s: log-prob differences %.2g, %.2g; bounds %.2g, %.2g\n", lora ? "LoRA" : "full",
           fabs(st.dpo.logps_chosen - dp.policy_chosen), fabs(st.dpo.logps_rejected - dp.policy_rejected), bound_c,
           bound_r);
    CHECK_NEAR(st.dpo.logps_chosen, dp.policy_chosen, bound_c);
    CHECK_NEAR(st.dpo.logps_rejected, dp.policy_rejected, bound_r);
    double err = scaled_err(g, want, (long)n);
    CHECK_MSG(err <= 1e-5, "%s: blocked DPO gradients off by %.3g of max", lora ? "LoRA" : "full", err);
    trainer_free(&t);
    free(logits), free(want);
    td_free(&m);
    tp_free(tp);
}

static void test_dpo_blocked_head_full(void) { dpo_blocked_head(0); }
static void test_dpo_blocked_head_lora(void) { dpo_blocked_head(1); }

static double heldout_sft_loss(TrainDecoder *m, int32_t (*ids)[TLEN], int n) {
    uint8_t target[TLEN];
    for (int k = 0; k < TLEN; k++) target[k] = k >= NPROMPT;
    double s = 0;
    float logits[TLEN * V];
    int32_t labels[TLEN];
    Err e;
    for (int i = 0; i < n; i++) {
        if (td_forward(m, NULL, ids[i], TLEN, logits, &e)) return INFINITY;
        loss_shift_labels(ids[i], target, TLEN, labels);
        s += xent_forward(logits, labels, TLEN, V, NULL) / n;
    }
    return s;
}

static void sft_learns(int lora) {
    TrainDecoder m;
    tiny_model(&m, 1);
    Err e;
    if (lora) {
        LoraConfig lc = {8, 16, 0, 0x7f, 0};
        CHECK_OK(td_lora_attach(&m, &lc, &e), &e);
        td_lora_init(&m, 2);
    }
    Rng r;
    rng_seed(&r, 3);
    int32_t held[32][TLEN];
    for (int i = 0; i < 32; i++) make_example(&r, held[i]);
    double before = heldout_sft_loss(&m, held, 32);
    TrainerConfig cfg = {0};
    cfg.schedule = (LrSchedule){LR_COSINE, lora ? 2e-2 : 1e-2, 10, 300};
    cfg.adamw = adamw_defaults();
    cfg.max_grad_norm = 1.0f;
    cfg.dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    Trainer t;
    CHECK_OK(trainer_init(&t, &m, NULL, &cfg, &e), &e);
    int32_t batch[8][TLEN];
    uint8_t target[TLEN];
    for (int k = 0; k < TLEN; k++) target[k] = k >= NPROMPT;
    SftTokens ex[8];
    for (int step = 0; step < 300; step++) {
        for (int i = 0; i < 8; i++) {
            make_example(&r, batch[i]);
            ex[i] = (SftTokens){batch[i], target, TLEN};
        }
        StepStats st;
        CHECK_OK(trainer_sft_accumulate(&t, ex, 8, &st, &e), &e);
        trainer_apply(&t, &st);
    }
    double after = heldout_sft_loss(&m, held, 32);
    trainer_free(&t);
    td_free(&m);
    /* Chance is log(12) = 2.48 per token; the reply's end token is certain
     * once learnt, and copying the three payload tokens makes all of it so. */
    CHECK_MSG(before > 2.0 && after < 0.5 * before && after < 1.0, "held-out loss %.3f -> %.3f", before, after);
}

static void test_sft_lowers_heldout_loss(void) { sft_learns(0); }
static void test_sft_lowers_heldout_loss_lora(void) { sft_learns(1); }

/* DPO: prompt [0 x1 x2 x3 1]; chosen copies the payload, rejected is random
 * payload. Reference = the initial model. */
static void make_pair(Rng *r, int32_t *c, int32_t *j) {
    make_example(r, c);
    memcpy(j, c, TLEN * sizeof *j);
    for (int k = 5; k < 8; k++)
        do j[k] = 3 + (int32_t)rng_below(r, V - 3);
        while (j[k] == c[k]);
}

static void test_dpo_raises_heldout_reward_accuracy(void) {
    TrainDecoder m, ref;
    tiny_model(&m, 5);
    tiny_model(&ref, 5);
    Rng r;
    rng_seed(&r, 6);
    enum { NH = 64 };
    static int32_t hc[NH][TLEN], hr[NH][TLEN];
    DpoTokens held[NH];
    for (int i = 0; i < NH; i++) {
        make_pair(&r, hc[i], hr[i]);
        held[i] = (DpoTokens){hc[i], hr[i], TLEN, TLEN, NPROMPT};
    }
    Err e;
    double *held_ref = xmalloc(2 * NH * sizeof *held_ref), *held_pol = xmalloc(2 * NH * sizeof *held_pol);
    CHECK_OK(trainer_ref_logps(&ref, NULL, held, NH, held_ref, &e), &e);
    TrainerConfig cfg = {0};
    cfg.schedule = (LrSchedule){LR_LINEAR, 5e-3, 5, 150};
    cfg.adamw = adamw_defaults();
    cfg.max_grad_norm = 1.0f;
    cfg.dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    Trainer t;
    CHECK_OK(trainer_init(&t, &m, NULL, &cfg, &e), &e);
    int32_t bc[8][TLEN], br[8][TLEN];
    DpoTokens batch[8];
    double ref_lp[16];
    StepStats st = {0};
    for (int step = 0; step < 150; step++) {
        for (int i = 0; i < 8; i++) {
            make_pair(&r, bc[i], br[i]);
            batch[i] = (DpoTokens){bc[i], br[i], TLEN, TLEN, NPROMPT};
        }
        CHECK_OK(trainer_ref_logps(&ref, NULL, batch, 8, ref_lp, &e), &e);
        CHECK_OK(trainer_dpo_accumulate(&t, batch, 8, ref_lp, &st, &e), &e);
        trainer_apply(&t, &st);
    }
    CHECK_OK(trainer_ref_logps(&m, NULL, held, NH, held_pol, &e), &e);
    int correct = 0;
    for (int i = 0; i < NH; i++)
        correct += (held_pol[2 * i] - held_ref[2 * i]) > (held_pol[2 * i + 1] - held_ref[2 * i + 1]);
    StrBuf line;
    sb_init(&line);
    trainer_metrics_line(&st, t.step, 1.0, 1234.5, &line);
    int has_names = strstr(line.s, "\"rewards/accuracies\":") && strstr(line.s, "\"learning_rate\":") &&
                    strstr(line.s, "\"logps/chosen\":") && strstr(line.s, "\"tokens_per_second\":");
    sb_free(&line);
    free(held_ref), free(held_pol);
    trainer_free(&t);
    td_free(&m);
    td_free(&ref);
    CHECK_MSG(correct >= NH * 9 / 10, "held-out reward accuracy %d/%d", correct, NH);
    CHECK(has_names);
}

static void test_bad_batches_are_errors(void) {
    TrainDecoder m;
    tiny_model(&m, 9);
    TrainerConfig cfg = plain_config(1, (DpoConfig){DPO_SIGMOID, 0.1, 0, 0});
    Trainer t;
    Err e;
    CHECK_OK(trainer_init(&t, &m, NULL, &cfg, &e), &e);
    int32_t ids[4] = {0, 3, 4, 5}, other[4] = {0, 7, 4, 5};
    uint8_t none[4] = {0};
    SftTokens ex = {ids, none, 4};
    StepStats st;
    int rc1 = trainer_sft_accumulate(&t, &ex, 1, &st, &e);
    int ok1 = rc1 == -1 && strstr(e.msg, "no target tokens");
    DpoTokens p = {ids, other, 4, 4, 2};
    double ref[2] = {0, 0};
    int rc2 = trainer_dpo_accumulate(&t, &p, 1, ref, &st, &e);
    int ok2 = rc2 == -1 && strstr(e.msg, "do not start with the same 2 prompt tokens");
    int32_t big[4] = {0, 3, 99, 5};
    uint8_t all[4] = {1, 1, 1, 1};
    SftTokens bad = {big, all, 4};
    int rc3 = trainer_sft_accumulate(&t, &bad, 1, &st, &e);
    int ok3 = rc3 == -1 && strstr(e.msg, "SFT example 0") && strstr(e.msg, "outside the vocabulary");
    trainer_free(&t);
    td_free(&m);
    CHECK(ok1);
    CHECK(ok2);
    CHECK_MSG(ok3, "%s", e.msg);
}

int main(void) {
    RUN(test_sft_blocked_head_matches_whole);
    RUN(test_dpo_blocked_head_full);
    RUN(test_dpo_blocked_head_lora);
    RUN(test_sft_step_llama3);
    RUN(test_sft_step_qwen2);
    RUN(test_sft_step_mistral);
    RUN(test_sft_step_qwen3);
    RUN(test_dpo_accumulate_llama3);
    RUN(test_dpo_accumulate_qwen3);
    RUN(test_sft_lowers_heldout_loss);
    RUN(test_sft_lowers_heldout_loss_lora);
    RUN(test_dpo_raises_heldout_reward_accuracy);
    RUN(test_bad_batches_are_errors);
    return test_summary();
}
