/* The pipeline on local models only: `aloe bench` with the evaluated
 * model, the user simulator and the judge all the tiny Qwen2 fixture. The
 * random model writes noise, so the judge's scores are mostly invalid: the
 * run must count them and finish, not crash. The role prompts are longer
 * than the fixture's 256-token context, hence ALOE_CTX. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static void test_bench_all_local(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *dir = test_tmpdir(), *aloe = test_build_path("aloe");
    char *prof = test_write_file("profiles.jsonl", "\"I am a nurse from Ohio who grows tomatoes.\"\n");
    char *pers = test_write_file("personalities.jsonl", "\"Cheerful and talkative.\"\n\"Reserved.\"\n");
    char *out = path_join(dir, "run"), *log = path_join(dir, "log.txt");
    int rc = test_system("ALOE_CTX=2048 %s bench --model %s --user-model %s --judge-model %s --profiles %s "
                         "--personalities %s --personalities-per-profile 1 --turns 2 --max-tokens 16 --user-max-tokens 16 "
                         "--judge-max-tokens 16 -j 2 -q "
                         "--out %s > %s 2>&1",
                         aloe, model, model, model, prof, pers, out, log);
    if (rc) test_system("cat %s >&2", log);
    CHECK_EQ_INT(rc, 0);
    char *results = path_join(out, "results.json");
    json_error_t je;
    json_t *r = json_load_file(results, 0, &je);
    CHECK_MSG(r != NULL, "%s: %s", results, je.text);
    CHECK(json_is_true(json_object_get(r, "complete")));
    json_t *turns = json_object_get(r, "turns");
    CHECK_EQ_INT(json_array_size(turns), 2);
    /* every judged turn is either scored or counted invalid */
    for (size_t k = 0; k < 2; k++) {
        json_t *t = json_array_get(turns, k);
        long n = (long)json_integer_value(json_object_get(t, "n"));
        long invalid = (long)json_integer_value(json_object_get(t, "invalid"));
        CHECK_EQ_INT(n + invalid, 1);
    }
    json_t *usage = json_object_get(r, "usage");
    CHECK(json_integer_value(json_object_get(json_object_get(usage, "user"), "requests")) == 2);
    CHECK(json_integer_value(json_object_get(json_object_get(usage, "user"), "prompt_tokens")) > 0);
    json_decref(r);
    free(results);
    free(model), free(dir), free(aloe), free(prof), free(pers), free(out), free(log);
}

/* `aloe dialogues` with every role the local fixture; the chat-template
 * overrides enter the run's settings, so resuming with another template is
 * refused rather than mixing trees made with two prompt formats. */
static void test_dialogues_local_template_guard(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *dir = test_tmpdir(), *aloe = test_build_path("aloe");
    char *prof = test_write_file("profiles.jsonl", "\"I am a nurse from Ohio.\"\n");
    char *pers = test_write_file("personalities.jsonl", "\"Reserved.\"\n");
    char *out = path_join(dir, "trees.jsonl"), *log = path_join(dir, "log.txt");
    const char *cmd = "ALOE_CTX=2048 %s dialogues --user-model %s --inducer-model %s --responder-model %s "
                      "--judge-model %s --judge-chat-template %s --profiles %s --personalities %s --turns 1 "
                      "--max-tokens 8 --judge-retries 0 -q --out %s > %s 2>&1";
    int rc = test_system(cmd, aloe, model, model, model, model, "chatml", prof, pers, out, log);
    if (rc) test_system("cat %s >&2", log);
    CHECK_EQ_INT(rc, 0);
    char *settings = path_join(dir, "trees.settings.json");
    json_error_t je;
    json_t *s = json_load_file(settings, 0, &je);
    CHECK_MSG(s != NULL, "%s: %s", settings, je.text);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(s, "chat_templates"), "judge")), "chatml");
    json_decref(s);
    rc = test_system(cmd, aloe, model, model, model, model, "qwen2.5", prof, pers, out, log);
    CHECK_EQ_INT(rc, 2);
    Err e;
    char *msg = NULL;
    if (file_read_all(log, &msg, NULL, &e)) fprintf(stderr, "%s\n", e.msg);
    CHECK_MSG(msg && strstr(msg, "changed: chat_templates"), "%s", msg ? msg : e.msg);
    free(msg), free(settings);
    free(model), free(dir), free(aloe), free(prof), free(pers), free(out), free(log);
}

int main(void) {
    RUN(test_bench_all_local);
    RUN(test_dialogues_local_template_guard);
    return test_summary();
}
