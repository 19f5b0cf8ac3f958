/* aloe bench's protocols, seen from the endpoint (the fake server's request
 * log): under the default paper protocol the evaluated model gets no system
 * message and 2048 tokens, the user simulator its filled instructions as its
 * first user message, simulator and judge 300 tokens; stage directions never
 * reach the model or the judge (the raw text stays in the record);
 * --system-prompt(-file) and the token flags are sent and recorded; a run
 * resumes only under its own protocol (a run.json from before --protocol is
 * a rubric run); --skip-failed skips, lists and retries a conversation whose
 * request is refused for its content. */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

#define ALOE_ENV "OPENAI_API_KEY=sk-test"

/* "user-sim" opens with a stage direction; "user-filter" is refused (HTTP
 * 400, as a content filter answers) for profile number 1's conversations. */
static const char *script =
    "{\"models\": {"
    "\"user-sim\": {\"reply\": \"*waves* hello, turn {turns}\"},"
    "\"user-filter\": {\"reply\": \"hi there ({hash})\", \"rules\": [{\"any_contains\": \"profile number 1\","
    "                  \"fault\": {\"status\": 400, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"content filter: "
    "flagged\\\"}}\"}}]},"
    "\"judge\": {\"reply\": \"4\"},"
    "\"locked\": {\"always\": {\"status\": 401}},"
    "\"refuse-all\": {\"always\": {\"status\": 400}}"
    "}, \"*\": {\"reply\": \"echo: {last_user}\"}}";

typedef struct {
    char *dir, *profiles, *personalities;
} Data;

static void data_init(Data *d) {
    d->dir = test_tmpdir();
    d->profiles = path_join(d->dir, "profiles.jsonl");
    d->personalities = path_join(d->dir, "personalities.jsonl");
    test_put_text(d->profiles, "\"profile number 0\"\n\"profile number 1\"\n");
    test_put_text(d->personalities, "\"personality number 0\"\n\"personality number 1\"\n");
}

static void data_free(Data *d) {
    free(d->dir);
    free(d->profiles);
    free(d->personalities);
}

/* 2 profiles x 2 personalities x `turns` turns, with extra flags. */
static char *args_for(const Data *d, const FakeServer *fs, const char *out, const char *user, int turns,
                      const char *extra) {
    return xasprintf("bench --model m --user-model %s --judge-model judge --profiles %s --personalities %s "
                     "--personalities-per-profile 2 --turns %d -j 2 --base-url %s --out %s --quiet --timeout 20 %s",
                     user, d->profiles, d->personalities, turns, fs->url, out, extra);
}

/* Every logged request of a model, in arrival order (caller decrefs). */
static json_t *requests_of(FakeServer *fs, const char *model) {
    json_t *all = fake_log(fs), *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        const char *m = json_string_value(json_object_get(r, "model"));
        if (m && !strcmp(m, model)) json_array_append(out, json_object_get(r, "body"));
    }
    json_decref(all);
    return out;
}

static json_t *messages(json_t *body) { return json_object_get(body, "messages"); }
static const char *role_of(json_t *msg) { return json_string_value(json_object_get(msg, "role")); }
static const char *content_of(json_t *msg) { return json_string_value(json_object_get(msg, "content")); }

/* The request's max_tokens, or 0 when it sent none (the server's default). */
static long max_tokens_of(json_t *body) { return (long)json_integer_value(json_object_get(body, "max_tokens")); }

