/* The training decoder against the PyTorch fixtures of all four
 * architectures: logits, the SFT loss and the gradient of every parameter,
 * and DPO log-probs and gradients with the perturbed reference model.
 *
 * Tolerances (float32 on both sides, different summation orders):
 *  - logits within LOGIT_TOL of the reference logits' range: the budget of
 *    tests/model/test_decoder.c (GOLD_TOL there; derivation in
 *    docs/TESTING.md): each float32 evaluation's rounding is modelled as
 *    independent errors of u·sqrt(K/6) per length-K reduction relative to
 *    its result, summed in quadrature over the reductions a logit passes
 *    through (ΣK <= 2472 for these models), two evaluations (√2), 6
 *    standard deviations for the largest of <= 1e5 logits, the logits'
 *    rms <= 0.125 of their range: 1.25e-6, rounded up to 2e-6. It holds
 *    for any two float32 evaluations of the same forward, so also for the
 *    packed and the separate pass (check_packed).
 *  - losses 1e-5 relative; each gradient tensor within GRAD_TOL of its
 *    largest |element| (a per-tensor scale, because single elements near
 *    zero carry only absolute rounding): the backward passes through about
 *    three times the forward's reductions (the recomputed forward, dX and
 *    dW over T), so the same model gives u·sqrt(3·2472/6)·√2·6 = 1.8e-5
 *    of a tensor's rms; a gradient tensor's largest element is >= 2 times
 *    its rms on these fixtures (random weights: near-Gaussian entries,
 *    whose max over >= 64 elements is ~2.4 rms), so 1e-5 of the max. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/gold_fixture.h"
#include "train/decoder_train.h"
#include "train/loss.h"

#define GRAD_TOL 1e-5
#define LOGIT_TOL 2e-6

/* Compares every gradient with `<prefix><name>` in expected.safetensors. */
static int check_grads(Fixture *f, const char *prefix, const char *arch, Err *e) {
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < f->m.n_tensors; i++) {
        const TdTensor *t = &f->m.tensors[i];
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const TensorView *v = st_get(f->want, name, e);
        if (!v) return -1;
        if ((size_t)tensor_numel(v) != t->numel) return err_set(e, ERR_INTERNAL, "%s: size differs", name);
        float *w = tensor_to_f32_alloc(v, e);
        if (!w) return -1;
        double err = scaled_err(f->m.grads + t->offset, w, (long)t->numel);
        free(w);
        if (err > worst) worst = err, worst_name = t->name;
    }
    if (worst > GRAD_TOL)
        return err_set(e, ERR_INTERNAL, "%s %s: worst gradient error %.3g (of the tensor's max) in %s", arch, prefix,
                       worst, worst_name);
    return 0;
}

static void check_logits(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    json_t *rows = json_object_get(json_object_get(f.root, "forward"), "input_ids");
    const TensorView *lv = st_get(f.want, "forward.logits", &e);
    float *want = lv ? tensor_to_f32_alloc(lv, &e) : NULL;
    int ok = want != NULL;
    const int V = f.m.cfg.vocab_size;
    for (size_t r = 0; ok && r < json_array_size(rows); r++) {
        int T;
        int32_t *ids = json_ids(json_array_get(rows, r), &T);
        float *logits = xmalloc((size_t)T * V * sizeof(float));
        ok = !td_forward(&f.m, f.tp, ids, T, logits, &e);
        double err = ok ? range_err(logits, want + r * (size_t)T * V, (long)T * V) : 0;
        printf("  %s row %zu: logits within %.2e of the range\n", arch, r, err);
        if (ok && err > LOGIT_TOL)
            ok = 0, err_set(&e, ERR_INTERNAL, "%s row %zu: logits off by %.3g of the range", arch, r, err);
        free(ids);
        free(logits);
    }
    free(want);
    fixture_free(&f);
    CHECK_MSG(ok, "%s", e.msg);
}

static void check_sft(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    json_t *sft = json_object_get(f.root, "sft");
    int T, n_prompt = (int)json_integer_value(json_object_get(sft, "n_prompt"));
    int32_t *ids = json_ids(json_object_get(sft, "input_ids"), &T);
    uint8_t *target = xmalloc((size_t)T);
    for (int t = 0; t < T; t++) target[t] = t >= n_prompt;
    int32_t *labels = xmalloc((size_t)T * sizeof *labels);
    loss_shift_labels(ids, target, T, labels);
    const int V = f.m.cfg.vocab_size;
    float *logits = xmalloc((size_t)T * V * sizeof(float));
    rc = td_forward(&f.m, f.tp, ids, T, logits, &e);
    int n = 0;
    float loss = rc ? 0 : xent_forward(logits, labels, T, V, &n);
    double want = json_number_value(json_object_get(sft, "loss"));
    if (!rc) {
        xent_backward(logits, logits, labels, T, V, n, 1.0f);
        td_zero_grad(&f.m);
        td_backward(&f.m, f.tp, logits);
        rc = check_grads(&f, "sft.grad.", arch, &e);
    }
    free(ids);
    free(target);
    free(labels);
    free(logits);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_EQ_INT(n, T - n_prompt);
    CHECK_NEAR(loss, want, 1e-5 * want);
}

