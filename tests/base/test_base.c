#include <stdlib.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/progress.h"
#include "base/rng.h"
#include "base/sha256.h"
#include "test.h"

static void test_err_wrap(void) {
    Err e;
    err_clear(&e);
    CHECK(err_set(&e, ERR_PARSE, "line %d: bad", 3) == -1);
    err_wrap(&e, "file.jsonl");
    CHECK_EQ_STR(e.msg, "file.jsonl: line 3: bad");
    CHECK_EQ_INT(e.code, ERR_PARSE);
}

static void test_strbuf(void) {
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < 1000; i++) sb_printf(&b, "%d,", i);
    CHECK_EQ_INT(strncmp(b.s, "0,1,2,", 6), 0);
    CHECK_EQ_INT(b.len, strlen(b.s));
    char *s = sb_take(&b);
    CHECK(b.s == NULL);
    free(s);
}

static void test_sha256_vectors(void) {
    char hex[65];
    sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_rng_reproducible_and_unbiased(void) {
    Rng a, b;
    rng_derive(&a, 42, 7, 1);
    rng_derive(&b, 42, 7, 1);
    for (int i = 0; i < 100; i++) CHECK_EQ_INT(rng_u64(&a), rng_u64(&b));
    rng_derive(&b, 42, 7, 2);
    CHECK(rng_u64(&a) != rng_u64(&b));
    int counts[5] = {0};
    for (int i = 0; i < 50000; i++) counts[rng_below(&a, 5)]++;
    for (int i = 0; i < 5; i++) CHECK(counts[i] > 9500 && counts[i] < 10500);
    int sample[5];
    rng_sample(&a, 10, 5, sample);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) CHECK(sample[i] != sample[j]);
}

static void test_atomic_write_and_read(void) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "x/y/out.json");
    Err e;
    char *sub = path_join(dir, "x/y");
    CHECK_OK(file_mkdirs(sub, &e), &e);
    CHECK_OK(file_write_atomic(p, "hello", 5, &e), &e);
    CHECK_OK(file_write_atomic(p, "world!", 6, &e), &e);
    char *s;
    size_t n;
    CHECK_OK(file_read_all(p, &s, &n, &e), &e);
    CHECK_EQ_STR(s, "world!");
    CHECK_EQ_INT(n, 6);
    free(s);
    char *missing = path_join(dir, "nope");
    CHECK(file_read_all(missing, &s, &n, &e) == -1);
    CHECK(strstr(e.msg, "nope") != NULL);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    free(missing);
    free(p);
    free(sub);
    free(dir);
}

static void test_appender_repairs_torn_line(void) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "log.jsonl");
    Err e;
    Appender a;
    CHECK_OK(appender_open(&a, p, &e), &e);
    CHECK_OK(appender_write(&a, "{\"a\":1}\n", 8, &e), &e);
    CHECK_OK(appender_write(&a, "{\"a\":2", 6, &e), &e); /* crash mid-record */
    appender_close(&a);
    CHECK_EQ_INT(appender_repair(p, &e), 6);
    char *s;
    CHECK_OK(file_read_all(p, &s, NULL, &e), &e);
    CHECK_EQ_STR(s, "{\"a\":1}\n");
    free(s);
    CHECK_EQ_INT(appender_repair(p, &e), 0);
    free(p);
    free(dir);
}

typedef struct {
    atomic_long sum;
    atomic_int concurrent, peak;
    atomic_int started; /* jobs begun: the first POOL_GATE wait for each other */
} PoolCtx;

#define POOL_GATE 16

static void pool_job(void *ctx, long i, int thread) {
    (void)thread;
    PoolCtx *c = ctx;
    int now = atomic_fetch_add(&c->concurrent, 1) + 1;
    int peak = atomic_load(&c->peak);
    while (now > peak && !atomic_compare_exchange_weak(&c->peak, &peak, now)) {
    }
    /* The first POOL_GATE jobs to start wait until all of them have started:
     * a pool with that many threads runs them at once whatever the load, so
     * the peak is reached by events, not timing (one with fewer threads
     * waits out the 60 s bound and falls short). */
    if (atomic_fetch_add(&c->started, 1) < POOL_GATE)
        for (int k = 0; k < 60000 && atomic_load(&c->started) < POOL_GATE; k++) usleep(1000);
    atomic_fetch_add(&c->sum, i);
    atomic_fetch_sub(&c->concurrent, 1);
}

static void test_pool_runs_all_jobs_concurrently(void) {
    PoolCtx c;
    atomic_init(&c.sum, 0);
    atomic_init(&c.concurrent, 0);
    atomic_init(&c.peak, 0);
    atomic_init(&c.started, 0);
    pool_run(16, 200, pool_job, &c, NULL);
    CHECK_EQ_INT(atomic_load(&c.sum), 199 * 200 / 2);
    CHECK_EQ_INT(atomic_load(&c.peak), 16);
}

static void test_progress_format(void) {
    Progress p;
    progress_start(&p, "bench", 100, 0, 1);
    progress_add(&p, 25);
    atomic_store(&p.retries, 3);
    char line[256];
    progress_format(&p, line, sizeof line, 120);
    CHECK(strstr(line, "25/100") != NULL);
    CHECK(strstr(line, "3 retries") != NULL);
    progress_stop(&p);
    char d[32];
    format_duration(192, d, sizeof d);
    CHECK_EQ_STR(d, "3m12s");
}

int main(void) {
    RUN(test_err_wrap);
    RUN(test_strbuf);
    RUN(test_sha256_vectors);
    RUN(test_rng_reproducible_and_unbiased);
    RUN(test_atomic_write_and_read);
    RUN(test_appender_repairs_torn_line);
    RUN(test_pool_runs_all_jobs_concurrently);
    RUN(test_progress_format);
    return test_summary();
}
