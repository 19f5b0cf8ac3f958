/* recipe: a whole ALOE study described by one commented YAML file, checked
 * and turned into a plan of stages (`aloe run RECIPE` executes the plan).
 *
 * This module is pure: it parses (libyaml), validates, expands ${VAR}s,
 * builds each stage's `aloe ...` command lines, settings digest and cost
 * estimate. It runs nothing and reads no file but the recipe text it is
 * given. Every error names FILE:LINE:COLUMN and the key, and says what was
 * expected.
 *
 * The recipe (every key is documented in the presets, recipe_preset()):
 *
 *   out: DIR                  every stage writes DIR/<stage>/
 *   seed: N                   default seed of every stage
 *   protocol: paper|rubric    passed to personas, dialogues, bench when set
 *   model: SPEC               the start model of the training arms
 *   endpoint: {base_url, api_key_env, timeout, retries}   defaults of every role
 *   personas: {train: POOL, eval: POOL}
 *       POOL = {published: DIR} (profile.jsonl, personality.jsonl, or for
 *              eval profile_eval.jsonl, personality_eval.jsonl) or
 *              {generate: {model, embed_model, profiles, personalities, ...}}
 *   dialogues: {user, inducer, responder | hinted + plain, judge, passes|num,
 *               turns, jobs, ...}   a role is a model name or {model, base_url,
 *               api_key_env}
 *   export: {system}
 *   arms: [{name, model?, ONE OF base: true | sft: {branch, TRAIN...} |
 *           dpo: {from, TRAIN...} | checkpoint: PATH | checkpoint: {adapter: DIR}
 *           | endpoint: {model, ...}}]
 *   bench: {user, judge, personalities_per_profile, turns, jobs, ...}
 *   report: {title}
 *
 * The stages, in order: personas, dialogues, export, train/ARM (one per
 * trained arm, and per adapter checkpoint to merge), bench/ARM (one per arm), report. A stage that the recipe
 * does not need (dialogues and export when no arm trains) is left out. */
#ifndef ALOE_ALOE_RECIPE_H
#define ALOE_ALOE_RECIPE_H

#include <jansson.h>

#include "base/err.h"

/* What the plan may ask of its caller, so that this module stays pure:
 * lookup gives a variable for ${VAR} expansion (getenv in the CLI; tests pass
 * their own), NULL when unset; count_lines gives the number of lines of a
 * file (the published pools, for the estimates), -1 when unknown. Either may
 * be NULL. */
typedef struct RecipeEnv {
    const char *(*lookup)(void *ctx, const char *name);
    long (*count_lines)(void *ctx, const char *path);
    void *ctx;
    /* The SHA-256 of a file as hex (the published pools: part of the
     * personas stage's settings, so an edited pool is a changed setting);
     * returns -1 when it cannot be read. May be NULL. */
    int (*file_sha256)(void *ctx, const char *path, char hex[65]);
} RecipeEnv;

/* STAGE_MERGE: a checkpoint arm given as a peft adapter, merged into its
 * base model for the benchmark (stage "train/ARM", one `aloe merge`). */
typedef enum { STAGE_PERSONAS, STAGE_DIALOGUES, STAGE_EXPORT, STAGE_TRAIN, STAGE_MERGE, STAGE_BENCH, STAGE_REPORT } StageKind;

/* One step of a stage: an `aloe` command line (argv[0] is the subcommand),
 * or a file copy (published pools). */
typedef struct RecipeStep {
    char **argv; /* NULL-terminated; NULL for a copy */
    int argc;
    char *src, *dst; /* a copy */
    /* `aloe train`: add --resume when --out already holds a checkpoint */
    int train_resume;
    char *train_out;
} RecipeStep;

/* What a stage is expected to cost (see recipe_estimate_help()). */
typedef struct RecipeEstimate {
    double requests, prompt_tokens, completion_tokens;
    double train_steps; /* train stages: optimizer steps */
} RecipeEstimate;

typedef struct RecipeStage {
    StageKind kind;
    char *name;       /* "personas", "train/sft-pref", "bench/base" */
    char *dir;        /* OUT/name */
    json_t *settings; /* {"dialogues.turns": 10, ...}: what the stage's results depend on */
    char digest[65];  /* sha256 of the settings (sorted compact JSON) */
    RecipeStep *steps;
    int nsteps;
    int *deps; /* indices of stages this one reads the outputs of */
    int ndeps;
    RecipeEstimate est;
    long total;       /* units of work for the status line (pool items, conversations, steps) */
    char *unit;       /* "conversations" */
    char *out_file;   /* the main output the status line counts (pool file, trees, journal), or NULL */
} RecipeStage;

typedef struct RecipePlan {
    char *path; /* the recipe file */
    char *out;
    RecipeStage *stages;
    int n;
} RecipePlan;

/* Parses and validates a recipe text (name is used in messages) and builds
 * its plan. Returns 0, or -1 with e set ("study.yaml:12:5: dialogues.turns:
 * expected a positive integer, got \"ten\""). */
int recipe_plan_text(const char *name, const char *text, size_t len, const RecipeEnv *env, RecipePlan *plan,
                     Err *e);
void recipe_plan_free(RecipePlan *plan);

/* The index of the stage called name, or -1. */
int recipe_stage_find(const RecipePlan *plan, const char *name);
/* Marks in redo[] (plan->n entries) the stage `from` and every stage that
 * depends on it, directly or not. */
void recipe_dependents(const RecipePlan *plan, int from, int *redo);

/* The keys whose values differ between two settings objects, as one line
 * "dialogues.turns (2 -> 3), dialogues.user (a -> b)" (caller frees). */
char *recipe_settings_diff(const json_t *old_settings, const json_t *new_settings);

/* A step's command line as one shell-quoted line, "aloe dialogues ..."
 * (caller frees). */
char *recipe_step_line(const RecipeStep *s);

/* The whole plan as text: every stage with its command lines and estimate,
 * then the total (caller frees). */
char *recipe_plan_text_summary(const RecipePlan *plan);
/* How the estimates are made, printed under the plan. */
const char *recipe_estimate_help(void);

/* A preset recipe ("paper", "tiny"), or NULL for an unknown name. */
const char *recipe_preset(const char *name);

#endif
