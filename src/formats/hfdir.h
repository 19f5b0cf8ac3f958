/* hfdir: model hyper-parameters from a Hugging Face model directory
 * (config.json, generation_config.json) or from GGUF metadata, into one
 * ModelConfig so the model code does not care where a model came from.
 *
 * config.json comes in two dialects: transformers 4 writes `rope_theta` and
 * `rope_scaling` at the top level; transformers 5 writes `rope_parameters`
 * ({rope_type, rope_theta, factor, ...}). Both give the same ModelConfig.
 * Defaults follow transformers: num_key_value_heads = num_attention_heads,
 * head_dim = hidden_size / num_attention_heads, tie_word_embeddings false
 * for the causal LMs (true for BERT), Qwen2 always has q/k/v biases, Qwen3
 * always has per-head q/k RMSNorm. */
#ifndef ALOE_FORMATS_HFDIR_H
#define ALOE_FORMATS_HFDIR_H

#include <stddef.h>

#include "base/err.h"
#include "formats/gguf.h"

typedef enum ModelArch {
    ARCH_LLAMA = 0, /* LlamaForCausalLM; GGUF "llama" */
    ARCH_QWEN2,     /* Qwen2ForCausalLM; GGUF "qwen2" */
    ARCH_QWEN3,     /* Qwen3ForCausalLM; GGUF "qwen3" */
    ARCH_MISTRAL,   /* MistralForCausalLM; GGUF "llama" (llama.cpp has no separate arch) */
    ARCH_BERT,      /* BertModel; GGUF "bert" */
    ARCH_OLMO,      /* OlmoForCausalLM; GGUF "olmo" */
    ARCH_OLMO2,     /* Olmo2ForCausalLM; GGUF "olmo2" */
    ARCH_GEMMA2,    /* Gemma2ForCausalLM; GGUF "gemma2" */
    ARCH_GEMMA3,    /* Gemma3ForCausalLM (text); GGUF "gemma3" */
    ARCH_PHI3,      /* Phi3ForCausalLM (Phi-3, Phi-3.5); GGUF "phi3" */
    /* Gemma3ForConditionalGeneration (gemma-3-4b/12b/27b): its text decoder,
     * config from text_config, the vision tower ignored. Two tensor layouts
     * exist on the hub: the published one ("language_model.model.layers.#",
     * "language_model.lm_head") and transformers >= 4.52's in-memory one
     * ("model.language_model.layers.#", "lm_head"); hf_config_load tells
     * them apart by the weights. Written to GGUF as "gemma3", as llama.cpp
     * writes the text model (the vision tower goes to a separate mmproj). */
    ARCH_GEMMA3_MM,
    ARCH_GEMMA3_MM2,
    ARCH_COUNT
} ModelArch;

typedef enum RopeType {
    ROPE_DEFAULT = 0,
    ROPE_LLAMA3,  /* Llama 3.1+ frequency-dependent scaling */
    ROPE_LINEAR,  /* positions divided by factor */
    ROPE_LONGROPE, /* Phi-3 LongRoPE: per-frequency short/long divisors, cos/sin scaled by attn_factor */
} RopeType;

#define MODEL_MAX_EOS 8
/* LongRoPE factors: one per rotated pair (head_dim/2); head_dim <= 512 */
#define ROPE_MAX_FACTORS 256

/* Norm kinds (ModelConfig.norm_type). */
enum {
    NORM_RMS = 0,      /* x / sqrt(mean(x^2) + eps) * w */
    NORM_LAYER_NOPARAM, /* (x - mean) / sqrt(var + eps), no weight or bias (OLMo) */
};

/* MLP activations (ModelConfig.act): out = act(gate) * up. */
enum {
    ACT_SILU = 0,  /* SwiGLU */
    ACT_GELU_TANH, /* GeGLU with gelu's tanh approximation (gelu_pytorch_tanh: Gemma) */
};

