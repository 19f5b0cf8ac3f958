/* libFuzzer harness for tokenizer_config.json and chat-template detection.
 * Bytes that parse as JSON are tokenizer_config.json (its special tokens
 * read by tok_load_hf, its chat_template by chat_template_open_hf and
 * hf_chat_template_load); anything else is chat_template.jinja (detected,
 * then a conversation rendered), also given straight to
 * chat_template_detect, so real configs and templates seed it as they are. A small ChatML tokenizer.json sits beside it. Any
 * input must work or fail with an error. Built and run by scripts/fuzz.sh;
 * seeds in tests/data/fuzz/tok_config. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/hfdir.h"
#include "tok/chat_template.h"
#include "tok/tok.h"

static char *dir, *tok_json, *cfg, *jinja;

static const char TOKENIZER[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\\u0120\": 3, \"\\u010a\": 4},"
    " \"merges\": [\"a b\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
    " \"decoder\": {\"type\": \"ByteLevel\"}, \"added_tokens\": ["
    " {\"id\": 5, \"content\": \"<|im_start|>\", \"special\": true},"
    " {\"id\": 6, \"content\": \"<|im_end|>\", \"special\": true, \"rstrip\": true},"
    " {\"id\": 7, \"content\": \"<|endoftext|>\", \"special\": true}]}";

static void cleanup(void) {
    unlink(tok_json), unlink(cfg), unlink(jinja), rmdir(dir);
    free(tok_json), free(cfg), free(jinja), free(dir);
}

static void setup(void) {
    if (dir) return;
    char tmpl[] = "/tmp/aloe-fuzz-tok-config-XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    dir = xstrdup(tmpl);
    tok_json = path_join(dir, "tokenizer.json");
    cfg = path_join(dir, "tokenizer_config.json");
    jinja = path_join(dir, "chat_template.jinja");
    Err e;
    if (file_write_atomic(tok_json, TOKENIZER, sizeof TOKENIZER - 1, &e)) abort();
    atexit(cleanup);
}

static void put(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
}

static void render(const ChatTemplate *t) {
    static const ChatMsg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    ChatRenderOpts o = chat_render_opts_default();
    o.date = "26 Jul 2024";
    char *out;
    Err e;
    if (!chat_template_render(t, msgs, 4, 1, &o, &out, &e)) free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    json_t *probe = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    int as_template = probe == NULL;
    json_decref(probe);
    unlink(cfg), unlink(jinja);
    if (as_template) {
        static const char c[] = "{\"bos_token\": null, \"eos_token\": \"<|im_end|>\"}";
        put(cfg, (const uint8_t *)c, sizeof c - 1);
        put(jinja, data, size);
        char *text = xstrndup((const char *)data, size);
        Err e;
        ChatTemplate *t = chat_template_detect(text, NULL, "<|im_end|>", &e);
        if (t) render(t);
        chat_template_free(t);
        free(text);
    } else {
        put(cfg, data, size);
    }
    Err e;
    Tokenizer *tok = tok_load_hf(dir, &e);
    tok_free(tok);
    ChatTemplate *t = chat_template_open_hf(dir, NULL, &e);
    if (t) render(t);
    chat_template_free(t);
    char *tpl = NULL, *bos = NULL, *eos = NULL;
    if (!hf_chat_template_load(dir, NULL, &tpl, &e)) free(tpl);
    if (!chat_template_load_hf(dir, &tpl, &bos, &eos, &e)) free(tpl), free(bos), free(eos);
    return 0;
}
