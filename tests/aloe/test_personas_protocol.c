/* aloe personas --protocol paper|rubric end to end, against the fake server:
 * the paper's generation prompt reaches the generator with the examples and
 * n filled in, the temperature each protocol sends, the protocol recorded in
 * the pool's settings (a resume under the other one is refused), and the
 * default embedder (the paper's paraphrase-MiniLM-L6-v2, served by a fake
 * hub in that model's layout and run by the local engine). */
#include <math.h>
#include <stdlib.h>

#include "llm/fake_server.h"
#include "run_aloe.h"
#include "st_minilm_layout.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

/* "gen" answers as the paper's prompt asks (blank-line separated, no
 * numbers) with the preamble and closing remark models add; {hash} differs
 * with the prompt. */
static const char *SCRIPT =
    "{\"models\": {"
    " \"gen\": {\"reply\": \"Here are 3 new profiles:\\n\\nw{hash} kilo papa\\n\\nw{hash} lima quebec\\n\\n"
    "w{hash} mike romeo\\n\\nI hope these help!\"}"
    "}}";

#define SEED1 "apple banana cherry"
#define SEED2 "delta echo foxtrot"
#define SEED3 "golf hotel india"

static char *setup_dir(void) {
    char *dir = test_tmpdir(), *p = path_join(dir, "seeds.jsonl");
    Err e;
    const char *seeds = "\"" SEED1 "\"\n\"" SEED2 "\"\n\"" SEED3 "\"\n";
    file_write_atomic(p, seeds, strlen(seeds), &e);
    free(p);
    return dir;
}

/* Runs personas in dir with the common flags and `extra` (NULL-terminated). */
static int run_personas(const char *dir, const char *kind, const char *const *extra) {
    char seeds[512], out[512];
    snprintf(seeds, sizeof seeds, "%s/seeds.jsonl", dir);
    snprintf(out, sizeof out, "%s/pool.jsonl", dir);
    const char *a[48] = {"personas", "--kind", kind, "--seeds", seeds, "--target", "6", "--examples", "2",
                         "--per-call", "3", "-j", "1", "--model", "gen", "--base-url", fs.url, "--max-rounds", "5",
                         "--seed", "3", "-q", "--out", out};
    int n = 24;
    for (int i = 0; extra && extra[i] && n < 47; i++) a[n++] = extra[i];
    a[n] = NULL;
    return aloe_run(dir, a);
}

/* The chat requests made since the log had `from` records (caller decrefs). */
static json_t *chat_requests(int from) {
    json_t *log = fake_log(&fs), *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(log, i, r) {
        const char *path = json_string_value(json_object_get(r, "path"));
        if ((int)i >= from && path && strstr(path, "chat/completions")) json_array_append(out, r);
    }
    json_decref(log);
    return out;
}

static const char *prompt_of(json_t *req) {
    json_t *msgs = json_object_get(json_object_get(req, "body"), "messages");
    return json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
}

static json_t *settings_of(const char *dir) {
    char *p = path_join(dir, "pool.settings.json");
    json_t *s = json_load_file(p, 0, NULL);
    free(p);
    return s;
}

static void test_paper_prompt_reaches_the_generator(void) {
    NEED_STARTED(fs_up, "fake_openai");
    char *dir = setup_dir();
    int from = fake_log_count(&fs, NULL);
    const char *extra[] = {"--embed-model", "emb", NULL};
    int rc = run_personas(dir, "profile", extra);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    json_t *reqs = chat_requests(from);
    CHECK(json_array_size(reqs) >= 1);
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        const char *p = prompt_of(r);
        CHECK(p);
        if (!p) break;
        /* the paper's rules, n filled in, nothing left unfilled */
        CHECK_MSG(strstr(p, "Write 3 new user profiles") && strstr(p, "Make the 3 profiles diverse") &&
                      strstr(p, "8 to 10 distinct facts") &&
                      strstr(p, "nothing at all about their personality or character traits") &&
                      strstr(p, "say little about the content of their work") &&
                      strstr(p, "everyday conversation") && strstr(p, "separated by a blank line, without numbers"),
                  "%s", p);
        CHECK_MSG(!strchr(p, '{') && !strchr(p, '}'), "unfilled placeholder: %s", p);
        /* two examples from the pool, as blank-line separated paragraphs (the
         * form the answer is asked for), not numbered */
        int shown = 0;
        const char *pool[] = {SEED1, SEED2, SEED3, "kilo papa", "lima quebec", "mike romeo"};
        for (int k = 0; k < 6; k++) shown += strstr(p, pool[k]) != NULL;
        CHECK_MSG(shown == 2, "%d examples shown: %s", shown, p);
        CHECK_MSG(!strstr(p, "1. ") && !strstr(p, "2. "), "numbered examples: %s", p);
        const char *ex = strstr(p, "Some example profiles:\n\n");
        CHECK_MSG(ex && strstr(ex, "\n\n") && strstr(strstr(ex + 24, "\n\n") + 2, "\n\n"), "%s", p);
        /* the paper's temperature */
        json_t *t = json_object_get(json_object_get(r, "body"), "temperature");
        CHECK_MSG(json_is_number(t) && fabs(json_number_value(t) - 0.8) < 1e-9, "temperature %s",
                  json_is_number(t) ? "other" : "missing");
    }
    json_decref(reqs);
    /* the answers' preamble and closing remark are not items */
    char *pool = slurp_in(dir, "pool.jsonl");
    CHECK_MSG(count_lines(pool) == 6 && strstr(pool, " kilo papa\"\n") && !strstr(pool, "Here are") &&
                  !strstr(pool, "hope"),
              "%s", pool);
    free(pool);
    json_t *s = settings_of(dir);
    CHECK_EQ_STR(json_string_value(json_object_get(s, "protocol")), "paper");
    CHECK_NEAR(json_number_value(json_object_get(s, "temperature")), 0.8, 1e-12);
    CHECK_NEAR(json_number_value(json_object_get(s, "threshold")), 0.6, 1e-12);
    json_decref(s);
    free(dir);
}

