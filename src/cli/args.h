/* args: declarative flag parsing for the subcommands, so every command has
 * the same --help layout and the same errors for unknown or malformed flags. */
#ifndef ALOE_CLI_ARGS_H
#define ALOE_CLI_ARGS_H

#include "base/err.h"

typedef enum { ARG_STR, ARG_INT, ARG_LONG, ARG_DOUBLE, ARG_FLAG } ArgType;

typedef struct ArgSpec {
    const char *name;  /* "--model" */
    const char *alias; /* "-j" or NULL */
    ArgType type;
    void *dest;        /* const char **, int *, long *, double *, int * (flag) */
    const char *meta;  /* "M" shown in help; NULL for flags */
    const char *help;
    int required;
    int seen;          /* set by the parser */
} ArgSpec;

typedef struct ArgCommand {
    const char *name;    /* "bench" */
    const char *usage;   /* "--model M --out DIR [options]" */
    const char *summary; /* one paragraph shown by --help */
    const char *example; /* shown by --help */
    int min_positional, max_positional; /* max < 0: unlimited */
} ArgCommand;

/* Parses argv (argv[0] is the command name). Positional arguments are
 * collected into pos (array of argc pointers, caller provides) / *npos.
 * Returns 0 to run, 1 when --help was printed, -1 on a usage error (e set). */
int args_parse(const ArgCommand *cmd, ArgSpec *specs, int argc, char **argv, char **pos, int *npos, Err *e);
/* args_parse for a command that takes no positional arguments (a stray
 * one is a usage error). */
int args_parse_flags(const ArgCommand *cmd, ArgSpec *specs, int argc, char **argv, Err *e);
void args_print_help(const ArgCommand *cmd, const ArgSpec *specs);
/* Finds a spec by name, to test ->seen after parsing. */
const ArgSpec *args_find(const ArgSpec *specs, const char *name);

#endif
