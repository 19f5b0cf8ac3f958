/* aloe run after kill -9 inside every stage: the same command resumes and
 * the outputs equal an uninterrupted run's.
 *
 * The kills land on events, not on timing: ALOE_TEST_KILL_AT=OP:TEXT:N
 * (src/cli/main.c) makes the stage's process SIGKILL the study's `aloe run`
 * and then itself just before its Nth file operation OP on a path holding
 * TEXT — a pool round journaled, a conversation journaled, an export file
 * published, a checkpoint committed, a report written. Each killed run
 * leaves the stage started but not done; the next run resumes it and is
 * killed in the next stage; a last run finishes. Two of the stops are
 * Ctrl-C and a plain kill (SIGTERM) instead of kill -9. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/run_study.h"

/* The records of OUT/rel (JSONL with "id") by id, without usage.ROLE.cached:
 * the one thing a resume changes by nature (the killed run's answers come
 * back from the request cache). */
static json_t *records(const char *out, const char *rel) {
    char *p = path_join(out, rel), *text = test_read_text(p);
    json_t *by_id = json_object();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *r = json_loads(line, 0, NULL);
        if (!r) continue;
        const char *role;
        json_t *u;
        json_object_foreach(json_object_get(r, "usage"), role, u) json_object_del(u, "cached");
        const char *id = json_string_value(json_object_get(r, "id"));
        json_object_set_new(by_id, id ? id : "?", r);
    }
    free(text), free(p);
    return by_id;
}

static int same_bytes(const char *a_out, const char *b_out, const char *rel) {
    char *pa = path_join(a_out, rel), *pb = path_join(b_out, rel);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    Err e;
    int ok = !file_read_all(pa, &a, &la, &e) && !file_read_all(pb, &b, &lb, &e) && la == lb && !memcmp(a, b, la);
    free(a), free(b), free(pa), free(pb);
    return ok;
}

static int same_records(const char *a_out, const char *b_out, const char *rel) {
    json_t *a = records(a_out, rel), *b = records(b_out, rel);
    int ok = json_object_size(a) > 0 && json_equal(a, b);
    json_decref(a), json_decref(b);
    return ok;
}

static const struct {
    const char *stage, *kill_at, *left; /* left: a file the stage had written when killed */
    int sig;                            /* 0: SIGKILL; SIGTERM to aloe run, or SIGINT to both */
} KILLS[] = {
    {"personas", "append:profile.state.jsonl:2", "personas/profile.state.jsonl", 0},
    {"dialogues", "append:dialogues/trees.jsonl:2", "dialogues/trees.jsonl", 0},
    {"export", "rename:sft_rejected.jsonl:1", "export/sft_preferred.jsonl", 0},
    {"train/sft", "rename:train/sft/model/checkpoint-2:1", "train/sft/model/checkpoint-1", 0},
    /* before the first checkpoint is whole: only its staging folder is there */
    {"train/sft-rejected", "rename:train/sft-rejected/model/checkpoint-1.tmp:1", "train/sft-rejected/model", 0},
    {"train/sft-dpo", "rename:train/sft-dpo/model/checkpoint-2:1", "train/sft-dpo/model/checkpoint-1", 0},
    {"bench/dpo", "append:bench/dpo/dialogues.jsonl:3", "bench/dpo/dialogues.jsonl", 0},
    /* Ctrl-C (SIGINT to the process group) and kill PID (SIGTERM to aloe
     * run, passed on to the stage): the stage stops cleanly, exit 130 */
    {"bench/elsewhere", "append:bench/elsewhere/dialogues.jsonl:2", "bench/elsewhere/dialogues.jsonl", SIGINT},
    {"bench/served", "append:bench/served/dialogues.jsonl:2", "bench/served/dialogues.jsonl", SIGTERM},
    {"report", "rename:report/al.svg:1", "report/report.md", 0},
};

