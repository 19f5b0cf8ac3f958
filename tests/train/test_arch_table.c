/* The architecture table (formats/arch.h) is the single source of the
 * model's tensors: the training decoder names its tensors by it, a saved
 * checkpoint (safetensors and GGUF, written by model/convert.c) holds
 * exactly those names, and inference loads both back to the logits
 * training computes. And a bias is accepted alike by inference and
 * training: Llama's attention_bias (o_proj bias included) runs in both;
 * Qwen2 has q/k/v biases and no o_proj bias in both. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "model/decoder.h"
#include "test.h"
#include "train/checkpoint.h"

enum { VOCAB = 1029 }; /* the tiny-llama3 fixture's tokenizer */

/* A base directory: the fixture's tokenizer and a config.json of arch. */
static char *make_base(const char *tmp, const char *arch, Err *e) {
    char *fix = test_shared_path("fixtures/models/tiny-llama3");
    if (!fix) return NULL;
    char *base = path_join(tmp, arch);
    int rc = file_mkdirs(base, e);
    const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2 && !rc; i++) {
        char *src = path_join(fix, files[i]), *dst = path_join(base, files[i]), *text = NULL;
        size_t len;
        rc = file_read_all(src, &text, &len, e) || file_write_atomic(dst, text, len, e);
        free(text), free(src), free(dst);
    }
    char *cfg = xasprintf("{\"architectures\": [\"%s\"], \"hidden_size\": 64, \"intermediate_size\": 96, "
                          "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                          "\"vocab_size\": %d, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, "
                          "\"rope_theta\": 10000.0, \"attention_bias\": true, \"torch_dtype\": \"float32\"}",
                          arch, VOCAB);
    char *cp = path_join(base, "config.json");
    if (!rc) rc = file_write_atomic(cp, cfg, strlen(cfg), e);
    free(cp), free(cfg), free(fix);
    if (rc) {
        free(base);
        return NULL;
    }
    return base;
}

/* The kind and layer whose HF name is name, or -1. */
static int kind_of(const char *name, int n_layers, int *layer) {
    char buf[128];
    for (int k = 0; k < PARAM_COUNT; k++)
        for (int l = 0; l < n_layers; l++) {
            arch_hf_name((ParamKind)k, l, buf, sizeof buf);
            if (!strcmp(buf, name)) {
                *layer = l;
                return k;
            }
        }
    return -1;
}

/* Largest |inference - training| logit over a prompt, relative to the
 * logits' range; -1 on an error. */
static double logits_gap(TrainDecoder *td, const char *path, Err *e) {
    Model *m = model_load(path, 1, e);
    if (!m) return -1;
    int32_t ids[6] = {1024, 82, 287, 435, 76, 198};
    float *li = xmalloc(6 * VOCAB * sizeof(float)), *lt = xmalloc(6 * VOCAB * sizeof(float));
    KvCache kv;
    ThreadPool *tp = tp_create(1);
    double gap = -1;
    if (!kv_cache_init(&kv, m, 6, e)) {
        if (!model_forward(m, &kv, ids, 6, 0, li, 1, e) && !td_forward(td, tp, ids, 6, lt, e)) {
            double lo = lt[0], hi = lt[0], worst = 0;
            for (int i = 0; i < 6 * VOCAB; i++) {
                lo = fmin(lo, lt[i]), hi = fmax(hi, lt[i]);
                worst = fmax(worst, fabs(li[i] - lt[i]));
            }
            gap = worst / (hi - lo);
        }
        kv_cache_free(&kv);
    }
    tp_free(tp);
    free(li), free(lt);
    model_free(m);
    return gap;
}

/* Trains nothing: a random model of arch saved (safetensors + f32 GGUF),
 * every name checked against the table, and logits compared. */
