/* arch: the architecture table (see arch.h). */
#include "formats/arch.h"

#include <stdio.h>
#include <string.h>

/* The Llama-family decoder: Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3 share
 * these names; which of them a model has is the config's (flags). */
static const ArchTensor LLAMA_TENSORS[PARAM_COUNT] = {
    {PARAM_EMBED, "model.embed_tokens.weight", "token_embd.weight", DIM_VOCAB, DIM_HIDDEN, TK_MATRIX},
    {PARAM_ATTN_NORM, "model.layers.#.input_layernorm.weight", "blk.#.attn_norm.weight", DIM_HIDDEN, DIM_NONE,
     TK_LAYER | TK_NORM},
    {PARAM_WQ, "model.layers.#.self_attn.q_proj.weight", "blk.#.attn_q.weight", DIM_Q, DIM_HIDDEN, TK_LAYER | TK_MATRIX},
    {PARAM_BQ, "model.layers.#.self_attn.q_proj.bias", "blk.#.attn_q.bias", DIM_Q, DIM_NONE, TK_LAYER | TK_QKV_BIAS},
    {PARAM_WK, "model.layers.#.self_attn.k_proj.weight", "blk.#.attn_k.weight", DIM_KV, DIM_HIDDEN, TK_LAYER | TK_MATRIX},
    {PARAM_BK, "model.layers.#.self_attn.k_proj.bias", "blk.#.attn_k.bias", DIM_KV, DIM_NONE, TK_LAYER | TK_QKV_BIAS},
    {PARAM_WV, "model.layers.#.self_attn.v_proj.weight", "blk.#.attn_v.weight", DIM_KV, DIM_HIDDEN, TK_LAYER | TK_MATRIX},
    {PARAM_BV, "model.layers.#.self_attn.v_proj.bias", "blk.#.attn_v.bias", DIM_KV, DIM_NONE, TK_LAYER | TK_QKV_BIAS},
    {PARAM_WO, "model.layers.#.self_attn.o_proj.weight", "blk.#.attn_output.weight", DIM_HIDDEN, DIM_Q,
     TK_LAYER | TK_MATRIX},
    {PARAM_BO, "model.layers.#.self_attn.o_proj.bias", "blk.#.attn_output.bias", DIM_HIDDEN, DIM_NONE,
     TK_LAYER | TK_O_BIAS},
    {PARAM_Q_NORM, "model.layers.#.self_attn.q_norm.weight", "blk.#.attn_q_norm.weight", DIM_HEAD, DIM_NONE,
     TK_LAYER | TK_NORM | TK_QK_NORM},
    {PARAM_K_NORM, "model.layers.#.self_attn.k_norm.weight", "blk.#.attn_k_norm.weight", DIM_HEAD, DIM_NONE,
     TK_LAYER | TK_NORM | TK_QK_NORM},
    {PARAM_FFN_NORM, "model.layers.#.post_attention_layernorm.weight", "blk.#.ffn_norm.weight", DIM_HIDDEN, DIM_NONE,
     TK_LAYER | TK_NORM},
    {PARAM_W_GATE, "model.layers.#.mlp.gate_proj.weight", "blk.#.ffn_gate.weight", DIM_FF, DIM_HIDDEN,
     TK_LAYER | TK_MATRIX},
    {PARAM_W_UP, "model.layers.#.mlp.up_proj.weight", "blk.#.ffn_up.weight", DIM_FF, DIM_HIDDEN, TK_LAYER | TK_MATRIX},
    {PARAM_W_DOWN, "model.layers.#.mlp.down_proj.weight", "blk.#.ffn_down.weight", DIM_HIDDEN, DIM_FF,
     TK_LAYER | TK_MATRIX},
    {PARAM_OUT_NORM, "model.norm.weight", "output_norm.weight", DIM_HIDDEN, DIM_NONE, TK_NORM},
    {PARAM_LM_HEAD, "lm_head.weight", "output.weight", DIM_VOCAB, DIM_HIDDEN, TK_MATRIX | TK_UNTIED},
};

#define LLAMA_FAMILY LLAMA_TENSORS, PARAM_COUNT

static const ArchDesc ARCHS[] = {
    {ARCH_LLAMA, "LlamaForCausalLM", "llama", "llama", "llama", ARCHF_DECODER | ARCHF_GGUF_PERMUTED, LLAMA_FAMILY},
    {ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2", "qwen2", "qwen2", ARCHF_DECODER | ARCHF_QKV_BIAS | ARCHF_SW_OPT_IN,
     LLAMA_FAMILY},
    {ARCH_QWEN3, "Qwen3ForCausalLM", "qwen3", "qwen3", "qwen3", ARCHF_DECODER | ARCHF_QK_NORM | ARCHF_SW_OPT_IN,
     LLAMA_FAMILY},
    /* llama.cpp converts Mistral to its llama architecture: written as
     * llama, and a llama file reads back as ARCH_LLAMA */
    {ARCH_MISTRAL, "MistralForCausalLM", "mistral", "llama", NULL, ARCHF_DECODER | ARCHF_GGUF_PERMUTED, LLAMA_FAMILY},
    /* the encoder's tensors are model/encoder_load.c's */
    {ARCH_BERT, "BertModel", "bert", "bert", "bert", 0, NULL, 0},
};
#define NARCH (int)(sizeof ARCHS / sizeof ARCHS[0])

const ArchDesc *arch_desc(int arch) {
    for (int i = 0; i < NARCH; i++)
        if (ARCHS[i].arch == arch) return &ARCHS[i];
    return NULL;
}

