/* backend_cpu_backward: the CPU backend's backward pass of each decoder operation, beside the forward
 * it undoes (llm.c style). The forwards are the engine's kernels
 * (kernels/ops.h, kernels/matmul.h) except causal attention, whose training
 * forward here keeps the attention probabilities the backward needs.
 *
 * Convention (llm.c's): every backward ACCUMULATES (+=) into its input and
 * parameter gradients, so a tensor used twice (a tied embedding, a residual
 * stream) just receives two contributions; the caller zeroes gradients
 * before a backward pass. Arrays are row-major float32; T rows = tokens. */
#ifndef ALOE_KERNELS_BACKEND_CPU_BACKWARD_H
#define ALOE_KERNELS_BACKEND_CPU_BACKWARD_H

#include "kernels/backend.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/threads.h"

/* y[T][out] = x[T][in] · W[out][in]ᵀ (+ b). Forward: matmul_forward. */
/* dx[T][in] += dy·W;  dW[out][in] += dyᵀ·x;  db[out] += Σ_t dy[t]. dx, dW
 * and db may each be NULL (first layer; frozen weights under LoRA). Split
 * over the pool's threads. */
void linear_backward(ThreadPool *tp, float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int T, int in, int out);

/* dx[T][in] += dy·W for a frozen W of a kernel type (kernels/matmul.h's
 * QMat: F32, F16, BF16). Float32 W is used in place (linear_backward).
 * Other types: each thread takes a slab of W's columns (those of dx it
 * writes) and converts it into its own tile (tiles + ith · tile_floats) a
 * block of rows at a time, adding each block's product: W is read once,
 * in its stored size, rather than once per thread in float32. */
void linear_backward_frozen(ThreadPool *tp, float *dx, const float *dy, const QMat *W, int T, float *tiles,
                            size_t tile_floats);

/* linear_backward with bf16 products (kernels/gemm_bf16.h): dx += dy·W
 * and dW += dyᵀ·x from dy, W and x rounded to bf16, summed in f32, each
 * GEMM split over the pool by columns; db += Σ_t dy[t] in f32 as
 * linear_backward. W is F32, or BF16 (used as stored) with dW NULL. */
void linear_backward_bf16(ThreadPool *tp, float *dx, float *dW, float *db, const float *dy, const float *x,
                          const QMat *W, int T);

/* y = x / sqrt(mean(x²) + eps) * w per row (rmsnorm_forward).
 * dx += ∂/∂x, dw += ∂/∂w (dw may be NULL: frozen), recomputing the row's
 * scale from x. */
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int dim,
                      float eps);
/* The same with weight w_i + off (Gemma's (1+w) norms: off = 1; dw is
 * still the gradient of w). off = 0 is rmsnorm_backward, bit for bit. */
void rmsnorm_offset_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float off, int n,
                             int dim, float eps);

/* RoPE is a rotation by angle pos·inv_freq; its backward rotates the
 * gradient back by the same angle, in place (same pairing as rope_forward). */
void rope_backward(float *dx, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved);

/* out = silu(gate) * up (swiglu_forward). */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);

/* Embedding lookup x[t] = E[ids[t]]: dE[ids[t]] += dx[t]. */
void embedding_backward(float *dE, const float *dx, const int *ids, int T, int dim);

/* Causal grouped-query self-attention over T tokens holding one or more
 * packed sequences. q [T][H·D], k and v [T][KV·D] (after RoPE); head h reads
 * kv head h / (H / KV). Token t attends to tokens seg_start[t]..t, where
 * seg_start[t] is the index of the first token of t's sequence (NULL: one
 * sequence, all 0), and with AttnOpts.window no key before t-window+1. out
 * [T][H·D]; att [H][T][T] keeps the softmax
 * probabilities (zero outside the attended range) for the backward.
 * AttnDims and AttnOpts (the architecture quirks: scale, soft-cap,
 * sliding window) are kernels/backend.h's. */


void attn_train_forward(ThreadPool *tp, float *out, float *att, const float *q, const float *k, const float *v,
                        const AttnDims *d);
/* dq += ∂/∂q, dk += ∂/∂k, dv += ∂/∂v from dout, using att from the forward.
 * Split over (head, query block) like the forward; each thread adds into its
 * own dk/dv copy (a group's query heads share those rows), summed at the end. */
void attn_train_backward(ThreadPool *tp, float *dq, float *dk, float *dv, const float *dout, const float *att,
                         const float *q, const float *k, const float *v, const AttnDims *d);
/* The same with the quirks o (NULL: none). */
void attn_train_forward_opts(ThreadPool *tp, float *out, float *att, const float *q, const float *k, const float *v,
                             const AttnDims *d, const AttnOpts *o);
void attn_train_backward_opts(ThreadPool *tp, float *dq, float *dk, float *dv, const float *dout, const float *att,
                              const float *q, const float *k, const float *v, const AttnDims *d, const AttnOpts *o);

#endif
