/* aloe run: the tiny preset end to end on the fake endpoint and the tiny
 * fixture model (pools generated with the fake generator and embedder,
 * dialogues, export, eight arms of every kind, eight benchmarks, one
 * report); a rerun that does nothing; a changed setting of a finished stage
 * refused and redone with --from; --dry-run; the command's own errors. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/run_study.h"

static const char *const STAGES[] = {"personas",           "dialogues",       "export",
                                     "train/sft",          "train/sft-rejected", "train/dpo",
                                     "train/sft-dpo",      "train/elsewhere-lora", "bench/base",
                                     "bench/sft",          "bench/sft-rejected", "bench/dpo",
                                     "bench/sft-dpo",      "bench/elsewhere", "bench/elsewhere-lora",
                                     "bench/served",       "report"};
enum { NSTAGES = sizeof STAGES / sizeof *STAGES, NARMS = 8 };
static const char *const ARMS[] = {"base", "sft", "sft-rejected", "dpo", "sft-dpo", "elsewhere", "elsewhere-lora",
                                   "served"};

static long mtime_of(const Study *s, const char *rel) {
    char *p = path_join(s->out, rel);
    struct stat st;
    long t = stat(p, &st) ? -1 : (long)st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
    free(p);
    return t;
}

static void check_finished(Study *s, const char *log) {
    for (int i = 0; i < NSTAGES; i++) {
        char *m = xasprintf("%s/.done.json", STAGES[i]);
        CHECK_MSG(study_has(s, m), "%s: no marker\n%s", STAGES[i], log);
        free(m);
    }
    /* pools generated (seeds + new members), copied eval pools */
    CHECK_EQ_INT(aloe_sh_lines(s->out, "personas/profile.jsonl"), 22);
    CHECK_EQ_INT(aloe_sh_lines(s->out, "personas/personality.jsonl"), 9);
    CHECK_EQ_INT(aloe_sh_lines(s->out, "dialogues/trees.jsonl"), 2);
    /* 2 conversations x 2 turns: 4 records in each export */
    CHECK_EQ_INT(aloe_sh_lines(s->out, "export/sft_preferred.jsonl"), 4);
    CHECK_EQ_INT(aloe_sh_lines(s->out, "export/sft_rejected.jsonl"), 4);
    CHECK_EQ_INT(aloe_sh_lines(s->out, "export/dpo.jsonl"), 4);
    CHECK(study_has(s, "train/sft/model/adapter_model.safetensors"));
    CHECK(study_has(s, "train/sft/merged/model.safetensors"));
    CHECK(study_has(s, "train/sft-rejected/model/model.safetensors"));
    CHECK(study_has(s, "train/sft-dpo/model/model.safetensors"));
    CHECK(study_has(s, "train/elsewhere-lora/merged/model.safetensors"));
    for (int i = 0; i < NARMS; i++) {
        char *d = xasprintf("%s/bench/%s", s->out, ARMS[i]);
        json_t *r = aloe_sh_json(d, "results.json");
        CHECK_MSG(r, "%s: no results.json", ARMS[i]);
        /* 20 eval profiles x K 1 */
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "conversations"), "done")), 20);
        CHECK(json_is_true(json_object_get(r, "complete")));
        json_decref(r);
        free(d);
    }
    /* the report: one row per arm, in the recipe's order */
    char *md_path = path_join(s->out, "report/report.md"), *md = test_read_text(md_path);
    const char *at = md;
    const char *rows[NARMS];
    char row_text[NARMS][64];
    for (int i = 0; i < NARMS; i++) { /* labelled by arm */
        snprintf(row_text[i], sizeof row_text[i], "\n| %s |", ARMS[i]);
        rows[i] = row_text[i];
    }
    for (int i = 0; i < NARMS; i++) {
        const char *next = strstr(at, rows[i]);
        CHECK_MSG(next, "report: row %s missing or out of order:\n%s", rows[i], md);
        at = next;
    }
    CHECK(study_has(s, "report/al.svg"));
    json_t *cmp = aloe_sh_json(s->out, "report/compare.json"); /* every arm paired with the first */
    CHECK(cmp && json_array_size(json_object_get(cmp, "comparisons")) == NARMS - 1);
    json_decref(cmp);
    free(md), free(md_path);
}

