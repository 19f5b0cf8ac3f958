#include "llm/local_engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* Prompt tokens per forward pass while prefilling (bounds the activations). */
#define LOCAL_PREFILL_CHUNK 512

typedef enum { SEQ_RUNNING = 0, SEQ_STOP, SEQ_LENGTH } SeqFinish;

/* One request in flight. It lives on the submitting thread's stack; the
 * engine thread owns everything but `done` until it sets done. */
typedef struct Seq {
    const LocalRequest *rq;
    int32_t *ids;       /* prompt, then the new tokens */
    int n, n_out, max_tokens;
    KvCache kv;
    Sampler sampler;
    TokStream ts;
    StrBuf text;        /* reply text so far */
    size_t emitted;     /* bytes of text handed to on_text */
    SeqFinish finish;
    int rc;
    Err err;
    int done;           /* under the engine's lock */
    pthread_cond_t cv;
    struct Seq *next;
} Seq;

struct LocalEngine {
    LocalEngineConfig c;
    int32_t *stop_ids;
    char **stop_strings;
    int n_stop_strings;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a request arrived, or stop */
    Seq *head, *tail;    /* waiting requests, first come first served */
    int stopping;
    atomic_int peak_active;
    /* engine-thread state */
    Seq **active;
    int n_active;
    float *logits; /* [max_active, vocab] */
    int32_t *step_ids;
    int *step_pos;
    KvCache **step_caches;
};

/* ---- text: streaming decode, stop strings ---- */

static int is_stop_id(const LocalEngine *g, int32_t t) {
    for (int i = 0; i < g->c.n_stop_ids; i++)
        if (g->stop_ids[i] == t) return 1;
    return 0;
}

/* Cuts the text at the first stop string that starts at or after `from`;
 * 1 if one was found. */
static int cut_at_stop_string(const LocalEngine *g, StrBuf *t, size_t from) {
    const char *best = NULL;
    for (int i = 0; i < g->n_stop_strings; i++) {
        const char *hit = t->len ? strstr(t->s + from, g->stop_strings[i]) : NULL;
        if (hit && (!best || hit < best)) best = hit;
    }
    if (!best) return 0;
    t->len = (size_t)(best - t->s);
    t->s[t->len] = 0;
    return 1;
}

/* Bytes at the end of the text that could be the start of a stop string,
 * held back from streaming until the next token decides. */
static size_t stop_prefix_len(const LocalEngine *g, const StrBuf *t) {
    size_t keep = 0;
    for (int i = 0; i < g->n_stop_strings; i++) {
        size_t m = strlen(g->stop_strings[i]);
        for (size_t k = m ? m - 1 : 0; k > keep; k--)
            if (k <= t->len && !memcmp(t->s + t->len - k, g->stop_strings[i], k)) {
                keep = k;
                break;
            }
    }
    return keep;
}

static void emit(Seq *s, size_t upto) {
    if (upto > s->emitted && s->rq->on_text) s->rq->on_text(s->rq->ctx, s->text.s + s->emitted, upto - s->emitted);
    if (upto > s->emitted) s->emitted = upto;
}

/* Adds token t's text; sets finish on a stop string. */
static int add_text(LocalEngine *g, Seq *s, int32_t t) {
    size_t before = s->text.len;
    if (tok_stream_push(&s->ts, t, &s->text, &s->err)) return -1;
    size_t longest = 0;
    for (int i = 0; i < g->n_stop_strings; i++) {
        size_t m = strlen(g->stop_strings[i]);
        if (m > longest) longest = m;
    }
    /* a stop string may have begun in earlier tokens' text */
    size_t from = before >= longest ? before - longest + 1 : 0;
    if (cut_at_stop_string(g, &s->text, from)) s->finish = SEQ_STOP;
    return 0;
}

