/* generate: decoding one or several independent sequences together.
 *
 * Each sequence has its own prompt, KV cache, sampler and stop conditions;
 * they share the model. A step prefills the sequences still in their
 * prompt, each alone, in chunks of GEN_PREFILL_CHUNK tokens at fixed
 * offsets (bounding the activations), then runs one forward pass over one
 * new token of every sequence past its prompt, so the weights are streamed
 * from memory once per step for the whole batch (a step of 4 sequences
 * costs 1.5-2.2x a step of one on two cores, docs/BENCHMARKS.md: the
 * arithmetic, not the memory, then sets the pace). Prefilling alone keeps a
 * sequence's arithmetic the same whatever else runs: only the decode
 * matrix products see other sequences' rows, and below
 * matmul_gemm_min_rows those rows are independent dot products.
 *
 * A sequence ends at one of its stop ids (end of turn), at one of its stop
 * strings in the reply text, when on_token asks, or at max_tokens. Text
 * needs a tokenizer: given one in GenParams.tok, the new ids are
 * detokenised into GenSeq.reply as they come (reply_text.h) and streamed
 * to on_text. */
#ifndef ALOE_INFER_GENERATE_H
#define ALOE_INFER_GENERATE_H

#include <stdint.h>

#include "base/err.h"
#include "infer/reply_text.h"
#include "infer/sampler.h"
#include "model/decoder.h"
#include "tok/tok.h"

#define GEN_PREFILL_CHUNK 512
#define GEN_MAX_STOP_IDS 16

typedef enum GenFinish {
    GEN_RUNNING = 0,
    GEN_STOP_TOKEN,    /* produced one of stop_ids (EOS, end of turn) */
    GEN_STOP_STRING,   /* the reply text reached one of stop_strings */
    GEN_STOP_CALLBACK, /* on_token asked to stop */
    GEN_LENGTH,        /* max_tokens reached */
} GenFinish;

/* Returns nonzero to stop sequence `seq` after this token. */
typedef int (*GenTokenFn)(void *ctx, int seq, int32_t token);
/* Sees (and may change) sequence seq's logits (vocab values) before the
 * sampler does; out[0..n_out) are its ids so far. For what the sampler
 * does not do itself: OpenAI's logit_bias and presence/frequency
 * penalties, and reading logprobs. */
typedef void (*GenLogitsFn)(void *ctx, int seq, float *logits, int vocab, const int32_t *out, int n_out);

typedef struct GenParams {
    SamplerParams sampling;              /* per sequence, seed included */
    int max_tokens;                      /* new tokens at most (> 0) */
    int32_t stop_ids[GEN_MAX_STOP_IDS];  /* end-of-sequence / end-of-turn ids */
    int n_stop_ids;
    GenTokenFn on_token;                 /* may be NULL */
    void *ctx;
    GenLogitsFn on_logits;               /* may be NULL; gets ctx */
    /* text (optional) */
    const Tokenizer *tok;                /* NULL: ids only, no reply text */
    const char *const *stop_strings;     /* NULL-terminated, not copied; need tok */
    GenTextFn on_text;                   /* streamed reply text; may be NULL */
    void *text_ctx;
} GenParams;

typedef struct GenSeq {
    /* in */
    const int32_t *prompt;
    int n_prompt;
    GenParams params;
    /* out: the new ids (a stop id that ended the sequence included), the
     * reply text when params.tok is set (without a stop token's text, cut
     * at a stop string), and why it ended */
    int32_t *out;
    int n_out;
    ReplyText reply;
    GenFinish finish;
    int n_prefilled; /* prompt tokens run through the model (the rest came from a prefix cache) */
    /* internal */
    int n_fed; /* tokens written to the cache so far */
    int index; /* passed to on_token */
    KvCache kv;
    Sampler sampler;
    int32_t *history; /* prompt + out, for the repetition penalty */
} GenSeq;

void gen_params_default(GenParams *p);
/* Sampler defaults, then what the checkpoint's generation_config.json asks
 * for when it asks to sample (greedy otherwise). path: a model directory
 * (other paths keep the defaults). */
void gen_sampling_from_checkpoint(const char *path, SamplerParams *sp);
/* Adds a stop id once (negative ids and overflow are ignored). */
void gen_params_add_stop_id(GenParams *p, int32_t id);
/* Adds the model's EOS ids and the tokenizer's end-of-turn ids (tok may be NULL). */
void gen_params_add_model_stops(GenParams *p, const Model *m, const Tokenizer *tok);
/* Sets up a sequence (the prompt is not copied: keep it alive). */
void gen_seq_init(GenSeq *s, const int32_t *prompt, int n_prompt, const GenParams *p);
/* Frees the sequence's buffers (its reply text included). */
void gen_seq_free(GenSeq *s);
/* Releases the cache and sampler early, keeping out and reply. */
void gen_seq_release(GenSeq *s);

/* Decodes all n sequences to completion. Call gen_seq_free on every
 * sequence afterwards, whatever this returned. */
int generate(Model *m, GenSeq *seqs, int n, Err *e);

/* The pieces generate() is made of, for callers that admit sequences while
 * others are running (the batcher): gen_seq_start checks the sequence's
 * settings and allocates its cache and sampler (index: what on_token
 * receives as seq); gen_step advances every unfinished sequence of seqs by
 * one step (see above) and returns how many sequences its decode pass
 * covered, or -1 with e set. */
int gen_seq_start(Model *m, GenSeq *s, int index, Err *e);
int gen_step(Model *m, GenSeq *const *seqs, int n, Err *e);

#endif
