/* server: the OpenAI-compatible HTTP server of `aloe serve`, over
 * libmicrohttpd (one thread per connection; a request's sequences join
 * its model's continuous batch, models.h and gen.h).
 *
 *   POST /v1/chat/completions   (stream: server-sent events ending data: [DONE])
 *   POST /v1/completions        (prompt as text or token ids; echo)
 *   POST /v1/embeddings         (BERT sentence encoders; float or base64)
 *   GET  /v1/models
 *   GET  /health                (never needs the key)
 *   GET  /metrics               (Prometheus text, metrics.h)
 * The /v1 prefix may be left out.
 *
 * Errors are OpenAI's error object with a fitting status: 400 (the field
 * named in error.param), 401 (no or wrong key), 404 (unknown model or
 * path), 405, 413 (body or prompt too large), 503 with Retry-After (the
 * model's batch and queue are full), 500. The key is compared in constant
 * time and never logged. One line per request goes to the log callback:
 * method, path, status, prompt+completion tokens, latency. */
#ifndef ALOE_SERVE_SERVER_H
#define ALOE_SERVE_SERVER_H

#include <stddef.h>

#include "base/err.h"

#define SERVE_DEFAULT_HOST "127.0.0.1"
#define SERVE_DEFAULT_PORT 8080
#define SERVE_DEFAULT_MAX_ACTIVE 8
#define SERVE_DEFAULT_MAX_QUEUE 64
#define SERVE_DEFAULT_MAX_BODY_MIB 16
#define SERVE_DEFAULT_MAX_TOKENS 2048
#define SERVE_DEFAULT_PREFIX_CACHE_MIB 1024
#define SERVE_DEFAULT_DRAIN_S 30.0

typedef struct ServeOptions {
    const char *const *models; /* specs */
    int n_models;
    const char *const *aliases; /* aliases[i] names models[i]; fewer than models is fine */
    int n_aliases;
    const char *host; /* NULL: 127.0.0.1 */
    int port;         /* 0: any free port */
    const char *api_key; /* NULL or "": none */
    int max_active;      /* sequences decoded together per model */
    int n_ctx;           /* <= 0: each model's own */
    const char *chat_template;
    int n_threads;
    size_t max_body;       /* bytes */
    int max_prompt_tokens; /* <= 0: the context */
    int max_tokens;
    int max_queue;
    size_t prefix_cache_bytes;
    int quiet;
    /* one line per request (no newline); NULL: none */
    void (*log_line)(void *ctx, const char *line);
    void *log_ctx;
} ServeOptions;

/* Defaults for everything but models. */
void serve_options_default(ServeOptions *o);

typedef struct Server Server;

/* Loads the models and starts listening; NULL with e set on failure. */
Server *serve_start(const ServeOptions *o, Err *e);
/* The port it listens on (the one chosen when asked for 0). */
int serve_port(const Server *s);
/* The host as given (for the "listening on" line). */
const char *serve_host(const Server *s);
/* Stops accepting connections, lets the requests in flight finish for up to
 * drain_s seconds, then ends the rest at their next token, and frees
 * everything. NULL is ignored. */
void serve_stop(Server *s, double drain_s);

/* Whether the Authorization header value `got` is "Bearer KEY", compared in
 * time that does not depend on where they differ. */
int serve_key_matches(const char *got, const char *key);

#endif
