#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/stream.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "base/mem.h"
#include "kernels/quant_internal.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* Bytes handed out per claim: large enough that the atomic is noise. */
#define STREAM_CHUNK (64L << 10)

typedef struct StreamJob {
    const QMat *const *mats;
    int n;
    long *first; /* n + 1 prefix sums of the matrices' bytes */
    TpRanges bytes;
    _Atomic uint64_t sink; /* what was read, so that reading it is not optimised away */
} StreamJob;

/* OR of the 64-byte lines of [p, p + len); len a multiple of 64, or the
 * tail is read a word at a time. */
static ALWAYS_INLINE uint64_t read_bytes_pf(int pf, const char *p, long len) {
    (void)pf; /* the scalar level's loop does not prefetch */
    uint64_t r = 0;
    long i = 0;
#if defined(__AVX512F__)
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (; i + 256 <= len; i += 256) {
        prefetch_ahead_l2(pf, p + i, 4);
        a = _mm512_or_si512(a, _mm512_loadu_si512(p + i));
        b = _mm512_or_si512(b, _mm512_loadu_si512(p + i + 64));
        c = _mm512_or_si512(c, _mm512_loadu_si512(p + i + 128));
        d = _mm512_or_si512(d, _mm512_loadu_si512(p + i + 192));
    }
    r = (uint64_t)_mm512_reduce_or_epi64(_mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d)));
#elif defined(__AVX2__)
    __m256i a = _mm256_setzero_si256(), b = a;
    for (; i + 64 <= len; i += 64) {
        prefetch_ahead_l2(pf, p + i, 1);
        a = _mm256_or_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_or_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
    }
    a = _mm256_or_si256(a, b);
    r = (uint64_t)_mm256_extract_epi64(a, 0) | (uint64_t)_mm256_extract_epi64(a, 1) |
        (uint64_t)_mm256_extract_epi64(a, 2) | (uint64_t)_mm256_extract_epi64(a, 3);
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, p + i, 8);
        r |= w;
    }
    for (; i < len; i++) r |= (unsigned char)p[i];
    return r;
}
static uint64_t read_bytes(const char *p, long len) {
    uint64_t r = 0;
    WITH_PREFETCH_MODE(r = read_bytes_pf(pf, p, len));
    return r;
}

static void stream_task(void *ctx, int ith, int nth) {
    (void)nth;
    StreamJob *j = ctx;
    uint64_t r = 0;
    long b0, b1;
    while (tp_ranges_next(&j->bytes, ith, STREAM_CHUNK, &b0, &b1)) {
        int m = 0;
        while (b0 >= j->first[m + 1]) m++;
        for (long g = b0; g < b1; m++) { /* a chunk may span matrices */
            long end = b1 < j->first[m + 1] ? b1 : j->first[m + 1];
            r |= read_bytes((const char *)j->mats[m]->data + (g - j->first[m]), end - g);
            g = end;
        }
    }
    atomic_fetch_or_explicit(&j->sink, r, memory_order_relaxed);
}

/* STREAM_PER_MATRIX: thread ith's share of every matrix's 64-byte lines,
 * matrix after matrix. A static task: every thread takes its parts (a
 * thread that starts late makes the pass slow, and the caller keeps the
 * faster order). */
static void stream_task_per_matrix(void *ctx, int ith, int nth) {
    StreamJob *j = ctx;
    uint64_t r = 0;
    for (int m = 0; m < j->n; m++) {
        long len = j->first[m + 1] - j->first[m], a, b;
        tp_split((len + 63) / 64, ith, nth, &a, &b);
        a *= 64, b = b * 64 < len ? b * 64 : len;
        if (a < b) r |= read_bytes((const char *)j->mats[m]->data + a, b - a);
    }
    atomic_fetch_or_explicit(&j->sink, r, memory_order_relaxed);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

double stream_read_seconds(ThreadPool *tp, const QMat *const *mats, int n, StreamOrder order, uint64_t *bits) {
    StreamJob j = {.mats = mats, .n = n};
    j.first = xmalloc(((size_t)n + 1) * sizeof *j.first);
    j.first[0] = 0;
    for (int m = 0; m < n; m++)
        j.first[m + 1] = j.first[m] + (long)dtype_nbytes(mats[m]->type, mats[m]->cols) * mats[m]->rows;
    tp_ranges_init(&j.bytes, j.first[n], tp_size(tp));
    double t0 = now_s();
    if (order == STREAM_PER_MATRIX) tp_run(tp, stream_task_per_matrix, &j);
    else tp_run_shared(tp, stream_task, &j);
    double s = now_s() - t0;
    free(j.first);
    if (bits) *bits = atomic_load(&j.sink);
    return s;
}
