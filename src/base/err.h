/* err: the status type every fallible function reports through.
 *
 * Convention (SQLite-like): a function returns 0 on success or -1 on failure
 * (NULL for pointer results) and fills the caller's Err with a code and a
 * message that names what failed (file, line, field, what was expected).
 * Library code never prints errors itself; the CLI shows err.msg. */
#ifndef ALOE_BASE_ERR_H
#define ALOE_BASE_ERR_H

#include <stdarg.h>

enum {
    ERR_OK = 0,
    ERR_IO,          /* file system */
    ERR_PARSE,       /* malformed input data */
    ERR_ARG,         /* bad flag or argument */
    ERR_HTTP,        /* transport or HTTP status error */
    ERR_AUTH,        /* 401/403: retrying will not help */
    ERR_NOTFOUND,    /* missing file, model, key */
    ERR_UNSUPPORTED, /* valid input we do not handle */
    ERR_CANCELLED,   /* interrupted by the user */
    ERR_TIMEOUT,
    ERR_INTERNAL
};

typedef struct Err {
    int code;
    char msg[1024];
} Err;

/* Sets e (if not NULL) and returns -1 so callers can `return err_set(...)`. */
int err_set(Err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int err_setv(Err *e, int code, const char *fmt, va_list ap);
/* Prefixes context to an existing message: "ctx: old message". Returns -1. */
int err_wrap(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(Err *e);
const char *err_code_name(int code);

#endif
