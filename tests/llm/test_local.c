/* The embedded engine as a role backend: chat() through llm_open against
 * the engine's own greedy decoding, continuous batching from many threads,
 * stops, limits, usage, embeddings, and errors. On the tiny fixture models
 * (random weights: the texts are noise, but deterministic noise). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "infer/batcher.h"
#include "infer/generate.h"
#include "infer/greedy_margin.h"
#include "llm/local.h"
#include "llm/open.h"
#include "model/encoder.h"
#include "test.h"
#include "tok/chat_template.h"

/* A shared fixture's path; NULL (the test SKIPPED, naming it) only when it
 * is absent: one that is there but does not load is a FAIL. */
static char *fixture(const char *rel) { return test_need_shared(rel); }

#define NEED(path) \
    if (!(path)) return

static LlmBackend *open_local(const char *model, const char *tmpl, Err *e) {
    LlmRoleConfig cfg = {.role = "test", .model = model, .chat_template = tmpl};
    return llm_open(&cfg, NULL, e);
}

static LlmParams greedy(int max_tokens) {
    LlmParams p = llm_params_default();
    p.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
}

/* What the backend should answer, computed by hand: render, encode
 * without added specials, greedy generate() until an end-of-turn id, decode
 * the new ids, cut at a template stop string.
 *
 * The backend may reach the same ids with its sums in another order: a
 * prompt continued from the prefix cache is prefilled over fewer rows, and
 * 16 sequences decoded together go through sgemm instead of row dots. So a
 * reply is held to the reference only as far as no such reordering can
 * change a greedy choice (tests/infer/greedy_margin.h): the whole text when
 * every step's margin is above the rounding bound, else the text of the
 * leading steps that are (after the first near-tie the replies may rightly
 * part). */
typedef struct {
    char *text;
    int n_prompt, n_out, stopped;
    int n_robust;      /* leading new ids no summation order can change */
    char *robust_text; /* their text, as it begins any right reply */
} Expected;

static void expected_free(Expected *x) { free(x->text), free(x->robust_text); }

/* 1 if text is a reply the reference allows (see Expected). */
static int reply_matches(const Expected *x, const char *text) {
    if (!text) return 0;
    if (x->n_robust == x->n_out) return !strcmp(text, x->text);
    return !strncmp(text, x->robust_text, strlen(x->robust_text));
}

#define CHECK_REPLY(want, got)                                                                              \
    CHECK_MSG(reply_matches(&(want), got), "reply \"%s\" != \"%s\" (its first %d of %d tokens are robust: \"%s\")", \
              got, (want).text, (want).n_robust, (want).n_out, (want).robust_text)

