#include "base/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/mem.h"

typedef struct {
    PoolJob job;
    void *ctx;
    long n;
    atomic_long next;
    atomic_int *stop;
} PoolState;

typedef struct {
    PoolState *st;
    int thread;
} Worker;

static void *worker_main(void *arg) {
    Worker *w = arg;
    PoolState *st = w->st;
    for (;;) {
        if (st->stop && atomic_load(st->stop)) break;
        long i = atomic_fetch_add(&st->next, 1);
        if (i >= st->n) break;
        st->job(st->ctx, i, w->thread);
    }
    return NULL;
}

void pool_run(int threads, long n, PoolJob job, void *ctx, atomic_int *stop) {
    if (n <= 0) return;
    if (threads < 1) threads = 1;
    if (threads > n) threads = (int)n;
    PoolState st = {.job = job, .ctx = ctx, .n = n, .stop = stop};
    atomic_init(&st.next, 0);
    Worker *ws = xcalloc((size_t)threads, sizeof *ws);
    pthread_t *tids = xcalloc((size_t)threads, sizeof *tids);
    for (int t = 0; t < threads; t++) {
        ws[t] = (Worker){&st, t};
        if (t > 0) {
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            /* Modest stacks: a run may hold hundreds of blocking workers. */
            pthread_attr_setstacksize(&attr, 1 << 20);
            if (pthread_create(&tids[t], &attr, worker_main, &ws[t])) tids[t] = 0;
            pthread_attr_destroy(&attr);
        }
    }
    worker_main(&ws[0]);
    for (int t = 1; t < threads; t++)
        if (tids[t]) pthread_join(tids[t], NULL);
    /* If some thread could not be created, its share was taken by the others. */
    free(ws);
    free(tids);
}

int pool_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
