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
 * with the body) fail at once. The API key (and a password in the URL) never
 * appears in describe, logs or error messages.
 *
 * Untrusted replies: a reply (after gzip/deflate/br decoding, which curl is
 * asked for) larger than $ALOE_MAX_REPLY_MB MiB (default 64) is abandoned at
 * that size with an error naming the endpoint and the limit, and not retried.
 * A key the server echoes back is replaced by [REDACTED] in the reply text
 * (and in error messages) before anything is returned, so no cache, output or
 * log ever holds it; keys shorter than 8 characters are placeholders, not
 * secrets, and are left alone. JSON strings may hold U+0000 ("\u0000"): the
 * text, a C string, gets U+FFFD in its place, and nothing after it is lost.
 * A key with a control character in it (CR/LF would inject headers) is
 * refused by llm_openai_new. */
#ifndef ALOE_LLM_OPENAI_H
#define ALOE_LLM_OPENAI_H

#include <stddef.h>

#include "llm/llm.h"

/* base_url like "http://127.0.0.1:8080/v1" (a trailing slash is fine);
 * api_key NULL or "" for servers without one; timeout_s per request (<= 0:
 * 300); max_retries < 0: 8. */
LlmBackend *llm_openai_new(const char *base_url, const char *api_key, const char *model, double timeout_s,
                           int max_retries, Err *e);

/* Back-off before retry k (from 0) is uniform in [0, min(cap_s, base_s * 2^k)]
 * (defaults 0.5 s and 30 s). Tests shorten it. Call before any request. */
void llm_openai_set_backoff(LlmBackend *b, double base_s, double cap_s);

/* Once *cancel becomes non-zero, requests in flight are aborted and back-off
 * waits cut short, with ERR_CANCELLED (within about a second). */
void llm_openai_set_cancel(LlmBackend *b, atomic_int *cancel);

/* 0 if a key is fit for an Authorization header; else -1 with an error
 * that says why without showing the key. */
int llm_openai_check_key(const char *api_key, Err *e);

/* The reply cap from $ALOE_MAX_REPLY_MB (a whole number of MiB, 1 to 4095),
 * or the default 64 MiB when unset; -1 with e set when malformed. */
int llm_openai_max_reply_env(size_t *bytes, Err *e);

/* Overrides the reply cap (bytes, after decompression; at most 4095 MiB). */
void llm_openai_set_max_reply(LlmBackend *b, size_t bytes);

/* The reply parsers, on the raw bytes of a body (exposed for the fuzz
 * target; the backend uses the same code). A chat completion fills out
 * (text, finish_reason, usage; free with llm_reply_free); an embeddings
 * reply for n inputs gives *vecs (n * *dim floats, caller frees). -1 with e
 * set when the body is not what was expected. */
int llm_openai_parse_chat(const char *body, size_t len, LlmReply *out, Err *e);
int llm_openai_parse_embeddings(const char *body, size_t len, int n, float **vecs, int *dim, Err *e);
/* An error body as one line for a message: error.message, error or detail
 * from JSON, else the body's start; control characters become spaces.
 * Caller frees. */
char *llm_openai_error_text(const char *body, size_t len);

/* The byte offset of a jansson error position: jansson keeps it in an int,
 * which wraps past 2 GiB; replies are capped below 4 GiB, so read as
 * unsigned it is exact. */
size_t llm_openai_error_offset(int position);

/* url with any user:password@ in it shown as ***@ (caller frees). */
char *llm_openai_shown_url(const char *url);

/* The base URL without a trailing slash, and with any user:password@ in it
 * shown as ***@ (for cache keys, messages and run metadata). */
const char *llm_openai_base_url(const LlmBackend *b);

#endif
