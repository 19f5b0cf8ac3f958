/* The opener (model/open.h): a model spec -> model + tokenizer + chat
 * template + generation defaults, each part only when asked for, and
 * clear errors for a missing path, an endpoint spec and a GGUF without a
 * template. (hf:// specs: tests/llm/test_local.c and
 * tests/train/test_train_hub.c, against the fake hub.) */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "model/open.h"
#include "test.h"

static void test_directory(void) {
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    Err e;
    ModelBundle b;
    ModelOpenOptions o = {.weights = 1, .tokenizer = 1, .n_threads = 1};
    CHECK_OK(model_open(dir, &o, &b, &e), &e);
    CHECK(b.model && b.tok && b.tpl);
    CHECK_EQ_STR(b.path, dir);
    CHECK_EQ_INT(b.model->cfg.vocab_size > 0, 1);
    model_bundle_free(&b);
    /* only the tokenizer (training loads its own weights) */
    ModelOpenOptions t = {.tokenizer = 1};
    char *spec = xasprintf("local:%s", dir);
    CHECK_OK(model_open(spec, &t, &b, &e), &e);
    free(spec);
    CHECK(!b.model && b.tok && b.tpl);
    CHECK_EQ_STR(b.path, dir); /* local: is stripped */
    model_bundle_free(&b);
    free(dir);
}

/* A GGUF without tokenizer.chat_template: the tokenizer alone opens it; a
 * template must be named, with weights (the map is the model's) or
 * without (the file is opened for the key). */
static void test_gguf_template(void) {
    char *gguf = test_shared_path("fixtures/gguf/tiny-qwen2-f32.gguf");
    if (!gguf) SKIP("fixtures not found (set ALOE_SHARED)");
    Err e;
    ModelBundle b;
    for (int weights = 0; weights <= 1; weights++) {
        ModelOpenOptions o = {.weights = weights, .tokenizer = 1, .n_threads = 1};
        CHECK(model_open(gguf, &o, &b, &e) == -1);
        CHECK_MSG(strstr(e.msg, "tokenizer.chat_template") && strstr(e.msg, "--chat-template"), "%s", e.msg);
        CHECK(b.path == NULL && b.model == NULL); /* nothing left open */
        o.chat_template = "qwen2.5";
        CHECK_OK(model_open(gguf, &o, &b, &e), &e);
        CHECK(b.tok && b.tpl && (b.model != NULL) == weights);
        CHECK_EQ_INT(b.gen.top_k, 50); /* transformers' defaults: a GGUF has no generation_config.json */
        model_bundle_free(&b);
    }
    free(gguf);
}

static void test_errors(void) {
    Err e;
    ModelBundle b;
    ModelOpenOptions o = {.tokenizer = 1};
    char *tmp = test_tmpdir(), *missing = path_join(tmp, "nowhere");
    CHECK(model_open(missing, &o, &b, &e) == -1);
    CHECK_MSG(strstr(e.msg, "does not exist") && strstr(e.msg, missing), "%s", e.msg);
    CHECK(model_open("openai:gpt-4o-mini", &o, &b, &e) == -1);
    CHECK_MSG(strstr(e.msg, "endpoint"), "%s", e.msg);
    char *path = NULL;
    CHECK(model_spec_resolve("hf://", 1, &path, &e) == -1 && path == NULL);
    free(missing), free(tmp);
}

int main(void) {
    RUN(test_directory);
    RUN(test_gguf_template);
    RUN(test_errors);
    return test_summary();
}
