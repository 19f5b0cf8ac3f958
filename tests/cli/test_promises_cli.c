/* What the README promises of the `aloe` command line itself, checked on the
 * built binary: `aloe --help`, `--version`, `aloe COMMAND --help` (exit 0,
 * every command listed, usage, options with the defaults the README states,
 * an example), bad usage (unknown command or flag: exit 2 with a message
 * naming it; no arguments: the usage, exit 2), and `aloe bench --no-cache`
 * (no request cache: a run that has to redo its conversations sends every
 * request again, where with the cache it sends none). */
#include <stdlib.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "llm/fake_server.h"
#include "test.h"

/* Runs `build/aloe ARGS` (ARGS may start with VAR=value words, given to
 * env); stdout and stderr are returned separately (caller frees). */
static int aloe(const char *args, char **out, char **err) {
    char *dir = test_tmpdir();
    char *o = path_join(dir, "out"), *er = path_join(dir, "err");
    char *bin = test_build_path("aloe");
    int rc = test_system("env OPENAI_API_KEY=sk-test %s %s >'%s' 2>'%s' </dev/null", bin, args, o, er);
    *out = test_read_text(o);
    *err = test_read_text(er);
    test_system("rm -rf '%s'", dir);
    free(o);
    free(er);
    free(bin);
    free(dir);
    return rc;
}

/* The commands the README documents, each with its own section. */
static const char *const commands[] = {"bench", "personas", "dialogues", "report", "export",   "train",
                                       "merge", "convert",  "chat",      "complete", "tokenize", "logits",
                                       "speed", "embed",    NULL};

static void test_help_lists_every_command(void) {
    char *out, *err;
    int rc = aloe("--help", &out, &err);
    CHECK_MSG(rc == 0, "aloe --help: exit %d, stderr %s", rc, err);
    CHECK(strstr(out, "usage: aloe COMMAND"));
    for (int i = 0; commands[i]; i++) {
        /* listed as "  NAME  summary" at the start of a line */
        char *needle = xasprintf("\n  %s ", commands[i]);
        int found = strstr(out, needle) != NULL;
        free(needle);
        CHECK_MSG(found, "aloe --help does not list '%s':\n%s", commands[i], out);
    }
    CHECK_EQ_STR(err, "");
    free(out);
    free(err);
    /* -h and `aloe help` are the same */
    rc = aloe("-h", &out, &err);
    CHECK_EQ_INT(rc, 0);
    CHECK(strstr(out, "usage: aloe COMMAND"));
    free(out);
    free(err);
}

static void test_version(void) {
    char *out, *err;
    int rc = aloe("--version", &out, &err);
    CHECK_MSG(rc == 0, "aloe --version: exit %d", rc);
    /* one line: "aloe X.Y.Z" */
    int maj, min, pat;
    char nl = 0;
    CHECK_MSG(sscanf(out, "aloe %d.%d.%d%c", &maj, &min, &pat, &nl) == 4 && nl == '\n', "version: \"%s\"", out);
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);
    free(out);
    free(err);
}

/* `aloe COMMAND --help` gives every option with its default and an example
 * (README, "Commands"). */
static void test_command_help(void) {
    for (int i = 0; commands[i]; i++) {
        char *args = xasprintf("%s --help", commands[i]), *out, *err;
        int rc = aloe(args, &out, &err);
        free(args);
        CHECK_MSG(rc == 0, "aloe %s --help: exit %d, stderr %s", commands[i], rc, err);
        char *usage = xasprintf("usage: aloe %s", commands[i]);
        char *example = xasprintf("\nexample:\n  aloe %s ", commands[i]);
        int ok_usage = strncmp(out, usage, strlen(usage)) == 0, ok_example = strstr(out, example) != NULL;
        free(usage);
        free(example);
        CHECK_MSG(ok_usage, "aloe %s --help does not start with its usage:\n%s", commands[i], out);
        CHECK_MSG(strstr(out, "\noptions:\n"), "aloe %s --help: no options section", commands[i]);
        CHECK_MSG(strstr(out, "-h, --help"), "aloe %s --help: -h, --help not listed", commands[i]);
        CHECK_MSG(ok_example, "aloe %s --help: no example:\n%s", commands[i], out);
        free(out);
        free(err);
    }
}

