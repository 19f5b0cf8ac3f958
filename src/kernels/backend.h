/* backend: the compute interface model/ and train/ run on -- buffers, and
 * every operation of a decoder's forward, with its backward where training
 * needs one. model/decoder.c and train/decoder_train.c call only this; the
 * CPU kernels (kernels/ops.h, matmul.h, attention.h, cblas) are one
 * implementation of it, backend_cpu (backend_cpu*.c), and a second one,
 * plain loops in double, lives in the tests (tests/kernels/backend_ref.c)
 * to show that a backend plugs in without touching the callers.
 *
 * Memory. Activations, KV caches and gradients are backend memory:
 * allocated, filled and read back through the backend (alloc, upload,
 * download, copy, zero). A pointer into backend memory may be offset by
 * arithmetic (a row, a layer) but never dereferenced by the caller: a
 * device backend hands out device addresses. host_resident says whether
 * backend memory IS host memory (the CPU backend: then a caller may skip a
 * copy, e.g. write logits straight into its own array) -- the one explicit
 * way for a caller to use a buffer from the host (backend_host_ptr).
 *
 * Control data -- token ids, positions, segment starts, KV cache
 * descriptors, RoPE frequency tables, shapes -- is small and passed as
 * host arrays; a device backend copies what it needs per call (or caches a
 * table by its address: they are constant for a model's life).
 *
 * Weights are QMats (kernels/matmul.h) and float vectors. A backend takes
 * them over with mat_bind / vec_bind before the first op (the model calls
 * them for every tensor when it is given a backend): the CPU backend
 * leaves them where they are (memory maps, the training block); a device
 * backend would replace data with its own copy and free it in destroy.
 *
 * Conventions: row-major float32; every backward ACCUMULATES (+=) into its
 * input and parameter gradients (llm.c's rule; a tensor used twice gets two
 * contributions), and a gradient pointer may be NULL (not wanted: frozen
 * weights, the first layer's input). */
#ifndef ALOE_KERNELS_BACKEND_H
#define ALOE_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/threads.h"

/* The norms of the decoders: RMSNorm x / sqrt(mean(x²) + eps) · (offset +
 * w) (offset 0: Llama; 1: Gemma's stored-as-offset weights), or OLMo's
 * LayerNorm without weight or bias (w ignored, may be NULL). */
typedef enum BackendNorm { BNORM_RMS = 0, BNORM_LAYER_NOPARAM = 1 } BackendNorm;

/* The MLP's gated activation: silu(gate)·up or gelu_tanh(gate)·up. */
typedef enum BackendAct { BACT_SWIGLU = 0, BACT_GEGLU_TANH = 1 } BackendAct;

/* Elementwise maps with one constant c: x·c, clamp to [−c, c] (OLMo's
 * clip_qkv), c·tanh(x/c) (Gemma 2's soft-capping). */
typedef enum BackendMap { BMAP_SCALE = 0, BMAP_CLAMP = 1, BMAP_SOFTCAP = 2 } BackendMap;

/* A RoPE call: n rows of n_heads heads of head_dim values, row t at
 * position pos[t]; the leading rot dims of each head turn (rot <
 * head_dim: partial rotary), the rest pass through. Row t takes inv_freq,
 * or inv_freq_long where long_tok[t] is set (LongRoPE per sequence;
 * long_tok NULL: none). cos/sin are multiplied by mscale (1: plain).
 * interleaved: adjacent pairs (permuted GGUF llama Q/K). All host arrays. */
typedef struct BackendRope {
    int n_heads, head_dim, rot;
    const int *pos;
    const float *inv_freq, *inv_freq_long;
    const unsigned char *long_tok;
    int interleaved;
    float mscale;
} BackendRope;

/* Training attention: causal grouped-query self-attention over T tokens
 * holding one or more packed sequences; token t sees tokens seg_start[t]..t
 * (seg_start host, NULL: one sequence) and with window > 0 only the last
 * `window` of them. scale 0: 1/sqrt(head_dim); softcap 0: none. */
typedef struct AttnDims {
    int T, n_heads, n_kv_heads, head_dim;
    const int *seg_start;
} AttnDims;
typedef struct AttnOpts {
    float scale, softcap;
    int window;
} AttnOpts;

/* LoRA dropout (peft's, inverted): element (t, i) of an adapter's input is
 * dropped when 32 bits of a hash of (key, t·in + i) fall below threshold,
 * kept ones scaled by inv_keep. A pure function of its coordinates, so a
 * backward remakes the mask instead of storing it (train/lora.h:
 * lora_dropout_init makes the key). */
#define LORA_DROPOUT_GOLDEN 0x9e3779b97f4a7c15ull /* the hash's step (lora_dropout_init, the mask rows) */
typedef struct LoraDropout {
    uint64_t key;
    uint32_t threshold;
    float inv_keep;
} LoraDropout;

