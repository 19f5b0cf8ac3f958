#include "llm/openai.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/rng.h"

/* Inputs per /embeddings request: servers cap the batch (OpenAI at 2048,
 * small local servers far lower). */
#define EMBED_BATCH 128
/* Retries of a 200 whose body is unusable, and of a refused connection. */
#define MAX_MALFORMED_RETRIES 2
#define MAX_CONNECT_RETRIES 2
/* Longest Retry-After we honour: beyond it a server is not coming back soon. */
#define MAX_RETRY_AFTER_S 600.0
/* How much of an error body goes into a message. */
#define BODY_SNIPPET 300

typedef struct OpenAi {
    char *base;  /* without a trailing slash */
    char *shown; /* base for messages: any user:password@ replaced by ***@ */
    char *key;   /* NULL when none; only used to scrub messages and build auth */
    struct curl_slist *headers; /* shared read-only by all handles */
    double timeout_s;
    int max_retries;
    double backoff_base_s, backoff_cap_s;
    atomic_int *cancel; /* may be NULL */
    pthread_mutex_t mu; /* guards the handle pool */
    CURL **pool;
    int n_pool, cap_pool;
} OpenAi;

/* One HTTP exchange. */
typedef struct Exchange {
    StrBuf body;
    long status;
    double retry_after; /* seconds; 0 when absent */
    CURLcode cc;
    char errbuf[CURL_ERROR_SIZE];
} Exchange;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- curl handle pool ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    sb_appendn(ctx, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
    Exchange *x = ctx;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
        char v[64];
        size_t vl = len - (sizeof name - 1) < sizeof v - 1 ? len - (sizeof name - 1) : sizeof v - 1;
        memcpy(v, p + sizeof name - 1, vl);
        v[vl] = 0;
        char *end;
        double s = strtod(v, &end);
        /* Only the delay-seconds form; an HTTP-date falls back to back-off. */
        if (end != v && s > 0) x->retry_after = s < MAX_RETRY_AFTER_S ? s : MAX_RETRY_AFTER_S;
    }
    return len;
}

static int cancelled(const OpenAi *o) { return o->cancel && atomic_load(o->cancel); }

/* curl calls this about once a second (more often while data flows);
 * non-zero aborts the transfer. */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    return cancelled(ctx);
}

static CURL *handle_get(OpenAi *o) {
    CURL *h = NULL;
    pthread_mutex_lock(&o->mu);
    if (o->n_pool) h = o->pool[--o->n_pool];
    pthread_mutex_unlock(&o->mu);
    if (h) return h;
    h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* required with threads */
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, o->headers);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (o->cancel) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, o);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    long ms = (long)(o->timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms < 10000 ? ms : 10000L);
    return h;
}

static void handle_put(OpenAi *o, CURL *h) {
    pthread_mutex_lock(&o->mu);
    if (o->n_pool == o->cap_pool) {
        o->cap_pool = o->cap_pool ? 2 * o->cap_pool : 16;
        o->pool = xrealloc(o->pool, o->cap_pool * sizeof *o->pool);
    }
    o->pool[o->n_pool++] = h;
    pthread_mutex_unlock(&o->mu);
}

static void exchange_post(OpenAi *o, const char *url, const char *json, Exchange *x) {
    sb_clear(&x->body);
    x->status = 0;
    x->retry_after = 0;
    x->errbuf[0] = 0;
    CURL *h = handle_get(o);
    if (!h) {
        x->cc = CURLE_FAILED_INIT;
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->body);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    x->cc = curl_easy_perform(h);
    if (x->cc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    handle_put(o, h);
}

/* ---- error text ---- */

/* Replaces every occurrence of the key in e->msg: servers sometimes echo
 * part or all of a bad key back. */
static void scrub_key(const OpenAi *o, Err *e) {
    if (!e || !o->key || strlen(o->key) < 4) return;
    char *p;
    size_t kl = strlen(o->key);
    while ((p = strstr(e->msg, o->key))) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + kl, strlen(p + kl) + 1);
    }
}

/* The server's error text: error.message from an OpenAI-style body, else the
 * start of the body itself. */
