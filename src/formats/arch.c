/* arch: the architecture table (see arch.h). */
#include "formats/arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Shorthands for the table rows: a per-layer matrix, vector and norm. */
#define LMAT (TK_LAYER | TK_MATRIX)
#define LNORM (TK_LAYER | TK_NORM)
/* The decoder's HF prefix (HF_MODEL) and the head's (HF_HEAD): "model." and
 * "" for the causal LMs; Gemma 3's multimodal checkpoints nest the text
 * decoder (redefined around their lists below). */
#define HF_MODEL "model."
#define HF_HEAD ""
#define HFL(s) HF_MODEL "layers.#." s
#define GGL(s) "blk.#." s

/* The Llama-family decoder: Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3 share
 * these names; which of them a model has is the config's (flags). */
static const ArchTensor LLAMA_TENSORS[] = {
    {PARAM_EMBED, "model.embed_tokens.weight", "token_embd.weight", DIM_VOCAB, DIM_HIDDEN, TK_MATRIX},
    {PARAM_ATTN_NORM, HFL("input_layernorm.weight"), GGL("attn_norm.weight"), DIM_HIDDEN, DIM_NONE, LNORM},
    {PARAM_WQ, HFL("self_attn.q_proj.weight"), GGL("attn_q.weight"), DIM_Q, DIM_HIDDEN, LMAT},
    {PARAM_BQ, HFL("self_attn.q_proj.bias"), GGL("attn_q.bias"), DIM_Q, DIM_NONE, TK_LAYER | TK_QKV_BIAS},
    {PARAM_WK, HFL("self_attn.k_proj.weight"), GGL("attn_k.weight"), DIM_KV, DIM_HIDDEN, LMAT},
    {PARAM_BK, HFL("self_attn.k_proj.bias"), GGL("attn_k.bias"), DIM_KV, DIM_NONE, TK_LAYER | TK_QKV_BIAS},
    {PARAM_WV, HFL("self_attn.v_proj.weight"), GGL("attn_v.weight"), DIM_KV, DIM_HIDDEN, LMAT},
    {PARAM_BV, HFL("self_attn.v_proj.bias"), GGL("attn_v.bias"), DIM_KV, DIM_NONE, TK_LAYER | TK_QKV_BIAS},
    {PARAM_WO, HFL("self_attn.o_proj.weight"), GGL("attn_output.weight"), DIM_HIDDEN, DIM_Q, LMAT},
    {PARAM_BO, HFL("self_attn.o_proj.bias"), GGL("attn_output.bias"), DIM_HIDDEN, DIM_NONE, TK_LAYER | TK_O_BIAS},
    {PARAM_Q_NORM, HFL("self_attn.q_norm.weight"), GGL("attn_q_norm.weight"), DIM_HEAD, DIM_NONE, LNORM | TK_QK_NORM},
    {PARAM_K_NORM, HFL("self_attn.k_norm.weight"), GGL("attn_k_norm.weight"), DIM_HEAD, DIM_NONE, LNORM | TK_QK_NORM},
    {PARAM_FFN_NORM, HFL("post_attention_layernorm.weight"), GGL("ffn_norm.weight"), DIM_HIDDEN, DIM_NONE, LNORM},
    {PARAM_W_GATE, HFL("mlp.gate_proj.weight"), GGL("ffn_gate.weight"), DIM_FF, DIM_HIDDEN, LMAT},
    {PARAM_W_UP, HFL("mlp.up_proj.weight"), GGL("ffn_up.weight"), DIM_FF, DIM_HIDDEN, LMAT},
    {PARAM_W_DOWN, HFL("mlp.down_proj.weight"), GGL("ffn_down.weight"), DIM_HIDDEN, DIM_FF, LMAT},
    {PARAM_OUT_NORM, "model.norm.weight", "output_norm.weight", DIM_HIDDEN, DIM_NONE, TK_NORM},
    {PARAM_LM_HEAD, "lm_head.weight", "output.weight", DIM_VOCAB, DIM_HIDDEN, TK_MATRIX | TK_UNTIED},
};

/* The attention projections (with Llama's optional biases) and MLP every
 * architecture below shares by name. */
