/* Regressions found by using aloe as a user would (the built binary, end to
 * end): help texts, summaries, error messages and exit statuses. */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

/* the environment every aloe run here gets */
#define ALOE_ENV NULL

static const char *script =
    "{\"models\": {"
    "\"gen\": {\"reply\": \"1. Calm and patient {hash}.\\n2. Loud and restless {hash}.\"},"
    "\"sim\": {\"replies\": [\"I just got back from a hike.\", \"Work was long today.\"], \"pick\": \"hash\"},"
    "\"ind\": {\"reply\": \"Profile: likes the outdoors.\\nPersonality: calm.\"},"
    "\"resp\": {\"reply\": \"Sounds great! ({hash})\"},"
    "\"judge\": {\"reply\": \"Preferred: {ab}\"}}}";

/* --passes defaults to 1: the help said "(default 1) (default: 0)". */
static void test_dialogues_help_passes_default(void) {
    char *out;
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, "dialogues --help", &out), 0);
    const char *line = strstr(out, "--passes P");
    CHECK_MSG(line, "%s", out);
    char *eol = strchr(line, '\n');
    if (eol) *eol = 0;
    CHECK_MSG(strstr(line, "(default: 1)") && !strstr(line, "(default: 0)") && !strstr(line, "(default 1)"), "%s",
              line);
    free(out);
}

/* A missing --prompts file: named plainly, not as "FILE:-1:-1: ...". */
static void test_prompts_missing_file(void) {
    char *dir = test_tmpdir();
    char *prof = path_join(dir, "p.jsonl"), *pers = path_join(dir, "q.jsonl"), *out = NULL;
    test_put_text(prof, "\"a profile\"\n");
    test_put_text(pers, "\"a personality\"\n");
    char *args = xasprintf("bench --model m --user-model u --judge-model j --profiles %s --personalities %s "
                           "--personalities-per-profile 1 --base-url http://127.0.0.1:1/v1 --out %s/run "
                           "--prompts %s/nope.json -q",
                           prof, pers, dir, dir);
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, args, &out), 1);
    CHECK_MSG(strstr(out, "nope.json: cannot read the prompts file (No such file or directory)"), "%s", out);
    CHECK_MSG(!strstr(out, ":-1:-1"), "%s", out);
    free(args);
    free(out);
    free(prof);
    free(pers);
    free(dir);
}

/* The personas summary names the kind in the plural ("personalities", not
 * "personalitys"). */
static void test_personas_summary_plural(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    char *dir = test_tmpdir();
    char *seeds = path_join(dir, "seeds.jsonl"), *out = NULL;
    test_put_text(seeds, "\"Shy and careful.\"\n\"Bold and curious.\"\n");
    char *args = xasprintf("personas --kind personality --seeds %s --target 4 --model gen --embed-model emb "
                           "--base-url %s --threshold 0.99 --out %s/pool.jsonl -q",
                           seeds, fs.url, dir);
    int rc = aloe_sh_run(ALOE_ENV, args, &out);
    fake_stop(&fs);
    CHECK_MSG(rc == 0, "rc %d: %s", rc, out);
    CHECK_MSG(strstr(out, "4 personalities (2 seeds + 2 generated)"), "%s", out);
    CHECK_MSG(!strstr(out, "personalitys"), "%s", out);
    free(args);
    free(out);
    free(seeds);
    free(dir);
}

/* A rerun that resumes every conversation reports the same number of judge
 * disagreements as the run that made them (it used to count only new ones). */
static void test_dialogues_resume_summary(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    char *dir = test_tmpdir();
    char *prof = path_join(dir, "p.jsonl"), *pers = path_join(dir, "q.jsonl"), *out1 = NULL, *out2 = NULL;
    test_put_text(prof, "\"profile one\"\n\"profile two\"\n\"profile three\"\n");
    test_put_text(pers, "\"personality one\"\n\"personality two\"\n");
    char *args = xasprintf("dialogues --profiles %s --personalities %s --num 6 --turns 2 --user-model sim "
                           "--inducer-model ind --responder-model resp --judge-model judge --base-url %s "
                           "--seed 3 -j 3 --out %s/trees.jsonl -q",
                           prof, pers, fs.url, dir);
    int rc1 = aloe_sh_run(ALOE_ENV, args, &out1);
    int rc2 = aloe_sh_run(ALOE_ENV, args, &out2);
    fake_stop(&fs);
    CHECK_MSG(rc1 == 0 && rc2 == 0, "%s\n%s", out1, out2);
    CHECK_MSG(strstr(out2, "(6 resumed from an earlier run)"), "%s", out2);
    const char *d1 = strstr(out1, "); "), *d2 = strstr(out2, "); ");
    CHECK_MSG(d1 && d2, "%s\n%s", out1, out2);
    CHECK_MSG(atol(d1 + 3) == atol(d2 + 3) && atol(d1 + 3) > 0, "first run: %s\nresumed: %s", out1, out2);
    free(args);
    free(out1);
    free(out2);
    free(prof);
    free(pers);
    free(dir);
}

