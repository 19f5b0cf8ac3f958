/* aloe bench and aloe report end to end: the built binary against the fake
 * OpenAI-compatible server. Concurrency reached, outputs and their contents,
 * keys kept out of outputs, resume after SIGKILL with no answered request
 * repeated, Ctrl-C, bad inputs and endpoint failures. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

/* the environment every aloe run here gets */
#define ALOE_ENV "OPENAI_API_KEY=sk-test-secret-123"

/* The judge scores by a hash of its messages, and now and then needs
 * reminding; "[noscore]" in a reply makes it never score that turn. */
static const char *script =
    "{\"models\": {"
    "\"user-sim\": {\"reply\": \"turn {turns} from a user ({hash})\"},"
    "\"judge\": {\"replies\": [\"Good.\\nScore: {score}\", \"I cannot say.\", \"**Score:** {score}/5\"],"
    "            \"pick\": \"hash\"},"
    "\"judge-strict\": {\"rules\": [{\"any_contains\": \"turn 2 from\", \"reply\": \"Score: N\"}],"
    "                   \"reply\": \"Score: 4\"},"
    "\"locked\": {\"always\": {\"status\": 401}},"
    "\"bad-request\": {\"always\": {\"status\": 400, \"body\": \"{\\\"error\\\": \\\"context too long: 9999\\\"}\"}}"
    "}, \"*\": {\"reply\": \"echo: {last_user}\"}}";

typedef struct {
    char *dir, *profiles, *personalities;
} Data;

static void data_init(Data *d, int n_profiles, int n_personalities) {
    d->dir = test_tmpdir();
    d->profiles = path_join(d->dir, "profiles.jsonl");
    d->personalities = path_join(d->dir, "personalities.jsonl");
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < n_profiles; i++) sb_printf(&b, "\"profile number %d\"\n", i);
    test_put_text(d->profiles, b.s);
    sb_clear(&b);
    for (int i = 0; i < n_personalities; i++) sb_printf(&b, "\"personality number %d\"\n", i);
    test_put_text(d->personalities, b.s);
    sb_free(&b);
}

static void data_free(Data *d) {
    free(d->dir);
    free(d->profiles);
    free(d->personalities);
}

static char *bench_args(const Data *d, const FakeServer *fs, const char *out, const char *extra) {
    return xasprintf("bench --model m --user-model user-sim --judge-model judge --profiles %s --personalities %s "
                     "--base-url %s --out %s --quiet --timeout 20 %s",
                     d->profiles, d->personalities, fs->url, out, extra);
}

static int file_contains(const char *dir, const char *name, const char *needle) {
    char *p = path_join(dir, name), *s = NULL;
    size_t n;
    Err e;
    int found = !file_read_all(p, &s, &n, &e) && memmem(s, n, needle, strlen(needle));
    free(s);
    free(p);
    return found;
}

