/* test_gemma3_mm_ckpt: what `aloe train sft` saves from Gemma 3's
 * multimodal checkpoint (tests/data/arch/gemma3-mm, a
 * Gemma3ForConditionalGeneration; tests/data/arch/README.md).
 *
 * Only the text decoder trains, so a full fine-tune is saved as that text
 * model alone, as Gemma3ForCausalLM saves it: config.json flattened from
 * text_config (model_type gemma3_text, no vision_config), tensors model.*
 * — under the multimodal config transformers would build the vision tower
 * with random weights. The run's log says so. A LoRA adapter keeps the
 * base's module names (base_model.model.language_model.model.layers.#...,
 * peft's on that base), so `aloe merge` folds it back into the multimodal
 * base, and the merged model (text-only as well) gives the logits of the
 * base with the adapter applied.
 *
 * Tolerance of the merge: W + s·B·A folded once in float32 against the
 * adapter applied on the fly (x·Wᵀ + s·(x·Aᵀ)·Bᵀ): the same sums in another
 * order, float32 rounding ~1e-6 relative per product over 3 layers; 1e-4
 * of the logits' range, while the adapter itself (2 steps at lr 1e-2) moves
 * them by more than 1e-3 of it (checked). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"
#include "kernels/threads.h"
#include "model/decoder.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/decoder_train.h"

#define MM "tests/data/arch/gemma3-mm"
#define TEXT "tests/data/arch/models/tiny-gemma3"

static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my anthropology exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it "
    "go?\", \"rejected\": \"OK.\"}, \"chosen\": \"preferred\"}]}\n";

enum { T = 10 };
static const int32_t IDS[T] = {1024, 82, 287, 435, 76, 198, 56, 900, 13, 1000};

/* aloe train sft, 2 steps on tmp/trees.jsonl into tmp/OUT; log in tmp/log */
static int train(const char *tmp, const char *out, const char *extra) {
    char *data = path_join(tmp, "trees.jsonl"), *aloe = test_build_path("aloe");
    Err e;
    int rc = file_write_atomic(data, TREES, strlen(TREES), &e);
    if (!rc)
        rc = test_system("%s train sft --model %s --data %s --out %s/%s --steps 2 --lr 1e-2 --threads 1 %s 2>>%s/log",
                         aloe, MM, data, tmp, out, extra, tmp);
    free(data), free(aloe);
    return rc;
}

/* model_load + one forward of IDS: T × vocab logits, or NULL */
static float *infer(const char *dir, Err *e) {
    Model *m = model_load(dir, 1, e);
    if (!m) return NULL;
    float *l = xmalloc((size_t)T * m->cfg.vocab_size * sizeof(float));
    KvCache kv;
    int rc = kv_cache_init(&kv, m, T, e) || model_forward(m, &kv, IDS, T, 0, l, 1, e);
    if (!rc) kv_cache_free(&kv);
    model_free(m);
    if (rc) free(l), l = NULL;
    return l;
}

/* max |a - b| / range(b) */
static double rel(const float *a, const float *b, size_t n) {
    double lo = b[0], hi = b[0], w = 0;
    for (size_t i = 0; i < n; i++) lo = fmin(lo, b[i]), hi = fmax(hi, b[i]), w = fmax(w, fabs((double)a[i] - b[i]));
    return w / (hi - lo);
}

/* dir is Gemma3ForCausalLM: flat config, model.* tensors only */
static void check_text_only(const char *dir) {
    char *cp = path_join(dir, "config.json");
    json_t *c = json_load_file(cp, 0, NULL);
    free(cp);
    CHECK_MSG(c != NULL, "%s/config.json", dir);
    const char *a = json_string_value(json_array_get(json_object_get(c, "architectures"), 0));
    CHECK_MSG(a && !strcmp(a, "Gemma3ForCausalLM"), "%s: architectures %s", dir, a ? a : "(none)");
    const char *t = json_string_value(json_object_get(c, "model_type"));
    CHECK(t && !strcmp(t, "gemma3_text"));
    CHECK(!json_object_get(c, "text_config") && !json_object_get(c, "vision_config"));
    CHECK(json_integer_value(json_object_get(c, "hidden_size")) == 32 && json_object_get(c, "eos_token_id"));
    json_decref(c);
    Err e = {0};
    ModelConfig cfg;
    CHECK_OK(hf_config_load(dir, &cfg, &e), &e);
    CHECK_EQ_INT(cfg.arch, ARCH_GEMMA3);
    SafeTensors *st = st_open(dir, &e), *ref = st_open(TEXT, &e);
    CHECK_OK(!st || !ref, &e);
    CHECK_EQ_INT(st_count(st), st_count(ref));
    for (int i = 0; i < st_count(st); i++)
        CHECK_MSG(st_find(ref, st_tensor(st, i)->name), "%s: tensor %s is not Gemma3ForCausalLM's", dir,
                  st_tensor(st, i)->name);
    st_close(st), st_close(ref);
}

