/* aloe chat through the built binary with piped stdin: one line per user
 * turn, streamed replies equal to the backend's own, multi-turn history,
 * /reset, /exit, and errors. */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "llm/fake_server.h"
#include "llm/local.h"
#include "test.h"

/* Runs `printf INPUT | aloe chat ARGS` with stdout to a file; returns the
 * exit status and the output (caller frees). */
static int chat(const char *input, const char *args, char **out) {
    char *aloe = test_build_path("aloe");
    char *dir = test_tmpdir();
    char *in = path_join(dir, "in.txt"), *outp = path_join(dir, "out.txt"), *errp = path_join(dir, "err.txt");
    Err e;
    file_write_atomic(in, input, strlen(input), &e);
    /* stderr (prompts, notes, errors) is not part of the output compared */
    int rc = test_system("%s chat %s < %s > %s 2> %s", aloe, args, in, outp, errp);
    size_t len;
    *out = NULL;
    if (file_read_all(outp, out, &len, &e)) *out = xstrdup("");
    free(aloe), free(dir), free(in), free(outp), free(errp);
    return rc;
}

/* The greedy reply of the backend itself to msgs. */
static char *backend_reply(const char *model, const LlmMessage *msgs, int n, int max_tokens) {
    Err e;
    LocalOptions o = {.quiet = 1};
    LlmBackend *b = llm_local_open(model, &o, &e);
    if (!b) return NULL;
    LlmParams p = llm_params_default();
    p.temperature = 0;
    p.max_tokens = max_tokens;
    LlmReply r = {0};
    char *text = llm_chat(b, msgs, n, &p, &r, &e) ? NULL : xstrdup(r.text);
    llm_reply_free(&r);
    llm_free(b);
    return text;
}

static void test_piped_turns(void) {
    NEED_SHARED(model, "fixtures/models/tiny-qwen2");
    char args[1024];
    snprintf(args, sizeof args, "--model %s --temperature 0 --max-tokens 12 --system 'Be kind.'", model);
    /* one turn: the streamed text is the backend's reply */
    LlmMessage m[4] = {{"system", "Be kind."}, {"user", "hello there"}, {"assistant", NULL}, {"user", "and you?"}};
    char *first = backend_reply(model, m, 2, 12);
    CHECK(first != NULL);
    char *out = NULL;
    CHECK_EQ_INT(chat("hello there\n", args, &out), 0);
    char *want = xasprintf("%s\n", first);
    CHECK_EQ_STR(out, want);
    free(out), free(want);
    /* two turns: the second reply sees the first exchange */
    m[2].content = first;
    char *second = backend_reply(model, m, 4, 12);
    CHECK(second != NULL);
    CHECK_EQ_INT(chat("hello there\nand you?\n", args, &out), 0);
    want = xasprintf("%s\n%s\n", first, second);
    CHECK_EQ_STR(out, want);
    free(out), free(want);
    /* blank lines are no turns: the same two replies */
    CHECK_EQ_INT(chat("\nhello there\n  \n\nand you?\n\n", args, &out), 0);
    want = xasprintf("%s\n%s\n", first, second);
    CHECK_EQ_STR(out, want);
    free(out), free(want);
    /* /reset forgets the first exchange (the system prompt stays); /exit ends */
    char *fresh = backend_reply(model, (LlmMessage[]){{"system", "Be kind."}, {"user", "and you?"}}, 2, 12);
    CHECK(fresh != NULL);
    CHECK_EQ_INT(chat("hello there\n/reset\nand you?\n/exit\nnever read\n", args, &out), 0);
    want = xasprintf("%s\n%s\n", first, fresh);
    CHECK_EQ_STR(out, want);
    free(out), free(want);
    free(first), free(second), free(fresh), free(model);
}

static void test_errors(void) {
    NEED_SHARED(model, "fixtures/gguf/tiny-llama3-f32.gguf");
    char args[1024];
    char *out = NULL;
    /* a GGUF without a template needs one by name */
    snprintf(args, sizeof args, "--model %s --max-tokens 4", model);
    CHECK_EQ_INT(chat("hi\n", args, &out), 1);
    free(out);
    snprintf(args, sizeof args, "--model %s --max-tokens 4 --chat-template no-such", model);
    CHECK_EQ_INT(chat("hi\n", args, &out), 2);
    free(out);
    snprintf(args, sizeof args, "--model %s --max-tokens 4 --chat-template llama3.1 --temperature 0", model);
    CHECK_EQ_INT(chat("hi\n", args, &out), 0);
    CHECK(out && strlen(out) > 0 && out[strlen(out) - 1] == '\n');
    free(out);
    CHECK_EQ_INT(chat("hi\n", "--model ./no/such/dir", &out), 1);
    free(out);
    free(model);
}

/* A model name goes to an OpenAI-compatible endpoint: the reply is printed
 * whole, one request per turn. */
static void test_endpoint_model(void) {
    FakeServer fs;
    NEED_STARTED(fake_start(&fs, "{\"*\": {\"reply\": \"echo: {last_user}\"}}", 0) == 0, "fake_openai");
    char args[512], *out = NULL;
    snprintf(args, sizeof args, "--model some-model --base-url %s", fs.url);
    int rc = chat("first\nsecond\n", args, &out);
    long seen = fake_log_count(&fs, "some-model");
    fake_stop(&fs);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(out, "echo: first\necho: second\n");
    CHECK_EQ_INT(seen, 2);
    free(out);
}

int main(void) {
    RUN(test_piped_turns);
    RUN(test_errors);
    RUN(test_endpoint_model);
    return test_summary();
}
