/* ops: the elementwise and per-row operations of a Llama-family decoder,
 * each a `*_forward` on plain float arrays (the trainer puts the matching
 * `*_backward` beside it, llm.c style).
 *
 * Numerics follow Hugging Face transformers in float32: RMSNorm is
 * x / sqrt(mean(x^2) + eps) * w, SiLU is x * sigmoid(x), RoPE angles are
 * float32(pos) * inv_freq rounded to float. */
#ifndef ALOE_KERNELS_OPS_H
#define ALOE_KERNELS_OPS_H

/* out[t] = rmsnorm(x[t]) * w for n rows of dim values (out may be x). */
void rmsnorm_forward(float *out, const float *x, const float *w, int n, int dim, float eps);

/* out[t] = rmsnorm(x[t]) * (offset + w) (Gemma's (1+w) with offset 1;
 * offset 0 is rmsnorm_forward). */
void rmsnorm_offset_forward(float *out, const float *x, const float *w, float offset, int n, int dim, float eps);

/* out[t] = (x[t] - mean) / sqrt(var + eps), the biased variance, no weight
 * or bias (OLMo's LayerNorm: F.layer_norm(x, shape, None, None, eps)); out
 * may be x. */
void layernorm_noparam_forward(float *out, const float *x, int n, int dim, float eps);

/* x[i] = clamp(x[i], -c, c) (OLMo's clip_qkv). */
void clamp_forward(float *x, long n, float c);

/* x[i] = cap * tanh(x[i] / cap) (Gemma 2's attention and final logit
 * soft-capping), computed as transformers does: divide, tanh, multiply. */
void softcap_forward(float *x, long n, float cap);

/* x[i] *= s */
void scale_forward(float *x, long n, float s);

/* x[i] += y[i] */
void add_forward(float *x, const float *y, long n);
/* x[t][i] += b[i] for n rows of dim values (bias add). */
void add_bias_forward(float *x, const float *b, int n, int dim);

/* out = silu(gate) * up, elementwise over n values (out may alias gate). */
void swiglu_forward(float *out, const float *gate, const float *up, long n);

/* gelu with the tanh approximation (gelu_pytorch_tanh):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
float gelu_tanh(float x);
/* out = gelu_tanh(gate) * up, elementwise (GeGLU: Gemma's MLP; out may alias gate). */
void geglu_tanh_forward(float *out, const float *gate, const float *up, long n);

/* In-place softmax of n values (max-subtracted). */
void softmax_forward(float *x, int n);

/* RoPE frequencies. RopeScaling selects how base frequencies are adjusted
 * for long context (Llama 3's piecewise rule, or plain linear division). */
typedef enum RopeScalingType { ROPE_SCALING_NONE = 0, ROPE_SCALING_LINEAR, ROPE_SCALING_LLAMA3 } RopeScalingType;

typedef struct RopeScaling {
    RopeScalingType type;
    float factor;
    float low_freq_factor, high_freq_factor; /* llama3 */
    int original_max_pos;                    /* llama3 */
} RopeScaling;

/* inv_freq[i] = 1 / theta^(2i/rot_dim) for i < rot_dim/2, then scaled. */
void rope_inv_freq(float *inv_freq, int rot_dim, double theta, const RopeScaling *scaling);

/* Rotates n_heads vectors of head_dim values at position pos in place.
 * interleaved = 0: the Hugging Face layout (pairs (i, i + head_dim/2), as
 * in `rotate_half`); interleaved = 1: adjacent pairs (2i, 2i+1), the layout
 * of GGUF `llama` weights whose Q/K rows llama.cpp's converter permuted. */
void rope_forward(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved);
/* rope_forward with cos and sin multiplied by mscale (LongRoPE's attention
 * factor, as transformers scales them: cos(angle) * mscale in float). */
void rope_forward_scaled(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved,
                         float mscale);

#endif