static void test_paper_personality_prompt(void) {
    NEED_STARTED(fs_up, "fake_openai");
    char *dir = setup_dir();
    int from = fake_log_count(&fs, NULL);
    const char *extra[] = {"--embed-model", "emb", NULL};
    CHECK_EQ_INT(run_personas(dir, "personality", extra), 0);
    json_t *reqs = chat_requests(from);
    const char *p = json_array_size(reqs) ? prompt_of(json_array_get(reqs, 0)) : NULL;
    CHECK_MSG(p && strstr(p, "Write 3 new descriptions of a person's personality") &&
                  strstr(p, "about 8 to 10 personality traits") && strstr(p, "such as occupation") &&
                  strstr(p, "Make the 3 descriptions diverse") && strstr(p, "separated by a blank line") &&
                  !strchr(p, '{'),
              "%s", p ? p : "(no request)");
    json_decref(reqs);
    free(dir);
}

/* rubric: aloe's earlier prompt with numbered examples, and no temperature
 * unless one is given; an explicit one wins under either protocol. */
static void test_rubric_sends_no_temperature(void) {
    NEED_STARTED(fs_up, "fake_openai");
    struct {
        const char *protocol, *temperature;
        double want; /* < 0: absent */
    } cases[] = {{"rubric", NULL, -1}, {"rubric", "0.5", 0.5}, {"paper", "0.3", 0.3}};
    for (int c = 0; c < 3; c++) {
        char *dir = setup_dir();
        int from = fake_log_count(&fs, NULL);
        const char *extra[] = {"--embed-model", "emb", "--protocol", cases[c].protocol,
                               cases[c].temperature ? "--temperature" : NULL, cases[c].temperature, NULL};
        int rc = run_personas(dir, "profile", extra);
        CHECK_MSG(rc == 0, "case %d: exit %d", c, rc);
        json_t *reqs = chat_requests(from);
        CHECK(json_array_size(reqs) >= 1);
        size_t i;
        json_t *r;
        json_array_foreach(reqs, i, r) {
            json_t *t = json_object_get(json_object_get(r, "body"), "temperature");
            if (cases[c].want < 0) CHECK_MSG(!t, "case %d: temperature sent", c);
            else CHECK_MSG(json_is_number(t) && fabs(json_number_value(t) - cases[c].want) < 1e-9, "case %d", c);
            if (!strcmp(cases[c].protocol, "rubric"))
                CHECK_MSG(strstr(prompt_of(r), "\n1. ") && strstr(prompt_of(r), "\n2. "), "%s", prompt_of(r));
        }
        json_decref(reqs);
        json_t *s = settings_of(dir);
        CHECK_EQ_STR(json_string_value(json_object_get(s, "protocol")), cases[c].protocol);
        json_decref(s);
        free(dir);
    }
}

