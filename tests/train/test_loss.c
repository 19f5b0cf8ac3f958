#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/rng.h"
#include "test.h"
#include "train/loss.h"

enum { T = 6, V = 7 };

static void random_logits(float *x, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = 3.0f * rng_normal(&r);
}

static void test_shift_labels(void) {
    int32_t ids[5] = {10, 11, 12, 13, 14}, labels[5];
    uint8_t target[5] = {0, 0, 1, 1, 1};
    loss_shift_labels(ids, target, 5, labels);
    CHECK_EQ_INT(labels[0], LOSS_IGNORE);
    CHECK_EQ_INT(labels[1], 12);
    CHECK_EQ_INT(labels[2], 13);
    CHECK_EQ_INT(labels[3], 14);
    CHECK_EQ_INT(labels[4], LOSS_IGNORE);
    loss_shift_labels(ids, NULL, 5, labels);
    CHECK_EQ_INT(labels[0], 11);
    CHECK_EQ_INT(labels[4], LOSS_IGNORE);
}

static void test_xent_by_hand(void) {
    /* Uniform logits over 3 classes: log 3 per token; ignored rows do not count. */
    float x[2 * 3] = {0, 0, 0, 5, -1, 2};
    int32_t labels[2] = {1, LOSS_IGNORE};
    int n;
    CHECK_NEAR(xent_forward(x, labels, 2, 3, &n), log(3.0), 1e-6);
    CHECK_EQ_INT(n, 1);
    float d[6];
    xent_backward(d, x, labels, 2, 3, n, 1.0f);
    CHECK_NEAR(d[0], 1.0 / 3, 1e-7);
    CHECK_NEAR(d[1], 1.0 / 3 - 1, 1e-7);
    CHECK(d[3] == 0 && d[4] == 0 && d[5] == 0);
    int32_t none[2] = {LOSS_IGNORE, LOSS_IGNORE};
    CHECK(xent_forward(x, none, 2, 3, &n) == 0.0f && n == 0);
    /* A large logit must not overflow. */
    float big[3] = {1000, 0, -1000};
    int32_t l0[1] = {0};
    CHECK_NEAR(xent_forward(big, l0, 1, 3, NULL), 0.0, 1e-6);
}

static void test_label_check_names_position(void) {
    int32_t labels[3] = {1, LOSS_IGNORE, 9};
    Err e;
    CHECK(loss_check_labels(labels, 3, 7, &e) == -1);
    CHECK_MSG(strstr(e.msg, "position 2") != NULL, "message: %s", e.msg);
    labels[2] = 6;
    CHECK_OK(loss_check_labels(labels, 3, 7, &e), &e);
}

/* Central differences of f against an analytic gradient, element by
 * element within a bound derived for each: with step h on x_i (row t):
 *  - truncation: h²/6 · |f'''| <= h²/6 · 0.0963 · scale (the third
 *    derivative of a log-softmax in one coordinate, p(1-p)(1-2p), peaks at
 *    1/(6√3));
 *  - f's float evaluation (x - max rounded, expf to ~1 ulp): only row t's
 *    term changes between the two calls (the others are the same floats),
 *    each carries <= u·(R_t + 2) (R_t: the row's range, widened by 2h), and
 *    the difference is divided by 2h: <= u·(R_t + 2)/h · scale;
 *  - x_i ± h rounded in float: the step is off by <= u·|x_i| each way,
 *    a relative error of 2u·|x_i|/h on the quotient, times |grad|;
 *  - f's result rounded to float (xent_forward returns one): <= u·|f|
 *    each, u·|f|/h on the quotient.
 * scale: f's factor per token (1 for a sum, 1/n for a mean of n). */
typedef double (*LossFn)(const float *x, const int32_t *labels);

static double mean_xent(const float *x, const int32_t *labels) { return xent_forward(x, labels, T, V, NULL); }
static double logp(const float *x, const int32_t *labels) { return seq_logprob_forward(x, labels, T, V, NULL); }

static int fd_check(LossFn f, const float *x0, const int32_t *labels, const float *grad, double scale,
                    int *bad) {
    float x[T * V];
    memcpy(x, x0, sizeof x);
    const float h = 1e-2f;
    const double u = 0x1p-24;
    for (int i = 0; i < T * V; i++) {
        float keep = x[i], lo = x[i - i % V], hi = lo;
        for (int j = i - i % V; j < i - i % V + V; j++) lo = fminf(lo, x[j]), hi = fmaxf(hi, x[j]);
        x[i] = keep + h;
        double fp = f(x, labels);
        x[i] = keep - h;
        double fm = f(x, labels);
        x[i] = keep;
        double num = (fp - fm) / (2.0 * h);
        double bound = scale * (h * h / 6 * 0.0963 + u * (hi - lo + 2 * h + 2) / h) +
                       2 * u * fabs(keep) / h * fabs(grad[i]) + u * fmax(fabs(fp), fabs(fm)) / h;
        if (fabs(num - grad[i]) > bound) {
            *bad = i;
            return 0;
        }
    }
    return 1;
}

