/* recipe: the parser, its errors (file:line:column and the key), ${VAR}
 * expansion, the plan (stages, command lines, dependencies, digests) and
 * the estimates, without running anything. */
#include <stdlib.h>
#include <string.h>

#include "aloe/recipe.h"
#include "base/mem.h"
#include "test.h"

/* The variables a test recipe sees: a fixed table, nothing from the real
 * environment. */
static const char *vars(void *ctx, const char *name) {
    (void)ctx;
    if (!strcmp(name, "ALOE_SHARED")) return "/shared";
    if (!strcmp(name, "OPENAI_BASE_URL")) return "http://fake/v1";
    return NULL;
}

/* Every pool has 20 lines: the estimates below are computed with it. */
static long lines(void *ctx, const char *path) {
    (void)ctx;
    (void)path;
    return 20;
}

/* The pools' contents: a digest that a test may change (an edited pool). */
static char pool_version = 'a';
static int sha(void *ctx, const char *path, char hex[65]) {
    (void)ctx;
    (void)path;
    memset(hex, pool_version, 64);
    hex[64] = 0;
    return 0;
}

static const RecipeEnv ENV = {vars, lines, NULL, sha};

static int plan(const char *text, RecipePlan *pl, Err *e) {
    return recipe_plan_text("study.yaml", text, strlen(text), &ENV, pl, e);
}

/* The error of a recipe that must fail, or "" (static buffer). */
static const char *error_of(const char *text) {
    static Err e;
    RecipePlan pl;
    memset(&e, 0, sizeof e);
    if (plan(text, &pl, &e) == 0) {
        recipe_plan_free(&pl);
        return "";
    }
    return e.msg;
}

#define MINI_HEAD                                                                                                   \
    "out: o\n"                                                                                                      \
    "model: m0\n"                                                                                                   \
    "personas:\n"                                                                                                   \
    "  train: {published: /p}\n"                                                                                    \
    "  eval: {published: /p}\n"
#define MINI_DIALOGUES                                                                                              \
    "dialogues:\n"                                                                                                  \
    "  user: u\n"                                                                                                   \
    "  inducer: i\n"                                                                                                \
    "  responder: r\n"                                                                                              \
    "  judge: j\n"                                                                                                  \
    "  turns: 2\n"                                                                                                  \
    "  passes: 3\n"                                                                                                 \
    "  jobs: 4\n"
#define MINI_BENCH                                                                                                  \
    "bench:\n"                                                                                                      \
    "  user: u\n"                                                                                                   \
    "  judge: j\n"                                                                                                  \
    "  personalities_per_profile: 2\n"                                                                              \
    "  turns: 3\n"

static const char *MINI = MINI_HEAD MINI_DIALOGUES
    "arms:\n"
    "  - name: base\n"
    "    base: true\n"
    "  - name: sft\n"
    "    sft: {lora_r: 4, steps: 7}\n"
    "  - name: dpo\n"
    "    dpo: {from: sft, beta: 0.9}\n"
    "  - name: ck\n"
    "    checkpoint: /ck\n"
    "  - name: ep\n"
    "    endpoint: {model: served, base_url: http://gpu/v1, api_key_env: GPU_KEY}\n" MINI_BENCH;

static int argv_has(const RecipeStep *s, const char *flag, const char *value) {
    for (int i = 0; i + 1 < s->argc; i++)
        if (!strcmp(s->argv[i], flag) && (!value || !strcmp(s->argv[i + 1], value))) return 1;
    return 0;
}

