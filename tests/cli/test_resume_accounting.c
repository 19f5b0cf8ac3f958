/* Resume accounting of aloe bench: results.json counts every invocation of
 * a resumed run (invocations[] and totals), not the last one only.
 *
 * A run whose judge endpoint fails every 5th request (HTTP 400, not retried)
 * stops with an error again and again; each rerun resumes. Every request the
 * server answered is in the request cache, so the sum over invocations of
 * the requests the endpoints answered (requests - cache_hits) and of their
 * tokens equals those of an uninterrupted run on a server that never fails,
 * exactly: the requests are seeded, hence identical. And a kill -9 leaves its
 * invocation counted as "killed". */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "aloe/invocations.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

/* the environment every aloe run here gets */
#define ALOE_ENV "OPENAI_API_KEY=sk-test"

#define JUDGE_REPLIES "\"replies\": [\"Good.\\nScore: {score}\", \"I cannot say.\", \"**Score:** {score}/5\"]"
static const char *script_ok = "{\"models\": {"
                               "\"user-sim\": {\"reply\": \"turn {turns} from a user ({hash})\"},"
                               "\"judge\": {" JUDGE_REPLIES ", \"pick\": \"hash\"}"
                               "}, \"*\": {\"reply\": \"echo: {last_user}\"}}";
static const char *script_flaky = "{\"models\": {"
                                  "\"user-sim\": {\"reply\": \"turn {turns} from a user ({hash})\"},"
                                  "\"judge\": {" JUDGE_REPLIES ", \"pick\": \"hash\","
                                  "            \"every\": {\"n\": 5, \"fault\": {\"status\": 400}}}"
                                  "}, \"*\": {\"reply\": \"echo: {last_user}\"}}";

typedef struct {
    char *dir, *profiles, *personalities;
} Data;

static void data_init(Data *d) {
    d->dir = test_tmpdir();
    d->profiles = path_join(d->dir, "profiles.jsonl");
    d->personalities = path_join(d->dir, "personalities.jsonl");
    test_put_text(d->profiles, "\"a nurse\"\n\"a runner\"\n\"a chef\"\n\"a pilot\"\n");
    test_put_text(d->personalities, "\"curious\"\n\"blunt\"\n");
}

static void data_free(Data *d) {
    free(d->dir);
    free(d->profiles);
    free(d->personalities);
}

static char *bench_args(const Data *d, const FakeServer *fs, const char *out) {
    return xasprintf("bench --model m --user-model user-sim --judge-model judge --profiles %s --personalities %s "
                     "--base-url %s --out %s --quiet --timeout 20 --personalities-per-profile 2 --turns 3 -j 2 "
                     "--seed 3",
                     d->profiles, d->personalities, fs->url, out);
}

static long field(const json_t *o, const char *role, const char *name) {
    return (long)json_integer_value(json_object_get(json_object_get(o, role), name));
}

static const char *const roles[] = {"model", "user", "judge"};