static void test_full_sft_saves_text_model(void) {
    char *tmp = test_tmpdir();
    CHECK_MSG(train(tmp, "run", "") == 0, "aloe train sft failed (see %s/log)", tmp);
    char *run = path_join(tmp, "run"), *log = path_join(tmp, "log"), *text = test_read_text(log);
    CHECK_MSG(strstr(text, "saved as Gemma3ForCausalLM"), "the log does not say what was saved: %s", text);
    check_text_only(run);
    /* it loads (inference and training) and was trained: other logits than the base's */
    Err e = {0};
    float *a = infer(run, &e), *b = a ? infer(MM, &e) : NULL;
    CHECK_OK(!b, &e);
    CHECK(rel(a, b, (size_t)T * 1027) > 1e-3);
    /* a multimodal training decoder reads it back (--resume's checkpoints are such saves) */
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    CHECK_OK(hf_config_load(MM, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, run, &e), &e);
    ThreadPool *tp = tp_create(1);
    float *c = xmalloc((size_t)T * 1027 * sizeof(float));
    CHECK_OK(td_forward(&m, tp, IDS, T, c, &e), &e);
    CHECK(rel(c, a, (size_t)T * 1027) <= 1e-4);
    tp_free(tp), td_free(&m);
    free(a), free(b), free(c), free(run), free(log), free(text), free(tmp);
}

static void test_lora_merges_back(void) {
    char *tmp = test_tmpdir();
    CHECK_MSG(train(tmp, "lora", "--lora-r 4") == 0, "aloe train sft --lora-r 4 failed (see %s/log)", tmp);
    char *ad = path_join(tmp, "lora");
    Err e = {0};
    char *af = path_join(ad, "adapter_model.safetensors");
    SafeTensors *st = st_open(af, &e);
    free(af);
    CHECK_OK(!st, &e);
    static const char PREFIX[] = "base_model.model.language_model.model.layers.";
    int n = st_count(st), named = n > 0;
    for (int i = 0; i < n; i++) named &= !strncmp(st_tensor(st, i)->name, PREFIX, strlen(PREFIX));
    CHECK_MSG(named, "adapter tensor %s: expected base_model.model.language_model.model.layers.*",
              st_tensor(st, 0)->name);
    st_close(st);
    char *aloe = test_build_path("aloe");
    CHECK_MSG(!test_system("%s merge --model %s --adapter %s --out %s/merged 2>>%s/log", aloe, MM, ad, tmp, tmp),
              "aloe merge failed (see %s/log)", tmp);
    char *merged = path_join(tmp, "merged");
    check_text_only(merged);
    /* the base with the adapter applied on the fly */
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    CHECK_OK(hf_config_load(MM, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, MM, &e) ||
                 ckpt_adapter_load(&m, ad, MM, &e),
             &e);
    ThreadPool *tp = tp_create(1);
    float *want = xmalloc((size_t)T * 1027 * sizeof(float)), *got = infer(merged, &e), *base = infer(MM, &e);
    CHECK_OK(!got || !base, &e);
    CHECK_OK(td_forward(&m, tp, IDS, T, want, &e), &e);
    double d = rel(got, want, (size_t)T * 1027);
    CHECK_MSG(d <= 1e-4, "merged vs base + adapter: %.3g of the range", d);
    CHECK(rel(base, want, (size_t)T * 1027) > 1e-3);
    tp_free(tp), td_free(&m);
    free(want), free(got), free(base), free(merged), free(aloe), free(ad), free(tmp);
}

int main(void) {
    RUN(test_full_sft_saves_text_model);
    RUN(test_lora_merges_back);
    return test_summary();
}