static int expected_greedy(const char *dir, const LlmMessage *msgs, int n, int max_tokens, Expected *x, Err *e) {
    memset(x, 0, sizeof *x);
    ChatTemplate *t = chat_template_open_hf(dir, NULL, e);
    Tokenizer *tok = tok_load_hf(dir, e);
    Model *m = model_load(dir, 0, e);
    if (!t || !tok || !m) return -1;
    ChatMsg cm[8];
    for (int i = 0; i < n; i++) cm[i] = (ChatMsg){msgs[i].role, msgs[i].content};
    char *text = NULL;
    int32_t *ids = NULL;
    int n_ids = 0;
    if (chat_template_render(t, cm, n, 1, NULL, &text, e) || tok_encode(tok, text, 0, 1, &ids, &n_ids, e)) return -1;
    GenParams gp;
    gen_params_default(&gp);
    gp.max_tokens = max_tokens;
    for (int i = 0; i < m->cfg.n_eos; i++) gp.stop_ids[gp.n_stop_ids++] = m->cfg.eos_ids[i];
    int n_eot;
    const int32_t *eot = tok_eot(tok, &n_eot);
    for (int i = 0; i < n_eot && gp.n_stop_ids < GEN_MAX_STOP_IDS; i++) gp.stop_ids[gp.n_stop_ids++] = eot[i];
    const char *const *stops = chat_template_stop_strings(t);
    for (int i = 0; stops[i] && gp.n_stop_ids < GEN_MAX_STOP_IDS; i++)
        if (tok_find(tok, stops[i]) >= 0) gp.stop_ids[gp.n_stop_ids++] = tok_find(tok, stops[i]);
    GenSeq s;
    gen_seq_init(&s, ids, n_ids, &gp);
    int rc = generate(m, &s, 1, e);
    int32_t *ref = xmalloc((size_t)max_tokens * sizeof *ref);
    int n_ref = 0;
    if (!rc) rc = gm_greedy(m, ids, n_ids, max_tokens, gp.stop_ids, gp.n_stop_ids, ref, &n_ref, &x->n_robust, e);
    if (!rc && (n_ref != s.n_out || memcmp(ref, s.out, (size_t)n_ref * sizeof *ref)))
        rc = err_set(e, ERR_ARG, "greedy by hand (%d ids) is not generate()'s (%d ids)", n_ref, s.n_out);
    free(ref);
    if (!rc) {
        x->stopped = s.finish == GEN_STOP_TOKEN;
        x->n_prompt = n_ids;
        x->n_out = s.n_out;
        /* decoded as a stream does it: invalid UTF-8 (common from random weights) becomes U+FFFD */
        TokStream ts;
        StrBuf sb;
        sb_init(&sb);
        tok_stream_init(&ts, tok, 1);
        for (int i = 0; i < s.n_out - x->stopped && !rc; i++) {
            /* what a stream has let out after the robust ids begins every right reply */
            if (i == x->n_robust) x->robust_text = xstrdup(sb.s ? sb.s : "");
            rc = tok_stream_push(&ts, s.out[i], &sb, e);
        }
        tok_stream_flush(&ts, &sb);
        x->text = sb.s ? sb_take(&sb) : xstrdup("");
        if (!x->robust_text) x->robust_text = xstrdup(x->text);
        for (int i = 0; stops[i] && x->text; i++) {
            char *hit = strstr(x->text, stops[i]);
            if (hit) *hit = 0, x->stopped = 1;
        }
        /* a reply is cut where a stop string starts: the part every right
         * reply shares ends before any place where one might start (one in
         * it, or one begun at its end that another continuation completes) */
        for (char *q = x->robust_text; *q; q++) {
            int cut = 0;
            for (int i = 0; stops[i] && !cut; i++) {
                size_t a = strlen(q), b = strlen(stops[i]);
                cut = !strncmp(q, stops[i], a < b ? a : b);
            }
            if (cut) {
                *q = 0;
                break;
            }
        }
        if (!x->text) rc = -1;
    }
    gen_seq_free(&s);
    free(ids);
    free(text);
    model_free(m);
    tok_free(tok);
    chat_template_free(t);
    return rc;
}

