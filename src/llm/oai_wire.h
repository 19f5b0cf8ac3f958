/* oai_wire: OpenAI's JSON, both ways, in one place.
 *
 * The server (serve/) parses requests into C structs and writes responses,
 * stream chunks, usage and error objects with it; the client (llm/openai.c)
 * writes its requests and reads the replies with it. So the field names and
 * shapes of the API live here once: a server and a client that disagree
 * about them cannot both pass the tests.
 *
 * Requests are untrusted: every field is type- and range-checked, and a bad
 * one fails with ERR_ARG, a message naming the field and what was expected,
 * and r->param set to that field (OpenAI's error.param). Unknown fields are
 * ignored, as OpenAI's own server does for ones it does not use. */
#ifndef ALOE_LLM_OAI_WIRE_H
#define ALOE_LLM_OAI_WIRE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "llm/llm.h"

typedef enum OaiKind { OAI_CHAT = 0, OAI_COMPLETION, OAI_EMBEDDINGS } OaiKind;

/* Limits on what one request may ask for (beyond them: 400 naming the field). */
#define OAI_MAX_N 16          /* choices per request */
#define OAI_MAX_STOP 4        /* stop strings, as OpenAI */
#define OAI_MAX_TOP_LOGPROBS 20
#define OAI_MAX_BIAS 300      /* logit_bias entries */

typedef struct OaiBias {
    int32_t id;
    float bias; /* added to the token's logit, in [-100, 100] */
} OaiBias;

typedef struct OaiRequest {
    OaiKind kind;
    char *model;
    /* chat: role/content pairs (content: a string, or the text parts joined) */
    LlmMessage *messages;
    int n_messages;
    /* completions: a text prompt, or token ids */
    char *prompt;
    int32_t *prompt_ids;
    int n_prompt_ids;
    int echo;
    /* embeddings: the texts, and whether vectors go out as base64 floats */
    char **input;
    int n_input;
    int base64;
    /* generation; "not given" values let the server's defaults apply */
    int max_tokens;            /* 0: not given */
    double temperature, top_p; /* < 0: not given */
    int top_k;                 /* < 0: not given */
    double min_p, repetition_penalty; /* < 0: not given */
    double presence_penalty, frequency_penalty; /* 0: off */
    int has_seed;
    uint64_t seed;
    char **stop; /* NULL-terminated, n_stop entries */
    int n_stop;
    int n;                     /* choices, 1 by default */
    int logprobs;              /* 1: per-token logprobs wanted */
    int top_logprobs;          /* alternatives per token (0..OAI_MAX_TOP_LOGPROBS) */
    OaiBias *bias;
    int n_bias;
    int stream, include_usage;
    int ignore_eos;            /* llama-server's and vLLM's extension: only max_tokens or stop ends it */
    /* on failure: the field at fault ("messages[1].content"), for error.param */
    char param[96];
} OaiRequest;

/* Parses a request body of the given kind into r (zeroed first; free with
 * oai_request_free whatever this returns). */
int oai_request_parse(OaiKind kind, const char *body, size_t len, OaiRequest *r, Err *e);
void oai_request_free(OaiRequest *r);

/* ---- responses (server side); each returns a new reference ---- */

typedef struct OaiUsage {
    long prompt_tokens, completion_tokens, cached_tokens;
} OaiUsage;

/* {"error": {"message", "type", "param", "code"}}; param and code may be NULL. */
json_t *oai_error(const char *message, const char *type, const char *param, const char *code);
/* {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details": {"cached_tokens"}} */
json_t *oai_usage(const OaiUsage *u);

/* One token's logprob entry of a chat choice: {"token", "logprob", "bytes",
 * "top_logprobs": [...]}; top may be NULL (no alternatives asked for).
 * token: the token's bytes (len of them; not necessarily whole UTF-8). */
json_t *oai_chat_logprob(const char *token, size_t len, double logprob, json_t *top);
/* An alternative: {"token", "logprob", "bytes"}. */
json_t *oai_top_logprob(const char *token, size_t len, double logprob);
/* -inf (a token banned by logit_bias) as OpenAI writes it, -9999.0. */
json_t *oai_logprob_value(double logprob);

/* A whole response: choices made by the caller ({"index", "message" |
 * "text", "finish_reason", "logprobs"}); usage may be NULL. */
json_t *oai_chat_choice(int index, const char *text, const char *finish_reason, json_t *logprobs_content);
json_t *oai_completion_choice(int index, const char *text, const char *finish_reason, json_t *logprobs);
json_t *oai_response(OaiKind kind, const char *id, const char *model, long created, json_t *choices,
                     const OaiUsage *usage);
/* A stream chunk of one choice: a chat delta ({"role"?, "content"?}) or a
 * completion's text; finish_reason and logprobs may be NULL. */
json_t *oai_chunk(OaiKind kind, const char *id, const char *model, long created, int index, const char *role,
                  const char *text, const char *finish_reason, json_t *logprobs);
/* The last chunk when stream_options.include_usage: no choices, the usage. */
json_t *oai_usage_chunk(OaiKind kind, const char *id, const char *model, long created, const OaiUsage *u);
/* "data: JSON\n\n" appended to b (json_dumps compact). */
void oai_sse_event(StrBuf *b, json_t *j);

/* {"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
 * "model", "usage"}: vectors as JSON floats, or base64 of little-endian
 * float32 when base64. */
json_t *oai_embeddings(const char *model, const float *vecs, int n, int dim, int base64, long prompt_tokens);
/* {"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]} */
json_t *oai_models(const char *const *ids, int n, long created);

/* Text as a JSON string, each byte that is not part of valid UTF-8 (or a
 * NUL) replaced by U+FFFD. */
json_t *oai_text(const char *s, size_t n);
/* Standard base64 of n bytes (caller frees). */
char *oai_base64(const void *data, size_t n);

/* ---- client side ---- */

/* The request bodies llm/openai.c sends (caller frees). */
char *oai_chat_body(const char *model, const LlmMessage *msgs, int n, const LlmParams *p);
char *oai_embeddings_body(const char *model, const char *const *texts, int n);

/* The parts of a chat completion the client reads, borrowed from j:
 * choices[0].message.content (a string) and finish_reason (may be NULL),
 * and usage. -1 with e set when there is no content string (error_message
 * then points at an error.message a server sent with a 200, or NULL). */
typedef struct OaiChatReply {
    json_t *content, *finish_reason, *error_message;
    LlmUsage usage;
} OaiChatReply;
int oai_chat_reply(json_t *j, OaiChatReply *r, Err *e);
/* usage.prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens. */
void oai_read_usage(json_t *j, LlmUsage *u);
/* An embeddings reply for n inputs: *vecs n * *dim floats in index order
 * (caller frees). Each index once, every vector the same length, every
 * value a number within float range. */
int oai_embeddings_reply(json_t *j, int n, float **vecs, int *dim, Err *e);
/* The error text of an error body: error.message, else error (a string),
 * else detail; borrowed from j, NULL when none. */
json_t *oai_error_message(json_t *j);

#endif
