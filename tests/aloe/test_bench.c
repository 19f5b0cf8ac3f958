/* The benchmark loop against an in-test scripted backend: conversation
 * structure, judge retries and invalid counts, metrics end to end,
 * concurrency, stop and resume, failures and the settings guard. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "aloe/bench.h"
#include "aloe/report.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

/* ---- a scripted backend: b->model names the role ---- */

typedef struct {
    atomic_int inflight, peak;
    int gate;                 /* > 0: the first `gate` requests wait until all have arrived */
    atomic_int gate_arrived;
    atomic_long requests;
    atomic_long judge_requests;
    long stop_after_judge; /* > 0: set *stop after this many judge requests */
    atomic_int *stop;
    const char *fail_profile; /* the model fails for this profile */
    int fail_code;            /* with this Err code (0: ERR_HTTP) */
    const char *bad_structure; /* first structural problem seen */
} Script;

static int count_role(const LlmMessage *m, int n, const char *role) {
    int c = 0;
    for (int i = 0; i < n; i++) c += !strcmp(m[i].role, role);
    return c;
}

/* "... turn N ..." in a text, or 0. */
static int turn_of(const char *s) {
    const char *t = strstr(s, "turn ");
    return t ? atoi(t + 5) : 0;
}

static int scripted_chat(LlmBackend *b, const LlmMessage *m, int n, const LlmParams *p, LlmReply *out, Err *e) {
    Script *sc = b->impl;
    int now = atomic_fetch_add(&sc->inflight, 1) + 1;
    int peak = atomic_load(&sc->peak);
    while (now > peak && !atomic_compare_exchange_weak(&sc->peak, &peak, now)) {
    }
    /* Concurrency shown by events, not timing: the gated requests are all in
     * flight together once the last arrives (60 s bounds a broken loop). */
    struct timespec ts = {0, 1000000};
    if (sc->gate > 0 && atomic_fetch_add(&sc->gate_arrived, 1) < sc->gate)
        for (int i = 0; i < 60000 && atomic_load(&sc->gate_arrived) < sc->gate; i++) nanosleep(&ts, NULL);
    ts.tv_nsec = 2000000;
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&sc->inflight, 1);
    atomic_fetch_add(&sc->requests, 1);
    memset(out, 0, sizeof *out);
    out->usage.prompt_tokens = 10;
    out->usage.completion_tokens = 2;
    if (!strcmp(b->model, "user")) {
        /* Roles swapped: system persona, the opening instruction, then
         * (assistant = its own message, user = the assistant's reply) pairs. */
        if (strcmp(m[0].role, "system") || strcmp(m[1].role, "user") || n % 2 != 0)
            sc->bad_structure = "user simulator messages";
        int k = count_role(m, n, "assistant") + 1;
        const char *prof = strstr(m[0].content, "PROF");
        out->text = xasprintf("  %.5s says hi, turn %d (seed %llu)\n", prof ? prof : "?", k,
                              (unsigned long long)p->seed);
    } else if (!strcmp(b->model, "model")) {
        if (strcmp(m[0].role, "system") || strcmp(m[n - 1].role, "user")) sc->bad_structure = "model messages";
        if (sc->fail_profile && strstr(m[n - 1].content, sc->fail_profile))
            return err_set(e, sc->fail_code ? sc->fail_code : ERR_HTTP, "HTTP 500: scripted failure");
        out->text = xasprintf("reply to [%s]", m[n - 1].content);
    } else {
        long jr = atomic_fetch_add(&sc->judge_requests, 1) + 1;
        if (sc->stop_after_judge > 0 && jr >= sc->stop_after_judge) atomic_store(sc->stop, 1);
        if (strcmp(m[0].role, "user") || n % 2 != 1) sc->bad_structure = "judge messages";
        const char *q = m[0].content;
        int k = turn_of(strstr(q, "PROF"));
        int attempt = n / 2 + 1;
        /* PROF1 at turn 2: first reply has no score; PROF2 at turn 3: never. */
        if (strstr(q, "PROF1 says") && k == 2 && attempt == 1)
            out->text = xstrdup("A fine reply, I think.");
        else if (strstr(q, "PROF2 says") && k == 3)
            out->text = xstrdup("Score: N");
        else
            out->text = xasprintf("Tailored.\n**Score:** %d", k > 5 ? 5 : k);
    }
    return 0;
}