#define ATTN_PROJ                                                                                                   \
    {PARAM_WQ, HFL("self_attn.q_proj.weight"), GGL("attn_q.weight"), DIM_Q, DIM_HIDDEN, LMAT},                     \
    {PARAM_BQ, HFL("self_attn.q_proj.bias"), GGL("attn_q.bias"), DIM_Q, DIM_NONE, TK_LAYER | TK_QKV_BIAS},         \
    {PARAM_WK, HFL("self_attn.k_proj.weight"), GGL("attn_k.weight"), DIM_KV, DIM_HIDDEN, LMAT},                    \
    {PARAM_BK, HFL("self_attn.k_proj.bias"), GGL("attn_k.bias"), DIM_KV, DIM_NONE, TK_LAYER | TK_QKV_BIAS},        \
    {PARAM_WV, HFL("self_attn.v_proj.weight"), GGL("attn_v.weight"), DIM_KV, DIM_HIDDEN, LMAT},                    \
    {PARAM_BV, HFL("self_attn.v_proj.bias"), GGL("attn_v.bias"), DIM_KV, DIM_NONE, TK_LAYER | TK_QKV_BIAS},        \
    {PARAM_WO, HFL("self_attn.o_proj.weight"), GGL("attn_output.weight"), DIM_HIDDEN, DIM_Q, LMAT},                \
    {PARAM_BO, HFL("self_attn.o_proj.bias"), GGL("attn_output.bias"), DIM_HIDDEN, DIM_NONE, TK_LAYER | TK_O_BIAS}
#define MLP_PROJ                                                                                                    \
    {PARAM_W_GATE, HFL("mlp.gate_proj.weight"), GGL("ffn_gate.weight"), DIM_FF, DIM_HIDDEN, LMAT},                 \
    {PARAM_W_UP, HFL("mlp.up_proj.weight"), GGL("ffn_up.weight"), DIM_FF, DIM_HIDDEN, LMAT},                       \
    {PARAM_W_DOWN, HFL("mlp.down_proj.weight"), GGL("ffn_down.weight"), DIM_HIDDEN, DIM_FF, LMAT}
#define EMBED_ROW {PARAM_EMBED, HF_MODEL "embed_tokens.weight", "token_embd.weight", DIM_VOCAB, DIM_HIDDEN, TK_MATRIX}
#define OUT_NORM_ROW {PARAM_OUT_NORM, HF_MODEL "norm.weight", "output_norm.weight", DIM_HIDDEN, DIM_NONE, TK_NORM}
#define LM_HEAD_ROW {PARAM_LM_HEAD, HF_HEAD "lm_head.weight", "output.weight", DIM_VOCAB, DIM_HIDDEN, TK_MATRIX | TK_UNTIED}

/* OLMo (1, 0724): Llama without any norm weight (its LayerNorms have no
 * parameters). */
static const ArchTensor OLMO_TENSORS[] = {EMBED_ROW, ATTN_PROJ, MLP_PROJ, LM_HEAD_ROW};

/* OLMo 2: no input norms; q/k norms over the whole projection; norms on
 * the sublayers' outputs (llama.cpp: post_attention_norm, post_ffw_norm). */
static const ArchTensor OLMO2_TENSORS[] = {
    EMBED_ROW,
    ATTN_PROJ,
    {PARAM_Q_NORM, HFL("self_attn.q_norm.weight"), GGL("attn_q_norm.weight"), DIM_Q, DIM_NONE, LNORM | TK_QK_NORM},
    {PARAM_K_NORM, HFL("self_attn.k_norm.weight"), GGL("attn_k_norm.weight"), DIM_KV, DIM_NONE, LNORM | TK_QK_NORM},
    {PARAM_POST_ATTN_NORM, HFL("post_attention_layernorm.weight"), GGL("post_attention_norm.weight"), DIM_HIDDEN,
     DIM_NONE, LNORM},
    MLP_PROJ,
    {PARAM_POST_FFN_NORM, HFL("post_feedforward_layernorm.weight"), GGL("post_ffw_norm.weight"), DIM_HIDDEN, DIM_NONE,
     LNORM},
    OUT_NORM_ROW,
    LM_HEAD_ROW,
};

/* Gemma 2: pre- and post-norms around both sublayers. Its
 * post_attention_layernorm is the attention's post-norm (Llama's is the
 * MLP's pre-norm), its pre_feedforward_layernorm the MLP's pre-norm. */