/* One adapted linear layer: y += scale·(x'·Aᵀ)·Bᵀ with x' = dropout(x)
 * (drop NULL: x), A [r][in], B [out][r]. u [T][r] keeps x'·Aᵀ for the
 * backward; xd is T·in floats of backend scratch for x' (used only with
 * drop), du T·r floats of scratch. */
typedef struct BackendLora {
    const float *A, *B;
    int in, out, r;
    float scale;
    const LoraDropout *drop; /* host */
    float *u, *du, *xd;
} BackendLora;

/* What a linear op may do to its input x: the precision contract of
 * linear and linear_group, chosen by the caller per call (docs/DESIGN.md
 * §5). Every backend honours BPREC_EXACT; BPREC_INFER allows, never
 * requires, the rounding below, so a backend without such a fast path (the
 * reference backend, tests/kernels/backend_ref.c) computes both alike.
 *  - BPREC_INFER (inference: model/decoder.c). x may be rounded to the
 *    operand format of the backend's fastest product for W's type, no
 *    coarser than llama.cpp's (its vec_dot_type):
 *      quantised W: blocks of 32 values scaled by their largest to int8
 *        (step max/127; the decode path's Q8_0 activations and the integer
 *        prefill GEMM, for every quantised type);
 *      BF16 W: bf16, round to nearest even (2^-8 relative per value);
 *      F32 and F16 W: no rounding.
 *    One such rounding per matmul input (q/k/v share theirs, as gate/up
 *    do): tests/model/logit_budget.h's act_tol budgets it in the logits.
 *  - BPREC_EXACT (training: train/decoder_train.c). x is multiplied as
 *    float32 against W's stored values widened exactly: y = x·Wᵀ up to
 *    float32 summation. linear_backward always uses exact x and W, so this
 *    is the forward the backward differentiates; a forward with rounded x
 *    would give the gradient of a function it did not compute. */
typedef enum BackendPrec { BPREC_INFER = 0, BPREC_EXACT = 1 } BackendPrec;

/* A label that no loss row counts (train/loss.h's LOSS_IGNORE, PyTorch's). */
#define BACKEND_LABEL_IGNORE (-100)

typedef struct Backend Backend;
struct Backend {
    const char *name;
    int host_resident; /* 1: backend memory is host memory (see above) */
    void *impl;        /* the implementation's state */

    /* ---- lifetime and memory ---- */
    void (*destroy)(Backend *be);
    /* Bytes of backend memory, 64-byte aligned; never NULL (aborts as xmalloc). */
    void *(*alloc)(Backend *be, size_t bytes);
    void (*free)(Backend *be, void *buf);
    void (*upload)(Backend *be, void *dst, const void *host, size_t bytes);
    void (*download)(Backend *be, void *host, const void *src, size_t bytes);
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(Backend *be, void *dst, size_t bytes);
    /* Takes over a weight matrix / a vector of n floats (see above). */
    void (*mat_bind)(Backend *be, QMat *w);
    void (*vec_bind)(Backend *be, float **v, long n);

    /* ---- forward ops ---- */
    /* x[t] = scale · E[ids[t]] (rows dequantised; scale 0 or 1: none). */
    void (*embed)(Backend *be, float *x, const QMat *E, const int32_t *ids, int n, float scale);
    /* out[t] = norm(x[t]) for n rows of dim (out may be x). */
    void (*norm)(Backend *be, BackendNorm kind, float *out, const float *x, const float *w, float offset, int n,
                 int dim, float eps);
    /* y[n][rows] = x[n][cols] · Wᵀ (+ b[rows] when b), x taken as prec
     * allows (BackendPrec above): inference's rounded fast paths, training's
     * exact float32 product. */
    void (*linear)(Backend *be, float *y, const float *x, int n, const QMat *w, const float *b, BackendPrec prec);
    /* ys[i] = x · ws[i]ᵀ (+ bs[i] where bs and bs[i]) for k matrices of the
     * same cols (Q/K/V, gate/up): equal to k linear calls with the same
     * prec; a backend may fuse them. */
    void (*linear_group)(Backend *be, int k, float *const ys[], const float *x, int n, const QMat *const ws[],
                         const float *const bs[], BackendPrec prec);
    /* RoPE on n rows in place; backward: the transposed rotation (its gradient). */
    void (*rope)(Backend *be, float *x, int n, const BackendRope *r, int backward);
    /* out = act(gate)·up over n values (out may be gate). */
    void (*act)(Backend *be, BackendAct kind, float *out, const float *gate, const float *up, long n);
    /* x += y over n values. */
    void (*add)(Backend *be, float *x, const float *y, long n);
    /* x = map(x, c) over n values. */
    void (*map)(Backend *be, BackendMap kind, float *x, long n, float c);
    /* Stores one token's n_heads heads of head_dim floats (src, backend
     * memory) into a head-major cache plane `base` of element type `type`
     * (DT_F32, DT_F16) at position pos: head h goes to base + (h·max_seq +
     * pos)·head_dim elements. */
    void (*kv_store)(Backend *be, void *base, int type, int max_seq, int n_heads, int head_dim, int pos,
                     const float *src);
    /* Inference attention of n query tokens over their caches (the
     * AttnCache pointers are backend memory; the array is host). */
    void (*attention)(Backend *be, float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                      const int *pos);

