#include "kernels/threads.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/mem.h"
#include "base/pool.h"

#include <cblas.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a worker spins for the next task before sleeping. Decode issues
 * tasks every few microseconds; 2^14 pauses are roughly 100-500 us. */
#define SPIN_ROUNDS (1 << 14)

typedef struct Worker {
    ThreadPool *tp;
    int ith;
    pthread_t thread;
} Worker;

struct ThreadPool {
    int n;
    Worker *workers;        /* n - 1 of them; the caller is thread 0 */
    ThreadTask fn;
    void *ctx;
    atomic_uint generation; /* bumped for every task (and for shutdown) */
    atomic_int pending;     /* workers still running the current task */
    atomic_int quit;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int sleeping;           /* guarded by mu */
    void *scratch;
    size_t scratch_size;
};

static unsigned wait_for_task(ThreadPool *tp, unsigned seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&tp->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&tp->mu);
    tp->sleeping++;
    unsigned g;
    while ((g = atomic_load_explicit(&tp->generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&tp->wake, &tp->mu);
    tp->sleeping--;
    pthread_mutex_unlock(&tp->mu);
    return g;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    ThreadPool *tp = w->tp;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_task(tp, seen);
        if (atomic_load(&tp->quit)) break;
        tp->fn(tp->ctx, w->ith, tp->n);
        atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_release);
    }
    return NULL;
}

ThreadPool *tp_create(int n_threads) {
    if (n_threads <= 0) n_threads = pool_cpu_count();
    openblas_set_num_threads(1);
    ThreadPool *tp = xcalloc(1, sizeof *tp);
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->wake, NULL);
    tp->workers = xcalloc((size_t)n_threads, sizeof *tp->workers);
    for (int i = 1; i < n_threads; i++) {
        tp->workers[i].tp = tp;
        tp->workers[i].ith = i;
        if (pthread_create(&tp->workers[i].thread, NULL, worker_main, &tp->workers[i]) != 0) {
            tp->n = i; /* run with the threads we got */
            break;
        }
    }
    return tp;
}

static void publish(ThreadPool *tp) {
    atomic_fetch_add_explicit(&tp->generation, 1, memory_order_release);
    /* Taking the mutex orders this wake-up after any worker's check of the
     * generation under the same mutex, so no sleeper can miss it. */
    pthread_mutex_lock(&tp->mu);
    if (tp->sleeping > 0) pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
}

void tp_free(ThreadPool *tp) {
    if (!tp) return;
    atomic_store(&tp->quit, 1);
    publish(tp);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->workers[i].thread, NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->wake);
    free(tp->workers);
    free(tp->scratch);
    free(tp);
}

int tp_size(const ThreadPool *tp) { return tp ? tp->n : 1; }

void tp_run(ThreadPool *tp, ThreadTask fn, void *ctx) {
    if (!tp || tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    publish(tp);
    fn(ctx, 0, tp->n);
    /* When the machine is busier than the pool (other processes on the
     * cores), a worker may not be running: yield the CPU to it rather than
     * spin through its time slice. */
    for (int i = 0; atomic_load_explicit(&tp->pending, memory_order_acquire) > 0; i++) {
        if (i < 4096) cpu_relax();
        else sched_yield();
    }
}

void *tp_scratch(ThreadPool *tp, size_t bytes) {
    if (bytes > tp->scratch_size) {
        free(tp->scratch);
        tp->scratch_size = bytes + bytes / 4;
        tp->scratch = xaligned_alloc(tp->scratch_size);
    }
    return tp->scratch;
}