static void test_paper_default_body(FakeServer *fs) {
    Data d;
    data_init(&d);
    char *out = path_join(d.dir, "run");
    char *args = args_for(&d, fs, out, "user-sim", 2, "");
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);

    /* The evaluated model: no system message, the stripped user message, 2048 tokens. */
    json_t *model = requests_of(fs, "m");
    CHECK_EQ_INT(json_array_size(model), 8);
    size_t i, k;
    json_t *b, *msg;
    json_array_foreach(model, i, b) {
        json_array_foreach(messages(b), k, msg) {
            CHECK_MSG(strcmp(role_of(msg), "system"), "a system message reached the evaluated model: %s",
                      content_of(msg));
            if (!strcmp(role_of(msg), "user"))
                CHECK_MSG(!strchr(content_of(msg), '*'), "a stage direction reached the model: %s", content_of(msg));
        }
        CHECK_EQ_INT(max_tokens_of(b), 2048);
    }
    json_t *first = json_array_get(messages(json_array_get(model, 0)), 0);
    CHECK_EQ_STR(role_of(first), "user");
    CHECK_EQ_STR(content_of(first), "hello, turn 1");

    /* The user simulator: its first request is its filled instructions as
     * the one user message; later ones carry what it said, stripped. */
    json_t *user = requests_of(fs, "user-sim");
    CHECK_EQ_INT(json_array_size(user), 8);
    int firsts = 0;
    json_array_foreach(user, i, b) {
        CHECK_EQ_INT(max_tokens_of(b), 300);
        json_t *m = messages(b);
        CHECK_EQ_STR(role_of(json_array_get(m, 0)), "user");
        const char *instr = content_of(json_array_get(m, 0));
        CHECK_MSG(strstr(instr, "profile number ") && strstr(instr, "personality number "),
                  "the simulator's first message lacks the persona: %s", instr);
        if (json_array_size(m) == 1) {
            firsts++;
        } else {
            CHECK_EQ_INT(json_array_size(m), 3);
            CHECK_EQ_STR(role_of(json_array_get(m, 1)), "assistant");
            CHECK_EQ_STR(content_of(json_array_get(m, 1)), "hello, turn 1");
            CHECK_EQ_STR(role_of(json_array_get(m, 2)), "user");
            /* the evaluated model's reply as it wrote it: the authors'
             * evaluation (eval_own.py) adds no "within 3 sentences"
             * reminder, unlike their data generation */
            CHECK_EQ_STR(content_of(json_array_get(m, 2)), "echo: hello, turn 1");
        }
    }
    CHECK_EQ_INT(firsts, 4);

    /* The judge: the stripped message, 300 tokens; "4" is a score. */
    json_t *judge = requests_of(fs, "judge");
    CHECK_EQ_INT(json_array_size(judge), 8);
    json_array_foreach(judge, i, b) {
        CHECK_EQ_INT(max_tokens_of(b), 300);
        CHECK(!strstr(content_of(json_array_get(messages(b), 0)), "*waves*"));
    }

    /* The record keeps the raw message; the settings name the protocol. */
    char *dp = path_join(out, "dialogues.jsonl");
    char *text = test_read_text(dp);
    json_t *rec = json_loads(text, JSON_DISABLE_EOF_CHECK, NULL);
    json_t *t1 = json_array_get(json_object_get(rec, "turns"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(t1, "user")), "hello, turn 1");
    CHECK_EQ_STR(json_string_value(json_object_get(t1, "user_raw")), "*waves* hello, turn 1");
    CHECK_EQ_INT(json_integer_value(json_object_get(t1, "score")), 4);
    json_t *run = aloe_sh_json(out, "run.json"), *res = aloe_sh_json(out, "results.json");
    CHECK_EQ_STR(json_string_value(json_object_get(run, "protocol")), "paper");
    CHECK_EQ_INT(json_integer_value(json_object_get(run, "max_tokens")), 2048);
    CHECK_EQ_INT(json_integer_value(json_object_get(run, "user_max_tokens")), 300);
    CHECK_EQ_INT(json_integer_value(json_object_get(run, "judge_max_tokens")), 300);
    CHECK(!json_object_get(run, "system_prompt"));
    json_t *settings = json_object_get(res, "settings");
    CHECK_EQ_STR(json_string_value(json_object_get(settings, "protocol")), "paper");
    CHECK(json_is_false(json_object_get(settings, "skip_failed")));
    CHECK_NEAR(json_number_value(json_object_get(res, "avg")), 4, 0);
    CHECK_EQ_INT(json_array_size(json_object_get(res, "skipped")), 0);
    json_decref(run);
    json_decref(res);
    json_decref(rec);
    free(text);
    free(dp);
    json_decref(model);
    json_decref(user);
    json_decref(judge);
    free(args);
    free(out);
    data_free(&d);
}

static void test_paper_default(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    test_paper_default_body(&fs);
    fake_stop(&fs);
}

/* --system-prompt, --system-prompt-file and the token flags reach the
 * requests and run.json; the rubric's defaults are kept under --protocol rubric. */
