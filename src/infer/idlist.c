#include "infer/idlist.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int idlist_parse(const char *s, int32_t **ids, int *n, Err *e) {
    *ids = NULL;
    *n = 0;
    int cap = 0, item = 0;
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    int bracket = *p == '[';
    if (bracket) p++;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',') p++;
        if (!*p || (bracket && *p == ']')) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ']' && !isspace((unsigned char)*end))) {
            free(*ids);
            *ids = NULL;
            *n = 0;
            return err_set(e, ERR_ARG, "token ids: item %d ('%.20s') is not a non-negative integer", item + 1, p);
        }
        if (*n == cap) *ids = xrealloc(*ids, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **ids);
        (*ids)[(*n)++] = (int32_t)v;
        item++;
        p = end;
    }
    if (*n == 0) return err_set(e, ERR_ARG, "token ids: the list '%s' is empty", s);
    return 0;
}

void idlist_format(StrBuf *b, const int32_t *ids, int n) {
    sb_appendc(b, '[');
    for (int i = 0; i < n; i++) sb_printf(b, "%s%d", i ? ", " : "", ids[i]);
    sb_appendc(b, ']');
}
