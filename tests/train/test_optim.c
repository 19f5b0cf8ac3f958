#include <math.h>
#include <stdlib.h>

#include <jansson.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/optim.h"

/* Textbook Adam with decoupled decay (Loshchilov & Hutter), in double, written
 * with explicit m_hat / v_hat rather than torch's folded step size: an
 * independent formulation to hold the float32 code against. */
static void adamw_ref(double *p, const double *g, double *m, double *v, int n, int t, double lr,
                      double wd, int decay) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int i = 0; i < n; i++) {
        if (decay) p[i] -= lr * wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        p[i] -= lr * mh / (sqrt(vh) + eps);
    }
}

static void test_first_step_by_hand(void) {
    /* p=1, g=0.5, lr=0.1, wd=0.01: decay gives 0.999; m=0.05, v=0.00025,
     * m_hat=0.5, v_hat=0.25, so the Adam step is 0.1 * 0.5/0.5 = 0.1. */
    AdamWConfig c = adamw_defaults();
    c.weight_decay = 0.01;
    AdamW o;
    Err e;
    CHECK_OK(adamw_init(&o, &c, 1, &e), &e);
    float p = 1.0f, g = 0.5f;
    ParamSpan s = {0, 1, 1};
    adamw_step(&o, &p, &g, &s, 1, 0.1);
    CHECK_NEAR(p, 0.899, 1e-6);
    CHECK_EQ_INT(o.step, 1);
    adamw_free(&o);
}

static void test_matches_double_reference_over_steps(void) {
    enum { N = 257, STEPS = 20 };
    AdamWConfig c = adamw_defaults();
    c.weight_decay = 0.1;
    AdamW o;
    Err e;
    CHECK_OK(adamw_init(&o, &c, N, &e), &e);
    float p[N], g[N];
    double pd[N], gd[N], md[N] = {0}, vd[N] = {0};
    Rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < N; i++) pd[i] = p[i] = (float)(rng_uniform(&r) * 2 - 1);
    ParamSpan s = {0, N, 1};
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) gd[i] = g[i] = (float)(rng_uniform(&r) * 2 - 1) * (i % 5 + 1);
        adamw_step(&o, p, g, &s, 1, 1e-2);
        adamw_ref(pd, gd, md, vd, N, t, 1e-2, 0.1, 1);
    }
    for (int i = 0; i < N; i++)
        CHECK_MSG(fabs(p[i] - pd[i]) <= 1e-5 * fabs(pd[i]) + 1e-6, "p[%d]: %.9g vs %.9g", i, p[i],
                  pd[i]);
    adamw_free(&o);
}

static void test_decay_flag_and_frozen_elements(void) {
    /* Zero gradients: Adam's step is 0/(0+eps) = 0, so only decay moves p. */
    AdamWConfig c = adamw_defaults();
    c.weight_decay = 0.5;
    AdamW o;
    Err e;
    CHECK_OK(adamw_init(&o, &c, 6, &e), &e);
    float p[6] = {1, 2, 3, 4, 5, 6}, g[6] = {0};
    ParamSpan spans[2] = {{0, 2, 1}, {2, 2, 0}}; /* elements 4, 5 belong to no span */
    adamw_step(&o, p, g, spans, 2, 0.1);
    CHECK_NEAR(p[0], 0.95, 1e-7);
    CHECK_NEAR(p[1], 1.90, 1e-7);
    CHECK(p[2] == 3 && p[3] == 4);
    CHECK(p[4] == 5 && p[5] == 6);
    adamw_free(&o);
}

static void test_bad_config_is_an_error(void) {
    AdamWConfig c = adamw_defaults();
    c.beta2 = 1.0;
    AdamW o;
    Err e;
    CHECK(adamw_init(&o, &c, 4, &e) == -1);
    CHECK(strstr(e.msg, "betas") != NULL);
}

static void test_hf_decay_rule(void) {
    CHECK(optim_hf_decays("model.layers.0.self_attn.q_proj.weight"));
    CHECK(optim_hf_decays("model.embed_tokens.weight"));
    CHECK(optim_hf_decays("lm_head.weight"));
    CHECK(!optim_hf_decays("model.layers.0.self_attn.q_proj.bias"));
    CHECK(!optim_hf_decays("model.layers.0.input_layernorm.weight"));
    CHECK(!optim_hf_decays("model.layers.1.post_attention_layernorm.weight"));
    CHECK(!optim_hf_decays("model.norm.weight"));
    CHECK(!optim_hf_decays("model.layers.0.self_attn.q_norm.weight"));
    CHECK(optim_hf_decays("model.normalizer_free.weight"));
}

static void test_clip_returns_norm_before_clipping(void) {
    float g[2] = {3, 4};
    float n = grad_clip_global_norm(g, 2, 1.0f);
    CHECK_NEAR(n, 5.0, 1e-6);
    CHECK_NEAR(g[0], 3 / (5 + 1e-6), 1e-7);
    CHECK_NEAR(g[1], 4 / (5 + 1e-6), 1e-7);
    CHECK_NEAR(grad_global_norm(g, 2), 1.0, 1e-6);
    float h[2] = {3, 4};
    CHECK_NEAR(grad_clip_global_norm(h, 2, 10.0f), 5.0, 1e-6);
    CHECK(h[0] == 3 && h[1] == 4);
    CHECK_NEAR(grad_clip_global_norm(h, 2, 0), 5.0, 1e-6); /* measure only */
    CHECK(h[0] == 3);
}

