/* aloe: the command-line entry point. Only dispatch lives here. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fileio.h"
#include "cli/commands.h"
#include "kernels/dispatch.h"

#ifndef ALOE_VERSION
#define ALOE_VERSION "0.1.0"
#endif

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

#define ALOE_ENTRY(name, summary) {#name, cmd_##name, summary},
static const Command commands[] = {ALOE_COMMANDS(ALOE_ENTRY){NULL, NULL, NULL}};
#undef ALOE_ENTRY

int cli_fail(const Err *e) {
    fprintf(stderr, "aloe: error: %s\n", e->msg[0] ? e->msg : err_code_name(e->code));
    return e->code == ERR_ARG ? 2 : 1;
}

/* Test-only fault injection: ALOE_TEST_KILL_AT=OP:TEXT:N ends this process
 * with SIGKILL just before its Nth file-system operation OP (create, write,
 * rename, append, ...; see base/fileio.h) on a path containing TEXT, so a
 * test can kill a run at an exact event instead of after a guessed time.
 * Under `aloe run` (ALOE_RUN_PID set) the study's process is killed first:
 * the whole study dies inside that stage, as with kill -9 of aloe run.
 * ALOE_TEST_KILL_SIGNAL=15 sends SIGTERM to the study's process instead (as
 * `kill PID` would) and 2 sends SIGINT to both (as Ctrl-C in a terminal
 * does), once, and the process goes on. */
static char kill_op[32], kill_text[256];
static long kill_left;
static int kill_sig = SIGKILL;

static void kill_hook(const char *op, const char *path) {
    if (strcmp(op, kill_op) || !strstr(path, kill_text) || --kill_left > 0) return;
    const char *run = getenv("ALOE_RUN_PID");
    pid_t study = run && atoi(run) > 0 ? (pid_t)atoi(run) : 0;
    if (kill_sig != SIGKILL) {
        file_fault_hook = NULL; /* once */
        if (study) kill(study, kill_sig);
        if (!study || kill_sig == SIGINT) raise(kill_sig);
        return;
    }
    if (study) kill(study, SIGKILL);
    raise(SIGKILL);
}

static void kill_hook_install(void) {
    const char *spec = getenv("ALOE_TEST_KILL_AT");
    if (!spec || !*spec) return;
    const char *a = strchr(spec, ':'), *b = a ? strrchr(spec, ':') : NULL;
    if (!a || b == a || (size_t)(a - spec) >= sizeof kill_op || (size_t)(b - a - 1) >= sizeof kill_text) return;
    snprintf(kill_op, sizeof kill_op, "%.*s", (int)(a - spec), spec);
    snprintf(kill_text, sizeof kill_text, "%.*s", (int)(b - a - 1), a + 1);
    kill_left = atol(b + 1);
    const char *sig = getenv("ALOE_TEST_KILL_SIGNAL");
    if (sig && (atoi(sig) == SIGTERM || atoi(sig) == SIGINT)) kill_sig = atoi(sig);
    if (kill_left > 0) file_fault_hook = kill_hook;
}

static void usage(FILE *f) {
    fprintf(f,
            "aloe %s: teach language models to interact to align (the ALOE method, in C)\n\n"
            "usage: aloe COMMAND [options]   (aloe COMMAND --help for its options)\n\ncommands:\n",
            ALOE_VERSION);
    for (const Command *c = commands; c->name; c++)
        fprintf(f, "  %-10s %s%s\n", c->name, c->summary, c->fn ? "" : " (not built yet)");
    fprintf(f,
            "\nEvery model flag takes a local Hugging Face directory, a .gguf file, hf://ORG/REPO,\n"
            "or a model name served at $OPENAI_BASE_URL (key from $OPENAI_API_KEY).\n");
}

int main(int argc, char **argv) {
    kill_hook_install();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("aloe %s\n", ALOE_VERSION);
        return 0;
    }
    Err ke; /* an ALOE_CPU naming a kernel level this CPU cannot run stops every command */
    if (kernels_init(&ke)) return fprintf(stderr, "aloe: error: %s\n", ke.msg), 2;
    for (const Command *c = commands; c->name; c++) {
        if (strcmp(argv[1], c->name)) continue;
        if (!c->fn) {
            fprintf(stderr, "aloe: error: '%s' is not part of this build yet\n", c->name);
            return 1;
        }
        return c->fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "aloe: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