typedef struct RopeConfig {
    int type;            /* RopeType */
    float theta;         /* base frequency (rope_theta / rope.freq_base) */
    float factor;        /* llama3 / linear; 1 when unused */
    float low_freq_factor;
    float high_freq_factor;
    int original_max_pos; /* original_max_position_embeddings; 0 when unused */
    /* GGUF: llama.cpp stores Llama-3 scaling as per-dimension divisors of
     * the inverse frequencies in the tensor rope_freqs.weight instead of the
     * factors above; 1 when that tensor is present (type is then LLAMA3). */
    int freqs_from_tensor;
    /* Gemma 3: the sliding (local) layers' base, rope_local_base_freq,
     * unscaled; 0 = the local layers use theta and the scaling above too. */
    float local_theta;
    /* LongRoPE (Phi-3): inv_freq[i] = theta^(-2i/head_dim) / factor[i], the
     * long factors when the positions reach past original_max_pos (the
     * short ones otherwise), cos and sin multiplied by attn_factor (1 when
     * unused; from rope_scaling.attention_factor or
     * sqrt(1 + ln(max_pos/original_max_pos) / ln(original_max_pos))). GGUF:
     * the tensors rope_factors_long/short.weight, rope.scaling.attn_factor and
     * rope.scaling.original_context_length. */
    float attn_factor;
    int n_factors; /* rope_dims/2 with LONGROPE, else 0 */
    /* The leading dims of each head RoPE turns: head_dim ·
     * partial_rotary_factor (transformers' int(), Phi-4-mini 0.75), GGUF
     * rope.dimension_count (llama.cpp's n_rot); the rest pass through.
     * 0 = the whole head; read it through rope_dims(). */
    int rot_dim;
    float long_factor[ROPE_MAX_FACTORS], short_factor[ROPE_MAX_FACTORS];
} RopeConfig;

typedef struct ModelConfig {
    int arch;                /* ModelArch */
    int hidden_size;
    int intermediate_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int vocab_size;
    int max_pos;             /* max_position_embeddings / context_length */
    float norm_eps;          /* rms_norm_eps (layer_norm_eps for BERT) */
    int tie_word_embeddings;
    int attention_bias;      /* q/k/v projections have biases (always for Qwen2) */
    int o_bias;              /* o_proj has a bias (Llama's attention_bias; never Qwen2): arch_config_quirks */
    int qk_norm;             /* per-head RMSNorm on q and k (Qwen3) */
    RopeConfig rope;
    int bos_id;              /* -1 when unset */
    int n_eos;
    int eos_ids[MODEL_MAX_EOS];
    int pad_id;              /* -1 when unset */
    int dtype;               /* DType of the stored weights (torch_dtype / dtype), DT_F32 if unset */
    int type_vocab_size;     /* BERT token types; 0 otherwise */
    int sliding_window;      /* attention window (Mistral); 0 = full attention */
    /* Architecture quirks (arch_config_quirks sets them from the
     * architecture; the readers from config.json / GGUF metadata). The
     * forward and training read these, never the architecture. */
    int norm_type;           /* NORM_RMS or NORM_LAYER_NOPARAM (OLMo: every norm, weightless) */
    float norm_offset;       /* the architecture's norms scale by (norm_offset + w): 1 for
                              * Gemma's (1+w), else 0 */
    int norms_folded;        /* 1: the stored norm weights already include norm_offset (GGUF,
                              * whose converter adds it; inference's f32 copy after load). The
                              * offset to apply is norms_folded ? 0 : norm_offset. Not a quirk:
                              * arch_config_quirks leaves it alone. */
    int pre_norm;            /* 1: each sublayer's input is normed (attn_norm / ffn_norm;
                              * OLMo 1 weightless); 0 for OLMo 2 */
    int post_norm;           /* 1: each sublayer's output is normed before the residual add
                              * (post_attn_norm / post_ffn_norm: Gemma 2/3, OLMo 2) */
    int act;                 /* ACT_SILU or ACT_GELU_TANH */
    float embed_scale;       /* embeddings multiplied by it (Gemma: float(sqrt(hidden))); 0 = 1 */
    float attn_scale;        /* attention score scale; 0 = 1/sqrt(head_dim). Gemma:
                              * query_pre_attn_scalar^-0.5 */
    float attn_softcap;      /* scores -> c*tanh(scores/c) before the mask (Gemma 2); 0 = none */
    float final_softcap;     /* logits -> c*tanh(logits/c) (Gemma 2); 0 = none */
    float clip_qkv;          /* q, k, v clamped to [-c, c] after projection (OLMo); 0 = none */
    int qk_norm_full;        /* 1: q_norm/k_norm over the whole projection before the split into
                              * heads (OLMo 2); 0: per head (Qwen3, Gemma 3) */
    int swa_pattern;         /* P > 0: layer l is local (windowed) iff (l + 1) % P != 0
                              * (Gemma 2: 2, Gemma 3: 6); 0 or -1: sliding_window on every
                              * layer (0 before arch_config_quirks: the architecture's default;
                              * -1: layer_types said every layer). arch_layer_sliding reads it. */
} ModelConfig;

/* Sampling defaults a checkpoint ships with; fields not in the file keep
 * the values gen_config_init sets (has_* says which were present). */
