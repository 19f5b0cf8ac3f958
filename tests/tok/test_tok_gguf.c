/* GGUF tokenizers written by llama.cpp's converter from the tiny fixture
 * models must tokenize exactly as the models' own tokenizer.json does
 * (which the hf tests check against the reference library). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_check.h"
#include "tok/tok.h"
#include "test.h"

static void same_as_hf(const char *arch, const char *texts_rel) {
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/gguf/tiny-%s-f32.gguf", arch);
    char *gguf = test_shared_path(rel);
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s", arch);
    char *dir = test_shared_path(rel);
    char *texts = test_shared_path(texts_rel);
    if (!gguf || !dir || !texts) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Err e;
    Tokenizer *g = tok_load_gguf(gguf, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    Tokenizer *h = tok_load_hf(dir, &e);
    CHECK_MSG(h != NULL, "%s", e.msg);
    CHECK_EQ_INT(tok_vocab_size(g), tok_vocab_size(h));
    json_t *x = json_load_file(texts, 0, NULL);
    CHECK(x != NULL);
    int n_cases = 0;
    char msg[2048];
    /* the plain cases, and the rendered chats (special-token text parsed) */
    const char *lists[] = {"cases", "chats"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(x, lists[l]), i, c) {
            const char *text = json_string_value(json_object_get(c, "text"));
            for (int special = 0; special <= 1; special++) {
                int32_t *a, *b;
                int na, nb;
                CHECK_OK(tok_encode(h, text, special, 1, &a, &na, &e), &e);
                CHECK_OK(tok_encode(g, text, special, 1, &b, &nb, &e), &e);
                json_t *want = json_array();
                for (int k = 0; k < na; k++) json_array_append_new(want, json_integer(a[k]));
                int ok = ids_equal(b, nb, want, text, msg, sizeof msg);
                json_decref(want);
                free(a);
                free(b);
                CHECK_MSG(ok, "%s gguf vs tokenizer.json (add_special=%d): %s", arch, special, msg);
                n_cases++;
            }
        }
    }
    printf("  tiny-%s GGUF == tokenizer.json on %d encodings\n", arch, n_cases);
    CHECK(n_cases > 20);
    json_decref(x);
    tok_free(g);
    tok_free(h);
    free(gguf);
    free(dir);
    free(texts);
}

static void test_tiny_llama3(void) { same_as_hf("llama3", "fixtures/tokenizers/llama3/expected.json"); }
static void test_tiny_qwen2(void) { same_as_hf("qwen2", "fixtures/tokenizers/chatml/expected.json"); }
static void test_tiny_mistral(void) { same_as_hf("mistral", "fixtures/tokenizers/chatml/expected.json"); }

static void test_gguf_specials(void) {
    char *p = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    if (!p) SKIP("shared tokenizer-data not found");
    Err e;
    Tokenizer *t = tok_load_gguf(p, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_INT(tok_bos(t), 1);
    CHECK_EQ_INT(tok_eos(t), 2);
    CHECK_EQ_INT(tok_unk(t), 0);
    CHECK(tok_is_eot(t, 2));
    int32_t *ids;
    int n;
    CHECK_OK(tok_encode(t, "Hello world", 1, 0, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 15043);
    CHECK_EQ_INT(ids[2], 3186);
    char *d = tok_decode(t, ids, n, 1, &e);
    CHECK_EQ_STR(d, "Hello world");
    free(d);
    free(ids);
    /* "</s>" is a control token: text unless parse_special */
    CHECK_OK(tok_encode(t, "a</s>", 0, 1, &ids, &n, &e), &e);
    CHECK_EQ_INT(ids[n - 1], 2);
    free(ids);
    CHECK_OK(tok_encode(t, "a</s>", 0, 0, &ids, &n, &e), &e);
    for (int i = 0; i < n; i++) CHECK(ids[i] != 2);
    free(ids);
    tok_free(t);
    free(p);

    p = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
    t = tok_load_gguf(p, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_OK(tok_encode(t, "Hello world", 1, 0, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ids[0], 101); /* [CLS] */
    CHECK_EQ_INT(ids[3], 102); /* [SEP] */
    d = tok_decode(t, ids, n, 1, &e);
    CHECK_EQ_STR(d, "hello world");
    free(d);
    free(ids);
    tok_free(t);
    free(p);
}

int main(void) {
    RUN(test_tiny_llama3);
    RUN(test_tiny_qwen2);
    RUN(test_tiny_mistral);
    RUN(test_gguf_specials);
    return test_summary();
}