static void test_plan_stages_and_commands(void) {
    RecipePlan pl;
    Err e = {0};
    CHECK_OK(plan(MINI, &pl, &e), &e);
    const char *names[] = {"personas", "dialogues", "export", "train/sft", "train/dpo", "bench/base",
                           "bench/sft", "bench/dpo", "bench/ck", "bench/ep", "report"};
    CHECK_EQ_INT(pl.n, 11);
    for (int i = 0; i < 11; i++) CHECK_EQ_STR(pl.stages[i].name, names[i]);
    /* published pools are copied into OUT/personas */
    CHECK_EQ_INT(pl.stages[0].nsteps, 4);
    CHECK_EQ_STR(pl.stages[0].steps[0].src, "/p/profile.jsonl");
    CHECK_EQ_STR(pl.stages[0].steps[3].dst, "o/personas/personality_eval.jsonl");
    /* the LoRA SFT arm trains, then merges for the benchmark */
    const RecipeStage *sft = &pl.stages[3];
    CHECK_EQ_INT(sft->nsteps, 2);
    CHECK_EQ_STR(sft->steps[0].argv[0], "train");
    CHECK_EQ_STR(sft->steps[0].argv[1], "sft");
    CHECK(argv_has(&sft->steps[0], "--data", "o/export/sft_preferred.jsonl"));
    CHECK(argv_has(&sft->steps[0], "--lora-r", "4"));
    CHECK(sft->steps[0].train_resume);
    CHECK_EQ_STR(sft->steps[1].argv[0], "merge");
    /* SFT -> DPO starts from the SFT arm's merged model and depends on it */
    const RecipeStage *dpo = &pl.stages[4];
    CHECK(argv_has(&dpo->steps[0], "--model", "o/train/sft/merged"));
    CHECK(argv_has(&dpo->steps[0], "--beta", "0.9"));
    CHECK(argv_has(&dpo->steps[0], "--data", "o/export/dpo.jsonl"));
    CHECK(dpo->ndeps == 2);
    /* every arm is benched: its own model */
    CHECK(argv_has(&pl.stages[5].steps[0], "--model", "m0"));
    CHECK(argv_has(&pl.stages[6].steps[0], "--model", "local:o/train/sft/merged"));
    CHECK(argv_has(&pl.stages[7].steps[0], "--model", "local:o/train/dpo/model"));
    CHECK(argv_has(&pl.stages[8].steps[0], "--model", "/ck"));
    /* the endpoint arm: its URL and key for the model; user and judge pinned
     * to the default endpoint ($OPENAI_BASE_URL here) */
    const RecipeStep *ep = &pl.stages[9].steps[0];
    CHECK(argv_has(ep, "--model", "served"));
    CHECK(argv_has(ep, "--base-url", "http://gpu/v1"));
    CHECK(argv_has(ep, "--api-key-env", "GPU_KEY"));
    CHECK(argv_has(ep, "--user-base-url", "http://fake/v1"));
    CHECK(argv_has(ep, "--judge-api-key-env", "OPENAI_API_KEY"));
    /* the report compares every arm, the first one first */
    const RecipeStep *rep = &pl.stages[10].steps[0];
    CHECK_EQ_STR(rep->argv[1], "o/bench/base");
    CHECK_EQ_STR(rep->argv[5], "o/bench/ep");
    /* labelled by arm, with the paired comparison as JSON */
    CHECK(argv_has(rep, "--names", "base,sft,dpo,ck,ep"));
    CHECK(argv_has(rep, "--json", "o/report/compare.json"));
    /* no protocol in the recipe: none passed on */
    for (int i = 0; i < pl.n; i++)
        for (int k = 0; k < pl.stages[i].nsteps; k++)
            if (pl.stages[i].steps[k].argv) CHECK(!argv_has(&pl.stages[i].steps[k], "--protocol", NULL));
    recipe_plan_free(&pl);
}

static void test_estimates_follow_the_documented_formulas(void) {
    RecipePlan pl;
    Err e = {0};
    CHECK_OK(plan(MINI, &pl, &e), &e);
    /* dialogues: 3 passes x 20 profiles = 60 conversations x 2 turns x 6 */
    CHECK_EQ_INT(pl.stages[1].total, 60);
    CHECK_NEAR(pl.stages[1].est.requests, 60 * 2 * 6, 0);
    /* tokens, by hand from the constants (instructions 150, persona 150,
     * user 40, reply 60, hint 80, verdict 20; history (t-1) x 100):
     * turn 1 prompt 300 + 340 + 120 + 40 + 2 x 460 = 1720; turn 2 adds the
     * 100-token history to the user, the inducer and both responders (not
     * the judges): 2120; completion 40 + 80 + 120 + 40 = 280 per turn. */
    CHECK_NEAR(pl.stages[1].est.prompt_tokens, 60.0 * (1720 + 2120), 1e-6);
    CHECK_NEAR(pl.stages[1].est.completion_tokens, 60.0 * 2 * 280, 1e-6);
    /* train: steps as given; the DPO arm: 1 epoch of 60 x 2 records at batch 1 */
    CHECK_NEAR(pl.stages[3].est.train_steps, 7, 0);
    CHECK_NEAR(pl.stages[4].est.train_steps, 120, 0);
    /* bench: 20 eval profiles x K 2 = 40 personas x 3 turns x 3 */
    CHECK_EQ_INT(pl.stages[5].total, 40);
    CHECK_NEAR(pl.stages[5].est.requests, 40 * 3 * 3, 0);
    char *s = recipe_plan_text_summary(&pl);
    CHECK_MSG(strstr(s, "[2/11] dialogues") && strstr(s, "720 requests") && strstr(s, "total: ") &&
                  strstr(s, "x 6 (1 user + 1 inducer + 2 responders + 2 judge"),
              "%s", s);
    CHECK_MSG(strstr(s, "$ aloe dialogues --profiles o/personas/profile.jsonl"), "%s", s);
    free(s);
    recipe_plan_free(&pl);
}

