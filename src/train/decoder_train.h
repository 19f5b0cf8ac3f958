/* decoder_train: the decoders of the architecture table (Llama 3, Mistral,
 * Qwen2, Qwen3, OLMo, OLMo 2, Gemma 2, Gemma 3 text, Phi-3) that can be
 * differentiated, following the config's quirks (formats/hfdir.h:
 * norm_type, norm_offset, pre_norm, post_norm, act, embed_scale,
 * attn_scale, attn_softcap, final_softcap, clip_qkv, qk_norm_full,
 * sliding windows per layer, local/long RoPE tables): a training forward that keeps its activations
 * and the backward beside it, in llm.c's layout.
 *
 *  - parameters: ONE float32 block; `w` is inference's weight struct
 *    (ModelWeights: QMat matrices, float vectors) over it, one view per
 *    table kind (the table `tensors` names each span, so the optimiser,
 *    checkpoints and the fixtures all address it by HF name);
 *  - gradients: a second block of the same layout, `g` (also a
 *    ModelWeights) over it;
 *  - activations: a third block, sized for the longest sequence seen.
 *
 * Every operation, forward and backward, is the backend's (kernels/backend.h;
 * the CPU backend unless td_set_backend gave another): the forwards are the
 * engine's own (linear, norm, rope, act), attention the training one that
 * keeps its probabilities. One call handles one sequence, or several packed
 * end to end (td_forward_packed); gradients of successive calls accumulate.
 *
 * Why not the engine's model: the inference forward keeps a KV cache, not
 * the per-layer activations a backward needs, and holds weights in their
 * stored dtype (memory-mapped, possibly quantised) where training needs
 * float32 it can update. The weights are one struct (ModelWeights) in
 * both, so the inference model could borrow `w` for evaluation. */
#ifndef ALOE_TRAIN_DECODER_TRAIN_H
#define ALOE_TRAIN_DECODER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/arch.h"
#include "formats/hfdir.h"
#include "kernels/backend.h"
#include "kernels/threads.h"
#include "model/decoder.h"
#include "train/lora.h"

typedef struct TdTensor {
    char name[96];    /* Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight */
    int64_t rows, cols; /* [rows, cols]; vectors are [1, n] here but 1-D in files */
    int ndim;
    size_t offset, numel;
} TdTensor;

/* LoRA adapters of one layer (NULL where a module is not targeted). */
typedef struct TdLoraLayer {
    float *A[LORA_N_TARGETS], *B[LORA_N_TARGETS];
} TdLoraLayer;

/* Saved activations of one layer, T rows each. q_lin and k_lin (the
 * projections before the q/k norms, clamped with clip_qkv) are q and k in
 * a model with neither; xn and xn2 are res0 and res1 without pre-norms
 * (OLMo 2); ao and fo (the attention's and the MLP's outputs before their
 * post-norms) exist only with post_norm. The MLP's activation output is not
 * kept (the backward recomputes it). */
typedef struct TdActs {
    float *res0, *xn, *q_lin, *k_lin, *q, *k, *v, *att, *ctx, *ao, *res1, *xn2, *gate, *up, *fo;
} TdActs;