#define GEMMA_NORMS_ATTN                                                                                            \
    {PARAM_POST_ATTN_NORM, HFL("post_attention_layernorm.weight"), GGL("post_attention_norm.weight"), DIM_HIDDEN,  \
     DIM_NONE, LNORM},                                                                                             \
    {PARAM_FFN_NORM, HFL("pre_feedforward_layernorm.weight"), GGL("ffn_norm.weight"), DIM_HIDDEN, DIM_NONE, LNORM}
#define GEMMA_NORM_FFN                                                                                              \
    {PARAM_POST_FFN_NORM, HFL("post_feedforward_layernorm.weight"), GGL("post_ffw_norm.weight"), DIM_HIDDEN,       \
     DIM_NONE, LNORM}
#define INPUT_NORM_ROW {PARAM_ATTN_NORM, HFL("input_layernorm.weight"), GGL("attn_norm.weight"), DIM_HIDDEN, DIM_NONE, LNORM}

static const ArchTensor GEMMA2_TENSORS[] = {
    EMBED_ROW, INPUT_NORM_ROW, ATTN_PROJ, GEMMA_NORMS_ATTN, MLP_PROJ, GEMMA_NORM_FFN, OUT_NORM_ROW, LM_HEAD_ROW,
};

/* Gemma 3 (text): Gemma 2's and per-head q/k norms. */
#define GEMMA3_ROWS                                                                                                 \
    EMBED_ROW, INPUT_NORM_ROW, ATTN_PROJ,                                                                           \
    {PARAM_Q_NORM, HFL("self_attn.q_norm.weight"), GGL("attn_q_norm.weight"), DIM_HEAD, DIM_NONE, LNORM | TK_QK_NORM}, \
    {PARAM_K_NORM, HFL("self_attn.k_norm.weight"), GGL("attn_k_norm.weight"), DIM_HEAD, DIM_NONE, LNORM | TK_QK_NORM}, \
    GEMMA_NORMS_ATTN, MLP_PROJ, GEMMA_NORM_FFN, OUT_NORM_ROW, LM_HEAD_ROW
static const ArchTensor GEMMA3_TENSORS[] = {GEMMA3_ROWS};

/* Gemma3ForConditionalGeneration's text decoder: the same rows under the
 * published checkpoints' prefixes (transformers' _checkpoint_conversion_mapping
 * maps "^language_model.model" to "model.language_model" and
 * "^language_model.lm_head" to "lm_head": the second list). The GGUF names
 * are the text model's: llama.cpp's converter drops the prefix. */
#undef HF_MODEL
#undef HF_HEAD
#define HF_MODEL "language_model.model."
#define HF_HEAD "language_model."
static const ArchTensor GEMMA3_MM_TENSORS[] = {GEMMA3_ROWS};
#undef HF_MODEL
#undef HF_HEAD
#define HF_MODEL "model.language_model."
#define HF_HEAD ""
static const ArchTensor GEMMA3_MM2_TENSORS[] = {GEMMA3_ROWS};
#undef HF_MODEL
#undef HF_HEAD
#define HF_MODEL "model."
#define HF_HEAD ""

/* Phi-3 / 3.5: q, k, v in one qkv_proj and gate, up in one gate_up_proj
 * (llama.cpp: attn_qkv, and ffn_up holding both halves). */
static const ArchTensor PHI3_TENSORS[] = {
    EMBED_ROW,
    INPUT_NORM_ROW,
    {PARAM_WQ, HFL("self_attn.qkv_proj.weight"), GGL("attn_qkv.weight"), DIM_Q, DIM_HIDDEN, LMAT | TK_FUSED},
    {PARAM_WK, HFL("self_attn.qkv_proj.weight"), GGL("attn_qkv.weight"), DIM_KV, DIM_HIDDEN, LMAT | TK_FUSED},
    {PARAM_WV, HFL("self_attn.qkv_proj.weight"), GGL("attn_qkv.weight"), DIM_KV, DIM_HIDDEN, LMAT | TK_FUSED},
    {PARAM_WO, HFL("self_attn.o_proj.weight"), GGL("attn_output.weight"), DIM_HIDDEN, DIM_Q, LMAT},
    {PARAM_FFN_NORM, HFL("post_attention_layernorm.weight"), GGL("ffn_norm.weight"), DIM_HIDDEN, DIM_NONE, LNORM},
    {PARAM_W_GATE, HFL("mlp.gate_up_proj.weight"), GGL("ffn_up.weight"), DIM_FF, DIM_HIDDEN, LMAT | TK_FUSED},
    {PARAM_W_UP, HFL("mlp.gate_up_proj.weight"), GGL("ffn_up.weight"), DIM_FF, DIM_HIDDEN, LMAT | TK_FUSED},
    {PARAM_W_DOWN, HFL("mlp.down_proj.weight"), GGL("ffn_down.weight"), DIM_HIDDEN, DIM_FF, LMAT},
    OUT_NORM_ROW,
    LM_HEAD_ROW,
};

