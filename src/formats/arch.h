/* arch: the one description of the decoder architectures this project
 * runs and trains -- which tensors a model of each has, under which name in
 * a Hugging Face directory and in a GGUF file, of which shape, and the
 * quirks of each architecture.
 *
 * Everything that names, sizes or looks for a decoder tensor goes through
 * this table: the inference loaders (model/load.c, HF and GGUF), the random
 * models (model/shapes.c), the training decoder (train/decoder_train.c),
 * GGUF conversion (model/convert.c via gguf_name_from_hf) and checkpoint
 * export (train/checkpoint.c: the names training gives its tensors).
 *
 * It sits in formats/ rather than model/ because config.json and GGUF
 * metadata are read here (formats/hfdir.c), and the quirks are set once,
 * when the config is read (arch_config_quirks), so every layer above sees
 * the same ModelConfig. docs/DESIGN.md says how to add an architecture. */
#ifndef ALOE_FORMATS_ARCH_H
#define ALOE_FORMATS_ARCH_H

#include <stddef.h>

#include "formats/hfdir.h"

/* The tensor kinds of a decoder, in the order of inference's contiguous
 * f32 block and of training's parameter walk (per layer: the kinds
 * flagged TK_LAYER, in this order). Kinds a model does not have (biases,
 * q/k norms, an untied head) are empty. */
typedef enum ParamKind {
    PARAM_EMBED = 0, /* [vocab, hidden] */
    PARAM_ATTN_NORM, /* [L, hidden] */
    PARAM_WQ,        /* [L, n_heads*head_dim, hidden] */
    PARAM_BQ,        /* [L, n_heads*head_dim] */
    PARAM_WK,        /* [L, n_kv_heads*head_dim, hidden] */
    PARAM_BK,        /* [L, n_kv_heads*head_dim] */
    PARAM_WV,        /* [L, n_kv_heads*head_dim, hidden] */
    PARAM_BV,        /* [L, n_kv_heads*head_dim] */
    PARAM_WO,        /* [L, hidden, n_heads*head_dim] */
    PARAM_BO,        /* [L, hidden] (Llama with attention_bias) */
    PARAM_Q_NORM,    /* [L, head_dim] (OLMo 2: [L, n_heads*head_dim], the whole projection) */
    PARAM_K_NORM,    /* [L, head_dim] (OLMo 2: [L, n_kv_heads*head_dim]) */
    PARAM_POST_ATTN_NORM, /* [L, hidden]: norm of the attention's output before the residual add
                           * (Gemma 2/3 and OLMo 2 "post_attention_layernorm") */
    PARAM_FFN_NORM,  /* [L, hidden]: the MLP's input norm (Llama's "post_attention_layernorm",
                      * Gemma's "pre_feedforward_layernorm") */
    PARAM_W_GATE,    /* [L, intermediate, hidden] */
    PARAM_W_UP,      /* [L, intermediate, hidden] */
    PARAM_W_DOWN,    /* [L, hidden, intermediate] */
    PARAM_POST_FFN_NORM, /* [L, hidden]: norm of the MLP's output before the residual add
                          * (Gemma 2/3, OLMo 2 "post_feedforward_layernorm") */
    PARAM_OUT_NORM,  /* [hidden] */
    PARAM_LM_HEAD,   /* [vocab, hidden]; empty when tied */
    PARAM_COUNT
} ParamKind;

/* A dimension of a tensor's shape, named by the config field it comes from. */
typedef enum ArchDim {
    DIM_NONE = 0, /* a vector's missing second dimension */
    DIM_VOCAB,    /* vocab_size */
    DIM_HIDDEN,   /* hidden_size */
    DIM_Q,        /* num_attention_heads * head_dim */
    DIM_KV,       /* num_key_value_heads * head_dim */
    DIM_HEAD,     /* head_dim */
    DIM_FF,       /* intermediate_size */
} ArchDim;

/* Tensor flags: where it sits and when a model has it. */
enum {
    TK_LAYER = 1 << 0,    /* one per layer ('#' in the names is the layer number) */
    TK_MATRIX = 1 << 1,   /* a weight matrix (matmul; may be quantised) */
    TK_NORM = 1 << 2,     /* a norm weight (random models start it at 1) */
    TK_QKV_BIAS = 1 << 3, /* present when cfg->attention_bias */
    TK_O_BIAS = 1 << 4,   /* present when cfg->o_bias */
    TK_QK_NORM = 1 << 5,  /* present when cfg->qk_norm */
    TK_UNTIED = 1 << 6,   /* present when !cfg->tie_word_embeddings */
    /* part of a fused tensor: every kind of one architecture with the same
     * name is one stored tensor, its rows the kinds' rows in table order
     * (Phi-3's qkv_proj = q rows, then k, then v; gate_up_proj = gate, then
     * up). arch_fused_rows says where a kind's rows are. */
    TK_FUSED = 1 << 7,
};

