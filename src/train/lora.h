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

#include <stdint.h>

#include "base/err.h"
#include "base/rng.h"
#include "kernels/backend.h"

/* The linear layers of a decoder block an adapter can target. */
enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };

typedef struct LoraConfig {
    int r;
    double alpha;
    double dropout;     /* p in [0, 1): peft's lora_dropout, training steps only */
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
/* Checks r > 0, alpha > 0, targets non-empty, 0 <= dropout < 1. */
int lora_config_check(const LoraConfig *c, Err *e);
/* Reads dir/adapter_config.json. Variants this trainer does not implement
 * (DoRA, bias training, per-module rank/alpha patterns, fan_in_fan_out,
 * layer subsets, modules_to_save) are errors naming the field. */
int lora_config_load(const char *dir, LoraConfig *c, Err *e);

/* LoRA dropout, as peft: y += scale·B·A·dropout(x), where dropout keeps an
 * element with probability 1 - p and scales it by 1/(1 - p) (inverted
 * dropout), on the adapter's input only; the base layer sees x whole.
 *
 * The masks are counter-based: element (t, i) of module `target`'s input in
 * layer `layer` during forward pass `pass` is dropped when 32 bits of a
 * hash of (seed, pass, layer, target, t·in + i) fall below p·2^32. A mask
 * is thus a pure function of its coordinates: the backward recomputes it
 * instead of storing it, a resumed run draws the same masks as an
 * uninterrupted one (pass is derived from the step), and the thread count
 * does not matter. The mask struct (LoraDropout) and the rows it makes are
 * the backend's (kernels/backend.h; the CPU's in backend_cpu_lora.c): this
 * makes its key. */
void lora_dropout_init(LoraDropout *d, double p, uint64_t seed, uint64_t pass, int layer, int target);
/* peft's initialisation: A uniform in ±1/sqrt(in), B zero. */
void lora_init_weights(float *A, float *B, int in, int out, int r, Rng *rng);

#endif