static void test_threaded_equals_single(void) {
    enum { N = 1001 };
    float p1[N], p2[N], g1[N], g2[N];
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < N; i++) p1[i] = p2[i] = rng_normal(&r), g1[i] = g2[i] = rng_normal(&r);
    ParamSpan spans[2] = {{0, 600, 1}, {600, 401, 0}};
    AdamWConfig c = adamw_defaults();
    c.weight_decay = 0.1;
    AdamW a, b;
    Err e;
    CHECK_OK(adamw_init(&a, &c, N, &e), &e);
    CHECK_OK(adamw_init(&b, &c, N, &e), &e);
    ThreadPool *tp = tp_create(3);
    float n1 = grad_clip_global_norm(g1, N, 1.0f), n2 = grad_clip_global_norm_tp(tp, g2, N, 1.0f);
    for (int k = 0; k < 3; k++) {
        adamw_step(&a, p1, g1, spans, 2, 1e-2);
        adamw_step_tp(&b, tp, p2, g2, spans, 2, 1e-2);
    }
    int same = !memcmp(p1, p2, sizeof p1) && !memcmp(a.v, b.v, N * sizeof(float));
    grad_zero_tp(tp, g2, N);
    int zero = 1;
    for (int i = 0; i < N; i++) zero = zero && g2[i] == 0;
    tp_free(tp);
    adamw_free(&a);
    adamw_free(&b);
    CHECK_NEAR(n1, n2, 1e-6 * n1);
    CHECK(same);
    CHECK(zero);
}

static void test_schedules(void) {
    LrSchedule s = {LR_LINEAR, 1.0, 10, 110};
    CHECK_NEAR(lr_at(&s, 0), 0.0, 1e-12);
    CHECK_NEAR(lr_at(&s, 5), 0.5, 1e-12);
    CHECK_NEAR(lr_at(&s, 10), 1.0, 1e-12);
    CHECK_NEAR(lr_at(&s, 60), 0.5, 1e-12);
    CHECK_NEAR(lr_at(&s, 110), 0.0, 1e-12);
    CHECK_NEAR(lr_at(&s, 500), 0.0, 1e-12);
    s.kind = LR_COSINE;
    CHECK_NEAR(lr_at(&s, 10), 1.0, 1e-12);
    CHECK_NEAR(lr_at(&s, 60), 0.5, 1e-12);
    CHECK_NEAR(lr_at(&s, 35), 0.5 * (1 + cos(M_PI * 0.25)), 1e-12);
    CHECK_NEAR(lr_at(&s, 110), 0.0, 1e-12);
    s.kind = LR_CONSTANT;
    CHECK_NEAR(lr_at(&s, 2), 0.2, 1e-12);
    CHECK_NEAR(lr_at(&s, 1000), 1.0, 1e-12);
    LrSchedule nw = {LR_LINEAR, 2.0, 0, 4};
    CHECK_NEAR(lr_at(&nw, 0), 2.0, 1e-12);
    CHECK_NEAR(lr_at(&nw, 3), 0.5, 1e-12);
    LrKind k;
    Err e;
    CHECK_OK(lr_kind_parse("cosine", &k, &e), &e);
    CHECK(k == LR_COSINE);
    CHECK(lr_kind_parse("step", &k, &e) == -1);
    CHECK(strstr(e.msg, "constant, linear or cosine") != NULL);
}

/* The fixture: the model's parameters and its SFT gradients (PyTorch), clipped
 * to global norm 1.0, then one torch.optim.AdamW step (decay on every
 * tensor) -> adamw1.<param>. Parameters in one block, as the trainer will. */