typedef struct TrainDecoder {
    ModelConfig cfg;
    int n_tensors;
    TdTensor *tensors;
    size_t n_params;
    float *params, *grads;
    /* The weights (model/decoder.h's ModelWeights, inference's struct):
     * w over params (a frozen base's matrices: over `frozen`, in
     * frozen_dtype), g over grads (every matrix DT_F32; all absent when
     * there is no gradient block). A fused tensor (Phi-3's qkv_proj,
     * gate_up_proj) is one TdTensor under its stored name; wq, wk, wv
     * (w_gate, w_up) and their gradients view its row ranges, so every
     * product runs on its own slice. */
    ModelWeights w, g;
    float *inv_freq; /* head_dim/2 RoPE frequencies, scaling applied */
    float *inv_freq_local; /* sliding layers' table (Gemma 3's local theta); NULL: inv_freq */
    float *inv_freq_long;  /* LongRoPE's long factors, for a forward past original_max_pos; NULL: none */
    float rope_mscale;     /* cos/sin factor (LongRoPE's attention factor; else 1) */
    BackendNorm norm_kind; /* of every norm of the model */
    float norm_off;        /* RMSNorm's weight offset: Gemma's (1 + w) 1, else 0 */
    Backend *be;           /* what every op runs on (owned; td_backend binds the caller's pool) */
    const float *fwd_inv_freq; /* the global table the last forward used (inv_freq or inv_freq_long) */
    /* final_softcap: the capped logits of the last td_head_forward block
     * [cap_t0, cap_t1), which td_head_backward needs (recomputed if the
     * block differs) */
    float *cap_logits;
    long cap_floats;
    int cap_t0, cap_t1;

    /* activations of the last forward */
    int T, T_cap;
    int32_t *ids;
    int *seg_start, *pos; /* packing: first token of each token's sequence; position in it */
    float *act_block;
    TdActs *acts;
    float *res_final, *xf;
    float *scratch; /* backward work buffers, T_cap rows */

    /* LoRA (td_lora_attach). When on, the base parameters are frozen: the
     * base gradient block is freed (grads = NULL, g all NULL) and only the
     * adapter block (lora_params / lora_grads, peft file names in
     * lora_tensors) trains. */
    int lora_on;
    LoraConfig lora;
    float lora_scale;
    int n_lora_tensors;
    TdTensor *lora_tensors;
    size_t n_lora_params;
    float *lora_params, *lora_grads;
    TdLoraLayer *la, *lg;
    /* the target naming each target's stored module: t itself, or for a
     * fused one the first of its module (Phi-3: k, v -> q's qkv_proj; up ->
     * gate's gate_up_proj), whose A the parts share and whose B rows they are */
    int lora_group[LORA_N_TARGETS];
    float *lora_u;  /* saved x·Aᵀ per layer and target, T_cap × r each */
    float *lora_du; /* backward scratch, T_cap × r */
    /* LoRA dropout (lora.dropout > 0, between td_lora_dropout_on and _off):
     * the masks of pass drop_pass under drop_seed; fwd_* is what the last
     * forward used, which its backward reuses. */
    int drop_on, fwd_drop;
    uint64_t drop_seed, drop_pass, fwd_seed, fwd_pass;
    float *lora_xd; /* dropout(x), T_cap × the widest adapted input */

    /* Frozen base (td_freeze_base): the weight matrices live in `frozen`, in
     * frozen_dtype, laid out like params (the tensor at float offset o
     * starts dtype_nbytes(frozen_dtype, o) bytes in), and w's QMats view
     * them there; their spans of params stay untouched zero pages. */
    void *frozen;
    int frozen_dtype;
} TrainDecoder;

/* Lays out the parameters of cfg (all zero). Errors on an architecture this
 * trainer does not handle (BERT). Sliding-window layers attend within their
 * window (kernels/backend.h's AttnOpts), at any sequence length. */
int td_init(TrainDecoder *m, const ModelConfig *cfg, Err *e);
void td_free(TrainDecoder *m);
/* Keeps the weight matrices (embeddings, projections, head) of a base that
 * never trains -- under LoRA, or a DPO reference -- in dtype (DT_BF16 or
 * DT_F16, a checkpoint's own, or DT_F32) instead of in the float32 block:
 * half the memory for a bf16 checkpoint. Each use converts: the forward's
 * GEMM a tile at a time, the backward through the backend's own tiles. The
 * values are the stored ones, so results match a float32 load of the same
 * file. Call right after td_init, before td_load or td_init_random; its
 * forwards need a thread pool (tp non-NULL; one thread is fine). Norm
 * weights and biases stay float32. A frozen base has no gradients;
 * trainer_init refuses it without LoRA, td_lora_merge converts it back to
 * float32 first. */
int td_freeze_base(TrainDecoder *m, int dtype, Err *e);
/* m's backend, a CPU one bound to pool tp (the pool of the call at hand):
 * what the trainer's loss runs on too. */
Backend *td_backend(TrainDecoder *m, ThreadPool *tp);
/* Runs m on be from now on (taken over; the old one is freed). Only a
 * host-resident backend (be->host_resident): the parameters, gradients,
 * optimiser and checkpoints are host memory; otherwise an error (be freed). */
int td_set_backend(TrainDecoder *m, Backend *be, Err *e);
/* Fills every parameter from a safetensors file or HF directory (converted
 * to float32, or for a frozen base's matrices to its dtype); a missing
 * tensor or a wrong shape is an error naming it. */
int td_load(TrainDecoder *m, const char *path, Err *e);
/* Random weights as transformers initialises them: matrices (embeddings
 * included) normal(0, std), biases 0, norm weights 1. */
