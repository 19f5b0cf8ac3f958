#include "llm/openai.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/rng.h"
#include "llm/oai_wire.h"

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
/* Replies larger than this (after decompression) are abandoned: a runaway or
 * hostile server must not take the machine's memory. $ALOE_MAX_REPLY_MB
 * changes it, up to MAX_REPLY_MB_CEILING, which keeps every reply under
 * 4 GiB so that a parse-error offset fits the 32 bits jansson reports it in. */
#define DEFAULT_MAX_REPLY_MB 64
#define MAX_REPLY_MB_CEILING 4095
/* What replaces the API key where a server echoes it back. */
#define REDACTED "[REDACTED]"
/* Shorter keys are placeholders ("EMPTY", "none", "x" for servers without
 * auth), not secrets; replacing them would rewrite ordinary words. */
#define MIN_REDACTED_KEY 8

typedef struct OpenAi {
    char *base;  /* without a trailing slash */
    char *shown; /* base for messages: any user:password@ replaced by ***@ */
    char *key;   /* NULL when none; only used to redact replies and messages, and build auth */
    size_t max_reply; /* bytes, after decompression */
    char max_reply_shown[32]; /* "64 MiB" */
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
    size_t max_body; /* the reply cap */
    int too_big;     /* the transfer was stopped at the cap */
    long status;
    double retry_after; /* seconds; 0 when absent */
    CURLcode cc;
    char errbuf[CURL_ERROR_SIZE];
} Exchange;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- curl handle pool ---- */

/* curl hands over the body after decoding any Content-Encoding, so counting
 * here bounds the decompressed size (CURLOPT_MAXFILESIZE sees only the bytes
 * on the wire, which a gzip bomb keeps tiny). Returning short makes curl stop
 * the transfer with CURLE_WRITE_ERROR. */
static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    Exchange *x = ctx;
    size_t len = size * n;
    if (len > x->max_body - x->body.len) {
        x->too_big = 1;
        return 0;
    }
    sb_appendn(&x->body, p, len);
    return len;
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
    x->max_body = o->max_reply;
    x->too_big = 0;
    CURL *h = handle_get(o);
    if (!h) {
        x->cc = CURLE_FAILED_INIT;
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    x->cc = curl_easy_perform(h);
    if (x->cc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    handle_put(o, h);
}

/* ---- reply text ---- */

/* Copies len bytes of s, with every occurrence of key replaced by
 * [REDACTED] (key NULL or short: a plain copy); *out_len (may be NULL) gets
 * the copy's length, which s holding NULs keeps strlen from telling. */
static char *redact_copy_n(const char *s, size_t len, const char *key, size_t *out_len) {
    size_t kl = key ? strlen(key) : 0;
    StrBuf b;
    sb_init(&b);
    const char *p = s, *end = s + len;
    if (kl >= MIN_REDACTED_KEY) {
        const char *hit;
        while ((hit = memmem(p, (size_t)(end - p), key, kl))) {
            sb_appendn(&b, p, (size_t)(hit - p));
            sb_append(&b, REDACTED);
            p = hit + kl;
        }
    }
    sb_appendn(&b, p, (size_t)(end - p));
    if (out_len) *out_len = b.len;
    return sb_take(&b);
}

static char *redact_copy(const char *s, size_t len, const char *key) { return redact_copy_n(s, len, key, NULL); }

/* A JSON string as a C string. JSON may carry U+0000 ("\u0000", which
 * llama.cpp's server has produced) and a C string cannot, so each one becomes
 * U+FFFD, the Unicode replacement character: the text after it survives
 * instead of being cut off at the NUL, and the mark shows where something
 * unrepresentable was. The key, should the server echo it, is redacted. */
static char *json_text(json_t *str, const char *key) {
    const char *s = json_string_value(str);
    size_t len = json_string_length(str);
    if (!memchr(s, 0, len)) return redact_copy(s, len, key);
    StrBuf b;
    sb_init(&b);
    for (size_t i = 0; i < len; i++) {
        if (s[i]) sb_appendc(&b, s[i]);
        else sb_append(&b, "\xEF\xBF\xBD");
    }
    char *out = redact_copy(b.s, b.len, key);
    sb_free(&b);
    return out;
}

/* Replaces every occurrence of the key in e->msg: servers sometimes echo
 * part or all of a bad key back. */
static void scrub_key(const OpenAi *o, Err *e) {
    if (!e || !o->key) return;
    char *clean = redact_copy(e->msg, strlen(e->msg), o->key);
    snprintf(e->msg, sizeof e->msg, "%s", clean);
    free(clean);
}

/* Parses a reply body. jansson reports where parsing stopped in an int,
 * which wraps past 2 GiB ("at byte -2147483642"); replies stay under 4 GiB
 * (MAX_REPLY_MB_CEILING), so the offset read as unsigned is exact. */
static json_t *load_reply(const char *body, size_t len, size_t *err_at, json_error_t *je) {
    json_t *j = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, je);
    if (!j) *err_at = llm_openai_error_offset(je->position);
    return j;
}

