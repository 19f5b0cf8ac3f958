/* bench/vs_llamacpp.sh, the same-run comparison with llama.cpp: its parsers
 * of llama-bench's and `aloe speed`'s outputs and its ratio statistics
 * (min, median, max over rounds) through the script's --self-test, on
 * canned outputs (bench/testdata/vs_llamacpp/); and its refusals of bad
 * options before it builds or runs anything. No llama.cpp, no timing. */
#include <stdlib.h>

#include "base/mem.h"
#include "test.h"

/* Runs the script with args (and env before it); its exit status, and its
 * stdout+stderr in *out (caller frees). */
static int script(const char *env, const char *args, char **out) {
    return test_system_output(out, "%s bench/vs_llamacpp.sh %s", env, args);
}

static void test_self_test(void) {
    char *out;
    int rc = script("", "--self-test", &out);
    CHECK_MSG(rc == 0 && strstr(out, "self-test: all passed") && !strstr(out, "FAIL"), "rc %d:\n%s", rc, out);
    /* the checks the statistics rest on ran */
    CHECK_MSG(strstr(out, "ok   row a: | a | 100.0 | 120.0 | 1.00 (0.80–1.20) |"), "%s", out);
    CHECK_MSG(strstr(out, "ok   row b: | b | 45.0 | 70.0 | 1.50 (1.00–2.00) |"), "%s", out);
    free(out);
}

static void test_refuses_bad_options(void) {
    /* the environment, the options, what the refusal must say */
    static const char *const cases[][3] = {
        {"LLAMACPP_BUILD=", "-p 16", "set LLAMACPP_BUILD"},
        {"LLAMACPP_BUILD=/nonexistent", "-p 16", "/nonexistent/bin/llama-bench not found"},
        {"LLAMACPP_BUILD=/nonexistent", "-p x", "whole numbers (got 'x')"},
        {"LLAMACPP_BUILD=/nonexistent", "-p 0 -n 0", "nothing to measure"},
        {"LLAMACPP_BUILD=/nonexistent", "--kv q8_0", "--kv takes f16 or f32"},
        {"LLAMACPP_BUILD=/nonexistent", "--types q8_0,q9_9", "unknown type q9_9"},
        {"LLAMACPP_BUILD=/nonexistent", "--shapes gpt-5", "unknown shape gpt-5"},
        {"LLAMACPP_BUILD=/nonexistent", "--frobnicate", "unknown option --frobnicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        int rc = script(cases[i][0], cases[i][1], &out);
        CHECK_MSG(rc != 0 && strstr(out, cases[i][2]), "%s %s: rc %d: %s", cases[i][0], cases[i][1], rc, out);
        free(out);
    }
}

int main(void) {
    RUN(test_self_test);
    RUN(test_refuses_bad_options);
    return test_summary();
}
