/* run_aloe: runs build/aloe as a child process for the end-to-end tests
 * (stdout and stderr captured to files in dir). */
#ifndef ALOE_TESTS_RUN_ALOE_H
#define ALOE_TESTS_RUN_ALOE_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

extern char **environ;

/* Starts `aloe argv...` (argv NULL-terminated, without "aloe"); returns its pid. */
static inline pid_t aloe_spawn(const char *dir, const char *const *args) {
    char *bin = test_build_path("aloe");
    int n = 0;
    while (args[n]) n++;
    char **argv = xcalloc((size_t)n + 2, sizeof(char *));
    argv[0] = bin;
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    char *out = path_join(dir, "stdout.txt"), *err = path_join(dir, "stderr.txt");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    if (posix_spawn(&pid, bin, &fa, NULL, argv, environ)) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    free(bin);
    free(out);
    free(err);
    return pid;
}

/* Runs to the end; returns the exit status (128+signal if killed). */
static inline int aloe_run(const char *dir, const char *const *args) {
    pid_t pid = aloe_spawn(dir, args);
    if (pid < 0) return -1;
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Contents of dir/name (caller frees; "" if absent). */
__attribute__((noinline, unused)) static char *slurp_in(const char *dir, const char *name) {
    char *p = name ? path_join(dir, name) : xstrdup(dir), *s = test_read_text(p);
    free(p);
    return s;
}

static inline int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

#endif
