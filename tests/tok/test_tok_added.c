/* Added tokens' lstrip / rstrip (issue 11.10).
 *
 * Where the expected ids come from:
 *  - GGUF Phi-3: llama.cpp's ids for "<|user|>\nHello<|end|>\n<|assistant|>\n"
 *    are [1, 32010, 15043, 32007, 32001] (given in the issue, from
 *    llama.cpp). llama.cpp stores no strip flags in GGUF: its vocabulary
 *    loader sets RSTRIP on every special token of a model whose general.name
 *    contains "phi-3"/"phi3", except <unk>, <s> and <|endoftext|>, and then
 *    strips C isspace() characters after such a token. The other cases are
 *    built from that rule: the stripped fragment vanishes, and the text that
 *    follows is tokenised as its own fragment (which SentencePiece prefixes
 *    with "▁") -- so their expected ids are concatenations of the special
 *    ids and of encodings of plain text, which llama.cpp's own vectors check
 *    (test_tok_llamacpp).
 *  - tokenizer.json: the tokenizers library's documented semantics: an
 *    lstrip token also takes the whitespace on its left, an rstrip token the
 *    whitespace on its right, whitespace being char::is_whitespace (Unicode
 *    White_Space), never reaching into a previous token. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "test.h"
#include "tok/spm_tokenizer_json.h"
#include "tok/tok.h"

#define PHI3 "tokenizer-data/llama.cpp-vocab/ggml-vocab-phi-3.gguf"

typedef struct {
    int32_t v[256];
    int n;
} Ids;

static void ids_add(Ids *x, const int32_t *v, int n) {
    for (int i = 0; i < n && x->n < 256; i++) x->v[x->n++] = v[i];
}
static void ids_one(Ids *x, int id) { ids_add(x, &id, 1); }
/* The plain-text encoding of s (no special tokens): a fragment after a
 * special token, as SentencePiece tokenises it. */
static void ids_text(Ids *x, const Tokenizer *t, const char *s) {
    int32_t *v;
    int n;
    Err e;
    if (tok_encode(t, s, 0, 0, &v, &n, &e)) {
        /* the expected ids would miss this fragment: say why */
        test_fail(__FILE__, __LINE__, "encoding \"%s\": %s", s, e.msg);
        return;
    }
    ids_add(x, v, n);
    free(v);
}

static int ids_equal(const Tokenizer *t, const char *text, int add_special, const Ids *want) {
    int32_t *v;
    int n;
    Err e;
    if (tok_encode(t, text, add_special, 1, &v, &n, &e)) {
        printf("    %s\n", e.msg);
        return 0;
    }
    int ok = n == want->n && !memcmp(v, want->v, (size_t)n * sizeof *v);
    if (!ok) {
        printf("    \"%s\":\n      got ", text);
        for (int i = 0; i < n; i++) printf("%d ", v[i]);
        printf("\n      want ");
        for (int i = 0; i < want->n; i++) printf("%d ", want->v[i]);
        printf("\n");
    }
    free(v);
    return ok;
}

/* The Phi-3 vocabulary GGUF, with general.name replaced (NULL: as is). */
static char *phi3_named(const char *name) {
    char *src = test_shared_path(PHI3);
    if (!src || !name) return src;
    Err e;
    Gguf *g = gguf_open(src, &e);
    if (!g) abort();
    GgufWriter *w = gguf_writer_new();
    for (int i = 0; i < gguf_n_kv(g); i++) gguf_set_kv(w, gguf_kv(g, i));
    gguf_set_str(w, "general.name", name);
    char *dir = test_tmpdir(), *out = path_join(dir, "vocab.gguf");
    if (gguf_writer_write(w, out, &e)) abort();
    gguf_writer_free(w);
    gguf_close(g);
    free(src), free(dir);
    return out;
}

