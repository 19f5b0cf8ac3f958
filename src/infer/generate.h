/* generate: decoding one or several independent sequences together.
 *
 * Each sequence has its own prompt, KV cache, sampler and stop conditions;
 * they share the model, and every decoding step runs one forward pass over
 * one new token of every unfinished sequence, so the weights are streamed
 * from memory once per step for the whole batch (decode is memory-bound:
 * a batch of 8 costs little more than one). Prompts are fed in the same
 * passes, up to GEN_PREFILL_CHUNK prompt tokens per pass.
 *
 * Stop strings need text, which this layer does not have: on_token is
 * called with every new token and returns nonzero to stop that sequence
 * (the caller detokenises and looks for its stop strings). */
#ifndef ALOE_INFER_GENERATE_H
#define ALOE_INFER_GENERATE_H

#include <stdint.h>

#include "base/err.h"
#include "infer/sampler.h"
#include "model/decoder.h"

#define GEN_PREFILL_CHUNK 512
#define GEN_MAX_STOP_IDS 8

typedef enum GenFinish {
    GEN_RUNNING = 0,
    GEN_STOP_TOKEN,    /* produced one of stop_ids (EOS, end of turn) */
    GEN_STOP_CALLBACK, /* on_token asked to stop (a stop string) */
    GEN_LENGTH,        /* max_tokens reached */
} GenFinish;

/* Returns nonzero to stop sequence `seq` after this token. */
typedef int (*GenTokenFn)(void *ctx, int seq, int32_t token);

typedef struct GenParams {
    SamplerParams sampling;
    int max_tokens;                      /* new tokens at most (> 0) */
    int32_t stop_ids[GEN_MAX_STOP_IDS];  /* end-of-sequence / end-of-turn ids */
    int n_stop_ids;
    GenTokenFn on_token;                 /* may be NULL */
    void *ctx;
} GenParams;

typedef struct GenSeq {
    /* in */
    const int32_t *prompt;
    int n_prompt;
    GenParams params;
    /* out: the new ids (a stop id that ended the sequence included), and why it ended */
    int32_t *out;
    int n_out;
    GenFinish finish;
    /* internal */
    int n_fed; /* tokens written to the cache so far */
    int index; /* passed to on_token */
    KvCache kv;
    Sampler sampler;
    int32_t *history; /* prompt + out, for the repetition penalty */
} GenSeq;

void gen_params_default(GenParams *p);
/* Sets up a sequence (the prompt is not copied: keep it alive). */
void gen_seq_init(GenSeq *s, const int32_t *prompt, int n_prompt, const GenParams *p);
void gen_seq_free(GenSeq *s);

/* Decodes all n sequences to completion. Call gen_seq_free on every
 * sequence afterwards, whatever this returned. */
int generate(Model *m, GenSeq *seqs, int n, Err *e);

/* The pieces generate() is made of, for callers that admit sequences while
 * others are running (the batcher): gen_seq_start allocates a sequence's
 * cache and sampler (index: what on_token receives as seq); gen_step
 * advances every unfinished sequence of seqs by one forward pass (a decode
 * token each, or a chunk of prompt). */
int gen_seq_start(Model *m, GenSeq *s, int index, Err *e);
int gen_step(Model *m, GenSeq *const *seqs, int n, Err *e);

#endif