/* Samples the next token from logits and records it. */
static int take_token(LocalEngine *g, Seq *s, float *logits) {
    int32_t t = sampler_sample(&s->sampler, logits, s->ids, s->n);
    s->ids[s->n++] = t;
    s->n_out++;
    if (is_stop_id(g, t)) {
        s->finish = SEQ_STOP;
        tok_stream_flush(&s->ts, &s->text);
    } else if (add_text(g, s, t)) {
        return -1;
    }
    if (!s->finish && s->n_out >= s->max_tokens) {
        s->finish = SEQ_LENGTH;
        tok_stream_flush(&s->ts, &s->text);
    }
    emit(s, s->finish ? s->text.len : s->text.len - stop_prefix_len(g, &s->text));
    return 0;
}

/* ---- sequences ---- */

static void seq_release(Seq *s) {
    kv_cache_free(&s->kv);
    sampler_free(&s->sampler);
    free(s->ids);
    s->ids = NULL;
}

/* Allocates the sequence's cache, prefills its prompt (in chunks, logits of
 * the last token only) and samples its first token. */
static int seq_start(LocalEngine *g, Seq *s) {
    Model *m = g->c.m;
    const LocalRequest *rq = s->rq;
    int cap = rq->n_prompt + rq->max_tokens;
    if (kv_cache_init(&s->kv, m, cap, &s->err)) return -1;
    sampler_init(&s->sampler, &rq->sampling, m->cfg.vocab_size);
    s->ids = xmalloc((size_t)cap * sizeof *s->ids);
    memcpy(s->ids, rq->prompt, (size_t)rq->n_prompt * sizeof *s->ids);
    s->n = rq->n_prompt;
    s->max_tokens = rq->max_tokens;
    tok_stream_init(&s->ts, g->c.tok, 1);
    for (int p = 0; p < rq->n_prompt; p += LOCAL_PREFILL_CHUNK) {
        int k = rq->n_prompt - p < LOCAL_PREFILL_CHUNK ? rq->n_prompt - p : LOCAL_PREFILL_CHUNK;
        if (model_forward(m, &s->kv, s->ids + p, k, p, g->logits, 0, &s->err)) return -1;
    }
    return take_token(g, s, g->logits);
}

/* Hands the result to the waiting caller. The caller owns s again once
 * done is set, so nothing touches s afterwards. */
static void seq_complete(LocalEngine *g, Seq *s) {
    seq_release(s);
    pthread_mutex_lock(&g->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&g->mu);
}

static void seq_fail(LocalEngine *g, Seq *s, const Err *why) {
    s->rc = -1;
    if (why && why != &s->err) s->err = *why;
    seq_complete(g, s);
}

/* ---- the engine thread ---- */

/* One forward pass over the last token of every active sequence. */
static int decode_step(LocalEngine *g, Err *e) {
    int k = g->n_active, V = g->c.m->cfg.vocab_size;
    if (k > atomic_load(&g->peak_active)) atomic_store(&g->peak_active, k);
    for (int i = 0; i < k; i++) {
        Seq *s = g->active[i];
        g->step_ids[i] = s->ids[s->n - 1];
        g->step_pos[i] = s->n - 1;
        g->step_caches[i] = &s->kv;
    }
    if (model_forward_batch(g->c.m, g->step_caches, g->step_ids, g->step_pos, k, NULL, k, g->logits, e)) return -1;
    for (int i = 0; i < k; i++) {
        Seq *s = g->active[i];
        if (take_token(g, s, g->logits + (size_t)i * V)) s->rc = -1;
    }
    return 0;
}

/* Completes the sequences that finished (or failed) and closes the gaps. */
static void retire_finished(LocalEngine *g) {
    int k = 0;
    for (int i = 0; i < g->n_active; i++) {
        Seq *s = g->active[i];
        if (s->rc) seq_fail(g, s, NULL);
        else if (s->finish) seq_complete(g, s);
        else g->active[k++] = s;
    }
    g->n_active = k;
}

/* Starts each newly admitted sequence; those that end at once (a stop
 * token first) or fail are completed right away. */
static void admit(LocalEngine *g, Seq *fresh) {
    while (fresh) {
        Seq *s = fresh;
        fresh = fresh->next;
        if (seq_start(g, s)) seq_fail(g, s, NULL);
        else if (s->finish) seq_complete(g, s);
        else g->active[g->n_active++] = s;
    }
}

