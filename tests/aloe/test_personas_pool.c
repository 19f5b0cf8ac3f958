#include <stdlib.h>

#include "aloe/personas.h"
#include "aloe/prompts.h"
#include "aloe/simpool.h"
#include "base/fileio.h"
#include "gen_double.h"
#include "test.h"

static void test_cosine_and_nearest_on_hand_made_vectors(void) {
    float a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {1, 1, 0}, z[3] = {0, 0, 0};
    CHECK_NEAR(vec_cosine(a, b, 3), 0.0, 1e-12);
    CHECK_NEAR(vec_cosine(a, c, 3), 0.70710678, 1e-7);
    CHECK_NEAR(vec_cosine(a, z, 3), 0.0, 1e-12);
    SimPool p;
    simpool_init(&p);
    Err e;
    double sim;
    CHECK_EQ_INT(simpool_nearest(&p, a, &sim), -1);
    CHECK_OK(simpool_add(&p, a, 3, &e), &e);
    CHECK_OK(simpool_add(&p, b, 3, &e), &e);
    float q[3] = {0.2f, 3, 0.1f};
    CHECK_EQ_INT(simpool_nearest(&p, q, &sim), 1);
    CHECK_NEAR(sim, 3 / sqrt(0.04 + 9 + 0.01), 1e-6);
    float d4[4] = {1, 0, 0, 0};
    CHECK(simpool_add(&p, d4, 4, &e) == -1);
    CHECK(strstr(e.msg, "4 dimensions") != NULL);
    simpool_free(&p);
}

/* The generator answers with per_call "Person N" items, N drawn from the
 * request (its seed), so some repeat; the embedder maps "Person N" to the
 * unit vector N, so distinct people are orthogonal and repeats identical. */
typedef struct Script {
    int people;        /* N ranges over [0, people) */
    int only_seeds;    /* answer only with the seeds' own names */
    char *prompts[64]; /* the prompts seen, by call order (first 64) */
    atomic_int seen;
} Script;

static char *gen_reply(void *ctx, const LlmMessage *msgs, int n, const LlmParams *p) {
    (void)n;
    Script *s = ctx;
    int k = atomic_fetch_add(&s->seen, 1);
    if (k < 64) s->prompts[k] = xstrdup(msgs[0].content);
    StrBuf b;
    sb_init(&b);
    sb_append(&b, "Here are the new ones:\n\n");
    unsigned long h = (unsigned long)p->seed * 2654435761ul + 17;
    for (int i = 0; i < 4; i++) {
        h = h * 6364136223846793005ul + 1442695040888963407ul;
        int who = s->only_seeds ? 100 + (int)((h >> 33) % 3) : (int)((h >> 33) % (unsigned long)s->people);
        sb_printf(&b, "%d. \"Person %d\"\n", i + 1, who);
    }
    return sb_take(&b);
}

static int person_vec(void *ctx, const char *text, float *vec, int dim) {
    (void)ctx;
    int k = atoi(text + strlen("Person "));
    if (strncmp(text, "Person ", 7) || k < 0 || k >= dim) return -1;
    vec[k] = 1;
    return 0;
}

static StrList seeds3(void) {
    StrList l = {0};
    strlist_push(&l, "Person 100");
    strlist_push(&l, "Person 101");
    strlist_push(&l, "Person 102");
    return l;
}

static void setup(PersonasConfig *c, Script *s, Double *gd, Double *ed, LlmBackend **gen, LlmBackend **emb,
                  const char *out) {
    memset(s, 0, sizeof *s);
    memset(gd, 0, sizeof *gd);
    memset(ed, 0, sizeof *ed);
    s->people = 40;
    gd->reply = gen_reply;
    gd->ctx = s;
    ed->embed_one = person_vec;
    ed->dim = 128;
    *gen = double_backend("gen", gd);
    *emb = double_backend("emb", ed);
    personas_config_default(c);
    c->template_text = "Examples:\n{examples}\nWrite {n} more.";
    c->generator = *gen;
    c->embedder = *emb;
    c->examples = 2;
    c->per_call = 4;
    c->calls = 2;
    c->target = 20;
    c->seed = 7;
    c->quiet = 1;
    c->out_path = out;
}

