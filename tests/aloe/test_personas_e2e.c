/* aloe personas end to end: the binary against the fake server, whose
 * embeddings are hashed bags of words (shared words -> cosine > 0). */
#include <stdlib.h>

#include "llm/fake_server.h"
#include "run_aloe.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

/* "gen" answers three items sharing one word per call ({hash} differs with
 * the examples shown); "dup" only repeats the seeds. */
static const char *SCRIPT =
    "{\"models\": {"
    " \"gen\": {\"reply\": \"Here are 3 new profiles:\\n\\n1. \\\"w{hash} kilo\\\"\\n2) w{hash} lima\\n- **Profile "
    "3:** w{hash} mike\\n\\nHope these help!\"},"
    " \"dup\": {\"reply\": \"1. apple banana cherry\\n2. delta echo foxtrot\"}"
    "}}";

#define NEED_SERVER() \
    NEED_STARTED(fs_up, "fake_openai")

static char *setup_dir(void) {
    char *dir = test_tmpdir(), *p = path_join(dir, "seeds.jsonl");
    Err e;
    const char *seeds = "\"apple banana cherry\"\n\"delta echo foxtrot\"\n\"golf hotel india\"\n";
    file_write_atomic(p, seeds, strlen(seeds), &e);
    free(p);
    return dir;
}

static int run_personas(const char *dir, const char *model, const char *target, const char *jobs) {
    char seeds[512], out[512];
    snprintf(seeds, sizeof seeds, "%s/seeds.jsonl", dir);
    snprintf(out, sizeof out, "%s/pool.jsonl", dir);
    const char *a[] = {"personas", "--kind", "profile", "--seeds", seeds, "--target", target, "--examples", "2",
                       "--per-call", "3", "-j", jobs, "--model", model, "--embed-model", "emb", "--base-url", fs.url,
                       "--max-rounds", "40", "--min-acceptance", "0.05", "--seed", "3", "-q", "--out", out, NULL};
    return aloe_run(dir, a);
}

static void test_pool_reaches_target(void) {
    NEED_SERVER();
    char *dir = setup_dir();
    int rc = run_personas(dir, "gen", "15", "2");
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    char *pool = slurp_in(dir, "pool.jsonl"), *meta = slurp_in(dir, "pool.meta.jsonl");
    CHECK_EQ_INT(count_lines(pool), 15);
    CHECK_EQ_INT(count_lines(meta), 15);
    CHECK(!strncmp(pool, "\"apple banana cherry\"\n", 22));
    /* Cleaned items: no quotes, markers or labels; nothing from the chatter. */
    CHECK_MSG(strstr(pool, " kilo\"\n") && strstr(pool, " mike\"\n") && !strstr(pool, "Hope") &&
                  !strstr(pool, "Profile") && !strstr(pool, "\\\""),
              "%s", pool);
    char *so = slurp_in(dir, "stdout.txt");
    CHECK_MSG(strstr(so, "15 profiles (3 seeds + 12 generated)") && strstr(so, "reached the target"), "%s", so);
    free(so);
    /* Every accepted item is at most 0.6 from each earlier one. */
    char *line = meta;
    for (int i = 0; i < 15; i++) {
        char *nl = strchr(line, '\n');
        json_t *m = json_loadb(line, (size_t)(nl - line), 0, NULL);
        CHECK(m);
        json_t *sim = json_object_get(m, "similarity");
        if (i >= 3) CHECK_MSG(json_real_value(sim) <= 0.6 + 1e-9, "item %d similarity %g", i, json_real_value(sim));
        else CHECK(json_is_null(sim));
        json_decref(m);
        line = nl + 1;
    }
    /* Rerun: nothing left to do, no request made, same files. */
    int before = fake_log_count(&fs, NULL);
    CHECK_EQ_INT(run_personas(dir, "gen", "15", "2"), 0);
    CHECK_EQ_INT(fake_log_count(&fs, NULL), before);
    char *pool2 = slurp_in(dir, "pool.jsonl");
    CHECK_EQ_STR(pool2, pool);
    /* A larger target continues from the state: the seeds and earlier items
     * are not embedded again. */
    CHECK_EQ_INT(run_personas(dir, "gen", "18", "2"), 0);
    json_t *log = fake_log(&fs);
    size_t i;
    json_t *r;
    json_array_foreach(log, i, r) {
        if ((int)i < before) continue;
        const char *path = json_string_value(json_object_get(r, "path"));
        json_t *input = json_object_get(json_object_get(r, "body"), "input");
        if (path && strstr(path, "embeddings")) {
            char *dump = json_dumps(input, JSON_ENCODE_ANY);
            CHECK_MSG(!strstr(dump, "apple banana"), "seed embedded again: %s", dump);
            free(dump);
        }
    }
    json_decref(log);
    char *pool3 = slurp_in(dir, "pool.jsonl");
    CHECK_EQ_INT(count_lines(pool3), 18);
    CHECK(!strncmp(pool3, pool, strlen(pool)));
    /* Another generator on the same output is refused, not mixed in. */
    CHECK_EQ_INT(run_personas(dir, "dup", "20", "2"), 2);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "pool.settings.json: the output was started with other settings (changed: generator)"), "%s",
              err);
    free(err);
    free(pool), free(pool2), free(pool3), free(meta), free(dir);
}

