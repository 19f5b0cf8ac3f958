#include "base/err.h"

#include <stdio.h>
#include <string.h>

int err_setv(Err *e, int code, const char *fmt, va_list ap) {
    if (!e) return -1;
    e->code = code ? code : ERR_INTERNAL;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return -1;
}

int err_set(Err *e, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_setv(e, code, fmt, ap);
    va_end(ap);
    return -1;
}

int err_wrap(Err *e, const char *fmt, ...) {
    if (!e) return -1;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* Compose in a larger buffer, then cut to fit: a long prefix must not
     * lose the original message entirely, and gcc wants no silent truncation. */
    char joined[sizeof prefix + sizeof old + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    size_t n = strlen(joined);
    if (n >= sizeof e->msg) n = sizeof e->msg - 1;
    memcpy(e->msg, joined, n);
    e->msg[n] = 0;
    if (!e->code) e->code = ERR_INTERNAL;
    return -1;
}

void err_clear(Err *e) {
    if (!e) return;
    e->code = ERR_OK;
    e->msg[0] = 0;
}

const char *err_code_name(int code) {
    static const char *names[] = {"ok", "io", "parse", "argument", "http", "auth",
                                  "not found", "unsupported", "cancelled", "timeout",
                                  "internal"};
    if (code < 0 || code > ERR_INTERNAL) return "unknown";
    return names[code];
}