typedef struct ArchTensor {
    ParamKind kind;
    const char *hf;   /* "model.layers.#.self_attn.q_proj.weight" */
    const char *gguf; /* "blk.#.attn_q.weight" */
    ArchDim rows, cols; /* cols DIM_NONE: a vector of `rows` */
    int flags;
} ArchTensor;

/* Architecture quirks, set once on the config by arch_config_quirks. */
enum {
    ARCHF_DECODER = 1 << 0,       /* a decoder the engine and the trainer run */
    ARCHF_QKV_BIAS = 1 << 1,      /* q/k/v biases whatever config.json says, and never an o_proj bias (Qwen2) */
    ARCHF_QK_NORM = 1 << 2,       /* per-head RMSNorm of q and k (Qwen3) */
    ARCHF_SW_OPT_IN = 1 << 3,     /* sliding_window counts only with use_sliding_window (Qwen2/3) */
    ARCHF_GGUF_PERMUTED = 1 << 4, /* llama.cpp permutes Q/K rows in GGUF (adjacent-pair RoPE) */
    ARCHF_NORM_PLUS1 = 1 << 5,    /* norms scale by (1 + w) (Gemma); llama.cpp's converter stores w + 1 */
    ARCHF_LAYERNORM = 1 << 6,     /* weightless LayerNorm, eps 1e-5, for every norm (OLMo) */
    ARCHF_POST_NORM = 1 << 7,     /* sublayer outputs normed before the residual add (Gemma 2/3, OLMo 2) */
    ARCHF_NO_PRE_NORM = 1 << 8,   /* sublayer inputs not normed (OLMo 2) */
    ARCHF_GEGLU = 1 << 9,         /* MLP gelu_tanh(gate) * up (Gemma) */
    ARCHF_EMBED_SCALE = 1 << 10,  /* embeddings times float(sqrt(hidden_size)) (Gemma) */
    ARCHF_QK_NORM_FULL = 1 << 11, /* with ARCHF_QK_NORM: over the whole projection (OLMo 2) */
    ARCHF_TIED_DEFAULT = 1 << 12, /* tie_word_embeddings absent from config.json means true (the
                                   * class default transformers leaves out when saving: Gemma) */
    ARCHF_TEXT_OF_MM = 1 << 13,   /* the text decoder of a multimodal checkpoint: config.json's
                                   * text_config is the config, other towers' tensors are ignored
                                   * (Gemma3ForConditionalGeneration) */
};

/* The quirks are ModelConfig fields (formats/hfdir.h: norm_type, norm_offset,
 * pre_norm, post_norm, act, embed_scale, attn_scale, attn_softcap,
 * final_softcap, clip_qkv, qk_norm_full, swa_pattern, rope.local_theta,
 * rope LongRoPE factors), set by arch_config_quirks from the architecture
 * and config.json / GGUF metadata; the forward reads only those fields. */

typedef struct ArchDesc {
    int arch;              /* ModelArch */
    const char *hf;        /* config.json architectures[0] */
    const char *type;      /* config.json model_type */
    const char *gguf;      /* general.architecture written for it */
    const char *gguf_read; /* general.architecture read as it (NULL: none; Mistral reads as llama) */
    int flags;             /* ARCHF_* */
    const ArchTensor *tensors; /* its own list: the kinds it can have, its names */
    int n_tensors;
    int swa_pattern; /* ModelConfig.swa_pattern when the config gives none (Gemma 2: 2, Gemma 3: 6) */
    float local_theta; /* rope.local_theta when the config gives none (Gemma 3: 10000, as
                        * Gemma3TextConfig's rope_local_base_freq and llama.cpp) */
} ArchDesc;

/* The description of arch (a ModelArch), or NULL. */
const ArchDesc *arch_desc(int arch);
/* The architecture whose config.json class (or, with hf NULL, model_type)
 * or GGUF general.architecture is the name; NULL if none. */
