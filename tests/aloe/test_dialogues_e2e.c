/* aloe dialogues end to end: the binary against the fake OpenAI-compatible
 * server, including kill -9 in the middle of a run and resuming. */
#include <stdlib.h>

#include "llm/fake_server.h"
#include "run_aloe.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

static const char *SCRIPT =
    "{\"models\": {"
    " \"user-sim\": {\"reply\": \"Hey, message {turns} here ({hash}).\"},"
    " \"inducer\": {\"reply\": \"Profile: guess {hash}\\nPersonality: calm\"},"
    " \"hinted\": {\"reply\": \"hinted answer {hash}\"},"
    " \"plain\": {\"reply\": \"plain answer {hash}\"},"
    " \"pair-judge\": {\"reply\": \"Thinking.\\nPreferred: {ab}\"},"
    " \"mute-judge\": {\"reply\": \"I have no opinion.\"},"
    " \"locked\": {\"always\": {\"status\": 401}}"
    "}}";

#define NEED_SERVER() \
    NEED_STARTED(fs_up, "fake_openai")

/* The common arguments; out and extra flags appended by the caller. */
static void args_for(const char **a, int *n, const char *dir, const char *out, const char *judge, const char *jobs) {
    static char prof[512], pers[512];
    snprintf(prof, sizeof prof, "%s/prof.jsonl", dir);
    snprintf(pers, sizeof pers, "%s/pers.jsonl", dir);
    const char *base[] = {"dialogues", "--profiles", prof, "--personalities", pers, "--turns", "3", "--num", "6",
                          "--seed", "42", "-j", jobs, "--user-model", "user-sim", "--inducer-model", "inducer",
                          "--hinted-model", "hinted", "--plain-model", "plain", "--judge-model", judge,
                          "--base-url", fs.url, "--retries", "1", "--timeout", "20", "-q", "--out", out};
    *n = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) a[(*n)++] = base[i];
}

static char *setup_dir(void) {
    char *dir = test_tmpdir(), *p = path_join(dir, "prof.jsonl"), *q = path_join(dir, "pers.jsonl");
    Err e;
    const char *prof = "\"A nurse in Leeds.\"\n\"A student in Lagos.\"\n\"A baker in Lyon.\"\n";
    const char *pers = "\"Shy.\"\n\"Loud.\"\n";
    file_write_atomic(p, prof, strlen(prof), &e);
    file_write_atomic(q, pers, strlen(pers), &e);
    free(p);
    free(q);
    return dir;
}

static int run_dialogues(const char *dir, const char *out, const char *judge, const char *jobs, const char *extra) {
    const char *a[64];
    int n;
    args_for(a, &n, dir, out, judge, jobs);
    if (extra) a[n++] = extra;
    a[n] = NULL;
    return aloe_run(dir, a);
}

static char *reference; /* output of an uninterrupted run */

static void test_trees_through_the_server(void) {
    NEED_SERVER();
    char *dir = setup_dir(), *out = path_join(dir, "trees.jsonl");
    int before = fake_log_count(&fs, NULL);
    int rc = run_dialogues(dir, out, "pair-judge", "4", NULL);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    char *txt = slurp_in(out, NULL);
    CHECK_EQ_INT(count_lines(txt), 6);
    /* 6 conversations x 3 turns: 1 user + 1 inducer + 2 responders + 2 judge orders. */
    CHECK_EQ_INT(fake_log_count(&fs, NULL) - before, 6 * 3 * 6);
    long disagreements = 0, agreements = 0;
    char *line = txt;
    for (int k = 0; k < 6; k++) {
        char *nl = strchr(line, '\n');
        json_t *rec = json_loadb(line, (size_t)(nl - line), 0, NULL);
        CHECK(rec);
        char id[32];
        snprintf(id, sizeof id, "conv-%06d", k);
        CHECK_EQ_STR(json_string_value(json_object_get(rec, "id")), id);
        json_t *convs = json_object_get(rec, "conversations"), *meta = json_object_get(rec, "meta");
        CHECK_EQ_INT(json_array_size(convs), 3);
        CHECK(!strncmp(json_string_value(json_object_get(json_array_get(convs, 2), "user")), "Hey, message 3", 14));
        json_t *det = json_object_get(meta, "turn_details");
        for (size_t t = 0; t < 3; t++) {
            const char *j = json_string_value(json_object_get(json_array_get(det, t), "judges"));
            CHECK(j && (!strcmp(j, "agree") || !strcmp(j, "disagree")));
            if (!strcmp(j, "agree")) agreements++;
            else disagreements++;
        }
        CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(meta, "models"), "judge")), "pair-judge");
        json_decref(rec);
        line = nl + 1;
    }
    /* {ab} is a hash of each request, so both outcomes occur. */
    CHECK(disagreements > 0 && agreements > 0);
    char *so = slurp_in(dir, "stdout.txt");
    char want[64];
    snprintf(want, sizeof want, "%ld judge disagreements", disagreements);
    CHECK_MSG(strstr(so, want), "stdout: %s", so);
    free(so);
    reference = txt;
    free(out);
    free(dir);
}

