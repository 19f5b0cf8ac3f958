#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void oom(size_t n) {
    fprintf(stderr, "aloe: out of memory (allocating %zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

/* Like strndup: copies at most n bytes, stopping at a NUL. */
char *xstrndup(const char *s, size_t n) {
    n = strnlen(s, n);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *xaligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) oom(n);
    return p;
}

void *xhuge_alloc(size_t n) {
    const size_t huge = (size_t)2 << 20;
    if (n < huge) return xaligned_alloc(n);
    void *p = NULL;
    if (posix_memalign(&p, huge, n)) oom(n);
    /* advice (refused where there is no THP: fine); a last partial 2 MiB
     * stays in small pages, so no page holds more than the array needs */
    madvise(p, n, MADV_HUGEPAGE);
    return p;
}

void sb_init(StrBuf *b) {
    b->cap = 64;
    b->len = 0;
    b->s = xmalloc(b->cap);
    b->s[0] = 0;
}

void sb_free(StrBuf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

void sb_clear(StrBuf *b) {
    b->len = 0;
    if (b->s) b->s[0] = 0;
}

static void sb_reserve(StrBuf *b, size_t extra) {
    if (!b->s) sb_init(b);
    if (b->len + extra + 1 <= b->cap) return;
    while (b->len + extra + 1 > b->cap) b->cap *= 2;
    b->s = xrealloc(b->s, b->cap);
}

void sb_appendn(StrBuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sb_append(StrBuf *b, const char *s) { sb_appendn(b, s, strlen(s)); }

void sb_appendc(StrBuf *b, char c) { sb_appendn(b, &c, 1); }

void sb_printf(StrBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *sb_take(StrBuf *b) {
    if (!b->s) sb_init(b);
    char *s = b->s;
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}