const ArchDesc *arch_by_hf(const char *hf, const char *type) {
    for (int i = 0; i < NARCH; i++)
        if ((hf && !strcmp(hf, ARCHS[i].hf)) || (!hf && type && !strcmp(type, ARCHS[i].type))) return &ARCHS[i];
    return NULL;
}

const ArchDesc *arch_by_gguf(const char *g) {
    for (int i = 0; i < NARCH; i++)
        if (ARCHS[i].gguf_read && !strcmp(g, ARCHS[i].gguf_read)) return &ARCHS[i];
    return NULL;
}

/* Literals rather than built from the table: a message must not race on
 * a lazily filled buffer. test_arch checks they list the table. */
const char *arch_hf_names(void) {
    return "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, BertModel";
}

const char *arch_gguf_names(void) { return "llama, qwen2, qwen3, bert"; }

void arch_config_quirks(ModelConfig *c) {
    const ArchDesc *a = arch_desc(c->arch);
    int f = a ? a->flags : 0;
    if (!(f & ARCHF_DECODER)) return;
    /* Qwen2's attention has q/k/v biases and an o_proj without one,
     * whatever attention_bias says; Llama's attention_bias puts a bias on
     * all four projections (transformers' LlamaAttention) */
    if (f & ARCHF_QKV_BIAS) c->attention_bias = 1, c->o_bias = 0;
    else c->o_bias = c->attention_bias;
    if (f & ARCHF_QK_NORM) c->qk_norm = 1;
}

const ArchTensor *arch_tensor(ParamKind k) { return k >= 0 && k < PARAM_COUNT ? &LLAMA_TENSORS[k] : NULL; }

int arch_has(const ModelConfig *c, ParamKind k) {
    const ArchTensor *t = arch_tensor(k);
    if (!t) return 0;
    if ((t->flags & TK_QKV_BIAS) && !c->attention_bias) return 0;
    if ((t->flags & TK_O_BIAS) && !c->o_bias) return 0;
    if ((t->flags & TK_QK_NORM) && !c->qk_norm) return 0;
    if ((t->flags & TK_UNTIED) && c->tie_word_embeddings) return 0;
    return 1;
}

long long arch_dim(const ModelConfig *c, ArchDim d) {
    switch (d) {
    case DIM_VOCAB: return c->vocab_size;
    case DIM_HIDDEN: return c->hidden_size;
    case DIM_Q: return (long long)c->n_heads * c->head_dim;
    case DIM_KV: return (long long)c->n_kv_heads * c->head_dim;
    case DIM_HEAD: return c->head_dim;
    case DIM_FF: return c->intermediate_size;
    default: return 0;
    }
}

void arch_shape(const ModelConfig *c, ParamKind k, long long *rows, long long *cols) {
    const ArchTensor *t = arch_tensor(k);
    *rows = t ? arch_dim(c, t->rows) : 0;
    *cols = t ? arch_dim(c, t->cols) : 0;
}

static const char *dim_field(ArchDim d) {
    switch (d) {
    case DIM_VOCAB: return "vocab_size";
    case DIM_HIDDEN: return "hidden_size";
    case DIM_Q: return "num_attention_heads * head_dim";
    case DIM_KV: return "num_key_value_heads * head_dim";
    case DIM_HEAD: return "head_dim";
    case DIM_FF: return "intermediate_size";
    default: return "";
    }
}

void arch_shape_fields(ParamKind k, char *buf, size_t size) {
    const ArchTensor *t = arch_tensor(k);
    if (!t) snprintf(buf, size, "?");
    else if (t->cols) snprintf(buf, size, "[%s, %s]", dim_field(t->rows), dim_field(t->cols));
    else snprintf(buf, size, "[%s]", dim_field(t->rows));
}

/* pattern with '#' replaced by layer */
static int expand(const char *pat, int layer, char *buf, size_t size) {
    const char *h = strchr(pat, '#');
    int n = h ? snprintf(buf, size, "%.*s%d%s", (int)(h - pat), pat, layer, h + 1) : snprintf(buf, size, "%s", pat);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

int arch_hf_name(ParamKind k, int layer, char *buf, size_t size) {
    const ArchTensor *t = arch_tensor(k);
    return t ? expand(t->hf, layer, buf, size) : -1;
}

int arch_gguf_name(ParamKind k, int layer, char *buf, size_t size) {
    const ArchTensor *t = arch_tensor(k);
    return t ? expand(t->gguf, layer, buf, size) : -1;
}

/* name against a pattern with at most one '#' (a decimal layer number of
 * at most 9 digits, no leading zero); the number in *layer. */
static int match(const char *name, const char *pat, int *layer) {
    const char *h = strchr(pat, '#');
    *layer = 0;
    if (!h) return !strcmp(name, pat);
    size_t pre = (size_t)(h - pat);
    if (strncmp(name, pat, pre)) return 0;
    const char *num = name + pre, *p = num;
    long v = 0;
    while (*p >= '0' && *p <= '9' && p - num < 10) v = v * 10 + (*p++ - '0');
    /* "01" is not layer 1's name: it would translate to another name than
     * it came from, and collide with layer 1 in a converted file */
    if (p == num || p - num > 9 || (num[0] == '0' && p - num > 1) || strcmp(p, h + 1)) return 0;
    *layer = (int)v;
    return 1;
}

int arch_kind_of_hf(const char *name, int *layer) {
    for (int k = 0; k < PARAM_COUNT; k++)
        if (match(name, LLAMA_TENSORS[k].hf, layer)) return k;
    return -1;
}

int arch_kind_of_gguf(const char *name, int *layer) {
    for (int k = 0; k < PARAM_COUNT; k++)
        if (match(name, LLAMA_TENSORS[k].gguf, layer)) return k;
    return -1;
}
