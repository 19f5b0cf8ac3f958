/* The prefix cache: a prompt that begins like a finished one is prefilled
 * from where they part, with the logits a fresh prefill gives (to float
 * rounding); entries are deduplicated and evicted least recently used
 * within the byte budget; through the batcher, requests sharing prefixes
 * get the replies they get alone. Tiny random models, no fixtures. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "infer/batcher.h"
#include "infer/greedy_margin.h"
#include "infer/prefix_cache.h"
#include "model/decoder.h"
#include "test.h"

/* Two layers, head_dim 64 (the attention's SIMD path), two key/value heads
 * (planes max_seq * head_dim apart: caches of different lengths differ in
 * that stride), GQA 2:1. */
static Model *tiny_model(void) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = ARCH_QWEN2;
    c.hidden_size = 256, c.intermediate_size = 512, c.n_layers = 2;
    c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64;
    c.vocab_size = 300, c.max_pos = 1024, c.norm_eps = 1e-6f;
    c.tie_word_embeddings = 1, c.attention_bias = 1;
    c.rope.theta = 10000, c.rope.factor = 1;
    c.bos_id = -1, c.pad_id = -1, c.dtype = DT_F32;
    Err e;
    Model *m = model_init_random(&c, DT_F32, 7, 2, &e);
    if (!m) fprintf(stderr, "tiny model: %s\n", e.msg);
    return m;
}

static void random_ids(int32_t *ids, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, 300);
}

/* A cache holding the prefill of ids[0..n) (n positions, room for more). */
static void filled_cache(Model *m, const int32_t *ids, int n, KvCache *kv) {
    Err e;
    float *logits = xmalloc((size_t)m->cfg.vocab_size * sizeof(float));
    CHECK_OK(kv_cache_init(kv, m, n + 16, &e), &e);
    CHECK_OK(model_forward(m, kv, ids, n, 0, logits, 0, &e), &e);
    free(logits);
}

static void test_reuse_matches_fresh_prefill(void) {
    Model *m = tiny_model();
    CHECK(m);
    enum { NA = 90, NB = 120, SHARED = 70 };
    int32_t a[NA], b[NB];
    random_ids(a, NA, 1);
    memcpy(b, a, SHARED * sizeof *a);
    random_ids(b + SHARED, NB - SHARED, 2);
    b[SHARED] = (a[SHARED] + 1) % 300; /* they part exactly at SHARED */
    PrefixCache *pc = prefix_cache_new(64 << 20);
    KvCache ka, kb, fresh;
    filled_cache(m, a, NA, &ka);
    prefix_cache_put(pc, a, NA, &ka);
    CHECK_MSG(ka.k == NULL, "put leaves the caller's cache empty");
    Err e;
    CHECK_OK(kv_cache_init(&kb, m, NB + 8, &e), &e);
    int reused = prefix_cache_reuse(pc, b, NB, &kb);
    CHECK_EQ_INT(reused, SHARED);
    int V = m->cfg.vocab_size;
    float *got = xmalloc((size_t)V * sizeof(float)), *want = xmalloc((size_t)V * sizeof(float));
    CHECK_OK(model_forward(m, &kb, b + reused, NB - reused, reused, got, 0, &e), &e);
    CHECK_OK(kv_cache_init(&fresh, m, NB + 8, &e), &e);
    CHECK_OK(model_forward(m, &fresh, b, NB, 0, want, 0, &e), &e);
    float lo = want[0], hi = want[0];
    double worst = 0;
    int best_got = 0, best_want = 0;
    for (int i = 0; i < V; i++) {
        lo = fminf(lo, want[i]), hi = fmaxf(hi, want[i]);
        worst = fmax(worst, fabs(got[i] - want[i]));
        if (got[i] > got[best_got]) best_got = i;
        if (want[i] > want[best_want]) best_want = i;
    }
    CHECK_MSG(worst <= 1e-5 * (hi - lo), "last logits after reuse differ from a fresh prefill by %g (range %g)", worst,
              hi - lo);
    /* the same choice wherever another summation order cannot flip it
     * (greedy_margin.h); a near-tie may rightly go either way */
    if (gm_robust(m, NB, want, V)) CHECK(gm_same_choice(m, best_got, best_want));
    /* the whole prompt again: all but its last token come from the cache */
    KvCache again;
    CHECK_OK(kv_cache_init(&again, m, NA, &e), &e);
    CHECK_EQ_INT(prefix_cache_reuse(pc, a, NA, &again), NA - 1);
    /* an f16 cache is not filled from an f32 entry */
    model_set_kv_type(m, DT_F16);
    KvCache half;
    CHECK_OK(kv_cache_init(&half, m, NB, &e), &e);
    CHECK_EQ_INT(prefix_cache_reuse(pc, b, NB, &half), 0);
    model_set_kv_type(m, DT_F32);
    PrefixCacheStats st = prefix_cache_stats(pc);
    CHECK_MSG(st.lookups == 3 && st.hits == 2 && st.tokens_reused == SHARED + NA - 1 && st.entries == 1,
              "stats: %ld lookups, %ld hits, %ld reused, %d entries", st.lookups, st.hits, st.tokens_reused, st.entries);
    kv_cache_free(&kb), kv_cache_free(&fresh), kv_cache_free(&again), kv_cache_free(&half);
    free(got), free(want);
    prefix_cache_free(pc);
    model_free(m);
}

