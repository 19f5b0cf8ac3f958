/* invocations: the accounting of a resumable run over all its invocations.
 *
 * A benchmark run may take several invocations of the same command (Ctrl-C,
 * a failed endpoint, kill -9, each followed by a rerun). What each one cost
 * (wall time, requests per role, cache hits, retries, errors, tokens) is kept
 * in DIR/invocations.json, a JSON array with one entry per invocation:
 *
 *   {"started": "2026-01-02T03:04:05Z", "wall_s": 12.5, "exit": "complete",
 *    "conversations": 7, "requests": {"model": {"requests": N, "cache_hits": N,
 *    "retries": N, "errors": N, "prompt_tokens": N, "completion_tokens": N,
 *    "cached_prompt_tokens": N}, "user": {...}, "judge": {...}}}
 *
 * "exit" is "complete", "interrupted" (Ctrl-C), "error: MESSAGE", or
 * "killed": an entry still marked "running" when the next invocation starts
 * (the process ended without a clean exit). The running invocation's entry is
 * rewritten (atomically) after every finished conversation, so a killed
 * invocation keeps its counts up to its last saved conversation (those
 * journaled while a save was under way, at most one per worker, are missing
 * from them); requests of its unfinished conversations that were answered
 * after that are not counted (their answers are in the request cache, so the
 * next invocation counts them as cache hits). Totals are sums over the
 * entries. */
#ifndef ALOE_ALOE_INVOCATIONS_H
#define ALOE_ALOE_INVOCATIONS_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>

#include "base/err.h"

typedef struct Invocations {
    char *path;
    json_t *list;    /* every entry, the current one last */
    json_t *current; /* borrowed from list */
    pthread_mutex_t lock;
} Invocations;

/* Checks the text of an invocations file (a JSON array of entries as above;
 * name is used in messages: "DIR/invocations.json: [2].wall_s: expected a
 * non-negative number, got a string"). Entries marked "running" become
 * "killed". Returns a new array or NULL with e set. */
json_t *invocations_parse(const char *name, const char *buf, size_t len, Err *e);

/* Loads path (when it exists) and adds this invocation's entry, "running",
 * started now; writes the file. */
int invocations_open(Invocations *v, const char *path, Err *e);
/* Sets the current entry's counts (requests: an object of per-role stats,
 * stolen) and rewrites the file with exit (NULL: "running"). Thread-safe. */
int invocations_save(Invocations *v, double wall_s, long conversations, json_t *requests, const char *exit,
                     Err *e);
void invocations_close(Invocations *v);

/* Sums over entries: {"invocations": N, "wall_s": S, "conversations": N,
 * "requests": {role: {field: sum}}} (new reference). */
json_t *invocations_totals(const json_t *list);

#endif