static void test_full_run_concurrency_and_outputs_body(FakeServer *fsp) {
    FakeServer fs = *fsp;
    Data d;
    data_init(&d, 8, 3);
    char *out = path_join(d.dir, "run");
    /* The judge's URL carries credentials, which no output may show. */
    char *extra = xasprintf("--personalities-per-profile 2 --turns 3 -j 8 --seed 5 "
                            "--judge-base-url http://bob:pw-secret@127.0.0.1:%d/v1",
                            fs.port);
    char *args = bench_args(&d, &fs, out, extra);
    free(extra);
    /* The server holds the first 8 requests until all 8 have arrived, so the
     * peak is reached by events, whatever the machine's load. */
    json_decref(fake_call(&fs, "/gate/8", 1));
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK(strstr(log, "AL(k):"));
    /* 16 conversations, -j 8: 8 requests in flight at once, and no more. */
    CHECK_MSG(fake_stat(&fs, "peak") == 8, "peak %ld", fake_stat(&fs, "peak"));
    CHECK_EQ_INT(aloe_sh_lines(out, "dialogues.jsonl"), 16);
    json_t *r = aloe_sh_json(out, "results.json");
    CHECK(r);
    CHECK(json_is_true(json_object_get(r, "complete")));
    json_t *turns = json_object_get(r, "turns");
    CHECK_EQ_INT(json_array_size(turns), 3);
    json_t *judge = json_object_get(r, "judge");
    long invalid = (long)json_integer_value(json_object_get(judge, "invalid"));
    long n_sum = 0;
    for (int k = 0; k < 3; k++) n_sum += (long)json_integer_value(json_object_get(json_array_get(turns, k), "n"));
    CHECK_EQ_INT(n_sum + invalid, 48);
    /* Every judge request reached the server, and only those. */
    long judge_requests = (long)json_integer_value(
        json_object_get(json_object_get(json_object_get(r, "usage"), "judge"), "requests"));
    CHECK_EQ_INT(fake_log_count(&fs, "judge"), judge_requests);
    CHECK_EQ_INT(fake_log_count(&fs, "user-sim"), 48);
    CHECK(json_integer_value(json_object_get(judge, "retried")) > 0); /* the script makes some */
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(r, "models"), "judge")), "judge");
    CHECK(json_object_get(json_object_get(r, "prompts"), "judge_score"));
    /* The key went to the server but into no output. */
    json_t *last = fake_log_last(&fs, "m");
    CHECK_EQ_STR(json_string_value(json_object_get(last, "authorization")), "Bearer sk-test-secret-123");
    json_decref(last);
    const char *files[] = {"results.json", "dialogues.jsonl", "report.md", "al.svg", "run.json", "requests.sqlite"};
    for (int i = 0; i < 6; i++) {
        CHECK_MSG(!file_contains(out, files[i], "sk-test-secret"), "key in %s", files[i]);
        CHECK_MSG(!file_contains(out, files[i], "pw-secret"), "URL password in %s", files[i]);
    }
    CHECK(file_contains(out, "results.json", "\"http://***@127.0.0.1:"));
    CHECK(file_contains(out, "al.svg", "</svg>"));
    CHECK(file_contains(out, "report.md", "| 3 |"));
    /* The seeds went out with the requests. */
    CHECK(strstr(log, "results:"));
    /* A rerun finds everything done and asks nothing. */
    long before = fake_log_count(&fs, NULL);
    free(log);
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK_EQ_INT(fake_log_count(&fs, NULL), before);
    json_t *r2 = aloe_sh_json(out, "results.json");
    CHECK(json_equal(json_object_get(r, "turns"), json_object_get(r2, "turns")));
    json_decref(r2);
    /* aloe report over the run twice. */
    char *svg = path_join(d.dir, "cmp.svg");
    char *rargs = xasprintf("report %s %s --svg %s", out, out, svg);
    free(log);
    rc = aloe_sh_run(ALOE_ENV, rargs, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK(strstr(log, "| run | AL(1) | AL(2) | AL(3) | AVG | IR | N-IR | R² | invalid |"));
    CHECK(strstr(log, "| m (run) |"));
    CHECK(file_exists(svg));
    free(rargs);
    free(svg);
    json_decref(r);
    free(log);
    free(args);
    free(out);
    data_free(&d);
}

/* The server is stopped whatever the body's checks do: a server left running
 * would hold the test runner's output pipe open. */
static void test_full_run_concurrency_and_outputs(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 30) == 0, "fake_openai");
    test_full_run_concurrency_and_outputs_body(&fs);
    fake_stop(&fs);
}

static void test_invalid_judge_counted_never_scored_body(FakeServer *fsp) {
    FakeServer fs = *fsp;
    Data d;
    data_init(&d, 2, 2);
    char *out = path_join(d.dir, "run");
    char *base = bench_args(&d, &fs, out, "--personalities-per-profile 2 --turns 3 -j 2");
    char *args = xasprintf("%s --judge-model judge-strict", base); /* the last flag wins */
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    json_t *r = aloe_sh_json(out, "results.json");
    json_t *t2 = json_array_get(json_object_get(r, "turns"), 1);
    CHECK(json_is_null(json_object_get(t2, "al")));
    CHECK_EQ_INT(json_integer_value(json_object_get(t2, "n")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(t2, "invalid")), 4);
    CHECK_NEAR(json_real_value(json_object_get(json_array_get(json_object_get(r, "turns"), 0), "al")), 4, 0);
    json_t *judge = json_object_get(r, "judge");
    CHECK_EQ_INT(json_integer_value(json_object_get(judge, "invalid")), 4);
    CHECK_EQ_INT(json_integer_value(json_object_get(judge, "retried")), 4);
    CHECK_EQ_INT(json_integer_value(json_object_get(judge, "replies_without_score")), 12);
    /* 4 personas x (2 turns x 1 + 1 turn x 3) */
    CHECK_EQ_INT(fake_log_count(&fs, "judge-strict"), 20);
    /* The reminder went with the retries. */
    json_t *lastj = fake_log_last(&fs, "judge-strict");
    json_t *msgs = json_object_get(json_object_get(lastj, "body"), "messages");
    CHECK(json_array_size(msgs) == 1 || json_array_size(msgs) == 5);
    json_decref(lastj);
    CHECK(file_contains(out, "report.md", "4 left without a valid score"));
    json_decref(r);
    free(log);
    free(args);
    free(base);
    free(out);
    data_free(&d);
}

