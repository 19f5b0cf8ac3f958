/* The paper protocol of `aloe dialogues`: the parsers of the roles' answers
 * (each accepted and rejected form), stage-direction stripping, the
 * messages each role gets under paper, and the judge's agreement and
 * position-bias counts against hand-computed values. In-process doubles;
 * the same through the binary and a fake server is test_protocol_e2e.c. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "aloe/dialogues.h"
#include "aloe/usersim.h"
#include "base/fileio.h"
#include "gen_double.h"
#include "test.h"

/* ---- the pairwise judge's answer ---- */

static void test_pair_parser_accepts(void) {
    static const struct {
        const char *text;
        int want;
    } ok[] = {
        {"first", 'A'}, {"second", 'B'}, {"First", 'A'}, {"SECOND", 'B'}, {"**First**.", 'A'}, {"`second`", 'B'},
        {"\"first\"", 'A'}, {"first.\n", 'A'}, {"  Second!  ", 'B'}, {"1", 'A'}, {"2", 'B'}, {"Message 1", 'A'},
        {"message 2.", 'B'}, {"**Message 2**", 'B'}, {"Response A", 'A'}, {"response b", 'B'}, {"Reply A", 'A'},
        {"Reply B", 'B'}, {"A", 'A'}, {"b", 'B'}, {"(B)", 'B'}, {"Preferred: A", 'A'}, {"preferred: b", 'B'},
        {"**Preferred:** B", 'B'}, {"Preferred: Reply B.", 'B'}, {"Preferred: Message 1", 'A'},
        {"## Answer: second", 'B'}, {"Verdict: first", 'A'}, {"Message 2 is preferred.", 'B'},
        {"Response A is better", 'A'}, {"first wins", 'A'},
        /* reasons, then the verdict on a line of its own or after "Preferred:" */
        {"Reply A is warmer.\nPreferred: A", 'A'}, {"Both are fine but the second is kinder.\n\nsecond", 'B'},
        {"It suits her humour. Preferred: B", 'B'}, {"Preferred: A. Score: 5", 'A'},
        /* the same verdict twice is one verdict */
        {"first\n**First**", 'A'},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        CHECK_MSG(judge_parse_preference(ok[i].text) == ok[i].want, "\"%s\" -> %d, expected %c", ok[i].text,
                  judge_parse_preference(ok[i].text), ok[i].want);
}

static void test_pair_parser_rejects(void) {
    static const char *const bad[] = {
        "", "   ", "**", "Both", "Preferred: Both", "neither", "first or second", "Message 1 and Message 2",
        "first\nsecond",                            /* names both: ambiguous */
        "Preferred: A\n...on reflection\nPreferred: B", "Preferred: first. Preferred: second",
        "The preferred answer is unclear", "I think the first is nicer but the second is shorter",
        "third", "3", "Message 3", "Response C", "firstly", "Bob", "ab", "A B",
        "Message 1 is warmer and more engaging overall", /* a sentence, not a verdict */
        "b\xc3\xa9", /* a word with non-ASCII letters is not "b" */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(judge_parse_preference(bad[i]) == 0, "\"%s\" -> %c, expected no verdict", bad[i],
                  judge_parse_preference(bad[i]));
}

/* ---- the inducer's answer ---- */

static void expect_inducer(const char *text, int found, const char *pr, const char *pe) {
    char *a, *b;
    int n = inducer_parse(text, &a, &b);
    CHECK_MSG(n == found && !strcmp(a, pr) && !strcmp(b, pe), "\"%s\" -> %d [%s] [%s], expected %d [%s] [%s]", text,
              n, a, b, found, pr, pe);
    free(a);
    free(b);
}

static void test_inducer_parser_forms(void) {
    expect_inducer("Profile: He/She is a nurse.\nPersonalities: None", 2, "He/She is a nurse.", "None");
    expect_inducer("Profile: a nurse\nPersonality: blunt", 2, "a nurse", "blunt");
    expect_inducer("profile: a nurse\npersonalities: none", 2, "a nurse", "None");
    expect_inducer("PROFILE: N/A\nPERSONALITIES: Warm.", 2, "None", "Warm.");
    expect_inducer("Profile: None.\nPersonalities: n/a", 2, "None", "None");
    expect_inducer("**Profile:** a nurse\n**Personalities:** dry humour", 2, "a nurse", "dry humour");
    expect_inducer("**Profile**: a nurse\n- **Personality**: dry humour", 2, "a nurse", "dry humour");
    expect_inducer("## Profile\nHe/She is a pilot.\n## Personalities\nNone", 2, "He/She is a pilot.", "None");
    expect_inducer("### Profile:\nHe/She is a pilot.\n\n### Personalities:\ncalm", 2, "He/She is a pilot.", "calm");
    /* both parts on one line */
    expect_inducer("Profile: He/She plays the guitar. Personalities: He/She is witty.", 2, "He/She plays the guitar.",
                   "He/She is witty.");
    expect_inducer("Profile: a baker **Personalities:** None", 2, "a baker", "None");
    /* the personality part first; a part over several lines */
    expect_inducer("Personalities: shy\nProfile: a nurse\nwith two kids", 2, "a nurse\nwith two kids", "shy");
    expect_inducer("Profile: [None]\nPersonalities: [curious]", 2, "None", "curious");
    expect_inducer("Here is what A revealed.\nProfile: a nurse\nPersonalities: None", 2, "a nurse", "None");
    /* missing parts */
    expect_inducer("Profile: a nurse", 1, "a nurse", "unknown");
    expect_inducer("Personalities: warm", 1, "unknown", "warm");
    expect_inducer("Nothing is revealed yet.", 0, "unknown", "unknown");
    expect_inducer("Profile:\nPersonalities:", 2, "unknown", "unknown");
    expect_inducer("", 0, "unknown", "unknown");
    /* words that only start like a label are not one */
    expect_inducer("Profiles: x\nPersonalityless: y", 0, "unknown", "unknown");
}

/* ---- stage directions ---- */

static void expect_strip(const char *in, const char *want) {
    char *s = usersim_strip_stage_directions(in);
    CHECK_MSG(!strcmp(s, want), "\"%s\" -> \"%s\", expected \"%s\"", in, s, want);
    free(s);
}

static void test_stage_directions(void) {
    expect_strip("*smiles* hi", "hi");
    expect_strip("hi *waves* there", "hi there");
    expect_strip("Hey!  *leans back*\n\nHow was your day?", "Hey! How was your day?");
    expect_strip("just **love** it", "just love it"); /* "**" is an empty span: bold loses its marks only */
    expect_strip("2 * 3 is six", "2 * 3 is six"); /* an unmatched '*' stays */
    expect_strip("a lone * star", "a lone * star");
    expect_strip("*starts\nthen* stops", "*starts then* stops"); /* a span does not cross lines */
    expect_strip("*waves*", "waves");                            /* only a stage direction: its words */
    expect_strip("*waves* *grins*", "waves grins");
    expect_strip("", "");
    expect_strip("  plain  text ", "plain text");
}

/* ---- the paper's message layout, through scripted roles ---- */

typedef struct Roles {
    Double user, inducer, hinted, plain, judge;
    json_t *last[5]; /* each role's last request: [[role, content]...] */
    int judge_first; /* 1: the judge always answers "first" */
    pthread_mutex_t lock;
} Roles;

enum { R_USER, R_INDUCER, R_HINTED, R_PLAIN, R_JUDGE };

static void keep(Roles *r, int role, const LlmMessage *m, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_pack("[s, s]", m[i].role, m[i].content));
    pthread_mutex_lock(&r->lock);
    json_decref(r->last[role]);
    r->last[role] = a;
    pthread_mutex_unlock(&r->lock);
}

static char *user_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    keep(ctx, R_USER, m, n);
    return xasprintf("*waves*  Message %d", (n + 1) / 2);
}

