/* `aloe dialogues --protocol paper|rubric` and `--skip-failed` through the
 * binary and the fake OpenAI-compatible server: every role's filled prompt
 * reaches the server with the persona, the transcript or the hint in it;
 * the token limit of each protocol; a conversation failing for good is
 * skipped, listed and retried by a rerun. */
#include <stdlib.h>

#include "llm/fake_server.h"
#include "run_aloe.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

#define NEED_SERVER() NEED_STARTED(fs_up, "fake_openai")

/* The user simulator of a persona with BLOCKED in its profile is refused
 * with HTTP 400 (a content filter), every time. */
static const char *SCRIPT =
    "{\"models\": {"
    " \"user-sim\": {\"reply\": \"*nods* Hi, message {turns}\", \"rules\": [{\"any_contains\": \"BLOCKED\","
    "   \"fault\": {\"status\": 400, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"content filter\\\"}}\"}}]},"
    " \"inducer\": {\"reply\": \"Profile: INF-PROF-1\\nPersonalities: INF-PERS\", \"rules\": ["
    "   {\"contains\": \"Hi, message 2\", \"reply\": \"Profile: INF-PROF-2\\nPersonalities: INF-PERS\"}]},"
    " \"hinted\": {\"reply\": \"hinted {hash}\"},"
    " \"plain\": {\"reply\": \"plain {hash}\"},"
    " \"judge\": {\"reply\": \"first\"}"
    "}}";

static char *setup_dir(const char *profiles) {
    char *dir = test_tmpdir(), *p = path_join(dir, "prof.jsonl"), *q = path_join(dir, "pers.jsonl");
    Err e;
    const char *pers = "\"PERSONALITY-OMEGA gruff\"\n";
    file_write_atomic(p, profiles, strlen(profiles), &e);
    file_write_atomic(q, pers, strlen(pers), &e);
    free(p);
    free(q);
    return dir;
}

/* Runs aloe dialogues with the common flags, then `extra` (NULL-ended). */
static int run(const char *dir, const char *out, const char *const *extra) {
    char prof[512], pers[512];
    snprintf(prof, sizeof prof, "%s/prof.jsonl", dir);
    snprintf(pers, sizeof pers, "%s/pers.jsonl", dir);
    const char *a[64] = {"dialogues", "--profiles", prof, "--personalities", pers, "--turns", "2", "--seed", "3",
                         "-j", "2", "--user-model", "user-sim", "--inducer-model", "inducer", "--hinted-model",
                         "hinted", "--plain-model", "plain", "--judge-model", "judge", "--base-url", fs.url,
                         "--retries", "1", "--timeout", "20", "-q", "--out", out};
    int n = 0;
    while (a[n]) n++;
    for (int i = 0; extra && extra[i]; i++) a[n++] = extra[i];
    a[n] = NULL;
    return aloe_run(dir, a);
}

/* The requests a model got since log entry `from`, as their bodies. */
static json_t *requests_of(const char *model, size_t from) {
    json_t *all = fake_log(&fs), *out = json_array(), *r;
    size_t i;
    json_array_foreach(all, i, r) {
        if (i < from) continue;
        if (!strcmp(json_string_value(json_object_get(r, "model")), model))
            json_array_append(out, json_object_get(r, "body"));
    }
    json_decref(all);
    return out;
}

static size_t log_size(void) {
    json_t *all = fake_log(&fs);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

static json_t *msgs(json_t *reqs, size_t i) { return json_object_get(json_array_get(reqs, i), "messages"); }
static const char *role_of(json_t *m, size_t i) { return json_string_value(json_object_get(json_array_get(m, i), "role")); }
static const char *text_of(json_t *m, size_t i) {
    const char *s = json_string_value(json_object_get(json_array_get(m, i), "content"));
    return s ? s : "";
}
static const char *last_text(json_t *m) { return text_of(m, json_array_size(m) - 1); }

/* No placeholder was left unfilled in any request. */
static void check_filled(json_t *reqs) {
    static const char *const ph[] = {"{profile}", "{personality}", "{conversation}", "{inferred_profile}",
                                     "{inferred_personality}", "{reply_a}", "{reply_b}", "{user_message}"};
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r) {
        json_t *m = json_object_get(r, "messages");
        for (size_t k = 0; k < json_array_size(m); k++)
            for (size_t p = 0; p < sizeof ph / sizeof ph[0]; p++)
                CHECK_MSG(!strstr(text_of(m, k), ph[p]), "%s left in a request", ph[p]);
    }
}

