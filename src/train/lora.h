/* lora: low-rank adapters (Hu et al., 2021) as peft defines them.
 *
 * An adapted linear layer computes y = x·Wᵀ + b + scale · (x·Aᵀ)·Bᵀ with
 * A [r][in], B [out][r], scale = alpha / r (alpha / sqrt(r) with rsLoRA).
 * W and b stay frozen; only A and B train. peft initialises A like a
 * linear layer (Kaiming-uniform, bound 1/sqrt(in)) and B to zero, so
 * training starts from the base model exactly.
 *
 * On disk (a peft adapter directory): adapter_config.json and
 * adapter_model.safetensors with tensors named
 *   base_model.model.model.layers.<l>.self_attn.q_proj.lora_A.weight
 * (peft drops the adapter name "default" when saving; in memory and in
 * gradients PyTorch calls them ...lora_A.default.weight). */
#ifndef ALOE_TRAIN_LORA_H
#define ALOE_TRAIN_LORA_H

#include "base/err.h"
#include "base/rng.h"
#include "kernels/threads.h"

/* The linear layers of a decoder block an adapter can target. */
enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };

typedef struct LoraConfig {
    int r;
    double alpha;
    double dropout;     /* only 0 is implemented so far */
    unsigned targets;   /* bit (1 << LORA_Q) ... */
    int use_rslora;
} LoraConfig;

/* "q_proj", "k_proj", ..., "down_proj" */
const char *lora_module_name(int target);
/* peft's scale: alpha / r, or alpha / sqrt(r) with rsLoRA. */
float lora_scale(const LoraConfig *c);
/* A comma-separated list of q,k,v,o,gate,up,down (or the module names
 * q_proj, ...; "all" = all seven) into a bit set. */
int lora_targets_parse(const char *list, unsigned *out, Err *e);
/* Checks r > 0, alpha > 0, targets non-empty, dropout 0. */
int lora_config_check(const LoraConfig *c, Err *e);
/* Reads dir/adapter_config.json. Variants this trainer does not implement
 * (DoRA, bias training, per-module rank/alpha patterns, fan_in_fan_out,
 * layer subsets, modules_to_save) are errors naming the field. */
int lora_config_load(const char *dir, LoraConfig *c, Err *e);

/* One adapted linear layer over T rows. forward: y += scale·(x·Aᵀ)·Bᵀ,
 * keeping u = x·Aᵀ [T][r] for the backward. */
void lora_forward(float *y, float *u, const float *x, const float *A, const float *B, int T, int in, int out, int r,
                  float scale);
/* dA += ∂/∂A, dB += ∂/∂B, dx += the adapter's share of ∂/∂x (dx may be
 * NULL). du is T*r floats of scratch. */
void lora_backward(float *dx, float *dA, float *dB, float *du, const float *dy, const float *x, const float *u,
                   const float *A, const float *B, int T, int in, int out, int r, float scale);
/* peft's initialisation: A uniform in ±1/sqrt(in), B zero. */
void lora_init_weights(float *A, float *B, int in, int out, int r, Rng *rng);

#endif
