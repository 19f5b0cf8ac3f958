#include "formats/jsonl.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"

const char *json_type_name(const json_t *v) {
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

long jsonl_foreach_buf(const char *name, const char *buf, size_t len, JsonlFn fn, void *ctx, Err *e) {
    long total = 0;
    int lineno = 0;
    size_t start = 0;
    while (start < len) {
        lineno++;
        const char *nl = memchr(buf + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - buf) : len;
        long c = parse_line(name, buf + start, end - start, lineno, fn, ctx, e);
        if (c < 0) return -1;
        total += c;
        start = end + 1;
    }
    return total;
}

long jsonl_foreach(const char *path, JsonlFn fn, void *ctx, Err *e) {
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len, e)) return -1;
    long n = jsonl_foreach_buf(path, buf, len, fn, ctx, e);
    free(buf);
    return n;
}

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
    strlist_push(ctx, json_string_value(v));
    return 0;
}

int jsonl_read_strings(const char *path, StrList *out, Err *e) {
    memset(out, 0, sizeof *out);
    long n = jsonl_foreach(path, push_string, out, e);
    if (n < 0) {
        strlist_free(out);
        return -1;
    }
    if (n == 0) return err_set(e, ERR_PARSE, "%s: empty file, expected one JSON string per line", path);
    return 0;
}
