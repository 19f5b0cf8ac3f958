#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static int g_level = LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*g_before)(void *), (*g_after)(void *);
static void *g_hook_ctx;

void log_set_level(int level) { g_level = level; }
int log_get_level(void) { return g_level; }

void log_set_hooks(void (*before)(void *), void (*after)(void *), void *ctx) {
    pthread_mutex_lock(&g_lock);
    g_before = before;
    g_after = after;
    g_hook_ctx = ctx;
    pthread_mutex_unlock(&g_lock);
}

void log_msg(int level, const char *fmt, ...) {
    if (level < g_level) return;
    static const char *tags[] = {"debug", "info", "warning", "error"};
    pthread_mutex_lock(&g_lock);
    if (g_before) g_before(g_hook_ctx);
    if (level == LOG_INFO)
        fputs("aloe: ", stderr);
    else
        fprintf(stderr, "aloe: %s: ", tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    if (g_after) g_after(g_hook_ctx);
    pthread_mutex_unlock(&g_lock);
}
