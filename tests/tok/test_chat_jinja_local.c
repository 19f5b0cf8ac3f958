/* A model directory whose template no built-in family matches is served by
 * the local engine through the Jinja interpreter: a copy of the tiny Qwen2
 * fixture with Mistral-7B-Instruct-v0.1's [INST] template (refused before
 * templates were interpreted) in tokenizer_config.json's list form, and one
 * in chat_template.jinja that raises on a system message. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "llm/open.h"
#include "test.h"
#include "tok/chat_template.h"

static const char MISTRAL_V01[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' "
    "+ message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

/* A temporary model directory: the fixture's files linked, and
 * tokenizer_config.json replaced by cfg (and chat_template.jinja by jinja,
 * when given). */
static char *model_dir(const char *fixture, const char *cfg, const char *jinja) {
    char *dir = test_tmpdir();
    static const char *const FILES[] = {"config.json", "model.safetensors", "tokenizer.json",
                                        "generation_config.json", NULL};
    for (int i = 0; FILES[i]; i++) {
        char *src = path_join(fixture, FILES[i]), *dst = path_join(dir, FILES[i]);
        if (file_exists(src) && symlink(src, dst)) fprintf(stderr, "symlink %s failed\n", dst);
        free(src);
        free(dst);
    }
    char *p = path_join(dir, "tokenizer_config.json");
    test_put_text(p, cfg);
    free(p);
    if (jinja) {
        p = path_join(dir, "chat_template.jinja");
        test_put_text(p, jinja);
        free(p);
    }
    return dir;
}

static void test_local_engine_interprets_template(void) {
    NEED_SHARED(fixture, "fixtures/models/tiny-qwen2");
    json_t *cfg = json_pack("{s:s,s:s,s:[{s:s,s:s},{s:s,s:s}]}", "bos_token", "<|endoftext|>",
                            "eos_token", "<|im_end|>", "chat_template", "name", "tool_use",
                            "template", "unused", "name", "default", "template", MISTRAL_V01);
    char *cfg_text = json_dumps(cfg, 0);
    json_decref(cfg);
    char *dir = model_dir(fixture, cfg_text, NULL);
    free(cfg_text);

    Err e;
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_STR(chat_template_name(t), "jinja");
    ChatMsg m[] = {{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    char *out;
    CHECK_OK(chat_template_render(t, m, 3, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<|endoftext|>[INST] Hi [/INST]Hello<|im_end|>[INST] Bye [/INST]");
    free(out);
    chat_template_free(t);

    LlmRoleConfig rc = {.role = "test", .model = dir};
    LlmBackend *b = llm_open(&rc, NULL, &e);
    CHECK_MSG(b != NULL, "%s", e.msg);
    LlmParams p = llm_params_default();
    p.temperature = 0;
    p.max_tokens = 4;
    LlmMessage msgs[] = {{"user", "Hello there"}};
    LlmReply r = {0};
    CHECK_OK(llm_chat(b, msgs, 1, &p, &r, &e), &e);
    /* "<|endoftext|>[INST] Hello there [/INST]": more tokens than the bare text */
    CHECK(r.usage.prompt_tokens >= 6);
    llm_reply_free(&r);
    /* the template's own raise_exception reaches the caller */
    LlmMessage sys[] = {{"system", "Be brief."}, {"user", "Hello there"}};
    CHECK(llm_chat(b, sys, 2, &p, &r, &e) != 0);
    CHECK_MSG(strstr(e.msg, "Conversation roles must alternate") != NULL, "%s", e.msg);
    llm_reply_free(&r);
    llm_free(b);
    free(dir);
    free(fixture);
}

/* chat_template.jinja beside tokenizer_config.json wins over its
 * chat_template; a syntax error names the template line. */
static void test_jinja_file_wins_and_errors_name_the_line(void) {
    NEED_SHARED(fixture, "fixtures/models/tiny-qwen2");
    char *dir = model_dir(fixture, "{\"eos_token\": \"</s>\", \"chat_template\": \"{{ 'config' }}\"}",
                          "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}");
    Err e;
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    ChatMsg m[] = {{"tool", "42"}}; /* any role the template renders */
    char *out;
    CHECK_OK(chat_template_render(t, m, 1, 1, NULL, &out, &e), &e);
    CHECK_EQ_STR(out, "<tool>42</s>");
    free(out);
    CHECK_EQ_STR(chat_template_stop_strings(t)[0], "</s>");
    chat_template_free(t);
    free(dir);

    dir = model_dir(fixture, "{}", "line 1\n{% for m in messages %}\n{{ m.content + }}{% endfor %}");
    CHECK(chat_template_open_hf(dir, NULL, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "template line 3") != NULL && strstr(e.msg, dir) != NULL, "%s", e.msg);
    free(dir);
    free(fixture);
}

int main(void) {
    RUN(test_local_engine_interprets_template);
    RUN(test_jinja_file_wins_and_errors_name_the_line);
    return test_summary();
}
