/* LoRA: config parsing, the adapter's backward by finite differences, and
 * the fixtures' peft adapters: logits, SFT loss and every adapter gradient
 * against PyTorch/peft, base frozen. Tolerances as in test_decoder_train.c. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "test.h"
#include "train/decoder_train.h"
#include "train/lora.h"
#include "train/loss.h"

static char *write_config(const char *json) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "adapter_config.json");
    Err e;
    file_write_atomic(p, json, strlen(json), &e);
    free(p);
    return dir;
}

static void test_targets_parse(void) {
    unsigned t;
    Err e;
    CHECK_OK(lora_targets_parse("q,v", &t, &e), &e);
    CHECK(t == ((1u << LORA_Q) | (1u << LORA_V)));
    CHECK_OK(lora_targets_parse("gate_proj,down", &t, &e), &e);
    CHECK(t == ((1u << LORA_GATE) | (1u << LORA_DOWN)));
    CHECK_OK(lora_targets_parse("all", &t, &e), &e);
    CHECK(t == 0x7f);
    CHECK(lora_targets_parse("q,lm_head", &t, &e) == -1);
    CHECK_MSG(strstr(e.msg, "unknown module \"lm_head\"") != NULL, "%s", e.msg);
}

static void test_config_load(void) {
    char *dir = write_config("{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"lora_dropout\": 0.05,"
                             " \"target_modules\": [\"q_proj\", \"v_proj\"], \"bias\": \"none\", \"use_rslora\": true,"
                             " \"rank_pattern\": {}, \"modules_to_save\": null}");
    LoraConfig c;
    Err e;
    CHECK_OK(lora_config_load(dir, &c, &e), &e);
    CHECK_EQ_INT(c.r, 8);
    CHECK_NEAR(c.alpha, 16, 0);
    CHECK_NEAR(c.dropout, 0.05, 1e-12);
    CHECK(c.targets == ((1u << LORA_Q) | (1u << LORA_V)));
    CHECK_NEAR(lora_scale(&c), 16 / sqrt(8.0), 1e-6);
    CHECK(lora_config_check(&c, &e) == -1 && strstr(e.msg, "dropout"));
    free(dir);
    const char *bad[][2] = {
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"use_dora\": true}", "use_dora is true"},
        {"{\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "r: expected a positive integer"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \".*proj\"}", "regular expression"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"embed_tokens\"]}", "target_modules[0]: \"embed_tokens\""},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"bias\": \"all\"}", "bias: only"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"rank_pattern\": {\"q\": 2}}", "rank_pattern is set"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dir = write_config(bad[i][0]);
        int rc = lora_config_load(dir, &c, &e);
        free(dir);
        CHECK_MSG(rc == -1 && strstr(e.msg, bad[i][1]), "case %zu: %s", i, rc ? e.msg : "no error");
    }
}

/* L = Σ r·y for y = x·Wᵀ-free adapter part: scale·(x·Aᵀ)·Bᵀ. */
enum { T = 5, IN = 6, OUT = 7, R = 3 };

typedef struct Ctx {
    float x[T * IN], A[R * IN], B[OUT * R], r[T * OUT], y[T * OUT], u[T * R];
} Ctx;

static double loss(Ctx *c) {
    memset(c->y, 0, sizeof c->y);
    lora_forward(c->y, c->u, c->x, c->A, c->B, T, IN, OUT, R, 1.5f);
    double s = 0;
    for (int i = 0; i < T * OUT; i++) s += (double)c->r[i] * c->y[i];
    return s;
}

static int fd_ok(Ctx *c, float *x, const float *g, int n, const char *what) {
    double gmax = 0;
    for (int i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + 1e-2f;
        double fp = loss(c);
        x[i] = keep - 1e-2f;
        double fm = loss(c);
        x[i] = keep;
        double num = (fp - fm) / 2e-2;
        if (fabs(num - g[i]) > 2e-3 * gmax + 1e-6) {
            test_fail(__FILE__, __LINE__, "%s[%d]: %.7g vs numeric %.7g", what, i, g[i], num);
            return 0;
        }
    }
    return 1;
}