static char *body_snippet(const StrBuf *body) {
    const char *s = body->s ? body->s : "";
    json_t *j = json_loads(s, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!m) m = json_string_value(json_object_get(j, "error"));
    if (!m) m = json_string_value(json_object_get(j, "detail"));
    char *out;
    if (m)
        out = xstrndup(m, strnlen(m, 4 * BODY_SNIPPET));
    else if (!*s)
        out = xstrdup("(empty body)");
    else if (strlen(s) > BODY_SNIPPET)
        out = xasprintf("%.*s... (%zu bytes)", BODY_SNIPPET, s, strlen(s));
    else
        out = xstrdup(s);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    json_decref(j);
    return out;
}

/* ---- the retry loop ---- */

/* Pulls the wanted result out of a parsed 200 body; -1 with e set if the
 * body lacks it. */
typedef int (*ExtractFn)(json_t *j, void *ctx, Err *e);

typedef enum { FAIL_NONE, FAIL_RETRY, FAIL_MALFORMED, FAIL_CONNECT, FAIL_FINAL } FailKind;

static FailKind classify(const OpenAi *o, const Exchange *x, const char *url, const char *model, ExtractFn extract,
                         void *ctx, Err *e) {
    if (x->cc != CURLE_OK) {
        const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->cc);
        if (x->cc == CURLE_ABORTED_BY_CALLBACK) {
            err_set(e, ERR_CANCELLED, "%s: cancelled", url);
            return FAIL_FINAL;
        }
        if (x->cc == CURLE_OPERATION_TIMEDOUT) {
            err_set(e, ERR_TIMEOUT, "%s: no answer within %.1f s (%s)", url, o->timeout_s, why);
            return FAIL_RETRY;
        }
        if (x->cc == CURLE_COULDNT_CONNECT || x->cc == CURLE_COULDNT_RESOLVE_HOST ||
            x->cc == CURLE_COULDNT_RESOLVE_PROXY) {
            err_set(e, ERR_HTTP, "cannot reach %s: %s (is the server running and the base URL right?)", url, why);
            return FAIL_CONNECT;
        }
        if (x->cc == CURLE_UNSUPPORTED_PROTOCOL || x->cc == CURLE_URL_MALFORMAT || x->cc == CURLE_FAILED_INIT) {
            err_set(e, ERR_ARG, "bad endpoint URL %s: %s", url, why);
            return FAIL_FINAL;
        }
        err_set(e, ERR_HTTP, "%s: connection failed: %s", url, why);
        return FAIL_RETRY;
    }
    long st = x->status;
    if (st == 200) {
        json_error_t je;
        const char *s = x->body.s ? x->body.s : "";
        json_t *j = json_loadb(s, x->body.len, 0, &je);
        if (!j) {
            char *snip = body_snippet(&x->body);
            err_set(e, ERR_PARSE, "%s: the answer is not valid JSON (%s at byte %d): %s", url, je.text, je.position,
                    snip);
            free(snip);
            return FAIL_MALFORMED;
        }
        int rc = extract(j, ctx, e);
        json_decref(j);
        if (rc) {
            err_wrap(e, "%s: unexpected answer", url);
            return FAIL_MALFORMED;
        }
        return FAIL_NONE;
    }
    char *snip = body_snippet(&x->body);
    FailKind k = FAIL_FINAL;
    if (st == 401 || st == 403) {
        err_set(e, ERR_AUTH, "%s: HTTP %ld (not authorised; check the API key: OPENAI_API_KEY or the role's key): %s",
                url, st, snip);
    } else if (st == 404) {
        err_set(e, ERR_NOTFOUND, "%s: HTTP 404: model \"%s\" not found, or the base URL is wrong (it usually ends "
                "in /v1): %s", url, model, snip);
    } else if (st == 429 || st == 408 || st >= 500) {
        err_set(e, ERR_HTTP, "%s: HTTP %ld: %s", url, st, snip);
        k = FAIL_RETRY;
    } else {
        err_set(e, ERR_HTTP, "%s: HTTP %ld: %s", url, st, snip);
    }
    free(snip);
    return k;
}

