/* Multi-turn conversations through one batcher, with and without the
 * prefix cache: the pipeline's pattern (-j C conversations, each turn's
 * prompt = a role prompt shared by all + the conversation so far + a new
 * user message, the reply fed back into the next turn). Prints wall time,
 * prompt tokens run through the model and new tokens per second.
 * Usage: prefix_cache SHAPE TYPE CONVERSATIONS TURNS [SYSTEM USER REPLY]
 * (tokens; defaults 600 60 80); built and run by bench/prefix_cache.sh. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "base/rng.h"
#include "infer/batcher.h"
#include "model/decoder.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct Conv {
    Batcher *b;
    const int32_t *system;
    int n_system, turns, user, reply, vocab, index;
    long prefilled, generated;
    int rc;
} Conv;

static void *conversation(void *arg) {
    Conv *c = arg;
    int cap = c->n_system + c->turns * (c->user + c->reply);
    int32_t *ids = xmalloc((size_t)cap * sizeof *ids);
    memcpy(ids, c->system, (size_t)c->n_system * sizeof *ids);
    int n = c->n_system;
    Rng r;
    rng_seed(&r, 1000 + (uint64_t)c->index);
    for (int t = 0; t < c->turns && !c->rc; t++) {
        for (int i = 0; i < c->user; i++) ids[n++] = (int32_t)rng_below(&r, (uint64_t)c->vocab);
        GenParams gp;
        gen_params_default(&gp);
        gp.max_tokens = c->reply; /* no stop ids: every reply is `reply` tokens */
        GenSeq s;
        gen_seq_init(&s, ids, n, &gp);
        Err e;
        c->rc = batcher_run(c->b, &s, &e);
        if (c->rc) fprintf(stderr, "conversation %d: %s\n", c->index, e.msg);
        c->prefilled += s.n_prefilled;
        c->generated += s.n_out;
        memcpy(ids + n, s.out, (size_t)s.n_out * sizeof *ids); /* the reply is part of the next prompt */
        n += s.n_out;
        gen_seq_free(&s);
    }
    free(ids);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: prefix_cache SHAPE TYPE CONVERSATIONS TURNS [SYSTEM USER REPLY]\n");
        return 2;
    }
    int convs = atoi(argv[3]), turns = atoi(argv[4]);
    int sys = argc > 5 ? atoi(argv[5]) : 600, user = argc > 6 ? atoi(argv[6]) : 60, reply = argc > 7 ? atoi(argv[7]) : 80;
    ModelConfig cfg;
    Err e;
    if (model_shape_config(argv[1], &cfg, &e)) return fprintf(stderr, "%s\n", e.msg), 1;
    Model *m = model_init_random(&cfg, dtype_from_name(argv[2]), 1, 0, &e);
    if (!m) return fprintf(stderr, "%s\n", e.msg), 1;
    int32_t *system = xmalloc((size_t)sys * sizeof *system);
    Rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < sys; i++) system[i] = (int32_t)rng_below(&r, (uint64_t)cfg.vocab_size);
    printf("%s %s, %d conversations x %d turns (role prompt %d, user %d, reply %d tokens), batch of up to 8\n",
           argv[1], argv[2], convs, turns, sys, user, reply);
    for (int pass = 0; pass < 2; pass++) {
        size_t budget = pass ? (size_t)1024 << 20 : 0;
        Batcher *b = batcher_start(m, 8, budget, &e);
        Conv *c = xcalloc((size_t)convs, sizeof *c);
        pthread_t *th = xmalloc((size_t)convs * sizeof *th);
        double t0 = now();
        for (int i = 0; i < convs; i++) {
            c[i] = (Conv){b, system, sys, turns, user, reply, cfg.vocab_size, i, 0, 0, 0};
            pthread_create(&th[i], NULL, conversation, &c[i]);
        }
        long prefilled = 0, generated = 0, prompt_total = 0;
        int rc = 0;
        for (int i = 0; i < convs; i++) {
            pthread_join(th[i], NULL);
            prefilled += c[i].prefilled, generated += c[i].generated, rc |= c[i].rc;
        }
        double secs = now() - t0;
        for (int t = 0; t < turns; t++) prompt_total += (long)convs * (sys + (t + 1) * user + t * reply);
        PrefixCacheStats st = batcher_prefix_stats(b);
        batcher_stop(b);
        printf("prefix cache %-4s: %7.2f s, prompt tokens %ld of which prefilled %ld, %.1f new tokens/s%s", pass ? "on" : "off",
               secs, prompt_total, prefilled, generated / secs, rc ? " (errors)" : "");
        if (pass) printf(", %d entries, %.1f MiB", st.entries, st.bytes / 1048576.0);
        printf("\n");
        free(c), free(th);
    }
    free(system);
    model_free(m);
    return 0;
}