/* The defaults the README states appear as the option's default in --help. */
static void test_help_defaults_match_readme(void) {
    static const struct {
        const char *cmd, *option, *dflt;
    } cases[] = {
        {"bench", "--turns N", "10"},
        {"bench", "--personalities-per-profile K", "5"},
        {"bench", "--retries N", "8"},
        {"personas", "--examples", "5"},
        {"personas", "--per-call", "20"},
        {"personas", "--threshold", "0.6"},
        {"personas", "--floor-rounds", "3"},
        {"personas", "--min-acceptance", "0.02"},
        {"train", "--beta B", "0.1"},
        {"train", "--loss L", "sigmoid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *args = xasprintf("%s --help", cases[i].cmd), *out, *err;
        int rc = aloe(args, &out, &err);
        free(args);
        CHECK_EQ_INT(rc, 0);
        /* the option's own line: "  --name ARG   text (default: X)" */
        char *start = xasprintf("\n  %s ", cases[i].option);
        const char *line = strstr(out, start);
        free(start);
        CHECK_MSG(line, "aloe %s --help: no %s", cases[i].cmd, cases[i].option);
        line++;
        const char *eol = strchr(line, '\n');
        char *want = xasprintf("(default: %s)", cases[i].dflt);
        const char *d = strstr(line, want);
        int ok = d && (!eol || d < eol);
        free(want);
        CHECK_MSG(ok, "aloe %s --help: %s should say (default: %s): %.*s", cases[i].cmd, cases[i].option,
                  cases[i].dflt, eol ? (int)(eol - line) : 80, line);
        free(out);
        free(err);
    }
}

/* Exit status 2 for bad usage, with a message naming what was wrong. */
static void test_bad_usage(void) {
    char *out, *err;
    int rc = aloe("frobnicate", &out, &err);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(err, "unknown command 'frobnicate'"), "stderr: %s", err);
    CHECK_EQ_STR(out, ""); /* the usage goes to stderr: stdout stays clean for pipes */
    free(out);
    free(err);

    rc = aloe("--bogus-flag", &out, &err);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(err, "--bogus-flag"), "stderr: %s", err);
    free(out);
    free(err);

    /* an unknown flag of every command */
    for (int i = 0; commands[i]; i++) {
        char *args = xasprintf("%s --no-such-flag-xyz", commands[i]);
        rc = aloe(args, &out, &err);
        free(args);
        CHECK_MSG(rc == 2, "aloe %s --no-such-flag-xyz: exit %d (want 2), stderr %s", commands[i], rc, err);
        CHECK_MSG(strstr(err, "--no-such-flag-xyz"), "aloe %s: message does not name the flag: %s", commands[i],
                  err);
        free(out);
        free(err);
    }

    /* a bad value: exit 2 naming the flag */
    rc = aloe("speed --shape qwen2.5-0.5b --type q3_x -p 0 -n 1", &out, &err);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(err, "q3_x"), "stderr: %s", err);
    free(out);
    free(err);

    /* `aloe train` without sft or dpo prints its usage (bad usage: 2);
     * another mode is named */
    rc = aloe("train", &out, &err);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(out, "usage: aloe train sft|dpo") || strstr(err, "usage: aloe train sft|dpo"), "%s%s", out,
              err);
    free(out);
    free(err);
    rc = aloe("train xyz --model a --data b --out c", &out, &err);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(err, "xyz"), "stderr: %s", err);
    free(out);
    free(err);
}

/* `aloe` alone: the usage (listing the commands) and exit 2, bad usage. */
static void test_no_arguments(void) {
    char *out, *err;
    int rc = aloe("", &out, &err);
    CHECK_EQ_INT(rc, 2);
    CHECK(strstr(out, "usage: aloe COMMAND"));
    CHECK(strstr(out, "\n  bench "));
    free(out);
    free(err);
}

/* ---- aloe bench --no-cache ---- */

