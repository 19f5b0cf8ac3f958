/* aloe merge --gguf and aloe train --gguf take llama.cpp's presets
 * (Q4_K_M, Q5_K_M, ...) as aloe convert --type does: the GGUF written is
 * the preset's mix (general.file_type its llama_ftype, tensors of more
 * than one quantised type where the mix says so) and the engine loads and
 * runs it; an unknown name is refused naming --gguf and the presets.
 * aloe train --help says so, and names Phi-3's fused LoRA modules. */
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "test.h"

static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my anthropology exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it "
    "go?\", \"rejected\": \"OK.\"}, \"chosen\": \"preferred\"}]}\n";

/* general.file_type of path (-1 if unreadable); *n_quant: its matrices
 * that are neither F32, F16 nor BF16. */
static long file_type_of(const char *path, int *n_quant) {
    Err e;
    Gguf *g = gguf_open(path, &e);
    if (!g) return -1;
    uint32_t ft = 0;
    long rc = gguf_get_u32(g, "general.file_type", &ft, &e) ? -1 : (long)ft;
    *n_quant = 0;
    for (int i = 0; gguf_tensor(g, i); i++) {
        int t = gguf_tensor(g, i)->dtype;
        if (t != DT_F32 && t != DT_F16 && t != DT_BF16) (*n_quant)++;
    }
    gguf_close(g);
    return rc;
}

/* aloe logits of model: exits 0 and every logit is finite. */
static int runs(const char *aloe, const char *model, const char *tmp) {
    if (test_system("%s logits --model %s --ids 1,2,3,4 --out %s/l.safetensors -t 1 2>>%s/log", aloe, model, tmp, tmp))
        return 0;
    char *p = path_join(tmp, "l.safetensors");
    Err e;
    SafeTensors *st = st_open(p, &e);
    free(p);
    const TensorView *t = st ? st_find(st, "logits") : NULL;
    int ok = t != NULL;
    for (size_t i = 0; ok && i < t->nbytes / 4; i++) ok = isfinite(((const float *)t->data)[i]);
    if (st) st_close(st);
    return ok;
}

static void test_merge_preset(void) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2"), *lora = test_shared_path("fixtures/models/tiny-qwen2-lora");
    if (!model || !lora) {
        free(model), free(lora);
        SKIP("fixtures not found (set ALOE_SHARED)");
    }
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe");
    int rc = test_system("%s merge --model %s --adapter %s --out %s/m --gguf Q4_K_M 2>>%s/log", aloe, model, lora, tmp,
                         tmp);
    CHECK_MSG(rc == 0, "aloe merge --gguf Q4_K_M failed (see %s/log)", tmp);
    char *g = path_join(tmp, "m/model.gguf");
    int nq = 0;
    long ft = file_type_of(g, &nq);
    CHECK_MSG(ft == 15 && nq > 0, "general.file_type %ld (expected 15, Q4_K_M), %d quantised tensors", ft, nq);
    CHECK_MSG(runs(aloe, g, tmp), "aloe logits of the Q4_K_M file failed (see %s/log)", tmp);
    free(model), free(lora), free(tmp), free(aloe), free(g);
}

static void test_train_preset(void) {
    char *model = test_shared_path("fixtures/models/tiny-llama3");
    if (!model) SKIP("fixtures not found (set ALOE_SHARED)");
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe"), *data = path_join(tmp, "trees.jsonl");
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    int rc = test_system("%s train sft --model %s --data %s --out %s/run --steps 1 --threads 1 --quiet --gguf q5_k_m "
                         "2>>%s/log", aloe, model, data, tmp, tmp);
    CHECK_MSG(rc == 0, "aloe train sft --gguf q5_k_m failed (see %s/log)", tmp);
    char *g = path_join(tmp, "run/model.gguf");
    int nq = 0;
    long ft = file_type_of(g, &nq);
    CHECK_MSG(ft == 17 && nq > 0, "general.file_type %ld (expected 17, Q5_K_M), %d quantised tensors", ft, nq);
    CHECK_MSG(runs(aloe, g, tmp), "aloe logits of the Q5_K_M file failed (see %s/log)", tmp);
    /* a name that is neither a type nor a preset: refused before training */
    rc = test_system("%s train sft --model %s --data %s --out %s/bad --steps 1 --quiet --gguf Q9_K_M 2>%s/bad.err",
                     aloe, model, data, tmp, tmp);
    char *errp = path_join(tmp, "bad.err"), *msg = NULL;
    size_t n;
    CHECK_OK(file_read_all(errp, &msg, &n, &e), &e);
    CHECK_MSG(rc == 2 && msg && strstr(msg, "--gguf") && strstr(msg, "Q4_K_M"),
              "%d %s", rc, msg ? msg : "");
    free(msg), free(errp), free(model), free(tmp), free(aloe), free(data), free(g);
}

/* aloe train --help names the presets and Phi-3's fused LoRA modules. */
static void test_help(void) {
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe"), *out = path_join(tmp, "help"), *msg = NULL;
    int rc = test_system("%s train --help >%s 2>&1", aloe, out);
    size_t n;
    Err e;
    CHECK_OK(file_read_all(out, &msg, &n, &e), &e);
    CHECK_MSG(rc == 0 && strstr(msg, "qkv_proj") && strstr(msg, "gate_up_proj") && strstr(msg, "Q4_K_M"), "%d %s", rc,
              msg);
    free(msg), free(out), free(aloe), free(tmp);
}

int main(void) {
    RUN(test_help);
    RUN(test_merge_preset);
    RUN(test_train_preset);
    return test_summary();
}