/* Sleeps s seconds in short slices, so that a cancel cuts the wait short. */
static void sleep_s(const OpenAi *o, double s) {
    while (s > 0 && !cancelled(o)) {
        double slice = s < 0.05 ? s : 0.05;
        struct timespec ts = {0, (long)(slice * 1e9)};
        while (nanosleep(&ts, &ts) && errno == EINTR) {
        }
        s -= slice;
    }
}

static double backoff_delay(const OpenAi *o, Rng *r, int attempt, double retry_after) {
    double cap = o->backoff_base_s * (double)(1u << (attempt < 20 ? attempt : 20));
    if (cap > o->backoff_cap_s) cap = o->backoff_cap_s;
    double d = rng_uniform(r) * cap; /* full jitter */
    /* A server that names its wait gets it, plus a little spread so that
     * the callers it throttled do not all come back at the same instant. */
    if (retry_after > 0) d = retry_after + 0.1 * d;
    return d;
}

static void bump(atomic_long *live, long n) {
    if (live) atomic_fetch_add(live, n);
}

/* POSTs json to base+path until extract() accepts a 200 answer or the
 * failure is final or the retries are spent. */
static int post_with_retries(LlmBackend *b, const char *path, const char *json, ExtractFn extract, void *ctx,
                             int *retries_out, Err *e) {
    OpenAi *o = b->impl;
    char *url = xasprintf("%s%s", o->base, path), *shown_url = xasprintf("%s%s", o->shown, path);
    Exchange x;
    memset(&x, 0, sizeof x);
    sb_init(&x.body);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    Rng rng;
    rng_derive(&rng, (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30), (uint64_t)(uintptr_t)&x,
               (uint64_t)pthread_self());
    int retries = 0, malformed = 0, connect = 0, rc = -1, stopped = 0;
    for (int attempt = 0;; attempt++) {
        if (cancelled(o)) {
            err_set(e, ERR_CANCELLED, "%s%s: cancelled", o->shown, path);
            stopped = 1;
            break;
        }
        exchange_post(o, url, json, &x);
        FailKind k = classify(o, &x, shown_url, b->model, extract, ctx, e);
        if (k == FAIL_NONE) {
            rc = 0;
            break;
        }
        if (k == FAIL_MALFORMED && ++malformed > MAX_MALFORMED_RETRIES) k = FAIL_FINAL;
        if (k == FAIL_CONNECT && ++connect > MAX_CONNECT_RETRIES) k = FAIL_FINAL;
        if (cancelled(o)) stopped = 1; /* an aborted transfer */
        if (k == FAIL_FINAL || attempt >= o->max_retries) {
            if (attempt > 0) err_wrap(e, "gave up after %d attempts", attempt + 1);
            break;
        }
        retries++;
        atomic_fetch_add(&b->stats.retries, 1);
        bump(b->live_retries, 1);
        sleep_s(o, backoff_delay(o, &rng, attempt, x.retry_after));
        if (cancelled(o)) {
            err_set(e, ERR_CANCELLED, "%s%s: cancelled while waiting to retry", o->shown, path);
            stopped = 1;
            break;
        }
    }
    if (rc && !stopped) { /* a cancel is not an error of the endpoint */
        atomic_fetch_add(&b->stats.errors, 1);
        bump(b->live_errors, 1);
    }
    if (rc) {
        err_wrap(e, "%s", b->describe);
        scrub_key(o, e);
    }
    if (retries_out) *retries_out = retries;
    sb_free(&x.body);
    free(url);
    free(shown_url);
    return rc;
}

