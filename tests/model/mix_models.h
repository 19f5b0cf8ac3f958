/* mix_models: the Qwen2 shapes tests/model/test_convert_mix.c checks
 * llama.cpp's per-tensor quantisation choices on (tests/data/gguf-mix/),
 * written as Hugging Face directories with tiny-qwen2's tokenizer.
 *
 * The choices depend on the shape only (never on the values), so each
 * shape is chosen to reach the rules: layer counts that make the
 * "first/last eighth, every third" and "first sixteenth" layers differ,
 * GQA ratios on both sides of 4, tied and untied heads, rows that are
 * multiples of 256 (real K-quants) and rows that are not (fallbacks), and
 * 80 layers (llama.cpp's "70B" rule). Weights: a seeded bell-shaped
 * stream (wide_hf.h's), small. Needs the shared fixtures. */
#ifndef ALOE_TESTS_MIX_MODELS_H
#define ALOE_TESTS_MIX_MODELS_H

#include "formats/gguf_write.h"
#include "wide_hf.h"

typedef struct MixShape {
    const char *name;
    int n_layers, hidden, heads, kv_heads, ffn, tied;
} MixShape;

static const MixShape MIX_SHAPES[] = {
    /* 16 layers: n/8 = 2, n/16 = 1; GQA 4; q/k/v/o/gate/up rows of 256,
     * ffn_down rows of 96 (fallbacks); the tied embedding is the head */
    {"gqa4-l16", 16, 256, 4, 1, 96, 1},
    /* 9 layers (use_more_bits: 0, 3, 6, 7, 8); GQA 3; rows of 96 except
     * ffn_down's 256; an untied head of 96-wide rows (Q8_0) */
    {"untied-l9", 9, 96, 3, 1, 256, 0},
    /* 80 layers of Qwen2: llama.cpp's "70B" (attn_v Q3_K/Q4_K -> Q5_K,
     * seen through the 64-wide rows' fallbacks); n/8 = 10, n/16 = 5 */
    {"qwen2-l80", 80, 64, 4, 2, 32, 1},
};
#define N_MIX_SHAPES ((int)(sizeof MIX_SHAPES / sizeof *MIX_SHAPES))

static inline const MixShape *mix_shape(const char *name) {
    for (int i = 0; i < N_MIX_SHAPES; i++)
        if (!strcmp(MIX_SHAPES[i].name, name)) return &MIX_SHAPES[i];
    return NULL;
}

static inline void mix_add(TensorView *tv, int *n, uint64_t *s, const char *name, int64_t rows, int64_t cols,
                           float scale, float mean) {
    TensorView *t = &tv[(*n)++];
    int64_t count = rows * (cols ? cols : 1);
    float *d = xmalloc((size_t)count * sizeof(float));
    for (int64_t i = 0; i < count; i++) d[i] = mean + scale * wide_value(s);
    *t = (TensorView){.name = xstrdup(name), .dtype = DT_F32, .ndim = cols ? 2 : 1, .data = d,
                      .nbytes = (size_t)count * sizeof(float)};
    t->shape[0] = rows, t->shape[1] = cols ? cols : 1, t->shape[2] = t->shape[3] = 1;
}

/* Writes shape sp into dir (created). 0; 1 when the shared fixtures are
 * absent; -1 with e set. */
static inline int mix_model_write(const MixShape *sp, const char *dir, Err *e) {
    int rc = wide_dir_start(dir, sp->hidden, sp->ffn, sp->n_layers, sp->heads, sp->kv_heads, sp->tied, WIDE_VOCAB, e);
    if (rc) return rc;
    int vocab = WIDE_VOCAB, D = sp->hidden, Q = D, KV = sp->kv_heads * (D / sp->heads), F = sp->ffn;
    TensorView *tv = xcalloc((size_t)sp->n_layers * 12 + 3, sizeof *tv);
    int n = 0;
    uint64_t s = 17;
    mix_add(tv, &n, &s, "model.embed_tokens.weight", vocab, D, 0.17f, 0);
    for (int l = 0; l < sp->n_layers && !rc; l++) {
        char nm[96];
#define MADD(h, rows, cols, scale, mean) \
    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, h), mix_add(tv, &n, &s, nm, rows, cols, scale, mean))
        MADD("input_layernorm.weight", D, 0, 0.17f, 1);
        MADD("self_attn.q_proj.weight", Q, D, 0.1f, 0);
        MADD("self_attn.q_proj.bias", Q, 0, 0.09f, 0);
        MADD("self_attn.k_proj.weight", KV, D, 0.1f, 0);
        MADD("self_attn.k_proj.bias", KV, 0, 0.09f, 0);
        MADD("self_attn.v_proj.weight", KV, D, 0.1f, 0);
        MADD("self_attn.v_proj.bias", KV, 0, 0.09f, 0);
        MADD("self_attn.o_proj.weight", D, Q, 0.1f, 0);
        MADD("post_attention_layernorm.weight", D, 0, 0.17f, 1);
        MADD("mlp.gate_proj.weight", F, D, 0.1f, 0);
        MADD("mlp.up_proj.weight", F, D, 0.1f, 0);
        MADD("mlp.down_proj.weight", D, F, 0.07f, 0);