static int exists(const char *dir, const char *name) {
    char *p = path_join(dir, name);
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

/* Runs bench twice into DIR; before the second run the finished
 * conversations (dialogues.jsonl and the results) are removed, as if the
 * first run had been killed before any was written, so the second has to
 * redo every conversation. Returns the requests the second run sent, or -1. */
static long rerun_requests(FakeServer *fs, const char *dir, const char *extra, int *had_cache) {
    char *profiles = path_join(dir, "profiles.jsonl"), *pers = path_join(dir, "personalities.jsonl");
    char *out = path_join(dir, "run");
    test_put_text(profiles, "\"a nurse in Oslo\"\n\"a retired chess coach\"\n");
    test_put_text(pers, "\"terse\"\n\"cheerful\"\n");
    char *args = xasprintf("bench --model m --user-model user-sim --judge-model judge --profiles %s "
                           "--personalities %s --personalities-per-profile 2 --turns 2 -j 2 --seed 3 "
                           "--base-url %s --out %s --quiet --timeout 20 %s",
                           profiles, pers, fs->url, out, extra);
    long result = -1, base = fake_log_count(fs, NULL);
    char *o, *er;
    int rc = aloe(args, &o, &er);
    if (rc != 0) {
        fprintf(stderr, "first run: exit %d: %s\n", rc, er);
        goto done;
    }
    long first = fake_log_count(fs, NULL) - base;
    *had_cache = exists(out, "requests.sqlite");
    test_system("rm -f '%s/dialogues.jsonl' '%s/results.json' '%s/report.md' '%s/al.svg'", out, out, out, out);
    free(o);
    free(er);
    rc = aloe(args, &o, &er);
    if (rc != 0) {
        fprintf(stderr, "second run: exit %d: %s\n", rc, er);
        goto done;
    }
    result = fake_log_count(fs, NULL) - base - first;
    /* 4 conversations x 2 turns: user simulator and model twice each, the judge at least twice */
    if (first < 4 * 2 * 3) fprintf(stderr, "first run sent only %ld requests\n", first), result = -1;
    if (result >= 0 && result != 0 && result != first)
        fprintf(stderr, "second run sent %ld requests, the first %ld\n", result, first);
done:
    free(o);
    free(er);
    free(args);
    free(profiles);
    free(pers);
    free(out);
    return result;
}

static const char *script = "{\"models\": {\"user-sim\": {\"reply\": \"turn {turns}: tell me more ({hash})\"},"
                            "\"judge\": {\"reply\": \"Fine.\\nScore: {score}\"}},"
                            "\"*\": {\"reply\": \"echo: {last_user}\"}}";

static void test_bench_no_cache(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, script, 0) == 0, "fake_openai");
    char *with = test_tmpdir(), *without = test_tmpdir();
    int cache_with = 0, cache_without = 1;
    /* With the cache the redone conversations come from DIR/requests.sqlite:
     * nothing is sent. */
    long sent_with = rerun_requests(&fs, with, "", &cache_with);
    long before = fake_log_count(&fs, NULL);
    long sent_without = rerun_requests(&fs, without, "--no-cache", &cache_without);
    long first_without = fake_log_count(&fs, NULL) - before - sent_without;
    fake_stop(&fs);
    CHECK_MSG(sent_with == 0, "with the request cache a redone run sent %ld requests", sent_with);
    CHECK(cache_with);
    /* --no-cache: no cache file, and every request goes out again. */
    CHECK_MSG(!cache_without, "--no-cache wrote DIR/requests.sqlite");
    CHECK_MSG(sent_without > 0 && sent_without == first_without,
              "--no-cache: the redone run sent %ld requests, the first %ld", sent_without, first_without);
    char *rj = path_join(without, "run/results.json");
    json_t *r = json_load_file(rj, 0, NULL);
    free(rj);
    CHECK(r);
    CHECK(json_is_false(json_object_get(json_object_get(r, "settings"), "cache")));
    json_decref(r);
    test_system("rm -rf '%s' '%s'", with, without);
    free(with);
    free(without);
}

int main(void) {
    RUN(test_help_lists_every_command);
    RUN(test_version);
    RUN(test_command_help);
    RUN(test_help_defaults_match_readme);
    RUN(test_bad_usage);
    RUN(test_no_arguments);
    RUN(test_bench_no_cache);
    return test_summary();
}
