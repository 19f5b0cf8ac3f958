/* threads: a small persistent pool of worker threads for the math kernels.
 *
 * base/pool.h starts threads on every call, which costs tens of
 * microseconds; a decoder step issues a few hundred matrix-vector products
 * per token, so the kernels need workers that are already running. Workers
 * spin briefly after each task (the next one usually follows within
 * microseconds) and then sleep on a condition variable, so an idle pool
 * costs no CPU.
 *
 * A task is fn(ctx, ith, nth) run once on each of nth threads (the caller
 * is thread 0); each call splits its own work by ith. */
#ifndef ALOE_KERNELS_THREADS_H
#define ALOE_KERNELS_THREADS_H

#include <stdatomic.h>
#include <stddef.h>

typedef void (*ThreadTask)(void *ctx, int ith, int nth);

typedef struct ThreadPool ThreadPool;

/* n_threads <= 0 means one per online CPU. Never returns NULL. Also sets
 * OpenBLAS to one thread, for the whole process: the pool owns the
 * parallelism, and each worker calls sgemm on its own share of a matrix.
 * So a large sgemm anywhere in a process that made a pool must be split
 * over a pool too (matmul_forward, enc_linear), or it runs on one core. */
ThreadPool *tp_create(int n_threads);
void tp_free(ThreadPool *tp);
int tp_size(const ThreadPool *tp);
/* Runs fn on every thread and returns when all are done. tp may be NULL
 * (then fn runs once as thread 0 of 1). Not reentrant: fn must not call
 * tp_run on the same pool. */
void tp_run(ThreadPool *tp, ThreadTask fn, void *ctx);
/* Runs fn as a shared task: fn must take its work with tp_next (never by
 * ith), because any worker may not take part at all -- a worker whose core
 * is busy with another process is not waited for. The caller always runs
 * fn; it returns when every thread that entered fn has left it. ith is
 * still unique per thread (for per-thread scratch). */
void tp_run_shared(ThreadPool *tp, ThreadTask fn, void *ctx);
/* A 64-byte aligned scratch buffer of at least `bytes`, owned by the pool
 * and reused by the kernels between calls (grown as needed; the contents
 * do not survive the next call that asks for scratch). */
void *tp_scratch(ThreadPool *tp, size_t bytes);

/* Dynamic sharing of n items in chunks: every thread calls tp_next until it
 * returns 0. A thread that starts late (descheduled on a busy machine)
 * then finds the work already done instead of holding up the others. */
typedef struct TpCounter {
    _Atomic long next;
} TpCounter;

static inline int tp_next(TpCounter *c, long n, long chunk, long *start, long *end) {
    long s = atomic_fetch_add_explicit(&c->next, chunk, memory_order_relaxed);
    if (s >= n) return 0;
    *start = s;
    *end = s + chunk < n ? s + chunk : n;
    return 1;
}

/* Dynamic sharing that keeps each thread on one contiguous range: n items
 * are cut into `parts` ranges (one per thread), each taken from its front
 * in chunks; a thread whose own range is done takes chunks from the
 * others' (so a thread that never starts holds nothing up, as with
 * TpCounter). Reading its own range from start to end, each thread is one
 * sequential stream for the hardware prefetcher, where interleaved chunks
 * (TpCounter) jump every chunk: for the decode path's matrix-vector
 * products that is the difference between ~37 and ~45 GB/s on two cores. */
#define TP_RANGES_MAX 16
typedef struct TpRanges {
    int parts;
    struct {
        _Alignas(64) _Atomic long next; /* a cache line each: threads take chunks concurrently */
        long end;
    } r[TP_RANGES_MAX];
} TpRanges;

static inline void tp_ranges_init(TpRanges *t, long n, int parts) {
    t->parts = parts < 1 ? 1 : parts > TP_RANGES_MAX ? TP_RANGES_MAX : parts;
    for (int i = 0; i < t->parts; i++) {
        atomic_init(&t->r[i].next, n * i / t->parts);
        t->r[i].end = n * (i + 1) / t->parts;
    }
}

/* The next piece for thread ith: from its own range, else a chunk from
 * the others' in turn. 0 when all is taken. From its own range a thread
 * takes an eighth of what is left (whole chunks, at least one): a locked
 * add waits for every load in flight, and the decode's row dots stream
 * from memory, so a claim per chunk drained the stream 130 000 times a
 * token of an 8B model (Q4_0, 32 KB chunks); guided this way a matrix
 * costs each thread a few dozen claims, and what is left for the end is
 * still cut fine enough that the threads finish together. */
static inline int tp_ranges_next(TpRanges *t, int ith, long chunk, long *start, long *end) {
    for (int k = 0; k < t->parts; k++) {
        int i = (ith + k) % t->parts;
        long next = atomic_load_explicit(&t->r[i].next, memory_order_relaxed), e = t->r[i].end;
        if (next >= e) continue;
        long c = k == 0 && (e - next) / 8 > chunk ? (e - next) / 8 / chunk * chunk : chunk;
        long s = atomic_fetch_add_explicit(&t->r[i].next, c, memory_order_relaxed);
        if (s >= e) continue;
        *start = s;
        *end = s + c < e ? s + c : e;
        return 1;
    }
    return 0;
}

/* The [start, end) share of n items for thread ith of nth. */
static inline void tp_split(long n, int ith, int nth, long *start, long *end) {
    long per = (n + nth - 1) / nth;
    *start = per * ith < n ? per * ith : n;
    *end = *start + per < n ? *start + per : n;
}

#endif