void td_init_random(TrainDecoder *m, uint64_t seed, float std);
/* The tensor called name, or NULL. */
const TdTensor *td_find(const TrainDecoder *m, const char *name);

/* logits[T][vocab] for ids[0..T), keeping the activations for td_backward.
 * Errors on an id outside the vocabulary. */
int td_forward(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, int T, float *logits, Err *e);
/* The same over several sequences packed into T rows: token t belongs to
 * the sequence starting at seg_start[t] (attention stays inside it, RoPE
 * positions restart at 0), so one call batches every matrix product. */
int td_forward_packed(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, const int *seg_start, int T,
                      float *logits, Err *e);
/* td_forward_packed in two parts, so a loss can take the logits a block of
 * rows at a time and the T × vocab logits (and their gradient) never exist
 * whole: the forward up to the final norm (seg_start NULL: one sequence),
 * then logits[t1-t0][vocab] of rows [t0, t1). */
int td_forward_hidden(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, const int *seg_start, int T, Err *e);
void td_head_forward(TrainDecoder *m, ThreadPool *tp, int t0, int t1, float *logits);
/* seg_start for n sequences of the given lengths laid end to end. */
void td_pack_segments(const int *lens, int n, int *seg_start);
/* Adds the gradient of the loss whose gradient w.r.t. the logits of the last
 * forward is dlogits[T][vocab] into m->grads. */
void td_backward(TrainDecoder *m, ThreadPool *tp, const float *dlogits);
/* td_backward in parts, after td_forward_hidden: td_head_backward for
 * every block of rows [t0, t1) (dlogits: that block's gradient w.r.t. its
 * logits), each row exactly once, then td_backward_hidden. */
void td_head_backward(TrainDecoder *m, ThreadPool *tp, int t0, int t1, const float *dlogits);
/* Whether the head has a gradient (not under LoRA or a frozen base). When
 * it has none, td_head_backward is linear in dlogits with nothing else
 * kept, so a loss may pass the gradient of a row before it knows the row's
 * factor and apply the factor after with td_scale_head_grad. */
int td_head_trains(const TrainDecoder *m);
/* Multiplies the gradient td_head_backward left for rows [t0, t1) by f
 * (before td_backward_hidden). Only for a head that does not train. */
void td_scale_head_grad(TrainDecoder *m, int t0, int t1, float f);
void td_backward_hidden(TrainDecoder *m, ThreadPool *tp);
/* Zeroes the gradients (and the adapter's, with LoRA). */
void td_zero_grad(TrainDecoder *m);

/* Adds zero-initialised adapters for c's targets to every layer and freezes
 * the base (freeing its gradient block). Checks r, alpha, targets and
 * dropout (lora_config_check). */
int td_lora_attach(TrainDecoder *m, const LoraConfig *c, Err *e);
/* LoRA dropout (train/lora.h) in the forwards that follow, and in their
 * backwards, until td_lora_dropout_off: training forwards only (a
 * reference or evaluation forward runs with it off, the default). Each
 * forward pass needs its own pass number (the trainer derives it from the
 * step and the example), or it would reuse the masks. No effect when
 * lora.dropout is 0 or no adapters are on. */
void td_lora_dropout_on(TrainDecoder *m, uint64_t seed, uint64_t pass);
void td_lora_dropout_off(TrainDecoder *m);
/* peft's initialisation of every adapter (A uniform ±1/sqrt(in), B = 0). */
void td_lora_init(TrainDecoder *m, uint64_t seed);
/* Reads a peft adapter directory: its config, then attaches and fills the
 * adapters; a missing tensor or a wrong shape is an error naming it. */
int td_lora_load(TrainDecoder *m, const char *dir, Err *e);
/* Folds the adapters into the base weights (W += scale·B·A) and removes
 * them: the model then computes what base + adapter computed, and all of
 * it trains again (a frozen base is first converted to float32). */
void td_lora_merge(TrainDecoder *m);
/* peft's module name of target t for this model ("q_proj"; Phi-3's
 * "qkv_proj" for q), in buf; NULL for the later parts of a fused module
 * (Phi-3's k, v, up), which it names already. */
const char *td_lora_module(const TrainDecoder *m, int t, char *buf, size_t size);
/* The adapter tensor with this peft file name, or NULL. */
const TdTensor *td_lora_find(const TrainDecoder *m, const char *name);

#endif
