/* infer/kld_stats and infer/kld: KL divergence and the statistics
 * llama-perplexity --kl-divergence prints, against values worked out by
 * hand, and the chunked evaluation scoring the positions llama-perplexity
 * scores (checked against a forward pass of the whole chunk). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "infer/kld.h"
#include "model/decoder.h"
#include "test.h"

/* Logits of a distribution: log p plus an offset, which softmax removes. */
static void logits_of(const double *p, int n, double offset, float *out) {
    for (int i = 0; i < n; i++) out[i] = (float)(log(p[i]) + offset);
}

/* KL((1/2,1/4,1/4) || (1/4,1/2,1/4)) = 1/2 ln 2 + 1/4 ln(1/2) + 0 = 1/4 ln 2;
 * the next token is 1: nll = -ln(1/2), nll_base = -ln(1/4), Δp = 1/2 - 1/4.
 * The tolerance: float logits carry ~6e-8 relative error (ln 2 ~ 0.7, offset
 * 3), so a few 1e-7 in each term. */
static void test_kl_by_hand(void) {
    double p[3] = {0.5, 0.25, 0.25}, q[3] = {0.25, 0.5, 0.25};
    float lp[3], lq[3];
    logits_of(p, 3, 3.0, lp);
    logits_of(q, 3, -1.0, lq);
    KldStats s;
    kld_stats_init(&s);
    kld_stats_add(&s, lp, lq, 3, 1);
    CHECK_EQ_INT(s.count, 1);
    CHECK_NEAR(s.kld[0], 0.25 * log(2.0), 1e-6);
    CHECK_NEAR(s.sum_nll, log(2.0), 1e-6);
    CHECK_NEAR(s.sum_nll_base, log(4.0), 1e-6);
    CHECK_NEAR(s.p_diff[0], 0.25, 1e-6);
    CHECK_EQ_INT(s.n_same_top, 0); /* argmax 0 against 1 */
    /* Against itself: exactly 0 and the same top token. */
    kld_stats_add(&s, lp, lp, 3, 2);
    CHECK(s.kld[1] == 0);
    CHECK(s.p_diff[1] == 0);
    CHECK_EQ_INT(s.n_same_top, 1);
    /* A tie picks the first index in both, as llama.cpp's strict '>' does:
     * (1/3,1/3,1/3) against (1/2,1/2,0+): argmax 0 and 0. */
    double u[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3}, v[3] = {0.4999, 0.4999, 0.0002};
    float lu[3], lv[3];
    logits_of(u, 3, 0, lu);
    logits_of(v, 3, 0, lv);
    kld_stats_add(&s, lu, lv, 3, 0);
    CHECK_EQ_INT(s.n_same_top, 2);
    /* KL(u||v) = 1/3 (2 ln(1/3 / 0.4999) + ln(1/3 / 0.0002)) */
    CHECK_NEAR(s.kld[2], (2 * log((1.0 / 3) / 0.4999) + log((1.0 / 3) / 0.0002)) / 3, 1e-6);
    kld_stats_free(&s);
}

/* Percentiles at f*(n-1) with linear interpolation: on 1,2,4,8,16 (n = 5)
 * the 90% point is 0.9*4 = 3.6 -> 8 + 0.6*(16-8) = 12.8; 10%: 0.4 -> 1.4;
 * the median (f = 0.5 -> index 2) is 4; on four values the median is the
 * mean of the middle two. */
static void test_percentile_by_hand(void) {
    double v[5] = {1, 2, 4, 8, 16};
    CHECK_NEAR(kld_percentile(v, 5, 0.9), 12.8, 1e-12);
    CHECK_NEAR(kld_percentile(v, 5, 0.1), 1.4, 1e-12);
    CHECK_NEAR(kld_percentile(v, 5, 0.5), 4, 1e-12);
    CHECK_NEAR(kld_percentile(v, 5, 0.999), 8 + 0.996 * 8, 1e-12);
    CHECK(kld_percentile(v, 5, 0) == 1 && kld_percentile(v, 5, 1) == 16);
    CHECK_NEAR(kld_percentile(v, 4, 0.5), 3, 1e-12);
    CHECK_NEAR(kld_percentile(v, 1, 0.7), 1, 0);
}