static void free_script(Script *s) {
    for (int i = 0; i < 64 && i < atomic_load(&s->seen); i++) free(s->prompts[i]);
}

static void test_pool_grows_to_target_without_near_duplicates(void) {
    char *dir = test_tmpdir(), *out = path_join(dir, "pool.jsonl");
    PersonasConfig c;
    Script s;
    Double gd, ed;
    LlmBackend *gen, *emb;
    setup(&c, &s, &gd, &ed, &gen, &emb, out);
    StrList seeds = seeds3();
    PersonasResult r;
    Err e;
    CHECK_OK(personas_run(&c, &seeds, &r, &e), &e);
    CHECK_EQ_INT(r.why, PERSONAS_TARGET);
    CHECK_EQ_INT(r.pool_size, 20);
    StrList pool;
    CHECK_OK(jsonl_read_strings(out, &pool, &e), &e);
    CHECK_EQ_INT(pool.n, 20);
    CHECK_EQ_STR(pool.items[0], "Person 100");
    for (int i = 0; i < pool.n; i++)
        for (int j = 0; j < i; j++) CHECK_MSG(strcmp(pool.items[i], pool.items[j]), "duplicate %s", pool.items[i]);
    /* Every embedding was computed once: seeds + candidates, never again. */
    CHECK(r.candidates > r.accepted); /* some repeats were rejected */
    CHECK_EQ_INT(atomic_load(&ed.embedded_texts), 3 + (int)r.candidates + /* unconsidered tail */
                                                      (atomic_load(&gd.chats) * 4 - (int)r.candidates));
    /* The prompt is rebuilt from the template every round. */
    for (int i = 0; i < atomic_load(&s.seen) && i < 64; i++) {
        CHECK_MSG(!strncmp(s.prompts[i], "Examples:\n1. Person ", 20), "prompt %d: %s", i, s.prompts[i]);
        CHECK(strstr(s.prompts[i], "\n2. Person ") && !strstr(s.prompts[i], "\n3. "));
        CHECK(strstr(s.prompts[i], "Write 4 more.") && !strstr(s.prompts[i], "Here are"));
    }
    /* Provenance: generated items name their nearest neighbour. */
    char *meta_path = personas_sidecar_path(out, ".meta.jsonl"), *meta;
    size_t len;
    CHECK_OK(file_read_all(meta_path, &meta, &len, &e), &e);
    CHECK(strstr(meta, "\"source\":\"seed\",\"round\":0,\"nearest\":null"));
    CHECK(strstr(meta, "\"source\":\"generated\",\"round\":1,\"nearest\":"));
    CHECK(strstr(meta, "\"similarity\":0"));
    free(meta);
    free(meta_path);
    strlist_free(&pool);
    strlist_free(&seeds);
    free_script(&s);
    llm_free(gen);
    llm_free(emb);
    free(out);
    free(dir);
}

static void test_stops_on_acceptance_floor(void) {
    char *dir = test_tmpdir(), *out = path_join(dir, "pool.jsonl");
    PersonasConfig c;
    Script s;
    Double gd, ed;
    LlmBackend *gen, *emb;
    setup(&c, &s, &gd, &ed, &gen, &emb, out);
    s.only_seeds = 1;
    c.floor_rounds = 3;
    c.min_acceptance = 0.1;
    StrList seeds = seeds3();
    PersonasResult r;
    Err e;
    CHECK_OK(personas_run(&c, &seeds, &r, &e), &e);
    CHECK_EQ_INT(r.why, PERSONAS_FLOOR);
    CHECK_EQ_INT(r.rounds, 3);
    CHECK_EQ_INT(r.pool_size, 3);
    CHECK_EQ_INT(r.accepted, 0);
    CHECK_NEAR(r.window_acceptance, 0.0, 0);
    strlist_free(&seeds);
    free_script(&s);
    llm_free(gen);
    llm_free(emb);
    free(out);
    free(dir);
}