const ArchDesc *arch_by_hf(const char *hf, const char *model_type);
const ArchDesc *arch_by_gguf(const char *gguf_arch);
/* The architecture whose tensors and GGUF form arch shares under other HF
 * names (the multimodal Gemma 3 -> ARCH_GEMMA3), else arch itself: a
 * GGUF written from it reads back as that one. */
int arch_canonical(int arch);
/* "LlamaForCausalLM, Qwen2ForCausalLM, ..." and "llama, qwen2, ..." for messages. */
const char *arch_hf_names(void);
const char *arch_gguf_names(void);

/* The architecture's quirks applied to c (idempotent): Qwen2's q/k/v
 * biases (and no o_proj bias), Qwen3's q/k norms, o_bias from
 * attention_bias elsewhere; OLMo's weightless LayerNorm (eps 1e-5), OLMo
 * 2's post-norms and whole-width q/k norms, Gemma's (1+w) norms, GeGLU,
 * embedding scale and default attention scale, and the defaults of the
 * fields config.json left unset (act, pre_norm, attn_scale 0 = 1/sqrt(head_dim)).
 * Called where a config is read or made; a reader sets the fields its file
 * gives (softcaps, clip_qkv, swa_pattern, query_pre_attn_scalar) before or
 * after, as it says. */
void arch_config_quirks(ModelConfig *c);

/* Kind k's entry in architecture arch's own list, or NULL when that
 * architecture has no such tensor (OLMo's norms, Phi-3's separate q/k/v). */
const ArchTensor *arch_tensor_of(int arch, ParamKind k);
/* The entry of kind k in the first architecture that has it: for its flags
 * (TK_LAYER, TK_MATRIX, TK_NORM), which are the same in every list. Its
 * names and shape are Llama's where Llama has the kind: use arch_tensor_of
 * (or the _of name functions) for a given model. Never NULL for a kind < PARAM_COUNT. */
const ArchTensor *arch_tensor(ParamKind k);
/* 1 if a model of config c has tensors of kind k (its architecture's list
 * holds k and the flags' conditions hold for c). */
int arch_has(const ModelConfig *c, ParamKind k);
/* Where kind k's rows are in its stored tensor, for layer-slice shapes:
 * *row_off (0 unless fused) and *stored_rows (rows of the stored tensor:
 * the sum over the kinds sharing its name); returns the kind that names
 * the stored tensor (the first of its group; k itself if not fused). */
ParamKind arch_fused_rows(const ModelConfig *c, ParamKind k, long long *row_off, long long *stored_rows);
/* 1 if layer l of c attends within c->sliding_window (0 when there is no
 * window): every layer, or the local layers of c->swa_pattern. Local
 * layers also take the local RoPE table (rope.local_theta) when set. */
int arch_layer_sliding(const ModelConfig *c, int l);
/* The value of dimension d for c. */
long long arch_dim(const ModelConfig *c, ArchDim d);
/* One layer's (or the model's) rows × cols of kind k (cols 0: a vector). */
void arch_shape(const ModelConfig *c, ParamKind k, long long *rows, long long *cols);
/* The config fields of kind k's shape, "[hidden_size, intermediate_size]", for messages
 * (arch_shape_fields_of: of its stored tensor in arch's list, a fused one's rows summed:
 * "[intermediate_size + intermediate_size, hidden_size]"). */
void arch_shape_fields(ParamKind k, char *buf, size_t size);
void arch_shape_fields_of(int arch, ParamKind k, char *buf, size_t size);
/* Kind k's name for layer l in a HF directory / a GGUF file, in
 * architecture arch's list (a fused kind: the stored tensor's name). 0, or
 * -1 when buf is too small or arch has no such kind. */
int arch_hf_name_of(int arch, ParamKind k, int layer, char *buf, size_t size);
int arch_gguf_name_of(int arch, ParamKind k, int layer, char *buf, size_t size);
/* The same in Llama's list (the Llama family: Llama, Mistral, Qwen2/3). */
int arch_hf_name(ParamKind k, int layer, char *buf, size_t size);
int arch_gguf_name(ParamKind k, int layer, char *buf, size_t size);
/* The kind (and layer, 0 for whole-model kinds) a HF / GGUF tensor name
 * is in architecture arch's list (a fused tensor: its first kind), or -1
 * for a name the list does not hold (rope_freqs.weight). */
int arch_kind_of_hf_in(int arch, const char *name, int *layer);
int arch_kind_of_gguf_in(int arch, const char *name, int *layer);
/* The same in Llama's list. */
int arch_kind_of_hf(const char *name, int *layer);
int arch_kind_of_gguf(const char *name, int *layer);

#endif