static void test_xent_and_logprob_gradients_match_finite_differences(void) {
    float x[T * V], d[T * V];
    random_logits(x, T * V, 1);
    int32_t labels[T] = {3, LOSS_IGNORE, 0, 6, LOSS_IGNORE, 2};
    int n, bad = -1;
    xent_forward(x, labels, T, V, &n);
    CHECK_EQ_INT(n, 4);
    xent_backward(d, x, labels, T, V, n, 1.0f);
    CHECK_MSG(fd_check(mean_xent, x, labels, d, 1.0 / n, &bad), "xent grad differs at %d", bad);
    seq_logprob_backward(d, x, labels, T, V, 1.0f);
    CHECK_MSG(fd_check(logp, x, labels, d, 1.0, &bad), "logprob grad differs at %d", bad);
    /* dlogits may alias logits. */
    float y[T * V];
    memcpy(y, x, sizeof y);
    seq_logprob_backward(y, y, labels, T, V, 1.0f);
    CHECK(memcmp(y, d, sizeof y) == 0);
}

/* ---- DPO ---- */

static double pair_loss(const DpoConfig *c, const DpoPair *p) {
    DpoPairOut o;
    dpo_pair_forward(c, p, &o);
    return o.loss;
}

static void check_dpo_grad(const DpoConfig *c, DpoPair p, const char *what) {
    double dc, dr;
    dpo_pair_backward(c, &p, 1.0, &dc, &dr);
    const double h = 1e-4;
    DpoPair q = p;
    q.policy_chosen = p.policy_chosen + h;
    double fp = pair_loss(c, &q);
    q.policy_chosen = p.policy_chosen - h;
    double num_c = (fp - pair_loss(c, &q)) / (2 * h);
    q = p;
    q.policy_rejected = p.policy_rejected + h;
    fp = pair_loss(c, &q);
    q.policy_rejected = p.policy_rejected - h;
    double num_r = (fp - pair_loss(c, &q)) / (2 * h);
    /* all in double: truncation h²/6 times the third derivative (<= beta³
     * for these losses, beta <= 1 here): <= 2e-9; rounding ~1e-16·|f|/h
     * ~ 1e-12: 1e-6 leaves room, and a wrong factor anywhere is O(beta) */
    if (fabs(num_c - dc) > 1e-6 || fabs(num_r - dr) > 1e-6)
        test_fail(__FILE__, __LINE__, "%s: d/dchosen %.9g vs %.9g, d/drejected %.9g vs %.9g", what, dc,
                  num_c, dr, num_r);
}

static void test_dpo_gradients_match_finite_differences(void) {
    DpoPair pairs[3] = {{-224.1, -116.1, -223.4, -119.2, 30, 12},
                        {-128.5, -213.8, -129.9, -212.2, 15, 40},
                        {-10.0, -12.0, -10.5, -11.0, 5, 6}};
    DpoConfig cfgs[6] = {{DPO_SIGMOID, 0.1, 0, 0}, {DPO_SIGMOID, 0.9, 0.2, 0}, {DPO_ROBUST, 0.1, 0.1, 0},
                         {DPO_IPO, 0.1, 0, 0},     {DPO_HINGE, 0.1, 0, 0},     {DPO_HINGE, 2.0, 0, 0}};
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < 3; i++) {
            char what[64];
            snprintf(what, sizeof what, "%s beta %g pair %d", dpo_kind_name(cfgs[k].kind), cfgs[k].beta, i);
            check_dpo_grad(&cfgs[k], pairs[i], what);
        }
}

static void test_dpo_batch_nll_term_and_metrics(void) {
    DpoPair pairs[2] = {{-20, -30, -21, -29, 10, 10}, {-40, -35, -39, -36, 20, 10}};
    DpoConfig c = {DPO_SIGMOID, 0.5, 0, 0.3};
    DpoPairOut outs[2];
    DpoStats st;
    double dc[2], dr[2];
    double loss = dpo_batch(&c, pairs, 2, outs, &st, dc, dr);
    CHECK_NEAR(st.nll, 60.0 / 30, 1e-12);
    CHECK_NEAR(loss, (outs[0].loss + outs[1].loss) / 2 + 0.3 * 2.0, 1e-12);
    CHECK_NEAR(outs[0].reward_chosen, 0.5, 1e-12);
    CHECK_NEAR(outs[0].reward_rejected, -0.5, 1e-12);
    CHECK_NEAR(st.rewards_accuracies, 0.5, 1e-12);
    CHECK_NEAR(st.rewards_margins, st.rewards_chosen - st.rewards_rejected, 1e-12);
    CHECK_NEAR(st.logps_chosen, -30, 1e-12);
    /* Gradient of the whole batch loss by finite differences. */
    const double h = 1e-5;
    for (int i = 0; i < 2; i++) {
        DpoPair q[2] = {pairs[0], pairs[1]};
        q[i].policy_chosen += h;
        double fp = dpo_batch(&c, q, 2, outs, &st, NULL, NULL);
        q[i].policy_chosen -= 2 * h;
        double fm = dpo_batch(&c, q, 2, outs, &st, NULL, NULL);
        CHECK_NEAR(dc[i], (fp - fm) / (2 * h), 1e-7);
        q[i].policy_chosen += h;
        q[i].policy_rejected += h;
        fp = dpo_batch(&c, q, 2, outs, &st, NULL, NULL);
        q[i].policy_rejected -= 2 * h;
        fm = dpo_batch(&c, q, 2, outs, &st, NULL, NULL);
        CHECK_NEAR(dr[i], (fp - fm) / (2 * h), 1e-7);
    }
}

