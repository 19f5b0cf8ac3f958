/* dialogues: multi-turn preference conversation trees (GUIDE.md §1 item 2).
 *
 * One conversation per persona (profile + personality). Each turn:
 *   1. the user simulator (usersim.h: roles swapped, so the assistant's
 *      replies are its "user" messages) writes the next message; its stage
 *      directions ("*smiles*") are removed before anyone sees it (the raw
 *      text is kept in meta when it differs);
 *   2. the inducer writes "Profile: ..." and "Personalities: ..." lines: what
 *      the user has revealed so far. Under the paper protocol it is given the
 *      true persona and the transcript with the user as "A" and the assistant
 *      as "B", and extracts the revealed parts; under rubric it guesses from
 *      a "User:"/"Assistant:" transcript alone;
 *   3. the hinted responder (given that inference) and the plain responder
 *      (not given it) each reply. Which messages they get follows from which
 *      prompt texts are "" (so a --prompts file can mix the forms):
 *        - a system message only when its responder_hinted / responder_plain
 *          text is non-empty (rubric: the inference is in the hinted one's);
 *        - every user message of the hinted responder is followed by "\n" +
 *          responder_hint filled with that turn's inference, when non-empty
 *          (paper: earlier turns keep their own hints, as the reference's
 *          message history does);
 *        - every user message of both is followed by "\n" + responder_suffix
 *          when non-empty (paper: "within 3 sentences");
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
 * order: kept with the hinted reply marked preferred, unless dropped),
 * "judge_orders": {"both_verdicts", "agreements", "first_position_wins"}
 * (JudgeOrderCounts), "usage": {role: {prompt_tokens, completion_tokens}},
 * "turn_details": [{"turn", "judges": agree|disagree|one_invalid|none,
 * "hinted_is": preferred|rejected|dropped, "dropped", "inducer_parsed",
 * "inducer_raw", "user_raw" (only when stage directions were removed),
 * "judge_hinted_first"/"judge_hinted_second": {"raw": [every answer,
 * reminders included], "verdict": "A"|"B"|null}}]}}. The top-level "id" is
 * the journal key (reference readers ignore it). FILE.settings.json holds
 * the protocol, models, prompts and parameters; a resumed run must match
 * it. FILE.summary.json (written at the end of every run, atomically) holds
 * the counts of the whole file, the judge's agreement across orders and
 * position bias with their definitions, and the skipped conversations.
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
    Protocol protocol;      /* recorded; picks the transcript form (paper: "A:"/"B:", rubric:
                             * "User:"/"Assistant:"); the texts themselves are in prompts */
    int turns;              /* default 10 */
    uint64_t seed;
    int jobs;               /* conversations in flight */
    int judge_retries;      /* reminders after a verdict-less judge reply (default 3) */
    int drop_disagreements;
    int skip_failed;        /* a conversation whose request fails for good (HTTP 400 from a content
                             * filter, a reply that never parses...) is skipped and listed, not fatal */
    int quiet;
    LlmBackend *user, *inducer, *hinted, *plain, *judge;
    LlmParams params;       /* sampling for every role (seed is set per request) */
    const char *out_path;   /* the journal, JSONL of trees */
    atomic_int *stop;
    json_t *extra_settings; /* borrowed, may be NULL: more settings the trees depend on (e.g. chat-template
                             * overrides of local models), checked on resume like the rest */
} DialoguesConfig;

/* Protocol paper, 10 turns, 16 jobs, 3 judge reminders, llm_params_default(). */
void dialogues_config_default(DialoguesConfig *c);

/* The max_tokens of every role when --max-tokens is not given: the paper's
 * reference run caps every GPT call at 300; rubric leaves it to the server (0). */
int dialogues_default_max_tokens(Protocol p);

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

/* How the judge's two orders relate, over judged turns. Definitions:
 *   both_verdicts        turns where both orders gave a verdict;
 *   agreements           of those, turns where both orders chose the same reply;
 *   first_position_wins  of the 2 x both_verdicts verdicts, those that chose
 *                        the reply shown first (A), whichever it was;
 *   agreement rate       agreements / both_verdicts;
 *   position-bias rate   first_position_wins / (2 x both_verdicts): 0.5 for a
 *                        judge that ignores position, 1 for one that always
 *                        picks the first reply (then it never agrees). */
typedef struct JudgeOrderCounts {
    long turns, both_verdicts, agreements, first_position_wins;
} JudgeOrderCounts;

/* Adds a record's turns (from meta.turn_details) to *acc. */
void dialogues_judge_counts(const json_t *rec, JudgeOrderCounts *acc);
/* The rates above; NaN when both_verdicts is 0. */
double judge_agreement_rate(const JudgeOrderCounts *c);
double judge_position_bias_rate(const JudgeOrderCounts *c);

typedef struct DialoguesResult {
    long total, done_before, done; /* conversations */
    long skipped;                  /* failed for good under skip_failed (not in the file; a rerun retries) */
    long disagreements;              /* turns, in all conversations (resumed ones too) */
    long undecided;                  /* of those, turns where neither order gave a verdict */
    JudgeOrderCounts judges;         /* all conversations in the file */
    json_t *summary;                 /* what FILE.summary.json holds (owned; dialogues_result_free) */
} DialoguesResult;

void dialogues_result_free(DialoguesResult *r);

/* Runs (or resumes) every conversation of the plan into c->out_path, then
 * rewrites the file in conversation order. */
int dialogues_run(const DialoguesConfig *c, const StrList *profiles, const StrList *personalities,
                  const DialoguePlan *plan, DialoguesResult *r, Err *e);

/* The pairwise judge's verdict: 'A' (the reply shown first), 'B', or 0.
 * Read from (1) every line that is nothing but a verdict: an optional label
 * (preferred, answer, verdict, choice, winner), an optional noun (message,
 * response, reply, option), then first|second|1|2|A|B, optionally followed
 * by "is preferred"/"is better"/"preferred"/"wins" — any case, Markdown or
 * punctuation around the words ("**First**.", "`second`", "Message 2",
 * "Response A", "Preferred: Reply B") — and (2) every "Preferred: X" inside
 * a line (a rubric judge's last line after its reasons). An answer whose
 * verdicts name both replies is ambiguous: 0, and the judge is re-asked. */
int judge_parse_preference(const char *text);
/* Parses the inducer's two parts: labels "Profile" and "Personalities" or
 * "Personality", any case, with Markdown bold, list or header decoration,
 * followed by ':' (or, for a header alone on its line, by the next line);
 * the parts on separate lines or on one. A part that says none / n/a is
 * "None"; a missing part is "unknown". Returns how many of the two were
 * found. */
int inducer_parse(const char *text, char **profile, char **personality);

#endif
