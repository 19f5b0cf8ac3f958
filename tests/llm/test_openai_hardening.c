/* The OpenAI backend against hostile or odd endpoints: replies holding
 * U+0000, oversized replies and gzip bombs, servers that echo the API key
 * back, keys that would inject headers, and model specs that are both a
 * local path and an endpoint's model name (llama.cpp's server reports its
 * -m path as the model id). */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloe/run_aloe.h"
#include "llm/cache.h"
#include "llm/fake_server.h"
#include "llm/open.h"
#include "llm/openai.h"
#include "test.h"

static FakeServer fs;
static int fs_up;

#define KEY "sk-echo-SECRET-0123456789abcdef"
#define REPL "\xEF\xBF\xBD" /* U+FFFD, what a U+0000 in a reply becomes */
#define FILLER_10 "xxxxxxxxxx"
#define FILLER_40 FILLER_10 FILLER_10 FILLER_10 FILLER_10
#define FILLER_280 FILLER_40 FILLER_40 FILLER_40 FILLER_40 FILLER_40 FILLER_40 FILLER_40

static const char *SCRIPT =
    "{\"models\": {"
    " \"nul\": {\"always\": \"nul\", \"reply\": \"before\"},"
    " \"huge\": {\"always\": \"huge\", \"size_mb\": 3},"
    " \"bomb\": {\"always\": \"gzip_bomb\", \"size_mb\": 3},"
    " \"big-bomb\": {\"always\": \"gzip_bomb\", \"size_mb\": 80},"
    " \"small-bomb\": {\"always\": \"gzip_bomb\", \"size_mb\": 1},"
    " \"echo\": {\"reply\": \"you sent {key}, twice: {key}\"},"
    " \"echo-error\": {\"always\": {\"status\": 400, \"body\": \"{\\\"error\\\": {\\\"message\\\": \\\"bad key {key}\\\"}}\"}},"
    " \"echo-garbage\": {\"always\": {\"status\": 502, \"body\": \"<html>proxy saw {key}</html>\"}},"
    /* the key straddles the 300 bytes of a non-JSON body quoted in a message */
    " \"echo-cut\": {\"always\": {\"status\": 502, \"body\": \"<html>" FILLER_280 "{key}</html>\"}},"
    " \"user-sim\": {\"reply\": \"Hi ({hash}), my key is {key}\"},"
    " \"inducer\": {\"reply\": \"Profile: holds {key}\\nPersonality: calm\"},"
    " \"hinted\": {\"reply\": \"hinted {key} {hash}\"},"
    " \"plain\": {\"reply\": \"plain {hash}\"},"
    " \"pair-judge\": {\"reply\": \"Key {key}.\\nPreferred: {ab}\"}"
    "}}";

#define NEED_SERVER() NEED_STARTED(fs_up, "fake_openai")

static LlmBackend *open_fake(const char *model, const char *key, Err *e) {
    LlmBackend *b = llm_openai_new(fs.url, key, model, 20, 1, e);
    if (b) llm_openai_set_backoff(b, 0.01, 0.02);
    return b;
}

static LlmMessage hello = {"user", "hello"};

/* ---- U+0000 ---- */

/* llama.cpp's server sent "\u0000" in a content string: valid JSON, which was
 * rejected as "not valid JSON" on every retry, so a seeded run never ended. */
static void test_nul_in_reply_is_kept_and_cached(void) {
    NEED_SERVER();
    char *dir = test_tmpdir(), *db = path_join(dir, "requests.sqlite");
    LlmCache *c = NULL;
    Err e;
    CHECK_OK(llm_cache_open(db, &c, &e), &e);
    LlmBackend *b = open_fake("nul", NULL, &e);
    CHECK(b);
    b = llm_cache_wrap(b, c, fs.url);
    int before = fake_log_count(&fs, "nul");
    LlmReply r = {0};
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    /* nothing after the NUL is lost; the NUL itself becomes U+FFFD */
    CHECK_EQ_STR(r.text, "before" REPL " after NUL");
    CHECK(!r.cached);
    llm_reply_free(&r);
    CHECK_EQ_INT(fake_log_count(&fs, "nul") - before, 1); /* accepted the first time, not retried */
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    CHECK(r.cached);
    CHECK_EQ_STR(r.text, "before" REPL " after NUL");
    llm_reply_free(&r);
    CHECK_EQ_INT(fake_log_count(&fs, "nul") - before, 1);
    llm_free(b);
    llm_cache_close(c);
    free(db);
    free(dir);
}

