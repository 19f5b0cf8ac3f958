/* aloe tokenize: print the token ids of a text as a JSON array, or of each
 * JSON string of a JSONL file as one array per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "formats/jsonl.h"
#include "tok/tok.h"

typedef struct {
    const Tokenizer *t;
    int special;
    StrBuf line;
    int last_line; /* input line of the last array printed */
} TokenizeRun;

static int print_ids(TokenizeRun *r, const char *text, size_t len, Err *e) {
    int32_t *ids;
    int n;
    if (tok_encode_n(r->t, text, len, r->special, r->special, &ids, &n, e)) return -1;
    sb_clear(&r->line);
    sb_appendc(&r->line, '[');
    for (int i = 0; i < n; i++) sb_printf(&r->line, "%s%d", i ? ", " : "", ids[i]);
    sb_append(&r->line, "]\n");
    free(ids);
    if (fwrite(r->line.s, 1, r->line.len, stdout) != r->line.len)
        return err_set(e, ERR_IO, "tokenize: writing to stdout failed");
    return 0;
}

/* Output line N answers input line N. */
static int on_value(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    TokenizeRun *r = ctx;
    if (jsonl_expect_next_line(&r->last_line, path, line, nth, e)) return -1;
    if (!json_is_string(v))
        return err_set(e, ERR_PARSE, "%s:%d: expected a JSON string, got %s", path, line, json_type_name(v));
    return print_ids(ctx, json_string_value(v), json_string_length(v), e);
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *jsonl = NULL;
    int special = 0;
    long max_line = (long)JSONL_MAX_LINE;
    ArgSpec specs[] = {
        {"--model", "-m", ARG_STR, &model, "M",
         "a directory with tokenizer.json, a tokenizer.json file, or a .gguf file", 1, 0},
        {"--special", NULL, ARG_FLAG, &special, NULL,
         "add the model's special tokens (BOS, or [CLS]/[SEP]) and read special-token text such as "
         "<|im_end|> as that token",
         0, 0},
        {"--jsonl", NULL, ARG_STR, &jsonl, "FILE", "tokenize each JSON string of FILE (- for stdin); one array per line", 0, 0},
        {"--max-line-bytes", NULL, ARG_LONG, &max_line, "N",
         "with --jsonl, refuse a line longer than N bytes (default 16 MiB; tokenizing takes ~20x a line's size)", 0,
         0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const ArgCommand cmd = {
        "tokenize", "--model M [--special] (TEXT | --jsonl FILE)",
        "Prints the token ids of TEXT as a JSON array. With --jsonl, reads one JSON string per line "
        "and prints one JSON array per string, in order.",
        "aloe tokenize --model ../shared/tokenizer-data/qwen3 'Hello world'   # [9707, 1879]", 0, 1};
    char **pos = malloc(sizeof(char *) * (argc > 0 ? argc : 1));
    int npos;
    Err e;
    err_clear(&e);
    int rc = args_parse(&cmd, specs, argc, argv, pos, &npos, &e);
    if (rc) {
        free(pos);
        return rc > 0 ? 0 : cli_fail(&e);
    }
    if ((npos == 1) == (jsonl != NULL)) {
        free(pos);
        err_set(&e, ERR_ARG, "aloe tokenize: give either a TEXT argument or --jsonl FILE (see aloe tokenize --help)");
        return cli_fail(&e);
    }
    Tokenizer *t = tok_load(model, &e);
    if (!t) {
        free(pos);
        return cli_fail(&e);
    }
    TokenizeRun r = {.t = t, .special = special};
    sb_init(&r.line);
    if (jsonl && !strcmp(jsonl, "-")) jsonl = "/dev/stdin";
    if (jsonl) {
        long lines = 0;
        JsonlOptions jo = {.max_line = (size_t)max_line, .lines = &lines,
                           .limit_hint = "the --max-line-bytes limit"};
        long n = max_line < 1 ? err_set(&e, ERR_ARG, "--max-line-bytes: expected a positive number of bytes, got %ld",
                                        max_line)
                              : jsonl_foreach_opt(jsonl, &jo, on_value, &r, &e);
        rc = n < 0 ? -1 : 0;
        /* Output line N answers input line N: nothing to answer is no success,
         * and a blank line after the last string would go unanswered. */
        if (!rc && n == 0)
            rc = err_set(&e, ERR_PARSE, "%s: no records (expected one JSON string per line)", jsonl);
        else if (!rc && lines > r.last_line)
            rc = err_set(&e, ERR_PARSE, "%s:%d: blank line: expected a JSON string (one output line per input line)",
                         jsonl, r.last_line + 1);
    } else {
        rc = print_ids(&r, pos[0], strlen(pos[0]), &e);
    }
    if (!rc && fflush(stdout)) rc = err_set(&e, ERR_IO, "tokenize: writing to stdout failed");
    sb_free(&r.line);
    tok_free(t);
    free(pos);
    return rc ? cli_fail(&e) : 0;
}