static LlmBackend *scripted(const char *role, Script *sc) {
    LlmBackend *b = xcalloc(1, sizeof *b);
    b->model = xstrdup(role);
    b->describe = xasprintf("scripted %s", role);
    b->chat = scripted_chat;
    b->impl = sc;
    return b;
}

static const char *const profiles[] = {"PROF0 a baker", "PROF1 a pilot", "PROF2 a nurse"};
static const char *const personalities[] = {"shy", "loud", "calm"};

typedef struct {
    Script sc;
    Prompts prompts;
    BenchConfig c;
    atomic_int stop;
} Fixture;

static void fixture_init(Fixture *f) {
    memset(f, 0, sizeof *f);
    prompts_init(&f->prompts, PROTOCOL_RUBRIC);
    f->c = bench_config_default();
    f->c.model = scripted("model", &f->sc);
    f->c.user = scripted("user", &f->sc);
    f->c.judge = scripted("judge", &f->sc);
    f->c.prompts = &f->prompts;
    f->c.profiles = profiles;
    f->c.n_profiles = 3;
    f->c.personalities = personalities;
    f->c.n_personalities = 3;
    f->c.per_profile = 2;
    f->c.turns = 4;
    f->c.threads = 4;
    f->c.seed = 7;
    f->c.stop = &f->stop;
    f->sc.stop = &f->stop;
}

static void fixture_free(Fixture *f) {
    llm_free(f->c.model);
    llm_free(f->c.user);
    llm_free(f->c.judge);
    prompts_free(&f->prompts);
}

static char *journal_text(const char *path) {
    char *s;
    size_t n;
    Err e;
    return file_read_all(path, &s, &n, &e) ? NULL : s;
}

static void test_full_run_scores_and_counts(void) {
    Fixture f;
    fixture_init(&f);
    char *dir = test_tmpdir();
    char *path = path_join(dir, "dialogues.jsonl");
    Err e = {0};
    Journal *j = journal_open(path, "id", &e);
    CHECK(j);
    BenchOutcome o;
    f.sc.gate = 4;
    CHECK_OK(bench_run(&f.c, j, &o, &e), &e);
    CHECK_MSG(!f.sc.bad_structure, "bad structure: %s", f.sc.bad_structure);
    CHECK_EQ_INT(o.total, 6);
    CHECK_EQ_INT(o.done_now, 6);
    CHECK_EQ_INT(journal_count(j), 6);
    /* 6 personas x 4 turns x (user + model) + judge 24 + 2 retries (PROF1 turn 2)
     * + 2 x 2 retries (PROF2 turn 3) */
    CHECK_EQ_INT(atomic_load(&f.sc.requests), 48 + 24 + 2 + 4);
    /* Conversations ran at once, never more than -j requests in flight. */
    CHECK_EQ_INT(atomic_load(&f.sc.peak), 4);

    json_t *rec = journal_get(j, "p1-k1");
    CHECK(rec);
    CHECK_EQ_STR(json_string_value(json_object_get(rec, "profile")), "PROF1 a pilot");
    CHECK_EQ_STR(json_string_value(json_object_get(rec, "personality")), "loud");
    json_t *t2 = json_array_get(json_object_get(rec, "turns"), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(t2, "attempts")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(t2, "score")), 2);
    CHECK_EQ_INT(json_array_size(json_object_get(t2, "judge")), 2);
    const char *u = json_string_value(json_object_get(t2, "user"));
    CHECK(!strncmp(u, "PROF1 says hi, turn 2", 21)); /* trimmed */
    CHECK(strstr(json_string_value(json_object_get(t2, "assistant")), u) != NULL);
    json_t *t3 = json_array_get(json_object_get(journal_get(j, "p2-k0"), "turns"), 2);
    CHECK(json_is_null(json_object_get(t3, "score")));
    CHECK_EQ_INT(json_integer_value(json_object_get(t3, "attempts")), 3);
    json_t *usage = json_object_get(json_object_get(rec, "usage"), "judge");
    CHECK_EQ_INT(json_integer_value(json_object_get(usage, "requests")), 5);
    CHECK_EQ_INT(json_integer_value(json_object_get(usage, "prompt_tokens")), 50);

    /* Scores are the turn number; PROF2's turn 3 is left out. */
    json_t *r = bench_results(&f.c, j);
    json_t *turns = json_object_get(r, "turns");
    CHECK_EQ_INT(json_array_size(turns), 4);
    for (int k = 0; k < 4; k++) {
        json_t *t = json_array_get(turns, (size_t)k);
        CHECK_NEAR(json_real_value(json_object_get(t, "al")), k + 1, 1e-12);
        CHECK_EQ_INT(json_integer_value(json_object_get(t, "n")), k == 2 ? 4 : 6);
        CHECK_EQ_INT(json_integer_value(json_object_get(t, "invalid")), k == 2 ? 2 : 0);
        CHECK_NEAR(json_real_value(json_object_get(t, "ci95")), 0, 1e-12);
    }
    CHECK_NEAR(json_real_value(json_object_get(r, "avg")), 2.5, 1e-12);
    CHECK_NEAR(json_real_value(json_object_get(r, "ir")), 1.0, 1e-12);
    CHECK_NEAR(json_real_value(json_object_get(r, "r2")), 1.0, 1e-12);
    CHECK_NEAR(json_real_value(json_object_get(r, "n_ir")), 1.0, 1e-12);
    json_t *judge = json_object_get(r, "judge");
    CHECK_EQ_INT(json_integer_value(json_object_get(judge, "retried")), 4);
    CHECK_EQ_INT(json_integer_value(json_object_get(judge, "invalid")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(judge, "replies_without_score")), 2 + 6);
    CHECK(json_is_true(json_object_get(r, "complete")));
    CHECK(strstr(json_string_value(json_object_get(json_object_get(r, "definitions"), "n_ir")), "AL(1)"));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(json_object_get(r, "usage"), "judge"), "requests")),
                 30);

    /* Outputs. */
    CHECK_OK(bench_write_outputs(dir, r, &e), &e);
    char *res = path_join(dir, "results.json"), *md = path_join(dir, "report.md"), *svg = path_join(dir, "al.svg");
    json_t *back = report_load_results(dir, &e);
    CHECK(back && json_equal(json_object_get(back, "turns"), turns));
    CHECK(file_exists(md) && file_exists(svg));
    json_decref(back);
    json_decref(r);
    free(res);
    free(md);
    free(svg);
    journal_close(j);
    fixture_free(&f);
    free(path);
    free(dir);
}