static void check_fixture_adamw(const char *arch) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s", arch);
    char *dir = test_shared_path(rel);
    if (!dir) SKIP("%s not found (set ALOE_SHARED)", rel);
    char *model_path = path_join(dir, "model.safetensors");
    char *exp_path = path_join(dir, "expected.safetensors");
    char *json_path = path_join(dir, "expected.json");
    free(dir);
    Err e;
    SafeTensors *model = st_open(model_path, &e);
    SafeTensors *want = model ? st_open(exp_path, &e) : NULL;
    json_error_t je;
    json_t *root = json_load_file(json_path, 0, &je);
    free(model_path);
    free(exp_path);
    free(json_path);
    CHECK_MSG(model && want, "%s", e.msg);
    CHECK_MSG(root, "expected.json: %s", je.text);
    json_t *adamw = json_object_get(root, "adamw");
    json_t *betas = json_object_get(adamw, "betas");
    AdamWConfig cfg = {json_number_value(json_array_get(betas, 0)), json_number_value(json_array_get(betas, 1)),
                       json_number_value(json_object_get(adamw, "eps")),
                       json_number_value(json_object_get(adamw, "weight_decay"))};
    double lr = json_number_value(json_object_get(adamw, "lr"));
    float max_norm = (float)json_number_value(json_object_get(adamw, "clip_grad_norm"));
    double want_norm = json_number_value(json_object_get(json_object_get(root, "sft"), "grad_norm_before_clip"));
    CHECK(lr > 0 && cfg.weight_decay > 0 && max_norm > 0 && want_norm > 0);

    int n = st_count(model);
    ParamSpan *spans = xcalloc((size_t)n, sizeof *spans);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        spans[i] = (ParamSpan){total, (size_t)tensor_numel(st_tensor(model, i)), 1};
        total += spans[i].numel;
    }
    float *params = xmalloc(total * sizeof(float)), *grads = xmalloc(total * sizeof(float));
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        const TensorView *t = st_tensor(model, i);
        char name[256];
        snprintf(name, sizeof name, "sft.grad.%s", t->name);
        const TensorView *g = st_get(want, name, &e);
        ok = g && tensor_numel(g) == tensor_numel(t) && !tensor_to_f32(t, params + spans[i].offset, &e) &&
             !tensor_to_f32(g, grads + spans[i].offset, &e);
    }
    CHECK_MSG(ok, "%s", e.msg);
    /* The global norm: torch reduces each tensor in float32, then the
     * norms; the float32 sum of K squares carries a relative error of about
     * u·sqrt(K/6) (the rounding model of tests/model/logit_budget.h), so
     * the norm half that, for the largest tensor; 6 standard deviations. */
    size_t kmax = 0;
    for (int i = 0; i < n; i++) kmax = spans[i].numel > kmax ? spans[i].numel : kmax;
    const double u = 0x1p-24, eps_n = 6 * u * sqrt((double)kmax / 6) / 2 + 2 * u;
    float norm = grad_clip_global_norm(grads, total, max_norm);
    printf("  %s: grad norm %.9g vs %.9g (%.2g relative; bound %.2g)\n", arch, norm, want_norm,
           fabs(norm - want_norm) / want_norm, eps_n);
    CHECK_NEAR(norm, want_norm, eps_n * want_norm);
    AdamW o;
    CHECK_OK(adamw_init(&o, &cfg, total, &e), &e);
    adamw_step(&o, params, grads, spans, n, lr);
    /* Both sides run the same float32 formula on the same gradients, scaled
     * by clipping factors that differ by the norms' difference (<= eps_n
     * relative). Adam's first step is lr·f(c·g), f(x) = x/(|x|+eps), and
     * |d f(cx)/dc · c| = |x|·eps/(|x|+eps)^2 <= 1/4: the factors move a
     * parameter by <= lr·eps_n/4. Each side's rounding: the decay product
     * and subtraction (<= u·(|p0| + |p1|) <= u·(2|p1| + lr)), f and the step
     * (<= 8u·lr, as in tests/train/test_trainer.c's step_err). */
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < n; i++) {
        const TensorView *t = st_tensor(model, i);
        char name[256];
        snprintf(name, sizeof name, "adamw1.%s", t->name);
        const TensorView *w = st_get(want, name, &e);
        CHECK_MSG(w, "%s", e.msg);
        float *wv = tensor_to_f32_alloc(w, &e);
        CHECK_MSG(wv, "%s", e.msg);
        for (size_t j = 0; j < spans[i].numel; j++) {
            double got = params[spans[i].offset + j], exp = wv[j];
            double bound = lr * eps_n / 4 + 2 * (2 * u * fabs(exp) + 9 * u * lr);
            double r = fabs(got - exp) / bound;
            if (r > worst) worst = r, worst_name = t->name;
        }
        free(wv);
    }
    printf("  %s: worst parameter %.3g of its bound (%s)\n", arch, worst, worst_name);
    CHECK_MSG(worst <= 1, "%s: a parameter is %.3g times its bound, in %s", arch, worst, worst_name);
    adamw_free(&o);
    free(params);
    free(grads);
    free(spans);
    json_decref(root);
    st_close(want);
    st_close(model);
}

static void test_fixture_adamw_llama3(void) { check_fixture_adamw("llama3"); }
static void test_fixture_adamw_qwen2(void) { check_fixture_adamw("qwen2"); }
static void test_fixture_adamw_mistral(void) { check_fixture_adamw("mistral"); }
static void test_fixture_adamw_qwen3(void) { check_fixture_adamw("qwen3"); }

int main(void) {
    RUN(test_first_step_by_hand);
    RUN(test_matches_double_reference_over_steps);
    RUN(test_decay_flag_and_frozen_elements);
    RUN(test_bad_config_is_an_error);
    RUN(test_hf_decay_rule);
    RUN(test_clip_returns_norm_before_clipping);
    RUN(test_schedules);
    RUN(test_threaded_equals_single);
    RUN(test_fixture_adamw_llama3);
    RUN(test_fixture_adamw_qwen2);
    RUN(test_fixture_adamw_mistral);
    RUN(test_fixture_adamw_qwen3);
    return test_summary();
}
