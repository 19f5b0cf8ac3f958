/* GGUF export end to end, as a user runs it: aloe train sft on a tiny
 * model, aloe convert of its output, and aloe logits from the GGUF equal to
 * those from the trained directory; aloe merge --gguf --max-shard-size the
 * same way; bad input (and an adapter of another model) exits with a
 * message naming what is wrong. */
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"

static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my anthropology exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it "
    "go?\", \"rejected\": \"OK.\"}, \"chosen\": \"preferred\"}]}\n";

static const char *IDS = "1024,82,287,435,76,198,56,900,13,1000";

/* Max |a-b| / range(b) of the `logits` tensors of two files; -1 if either
 * is missing or their shapes differ. */
static double logits_err(const char *a_path, const char *b_path) {
    Err e;
    SafeTensors *a = st_open(a_path, &e), *b = a ? st_open(b_path, &e) : NULL;
    const TensorView *x = b ? st_find(a, "logits") : NULL, *y = b ? st_find(b, "logits") : NULL;
    double err = -1;
    if (x && y && x->nbytes == y->nbytes) {
        const float *p = x->data, *q = y->data;
        double lo = q[0], hi = q[0], worst = 0;
        for (size_t i = 0; i < x->nbytes / 4; i++) {
            lo = fmin(lo, q[i]), hi = fmax(hi, q[i]);
            worst = fmax(worst, fabs((double)p[i] - q[i]));
        }
        err = worst / (hi - lo);
    }
    if (b) st_close(b);
    if (a) st_close(a);
    return err;
}

/* aloe logits of model into tmp/name.safetensors; returns the exit status. */
static int logits(const char *aloe, const char *model, const char *tmp, const char *name) {
    return test_system("%s logits --model %s --ids %s --out %s/%s.safetensors -t 1 2>>%s/log", aloe, model, IDS, tmp,
                       name, tmp);
}

/* aloe train sft for 2 steps of tiny-model on tmp/trees.jsonl (written
 * here) into tmp/run, with extra flags; returns the exit status. */
static int train_tiny(const char *aloe, const char *model, const char *tmp, const char *extra) {
    char *data = path_join(tmp, "trees.jsonl");
    Err e;
    int rc = file_write_atomic(data, TREES, strlen(TREES), &e);
    if (!rc)
        rc = test_system("%s train sft --model %s --data %s --out %s/run --steps 2 --lr 1e-2 --threads 1 --quiet %s "
                         "2>>%s/log", aloe, model, data, tmp, extra, tmp);
    free(data);
    return rc;
}

static void test_train_convert_logits(void) {
    char *model = test_shared_path("fixtures/models/tiny-llama3");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe");
    int rc = train_tiny(aloe, model, tmp, "");
    CHECK_MSG(rc == 0, "aloe train sft failed (see %s/log)", tmp);
    rc = test_system("%s convert --model %s/run --out %s/run.gguf --type f32 2>>%s/log", aloe, tmp, tmp, tmp) ||
         test_system("%s convert --model %s/run --out %s/run-f16.gguf 2>>%s/log", aloe, tmp, tmp, tmp);
    CHECK_MSG(rc == 0, "aloe convert failed (see %s/log)", tmp);
    char *run = path_join(tmp, "run"), *g32 = path_join(tmp, "run.gguf"), *g16 = path_join(tmp, "run-f16.gguf");
    rc = logits(aloe, run, tmp, "hf") || logits(aloe, g32, tmp, "g32") || logits(aloe, g16, tmp, "g16") ||
         logits(aloe, model, tmp, "base");
    CHECK_MSG(rc == 0, "aloe logits failed (see %s/log)", tmp);
    char *hf = path_join(tmp, "hf.safetensors"), *l32 = path_join(tmp, "g32.safetensors");
    char *l16 = path_join(tmp, "g16.safetensors"), *lbase = path_join(tmp, "base.safetensors");
    double e32 = logits_err(l32, hf), e16 = logits_err(l16, hf), moved = logits_err(lbase, hf);
    printf("  trained -> GGUF f32 %.2e, f16 %.2e of the range; training moved the logits by %.2e\n", e32, e16, moved);
    CHECK_MSG(e32 >= 0 && e32 <= 1e-4, "f32 GGUF logits off by %g of the range", e32);
    CHECK_MSG(e16 >= 0 && e16 <= 1e-3, "f16 GGUF logits off by %g of the range", e16);
    CHECK_MSG(moved > 1e-3, "training did not change the model (%g), so the test proves nothing", moved);
    free(model), free(tmp), free(aloe), free(run), free(g32), free(g16), free(hf), free(l32), free(l16),
        free(lbase);
}