static void test_flags_body(FakeServer *fs) {
    Data d;
    data_init(&d);
    char *out = path_join(d.dir, "a");
    char *args = args_for(&d, fs, out, "user-sim", 1,
                          "--system-prompt 'Be brief.' --max-tokens 64 --user-max-tokens 32 --judge-max-tokens 16");
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    json_t *b = fake_log_last(fs, "m");
    json_t *m0 = json_array_get(messages(json_object_get(b, "body")), 0);
    CHECK_EQ_STR(role_of(m0), "system");
    CHECK_EQ_STR(content_of(m0), "Be brief.");
    CHECK_EQ_INT(max_tokens_of(json_object_get(b, "body")), 64);
    json_decref(b);
    b = fake_log_last(fs, "user-sim");
    CHECK_EQ_INT(max_tokens_of(json_object_get(b, "body")), 32);
    json_decref(b);
    b = fake_log_last(fs, "judge");
    CHECK_EQ_INT(max_tokens_of(json_object_get(b, "body")), 16);
    json_decref(b);
    json_t *run = aloe_sh_json(out, "run.json");
    CHECK_EQ_STR(json_string_value(json_object_get(run, "system_prompt")), "Be brief.");
    CHECK_EQ_INT(json_integer_value(json_object_get(run, "max_tokens")), 64);
    CHECK_EQ_INT(json_integer_value(json_object_get(run, "user_max_tokens")), 32);
    CHECK_EQ_INT(json_integer_value(json_object_get(run, "judge_max_tokens")), 16);
    json_decref(run);
    free(args);
    free(out);

    /* From a file: its text without the editor's last newline. */
    char *sp = path_join(d.dir, "system.txt");
    test_put_text(sp, "You chat like a friend.\n");
    out = path_join(d.dir, "b");
    char *extra = xasprintf("--system-prompt-file %s", sp);
    args = args_for(&d, fs, out, "user-sim", 1, extra);
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    b = fake_log_last(fs, "m");
    m0 = json_array_get(messages(json_object_get(b, "body")), 0);
    CHECK_EQ_STR(role_of(m0), "system");
    CHECK_EQ_STR(content_of(m0), "You chat like a friend.");
    json_decref(b);
    free(args);
    free(extra);

    /* Both at once, a negative limit, an unknown protocol: refused. */
    extra = xasprintf("--system-prompt x --system-prompt-file %s", sp);
    args = args_for(&d, fs, out, "user-sim", 1, extra);
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc != 0 && strstr(log, "give one of them"), "exit %d: %s", rc, log);
    free(log);
    free(args);
    free(extra);
    args = args_for(&d, fs, out, "user-sim", 1, "--judge-max-tokens -1");
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc != 0 && strstr(log, "--judge-max-tokens: expected 0 (server default) or more, got -1"), "exit %d: %s",
              rc, log);
    free(log);
    free(args);
    args = args_for(&d, fs, out, "user-sim", 1, "--protocol paperish");
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc != 0 && strstr(log, "--protocol: expected paper or rubric, got \"paperish\""), "exit %d: %s", rc, log);
    free(log);
    free(args);
    free(out);

    /* Rubric: a system prompt and an opening instruction as before, the
     * server's token limits unless --max-tokens, which limits every role. */
    out = path_join(d.dir, "c");
    args = args_for(&d, fs, out, "user-sim", 1, "--protocol rubric");
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    const char *roles[] = {"m", "user-sim", "judge"};
    for (int i = 0; i < 3; i++) {
        b = fake_log_last(fs, roles[i]);
        CHECK_MSG(!json_object_get(json_object_get(b, "body"), "max_tokens"), "%s sent max_tokens", roles[i]);
        if (i < 2) CHECK_EQ_STR(role_of(json_array_get(messages(json_object_get(b, "body")), 0)), "system");
        json_decref(b);
    }
    free(args);
    free(out);
    out = path_join(d.dir, "d");
    args = args_for(&d, fs, out, "user-sim", 1, "--protocol rubric --max-tokens 50");
    rc = aloe_sh_run(ALOE_ENV, args, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    for (int i = 0; i < 3; i++) {
        b = fake_log_last(fs, roles[i]);
        CHECK_EQ_INT(max_tokens_of(json_object_get(b, "body")), 50);
        json_decref(b);
    }
    free(args);
    free(out);
    free(sp);
    data_free(&d);
}

