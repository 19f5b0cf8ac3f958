/* aloe view and aloe report --html end to end: real run directories and a
 * real trees file, made by aloe bench and aloe dialogues against the fake
 * OpenAI-compatible server, turned into pages whose data block is read back
 * and compared with the files it came from. Bad input: the error names the
 * file (and line and field). */
#include <stdlib.h>

#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

/* The evaluated models answer with markup a page must show as text; the
 * judge's answers, chosen by a hash of the messages, need a re-ask now and
 * then. */
static const char *SCRIPT =
    "{\"models\": {"
    "\"user-sim\": {\"reply\": \"turn {turns} from a user ({hash})\"},"
    "\"m\": {\"reply\": \"</script><script>window.__pwned=1</script> <img src=x onerror=\\\"window.__pwned=2\\\"> "
    "\\u2028 reply {hash}\"},"
    "\"m2\": {\"reply\": \"a plainer reply {hash}\"},"
    "\"judge\": {\"replies\": [\"Good.\\nScore: {score}\", \"I cannot say.\", \"**Score:** {score}/5\"], "
    "\"pick\": \"hash\"},"
    "\"inducer\": {\"reply\": \"Profile: guess {hash}\\nPersonality: calm\"},"
    "\"hinted\": {\"reply\": \"hinted <b>answer</b> {hash}\"},"
    "\"plain\": {\"reply\": \"plain answer {hash}\"},"
    "\"pair-judge\": {\"reply\": \"Thinking.\\nPreferred: {ab}\"}"
    "}}";

#define ENV "OPENAI_API_KEY=sk-test"

static FakeServer fs;
static int up;
static char *dir, *prof, *pers;

static int starts(const char *s, const char *prefix) { return s && !strncmp(s, prefix, strlen(prefix)); }

static void write_inputs(void) {
    dir = test_tmpdir();
    prof = path_join(dir, "profiles.jsonl");
    pers = path_join(dir, "personalities.jsonl");
    test_put_text(prof, "\"A nurse in Leeds who swims.\"\n\"A student in Lagos.\"\n\"A baker in Lyon.\"\n");
    test_put_text(pers, "\"Shy.\"\n\"Loud.\"\n");
}

/* aloe bench of `model` into dir/name; returns the run directory. */
static char *bench_k(const char *model, const char *name, int per_profile) {
    char *out = path_join(dir, name), *log;
    char *args = xasprintf("bench --model %s --user-model user-sim --judge-model judge --profiles %s --personalities "
                           "%s --personalities-per-profile %d --turns 3 -j 4 --base-url %s --out %s --quiet "
                           "--timeout 20",
                           model, prof, pers, per_profile, fs.url, out);
    int rc = aloe_sh_run(ENV, args, &log);
    if (rc) test_fail(__FILE__, __LINE__, "bench exit %d: %s", rc, log);
    free(log);
    free(args);
    return out;
}

static char *bench(const char *model, const char *name) { return bench_k(model, name, 2); }

/* The data block of a page file, parsed (NULL when absent). */
static json_t *page_data(const char *path) {
    char *page = test_read_text(path);
    static const char open[] = "<script type=\"application/json\" id=\"aloe-data\">";
    char *s = strstr(page, open), *end = s ? strstr(s, "</script>") : NULL;
    json_t *d = end ? json_loadb(s + sizeof open - 1, (size_t)(end - s - (sizeof open - 1)), 0, NULL) : NULL;
    free(page);
    return d;
}

