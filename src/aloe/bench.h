/* bench: the ALOE benchmark loop.
 *
 * Personas are every profile paired with each of the first K personalities
 * (persona i = profile i / K with personality i % K). Each persona gets one
 * conversation of `turns` turns:
 *
 *   user simulator  the view of usersim.h (the paper's: its filled
 *                   PROMPT_USER_SIMULATOR as the first user message; the
 *                   rubric's: a system prompt and PROMPT_USER_FIRST_TURN), the
 *                   conversation with roles swapped; its message has its stage
 *                   directions removed (usersim_strip_stage_directions) before
 *                   the evaluated model, the judge and its own later view see
 *                   it; the raw text stays in the record ("user_raw") when it
 *                   differs;
 *   evaluated model system = PROMPT_EVALUATED (none if empty: the paper's
 *                   default) and the whole history; only its new reply is kept;
 *   judge           PROMPT_JUDGE_SCORE with the persona, the user's message
 *                   and the reply; a reply without a valid score (score.h)
 *                   gets its answer plus PROMPT_JUDGE_REMINDER and is asked
 *                   again, up to judge_attempts in all, then the turn is
 *                   recorded as invalid (score null) and left out of AL.
 *
 * Every request carries a seed drawn from a stream derived from (seed,
 * persona index), so a rerun sends byte-identical requests and a request
 * cache answers the ones already answered. Finished conversations go to a
 * Journal (one record per persona, key "id"); unfinished ones are redone.
 *
 * Failure policy: a request that finally fails (the backends already retried
 * what was worth retrying) stops the run. With skip_failed, a failure that
 * belongs to one conversation's content — an HTTP error status such as a 400
 * content filter or a too-long context (ERR_HTTP), an answer that cannot be
 * read (ERR_PARSE), or a time-out (ERR_TIMEOUT) — skips that conversation
 * instead: it is listed in the outcome, not journaled (a rerun tries it
 * again) and left out of AL. Failures that would hit every conversation
 * alike (a refused key, an unknown model, an endpoint that cannot be
 * reached, a bad argument, a journal that cannot be written) still stop the
 * run. An endpoint that answers every request with an error status gets
 * every conversation skipped: all listed, all retried by a rerun. */
#ifndef ALOE_ALOE_BENCH_H
#define ALOE_ALOE_BENCH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "aloe/journal.h"
#include "aloe/prompts.h"
#include "base/err.h"
#include "base/progress.h"
#include "llm/llm.h"

typedef struct BenchConfig {
    LlmBackend *model, *user, *judge; /* the evaluated model, the user simulator, the judge */
    const Prompts *prompts;
    const char *const *profiles;
    int n_profiles;
    const char *const *personalities;
    int n_personalities;
    int per_profile;    /* K: personalities per profile */
    int turns;
    int threads;        /* requests in flight at most (-j); up to twice as many conversations run */
    uint64_t seed;
    double temperature; /* < 0: server default */
    int max_tokens;       /* the evaluated model's reply limit; <= 0: server default */
    int user_max_tokens;  /* the user simulator's; <= 0: server default */
    int judge_max_tokens; /* the judge's; <= 0: server default */
    int skip_failed;      /* skip a conversation whose request fails (see the failure policy above) */
    int judge_attempts; /* judge requests per turn at most (3) */
    atomic_int *stop;   /* optional: set (Ctrl-C) to start nothing new and abandon running ones */
    Progress *progress; /* optional: counted in turns (bench_progress_counts) */
    /* optional: called (from a worker thread) after each conversation is in
     * the journal, with the number finished by this run so far */
    void (*on_saved)(void *ctx, long done_now);
    void *on_saved_ctx;
} BenchConfig;

/* A config with the defaults (K 5, 10 turns, 16 threads, 3 judge attempts). */
BenchConfig bench_config_default(void);
/* Checks the counts (too few personalities for K, no profiles, turns < 1,
 * ...); the backends are checked by bench_run. */
int bench_config_check(const BenchConfig *c, Err *e);
long bench_persona_count(const BenchConfig *c);
/* The journal key of persona i: "p<profile>-k<personality>". */
void bench_persona_id(const BenchConfig *c, long i, char *buf, int size);

/* Progress is counted in turns: the total and the part already done (in the
 * journal), for progress_start. */
void bench_progress_counts(const BenchConfig *c, Journal *j, long *total, long *done);

typedef struct BenchOutcome {
    long total;       /* conversations in the benchmark */
    long done_before; /* already in the journal at start */
    long done_now;    /* finished by this run */
    long unfinished;  /* left for a rerun (abandoned, failed or never started) */
    int cancelled;    /* stopped by *stop */
    long skipped;     /* conversations skipped by skip_failed (counted in unfinished too) */
    json_t *skipped_list; /* [{"id": ..., "error": ...}] in persona order; NULL unless skip_failed */
} BenchOutcome;

/* Whether skip_failed would skip a conversation that failed with e (the
 * failure policy above), for messages that point to --skip-failed. */
int bench_failure_skippable(const Err *e);

/* Frees what bench_run put in an outcome (the skipped list). */
void bench_outcome_free(BenchOutcome *o);

/* Runs every conversation not yet in j. Returns 0 when all are done or
 * skipped (out->skipped), or -1 with e set: the first request that finally
 * failed and was not skipped (the backends already retried what was worth
 * retrying), which stops the run, or ERR_CANCELLED after *stop. Either way
 * the finished conversations are in the journal. Free out with
 * bench_outcome_free. */
int bench_run(const BenchConfig *c, Journal *j, BenchOutcome *out, Err *e);

/* Checks the journal's records of this run's personas (a damaged or
 * hand-edited dialogues.jsonl): turns (as many as c->turns, each with a
 * score 1-5 or null and attempts 1..judge_attempts) and usage counts. An
 * error names the file (name), the record's id and the field. */
int bench_check_journal(const BenchConfig *c, Journal *j, const char *name, Err *e);

/* results.json's measured part from the journal's records: turns[] (turn,
 * al, n, ci95, sd, invalid), avg, ir, r2, n_ir, n_r2, the normalisation and
 * interval definitions, judge retried/invalid counts, token usage per role,
 * conversations done/total and "complete". NAN values are null. */
json_t *bench_results(const BenchConfig *c, Journal *j);

/* results.json's "skipped": the conversations this invocation skipped
 * ([{"id", "error"}], [] when none), and conversations.skipped, the count.
 * Skipped conversations are not in the journal, so they are in no AL. */
void bench_results_add_skipped(json_t *results, const BenchOutcome *o);

/* Settings guard for an output directory: writes settings to path on the
 * first run; afterwards a different value of any key is an error naming the
 * keys (a run resumes only with the settings it started with). */
int bench_check_settings(const char *path, json_t *settings, Err *e);
/* The same, for settings added after runs were made: a key of `implied`
 * missing from the stored settings compares as its value there (what runs
 * before the key did), with `implied_why[key]` (a string) added to a
 * mismatch's line. Both may be NULL. */
int bench_check_settings_compat(const char *path, json_t *settings, json_t *implied, json_t *implied_why, Err *e);

/* Writes results.json (atomically), report.md and al.svg into dir. */
int bench_write_outputs(const char *dir, json_t *results, Err *e);

#endif