static void test_greedy_equals_engine(void) {
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(dir);
    Err e;
    LlmMessage msgs[2] = {{"system", "Be brief."}, {"user", "I just moved to a new city and want to find friends."}};
    Expected x;
    CHECK_OK(expected_greedy(dir, msgs, 2, 24, &x, &e), &e);
    LlmBackend *b = open_local(dir, NULL, &e);
    CHECK_OK(b == NULL, &e);
    CHECK(strstr(b->describe, "local ") == b->describe);
    CHECK(strstr(b->describe, "Qwen2ForCausalLM") && strstr(b->describe, "f32"));
    LlmParams p = greedy(24);
    LlmReply r = {0};
    CHECK_OK(llm_chat(b, msgs, 2, &p, &r, &e), &e);
    CHECK_REPLY(x, r.text);
    CHECK_EQ_INT(r.usage.prompt_tokens, x.n_prompt);
    CHECK_EQ_INT(b->stats.requests, 1);
    CHECK_EQ_INT(b->stats.prompt_tokens, x.n_prompt);
    CHECK_EQ_INT(b->stats.completion_tokens, r.usage.completion_tokens);
    if (x.n_robust == x.n_out) {
        CHECK_EQ_STR(r.finish_reason, x.stopped ? "stop" : "length");
        CHECK_EQ_INT(r.usage.completion_tokens, x.n_out);
    }
    CHECK_EQ_INT(r.usage.cached_tokens, 0);
    llm_reply_free(&r);
    /* the same conversation one turn on: its prompt begins with the first
     * one's, which the prefix cache holds; the reply is what the engine
     * gives the whole prompt */
    LlmMessage more[4] = {msgs[0], msgs[1], {"assistant", x.text}, {"user", "Any tips for a shy person?"}};
    Expected y;
    CHECK_OK(expected_greedy(dir, more, 4, 24, &y, &e), &e);
    CHECK_OK(llm_chat(b, more, 4, &p, &r, &e), &e);
    CHECK_REPLY(y, r.text);
    CHECK_MSG(r.usage.cached_tokens > 10 && r.usage.cached_tokens < y.n_prompt, "%ld of %d prompt tokens from the cache",
              r.usage.cached_tokens, y.n_prompt);
    CHECK_EQ_INT(b->stats.cached_prompt_tokens, r.usage.cached_tokens);
    PrefixCacheStats st = llm_local_prefix_stats(b);
    CHECK_MSG(st.hits == 1 && st.tokens_reused == r.usage.cached_tokens, "%ld hits, %ld reused", st.hits,
              st.tokens_reused);
    llm_reply_free(&r);
    llm_free(b);
    expected_free(&x), expected_free(&y);
    free(dir);
}

/* max_tokens ends a reply with "length" and exactly that many tokens; the
 * default limit applies when unset. */
static void test_max_tokens_length(void) {
    char *dir = fixture("fixtures/models/tiny-llama3");
    NEED(dir);
    Err e;
    LlmBackend *b = open_local(dir, NULL, &e);
    CHECK_OK(b == NULL, &e);
    LlmMessage msgs[1] = {{"user", "Tell me about your garden."}};
    Expected x;
    CHECK_OK(expected_greedy(dir, msgs, 1, 5, &x, &e), &e);
    LlmParams p = greedy(5);
    LlmReply r = {0};
    CHECK_OK(llm_chat(b, msgs, 1, &p, &r, &e), &e);
    CHECK_REPLY(x, r.text);
    if (!x.stopped && x.n_robust == x.n_out) {
        CHECK_EQ_STR(r.finish_reason, "length");
        CHECK_EQ_INT(r.usage.completion_tokens, 5);
    }
    llm_reply_free(&r);
    expected_free(&x);
    p.max_tokens = 0; /* unset: LOCAL_DEFAULT_MAX_TOKENS, cut to the 256-token context */
    CHECK_OK(llm_chat(b, msgs, 1, &p, &r, &e), &e);
    CHECK(r.usage.completion_tokens <= LOCAL_DEFAULT_MAX_TOKENS);
    CHECK(r.usage.prompt_tokens + r.usage.completion_tokens <= llm_local_n_ctx(b));
    if (!strcmp(r.finish_reason, "length"))
        CHECK_EQ_INT(r.usage.prompt_tokens + r.usage.completion_tokens, llm_local_n_ctx(b));
    llm_reply_free(&r);
    llm_free(b);
    free(dir);
}

/* ---- many threads ---- */

#define N_THREADS 16

/* Holds the batcher on its first streamed text until every thread has
 * reached its request, so that requests are decoded together by events and
 * not by how the threads happen to be scheduled (60 s bounds a broken run). */
typedef struct {
    atomic_int arrived, held;
    int n;
} Gate;

static void gate_on_text(void *ctx, const char *text, size_t len) {
    (void)text, (void)len;
    Gate *g = ctx;
    if (atomic_exchange(&g->held, 1)) return;
    for (int i = 0; i < 60000 && atomic_load(&g->arrived) < g->n; i++) usleep(1000);
}