static void test_one_run(void) {
    NEED_STARTED(up, "fake_openai");
    char *run = bench("m", "run-m"), *log;
    if (test_stopped()) return;
    char *args = xasprintf("view %s", run);
    int rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    char *html = path_join(run, "view.html");
    CHECK_MSG(strstr(log, html), "%s", log);
    char *page = test_read_text(html);
    /* the reply's markup is in the page only escaped */
    CHECK(!strstr(page, "<script>window"));
    CHECK(!strstr(page, "<img src=x"));
    CHECK(!strstr(page, "\xe2\x80\xa8"));
    free(page);
    json_t *d = page_data(html), *r = aloe_sh_json(run, "results.json");
    CHECK(d && r);
    CHECK_EQ_STR(json_string_value(json_object_get(d, "kind")), "runs");
    json_t *ps = json_object_get(d, "personas"), *rps = json_object_get(r, "personas");
    CHECK_EQ_INT(json_array_size(ps), 6);
    CHECK_EQ_INT(json_array_size(rps), 6);
    json_t *run0 = json_array_get(json_object_get(d, "runs"), 0);
    CHECK(json_equal(json_object_get(run0, "intervals"), json_object_get(r, "intervals")));
    CHECK(json_equal(json_object_get(run0, "judge"), json_object_get(r, "judge")));
    /* every persona: results.json's scores, the journal's conversation */
    int reasks = 0;
    for (size_t i = 0; i < 6; i++) {
        json_t *p = json_array_get(ps, i), *rp = json_array_get(rps, i);
        CHECK_EQ_STR(json_string_value(json_object_get(p, "id")), json_string_value(json_object_get(rp, "id")));
        json_t *pr = json_array_get(json_object_get(p, "runs"), 0);
        CHECK(json_equal(json_object_get(pr, "scores"), json_object_get(rp, "scores")));
        json_t *turns = json_object_get(pr, "turns");
        CHECK_EQ_INT(json_array_size(turns), 3);
        CHECK(starts(json_string_value(json_object_get(p, "profile")), "A "));
        for (size_t k = 0; k < 3; k++) {
            json_t *t = json_array_get(turns, k);
            const char *reply = json_string_value(json_object_get(t, "assistant"));
            CHECK(starts(reply, "</script><script>window.__pwned=1</script> <img src=x onerror=\"window.__pwned=2\">"));
            CHECK(strstr(reply, "\xe2\x80\xa8 reply "));
            long attempts = (long)json_integer_value(json_object_get(t, "attempts"));
            CHECK_EQ_INT(json_array_size(json_object_get(t, "judge")), attempts);
            reasks += attempts > 1;
        }
    }
    CHECK(reasks > 0); /* the script makes some */
    json_decref(d);
    json_decref(r);
    free(html);
    free(args);
    free(log);
    free(run);
}

static void test_two_runs_and_report_html(void) {
    NEED_STARTED(up, "fake_openai");
    char *a = bench("m", "cmp-a"), *b = bench("m2", "cmp-b"), *log;
    if (test_stopped()) return;
    char *html = path_join(dir, "cmp.html"), *rhtml = path_join(dir, "report.html"), *cj = path_join(dir, "cmp.json");
    char *args = xasprintf("view %s %s --out %s", a, b, html);
    int rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    json_t *d = page_data(html);
    CHECK(d);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "runs")), 2);
    json_t *cmp = json_object_get(d, "comparison");
    CHECK_EQ_INT(json_array_size(json_object_get(json_array_get(json_object_get(cmp, "comparisons"), 0), "turns")), 3);
    json_t *p0 = json_array_get(json_object_get(d, "personas"), 0);
    json_t *ta = json_array_get(json_object_get(json_array_get(json_object_get(p0, "runs"), 0), "turns"), 0);
    json_t *tb = json_array_get(json_object_get(json_array_get(json_object_get(p0, "runs"), 1), "turns"), 0);
    CHECK(starts(json_string_value(json_object_get(tb, "assistant")), "a plainer reply"));
    CHECK(starts(json_string_value(json_object_get(ta, "assistant")), "</script>"));
    /* aloe report --html: the same page, with report's own comparison */
    free(args);
    free(log);
    args = xasprintf("report %s %s --json %s --html %s", a, b, cj, rhtml);
    rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    json_t *rd = page_data(rhtml), *want = json_load_file(cj, 0, NULL);
    CHECK(rd && want);
    CHECK(json_equal(json_object_get(rd, "comparison"), cmp));
    /* --json writes 10 significant digits; the page keeps every bit */
    json_t *wa = json_object_get(json_array_get(json_object_get(want, "comparisons"), 0), "avg");
    json_t *pa = json_object_get(json_array_get(json_object_get(cmp, "comparisons"), 0), "avg");
    CHECK_NEAR(json_number_value(json_object_get(pa, "diff")), json_number_value(json_object_get(wa, "diff")), 1e-9);
    CHECK_EQ_INT(json_integer_value(json_object_get(want, "personas")), 6);
    CHECK(json_equal(json_object_get(rd, "personas"), json_object_get(d, "personas")));
    json_decref(rd);
    json_decref(want);
    /* several runs need --out */
    free(args);
    free(log);
    args = xasprintf("view %s %s", a, b);
    rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "--out FILE.html is needed for several runs"), "exit %d: %s", rc, log);
    json_decref(d);
    free(args);
    free(log);
    free(cj);
    free(rhtml);
    free(html);
    free(a);
    free(b);
}