static void test_nul_in_parsers(void) {
    LlmReply r;
    Err e;
    static const char chat[] = "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"},\"finish_reason\":\"st\\u0000op\"}]}";
    CHECK_OK(llm_openai_parse_chat(chat, sizeof chat - 1, &r, &e), &e);
    CHECK_EQ_STR(r.text, "a" REPL "b");
    CHECK_EQ_STR(r.finish_reason, "st" REPL "op");
    llm_reply_free(&r);
    /* an error body's message keeps what follows a NUL too */
    static const char err[] = "{\"error\":{\"message\":\"bad\\u0000request\"}}";
    char *t = llm_openai_error_text(err, sizeof err - 1);
    CHECK_EQ_STR(t, "bad" REPL "request");
    free(t);
    /* a raw NUL byte in a non-JSON body does not cut the snippet short */
    static const char raw[] = "<html>a\0b</html>";
    t = llm_openai_error_text(raw, sizeof raw - 1);
    CHECK_EQ_STR(t, "<html>a b</html>");
    free(t);
}

/* ---- size caps ---- */

static void check_too_big(const char *msg, const char *limit) {
    CHECK_MSG(strstr(msg, "exceeds the limit of") && strstr(msg, limit) && strstr(msg, "ALOE_MAX_REPLY_MB") &&
                  strstr(msg, "127.0.0.1"),
              "message: %s", msg);
}

/* A 2 GB reply took 4.2 GB of memory: the transfer stops at the cap. */
static void test_huge_reply_is_abandoned_at_the_cap(void) {
    NEED_SERVER();
    Err e;
    LlmBackend *b = open_fake("huge", NULL, &e);
    CHECK(b);
    llm_openai_set_max_reply(b, 1 << 20);
    int before = fake_log_count(&fs, "huge");
    LlmReply r = {0};
    CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
    check_too_big(e.msg, "1 MiB");
    CHECK_MSG(strstr(e.msg, "huge at http://127.0.0.1"), "names the endpoint: %s", e.msg);
    CHECK_EQ_INT(fake_log_count(&fs, "huge") - before, 1); /* the same request would get the same answer */
    llm_free(b);
}

/* The cap counts decompressed bytes: 20 KB on the wire inflate to 3 MiB. */
static void test_gzip_bomb_is_abandoned_at_the_cap(void) {
    NEED_SERVER();
    Err e;
    LlmBackend *b = open_fake("bomb", NULL, &e);
    CHECK(b);
    llm_openai_set_max_reply(b, 1 << 20);
    LlmReply r = {0};
    CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
    check_too_big(e.msg, "1 MiB");
    llm_free(b);
    /* gzip itself works: a compressed reply under the cap arrives whole */
    b = open_fake("small-bomb", NULL, &e);
    CHECK(b);
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    CHECK_EQ_INT(strlen(r.text), 1 << 20);
    llm_reply_free(&r);
    llm_free(b);
}

/* The default is 64 MiB, and ALOE_MAX_REPLY_MB sets it for every role
 * opened through llm_open. */
static void test_default_cap_and_env(void) {
    NEED_SERVER();
    Err e;
    LlmRoleConfig cfg = {.role = "judge", .model = "big-bomb", .base_url = fs.url, .max_retries = 0};
    LlmBackend *b = llm_open(&cfg, NULL, &e);
    CHECK(b);
    LlmReply r = {0};
    CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
    check_too_big(e.msg, "64 MiB");
    llm_free(b);

    setenv("ALOE_MAX_REPLY_MB", "2", 1);
    cfg.model = "huge";
    b = llm_open(&cfg, NULL, &e);
    CHECK(b);
    CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
    check_too_big(e.msg, "2 MiB");
    llm_free(b);
    setenv("ALOE_MAX_REPLY_MB", "4", 1);
    b = llm_open(&cfg, NULL, &e);
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    CHECK_EQ_INT(strlen(r.text), 3 << 20);
    llm_reply_free(&r);
    llm_free(b);

    static const char *bad[] = {"0", "lots", "4096", "12MB", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("ALOE_MAX_REPLY_MB", bad[i], 1);
        CHECK(llm_open(&cfg, NULL, &e) == NULL);
        CHECK_MSG(e.code == ERR_ARG && strstr(e.msg, "ALOE_MAX_REPLY_MB") && strstr(e.msg, "judge"), "%s", e.msg);
    }
    unsetenv("ALOE_MAX_REPLY_MB");
}

