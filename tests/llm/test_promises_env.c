/* The README's environment variables for local roles, observed through what
 * a local backend reports:
 *   ALOE_KV_TYPE=f16   local models keep keys and values in half floats: the
 *                      prefix cache holds half the bytes per position, the
 *                      greedy reply is the same; another value is an error
 *                      naming the variable.
 *   ALOE_PREFIX_CACHE  MiB of finished prompts kept (default 1024); 0 turns
 *                      the cache off (a repeated prompt is computed again);
 *                      a prompt larger than the budget is not kept; a value
 *                      that is not a number of MiB is an error naming it.
 * And on the command line: `aloe speed` and `aloe complete` take
 * $ALOE_KV_TYPE as the default of --kv-type, which overrides it. */
#include <jansson.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "llm/local.h"
#include "test.h"

#define NEED(p)                                                  \
    do {                                                         \
        if (!(p)) SKIP("shared fixtures absent (ALOE_SHARED)"); \
    } while (0)

/* tiny-qwen2: 2 layers, 2 KV heads of 16: per position 2 (K and V) x 2 x 2 x
 * 16 elements. */
#define QWEN2_KV_ELEMS_PER_POS (2 * 2 * 2 * 16)

static void env_reset(void) {
    unsetenv("ALOE_KV_TYPE");
    unsetenv("ALOE_PREFIX_CACHE");
    unsetenv("ALOE_CTX");
}

static LlmBackend *open_qwen2(Err *e) {
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    if (!dir) return NULL;
    LocalOptions o = {.quiet = 1, .n_threads = 1};
    LlmBackend *b = llm_local_open(dir, &o, e);
    free(dir);
    return b;
}

static LlmParams greedy(int n) {
    LlmParams p = llm_params_default();
    p.temperature = 0;
    p.max_tokens = n;
    return p;
}

typedef struct {
    char *text;
    long prompt_tokens, cached_first, cached_second;
    PrefixCacheStats st;
} Twice;

/* Asks the same thing twice; what the second request took from the cache. */
static int ask_twice(LlmBackend *b, const char *user, int n_out, Twice *t, Err *e) {
    memset(t, 0, sizeof *t);
    LlmMessage m[2] = {{"system", "Answer briefly."}, {"user", user}};
    LlmParams p = greedy(n_out);
    LlmReply r = {0};
    if (llm_chat(b, m, 2, &p, &r, e)) return -1;
    t->text = r.text;
    r.text = NULL;
    t->prompt_tokens = r.usage.prompt_tokens;
    t->cached_first = r.usage.cached_tokens;
    t->st = llm_local_prefix_stats(b);
    llm_reply_free(&r);
    if (llm_chat(b, m, 2, &p, &r, e)) return -1;
    t->cached_second = r.usage.cached_tokens;
    llm_reply_free(&r);
    return 0;
}

static const char *question = "I moved to a new city last month and I would like to meet people who like hiking.";

/* f32 by default, f16 with ALOE_KV_TYPE=f16: half the bytes per position
 * kept, the same greedy reply. */
static void test_kv_type_env(void) {
    env_reset();
    Err e;
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    NEED(dir);
    free(dir);
    LlmBackend *b = open_qwen2(&e);
    CHECK_OK(b == NULL, &e);
    Twice f32;
    CHECK_OK(ask_twice(b, question, 8, &f32, &e), &e);
    llm_free(b);
    CHECK_EQ_INT(f32.st.entries, 1);
    CHECK_MSG(f32.st.bytes > 0 && f32.st.bytes % (QWEN2_KV_ELEMS_PER_POS * 4) == 0, "%zu bytes", f32.st.bytes);
    size_t positions = f32.st.bytes / (QWEN2_KV_ELEMS_PER_POS * 4);
    /* the prompt and the reply's tokens written after it (8 at most) */
    CHECK_MSG((long)positions <= f32.prompt_tokens + 8 && (long)positions >= f32.prompt_tokens - 1,
              "%zu positions kept for a %ld-token prompt", positions, f32.prompt_tokens);

    setenv("ALOE_KV_TYPE", "f16", 1);
    b = open_qwen2(&e);
    env_reset();
    CHECK_OK(b == NULL, &e);
    Twice f16;
    CHECK_OK(ask_twice(b, question, 8, &f16, &e), &e);
    llm_free(b);
    CHECK_EQ_INT(f16.st.entries, 1);
    /* the same positions, 2 bytes each instead of 4 */
    CHECK_MSG(f16.st.bytes * 2 == f32.st.bytes, "f16 cache %zu bytes, f32 %zu", f16.st.bytes, f32.st.bytes);
    CHECK_EQ_STR(f16.text, f32.text);
    CHECK(f16.cached_second > 0);

    /* "f32" explicitly is the default */
    setenv("ALOE_KV_TYPE", "f32", 1);
    b = open_qwen2(&e);
    env_reset();
    CHECK_OK(b == NULL, &e);
    Twice again;
    CHECK_OK(ask_twice(b, question, 8, &again, &e), &e);
    llm_free(b);
    CHECK_EQ_INT(again.st.bytes, f32.st.bytes);
    free(f32.text), free(f16.text), free(again.text);
}