/* Twelve positions over two tokens whose KL, Δp and top tokens are known:
 * base (1/2,1/2) everywhere; the model (1/2,1/2) at 4 positions (KL 0,
 * same top: both argmax 0), (1/4,3/4) at 8 (KL = 1/2 ln(4/3) = 0.143841,
 * argmax 1: not the same). Next token 0 everywhere: Δp = 0 or -1/4.
 * Summary by hand: mean KL = 8/12 * 0.143841; its standard error, with
 * n = 12 > 10: sqrt((mean(k²) - mean(k)²) / 11); same top 4/12 with error
 * sqrt(1/3 * 2/3 / 11); RMS Δp = sqrt(8/12 * 1/16). */
static void test_summary_by_hand(void) {
    double half[2] = {0.5, 0.5}, skew[2] = {0.25, 0.75};
    float lh[2], ls[2];
    logits_of(half, 2, 0, lh);
    logits_of(skew, 2, 0, ls);
    KldStats s;
    kld_stats_init(&s);
    for (int i = 0; i < 12; i++) kld_stats_add(&s, lh, i % 3 == 0 ? lh : ls, 2, 0);
    KldSummary m;
    CHECK(kld_summarize(&s, &m) == 0);
    double k = 0.5 * log(4.0 / 3.0), mean = 8.0 / 12 * k;
    CHECK_EQ_INT(m.count, 12);
    CHECK_NEAR(m.kld.value, mean, 1e-6);
    CHECK_NEAR(m.kld.err, sqrt((8.0 / 12 * k * k - mean * mean) / 11), 1e-6);
    CHECK_NEAR(m.kld_max, k, 1e-6);
    CHECK_NEAR(m.kld_min, 0, 1e-7);
    /* sorted: 4 zeros then 8 k's; median at index 5.5 -> k; 10% at 1.1 -> 0;
     * 99% at 10.89 -> k; 1% at 0.11 -> 0. */
    CHECK_NEAR(m.kld_median, k, 1e-6);
    CHECK_NEAR(m.kld_pct[4], 0, 1e-7); /* 10% */
    CHECK_NEAR(m.kld_pct[1], k, 1e-6); /* 99% */
    /* 25% of the sorted Δp (8 of -1/4 then 4 zeros): index 2.75 -> -1/4;
     * 75%: index 8.25 -> 0. */
    CHECK_NEAR(m.p_diff_pct[5], -0.25, 1e-6);
    CHECK_NEAR(m.p_diff_pct[4], 0, 1e-7);
    CHECK_NEAR(m.p_diff.value, -8.0 / 12 * 0.25, 1e-6);
    CHECK_NEAR(m.rms_p_diff.value, sqrt(8.0 / 12 / 16), 1e-6);
    CHECK_NEAR(m.same_top.value, 4.0 / 12, 1e-12);
    CHECK_NEAR(m.same_top.err, sqrt(1.0 / 3 * 2.0 / 3 / 11), 1e-12);
    /* PPL: nll_base = ln 2 everywhere; nll = ln 2 (4x) or ln 4 (8x). */
    CHECK_NEAR(m.ppl_base.value, 2, 1e-5);
    CHECK_NEAR(log(m.ppl.value), (4 * log(2.0) + 8 * log(4.0)) / 12, 1e-6);
    CHECK_NEAR(m.log_ppl_ratio.value, log(m.ppl.value) - log(2.0), 1e-6);
    /* Ten positions or fewer: no standard errors, as llama.cpp. */
    KldStats few;
    kld_stats_init(&few);
    for (int i = 0; i < 10; i++) kld_stats_add(&few, lh, i % 2 ? lh : ls, 2, 0);
    CHECK(kld_summarize(&few, &m) == 0 && m.kld.err == 0 && m.kld.value > 0);
    kld_stats_free(&few);
    kld_stats_free(&s);
    KldStats none;
    kld_stats_init(&none);
    CHECK(kld_summarize(&none, &m) == -1);
}