static char *read_file_str(const char *p) {
    char *s = NULL;
    size_t n;
    Err e;
    if (file_read_all(p, &s, &n, &e)) return NULL;
    return s;
}

static void test_resume_continues_without_recomputing(void) {
    char *dir = test_tmpdir(), *a = path_join(dir, "a.jsonl"), *b = path_join(dir, "b.jsonl");
    PersonasConfig c;
    Script s;
    Double gd, ed;
    LlmBackend *gen, *emb;
    StrList seeds = seeds3();
    PersonasResult r;
    Err e;
    /* Uninterrupted: 4 rounds. */
    setup(&c, &s, &gd, &ed, &gen, &emb, a);
    c.target = 1000;
    c.max_rounds = 4;
    CHECK_OK(personas_run(&c, &seeds, &r, &e), &e);
    CHECK_EQ_INT(r.why, PERSONAS_MAX_ROUNDS);
    free_script(&s);
    llm_free(gen);
    llm_free(emb);
    /* Stopped after 2 rounds, then resumed to 4. */
    setup(&c, &s, &gd, &ed, &gen, &emb, b);
    c.target = 1000;
    c.max_rounds = 2;
    CHECK_OK(personas_run(&c, &seeds, &r, &e), &e);
    CHECK_EQ_INT(r.rounds, 2);
    free_script(&s);
    llm_free(gen);
    llm_free(emb);
    setup(&c, &s, &gd, &ed, &gen, &emb, b);
    c.target = 1000;
    c.max_rounds = 4;
    CHECK_OK(personas_run(&c, &seeds, &r, &e), &e);
    CHECK_EQ_INT(r.rounds, 4);
    CHECK_EQ_INT(atomic_load(&gd.chats), 2 * 2);               /* only rounds 3 and 4 */
    CHECK_EQ_INT(atomic_load(&ed.embedded_texts), 2 * 2 * 4);  /* their candidates, no seeds */
    char *ta = read_file_str(a), *tb = read_file_str(b);
    CHECK(ta && tb);
    CHECK_EQ_STR(ta, tb);
    free(ta);
    free(tb);
    /* A torn state line (kill -9 mid-write) is cut and its round redone. */
    char *state = personas_sidecar_path(b, ".state.jsonl");
    FILE *f = fopen(state, "a");
    fputs("{\"round\":5,\"candi", f);
    fclose(f);
    free_script(&s);
    llm_free(gen);
    llm_free(emb);
    setup(&c, &s, &gd, &ed, &gen, &emb, b);
    c.target = 1000;
    c.max_rounds = 4;
    CHECK_OK(personas_run(&c, &seeds, &r, &e), &e);
    CHECK_EQ_INT(r.rounds, 4);
    CHECK_EQ_INT(atomic_load(&gd.chats), 0);
    /* Different seeds than the state was made from: a clear error. */
    StrList other = {0};
    strlist_push(&other, "Person 100");
    CHECK(personas_run(&c, &other, &r, &e) == -1);
    CHECK_MSG(strstr(e.msg, "state holds 3 seeds, the seed file 1"), "%s", e.msg);
    strlist_free(&other);
    free(state);
    free_script(&s);
    llm_free(gen);
    llm_free(emb);
    strlist_free(&seeds);
    free(a);
    free(b);
    free(dir);
}

int main(void) {
    RUN(test_cosine_and_nearest_on_hand_made_vectors);
    RUN(test_pool_grows_to_target_without_near_duplicates);
    RUN(test_stops_on_acceptance_floor);
    RUN(test_resume_continues_without_recomputing);
    return test_summary();
}