static void *engine_main(void *arg) {
    LocalEngine *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->stopping && !g->head && g->n_active == 0) pthread_cond_wait(&g->wake, &g->mu);
        if (g->stopping && !g->head && g->n_active == 0) break;
        /* admit waiting requests up to the limit, between decoding steps */
        Seq *fresh = NULL, **link = &fresh;
        for (int room = g->c.max_active - g->n_active; room > 0 && g->head; room--) {
            *link = g->head;
            g->head = g->head->next;
            link = &(*link)->next;
            *link = NULL;
        }
        if (!g->head) g->tail = NULL;
        pthread_mutex_unlock(&g->mu);
        admit(g, fresh);
        if (g->n_active) {
            Err e;
            if (decode_step(g, &e))
                for (int i = 0; i < g->n_active; i++) g->active[i]->rc = -1, g->active[i]->err = e;
            retire_finished(g);
        }
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

LocalEngine *local_engine_start(const LocalEngineConfig *c, Err *e) {
    if (c->max_active <= 0) return err_set(e, ERR_ARG, "local engine: max_active must be positive"), NULL;
    LocalEngine *g = xcalloc(1, sizeof *g);
    g->c = *c;
    g->stop_ids = xmalloc((size_t)(c->n_stop_ids + 1) * sizeof *g->stop_ids);
    if (c->n_stop_ids) memcpy(g->stop_ids, c->stop_ids, (size_t)c->n_stop_ids * sizeof *g->stop_ids);
    for (const char *const *s = c->stop_strings; s && *s; s++) g->n_stop_strings++;
    g->stop_strings = xcalloc((size_t)g->n_stop_strings + 1, sizeof *g->stop_strings);
    for (int i = 0; i < g->n_stop_strings; i++) g->stop_strings[i] = xstrdup(c->stop_strings[i]);
    int k = c->max_active;
    g->active = xcalloc((size_t)k, sizeof *g->active);
    g->logits = xmalloc((size_t)k * c->m->cfg.vocab_size * sizeof *g->logits);
    g->step_ids = xmalloc((size_t)k * sizeof *g->step_ids);
    g->step_pos = xmalloc((size_t)k * sizeof *g->step_pos);
    g->step_caches = xmalloc((size_t)k * sizeof *g->step_caches);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->wake, NULL);
    if (pthread_create(&g->thread, NULL, engine_main, g)) {
        err_set(e, ERR_INTERNAL, "local engine: cannot start its thread");
        g->thread = 0;
        local_engine_stop(g);
        return NULL;
    }
    return g;
}

void local_engine_stop(LocalEngine *g) {
    if (!g) return;
    if (g->thread) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_signal(&g->wake);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->wake);
    for (int i = 0; i < g->n_stop_strings; i++) free(g->stop_strings[i]);
    free(g->stop_strings);
    free(g->stop_ids);
    free(g->active);
    free(g->logits);
    free(g->step_ids);
    free(g->step_pos);
    free(g->step_caches);
    free(g);
}

int local_engine_peak_active(LocalEngine *g) { return atomic_load(&g->peak_active); }

int local_engine_run(LocalEngine *g, const LocalRequest *rq, LocalResult *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (rq->n_prompt <= 0) return err_set(e, ERR_ARG, "local engine: empty prompt");
    if (rq->max_tokens <= 0)
        return err_set(e, ERR_ARG, "local engine: max_tokens must be positive, got %d", rq->max_tokens);
    if (sampler_params_check(&rq->sampling, e)) return -1;
    Seq s;
    memset(&s, 0, sizeof s);
    s.rq = rq;
    sb_init(&s.text);
    pthread_cond_init(&s.cv, NULL);
    pthread_mutex_lock(&g->mu);
    if (g->tail) g->tail->next = &s;
    else g->head = &s;
    g->tail = &s;
    pthread_cond_signal(&g->wake);
    while (!s.done) pthread_cond_wait(&s.cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_cond_destroy(&s.cv);
    if (s.rc) {
        *e = s.err;
        sb_free(&s.text);
        return -1;
    }
    out->length_limited = s.finish == SEQ_LENGTH;
    out->n_completion = s.n_out;
    out->text = s.text.s ? sb_take(&s.text) : xstrdup("");
    return 0;
}