static void test_digest_tracks_results_not_jobs_or_endpoints(void) {
    RecipePlan a, b, c;
    Err e = {0};
    CHECK_OK(plan(MINI, &a, &e), &e);
    char *t = xstrdup(MINI);
    memcpy(strstr(t, "jobs: 4"), "jobs: 9", 7); /* -j only: same results */
    CHECK_OK(plan(t, &b, &e), &e);
    memcpy(strstr(t, "turns: 2"), "turns: 5", 8);
    CHECK_OK(plan(t, &c, &e), &e);
    CHECK_EQ_STR(a.stages[1].digest, b.stages[1].digest);
    CHECK(strcmp(a.stages[1].digest, c.stages[1].digest) != 0);
    CHECK_EQ_STR(a.stages[0].digest, c.stages[0].digest);
    /* out: is not a setting: a study folder may move */
    char *moved = xstrdup(MINI);
    memcpy(strstr(moved, "out: o"), "out: p", 6);
    RecipePlan d;
    CHECK_OK(plan(moved, &d, &e), &e);
    for (int i = 0; i < d.n; i++) CHECK_MSG(!strcmp(a.stages[i].digest, d.stages[i].digest), "%s", d.stages[i].name);
    recipe_plan_free(&d);
    free(moved);
    char *diff = recipe_settings_diff(a.stages[1].settings, c.stages[1].settings);
    CHECK_EQ_STR(diff, "dialogues.turns (2 -> 5)");
    free(diff);
    /* an edited published pool changes the personas stage's settings */
    pool_version = 'b';
    CHECK_OK(plan(MINI, &d, &e), &e);
    pool_version = 'a';
    CHECK(strcmp(a.stages[0].digest, d.stages[0].digest) != 0);
    diff = recipe_settings_diff(a.stages[0].settings, d.stages[0].settings);
    CHECK_MSG(strstr(diff, "personas.train.published_sha256") && strstr(diff, "personas.eval.published_sha256"), "%s",
              diff);
    free(diff);
    recipe_plan_free(&d);
    recipe_plan_free(&a), recipe_plan_free(&b), recipe_plan_free(&c);
    free(t);
}

static void test_from_redoes_the_stage_and_its_dependents(void) {
    RecipePlan pl;
    Err e = {0};
    CHECK_OK(plan(MINI, &pl, &e), &e);
    int redo[11] = {0};
    recipe_dependents(&pl, recipe_stage_find(&pl, "train/sft"), redo);
    /* train/sft, train/dpo (from sft), bench/sft, bench/dpo, report */
    int want[11] = {0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1};
    for (int i = 0; i < 11; i++) CHECK_MSG(redo[i] == want[i], "%s: %d", pl.stages[i].name, redo[i]);
    memset(redo, 0, sizeof redo);
    recipe_dependents(&pl, recipe_stage_find(&pl, "personas"), redo);
    for (int i = 0; i < 11; i++) CHECK_MSG(redo[i], "%s not redone", pl.stages[i].name);
    recipe_plan_free(&pl);
}

static void test_expansion_and_protocol(void) {
    RecipePlan pl;
    Err e = {0};
    const char *t = "out: ${ALOE_SHARED}/x$y\nprotocol: paper\nseed: 5\n"
                    "personas:\n  eval:\n    published: ${ALOE_SHARED}/aloe-data\n"
                    "arms: [{name: a, checkpoint: /c}]\nbench: {user: u, judge: j}\n";
    CHECK_OK(plan(t, &pl, &e), &e);
    CHECK_EQ_STR(pl.out, "/shared/x$y");
    CHECK_EQ_STR(pl.stages[0].steps[0].src, "/shared/aloe-data/profile_eval.jsonl");
    /* no arm trains: no training pools, dialogues or export */
    CHECK_EQ_INT(pl.n, 3);
    CHECK(argv_has(&pl.stages[1].steps[0], "--protocol", "paper"));
    CHECK(argv_has(&pl.stages[1].steps[0], "--seed", "5"));
    recipe_plan_free(&pl);
}