static char *inducer_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    keep(ctx, R_INDUCER, m, n);
    int users = 0;
    for (const char *s = m[0].content; (s = strstr(s, "\nA: Message")); s++) users++;
    return xasprintf("**Profile:** guess %d **Personalities:** none", users);
}

static int turn_of_responder(int n) { return (n + 1) / 2; }

static char *hinted_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    keep(ctx, R_HINTED, m, n);
    return xasprintf("Reply hinted %d", turn_of_responder(n));
}

static char *plain_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    keep(ctx, R_PLAIN, m, n);
    return xasprintf("Reply plain %d", turn_of_responder(n));
}

static char *judge_reply(void *ctx, const LlmMessage *m, int n, const LlmParams *p) {
    (void)p;
    Roles *r = ctx;
    keep(ctx, R_JUDGE, m, n);
    if (r->judge_first) return xstrdup("First.");
    return xstrdup(strstr(m[0].content, "Message 1: Reply hinted") ? "**First**" : "`second`");
}

typedef struct Setup {
    Roles roles;
    LlmBackend *b[5];
    Prompts prompts;
    DialoguesConfig c;
} Setup;

static void setup(Setup *s, const char *out) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->roles.lock, NULL);
    Double *d[5] = {&s->roles.user, &s->roles.inducer, &s->roles.hinted, &s->roles.plain, &s->roles.judge};
    DoubleReplyFn fns[5] = {user_reply, inducer_reply, hinted_reply, plain_reply, judge_reply};
    const char *names[5] = {"u", "i", "h", "p", "j"};
    for (int i = 0; i < 5; i++) {
        d[i]->reply = fns[i];
        d[i]->ctx = &s->roles;
        s->b[i] = double_backend(names[i], d[i]);
    }
    prompts_init(&s->prompts, PROTOCOL_PAPER);
    dialogues_config_default(&s->c); /* paper */
    s->c.prompts = &s->prompts;
    s->c.turns = 3;
    s->c.seed = 7;
    s->c.jobs = 2;
    s->c.quiet = 1;
    s->c.user = s->b[0], s->c.inducer = s->b[1], s->c.hinted = s->b[2], s->c.plain = s->b[3], s->c.judge = s->b[4];
    s->c.out_path = out;
}

