/* JSONL input limits (jsonl.h): a line over the limit is refused naming the
 * file and line, from a file (streamed) and from a buffer alike; a profile
 * or personality string over 64 KiB is refused; and `aloe tokenize --jsonl`
 * refuses input with no records, an unanswered blank last line and a line
 * over --max-line-bytes. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "formats/jsonl.h"
#include "test.h"

static int count_values(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)v, (void)path, (void)line, (void)nth, (void)e;
    ++*(long *)ctx;
    return 0;
}

/* A file of `n` lines, line `long_at` (1-based) holding a string of `len` bytes. */
static char *lines_file(int n, int long_at, size_t len) {
    StrBuf b;
    sb_init(&b);
    for (int i = 1; i <= n; i++) {
        if (i == long_at) {
            sb_appendc(&b, '"');
            for (size_t k = 0; k < len; k++) sb_appendc(&b, 'x');
            sb_append(&b, "\"\n");
        } else {
            sb_printf(&b, "\"line %d\"\n", i);
        }
    }
    char *p = test_write_file("lines.jsonl", b.s);
    sb_free(&b);
    return p;
}

static void test_line_over_the_limit_names_file_and_line(void) {
    /* Line 3 holds 1000 bytes plus its quotes; the limit is 1000. */
    char *p = lines_file(5, 3, 1000);
    long seen = 0, lines = 0;
    JsonlOptions o = {.max_line = 1000, .lines = &lines, .limit_hint = "test limit"};
    Err e = {0};
    CHECK(jsonl_foreach_opt(p, &o, count_values, &seen, &e) == -1);
    char *want = xasprintf("%s:3: line longer than 1000 bytes (test limit)", p);
    CHECK_MSG(strstr(e.msg, want), "%s", e.msg);
    CHECK_EQ_INT(seen, 2); /* the lines before it were read */
    /* The buffer reader says the same. */
    char *buf;
    size_t len;
    CHECK_OK(file_read_all(p, &buf, &len, &e), &e);
    seen = 0;
    CHECK(jsonl_foreach_buf_opt("buf.jsonl", buf, len, &o, count_values, &seen, &e) == -1);
    CHECK_MSG(strstr(e.msg, "buf.jsonl:3: line longer than 1000 bytes"), "%s", e.msg);
    /* Exactly at the limit is accepted. */
    o.max_line = 1002;
    seen = 0;
    CHECK_EQ_INT(jsonl_foreach_opt(p, &o, count_values, &seen, &e), 5);
    CHECK_EQ_INT(lines, 5);
    free(buf);
    free(want);
    free(p);
}

/* The streamed reader reads across its 64 KiB chunks and counts a last line
 * without a newline. */
static void test_stream_long_lines_and_last_line(void) {
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < 3; i++) {
        sb_appendc(&b, '"');
        for (int k = 0; k < 100000; k++) sb_appendc(&b, (char)('a' + i));
        sb_append(&b, "\"\n");
    }
    sb_append(&b, "\n\"last\"");
    char *p = test_write_file("chunks.jsonl", b.s);
    long seen = 0, lines = 0;
    JsonlOptions o = {.lines = &lines};
    Err e = {0};
    CHECK_EQ_INT(jsonl_foreach_opt(p, &o, count_values, &seen, &e), 4);
    CHECK_EQ_INT(lines, 5);
    sb_free(&b);
    free(p);
}

static void test_profile_over_64k_refused(void) {
    char *p = lines_file(4, 2, JSONL_MAX_STRING + 1);
    StrList l;
    Err e = {0};
    CHECK(jsonl_read_strings(p, &l, &e) == -1);
    char *want = xasprintf("%s:2: a string of %zu bytes: at most %zu bytes are accepted", p, JSONL_MAX_STRING + 1,
                           JSONL_MAX_STRING);
    CHECK_MSG(strstr(e.msg, want), "%s", e.msg);
    free(want);
    free(p);
    /* A line far over any profile is refused before it is parsed. */
    p = lines_file(2, 2, 4 * JSONL_MAX_STRING + 10);
    CHECK(jsonl_read_strings(p, &l, &e) == -1);
    CHECK_MSG(strstr(e.msg, ":2: line longer than 262144 bytes (a profile or personality string is at most 64 KiB)"),
              "%s", e.msg);
    free(p);
    /* exactly 64 KiB is fine */
    p = lines_file(1, 1, JSONL_MAX_STRING);
    CHECK_OK(jsonl_read_strings(p, &l, &e), &e);
    CHECK_EQ_INT(l.n, 1);
    strlist_free(&l);
    free(p);
}

/* Runs `aloe tokenize` with a shell tail (input redirection); output in *out. */
static int tokenize(const char *model, const char *tail, char **out) {
    char *args = xasprintf("tokenize --model %s %s", model, tail);
    int rc = aloe_sh_run(NULL, args, out);
    free(args);
    return rc;
}

static void test_tokenize_jsonl_errors(void) {
    char *model = test_shared_path("tokenizer-data/qwen3");
    if (!file_exists(model)) {
        free(model);
        SKIP("shared tokenizer-data/qwen3 not found");
    }
    char *blank = test_write_file("blank.jsonl", "\n  \n\n");
    char *empty = test_write_file("empty.jsonl", "");
    char *trailing = test_write_file("trailing.jsonl", "\"Hello world\"\n\n");
    char *ok = test_write_file("ok.jsonl", "\"Hello world\"\n\"Hello\"\n");
    char *out, *args;
    /* blank-only and empty input: nothing to answer is an error */
    args = xasprintf("--jsonl %s", blank);
    CHECK_EQ_INT(tokenize(model, args, &out), 1);
    CHECK_MSG(strstr(out, "blank.jsonl: no records (expected one JSON string per line)"), "%s", out);
    free(out);
    free(args);
    args = xasprintf("--jsonl - < %s", empty);
    CHECK_EQ_INT(tokenize(model, args, &out), 1);
    CHECK_MSG(strstr(out, ": no records"), "%s", out);
    free(out);
    free(args);
    /* a blank last line would go unanswered */
    args = xasprintf("--jsonl %s", trailing);
    CHECK_EQ_INT(tokenize(model, args, &out), 1);
    CHECK_MSG(strstr(out, "trailing.jsonl:2: blank line"), "%s", out);
    free(out);
    free(args);
    /* the line limit */
    args = xasprintf("--jsonl %s --max-line-bytes 10", ok);
    CHECK_EQ_INT(tokenize(model, args, &out), 1);
    CHECK_MSG(strstr(out, "ok.jsonl:1: line longer than 10 bytes (the --max-line-bytes limit)"), "%s", out);
    free(out);
    free(args);
    args = xasprintf("--jsonl %s --max-line-bytes 13", ok);
    CHECK_EQ_INT(tokenize(model, args, &out), 0);
    CHECK_MSG(!strcmp(out, "[9707, 1879]\n[9707]\n"), "%s", out);
    free(out);
    free(args);
    args = xasprintf("--jsonl %s --max-line-bytes 0", ok);
    CHECK_EQ_INT(tokenize(model, args, &out), 2); /* a usage error */
    CHECK_MSG(strstr(out, "--max-line-bytes: expected a positive number"), "%s", out);
    free(out);
    free(args);
    free(blank);
    free(empty);
    free(trailing);
    free(ok);
    free(model);
}

int main(void) {
    RUN(test_line_over_the_limit_names_file_and_line);
    RUN(test_stream_long_lines_and_last_line);
    RUN(test_profile_over_64k_refused);
    RUN(test_tokenize_jsonl_errors);
    return test_summary();
}
