/* decoder: the Llama-family decoder (Llama 2/3.x, Mistral, Qwen2/2.5,
 * Qwen3): weights, KV cache and the forward pass.
 *
 * Weights come from a Hugging Face directory (safetensors: F32 tensors and
 * all vectors copied into one contiguous f32 block, llm.c style; F16/BF16
 * matrices used in place from the memory map), from a
 * GGUF file (F32/F16/BF16/Q8_0/Q4_0 used in place from the memory map;
 * Q4_K/Q6_K re-quantised to Q8_0 at load), or are made up at random in
 * memory for benchmarks (model_init_random).
 *
 * GGUF files of the `llama` architecture have their Q/K rows permuted by
 * llama.cpp's converter; rather than copying those matrices back, the model
 * applies RoPE to adjacent pairs (the permuted layout), which gives the same
 * attention scores: q·k is unchanged when both are permuted alike.
 *
 * The forward pass takes a batch of tokens, each belonging to some sequence
 * (its own KvCache) at some position: one sequence's prompt (prefill), one
 * new token for each of several sequences (batched decode), or a mix. */
#ifndef ALOE_MODEL_DECODER_H
#define ALOE_MODEL_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"
#include "kernels/backend.h"
#include "kernels/matmul.h"
#include "kernels/threads.h"

/* The parameter kinds (ParamKind, PARAM_*) and their names and shapes are
 * the architecture table's: formats/arch.h. */
/* The head_dim/2 RoPE inverse frequencies of c (its RopeConfig: default,
 * linear, llama3), each divided by freq_factors[i] when given (GGUF's
 * rope_freqs.weight, which then replaces the config's scaling). The one
 * conversion of RoPE settings: inference and training both call it. */
void model_rope_inv_freq(const ModelConfig *c, const float *freq_factors, float *inv_freq);
/* RoPE tables by kind of layer and context: ROPE_TAB_GLOBAL is
 * model_rope_inv_freq's (LongRoPE: the short factors); ROPE_TAB_LOCAL the
 * sliding layers' (Gemma 3: rope.local_theta, unscaled; the global table
 * when local_theta is 0); ROPE_TAB_LONG LongRoPE's long factors (the global
 * table otherwise). A layer's table: arch_layer_sliding(c, l) && local_theta
 * ? LOCAL : GLOBAL, and with LongRoPE LONG for a sequence whose KV cache
 * holds more than rope.original_max_pos positions (KvCache.rope_long:
 * llama.cpp's rule by n_ctx; a sequence never switches mid-way). Training
 * (no cache) takes transformers' rule: the call's longest sequence decides.
 * cos/sin are scaled by model_rope_mscale. */
enum { ROPE_TAB_GLOBAL = 0, ROPE_TAB_LOCAL = 1, ROPE_TAB_LONG = 2 };
void model_rope_inv_freq_for(const ModelConfig *c, const float *freq_factors, int table, float *inv_freq);
/* The factor cos and sin are multiplied by: rope.attn_factor with LongRoPE, else 1. */
float model_rope_mscale(const ModelConfig *c);

/* Floats of each kind (all layers) for cfg; returns the total. */
size_t model_param_sizes(const ModelConfig *cfg, size_t sizes[PARAM_COUNT]);
/* The kind's Hugging Face tensor name for layer l ("model.layers.3.self_attn.q_proj.weight"). */
void model_param_hf_name(ParamKind k, int layer, char *buf, size_t size);

/* The weights of a decoder: the one struct for inference and training.
 * Matrices are QMats (their stored type: F32, F16/BF16, quantised),
 * vectors (norms, biases) float32; absent tensors are NULL (a matrix:
 * data NULL). Who may write: inference's weights point into memory maps
 * and its own blocks and are never written after loading (vectors are
 * float * only so that training can share the struct); training's
 * (train/decoder_train.h) point into its float32 parameter block (or its
 * frozen copy of the matrices), and a second instance `g` over its
 * gradient block (every QMat DT_F32), which the optimiser and the backward
 * write through model_mat_f32. */
typedef struct LayerWeights {
    float *attn_norm, *ffn_norm; /* NULL when absent (OLMo: weightless; OLMo 2: no pre-norm) */
    float *post_attn_norm, *post_ffn_norm; /* Gemma 2/3, OLMo 2; NULL when absent */
    QMat wq, wk, wv, wo;
    float *bq, *bk, *bv, *bo; /* NULL when absent */
    float *q_norm, *k_norm; /* Qwen3, Gemma 3 (per head), OLMo 2 (whole width); NULL when absent */
    /* Phi-3's fused qkv_proj / gate_up_proj: wq, wk, wv (w_gate, w_up) are
     * row slices of the one stored tensor (model_weight_point_stored). */
    QMat w_gate, w_up, w_down;
} LayerWeights;

