/* tok_json: the scanner tok_hf uses for the big arrays of tokenizer.json. */
#ifndef ALOE_TOK_JSON_H
#define ALOE_TOK_JSON_H

#include "base/err.h"
#include "base/mem.h"

typedef struct JScan {
    const char *start, *p, *end;
    const char *name; /* file name for messages */
} JScan;

void js_ws(JScan *j);
int js_fail(JScan *j, Err *e, const char *what);
int js_expect(JScan *j, char c, Err *e);
int js_peek(JScan *j, char c);
/* A string value, unescaped into out (NUL-terminated). */
int js_string(JScan *j, StrBuf *out, Err *e);
int js_int(JScan *j, long *v, Err *e);
/* Skips any value (used to take its span for jansson). */
int js_skip(JScan *j, int depth, Err *e);

#endif