/* The server is stopped whatever the body's checks do: a server left running
 * would hold the test runner's output pipe open. */
static void test_invalid_judge_counted_never_scored(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    test_invalid_judge_counted_never_scored_body(&fs);
    fake_stop(&fs);
}

/* Every request body of the log, canonical, as a sorted JSON array. */
static json_t *bodies(FakeServer *fs) {
    json_t *all = fake_log(fs), *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        char *s = json_dumps(json_object_get(r, "body"), JSON_SORT_KEYS | JSON_COMPACT);
        json_array_append_new(out, json_string(s));
        free(s);
    }
    json_decref(all);
    return out;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Distinct strings of a JSON array of strings. */
static long distinct(json_t *arr, char ***sorted_out) {
    size_t n = json_array_size(arr);
    char **v = xmalloc((n + 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (char *)json_string_value(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp_str);
    long d = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(v[i], v[i - 1])) v[d++] = v[i];
    *sorted_out = v;
    return d;
}

static void test_resume_after_sigkill_body(FakeServer *fsp, FakeServer *refp) {
    FakeServer fs = *fsp, ref = *refp;
    Data d;
    data_init(&d, 6, 3);
    const char *extra = "--personalities-per-profile 3 --turns 4 -j 4 --seed 11";
    /* The reference: uninterrupted, on its own server. */
    char *ref_out = path_join(d.dir, "ref");
    char *ref_args = bench_args(&d, &ref, ref_out, extra);
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, ref_args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    /* Killed with SIGKILL once a few conversations are in, then rerun. */
    char *out = path_join(d.dir, "run");
    char *args = bench_args(&d, &fs, out, extra);
    char *logp = path_join(d.dir, "killed.log");
    pid_t pid = aloe_sh_spawn(ALOE_ENV, args, logp);
    CHECK(pid > 0);
    for (int i = 0; i < 30000 && aloe_sh_lines(out, "dialogues.jsonl") < 3; i++) usleep(2000);
    kill(pid, SIGKILL);
    CHECK_EQ_INT(aloe_sh_wait(pid), 128 + SIGKILL);
    long at_kill = aloe_sh_lines(out, "dialogues.jsonl");
    CHECK_MSG(at_kill >= 3 && at_kill < 18, "killed with %ld of 18 done", at_kill);
    long requests_at_kill = fake_log_count(&fs, NULL);
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK(fake_log_count(&fs, NULL) > requests_at_kill);
    CHECK_EQ_INT(aloe_sh_lines(out, "dialogues.jsonl"), 18);
    /* The resumed session got the killed one's answers from the cache. */
    json_t *res = aloe_sh_json(out, "results.json");
    json_t *sess = json_object_get(json_object_get(res, "session"), "requests");
    CHECK(json_integer_value(json_object_get(json_object_get(sess, "user"), "cache_hits")) > 0);
    json_decref(res);
    /* The same numbers as the uninterrupted run. */
    json_t *a = aloe_sh_json(ref_out, "results.json"), *b = aloe_sh_json(out, "results.json");
    CHECK(a && b);
    const char *keys[] = {"turns", "avg", "ir", "r2", "n_ir", "n_r2", "judge", "conversations"};
    for (int i = 0; i < 8; i++)
        CHECK_MSG(json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i])), "%s differs", keys[i]);
    /* The same requests were asked, and none twice except those in flight
     * at the kill (at most one per thread): the cache answered the rest. */
    json_t *ba = bodies(&ref), *bb = bodies(&fs);
    char **va, **vb;
    long da = distinct(ba, &va), db = distinct(bb, &vb);
    CHECK_EQ_INT(da, (long)json_array_size(ba)); /* the reference repeats nothing */
    CHECK_EQ_INT(db, da);
    int same = 1;
    for (long i = 0; i < da && same; i++) same = !strcmp(va[i], vb[i]);
    CHECK_MSG(same, "the resumed run asked other requests than the uninterrupted one");
    long repeated = (long)json_array_size(bb) - db;
    CHECK_MSG(repeated <= 4, "%ld requests repeated", repeated);
    free(va);
    free(vb);
    json_decref(ba);
    json_decref(bb);
    json_decref(a);
    json_decref(b);
    free(log);
    free(logp);
    free(args);
    free(out);
    free(ref_args);
    free(ref_out);
    data_free(&d);
}