/* Ctrl-C during training saves a checkpoint and exits with 130, as every
 * other long command does (it exited 1 with "error: interrupted"). */
static void test_train_sigint_status(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *dir = test_tmpdir();
    char *data = path_join(dir, "sft.jsonl"), *log = path_join(dir, "log"), *metrics = path_join(dir, "run/metrics.jsonl");
    test_put_text(data, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello there, how are you?\"}, "
                     "{\"role\": \"assistant\", \"content\": \"Fine, thanks. And you?\"}]}\n");
    char *args = xasprintf("train sft --model %s --data %s --out %s/run --steps 100000 -t 1 -q", model, data, dir);
    pid_t pid = aloe_sh_spawn(ALOE_ENV, args, log);
    CHECK(pid > 0);
    /* Interrupt once training is under way (a metrics line is written). */
    for (int i = 0; i < 1200; i++) { /* the event; 60 s only bounds a broken run */
        char *m = test_read_text(metrics);
        int started = m[0] != 0;
        free(m);
        if (started) break;
        usleep(50 * 1000);
    }
    kill(pid, SIGINT);
    int rc = aloe_sh_wait(pid);
    char *out = test_read_text(log);
    CHECK_MSG(rc == 130, "rc %d: %s", rc, out);
    CHECK_MSG(strstr(out, "interrupted at step") && strstr(out, "--resume"), "%s", out);
    free(out);
    free(args);
    free(data);
    free(log);
    free(metrics);
    free(dir);
    free(model);
}

/* aloe complete stops at the model's context (tiny-qwen2: 256 positions) and
 * says so; it used to generate past max_position_embeddings silently. */
static void test_complete_stops_at_context(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char *args = xasprintf("complete --model %s --prompt-ids 1025,82,287 --max-tokens 300 --print-ids -t 1", model),
         *out = NULL;
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, args, &out), 0);
    const char *open = out; /* the id list; the note on stderr may come first */
    while ((open = strchr(open, '[')) && !isdigit((unsigned char)open[1])) open++;
    CHECK_MSG(open, "%s", out);
    int n_ids = 1;
    for (const char *p = open; *p && *p != ']'; p++) n_ids += *p == ',';
    CHECK_MSG(n_ids == 256 - 3 && strstr(out, "[cut at the model's context of 256 tokens]"), "%d ids: %.300s", n_ids,
              out);
    free(out);
    free(args);
    args = xasprintf("complete --model %s --prompt-ids 1025,82,287 --max-tokens 8 --print-ids -t 1", model);
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, args, &out), 0);
    CHECK_MSG(!strstr(out, "[cut at"), "%s", out);
    free(out);
    free(args);
    free(model);
}

/* aloe speed --json writes valid JSON whatever the model path (it was
 * printed with %s, unescaped), and the table gives tiny models in MiB / M
 * instead of "0.00 GiB | 0.00 B". */
static void test_speed_json_and_units(void) {
    NEED_SHARED(gguf, "fixtures/gguf/tiny-qwen2-q8_0.gguf");
    char *dir = test_tmpdir();
    char *odd = path_join(dir, "a\"b\\c.gguf"), *data = NULL, *out = NULL;
    size_t n;
    Err e;
    CHECK_OK(file_read_all(gguf, &data, &n, &e), &e);
    CHECK_OK(file_write_atomic(odd, data, n, &e), &e);
    char *args = xasprintf("speed --model '%s' -p 4 -n 2 -t 1 --json", odd);
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, args, &out), 0);
    CHECK_MSG(strstr(out, " MiB | ") && strstr(out, " M | "), "%s", out);
    const char *last = strrchr(out, '{');
    json_t *j = last ? json_loads(last, 0, NULL) : NULL;
    CHECK_MSG(j, "not JSON: %s", out);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "model")), odd);
    CHECK(json_real_value(json_object_get(j, "decode_tps")) > 0);
    json_decref(j);
    free(args);
    free(out);
    free(data);
    free(odd);
    free(dir);
    free(gguf);
}

/* --max-tokens below 1 is a usage error naming the flag (complete said
 * "sequence 0: max_tokens must be positive"; chat took -1 as 512). */
static void test_max_tokens_checked(void) {
    char *out = NULL;
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, "complete --model /nonexistent --prompt hi --max-tokens 0", &out), 2);
    CHECK_MSG(strstr(out, "--max-tokens: expected at least 1, got 0"), "%s", out);
    free(out);
    CHECK_EQ_INT(aloe_sh_run(ALOE_ENV, "chat --model /nonexistent --max-tokens -1 </dev/null", &out), 2);
    CHECK_MSG(strstr(out, "--max-tokens: expected at least 1, got -1"), "%s", out);
    free(out);
}

int main(void) {
    RUN(test_dialogues_help_passes_default);
    RUN(test_prompts_missing_file);
    RUN(test_personas_summary_plural);
    RUN(test_dialogues_resume_summary);
    RUN(test_train_sigint_status);
    RUN(test_complete_stops_at_context);
    RUN(test_speed_json_and_units);
    RUN(test_max_tokens_checked);
    return test_summary();
}
