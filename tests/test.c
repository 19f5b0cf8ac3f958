#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

static int n_pass, n_fail, n_skip;
static int cur_failed, cur_skipped;
static const char *cur_name;

void test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "FAIL %s (%s:%d): ", cur_name, file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    cur_failed = 1;
}

void test_skip(const char *fmt, ...) {
    va_list ap;
    fprintf(stdout, "SKIPPED %s: ", cur_name);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    cur_skipped = 1;
}

void test_run(const char *name, void (*fn)(void)) {
    cur_name = name;
    cur_failed = cur_skipped = 0;
    fn();
    if (cur_failed)
        n_fail++;
    else if (cur_skipped)
        n_skip++;
    else {
        n_pass++;
        fprintf(stdout, "ok %s\n", name);
    }
    fflush(stdout);
}

int test_summary(void) {
    printf("result: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}

char *test_shared_path(const char *rel) {
    const char *root = getenv("ALOE_SHARED");
    if (!root || !*root) root = "../shared";
    char *p = xasprintf("%s/%s", root, rel);
    struct stat st;
    if (stat(p, &st)) {
        free(p);
        return NULL;
    }
    return p;
}

char *test_tmpdir(void) {
    char tmpl[] = "/tmp/aloe-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d) return NULL;
    return xstrdup(d);
}

char *test_build_path(const char *rel) {
    const char *b = getenv("BUILD");
    return xasprintf("%s/%s", b && *b ? b : "build", rel);
}