static Model *random_model(int vocab, int dtype, uint64_t seed) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = ARCH_QWEN2;
    c.hidden_size = 64, c.intermediate_size = 128, c.n_layers = 2;
    c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 32;
    c.vocab_size = vocab, c.max_pos = 256, c.norm_eps = 1e-6f;
    c.tie_word_embeddings = 1, c.attention_bias = 1;
    c.rope.theta = 10000, c.rope.factor = 1;
    c.bos_id = -1, c.pad_id = -1, c.dtype = DT_F32;
    Err e;
    Model *m = model_init_random(&c, dtype, seed, 1, &e);
    if (!m) fprintf(stderr, "random model: %s\n", e.msg);
    return m;
}

/* The positions scored: for each chunk of n_ctx, the logits at positions
 * n_ctx/2 .. n_ctx-2 predicting the token after each, with the chunk's
 * first token replaced by BOS. Checked by recomputing the mean nll from one
 * forward pass of each chunk (all logits): an off-by-one in the rows or in
 * the next token, or a missing BOS, changes it. Also: a model against
 * itself gives KL exactly 0 and the same top token everywhere, and
 * evaluating in pieces (--ubatch) scores the same positions. */
static void test_positions_and_self(void) {
    Model *m = random_model(97, DT_F32, 11);
    CHECK(m);
    enum { N = 70, CTX = 16, BOS = 5 };
    int32_t ids[N];
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)rng_below(&r, 97);
    Err e;
    for (int ub = 0; ub <= 5; ub += 5) {
        KldOptions o = {.n_ctx = CTX, .n_chunks = 0, .bos = BOS, .ubatch = ub};
        KldStats s;
        kld_stats_init(&s);
        CHECK_OK(kld_eval(m, m, ids, N, &o, &s, &e), &e);
        /* 70 tokens: 4 whole chunks (the tail of 6 dropped), 16-1-8 = 7 each */
        CHECK_EQ_INT(s.count, 4 * 7);
        CHECK(s.sum_kld == 0);
        CHECK_EQ_INT(s.n_same_top, s.count);
        double nll = 0;
        float *lg = malloc((size_t)CTX * 97 * sizeof *lg);
        KvCache kv;
        CHECK_OK(kv_cache_init(&kv, m, CTX, &e), &e);
        for (int c = 0; c < 4; c++) {
            int32_t chunk[CTX];
            memcpy(chunk, ids + c * CTX, sizeof chunk);
            chunk[0] = BOS;
            kv.len = 0;
            CHECK_OK(model_forward(m, &kv, chunk, CTX, 0, lg, 1, &e), &e);
            for (int pos = CTX / 2; pos <= CTX - 2; pos++) {
                const float *row = lg + (size_t)pos * 97;
                double mx = row[0], sum = 0;
                for (int i = 1; i < 97; i++) mx = fmax(mx, row[i]);
                for (int i = 0; i < 97; i++) sum += exp(row[i] - mx);
                nll += mx + log(sum) - row[chunk[pos + 1]];
            }
        }
        kv_cache_free(&kv);
        free(lg);
        /* The same float logits up to summation order: 1e-5 relative. */
        CHECK_NEAR(s.sum_nll, nll, 1e-5 * nll);
        CHECK_NEAR(s.sum_nll_base, nll, 1e-5 * nll);
        kld_stats_free(&s);
    }
    /* --chunks 2 scores the first two only. */
    KldOptions o2 = {.n_ctx = CTX, .n_chunks = 2, .bos = -1};
    KldStats s2;
    kld_stats_init(&s2);
    CHECK_OK(kld_eval(m, m, ids, N, &o2, &s2, &e), &e);
    CHECK_EQ_INT(s2.count, 2 * 7);
    kld_stats_free(&s2);
    model_free(m);
}

/* A quantised copy drifts from the f32 model; a Q4_0 copy more than a
 * Q8_0 one (same seed: the same f32 weights before rounding). */