static void test_resume_with_another_protocol_is_refused(void) {
    NEED_STARTED(fs_up, "fake_openai");
    char *dir = setup_dir();
    const char *paper[] = {"--embed-model", "emb", NULL};
    CHECK_EQ_INT(run_personas(dir, "profile", paper), 0);
    char *before = slurp_in(dir, "pool.jsonl");
    /* same temperature, so the protocol itself (and its prompt) is what differs */
    const char *rubric[] = {"--embed-model", "emb", "--protocol", "rubric", "--temperature", "0.8", "--target", "9",
                            NULL};
    CHECK_EQ_INT(run_personas(dir, "profile", rubric), 2);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "pool.settings.json: the output was started with other settings") &&
                  strstr(err, "protocol"),
              "%s", err);
    char *after = slurp_in(dir, "pool.jsonl");
    CHECK_EQ_STR(after, before);
    /* and a bad value names both choices */
    const char *bad[] = {"--embed-model", "emb", "--protocol", "paperish", NULL};
    CHECK_EQ_INT(run_personas(dir, "profile", bad), 2);
    free(err);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "--protocol: expected paper or rubric, got \"paperish\""), "%s", err);
    free(err), free(before), free(after), free(dir);
}

/* No --embed-model: the paper's embedder, fetched from a fake hub that
 * serves the tiny BERT fixture in paraphrase-MiniLM-L6-v2's layout, and run
 * by the local engine (no /embeddings request reaches the endpoint). */
static void test_default_embedder_is_the_papers(void) {
    NEED_STARTED(fs_up, "fake_openai");
    NEED_SHARED(src, "fixtures/models/tiny-bert-st");
    char *repo = st_minilm_layout(src);
    CHECK(repo);
    char *tmp = test_tmpdir();
    char *port_file = path_join(tmp, "port"), *cache = path_join(tmp, "cache");
    char *bin = test_build_path("tests/tools/fake_hub");
    char *argv[] = {bin, "--repo", "sentence-transformers/paraphrase-MiniLM-L6-v2", "--root", repo, "--port-file",
                    port_file, NULL};
    pid_t hub = 0;
    int port = test_spawn_server(argv, port_file, &hub);
    CHECK_MSG(port > 0, "fake_hub did not start");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    setenv("HF_ENDPOINT", url, 1);
    setenv("ALOE_CACHE", cache, 1);
    char *dir = setup_dir();
    int from = fake_log_count(&fs, NULL);
    /* the tiny random model's vectors are all alike: every candidate is
     * let in (threshold 1) so that the run goes through its rounds */
    const char *extra[] = {"--threshold", "1", NULL};
    int rc = run_personas(dir, "profile", extra);
    unsetenv("HF_ENDPOINT");
    unsetenv("ALOE_CACHE");
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    json_t *s = settings_of(dir);
    CHECK_EQ_STR(json_string_value(json_object_get(s, "embedder")), "hf://sentence-transformers/paraphrase-MiniLM-L6-v2");
    json_decref(s);
    /* the state holds the local encoder's 64-dimensional vectors */
    char *state = slurp_in(dir, "pool.state.jsonl");
    char *nl = strchr(state, '\n');
    json_t *round0 = nl ? json_loadb(state, (size_t)(nl - state), 0, NULL) : NULL;
    json_t *emb = json_object_get(json_array_get(json_object_get(round0, "items"), 0), "embedding");
    CHECK_EQ_INT((int)json_array_size(emb), 64);
    json_decref(round0);
    free(state);
    json_t *log = fake_log(&fs);
    size_t i;
    json_t *r;
    json_array_foreach(log, i, r) {
        const char *path = json_string_value(json_object_get(r, "path"));
        if ((int)i >= from) CHECK_MSG(path && !strstr(path, "embeddings"), "an embedding request reached the endpoint");
    }
    json_decref(log);
    if (hub > 0) test_kill(hub);
    test_system("rm -rf '%s' '%s'", tmp, repo);
    free(bin), free(port_file), free(cache), free(tmp), free(repo), free(dir), free(src);
}

static void test_help_shows_the_defaults(void) {
    char *dir = setup_dir();
    const char *a[] = {"personas", "--help", NULL};
    CHECK_EQ_INT(aloe_run(dir, a), 0);
    char *out = slurp_in(dir, "stdout.txt"), *err = slurp_in(dir, "stderr.txt");
    char *all = xasprintf("%s%s", out, err);
    CHECK_MSG(strstr(all, "(default: hf://sentence-transformers/paraphrase-MiniLM-L6-v2)") &&
                  strstr(all, "(default: paper)") && strstr(all, "(default: 0.8)") && strstr(all, "(default: 0.6)"),
              "%s", all);
    free(all), free(out), free(err), free(dir);
}

int main(void) {
    fs_up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_paper_prompt_reaches_the_generator);
    RUN(test_paper_personality_prompt);
    RUN(test_rubric_sends_no_temperature);
    RUN(test_resume_with_another_protocol_is_refused);
    RUN(test_default_embedder_is_the_papers);
    RUN(test_help_shows_the_defaults);
    if (fs_up) fake_stop(&fs);
    return test_summary();
}
