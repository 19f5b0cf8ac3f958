#include <stdlib.h>

#include "aloe/dialogues.h"
#include "base/fileio.h"
#include "gen_double.h"
#include "test.h"

static void test_judge_verdict_parsing(void) {
    CHECK_EQ_INT(judge_parse_preference("Reply A is warmer.\nPreferred: A"), 'A');
    CHECK_EQ_INT(judge_parse_preference("**Preferred:** B"), 'B');
    CHECK_EQ_INT(judge_parse_preference("preferred: reply B."), 'B');
    /* a judge that names both replies is re-asked, not read by position */
    CHECK_EQ_INT(judge_parse_preference("Preferred: A\n...on reflection\nPreferred: B"), 0);
    CHECK_EQ_INT(judge_parse_preference("The preferred answer is unclear"), 0);
    CHECK_EQ_INT(judge_parse_preference("Preferred: Both"), 0);
    CHECK_EQ_INT(judge_parse_preference(""), 0);
}

static void test_inducer_parsing(void) {
    char *pr, *pe;
    CHECK_EQ_INT(inducer_parse("Profile: a nurse\nwith two kids\nPersonality: blunt", &pr, &pe), 2);
    CHECK_EQ_STR(pr, "a nurse\nwith two kids");
    CHECK_EQ_STR(pe, "blunt");
    free(pr), free(pe);
    CHECK_EQ_INT(inducer_parse("**Personality:** warm\n- **Profile:** student", &pr, &pe), 2);
    CHECK_EQ_STR(pr, "student");
    CHECK_EQ_STR(pe, "warm");
    free(pr), free(pe);
    CHECK_EQ_INT(inducer_parse("Profile: a pilot\nPersonalities: None", &pr, &pe), 2);
    CHECK_EQ_STR(pr, "a pilot");
    CHECK_EQ_STR(pe, "None");
    free(pr), free(pe);
    CHECK_EQ_INT(inducer_parse("Nothing yet.", &pr, &pe), 0);
    CHECK_EQ_STR(pr, "unknown");
    CHECK_EQ_STR(pe, "unknown");
    free(pr), free(pe);
}

/* ---- scripted roles ---- */

enum { JUDGE_FAIR, JUDGE_POSITION_A, JUDGE_LATE };

typedef struct Roles {
    int judge_mode;
    atomic_int violations; /* a request with the wrong roles or content */
    Double user, inducer, hinted, plain, judge;
} Roles;

static int turn_of(int n, int first) { return (n - first) / 2 + 1; }

static char *user_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    Roles *r = ctx;
    (void)p;
    /* Roles swapped: system, first-turn instruction, then its own
     * messages as "assistant" and the replies as "user". */
    if (strcmp(m[0].role, "system") || !strstr(m[0].content, "P-PROFILE") || strcmp(m[1].role, "user"))
        atomic_fetch_add(&r->violations, 1);
    for (int i = 2; i < n; i++)
        if (strcmp(m[i].role, i % 2 ? "user" : "assistant") ||
            strncmp(m[i].content, i % 2 ? "Reply" : "Message", i % 2 ? 5 : 7))
            atomic_fetch_add(&r->violations, 1);
    return xasprintf("Message %d from %.12s", turn_of(n, 2), m[0].content + strlen(m[0].content) - 12);
}

static char *inducer_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)ctx, (void)p, (void)n;
    int users = 0;
    for (const char *s = m[0].content; (s = strstr(s, "User: Message")); s++) users++;
    return xasprintf("Profile: guess %d\nPersonality: curious", users);
}

static char *responder(const LlmMessage *m, int n, const char *who, Roles *r) {
    if (strcmp(m[n - 1].role, "user") || strncmp(m[n - 1].content, "Message", 7)) atomic_fetch_add(&r->violations, 1);
    int hinted = strstr(m[0].content, "guess ") != NULL;
    if (hinted != (who[0] == 'h')) atomic_fetch_add(&r->violations, 1);
    return xasprintf("Reply %s %d", who, turn_of(n, 1));
}
static char *hinted_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    return responder(m, n, "hinted", ctx);
}
static char *plain_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    return responder(m, n, "plain", ctx);
}