/* Runs the benchmark into dir; returns the journal's text (sorted by key
 * through bench_results order is not needed: we compare records by key). */
static void test_stop_then_resume_matches_uninterrupted(void) {
    Err e = {0};
    /* Uninterrupted. */
    Fixture f;
    fixture_init(&f);
    char *dir1 = test_tmpdir();
    char *p1 = path_join(dir1, "d.jsonl");
    Journal *j1 = journal_open(p1, "id", &e);
    BenchOutcome o;
    CHECK_OK(bench_run(&f.c, j1, &o, &e), &e);
    json_t *r1 = bench_results(&f.c, j1);
    fixture_free(&f);

    /* Stopped after a few judge requests, then resumed. */
    fixture_init(&f);
    f.sc.stop_after_judge = 7;
    char *dir2 = test_tmpdir();
    char *p2 = path_join(dir2, "d.jsonl");
    Journal *j2 = journal_open(p2, "id", &e);
    CHECK(bench_run(&f.c, j2, &o, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_CANCELLED);
    CHECK(o.cancelled);
    CHECK(o.unfinished > 0);
    long first = journal_count(j2);
    CHECK(first < 6);
    json_t *partial = bench_results(&f.c, j2);
    CHECK(json_is_false(json_object_get(partial, "complete")));
    json_decref(partial);
    journal_close(j2);
    atomic_store(&f.stop, 0);
    f.sc.stop_after_judge = 0;
    j2 = journal_open(p2, "id", &e);
    CHECK_OK(bench_run(&f.c, j2, &o, &e), &e);
    CHECK_EQ_INT(o.done_before, first);
    CHECK_EQ_INT(o.done_now, 6 - first);
    json_t *r2 = bench_results(&f.c, j2);
    CHECK(json_equal(json_object_get(r1, "turns"), json_object_get(r2, "turns")));
    CHECK(json_equal(json_object_get(r1, "judge"), json_object_get(r2, "judge")));
    /* The same seeds give the same conversations, record by record. */
    for (int i = 0; i < 6; i++) {
        char id[32];
        bench_persona_id(&f.c, i, id, sizeof id);
        CHECK_MSG(json_equal(journal_get(j1, id), journal_get(j2, id)), "record %s differs", id);
    }
    /* Each key once in the file. */
    char *text = journal_text(p2);
    int lines = 0;
    for (char *s = text; s && *s; s++) lines += *s == '\n';
    CHECK_EQ_INT(lines, 6);
    free(text);
    /* Another seed gives other requests. */
    fixture_free(&f);
    fixture_init(&f);
    f.c.seed = 8;
    char *dir3 = test_tmpdir();
    char *p3 = path_join(dir3, "d.jsonl");
    Journal *j3 = journal_open(p3, "id", &e);
    CHECK_OK(bench_run(&f.c, j3, &o, &e), &e);
    CHECK(!json_equal(journal_get(j1, "p0-k0"), journal_get(j3, "p0-k0")));
    journal_close(j3);
    json_decref(r1);
    json_decref(r2);
    journal_close(j1);
    journal_close(j2);
    fixture_free(&f);
    free(p1);
    free(p2);
    free(p3);
    free(dir1);
    free(dir2);
    free(dir3);
}

static void test_failure_stops_and_keeps_finished(void) {
    Fixture f;
    fixture_init(&f);
    f.c.threads = 1; /* in order: p0-k0, p0-k1 finish, then p1-k0 fails */
    f.sc.fail_profile = "PROF1";
    char *dir = test_tmpdir();
    char *p = path_join(dir, "d.jsonl");
    Err e = {0};
    Journal *j = journal_open(p, "id", &e);
    BenchOutcome o;
    CHECK(bench_run(&f.c, j, &o, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_HTTP);
    CHECK_MSG(strstr(e.msg, "HTTP 500: scripted failure") && strstr(e.msg, "model"), "%s", e.msg);
    CHECK_EQ_INT(journal_count(j), 2);
    CHECK_EQ_INT(o.unfinished, 4);
    journal_close(j);
    fixture_free(&f);
    free(p);
    free(dir);
}

/* skip_failed: the failing profile's conversations are skipped and listed,
 * the others finish, nothing of the skipped ones is journaled; a failure of
 * another kind (a refused key) still stops the run. */
static void test_skip_failed_lists_and_goes_on(void) {
    Fixture f;
    fixture_init(&f);
    f.c.skip_failed = 1;
    f.sc.fail_profile = "PROF1";
    char *dir = test_tmpdir();
    char *p = path_join(dir, "d.jsonl");
    Err e = {0};
    Journal *j = journal_open(p, "id", &e);
    BenchOutcome o;
    CHECK_OK(bench_run(&f.c, j, &o, &e), &e);
    CHECK_EQ_INT(o.skipped, 2);
    CHECK_EQ_INT(o.done_now, 4);
    CHECK_EQ_INT(o.unfinished, 2);
    CHECK_EQ_INT(journal_count(j), 4);
    CHECK(!journal_get(j, "p1-k0") && !journal_get(j, "p1-k1"));
    CHECK_EQ_INT(json_array_size(o.skipped_list), 2);
    json_t *s0 = json_array_get(o.skipped_list, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(s0, "id")), "p1-k0");
    CHECK_MSG(strstr(json_string_value(json_object_get(s0, "error")), "evaluated model: HTTP 500: scripted failure"),
              "%s", json_string_value(json_object_get(s0, "error")));
    json_t *r = bench_results(&f.c, j);
    bench_results_add_skipped(r, &o);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "skipped")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(r, "conversations"), "skipped")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(json_object_get(r, "turns"), 0), "n")), 4);
    CHECK(json_is_false(json_object_get(r, "complete")));
    /* the report says so */
    CHECK_OK(bench_write_outputs(dir, r, &e), &e);
    char *md = path_join(dir, "report.md"), *mdt = test_read_text(md);
    CHECK_MSG(strstr(mdt, "**Skipped:** 2 conversations") && strstr(mdt, "- `p1-k1`: evaluated model"), "%s", mdt);
    free(mdt);
    free(md);
    json_decref(r);
    bench_outcome_free(&o);
    journal_close(j);
    /* a rerun retries them; a refused key is no conversation's own: it stops */
    f.sc.fail_code = ERR_AUTH;
    j = journal_open(p, "id", &e);
    CHECK(bench_run(&f.c, j, &o, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_AUTH);
    CHECK_EQ_INT(o.skipped, 0);
    CHECK_EQ_INT(o.done_before, 4);
    bench_outcome_free(&o);
    /* without skip_failed no list is made */
    f.c.skip_failed = 0;
    f.sc.fail_profile = NULL;
    CHECK_OK(bench_run(&f.c, j, &o, &e), &e);
    CHECK(!o.skipped_list);
    CHECK_EQ_INT(journal_count(j), 6);
    journal_close(j);
    fixture_free(&f);
    free(p);
    free(dir);
}