static void teardown(Setup *s) {
    for (int i = 0; i < 5; i++) llm_free(s->b[i]), json_decref(s->roles.last[i]);
    prompts_free(&s->prompts);
    pthread_mutex_destroy(&s->roles.lock);
}

static const char *msg_role(json_t *req, size_t i) { return json_string_value(json_array_get(json_array_get(req, i), 0)); }
static const char *msg_text(json_t *req, size_t i) { return json_string_value(json_array_get(json_array_get(req, i), 1)); }

static const char *turn_str(json_t *rec, int t, const char *a, const char *b) {
    json_t *x = json_object_get(json_array_get(json_object_get(rec, "conversations"), (size_t)t), a);
    return json_string_value(b ? json_object_get(x, b) : x);
}

/* The hinted responder's user message of a turn, as the paper builds it. */
static char *hinted_msg(const Prompts *P, int turn) {
    char inf[32];
    snprintf(inf, sizeof inf, "guess %d", turn);
    const char *vars[] = {"inferred_profile", inf, "inferred_personality", "None", NULL};
    char *hint = prompt_fill(P->text[PROMPT_RESPONDER_HINT], vars);
    char *m = xasprintf("Message %d\n%s\n%s", turn, hint, P->text[PROMPT_RESPONDER_SUFFIX]);
    free(hint);
    return m;
}