static void test_dedupe_and_eviction(void) {
    Model *m = tiny_model();
    CHECK(m);
    int32_t ids[4][40];
    for (int i = 0; i < 4; i++) random_ids(ids[i], 40, 10 + (uint64_t)i);
    KvCache probe;
    Err e;
    CHECK_OK(kv_cache_init(&probe, m, 1, &e), &e);
    size_t pos_bytes = kv_cache_position_bytes(&probe);
    kv_cache_free(&probe);
    /* room for two prompts of 40 positions */
    PrefixCache *pc = prefix_cache_new(80 * pos_bytes + pos_bytes / 2);
    KvCache kv;
    filled_cache(m, ids[0], 20, &kv); /* the first half of prompt 0 ... */
    prefix_cache_put(pc, ids[0], 20, &kv);
    filled_cache(m, ids[0], 40, &kv); /* ... then all of it: replaces the shorter entry */
    prefix_cache_put(pc, ids[0], 40, &kv);
    CHECK_EQ_INT(prefix_cache_stats(pc).entries, 1);
    filled_cache(m, ids[0], 30, &kv); /* a prefix of what is held: nothing new */
    prefix_cache_put(pc, ids[0], 30, &kv);
    CHECK_EQ_INT(prefix_cache_stats(pc).entries, 1);
    CHECK_MSG(prefix_cache_stats(pc).bytes == 40 * pos_bytes, "bytes %zu", prefix_cache_stats(pc).bytes);
    filled_cache(m, ids[1], 40, &kv);
    prefix_cache_put(pc, ids[1], 40, &kv);
    KvCache dst; /* using prompt 0 makes prompt 1 the least recently used */
    CHECK_OK(kv_cache_init(&dst, m, 40, &e), &e);
    CHECK_EQ_INT(prefix_cache_reuse(pc, ids[0], 40, &dst), 39);
    kv_cache_free(&dst);
    filled_cache(m, ids[2], 40, &kv);
    prefix_cache_put(pc, ids[2], 40, &kv);
    PrefixCacheStats st = prefix_cache_stats(pc);
    CHECK_MSG(st.entries == 2 && st.bytes <= 80 * pos_bytes, "%d entries, %zu bytes", st.entries, st.bytes);
    int32_t held[3] = {0};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(kv_cache_init(&dst, m, 40, &e), &e);
        held[i] = prefix_cache_reuse(pc, ids[i], 40, &dst) == 39;
        kv_cache_free(&dst);
    }
    CHECK_MSG(held[0] && !held[1] && held[2], "held after eviction: %d %d %d (expected 1 0 1)", held[0], held[1],
              held[2]);
    prefix_cache_free(pc);
    /* a prompt too long for the budget is not kept, and the shorter entry
     * it extends stays */
    int32_t longer[100];
    memcpy(longer, ids[3], 40 * sizeof *longer);
    random_ids(longer + 40, 60, 77);
    pc = prefix_cache_new(50 * pos_bytes);
    filled_cache(m, longer, 40, &kv);
    prefix_cache_put(pc, longer, 40, &kv);
    filled_cache(m, longer, 100, &kv);
    prefix_cache_put(pc, longer, 100, &kv);
    CHECK_OK(kv_cache_init(&dst, m, 100, &e), &e);
    CHECK_EQ_INT(prefix_cache_reuse(pc, longer, 100, &dst), 40);
    kv_cache_free(&dst);
    prefix_cache_free(pc);
    /* a budget of 0 keeps nothing */
    pc = prefix_cache_new(0);
    filled_cache(m, ids[3], 40, &kv);
    prefix_cache_put(pc, ids[3], 40, &kv);
    CHECK_EQ_INT(prefix_cache_stats(pc).entries, 0);
    prefix_cache_free(pc);
    model_free(m);
}

