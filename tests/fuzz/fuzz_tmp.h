/* A fresh directory for a fuzz harness that must put its input in a file:
 * under $TMPDIR (default /tmp), so that long runs can keep their millions of
 * small writes in memory (TMPDIR=/dev/shm) instead of waiting on a disk. */
#ifndef ALOE_FUZZ_TMP_H
#define ALOE_FUZZ_TMP_H

#include <stdlib.h>
#include <unistd.h>

#include "base/mem.h"

/* Caller frees; aborts when the directory cannot be made. */
static inline char *fuzz_tmpdir(const char *tag) {
    const char *root = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/aloe-fuzz-%s-XXXXXX", root && *root ? root : "/tmp", tag);
    if (!mkdtemp(tmpl)) abort();
    return tmpl;
}

#endif