size_t llm_openai_error_offset(int position) { return (size_t)(unsigned int)position; }

/* The server's error text: error.message from an OpenAI-style body, else the
 * start of the body itself; on one line, without control characters. The
 * key (may be NULL) is redacted before the text is cut: a cut through the
 * key would leave a piece of it that no later scrub recognises. */
static char *body_snippet(const char *body, size_t len, const char *key) {
    json_error_t je;
    size_t at;
    json_t *j = load_reply(body, len, &at, &je);
    json_t *m = oai_error_message(j);
    StrBuf b;
    sb_init(&b);
    if (json_is_string(m)) {
        char *t = json_text(m, key);
        sb_appendn(&b, t, strnlen(t, 4 * BODY_SNIPPET));
        free(t);
    } else if (!len) {
        sb_append(&b, "(empty body)");
    } else {
        size_t tl;
        char *t = redact_copy_n(body, len, key, &tl);
        sb_appendn(&b, t, tl < BODY_SNIPPET ? tl : BODY_SNIPPET);
        free(t);
    }
    /* NULs (which strlen would stop at) and line breaks become spaces */
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.s[i] < 0x20 || b.s[i] == 0x7f) b.s[i] = ' ';
    if (!json_is_string(m) && len > BODY_SNIPPET) sb_printf(&b, "... (%zu bytes)", len);
    json_decref(j);
    return sb_take(&b);
}

char *llm_openai_error_text(const char *body, size_t len) { return body_snippet(body, len, NULL); }

/* ---- the retry loop ---- */

/* Pulls the wanted result out of a parsed 200 body; -1 with e set if the
 * body lacks it. */
typedef int (*ExtractFn)(json_t *j, void *ctx, Err *e);

typedef enum { FAIL_NONE, FAIL_RETRY, FAIL_MALFORMED, FAIL_CONNECT, FAIL_FINAL } FailKind;

static FailKind classify(const OpenAi *o, const Exchange *x, const char *url, const char *model, ExtractFn extract,
                         void *ctx, Err *e) {
    if (x->too_big) {
        /* The same request would get the same oversized answer: no retry. */
        err_set(e, ERR_HTTP, "%s: the reply exceeds the limit of %s and was abandoned (set ALOE_MAX_REPLY_MB to "
                "raise it if the endpoint's replies really are this large)", url, o->max_reply_shown);
        return FAIL_FINAL;
    }
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
        size_t at = 0;
        json_t *j = load_reply(x->body.s, x->body.len, &at, &je);
        if (!j) {
            char *snip = body_snippet(x->body.s, x->body.len, o->key);
            err_set(e, ERR_PARSE, "%s: the answer is not valid JSON (%s at byte %zu): %s", url, je.text, at, snip);
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
    char *snip = body_snippet(x->body.s, x->body.len, o->key);
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

static void count_usage(LlmBackend *b, const LlmUsage *u) {
    atomic_fetch_add(&b->stats.prompt_tokens, u->prompt_tokens);
    atomic_fetch_add(&b->stats.cached_prompt_tokens, u->cached_tokens);
    atomic_fetch_add(&b->stats.completion_tokens, u->completion_tokens);
    atomic_fetch_add(&b->stats.requests, 1);
    bump(b->live_tokens, u->prompt_tokens + u->completion_tokens);
    bump(b->live_requests, 1);
}

/* ---- chat ---- */

/* Fills out from a chat completion; key (may be NULL) is redacted from
 * the text. */
static int chat_parse(json_t *j, const char *key, LlmReply *out, Err *e) {
    OaiChatReply r;
    if (oai_chat_reply(j, &r, e)) {
        char *t = r.error_message ? json_text(r.error_message, key) : NULL;
        if (t) err_set(e, ERR_PARSE, "no choices[0].message.content string in the JSON answer: %.300s", t);
        free(t);
        return -1;
    }
    out->text = json_text(r.content, key);
    out->finish_reason = r.finish_reason ? json_text(r.finish_reason, key) : NULL;
    out->usage = r.usage;
    return 0;
}

typedef struct ChatCtx {
    LlmBackend *b;
    LlmReply *out;
} ChatCtx;

static int chat_extract(json_t *j, void *ctx, Err *e) {
    ChatCtx *c = ctx;
    const OpenAi *o = c->b->impl;
    if (chat_parse(j, o->key, c->out, e)) return -1;
    count_usage(c->b, &c->out->usage);
    return 0;
}

int llm_openai_parse_chat(const char *body, size_t len, LlmReply *out, Err *e) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    size_t at;
    json_t *j = load_reply(body, len, &at, &je);
    if (!j) return err_set(e, ERR_PARSE, "chat reply: not valid JSON (%s at byte %zu)", je.text, at);
    int rc = chat_parse(j, NULL, out, e);
    json_decref(j);
    return rc;
}

static int openai_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e) {
    memset(out, 0, sizeof *out);
    char *body = oai_chat_body(b->model, msgs, n, p);
    ChatCtx ctx = {b, out};
    int rc = post_with_retries(b, "/chat/completions", body, chat_extract, &ctx, &out->retries, e);
    free(body);
    return rc;
}

