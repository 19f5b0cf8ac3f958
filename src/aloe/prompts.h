/* prompts: every role prompt of the pipeline, in one place.
 *
 * The texts follow the intent of the ALOE authors' prompts in our own words.
 * Each is a template with {placeholders}; a run can override any of them
 * with `--prompts FILE` (a JSON object {"judge_score": "...", ...}), and the
 * texts actually used are recorded with the run's results. */
#ifndef ALOE_ALOE_PROMPTS_H
#define ALOE_ALOE_PROMPTS_H

#include "base/err.h"

typedef enum {
    PROMPT_USER_SIMULATOR,     /* system prompt of the user role-playing a persona */
    PROMPT_USER_FIRST_TURN,    /* instruction for the user's opening message */
    PROMPT_INDUCER,            /* extract what the user has revealed so far */
    PROMPT_RESPONDER_HINTED,   /* assistant system prompt given the inferred persona */
    PROMPT_RESPONDER_PLAIN,    /* assistant system prompt without it */
    PROMPT_EVALUATED,          /* system prompt of the model under benchmark ("" = none) */
    PROMPT_JUDGE_PAIR,         /* which of two replies this user prefers */
    PROMPT_JUDGE_SCORE,        /* 1-5 tailoring score of one reply */
    PROMPT_JUDGE_REMINDER,     /* sent after a judge reply without a valid score */
    PROMPT_GENERATE_PROFILE,   /* persona pool growth: new profiles */
    PROMPT_GENERATE_PERSONALITY,
    PROMPT__COUNT
} PromptId;

typedef struct Prompts {
    char *text[PROMPT__COUNT];
} Prompts;

/* The key of a prompt in a --prompts file, e.g. "judge_score". */
const char *prompt_key(PromptId id);
/* The placeholders a prompt may use, space separated, e.g. "{profile} {personality}". */
const char *prompt_placeholders(PromptId id);

void prompts_init_default(Prompts *p);
/* Overrides the defaults with the entries of a JSON object file. Unknown keys
 * and placeholders a prompt cannot use are errors naming the key. */
int prompts_load(Prompts *p, const char *path, Err *e);
void prompts_free(Prompts *p);

/* Fills {name} placeholders: vars is a NULL-terminated list of name, value
 * pairs. "{{" and "}}" give literal braces; an unknown {name} is kept as is.
 * Returns a new string. */
char *prompt_fill(const char *tmpl, const char *const *vars);

#endif