/* jansson keeps the error position in an int: past 2 GiB it went negative
 * ("at byte -2147483642"). Replies are capped below 4 GiB, where the
 * unsigned reading is exact. */
static void test_error_offsets_are_never_negative(void) {
    CHECK(llm_openai_error_offset(-2147483642) == 2147483654u);
    CHECK(llm_openai_error_offset(12) == 12);
    LlmReply r;
    Err e;
    CHECK(llm_openai_parse_chat("{\"choices\": x", 13, &r, &e) == -1);
    CHECK_MSG(strstr(e.msg, "at byte 13"), "%s", e.msg);
}

/* ---- embeddings ---- */

static void test_embedding_indices_must_be_distinct(void) {
    float *v;
    int dim;
    Err e;
    /* index 0 twice would leave text 1 with a zero vector and no error */
    static const char dup[] = "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[3,4]}]}";
    CHECK(llm_openai_parse_embeddings(dup, sizeof dup - 1, 2, &v, &dim, &e) == -1);
    CHECK_MSG(strstr(e.msg, "distinct index"), "%s", e.msg);
    /* an index past 2^32 does not wrap onto a valid one */
    static const char wrap[] = "{\"data\":[{\"index\":4294967296,\"embedding\":[1,2]}]}";
    CHECK(llm_openai_parse_embeddings(wrap, sizeof wrap - 1, 1, &v, &dim, &e) == -1);
    /* beyond float's range: inf would make every cosine NaN */
    static const char big[] = "{\"data\":[{\"index\":0,\"embedding\":[1e300]}]}";
    CHECK(llm_openai_parse_embeddings(big, sizeof big - 1, 1, &v, &dim, &e) == -1);
    CHECK_MSG(strstr(e.msg, "float range"), "%s", e.msg);
    static const char ok[] = "{\"data\":[{\"index\":1,\"embedding\":[1,2]},{\"index\":0,\"embedding\":[3,4]}]}";
    CHECK_OK(llm_openai_parse_embeddings(ok, sizeof ok - 1, 2, &v, &dim, &e), &e);
    CHECK(dim == 2 && v[0] == 3 && v[3] == 2);
    free(v);
}

/* ---- secrets ---- */

/* A JSON error message holding the key near where the error message (1024
 * bytes) is cut: the message's prefix (endpoint, URL) has a length this test
 * does not know, so the key is put at every 16th offset over the range where
 * it could straddle the cut. No piece of the key may remain. */
static void echoed_key_at_the_message_end(void) {
    StrBuf sc;
    sb_init(&sc);
    sb_append(&sc, "{\"models\": {");
    for (int fill = 640; fill <= 1020; fill += 16) {
        sb_printf(&sc, "%s\"cut-%d\": {\"always\": {\"status\": 400, \"body\": "
                  "\"{\\\"error\\\": {\\\"message\\\": \\\"%*s{key}\\\"}}\"}}",
                  fill > 640 ? ", " : "", fill, fill, "");
    }
    sb_append(&sc, "}}");
    FakeServer cut;
    int up = fake_start(&cut, sc.s, 0) == 0;
    sb_free(&sc);
    NEED_STARTED(up, "fake_openai");
    for (int fill = 640; up && fill <= 1020; fill += 16) {
        char model[32];
        snprintf(model, sizeof model, "cut-%d", fill);
        Err e;
        LlmBackend *b = llm_openai_new(cut.url, KEY, model, 20, 0, &e);
        CHECK(b);
        LlmReply r = {0};
        CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
        CHECK_MSG(!strstr(e.msg, "sk-echo"), "%s: message: %s", model, e.msg);
        llm_free(b);
    }
    fake_stop(&cut);
}