static void test_paper_placeholders_reach_each_prompt(void) {
    NEED_SERVER();
    char *dir = setup_dir("\"PROFILE-ZETA He keeps bees.\"\n"), *out = path_join(dir, "p.jsonl");
    size_t from = log_size();
    const char *extra[] = {"--num", "1", NULL};
    int rc = run(dir, out, extra);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    json_t *u = requests_of("user-sim", from), *ind = requests_of("inducer", from), *h = requests_of("hinted", from),
           *p = requests_of("plain", from), *j = requests_of("judge", from);
    CHECK_EQ_INT(json_array_size(u), 2);
    CHECK_EQ_INT(json_array_size(ind), 2);
    CHECK_EQ_INT(json_array_size(h), 2);
    CHECK_EQ_INT(json_array_size(p), 2);
    CHECK_EQ_INT(json_array_size(j), 4);
    if (json_array_size(u) < 2 || json_array_size(h) < 2 || json_array_size(j) < 4) goto done;
    /* the simulator: its instructions with the persona as the first user
     * message; at turn 2 the reply it got, with the reminder */
    json_t *m = msgs(u, 1);
    CHECK_EQ_STR(role_of(m, 0), "user");
    CHECK(strstr(text_of(m, 0), "PROFILE-ZETA He keeps bees.") && strstr(text_of(m, 0), "PERSONALITY-OMEGA gruff"));
    CHECK_EQ_STR(role_of(m, 1), "assistant");
    CHECK_EQ_STR(text_of(m, 1), "Hi, message 1"); /* stage direction removed */
    CHECK(strstr(last_text(m), "within 3 sentences"));
    CHECK(!strncmp(last_text(m), "hinted ", 7) || !strncmp(last_text(m), "plain ", 6));
    /* the inducer: the persona and the A/B transcript */
    m = msgs(ind, 1);
    CHECK(strstr(text_of(m, 0), "PROFILE-ZETA He keeps bees.") && strstr(text_of(m, 0), "PERSONALITY-OMEGA gruff"));
    CHECK_MSG(strstr(text_of(m, 0), "\nA: Hi, message 1\nB: ") && strstr(text_of(m, 0), "\nA: Hi, message 2\nAnswer:"),
              "%s", text_of(m, 0));
    /* the hinted responder: no system prompt; each user message with its
     * own turn's hint and the reminder */
    m = msgs(h, 1);
    CHECK_EQ_INT(json_array_size(m), 3);
    CHECK_EQ_STR(role_of(m, 0), "user");
    CHECK(strstr(text_of(m, 0), "Hi, message 1\n(Hint") && strstr(text_of(m, 0), "INF-PROF-1") &&
          strstr(text_of(m, 0), "INF-PERS") && strstr(text_of(m, 0), "within 3 sentences"));
    CHECK(strstr(last_text(m), "INF-PROF-2") && !strstr(last_text(m), "INF-PROF-1"));
    /* the plain responder: the reminder, no hint */
    m = msgs(p, 1);
    CHECK_EQ_STR(role_of(m, 0), "user");
    CHECK(!strstr(text_of(m, 0), "INF-PROF") && strstr(text_of(m, 0), "within 3 sentences"));
    /* the judge: the persona and both replies */
    m = msgs(j, 0);
    CHECK(strstr(text_of(m, 0), "PROFILE-ZETA He keeps bees.") && strstr(text_of(m, 0), "PERSONALITY-OMEGA gruff"));
    CHECK(strstr(text_of(m, 0), "Message 1: hinted ") && strstr(text_of(m, 0), "Message 2: plain "));
    m = msgs(j, 1);
    CHECK(strstr(text_of(m, 0), "Message 1: plain ") && strstr(text_of(m, 0), "Message 2: hinted "));
    /* every role at most 300 new tokens under paper */
    for (size_t i = 0; i < json_array_size(u); i++)
        CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(u, i), "max_tokens")), 300);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(j, 0), "max_tokens")), 300);
    check_filled(u), check_filled(ind), check_filled(h), check_filled(p), check_filled(j);
    /* "first" in both orders: a judge biased to position, counted as such */
    char *so = slurp_in(dir, "stdout.txt");
    CHECK_MSG(strstr(so, "protocol paper, max_tokens 300") && strstr(so, "agreement 0.000") && strstr(so, "position bias 1.000"),
              "%s", so);
    free(so);
    char *set = slurp_in(dir, "p.settings.json");
    CHECK(strstr(set, "\"protocol\": \"paper\"") && strstr(set, "\"max_tokens\": 300"));
    free(set);
done:
    json_decref(u), json_decref(ind), json_decref(h), json_decref(p), json_decref(j);
    free(out);
    free(dir);
}