typedef struct {
    LlmBackend *b;
    pthread_barrier_t *start; /* NULL: go at once */
    Gate *gate;               /* NULL: plain llm_chat */
    int i;
    char *text;
    long completion;
    Err e;
    int rc;
} Job;

static void job_messages(int i, char *buf, size_t size, LlmMessage msgs[2]) {
    snprintf(buf, size, "Question %d: what should I cook tonight, given %d friends are coming?", i, i % 5 + 1);
    msgs[0] = (LlmMessage){"system", "You are a helpful assistant."};
    msgs[1] = (LlmMessage){"user", buf};
}

static int job_max_tokens(int i) { return 12 + 3 * (i % 7); } /* sequences leave and join mid-flight */

static void *job_run(void *arg) {
    Job *j = arg;
    char buf[160];
    LlmMessage msgs[2];
    job_messages(j->i, buf, sizeof buf, msgs);
    LlmParams p = greedy(job_max_tokens(j->i));
    LlmReply r = {0};
    if (j->start) pthread_barrier_wait(j->start); /* all submit together */
    if (j->gate) {
        atomic_fetch_add(&j->gate->arrived, 1);
        j->rc = llm_local_chat_stream(j->b, msgs, 2, &p, gate_on_text, j->gate, &r, &j->e);
    } else {
        j->rc = llm_chat(j->b, msgs, 2, &p, &r, &j->e);
    }
    if (!j->rc) j->text = xstrdup(r.text), j->completion = r.usage.completion_tokens;
    llm_reply_free(&r);
    return NULL;
}

/* Greedy replies are the same alone and batched, as far as the order of
 * float sums cannot change them (Expected): prompts are prefilled alone but
 * over fewer rows when the prefix cache holds their beginning (every prompt
 * here shares the system prompt, and the batched round finds whole prompts
 * cached), decode rows below MATMUL_GEMM_MIN_ROWS are independent row dots,
 * and at 16 rows the decode matmuls switch to sgemm. With the default limit
 * (8) the other 8 requests wait in line and join as sequences finish. */
