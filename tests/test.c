#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
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

const char *test_shared_root(void) {
    const char *root = getenv("ALOE_SHARED");
    return root && *root ? root : "../shared";
}

int test_stopped(void) { return cur_failed || cur_skipped; }

char *test_shared_path(const char *rel) {
    char *p = xasprintf("%s/%s", test_shared_root(), rel);
    struct stat st;
    if (stat(p, &st)) {
        free(p);
        return NULL;
    }
    return p;
}

char *test_need_shared(const char *rel) {
    char *p = test_shared_path(rel);
    if (!p) test_skip("%s not found in %s (set ALOE_SHARED)", rel, test_shared_root());
    return p;
}

/* Temporary directories: removed when the test program exits with every
 * test passed, kept (and listed on stderr) when one failed, so the failure
 * can be looked at; ALOE_KEEP_TMP=1 keeps them always. Only the process
 * that made them removes them: a forked child's exit must not delete its
 * parent's files (and a child's own directories are left, since the parent
 * may read them). Without this every run left ~1,000 directories behind (a
 * developer's /tmp filled up with 108,000 of them). */
static char **tmp_dirs;
static int n_tmp_dirs;
static pid_t tmp_owner;

static void tmp_dirs_cleanup(void) {
    if (getpid() != tmp_owner) return;
    const char *keep = getenv("ALOE_KEEP_TMP");
    int keeping = n_fail > 0 || (keep && *keep && strcmp(keep, "0"));
    for (int i = 0; i < n_tmp_dirs; i++) {
        if (keeping) {
            fprintf(stderr, "kept %s\n", tmp_dirs[i]);
        } else {
            Err e;
            file_remove_tree(tmp_dirs[i], &e); /* best effort: a leftover is not a test failure */
        }
        free(tmp_dirs[i]);
    }
    free(tmp_dirs);
    tmp_dirs = NULL;
    n_tmp_dirs = 0;
}

char *test_tmpdir(void) {
    const char *root = getenv("TMPDIR");
    char *tmpl = xasprintf("%s/aloe-test-XXXXXX", root && *root ? root : "/tmp");
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    if (!tmp_owner) {
        tmp_owner = getpid();
        atexit(tmp_dirs_cleanup);
    }
    if (getpid() != tmp_owner) return tmpl;
    tmp_dirs = xrealloc(tmp_dirs, (size_t)(n_tmp_dirs + 1) * sizeof *tmp_dirs);
    tmp_dirs[n_tmp_dirs++] = xstrdup(tmpl);
    return tmpl;
}

char *test_write_file(const char *name, const char *content) {
    char *dir = test_tmpdir();
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
    free(dir);
    return p;
}

char *test_read_text(const char *path) {
    char *s = NULL;
    size_t n;
    Err e;
    if (file_read_all(path, &s, &n, &e)) s = xstrdup("");
    return s;
}

void test_put_text(const char *path, const char *text) {
    Err e;
    if (file_write_atomic(path, text, strlen(text), &e)) fprintf(stderr, "%s\n", e.msg);
}

char *test_build_path(const char *rel) {
    const char *b = getenv("BUILD");
    return xasprintf("%s/%s", b && *b ? b : "build", rel);
}

#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int test_spawn_server(char *const argv[], const char *port_file, pid_t *pid) {
    unlink(port_file);
    char *out = xasprintf("%s.out", port_file);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        printf("cannot start %s: %s\n", argv[0], strerror(rc));
        free(out);
        return -1;
    }
    /* Polls for the port file: the wait ends on an event (the file, or the
     * server's exit); 60 s only bounds a server that hangs. */
    for (int i = 0; i < 6000; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int port = -1;
            int got = fscanf(f, "%d", &port);
            fclose(f);
            if (got == 1 && port > 0) {
                free(out);
                return port;
            }
        }
        int status;
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            printf("%s exited before writing its port (its output: %s)\n", argv[0], out);
            free(out);
            return -1;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    printf("%s did not write %s in 60 s (its output: %s)\n", argv[0], port_file, out);
    free(out);
    test_kill(*pid);
    return -1;
}

void test_kill(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The shell command fmt formats, or NULL when it cannot be formatted. */
static char *format_command(const char *fmt, va_list ap) {
    char *cmd;
    return vasprintf(&cmd, fmt, ap) < 0 ? NULL : cmd;
}

int test_system(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = format_command(fmt, ap);
    va_end(ap);
    if (!cmd) return -1;
    int st = system(cmd);
    free(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int test_system_output(char **out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = format_command(fmt, ap);
    va_end(ap);
    if (!cmd) {
        *out = xstrdup("");
        return -1;
    }
    char *dir = test_tmpdir(), *log = xasprintf("%s/log", dir);
    int rc = test_system("%s > '%s' 2>&1", cmd, log);
    *out = test_read_text(log);
    free(log), free(dir), free(cmd);
    return rc;
}
