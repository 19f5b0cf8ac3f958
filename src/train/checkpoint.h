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

#include <jansson.h>
#include <stdint.h>

#include "base/err.h"
#include "train/decoder_train.h"
#include "train/trainer.h"

/* dtype: DT_F32, DT_BF16 or DT_F16. base_dir (may be NULL) is where
 * config.json and the tokenizer files come from. */
int ckpt_save_model(const TrainDecoder *m, const char *base_dir, const char *out_dir, int dtype, Err *e);
/* 1 when the model is a multimodal checkpoint's text decoder
 * (Gemma3ForConditionalGeneration): ckpt_save_model then writes that text
 * model alone, as its text class saves it (Gemma3ForCausalLM: config.json
 * flattened from text_config, model_type gemma3_text, tensors model.*),
 * since nothing else was trained. Adapters keep the base's module names
 * (peft's on that base; aloe merge then writes the text model too). */
int ckpt_saves_text_only(const TrainDecoder *m);
/* How ckpt_save_model_opts writes a model. */
typedef struct CkptSaveOpts {
    int dtype;                /* DT_F32, DT_BF16 or DT_F16 */
    uint64_t max_shard_bytes; /* 0: one model.safetensors; else transformers'
                               * shards model-0000i-of-0000N.safetensors of at
                               * most this size (a bigger tensor gets a shard
                               * of its own) and model.safetensors.index.json */
    const char *gguf_type;    /* non-NULL: also write out_dir/model.gguf in
                               * this type or llama.cpp preset, as `aloe
                               * convert --type` takes it ("q8_0", "Q4_K_M":
                               * convert_type_parse); needs base_dir */
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

/* ---- training checkpoints: DIR/checkpoint-N, one atomic unit ----
 *
 * A checkpoint of step N is the directory DIR/checkpoint-N holding the
 * model (Hugging Face layout) or adapter (peft), optimizer.safetensors and
 * trainer_state.json, which lists every other file with its size. It is
 * written whole under DIR/checkpoint-N.tmp.<pid> (every file synced), the
 * directory synced, then renamed to its name in one step and DIR synced;
 * only then are the earlier checkpoints removed. A kill at any moment
 * leaves the previous checkpoint or the new one complete under its name,
 * and leftovers named *.tmp.* that ckpt_clean_tmp removes. */

/* DIR/checkpoint-<step> (caller frees). */
char *ckpt_dir_path(const char *out, long step);
/* A fresh empty DIR/<name>.tmp.<pid> to write a checkpoint into (caller
 * frees *staging). */
int ckpt_stage(const char *out, const char *name, char **staging, Err *e);
/* Completes a staged checkpoint: adds "files" (every file's size) to state,
 * writes it as trainer_state.json, syncs, renames staging to
 * DIR/checkpoint-<step> and removes every other checkpoint. */
int ckpt_commit(const char *out, const char *staging, long step, json_t *state, Err *e);
/* Checks that dir is a complete checkpoint of step (-1: any): its
 * trainer_state.json parses and names the step, every file it lists is
 * there with its size, each safetensors file's header fits its size, and
 * optimizer.safetensors is of the same step. *state (may be NULL) gets the
 * parsed trainer_state.json (caller json_decrefs). */
int ckpt_verify(const char *dir, long step, json_t **state, Err *e);
/* The newest complete checkpoint in out; newer ones that fail ckpt_verify
 * are skipped with a warning naming what is wrong. ERR_NOTFOUND when out
 * has no checkpoint at all. */
int ckpt_latest(const char *out, char **dir, long *step, json_t **state, Err *e);
/* Removes out's checkpoint directories other than that of step keep: what
 * ckpt_commit does last, for a run resumed from a commit killed before it. */
int ckpt_remove_others(const char *out, long keep, Err *e);
/* The name of out's newest checkpoint-N directory, complete or not, or
 * NULL (caller frees). */
char *ckpt_newest_name(const char *out);
/* Removes what an interrupted save left in out (entries named *.tmp.*).
 * Only one run may use a directory at a time. */
int ckpt_clean_tmp(const char *out, Err *e);

/* Puts the model or adapter files of directory src (not its optimiser
 * state or trainer_state.json) into out, so that out is a loadable model
 * only when complete: its config.json / adapter_config.json (which every
 * loader needs) is removed first, files of an earlier save that src does
 * not have are removed, src's files are hard-linked (or copied) in
 * atomically one by one, and the config last. A kill at any moment leaves
 * out without a config (absent) or with all of one save (complete). */
int ckpt_publish(const char *src, const char *out, Err *e);
/* ckpt_save_model_opts into out through ckpt_publish: written whole in
 * <out>.tmp.<pid> beside it (leftovers of killed saves there are removed
 * first), then published. */
int ckpt_save_model_atomic(const TrainDecoder *m, const char *base_dir, const char *out, const CkptSaveOpts *o,
                           Err *e);

/* Parses "float32", "bfloat16", "float16" (or f32, bf16, f16). */
int ckpt_dtype_parse(const char *name, int *dtype, Err *e);

#endif
