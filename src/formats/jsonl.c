#include "formats/jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"

const char *json_type_name(const json_t *v) {
    if (!v) return "nothing"; /* a missing field: callers pass json_object_get's NULL */
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* Parses all values on one line, delivering each. */
static long parse_line(const char *name, const char *s, size_t n, int lineno, JsonlFn fn, void *ctx,
                       Err *e) {
    long count = 0;
    size_t pos = 0;
    while (pos < n && !is_blank(s + pos, n - pos)) {
        json_error_t jerr;
        json_t *v = json_loadb(s + pos, n - pos, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
        if (!v)
            return err_set(e, ERR_PARSE, "%s:%d:%d: invalid JSON: %s", name, lineno,
                           (int)pos + jerr.column, jerr.text);
        if (count == 1)
            log_warn("%s:%d: more than one JSON value on this line; reading each of them", name, lineno);
        int rc = fn(ctx, v, name, lineno, (int)count, e);
        json_decref(v);
        if (rc) return -1;
        count++;
        /* With JSON_DISABLE_EOF_CHECK, position is the number of bytes read. */
        pos += (size_t)jerr.position;
    }
    return count;
}

int jsonl_expect_next_line(int *last_line, const char *path, int line, int nth, Err *e) {
    if (nth > 0)
        return err_set(e, ERR_PARSE, "%s:%d: expected one JSON string per line, found a second value", path, line);
    if (line != *last_line + 1)
        return err_set(e, ERR_PARSE, "%s:%d: blank line: expected a JSON string (one output line per input line)",
                       path, *last_line + 1);
    *last_line = line;
    return 0;
}

static size_t max_line_of(const JsonlOptions *o) { return o && o->max_line ? o->max_line : JSONL_MAX_LINE; }

static int line_too_long(const char *name, int lineno, const JsonlOptions *o, Err *e) {
    const char *hint = o && o->limit_hint ? o->limit_hint : "the limit for this input";
    return err_set(e, ERR_PARSE, "%s:%d: line longer than %zu bytes (%s)", name, lineno, max_line_of(o), hint);
}

long jsonl_foreach_buf_opt(const char *name, const char *buf, size_t len, const JsonlOptions *o, JsonlFn fn,
                           void *ctx, Err *e) {
    long total = 0;
    int lineno = 0;
    size_t start = 0, max = max_line_of(o);
    while (start < len) {
        lineno++;
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (end - start > max) return line_too_long(name, lineno, o, e);
        long c = parse_line(name, buf + start, end - start, lineno, fn, ctx, e);
        if (c < 0) return -1;
        total += c;
        start = end + 1;
    }
    if (o && o->lines) *o->lines = lineno;
    return total;
}

long jsonl_foreach_buf(const char *name, const char *buf, size_t len, JsonlFn fn, void *ctx, Err *e) {
    return jsonl_foreach_buf_opt(name, buf, len, NULL, fn, ctx, e);
}

/* Streams the file: only the current line is held, and a line over the
 * limit is refused as soon as the limit is passed, before it is all read. */
long jsonl_foreach_opt(const char *path, const JsonlOptions *o, JsonlFn fn, void *ctx, Err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
    enum { CHUNK = 1 << 16 };
    char *chunk = xmalloc(CHUNK), *line = NULL;
    size_t clen = 0, cpos = 0, len = 0, cap = 0, max = max_line_of(o);
    int lineno = 0, pending = 0; /* pending: bytes of an unfinished line were read */
    long total = 0, rc = 0;
    for (;;) {
        if (cpos == clen) {
            clen = fread(chunk, 1, CHUNK, f);
            cpos = 0;
            if (clen == 0) {
                if (ferror(f)) rc = err_set(e, ERR_IO, "%s: read error: %s", path, strerror(errno));
                break;
            }
        }
        char *nl = memchr(chunk + cpos, '\n', clen - cpos);
        size_t take = nl ? (size_t)(nl - (chunk + cpos)) : clen - cpos;
        if (len + take > max) {
            rc = line_too_long(path, lineno + 1, o, e);
            break;
        }
        if (len + take + 1 > cap) {
            cap = cap ? cap : 4096;
            while (cap < len + take + 1) cap *= 2;
            line = xrealloc(line, cap);
        }
        memcpy(line + len, chunk + cpos, take);
        len += take;
        cpos += take;
        pending = 1;
        if (!nl) continue;
        cpos++;
        lineno++;
        long c = parse_line(path, line ? line : "", len, lineno, fn, ctx, e);
        len = 0;
        pending = 0;
        if (c < 0) {
            rc = -1;
            break;
        }
        total += c;
    }
    if (!rc && pending && len > 0) { /* a last line without a newline */
        lineno++;
        long c = parse_line(path, line, len, lineno, fn, ctx, e);
        if (c < 0) rc = -1;
        else total += c;
    }
    fclose(f);
    free(chunk);
    free(line);
    if (rc) return -1;
    if (o && o->lines) *o->lines = lineno;
    return total;
}

long jsonl_foreach(const char *path, JsonlFn fn, void *ctx, Err *e) { return jsonl_foreach_opt(path, NULL, fn, ctx, e); }

void strlist_push(StrList *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = xrealloc(l->items, sizeof(char *) * (size_t)l->cap);
    }
    l->items[l->n++] = xstrdup(s);
}

void strlist_free(StrList *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int push_string(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)nth;
    if (!json_is_string(v))
        return err_set(e, ERR_PARSE, "%s:%d: expected a JSON string, got %s", path, line, json_type_name(v));
    /* Each goes into prompts, many times over: a huge one is a mistake. */
    if (json_string_length(v) > JSONL_MAX_STRING)
        return err_set(e, ERR_PARSE, "%s:%d: a string of %zu bytes: at most %zu bytes are accepted", path, line,
                       json_string_length(v), JSONL_MAX_STRING);
    strlist_push(ctx, json_string_value(v));
    return 0;
}

/* Lines may hold several strings (see the top of jsonl.h), but not many. */
static const JsonlOptions strings_opts = {.max_line = 4 * JSONL_MAX_STRING,
                                          .limit_hint = "a profile or personality string is at most 64 KiB"};

static int strings_done(const char *name, long n, StrList *out, Err *e) {
    if (n < 0) {
        strlist_free(out);
        return -1;
    }
    if (n == 0) return err_set(e, ERR_PARSE, "%s: empty file, expected one JSON string per line", name);
    return 0;
}

int jsonl_read_strings(const char *path, StrList *out, Err *e) {
    memset(out, 0, sizeof *out);
    return strings_done(path, jsonl_foreach_opt(path, &strings_opts, push_string, out, e), out, e);
}

int jsonl_read_strings_buf(const char *name, const char *buf, size_t len, StrList *out, Err *e) {
    memset(out, 0, sizeof *out);
    return strings_done(name, jsonl_foreach_buf_opt(name, buf, len, &strings_opts, push_string, out, e), out, e);
}