static char *judge_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    Roles *r = ctx;
    if (!strstr(m[0].content, "P-PROFILE")) atomic_fetch_add(&r->violations, 1);
    if (r->judge_mode == JUDGE_POSITION_A) return xstrdup("A reads better.\nPreferred: A");
    if (r->judge_mode == JUDGE_LATE && n == 1) return xstrdup("Both are fine, hard to say.");
    const char *a = strstr(m[0].content, "Reply A:\n");
    int a_is_hinted = a && !strncmp(a + 9, "Reply hinted", 12);
    return xstrdup(a_is_hinted ? "Tailored.\nPreferred: A" : "Tailored.\nPreferred: B");
}

typedef struct Setup {
    Roles roles;
    LlmBackend *b[5];
    Prompts prompts;
    DialoguesConfig c;
} Setup;

static void setup(Setup *s, int judge_mode, const char *out) {
    memset(s, 0, sizeof *s);
    s->roles.judge_mode = judge_mode;
    Double *d[5] = {&s->roles.user, &s->roles.inducer, &s->roles.hinted, &s->roles.plain, &s->roles.judge};
    DoubleReplyFn fns[5] = {user_reply, inducer_reply, hinted_reply, plain_reply, judge_reply};
    const char *names[5] = {"u-model", "i-model", "h-model", "p-model", "j-model"};
    for (int i = 0; i < 5; i++) {
        d[i]->reply = fns[i];
        d[i]->ctx = &s->roles;
        s->b[i] = double_backend(names[i], d[i]);
    }
    /* these tests pin the rubric protocol's message layout; the paper's is
     * in test_protocol.c */
    prompts_init(&s->prompts, PROTOCOL_RUBRIC);
    dialogues_config_default(&s->c);
    s->c.protocol = PROTOCOL_RUBRIC;
    s->c.prompts = &s->prompts;
    s->c.turns = 3;
    s->c.seed = 11;
    s->c.jobs = 3;
    s->c.quiet = 1;
    s->c.user = s->b[0], s->c.inducer = s->b[1], s->c.hinted = s->b[2], s->c.plain = s->b[3], s->c.judge = s->b[4];
    s->c.out_path = out;
}

static void teardown(Setup *s) {
    for (int i = 0; i < 5; i++) llm_free(s->b[i]);
    prompts_free(&s->prompts);
}

static const char *turn_str(json_t *rec, int t, const char *a, const char *b) {
    json_t *x = json_array_get(json_object_get(rec, "conversations"), (size_t)t);
    x = json_object_get(x, a);
    if (b) x = json_object_get(x, b);
    return json_string_value(x);
}

static void test_tree_schema_and_both_orders(void) {
    Setup s;
    setup(&s, JUDGE_FAIR, NULL);
    Err e;
    json_t *rec = dialogue_generate(&s.c, "P-PROFILE a baker", "P-PERSONALITY shy", 0, NULL, &e);
    CHECK_MSG(rec, "%s", e.msg);
    CHECK_EQ_INT(atomic_load(&s.roles.violations), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(rec, "profile")), "P-PROFILE a baker");
    CHECK_EQ_STR(json_string_value(json_object_get(rec, "personality")), "P-PERSONALITY shy");
    CHECK_EQ_INT(json_array_size(json_object_get(rec, "conversations")), 3);
    for (int t = 0; t < 3; t++) {
        char want[64];
        snprintf(want, sizeof want, "Reply hinted %d", t + 1);
        CHECK_EQ_STR(turn_str(rec, t, "assistant", "preferred"), want);
        snprintf(want, sizeof want, "Reply plain %d", t + 1);
        CHECK_EQ_STR(turn_str(rec, t, "assistant", "rejected"), want);
        CHECK(!strncmp(turn_str(rec, t, "user", NULL), "Message ", 8));
        snprintf(want, sizeof want, "guess %d", t + 1);
        CHECK_EQ_STR(turn_str(rec, t, "inferred_profile", NULL), want);
        CHECK_EQ_STR(turn_str(rec, t, "inferred_personality", NULL), "curious");
        const char *ch = turn_str(rec, t, "chosen", NULL);
        CHECK(ch && (!strcmp(ch, "preferred") || !strcmp(ch, "rejected")));
    }
    /* The judge was asked twice per turn, once with each reply first. */
    CHECK_EQ_INT(atomic_load(&s.roles.judge.chats), 6);
    json_t *meta = json_object_get(rec, "meta");
    CHECK_EQ_INT(json_integer_value(json_object_get(meta, "disagreements")), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(meta, "undecided")), 0);
    json_t *t0 = json_array_get(json_object_get(meta, "turn_details"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(t0, "judges")), "agree");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(t0, "judge_hinted_first"), "verdict")), "A");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(t0, "judge_hinted_second"), "verdict")), "B");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(meta, "models"), "judge")), "j-model");
    CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(meta, "usage"), "judge"),
                                             "prompt_tokens")) == 60);
    json_decref(rec);
    teardown(&s);
}