static void test_echoed_key_is_redacted(void) {
    NEED_SERVER();
    Err e;
    LlmBackend *b = open_fake("echo", KEY, &e);
    CHECK(b);
    LlmReply r = {0};
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    CHECK_EQ_STR(r.text, "you sent [REDACTED], twice: [REDACTED]");
    llm_reply_free(&r);
    json_t *rec = fake_log_last(&fs, "echo"); /* the key was sent, and echoed */
    CHECK_EQ_STR(json_string_value(json_object_get(rec, "authorization")), "Bearer " KEY);
    json_decref(rec);
    llm_free(b);
    /* error messages quoting a body: JSON or not */
    static const char *models[] = {"echo-error", "echo-garbage"};
    for (int i = 0; i < 2; i++) {
        b = open_fake(models[i], KEY, &e);
        CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
        CHECK_MSG(!strstr(e.msg, KEY) && strstr(e.msg, "[REDACTED]"), "message: %s", e.msg);
        llm_free(b);
    }
    /* a body cut for the message where the key stands: no piece of it
     * either (the first 14 characters, "sk-echo-SECRET", were shown) */
    b = open_fake("echo-cut", KEY, &e);
    CHECK(llm_chat(b, &hello, 1, NULL, &r, &e) == -1);
    CHECK_MSG(!strstr(e.msg, "sk-echo") && strstr(e.msg, FILLER_10), "message: %s", e.msg);
    llm_free(b);
    echoed_key_at_the_message_end();
    /* a placeholder key of a server without auth is not a secret: the
     * word stays as it was */
    b = open_fake("echo", "EMPTY", &e);
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    CHECK_EQ_STR(r.text, "you sent EMPTY, twice: EMPTY");
    llm_reply_free(&r);
    llm_free(b);
}

static void test_key_with_control_characters_is_refused(void) {
    NEED_SERVER();
    static const char *bad[] = {"sk-abcdefgh\r\nX-Injected: yes", "sk-abcdefgh\n", "sk-abc\tdefgh", "sk-abc\x7f"};
    int before = fake_log_count(&fs, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Err e = {0};
        CHECK(llm_openai_new(fs.url, bad[i], "echo", 10, 0, &e) == NULL);
        CHECK_MSG(e.code == ERR_ARG && strstr(e.msg, "control character") && !strstr(e.msg, "abcdefgh") &&
                      !strstr(e.msg, "Injected"),
                  "%s", e.msg);
        /* through llm_open the message names where the key came from */
        LlmRoleConfig cfg = {.role = "judge", .model = "echo", .base_url = fs.url, .api_key = bad[i],
                             .api_key_env = "MY_KEY", .max_retries = 0};
        CHECK(llm_open(&cfg, NULL, &e) == NULL);
        CHECK_MSG(strstr(e.msg, "judge") && strstr(e.msg, "$MY_KEY") && !strstr(e.msg, "abcdefgh"), "%s", e.msg);
        cfg.api_key = cfg.api_key_env = NULL;
        setenv("OPENAI_API_KEY", bad[i], 1);
        CHECK(llm_open(&cfg, NULL, &e) == NULL);
        CHECK_MSG(strstr(e.msg, "$OPENAI_API_KEY") && !strstr(e.msg, "abcdefgh"), "%s", e.msg);
        unsetenv("OPENAI_API_KEY");
    }
    CHECK_EQ_INT(fake_log_count(&fs, NULL), before); /* nothing was sent */
}

/* The whole path: `aloe dialogues` against a server that echoes the key in
 * every role's reply. The key appears in no file of the run (the trees, the
 * request cache and its WAL), nor on stdout or stderr. */

static char *setup_run_dir(void) {
    char *dir = test_tmpdir(), *p = path_join(dir, "prof.jsonl"), *q = path_join(dir, "pers.jsonl");
    Err e;
    const char *prof = "\"A nurse in Leeds.\"\n\"A baker in Lyon.\"\n";
    const char *pers = "\"Shy.\"\n";
    file_write_atomic(p, prof, strlen(prof), &e);
    file_write_atomic(q, pers, strlen(pers), &e);
    free(p);
    free(q);
    return dir;
}

static int run_dialogues(const char *dir, const char *judge, const char *key_env, const char *out_name) {
    char prof[512], pers[512], out[512];
    snprintf(prof, sizeof prof, "%s/prof.jsonl", dir);
    snprintf(pers, sizeof pers, "%s/pers.jsonl", dir);
    snprintf(out, sizeof out, "%s/%s", dir, out_name);
    const char *a[] = {"dialogues", "--profiles", prof, "--personalities", pers, "--turns", "2", "--num", "2",
                       "--seed", "7", "-j", "2", "--user-model", "user-sim", "--inducer-model", "inducer",
                       "--hinted-model", "hinted", "--plain-model", "plain", "--judge-model", judge,
                       "--base-url", fs.url, "--api-key-env", key_env, "--retries", "0", "--timeout", "20",
                       "--out", out, NULL};
    return aloe_run(dir, a);
}