/* Summed log-prob of the tokens after the prompt, and its token count. */
static int completion_logp(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, int T, int n_prompt,
                           float *logits, int32_t *labels, double *logp, int *n, Err *e) {
    uint8_t *target = xmalloc((size_t)T);
    for (int t = 0; t < T; t++) target[t] = t >= n_prompt;
    loss_shift_labels(ids, target, T, labels);
    free(target);
    if (td_forward(m, tp, ids, T, logits, e)) return -1;
    *logp = seq_logprob_forward(logits, labels, T, m->cfg.vocab_size, n);
    return 0;
}

/* The dpo section: policy = the model, reference = tiny-<arch>-ref. Checks
 * the four log-probs of each pair (1e-5 relative), the mean sigmoid loss, and
 * the gradient of that loss for every parameter. */
static void check_dpo(const char *arch) {
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
    DpoConfig cfg = {DPO_SIGMOID, json_number_value(json_object_get(dpo, "beta")), 0, 0};
    int n = (int)json_array_size(jp);
    DpoPair *pairs = xcalloc((size_t)n, sizeof *pairs);
    const int V = f.m.cfg.vocab_size;
    /* Pass 1: log-probs of policy and reference. */
    for (int i = 0; i < n && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        int np, T[2];
        int32_t *prompt = json_ids(json_object_get(p, "prompt_ids"), &np);
        int32_t *seq[2] = {json_ids(json_object_get(p, "chosen_ids"), &T[0]),
                           json_ids(json_object_get(p, "rejected_ids"), &T[1])};
        double lp[4];
        int cnt[4];
        for (int s = 0; s < 2 && !rc; s++) {
            float *logits = xmalloc((size_t)T[s] * V * sizeof(float));
            int32_t *labels = xmalloc((size_t)T[s] * sizeof *labels);
            rc = completion_logp(&f.m, f.tp, seq[s], T[s], np, logits, labels, &lp[s], &cnt[s], &e) ||
                 completion_logp(&ref, f.tp, seq[s], T[s], np, logits, labels, &lp[2 + s], &cnt[2 + s], &e);
            free(logits);
            free(labels);
        }
        static const char *keys[4] = {"policy_chosen_logp", "policy_rejected_logp", "ref_chosen_logp",
                                      "ref_rejected_logp"};
        for (int k = 0; k < 4 && !rc; k++) {
            double want = json_number_value(json_object_get(p, keys[k]));
            if (fabs(lp[k] - want) > 1e-5 * fabs(want))
                rc = err_set(&e, ERR_INTERNAL, "%s pair %d %s: %.9g vs %.9g", arch, i, keys[k], lp[k], want);
        }
        pairs[i] = (DpoPair){lp[0], lp[1], lp[2], lp[3], cnt[0], cnt[1]};
        free(prompt);
        free(seq[0]);
        free(seq[1]);
    }
    /* Pass 2: the loss, then its gradient through both sequences of each pair. */
    DpoPairOut *outs = xcalloc((size_t)n, sizeof *outs);
    double *dc = xcalloc((size_t)n, sizeof *dc), *dr = xcalloc((size_t)n, sizeof *dr);
    DpoStats st;
    double loss = dpo_batch(&cfg, pairs, n, outs, &st, dc, dr);
    double want_loss = json_number_value(json_object_get(dpo, "mean_loss"));
    if (!rc && fabs(loss - want_loss) > 1e-5 * want_loss)
        rc = err_set(&e, ERR_INTERNAL, "%s: mean DPO loss %.9g vs %.9g", arch, loss, want_loss);
    td_zero_grad(&f.m);
    for (int i = 0; i < n && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        int np, T;
        int32_t *prompt = json_ids(json_object_get(p, "prompt_ids"), &np);
        for (int s = 0; s < 2 && !rc; s++) {
            int32_t *ids = json_ids(json_object_get(p, s ? "rejected_ids" : "chosen_ids"), &T);
            float *logits = xmalloc((size_t)T * V * sizeof(float));
            int32_t *labels = xmalloc((size_t)T * sizeof *labels);
            double lp;
            int cnt;
            rc = completion_logp(&f.m, f.tp, ids, T, np, logits, labels, &lp, &cnt, &e);
            if (!rc) {
                seq_logprob_backward(logits, logits, labels, T, V, (float)(s ? dr[i] : dc[i]));
                td_backward(&f.m, f.tp, logits);
            }
            free(ids);
            free(logits);
            free(labels);
        }
        free(prompt);
    }
    if (!rc) rc = check_grads(&f, "dpo.grad.", arch, &e);
    free(pairs);
    free(outs);
    free(dc);
    free(dr);
    td_free(&ref);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
}