static void test_disagreements_kept_or_dropped(void) {
    Setup s;
    setup(&s, JUDGE_POSITION_A, NULL);
    Err e;
    json_t *rec = dialogue_generate(&s.c, "P-PROFILE x", "y", 3, NULL, &e);
    CHECK_MSG(rec, "%s", e.msg);
    json_t *meta = json_object_get(rec, "meta");
    CHECK_EQ_INT(json_integer_value(json_object_get(meta, "disagreements")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(meta, "undecided")), 0);
    /* Kept, oriented by the first order (hinted shown as A). */
    CHECK_EQ_STR(turn_str(rec, 0, "assistant", "preferred"), "Reply hinted 1");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(meta, "turn_details"), 0),
                                                   "judges")), "disagree");
    json_decref(rec);
    s.c.drop_disagreements = 1;
    rec = dialogue_generate(&s.c, "P-PROFILE x", "y", 3, NULL, &e);
    CHECK_MSG(rec, "%s", e.msg);
    for (int t = 0; t < 3; t++) {
        json_t *a = json_object_get(json_array_get(json_object_get(rec, "conversations"), (size_t)t), "assistant");
        CHECK(json_is_null(json_object_get(a, "preferred")) && json_is_null(json_object_get(a, "rejected")));
        const char *ch = turn_str(rec, t, "chosen", NULL);
        CHECK(!strcmp(ch, "hinted") || !strcmp(ch, "plain"));
        CHECK(!strncmp(json_string_value(json_object_get(a, ch)), "Reply ", 6));
    }
    json_decref(rec);
    teardown(&s);
}

static void test_verdictless_judge_is_reminded(void) {
    Setup s;
    setup(&s, JUDGE_LATE, NULL);
    s.c.turns = 1;
    Err e;
    json_t *rec = dialogue_generate(&s.c, "P-PROFILE x", "y", 0, NULL, &e);
    CHECK_MSG(rec, "%s", e.msg);
    CHECK_EQ_INT(atomic_load(&s.roles.judge.chats), 4);
    json_t *t0 = json_array_get(json_object_get(json_object_get(rec, "meta"), "turn_details"), 0);
    json_t *j = json_object_get(t0, "judge_hinted_first");
    CHECK_EQ_INT(json_array_size(json_object_get(j, "raw")), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(t0, "judges")), "agree");
    CHECK_EQ_STR(turn_str(rec, 0, "assistant", "preferred"), "Reply hinted 1");
    json_decref(rec);
    teardown(&s);
}

static StrList list3(const char *prefix) {
    StrList l = {0};
    for (int i = 0; i < 3; i++) {
        char b[64];
        snprintf(b, sizeof b, "%s number %d", prefix, i);
        strlist_push(&l, b);
    }
    return l;
}

static char *slurp(const char *p) {
    char *s = NULL;
    size_t n;
    Err e;
    return file_read_all(p, &s, &n, &e) ? NULL : s;
}