static void test_dpo_config_errors(void) {
    Err e;
    DpoConfig c = {DPO_SIGMOID, 0, 0, 0};
    CHECK(dpo_config_check(&c, &e) == -1 && strstr(e.msg, "beta"));
    c.beta = 0.1;
    c.label_smoothing = 0.5;
    CHECK(dpo_config_check(&c, &e) == -1 && strstr(e.msg, "[0, 0.5)"));
    c.kind = DPO_IPO;
    c.label_smoothing = 0.1;
    CHECK(dpo_config_check(&c, &e) == -1 && strstr(e.msg, "ipo"));
    c.label_smoothing = 0;
    CHECK_OK(dpo_config_check(&c, &e), &e);
    DpoLossKind k;
    CHECK_OK(dpo_kind_parse("robust", &k, &e), &e);
    CHECK(k == DPO_ROBUST);
    CHECK(dpo_kind_parse("kto", &k, &e) == -1 && strstr(e.msg, "sigmoid, robust, ipo or hinge"));
}

/* The fixture's dpo section: per-pair log-probs from PyTorch → TRL-style
 * sigmoid losses, rewards and the mean. torch computes in float32: the
 * margin (four log-probs of |.| <= ~200) carries <= u·800 ~ 4.8e-5, times
 * beta 0.1, through -logsigmoid (slope <= 1): <= 4.8e-6 absolute on a loss
 * of ~0.7: 1e-5 relative. */
static void check_fixture_dpo(const char *arch) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s/expected.json", arch);
    char *path = test_shared_path(rel);
    if (!path) SKIP("%s not found (set ALOE_SHARED)", rel);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    free(path);
    CHECK_MSG(root, "%s: %s", rel, je.text);
    json_t *dpo = json_object_get(root, "dpo");
    CHECK(dpo);
    CHECK_EQ_STR(json_string_value(json_object_get(dpo, "loss_type")), "sigmoid");
    DpoConfig c = {DPO_SIGMOID, json_number_value(json_object_get(dpo, "beta")), 0, 0};
    json_t *jp = json_object_get(dpo, "pairs");
    int n = (int)json_array_size(jp);
    CHECK(n == 2);
    DpoPair pairs[2];
    DpoPairOut outs[2];
    for (int i = 0; i < n; i++) {
        json_t *p = json_array_get(jp, i);
        pairs[i] = (DpoPair){json_number_value(json_object_get(p, "policy_chosen_logp")),
                             json_number_value(json_object_get(p, "policy_rejected_logp")),
                             json_number_value(json_object_get(p, "ref_chosen_logp")),
                             json_number_value(json_object_get(p, "ref_rejected_logp")), 1, 1};
    }
    DpoStats st;
    double loss = dpo_batch(&c, pairs, n, outs, &st, NULL, NULL);
    for (int i = 0; i < n; i++) {
        json_t *p = json_array_get(jp, i);
        double want = json_number_value(json_object_get(p, "loss"));
        CHECK_NEAR(outs[i].loss, want, 1e-5 * fabs(want));
        /* Rewards: torch subtracts two float32 log-probs of size ~200, so
         * the difference carries ~1e-5 absolute of rounding. */
        CHECK_NEAR(outs[i].reward_chosen, json_number_value(json_object_get(p, "reward_chosen")), 2e-6);
        CHECK_NEAR(outs[i].reward_rejected, json_number_value(json_object_get(p, "reward_rejected")), 2e-6);
    }
    double want = json_number_value(json_object_get(dpo, "mean_loss"));
    CHECK_NEAR(loss, want, 1e-5 * want);
    json_decref(root);
}

static void test_fixture_dpo_llama3(void) { check_fixture_dpo("llama3"); }
static void test_fixture_dpo_qwen2(void) { check_fixture_dpo("qwen2"); }
static void test_fixture_dpo_mistral(void) { check_fixture_dpo("mistral"); }
static void test_fixture_dpo_qwen3(void) { check_fixture_dpo("qwen3"); }

int main(void) {
    RUN(test_shift_labels);
    RUN(test_xent_by_hand);
    RUN(test_label_check_names_position);
    RUN(test_xent_and_logprob_gradients_match_finite_differences);
    RUN(test_dpo_gradients_match_finite_differences);
    RUN(test_dpo_batch_nll_term_and_metrics);
    RUN(test_dpo_config_errors);
    RUN(test_fixture_dpo_llama3);
    RUN(test_fixture_dpo_qwen2);
    RUN(test_fixture_dpo_mistral);
    RUN(test_fixture_dpo_qwen3);
    return test_summary();
}
