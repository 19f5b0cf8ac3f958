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
#include "train/decoder_train.h"
#include "train/loss.h"

#define GRAD_TOL 1e-5
#define LOGIT_TOL 2e-6

#include "train/gold_dpo.h"


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
    int32_t *ids, *labels = sft_labels(f.root, &ids, &T);
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
        rc = check_grads(&f, "sft.grad.", 0, arch, &e);
    }
    free(ids);
    free(labels);
    free(logits);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_EQ_INT(n, T - n_prompt);
    CHECK_NEAR(loss, want, 1e-5 * want);
}


/* The dpo section (gold_check_dpo). */
static void check_dpo(const char *arch) {
    Fixture f;
    Err e;
    int rc = fixture_open_shared(&f, arch, &e);
    if (rc == 1) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "%s", e.msg);
    rc = gold_check_dpo(&f, arch, &e);
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
    PackedRows pr;
    packed_rows(&f, &pr);
    int32_t *a = pr.a, *b = pr.b, *ids = pr.ids;
    int *seg = pr.seg, T0 = pr.T0, T1 = pr.T1;
    const int V = f.m.cfg.vocab_size, T = pr.T;
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