static void test_flags(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    test_flags_body(&fs);
    fake_stop(&fs);
}

/* A run resumes only under its own protocol; a run.json written before
 * --protocol existed is a rubric run: it resumes with --protocol rubric, and
 * the paper default is refused with a message that says so. */
static void test_protocol_guard_on_resume_body(FakeServer *fs) {
    Data d;
    data_init(&d);
    char *out = path_join(d.dir, "run");
    char *rubric = args_for(&d, fs, out, "user-sim", 1, "--protocol rubric");
    char *paper = args_for(&d, fs, out, "user-sim", 1, "");
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, rubric, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    rc = aloe_sh_run(ALOE_ENV, paper, &log);
    CHECK_MSG(rc == 2 && strstr(log, "other settings") && strstr(log, "protocol: was \"rubric\", now \"paper\""),
              "exit %d: %s", rc, log);
    free(log);
    /* The run.json of an older aloe: no protocol, one token limit. */
    char *rp = path_join(out, "run.json");
    json_t *old = json_load_file(rp, 0, NULL);
    CHECK(old);
    /* the rubric texts' digest is the one aloe wrote before the protocols
     * (commit d0d016b): its runs resume */
    CHECK_EQ_STR(json_string_value(json_object_get(old, "prompts_sha256")),
                 "2ea4c16ad27f6323bb1ecc9728d51c61ea8d6a2a4170c9453db9f14acd499d9e");
    json_object_del(old, "protocol");
    json_object_del(old, "user_max_tokens");
    json_object_del(old, "judge_max_tokens");
    char *s = json_dumps(old, JSON_INDENT(2) | JSON_SORT_KEYS);
    test_put_text(rp, s);
    free(s);
    json_decref(old);
    rc = aloe_sh_run(ALOE_ENV, paper, &log);
    CHECK_MSG(rc == 2 && strstr(log, "protocol: was \"rubric\" (not recorded: runs made before --protocol used the "
                                     "rubric protocol; resume such a run with --protocol rubric), now \"paper\""),
              "exit %d: %s", rc, log);
    free(log);
    rc = aloe_sh_run(ALOE_ENV, rubric, &log);
    CHECK_MSG(rc == 0, "the old run should resume under --protocol rubric: exit %d: %s", rc, log);
    free(log);
    free(rp);
    free(rubric);
    free(paper);
    free(out);
    data_free(&d);
}

static void test_protocol_guard_on_resume(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    test_protocol_guard_on_resume_body(&fs);
    fake_stop(&fs);
}

/* Requests the server answered with a fault (HTTP 400 here). */
static int faulted(FakeServer *fs) {
    json_t *all = fake_log(fs);
    int n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) n += strcmp(json_string_value(json_object_get(r, "fault")), "none") != 0;
    json_decref(all);
    return n;
}

