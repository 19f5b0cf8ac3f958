/* optim: AdamW, global-norm gradient clipping and learning-rate schedules.
 *
 * Layout (llm.c's): the trainer keeps all trainable parameters in ONE
 * contiguous float block, their gradients in a second block of the same
 * shape, and the optimiser keeps its first and second moments (m, v) in two
 * more. A tensor is a span [offset, offset+numel) of those blocks; per span
 * the trainer says whether weight decay applies.
 *
 * The update is exactly torch.optim.AdamW (single-tensor path), in float32:
 *     p  *= 1 - lr*wd                      (decoupled decay, before Adam)
 *     m   = m + (g - m)*(1 - beta1)
 *     v   = beta2*v + (1 - beta2)*g*g
 *     p  -= lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)
 * with the scalars (1-beta, lr*wd, bias corrections) formed in double and
 * then rounded to float, as torch does with Python numbers.
 *
 * Which parameters are decayed: the fixtures (and plain torch.optim.AdamW
 * over model.parameters()) decay every tensor. The Hugging Face Trainer, and
 * so TRL, decays all but biases and normalisation weights;
 * optim_hf_decays(name) says which, for the trainer to fill ParamSpan.decay. */
#ifndef ALOE_TRAIN_OPTIM_H
#define ALOE_TRAIN_OPTIM_H

#include <stddef.h>

#include "base/err.h"
#include "kernels/threads.h"

typedef struct ParamSpan {
    size_t offset; /* first element in the parameter block */
    size_t numel;
    int decay;     /* 1: apply weight decay to this tensor */
} ParamSpan;

typedef struct AdamWConfig {
    /* double, as Python holds them: 1 - 0.999 must be formed in double
     * before the cast to float, or the update drifts by 1e-5 relative. */
    double beta1, beta2, eps, weight_decay;
} AdamWConfig;

/* torch's defaults except weight decay: betas 0.9/0.999, eps 1e-8, wd 0.0
 * (the HF Trainer's default; torch.optim.AdamW's own default is 0.01). */
AdamWConfig adamw_defaults(void);

typedef struct AdamW {
    AdamWConfig cfg;
    size_t n;     /* elements in the parameter block */
    float *m, *v; /* moments, n each, zero at start */
    long step;    /* updates done so far */
} AdamW;

int adamw_init(AdamW *o, const AdamWConfig *cfg, size_t n, Err *e);
void adamw_free(AdamW *o);
/* One update of every span with learning rate lr. Spans must lie inside the
 * block; elements outside every span are left alone (frozen). */
void adamw_step(AdamW *o, float *params, const float *grads, const ParamSpan *spans, int n_spans,
                double lr);
/* The same split over the pool's threads (each takes a share of every span;
 * elementwise, so the result does not depend on the thread count). */
void adamw_step_tp(AdamW *o, ThreadPool *tp, float *params, const float *grads, const ParamSpan *spans,
                   int n_spans, double lr);

/* HF Trainer's rule: decay all but biases and normalisation weights (names
 * containing "bias", "layernorm", "rmsnorm", or a "norm"/"*_norm" component). */
int optim_hf_decays(const char *name);

/* L2 norm of the whole gradient block (accumulated in double). */
float grad_global_norm(const float *grads, size_t n);
/* torch.nn.utils.clip_grad_norm_: scales grads by min(1, max_norm/(norm+1e-6))
 * and returns the norm BEFORE clipping. max_norm <= 0 only measures. */
float grad_clip_global_norm(float *grads, size_t n, float max_norm);
/* The same over the pool's threads (per-thread double partial sums). */
float grad_clip_global_norm_tp(ThreadPool *tp, float *grads, size_t n, float max_norm);
/* Zeroes n floats over the pool's threads. */
void grad_zero_tp(ThreadPool *tp, float *grads, size_t n);

/* Learning-rate schedules as pure functions of the update index, matching
 * transformers' get_{constant,linear,cosine}_schedule_with_warmup: `step` is
 * the 0-based index of the update about to be made, so with warm-up the
 * first update uses lr 0 (as in the HF Trainer). */
typedef enum { LR_CONSTANT, LR_LINEAR, LR_COSINE } LrKind;

typedef struct LrSchedule {
    LrKind kind;
    double lr;         /* peak learning rate */
    long warmup_steps; /* linear ramp from 0 over these updates */
    long total_steps;  /* decay to 0 at this update (linear, cosine) */
} LrSchedule;

double lr_at(const LrSchedule *s, long step);
/* Parses "constant", "linear" or "cosine". */
int lr_kind_parse(const char *name, LrKind *out, Err *e);
const char *lr_kind_name(LrKind k);

#endif