/* Runs over different personas: the page is still written, the reason
 * there is no comparison in it and on stderr; --common pairs them. */
static void test_runs_that_differ(void) {
    NEED_STARTED(up, "fake_openai");
    char *a = bench_k("m", "differ-a", 2), *b = bench_k("m2", "differ-b", 1), *log;
    if (test_stopped()) return;
    char *html = path_join(dir, "differ.html");
    char *args = xasprintf("view %s %s --out %s", a, b, html);
    int rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0 && strstr(log, "warning: paired differences not computed: the runs' personas differ"),
              "exit %d: %s", rc, log);
    json_t *d = page_data(html);
    CHECK(d && json_is_null(json_object_get(d, "comparison")));
    CHECK(strstr(json_string_value(json_object_get(d, "comparison_error")), "lacks 3 of run"));
    /* the persona only the first run has: null in the second */
    json_t *p = json_array_get(json_object_get(d, "personas"), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(p, "id")), "p0-k1");
    CHECK(json_is_null(json_array_get(json_object_get(p, "runs"), 1)));
    json_decref(d);
    free(args);
    free(log);
    args = xasprintf("view %s %s --common --out %s", a, b, html);
    rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    d = page_data(html);
    json_t *cmp = json_object_get(d, "comparison");
    CHECK_EQ_INT(json_integer_value(json_object_get(cmp, "personas")), 3);
    CHECK_EQ_INT(json_array_size(json_object_get(cmp, "warnings")), 1);
    json_decref(d);
    free(args);
    free(log);
    free(html);
    free(a);
    free(b);
}

