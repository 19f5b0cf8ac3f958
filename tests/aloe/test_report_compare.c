/* aloe report A B: the paired comparison, end to end through the binary,
 * on the hand-computed example of test_stats.c (3 profiles x 2 personas x 3
 * turns, A scoring 2 everywhere, B = A + d):
 *   diff AL(k) = 7/6, 3/6, 1/6; exact sign-flip p = 2/8, 6/8, 8/8;
 *   diff AVG = 11/18, p = 2/8; diff IR = -6/12, p = 4/8;
 *   95% paired bootstrap interval of diff AL(1) = [1/2, 2] (the extremes of
 *   the 27 draws). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/compare.h"
#include "aloe/report.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "test.h"

static const int d_example[6][3] = {{1, 2, 0}, {0, 1, 1}, {1, -1, 1}, {1, 0, 0}, {2, 1, 0}, {2, 0, -1}};

/* A results.json of `np` personas p<i/2>-k<i%2> scoring base + sign * d
 * (0 = null), skipping persona `drop` (-1: none). */
static json_t *results(const char *model, int sign, int drop, int T) {
    json_t *turns = json_array(), *ps = json_array();
    for (int k = 0; k < T; k++)
        json_array_append_new(turns, json_pack("{s:i, s:f, s:i}", "turn", k + 1, "al", 2.0, "n", 6));
    for (int i = 0; i < 6; i++) {
        if (i == drop) continue;
        char id[32];
        snprintf(id, sizeof id, "p%d-k%d", i / 2, i % 2);
        json_t *sc = json_array();
        for (int k = 0; k < T; k++) json_array_append_new(sc, json_integer(2 + sign * d_example[i][k % 3]));
        json_array_append_new(ps, json_pack("{s:s, s:i, s:i, s:o}", "id", id, "profile_index", i / 2,
                                            "personality_index", i % 2, "scores", sc));
    }
    /* a persona A scored nowhere: paired at no turn */
    json_t *sc = json_array();
    for (int k = 0; k < T; k++) json_array_append_new(sc, sign ? json_integer(5) : json_null());
    json_array_append_new(ps, json_pack("{s:s, s:i, s:i, s:o}", "id", "p0-k2", "profile_index", 0,
                                        "personality_index", 2, "scores", sc));
    return json_pack("{s:{s:s}, s:b, s:o, s:o}", "models", "model", model, "complete", 1, "turns", turns, "personas",
                     ps);
}

static char *write_run(const char *dir, const char *name, json_t *r) {
    char *run = path_join(dir, name), *p = path_join(run, "results.json");
    Err e = {0};
    file_mkdirs(run, &e);
    json_dump_file(r, p, JSON_INDENT(1));
    json_decref(r);
    free(p);
    return run;
}