static void test_totals_over_failed_invocations_equal_an_uninterrupted_run_body(FakeServer *ok, FakeServer *flaky) {
    Data d;
    data_init(&d);
    char *ref_out = path_join(d.dir, "ref"), *out = path_join(d.dir, "run");
    char *ref_args = bench_args(&d, ok, ref_out), *args = bench_args(&d, flaky, out);
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, ref_args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    json_t *ref = aloe_sh_json(ref_out, "results.json");
    json_t *ref_req = json_object_get(json_object_get(ref, "session"), "requests");
    /* 8 conversations x 3 turns: 24 judged turns, some asked twice or more. */
    CHECK_EQ_INT(field(ref_req, "user", "requests"), 24);
    CHECK_EQ_INT(field(ref_req, "judge", "cache_hits"), 0);
    int runs = 0, failures = 0;
    for (rc = 1; rc != 0 && runs < 30; runs++) {
        rc = aloe_sh_run(ALOE_ENV, args, &log);
        if (rc) {
            failures++;
            CHECK_MSG(rc == 1 && strstr(log, "judge") && strstr(log, "Run the same command again to resume"),
                      "exit %d: %s", rc, log);
        }
        free(log);
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(failures >= 2, "only %d failed invocations", failures); /* >= 5 judge requests, every 5th fails */
    json_t *res = aloe_sh_json(out, "results.json");
    json_t *inv = json_object_get(res, "invocations"), *tot = json_object_get(res, "totals");
    CHECK_EQ_INT(json_array_size(inv), runs);
    CHECK_EQ_INT(json_integer_value(json_object_get(tot, "invocations")), runs);
    /* Every conversation was finished by exactly one invocation. */
    CHECK_EQ_INT(json_integer_value(json_object_get(tot, "conversations")), 8);
    double wall = 0;
    for (int i = 0; i < runs; i++) {
        json_t *en = json_array_get(inv, (size_t)i);
        const char *exit = json_string_value(json_object_get(en, "exit"));
        if (i < runs - 1) CHECK_MSG(exit && !strncmp(exit, "error: judge", 12), "invocation %d: %s", i, exit);
        else CHECK_EQ_STR(exit, "complete");
        CHECK(json_is_string(json_object_get(en, "started")));
        wall += json_number_value(json_object_get(en, "wall_s"));
    }
    /* The sum is the sum (a float sum of the same numbers in the same order). */
    CHECK_NEAR(json_number_value(json_object_get(tot, "wall_s")), wall, 1e-9 * (1 + wall));
    /* The last invocation is the session, as before. */
    CHECK(json_equal(json_object_get(json_object_get(res, "session"), "requests"),
                     json_object_get(json_array_get(inv, (size_t)runs - 1), "requests")));
    json_t *treq = json_object_get(tot, "requests");
    for (int r = 0; r < 3; r++) {
        const char *role = roles[r];
        /* Answered by the endpoint, over all invocations = the uninterrupted run's. */
        CHECK_MSG(field(treq, role, "requests") - field(treq, role, "cache_hits") == field(ref_req, role, "requests"),
                  "%s: %ld - %ld != %ld", role, field(treq, role, "requests"), field(treq, role, "cache_hits"),
                  field(ref_req, role, "requests"));
        CHECK_EQ_INT(field(treq, role, "prompt_tokens"), field(ref_req, role, "prompt_tokens"));
        CHECK_EQ_INT(field(treq, role, "completion_tokens"), field(ref_req, role, "completion_tokens"));
        /* What reached the server: answered, plus the failures. */
        CHECK_EQ_INT(fake_log_count(flaky, r == 0 ? "m" : r == 1 ? "user-sim" : "judge"),
                     field(treq, role, "requests") - field(treq, role, "cache_hits") + field(treq, role, "errors"));
    }
    /* Each failed invocation stopped on a judge error; with -j 2 the other
     * conversation's judge request, in flight meanwhile, may fail as well
     * (every 5th does), so an invocation counts 1 or 2 of them, the last
     * (complete) none, and the totals their sum: which of them came in one
     * invocation is up to the scheduling. */
    long errs = 0;
    for (int i = 0; i < runs; i++) {
        long e = field(json_object_get(json_array_get(inv, (size_t)i), "requests"), "judge", "errors");
        CHECK_MSG(i < runs - 1 ? e >= 1 && e <= 2 : e == 0, "invocation %d of %d: %ld judge errors", i, runs, e);
        errs += e;
    }
    CHECK_EQ_INT(field(treq, "judge", "errors"), errs);
    CHECK_EQ_INT(field(treq, "model", "errors"), 0);
    /* The measurements equal the uninterrupted run's. */
    const char *keys[] = {"turns", "avg", "ir", "judge", "conversations"};
    for (int i = 0; i < 5; i++)
        CHECK_MSG(json_equal(json_object_get(ref, keys[i]), json_object_get(res, keys[i])), "%s differs", keys[i]);
    /* usage counts the finished conversations' requests (answered from the
     * cache or not: its "cached" differs) */
    for (int r = 0; r < 3; r++) {
        json_t *ua = json_object_get(json_object_get(ref, "usage"), roles[r]);
        json_t *ub = json_object_get(json_object_get(res, "usage"), roles[r]);
        const char *f[] = {"requests", "prompt_tokens", "completion_tokens"};
        for (int k = 0; k < 3; k++)
            CHECK_EQ_INT(json_integer_value(json_object_get(ua, f[k])), json_integer_value(json_object_get(ub, f[k])));
    }
    /* report.md says what all invocations cost. */
    char *md = path_join(out, "report.md"), *text = NULL;
    size_t n;
    Err e;
    CHECK_OK(file_read_all(md, &text, &n, &e), &e);
    char *want = xasprintf("Over %d invocations:", runs);
    CHECK_MSG(text && strstr(text, want), "%s", text);
    free(want);
    free(text);
    free(md);
    /* A rerun of the finished run adds an invocation that asked nothing. */
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    json_t *again = aloe_sh_json(out, "results.json");
    CHECK_EQ_INT(json_array_size(json_object_get(again, "invocations")), runs + 1);
    json_t *areq = json_object_get(json_object_get(again, "totals"), "requests");
    for (int r = 0; r < 3; r++)
        CHECK_EQ_INT(field(areq, roles[r], "requests"), field(treq, roles[r], "requests"));
    json_decref(again);
    json_decref(res);
    json_decref(ref);
    free(ref_args);
    free(args);
    free(ref_out);
    free(out);
    data_free(&d);
}

static void test_totals_over_failed_invocations_equal_an_uninterrupted_run(void) {
    FakeServer ok, flaky;
    NEED_STARTED(fake_start(&ok, script_ok, 0) == 0, "fake_openai");
    if (fake_start(&flaky, script_flaky, 0)) {
        fake_stop(&ok);
        NEED_STARTED(0, "fake_openai (flaky)");
    }
    test_totals_over_failed_invocations_equal_an_uninterrupted_run_body(&ok, &flaky);
    fake_stop(&ok);
    fake_stop(&flaky);
}

static void test_killed_invocation_is_counted_body(FakeServer *fs) {
    Data d;
    data_init(&d);
    char *out = path_join(d.dir, "run");
    char *args = bench_args(&d, fs, out);
    char *logp = path_join(d.dir, "killed.log");
    pid_t pid = aloe_sh_spawn(ALOE_ENV, args, logp);
    CHECK(pid > 0);
    for (int i = 0; i < 5000 && aloe_sh_lines(out, "dialogues.jsonl") < 2; i++) usleep(2000);
    kill(pid, SIGKILL);
    CHECK_EQ_INT(aloe_sh_wait(pid), 128 + SIGKILL);
    long at_kill = aloe_sh_lines(out, "dialogues.jsonl");
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    json_t *res = aloe_sh_json(out, "results.json");
    json_t *inv = json_object_get(res, "invocations");
    CHECK_EQ_INT(json_array_size(inv), 2);
    json_t *first = json_array_get(inv, 0), *second = json_array_get(inv, 1);
    CHECK_EQ_STR(json_string_value(json_object_get(first, "exit")), "killed");
    CHECK_EQ_STR(json_string_value(json_object_get(second, "exit")), "complete");
    /* The killed one saved its count after each conversation; it may have
     * died between a conversation's journal line and that save, on each of
     * its 2 workers (-j 2): one worker's save under way, the other's
     * conversation journaled and its save waiting for the first. */
    long killed_conv = (long)json_integer_value(json_object_get(first, "conversations"));
    CHECK_MSG(killed_conv >= at_kill - 2 && killed_conv <= at_kill, "%ld saved, %ld in the journal", killed_conv,
              at_kill);
    CHECK_EQ_INT(json_integer_value(json_object_get(second, "conversations")), 8 - at_kill);
    CHECK(field(json_object_get(first, "requests"), "user", "requests") >= 3 * killed_conv);
    json_decref(res);
    free(logp);
    free(args);
    free(out);
    data_free(&d);
}

static void test_killed_invocation_is_counted(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script_ok, 20) == 0, "fake_openai");
    test_killed_invocation_is_counted_body(&fs);
    fake_stop(&fs);
}

