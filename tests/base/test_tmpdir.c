/* The test harness's temporary directories (tests/test.c test_tmpdir):
 * removed when a test program exits with every test passed, kept when one
 * failed, never removed by a forked child's exit. The program runs itself
 * as the child (ALOE_TMPDIR_CHILD=pass|fail) so that the parent can look
 * at what the child's exit left behind. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The child: makes a directory with a file in it, records its path in
 * $ALOE_TMPDIR_OUT, forks a grandchild that exits normally (its exit must
 * not remove the directory), then passes or fails as told. */
static void child_body(void) {
    char *d = test_tmpdir();
    CHECK(d != NULL);
    if (!d) return;
    char *f = path_join(d, "inside");
    test_put_text(f, "x");
    test_put_text(getenv("ALOE_TMPDIR_OUT"), d);
    pid_t pid = fork();
    if (pid == 0) exit(0);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(exists(f)); /* the grandchild's exit left it alone */
    if (!strcmp(getenv("ALOE_TMPDIR_CHILD"), "fail")) CHECK(0 && "failing on purpose");
    free(f);
    free(d);
}

static char *run_child(const char *mode, int *status) {
    char *dir = test_tmpdir();
    char *out = path_join(dir, "path");
    *status = test_system("ALOE_TMPDIR_CHILD=%s ALOE_TMPDIR_OUT=%s ALOE_KEEP_TMP= /proc/%d/exe > %s.log 2>&1", mode,
                          out, (int)getpid(), out);
    char *path = test_read_text(out);
    free(out);
    free(dir);
    return path;
}

static void test_removed_when_passing(void) {
    int status;
    char *d = run_child("pass", &status);
    CHECK(status == 0);
    CHECK(d[0] == '/');
    CHECK(!exists(d));
    free(d);
}

static void test_kept_when_failing(void) {
    int status;
    char *d = run_child("fail", &status);
    CHECK(status != 0);
    CHECK(d[0] == '/');
    CHECK(exists(d));
    Err e;
    if (d[0] == '/') file_remove_tree(d, &e);
    free(d);
}

int main(void) {
    const char *mode = getenv("ALOE_TMPDIR_CHILD");
    if (mode && *mode) {
        test_run("child", child_body);
        return test_summary();
    }
    test_run("removed_when_passing", test_removed_when_passing);
    test_run("kept_when_failing", test_kept_when_failing);
    return test_summary();
}