typedef struct ModelWeights {
    QMat embed;        /* [vocab, hidden]; rows are looked up */
    LayerWeights *layers;
    float *out_norm;
    QMat lm_head;      /* == embed when tied */
} ModelWeights;

/* Where kind k's pointer of layer l lives in w (l ignored for whole-model
 * kinds): mat for a matrix kind (TK_MATRIX), vec for a vector kind, the
 * other NULL (both for k outside the table). The one map from the
 * architecture table's kinds to the struct's fields, used by inference's
 * loaders and training's parameter walk. */
typedef struct WeightSlot {
    QMat *mat;
    float **vec;
} WeightSlot;
WeightSlot model_weight_slot(ModelWeights *w, ParamKind k, int l);
/* Points kind k's slot of layer l at data: a matrix at a QMat of `type`
 * and one layer's rows × cols of k (arch_shape), a vector at data as
 * float32 (type DT_F32). data NULL clears the slot. */
void model_weight_point(ModelWeights *w, const ModelConfig *c, ParamKind k, int l, int type, const void *data);
/* The same given the start of k's stored tensor, of `type`: a fused kind
 * (Phi-3's q/k/v in qkv_proj, gate/up in gate_up_proj) starts its
 * arch_fused_rows row offset in; any other kind at stored. Inference's
 * in-place views and training's blocks both locate fused parts this way. */
void model_weight_point_stored(ModelWeights *w, const ModelConfig *c, ParamKind k, int l, int type,
                               const void *stored);
/* The float32 data of a DT_F32 matrix its owner may write (training's
 * blocks; see ModelWeights), NULL when absent. */
static inline float *model_mat_f32(const QMat *q) { return (float *)(uintptr_t)q->data; }

typedef struct Model {
    ModelConfig cfg;
    ModelWeights w;
    int rope_interleaved; /* 1: adjacent-pair RoPE (permuted GGUF llama Q/K) */
    float *inv_freq;      /* head_dim/2 RoPE frequencies */
    float *inv_freq_local; /* ROPE_TAB_LOCAL (Gemma 3's sliding layers); NULL: inv_freq */
    float *inv_freq_long;  /* ROPE_TAB_LONG (LongRoPE's long factors); NULL: inv_freq */
    float rope_mscale;     /* model_rope_mscale */
    ThreadPool *tp;
    /* What the forward runs on (kernels/backend.h): the CPU backend over tp
     * unless model_set_backend gave another; owned. Run states and KV
     * caches are its memory. */
    Backend *be;
    const char *source;   /* "safetensors", "gguf" or "random" */
    int weight_type;      /* DType of the big matrices (for reports) */
    int kv_type;          /* element type of the KV caches made for it (model_set_kv_type) */
    /* Storage. params: the contiguous f32 block (HF or random f32), with
     * param[k] pointing at each kind inside it. */
    float *params;
    size_t n_params;
    float *param[PARAM_COUNT];
    SafeTensors *st;
    Gguf *gguf;
    size_t mapped_bytes; /* of the matrices, those read from a file's map (model_place_weights) */
    void **owned; /* other buffers to free */
    int n_owned;
    /* activations, grown to the largest batch seen */
    struct RunState *rs;
} Model;

/* A sequence's keys and values, head-major: per layer, per key/value head,
 * max_seq positions of head_dim floats (one head's keys over the whole
 * context are contiguous, what one attention thread reads). len = positions
 * filled so far. */
typedef struct KvCache {
    int n_layers, max_seq, n_heads, head_dim;
    int type; /* DT_F32 or DT_F16: the model's kv_type when made */
    int rope_long; /* LongRoPE: its sequence takes the long factors (max_seq > original_max_pos) */
    Backend *be;   /* the model's backend when made: k and v are its memory */
    void *k, *v;
    int len;
} KvCache;

/* Loads a model from a Hugging Face directory or a .gguf file, with a pool
 * of n_threads (<= 0: one per CPU). NULL with e set on failure. */
