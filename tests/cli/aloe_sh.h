/* aloe_sh: runs build/aloe through /bin/sh for the command-line tests: the
 * arguments are one shell string, stdout and stderr go to one log. (The
 * argv form, with the streams apart, is tests/aloe/run_aloe.h.) Header-only,
 * like llm/fake_server.h. */
#ifndef ALOE_TESTS_ALOE_SH_H
#define ALOE_TESTS_ALOE_SH_H

#include <jansson.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

extern char **environ;

/* Starts `env ENV build/aloe ARGS >LOG 2>&1` (env: VAR=value words, or
 * NULL); returns the pid of aloe itself (sh execs it), or 0 when it could
 * not be started. */
static inline pid_t aloe_sh_spawn(const char *env, const char *args, const char *log) {
    char *bin = test_build_path("aloe");
    char *cmd = xasprintf("exec %s%s %s %s >'%s' 2>&1", env ? "env " : "", env ? env : "", bin, args, log);
    char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t pid = 0;
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ)) pid = 0;
    free(cmd);
    free(bin);
    return pid;
}

/* Waits for a spawned aloe: its exit status, 128 + the signal that ended
 * it, or -1 for no process (waitpid(0) would wait for any child). */
static inline int aloe_sh_wait(pid_t pid) {
    int st = 0;
    if (pid <= 0 || waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs aloe to the end; its stdout+stderr in *out (caller frees). */
static inline int aloe_sh_run(const char *env, const char *args, char **out) {
    char *dir = test_tmpdir(), *log = path_join(dir, "log");
    int rc = aloe_sh_wait(aloe_sh_spawn(env, args, log));
    *out = test_read_text(log);
    free(log);
    free(dir);
    return rc;
}

/* dir/name parsed as JSON, or NULL. */
static inline json_t *aloe_sh_json(const char *dir, const char *name) {
    char *p = path_join(dir, name);
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    return j;
}

/* Lines of dir/name (0 when it cannot be read). */
static inline long aloe_sh_lines(const char *dir, const char *name) {
    char *p = path_join(dir, name), *s = test_read_text(p);
    long lines = 0;
    for (const char *c = s; *c; c++) lines += *c == '\n';
    free(s);
    free(p);
    return lines;
}

#endif
