/* Helpers shared by the tokenizer tests: compare id lists with a message
 * that shows the text and the first difference. */
#ifndef ALOE_TESTS_TOK_CHECK_H
#define ALOE_TESTS_TOK_CHECK_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "base/mem.h"

/* 1 when equal; otherwise fills msg. */
static inline int ids_equal(const int32_t *got, int n, const json_t *want, const char *text, char *msg, size_t cap) {
    int nw = (int)json_array_size(want);
    int i = 0;
    while (i < n && i < nw && got[i] == (int32_t)json_integer_value(json_array_get(want, i))) i++;
    if (i == n && i == nw) return 1;
    StrBuf b;
    sb_init(&b);
    for (int k = 0; k < n && k < 40; k++) sb_printf(&b, "%s%d", k ? " " : "", got[k]);
    StrBuf w;
    sb_init(&w);
    for (int k = 0; k < nw && k < 40; k++) sb_printf(&w, "%s%lld", k ? " " : "", (long long)json_integer_value(json_array_get(want, k)));
    snprintf(msg, cap, "text \"%.80s\": first difference at %d\n    got  [%s]\n    want [%s]", text, i, b.s, w.s);
    sb_free(&b);
    sb_free(&w);
    return 0;
}

#endif