static void test_resume_after_sigkill(void) {
    FakeServer fs, ref;
    NEED_STARTED(fake_start(&fs, script, 15) == 0, "fake_openai");
    if (fake_start(&ref, script, 0)) {
        fake_stop(&fs);
        NEED_STARTED(0, "fake_openai (a second one)");
    }
    test_resume_after_sigkill_body(&fs, &ref);
    fake_stop(&fs);
    fake_stop(&ref);
}

static void test_ctrl_c_writes_partial_results_body(FakeServer *fsp) {
    FakeServer fs = *fsp;
    Data d;
    data_init(&d, 6, 2);
    char *out = path_join(d.dir, "run");
    char *args = bench_args(&d, &fs, out, "--personalities-per-profile 2 --turns 4 -j 2");
    char *logp = path_join(d.dir, "int.log");
    pid_t pid = aloe_sh_spawn(ALOE_ENV, args, logp);
    for (int i = 0; i < 30000 && aloe_sh_lines(out, "dialogues.jsonl") < 2; i++) usleep(2000);
    kill(pid, SIGINT);
    int rc = aloe_sh_wait(pid);
    char *log = NULL;
    size_t n;
    Err e;
    file_read_all(logp, &log, &n, &e);
    CHECK_MSG(rc == 130, "exit %d: %s", rc, log);
    CHECK_MSG(strstr(log, "interrupted") && strstr(log, "Run the same command again to resume"), "%s", log);
    CHECK_MSG(!strstr(log, "error: interrupted"), "Ctrl-C is no error: %s", log);
    json_t *r = aloe_sh_json(out, "results.json");
    CHECK(r && json_is_false(json_object_get(r, "complete")));
    long done = (long)json_integer_value(json_object_get(json_object_get(r, "conversations"), "done"));
    CHECK(done >= 2 && done < 12);
    CHECK_EQ_INT(done, aloe_sh_lines(out, "dialogues.jsonl"));
    json_decref(r);
    free(log);
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK_EQ_INT(aloe_sh_lines(out, "dialogues.jsonl"), 12);
    free(log);
    free(logp);
    free(args);
    free(out);
    data_free(&d);
}

/* The server is stopped whatever the body's checks do: a server left running
 * would hold the test runner's output pipe open. */
static void test_ctrl_c_writes_partial_results(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 20) == 0, "fake_openai");
    test_ctrl_c_writes_partial_results_body(&fs);
    fake_stop(&fs);
}

/* Runs aloe with args; checks the exit status and that the output holds all
 * the needles. */
#define EXPECT_FAIL(args, want_rc, ...)                                                     \
    do {                                                                                    \
        char *log_;                                                                         \
        int rc_ = aloe_sh_run(ALOE_ENV, args, &log_);                                                    \
        const char *needles_[] = {__VA_ARGS__, NULL};                                       \
        int ok_ = rc_ == (want_rc);                                                         \
        for (int i_ = 0; ok_ && needles_[i_]; i_++) ok_ = strstr(log_, needles_[i_]) != NULL; \
        if (!ok_) {                                                                         \
            test_fail(__FILE__, __LINE__, "exit %d (want %d): %s", rc_, want_rc, log_);     \
            free(log_);                                                                     \
            return;                                                                         \
        }                                                                                   \
        free(log_);                                                                         \
    } while (0)

