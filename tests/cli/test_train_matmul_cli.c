/* `aloe train --matmul`: the flag's values as the command line takes them
 * (a bad one is refused naming the flag and what it expects), and a
 * --matmul bf16 run records the setting in its checkpoint whatever the CPU
 * (where it has no bf16 products the run says so and goes on in f32). */
#include <string.h>

#include "cli/aloe_sh.h"
#include "train/fixture_trees.h"

/* `aloe train sft` on the tiny Qwen2 fixture with `flags` (env NULL or
 * "VAR=value"): its exit status, its log and the output directory (*out
 * NULL, nothing run, without the shared fixtures). */
static int train(const char *env, const char *flags, char **log, char **out) {
    char *model = test_shared_path("fixtures/models/tiny-qwen2");
    *log = *out = NULL;
    if (!model) return -1;
    char *data = test_write_file("trees.jsonl", TREES), *dir = test_tmpdir();
    *out = path_join(dir, "out");
    char *args = xasprintf("train sft --model '%s' --data '%s' --out '%s' %s", model, data, *out, flags);
    int rc = aloe_sh_run(env, args, log);
    free(model), free(data), free(dir), free(args);
    return rc;
}

static void test_bad_value_names_flag(void) {
    char *log, *out;
    int rc = train(NULL, "--steps 1 --matmul fp8", &log, &out);
    if (!out) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc != 0 && log && strstr(log, "--matmul: expected f32 or bf16, got \"fp8\""), "rc %d: %s", rc,
              log ? log : "");
    free(out), free(log);
}

static void test_bf16_run_records_it(void) {
    char *log, *out;
    int rc = train(NULL, "--steps 2 --lr 1e-3 -t 2 -q --matmul bf16", &log, &out);
    if (!out) SKIP("fixtures not found (set ALOE_SHARED)");
    CHECK_MSG(rc == 0, "rc %d: %s", rc, log ? log : "");
    char *ck = path_join(out, "checkpoint-2");
    json_t *st = aloe_sh_json(ck, "trainer_state.json");
    const char *mm = json_string_value(json_object_get(json_object_get(st, "settings"), "matmul"));
    CHECK_MSG(mm && !strcmp(mm, "bf16"), "checkpoint-2/trainer_state.json: settings.matmul %s", mm ? mm : "absent");
    if (st) json_decref(st);
    free(out), free(log), free(ck);
}

/* At the scalar kernel level (no vdpbf16ps on any CPU) the run says so once and goes
 * on with f32 products. */
static void test_fallback_notice(void) {
    char *log, *out;
    int rc = train("ALOE_CPU=scalar", "--steps 2 -q --matmul bf16", &log, &out);
    if (!out) SKIP("fixtures not found (set ALOE_SHARED)");
    const char *hit = log ? strstr(log, "no bf16 dot product") : NULL;
    CHECK_MSG(rc == 0 && hit && !strstr(hit + 1, "no bf16 dot product"), "rc %d: %s", rc, log ? log : "");
    free(out), free(log);
}

int main(void) {
    RUN(test_bad_value_names_flag);
    RUN(test_bf16_run_records_it);
    RUN(test_fallback_notice);
    return test_summary();
}