static double at(const json_t *o, const char *path) {
    /* "comparisons.0.turns.1.p" */
    char *copy = xstrdup(path), *save = NULL;
    const json_t *v = o;
    for (char *tok = strtok_r(copy, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
    free(copy);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void test_compare_by_hand_and_json_fields(void) {
    char *dir = test_tmpdir();
    char *a = write_run(dir, "a", results("A", 0, -1, 3)), *b = write_run(dir, "b", results("B", 1, -1, 3));
    char *js = path_join(dir, "cmp.json"), *md = path_join(dir, "cmp.md");
    char *args = xasprintf("report %s %s --json %s --out %s", a, b, js, md), *log = NULL;
    int rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    json_t *c = json_load_file(js, 0, NULL);
    CHECK(c);
    /* Every documented field, with its type. */
    CHECK_EQ_STR(json_string_value(json_object_get(c, "baseline")), "A");
    CHECK(json_array_size(json_object_get(c, "runs")) == 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "personas")), 7);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "profiles")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "turns")), 3);
    CHECK(json_is_array(json_object_get(c, "warnings")) && json_array_size(json_object_get(c, "warnings")) == 0);
    CHECK_NEAR(at(c, "level"), 0.95, 0);
    json_t *bs = json_object_get(c, "bootstrap"), *pm = json_object_get(c, "permutation");
    CHECK(json_is_true(json_object_get(bs, "exact")) && json_is_true(json_object_get(pm, "exact")));
    CHECK_EQ_INT(json_integer_value(json_object_get(bs, "replicates")), 27);
    CHECK_EQ_INT(json_integer_value(json_object_get(pm, "draws")), 8);
    CHECK(json_is_string(json_object_get(bs, "method")) && json_is_string(json_object_get(pm, "method")));
    CHECK(json_is_integer(json_object_get(bs, "seed")) && json_is_integer(json_object_get(pm, "seed")));
    json_t *defs = json_object_get(c, "definitions");
    static const char *const dk[] = {"pairing", "diff", "interval", "p"};
    for (int i = 0; i < 4; i++) CHECK_MSG(json_is_string(json_object_get(defs, dk[i])), "definitions.%s", dk[i]);
    CHECK(strstr(json_string_value(json_object_get(defs, "interval")), "clustered by profile"));
    json_t *cmp0 = json_array_get(json_object_get(c, "comparisons"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(cmp0, "run")), "B");
    CHECK_EQ_STR(json_string_value(json_object_get(cmp0, "baseline")), "A");
    static const char *const fk[] = {"turn", "n", "a", "b", "diff", "lo", "hi", "p", "defined"};
    for (int i = 0; i < 9; i++)
        CHECK_MSG(json_object_get(json_array_get(json_object_get(cmp0, "turns"), 0), fk[i]), "turns[0].%s", fk[i]);
    /* The hand-computed numbers. */
    const double diff[3] = {7.0 / 6, 3.0 / 6, 1.0 / 6}, p[3] = {0.25, 0.75, 1};
    for (int k = 0; k < 3; k++) {
        char q[64];
        snprintf(q, sizeof q, "comparisons.0.turns.%d.diff", k);
        CHECK_NEAR(at(c, q), diff[k], 1e-9);
        snprintf(q, sizeof q, "comparisons.0.turns.%d.p", k);
        CHECK_NEAR(at(c, q), p[k], 1e-9);
        snprintf(q, sizeof q, "comparisons.0.turns.%d.n", k);
        CHECK_EQ_INT((long)at(c, q), 6);
    }
    CHECK_NEAR(at(c, "comparisons.0.turns.0.lo"), 0.5, 1e-9);
    CHECK_NEAR(at(c, "comparisons.0.turns.0.hi"), 2, 1e-9);
    CHECK_NEAR(at(c, "comparisons.0.avg.diff"), 11.0 / 18, 1e-9);
    CHECK_NEAR(at(c, "comparisons.0.avg.p"), 0.25, 1e-9);
    CHECK_NEAR(at(c, "comparisons.0.ir.diff"), -0.5, 1e-9);
    CHECK_NEAR(at(c, "comparisons.0.ir.p"), 0.5, 1e-9);
    CHECK(json_object_get(json_object_get(cmp0, "n_ir"), "p"));
    /* The Markdown: the table, the paired rows and the definitions. */
    char *text = test_read_text(md);
    CHECK_MSG(strstr(text, "| run | AL(1) | AL(2) | AL(3) | AVG | IR | N-IR | R² | invalid |"), "%s", text);
    CHECK_MSG(strstr(text, "## Paired differences against A"), "%s", text);
    CHECK_MSG(strstr(text, "| AL(1) | 6 | 2.000 | 3.167 | **+1.167** | [+0.500, +2.000] | 0.25 |"), "%s", text);
    CHECK_MSG(strstr(text, "| AVG | 7 | 2.000 | 2.611 | **+0.611** |"), "%s", text);
    /* bold only where the interval excludes 0: IR's reaches 0 */
    CHECK_MSG(strstr(text, "| IR | 7 | 0.0000 | -0.5000 | -0.5000 | [-1.2500, +0.0000] |"), "%s", text);
    CHECK(strstr(text, "Bold: the interval excludes 0."));
    CHECK(strstr(text, "all 27 draws enumerated (exact)") && strstr(text, "all 8 exchanges enumerated (exact)"));
    CHECK(strstr(text, "Definitions. Pairing: runs are paired by persona id"));
    free(text);
    json_decref(c);
    /* Monte Carlo when asked for fewer draws than 3^3, and the seed stated. */
    free(args);
    free(log);
    args = xasprintf("report %s %s --replicates 20 --seed 9", a, b);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 0 && strstr(log, "20 Monte Carlo draws, seed 9"), "exit %d: %s", rc, log);
    free(args);
    free(log);
    args = xasprintf("report %s %s --permutations 0", a, b);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "--permutations: expected at least 1, got 0"), "exit %d: %s", rc, log);
    free(args);
    free(log);
    /* each bad flag is named with its value, and only it */
    args = xasprintf("report %s %s --replicates -5", a, b);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "--replicates: expected 1 to 1000000 (the draws are kept to be sorted), got -5") && !strstr(log, "--permutations"),
              "exit %d: %s", rc, log);
    free(args);
    free(log);
    args = xasprintf("report %s %s --replicates 1000001", a, b);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "--replicates: expected 1 to 1000000"), "exit %d: %s", rc, log);
    free(args);
    free(log);
    args = xasprintf("report %s %s --seed -1", a, b);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "--seed: expected 0 or more, got -1") && !strstr(log, "--replicates"),
              "exit %d: %s", rc, log);
    free(args);
    free(log);
    free(js);
    free(md);
    free(a);
    free(b);
    free(dir);
}