static void test_merge_gguf_sharded(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2"), *lora = test_shared_path("fixtures/models/tiny-qwen2-lora");
    if (!model || !lora) {
        free(model), free(lora);
        SKIP("fixtures not found (set ALOE_SHARED)");
    }
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe");
    int rc = test_system("%s merge --model %s --adapter %s --out %s/m --max-shard-size 100KB --gguf f32 2>>%s/log", aloe,
                         model, lora, tmp, tmp);
    CHECK_MSG(rc == 0, "aloe merge failed (see %s/log)", tmp);
    char *m = path_join(tmp, "m"), *g = path_join(m, "model.gguf"), *idx = path_join(m, "model.safetensors.index.json");
    char *shard = path_join(m, "model-00001-of-00005.safetensors");
    CHECK(file_exists(idx) && file_exists(shard));
    rc = logits(aloe, m, tmp, "dir") || logits(aloe, g, tmp, "gguf");
    CHECK_MSG(rc == 0, "aloe logits failed (see %s/log)", tmp);
    char *ld = path_join(tmp, "dir.safetensors"), *lg = path_join(tmp, "gguf.safetensors");
    double err = logits_err(lg, ld);
    CHECK_MSG(err >= 0 && err <= 1e-4, "merged GGUF logits off by %g of the range", err);
    free(model), free(lora), free(tmp), free(aloe), free(m), free(g), free(idx), free(shard), free(ld), free(lg);
}

/* aloe train's own --gguf and --max-shard-size: the same run saved as
 * shards plus DIR/model.gguf; a LoRA run refuses them (it saves an adapter). */
static void test_train_gguf_sharded(void) {
    char *model = test_shared_path("fixtures/models/tiny-llama3");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe"), *data = path_join(tmp, "trees.jsonl");
    int rc = train_tiny(aloe, model, tmp, "--gguf f32 --max-shard-size 100KB");
    CHECK_MSG(rc == 0, "aloe train sft --gguf failed (see %s/log)", tmp);
    char *run = path_join(tmp, "run"), *g = path_join(run, "model.gguf");
    char *idx = path_join(run, "model.safetensors.index.json"), *single = path_join(run, "model.safetensors");
    CHECK(file_exists(g) && file_exists(idx) && !file_exists(single));
    rc = logits(aloe, run, tmp, "dir") || logits(aloe, g, tmp, "gguf") || logits(aloe, model, tmp, "base");
    CHECK_MSG(rc == 0, "aloe logits failed (see %s/log)", tmp);
    char *ld = path_join(tmp, "dir.safetensors"), *lg = path_join(tmp, "gguf.safetensors");
    char *lb = path_join(tmp, "base.safetensors");
    double err = logits_err(lg, ld), moved = logits_err(lb, ld);
    CHECK_MSG(err >= 0 && err <= 1e-4, "trained GGUF logits off by %g of the range", err);
    CHECK_MSG(moved > 1e-3, "training did not change the model (%g)", moved);
    rc = test_system("%s train sft --model %s --data %s --out %s/lora --steps 1 --lora-r 4 --gguf f16 --quiet "
                     "2>%s/lora.err", aloe, model, data, tmp, tmp);
    CHECK_EQ_INT(rc, 2);
    char *lerr = path_join(tmp, "lora.err"), *msg = NULL;
    size_t n;
    Err e;
    CHECK_OK(file_read_all(lerr, &msg, &n, &e), &e);
    CHECK_MSG(msg && strstr(msg, "apply to full fine-tuning"), "%s", msg ? msg : "");
    free(msg), free(lerr);
    free(model), free(tmp), free(aloe), free(data), free(run), free(g), free(idx), free(single), free(ld), free(lg),
        free(lb);
}

/* Runs cmd, returns its exit status and its stderr in *err (caller frees). */
static int run_err(char **err, const char *cmd) {
    char *tmp = test_tmpdir(), *log = path_join(tmp, "err");
    int rc = test_system("%s 2>%s", cmd, log);
    size_t n;
    Err e;
    if (file_read_all(log, err, &n, &e)) *err = xstrdup("");
    free(tmp), free(log);
    return rc;
}