/* Sequential requests through a batcher with a prefix cache, each prompt
 * extending the one before (a conversation's turns): every one after the
 * first reuses its predecessor's prompt, and all get the replies generate()
 * gives each alone, as far as another summation order cannot change them:
 * a prefill continued from the cache forms its sums over other rows than a
 * fresh one, so tokens are compared while the reference's greedy margin
 * exceeds the rounding bound (greedy_margin.h), and not after. */
static void test_batcher_reuses_turns(void) {
    Model *m = tiny_model();
    CHECK(m);
    int32_t prompt[200];
    random_ids(prompt, 200, 99);
    const int lens[4] = {60, 110, 150, 200};
    Err e;
    Batcher *b = batcher_start(m, 2, 16 << 20, &e);
    CHECK_OK(!b, &e);
    int ok = 1, compared = 0;
    for (int i = 0; i < 4; i++) {
        GenParams gp;
        gen_params_default(&gp);
        gp.max_tokens = 6;
        GenSeq s, alone;
        gen_seq_init(&s, prompt, lens[i], &gp);
        int rc = batcher_run(b, &s, &e);
        gen_seq_init(&alone, prompt, lens[i], &gp);
        int rc2 = generate(m, &alone, 1, &e);
        int32_t ref[6];
        int n_ref = 0, n_robust = 0;
        CHECK_OK(gm_greedy(m, prompt, lens[i], gp.max_tokens, NULL, 0, ref, &n_ref, &n_robust, &e), &e);
        ok &= !rc && !rc2;
        for (int t = 0; ok && t < n_robust; t++, compared++)
            ok &= t < s.n_out && t < alone.n_out && gm_same_choice(m, s.out[t], ref[t]) &&
                  gm_same_choice(m, alone.out[t], ref[t]);
        if (ok && n_robust == n_ref) ok &= s.n_out == n_ref && alone.n_out == n_ref;
        /* only the new part of each prompt went through the model */
        CHECK_MSG(s.n_prefilled == lens[i] - (i ? lens[i - 1] : 0) && alone.n_prefilled == lens[i],
                  "request %d: %d prompt tokens prefilled (alone %d)", i, s.n_prefilled, alone.n_prefilled);
        gen_seq_free(&s), gen_seq_free(&alone);
    }
    PrefixCacheStats st = batcher_prefix_stats(b);
    batcher_stop(b);
    model_free(m);
    CHECK_MSG(ok, "replies with the prefix cache differ from each request decoded alone");
    CHECK_MSG(compared >= 12, "only %d of 24 tokens had a greedy margin above the rounding bound", compared);
    CHECK_MSG(st.hits == 3 && st.tokens_reused == 60 + 110 + 150 && st.entries == 1,
              "%ld hits, %ld positions reused, %d entries (expected 3, 320, 1)", st.hits, st.tokens_reused, st.entries);
}

int main(void) {
    RUN(test_reuse_matches_fresh_prefill);
    RUN(test_dedupe_and_eviction);
    RUN(test_batcher_reuses_turns);
    return test_summary();
}