static void test_bad_inputs_body(FakeServer *fsp) {
    FakeServer fs = *fsp;
    Data d;
    data_init(&d, 2, 3);
    char *out = path_join(d.dir, "run");
    char *a;
    /* Malformed JSON, non-string values and empty files name file and line. */
    char *bad = path_join(d.dir, "bad.jsonl");
    test_put_text(bad, "\"fine\"\n{\"oops\": \n");
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s", bad,
                  d.personalities, out);
    EXPECT_FAIL(a, 1, "bad.jsonl:2:", "invalid JSON");
    free(a);
    test_put_text(bad, "\"fine\"\n42\n");
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s", d.profiles,
                  bad, out);
    EXPECT_FAIL(a, 1, "bad.jsonl:2: expected a JSON string, got");
    free(a);
    test_put_text(bad, "\n");
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s", bad,
                  d.personalities, out);
    EXPECT_FAIL(a, 1, "bad.jsonl: empty file");
    free(a);
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s",
                  d.profiles, d.personalities, out);
    EXPECT_FAIL(a, 2, "personalities.jsonl", "too few personalities", "needs at least 5, the file has 3");
    free(a);
    EXPECT_FAIL("bench --model m --frobnicate 3", 2, "unknown flag '--frobnicate'");
    EXPECT_FAIL("bench --model m", 2, "is required");
    EXPECT_FAIL("report", 2, "missing argument");
    /* Unreachable endpoint: a port nobody listens on. */
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s/x "
                  "--personalities-per-profile 1 --base-url http://127.0.0.1:9/v1 --quiet --timeout 5",
                  d.profiles, d.personalities, out);
    EXPECT_FAIL(a, 1, "127.0.0.1:9", "Run the same command again to resume");
    free(a);
    /* A 401 stops the run at once, without retries. */
    a = xasprintf("bench --model locked --user-model u --judge-model j --profiles %s --personalities %s --out %s/y "
                  "--personalities-per-profile 2 --base-url %s --quiet -j 1",
                  d.profiles, d.personalities, out, fs.url);
    EXPECT_FAIL(a, 1, "401");
    free(a);
    CHECK_EQ_INT(fake_log_count(&fs, "locked"), 1);
    /* Another HTTP error shows the server's body. */
    a = xasprintf("bench --model m --user-model u --judge-model bad-request --profiles %s --personalities %s "
                  "--out %s/z --personalities-per-profile 1 --base-url %s --quiet -j 1",
                  d.profiles, d.personalities, out, fs.url);
    EXPECT_FAIL(a, 1, "400", "context too long: 9999", "judge");
    free(a);
    /* A key variable that is not set. */
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s/w "
                  "--personalities-per-profile 1 --base-url %s --judge-api-key-env ALOE_NO_SUCH_KEY",
                  d.profiles, d.personalities, out, fs.url);
    EXPECT_FAIL(a, 2, "$ALOE_NO_SUCH_KEY is not set");
    free(a);
    /* Resuming with other settings. */
    a = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s/v "
                  "--personalities-per-profile 1 --turns 1 --base-url %s --quiet",
                  d.profiles, d.personalities, out, fs.url);
    char *log;
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, a, &log), 0);
    free(log);
    /* Without --quiet, progress goes to stderr (plain lines when not a terminal).
     * --prompts: an empty evaluated-model prompt means no system message (the
     * rubric protocol has one by default), and a custom judge prompt is the
     * one sent. */
    char *pf = path_join(d.dir, "prompts.json");
    test_put_text(pf, "{\"evaluated\": \"\", \"judge_score\": \"Rate {reply} for {profile}. Score: N\"}");
    char *a3 = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s --out %s/u "
                         "--personalities-per-profile 1 --turns 1 --base-url %s --prompts %s --protocol rubric",
                         d.profiles, d.personalities, out, fs.url, pf);
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, a3, &log), 0);
    CHECK_MSG(strstr(log, "bench 2/2 100%") && strstr(log, "req/s"), "%s", log);
    json_t *lm = fake_log_last(&fs, "m"), *lj = fake_log_last(&fs, "j");
    json_t *m0 = json_array_get(json_object_get(json_object_get(lm, "body"), "messages"), 0);
    json_t *j0 = json_array_get(json_object_get(json_object_get(lj, "body"), "messages"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(m0, "role")), "user");
    CHECK(!strncmp(json_string_value(json_object_get(j0, "content")), "Rate echo: ", 11));
    json_decref(lm);
    json_decref(lj);
    free(pf);
    free(log);
    free(a3);
    char *a2 = xasprintf("%s --turns 2 --seed 3", a);
    EXPECT_FAIL(a2, 2, "other settings", "turns: was 1, now 2", "seed: was 0, now 3");
    free(a2);
    free(a);
    free(bad);
    free(out);
    data_free(&d);
}

/* The server is stopped whatever the body's checks do: a server left running
 * would hold the test runner's output pipe open. */
static void test_bad_inputs(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    test_bad_inputs_body(&fs);
    fake_stop(&fs);
}

int main(void) {
    RUN(test_full_run_concurrency_and_outputs);
    RUN(test_invalid_judge_counted_never_scored);
    RUN(test_resume_after_sigkill);
    RUN(test_ctrl_c_writes_partial_results);
    RUN(test_bad_inputs);
    return test_summary();
}