static void test_kv_type_env_invalid(void) {
    env_reset();
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    NEED(dir);
    free(dir);
    const char *bad[] = {"bf16", "F16", "q8_0", "16", NULL};
    for (int i = 0; bad[i]; i++) {
        setenv("ALOE_KV_TYPE", bad[i], 1);
        Err e;
        LlmBackend *b = open_qwen2(&e);
        env_reset();
        if (b) llm_free(b);
        CHECK_MSG(!b, "ALOE_KV_TYPE=%s accepted", bad[i]);
        CHECK_EQ_INT(e.code, ERR_ARG);
        CHECK_MSG(strstr(e.msg, "ALOE_KV_TYPE") && strstr(e.msg, bad[i]) && strstr(e.msg, "f16"),
                  "message: %s", e.msg);
    }
}

/* Default on: the repeated prompt is taken from the cache. 0: off. */
static void test_prefix_cache_off(void) {
    env_reset();
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    NEED(dir);
    free(dir);
    Err e;
    LlmBackend *b = open_qwen2(&e);
    CHECK_OK(b == NULL, &e);
    Twice on;
    CHECK_OK(ask_twice(b, question, 4, &on, &e), &e);
    llm_free(b);
    CHECK_EQ_INT(on.cached_first, 0);
    /* all but the last position (whose logits the reply needs) come from the cache */
    CHECK_MSG(on.cached_second >= on.prompt_tokens - 1 && on.cached_second < on.prompt_tokens,
              "%ld of %ld cached", on.cached_second, on.prompt_tokens);

    setenv("ALOE_PREFIX_CACHE", "0", 1);
    b = open_qwen2(&e);
    env_reset();
    CHECK_OK(b == NULL, &e);
    Twice off;
    CHECK_OK(ask_twice(b, question, 4, &off, &e), &e);
    llm_free(b);
    CHECK_EQ_INT(off.cached_second, 0);
    CHECK_EQ_INT(off.st.entries, 0);
    CHECK_EQ_INT(off.st.bytes, 0);
    CHECK_EQ_STR(off.text, on.text);
    free(on.text), free(off.text);
}

/* ALOE_PREFIX_CACHE=1: one MiB. At 512 bytes a position (f32) a prompt of
 * more than 2048 tokens does not fit and is not kept; in half floats (256
 * bytes a position, up to 4096) the same prompt is. */
static void test_prefix_cache_budget(void) {
    env_reset();
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    NEED(dir);
    free(dir);
    StrBuf q;
    sb_init(&q);
    for (int i = 0; i < 350; i++) sb_printf(&q, "hiking trip %d, ", i); /* ~8 tokens an item */
    Err e;
    setenv("ALOE_CTX", "8192", 1);
    setenv("ALOE_PREFIX_CACHE", "1", 1);
    LlmBackend *b = open_qwen2(&e);
    CHECK_OK(b == NULL, &e);
    Twice f32;
    int rc = ask_twice(b, q.s, 1, &f32, &e);
    llm_free(b);
    if (rc) env_reset();
    CHECK_OK(rc, &e);
    CHECK_MSG(f32.prompt_tokens > 2100 && f32.prompt_tokens < 4000, "%ld prompt tokens", f32.prompt_tokens);
    CHECK_EQ_INT(f32.st.entries, 0);
    CHECK_EQ_INT(f32.cached_second, 0);

    setenv("ALOE_KV_TYPE", "f16", 1);
    b = open_qwen2(&e);
    CHECK_OK(b == NULL, &e);
    Twice f16;
    rc = ask_twice(b, q.s, 1, &f16, &e);
    llm_free(b);
    env_reset();
    CHECK_OK(rc, &e);
    CHECK_EQ_INT(f16.st.entries, 1);
    CHECK(f16.st.bytes <= (size_t)1 << 20);
    CHECK(f16.cached_second >= f16.prompt_tokens - 1);
    sb_free(&q);
    free(f32.text), free(f16.text);
}

static void test_prefix_cache_invalid(void) {
    env_reset();
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    NEED(dir);
    free(dir);
    const char *bad[] = {"-1", "lots", "1.5", "64MiB", NULL};
    for (int i = 0; bad[i]; i++) {
        setenv("ALOE_PREFIX_CACHE", bad[i], 1);
        Err e;
        LlmBackend *b = open_qwen2(&e);
        env_reset();
        if (b) llm_free(b);
        CHECK_MSG(!b, "ALOE_PREFIX_CACHE=%s accepted", bad[i]);
        CHECK_EQ_INT(e.code, ERR_ARG);
        CHECK_MSG(strstr(e.msg, "ALOE_PREFIX_CACHE") && strstr(e.msg, bad[i]), "message: %s", e.msg);
    }
}