/* Paper-form prompts (no evaluated system prompt, the simulator's
 * instructions as its first user message): the views have that shape and a
 * stage direction reaches neither the model nor the judge; the record keeps
 * the raw message. */
static int paper_chat(LlmBackend *b, const LlmMessage *m, int n, const LlmParams *p, LlmReply *out, Err *e) {
    (void)e;
    Script *sc = b->impl;
    memset(out, 0, sizeof *out);
    if (!strcmp(b->model, "user")) {
        if (strcmp(m[0].role, "user") || n % 2 != 1 || p->max_tokens != 300) sc->bad_structure = "user simulator view";
        for (int i = 1; i < n; i += 2)
            if (strcmp(m[i].role, "assistant") || strchr(m[i].content, '*')) sc->bad_structure = "simulator's own lines";
        out->text = xstrdup("*sighs* long day at work");
    } else if (!strcmp(b->model, "model")) {
        if (strcmp(m[0].role, "user") || p->max_tokens != 2048) sc->bad_structure = "model view";
        for (int i = 0; i < n; i++)
            if (strchr(m[i].content, '*')) sc->bad_structure = "stage direction to the model";
        out->text = xstrdup("Oh no, what happened?");
    } else {
        if (strstr(m[0].content, "*sighs*") || p->max_tokens != 300) sc->bad_structure = "judge request";
        out->text = xstrdup("3");
    }
    return 0;
}