static void test_skip_failed_body(FakeServer *fs) {
    Data d;
    data_init(&d);
    char *out = path_join(d.dir, "run");
    /* Default: the refusal stops the run, saying what failed and what would skip it. */
    char *stop = args_for(&d, fs, out, "user-filter", 2, "-j 1");
    char *log;
    int rc = aloe_sh_run(ALOE_ENV, stop, &log);
    CHECK_MSG(rc == 1 && strstr(log, "HTTP 400") && strstr(log, "content filter: flagged") &&
                  strstr(log, "--skip-failed skips its conversation"),
              "exit %d: %s", rc, log);
    free(log);
    /* --skip-failed (not a setting of the run: it resumes). */
    char *skip = args_for(&d, fs, out, "user-filter", 2, "-j 1 --skip-failed");
    rc = aloe_sh_run(ALOE_ENV, skip, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    CHECK_MSG(strstr(log, "4 conversations x 2 turns, 2 skipped") && strstr(log, "skipped: 2 conversations") &&
                  strstr(log, "aloe: skipped p1-k0: ") && strstr(log, "aloe: skipped p1-k1: "),
              "%s", log);
    free(log);
    json_t *r = aloe_sh_json(out, "results.json");
    json_t *sk = json_object_get(r, "skipped");
    CHECK_EQ_INT(json_array_size(sk), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(sk, 0), "id")), "p1-k0");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(sk, 1), "id")), "p1-k1");
    const char *why = json_string_value(json_object_get(json_array_get(sk, 0), "error"));
    CHECK_MSG(why && strstr(why, "user simulator") && strstr(why, "HTTP 400") && strstr(why, "content filter"), "%s",
              why ? why : "(none)");
    json_t *conv = json_object_get(r, "conversations");
    CHECK_EQ_INT(json_integer_value(json_object_get(conv, "done")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(conv, "skipped")), 2);
    CHECK(json_is_false(json_object_get(r, "complete")));
    CHECK(json_is_true(json_object_get(json_object_get(r, "settings"), "skip_failed")));
    /* left out of AL: only the two finished conversations are scored */
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(json_object_get(r, "turns"), 0), "n")), 2);
    json_decref(r);
    CHECK_EQ_INT(aloe_sh_lines(out, "dialogues.jsonl"), 2);
    char *md = path_join(out, "report.md"), *mdt = test_read_text(md);
    CHECK_MSG(strstr(mdt, "**Skipped:** 2 conversations") && strstr(mdt, "- `p1-k0`: "), "%s", mdt);
    free(mdt);
    free(md);
    /* A rerun tries the skipped ones again (one refused request each). */
    int before = faulted(fs);
    rc = aloe_sh_run(ALOE_ENV, skip, &log);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, log);
    free(log);
    CHECK_EQ_INT(faulted(fs), before + 2);
    CHECK_EQ_INT(aloe_sh_lines(out, "dialogues.jsonl"), 2);
    /* A failure that would hit every conversation still stops the run. */
    char *out2 = path_join(d.dir, "locked");
    char *locked = xasprintf("bench --model locked --user-model user-sim --judge-model judge --profiles %s "
                             "--personalities %s --personalities-per-profile 2 --turns 1 -j 1 --base-url %s --out %s "
                             "--quiet --skip-failed",
                             d.profiles, d.personalities, fs->url, out2);
    rc = aloe_sh_run(ALOE_ENV, locked, &log);
    CHECK_MSG(rc == 1 && strstr(log, "401"), "exit %d: %s", rc, log);
    free(log);
    CHECK_EQ_INT(fake_log_count(fs, "locked"), 1);
    free(locked);
    /* So does an endpoint nobody listens on (port 9). */
    locked = xasprintf("bench --model m --user-model user-sim --judge-model judge --profiles %s --personalities %s "
                       "--personalities-per-profile 2 --turns 1 -j 1 --base-url http://127.0.0.1:9/v1 --out %s/x "
                       "--quiet --retries 0 --skip-failed",
                       d.profiles, d.personalities, out2);
    rc = aloe_sh_run(ALOE_ENV, locked, &log);
    CHECK_MSG(rc == 1 && strstr(log, "cannot reach") && !strstr(log, "skipped"), "exit %d: %s", rc, log);
    free(log);
    free(locked);
    /* Every conversation skipped: nothing was measured, and the run says so
     * (exit 1, as aloe dialogues), still listing them in results.json. */
    locked = xasprintf("bench --model refuse-all --user-model user-sim --judge-model judge --profiles %s "
                       "--personalities %s --personalities-per-profile 2 --turns 1 -j 1 --base-url %s --out %s/all "
                       "--quiet --skip-failed",
                       d.profiles, d.personalities, fs->url, out2);
    rc = aloe_sh_run(ALOE_ENV, locked, &log);
    CHECK_MSG(rc == 1 && strstr(log, "every conversation failed (4 skipped)") && strstr(log, "HTTP 400"),
              "exit %d: %s", rc, log);
    free(log);
    char *all = path_join(out2, "all");
    r = aloe_sh_json(all, "results.json");
    CHECK_EQ_INT(json_array_size(json_object_get(r, "skipped")), 4);
    json_decref(r);
    free(all);
    free(locked);
    free(out2);
    free(skip);
    free(stop);
    free(out);
    data_free(&d);
}

static void test_skip_failed(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    test_skip_failed_body(&fs);
    fake_stop(&fs);
}

int main(void) {
    RUN(test_paper_default);
    RUN(test_flags);
    RUN(test_protocol_guard_on_resume);
    RUN(test_skip_failed);
    return test_summary();
}