static void test_adapter_backward_matches_finite_differences(void) {
    Ctx c;
    Rng rng;
    rng_seed(&rng, 3);
    for (int i = 0; i < T * IN; i++) c.x[i] = rng_normal(&rng);
    for (int i = 0; i < R * IN; i++) c.A[i] = rng_normal(&rng);
    for (int i = 0; i < OUT * R; i++) c.B[i] = rng_normal(&rng);
    for (int i = 0; i < T * OUT; i++) c.r[i] = rng_normal(&rng);
    loss(&c);
    float dx[T * IN] = {0}, dA[R * IN] = {0}, dB[OUT * R] = {0}, du[T * R];
    lora_backward(dx, dA, dB, du, c.r, c.x, c.u, c.A, c.B, T, IN, OUT, R, 1.5f);
    CHECK(fd_ok(&c, c.x, dx, T * IN, "dx"));
    CHECK(fd_ok(&c, c.A, dA, R * IN, "dA"));
    CHECK(fd_ok(&c, c.B, dB, OUT * R, "dB"));
}

static void test_fresh_adapter_starts_at_the_base_model(void) {
    /* B = 0: the adapted model's logits equal the base model's. */
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    ModelConfig cfg;
    TrainDecoder m;
    Err e;
    int rc = hf_config_load(dir, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, dir, &e);
    free(dir);
    CHECK_MSG(!rc, "%s", e.msg);
    int32_t ids[6] = {1, 5, 9, 200, 7, 3};
    const int V = cfg.vocab_size;
    float *base = xmalloc(6 * V * sizeof(float)), *ad = xmalloc(6 * V * sizeof(float));
    CHECK_OK(td_forward(&m, NULL, ids, 6, base, &e), &e);
    LoraConfig lc = {4, 8, 0, 0x7f, 0};
    CHECK_OK(td_lora_attach(&m, &lc, &e), &e);
    td_lora_init(&m, 42);
    CHECK_OK(td_forward(&m, NULL, ids, 6, ad, &e), &e);
    CHECK(memcmp(base, ad, 6 * V * sizeof(float)) == 0);
    CHECK(m.lora_params[0] != 0); /* A was initialised */
    CHECK(td_lora_attach(&m, &lc, &e) == -1);
    free(base);
    free(ad);
    td_free(&m);
}

/* ---- the fixtures ---- */

static int32_t *json_ids(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    int32_t *ids = xmalloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

static double scaled_err(const float *a, const float *b, long n) {
    double d = 0, s = 0;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? d / s : d;
}

/* "...lora_A.weight" -> "lora.grad....lora_A.default.weight" (PyTorch's name). */
static void grad_name(const char *file_name, char *out, size_t n) {
    size_t len = strlen(file_name) - strlen("weight");
    snprintf(out, n, "lora.grad.%.*sdefault.weight", (int)len, file_name);
}

static int check_arch(const char *arch, TrainDecoder *m, ThreadPool *tp, json_t *root, SafeTensors *want, Err *e) {
    const int V = m->cfg.vocab_size;
    /* Logits of the forward batch. */
    json_t *rows = json_object_get(json_object_get(root, "forward"), "input_ids");
    const TensorView *lv = st_get(want, "lora.forward.logits", e);
    float *wl = lv ? tensor_to_f32_alloc(lv, e) : NULL;
    if (!wl) return -1;
    int rc = 0;
    for (size_t r = 0; r < json_array_size(rows) && !rc; r++) {
        int T;
        int32_t *ids = json_ids(json_array_get(rows, r), &T);
        float *logits = xmalloc((size_t)T * V * sizeof(float));
        rc = td_forward(m, tp, ids, T, logits, e);
        double err = rc ? 0 : scaled_err(logits, wl + r * (size_t)T * V, (long)T * V);
        if (err > 1e-5) rc = err_set(e, ERR_INTERNAL, "%s row %zu: LoRA logits off by %.3g of max", arch, r, err);
        free(ids);
        free(logits);
    }
    free(wl);
    if (rc) return -1;
    /* SFT loss and adapter gradients. */
    json_t *sft = json_object_get(root, "sft");
    int T, n_prompt = (int)json_integer_value(json_object_get(sft, "n_prompt"));
    int32_t *ids = json_ids(json_object_get(sft, "input_ids"), &T);
    uint8_t *target = xmalloc((size_t)T);
    for (int t = 0; t < T; t++) target[t] = t >= n_prompt;
    int32_t *labels = xmalloc((size_t)T * sizeof *labels);
    loss_shift_labels(ids, target, T, labels);
    float *logits = xmalloc((size_t)T * V * sizeof(float));
    rc = td_forward(m, tp, ids, T, logits, e);
    if (!rc) {
        int n;
        float loss = xent_forward(logits, labels, T, V, &n);
        double want_loss = json_number_value(json_object_get(json_object_get(root, "lora"), "loss"));
        if (fabs(loss - want_loss) > 1e-5 * want_loss)
            rc = err_set(e, ERR_INTERNAL, "%s: LoRA SFT loss %.9g vs %.9g", arch, loss, want_loss);
        xent_backward(logits, logits, labels, T, V, n, 1.0f);
        td_zero_grad(m);
        td_backward(m, tp, logits);
    }
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->n_lora_tensors && !rc; i++) {
        const TdTensor *t = &m->lora_tensors[i];
        char name[200];
        grad_name(t->name, name, sizeof name);
        const TensorView *v = st_get(want, name, e);
        float *w = v ? tensor_to_f32_alloc(v, e) : NULL;
        if (!w) rc = -1;
        else if ((size_t)tensor_numel(v) != t->numel) rc = err_set(e, ERR_INTERNAL, "%s: size differs", name);
        else {
            double err = scaled_err(m->lora_grads + t->offset, w, (long)t->numel);
            if (err > worst) worst = err, worst_name = t->name;
        }
        free(w);
    }
    if (!rc && worst > 1e-5)
        rc = err_set(e, ERR_INTERNAL, "%s: worst adapter gradient error %.3g of max in %s", arch, worst, worst_name);
    if (!rc && m->grads) rc = err_set(e, ERR_INTERNAL, "%s: the frozen base still has a gradient block", arch);
    free(ids);
    free(target);
    free(labels);
    free(logits);
    return rc;
}