static void test_refuses_different_personas(void) {
    char *dir = test_tmpdir();
    char *a = write_run(dir, "a", results("A", 0, -1, 3)), *b = write_run(dir, "b", results("B", 1, 3, 3));
    char *js = path_join(dir, "cmp.json");
    char *args = xasprintf("report %s %s --json %s", a, b, js), *log = NULL;
    int rc = aloe_sh_run(NULL, args, &log);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(strstr(log, "run \"B\" lacks 1 of run \"A\"'s personas: p1-k1"), "%s", log);
    CHECK(strstr(log, "--common"));
    CHECK(!file_exists(js));
    free(args);
    free(log);
    /* --common: paired over the 6 every run has, with a warning. */
    args = xasprintf("report %s %s --json %s --common", a, b, js);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK_MSG(strstr(log, "warning: compared over the 6 personas every run has"), "%s", log);
    CHECK(strstr(log, "**Warning:** compared over the 6 personas"));
    json_t *c = json_load_file(js, 0, NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(c, "personas")), 6);
    CHECK(strstr(json_string_value(json_array_get(json_object_get(c, "warnings"), 0)), "p1-k1"));
    /* turn 1 without p1-k1 (d = 1): 6/5 over 5 personas */
    CHECK_NEAR(at(c, "comparisons.0.turns.0.diff"), 6.0 / 5, 1e-9);
    json_decref(c);
    free(args);
    free(log);
    /* Other turn counts: refused. */
    char *b4 = write_run(dir, "b4", results("B4", 1, -1, 4));
    args = xasprintf("report %s %s", a, b4);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(strstr(log, "run \"B4\" has 4 turns and run \"A\" 3"), "%s", log);
    free(args);
    free(log);
    free(b4);
    free(js);
    free(a);
    free(b);
    free(dir);
}

/* results.json from before personas[]: the table and a note; --json is an
 * error naming the run. */
static void test_runs_without_personas(void) {
    char *dir = test_tmpdir();
    json_t *ra = results("A", 0, -1, 3), *rb = results("B", 1, -1, 3);
    json_object_del(rb, "personas");
    char *a = write_run(dir, "a", ra), *b = write_run(dir, "b", rb);
    char *args = xasprintf("report %s %s", a, b), *log = NULL;
    int rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK(strstr(log, "| run | AL(1)"));
    CHECK_MSG(strstr(log, "Paired differences: not computed"), "%s", log);
    free(args);
    free(log);
    args = xasprintf("report %s %s --json %s/c.json", a, b, dir);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_EQ_INT(rc, 1);
    CHECK_MSG(strstr(log, "run \"B\": its results.json has no per-persona scores"), "%s", log);
    free(args);
    free(log);
    args = xasprintf("report %s --json %s/c.json", a, dir);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_EQ_INT(rc, 2); /* a usage error */
    CHECK_MSG(strstr(log, "needs at least two runs"), "%s", log);
    free(args);
    free(log);
    free(a);
    free(b);
    free(dir);
}

/* The library refuses a persona whose profile differs between runs. */
static void test_profile_mismatch(void) {
    json_t *ra = results("A", 0, -1, 3), *rb = results("B", 1, -1, 3);
    json_object_set_new(json_array_get(json_object_get(rb, "personas"), 2), "profile_index", json_integer(2));
    ReportSeries s[2] = {{"A", ra}, {"B", rb}};
    CompareOptions o = compare_options_default();
    Err e = {0};
    json_t *c = compare_runs(s, 2, &o, &e);
    CHECK(!c);
    CHECK_MSG(strstr(e.msg, "persona p1-k0 has profile_index 1 in run \"A\" and 2 in run \"B\""), "%s", e.msg);
    json_decref(ra);
    json_decref(rb);
}

int main(void) {
    RUN(test_compare_by_hand_and_json_fields);
    RUN(test_refuses_different_personas);
    RUN(test_runs_without_personas);
    RUN(test_profile_mismatch);
    return test_summary();
}