static void test_paper_views(void) {
    Fixture f;
    fixture_init(&f);
    f.c.model->chat = f.c.user->chat = f.c.judge->chat = paper_chat;
    prompts_free(&f.prompts);
    prompts_init(&f.prompts, PROTOCOL_RUBRIC);
    /* the paper's forms, whatever its texts */
    f.prompts.text[PROMPT_EVALUATED][0] = 0;
    f.prompts.text[PROMPT_USER_FIRST_TURN][0] = 0;
    f.c.max_tokens = 2048;
    f.c.user_max_tokens = f.c.judge_max_tokens = 300;
    f.c.turns = 3;
    char *dir = test_tmpdir();
    char *p = path_join(dir, "d.jsonl");
    Err e = {0};
    Journal *j = journal_open(p, "id", &e);
    BenchOutcome o;
    CHECK_OK(bench_run(&f.c, j, &o, &e), &e);
    CHECK_MSG(!f.sc.bad_structure, "bad: %s", f.sc.bad_structure);
    json_t *t = json_array_get(json_object_get(journal_get(j, "p0-k0"), "turns"), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(t, "user")), "long day at work");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "user_raw")), "*sighs* long day at work");
    CHECK_EQ_INT(json_integer_value(json_object_get(t, "score")), 3);
    journal_close(j);
    fixture_free(&f);
    free(p);
    free(dir);
}

static void test_config_errors(void) {
    Fixture f;
    fixture_init(&f);
    Err e = {0};
    f.c.per_profile = 4;
    CHECK(bench_config_check(&f.c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "too few personalities") && strstr(e.msg, "has 3"), "%s", e.msg);
    f.c.per_profile = 2;
    f.c.turns = 0;
    CHECK(bench_config_check(&f.c, &e) == -1);
    f.c.turns = 1;
    CHECK_OK(bench_config_check(&f.c, &e), &e);
    fixture_free(&f);
}

static void test_settings_guard(void) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "run.json");
    Err e = {0};
    json_t *s = json_pack("{s:s, s:i}", "model", "m1", "turns", 10);
    CHECK_OK(bench_check_settings(p, s, &e), &e);
    CHECK_OK(bench_check_settings(p, s, &e), &e); /* same settings: resume */
    json_t *s2 = json_pack("{s:s, s:i}", "model", "m2", "turns", 10);
    CHECK(bench_check_settings(p, s2, &e) == -1);
    CHECK_MSG(strstr(e.msg, "model: was \"m1\", now \"m2\"") && !strstr(e.msg, "turns"), "%s", e.msg);
    json_decref(s);
    json_decref(s2);
    free(p);
    free(dir);
}

int main(void) {
    RUN(test_full_run_scores_and_counts);
    RUN(test_stop_then_resume_matches_uninterrupted);
    RUN(test_failure_stops_and_keeps_finished);
    RUN(test_skip_failed_lists_and_goes_on);
    RUN(test_paper_views);
    RUN(test_config_errors);
    RUN(test_settings_guard);
    return test_summary();
}