/* The two forward rows packed into one call give the same logits as two
 * calls, and the same summed gradients. */
static void check_packed(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    json_t *rows = json_object_get(json_object_get(f.root, "forward"), "input_ids");
    int T0, T1;
    int32_t *a = json_ids(json_array_get(rows, 0), &T0), *b = json_ids(json_array_get(rows, 1), &T1);
    const int V = f.m.cfg.vocab_size, T = T0 + T1;
    int32_t *ids = xmalloc((size_t)T * sizeof *ids);
    memcpy(ids, a, (size_t)T0 * sizeof *ids);
    memcpy(ids + T0, b, (size_t)T1 * sizeof *ids);
    int lens[2] = {T0, T1}, *seg = xmalloc((size_t)T * sizeof *seg);
    td_pack_segments(lens, 2, seg);
    float *sep = xmalloc((size_t)T * V * sizeof(float)), *packed = xmalloc((size_t)T * V * sizeof(float));
    float *g_sep = xmalloc(f.m.n_params * sizeof(float));
    /* A loss that touches every logit: L = Σ logits·r, r fixed. */
    float *r = xmalloc((size_t)T * V * sizeof(float));
    for (long i = 0; i < (long)T * V; i++) r[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    td_zero_grad(&f.m);
    rc = td_forward(&f.m, f.tp, a, T0, sep, &e);
    if (!rc) td_backward(&f.m, f.tp, r);
    if (!rc) rc = td_forward(&f.m, f.tp, b, T1, sep + (size_t)T0 * V, &e);
    if (!rc) td_backward(&f.m, f.tp, r + (size_t)T0 * V);
    memcpy(g_sep, f.m.grads, f.m.n_params * sizeof(float));
    td_zero_grad(&f.m);
    if (!rc) rc = td_forward_packed(&f.m, f.tp, ids, seg, T, packed, &e);
    if (!rc) td_backward(&f.m, f.tp, r);
    double el = rc ? 0 : range_err(packed, sep, (long)T * V);
    double eg = rc ? 0 : scaled_err(f.m.grads, g_sep, (long)f.m.n_params);
    free(a), free(b), free(sep), free(g_sep), free(r);
    if (rc) {
        free(ids), free(seg), free(packed);
        fixture_free(&f);
        CHECK_MSG(0, "%s", e.msg);
    }
    /* A segment start that is not one: an error naming the position. */
    seg[5] = 3;
    int bad = td_forward_packed(&f.m, f.tp, ids, seg, T, packed, &e);
    free(ids), free(seg), free(packed);
    fixture_free(&f);
    printf("  %s packed vs separate: logits %.2e of the range, gradients %.2e of the max\n", arch, el, eg);
    CHECK_MSG(el <= LOGIT_TOL && eg <= GRAD_TOL, "%s: packed vs separate: logits %.3g, gradients %.3g", arch, el, eg);
    CHECK(bad == -1 && strstr(e.msg, "position 5"));
}

static void test_packed_llama3(void) { check_packed("llama3"); }
static void test_packed_qwen3(void) { check_packed("qwen3"); }
static void test_logits_llama3(void) { check_logits("llama3"); }
static void test_logits_qwen2(void) { check_logits("qwen2"); }
static void test_logits_mistral(void) { check_logits("mistral"); }
static void test_logits_qwen3(void) { check_logits("qwen3"); }
static void test_sft_grads_llama3(void) { check_sft("llama3"); }
static void test_sft_grads_qwen2(void) { check_sft("qwen2"); }
static void test_sft_grads_mistral(void) { check_sft("mistral"); }
static void test_sft_grads_qwen3(void) { check_sft("qwen3"); }
static void test_dpo_grads_llama3(void) { check_dpo("llama3"); }
static void test_dpo_grads_qwen2(void) { check_dpo("qwen2"); }
static void test_dpo_grads_mistral(void) { check_dpo("mistral"); }
static void test_dpo_grads_qwen3(void) { check_dpo("qwen3"); }

int main(void) {
    RUN(test_logits_llama3);
    RUN(test_logits_qwen2);
    RUN(test_logits_mistral);
    RUN(test_logits_qwen3);
    RUN(test_sft_grads_llama3);
    RUN(test_sft_grads_qwen2);
    RUN(test_sft_grads_mistral);
    RUN(test_sft_grads_qwen3);
    RUN(test_dpo_grads_llama3);
    RUN(test_dpo_grads_qwen2);
    RUN(test_dpo_grads_mistral);
    RUN(test_dpo_grads_qwen3);
    RUN(test_packed_llama3);
    RUN(test_packed_qwen3);
    return test_summary();
}