static int run_to(const char *out, uint64_t seed, int passes, long num, int jobs, Setup *s, Err *e) {
    setup(s, JUDGE_FAIR, out);
    s->c.seed = seed;
    s->c.jobs = jobs;
    StrList pr = list3("P-PROFILE"), pe = list3("personality");
    DialoguePlan plan;
    int rc = dialogues_plan(&plan, pr.n, pe.n, passes, num, seed, e);
    DialoguesResult r = {0};
    if (!rc) rc = dialogues_run(&s->c, &pr, &pe, &plan, &r, e);
    dialogues_result_free(&r);
    dialogues_plan_free(&plan);
    strlist_free(&pr);
    strlist_free(&pe);
    return rc;
}

static void test_same_seed_same_output_and_resume(void) {
    char *dir = test_tmpdir();
    char *a = path_join(dir, "a.jsonl"), *b = path_join(dir, "b.jsonl"), *c = path_join(dir, "c.jsonl");
    Setup s;
    Err e;
    CHECK_OK(run_to(a, 5, 2, 0, 1, &s, &e), &e);
    CHECK_EQ_INT(atomic_load(&s.roles.user.chats), 6 * 3);
    teardown(&s);
    /* Same seed, more threads: byte-identical. */
    CHECK_OK(run_to(b, 5, 2, 0, 4, &s, &e), &e);
    teardown(&s);
    char *ta = slurp(a), *tb = slurp(b);
    CHECK(ta && tb);
    CHECK_EQ_STR(ta, tb);
    /* Interrupted after 4 conversations, then the full run: only the
     * missing 2 are generated, and the file is the same. */
    CHECK_OK(run_to(c, 5, 0, 4, 2, &s, &e), &e);
    teardown(&s);
    CHECK_OK(run_to(c, 5, 2, 0, 2, &s, &e), &e);
    CHECK_EQ_INT(atomic_load(&s.roles.user.chats), 2 * 3);
    teardown(&s);
    char *tc = slurp(c);
    CHECK_EQ_STR(ta, tc);
    /* Another seed on the same file is refused, naming the record. */
    CHECK(run_to(c, 6, 2, 0, 2, &s, &e) == -1);
    CHECK_MSG(strstr(e.msg, "c.settings.json") && strstr(e.msg, "(changed: seed)"), "%s", e.msg);
    teardown(&s);
    /* A record that does not match its conversation is refused too (a
     * journal from elsewhere, with the settings file gone). */
    char *settings = path_join(dir, "c.settings.json");
    remove(settings);
    free(settings);
    CHECK(run_to(c, 6, 2, 0, 2, &s, &e) == -1);
    CHECK_MSG(strstr(e.msg, "conv-000000") && strstr(e.msg, "--seed"), "%s", e.msg);
    teardown(&s);
    /* Another seed elsewhere gives other branches or personas. */
    char *d = path_join(dir, "d.jsonl");
    CHECK_OK(run_to(d, 6, 2, 0, 2, &s, &e), &e);
    teardown(&s);
    char *td = slurp(d);
    CHECK(td && strcmp(ta, td));
    free(ta), free(tb), free(tc), free(td);
    free(a), free(b), free(c), free(d), free(dir);
}

static void test_plan(void) {
    DialoguePlan p;
    Err e;
    CHECK_OK(dialogues_plan(&p, 331, 250, 10, 0, 1, &e), &e);
    CHECK_EQ_INT(p.n, 3310);
    CHECK_EQ_INT(p.profile[331], 0);
    CHECK_EQ_INT(p.pass[331], 1);
    int differ = 0;
    for (long k = 0; k < p.n; k++) {
        CHECK(p.personality[k] >= 0 && p.personality[k] < 250);
        differ += p.personality[k] != p.personality[0];
    }
    CHECK(differ > 3000);
    dialogues_plan_free(&p);
    CHECK(dialogues_plan(&p, 3, 3, 1, 5, 1, &e) == -1);
    CHECK(strstr(e.msg, "exactly one"));
}

int main(void) {
    RUN(test_judge_verdict_parsing);
    RUN(test_inducer_parsing);
    RUN(test_tree_schema_and_both_orders);
    RUN(test_disagreements_kept_or_dropped);
    RUN(test_verdictless_judge_is_reminded);
    RUN(test_same_seed_same_output_and_resume);
    RUN(test_plan);
    return test_summary();
}
