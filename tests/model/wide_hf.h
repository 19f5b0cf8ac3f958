/* wide_hf: a Hugging Face Qwen2 directory whose rows are wide enough for
 * the K-quants (ggml K-quantises only rows that are whole super-blocks of
 * 256 values, and the shared fixture models are 64-96 wide). It is
 * tiny-qwen2 (tokenizer, chat template, RoPE, norms eps, tied embeddings,
 * vocab 1027) with hidden 256, 4 heads of 64, 2 KV heads, ffn F and L
 * layers, and seeded weights.
 *
 * The weights are made with integer arithmetic and exact float steps only
 * (a sum of four uniform 24-bit fractions, scaled), so the same seed gives
 * the same bits on every machine and libm: tests/data/gguf-llamacpp/ holds
 * files quantised by llama.cpp from this model, and the tests compare them
 * with the model rebuilt here.
 *
 * Header-only; needs the shared fixtures (tiny-qwen2's tokenizer files). */
#ifndef ALOE_TESTS_WIDE_HF_H
#define ALOE_TESTS_WIDE_HF_H

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "test.h"

enum { WIDE_HIDDEN = 256, WIDE_HEADS = 4, WIDE_KV_HEADS = 2, WIDE_HEAD_DIM = 64, WIDE_VOCAB = 1027 };

typedef struct WideSpec {
    int n_layers, ffn;
    uint64_t seed;
} WideSpec;

/* One tensor of the model: its Hugging Face and GGUF names and data. */
typedef struct WideTensorHF {
    char hf[64], gguf[48];
    int ndim;
    int64_t rows, cols; /* cols 0 for vectors */
    float *data;
} WideTensorHF;

typedef struct WideHF {
    WideTensorHF t[64];
    int n;
} WideHF;

/* splitmix64: a stateless, exactly specified stream */
static inline uint64_t wide_mix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A bell-shaped value in (-2, 2) with variance 1/3: four uniform 24-bit
 * fractions in [-0.5, 0.5), each exact in a float, summed in a fixed order. */
static inline float wide_value(uint64_t *s) {
    float v = 0;
    for (int k = 0; k < 4; k++) v += (float)(int32_t)((wide_mix(s) >> 40) - (1u << 23)) * (1.0f / 16777216.0f);
    return v;
}

static inline void wide_add_t(WideHF *w, uint64_t *s, const char *hf, const char *gguf, int64_t rows, int64_t cols,
                              float scale, float mean) {
    WideTensorHF *t = &w->t[w->n++];
    snprintf(t->hf, sizeof t->hf, "%s", hf);
    snprintf(t->gguf, sizeof t->gguf, "%s", gguf);
    t->ndim = cols ? 2 : 1;
    t->rows = rows, t->cols = cols;
    int64_t n = rows * (cols ? cols : 1);
    t->data = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) t->data[i] = mean + scale * wide_value(s);
}

/* Builds the weights (scales as an initializer_range of ~0.1 gives, std of
 * a wide_value being 0.577). */
static inline void wide_hf_build(WideHF *w, const WideSpec *sp) {
    memset(w, 0, sizeof *w);
    uint64_t s = sp->seed;
    const int D = WIDE_HIDDEN, KV = WIDE_KV_HEADS * WIDE_HEAD_DIM, F = sp->ffn;
    wide_add_t(w, &s, "model.embed_tokens.weight", "token_embd.weight", WIDE_VOCAB, D, 0.17f, 0);
    for (int l = 0; l < sp->n_layers; l++) {
        char hf[64], gg[48];
#define WADD(h, g, rows, cols, scale, mean)                                                   \
    (snprintf(hf, sizeof hf, "model.layers.%d.%s", l, h), snprintf(gg, sizeof gg, "blk.%d.%s", l, g), \
     wide_add_t(w, &s, hf, gg, rows, cols, scale, mean))
        WADD("input_layernorm.weight", "attn_norm.weight", D, 0, 0.17f, 1);
        WADD("self_attn.q_proj.weight", "attn_q.weight", D, D, 0.1f, 0);
        WADD("self_attn.q_proj.bias", "attn_q.bias", D, 0, 0.09f, 0);
        WADD("self_attn.k_proj.weight", "attn_k.weight", KV, D, 0.1f, 0);
        WADD("self_attn.k_proj.bias", "attn_k.bias", KV, 0, 0.09f, 0);
        WADD("self_attn.v_proj.weight", "attn_v.weight", KV, D, 0.1f, 0);
        WADD("self_attn.v_proj.bias", "attn_v.bias", KV, 0, 0.09f, 0);
        WADD("self_attn.o_proj.weight", "attn_output.weight", D, D, 0.1f, 0);
        WADD("post_attention_layernorm.weight", "ffn_norm.weight", D, 0, 0.17f, 1);
        WADD("mlp.gate_proj.weight", "ffn_gate.weight", F, D, 0.1f, 0);
        WADD("mlp.up_proj.weight", "ffn_up.weight", F, D, 0.1f, 0);
        WADD("mlp.down_proj.weight", "ffn_down.weight", D, F, 0.07f, 0);
#undef WADD
    }
    wide_add_t(w, &s, "model.norm.weight", "output_norm.weight", D, 0, 0.17f, 1);
}

