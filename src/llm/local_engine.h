/* local_engine: continuous batching of chat requests through one loaded
 * decoder model.
 *
 * Many threads submit requests (an encoded prompt, sampling settings, a
 * token limit); one engine thread owns the model. Between decoding steps it
 * admits waiting requests (up to max_active at once), prefills each new
 * prompt on its own, then decodes every active sequence together, one token
 * each per forward pass, so the weights stream from memory once per step
 * for the whole batch. A sequence ends at a stop id (end of turn), at a stop
 * string in its text, or at its token limit; its caller is then woken with
 * the reply text.
 *
 * Prefilling each prompt alone (rather than packing new prompts together or
 * with decode tokens) keeps a request's arithmetic the same whatever else is
 * running: only the decode matrix products see other sequences' rows. */
#ifndef ALOE_LLM_LOCAL_ENGINE_H
#define ALOE_LLM_LOCAL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "infer/sampler.h"
#include "model/decoder.h"
#include "tok/tok.h"

/* Receives reply text as it is generated (whole UTF-8 characters, never a
 * part of a stop string). Called on the engine thread: keep it short. */
typedef void (*LocalTextFn)(void *ctx, const char *text, size_t len);

typedef struct LocalRequest {
    const int32_t *prompt; /* not copied: kept alive by the caller until done */
    int n_prompt;
    SamplerParams sampling;
    int max_tokens;         /* > 0; prompt + max_tokens must fit the cache the engine allows */
    LocalTextFn on_text;    /* may be NULL */
    void *ctx;
} LocalRequest;

typedef struct LocalResult {
    char *text;         /* the reply, without the stop token or stop string (caller frees) */
    int length_limited; /* 1: ended at max_tokens ("length"); 0: at a stop ("stop") */
    int n_completion;   /* new tokens, a final stop token included */
} LocalResult;

typedef struct LocalEngineConfig {
    Model *m;               /* used only by the engine thread while it runs */
    const Tokenizer *tok;
    const int32_t *stop_ids; /* copied */
    int n_stop_ids;
    const char *const *stop_strings; /* NULL-terminated, copied; may be NULL */
    int max_active;          /* sequences decoded together at most (> 0) */
} LocalEngineConfig;

typedef struct LocalEngine LocalEngine;

/* Starts the engine thread. */
LocalEngine *local_engine_start(const LocalEngineConfig *c, Err *e);
/* Waits for the sequences in flight, then stops the thread and frees the
 * engine (callers must be done submitting). */
void local_engine_stop(LocalEngine *g);

/* The most sequences that were decoded together in one step so far. */
int local_engine_peak_active(LocalEngine *g);

/* Submits one request and blocks until it is finished. Thread-safe. */
int local_engine_run(LocalEngine *g, const LocalRequest *rq, LocalResult *out, Err *e);

#endif