static void test_paper_message_layout(void) {
    Setup s;
    setup(&s, NULL);
    const Prompts *P = &s.prompts;
    Err e;
    json_t *rec = dialogue_generate(&s.c, "P-PROFILE She is a baker.", "P-PERSONALITY shy", 0, NULL, &e);
    CHECK_MSG(rec, "%s", e.msg);
    if (!rec) {
        teardown(&s);
        return;
    }
    /* The user's words without the stage direction; the raw text in meta. */
    const char *taken[3];
    for (int t = 0; t < 3; t++) {
        char want[32];
        snprintf(want, sizeof want, "Message %d", t + 1);
        CHECK_EQ_STR(turn_str(rec, t, "user", NULL), want);
        json_t *det = json_array_get(json_object_get(json_object_get(rec, "meta"), "turn_details"), (size_t)t);
        snprintf(want, sizeof want, "*waves*  Message %d", t + 1);
        CHECK_EQ_STR(json_string_value(json_object_get(det, "user_raw")), want);
        snprintf(want, sizeof want, "guess %d", t + 1);
        CHECK_EQ_STR(turn_str(rec, t, "inferred_profile", NULL), want);
        CHECK_EQ_STR(turn_str(rec, t, "inferred_personality", NULL), "None");
        CHECK(json_is_true(json_object_get(det, "inducer_parsed")));
        CHECK_EQ_STR(turn_str(rec, t, "assistant", "preferred"), t == 0 ? "Reply hinted 1" : t == 1 ? "Reply hinted 2"
                                                                                                    : "Reply hinted 3");
        taken[t] = turn_str(rec, t, "assistant", turn_str(rec, t, "chosen", NULL));
    }

    /* User simulator at turn 3: the filled instructions as its first user
     * message (no system prompt), then its own messages as "assistant" and
     * each reply followed by the reminder. */
    json_t *u = s.roles.last[R_USER];
    CHECK_EQ_INT(json_array_size(u), 5);
    const char *pv[] = {"profile", "P-PROFILE She is a baker.", "personality", "P-PERSONALITY shy", NULL};
    char *instr = prompt_fill(P->text[PROMPT_USER_SIMULATOR], pv);
    CHECK_EQ_STR(msg_role(u, 0), "user");
    CHECK_EQ_STR(msg_text(u, 0), instr);
    free(instr);
    for (int t = 0; t < 2; t++) {
        char want[256];
        snprintf(want, sizeof want, "Message %d", t + 1);
        CHECK_EQ_STR(msg_role(u, 1 + 2 * (size_t)t), "assistant");
        CHECK_EQ_STR(msg_text(u, 1 + 2 * (size_t)t), want);
        snprintf(want, sizeof want, "%s\n%s", taken[t], P->text[PROMPT_USER_REPLY_SUFFIX]);
        CHECK_EQ_STR(msg_role(u, 2 + 2 * (size_t)t), "user");
        CHECK_EQ_STR(msg_text(u, 2 + 2 * (size_t)t), want);
    }

    /* Inducer at turn 3: one message, the persona and the A/B transcript. */
    json_t *ind = s.roles.last[R_INDUCER];
    CHECK_EQ_INT(json_array_size(ind), 1);
    char *conv = xasprintf("A: Message 1\nB: %s\nA: Message 2\nB: %s\nA: Message 3", taken[0], taken[1]);
    const char *iv[] = {"profile", "P-PROFILE She is a baker.", "personality", "P-PERSONALITY shy", "conversation",
                        conv, NULL};
    char *iprompt = prompt_fill(P->text[PROMPT_INDUCER], iv);
    CHECK_EQ_STR(msg_role(ind, 0), "user");
    CHECK_EQ_STR(msg_text(ind, 0), iprompt);
    free(iprompt);
    free(conv);

    /* Hinted responder at turn 3: no system prompt; every user message
     * carries the hint of its own turn and the reminder. */
    json_t *h = s.roles.last[R_HINTED];
    CHECK_EQ_INT(json_array_size(h), 5);
    for (int t = 0; t < 3; t++) {
        char *want = hinted_msg(P, t + 1);
        CHECK_EQ_STR(msg_role(h, 2 * (size_t)t), "user");
        CHECK_EQ_STR(msg_text(h, 2 * (size_t)t), want);
        free(want);
        if (t < 2) CHECK_EQ_STR(msg_text(h, 2 * (size_t)t + 1), taken[t]);
    }
    /* Plain responder: the reminder only, never the hint. */
    json_t *pl = s.roles.last[R_PLAIN];
    CHECK_EQ_INT(json_array_size(pl), 5);
    for (int t = 0; t < 3; t++) {
        char *want = xasprintf("Message %d\n%s", t + 1, P->text[PROMPT_RESPONDER_SUFFIX]);
        CHECK_EQ_STR(msg_role(pl, 2 * (size_t)t), "user");
        CHECK_EQ_STR(msg_text(pl, 2 * (size_t)t), want);
        CHECK(!strstr(msg_text(pl, 2 * (size_t)t), "guess"));
        free(want);
    }

    /* Judge (second order at turn 3): the persona and the two replies. */
    json_t *j = s.roles.last[R_JUDGE];
    CHECK_EQ_INT(json_array_size(j), 1);
    const char *jv[] = {"profile", "P-PROFILE She is a baker.", "personality", "P-PERSONALITY shy", "reply_a",
                        "Reply plain 3", "reply_b", "Reply hinted 3", NULL};
    char *jprompt = prompt_fill(P->text[PROMPT_JUDGE_PAIR], jv);
    CHECK_EQ_STR(msg_text(j, 0), jprompt);
    free(jprompt);

    /* A fair judge that answers "**First**" / "`second`": both orders agree. */
    json_t *jo = json_object_get(json_object_get(rec, "meta"), "judge_orders");
    CHECK_EQ_INT(json_integer_value(json_object_get(jo, "both_verdicts")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(jo, "agreements")), 3);
    CHECK_EQ_INT(json_integer_value(json_object_get(jo, "first_position_wins")), 3);
    json_decref(rec);
    teardown(&s);
}

