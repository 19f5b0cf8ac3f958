/* test_gemma3_mm_train: the training decoder on Gemma 3's multimodal
 * checkpoint layout (tests/data/arch/gemma3-mm, the text decoder of a
 * Gemma3ForConditionalGeneration; see tests/data/arch/README.md). It reads
 * the config from text_config and the tensors under their nested names
 * through the architecture table, as inference does, so its logits over
 * the gold's first forward row equal those it computes for tiny-gemma3 bit
 * for bit (the same f32 weights through the same code), and the names it
 * would export are the checkpoint's own (language_model.model.*), no
 * vision tensor among them. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/hfdir.h"
#include "kernels/threads.h"
#include "test.h"
#include "train/decoder_train.h"

#define MM "tests/data/arch/gemma3-mm"
#define TEXT "tests/data/arch/models/tiny-gemma3"

static int load(TrainDecoder *m, const char *dir, Err *e) {
    ModelConfig cfg;
    memset(m, 0, sizeof *m);
    return hf_config_load(dir, &cfg, e) || td_init(m, &cfg, e) || td_load(m, dir, e) ? -1 : 0;
}

static void test_train_decoder_loads_mm(void) {
    Err e = {0};
    json_error_t je;
    json_t *j = json_load_file(TEXT "/expected.json", 0, &je);
    CHECK_MSG(j != NULL, "%s", je.text);
    if (!j) return;
    json_t *row = json_array_get(json_object_get(json_object_get(j, "forward"), "input_ids"), 0);
    int T = (int)json_array_size(row);
    int32_t *ids = xmalloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)json_integer_value(json_array_get(row, (size_t)t));
    json_decref(j);
    TrainDecoder a, b;
    CHECK_OK(load(&a, TEXT, &e), &e);
    CHECK_OK(load(&b, MM, &e), &e);
    CHECK_EQ_INT(b.cfg.arch, ARCH_GEMMA3_MM);
    CHECK_EQ_INT(a.n_tensors, b.n_tensors);
    int named = 1;
    for (int i = 0; i < b.n_tensors; i++)
        named &= !strncmp(b.tensors[i].name, "language_model.model.", 21) && !strstr(b.tensors[i].name, "vision");
    CHECK(named);
    ThreadPool *tp = tp_create(2);
    int V = a.cfg.vocab_size;
    float *la = xmalloc((size_t)T * V * sizeof(float)), *lb = xmalloc((size_t)T * V * sizeof(float));
    CHECK_OK(td_forward(&a, tp, ids, T, la, &e) || td_forward(&b, tp, ids, T, lb, &e), &e);
    CHECK(!memcmp(la, lb, (size_t)T * V * sizeof(float)));
    free(la), free(lb), free(ids);
    tp_free(tp);
    td_free(&a), td_free(&b);
}

int main(void) {
    RUN(test_train_decoder_loads_mm);
    return test_summary();
}
