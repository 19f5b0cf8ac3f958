/* prompts: every role prompt of the pipeline, in one place.
 *
 * The texts follow the intent of the ALOE authors' prompts in our own words.
 * Each is a template with {placeholders}; a run can override any of them
 * with `--prompts FILE` (a JSON object {"judge_score": "...", ...}), and the
 * texts actually used are recorded with the run's results. */
#ifndef ALOE_ALOE_PROMPTS_H
#define ALOE_ALOE_PROMPTS_H

#include "base/err.h"

/* Which protocol the default texts follow (recorded with every run):
 *   paper   the ALOE paper's reference run: the user simulator's instructions
 *           are its first user message and every reply it sees carries a
 *           "within three sentences" reminder; the inducer is given the true
 *           persona and extracts what the user revealed; the hint is appended
 *           to the hinted responder's user message; the pairwise judge sees
 *           the persona and the two replies; the evaluated model gets no
 *           system prompt; the scoring judge answers with the score only;
 *   rubric  aloe's earlier variant: system prompts for every role, an inducer
 *           that guesses from the transcript alone, judges that explain and
 *           end with "Preferred: A|B" / "Score: N". */
typedef enum { PROTOCOL_PAPER, PROTOCOL_RUBRIC, PROTOCOL__COUNT } Protocol;

/* "paper" / "rubric". */
const char *protocol_name(Protocol p);
/* Parses a --protocol value; an unknown one is an error naming both choices. */
int protocol_parse(const char *s, Protocol *p, Err *e);

/* A prompt whose text is "" is not sent (see each role's rule below). */
typedef enum {
    PROMPT_USER_SIMULATOR,     /* the user role-playing a persona: system prompt, or (when
                                * PROMPT_USER_FIRST_TURN is "") its first user message (usersim.h) */
    PROMPT_USER_FIRST_TURN,    /* instruction for the user's opening message ("" = none) */
    PROMPT_USER_REPLY_SUFFIX,  /* appended, after a newline, to every reply the user simulator sees */
    PROMPT_INDUCER,            /* extract what the user has revealed so far */
    PROMPT_RESPONDER_HINTED,   /* system prompt of the responder given the inferred persona ("" = none) */
    PROMPT_RESPONDER_PLAIN,    /* system prompt of the responder without it ("" = none) */
    PROMPT_RESPONDER_HINT,     /* appended, after a newline, to the hinted responder's user message */
    PROMPT_RESPONDER_SUFFIX,   /* appended, after a newline, to both responders' user messages */
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

/* The default texts of a protocol. */
void prompts_init(Prompts *p, Protocol proto);
/* Overrides the defaults with the entries of a JSON object file. Unknown keys
 * and placeholders a prompt cannot use are errors naming the key. */
int prompts_load(Prompts *p, const char *path, Err *e);
void prompts_free(Prompts *p);

/* Fills {name} placeholders: vars is a NULL-terminated list of name, value
 * pairs. "{{" and "}}" give literal braces; an unknown {name} is kept as is.
 * Returns a new string. */
char *prompt_fill(const char *tmpl, const char *const *vars);

#endif