#define LIST(t) t, (int)(sizeof t / sizeof t[0])

static const ArchDesc ARCHS[] = {
    {ARCH_LLAMA, "LlamaForCausalLM", "llama", "llama", "llama", ARCHF_DECODER | ARCHF_GGUF_PERMUTED, LIST(LLAMA_TENSORS), 0, 0},
    {ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2", "qwen2", "qwen2", ARCHF_DECODER | ARCHF_QKV_BIAS | ARCHF_SW_OPT_IN,
     LIST(LLAMA_TENSORS), 0, 0},
    {ARCH_QWEN3, "Qwen3ForCausalLM", "qwen3", "qwen3", "qwen3", ARCHF_DECODER | ARCHF_QK_NORM | ARCHF_SW_OPT_IN,
     LIST(LLAMA_TENSORS), 0, 0},
    /* llama.cpp converts Mistral to its llama architecture: written as
     * llama, and a llama file reads back as ARCH_LLAMA */
    {ARCH_MISTRAL, "MistralForCausalLM", "mistral", "llama", NULL, ARCHF_DECODER | ARCHF_GGUF_PERMUTED,
     LIST(LLAMA_TENSORS), 0, 0},
    /* llama.cpp permutes OLMo's Q/K rows as Llama's (its rope type NORM) */
    {ARCH_OLMO, "OlmoForCausalLM", "olmo", "olmo", "olmo", ARCHF_DECODER | ARCHF_GGUF_PERMUTED | ARCHF_LAYERNORM,
     LIST(OLMO_TENSORS), 0, 0},
    {ARCH_OLMO2, "Olmo2ForCausalLM", "olmo2", "olmo2", "olmo2",
     ARCHF_DECODER | ARCHF_QK_NORM | ARCHF_QK_NORM_FULL | ARCHF_POST_NORM | ARCHF_NO_PRE_NORM, LIST(OLMO2_TENSORS), 0, 0},
    {ARCH_GEMMA2, "Gemma2ForCausalLM", "gemma2", "gemma2", "gemma2",
     ARCHF_DECODER | ARCHF_NORM_PLUS1 | ARCHF_POST_NORM | ARCHF_GEGLU | ARCHF_EMBED_SCALE | ARCHF_TIED_DEFAULT, LIST(GEMMA2_TENSORS), 2, 0},
    {ARCH_GEMMA3, "Gemma3ForCausalLM", "gemma3_text", "gemma3", "gemma3",
     ARCHF_DECODER | ARCHF_NORM_PLUS1 | ARCHF_POST_NORM | ARCHF_GEGLU | ARCHF_EMBED_SCALE | ARCHF_QK_NORM |
         ARCHF_TIED_DEFAULT,
     LIST(GEMMA3_TENSORS), 6, 10000},
    /* the text decoder of the multimodal Gemma 3; a "gemma3" GGUF reads as ARCH_GEMMA3 */
    {ARCH_GEMMA3_MM, "Gemma3ForConditionalGeneration", "gemma3", "gemma3", NULL,
     ARCHF_DECODER | ARCHF_NORM_PLUS1 | ARCHF_POST_NORM | ARCHF_GEGLU | ARCHF_EMBED_SCALE | ARCHF_QK_NORM |
         ARCHF_TIED_DEFAULT | ARCHF_TEXT_OF_MM,
     LIST(GEMMA3_MM_TENSORS), 6, 10000},
    {ARCH_GEMMA3_MM2, "Gemma3ForConditionalGeneration", "gemma3", "gemma3", NULL,
     ARCHF_DECODER | ARCHF_NORM_PLUS1 | ARCHF_POST_NORM | ARCHF_GEGLU | ARCHF_EMBED_SCALE | ARCHF_QK_NORM |
         ARCHF_TIED_DEFAULT | ARCHF_TEXT_OF_MM,
     LIST(GEMMA3_MM2_TENSORS), 6, 10000},
    {ARCH_PHI3, "Phi3ForCausalLM", "phi3", "phi3", "phi3", ARCHF_DECODER, LIST(PHI3_TENSORS), 0, 0},
    /* the encoder's tensors are model/encoder_load.c's */
    {ARCH_BERT, "BertModel", "bert", "bert", "bert", 0, NULL, 0, 0, 0},
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

int arch_canonical(int arch) {
    const ArchDesc *a = arch_desc(arch), *b = a && !a->gguf_read && a->gguf ? arch_by_gguf(a->gguf) : NULL;
    return b ? b->arch : arch;
}

/* Literals rather than built from the table: a message must not race on
 * a lazily filled buffer. test_arch checks they list the table. */
const char *arch_hf_names(void) {
    return "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, OlmoForCausalLM, "
           "Olmo2ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, "
           "Phi3ForCausalLM, BertModel";
}

const char *arch_gguf_names(void) { return "llama, qwen2, qwen3, olmo, olmo2, gemma2, gemma3, phi3, bert"; }

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
    c->qk_norm_full = (f & ARCHF_QK_NORM_FULL) != 0;
    /* OLMo's LayerNorm: F.layer_norm(x, shape, None, None, eps=1e-5), a
     * constant rather than a config field */
    c->norm_type = f & ARCHF_LAYERNORM ? NORM_LAYER_NOPARAM : NORM_RMS;
    if (f & ARCHF_LAYERNORM) c->norm_eps = 1e-5f;
    c->norm_offset = f & ARCHF_NORM_PLUS1 ? 1.0f : 0.0f;
    c->pre_norm = !(f & ARCHF_NO_PRE_NORM);
    c->post_norm = (f & ARCHF_POST_NORM) != 0;
    c->act = f & ARCHF_GEGLU ? ACT_GELU_TANH : ACT_SILU;
    /* transformers: torch.tensor(hidden_size ** 0.5) in the weights' dtype */
    c->embed_scale = f & ARCHF_EMBED_SCALE ? (float)sqrt((double)c->hidden_size) : 0.0f;
    if (!c->swa_pattern) c->swa_pattern = a->swa_pattern;
    if (!(c->rope.local_theta > 0)) c->rope.local_theta = a->local_theta;
    if (!(c->rope.attn_factor > 0)) c->rope.attn_factor = 1.0f;
}