static void test_presets_are_valid_recipes(void) {
    RecipePlan pl;
    Err e = {0};
    const char *tiny = recipe_preset("tiny"), *paper = recipe_preset("paper");
    CHECK(tiny && paper && !recipe_preset("huge"));
    CHECK_OK(plan(tiny, &pl, &e), &e);
    /* personas, dialogues, export, 4 trained arms and an adapter to merge, 8
     * benches, report */
    CHECK_EQ_INT(pl.n, 17);
    int m = recipe_stage_find(&pl, "train/elsewhere-lora");
    CHECK(m > 0 && pl.stages[m].kind == STAGE_MERGE);
    CHECK(argv_has(&pl.stages[m].steps[0], "--adapter", "/shared/fixtures/models/tiny-qwen2-lora"));
    CHECK(argv_has(&pl.stages[m].steps[0], "--model", "/shared/fixtures/models/tiny-qwen2"));
    CHECK(argv_has(&pl.stages[recipe_stage_find(&pl, "bench/elsewhere-lora")].steps[0], "--model",
                   "local:study-tiny/train/elsewhere-lora/merged"));
    recipe_plan_free(&pl);
    CHECK_OK(plan(paper, &pl, &e), &e);
    /* personas, dialogues, export, 12 trained arms, 16 benches, report */
    CHECK_EQ_INT(pl.n, 3 + 12 + 16 + 1);
    int i = recipe_stage_find(&pl, "train/llama3-dpo");
    CHECK(i > 0);
    CHECK(argv_has(&pl.stages[i].steps[0], "--beta", "0.9"));
    CHECK(argv_has(&pl.stages[i].steps[0], "--model", "hf://meta-llama/Meta-Llama-3-8B-Instruct"));
    i = recipe_stage_find(&pl, "bench/olmo");
    CHECK(argv_has(&pl.stages[i].steps[0], "--personalities-per-profile", "5"));
    CHECK(argv_has(&pl.stages[i].steps[0], "--protocol", "paper"));
    CHECK(argv_has(&pl.stages[1].steps[0], "--passes", "10"));
    CHECK(argv_has(&pl.stages[1].steps[0], "--user-model", "gpt-4o-mini"));
    recipe_plan_free(&pl);
    /* the shipped copies in data/recipes are the same text */
    char *t = test_read_text("data/recipes/tiny.yaml"), *p = test_read_text("data/recipes/paper.yaml");
    CHECK_MSG(t && !strcmp(t, tiny), "data/recipes/tiny.yaml is not what recipe_preset(\"tiny\") embeds");
    CHECK_MSG(p && !strcmp(p, paper), "data/recipes/paper.yaml is not what recipe_preset(\"paper\") embeds");
    free(t), free(p);
}