    /* ---- training: forwards that keep what the backward needs, backwards ---- */
    /* dx[T][in] += dy·W; dW[out][in] += dyᵀ·x; db[out] += Σ dy (each may be
     * NULL). W of any kernel type when dW is NULL (a frozen base); float32
     * when dW is wanted. */
    void (*linear_backward)(Backend *be, float *dx, float *dW, float *db, const float *dy, const float *x,
                            const QMat *W, int T);
    void (*norm_backward)(Backend *be, BackendNorm kind, float *dx, float *dw, const float *dy, const float *x,
                          const float *w, float offset, int n, int dim, float eps);
    void (*act_backward)(Backend *be, BackendAct kind, float *dgate, float *dup, const float *dout,
                         const float *gate, const float *up, long n);
    /* From the mapped values y (clamp: dy where |y| < c, else 0; softcap:
     * dy·(1 − (y/c)²); scale: c·dy). dx may be dy or y: then it is
     * overwritten rather than added to. */
    void (*map_backward)(Backend *be, BackendMap kind, float *dx, const float *dy, const float *y, long n, float c);
    /* dE[ids[t]] += scale · dx[t] (scale 0: 1). */
    void (*embed_backward)(Backend *be, float *dE, const float *dx, const int32_t *ids, int T, int dim, float scale);
    /* out [T][H·D]; att [H][T][T] keeps the probabilities for the backward. */
    void (*attn_train)(Backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                       const AttnDims *d, const AttnOpts *o);
    void (*attn_train_backward)(Backend *be, float *dq, float *dk, float *dv, const float *dout, const float *att,
                                const float *q, const float *k, const float *v, const AttnDims *d,
                                const AttnOpts *o);
    void (*lora)(Backend *be, float *y, const float *x, int T, const BackendLora *a);
    /* dA, dB += their gradients; dx += the adapter's share (dx may be NULL). */
    void (*lora_backward)(Backend *be, float *dx, float *dA, float *dB, const float *dy, const float *x, int T,
                          const BackendLora *a);
    /* W[out][in] += scale · B·A (merging an adapter into its f32 base). */
    void (*lora_merge)(Backend *be, float *W, const float *A, const float *B, int in, int out, int r, float scale);
    /* Σ over rows with labels[t] >= 0 of −log softmax(logits[t])[labels[t]]
     * (labels host); n_valid (may be NULL) gets how many rows counted. */
    double (*nll_sum)(Backend *be, const float *logits, const int32_t *labels, int T, int V, int *n_valid);
    /* dlogits[t] = scale · (softmax(logits[t]) − onehot(labels[t])), zero for
     * an ignored row; dlogits may be logits. */
    void (*nll_sum_backward)(Backend *be, float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                             float scale);
    /* Training's matmul precision (PyTorch's CPU autocast to bfloat16): on,
     * linear on F32 and BF16 weights, linear_backward and the LoRA GEMMs
     * take their products from both operands rounded to bf16 and sum them
     * in f32; parameters, gradients and optimiser state stay f32. mode 0:
     * f32 products (the default); 1: bf16 where the backend multiplies bf16
     * natively (the CPU: AVX512-BF16; AMX-BF16 would count), else f32; 2: bf16
     * everywhere (without native support an emulation giving the same
     * values, slowly: for tests). Returns 1 when products are now bf16. Not
     * while an op runs. NULL: a backend with f32 products only. */
    int (*set_matmul_bf16)(Backend *be, int mode);
};

/* The CPU backend over pool tp (not owned; NULL: the caller's thread).
 * Free it with backend_free. */
Backend *backend_cpu_new(ThreadPool *tp);
/* The pool a CPU backend runs on from now on (training passes its pool per
 * call); a no-op for any other backend. */
void backend_cpu_set_pool(Backend *be, ThreadPool *tp);
/* 1 if be is the CPU backend. */
int backend_is_cpu(const Backend *be);
void backend_free(Backend *be);

/* buf itself when backend memory is host memory, else NULL. */
static inline void *backend_host_ptr(const Backend *be, void *buf) { return be->host_resident ? buf : NULL; }

#endif