#undef MADD
    }
    mix_add(tv, &n, &s, "model.norm.weight", D, 0, 0.17f, 1);
    if (!sp->tied) mix_add(tv, &n, &s, "lm_head.weight", vocab, D, 0.17f, 0);
    const char *meta[] = {"format", "pt", NULL};
    char *st = path_join(dir, "model.safetensors");
    if (!rc) rc = st_write(st, tv, n, meta, e);
    for (int i = 0; i < n; i++) free((char *)tv[i].name), free((void *)tv[i].data);
    free(st), free(tv);
    return rc ? -1 : 0;
}

/* An 8-expert llama (Mixtral's layout, llama.cpp's names) whose choices
 * differ: attn_v and attn_k Q8_0, attn_output Q5_K, ffn_down per layer by
 * the number in its name. aloe converts no MoE architecture, so this is
 * written as an F32 GGUF directly (no tokenizer: llama-quantize reads only
 * the hyper-parameters and the tensors) and the rule is checked on its
 * tensor list. 8 layers, hidden 256, 4 heads, 1 KV head, 8 experts of
 * ffn 32 (ffn_down rows of 32: fallbacks), vocab 64, untied head. */
enum { MOE_LAYERS = 8, MOE_HIDDEN = 256, MOE_HEADS = 4, MOE_KV_HEADS = 1, MOE_FF = 32, MOE_EXPERTS = 8, MOE_VOCAB = 64 };

/* The tensors (name, dims outermost first) in tv[0..*n), data NULL. */
static inline void moe_tensors(TensorView *tv, int *n) {
    const int D = MOE_HIDDEN, KV = MOE_KV_HEADS * (MOE_HIDDEN / MOE_HEADS), F = MOE_FF, X = MOE_EXPERTS;
    *n = 0;
#define MT(nm, d0, d1, d2)                                                                               \
    (tv[*n] = (TensorView){.name = xstrdup(nm), .dtype = DT_F32, .ndim = (d2) ? 3 : (d1) ? 2 : 1,         \
                           .shape = {(d0), (d1) ? (d1) : 1, (d2) ? (d2) : 1, 1}},                          \
     (*n)++)
    MT("token_embd.weight", MOE_VOCAB, D, 0);
    MT("output_norm.weight", D, 0, 0);
    MT("output.weight", MOE_VOCAB, D, 0);
    for (int l = 0; l < MOE_LAYERS; l++) {
        char nm[64];
#define ML(kind, d0, d1, d2) (snprintf(nm, sizeof nm, "blk.%d.%s", l, kind), MT(nm, d0, d1, d2))
        ML("attn_norm.weight", D, 0, 0);
        ML("attn_q.weight", D, D, 0);
        ML("attn_k.weight", KV, D, 0);
        ML("attn_v.weight", KV, D, 0);
        ML("attn_output.weight", D, D, 0);
        ML("ffn_norm.weight", D, 0, 0);
        ML("ffn_gate_inp.weight", X, D, 0);
        ML("ffn_gate_exps.weight", X, F, D);
        ML("ffn_up_exps.weight", X, F, D);
        ML("ffn_down_exps.weight", X, D, F);
#undef ML
    }
#undef MT
}

/* The F32 GGUF of that model (seeded values). 0, or -1 with e set. */
static inline int moe_gguf_write(const char *path, Err *e) {
    TensorView tv[3 + 10 * MOE_LAYERS];
    int n;
    uint64_t s = 23;
    moe_tensors(tv, &n);
    GgufWriter *w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_str(w, "general.name", "moe-l8");
    gguf_set_u32(w, "llama.context_length", 256);
    gguf_set_u32(w, "llama.embedding_length", MOE_HIDDEN);
    gguf_set_u32(w, "llama.block_count", MOE_LAYERS);
    gguf_set_u32(w, "llama.feed_forward_length", MOE_FF);
    gguf_set_u32(w, "llama.attention.head_count", MOE_HEADS);
    gguf_set_u32(w, "llama.attention.head_count_kv", MOE_KV_HEADS);
    gguf_set_u32(w, "llama.expert_count", MOE_EXPERTS);
    gguf_set_u32(w, "llama.expert_used_count", 2);
    gguf_set_u32(w, "llama.vocab_size", MOE_VOCAB);
    gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_u32(w, "general.file_type", 0);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        int64_t count = tv[i].shape[0] * tv[i].shape[1] * tv[i].shape[2];
        float *d = xmalloc((size_t)count * sizeof(float));
        for (int64_t k = 0; k < count; k++) d[k] = 0.1f * wide_value(&s);
        tv[i].data = d, tv[i].nbytes = (size_t)count * sizeof(float);
        if (!rc) rc = gguf_writer_add_tensor(w, &tv[i], e);
    }
    if (!rc) rc = gguf_writer_write(w, path, e);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free((char *)tv[i].name), free((void *)tv[i].data);
    return rc ? -1 : 0;
}

#endif
