/* aloe logits: the logits of a token sequence, one forward pass, written to
 * a safetensors file as `logits` (float32 [n_ids, vocab]). */
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/safetensors.h"
#include "infer/idlist.h"
#include "model/open.h"
#include "model/decoder.h"

int cmd_logits(int argc, char **argv) {
    const char *model = NULL, *ids_arg = NULL, *out = NULL;
    int threads = 0;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M", "a Hugging Face model directory, a .gguf file or hf://ORG/REPO", 1, 0},
        {"--ids", NULL, ARG_STR, &ids_arg, "1,2,3", "the token ids (comma-separated or a JSON array)", 1, 0},
        {"--out", "-o", ARG_STR, &out, "F.safetensors", "where to write the tensor `logits`", 1, 0},
        {"--threads", "-t", ARG_INT, &threads, "N", "threads (0: one per CPU)", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {"logits", "--model M --ids 1,2,3 --out F.safetensors",
                            "Runs the ids through the model in one forward pass and writes their logits, float32 "
                            "[n_ids, vocab], as the tensor `logits` of a safetensors file.",
                            "aloe logits --model ../shared/fixtures/models/tiny-qwen2 --ids 1025,82,287 --out l.safetensors",
                            0, 0};
    Err e;
    err_clear(&e);
    int rc = args_parse_flags(&cmd, specs, argc, argv, &e);
    if (rc) return rc > 0 ? 0 : cli_fail(&e);
    int32_t *ids;
    int n;
    if (idlist_parse(ids_arg, &ids, &n, &e)) return cli_fail(&e);
    ModelOpenOptions mo = {.weights = 1, .n_threads = threads};
    ModelBundle mb;
    Model *m = model_open(model, &mo, &mb, &e) ? NULL : mb.model;
    free(mb.path); /* the model is ours now */
    if (!m) {
        free(ids);
        return cli_fail(&e);
    }
    int V = m->cfg.vocab_size;
    float *logits = xmalloc((size_t)n * V * sizeof(float));
    KvCache kv;
    rc = kv_cache_init(&kv, m, n, &e);
    if (!rc) rc = model_forward(m, &kv, ids, n, 0, logits, 1, &e);
    if (!rc) {
        TensorView t = {.name = "logits", .dtype = DT_F32, .ndim = 2, .shape = {n, V, 1, 1}, .data = logits,
                        .nbytes = (size_t)n * V * sizeof(float)};
        rc = st_write(out, &t, 1, NULL, &e);
    }
    kv_cache_free(&kv);
    free(logits);
    free(ids);
    model_free(m);
    return rc ? cli_fail(&e) : 0;
}