/* ---- agreement and position bias ---- */

static json_t *verdict(const char *v) {
    return json_pack("{s:[], s:o}", "raw", "verdict", v ? json_string(v) : json_null());
}

/* A record whose turns have these (hinted first, hinted second) verdicts. */
static json_t *record_with(const char *const (*v)[2], int n) {
    json_t *det = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(det, json_pack("{s:i, s:o, s:o}", "turn", i + 1, "judge_hinted_first", verdict(v[i][0]),
                                             "judge_hinted_second", verdict(v[i][1])));
    return json_pack("{s:{s:o}}", "meta", "turn_details", det);
}

static void test_judge_order_counts(void) {
    /* Hand count. Turns with both verdicts: (A,B) (A,A) (B,B) (B,A) = 4.
     * Same reply chosen (the letters differ, since the hinted reply is A in
     * the first order and B in the second): (A,B) (B,A) = 2 -> 2/4 = 0.5.
     * Verdicts for the first position: 1 + 2 + 0 + 1 = 4 of 8 -> 0.5. The
     * turns with a missing verdict count only in `turns`. */
    const char *const a[][2] = {{"A", "B"}, {"A", "A"}, {"B", "B"}, {"A", NULL}, {NULL, NULL}, {"B", "A"}};
    json_t *rec = record_with(a, 6);
    JudgeOrderCounts c = {0};
    dialogues_judge_counts(rec, &c);
    CHECK_EQ_INT(c.turns, 6);
    CHECK_EQ_INT(c.both_verdicts, 4);
    CHECK_EQ_INT(c.agreements, 2);
    CHECK_EQ_INT(c.first_position_wins, 4);
    CHECK(judge_agreement_rate(&c) == 0.5);
    CHECK(judge_position_bias_rate(&c) == 0.5);
    /* A second record adds: (A,A) x3 -> both 3, agree 0, first wins 6.
     * Totals: both 7, agree 2 -> 2/7; first wins 10 of 14 -> 5/7. */
    const char *const b[][2] = {{"A", "A"}, {"A", "A"}, {"A", "A"}};
    json_t *rec2 = record_with(b, 3);
    dialogues_judge_counts(rec2, &c);
    CHECK_EQ_INT(c.turns, 9);
    CHECK_EQ_INT(c.both_verdicts, 7);
    CHECK_EQ_INT(c.agreements, 2);
    CHECK_EQ_INT(c.first_position_wins, 10);
    CHECK(judge_agreement_rate(&c) == 2.0 / 7.0);
    CHECK(judge_position_bias_rate(&c) == 10.0 / 14.0);
    json_decref(rec);
    json_decref(rec2);
    /* No turn with both verdicts: the rates are undefined, not 0. */
    JudgeOrderCounts z = {0};
    CHECK(isnan(judge_agreement_rate(&z)) && isnan(judge_position_bias_rate(&z)));
}

