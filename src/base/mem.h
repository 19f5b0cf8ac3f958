/* mem: allocation that never returns NULL. Running out of memory is not a
 * recoverable condition for this tool, so these abort with a message rather
 * than making every caller check. */
#ifndef ALOE_BASE_MEM_H
#define ALOE_BASE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n); /* at most n bytes, stops at NUL */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 64-byte aligned (for SIMD and cache lines); free with free(). */
void *xaligned_alloc(size_t n);
/* For large arrays streamed end to end and filled whole (weights): from 2 MiB
 * on, aligned to 2 MiB and advised for transparent huge pages, so the
 * kernel may back it with 2 MiB pages where THP is "always" or "madvise"
 * (a TLB entry per 2 MiB instead of per 4 KiB: an 8B BF16 model's weights
 * read at ~31-35 GB/s from the page cache's 4 KiB pages here, at ~45-53
 * from 2 MiB pages, docs/BENCHMARKS.md "Weights in memory"); smaller, as
 * xaligned_alloc. Free with free(). */
void *xhuge_alloc(size_t n);

/* A growable byte buffer; always NUL-terminated when len > 0 or after sb_init. */
typedef struct StrBuf {
    char *s;
    size_t len, cap;
} StrBuf;

void sb_init(StrBuf *b);
void sb_free(StrBuf *b);
void sb_clear(StrBuf *b);
void sb_append(StrBuf *b, const char *s);
void sb_appendn(StrBuf *b, const char *s, size_t n);
void sb_appendc(StrBuf *b, char c);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands over the string (caller frees); b is reset. */
char *sb_take(StrBuf *b);

#endif