static void roundtrip(const char *arch, int want_o_bias) {
    char *tmp = test_tmpdir();
    Err e = {0};
    char *base = make_base(tmp, arch, &e);
    if (!base && !e.msg[0]) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(base, "%s", e.msg);
    ModelConfig c;
    TrainDecoder td;
    CHECK_OK(hf_config_load(base, &c, &e) || td_init(&td, &c, &e), &e);
    td_init_random(&td, 11, 0.05f);
    /* biases are zero after td_init_random: make them count */
    for (int i = 0; i < td.n_tensors; i++)
        if (strstr(td.tensors[i].name, ".bias"))
            for (size_t j = 0; j < td.tensors[i].numel; j++) td.params[td.tensors[i].offset + j] = 0.02f * (float)(j % 7);
    /* training's tensors: each one of the table's, in the table's order */
    int named = 1, has_bo = 0, has_bq = 0, prev = -1;
    for (int i = 0; i < td.n_tensors; i++) {
        int l = 0, k = kind_of(td.tensors[i].name, c.n_layers, &l);
        named &= k >= 0 && arch_has(&td.cfg, (ParamKind)k);
        int order = (arch_tensor((ParamKind)k)->flags & TK_LAYER) ? 1 + l * PARAM_COUNT + k
                    : k == PARAM_EMBED                            ? 0
                                                                  : 1 + c.n_layers * PARAM_COUNT + k;
        named &= order > prev;
        prev = order;
        has_bo |= k == PARAM_BO, has_bq |= k == PARAM_BQ;
    }
    CHECK_MSG(named, "%s: a training tensor is not the table's, or out of its order", arch);
    CHECK_EQ_INT(has_bq, 1);
    CHECK_EQ_INT(has_bo, want_o_bias);
    char *out = path_join(tmp, "saved"), *gp = path_join(out, "model.gguf");
    CkptSaveOpts o = {DT_F32, 0, "f32"};
    CHECK_OK(ckpt_save_model_opts(&td, base, out, &o, &e), &e);
    /* the GGUF: the table's GGUF name of every training tensor, nothing else */
    Gguf *g = gguf_open(gp, &e);
    CHECK_MSG(g, "%s", e.msg);
    int gguf_ok = gguf_n_tensors(g) == td.n_tensors;
    for (int i = 0; i < td.n_tensors && gguf_ok; i++) {
        int l = 0, k = kind_of(td.tensors[i].name, c.n_layers, &l);
        char gname[128];
        arch_gguf_name((ParamKind)k, l, gname, sizeof gname);
        gguf_ok &= gguf_find_tensor(g, gname) != NULL;
    }
    gguf_close(g);
    CHECK_MSG(gguf_ok, "%s: the GGUF's tensors are not the table's names of the trained ones", arch);
    /* inference from both reads what training computes: f32 throughout,
     * the forward passes differ only in summation order (dot products of
     * <= 96 terms, 2 layers): ~1e-6 of the range; 1e-4 leaves room */
    double gap_hf = logits_gap(&td, out, &e);
    CHECK_MSG(gap_hf >= 0, "%s", e.msg);
    CHECK_MSG(gap_hf <= 1e-4, "%s: inference (safetensors) off training by %g of the range", arch, gap_hf);
    double gap_gguf = logits_gap(&td, gp, &e);
    CHECK_MSG(gap_gguf >= 0, "%s", e.msg);
    CHECK_MSG(gap_gguf <= 1e-4, "%s: inference (GGUF) off training by %g of the range", arch, gap_gguf);
    /* and inference holds the same bias kinds */
    Model *m = model_load(out, 1, &e);
    CHECK_MSG(m, "%s", e.msg);
    size_t sizes[PARAM_COUNT];
    model_param_sizes(&m->cfg, sizes);
    CHECK_EQ_INT(sizes[PARAM_BO] != 0, want_o_bias);
    CHECK_EQ_INT(sizes[PARAM_BQ] != 0, 1);
    CHECK_EQ_INT((int)model_param_count(m), (int)td.n_params);
    model_free(m);
    td_free(&td);
    free(out), free(gp), free(base), free(tmp);
}

/* Llama's attention_bias: o_proj has a bias, in training and in inference
 * (inference refused it before the table). */
static void test_llama_o_bias_same_in_both(void) { roundtrip("LlamaForCausalLM", 1); }

/* Qwen2: q/k/v biases and no o_proj bias, whatever attention_bias says,
 * in both (training added an o_proj bias for any attention_bias before). */
static void test_qwen2_no_o_bias_in_both(void) { roundtrip("Qwen2ForCausalLM", 0); }

/* The table's two name columns translate into each other for every kind
 * and layer, and the message lists name the table's architectures. */
static void test_names_translate(void) {
    int ok = 1;
    for (int k = 0; k < PARAM_COUNT; k++)
        for (int l = 0; l < 3; l++) {
            char hf[128], gg[128], back[128];
            arch_hf_name((ParamKind)k, l, hf, sizeof hf);
            arch_gguf_name((ParamKind)k, l, gg, sizeof gg);
            ok &= !gguf_name_from_hf(hf, back, sizeof back) && !strcmp(back, gg);
            ok &= !hf_name_from_gguf(gg, back, sizeof back) && !strcmp(back, hf);
        }
    CHECK(ok);
    /* a layer number is written one way: "01" is no layer's name (it would
     * become blk.1 and collide with layer 1 in a converted file) */
    char out[128];
    CHECK(gguf_name_from_hf("model.layers.01.mlp.up_proj.weight", out, sizeof out) == -1);
    CHECK(hf_name_from_gguf("blk.007.attn_q.weight", out, sizeof out) == -1);
    CHECK(gguf_name_from_hf("model.layers.0.mlp.up_proj.weight", out, sizeof out) == 0 &&
          !strcmp(out, "blk.0.ffn_up.weight"));
    CHECK(gguf_name_from_hf("model.layers.1234567890.mlp.up_proj.weight", out, sizeof out) == -1);
    for (int a = 0; a < ARCH_COUNT; a++) {
        const ArchDesc *d = arch_desc(a);
        CHECK(d && strstr(arch_hf_names(), d->hf));
        if (d && d->gguf_read) CHECK(strstr(arch_gguf_names(), d->gguf_read));
    }
}

int main(void) {
    RUN(test_names_translate);
    RUN(test_llama_o_bias_same_in_both);
    RUN(test_qwen2_no_o_bias_in_both);
    return test_summary();
}
