/* trainer: one optimisation step of SFT or DPO over tokenised examples.
 *
 * A step = accumulate (forward + backward of every example of the batch,
 * gradients summed) then apply (clip to the global norm, learning rate from
 * the schedule, AdamW, zero the gradients). Gradient accumulation is just a
 * larger batch passed to accumulate: the loss is normalised over the whole
 * step, as the HF Trainer does with num_items_in_batch.
 *
 * What trains: every parameter of the model, or with LoRA attached only the
 * adapters (the base is frozen). Weight decay follows TrainerConfig.decay:
 * TRAIN_DECAY_HF (the HF/TRL default: not biases or norm weights) or
 * TRAIN_DECAY_ALL (torch.optim.AdamW over model.parameters(), as the
 * fixtures do).
 *
 * Losses:
 *  SFT: sum over target tokens of -log p, divided by the number of target
 *       tokens in the step.
 *  DPO: the pair's chosen and rejected sequences run as one packed forward
 *       (attention kept apart); their completion log-probs feed train/loss.h's
 *       DPO loss; the reference's log-probs come from a reference model or
 *       from a cache the caller computed once (trainer_ref_logps).
 * Both take the LM head a block of rows at a time, so the logits held are
 * 128 × vocab floats whatever the sequence length. (DPO with a head that
 * trains -- full fine-tuning -- computes the head's logits twice: once for
 * the log-probs, once for the gradient scaled by the pair's loss.)
 *
 * LoRA dropout (a LoraConfig's dropout > 0) applies to the training
 * forwards here, with masks from TrainerConfig.seed, the step and the
 * example; never to trainer_ref_logps. */
#ifndef ALOE_TRAIN_TRAINER_H
#define ALOE_TRAIN_TRAINER_H

#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "train/decoder_train.h"
#include "train/loss.h"
#include "train/optim.h"

/* A tokenised SFT example: is_target[t] = 1 when token t is predicted with
 * loss (the reply's tokens, end of turn included). */
typedef struct SftTokens {
    const int32_t *ids;
    const uint8_t *is_target;
    int n;
} SftTokens;

/* A tokenised preference pair: chosen and rejected each start with the same
 * n_prompt prompt tokens; the completion is what follows. */
typedef struct DpoTokens {
    const int32_t *chosen, *rejected;
    int n_chosen, n_rejected, n_prompt;
} DpoTokens;

typedef enum { TRAIN_DECAY_HF, TRAIN_DECAY_ALL } TrainDecay;

typedef struct TrainerConfig {
    LrSchedule schedule;
    AdamWConfig adamw;
    TrainDecay decay;
    float max_grad_norm; /* <= 0: measure only, no clipping */
    DpoConfig dpo;
    uint64_t seed; /* LoRA dropout masks: the forward of example i of step s is pass (s << 32) + i */
} TrainerConfig;

typedef struct Trainer {
    TrainerConfig cfg;
    TrainDecoder *policy;
    ThreadPool *tp;
    float *params, *grads; /* the trainable block (model or adapters) */
    size_t n;
    ParamSpan *spans;
    int n_spans;
    AdamW opt;
    long step; /* optimizer steps done */
    float *logits;
    size_t logits_cap;
} Trainer;

/* Statistics of one step, with TRL's metric names in trainer_metrics_line. */
typedef struct StepStats {
    double loss, grad_norm, learning_rate;
    long tokens;     /* tokens run through the model (prompts included) */
    long n_targets;  /* SFT: target tokens */
    int is_dpo;
    DpoStats dpo;
} StepStats;

/* policy must outlive the trainer; attach LoRA before this if wanted. */
int trainer_init(Trainer *t, TrainDecoder *policy, ThreadPool *tp, const TrainerConfig *cfg, Err *e);
void trainer_free(Trainer *t);

/* Forward + backward of a whole SFT batch into the gradients; fills loss,
 * tokens and n_targets. */
int trainer_sft_accumulate(Trainer *t, const SftTokens *ex, int n, StepStats *st, Err *e);
/* The same for DPO. ref_logps holds 2n values (chosen, rejected per pair),
 * from trainer_ref_logps. */
int trainer_dpo_accumulate(Trainer *t, const DpoTokens *pairs, int n, const double *ref_logps, StepStats *st,
                           Err *e);
/* Clip, schedule, AdamW, zero gradients; fills grad_norm and learning_rate. */
void trainer_apply(Trainer *t, StepStats *st);

/* Completion log-probs of n pairs under model m (the reference: a separate
 * model, or the policy with its adapters switched off by the caller), into
 * out[2i] (chosen) and out[2i+1] (rejected). Computed once, they can be
 * cached and reused across epochs and runs. */
int trainer_ref_logps(TrainDecoder *m, ThreadPool *tp, const DpoTokens *pairs, int n, double *out, Err *e);

/* One JSON line (no newline) of TRL-named metrics: step, loss,
 * learning_rate, grad_norm, and for DPO rewards/chosen, rewards/rejected,
 * rewards/margins, rewards/accuracies, logps/chosen, logps/rejected;
 * tokens_per_second when > 0. */
void trainer_metrics_line(const StepStats *st, long step, double epoch, double tokens_per_second, StrBuf *out);

#endif