/* ---- the command line ---- */

static int aloe_out(const char *env_args, char **out) {
    char *dir = test_tmpdir(), *o = path_join(dir, "out");
    int rc = test_system("env %s >'%s' 2>&1 </dev/null", env_args, o);
    *out = test_read_text(o);
    test_system("rm -rf '%s'", dir);
    free(o), free(dir);
    return rc;
}

static const char *json_line(const char *out) {
    const char *j = strrchr(out, '{');
    while (j && j > out && j[-1] != '\n') j = memrchr(out, '{', (size_t)(j - out));
    return j;
}

/* `aloe speed` reports the KV cache's type and size: $ALOE_KV_TYPE is the
 * default of --kv-type, the flag wins. */
static void test_speed_kv_type(void) {
    char *m = test_shared_path("fixtures/gguf/tiny-qwen2-f32.gguf");
    NEED(m);
    char *bin = test_build_path("aloe");
    const struct {
        const char *env, *flag, *want;
    } cases[] = {{"", "", "f32"},
                 {"ALOE_KV_TYPE=f16", "", "f16"},
                 {"ALOE_KV_TYPE=f16", "--kv-type f32", "f32"},
                 {"", "--kv-type f16", "f16"}};
    long bytes[4] = {0};
    for (int i = 0; i < 4; i++) {
        char *args = xasprintf("-u ALOE_KV_TYPE %s %s speed --model %s -p 4 -n 2 -t 1 --json %s", cases[i].env, bin,
                               m, cases[i].flag),
             *out;
        int rc = aloe_out(args, &out);
        free(args);
        CHECK_MSG(rc == 0, "case %d: exit %d: %s", i, rc, out);
        const char *line = json_line(out);
        json_t *j = line ? json_loads(line, 0, NULL) : NULL;
        CHECK_MSG(j, "no JSON line: %s", out);
        CHECK_EQ_STR(json_string_value(json_object_get(j, "kv_type")), cases[i].want);
        bytes[i] = (long)json_integer_value(json_object_get(j, "kv_cache_bytes"));
        json_decref(j);
        free(out);
    }
    CHECK_MSG(bytes[0] > 0 && bytes[1] * 2 == bytes[0] && bytes[2] == bytes[0] && bytes[3] == bytes[1],
              "kv_cache_bytes %ld %ld %ld %ld", bytes[0], bytes[1], bytes[2], bytes[3]);
    free(bin);
    free(m);
}

/* `aloe complete`: --kv-type f16 and $ALOE_KV_TYPE=f16 give the f32 greedy
 * ids on the fixture (README: same greedy ids); bad values exit 2 naming the
 * flag or the variable. */
static void test_complete_kv_type(void) {
    char *m = test_shared_path("fixtures/models/tiny-qwen2");
    NEED(m);
    char *bin = test_build_path("aloe");
    const char *base = "--prompt-ids 1025,82,287,40,99 --max-tokens 8 --print-ids -t 1";
    char *outs[3];
    const char *how[3] = {"", "--kv-type f16", ""};
    const char *env[3] = {"", "", "ALOE_KV_TYPE=f16"};
    for (int i = 0; i < 3; i++) {
        char *args = xasprintf("-u ALOE_KV_TYPE %s %s complete --model %s %s %s 2>/dev/null", env[i], bin, m, base,
                               how[i]);
        int rc = aloe_out(args, &outs[i]);
        free(args);
        CHECK_MSG(rc == 0, "complete %s%s: exit %d: %s", env[i], how[i], rc, outs[i]);
    }
    CHECK_EQ_STR(outs[1], outs[0]);
    CHECK_EQ_STR(outs[2], outs[0]);
    for (int i = 0; i < 3; i++) free(outs[i]);

    char *args = xasprintf("-u ALOE_KV_TYPE %s complete --model %s %s --kv-type f8", bin, m, base), *out;
    int rc = aloe_out(args, &out);
    free(args);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(out, "--kv-type") && strstr(out, "f8"), "%s", out);
    free(out);
    args = xasprintf("ALOE_KV_TYPE=half %s complete --model %s %s", bin, m, base);
    rc = aloe_out(args, &out);
    free(args);
    CHECK_EQ_INT(rc, 2);
    CHECK_MSG(strstr(out, "ALOE_KV_TYPE") && strstr(out, "half"), "%s", out);
    free(out);
    free(bin);
    free(m);
}

int main(void) {
    RUN(test_kv_type_env);
    RUN(test_kv_type_env_invalid);
    RUN(test_prefix_cache_off);
    RUN(test_prefix_cache_budget);
    RUN(test_prefix_cache_invalid);
    RUN(test_speed_kv_type);
    RUN(test_complete_kv_type);
    return test_summary();
}
