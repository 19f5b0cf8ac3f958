/* openai: the LlmBackend for OpenAI-compatible HTTP endpoints (OpenAI, vLLM,
 * SGLang, llama.cpp's server, Ollama ...), over libcurl.
 *
 *   POST {base}/chat/completions   chat()
 *   POST {base}/embeddings         embed()
 *
 * Thread-safe: any number of threads may call chat() at once; each call
 * borrows a curl handle from a pool owned by the backend, so connections are
 * kept alive and reused (one per concurrent caller).
 *
 * Failures: 429, 408, 5xx, time-outs and dropped connections are retried up to
 * max_retries times with exponential back-off and full jitter, waiting at
 * least Retry-After seconds when the server sends it. A 200 whose body is not
 * the expected JSON (garbage, truncated, no choices[0].message.content) is
 * retried at most twice, since a proxy hiccup can cause it but a server that
 * always answers so will not get better. Connection refused / unknown host is
 * retried at most twice, so a wrong URL fails fast. 401/403 (ERR_AUTH), 404
 * (ERR_NOTFOUND: unknown model or wrong base URL) and other 4xx (ERR_HTTP,
 * with the body) fail at once. The API key never appears in describe, logs
 * or error messages. */
#ifndef ALOE_LLM_OPENAI_H
#define ALOE_LLM_OPENAI_H

#include "llm/llm.h"

/* base_url like "http://127.0.0.1:8080/v1" (a trailing slash is fine);
 * api_key NULL or "" for servers without one; timeout_s per request (<= 0:
 * 300); max_retries < 0: 8. */
LlmBackend *llm_openai_new(const char *base_url, const char *api_key, const char *model, double timeout_s,
                           int max_retries, Err *e);

/* Back-off before retry k (from 0) is uniform in [0, min(cap_s, base_s * 2^k)]
 * (defaults 0.5 s and 30 s). Tests shorten it. Call before any request. */
void llm_openai_set_backoff(LlmBackend *b, double base_s, double cap_s);

/* The base URL without a trailing slash (for cache keys and messages). */
const char *llm_openai_base_url(const LlmBackend *b);

#endif