static void test_kill_inside_every_stage_then_resume(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2/model.safetensors");
    free(model);
    Study ref, s;
    NEED_STARTED(study_init(&ref) == 0, "fake_openai with the tiny script");
    NEED_STARTED(study_init(&s) == 0, "fake_openai with the tiny script");
    char *log = NULL;
    int rc = study_run(&ref, NULL, NULL, &log);
    CHECK_MSG(rc == 0, "reference run: exit %d:\n%s", rc, log);
    free(log);
    for (size_t i = 0; i < sizeof KILLS / sizeof *KILLS; i++) {
        char *env = xasprintf("ALOE_TEST_KILL_AT=%s ALOE_TEST_KILL_SIGNAL=%d", KILLS[i].kill_at, KILLS[i].sig);
        rc = study_run(&s, env, NULL, &log);
        free(env);
        /* killed (128 + SIGKILL) or interrupted (130), inside the stage:
         * started, not done, its partial output there */
        if (KILLS[i].sig)
            CHECK_MSG(rc == 130 && strstr(log, "interrupted; rerun the same command to resume"), "%s: exit %d:\n%s",
                      KILLS[i].stage, rc, log);
        else
            CHECK_MSG(rc == 137, "%s: exit %d:\n%s", KILLS[i].stage, rc, log);
        char *started = xasprintf("%s/.started.json", KILLS[i].stage), *done = xasprintf("%s/.done.json", KILLS[i].stage);
        CHECK_MSG(study_has(&s, started) && !study_has(&s, done) && study_has(&s, KILLS[i].left),
                  "%s: not killed inside the stage:\n%s", KILLS[i].stage, log);
        free(started), free(done);
        /* the stages before it finished */
        CHECK_MSG(i == 0 || strstr(log, "done"), "%s", log);
        free(log);
        if (!strcmp(KILLS[i].stage, "dialogues")) {
            /* a started stage's settings are as binding as a finished one's */
            CHECK(study_edit(&s, "num: 2", "num: 1") == 0);
            rc = study_run(&s, NULL, NULL, &log);
            CHECK_MSG(rc == 2 && strstr(log, "dialogues (started): dialogues.num (2 -> 1)"), "exit %d:\n%s", rc, log);
            free(log);
            CHECK(study_edit(&s, "num: 1", "num: 2") == 0);
        }
    }
    rc = study_run(&s, NULL, NULL, &log);
    CHECK_MSG(rc == 0, "last run: exit %d:\n%s", rc, log);
    free(log);
    /* Everything deterministic equals the uninterrupted run's. */
    const char *bytes[] = {"personas/profile.jsonl", "personas/personality.jsonl", "export/sft_preferred.jsonl",
                           "export/sft_rejected.jsonl", "export/dpo.jsonl",
                           /* training resumed from checkpoint-1 ends where an uninterrupted run does */
                           "train/sft/model/adapter_model.safetensors", "train/sft/merged/model.safetensors",
                           "train/sft-dpo/model/model.safetensors", "train/sft-rejected/model/model.safetensors"};
    for (int i = 0; i < 9; i++) CHECK_MSG(same_bytes(ref.out, s.out, bytes[i]), "%s differs", bytes[i]);
    const char *lines[] = {"dialogues/trees.jsonl", "bench/dpo/dialogues.jsonl", "bench/sft-dpo/dialogues.jsonl",
                           "bench/base/dialogues.jsonl"};
    for (int i = 0; i < 4; i++) CHECK_MSG(same_records(ref.out, s.out, lines[i]), "%s differs", lines[i]);
    const char *arms[] = {"base", "sft", "sft-rejected", "dpo", "sft-dpo", "elsewhere", "elsewhere-lora", "served"};
    for (int i = 0; i < 8; i++) {
        char *a = xasprintf("%s/bench/%s", ref.out, arms[i]), *b = xasprintf("%s/bench/%s", s.out, arms[i]);
        json_t *ra = aloe_sh_json(a, "results.json"), *rb = aloe_sh_json(b, "results.json");
        const char *keys[] = {"turns", "avg", "ir", "conversations"};
        for (int k = 0; k < 4; k++)
            CHECK_MSG(json_equal(json_object_get(ra, keys[k]), json_object_get(rb, keys[k])), "%s: %s differs", arms[i],
                      keys[k]);
        json_decref(ra), json_decref(rb);
        free(a), free(b);
    }
    CHECK(study_has(&s, "report/al.svg"));
    study_free(&ref);
    study_free(&s);
}

int main(void) {
    RUN(test_kill_inside_every_stage_then_resume);
    return test_summary();
}