typedef struct GenConfig {
    int bos_id;
    int n_eos;
    int eos_ids[MODEL_MAX_EOS];
    int pad_id;
    int do_sample, has_do_sample;
    float temperature; int has_temperature; /* default 1 */
    float top_p; int has_top_p;             /* default 1 */
    int top_k; int has_top_k;               /* default 50 (transformers) */
    float min_p; int has_min_p;             /* default 0 */
    float repetition_penalty; int has_repetition_penalty; /* default 1 */
    int max_new_tokens;                     /* 0 when unset */
} GenConfig;

/* "LlamaForCausalLM", ... */
const char *model_arch_name(int arch);
/* The dims RoPE turns in each head: rope.rot_dim, or head_dim when 0. */
int rope_dims(const ModelConfig *c);
/* Comma-separated list of supported HF architecture names, for messages. */
const char *model_arch_supported(void);

/* Reads dir/config.json. Errors name the file and field. */
int hf_config_load(const char *dir, ModelConfig *cfg, Err *e);
/* Parses config JSON text; name is used in messages. */
int hf_config_parse(const char *text, const char *name, ModelConfig *cfg, Err *e);

void gen_config_init(GenConfig *g);
/* Reads dir/generation_config.json; a missing file leaves the defaults and
 * returns 0. */
int hf_genconfig_load(const char *dir, GenConfig *g, Err *e);
int hf_genconfig_parse(const char *text, const char *name, GenConfig *g, Err *e);

/* The chat template a checkpoint ships: chat_template.jinja (transformers
 * 5) or tokenizer_config.json's "chat_template" (a string, or a list of
 * {name, template} of which `name` is chosen; NULL name = "default").
 * *out is a new string (caller frees), or NULL when the directory has no
 * template (not an error: the caller may ask for one by name). */
int hf_chat_template_load(const char *dir, const char *name, char **out, Err *e);

/* The ModelConfig of a GGUF model from its `<arch>.*` metadata, the
 * tokenizer's bos/eos ids, and the tensors present (output.weight absent =>
 * tied; blk.0.attn_q.bias => biases; blk.0.attn_q_norm.weight => qk_norm).
 * GGUF "llama" files map to ARCH_LLAMA (a Mistral checkpoint converted by
 * llama.cpp is indistinguishable and runs as Llama). Llama-3 RoPE scaling
 * is stored by llama.cpp as the tensor rope_freqs.weight, not as keys:
 * rope.type is ROPE_LLAMA3 only when rope.scaling.* keys say so; callers
 * should use rope_freqs.weight when present. */
int gguf_model_config(const Gguf *g, ModelConfig *cfg, Err *e);

/* Per-frequency divisors of RoPE's inverse frequencies (head_dim/2 of
 * them): inv_freq[i] = theta^(-2i/head_dim) / factors[i]. All 1 for
 * ROPE_DEFAULT, `factor` for ROPE_LINEAR, and for ROPE_LLAMA3 the
 * wavelength-dependent blend transformers and llama.cpp use (the values
 * llama.cpp stores as rope_freqs.weight). */
void rope_freq_factors(const RopeConfig *r, int head_dim, float *factors);

/* Writes the `<arch>.*` metadata llama.cpp reads for c (general.architecture,
 * block_count, embedding_length, ..., rope.freq_base, key_length) into w:
 * the inverse of gguf_model_config. Mistral is written as "llama". Token
 * ids and the tokenizer are the caller's. */
struct GgufWriter;
int gguf_set_model_config(struct GgufWriter *w, const ModelConfig *c, Err *e);

/* Tensor names: llama.cpp's GGUF names <-> Hugging Face names for the
 * decoder architectures ("blk.3.attn_q.weight" <->
 * "model.layers.3.self_attn.q_proj.weight", "token_embd.weight" <->
 * "model.embed_tokens.weight", "output.weight" <-> "lm_head.weight", ...).
 * Return 0 and write out, or -1 for a name with no counterpart
 * (rope_freqs.weight). */
int hf_name_from_gguf(const char *gguf_name, char *out, size_t size);
int gguf_name_from_hf(const char *hf_name, char *out, size_t size);
/* The same in architecture arch's list (Phi-3's "blk.3.attn_qkv.weight"
 * <-> "model.layers.3.self_attn.qkv_proj.weight", Gemma's post norms). */
int hf_name_from_gguf_arch(int arch, const char *gguf_name, char *out, size_t size);
int gguf_name_from_hf_arch(int arch, const char *hf_name, char *out, size_t size);

/* Compares the fields that define the network (not dtype or token ids);
 * returns 0 if equal, else 1 with the first difference described in buf. */
int model_config_diff(const ModelConfig *a, const ModelConfig *b, char *buf, size_t size);

#endif
