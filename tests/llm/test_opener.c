/* llm_opener: roles naming the same local model share one loaded copy;
 * another template or model loads its own. */
#include <stdlib.h>
#include <string.h>

#include "llm/local.h"
#include "llm/open.h"
#include "test.h"

static void test_same_local_model_is_loaded_once(void) {
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    char *other = test_shared_path("fixtures/models/tiny-llama3");
    if (!dir || !other) SKIP("shared fixtures not found (set ALOE_SHARED)");
    LlmOpener op;
    llm_opener_init(&op, NULL);
    Err e;
    LlmRoleConfig a = {.role = "model", .model = dir, .max_retries = -1};
    LlmRoleConfig b = {.role = "judge", .model = dir, .max_retries = -1};
    LlmRoleConfig c = {.role = "user", .model = dir, .max_retries = -1, .chat_template = "chatml"};
    LlmRoleConfig d = {.role = "user", .model = other, .max_retries = -1};
    LlmBackend *ba = llm_opener_open(&op, &a, &e);
    CHECK_MSG(ba != NULL, "%s", e.msg);
    LlmBackend *bb = llm_opener_open(&op, &b, &e);
    LlmBackend *bc = llm_opener_open(&op, &c, &e);
    LlmBackend *bd = llm_opener_open(&op, &d, &e);
    CHECK(bb && bc && bd);
    llm_opener_done(&op);
    CHECK(llm_is_local(ba) && llm_is_local(bb));
    CHECK(ba != bb && ba->impl == bb->impl); /* one model, two roles */
    CHECK(bc->impl != ba->impl);             /* another template: its own */
    CHECK(bd->impl != ba->impl);
    /* The shared model survives the first role being freed. */
    llm_free(ba);
    LlmMessage m = {"user", "hello"};
    LlmParams p = llm_params_default();
    p.temperature = 0;
    p.max_tokens = 4;
    LlmReply r = {0};
    CHECK_OK(llm_chat(bb, &m, 1, &p, &r, &e), &e);
    CHECK(r.usage.completion_tokens > 0);
    llm_reply_free(&r);
    llm_free(bb);
    llm_free(bc);
    llm_free(bd);
    free(dir);
    free(other);
}

/* An endpoint model applies its own template: an override is refused, not ignored. */
static void test_template_on_endpoint_model_is_an_error(void) {
    LlmRoleConfig c = {.role = "judge", .model = "gpt-4o-mini", .base_url = "http://127.0.0.1:9/v1",
                       .max_retries = -1, .chat_template = "chatml"};
    Err e = {0};
    LlmBackend *b = llm_open(&c, NULL, &e);
    CHECK(b == NULL);
    CHECK_MSG(strstr(e.msg, "judge") && strstr(e.msg, "local models only"), "%s", e.msg);
    llm_free(b);
}

int main(void) {
    RUN(test_same_local_model_is_loaded_once);
    RUN(test_template_on_endpoint_model_is_an_error);
    return test_summary();
}
