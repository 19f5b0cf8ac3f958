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
    PARAM_Q_NORM,    /* [L, head_dim] */
    PARAM_K_NORM,    /* [L, head_dim] */
    PARAM_FFN_NORM,  /* [L, hidden] */
    PARAM_W_GATE,    /* [L, intermediate, hidden] */
    PARAM_W_UP,      /* [L, intermediate, hidden] */
    PARAM_W_DOWN,    /* [L, hidden, intermediate] */
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
};

typedef struct ArchDesc {
    int arch;              /* ModelArch */
    const char *hf;        /* config.json architectures[0] */
    const char *type;      /* config.json model_type */
    const char *gguf;      /* general.architecture written for it */
    const char *gguf_read; /* general.architecture read as it (NULL: none; Mistral reads as llama) */
    int flags;             /* ARCHF_* */
    const ArchTensor *tensors;
    int n_tensors;
} ArchDesc;

/* The description of arch (a ModelArch), or NULL. */
const ArchDesc *arch_desc(int arch);
/* The architecture whose config.json class (or, with hf NULL, model_type)
 * or GGUF general.architecture is the name; NULL if none. */
const ArchDesc *arch_by_hf(const char *hf, const char *model_type);
const ArchDesc *arch_by_gguf(const char *gguf_arch);
/* "LlamaForCausalLM, Qwen2ForCausalLM, ..." and "llama, qwen2, ..." for messages. */
const char *arch_hf_names(void);
const char *arch_gguf_names(void);

/* The architecture's quirks applied to c (idempotent): Qwen2's q/k/v
 * biases (and no o_proj bias), Qwen3's q/k norms, o_bias from
 * attention_bias elsewhere. Called where a config is read or made. */
void arch_config_quirks(ModelConfig *c);

/* The decoder tensor of kind k (the same for every decoder architecture
 * this table holds now). */
const ArchTensor *arch_tensor(ParamKind k);
/* 1 if a model of config c has tensors of kind k. */
int arch_has(const ModelConfig *c, ParamKind k);
/* The value of dimension d for c. */
long long arch_dim(const ModelConfig *c, ArchDim d);
/* One layer's (or the model's) rows × cols of kind k (cols 0: a vector). */
void arch_shape(const ModelConfig *c, ParamKind k, long long *rows, long long *cols);
/* The config fields of kind k's shape, "[hidden_size, intermediate_size]", for messages. */
void arch_shape_fields(ParamKind k, char *buf, size_t size);
/* Kind k's name for layer l in a HF directory / a GGUF file. 0, or -1 when
 * buf is too small. */
int arch_hf_name(ParamKind k, int layer, char *buf, size_t size);
int arch_gguf_name(ParamKind k, int layer, char *buf, size_t size);
/* The kind (and layer, 0 for whole-model kinds) a HF / GGUF tensor name
 * is, or -1 for a name the table does not hold (rope_freqs.weight). */
int arch_kind_of_hf(const char *name, int *layer);
int arch_kind_of_gguf(const char *name, int *layer);

#endif