/* Each bad recipe: the file:line:column, the key, what was expected. */
static void test_errors_name_place_and_key(void) {
    const struct {
        const char *text, *want[3];
    } cases[] = {
        {MINI_HEAD "colour: red\n", {"study.yaml:6:1: colour: unknown key", "expected one of: out, seed", NULL}},
        {MINI_HEAD "arms: [{name: a, checkpoint: /c}]\n" MINI_BENCH "---\nout: other\n",
         {"study.yaml:13:1: a second YAML document", NULL, NULL}},
        {MINI_HEAD MINI_DIALOGUES "  turnz: 3\narms: [{name: a, sft: {}}]\n" MINI_BENCH, {"study.yaml:14:3: dialogues.turnz: unknown key", NULL, NULL}},
        {MINI_HEAD MINI_DIALOGUES "arms: [{name: a, base: true}]\n" MINI_BENCH "  turns: ten\n",
         {"study.yaml:", "bench.turns", "given twice"}},
        {"out: o\npersonas: {eval: {published: /p}}\narms: [{name: a, checkpoint: /c}]\n"
         "bench: {user: u, judge: j, turns: ten}\n",
         {"study.yaml:4:", "bench.turns: expected a positive integer, got \"ten\"", NULL}},
        {"out: o\npersonas: {eval: {published: /p}}\narms: [{name: a, base: true}]\nbench: {user: u, judge: j}\n",
         {"study.yaml:3:", "arms[0]: missing model", NULL}},
        {"out: ${NOPE}/x\n", {"study.yaml:1:6: out: ${NOPE} is not set", NULL, NULL}},
        {"out: o\nseed: [1, 2]\n", {"study.yaml:2:7: seed: expected a value, got a list", NULL, NULL}},
        {"out: o\npersonas: {eval: {published: /p}}\narms: [{name: a, checkpoint: /c}]\nbench: {judge: j}\n",
         {"study.yaml:4:", "bench.user: missing", NULL}},
        {MINI_HEAD MINI_DIALOGUES "arms:\n  - name: d\n    dpo: {from: s}\n  - name: s\n    sft: {}\n" MINI_BENCH,
         {"study.yaml:16:", "arms[0].dpo.from: \"s\"", "move it up"}},
        {"out: o\narms: [{name: a, checkpoint: /c, base: true}]\n",
         {"study.yaml:2:", "arms[0]: expected exactly one of", NULL}},
        {"out: o\narms: [{name: a/b, checkpoint: /c}]\n", {"arms[0].name: \"a/b\"", NULL, NULL}},
        {"out: o\narms: [{name: a, checkpoint: {adapter: /a}}]\n", {"study.yaml:2:", "arms[0].checkpoint: missing model",
                                                                    NULL}},
        {"out: o\narms: [{name: a, checkpoint: {adaptor: /a}}]\n", {"arms[0].checkpoint.adaptor: unknown key", NULL,
                                                                     NULL}},
        {"out: o\n  bad: [\n", {"study.yaml:", "not valid YAML", NULL}},
        {"out: o\nprotocol: papr\n", {"study.yaml:2:11: protocol: expected paper or rubric", NULL, NULL}},
        {MINI_HEAD MINI_DIALOGUES "arms: [{name: a, sft: {branch: best}}]\n" MINI_BENCH,
         {"arms[0].sft.branch: expected preferred or rejected", NULL, NULL}},
        {MINI_HEAD MINI_DIALOGUES "arms: [{name: a, sft: {lr: fast}}]\n" MINI_BENCH,
         {"arms[0].sft.lr: expected a number, got \"fast\"", NULL, NULL}},
        {MINI_HEAD MINI_DIALOGUES "arms: [{name: a, sft: {beta: 0.1}}]\n" MINI_BENCH,
         {"arms[0].sft.beta: unknown key", NULL, NULL}},
        {"", {"study.yaml: the recipe is empty", NULL, NULL}},
        {"out: o\nendpoint: {base_url: u, api_key: sk-123}\n",
         {"study.yaml:2:25: endpoint.api_key: keys never go into a recipe", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *msg = error_of(cases[i].text);
        CHECK_MSG(*msg, "case %zu: accepted", i);
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            CHECK_MSG(strstr(msg, cases[i].want[k]), "case %zu: \"%s\" not in: %s", i, cases[i].want[k], msg);
    }
}

/* The per-role token limits and the failure policy reach the stage commands. */
static void test_role_limits_and_skip_failed_pass_through(void) {
    RecipePlan pl;
    Err e = {0};
    const char *text = MINI_HEAD MINI_DIALOGUES "  skip_failed: true\n"
        "arms:\n  - name: base\n    base: true\n  - name: sft\n    sft: {steps: 1}\n" MINI_BENCH
        "  max_tokens: 2000\n  user_max_tokens: 111\n  judge_max_tokens: 222\n  skip_failed: true\n";
    CHECK_OK(plan(text, &pl, &e), &e);
    const RecipeStep *dlg = &pl.stages[1].steps[0], *bench = &pl.stages[4].steps[0];
    CHECK_EQ_STR(bench->argv[0], "bench");
    CHECK(argv_has(dlg, "--skip-failed", NULL) || !strcmp(dlg->argv[dlg->argc - 1], "--skip-failed"));
    CHECK(argv_has(bench, "--max-tokens", "2000"));
    CHECK(argv_has(bench, "--user-max-tokens", "111"));
    CHECK(argv_has(bench, "--judge-max-tokens", "222"));
    int skip = 0;
    for (int i = 0; i < bench->argc; i++) skip += !strcmp(bench->argv[i], "--skip-failed");
    CHECK_EQ_INT(skip, 1);
    recipe_plan_free(&pl);
}

int main(void) {
    RUN(test_plan_stages_and_commands);
    RUN(test_role_limits_and_skip_failed_pass_through);
    RUN(test_estimates_follow_the_documented_formulas);
    RUN(test_digest_tracks_results_not_jobs_or_endpoints);
    RUN(test_from_redoes_the_stage_and_its_dependents);
    RUN(test_expansion_and_protocol);
    RUN(test_presets_are_valid_recipes);
    RUN(test_errors_name_place_and_key);
    return test_summary();
}
