#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "formats/jsonl.h"
#include "test.h"

static void test_two_values_on_one_line_are_both_read(void) {
    char *p = test_write_file("in.jsonl", "\"a\"\n\"b\" \"c\"\n\n\"d\"\n");
    StrList l;
    Err e;
    CHECK_OK(jsonl_read_strings(p, &l, &e), &e);
    CHECK_EQ_INT(l.n, 4);
    CHECK_EQ_STR(l.items[2], "c");
    CHECK_EQ_STR(l.items[3], "d");
    strlist_free(&l);
    free(p);
}

static void test_non_string_names_line(void) {
    char *p = test_write_file("in.jsonl", "\"a\"\n{\"x\": 1}\n");
    StrList l;
    Err e;
    CHECK(jsonl_read_strings(p, &l, &e) == -1);
    CHECK(strstr(e.msg, ":2: expected a JSON string, got an object") != NULL);
    free(p);
}

static void test_malformed_names_line_and_column(void) {
    char *p = test_write_file("in.jsonl", "\"a\"\n\"b\"\n\"unterminated\n");
    StrList l;
    Err e;
    CHECK(jsonl_read_strings(p, &l, &e) == -1);
    CHECK_MSG(strstr(e.msg, "in.jsonl:3:") != NULL, "message: %s", e.msg);
    free(p);
}

static void test_empty_file_is_an_error(void) {
    char *p = test_write_file("in.jsonl", "\n\n");
    StrList l;
    Err e;
    CHECK(jsonl_read_strings(p, &l, &e) == -1);
    CHECK(strstr(e.msg, "empty file") != NULL);
    free(p);
}

static void test_published_profiles(void) {
    char *p = test_shared_path("aloe-data/profile.jsonl");
    if (!p) SKIP("shared aloe-data not found (set ALOE_SHARED)");
    StrList l;
    Err e;
    CHECK_OK(jsonl_read_strings(p, &l, &e), &e);
    CHECK(l.n > 300);
    strlist_free(&l);
    free(p);
}

static int expect_aligned(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)v;
    return jsonl_expect_next_line(ctx, path, line, nth, e);
}

static void test_expect_next_line(void) {
    const char *ok = "\"a\"\n\"b\"\n", *gap = "\"a\"\n\n\n\"b\"\n", *two = "\"a\"\n\"b\" \"c\"\n";
    Err e;
    int last = 0;
    CHECK_EQ_INT(jsonl_foreach_buf("ok.jsonl", ok, strlen(ok), expect_aligned, &last, &e), 2);
    CHECK_EQ_INT(last, 2);
    last = 0;
    CHECK(jsonl_foreach_buf("gap.jsonl", gap, strlen(gap), expect_aligned, &last, &e) == -1);
    CHECK_MSG(strstr(e.msg, "gap.jsonl:2: blank line") != NULL, "message: %s", e.msg);
    last = 0;
    CHECK(jsonl_foreach_buf("two.jsonl", two, strlen(two), expect_aligned, &last, &e) == -1);
    CHECK_MSG(strstr(e.msg, "two.jsonl:2: expected one JSON string per line") != NULL, "message: %s", e.msg);
}

int main(void) {
    RUN(test_two_values_on_one_line_are_both_read);
    RUN(test_non_string_names_line);
    RUN(test_malformed_names_line_and_column);
    RUN(test_empty_file_is_an_error);
    RUN(test_published_profiles);
    RUN(test_expect_next_line);
    return test_summary();
}
