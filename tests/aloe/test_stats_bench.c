/* bench_stats: results.json's personas[] and intervals from a benchmark
 * journal, on the hand-computed example of test_stats.c (3 profiles x 2
 * personas x 3 turns; exact cluster-bootstrap intervals AVG [2, 4], IR
 * [0, 1], N-IR [0, 1/3] at 95%). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/bench.h"
#include "aloe/bench_stats.h"
#include "aloe/report.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static const char *const profiles[] = {"P0", "P1", "P2"};
static const char *const personalities[] = {"K0", "K1"};
/* persona i = profile i / 2, personality i % 2 */
static const int example[6][3] = {{1, 1, 1}, {3, 3, 3}, {2, 3, 4}, {3, 3, 3}, {2, 4, 5}, {4, 4, 5}};

static BenchConfig config(void) {
    BenchConfig c = bench_config_default();
    c.profiles = profiles;
    c.n_profiles = 3;
    c.personalities = personalities;
    c.n_personalities = 2;
    c.per_profile = 2;
    c.turns = 3;
    return c;
}

/* A journal record as bench writes it; score 0 = invalid (null). */
static json_t *record(const BenchConfig *c, long i, const int *scores) {
    char id[64];
    bench_persona_id(c, i, id, sizeof id);
    json_t *turns = json_array();
    for (int k = 0; k < c->turns; k++)
        json_array_append_new(turns, json_pack("{s:i, s:s, s:s, s:[], s:o, s:i}", "turn", k + 1, "user", "u",
                                               "assistant", "a", "judge", "score",
                                               scores[k] ? json_integer(scores[k]) : json_null(), "attempts", 1));
    return json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:o, s:{}}", "id", id, "index", (json_int_t)i, "profile_index",
                     (json_int_t)(i / c->per_profile), "personality_index", (json_int_t)(i % c->per_profile),
                     "profile", "P", "personality", "K", "turns", turns, "usage");
}

static Journal *journal_with(const char *name, const BenchConfig *c, const int (*scores)[3], int n, Err *e) {
    char *dir = test_tmpdir(), *path = path_join(dir, name);
    Journal *j = journal_open(path, "id", e);
    for (int i = 0; j && i < n; i++) {
        json_t *r = record(c, i, scores[i]);
        if (journal_append(j, r, e)) {
            journal_close(j);
            j = NULL;
        }
        json_decref(r);
    }
    free(path);
    free(dir);
    return j;
}

static double num(const json_t *o, const char *a, const char *b) {
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

static void test_results_carry_personas_and_intervals(void) {
    BenchConfig c = config();
    Err e = {0};
    Journal *j = journal_with("d.jsonl", &c, example, 6, &e);
    CHECK_OK(j ? 0 : -1, &e);
    json_t *r = bench_results(&c, j);
    json_t *ps = json_object_get(r, "personas");
    CHECK_EQ_INT(json_array_size(ps), 6);
    json_t *p3 = json_array_get(ps, 3);
    CHECK_EQ_STR(json_string_value(json_object_get(p3, "id")), "p1-k1");
    CHECK_EQ_INT(json_integer_value(json_object_get(p3, "profile_index")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(p3, "personality_index")), 1);
    json_t *sc = json_object_get(json_array_get(ps, 4), "scores");
    CHECK(json_array_size(sc) == 3 && json_integer_value(json_array_get(sc, 1)) == 4);
    json_t *iv = json_object_get(r, "intervals");
    /* The hand-computed exact intervals (test_stats.c): resampling the 3
     * profiles, not the 6 personas. */
    CHECK_NEAR(num(iv, "avg", "lo"), 2, 1e-12);
    CHECK_NEAR(num(iv, "avg", "hi"), 4, 1e-12);
    CHECK_NEAR(num(iv, "ir", "lo"), 0, 1e-12);
    CHECK_NEAR(num(iv, "ir", "hi"), 1, 1e-12);
    CHECK_NEAR(num(iv, "n_ir", "lo"), 0, 1e-12);
    CHECK_NEAR(num(iv, "n_ir", "hi"), 1.0 / 3, 1e-12);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(iv, "avg"), "defined")), 27);
    CHECK(json_is_true(json_object_get(iv, "exact")));
    CHECK_EQ_INT(json_integer_value(json_object_get(iv, "replicates")), 27);
    CHECK_EQ_INT(json_integer_value(json_object_get(iv, "clusters")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(iv, "seed")), STATS_SEED);
    CHECK(strstr(json_string_value(json_object_get(iv, "method")), "3 profiles resampled with replacement"));
    const char *def = json_string_value(json_object_get(json_object_get(r, "definitions"), "intervals"));
    CHECK(def && strstr(def, "clustered by profile"));
    /* The whole object is what report reads back. */
    char *text = json_dumps(r, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_t *back = report_parse_results("results.json", text, strlen(text), &e);
    CHECK_OK(back ? 0 : -1, &e);
    char *md = report_run_markdown(back);
    CHECK_MSG(strstr(md, "| 95% interval | [2.000, 4.000] | [0.0000, 1.0000] |"), "%s", md);
    CHECK(strstr(md, "clustered by profile"));
    CHECK(strstr(md, "`personas` in results.json (6 finished personas)"));
    free(md);
    json_decref(back);
    free(text);
    json_decref(r);
    journal_close(j);
}

/* Personas not finished (absent) or skipped are not in personas[]; a
 * profile left without personas is no cluster; an invalid score is null. */
static void test_missing_skipped_and_invalid(void) {
    BenchConfig c = config();
    Err e = {0};
    int scores[6][3];
    memcpy(scores, example, sizeof scores);
    scores[0][2] = 0; /* invalid */
    Journal *j = journal_with("d2.jsonl", &c, scores, 2, &e); /* profile 0 only */
    CHECK_OK(j ? 0 : -1, &e);
    json_t *skipped = record(&c, 4, scores[4]); /* profile 2, marked skipped */
    json_object_set_new(skipped, "skipped", json_true());
    CHECK_OK(journal_append(j, skipped, &e), &e);
    json_decref(skipped);
    BenchScores s;
    bench_scores_read(&c, j, &s);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(s.n_clusters, 1);
    CHECK(isnan(s.score[2]) && s.score[3] == 3);
    bench_scores_free(&s);
    json_t *r = bench_results(&c, j);
    json_t *ps = json_object_get(r, "personas");
    CHECK_EQ_INT(json_array_size(ps), 2);
    CHECK(json_is_null(json_array_get(json_object_get(json_array_get(ps, 0), "scores"), 2)));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "intervals"), "clusters")), 1);
    /* One profile: every draw is that profile, the interval a point. */
    json_t *iv = json_object_get(r, "intervals");
    CHECK(num(iv, "avg", "lo") == num(iv, "avg", "hi"));
    json_decref(r);
    journal_close(j);
    /* Nothing finished: the fields are there, the bounds null. */
    j = journal_with("d3.jsonl", &c, scores, 0, &e);
    CHECK_OK(j ? 0 : -1, &e);
    r = bench_results(&c, j);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "personas")), 0);
    CHECK(json_is_null(json_object_get(json_object_get(json_object_get(r, "intervals"), "ir"), "hi")));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "intervals"), "replicates")), 0);
    char *text = json_dumps(r, 0);
    json_t *back = report_parse_results("results.json", text, strlen(text), &e);
    CHECK_OK(back ? 0 : -1, &e);
    json_decref(back);
    free(text);
    json_decref(r);
    journal_close(j);
}

int main(void) {
    RUN(test_results_carry_personas_and_intervals);
    RUN(test_missing_skipped_and_invalid);
    return test_summary();
}