static void test_rubric_placeholders_reach_each_prompt(void) {
    NEED_SERVER();
    char *dir = setup_dir("\"PROFILE-ZETA He keeps bees.\"\n"), *out = path_join(dir, "r.jsonl");
    size_t from = log_size();
    const char *extra[] = {"--num", "1", "--protocol", "rubric", NULL};
    int rc = run(dir, out, extra);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    json_t *u = requests_of("user-sim", from), *ind = requests_of("inducer", from), *h = requests_of("hinted", from),
           *p = requests_of("plain", from), *j = requests_of("judge", from);
    if (json_array_size(u) < 2 || json_array_size(ind) < 2 || json_array_size(h) < 2 || json_array_size(p) < 1 ||
        json_array_size(j) < 1) {
        CHECK_MSG(0, "too few requests");
        goto done;
    }
    json_t *m = msgs(u, 1);
    CHECK_EQ_STR(role_of(m, 0), "system");
    CHECK(strstr(text_of(m, 0), "PROFILE-ZETA He keeps bees.") && strstr(text_of(m, 0), "PERSONALITY-OMEGA gruff"));
    CHECK(!strstr(last_text(m), "within 3 sentences")); /* no reminder under rubric */
    m = msgs(ind, 1);
    CHECK_MSG(strstr(text_of(m, 0), "User: Hi, message 1\n\nAssistant: ") && strstr(text_of(m, 0), "User: Hi, message 2"),
              "%s", text_of(m, 0));
    m = msgs(h, 1);
    CHECK_EQ_STR(role_of(m, 0), "system");
    CHECK(strstr(text_of(m, 0), "INF-PROF-2") && strstr(text_of(m, 0), "INF-PERS"));
    CHECK_EQ_STR(last_text(m), "Hi, message 2"); /* the hint is in the system prompt only */
    m = msgs(p, 0);
    CHECK_EQ_STR(role_of(m, 0), "system");
    CHECK(!strstr(text_of(m, 0), "INF-PROF"));
    m = msgs(j, 0);
    CHECK(strstr(text_of(m, 0), "PROFILE-ZETA He keeps bees.") && strstr(text_of(m, 0), "PERSONALITY-OMEGA gruff") &&
          strstr(text_of(m, 0), "User: Hi, message 1") && strstr(text_of(m, 0), "Reply A:\nhinted ") &&
          strstr(text_of(m, 0), "Reply B:\nplain "));
    /* the server's own limit under rubric */
    CHECK(!json_object_get(json_array_get(u, 0), "max_tokens"));
    check_filled(u), check_filled(ind), check_filled(h), check_filled(p), check_filled(j);
    char *set = slurp_in(dir, "r.settings.json");
    CHECK(strstr(set, "\"protocol\": \"rubric\"") && strstr(set, "\"max_tokens\": 0"));
    free(set);
done:
    json_decref(u), json_decref(ind), json_decref(h), json_decref(p), json_decref(j);
    free(out);
    free(dir);
}

static void test_max_tokens_and_protocol_flags(void) {
    NEED_SERVER();
    char *dir = setup_dir("\"PROFILE-ZETA He keeps bees.\"\n"), *out = path_join(dir, "m.jsonl");
    size_t from = log_size();
    const char *extra[] = {"--num", "1", "--max-tokens", "50", NULL};
    CHECK_EQ_INT(run(dir, out, extra), 0);
    json_t *ind = requests_of("inducer", from);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(ind, 0), "max_tokens")), 50);
    json_decref(ind);
    /* a resume with another protocol is refused, naming it */
    const char *other[] = {"--num", "1", "--max-tokens", "50", "--protocol", "rubric", NULL};
    CHECK_EQ_INT(run(dir, out, other), 2);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "changed: protocol"), "%s", err);
    free(err);
    const char *bad[] = {"--num", "1", "--protocol", "papers", NULL};
    CHECK_EQ_INT(run(dir, out, bad), 2);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "--protocol: expected paper or rubric, got \"papers\""), "%s", err);
    free(err);
    /* a negative limit is a usage error (as in aloe bench), not sent */
    from = log_size();
    const char *neg[] = {"--num", "1", "--max-tokens", "-5", NULL};
    char *out_neg = path_join(dir, "neg.jsonl");
    CHECK_EQ_INT(run(dir, out_neg, neg), 2);
    free(out_neg);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "--max-tokens: expected 0 (the server's) or more, got -5"), "%s", err);
    free(err);
    CHECK_EQ_INT(log_size(), from);
    free(out);
    free(dir);
}