static inline void wide_hf_free(WideHF *w) {
    for (int i = 0; i < w->n; i++) free(w->t[i].data);
    w->n = 0;
}

static inline const WideTensorHF *wide_hf_find_gguf(const WideHF *w, const char *gguf_name) {
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].gguf, gguf_name)) return &w->t[i];
    return NULL;
}

static inline int wide_copy(const char *from_dir, const char *to_dir, const char *name, Err *e) {
    char *a = path_join(from_dir, name), *b = path_join(to_dir, name), *txt = NULL;
    size_t n;
    int rc = file_read_all(a, &txt, &n, e) || file_write_atomic(b, txt, n, e) ? -1 : 0;
    free(txt), free(a), free(b);
    return rc;
}

/* Starts a qwen2-shaped Hugging Face directory in dir (created):
 * tiny-qwen2's tokenizer files and its config.json with this shape, every
 * layer full attention; tied < 0 keeps the config's tie_word_embeddings,
 * vocab > 0 is the vocab_size the config must have. 0; 1 when the shared
 * fixtures are absent; -1 with e set. */
static inline int wide_dir_start(const char *dir, int hidden, int ffn, int n_layers, int heads, int kv_heads,
                                 int tied, int vocab, Err *e) {
    char *src = test_shared_path("fixtures/models/tiny-qwen2");
    if (!src) return 1;
    int rc = file_mkdirs(dir, e);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                        "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files && !rc; i++) rc = wide_copy(src, dir, files[i], e);
    char *cfg_path = path_join(src, "config.json"), *out_cfg = path_join(dir, "config.json");
    json_t *cfg = rc ? NULL : json_load_file(cfg_path, 0, NULL);
    if (!rc && !cfg) rc = err_set(e, ERR_PARSE, "%s: cannot read", cfg_path);
    if (!rc) {
        json_object_set_new(cfg, "hidden_size", json_integer(hidden));
        json_object_set_new(cfg, "intermediate_size", json_integer(ffn));
        json_object_set_new(cfg, "num_hidden_layers", json_integer(n_layers));
        json_object_set_new(cfg, "num_attention_heads", json_integer(heads));
        json_object_set_new(cfg, "num_key_value_heads", json_integer(kv_heads));
        if (tied >= 0) json_object_set_new(cfg, "tie_word_embeddings", json_boolean(tied));
        json_t *types = json_array();
        for (int l = 0; l < n_layers; l++) json_array_append_new(types, json_string("full_attention"));
        json_object_set_new(cfg, "layer_types", types);
        if (vocab > 0 && json_integer_value(json_object_get(cfg, "vocab_size")) != vocab)
            rc = err_set(e, ERR_PARSE, "%s: vocab_size is not %d", cfg_path, vocab);
        else if (json_dump_file(cfg, out_cfg, JSON_INDENT(2)))
            rc = err_set(e, ERR_IO, "%s: cannot write", out_cfg);
    }
    json_decref(cfg);
    free(cfg_path), free(out_cfg), free(src);
    return rc ? -1 : 0;
}

/* Writes the model into dir (created) as a Hugging Face directory. Returns
 * 0; 1 when the shared fixtures are absent; -1 with e set on failure. */
static inline int wide_hf_write(const WideHF *w, const WideSpec *sp, const char *dir, Err *e) {
    int rc = wide_dir_start(dir, WIDE_HIDDEN, sp->ffn, sp->n_layers, WIDE_HEADS, WIDE_KV_HEADS, -1, WIDE_VOCAB, e);
    if (rc) return rc;
    TensorView *tv = xcalloc((size_t)w->n, sizeof *tv);
    for (int i = 0; i < w->n; i++) {
        const WideTensorHF *t = &w->t[i];
        tv[i] = (TensorView){.name = t->hf, .dtype = DT_F32, .ndim = t->ndim, .data = t->data};
        tv[i].shape[0] = t->rows;
        tv[i].shape[1] = t->cols ? t->cols : 1;
        tv[i].shape[2] = tv[i].shape[3] = 1;
        tv[i].nbytes = (size_t)(t->rows * (t->cols ? t->cols : 1)) * sizeof(float);
    }
    const char *meta[] = {"format", "pt", NULL};
    char *st = path_join(dir, "model.safetensors");
    rc = st_write(st, tv, w->n, meta, e);
    free(st), free(tv);
    return rc ? -1 : 0;
}

#endif