static void test_trees_file(void) {
    NEED_STARTED(up, "fake_openai");
    char *trees = path_join(dir, "trees.jsonl"), *log;
    char *args = xasprintf("dialogues --profiles %s --personalities %s --turns 3 --num 6 --seed 42 -j 4 "
                           "--user-model user-sim --inducer-model inducer --hinted-model hinted --plain-model plain "
                           "--judge-model pair-judge --base-url %s --retries 1 --timeout 20 -q --out %s",
                           prof, pers, fs.url, trees);
    int rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(args);
    free(log);
    args = xasprintf("view %s", trees);
    rc = aloe_sh_run(ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    char *html = path_join(dir, "trees.html");
    json_t *d = page_data(html), *summary = aloe_sh_json(dir, "trees.summary.json");
    CHECK(d && summary);
    CHECK_EQ_STR(json_string_value(json_object_get(d, "kind")), "trees");
    json_t *ts = json_object_get(d, "trees");
    CHECK_EQ_INT(json_array_size(ts), 6);
    /* the page's judge counts and disagreements are the run's own */
    json_t *sj = json_object_get(summary, "judges"), *dj = json_object_get(d, "judges");
    static const char *const keys[] = {"turns", "both_verdicts", "agreements", "first_position_wins"};
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(json_integer_value(json_object_get(dj, keys[k])), json_integer_value(json_object_get(sj, keys[k])));
    long dis = 0;
    size_t i;
    json_t *t;
    json_array_foreach(ts, i, t) dis += (long)json_integer_value(json_object_get(t, "disagreements"));
    CHECK_EQ_INT(dis, json_integer_value(json_object_get(sj, "disagreements")));
    json_t *u = json_array_get(json_object_get(json_array_get(ts, 0), "turns"), 0);
    CHECK(starts(json_string_value(json_object_get(u, "inferred_profile")), "guess "));
    CHECK(json_is_string(json_object_get(json_object_get(u, "first"), "verdict")));
    CHECK(json_is_string(json_object_get(u, "chosen")));
    CHECK(json_equal(json_object_get(d, "summary"), summary));
    json_decref(d);
    json_decref(summary);
    free(html);
    free(args);
    free(log);
    free(trees);
}

static void test_bad_input(void) {
    NEED_STARTED(up, "fake_openai");
    char *log;
    int rc = aloe_sh_run(ENV, "view /nonexistent/run", &log);
    CHECK_MSG(rc == 1 && strstr(log, "/nonexistent/run: not found"), "exit %d: %s", rc, log);
    free(log);
    /* a directory without results.json */
    char *empty = path_join(dir, "empty"), *a = xasprintf("view %s", empty), *want = NULL;
    Err e;
    CHECK_OK(file_mkdirs(empty, &e), &e);
    rc = aloe_sh_run(ENV, a, &log);
    want = xasprintf("%s/results.json: not found", empty);
    CHECK_MSG(rc == 1 && strstr(log, want), "exit %d: %s", rc, log);
    free(want);
    free(a);
    free(empty);
    free(log);
    /* a run whose dialogues.jsonl has a damaged line */
    char *run = bench("m", "damaged"), *dlg = path_join(run, "dialogues.jsonl");
    if (test_stopped()) return;
    char *text = test_read_text(dlg), *nl = strchr(text, '\n');
    CHECK(nl);
    char *broken = xasprintf("%.*s\n{\"id\": \"p9-k9\", \"profile\": \"p\", \"personality\": \"q\", \"turns\": "
                             "[{\"user\": \"u\", \"assistant\": \"a\", \"score\": \"high\"}]}\n%s",
                             (int)(nl - text), text, nl + 1);
    test_put_text(dlg, broken);
    char *args = xasprintf("view %s", run);
    rc = aloe_sh_run(ENV, args, &log);
    want = xasprintf("%s:2: turns[0].score: expected an integer from 1 to 5 or null, got a string", dlg);
    CHECK_MSG(rc == 1 && strstr(log, want), "exit %d: %s", rc, log);
    free(want);
    free(log);
    free(args);
    /* a trees file with a line that is not JSON */
    char *trees = path_join(dir, "bad.jsonl");
    test_put_text(trees, "{\"profile\": \"p\", \"personality\": \"q\", \"conversations\": []}\n{\"profile\": oops}\n");
    args = xasprintf("view %s --out %s/bad.html", trees, dir);
    rc = aloe_sh_run(ENV, args, &log);
    want = xasprintf("%s:2", trees);
    CHECK_MSG(rc == 1 && strstr(log, want), "exit %d: %s", rc, log);
    free(want);
    free(log);
    free(args);
    free(trees);
    free(broken);
    free(text);
    free(dlg);
    free(run);
}

int main(void) {
    up = fake_start(&fs, SCRIPT, 0) == 0;
    write_inputs();
    RUN(test_one_run);
    RUN(test_two_runs_and_report_html);
    RUN(test_runs_that_differ);
    RUN(test_trees_file);
    RUN(test_bad_input);
    if (up) fake_stop(&fs);
    free(prof);
    free(pers);
    free(dir);
    return test_summary();
}
