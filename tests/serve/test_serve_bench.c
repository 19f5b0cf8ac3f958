/* aloe as a client of aloe serve: `aloe bench` with every role (the
 * evaluated model, the user simulator, the judge) answered by `aloe serve`
 * on the tiny model completes and accounts for every request. And the
 * speed harness bench/serve_vs_llamaserver.sh: its parser and summary on
 * canned outputs (--self-test; no llama.cpp, no timing), and its refusals. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "serve/served.h"
#include "test.h"

static void test_bench_against_served_model(void) {
    NEED_SHARED(qwen, "fixtures/models/tiny-qwen2");
    Served sv;
    /* the roles' prompts run to hundreds of tokens: more than the tiny model's 256 */
    char *args = xasprintf("--model %s --alias tq --threads 1 -j 8 --ctx 4096", qwen);
    NEED_STARTED(!served_start(&sv, args, NULL), "aloe serve");
    char *dir = test_tmpdir(), *profiles = path_join(dir, "profiles.jsonl"), *pers = path_join(dir, "pers.jsonl");
    test_put_text(profiles, "\"A nurse who likes hiking.\"\n\"A retired chess teacher.\"\n");
    test_put_text(pers, "\"Curious and direct.\"\n\"Patient, prefers short answers.\"\n");
    char *out = path_join(dir, "run");
    char *cmd = xasprintf("bench --model tq --user-model tq --judge-model tq --profiles %s --personalities %s "
                          "--personalities-per-profile 2 --turns 2 -j 4 --seed 3 --max-tokens 48 --user-max-tokens 32 "
                          "--judge-max-tokens 32 --base-url %s/v1 --out %s --quiet "
                          "--timeout 120",
                          profiles, pers, sv.url, out);
    char *log = NULL;
    int rc = aloe_sh_run("OPENAI_API_KEY=", cmd, &log);
    CHECK_MSG(rc == 0, "aloe bench against aloe serve exited %d:\n%s", rc, log);
    json_t *res = aloe_sh_json(out, "results.json");
    CHECK_MSG(res != NULL, "no results.json in %s:\n%s", out, log);
    /* 4 personas x 2 turns: every turn was asked of the model and of the judge */
    json_t *turns = json_object_get(res, "turns");
    CHECK_EQ_INT(json_array_size(turns), 2);
    json_decref(res);
    /* the server answered them: at least model + user + judge per turn per persona */
    HttpReply r = served_get(&sv, "/metrics", NULL);
    CHECK(strstr(r.body.s, "aloe_requests_total{status=\"200\"}") != NULL);
    http_reply_free(&r);
    double answered = served_metric(&sv, "aloe_requests_total{status=\"200\"}");
    CHECK_MSG(answered >= 4 * 2 * 2, "the server answered %.0f requests", answered);
    CHECK_EQ_INT(served_signal_wait(&sv, SIGTERM), 0);
    free(log);
    free(cmd);
    free(out);
    free(profiles);
    free(pers);
    free(dir);
    served_free(&sv);
    free(args);
    free(qwen);
}

static int script(const char *env, const char *args, char **out) {
    return test_system_output(out, "%s bash bench/serve_vs_llamaserver.sh %s", env, args);
}

static void test_harness_self_test(void) {
    char *out;
    int rc = script("", "--self-test", &out);
    CHECK_MSG(rc == 0 && strstr(out, "self-test: all passed") && !strstr(out, "FAIL"), "rc %d:\n%s", rc, out);
    /* the throughput and the nearest-rank percentiles were checked */
    CHECK_MSG(strstr(out, "ok   summary of 4 requests: 160.0 0.2000 0.4000 4"), "%s", out);
    CHECK_MSG(strstr(out, "ok   row: | 4 | 160.0 | 200.0 | 1.25 |"), "%s", out);
    free(out);
}

static void test_harness_refuses_bad_options(void) {
    static const char *const cases[][3] = {
        {"LLAMACPP_BUILD=", "--model x.gguf", "set LLAMACPP_BUILD"},
        {"LLAMACPP_BUILD=/nonexistent", "--model x.gguf", "/nonexistent/bin/llama-server not found"},
        {"LLAMACPP_BUILD=/nonexistent", "--clients 1,x", "whole numbers >= 1 (got 'x')"},
        {"LLAMACPP_BUILD=/nonexistent", "--frobnicate", "unknown option --frobnicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        int rc = script(cases[i][0], cases[i][1], &out);
        CHECK_MSG(rc != 0 && strstr(out, cases[i][2]), "%s %s: rc %d: %s", cases[i][0], cases[i][1], rc, out);
        free(out);
    }
}

int main(void) {
    RUN(test_bench_against_served_model);
    RUN(test_harness_self_test);
    RUN(test_harness_refuses_bad_options);
    return test_summary();
}