static void test_tiny_study_end_to_end_then_resume_does_nothing(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2/model.safetensors");
    free(model);
    Study s;
    NEED_STARTED(study_init(&s) == 0, "fake_openai with the tiny script");
    char *log = NULL;
    int rc = study_run(&s, NULL, NULL, &log);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, log);
    check_finished(&s, log);
    /* a status line per stage with its count and cost */
    CHECK_MSG(strstr(log, "[2/17] dialogues") && strstr(log, "done     2/2 conversations; 24 requests"), "%s", log);
    CHECK_MSG(strstr(log, "[9/17] bench/base") && strstr(log, "20/20 conversations; 120 requests"), "%s", log);
    CHECK_MSG(strstr(log, "[4/17] train/sft") && strstr(log, "2/2 steps"), "%s", log);
    CHECK_MSG(strstr(log, "study done: "), "%s", log);
    free(log);
    /* The same command again: every stage is done, nothing is asked of the
     * endpoint and no output is rewritten. */
    int before = fake_log_count(&s.fs, NULL);
    long t = mtime_of(&s, "bench/sft/results.json");
    rc = study_run(&s, NULL, NULL, &log);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, log);
    CHECK_EQ_INT(fake_log_count(&s.fs, NULL), before);
    CHECK_EQ_INT(mtime_of(&s, "bench/sft/results.json"), t);
    CHECK_MSG(!strstr(log, "running"), "%s", log);
    free(log);

    /* A finished stage whose setting changed is refused, naming the stage
     * and the key, and nothing runs. */
    CHECK(study_edit(&s, "num: 2", "num: 1") == 0);
    rc = study_run(&s, NULL, NULL, &log);
    CHECK_MSG(rc == 2 && strstr(log, "dialogues (finished): dialogues.num (2 -> 1)") &&
                  strstr(log, "--from dialogues"),
              "exit %d:\n%s", rc, log);
    CHECK_EQ_INT(fake_log_count(&s.fs, NULL), before);
    free(log);
    /* --dry-run shows every stage, its command and estimate, the total, and
     * what is done already. */
    rc = study_run(&s, NULL, "--dry-run", &log);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, log);
    for (int i = 0; i < NSTAGES; i++) {
        char *h = xasprintf("[%d/%d] %s -> ", i + 1, (int)NSTAGES, STAGES[i]);
        CHECK_MSG(strstr(log, h), "no %s in:\n%s", h, log);
        free(h);
    }
    CHECK_MSG(strstr(log, "$ aloe dialogues ") && strstr(log, "--num 1") && strstr(log, "estimate: 12 requests") &&
                  strstr(log, "total: ") && strstr(log, "(bench/served is already done"),
              "%s", log);
    free(log);
    rc = study_run(&s, NULL, "--dry-run --from train/sft", &log);
    CHECK_MSG(rc == 0 && strstr(log, "/study/train/sft would be moved aside") &&
                  strstr(log, "/study/bench/sft-dpo would be moved aside") && !strstr(log, "train/dpo would be"),
              "exit %d:\n%s", rc, log);
    free(log);
    /* --from dialogues redoes it and what depends on it, moving their folders
     * aside; the pools and the arms that do not train are kept. */
    long t_pool = mtime_of(&s, "personas/profile.jsonl"), t_served = mtime_of(&s, "bench/served/results.json");
    int served = fake_log_count(&s.fs, "fake-served");
    rc = study_run(&s, NULL, "--from dialogues", &log);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, log);
    CHECK_MSG(strstr(log, "moved ") && strstr(log, "/study/dialogues aside to ") && strstr(log, "/.old/"), "%s", log);
    CHECK_EQ_INT(aloe_sh_lines(s.out, "dialogues/trees.jsonl"), 1);
    CHECK_EQ_INT(aloe_sh_lines(s.out, "export/dpo.jsonl"), 2);
    CHECK_EQ_INT(mtime_of(&s, "personas/profile.jsonl"), t_pool);
    CHECK_EQ_INT(mtime_of(&s, "bench/served/results.json"), t_served);
    CHECK_EQ_INT(fake_log_count(&s.fs, "fake-served"), served);
    CHECK(study_has(&s, "report/report.md"));
    free(log);
    study_free(&s);
}

static void test_command_errors(void) {
    char *dir = test_tmpdir(), *f = path_join(dir, "r.yaml"), *log = NULL;
    /* an unset variable: file, line, column, key */
    test_put_text(f, "# a study\nout: ${ALOE_TEST_UNSET_VAR}/x\n");
    char *args = xasprintf("run %s", f);
    int rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 1 && strstr(log, "r.yaml:2:6: out: ${ALOE_TEST_UNSET_VAR} is not set"), "exit %d: %s", rc, log);
    free(log), free(args);
    /* --preset never overwrites a file */
    args = xasprintf("run --preset paper --out %s", f);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "the file exists"), "exit %d: %s", rc, log);
    free(log), free(args);
    rc = aloe_sh_run(NULL, "run --preset huge", &log);
    CHECK_MSG(rc == 2 && strstr(log, "no such preset (expected paper or tiny)"), "exit %d: %s", rc, log);
    free(log);
    /* the paper preset to stdout is a valid recipe */
    rc = aloe_sh_run(NULL, "run --preset paper", &log);
    CHECK_MSG(rc == 0 && strstr(log, "Meta-Llama-3-8B-Instruct") && strstr(log, "beta: 0.9"), "exit %d: %s", rc, log);
    free(log);
    /* --from names a stage of the plan */
    test_put_text(f, "out: o\npersonas:\n  eval:\n    published: /p\narms: [{name: a, checkpoint: /c}]\n"
                     "bench: {user: u, judge: j}\n");
    args = xasprintf("run %s --dry-run --from dialogues", f);
    rc = aloe_sh_run(NULL, args, &log);
    CHECK_MSG(rc == 2 && strstr(log, "--from dialogues: no such stage (the stages: personas, bench/a, report"),
              "exit %d: %s", rc, log);
    free(log), free(args);
    free(f), free(dir);
}

int main(void) {
    RUN(test_tiny_study_end_to_end_then_resume_does_nothing);
    RUN(test_command_errors);
    return test_summary();
}