static void test_skip_failed(void) {
    NEED_SERVER();
    char *dir = setup_dir("\"PROFILE-ZETA A\"\n\"PROFILE-BLOCKED B\"\n\"PROFILE-ZETA C\"\n"),
         *out = path_join(dir, "s.jsonl");
    /* By default the 400 stops the run, with the server's message. */
    CHECK_EQ_INT(run(dir, out, NULL), 1);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "HTTP 400") && strstr(err, "content filter") && strstr(err, "conversation 2") &&
                  strstr(err, "--skip-failed skips it"),
              "%s", err);
    free(err);
    /* With --skip-failed the other two are made; the third is listed. */
    const char *skip[] = {"--skip-failed", NULL};
    size_t from = log_size();
    int rc = run(dir, out, skip);
    char *e1 = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, e1);
    free(e1);
    char *txt = slurp_in(out, NULL);
    CHECK_EQ_INT(count_lines(txt), 2);
    CHECK(!strstr(txt, "BLOCKED"));
    free(txt);
    char *so = slurp_in(dir, "stdout.txt"), *se = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(so, "1 conversation(s) skipped") && strstr(so, "skipped conv-000001: ") && strstr(so, "HTTP 400"), "%s", so);
    CHECK_MSG(strstr(se, "conv-000001"), "%s", se);
    free(so);
    free(se);
    char *sp = path_join(dir, "s.summary.json");
    json_t *sum = json_load_file(sp, 0, NULL);
    CHECK(sum);
    json_t *conv = json_object_get(sum, "conversations"), *sk = json_object_get(sum, "skipped");
    CHECK_EQ_INT(json_integer_value(json_object_get(conv, "total")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(conv, "done")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(conv, "skipped")), 1);
    CHECK(json_is_false(json_object_get(sum, "complete")));
    CHECK_EQ_INT(json_array_size(sk), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(sk, 0), "id")), "conv-000001");
    CHECK(strstr(json_string_value(json_object_get(json_array_get(sk, 0), "error")), "HTTP 400"));
    json_decref(sum);
    /* The blocked persona was asked once (a 400 is not retried). */
    json_t *u = requests_of("user-sim", from);
    int blocked = 0;
    for (size_t i = 0; i < json_array_size(u); i++)
        blocked += strstr(text_of(msgs(u, i), 0), "BLOCKED") != NULL;
    CHECK_EQ_INT(blocked, 1);
    json_decref(u);
    /* A rerun tries the skipped one again (and only it). */
    from = log_size();
    CHECK_EQ_INT(run(dir, out, skip), 0);
    u = requests_of("user-sim", from);
    CHECK_EQ_INT(json_array_size(u), 1);
    CHECK(strstr(text_of(msgs(u, 0), 0), "BLOCKED"));
    json_decref(u);
    so = slurp_in(dir, "stdout.txt");
    CHECK_MSG(strstr(so, "2 of 3 conversations") && strstr(so, "(2 resumed from an earlier run)") &&
                  strstr(so, "1 conversation(s) skipped"),
              "%s", so);
    free(so);
    /* When every conversation fails, skipping is no answer: an error. */
    char *dir2 = setup_dir("\"PROFILE-BLOCKED only\"\n"), *out2 = path_join(dir2, "all.jsonl");
    CHECK_EQ_INT(run(dir2, out2, skip), 1);
    err = slurp_in(dir2, "stderr.txt");
    CHECK_MSG(strstr(err, "every conversation failed") && strstr(err, "HTTP 400"), "%s", err);
    free(err);
    free(out2);
    free(dir2);
    /* An endpoint that cannot be reached would fail every conversation
     * alike: it stops the run even with --skip-failed (as in aloe bench),
     * also when earlier conversations were made. */
    char *dir3 = setup_dir("\"PROFILE-ZETA A\"\n\"PROFILE-ZETA C\"\n"), *out3 = path_join(dir3, "down.jsonl");
    const char *one[] = {"--num", "1", NULL};
    CHECK_EQ_INT(run(dir3, out3, one), 0);
    const char *down[] = {"--skip-failed", "--judge-base-url", "http://127.0.0.1:1/v1", NULL};
    CHECK_EQ_INT(run(dir3, out3, down), 1);
    err = slurp_in(dir3, "stderr.txt");
    CHECK_MSG(strstr(err, "cannot reach") && !strstr(err, "skipped"), "%s", err);
    free(err);
    /* and without it, --skip-failed is not offered as the cure */
    const char *down_only[] = {"--judge-base-url", "http://127.0.0.1:1/v1", NULL};
    CHECK_EQ_INT(run(dir3, out3, down_only), 1);
    err = slurp_in(dir3, "stderr.txt");
    CHECK_MSG(strstr(err, "cannot reach") && !strstr(err, "--skip-failed"), "%s", err);
    free(err);
    char *sp3 = path_join(dir3, "down.summary.json");
    sum = json_load_file(sp3, 0, NULL);
    CHECK(sum && json_array_size(json_object_get(sum, "skipped")) == 0);
    json_decref(sum);
    free(sp3);
    free(out3);
    free(dir3);
    free(sp);
    free(out);
    free(dir);
}

int main(void) {
    fs_up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_paper_placeholders_reach_each_prompt);
    RUN(test_rubric_placeholders_reach_each_prompt);
    RUN(test_max_tokens_and_protocol_flags);
    RUN(test_skip_failed);
    if (fs_up) fake_stop(&fs);
    return test_summary();
}