static void test_bad_input(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2"), *bert = test_shared_path("fixtures/models/tiny-bert-st");
    if (!model || !bert) {
        free(model), free(bert);
        SKIP("fixtures not found (set ALOE_SHARED)");
    }
    char *aloe = test_build_path("aloe"), *tmp = test_tmpdir(), *cmd, *err;
    cmd = xasprintf("%s convert --model %s --out %s/x.gguf --type iq3_s", aloe, model, tmp);
    int rc = run_err(&err, cmd);
    CHECK_MSG(rc == 2 && strstr(err, "--type: GGUF type \"iq3_s\": expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k or iq4_xs"), "%d %s", rc, err);
    free(cmd), free(err);
    cmd = xasprintf("%s convert --model %s/none --out %s/x.gguf", aloe, tmp, tmp);
    rc = run_err(&err, cmd);
    CHECK_MSG(rc == 1 && strstr(err, "none: not a Hugging Face model directory"), "%d %s", rc, err);
    free(cmd), free(err);
    cmd = xasprintf("%s convert --model %s --out %s/x.gguf", aloe, bert, tmp);
    rc = run_err(&err, cmd);
    CHECK_MSG(rc != 0 && strstr(err, "BertModel: GGUF export handles the decoder models"), "%d %s", rc, err);
    free(cmd), free(err);
    cmd = xasprintf("%s convert --model %s --out %s/missing/x.gguf", aloe, model, tmp);
    rc = run_err(&err, cmd);
    CHECK_MSG(rc == 1 && strstr(err, "missing/x.gguf"), "%d %s", rc, err);
    free(cmd), free(err);
    free(model), free(bert), free(aloe), free(tmp);
}

/* aloe merge with an adapter of another base model names the adapter file,
 * the base model it records and the tensor that does not fit. */
static void test_merge_wrong_adapter(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2"), *lora = test_shared_path("fixtures/models/tiny-llama3-lora");
    if (!model || !lora) {
        free(model), free(lora);
        SKIP("fixtures not found (set ALOE_SHARED)");
    }
    char *aloe = test_build_path("aloe"), *tmp = test_tmpdir(), *err;
    char *cmd = xasprintf("%s merge --model %s --adapter %s --out %s/m", aloe, model, lora, tmp);
    int rc = run_err(&err, cmd);
    CHECK_MSG(rc == 2 && strstr(err, "tiny-llama3-lora/adapter_model.safetensors: the adapter was made for base model "
                                     "\"../tiny-llama3\"") &&
                  strstr(err, "not for ") && strstr(err, "tiny-qwen2: tensor base_model.model.model.layers.0.") &&
                  strstr(err, "expected ["),
              "%d %s", rc, err);
    free(cmd), free(err), free(model), free(lora), free(aloe), free(tmp);
}

/* Byte equality of two files. */
static int same_bytes(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    Err e;
    int same = !file_read_all(a, &x, &nx, &e) && !file_read_all(b, &y, &ny, &e) && nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

/* The explicit model specs on the commands that read weights: local:SPEC is
 * the model SPEC names (train, logits), openai:NAME is refused with a reason
 * (an endpoint's model has no weights here) instead of "no such file". */
static void test_explicit_model_specs(void) {
    NEED_SHARED(model, "fixtures/models/tiny-llama3");
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe");
    char *local = xasprintf("local:%s", model);
    CHECK_MSG(train_tiny(aloe, local, tmp, "") == 0, "aloe train sft --model local:DIR failed (see %s/log)", tmp);
    char *run = path_join(tmp, "run"), *local_run = xasprintf("local:%s", run);
    CHECK_MSG(logits(aloe, run, tmp, "plain") == 0 && logits(aloe, local_run, tmp, "explicit") == 0,
              "aloe logits failed (see %s/log)", tmp);
    char *a = path_join(tmp, "plain.safetensors"), *b = path_join(tmp, "explicit.safetensors");
    CHECK_MSG(same_bytes(a, b), "logits of local:%s differ from those of %s", run, run);
    int rc = test_system("%s logits --model openai:gpt-4o --ids 1,2 --out %s/x.safetensors >%s/openai.log 2>&1", aloe,
                         tmp, tmp);
    CHECK_EQ_INT(rc, 2); /* a bad value for --model: usage */
    rc = test_system("%s train sft --model openai:gpt-4o --data %s/trees.jsonl --out %s/r2 --quiet >>%s/openai.log 2>&1",
                     aloe, tmp, tmp, tmp);
    CHECK_EQ_INT(rc, 2); /* a bad value for --model: usage */
    char *lp = path_join(tmp, "openai.log"), *log = test_read_text(lp);
    CHECK_MSG(log && strstr(log, "openai:gpt-4o: a model served by an endpoint") &&
                  strstr(strstr(log, "served by an endpoint") + 1, "openai:gpt-4o: a model served by an endpoint"),
              "expected the endpoint-model error twice, got: %s", log ? log : "(no log)");
    free(log), free(lp), free(a), free(b), free(local_run), free(run), free(local), free(aloe), free(tmp), free(model);
}

int main(void) {
    RUN(test_train_convert_logits);
    RUN(test_train_gguf_sharded);
    RUN(test_merge_gguf_sharded);
    RUN(test_bad_input);
    RUN(test_merge_wrong_adapter);
    RUN(test_explicit_model_specs);
    return test_summary();
}