static void concurrent_equals_single(int max_active) {
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(dir);
    Err e;
    LocalOptions o = {.max_active = max_active, .quiet = 1};
    LlmBackend *b = llm_local_open(dir, &o, &e);
    CHECK_OK(b == NULL, &e);
    Job single[N_THREADS], many[N_THREADS];
    Expected x[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        char buf[160];
        LlmMessage msgs[2];
        job_messages(i, buf, sizeof buf, msgs);
        CHECK_OK(expected_greedy(dir, msgs, 2, job_max_tokens(i), &x[i], &e), &e);
        single[i] = (Job){.b = b, .i = i};
        job_run(&single[i]);
        CHECK_OK(single[i].rc, &single[i].e);
    }
    CHECK_EQ_INT(llm_local_peak_batch(b), 1);
    pthread_t th[N_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N_THREADS);
    Gate gate = {.n = N_THREADS};
    for (int i = 0; i < N_THREADS; i++) {
        many[i] = (Job){.b = b, .start = &start, .gate = &gate, .i = i};
        pthread_create(&th[i], NULL, job_run, &many[i]);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    int failed = 0;
    for (int i = 0; i < N_THREADS; i++) {
        if (many[i].rc) fprintf(stderr, "thread %d: %s\n", i, many[i].e.msg), failed++;
        else if (!reply_matches(&x[i], single[i].text) || !reply_matches(&x[i], many[i].text))
            fprintf(stderr, "thread %d: \"%s\" / \"%s\" against \"%s\" (first %d of %d tokens robust)\n", i,
                    many[i].text, single[i].text, x[i].text, x[i].n_robust, x[i].n_out),
                failed++;
        else if (x[i].n_robust == x[i].n_out && (many[i].completion != x[i].n_out || single[i].completion != x[i].n_out))
            failed++;
    }
    CHECK_EQ_INT(failed, 0);
    /* batched: at least two decoded together (the gate makes that an event);
     * never more than the limit */
    int peak = llm_local_peak_batch(b);
    CHECK_MSG(peak >= 2 && peak <= max_active, "sequences decoded together at most: %d (limit %d)", peak, max_active);
    CHECK_EQ_INT(b->stats.requests, 2 * N_THREADS);
    for (int i = 0; i < N_THREADS; i++) free(single[i].text), free(many[i].text), expected_free(&x[i]);
    llm_free(b);
    free(dir);
}

static void test_concurrent_equals_single(void) { concurrent_equals_single(LOCAL_DEFAULT_MAX_ACTIVE); }
/* 16 at once: the sgemm regime of the decode matmuls */
static void test_concurrent_equals_single_16(void) { concurrent_equals_single(16); }

/* Two roles over one loaded model: the same replies, their own stats, and
 * the model stays until the last is freed. */
static void test_shared_model(void) {
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(dir);
    Err e;
    LlmBackend *a = open_local(dir, NULL, &e);
    CHECK_OK(a == NULL, &e);
    LlmBackend *b = llm_local_share(a);
    CHECK(b != NULL && llm_is_local(b));
    Job ja = {.b = a, .i = 3}, jb = {.b = b, .i = 3};
    job_run(&ja);
    CHECK_OK(ja.rc, &ja.e);
    llm_free(a);
    job_run(&jb);
    CHECK_OK(jb.rc, &jb.e);
    /* the second finds the prompt in the shared prefix cache: the same reply
     * as far as that cannot change it (Expected) */
    char buf[160];
    LlmMessage msgs[2];
    job_messages(3, buf, sizeof buf, msgs);
    Expected x;
    CHECK_OK(expected_greedy(dir, msgs, 2, job_max_tokens(3), &x, &e), &e);
    CHECK_REPLY(x, ja.text);
    CHECK_REPLY(x, jb.text);
    expected_free(&x);
    CHECK_EQ_INT(b->stats.requests, 1);
    free(ja.text), free(jb.text);
    llm_free(b);
    free(dir);
}

/* A seed repeats a sampled reply, batched or not. */
static void test_seeded_sampling_repeats(void) {
    char *dir = fixture("fixtures/models/tiny-mistral");
    NEED(dir);
    Err e;
    LlmBackend *b = open_local(dir, NULL, &e);
    CHECK_OK(b == NULL, &e);
    LlmMessage msgs[1] = {{"user", "Any ideas for a weekend trip?"}};
    LlmParams p = llm_params_default();
    p.temperature = 0.9;
    p.top_p = 0.95;
    p.max_tokens = 16;
    p.has_seed = 1;
    p.seed = 1234;
    LlmReply a = {0}, c = {0}, g = {0};
    CHECK_OK(llm_chat(b, msgs, 1, &p, &a, &e), &e);
    CHECK_OK(llm_chat(b, msgs, 1, &p, &c, &e), &e);
    CHECK_EQ_STR(a.text, c.text);
    LlmParams q = greedy(16);
    CHECK_OK(llm_chat(b, msgs, 1, &q, &g, &e), &e);
    CHECK_MSG(strcmp(a.text, g.text), "sampling at temperature 0.9 gave the greedy text: %s", a.text);
    llm_reply_free(&a);
    llm_reply_free(&c);
    llm_reply_free(&g);
    llm_free(b);
    free(dir);
}

/* ---- stops, through the engine with stops chosen from a greedy run ---- */

typedef struct {
    Model *m;
    Tokenizer *tok;
    int32_t *prompt;
    int n_prompt;
} Raw;

static int raw_open(Raw *r, const char *dir, Err *e) {
    memset(r, 0, sizeof *r);
    if (!(r->m = model_load(dir, 0, e)) || !(r->tok = tok_load_hf(dir, e))) return -1;
    return tok_encode(r->tok, "<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n", 0, 1, &r->prompt,
                      &r->n_prompt, e);
}

static void raw_close(Raw *r) {
    free(r->prompt);
    tok_free(r->tok);
    model_free(r->m);
}

/* What the engine replied: the text, "length" or not, new tokens. */
typedef struct {
    char *text;
    int length_limited, n_completion;
} EngineReply;

static int engine_run(Batcher *g, GenSeq *s, EngineReply *out, Err *e) {
    int rc = batcher_run(g, s, e);
    if (!rc) {
        out->text = s->reply.text.s ? sb_take(&s->reply.text) : xstrdup("");
        out->length_limited = s->finish == GEN_LENGTH;
        out->n_completion = s->n_out;
    }
    gen_seq_free(s);
    return rc;
}

static int engine_reply(Raw *r, const int32_t *stop_ids, int n_stop, const char *const *stop_strings, int max_tokens,
                        EngineReply *out, Err *e) {
    Batcher *g = batcher_start(r->m, 4, 0, e);
    if (!g) return -1;
    GenParams gp;
    gen_params_default(&gp);
    gp.max_tokens = max_tokens, gp.tok = r->tok, gp.stop_strings = stop_strings;
    for (int i = 0; i < n_stop; i++) gp.stop_ids[gp.n_stop_ids++] = stop_ids[i];
    GenSeq s;
    gen_seq_init(&s, r->prompt, r->n_prompt, &gp);
    int rc = engine_run(g, &s, out, e);
    batcher_stop(g);
    return rc;
}

static void collect(void *ctx, const char *text, size_t len) { sb_appendn(ctx, text, len); }

static void test_stop_at_end_of_turn(void) {
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(dir);
    Err e;
    Raw r;
    CHECK_OK(raw_open(&r, dir, &e), &e);
    EngineReply free_run, stopped;
    CHECK_OK(engine_reply(&r, NULL, 0, NULL, 12, &free_run, &e), &e);
    CHECK(free_run.length_limited && free_run.n_completion == 12);
    /* the greedy ids again, to pick a stop token: the first one that is new at step k >= 2 */
    GenParams gp;
    gen_params_default(&gp);
    gp.max_tokens = 12;
    GenSeq s;
    gen_seq_init(&s, r.prompt, r.n_prompt, &gp);
    CHECK_OK(generate(r.m, &s, 1, &e), &e);
    int k = 2;
    for (; k < s.n_out; k++) {
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= s.out[j] == s.out[k];
        if (!seen) break;
    }
    CHECK(k < s.n_out);
    char *before = tok_decode(r.tok, s.out, k, 1, &e);
    CHECK(before != NULL);
    /* as an end-of-turn id: the reply is the text before it, the stop token counted */
    CHECK_OK(engine_reply(&r, &s.out[k], 1, NULL, 12, &stopped, &e), &e);
    CHECK_EQ_STR(stopped.text, before);
    CHECK_EQ_INT(stopped.length_limited, 0);
    CHECK_EQ_INT(stopped.n_completion, k + 1);
    free(stopped.text);
    /* as a stop string: text cut where it starts (it may start inside a token) */
    char *all = tok_decode(r.tok, s.out, s.n_out, 1, &e);
    char *tail = tok_decode(r.tok, &s.out[k], 1, 1, &e);
    CHECK(all && tail && *tail);
    const char *stops[] = {tail, NULL};
    size_t cut = (size_t)(strstr(all, tail) - all);
    StrBuf streamed;
    sb_init(&streamed);
    Batcher *g = batcher_start(r.m, 2, 0, &e);
    CHECK(g != NULL);
    GenParams sp;
    gen_params_default(&sp);
    sp.max_tokens = 12, sp.tok = r.tok, sp.stop_strings = stops, sp.on_text = collect, sp.text_ctx = &streamed;
    GenSeq q;
    gen_seq_init(&q, r.prompt, r.n_prompt, &sp);
    CHECK_OK(engine_run(g, &q, &stopped, &e), &e);
    batcher_stop(g);
    CHECK_EQ_INT(strlen(stopped.text), cut);
    CHECK(!strncmp(stopped.text, all, cut));
    CHECK_EQ_INT(stopped.length_limited, 0);
    /* what was streamed is the reply, and never the stop string */
    CHECK_EQ_STR(streamed.s ? streamed.s : "", stopped.text);
    sb_free(&streamed);
    free(stopped.text);
    free(all), free(tail), free(before), free(free_run.text);
    gen_seq_free(&s);
    raw_close(&r);
    free(dir);
}

/* ---- GGUF ---- */

static void test_gguf_with_named_template(void) {
    char *gguf = fixture("fixtures/gguf/tiny-qwen2-f32.gguf");
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(gguf);
    NEED(dir);
    Err e;
    CHECK(open_local(gguf, NULL, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "--chat-template") && strstr(e.msg, "qwen2.5"), "message: %s", e.msg);
    LlmBackend *b = open_local(gguf, "qwen2.5", &e);
    CHECK_OK(b == NULL, &e);
    LlmBackend *h = open_local(dir, NULL, &e);
    CHECK_OK(h == NULL, &e);
    LlmMessage msgs[1] = {{"user", "What is a good book to read on a train?"}};
    LlmParams p = greedy(16);
    LlmReply a = {0}, c = {0};
    CHECK_OK(llm_chat(b, msgs, 1, &p, &a, &e), &e);
    CHECK_OK(llm_chat(h, msgs, 1, &p, &c, &e), &e);
    /* the f32 GGUF gives the same greedy ids as the safetensors directory */
    CHECK_EQ_STR(a.text, c.text);
    CHECK_EQ_INT(a.usage.prompt_tokens, c.usage.prompt_tokens);
    llm_reply_free(&a);
    llm_reply_free(&c);
    llm_free(b);
    llm_free(h);
    free(gguf);
    free(dir);
}

/* ---- hf:// specs ---- */

/* hf://ORG/REPO is downloaded once (from $HF_ENDPOINT into $ALOE_CACHE,
 * here tests/tools/fake_hub serving the fixture) and then chats like the
 * directory itself. */
static void test_hf_spec(void) {
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(dir);
    char *tmp = test_tmpdir(), *port_file = path_join(tmp, "port"), *bin = test_build_path("tests/tools/fake_hub");
    char *argv[] = {bin, "--repo", "tiny/qwen2", "--root", dir, "--port-file", port_file, NULL};
    pid_t pid;
    int port = test_spawn_server(argv, port_file, &pid);
    free(bin);
    NEED_STARTED(port >= 0, "fake_hub");
    char *url = xasprintf("http://127.0.0.1:%d", port);
    setenv("HF_ENDPOINT", url, 1);
    setenv("ALOE_CACHE", tmp, 1);
    Err e;
    LocalOptions o = {.quiet = 1};
    LlmBackend *b = llm_local_open("hf://tiny/qwen2", &o, &e);
    test_kill(pid);
    unsetenv("HF_ENDPOINT");
    unsetenv("ALOE_CACHE");
    CHECK_OK(b == NULL, &e);
    CHECK_MSG(strstr(b->describe, tmp) != NULL, "describe: %s", b->describe);
    CHECK_EQ_STR(b->model, "hf://tiny/qwen2");
    LlmBackend *h = open_local(dir, NULL, &e);
    CHECK_OK(h == NULL, &e);
    LlmMessage msgs[1] = {{"user", "Do you like hiking?"}};
    LlmParams p = greedy(10);
    LlmReply a = {0}, c = {0};
    CHECK_OK(llm_chat(b, msgs, 1, &p, &a, &e), &e);
    CHECK_OK(llm_chat(h, msgs, 1, &p, &c, &e), &e);
    CHECK_EQ_STR(a.text, c.text);
    llm_reply_free(&a);
    llm_reply_free(&c);
    llm_free(b);
    llm_free(h);
    test_system("rm -rf '%s'", tmp);
    free(url), free(tmp), free(port_file), free(dir);
}

/* ---- embeddings ---- */

static void test_embed_equals_encoder(void) {
    char *dir = fixture("fixtures/models/tiny-bert-st");
    NEED(dir);
    Err e;
    LlmBackend *b = open_local(dir, NULL, &e);
    CHECK_OK(b == NULL, &e);
    const char *texts[] = {"She works night shifts as a nurse.", "He collects vintage cameras."};
    float *v = NULL, *w = NULL;
    int dim = 0, dim2 = 0;
    CHECK_OK(llm_embed(b, texts, 2, &v, &dim, &e), &e);
    Encoder *enc = encoder_load(dir, &e);
    CHECK_OK(enc == NULL, &e);
    CHECK_OK(encoder_embed(enc, texts, 2, &w, &dim2, &e), &e);
    CHECK_EQ_INT(dim, dim2);
    for (int i = 0; i < 2 * dim; i++) CHECK_NEAR(v[i], w[i], 1e-6);
    CHECK_EQ_INT(b->stats.requests, 1);
    LlmMessage m[1] = {{"user", "hi"}};
    LlmParams p = greedy(4);
    LlmReply r = {0};
    CHECK(llm_chat(b, m, 1, &p, &r, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_UNSUPPORTED);
    free(v), free(w);
    encoder_free(enc);
    llm_free(b);
    free(dir);
}

/* ---- errors ---- */

static void test_errors(void) {
    char *dir = fixture("fixtures/models/tiny-qwen2");
    NEED(dir);
    Err e;
    CHECK(open_local("./no/such/model", NULL, &e) == NULL);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    CHECK(strstr(e.msg, "./no/such/model") != NULL);
    CHECK(open_local("/no/such/model.gguf", NULL, &e) == NULL);
    CHECK(strstr(e.msg, "/no/such/model.gguf") != NULL);
    CHECK(open_local(dir, "no-such-template", &e) == NULL);
    CHECK_MSG(strstr(e.msg, "no-such-template") && strstr(e.msg, "chatml") && strstr(e.msg, "llama3.1"),
              "message: %s", e.msg);
    /* an empty directory is not a model */
    char *tmp = test_tmpdir();
    CHECK(open_local(tmp, NULL, &e) == NULL);
    CHECK(strstr(e.msg, tmp) != NULL);
    free(tmp);
    /* a prompt longer than the context */
    LocalOptions o = {.n_ctx = 16};
    LlmBackend *b = llm_local_open(dir, &o, &e);
    CHECK_OK(b == NULL, &e);
    CHECK_EQ_INT(llm_local_n_ctx(b), 16);
    LlmMessage m[1] = {{"user", "This message and the template around it are longer than sixteen tokens."}};
    LlmParams p = greedy(4);
    LlmReply r = {0};
    CHECK(llm_chat(b, m, 1, &p, &r, &e) == -1);
    CHECK_MSG(strstr(e.msg, "context of 16 tokens"), "message: %s", e.msg);
    CHECK_EQ_INT(b->stats.errors, 1);
    /* a decoder cannot embed */
    const char *t[] = {"x"};
    float *v;
    int dim;
    CHECK(llm_embed(b, t, 1, &v, &dim, &e) == -1);
    llm_free(b);
    free(dir);
}

int main(void) {
    RUN(test_greedy_equals_engine);
    RUN(test_max_tokens_length);
    RUN(test_concurrent_equals_single);
    RUN(test_concurrent_equals_single_16);
    RUN(test_shared_model);
    RUN(test_seeded_sampling_repeats);
    RUN(test_stop_at_end_of_turn);
    RUN(test_gguf_with_named_template);
    RUN(test_hf_spec);
    RUN(test_embed_equals_encoder);
    RUN(test_errors);
    return test_summary();
}
