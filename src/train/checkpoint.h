/* checkpoint: writing what training produced, in the layouts the ecosystem
 * loads, and the optimiser state a resumed run needs.
 *
 *  - full model: a Hugging Face directory: model.safetensors (HF names; the
 *    tied lm_head is not written, as transformers does), config.json from
 *    the base model with its dtype key set to what was written, and the
 *    base's tokenizer / chat template / generation files copied over;
 *  - LoRA: a peft adapter directory: adapter_config.json and
 *    adapter_model.safetensors (peft's tensor names);
 *  - optimiser: optimizer.safetensors with exp_avg and exp_avg_sq (torch's
 *    names for AdamW's moments) as flat tensors and the step counts as
 *    metadata.
 * Every file is written atomically (temporary file, fsync, rename), so a
 * crash leaves each file old or new, never torn. */
#ifndef ALOE_TRAIN_CHECKPOINT_H
#define ALOE_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "base/err.h"
#include "train/decoder_train.h"
#include "train/trainer.h"

/* dtype: DT_F32, DT_BF16 or DT_F16. base_dir (may be NULL) is where
 * config.json and the tokenizer files come from. */
int ckpt_save_model(const TrainDecoder *m, const char *base_dir, const char *out_dir, int dtype, Err *e);
/* How ckpt_save_model_opts writes a model. */
typedef struct CkptSaveOpts {
    int dtype;                /* DT_F32, DT_BF16 or DT_F16 */
    uint64_t max_shard_bytes; /* 0: one model.safetensors; else transformers'
                               * shards model-0000i-of-0000N.safetensors of at
                               * most this size (a bigger tensor gets a shard
                               * of its own) and model.safetensors.index.json */
    const char *gguf_type;    /* non-NULL: also write out_dir/model.gguf in
                               * this type (f32, f16, bf16, q8_0, q4_0; see
                               * model/convert.h); needs base_dir */
} CkptSaveOpts;

/* ckpt_save_model with options. A save over an earlier one never leaves a
 * mix: the old index is removed before shards of the same names are
 * rewritten, the new index is written last, and shards it does not list
 * (of a save with more shards) are removed. */
int ckpt_save_model_opts(const TrainDecoder *m, const char *base_dir, const char *out_dir, const CkptSaveOpts *o,
                         Err *e);
/* Parses a shard size: bytes, or a number with a unit: KB, MB, GB, TB
 * (powers of 1000, as transformers' max_shard_size) or KiB, MiB, GiB, TiB. */
int ckpt_size_parse(const char *s, uint64_t *bytes, Err *e);

/* base_model is recorded as base_model_name_or_path. */
int ckpt_save_adapter(const TrainDecoder *m, const char *base_model, const char *out_dir, int dtype, Err *e);

/* td_lora_load for merging into model_name: an adapter whose tensors do not
 * fit the model gets an error naming its adapter_model.safetensors, the base
 * model adapter_config.json records, and the tensor and shapes at fault. */
int ckpt_adapter_load(TrainDecoder *m, const char *adapter_dir, const char *model_name, Err *e);

int ckpt_save_optimizer(const Trainer *t, const char *path, Err *e);
/* Restores the moments and step counts; the trainable block must have the
 * size the file was written with. */
int ckpt_load_optimizer(Trainer *t, const char *path, Err *e);

/* Parses "float32", "bfloat16", "float16" (or f32, bf16, f16). */
int ckpt_dtype_parse(const char *name, int *dtype, Err *e);

#endif