/* The file's checks: resume state is input like any other. */
static void test_invocations_file_checked(void) {
    static const char *const cases[][2] = {
        {"{}", "inv.json: expected a JSON array of invocations, got an object"},
        {"[1]", "inv.json: [0]: expected an object, got an integer"},
        {"[{\"started\": \"x\", \"wall_s\": -1, \"exit\": \"complete\", \"conversations\": 0, \"requests\": {}}]",
         "inv.json: [0].wall_s: expected a non-negative number, got an integer"},
        {"[{\"started\": \"x\", \"wall_s\": 1, \"exit\": \"complete\", \"conversations\": 0, \"requests\": "
         "{\"judge\": {\"requests\": \"3\"}}}]",
         "inv.json: [0].requests.judge.requests: expected a non-negative integer, got a string"},
        {"[{\"started\": \"x\", \"wall_s\": 1, \"exit\": \"complete\", \"requests\": {}}]",
         "inv.json: [0].conversations: expected a non-negative integer, it is missing"},
        {"[", "inv.json:1:1:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Err e = {0};
        json_t *l = invocations_parse("inv.json", cases[i][0], strlen(cases[i][0]), &e);
        CHECK_MSG(!l && strstr(e.msg, cases[i][1]), "case %zu: %s", i, e.msg);
        json_decref(l);
    }
    const char *two = "[{\"started\": \"a\", \"wall_s\": 1.5, \"exit\": \"running\", \"conversations\": 2,"
                      "  \"requests\": {\"judge\": {\"requests\": 3, \"errors\": 1}}},"
                      " {\"started\": \"b\", \"wall_s\": 2, \"exit\": \"complete\", \"conversations\": 9223372036854775807,"
                      "  \"requests\": {\"judge\": {\"requests\": 4}, \"user\": {\"requests\": 1}}}]";
    Err e = {0};
    json_t *l = invocations_parse("inv.json", two, strlen(two), &e);
    CHECK_MSG(l, "%s", e.msg);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 0), "exit")), "killed");
    json_t *t = invocations_totals(l);
    CHECK_EQ_INT(json_integer_value(json_object_get(t, "invocations")), 2);
    CHECK_NEAR(json_number_value(json_object_get(t, "wall_s")), 3.5, 0);
    CHECK(json_integer_value(json_object_get(t, "conversations")) == INT64_MAX); /* saturated */
    CHECK_EQ_INT(field(json_object_get(t, "requests"), "judge", "requests"), 7);
    CHECK_EQ_INT(field(json_object_get(t, "requests"), "judge", "errors"), 1);
    CHECK_EQ_INT(field(json_object_get(t, "requests"), "user", "requests"), 1);
    json_decref(t);
    json_decref(l);
}

int main(void) {
    RUN(test_invocations_file_checked);
    RUN(test_totals_over_failed_invocations_equal_an_uninterrupted_run);
    RUN(test_killed_invocation_is_counted);
    return test_summary();
}