/* Number of files under dir (recursively) holding needle; their names in *where. */
static int files_holding(const char *dir, const char *needle, StrBuf *where) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        char *p = path_join(dir, ent->d_name);
        struct stat st;
        if (!stat(p, &st) && S_ISDIR(st.st_mode)) {
            n += files_holding(p, needle, where);
        } else {
            char *data = NULL;
            size_t len = 0;
            Err e;
            if (!file_read_all(p, &data, &len, &e) && memmem(data, len, needle, strlen(needle))) {
                n++;
                sb_printf(where, "%s ", p);
            }
            free(data);
        }
        free(p);
    }
    closedir(d);
    return n;
}

static void test_echoed_key_reaches_no_output(void) {
    NEED_SERVER();
    char *dir = setup_run_dir();
    setenv("ECHO_KEY", KEY, 1);
    int rc = run_dialogues(dir, "openai:pair-judge", "ECHO_KEY", "trees.jsonl");
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    free(err);
    char *trees = slurp_in(dir, "trees.jsonl");
    CHECK_MSG(strstr(trees, "[REDACTED]"), "the server did echo the key: %s", trees);
    free(trees);
    StrBuf where;
    sb_init(&where);
    CHECK_MSG(files_holding(dir, KEY, &where) == 0, "the key is in %s", where.s);
    /* a rerun answers from the cache: still redacted */
    CHECK_EQ_INT(run_dialogues(dir, "openai:pair-judge", "ECHO_KEY", "trees.jsonl"), 0);
    CHECK_MSG(files_holding(dir, KEY, &where) == 0, "the key is in %s", where.s);
    /* a run that fails on a body quoting the key: not in the messages */
    CHECK(run_dialogues(dir, "echo-error", "ECHO_KEY", "failed.jsonl") != 0);
    err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "[REDACTED]"), "stderr: %s", err);
    free(err);
    CHECK_MSG(files_holding(dir, KEY, &where) == 0, "the key is in %s", where.s);
    sb_free(&where);
    unsetenv("ECHO_KEY");
    free(dir);
}

/* A key with CR/LF sent "X-Injected: yes" as a header of its own. */
static void test_injecting_key_is_refused_at_start(void) {
    NEED_SERVER();
    char *dir = setup_run_dir();
    setenv("BAD_KEY", "sk-abcdefgh\r\nX-Injected: yes", 1);
    int before = fake_log_count(&fs, NULL);
    int rc = run_dialogues(dir, "pair-judge", "BAD_KEY", "trees.jsonl");
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(rc != 0 && strstr(err, "$BAD_KEY") && strstr(err, "control character"), "exit %d: %s", rc, err);
    CHECK_MSG(!strstr(err, "abcdefgh") && !strstr(err, "Injected"), "the key was shown: %s", err);
    free(err);
    CHECK_EQ_INT(fake_log_count(&fs, NULL), before);
    unsetenv("BAD_KEY");
    free(dir);
}

/* ---- which model is meant ---- */

