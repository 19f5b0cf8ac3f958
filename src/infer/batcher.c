#include "infer/batcher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

typedef struct Request {
    GenSeq seq;
    int done, rc;
    Err err;
    struct Request *next;
} Request;

struct Batcher {
    Model *m;
    int max_batch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* a request arrived, or stop */
    pthread_cond_t done; /* a request finished */
    Request *pending_head, *pending_tail;
    int stop;
};

/* Moves waiting requests into the batch (up to max_batch), starting each. */
static int admit(Batcher *b, Request **active, int n) {
    pthread_mutex_lock(&b->mu);
    while (n < b->max_batch && b->pending_head) {
        Request *r = b->pending_head;
        b->pending_head = r->next;
        if (!b->pending_head) b->pending_tail = NULL;
        if (gen_seq_start(b->m, &r->seq, 0, &r->err)) {
            r->rc = -1, r->done = 1;
            pthread_cond_broadcast(&b->done);
            continue;
        }
        active[n++] = r;
    }
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* Marks finished requests (all of them when rc failed) and drops them from
 * the batch; returns the new count. */
static int retire(Batcher *b, Request **active, int n, int rc, const Err *e) {
    pthread_mutex_lock(&b->mu);
    int k = 0;
    for (int i = 0; i < n; i++) {
        Request *r = active[i];
        if (rc || r->seq.finish) {
            r->rc = rc;
            if (rc) r->err = *e;
            r->done = 1;
        } else {
            active[k++] = r;
        }
    }
    if (k < n) pthread_cond_broadcast(&b->done);
    pthread_mutex_unlock(&b->mu);
    return k;
}

static void *batcher_main(void *arg) {
    Batcher *b = arg;
    Request **active = xmalloc((size_t)b->max_batch * sizeof *active);
    GenSeq **seqs = xmalloc((size_t)b->max_batch * sizeof *seqs);
    int n = 0;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (n == 0 && !b->pending_head && !b->stop) pthread_cond_wait(&b->work, &b->mu);
        int quit = n == 0 && !b->pending_head && b->stop;
        pthread_mutex_unlock(&b->mu);
        if (quit) break;
        n = admit(b, active, n);
        if (n == 0) continue;
        for (int i = 0; i < n; i++) seqs[i] = &active[i]->seq;
        Err e;
        err_clear(&e);
        int rc = gen_step(b->m, seqs, n, &e);
        n = retire(b, active, n, rc, &e);
    }
    free(active);
    free(seqs);
    return NULL;
}

Batcher *batcher_start(Model *m, int max_batch, Err *e) {
    if (max_batch < 1) return err_set(e, ERR_ARG, "batcher: max_batch must be >= 1, got %d", max_batch), NULL;
    Batcher *b = xcalloc(1, sizeof *b);
    b->m = m;
    b->max_batch = max_batch;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    if (pthread_create(&b->thread, NULL, batcher_main, b)) {
        free(b);
        return err_set(e, ERR_INTERNAL, "batcher: cannot start its thread"), NULL;
    }
    return b;
}

void batcher_stop(Batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    free(b);
}

int batcher_generate(Batcher *b, const int32_t *prompt, int n_prompt, const GenParams *p, int32_t **out,
                     int *n_out, GenFinish *finish, Err *e) {
    Request r;
    memset(&r, 0, sizeof r);
    gen_seq_init(&r.seq, prompt, n_prompt, p);
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        return err_set(e, ERR_INTERNAL, "batcher: stopped");
    }
    if (b->pending_tail) b->pending_tail->next = &r;
    else b->pending_head = &r;
    b->pending_tail = &r;
    pthread_cond_signal(&b->work);
    while (!r.done) pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    if (r.rc) {
        if (e) *e = r.err;
        gen_seq_free(&r.seq);
        return -1;
    }
    *out = r.seq.out;
    *n_out = r.seq.n_out;
    if (finish) *finish = r.seq.finish;
    r.seq.out = NULL;
    gen_seq_free(&r.seq);
    return 0;
}
