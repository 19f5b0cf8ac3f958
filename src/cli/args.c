#include "cli/args.h"

#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ArgSpec *find_spec(ArgSpec *specs, const char *name, size_t len) {
    for (ArgSpec *s = specs; s->name; s++) {
        if (strlen(s->name) == len && !strncmp(s->name, name, len)) return s;
        if (s->alias && strlen(s->alias) == len && !strncmp(s->alias, name, len)) return s;
    }
    return NULL;
}

const ArgSpec *args_find(const ArgSpec *specs, const char *name) {
    return find_spec((ArgSpec *)specs, name, strlen(name));
}

static int set_value(const ArgCommand *cmd, ArgSpec *s, const char *v, Err *e) {
    char *end;
    errno = 0;
    switch (s->type) {
    case ARG_STR: *(const char **)s->dest = v; return 0;
    case ARG_INT:
    case ARG_LONG: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end)
            return err_set(e, ERR_ARG, "aloe %s: %s expects an integer, got '%s'", cmd->name, s->name, v);
        if (s->type == ARG_INT) *(int *)s->dest = (int)x;
        else *(long *)s->dest = x;
        return 0;
    }
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end)
            return err_set(e, ERR_ARG, "aloe %s: %s expects a number, got '%s'", cmd->name, s->name, v);
        *(double *)s->dest = x;
        return 0;
    }
    case ARG_FLAG: *(int *)s->dest = 1; return 0;
    }
    return 0;
}

int args_parse(const ArgCommand *cmd, ArgSpec *specs, int argc, char **argv, char **pos, int *npos, Err *e) {
    *npos = 0;
    int only_positional = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_positional || a[0] != '-' || !strcmp(a, "-")) {
            pos[(*npos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_positional = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            args_print_help(cmd, specs);
            return 1;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        ArgSpec *s = find_spec(specs, a, nlen);
        if (!s)
            return err_set(e, ERR_ARG, "aloe %s: unknown flag '%.*s' (see 'aloe %s --help')", cmd->name,
                           (int)nlen, a, cmd->name);
        s->seen = 1;
        if (s->type == ARG_FLAG) {
            if (eq) return err_set(e, ERR_ARG, "aloe %s: %s takes no value", cmd->name, s->name);
            *(int *)s->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc)
                return err_set(e, ERR_ARG, "aloe %s: %s needs a value (%s)", cmd->name, s->name,
                               s->meta ? s->meta : "value");
            v = argv[++i];
        }
        if (set_value(cmd, s, v, e)) return -1;
    }
    for (ArgSpec *s = specs; s->name; s++)
        if (s->required && !s->seen)
            return err_set(e, ERR_ARG, "aloe %s: %s %s is required (see 'aloe %s --help')", cmd->name,
                           s->name, s->meta ? s->meta : "", cmd->name);
    if (*npos < cmd->min_positional)
        return err_set(e, ERR_ARG, "aloe %s: missing argument; usage: aloe %s %s", cmd->name, cmd->name,
                       cmd->usage);
    if (cmd->max_positional >= 0 && *npos > cmd->max_positional)
        return err_set(e, ERR_ARG, "aloe %s: unexpected argument '%s'; usage: aloe %s %s", cmd->name,
                       pos[cmd->max_positional], cmd->name, cmd->usage);
    return 0;
}

int args_parse_flags(const ArgCommand *cmd, ArgSpec *specs, int argc, char **argv, Err *e) {
    char **pos = xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos); /* room for every stray argument */
    int npos, rc = args_parse(cmd, specs, argc, argv, pos, &npos, e);
    free(pos);
    return rc;
}

void args_print_help(const ArgCommand *cmd, const ArgSpec *specs) {
    printf("usage: aloe %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->summary);
    for (const ArgSpec *s = specs; s->name; s++) {
        char left[96];
        if (s->alias)
            snprintf(left, sizeof left, "%s, %s%s%s", s->alias, s->name, s->meta ? " " : "", s->meta ? s->meta : "");
        else
            snprintf(left, sizeof left, "%s%s%s", s->name, s->meta ? " " : "", s->meta ? s->meta : "");
        char def[64] = "";
        if (!s->required && s->dest) {
            switch (s->type) {
            case ARG_STR:
                if (*(const char **)s->dest) snprintf(def, sizeof def, " (default: %s)", *(const char **)s->dest);
                break;
            case ARG_INT: snprintf(def, sizeof def, " (default: %d)", *(int *)s->dest); break;
            case ARG_LONG: snprintf(def, sizeof def, " (default: %ld)", *(long *)s->dest); break;
            case ARG_DOUBLE: snprintf(def, sizeof def, " (default: %g)", *(double *)s->dest); break;
            case ARG_FLAG: break;
            }
        }
        printf("  %-30s %s%s%s\n", left, s->help, s->required ? " (required)" : "", def);
    }
    printf("  %-30s %s\n", "-h, --help", "show this help");
    if (cmd->example) printf("\nexample:\n  %s\n", cmd->example);
}