static void test_same_seed_same_trees(void) {
    NEED_SERVER();
    CHECK_MSG(reference, "needs the reference run of the first test, which failed");
    char *dir = setup_dir(), *out = path_join(dir, "again.jsonl");
    CHECK_EQ_INT(run_dialogues(dir, out, "pair-judge", "2", NULL), 0);
    char *txt = slurp_in(out, NULL);
    CHECK_EQ_STR(txt, reference);
    free(txt);
    free(out);
    free(dir);
}

static void test_resume_after_sigkill(void) {
    NEED_SERVER();
    CHECK_MSG(reference, "needs the reference run of the first test, which failed");
    char *dir = setup_dir(), *out = path_join(dir, "killed.jsonl");
    int before = fake_log_count(&fs, NULL);
    const char *a[64];
    int n;
    args_for(a, &n, dir, out, "pair-judge", "2");
    a[n] = NULL;
    /* The server answers after 30 ms here, so the run takes ~1 s. */
    pid_t pid = aloe_spawn(dir, a);
    CHECK(pid > 0);
    for (int i = 0; i < 30000; i++) { /* the event; 60 s only bounds a broken run */
        char *t = slurp_in(out, NULL);
        int lines = count_lines(t);
        free(t);
        if (lines >= 2) break;
        usleep(2000);
    }
    usleep(40000); /* land mid-conversation, with requests in flight */
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    char *partial = slurp_in(out, NULL);
    int done_before = count_lines(partial);
    free(partial);
    CHECK_MSG(done_before >= 2 && done_before < 6, "%d conversations before the kill", done_before);
    int first = fake_log_count(&fs, NULL) - before;
    CHECK_EQ_INT(run_dialogues(dir, out, "pair-judge", "2", NULL), 0);
    char *txt = slurp_in(out, NULL);
    CHECK_EQ_STR(txt, reference);
    /* No answered request was asked again: both runs together made at most
     * the uninterrupted run's requests plus the 2 that were in flight. */
    int total = fake_log_count(&fs, NULL) - before;
    CHECK_MSG(total <= 6 * 3 * 6 + 2 && total >= 6 * 3 * 6, "requests: %d first run, %d in all", first, total);
    free(txt);
    free(out);
    free(dir);
}

static void test_concurrency_reached(void) {
    NEED_SERVER();
    char *dir = setup_dir(), *out = path_join(dir, "par.jsonl");
    json_decref(fake_call(&fs, "/stats/reset", 1));
    /* requests an earlier test abandoned (its aloe was killed) may still sit
     * in the server's latency: they only add to the peak */
    long lingering = fake_stat(&fs, "active");
    /* The server holds the first 6 requests until all 6 have arrived: the
     * peak is reached by events, whatever the machine's load. */
    json_decref(fake_call(&fs, "/gate/6", 1));
    CHECK_EQ_INT(run_dialogues(dir, out, "pair-judge", "6", NULL), 0);
    /* 6 conversations in flight at once, each one request at a time. */
    long peak = fake_stat(&fs, "peak");
    CHECK_MSG(peak >= 6 && peak <= 6 + lingering, "peak %ld requests in flight (%ld left over)", peak, lingering);
    free(out);
    free(dir);
}

