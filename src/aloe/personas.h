/* personas: grow a pool of user profiles or personalities from seeds.
 *
 * Each round makes `calls` generator requests (run in parallel); each shows
 * the generator `examples` random pool members and asks for `per_call` new
 * ones, always from the template (the reference overwrote its prompt with
 * the model's output after round 1; we rebuild it every time). The answers
 * are split into candidates (listparse), embedded, and taken in a fixed
 * order: a candidate joins if its cosine similarity to every pool member,
 * earlier candidates of the same round included, is <= threshold. The run
 * stops at `target` members, after `max_rounds`, or when the acceptance
 * rate over the last `floor_rounds` rounds falls below `min_acceptance`.
 *
 * Files, for out = FILE.jsonl:
 *   FILE.jsonl        the pool, one JSON string per line (seeds first)
 *   FILE.meta.jsonl   per item: index, text, source, round, nearest
 *                     (index and text) and similarity at acceptance
 *   FILE.state.jsonl  the durable run state: one line per finished round
 *                     with its accepted items and their embeddings (so
 *                     nothing is embedded twice), appended with fdatasync.
 * FILE.jsonl and FILE.meta.jsonl are rewritten atomically from the state
 * after every round; a killed run continues from its last finished round,
 * and every random choice derives from (seed, round, call), so the rerun
 * makes the same requests (answered from the request cache). */
#ifndef ALOE_ALOE_PERSONAS_H
#define ALOE_ALOE_PERSONAS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/jsonl.h"
#include "llm/llm.h"

typedef struct PersonasConfig {
    const char *template_text; /* generator prompt with {examples} and {n} */
    int plain_examples;        /* {examples} as paragraphs split by blank lines, the form the paper's
                                * prompt asks back; 0: one per line numbered "1. " (the rubric's) */
    const char *protocol;      /* recorded in the settings (a resume under another is refused);
                                * NULL: not recorded */
    int target;                /* pool size to reach, seeds included */
    int examples;              /* pool members shown per request */
    int per_call;              /* new items asked for per request */
    int calls;                 /* requests per round (in parallel) */
    int max_rounds;
    int floor_rounds;          /* window of the acceptance floor */
    double min_acceptance;     /* accepted/candidates over the window */
    double threshold;          /* max cosine similarity to any member */
    uint64_t seed;
    LlmBackend *generator, *embedder;
    LlmParams params;          /* generator sampling (seed is set per call) */
    const char *out_path;
    int quiet;                 /* no progress bar */
    atomic_int *stop;          /* set (e.g. by SIGINT) to stop after the running requests */
    json_t *extra_settings;    /* borrowed, may be NULL: more settings the pool depends on (e.g.
                                * chat-template overrides of local models), checked on resume */
} PersonasConfig;

/* The paper's sentence embedder (its reference filters candidates with
 * sentence-transformers' paraphrase-MiniLM-L6-v2: mean pooling, no
 * normalisation, which the cosine does not need), run by the local BERT
 * engine: the default of `aloe personas --embed-model`. */
#define PERSONAS_DEFAULT_EMBEDDER "hf://sentence-transformers/paraphrase-MiniLM-L6-v2"
/* The paper's generator temperature (the rubric protocol sends none). */
#define PERSONAS_PAPER_TEMPERATURE 0.8

/* Defaults: threshold 0.6, 5 examples, 20 per call, 1 call per round, 1000
 * rounds, floor 0.02 over the last 3 rounds. */
void personas_config_default(PersonasConfig *c);

typedef enum { PERSONAS_TARGET, PERSONAS_FLOOR, PERSONAS_MAX_ROUNDS, PERSONAS_CANCELLED } PersonasStop;

/* A line of FILE.state.jsonl at most (256 MiB: ~7,000 seeds of 3,072
 * dimensions in round 0); a longer one is refused naming file:line. */
#define PERSONAS_STATE_MAX_LINE ((size_t)256 << 20)

/* Reads resume state from a buffer as a resumed run would (checks only: for
 * tests and fuzzing): the rounds and items it holds, or -1 with e naming
 * name:line and the field. */
int personas_state_load_buf(const char *name, const char *buf, size_t len, const StrList *seeds, int *rounds,
                            int *items, Err *e);

typedef struct PersonasResult {
    int pool_size, seeds, rounds; /* rounds finished, resumed ones included */
    long candidates, accepted;    /* over all rounds */
    double window_acceptance;     /* over the last floor_rounds rounds */
    PersonasStop why;
} PersonasResult;

const char *personas_stop_name(PersonasStop s);

/* Runs (or resumes) a pool growth. Returns 0 when it stopped for a reason
 * in PersonasResult.why (cancellation is -1 with ERR_CANCELLED). */
int personas_run(const PersonasConfig *c, const StrList *seeds, PersonasResult *r, Err *e);

/* "FILE.jsonl" -> "FILE<suffix>" (e.g. ".meta.jsonl"); caller frees. */
char *personas_sidecar_path(const char *out_path, const char *suffix);

#endif
