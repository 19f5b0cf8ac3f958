/* journal: the durable, resumable output of a long run.
 *
 * A run's results are one JSONL file with one record per finished unit of
 * work (a benchmark conversation, a preference tree), each carrying a unique
 * string key. Opening the journal cuts a torn last line (a crash mid-write),
 * then loads the keys already present; the run skips those units and appends
 * each new record whole with fdatasync. So `kill -9` at any moment followed
 * by the same command neither loses nor duplicates a unit. Partially done
 * units are redone, and their answered requests come from the request cache. */
#ifndef ALOE_ALOE_JOURNAL_H
#define ALOE_ALOE_JOURNAL_H

#include <jansson.h>

#include "base/err.h"

typedef struct Journal Journal;

/* Opens (creating) path; key_field names the record field holding the key. */
Journal *journal_open(const char *path, const char *key_field, Err *e);
void journal_close(Journal *j);
/* The record stored under key (borrowed), or NULL. */
json_t *journal_get(Journal *j, const char *key);
long journal_count(Journal *j);
/* Appends record durably; its key must be new. Thread-safe. */
int journal_append(Journal *j, json_t *record, Err *e);
/* All records in file order (borrowed array of n borrowed records). */
json_t *journal_records(Journal *j);

#endif