/* ---- embeddings ---- */

typedef struct EmbedCtx {
    LlmBackend *b; /* NULL: count nothing */
    int n;      /* texts in this batch */
    float *out; /* n * dim, allocated on the first answer */
    int dim;    /* 0 until known */
} EmbedCtx;

static int embed_extract(json_t *j, void *ctx, Err *e) {
    EmbedCtx *c = ctx;
    /* a retried request starts afresh */
    free(c->out);
    c->out = NULL;
    c->dim = 0;
    if (oai_embeddings_reply(j, c->n, &c->out, &c->dim, e)) return -1;
    if (c->b) {
        LlmUsage u;
        oai_read_usage(j, &u);
        count_usage(c->b, &u);
    }
    return 0;
}

int llm_openai_parse_embeddings(const char *body, size_t len, int n, float **vecs, int *dim, Err *e) {
    *vecs = NULL;
    *dim = 0;
    json_error_t je;
    size_t at;
    json_t *j = load_reply(body, len, &at, &je);
    if (!j) return err_set(e, ERR_PARSE, "embeddings reply: not valid JSON (%s at byte %zu)", je.text, at);
    EmbedCtx ctx = {NULL, n, NULL, 0};
    int rc = embed_extract(j, &ctx, e);
    json_decref(j);
    if (rc) {
        free(ctx.out);
        return -1;
    }
    *vecs = ctx.out;
    *dim = ctx.dim;
    return 0;
}

static int openai_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    *vecs = NULL;
    *dim = 0;
    float *all = NULL;
    for (int start = 0; start < n; start += EMBED_BATCH) {
        int m = n - start < EMBED_BATCH ? n - start : EMBED_BATCH;
        char *body = oai_embeddings_body(b->model, texts + start, m);
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
char *llm_openai_shown_url(const char *url) {
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

int llm_openai_check_key(const char *api_key, Err *e) {
    for (size_t i = 0; api_key && api_key[i]; i++) {
        unsigned char c = (unsigned char)api_key[i];
        /* CR or LF would end the Authorization header and start another of
         * the key's choosing; no control character belongs in a key. The key
         * itself is never shown. */
        if (c < 0x20 || c == 0x7f)
            return err_set(e, ERR_ARG, "the API key contains a control character (byte 0x%02x at position %zu of %zu; "
                           "%s) and cannot be sent in an HTTP header", c, i + 1, strlen(api_key),
                           c == '\n' || c == '\r' ? "a line break: was it read from a file with its newline?"
                                                   : "check how the variable was set");
    }
    return 0;
}

int llm_openai_max_reply_env(size_t *bytes, Err *e) {
    *bytes = (size_t)DEFAULT_MAX_REPLY_MB << 20;
    const char *v = getenv("ALOE_MAX_REPLY_MB");
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long mb = strtol(v, &end, 10);
    if (errno || end == v || *end || mb < 1 || mb > MAX_REPLY_MB_CEILING)
        return err_set(e, ERR_ARG, "ALOE_MAX_REPLY_MB=\"%s\": expected a whole number of MiB from 1 to %d", v,
                       MAX_REPLY_MB_CEILING);
    *bytes = (size_t)mb << 20;
    return 0;
}

void llm_openai_set_max_reply(LlmBackend *b, size_t bytes) {
    OpenAi *o = b->impl;
    size_t ceiling = (size_t)MAX_REPLY_MB_CEILING << 20;
    o->max_reply = bytes < 1 ? 1 : bytes > ceiling ? ceiling : bytes;
    if (o->max_reply % (1u << 20) == 0)
        snprintf(o->max_reply_shown, sizeof o->max_reply_shown, "%zu MiB", o->max_reply >> 20);
    else
        snprintf(o->max_reply_shown, sizeof o->max_reply_shown, "%zu bytes", o->max_reply);
}

LlmBackend *llm_openai_new(const char *base_url, const char *api_key, const char *model, double timeout_s,
                           int max_retries, Err *e) {
    if (!base_url || !*base_url) return err_set(e, ERR_ARG, "no endpoint base URL given"), NULL;
    if (llm_openai_check_key(api_key, e)) return NULL;
    size_t max_reply;
    if (llm_openai_max_reply_env(&max_reply, e)) return NULL;
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
    o->shown = llm_openai_shown_url(o->base);
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
    llm_openai_set_max_reply(b, max_reply);
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
