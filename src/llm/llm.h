/* llm: the role backend interface.
 *
 * Every LLM role of the pipeline (generator, user simulator, inducer,
 * responders, judge, evaluated model, embedder) talks to one LlmBackend. A
 * backend is either the embedded engine (a local model) or an
 * OpenAI-compatible HTTP endpoint; the pipeline cannot tell them apart.
 *
 * Backends are thread-safe: many worker threads call chat() at once, and the
 * backend decides how to serve them (parallel HTTP requests, or batching
 * sequences through one loaded model). */
#ifndef ALOE_LLM_LLM_H
#define ALOE_LLM_LLM_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/err.h"

typedef struct LlmMessage {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} LlmMessage;

typedef struct LlmParams {
    double temperature; /* < 0: not sent (server default) */
    double top_p;       /* < 0: not sent */
    int max_tokens;     /* <= 0: not sent */
    int has_seed;
    uint64_t seed;
    /* Not sent: distinguishes deliberate repeats of an identical request
     * (independent samples) in the request cache key. */
    int sample;
} LlmParams;

/* Defaults: nothing set, server defaults apply. */
LlmParams llm_params_default(void);

typedef struct LlmUsage {
    long prompt_tokens, completion_tokens;
    long cached_tokens; /* of the prompt's, not computed again: a local model's prefix cache, or the
                         * endpoint's usage.prompt_tokens_details.cached_tokens */
} LlmUsage;

typedef struct LlmReply {
    char *text;          /* owned; free with llm_reply_free */
    char *finish_reason; /* "stop", "length", ... or NULL */
    LlmUsage usage;
    int cached;          /* served from the request cache */
    int retries;         /* transport retries it took */
} LlmReply;

void llm_reply_free(LlmReply *r);

/* Counters of one role, updated atomically by the backend. */
typedef struct LlmStats {
    atomic_long requests;   /* answered requests (cache hits included) */
    atomic_long cache_hits;
    atomic_long retries;    /* transport retries (429, 5xx, time-outs) */
    atomic_long errors;     /* requests that finally failed */
    atomic_long prompt_tokens, completion_tokens;
    atomic_long cached_prompt_tokens; /* LlmUsage.cached_tokens, summed */
} LlmStats;

typedef struct LlmBackend LlmBackend;
struct LlmBackend {
    char *describe; /* e.g. "gpt-4o-mini at https://api.openai.com/v1"; never holds a key */
    char *model;    /* the model name or spec */
    int (*chat)(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e);
    /* Embeds n texts: *vecs = n*dim floats (caller frees). */
    int (*embed)(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e);
    void (*destroy)(LlmBackend *b);
    void *impl;
    LlmStats stats;
    /* Optional live counters (a progress bar) also bumped on retries/tokens. */
    atomic_long *live_retries, *live_tokens, *live_requests, *live_errors;
};

int llm_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e);
int llm_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e);
void llm_free(LlmBackend *b);

/* Where a role's model lives. */
typedef struct LlmRoleConfig {
    const char *role;     /* "judge", "user", ... (for messages) */
    const char *model;    /* model spec: local path, hf://..., endpoint model name, or one of
                           * those made explicit: openai:NAME, local:PATH (llm/open.h) */
    const char *base_url; /* NULL: $OPENAI_BASE_URL, then https://api.openai.com/v1 */
    const char *api_key;  /* NULL: $OPENAI_API_KEY (may be unset for local servers) */
    const char *api_key_env; /* the variable api_key came from, named in errors (may be NULL) */
    double timeout_s;     /* per request; <= 0: 300 */
    int max_retries;      /* < 0: 8 */
    /* Optional: once *cancel is non-zero (Ctrl-C), requests in flight and
     * back-off waits end promptly with ERR_CANCELLED. */
    atomic_int *cancel;
    const char *chat_template; /* local models: template family by name; NULL: the model's own */
} LlmRoleConfig;

#endif