static void test_ctrl_c_stops_cleanly(void) {
    NEED_SERVER();
    CHECK_MSG(reference, "needs the reference run of the first test, which failed");
    char *dir = setup_dir(), *out = path_join(dir, "int.jsonl");
    const char *a[64];
    int n;
    args_for(a, &n, dir, out, "pair-judge", "2");
    a[n] = NULL;
    pid_t pid = aloe_spawn(dir, a);
    CHECK(pid > 0);
    for (int i = 0; i < 30000; i++) { /* the event; 60 s only bounds a broken run */
        char *t = slurp_in(out, NULL);
        int lines = count_lines(t);
        free(t);
        if (lines >= 1) break;
        usleep(2000);
    }
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "interrupted after") && strstr(err, "rerun to resume"), "%s", err);
    free(err);
    CHECK_EQ_INT(run_dialogues(dir, out, "pair-judge", "2", NULL), 0);
    char *txt = slurp_in(out, NULL);
    CHECK_EQ_STR(txt, reference);
    free(txt);
    free(out);
    free(dir);
}

static void test_verdictless_judge_and_errors(void) {
    NEED_SERVER();
    char *dir = setup_dir(), *out = path_join(dir, "mute.jsonl");
    CHECK_EQ_INT(run_dialogues(dir, out, "mute-judge", "4", "--drop-disagreements"), 0);
    char *txt = slurp_in(out, NULL);
    const char *nl = strchr(txt, '\n');
    CHECK(nl);
    json_t *rec = json_loadb(txt, (size_t)(nl - txt), 0, NULL);
    CHECK(rec);
    json_t *t0 = json_array_get(json_object_get(rec, "conversations"), 0);
    CHECK(json_is_null(json_object_get(json_object_get(t0, "assistant"), "preferred")));
    json_t *d0 = json_array_get(json_object_get(json_object_get(rec, "meta"), "turn_details"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(d0, "judges")), "none");
    json_t *meta = json_object_get(rec, "meta");
    CHECK(json_integer_value(json_object_get(meta, "undecided")) >= 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(meta, "undecided")),
                 json_integer_value(json_object_get(meta, "disagreements")));
    /* Asked once and reminded 3 times, in each order. */
    CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(d0, "judge_hinted_first"), "raw")), 4);
    json_decref(rec);
    free(txt);
    char *so = slurp_in(dir, "stdout.txt");
    CHECK_MSG(strstr(so, "with no verdict in either order"), "stdout: %s", so);
    free(so);
    /* A 401 stops the run with the server's message, not a retry loop. */
    char *out2 = path_join(dir, "locked.jsonl");
    CHECK_EQ_INT(run_dialogues(dir, out2, "locked", "2", NULL), 1);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "401") && strstr(err, "judge"), "%s", err);
    free(err);
    /* Bad input names the file and line. */
    char *bad = path_join(dir, "pers.jsonl");
    Err e;
    file_write_atomic(bad, "\"ok\"\n42\n", 8, &e);
    CHECK_EQ_INT(run_dialogues(dir, out2, "pair-judge", "2", NULL), 1);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "pers.jsonl:2: expected a JSON string, got an integer"), "%s", err);
    free(err);
    free(bad);
    free(out2);
    free(out);
    free(dir);
}

int main(void) {
    fs_up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_trees_through_the_server);
    RUN(test_same_seed_same_trees);
    if (fs_up) {
        fake_stop(&fs);
        fs_up = fake_start(&fs, SCRIPT, 30) == 0;
    }
    RUN(test_resume_after_sigkill);
    RUN(test_concurrency_reached);
    RUN(test_ctrl_c_stops_cleanly);
    RUN(test_verdictless_judge_and_errors);
    if (fs_up) fake_stop(&fs);
    free(reference);
    return test_summary();
}