/* Kind k's row in list t of n, or NULL. */
static const ArchTensor *find_kind(const ArchTensor *t, int n, ParamKind k) {
    for (int i = 0; i < n; i++)
        if (t[i].kind == k) return &t[i];
    return NULL;
}

const ArchTensor *arch_tensor_of(int arch, ParamKind k) {
    const ArchDesc *a = arch_desc(arch);
    return a && a->tensors ? find_kind(a->tensors, a->n_tensors, k) : NULL;
}

const ArchTensor *arch_tensor(ParamKind k) {
    if (k < 0 || k >= PARAM_COUNT) return NULL;
    for (int i = 0; i < NARCH; i++) {
        const ArchTensor *t = ARCHS[i].tensors ? find_kind(ARCHS[i].tensors, ARCHS[i].n_tensors, k) : NULL;
        if (t) return t;
    }
    return NULL;
}

/* c's row for kind k, or the generic one when c's architecture has none
 * (for shapes of kinds the model lacks: size 0 anyway). */
static const ArchTensor *tensor_for(const ModelConfig *c, ParamKind k) {
    const ArchTensor *t = arch_tensor_of(c->arch, k);
    return t ? t : arch_tensor(k);
}

int arch_has(const ModelConfig *c, ParamKind k) {
    const ArchTensor *t = arch_tensor_of(c->arch, k);
    if (!t) return 0;
    if ((t->flags & TK_QKV_BIAS) && !c->attention_bias) return 0;
    if ((t->flags & TK_O_BIAS) && !c->o_bias) return 0;
    if ((t->flags & TK_QK_NORM) && !c->qk_norm) return 0;
    if ((t->flags & TK_UNTIED) && c->tie_word_embeddings) return 0;
    return 1;
}

