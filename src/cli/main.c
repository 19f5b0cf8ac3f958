/* aloe: the command-line entry point. Only dispatch lives here. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "cli/commands.h"

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
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("aloe %s\n", ALOE_VERSION);
        return 0;
    }
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
