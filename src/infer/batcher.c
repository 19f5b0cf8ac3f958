#include "infer/batcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* A request in flight. It lives on the submitting thread's stack; the
 * batcher's thread owns it until it sets done. */
typedef struct Request {
    GenSeq *seq;
    int done, rc; /* done: under the batcher's lock */
    Err err;
    pthread_cond_t cv;
    struct Request *next;
} Request;

struct Batcher {
    Model *m;
    int max_active;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a request arrived, or stop */
    Request *pending_head, *pending_tail;
    int stop;
    atomic_int peak_active;
    PrefixCacheStats pstats; /* a copy of pc's, under mu */
    /* the batcher thread's own */
    PrefixCache *pc;         /* NULL: none */
    Request **active;
    GenSeq **seqs;
    int n_active;
};

/* Copies the prefix cache's counters where other threads read them. */
static void publish_prefix_stats(Batcher *b) {
    pthread_mutex_lock(&b->mu);
    b->pstats = prefix_cache_stats(b->pc);
    pthread_mutex_unlock(&b->mu);
}

/* Hands the request back to its caller, who owns it again once done is set:
 * nothing touches r afterwards. */
static void complete(Batcher *b, Request *r, int rc, const Err *e) {
    GenSeq *s = r->seq;
    /* a finished prompt's keys and values stay for the next one that begins alike */
    if (b->pc && rc == 0 && s->n_fed >= s->n_prompt) {
        prefix_cache_put(b->pc, s->prompt, s->n_prompt, &s->kv);
        publish_prefix_stats(b);
    }
    gen_seq_release(s);
    pthread_mutex_lock(&b->mu);
    r->rc = rc;
    if (rc && e != &r->err) r->err = *e;
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Moves waiting requests into the batch (up to max_active), starting each;
 * one that cannot start is completed with its error. */
static void admit(Batcher *b) {
    for (;;) {
        pthread_mutex_lock(&b->mu);
        Request *r = b->n_active < b->max_active ? b->pending_head : NULL;
        if (r && !(b->pending_head = r->next)) b->pending_tail = NULL;
        pthread_mutex_unlock(&b->mu);
        if (!r) return;
        if (gen_seq_start(b->m, r->seq, 0, &r->err)) {
            complete(b, r, -1, &r->err);
            continue;
        }
        if (b->pc) {
            r->seq->n_fed = prefix_cache_reuse(b->pc, r->seq->prompt, r->seq->n_prompt, &r->seq->kv);
            publish_prefix_stats(b);
        }
        b->active[b->n_active++] = r;
    }
}

/* One step over the batch; completes the finished requests (all of them
 * when the step failed) and closes the gaps. */
static void step(Batcher *b) {
    Err e;
    err_clear(&e);
    for (int i = 0; i < b->n_active; i++) b->seqs[i] = b->active[i]->seq;
    int decoded = gen_step(b->m, b->seqs, b->n_active, &e);
    if (decoded > atomic_load(&b->peak_active)) atomic_store(&b->peak_active, decoded);
    int k = 0;
    for (int i = 0; i < b->n_active; i++) {
        Request *r = b->active[i];
        if (decoded < 0) complete(b, r, -1, &e);
        else if (r->seq->finish) complete(b, r, 0, NULL);
        else b->active[k++] = r;
    }
    b->n_active = k;
}

static void *batcher_main(void *arg) {
    Batcher *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (b->n_active == 0 && !b->pending_head && !b->stop) pthread_cond_wait(&b->work, &b->mu);
        int quit = b->n_active == 0 && !b->pending_head && b->stop;
        pthread_mutex_unlock(&b->mu);
        if (quit) break;
        admit(b);
        if (b->n_active) step(b);
    }
    return NULL;
}

Batcher *batcher_start(Model *m, int max_active, size_t prefix_cache_bytes, Err *e) {
    if (max_active < 1) return err_set(e, ERR_ARG, "batcher: max_active must be >= 1, got %d", max_active), NULL;
    Batcher *b = xcalloc(1, sizeof *b);
    b->m = m;
    b->pc = prefix_cache_bytes ? prefix_cache_new(prefix_cache_bytes) : NULL;
    b->max_active = max_active;
    b->active = xcalloc((size_t)max_active, sizeof *b->active);
    b->seqs = xcalloc((size_t)max_active, sizeof *b->seqs);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    if (pthread_create(&b->thread, NULL, batcher_main, b)) {
        err_set(e, ERR_INTERNAL, "batcher: cannot start its thread");
        batcher_stop(b);
        return NULL;
    }
    b->started = 1;
    return b;
}

void batcher_stop(Batcher *b) {
    if (!b) return;
    if (b->started) {
        pthread_mutex_lock(&b->mu);
        b->stop = 1;
        pthread_cond_signal(&b->work);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    free(b->active);
    free(b->seqs);
    prefix_cache_free(b->pc);
    free(b);
}

int batcher_peak_active(Batcher *b) { return atomic_load(&b->peak_active); }

PrefixCacheStats batcher_prefix_stats(Batcher *b) {
    pthread_mutex_lock(&b->mu);
    PrefixCacheStats s = b->pstats;
    pthread_mutex_unlock(&b->mu);
    return s;
}

int batcher_run(Batcher *b, GenSeq *s, Err *e) {
    Request r;
    memset(&r, 0, sizeof r);
    r.seq = s;
    pthread_cond_init(&r.cv, NULL);
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        pthread_cond_destroy(&r.cv);
        return err_set(e, ERR_INTERNAL, "batcher: stopped");
    }
    if (b->pending_tail) b->pending_tail->next = &r;
    else b->pending_head = &r;
    b->pending_tail = &r;
    pthread_cond_signal(&b->work);
    while (!r.done) pthread_cond_wait(&r.cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_cond_destroy(&r.cv);
    if (r.rc && e) *e = r.err;
    return r.rc;
}
