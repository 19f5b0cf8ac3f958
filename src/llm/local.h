/* local: the embedded engine as an LLM role backend.
 *
 * A local model spec (a Hugging Face directory, a .gguf file, or
 * hf://ORG/REPO[@REV][/FILE], downloaded once into the cache) becomes an
 * LlmBackend like any endpoint:
 *   - a decoder (Llama, Qwen2/3, Mistral) serves chat(): the messages are
 *     rendered with the model's chat template (or one named in the options),
 *     encoded, and decoded by the engine's continuous batcher
 *     (infer/batcher.h) shared by every calling thread;
 *   - a sentence-transformers or BertModel directory serves embed().
 * Sampling follows LlmParams; what a request leaves unset comes from the
 * checkpoint's generation_config.json (as vLLM does), else greedy; max_tokens
 * defaults to LOCAL_DEFAULT_MAX_TOKENS. The context is the model's
 * max_position_embeddings unless $ALOE_CTX (or LocalOptions.n_ctx) sets
 * another: a prompt that does not fit is an error, a reply that would not
 * fit is cut short ("length"). */
#ifndef ALOE_LLM_LOCAL_H
#define ALOE_LLM_LOCAL_H

#include <stddef.h>

#include "llm/llm.h"
#include "infer/batcher.h"

#define LOCAL_DEFAULT_MAX_TOKENS 512
/* Sequences decoded together by default. Decode batches below
 * MATMUL_GEMM_MIN_ROWS (16) stay on the per-row dot-product path, where a
 * request's arithmetic does not depend on what else runs; on the 2-core
 * reference machine (Qwen2.5-0.5B shape, Q8_0) 8 sequences gave the best
 * throughput: ~50 new tokens/s against ~18 for one and ~30 for 16. More
 * requests than this wait in line and join as others finish. */
#define LOCAL_DEFAULT_MAX_ACTIVE 8
/* MiB of finished prompts' keys and values kept for prompts that begin
 * alike (a conversation's next turn, every request of a role sharing its
 * role prompt: infer/prefix_cache.h); $ALOE_PREFIX_CACHE sets another, 0
 * turns it off. */
#define LOCAL_DEFAULT_PREFIX_CACHE_MIB 1024

typedef struct LocalOptions {
    const char *role;          /* for messages; may be NULL */
    const char *chat_template; /* template family by name; NULL: the model's own */
    int max_active;            /* sequences decoded together; <= 0: LOCAL_DEFAULT_MAX_ACTIVE */
    int n_ctx;                 /* context in tokens; <= 0: $ALOE_CTX, else the model's */
    int n_threads;             /* compute threads; <= 0: one per CPU */
    int quiet;                 /* no download progress */
} LocalOptions;

/* Opens spec (see above). NULL with e set: a missing path, a model that does
 * not load, no or an unknown chat template (the message lists the known
 * ones). */
LlmBackend *llm_local_open(const char *spec, const LocalOptions *o, Err *e);

/* 1 if b was opened by llm_local_open (not wrapped by a cache). */
int llm_is_local(const LlmBackend *b);

/* A second backend over the same loaded model and engine (its own stats
 * and live counters), so that several roles naming one model load it once
 * and are batched together. NULL if b is not local. Free each with
 * llm_free; the model goes with the last. */
LlmBackend *llm_local_share(LlmBackend *b);

/* chat() that also streams the reply's text to on_text as it is generated
 * (called on the batcher's thread). b must be a local chat backend. */
int llm_local_chat_stream(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, GenTextFn on_text,
                          void *ctx, LlmReply *out, Err *e);

/* The most sequences a local chat backend has decoded together (0 for others). */
int llm_local_peak_batch(const LlmBackend *b);

/* The context length in tokens a local chat backend allows (0 for others). */
int llm_local_n_ctx(const LlmBackend *b);

/* A local chat backend's prefix cache counters (zeros for others). */
PrefixCacheStats llm_local_prefix_stats(const LlmBackend *b);

#endif
