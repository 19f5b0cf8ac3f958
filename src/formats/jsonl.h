/* jsonl: JSON Lines input with errors that name the file and line.
 *
 * Real-world files are not always clean: the published ALOE profile.jsonl has
 * one line holding two JSON values. Every value on a line is delivered (with
 * a warning naming file and line) rather than silently dropping data. */
#ifndef ALOE_FORMATS_JSONL_H
#define ALOE_FORMATS_JSONL_H

#include <jansson.h>

#include "base/err.h"

/* Input limits. Files are read line by line, so memory follows the longest
 * line, not the file; a line longer than the limit is an error naming the
 * file and line (before it is parsed: parsing a line costs several times its
 * size, and what a consumer builds from it, e.g. token ids, more).
 *   JSONL_MAX_LINE     any JSONL input unless its reader says otherwise
 *                      (journals, trees, training data, tokenize/embed --jsonl)
 *   JSONL_MAX_STRING   one string of jsonl_read_strings (a profile, a
 *                      personality, a seed): they go into every prompt. */
#define JSONL_MAX_LINE ((size_t)16 << 20)
#define JSONL_MAX_STRING ((size_t)64 << 10)

typedef struct JsonlOptions {
    size_t max_line; /* bytes per line (without its newline); 0: JSONL_MAX_LINE */
    long *lines;     /* optional out: the lines read (a last line without a newline counts) */
    const char *limit_hint; /* said after the limit in its error, e.g. "raise it with --max-line-bytes" */
} JsonlOptions;

/* Called once per JSON value. `line` is 1-based; `nth` is the 0-based index
 * of the value on its line. Return 0 to go on, -1 (with e set) to stop. */
typedef int (*JsonlFn)(void *ctx, json_t *value, const char *path, int line, int nth, Err *e);

/* Parses every line of path. Blank lines are skipped. Returns the number of
 * values delivered, or -1 on a read/parse error or when fn fails. */
long jsonl_foreach(const char *path, JsonlFn fn, void *ctx, Err *e);
/* The same over an in-memory buffer; `name` is used in messages. */
long jsonl_foreach_buf(const char *name, const char *buf, size_t len, JsonlFn fn, void *ctx, Err *e);
/* Both with options (o may be NULL: the defaults). */
long jsonl_foreach_opt(const char *path, const JsonlOptions *o, JsonlFn fn, void *ctx, Err *e);
long jsonl_foreach_buf_opt(const char *name, const char *buf, size_t len, const JsonlOptions *o, JsonlFn fn,
                           void *ctx, Err *e);

/* For line-aligned outputs (one output line per input line): an error for a
 * blank line before this value or for a second value on its line. Keeps the
 * last line seen in *last_line (start at 0). Call from a JsonlFn. */
int jsonl_expect_next_line(int *last_line, const char *path, int line, int nth, Err *e);

/* A list of strings, one JSON string per value. Errors on a value that is not
 * a string, on a string longer than JSONL_MAX_STRING bytes (naming file:line)
 * and on a file with no values at all. */
typedef struct StrList {
    char **items;
    int n, cap;
} StrList;

int jsonl_read_strings(const char *path, StrList *out, Err *e);
/* The same over a buffer (name in messages). */
int jsonl_read_strings_buf(const char *name, const char *buf, size_t len, StrList *out, Err *e);
void strlist_push(StrList *l, const char *s);
void strlist_free(StrList *l);

/* "an object", "a string", ...; "nothing" for NULL (a missing field). */
const char *json_type_name(const json_t *v);

#endif