static void count_usage(LlmBackend *b, json_t *j, LlmUsage *u) {
    json_t *usage = json_object_get(j, "usage");
    u->prompt_tokens = (long)json_integer_value(json_object_get(usage, "prompt_tokens"));
    u->completion_tokens = (long)json_integer_value(json_object_get(usage, "completion_tokens"));
    u->cached_tokens = (long)json_integer_value(
        json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"));
    atomic_fetch_add(&b->stats.prompt_tokens, u->prompt_tokens);
    atomic_fetch_add(&b->stats.cached_prompt_tokens, u->cached_tokens);
    atomic_fetch_add(&b->stats.completion_tokens, u->completion_tokens);
    atomic_fetch_add(&b->stats.requests, 1);
    bump(b->live_tokens, u->prompt_tokens + u->completion_tokens);
    bump(b->live_requests, 1);
}

/* ---- chat ---- */

typedef struct ChatCtx {
    LlmBackend *b;
    LlmReply *out;
} ChatCtx;

static int chat_extract(json_t *j, void *ctx, Err *e) {
    ChatCtx *c = ctx;
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "message"), "content");
    if (!json_is_string(content)) {
        /* Some servers answer 200 with an error object. */
        const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        return err_set(e, ERR_PARSE, "no choices[0].message.content string in the JSON answer%s%s", m ? ": " : "",
                       m ? m : "");
    }
    c->out->text = xstrndup(json_string_value(content), json_string_length(content));
    const char *fr = json_string_value(json_object_get(choice, "finish_reason"));
    c->out->finish_reason = fr ? xstrdup(fr) : NULL;
    count_usage(c->b, j, &c->out->usage);
    return 0;
}

static char *chat_body(const char *model, const LlmMessage *msgs, int n, const LlmParams *p) {
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "role", msgs[i].role ? msgs[i].role : "user", "content",
                                             msgs[i].content ? msgs[i].content : ""));
    json_t *req = json_pack("{s:s,s:o}", "model", model, "messages", arr);
    if (p && p->temperature >= 0) json_object_set_new(req, "temperature", json_real(p->temperature));
    if (p && p->top_p >= 0) json_object_set_new(req, "top_p", json_real(p->top_p));
    if (p && p->max_tokens > 0) json_object_set_new(req, "max_tokens", json_integer(p->max_tokens));
    /* JSON integers are signed 64-bit here; keep seeds in range. */
    if (p && p->has_seed) json_object_set_new(req, "seed", json_integer((json_int_t)(p->seed & INT64_MAX)));
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return s;
}

static int openai_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e) {
    memset(out, 0, sizeof *out);
    char *body = chat_body(b->model, msgs, n, p);
    ChatCtx ctx = {b, out};
    int rc = post_with_retries(b, "/chat/completions", body, chat_extract, &ctx, &out->retries, e);
    free(body);
    return rc;
}

/* ---- embeddings ---- */

typedef struct EmbedCtx {
    LlmBackend *b;
    int n;      /* texts in this batch */
    float *out; /* n * dim, allocated on the first answer */
    int dim;    /* 0 until known */
} EmbedCtx;

static int embed_extract(json_t *j, void *ctx, Err *e) {
    EmbedCtx *c = ctx;
    json_t *data = json_object_get(j, "data");
    if ((int)json_array_size(data) != c->n)
        return err_set(e, ERR_PARSE, "expected %d embeddings in \"data\", got %zu", c->n, json_array_size(data));
    for (int i = 0; i < c->n; i++) {
        json_t *item = json_array_get(data, i);
        json_t *vec = json_object_get(item, "embedding");
        json_t *ix = json_object_get(item, "index");
        int at = json_is_integer(ix) ? (int)json_integer_value(ix) : i;
        int dim = (int)json_array_size(vec);
        if (at < 0 || at >= c->n || dim == 0 || (c->dim && dim != c->dim))
            return err_set(e, ERR_PARSE, "data[%d]: expected an index in [0,%d) and a non-empty embedding%s", i, c->n,
                           c->dim ? " of the same length as the others" : "");
        if (!c->dim) {
            c->dim = dim;
            c->out = xcalloc((size_t)c->n * dim, sizeof(float));
        }
        for (int k = 0; k < dim; k++) {
            json_t *v = json_array_get(vec, k);
            if (!json_is_number(v)) return err_set(e, ERR_PARSE, "data[%d].embedding[%d]: expected a number", i, k);
            c->out[(size_t)at * dim + k] = (float)json_number_value(v);
        }
    }
    LlmUsage u;
    count_usage(c->b, j, &u);
    return 0;
}