static void check_fixture(const char *arch) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s", arch);
    char *dir = test_shared_path(rel);
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    char *lora_dir = xasprintf("%s-lora", dir), *jp = path_join(dir, "expected.json");
    char *sp = path_join(dir, "expected.safetensors");
    Err e;
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    json_error_t je;
    json_t *root = json_load_file(jp, 0, &je);
    SafeTensors *want = st_open(sp, &e);
    int rc = !want || hf_config_load(dir, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, dir, &e) ||
             td_lora_load(&m, lora_dir, &e);
    if (!rc && !root) rc = err_set(&e, ERR_PARSE, "expected.json: %s", je.text);
    if (!rc) {
        ThreadPool *tp = tp_create(2);
        rc = check_arch(arch, &m, tp, root, want, &e);
        tp_free(tp);
    }
    if (root) json_decref(root);
    if (want) st_close(want);
    td_free(&m);
    free(dir);
    free(lora_dir);
    free(jp);
    free(sp);
    CHECK_MSG(!rc, "%s", e.msg);
}

/* Merged weights compute what base + adapter computed (1e-5 of max logit). */
static void test_merge_keeps_logits(void) {
    char *dir = test_shared_path("fixtures/models/tiny-llama3");
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    char *lora = xasprintf("%s-lora", dir);
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    Err e;
    int rc = hf_config_load(dir, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, dir, &e) || td_lora_load(&m, lora, &e);
    free(dir), free(lora);
    CHECK_MSG(!rc, "%s", e.msg);
    int32_t ids[9] = {1, 5, 9, 200, 7, 3, 88, 1000, 4};
    const int V = cfg.vocab_size;
    float *a = xmalloc(9 * V * sizeof(float)), *b = xmalloc(9 * V * sizeof(float));
    rc = td_forward(&m, NULL, ids, 9, a, &e);
    td_lora_merge(&m);
    if (!rc) rc = td_forward(&m, NULL, ids, 9, b, &e);
    double err = rc ? 0 : scaled_err(b, a, 9L * V);
    int off = !m.lora_on && !m.la && m.grads && m.g.layers[0].wq == m.grads + td_find(&m, "model.layers.0.self_attn.q_proj.weight")->offset;
    free(a), free(b);
    td_free(&m);
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_MSG(err <= 1e-5, "merged logits off by %.3g of max", err);
    CHECK(off);
}

static void test_fixture_llama3(void) { check_fixture("llama3"); }
static void test_fixture_qwen2(void) { check_fixture("qwen2"); }
static void test_fixture_mistral(void) { check_fixture("mistral"); }
static void test_fixture_qwen3(void) { check_fixture("qwen3"); }

int main(void) {
    RUN(test_targets_parse);
    RUN(test_config_load);
    RUN(test_adapter_backward_matches_finite_differences);
    RUN(test_fresh_adapter_starts_at_the_base_model);
    RUN(test_merge_keeps_logits);
    RUN(test_fixture_llama3);
    RUN(test_fixture_qwen2);
    RUN(test_fixture_mistral);
    RUN(test_fixture_qwen3);
    return test_summary();
}