ParamKind arch_fused_rows(const ModelConfig *c, ParamKind k, long long *row_off, long long *stored_rows) {
    const ArchTensor *t = tensor_for(c, k);
    *row_off = 0;
    *stored_rows = t ? arch_dim(c, t->rows) : 0;
    if (!t || !(t->flags & TK_FUSED)) return k;
    const ArchDesc *a = arch_desc(c->arch);
    ParamKind first = k;
    long long off = -1, total = 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const ArchTensor *u = &a->tensors[i];
        if (strcmp(u->hf, t->hf)) continue;
        if (total == 0) first = u->kind;
        if (u->kind == k) off = total;
        total += arch_dim(c, u->rows);
    }
    *row_off = off;
    *stored_rows = total;
    return first;
}

int arch_layer_sliding(const ModelConfig *c, int l) {
    if (c->sliding_window <= 0) return 0;
    return c->swa_pattern <= 0 || (l + 1) % c->swa_pattern != 0;
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
    const ArchTensor *t = tensor_for(c, k);
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

static void shape_fields(const ArchTensor *t, char *buf, size_t size) {
    if (!t) snprintf(buf, size, "?");
    else if (t->cols) snprintf(buf, size, "[%s, %s]", dim_field(t->rows), dim_field(t->cols));
    else snprintf(buf, size, "[%s]", dim_field(t->rows));
}

void arch_shape_fields(ParamKind k, char *buf, size_t size) { shape_fields(arch_tensor(k), buf, size); }

void arch_shape_fields_of(int arch, ParamKind k, char *buf, size_t size) {
    const ArchTensor *t = arch_tensor_of(arch, k);
    if (!t || !(t->flags & TK_FUSED)) {
        shape_fields(t ? t : arch_tensor(k), buf, size);
        return;
    }
    /* the stored tensor: its kinds' rows summed */
    const ArchDesc *a = arch_desc(arch);
    size_t n = 0;
    for (int i = 0; i < a->n_tensors && n < size; i++)
        if (!strcmp(a->tensors[i].hf, t->hf))
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " + " : "[", dim_field(a->tensors[i].rows));
    if (n < size) snprintf(buf + n, size - n, ", %s]", dim_field(t->cols));
}

/* pattern with '#' replaced by layer */
static int expand(const char *pat, int layer, char *buf, size_t size) {
    const char *h = strchr(pat, '#');
    int n = h ? snprintf(buf, size, "%.*s%d%s", (int)(h - pat), pat, layer, h + 1) : snprintf(buf, size, "%s", pat);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

int arch_hf_name_of(int arch, ParamKind k, int layer, char *buf, size_t size) {
    const ArchTensor *t = arch_tensor_of(arch, k);
    return t ? expand(t->hf, layer, buf, size) : -1;
}

int arch_gguf_name_of(int arch, ParamKind k, int layer, char *buf, size_t size) {
    const ArchTensor *t = arch_tensor_of(arch, k);
    return t ? expand(t->gguf, layer, buf, size) : -1;
}

int arch_hf_name(ParamKind k, int layer, char *buf, size_t size) { return arch_hf_name_of(ARCH_LLAMA, k, layer, buf, size); }

int arch_gguf_name(ParamKind k, int layer, char *buf, size_t size) {
    return arch_gguf_name_of(ARCH_LLAMA, k, layer, buf, size);
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

/* The first row of arch's list whose hf (gguf) pattern name matches: for a
 * fused tensor its first kind. */
static int kind_of(int arch, const char *name, int gguf, int *layer) {
    const ArchDesc *a = arch_desc(arch);
    *layer = 0;
    if (!a || !a->tensors) return -1;
    for (int i = 0; i < a->n_tensors; i++)
        if (match(name, gguf ? a->tensors[i].gguf : a->tensors[i].hf, layer)) return a->tensors[i].kind;
    return -1;
}

int arch_kind_of_hf_in(int arch, const char *name, int *layer) { return kind_of(arch, name, 0, layer); }
int arch_kind_of_gguf_in(int arch, const char *name, int *layer) { return kind_of(arch, name, 1, layer); }
int arch_kind_of_hf(const char *name, int *layer) { return kind_of(ARCH_LLAMA, name, 0, layer); }
int arch_kind_of_gguf(const char *name, int *layer) { return kind_of(ARCH_LLAMA, name, 1, layer); }