static void test_phi3_gguf_rstrip(void) {
    char *path = phi3_named(NULL);
    if (!path) SKIP("shared tokenizer data not found (set ALOE_SHARED)");
    Err e;
    Tokenizer *t = tok_load_gguf(path, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    /* llama.cpp's ids (issue 11.10); before the fix aloe gave
     * [1,32010,29871,13,10994,32007,29871,13,32001,29871,13] */
    Ids want = {{1, 32010, 15043, 32007, 32001}, 5};
    CHECK(ids_equal(t, "<|user|>\nHello<|end|>\n<|assistant|>\n", 1, &want));
    /* a system turn and two user turns, as Phi-3.5's template renders them */
    Ids w2 = {{1, 32006}, 2};
    ids_text(&w2, t, "You are a helpful assistant.");
    ids_one(&w2, 32007), ids_one(&w2, 32010);
    ids_text(&w2, t, "Hi there");
    ids_one(&w2, 32007), ids_one(&w2, 32001);
    ids_text(&w2, t, "Hello! How can I help?");
    ids_one(&w2, 32007), ids_one(&w2, 32010);
    ids_text(&w2, t, "Tell me a joke.");
    ids_one(&w2, 32007), ids_one(&w2, 32001);
    CHECK(ids_equal(t,
                    "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n"
                    "Hello! How can I help?<|end|>\n<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n",
                    1, &w2));
    /* every kind of isspace() is taken, spaces and tabs included */
    Ids w3 = {{32010}, 1};
    ids_text(&w3, t, "x");
    CHECK(ids_equal(t, "<|user|> \t\r\n\v\f x", 0, &w3));
    /* ...but not a no-break space (llama.cpp strips what isspace() says) */
    Ids w4 = {{32010}, 1};
    ids_text(&w4, t, "\xc2\xa0x");
    CHECK(ids_equal(t, "<|user|>\xc2\xa0x", 0, &w4));
    /* <|endoftext|>, <s> and <unk> keep the whitespace after them */
    Ids w5 = {{32000}, 1};
    ids_text(&w5, t, "\nHi");
    CHECK(ids_equal(t, "<|endoftext|>\nHi", 0, &w5));
    Ids w6 = {{1}, 1};
    ids_text(&w6, t, " Hi");
    CHECK(ids_equal(t, "<s> Hi", 0, &w6));
    /* </s> (user-defined: matched without parse_special) strips */
    Ids w7 = {{2}, 1};
    ids_text(&w7, t, "Hi");
    CHECK(ids_equal(t, "</s>\n\nHi", 0, &w7));
    /* unknown-type tokens ([PAD32011]) are special text too, and strip */
    Ids w9 = {{32011}, 1};
    ids_text(&w9, t, "x");
    CHECK(ids_equal(t, "[PAD32011]\n x", 0, &w9));
    /* no lstrip: the whitespace before a token stays with the text */
    Ids w8 = {{0}, 0};
    ids_text(&w8, t, "Hi\n");
    ids_one(&w8, 32007);
    CHECK(ids_equal(t, "Hi\n<|end|>", 0, &w8));
    tok_free(t);
    free(path);
}

/* The rule is keyed on the name, as llama.cpp keys it: the same vocabulary
 * under another name keeps its whitespace (what aloe did for Phi-3 before). */
static void test_other_names_keep_whitespace(void) {
    char *path = phi3_named("Some Other Model");
    if (!path) SKIP("shared tokenizer data not found (set ALOE_SHARED)");
    Err e;
    Tokenizer *t = tok_load_gguf(path, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    Ids want = {{1, 32010, 29871, 13, 10994, 32007, 29871, 13, 32001, 29871, 13}, 11};
    CHECK(ids_equal(t, "<|user|>\nHello<|end|>\n<|assistant|>\n", 1, &want));
    tok_free(t);
    free(path);
    /* "microsoft/Phi-3.5-mini-instruct": any case, either spelling */
    path = phi3_named("microsoft/PHI-3.5-mini-instruct");
    t = tok_load_gguf(path, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    Ids w2 = {{1, 32010, 15043, 32007, 32001}, 5};
    CHECK(ids_equal(t, "<|user|>\nHello<|end|>\n<|assistant|>\n", 1, &w2));
    tok_free(t);
    free(path);
}

/* The same vocabulary as a SentencePiece-style tokenizer.json whose added
 * tokens carry Phi-3's flags (rstrip on the chat tokens and </s>, not on
 * <unk>, <s>, <|endoftext|>): the tokenizer.json path agrees with
 * llama.cpp's ids. */
static void test_phi3_tokenizer_json_rstrip(void) {
    char *src = test_shared_path(PHI3);
    if (!src) SKIP("shared tokenizer data not found (set ALOE_SHARED)");
    Err e;
    Tokenizer *g = tok_load_gguf(src, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    json_t *root = spm_tokenizer_json(g, 0), *added = json_object_get(root, "added_tokens"), *a;
    size_t i;
    json_array_foreach(added, i, a) {
        const char *c = json_string_value(json_object_get(a, "content"));
        int keep = !strcmp(c, "<unk>") || !strcmp(c, "<s>") || !strcmp(c, "<|endoftext|>");
        json_object_set_new(a, "rstrip", json_boolean(!keep));
    }
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b}", "id", 2, "content", "</s>", "special", 0,
                                           "lstrip", 0, "rstrip", 1, "normalized", 0));
    char *dir = test_tmpdir(), *path = path_join(dir, "tokenizer.json");
    CHECK(json_dump_file(root, path, JSON_COMPACT) == 0);
    json_decref(root);
    Tokenizer *t = tok_load_hf(path, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    Ids want = {{32010, 15043, 32007, 32001}, 4}; /* no post-processor: no BOS */
    CHECK(ids_equal(t, "<|user|>\nHello<|end|>\n<|assistant|>\n", 0, &want));
    Ids w2 = {{32000}, 1};
    ids_text(&w2, t, "\nHi");
    CHECK(ids_equal(t, "<|endoftext|>\nHi", 0, &w2));
    tok_free(t);
    tok_free(g);
    free(path), free(dir), free(src);
}

/* tokenizer.json strips Unicode whitespace (char::is_whitespace): NBSP,
 * EM SPACE, IDEOGRAPHIC SPACE, NEL. A byte-level vocabulary in which those
 * bytes are tokens, so that an unstripped space would show. */
static void test_unicode_whitespace_json(void) {
    /* byte-level chars: 0xC2 'Â' U+00C2, 0xA0 'ł' U+0142, 0xE2 'â' U+00E2,
     * 0x80 'Ģ' U+0122, 0x83 'ĥ' U+0125, 0xE3 'ã' U+00E3, 0x85 'ħ' U+0127 */
    char *p = test_write_file(
        "tokenizer.json",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\\u00c2\": 2, \"\\u0142\": 3, \"\\u00e2\": 4,"
        " \"\\u0122\": 5, \"\\u0125\": 6, \"\\u00e3\": 7, \"\\u0127\": 8, \"\\u0120\": 9}, \"merges\": []},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
        " \"added_tokens\": ["
        "  {\"id\": 10, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true, \"special\": true, \"normalized\": false},"
        "  {\"id\": 11, \"content\": \"<n>\", \"lstrip\": false, \"rstrip\": false, \"special\": true, \"normalized\": false}]}");
    Err e;
    Tokenizer *t = tok_load_hf(p, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    /* NBSP before, EM SPACE (E2 80 83) and IDEOGRAPHIC SPACE (E3 80 80) after */
    Ids w1 = {{0, 10, 1}, 3};
    CHECK(ids_equal(t, "a\xc2\xa0<m>\xe2\x80\x83\xe3\x80\x80" "b", 0, &w1));
    /* NEL (C2 85) and ASCII mixed, on both sides */
    Ids w2 = {{0, 10, 1}, 3};
    CHECK(ids_equal(t, "a \xc2\x85\t<m>\xc2\x85 b", 0, &w2));
    /* not into the token before: <n><m> with a space between strips it */
    Ids w3 = {{11, 10, 1}, 3};
    CHECK(ids_equal(t, "<n>\xc2\xa0<m>b", 0, &w3));
    /* a non-stripping token keeps NBSP as text */
    Ids w4 = {{0, 2, 3, 11}, 4};
    CHECK(ids_equal(t, "a\xc2\xa0<n>", 0, &w4));
    tok_free(t);
    free(p);
}

int main(void) {
    RUN(test_phi3_gguf_rstrip);
    RUN(test_other_names_keep_whitespace);
    RUN(test_phi3_tokenizer_json_rstrip);
    RUN(test_unicode_whitespace_json);
    return test_summary();
}
