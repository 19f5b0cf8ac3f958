/* The pool's work sharing (kernels/threads.h): TpRanges hands out every
 * item exactly once, whatever the threads and chunk sizes, and a thread
 * takes its own range in guided pieces (an eighth of what is left, whole
 * chunks), the others' in single chunks. The decode's row dots (matmul.c)
 * and the bandwidth probe (stream.c) share their work this way: a lost or
 * doubled chunk is a wrong or a missing output row. */
#include <stdatomic.h>
#include <stdlib.h>

#include "base/mem.h"
#include "kernels/threads.h"
#include "test.h"

/* One thread alone, ranges for two: its own range in pieces of an eighth of
 * what is left (multiples of the chunk, at least one), then the other range
 * chunk by chunk from its front -- each piece computed here by hand. */
static void test_guided_pieces_then_chunks(void) {
    TpRanges r;
    tp_ranges_init(&r, 1000, 2); /* ranges [0, 500) and [500, 1000) */
    long s, e, next = 0;
    const long chunk = 10;
    int own = 0;
    while (next < 500) {
        long want = (500 - next) / 8 > chunk ? (500 - next) / 8 / chunk * chunk : chunk;
        CHECK(tp_ranges_next(&r, 0, chunk, &s, &e));
        CHECK(s == next);
        CHECK(e == (next + want < 500 ? next + want : 500));
        CHECK(e - s == want || e == 500);
        next = e, own++;
    }
    /* 60, 50, 40, 40, 30, ...: fewer claims than the range's 50 chunks */
    CHECK(own < 500 / chunk);
    for (long b = 500; b < 1000; b += chunk) { /* the other range: one chunk at a time */
        CHECK(tp_ranges_next(&r, 0, chunk, &s, &e));
        CHECK(s == b && e == b + chunk);
    }
    CHECK(!tp_ranges_next(&r, 0, chunk, &s, &e));
    CHECK(!tp_ranges_next(&r, 1, chunk, &s, &e));
}

typedef struct Claims {
    TpRanges r;
    long n, chunk;
    _Atomic int *seen; /* claims of each item */
    _Atomic long pieces;
    _Atomic int bad;   /* a piece that was empty, out of bounds or crossing a range's end */
} Claims;

static void claim_task(void *ctx, int ith, int nth) {
    (void)nth;
    Claims *c = ctx;
    long s, e;
    while (tp_ranges_next(&c->r, ith, c->chunk, &s, &e)) {
        atomic_fetch_add(&c->pieces, 1);
        int in_one = 0;
        for (int i = 0; i < c->r.parts; i++) in_one |= s >= c->n * i / c->r.parts && e <= c->r.r[i].end;
        if (s < 0 || e > c->n || s >= e || !in_one) atomic_store(&c->bad, 1);
        for (long i = s; i < e && i < c->n; i++) atomic_fetch_add_explicit(&c->seen[i], 1, memory_order_relaxed);
    }
}

/* With a real pool (2 and 4 threads) and shared tasks, many times over:
 * every item claimed once, no piece out of its range. */
static void test_every_item_once(void) {
    const long ns[] = {1, 7, 64, 1000, 4099, 100000};
    const long chunks[] = {1, 2, 6, 64};
    for (int th = 2; th <= 4; th += 2) {
        ThreadPool *tp = tp_create(th);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof chunks / sizeof chunks[0]; b++)
                for (int rep = 0; rep < 20; rep++) {
                    Claims c = {.n = ns[a], .chunk = chunks[b]};
                    c.seen = xcalloc((size_t)c.n, sizeof *c.seen);
                    tp_ranges_init(&c.r, c.n, tp_size(tp));
                    tp_run_shared(tp, claim_task, &c);
                    long missed = 0, twice = 0;
                    for (long i = 0; i < c.n; i++) missed += c.seen[i] == 0, twice += c.seen[i] > 1;
                    free(c.seen);
                    if (missed || twice || c.bad) {
                        test_fail(__FILE__, __LINE__, "%d threads, n %ld, chunk %ld: %ld missed, %ld twice, bad %d", th,
                                  c.n, c.chunk, missed, twice, (int)c.bad);
                        tp_free(tp);
                        return;
                    }
                }
        tp_free(tp);
    }
}

int main(void) {
    RUN(test_guided_pieces_then_chunks);
    RUN(test_every_item_once);
    return test_summary();
}
