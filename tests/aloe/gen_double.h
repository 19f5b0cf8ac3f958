/* A scripted in-process LlmBackend for the persona and dialogue tests: a
 * reply is a pure function of the request (so runs are reproducible and
 * thread timing does not matter), and every request is counted. */
#ifndef ALOE_TESTS_GEN_DOUBLE_H
#define ALOE_TESTS_GEN_DOUBLE_H

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "llm/llm.h"

typedef char *(*DoubleReplyFn)(void *ctx, const LlmMessage *msgs, int n, const LlmParams *p);
typedef int (*DoubleEmbedFn)(void *ctx, const char *text, float *vec, int dim);

typedef struct Double {
    DoubleReplyFn reply;
    DoubleEmbedFn embed_one;
    void *ctx;
    int dim;
    atomic_int chats, embeds, embedded_texts;
} Double;

static int double_chat(LlmBackend *b, const LlmMessage *msgs, int n, const LlmParams *p, LlmReply *out, Err *e) {
    Double *d = b->impl;
    atomic_fetch_add(&d->chats, 1);
    memset(out, 0, sizeof *out);
    out->text = d->reply(d->ctx, msgs, n, p);
    if (!out->text) return err_set(e, ERR_HTTP, "%s: scripted failure", b->model);
    out->usage.prompt_tokens = 10;
    out->usage.completion_tokens = (long)strlen(out->text) / 4;
    return 0;
}

static int double_embed(LlmBackend *b, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    Double *d = b->impl;
    atomic_fetch_add(&d->embeds, 1);
    atomic_fetch_add(&d->embedded_texts, n);
    *dim = d->dim;
    *vecs = xcalloc((size_t)n * (size_t)d->dim, sizeof(float));
    for (int i = 0; i < n; i++)
        if (d->embed_one(d->ctx, texts[i], *vecs + (size_t)i * (size_t)d->dim, d->dim)) {
            free(*vecs);
            *vecs = NULL;
            return err_set(e, ERR_HTTP, "%s: scripted embedding failure", b->model);
        }
    return 0;
}

static LlmBackend *double_backend(const char *model, Double *d) {
    LlmBackend *b = xcalloc(1, sizeof *b);
    b->model = xstrdup(model);
    b->describe = xasprintf("%s (test double)", model);
    b->chat = d->reply ? double_chat : NULL;
    b->embed = d->embed_one ? double_embed : NULL;
    b->impl = d;
    return b;
}

/* FNV-1a, for replies that depend on the request. */
static inline unsigned long double_hash(const char *s) {
    unsigned long h = 1469598103934665603ul;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ul;
    return h;
}

#endif