static int openai_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    *vecs = NULL;
    *dim = 0;
    float *all = NULL;
    for (int start = 0; start < n; start += EMBED_BATCH) {
        int m = n - start < EMBED_BATCH ? n - start : EMBED_BATCH;
        json_t *input = json_array();
        for (int i = 0; i < m; i++) json_array_append_new(input, json_string(texts[start + i] ? texts[start + i] : ""));
        json_t *req = json_pack("{s:s,s:o}", "model", b->model, "input", input);
        char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        EmbedCtx ctx = {b, m, NULL, 0};
        int rc = post_with_retries(b, "/embeddings", body, embed_extract, &ctx, NULL, e);
        free(body);
        if (rc || (*dim && ctx.dim != *dim)) {
            if (!rc) err_set(e, ERR_PARSE, "%s: embeddings changed length from %d to %d", b->describe, *dim, ctx.dim);
            free(ctx.out);
            free(all);
            return -1;
        }
        if (!*dim) {
            *dim = ctx.dim;
            all = xmalloc((size_t)n * ctx.dim * sizeof(float));
        }
        memcpy(all + (size_t)start * *dim, ctx.out, (size_t)m * *dim * sizeof(float));
        free(ctx.out);
    }
    *vecs = all;
    return 0;
}

/* ---- lifetime ---- */

/* The URL with credentials in it (https://user:secret@host/v1) hidden. */
static char *hide_userinfo(const char *url) {
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *end = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(end - host));
    if (!at) return xstrdup(url);
    return xasprintf("%.*s***%s", (int)(host - url), url, at);
}


static void openai_destroy(LlmBackend *b) {
    OpenAi *o = b->impl;
    if (!o) return;
    for (int i = 0; i < o->n_pool; i++) curl_easy_cleanup(o->pool[i]);
    free(o->pool);
    curl_slist_free_all(o->headers);
    pthread_mutex_destroy(&o->mu);
    if (o->key) memset(o->key, 0, strlen(o->key));
    free(o->key);
    free(o->base);
    free(o->shown);
    free(o);
    b->impl = NULL;
}

LlmBackend *llm_openai_new(const char *base_url, const char *api_key, const char *model, double timeout_s,
                           int max_retries, Err *e) {
    if (!base_url || !*base_url) return err_set(e, ERR_ARG, "no endpoint base URL given"), NULL;
    if (strncmp(base_url, "http://", 7) && strncmp(base_url, "https://", 8))
        return err_set(e, ERR_ARG, "endpoint base URL \"%s\": expected http://... or https://...", base_url), NULL;
    if (!model || !*model) return err_set(e, ERR_ARG, "endpoint %s: no model name given", base_url), NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return err_set(e, ERR_INTERNAL, "libcurl failed to initialise: %s", curl_easy_strerror(curl_init_rc)), NULL;

    OpenAi *o = xcalloc(1, sizeof *o);
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/') bl--;
    o->base = xstrndup(base_url, bl);
    o->shown = hide_userinfo(o->base);
    o->timeout_s = timeout_s > 0 ? timeout_s : 300;
    o->max_retries = max_retries >= 0 ? max_retries : 8;
    o->backoff_base_s = 0.5;
    o->backoff_cap_s = 30;
    pthread_mutex_init(&o->mu, NULL);
    o->headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* Without this curl waits for "100 Continue" before sending a large body. */
    o->headers = curl_slist_append(o->headers, "Expect:");
    if (api_key && *api_key) {
        o->key = xstrdup(api_key);
        char *h = xasprintf("Authorization: Bearer %s", api_key);
        o->headers = curl_slist_append(o->headers, h);
        memset(h, 0, strlen(h));
        free(h);
    }
    LlmBackend *b = xcalloc(1, sizeof *b);
    b->impl = o;
    b->model = xstrdup(model);
    b->describe = xasprintf("%s at %s", model, o->shown);
    b->chat = openai_chat;
    b->embed = openai_embed;
    b->destroy = openai_destroy;
    return b;
}

void llm_openai_set_backoff(LlmBackend *b, double base_s, double cap_s) {
    OpenAi *o = b->impl;
    o->backoff_base_s = base_s;
    o->backoff_cap_s = cap_s;
}

void llm_openai_set_cancel(LlmBackend *b, atomic_int *cancel) {
    OpenAi *o = b->impl;
    o->cancel = cancel;
}

const char *llm_openai_base_url(const LlmBackend *b) {
    const OpenAi *o = b->impl;
    return o->shown;
}