static void test_quantised_in_memory(void) {
    Model *f = random_model(97, DT_F32, 21), *q8 = random_model(97, DT_Q8_0, 21), *q4 = random_model(97, DT_Q4_0, 21);
    CHECK(f && q8 && q4);
    int32_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (int32_t)((i * 37 + 11) % 97);
    KldOptions o = {.n_ctx = 32, .bos = -1};
    KldStats s8, s4;
    kld_stats_init(&s8);
    kld_stats_init(&s4);
    Err e;
    CHECK_OK(kld_eval(f, q8, ids, 64, &o, &s8, &e), &e);
    CHECK_OK(kld_eval(f, q4, ids, 64, &o, &s4, &e), &e);
    printf("  in memory: KL Q8_0 %.3g, Q4_0 %.3g\n", s8.sum_kld / s8.count, s4.sum_kld / s4.count);
    CHECK(s8.sum_kld > 0);
    CHECK(s4.sum_kld > s8.sum_kld);
    kld_stats_free(&s8);
    kld_stats_free(&s4);
    model_free(f);
    model_free(q8);
    model_free(q4);
}

/* Bad input: other vocabularies (both sizes named), too few tokens for two
 * chunks, a context under 4, an id outside the vocabulary. */
static void test_refusals(void) {
    Model *a = random_model(97, DT_F32, 1), *b = random_model(101, DT_F32, 1);
    CHECK(a && b);
    int32_t ids[40] = {0};
    KldOptions o = {.n_ctx = 16, .bos = -1};
    KldStats s;
    kld_stats_init(&s);
    Err e;
    CHECK(kld_eval(a, b, ids, 40, &o, &s, &e) == -1);
    CHECK_MSG(strstr(e.msg, "97") && strstr(e.msg, "101"), "%s", e.msg);
    CHECK(kld_eval(a, a, ids, 31, &o, &s, &e) == -1);
    CHECK_MSG(strstr(e.msg, "31 tokens") && strstr(e.msg, "at least 32"), "%s", e.msg);
    o.n_ctx = 3;
    CHECK(kld_eval(a, a, ids, 40, &o, &s, &e) == -1 && strstr(e.msg, "at least 4"));
    o.n_ctx = 16;
    ids[20] = 97;
    CHECK(kld_eval(a, a, ids, 40, &o, &s, &e) == -1);
    CHECK_MSG(strstr(e.msg, "token 20") && strstr(e.msg, "97"), "%s", e.msg);
    CHECK_EQ_INT(s.count, 0);
    kld_stats_free(&s);
    model_free(a);
    model_free(b);
}

/* Tokenising as llama-perplexity: a tokenizer that adds BOS (Llama 3's)
 * gives its BOS id and ids starting with it; one that adds nothing (the
 * chatml test tokenizer, Qwen's style) gives -1 and the plain ids. */
static void test_tokenize_bos(void) {
    NEED_SHARED(llama3, "fixtures/models/tiny-llama3");
    NEED_SHARED(chatml, "fixtures/tokenizers/chatml");
    Err e;
    Tokenizer *t = tok_load(llama3, &e);
    CHECK_OK(t == NULL, &e);
    int32_t *ids;
    int n, bos;
    CHECK_OK(kld_tokenize(t, "hello world", 11, &ids, &n, &bos, &e), &e);
    CHECK(bos >= 0 && bos == tok_bos(t) && n > 1 && ids[0] == bos);
    free(ids);
    tok_free(t);
    t = tok_load(chatml, &e);
    CHECK_OK(t == NULL, &e);
    CHECK_OK(kld_tokenize(t, "hello world", 11, &ids, &n, &bos, &e), &e);
    int32_t *plain;
    int np;
    CHECK_OK(tok_encode_n(t, "hello world", 11, 0, 0, &plain, &np, &e), &e);
    CHECK(bos == -1 && n == np && memcmp(ids, plain, (size_t)n * sizeof *ids) == 0);
    free(plain);
    free(ids);
    tok_free(t);
    free(llama3);
    free(chatml);
}

int main(void) {
    RUN(test_kl_by_hand);
    RUN(test_percentile_by_hand);
    RUN(test_summary_by_hand);
    RUN(test_positions_and_self);
    RUN(test_quantised_in_memory);
    RUN(test_refusals);
    RUN(test_tokenize_bos);
    return test_summary();
}