/* Runs llm_open with stderr captured; the text written to it (caller frees). */
static char *open_capturing(const LlmRoleConfig *cfg, LlmBackend **b, Err *e) {
    char *dir = test_tmpdir(), *path = path_join(dir, "stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    *b = llm_open(cfg, NULL, e);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *txt = slurp_in(path, NULL);
    free(path);
    free(dir);
    return txt;
}

static void test_explicit_model_specs(void) {
    NEED_SERVER();
    CHECK(!llm_spec_is_local("openai:/models/qwen.gguf"));
    CHECK(llm_spec_is_local("local:my-model"));
    CHECK(llm_spec_is_local("local:hf://Qwen/Qwen2.5-0.5B-Instruct"));
    CHECK_EQ_STR(llm_spec_name("openai:/m.gguf"), "/m.gguf");
    CHECK_EQ_STR(llm_spec_name("local:x"), "x");
    CHECK_EQ_STR(llm_spec_name("hf://a/b"), "hf://a/b");

    /* llama-server's model id is its -m path; the file may exist here too */
    char *dir = test_tmpdir(), *gguf = path_join(dir, "qwen.gguf");
    Err e;
    file_write_atomic(gguf, "not a model", 11, &e);
    char *spec = xasprintf("openai:%s", gguf);
    LlmRoleConfig cfg = {.role = "judge", .model = spec, .base_url = fs.url, .max_retries = 0};
    LlmBackend *b;
    char *said = open_capturing(&cfg, &b, &e);
    CHECK_MSG(b, "%s", e.msg);
    CHECK_EQ_STR(said, "");
    LlmReply r = {0};
    CHECK_OK(llm_chat(b, &hello, 1, NULL, &r, &e), &e);
    llm_reply_free(&r);
    json_t *rec = fake_log_last(&fs, gguf); /* the server got the bare name */
    CHECK(rec);
    json_decref(rec);
    llm_free(b);
    free(said);

    /* the bare path with an endpoint set: the local engine, and a notice saying so */
    cfg.model = gguf;
    said = open_capturing(&cfg, &b, &e);
    llm_free(b);
    CHECK_MSG(strstr(said, "judge") && strstr(said, "local engine") && strstr(said, "openai:") &&
                  strstr(said, "127.0.0.1") && !strchr(strchr(said, '\n') ? strchr(said, '\n') + 1 : "", '\n'),
              "stderr: %s", said);
    free(said);
    /* the same through $OPENAI_BASE_URL */
    cfg.base_url = NULL;
    setenv("OPENAI_BASE_URL", "http://user:pa55word@127.0.0.1:9/v1", 1);
    said = open_capturing(&cfg, &b, &e);
    llm_free(b);
    CHECK_MSG(strstr(said, "local engine") && strstr(said, "***@127.0.0.1:9") && !strstr(said, "pa55word"),
              "stderr: %s", said);
    free(said);
    unsetenv("OPENAI_BASE_URL");
    /* no endpoint chosen: nothing to say */
    said = open_capturing(&cfg, &b, &e);
    llm_free(b);
    CHECK_EQ_STR(said, "");
    free(said);
    /* local: is explicit, so no notice either */
    cfg.base_url = fs.url;
    free(spec);
    spec = xasprintf("local:%s", gguf);
    cfg.model = spec;
    said = open_capturing(&cfg, &b, &e);
    llm_free(b);
    CHECK_EQ_STR(said, "");
    free(said);

    /* a path-looking name that does not exist here points to openai: */
    cfg.model = "/models/elsewhere.gguf";
    int before = fake_log_count(&fs, NULL);
    said = open_capturing(&cfg, &b, &e);
    CHECK(b == NULL);
    CHECK_MSG(e.code == ERR_NOTFOUND && strstr(e.msg, "openai:/models/elsewhere.gguf"), "%s", e.msg);
    free(said);
    /* local: never goes to the endpoint, even for a bare name */
    cfg.model = "local:some-model";
    said = open_capturing(&cfg, &b, &e);
    CHECK(b == NULL && e.code == ERR_NOTFOUND);
    free(said);
    CHECK_EQ_INT(fake_log_count(&fs, NULL), before);
    /* a prefix with nothing after it */
    cfg.model = "openai:";
    CHECK(llm_open(&cfg, NULL, &e) == NULL);
    CHECK_MSG(e.code == ERR_ARG && strstr(e.msg, "names no model"), "%s", e.msg);
    free(spec);
    free(gguf);
    free(dir);
}

int main(void) {
    unsetenv("OPENAI_BASE_URL");
    unsetenv("OPENAI_API_KEY");
    unsetenv("ALOE_MAX_REPLY_MB");
    fs_up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_nul_in_reply_is_kept_and_cached);
    RUN(test_nul_in_parsers);
    RUN(test_huge_reply_is_abandoned_at_the_cap);
    RUN(test_gzip_bomb_is_abandoned_at_the_cap);
    RUN(test_default_cap_and_env);
    RUN(test_error_offsets_are_never_negative);
    RUN(test_embedding_indices_must_be_distinct);
    RUN(test_echoed_key_is_redacted);
    RUN(test_key_with_control_characters_is_refused);
    RUN(test_echoed_key_reaches_no_output);
    RUN(test_injecting_key_is_refused_at_start);
    RUN(test_explicit_model_specs);
    fake_stop(&fs);
    return test_summary();
}