static void test_summary_of_a_biased_judge(void) {
    /* A judge that always answers "first": 2 conversations x 3 turns, every
     * turn has both verdicts, none agree, all 12 verdicts pick position 1. */
    char *dir = test_tmpdir(), *out = path_join(dir, "t.jsonl");
    Setup s;
    setup(&s, out);
    s.roles.judge_first = 1;
    StrList pr = {0}, pe = {0};
    strlist_push(&pr, "P-PROFILE one");
    strlist_push(&pr, "P-PROFILE two");
    strlist_push(&pe, "shy");
    DialoguePlan plan;
    Err e;
    CHECK_OK(dialogues_plan(&plan, pr.n, pe.n, 1, 0, 7, &e), &e);
    DialoguesResult r = {0};
    CHECK_OK(dialogues_run(&s.c, &pr, &pe, &plan, &r, &e), &e);
    CHECK_EQ_INT(r.judges.both_verdicts, 6);
    CHECK_EQ_INT(r.judges.agreements, 0);
    CHECK_EQ_INT(r.judges.first_position_wins, 12);
    CHECK_EQ_INT(r.disagreements, 6);
    dialogues_result_free(&r);
    char *sp = path_join(dir, "t.summary.json");
    json_t *sum = json_load_file(sp, 0, NULL);
    CHECK(sum);
    json_t *j = json_object_get(sum, "judges");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "both_verdicts")), 6);
    CHECK(json_real_value(json_object_get(j, "position_bias_rate")) == 1.0);
    CHECK(json_real_value(json_object_get(j, "agreement_rate")) == 0.0);
    CHECK(json_string_value(json_object_get(json_object_get(j, "definitions"), "position_bias_rate")));
    CHECK_EQ_STR(json_string_value(json_object_get(sum, "protocol")), "paper");
    CHECK(json_is_true(json_object_get(sum, "complete")));
    CHECK_EQ_INT(json_array_size(json_object_get(sum, "skipped")), 0);
    /* the settings record the protocol and every prompt the trees used */
    char *setp = path_join(dir, "t.settings.json");
    json_t *set = json_load_file(setp, 0, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(set, "protocol")), "paper");
    CHECK(json_string_value(json_object_get(json_object_get(set, "prompts"), "responder_hint")));
    json_decref(set);
    json_decref(sum);
    free(setp);
    free(sp);
    dialogues_plan_free(&plan);
    strlist_free(&pr);
    strlist_free(&pe);
    teardown(&s);
    free(out);
    free(dir);
}

/* ---- the paper's prompt texts ---- */

static void test_paper_texts(void) {
    Prompts p;
    prompts_init(&p, PROTOCOL_PAPER);
    /* not sent under paper */
    CHECK_EQ_STR(p.text[PROMPT_USER_FIRST_TURN], "");
    CHECK_EQ_STR(p.text[PROMPT_RESPONDER_HINTED], "");
    CHECK_EQ_STR(p.text[PROMPT_RESPONDER_PLAIN], "");
    CHECK_EQ_STR(p.text[PROMPT_EVALUATED], "");
    /* every placeholder a role's text needs is in it */
    static const struct {
        PromptId id;
        const char *need;
    } need[] = {
        {PROMPT_USER_SIMULATOR, "{profile} {personality}"},
        {PROMPT_INDUCER, "{profile} {personality} {conversation}"},
        {PROMPT_RESPONDER_HINT, "{inferred_profile} {inferred_personality}"},
        {PROMPT_JUDGE_PAIR, "{profile} {personality} {reply_a} {reply_b}"},
        {PROMPT_JUDGE_SCORE, "{profile} {personality} {user_message} {reply}"},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", need[i].need);
        for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "))
            CHECK_MSG(strstr(p.text[need[i].id], w), "%s lacks %s", prompt_key(need[i].id), w);
    }
    CHECK_EQ_STR(prompt_placeholders(PROMPT_INDUCER), "{profile} {personality} {conversation}");
    /* the inducer's worked examples parse as the answers they show */
    const char *ex = strstr(p.text[PROMPT_INDUCER], "Example 1");
    CHECK(ex && strstr(ex, "Personalities: None"));
    CHECK(strstr(p.text[PROMPT_JUDGE_PAIR], "first") && strstr(p.text[PROMPT_JUDGE_PAIR], "second"));
    CHECK(strstr(p.text[PROMPT_RESPONDER_SUFFIX], "3 sentences"));
    CHECK(strstr(p.text[PROMPT_USER_REPLY_SUFFIX], "3 sentences"));
    prompts_free(&p);
}

int main(void) {
    RUN(test_pair_parser_accepts);
    RUN(test_pair_parser_rejects);
    RUN(test_inducer_parser_forms);
    RUN(test_stage_directions);
    RUN(test_paper_texts);
    RUN(test_paper_message_layout);
    RUN(test_judge_order_counts);
    RUN(test_summary_of_a_biased_judge);
    return test_summary();
}
