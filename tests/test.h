/* A minimal test harness. Each tests/<layer>/test_*.c is one program:
 *
 *   static void test_thing(void) { CHECK(x == 1); CHECK_OK(rc, &err); }
 *   int main(void) { RUN(test_thing); return test_summary(); }
 *
 * A failing CHECK ends the current test. Tests run from the repository root;
 * shared reference data is found through $ALOE_SHARED (default ../shared).
 * Only a missing input may skip a test: NEED_SHARED says SKIPPED when the
 * file is absent, and scripts/run-tests.sh names every skipped test (and
 * fails the run under ALOE_REQUIRE_ALL=1). Data that is there but does not
 * load or parse, and a test double that does not start, are failures. */
#ifndef ALOE_TEST_H
#define ALOE_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void test_run(const char *name, void (*fn)(void));
int test_summary(void);
/* Path of a file under the shared data folder, or NULL if it is absent
 * (caller frees). */
char *test_shared_path(const char *rel);
/* The same, but an absent file also marks the current test SKIPPED (naming
 * the file and the folder searched): the caller returns on NULL. Use
 * NEED_SHARED in a test body, this in helpers that return a value. */
char *test_need_shared(const char *rel);
/* The shared data folder searched ($ALOE_SHARED or ../shared). */
const char *test_shared_root(void);
/* 1 once the current test has failed or skipped: a helper that returned
 * NULL after test_fail/test_skip lets its caller just return. */
int test_stopped(void);
/* A fresh empty directory under $TMPDIR (default /tmp) for this test (caller
 * frees); removed at exit when every test of the program passed, kept and
 * listed on stderr when one failed (ALOE_KEEP_TMP=1: always kept). */
char *test_tmpdir(void);
/* Writes content to a new file `name` in a fresh temporary directory and
 * returns its path (caller frees). */
char *test_write_file(const char *name, const char *content);
/* Contents of a file, NUL-terminated ("" when it cannot be read; caller
 * frees). */
char *test_read_text(const char *path);
/* Replaces path with text (atomically); a failure is said on stderr and
 * shows in what the test then reads. */
void test_put_text(const char *path, const char *text);
/* Path of a built binary: build dir from $BUILD (default "build"). */
char *test_build_path(const char *rel);

#define RUN(fn) test_run(#fn, fn)

#define CHECK(cond)                                            \
    do {                                                       \
        if (!(cond)) {                                         \
            test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
            return;                                            \
        }                                                      \
    } while (0)

#define CHECK_MSG(cond, ...)                         \
    do {                                             \
        if (!(cond)) {                               \
            test_fail(__FILE__, __LINE__, __VA_ARGS__); \
            return;                                  \
        }                                            \
    } while (0)

/* rc is a status (0 ok); err an Err* holding the message on failure. */
#define CHECK_OK(rc, err)                                                             \
    do {                                                                              \
        if ((rc) != 0) {                                                              \
            test_fail(__FILE__, __LINE__, "%s failed: %s", #rc, (err)->msg);          \
            return;                                                                   \
        }                                                                             \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                  \
    do {                                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                                 \
        if (a_ != b_) {                                                                     \
            test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);         \
            return;                                                                         \
        }                                                                                   \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                 \
    do {                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                   \
        if (!a_ || !b_ || strcmp(a_, b_)) {                                                \
            test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,             \
                      a_ ? a_ : "(null)", b_ ? b_ : "(null)");                             \
            return;                                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                  \
    do {                                                                                       \
        double a_ = (double)(a), b_ = (double)(b);                                             \
        if (!(fabs(a_ - b_) <= (tol))) {                                                       \
            test_fail(__FILE__, __LINE__, "%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_,   \
                      (double)(tol));                                                          \
            return;                                                                            \
        }                                                                                      \
    } while (0)

#define SKIP(...)              \
    do {                       \
        test_skip(__VA_ARGS__); \
        return;                \
    } while (0)

/* char *var = path of rel under the shared folder (caller frees); the test
 * is SKIPPED, and returns, only when that path does not exist. */
#define NEED_SHARED(var, rel)               \
    char *var = test_need_shared(rel);      \
    if (!var) return

/* Ends the test as failed when a test double (fake server, fake hub) did not
 * start: a broken test tool must not look like a missing input. */
#define NEED_STARTED(up, what) CHECK_MSG(up, "%s did not start (see the lines above; build it with make tests)", what)

#include <sys/types.h>
/* Starts a test server (argv[0] = path of the binary) that writes its port to
 * port_file; waits up to 60 s for it (a liveness cap, only reached when it is
 * broken). Returns the port, or -1 (message printed): the caller then FAILs
 * (NEED_STARTED), never skips.
 * The server's output goes to port_file + ".out": a server holding the test's
 * stdout would keep the test runner waiting for end-of-file. */
int test_spawn_server(char *const argv[], const char *port_file, pid_t *pid);
/* SIGKILLs and reaps a spawned process. */
void test_kill(pid_t pid);
/* Runs a command line through /bin/sh; returns its exit status (or -1). */
int test_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, with its stdout and stderr together in *out (caller frees). */
int test_system_output(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
