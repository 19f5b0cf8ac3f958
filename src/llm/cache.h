/* cache: the on-disk request cache (SQLite, WAL), so that a resumed or
 * repeated run reuses every answer it already paid for.
 *
 * A chat key is the SHA-256 of a canonical JSON serialisation of (endpoint,
 * model, messages, temperature, top_p, max_tokens, seed, sample); `sample`
 * tells deliberate repeats of one request apart. An embedding is cached per
 * text, keyed by (endpoint, model, text), so overlapping batches share work.
 *
 * Durability: every answer is committed before it is handed back. The
 * database runs in WAL mode with synchronous=NORMAL, under which a committed
 * transaction survives the process being killed (kill -9) at any moment; only
 * an OS crash or power loss may roll back the last few answers.
 *
 * Thread-safe: one connection guarded by a mutex (a lookup or insert takes
 * microseconds next to the HTTP request it saves). Several processes may
 * share a cache file too (SQLite's locking, with a busy time-out). */
#ifndef ALOE_LLM_CACHE_H
#define ALOE_LLM_CACHE_H

#include "llm/llm.h"

typedef struct LlmCache LlmCache;

/* Opens (creating if needed) the cache database at path. */
int llm_cache_open(const char *path, LlmCache **out, Err *e);
void llm_cache_close(LlmCache *c);

/* Wraps a backend: chat() and embed() answer from the cache when they can and
 * store every new answer before returning it. A hit sets reply->cached = 1
 * and counts in stats.cache_hits (and stats.requests). The wrapper's stats
 * also mirror the inner backend's (requests, retries, errors, tokens), and
 * live counters set on the wrapper reach the inner backend. `endpoint` names
 * where answers come from (the base URL; "local" for the engine) and enters
 * the keys. Takes ownership of inner (freed with the wrapper). The cache must
 * outlive the wrapper. */
LlmBackend *llm_cache_wrap(LlmBackend *inner, LlmCache *c, const char *endpoint);

/* The building blocks, for backends that want finer control. */
void llm_cache_chat_key(const char *endpoint, const char *model, const LlmMessage *msgs, int n,
                        const LlmParams *p, char key[65]);
void llm_cache_embed_key(const char *endpoint, const char *model, const char *text, char key[65]);
/* 1 on a hit (out filled, out->cached = 1), 0 on a miss, -1 on error. */
int llm_cache_get_reply(LlmCache *c, const char *key, LlmReply *out, Err *e);
int llm_cache_put_reply(LlmCache *c, const char *key, const LlmReply *r, Err *e);
/* 1 on a hit (*vec malloc'd, *dim set), 0 on a miss, -1 on error. */
int llm_cache_get_vec(LlmCache *c, const char *key, float **vec, int *dim, Err *e);
/* Stores several vectors in one transaction. */
int llm_cache_put_vecs(LlmCache *c, char (*keys)[65], const float *vecs, int n, int dim, Err *e);

#endif
