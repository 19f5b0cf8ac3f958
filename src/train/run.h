/* run: a whole training run, what `aloe train sft|dpo` does.
 *
 * Load the model (HF directory), its tokenizer and chat template; read and
 * tokenise the data (train/data.h, train/encode.h; examples longer than
 * max_len even without earlier turns are skipped with a warning); for DPO
 * compute the reference log-probs once (the --ref model, or else the
 * starting policy itself: with LoRA the adapters start at B = 0, so the
 * policy before step 1 is the base) and cache them in DIR/ref_logps.safetensors;
 * then steps of batch × grad_accum examples in a seeded shuffled order,
 * writing DIR/metrics.jsonl (TRL names) every step, a checkpoint
 * DIR/checkpoint-N (train/checkpoint.h: weights in float32 -- the model or
 * the adapter --, optimizer.safetensors, trainer_state.json with the
 * settings; switched in whole, only the newest kept) every save_every
 * steps, at the end and when *stop is set (Ctrl-C), and at the end the
 * trained model in DIR itself (in save_dtype, with the GGUF asked for),
 * published so that DIR is a complete model or none.
 * resume restarts from the newest complete checkpoint: weights, optimiser,
 * schedule and the data position (the order is a function of the seed and
 * the epoch); other settings are refused, naming each. A run without
 * resume refuses a DIR that holds a checkpoint. */
#ifndef ALOE_TRAIN_RUN_H
#define ALOE_TRAIN_RUN_H

#include <signal.h>
#include <stdint.h>

#include "base/err.h"
#include "train/data.h"
#include "train/loss.h"
#include "train/optim.h"

typedef enum { RUN_SFT, RUN_DPO } RunKind;

typedef struct TrainRunOptions {
    RunKind kind;
    const char *model;         /* HF model directory */
    const char *data;          /* JSONL: aloe trees or TRL records */
    const char *out;           /* output directory */
    const char *ref;           /* DPO reference model directory, or NULL */
    const char *chat_template; /* a family name, or NULL: the model's own */
    int lora_r;                /* 0: full fine-tuning */
    double lora_alpha;
    double lora_dropout; /* peft's lora_dropout, in [0, 1) */
    unsigned lora_targets;
    double lr;
    long steps;    /* > 0: this many optimizer steps ... */
    double epochs; /* ... else this many passes over the data */
    int batch, grad_accum, max_len;
    double weight_decay, max_grad_norm;
    long warmup;
    LrKind schedule;
    DpoConfig dpo;
    TreeBranch branch;
    LossOn loss_on;
    uint64_t seed;
    int resume;      /* continue from DIR's newest complete checkpoint */
    long save_every; /* 0: only at the end (and on *stop) */
    int save_dtype;  /* DT_F32 / DT_BF16 / DT_F16, or -1: the model's */
    uint64_t max_shard_bytes; /* full fine-tuning: 0 = one model.safetensors, else shards of at most this */
    const char *gguf_type;    /* full fine-tuning: also DIR/model.gguf of this type or preset (convert_type_parse) at the end, or NULL */
    int matmul;      /* --matmul: 0 f32 products; 1 bf16 where the CPU has them (Backend's
                      * set_matmul_bf16 mode 1), else f32 with a notice; 2 bf16 always (tests) */
    int threads;     /* 0: one per CPU */
    int quiet;
    long stop_after; /* > 0: checkpoint and return after this many steps of this
                      * invocation (time-boxed runs; tests of --resume) */
} TrainRunOptions;

/* Defaults as TRL's: lr 0 = the kind's TRL default (SFT 2e-5, DPO 1e-6),
 * 1 epoch, batch 1, grad_accum 1, max_len 1024, weight decay 0 (decay, when
 * set, skips biases and norm weights as the HF Trainer does), clip 1.0,
 * linear schedule, no warm-up, DPO sigmoid beta 0.1, LoRA alpha 0 = 2r on
 * all seven projections, seed 42. */
void train_run_defaults(TrainRunOptions *o);
int train_run(const TrainRunOptions *o, volatile sig_atomic_t *stop, Err *e);

#endif
