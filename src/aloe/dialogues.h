/* dialogues: multi-turn preference conversation trees (GUIDE.md §1 item 2).
 *
 * One conversation per persona (profile + personality). Each turn:
 *   1. the user simulator (the persona's system prompt, roles swapped so the
 *      assistant's replies are its "user" messages) writes the next message;
 *   2. the inducer reads the conversation and writes "Profile: ..." and
 *      "Personality: ..." lines: what the user has revealed so far;
 *   3. the hinted responder (given that inference) and the plain responder
 *      (not given it) each reply;
 *   4. the judge, who sees the true persona, is asked which reply the user
 *      prefers in BOTH orders (hinted as A, then hinted as B). If both
 *      orders pick the same reply it is `preferred` and the other
 *      `rejected`. If they disagree (or a verdict stays invalid after the
 *      reminders) the turn is a disagreement, counted in meta; by default
 *      the pair is still kept, oriented by the first order's verdict (the
 *      reference asks once, hinted first); with drop_disagreements the
 *      pair is dropped: `assistant.preferred`/`rejected` are null and the
 *      replies are kept as `assistant.hinted`/`assistant.plain`;
 *   5. the conversation continues with one of the two replies, drawn at
 *      random per turn from (seed, conversation, turn); `chosen` names it
 *      ("preferred"/"rejected", or "hinted"/"plain" for a dropped pair), so
 *      assistant[chosen] is always the reply the conversation went on with.
 *
 * A record: {"id": "conv-000042", "profile", "personality", "conversations":
 * [{"user", "assistant": {"preferred", "rejected"}, "chosen",
 * "inferred_profile", "inferred_personality"}...], "meta": {"index", "seed",
 * "pass", "turns", "profile_index", "personality_index", "models",
 * "disagreements", "undecided" (of those, turns with no verdict in either
 * order: kept with the hinted reply marked preferred, unless dropped), "usage": {role: {prompt_tokens, completion_tokens}},
 * "turn_details": [{"turn", "judges": agree|disagree|one_invalid|none,
 * "hinted_is": preferred|rejected|dropped, "dropped", "inducer_parsed",
 * "inducer_raw", "judge_hinted_first"/"judge_hinted_second": {"raw": [every
 * answer, reminders included], "verdict": "A"|"B"|null}}]}}. The top-level
 * "id" is the journal key (reference readers ignore it). FILE.settings.json
 * holds the models, prompts and parameters; a resumed run must match it.
 *
 * Every random choice and every request's seed derive from (seed,
 * conversation index, turn, role), so a rerun makes identical requests and
 * a resumed run (journal + request cache) writes the same records. */
#ifndef ALOE_ALOE_DIALOGUES_H
#define ALOE_ALOE_DIALOGUES_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "aloe/prompts.h"
#include "base/err.h"
#include "formats/jsonl.h"
#include "llm/llm.h"

typedef struct DialoguesConfig {
    const Prompts *prompts;
    int turns;              /* default 10 */
    uint64_t seed;
    int jobs;               /* conversations in flight */
    int judge_retries;      /* reminders after a verdict-less judge reply (default 3) */
    int drop_disagreements;
    int quiet;
    LlmBackend *user, *inducer, *hinted, *plain, *judge;
    LlmParams params;       /* sampling for every role (seed is set per request) */
    const char *out_path;   /* the journal, JSONL of trees */
    atomic_int *stop;
    json_t *extra_settings; /* borrowed, may be NULL: more settings the trees depend on (e.g. chat-template
                             * overrides of local models), checked on resume like the rest */
} DialoguesConfig;

void dialogues_config_default(DialoguesConfig *c);

/* Which persona conversation k uses: with P passes over the profiles,
 * k = pass * n_profiles + profile, and the personality is drawn at random
 * from (seed, k). --num N takes the first N of that sequence. */
typedef struct DialoguePlan {
    long n;
    int *profile, *personality, *pass;
} DialoguePlan;

/* Exactly one of passes > 0 or num > 0. */
int dialogues_plan(DialoguePlan *plan, int n_profiles, int n_personalities, int passes, long num, uint64_t seed,
                   Err *e);
void dialogues_plan_free(DialoguePlan *plan);

/* One conversation tree (the record written for conversation `index`).
 * Returns a new record or NULL with e set. */
json_t *dialogue_generate(const DialoguesConfig *c, const char *profile, const char *personality, long index,
                          const DialoguePlan *plan, Err *e);

typedef struct DialoguesResult {
    long total, done_before, done; /* conversations */
    long disagreements;              /* turns, in all conversations (resumed ones too) */
    long undecided;                  /* of those, turns where neither order gave a verdict */
} DialoguesResult;

/* Runs (or resumes) every conversation of the plan into c->out_path, then
 * rewrites the file in conversation order. */
int dialogues_run(const DialoguesConfig *c, const StrList *profiles, const StrList *personalities,
                  const DialoguePlan *plan, DialoguesResult *r, Err *e);

/* "Preferred: A" -> 'A' (the last such line wins; "Preferred: Reply B",
 * bold and case variants accepted), 0 if there is none. */
int judge_parse_preference(const char *text);
/* Parses the inducer's "Profile:" / "Personality:" lines. Missing parts
 * become "unknown"; returns how many of the two were found. */
int inducer_parse(const char *text, char **profile, char **personality);

#endif