Model *model_load(const char *path, int n_threads, Err *e);
Model *model_load_hf(const char *dir, int n_threads, Err *e);
Model *model_load_gguf(const char *path, int n_threads, Err *e);
/* A model of the given shape with random weights (normal, std 0.02; norms
 * 1) stored as dtype (any kernel type, kernel_type_ok; K-quant
 * matrices whose rows are not multiples of 256 fall back to Q8_0, as
 * llama.cpp's quantiser falls back), for benchmarks. */
Model *model_init_random(const ModelConfig *cfg, int dtype, uint64_t seed, int n_threads, Err *e);
void model_free(Model *m);
/* Runs m on be from now on (the model takes it over and frees the one it
 * had): every weight is handed to be->mat_bind / vec_bind, the run state
 * is remade. KV caches made before belong to the old backend: free them
 * first. Tests use it to run the same weights on a second backend. */
void model_set_backend(Model *m, Backend *be);

/* The element type of the KV caches kv_cache_init makes for m from now on:
 * DT_F32 (the default: attention as the reference computes it) or DT_F16
 * (half the memory, and half the bytes a decode step reads at a long
 * context; keys and values rounded to half, as llama.cpp's default cache).
 * -1 for another type. */
int model_set_kv_type(Model *m, int type);
/* The same by name, "f32" or "f16" ("": unchanged): a --kv-type value, or
 * with NULL the one $ALOE_KV_TYPE gives (unset: unchanged); the error names
 * which of the two it was. */
int model_set_kv_type_name(Model *m, const char *name, Err *e);
int kv_cache_init(KvCache *kv, const Model *m, int max_seq, Err *e);
void kv_cache_free(KvCache *kv);
/* Writes zeros through the whole cache, making its pages resident now (the
 * cache's memory is otherwise mapped page by page as positions fill it,
 * ~12 us per 4 KB page on a virtual machine). Benchmarks call it before
 * timing, as llama-bench clears its KV buffer when it creates a context. */
void kv_cache_touch(KvCache *kv);
/* 1 if a and b hold the same layers, heads, element type and LongRoPE factors (made for one
 * model, so that positions copy between them). */
int kv_cache_compatible(const KvCache *a, const KvCache *b);
/* Copies positions 0..n-1 of src's keys and values into dst (made for the
 * same model: same layers, heads and type; src has written at least n
 * positions, dst fits them) and sets dst->len to n. -1 with e set when
 * they do not match. */
int kv_cache_copy_prefix(KvCache *dst, const KvCache *src, int n, Err *e);
/* Bytes of the keys and values of one position of kv. */
size_t kv_cache_position_bytes(const KvCache *kv);
/* Bytes of a cache of max_seq positions (of the model's kv_type). */
size_t kv_cache_bytes(const Model *m, int max_seq);

/* The general forward pass: token t (id ids[t]) belongs to caches[t] at
 * position pos[t]; its key/value are written there. Every position
 * 0..pos[t] of its cache must have been written before or in this call.
 * Logits are computed for the n_out tokens listed in out_rows (NULL: all n
 * tokens, n_out = n) into logits [n_out, vocab]. Each cache's len becomes
 * at least pos+1 of its tokens. */
int model_forward_batch(Model *m, KvCache *const *caches, const int32_t *ids, const int *pos, int n,
                        const int *out_rows, int n_out, float *logits, Err *e);

/* One sequence: ids[0..n) at positions pos.. pos+n-1 of kv. logits gets
 * [n, vocab] (all_logits) or [vocab] for the last token only. */
int model_forward(Model *m, KvCache *kv, const int32_t *ids, int n, int pos, float *logits, int all_logits,
                  Err *e);

/* Bytes of the weights the forward pass reads (matrices in their stored
 * type, vectors as f32; a tied head counted once), and the parameter count. */
size_t model_weight_bytes(const Model *m);
size_t model_param_count(const Model *m);
/* The matrices one decode step reads whole: the head, then each layer's
 * seven (the embedding only a row, so not it unless it is the tied head).
 * Up to max of them into mats; returns how many there are. */
int model_decode_mats(const Model *m, const QMat **mats, int max);

/* Model shapes of known checkpoints for `aloe speed --shape`:
 * "qwen2.5-0.5b", "qwen2.5-1.5b", "llama-3.2-1b", "llama-3.2-3b", "qwen3-0.6b",
 * "mistral-7b" ... Returns -1 (e lists the names) if unknown. */
int model_shape_config(const char *name, ModelConfig *cfg, Err *e);
const char *model_shape_names(void);

#endif
