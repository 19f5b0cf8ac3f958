/* backend_cpu_backward_arch: the operations OLMo, OLMo 2, Gemma 2/3 and Phi-3 add to the
 * Llama-family decoder, each forward beside its backward (backend_cpu_backward.h's
 * convention: backwards ACCUMULATE into their gradients; row-major float32).
 *
 * The forwards are the engine's (kernels/ops.h), so training and inference
 * compute the same thing; they follow transformers in float32
 * (tests/data/arch/README.md gives the equations per architecture). Sliding windows, attention scale and logit
 * soft-capping inside attention are kernels/backend.h's AttnOpts. */
#ifndef ALOE_KERNELS_BACKEND_CPU_BACKWARD_ARCH_H
#define ALOE_KERNELS_BACKEND_CPU_BACKWARD_ARCH_H

#include <stdint.h>

/* The norms a decoder may use. */
typedef enum TrainNorm {
    TNORM_RMS = 0, /* x / sqrt(mean(x²) + eps) · w (Llama, Qwen, OLMo 2, Phi-3) */
    TNORM_RMS_1P,  /* x / sqrt(mean(x²) + eps) · (1 + w) (Gemma 2/3: weights stored as an offset from 1) */
    TNORM_LAYER,   /* (x − mean(x)) / sqrt(var(x) + eps), no weight or bias (OLMo: LayerNorm without
                    * parameters; w is ignored and may be NULL) */
} TrainNorm;

/* out[t] = norm(x[t]) for n rows of dim values: the kernels' forwards
 * (rmsnorm_offset_forward, layernorm_noparam_forward). */
void norm_forward(TrainNorm kind, float *out, const float *x, const float *w, int n, int dim, float eps);
/* dx += ∂/∂x, dw += ∂/∂w (dw NULL: frozen, or TNORM_LAYER's absent weight). */
void norm_backward(TrainNorm kind, float *dx, float *dw, const float *dy, const float *x, const float *w, int n,
                   int dim, float eps);

/* Soft-capping y = cap · tanh(x / cap) (Gemma 2's final logits; attention's
 * scores are AttnOpts.softcap); forward: kernels/ops.h's softcap_forward.
 * dx += dy · (1 − (y / cap)²), from the capped values y. dx may be dy
 * or y: then it is overwritten by dy·(1 − (y/cap)²) instead of added to. */
void softcap_backward(float *dx, const float *dy, const float *y, long n, float cap);

/* GeGLU with the tanh approximation of GELU (transformers'
 * gelu_pytorch_tanh), out = gelu_tanh(gate) · up, gelu_tanh(x) =
 * x/2 · (1 + tanh(sqrt(2/π) · (x + 0.044715 x³))); forward: kernels/ops.h's
 * geglu_tanh_forward. */
void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n);

/* OLMo's clip_qkv (forward: kernels/ops.h's clamp_forward to [−c, c]).
dx += dy where y (the clamped value) is strictly inside (−c, c); zero
 * where it was clamped. PyTorch also passes the gradient of an x exactly
 * at ±c, which y cannot tell from one beyond it: a float landing exactly
 * on the bound, a measure-zero event for continuous activations. dx may
 * be dy or y: then the masked gradient replaces it. */
void clamp_backward(float *dx, const float *dy, const float *y, long n, float c);

/* The embedding lookup times a scale (Gemma: sqrt(hidden_size), rounded
 * to float): out[t] = scale · E[ids[t]]; dE[ids[t]] += scale · dx[t]. */
void embedding_scaled_forward(float *out, const float *E, const int32_t *ids, int T, int dim, float scale);
void embedding_scaled_backward(float *dE, const float *dx, const int32_t *ids, int T, int dim, float scale);

/* RoPE whose cos and sin are multiplied by `scale` (LongRoPE's attention
 * factor, Phi-3 128k/3.5; 1 elsewhere): forward kernels/ops.h's
 * rope_forward_scaled (cos and sin rounded to float, then scaled, as
 * transformers). The backward applies the transposed (scaled) rotation to
 * dx in place; inv_freq carries LongRoPE's per-dimension factors already
 * (1 / (factor_i · θ^(2i/d))). */
void rope_scaled_backward(float *dx, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved,
                          float scale);

#endif