static void test_stops_when_acceptance_dries_up(void) {
    NEED_SERVER();
    char *dir = setup_dir();
    CHECK_EQ_INT(run_personas(dir, "dup", "50", "1"), 0);
    char *so = slurp_in(dir, "stdout.txt"), *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(so, "after 3 rounds") && strstr(so, "acceptance fell below the floor") &&
                  strstr(so, "acceptance over the last 3 rounds: 0.0%"),
              "%s", so);
    CHECK_MSG(strstr(err, "3 of the 50"), "%s", err);
    free(so), free(err), free(dir);
}

/* kill -9 (or Ctrl-C) in the middle of a growth, then the same command:
 * the pool is the one an uninterrupted run makes. */
static void interrupt_and_resume(int sig) {
    NEED_SERVER();
    char *ref = setup_dir(), *dir = setup_dir();
    CHECK_EQ_INT(run_personas(ref, "gen", "30", "1"), 0);
    char seeds[512], out[512];
    snprintf(seeds, sizeof seeds, "%s/seeds.jsonl", dir);
    snprintf(out, sizeof out, "%s/pool.jsonl", dir);
    const char *a[] = {"personas", "--kind", "profile", "--seeds", seeds, "--target", "30", "--examples", "2",
                       "--per-call", "3", "-j", "1", "--model", "gen", "--embed-model", "emb", "--base-url", fs.url,
                       "--max-rounds", "40", "--min-acceptance", "0.05", "--seed", "3", "-q", "--out", out, NULL};
    pid_t pid = aloe_spawn(dir, a);
    CHECK(pid > 0);
    for (int i = 0; i < 30000; i++) { /* the event; 60 s only bounds a broken run */
        char *t = slurp_in(dir, "pool.state.jsonl");
        int lines = count_lines(t);
        free(t);
        if (lines >= 3) break; /* seeds + 2 rounds */
        usleep(2000);
    }
    usleep(15000);
    kill(pid, sig);
    int st;
    waitpid(pid, &st, 0);
    if (sig == SIGKILL) {
        CHECK(WIFSIGNALED(st));
    } else {
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
        char *err = slurp_in(dir, "stderr.txt");
        CHECK_MSG(strstr(err, "interrupted after round") && strstr(err, "rerun the same command"), "%s", err);
        free(err);
    }
    char *partial = slurp_in(dir, "pool.jsonl");
    int before = count_lines(partial);
    free(partial);
    CHECK_MSG(before > 3 && before < 30, "%d items before the kill", before);
    CHECK_EQ_INT(aloe_run(dir, a), 0);
    char *want = slurp_in(ref, "pool.jsonl"), *got = slurp_in(dir, "pool.jsonl");
    CHECK_EQ_INT(count_lines(got), 30);
    CHECK_EQ_STR(got, want);
    free(want), free(got), free(dir), free(ref);
}

static void test_resume_after_sigkill(void) { interrupt_and_resume(SIGKILL); }
static void test_resume_after_ctrl_c(void) { interrupt_and_resume(SIGINT); }

static void test_bad_arguments(void) {
    char *dir = setup_dir();
    const char *a[] = {"personas", "--kind", "hobby", "--target", "5", "--model", "m", "--embed-model", "e",
                       "--out", "x.jsonl", NULL};
    CHECK_EQ_INT(aloe_run(dir, a), 2);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "--kind: expected profile or personality"), "%s", err);
    free(err);
    /* --embed-model has a default (the paper's embedder); --model has none */
    const char *b[] = {"personas", "--kind", "profile", "--target", "5", "--out", "x.jsonl", NULL};
    CHECK_EQ_INT(aloe_run(dir, b), 2);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "--model M is required"), "%s", err);
    free(err);
    free(dir);
}

int main(void) {
    fs_up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_pool_reaches_target);
    RUN(test_stops_when_acceptance_dries_up);
    if (fs_up) {
        fake_stop(&fs);
        fs_up = fake_start(&fs, SCRIPT, 20) == 0;
    }
    RUN(test_resume_after_sigkill);
    RUN(test_resume_after_ctrl_c);
    RUN(test_bad_arguments);
    if (fs_up) fake_stop(&fs);
    return test_summary();
}
