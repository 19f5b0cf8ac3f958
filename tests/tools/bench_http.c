/* bench_http: the HTTP side's own overhead, for bench/http_overhead.sh (a
 * benchmark tool, not part of aloe). Sends N chat requests from J threads to an
 * OpenAI-compatible endpoint (normally fake_openai with a fixed latency) and
 * prints one JSON line: wall time, the ideal time N * latency / J, their
 * ratio, and this process's CPU time per request (user + system, getrusage).
 *
 *   bench_http --url http://127.0.0.1:PORT/v1 [--model M] [--requests 3200]
 *              [-j 64] [--latency-ms 100] [--cache FILE]
 *
 * With --cache every answer also goes through the SQLite request cache (a
 * fresh file: all misses, each committed), as in a real run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/mem.h"
#include "base/pool.h"
#include "llm/cache.h"
#include "llm/open.h"

typedef struct Bench {
    LlmBackend *b;
    atomic_long failures;
} Bench;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

static void one_request(void *ctx, long i, int thread) {
    (void)thread;
    Bench *bn = ctx;
    char q[160];
    snprintf(q, sizeof q, "Request %ld: I am a persona who likes short answers. What should I cook tonight?", i);
    LlmMessage m[2] = {{"system", "You are a helpful assistant. Reply in at most three sentences."}, {"user", q}};
    LlmParams p = llm_params_default();
    p.temperature = 0.7;
    p.max_tokens = 256;
    LlmReply r;
    Err e;
    if (llm_chat(bn->b, m, 2, &p, &r, &e)) {
        if (atomic_fetch_add(&bn->failures, 1) == 0) fprintf(stderr, "bench_http: %s\n", e.msg);
        return;
    }
    llm_reply_free(&r);
}

int main(int argc, char **argv) {
    const char *url = NULL, *model = "bench-model", *cache_path = NULL;
    long n = 3200;
    int j = 64, latency_ms = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--requests")) n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-j")) j = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--latency-ms")) latency_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cache")) cache_path = argv[i + 1];
        else url = NULL, i = argc;
    }
    if (!url || n < 1 || j < 1) {
        fprintf(stderr, "usage: bench_http --url URL [--model M] [--requests N] [-j J] [--latency-ms L] "
                        "[--cache FILE]\n");
        return 2;
    }
    Err e;
    LlmCache *cache = NULL;
    if (cache_path && llm_cache_open(cache_path, &cache, &e)) {
        fprintf(stderr, "bench_http: %s\n", e.msg);
        return 1;
    }
    LlmRoleConfig cfg = {.role = "bench", .model = model, .base_url = url, .timeout_s = 60, .max_retries = 3};
    Bench bn = {llm_open(&cfg, cache, &e), 0};
    if (!bn.b) {
        fprintf(stderr, "bench_http: %s\n", e.msg);
        return 1;
    }
    double c0 = cpu_s(), t0 = now_s();
    pool_run(j, n, one_request, &bn, NULL);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    double ideal = (double)n * latency_ms / 1000.0 / j;
    printf("{\"requests\": %ld, \"j\": %d, \"latency_ms\": %d, \"cache\": %s, \"failures\": %ld, "
           "\"wall_s\": %.3f, \"ideal_s\": %.3f, \"ratio\": %.3f, \"cpu_ms_per_request\": %.4f, "
           "\"retries\": %ld}\n",
           n, j, latency_ms, cache ? "true" : "false", (long)bn.failures, wall, ideal, wall / ideal,
           1000.0 * cpu / n, (long)bn.b->stats.retries);
    llm_free(bn.b);
    llm_cache_close(cache);
    return bn.failures ? 1 : 0;
}
