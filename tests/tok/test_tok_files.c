/* Hostile or broken tokenizer files (issues 11.5, 11.11, 17.5): each is
 * refused with a message that names the file and the field (and, in
 * tokenizer.json's strings, the line and column), and tokenizer.json's
 * string escapes -- \uXXXX, surrogate pairs, the short escapes -- decode
 * as JSON defines them in vocabulary keys, merges and added tokens. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "test.h"
#include "tok/chat_template.h"
#include "tok/tok.h"

#define CHECK_HAS(msg, s) CHECK_MSG(strstr((msg), (s)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (s))

static Tokenizer *load_json(const char *json, Err *e) { return tok_load_hf_mem(json, strlen(json), "t.json", e); }

/* ---- escapes ---- */

static void test_escapes_in_vocab_merges_and_added(void) {
    /* keys: é (2 bytes), € (3), 😀 as a surrogate pair (4), the short
     * escapes; a merge written with escapes in both forms; added tokens
     * whose content is escaped */
    const char *json =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {"
        "\"\\u00e9\": 0, \"\\u20AC\": 1, \"\\ud83d\\ude00\": 2, \"\\\"\\\\\\/\": 3, \"\\b\\f\\n\\r\\t\": 4,"
        " \"a\": 5, \"\\u00e9a\": 6, \"\\u20aca\": 7},"
        " \"merges\": [\"\\u00e9 a\", [\"\\u20ac\", \"\\u0061\"]]},"
        " \"added_tokens\": [{\"id\": 8, \"content\": \"<\\u00e9\\ud83d\\ude00>\", \"special\": true},"
        "                    {\"id\": 9, \"content\": \"\\u005bX]\", \"special\": false}]}";
    Err e;
    Tokenizer *t = load_json(json, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_INT(tok_find(t, "\xc3\xa9"), 0);
    CHECK_EQ_INT(tok_find(t, "\xe2\x82\xac"), 1);
    CHECK_EQ_INT(tok_find(t, "\xf0\x9f\x98\x80"), 2);
    CHECK_EQ_INT(tok_find(t, "\"\\/"), 3);
    CHECK_EQ_INT(tok_find(t, "\b\f\n\r\t"), 4);
    CHECK_EQ_INT(tok_find(t, "<\xc3\xa9\xf0\x9f\x98\x80>"), 8);
    CHECK_EQ_INT(tok_find(t, "[X]"), 9);
    tok_free(t);
}

/* Each bad escape: the message names the file, line and column of its
 * backslash (column counted in bytes from 1) and what was expected. */
static void test_bad_escapes_name_their_position(void) {
    static const struct {
        const char *key; /* the vocab key's source text, inside the quotes */
        int col;         /* column of the offending backslash */
        const char *what;
    } cases[] = {
        {"x\\ud83d", 29, "expected a low surrogate escape after the high surrogate"},
        {"x\\ud83dy", 29, "expected a low surrogate escape after the high surrogate"},
        {"x\\ud83d\\u0041", 35, "expected a low surrogate (\\uDC00-\\uDFFF) after a high surrogate"},
        {"x\\ud83d\\ud83d", 35, "expected a low surrogate (\\uDC00-\\uDFFF) after a high surrogate"},
        {"\\ude00", 28, "expected no lone low surrogate"},
        {"ab\\u12G4", 30, "expected 4 hex digits after \\u"},
        {"\\u12", 28, "expected 4 hex digits after \\u"},
        {"\\x41", 28, "expected a valid escape"},
        {"\\u0000", 28, "expected no NUL character (\\u0000) in a token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256], want[160];
        /* the key starts at column 28 of line 2 */
        snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\",\n  \"merges\": [], \"vocab\": {\"%s\": 0}}}",
                 cases[i].key);
        Err e;
        Tokenizer *t = load_json(json, &e);
        CHECK_MSG(t == NULL, "case %s: accepted", cases[i].key);
        snprintf(want, sizeof want, "t.json:2: %s", cases[i].what);
        CHECK_MSG(strstr(e.msg, want), "case %s: \"%s\" lacks \"%s\"", cases[i].key, e.msg, want);
        snprintf(want, sizeof want, "(column %d)", cases[i].col);
        CHECK_MSG(strstr(e.msg, want), "case %s: \"%s\" lacks \"%s\"", cases[i].key, e.msg, want);
    }
    /* the same in a merge */
    Err e;
    CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a \\udc00\"]}}", &e) == NULL);
    CHECK_HAS(e.msg, "t.json:1: expected no lone low surrogate");
    CHECK_HAS(e.msg, "(column 60)");
}

/* The scanner's other refusals: each names the line and what it wanted. */
static void test_scanner_errors(void) {
    char deep[400];
    int k = snprintf(deep, sizeof deep, "{\"x\": ");
    for (int i = 0; i < 70; i++) deep[k++] = '[';
    for (int i = 0; i < 70; i++) deep[k++] = ']';
    snprintf(deep + k, sizeof deep - k, ", \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}");
    const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"model\": {\"vocab\": {\"a\": 1.5}}}", "t.json:1: expected an integer (column 27)"},
        {"{\"model\": {\"vocab\": {\"a\": 123456789012345}}}", "t.json:1: expected an integer of sensible size"},
        {"{\"model\": {\"vocab\": {\"a\": -1}}}", "t.json:1: expected a token id between 0 and 4000000"},
        {"{\"model\": {\"vocab\": {\"a\tb\": 0}}}", "t.json:1: expected no control character inside a string"},
        {"{\"model\": {\"vocab\": {\"ab", "t.json:1: expected the end of a string"},
        {"{\"model\": {\"vocab\": {}, \"merges\": [\"ab\"]}}", "t.json:1: expected a merge of the form \"left right\""},
        {"{\"model\": {\"vocab\": {}}, \"model\": {}}", "t.json:1: expected one \"model\" section, not two"},
        {"{\"model\": {\"vocab\": {}}} x", "t.json:1: expected the end of the file after the top-level object"},
        {"{\"x\": \"unterminated", "t.json:1: expected the end of a string"},
        {"{\"x\": }", "t.json:1: expected a value"},
        {deep, "t.json:1: expected nesting under 64 levels"},
        {"{\"x\": 1}", "t.json: no \"model\" section"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Err e;
        Tokenizer *t = load_json(cases[i].json, &e);
        CHECK_MSG(t == NULL, "case %zu accepted", i);
        CHECK_MSG(strstr(e.msg, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
    }
}

/* ---- model sections ---- */

static void test_merges_errors_name_the_file(void) {
    Err e;
    /* before: `merge 0 ("Ġ a"): left part is not in the vocabulary` */
    CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"\\u0120 a\"]}}", &e) ==
          NULL);
    CHECK_HAS(e.msg, "t.json: model.merges: merge 0 (\"\xc4\xa0 a\"): left part \"\xc4\xa0\" is not in the vocabulary");
    CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", &e) == NULL);
    CHECK_HAS(e.msg, "t.json: model.merges is missing (a BPE model needs its list of merges)");
    /* GGUF: the same through tok_new */
    GgufWriter *w = gguf_writer_new();
    const char *toks[] = {"a", "b", "ab"}, *merges[] = {"x b"};
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    char *dir = test_tmpdir(), *path = path_join(dir, "v.gguf");
    CHECK_OK(gguf_writer_write(w, path, &e), &e);
    gguf_writer_free(w);
    CHECK(tok_load_gguf(path, &e) == NULL);
    char want[512];
    snprintf(want, sizeof want, "%s: tokenizer.ggml.merges: merge 0 (\"x b\"): left part \"x\" is not in the vocabulary",
             path);
    CHECK_HAS(e.msg, want);
    free(path), free(dir);
}

static void test_decoders(void) {
    static const char *const bad[] = {
        "{\"type\": \"CTC\"}",
        "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"ByteFallback\"}, {\"type\": \"Frobnicate\"}]}",
        "{\"type\": \"BPEDecoder\", \"suffix\": \"</w>\"}",
    };
    static const char *const want[] = {"t.json: decoder type \"CTC\" is not supported",
                                       "t.json: decoder type \"Frobnicate\" is not supported",
                                       "t.json: decoder type \"BPEDecoder\" is not supported"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": %s}", bad[i]);
        Err e;
        CHECK_MSG(load_json(json, &e) == NULL, "decoder %s accepted", bad[i]);
        CHECK_HAS(e.msg, want[i]);
    }
    Err e;
    CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": 5}", &e) == NULL);
    CHECK_HAS(e.msg, "t.json: decoder: expected an object with a string \"type\"");
    /* the SentencePiece-style sequence transformers writes loads */
    Tokenizer *t = load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": "
                             "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
                             "\"\\u2581\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, "
                             "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]}}",
                             &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    tok_free(t);
}

static void test_empty_split_pattern(void) {
    Err e;
    CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\"}, "
                    "\"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}}",
                    &e) == NULL);
    CHECK_HAS(e.msg, "t.json: pre_tokenizer Split: pattern.Regex is empty");
    CHECK(load_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                    "{\"type\": \"Split\", \"pattern\": {\"String\": \"\"}, \"behavior\": \"Isolated\"}}",
                    &e) == NULL);
    CHECK_HAS(e.msg, "t.json: pre_tokenizer Split: pattern.String is empty");
}

/* A WordPiece model whose vocab is empty but whose added tokens give it
 * ids: it loaded, and every prompt became empty ("sequence 0: empty
 * prompt" far away from the cause). */
static void test_empty_wordpiece_vocab(void) {
    const char *json = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"unk_token\": \"[UNK]\"},"
                       " \"added_tokens\": [{\"id\": 0, \"content\": \"[CLS]\", \"special\": true},"
                       "                    {\"id\": 1, \"content\": \"[SEP]\", \"special\": true}]}";
    Err e;
    CHECK(load_json(json, &e) == NULL);
    CHECK_HAS(e.msg, "t.json: model.vocab is empty (a WordPiece model needs its vocabulary)");
    char *p = test_write_file("tokenizer.json", json), *aloe = test_build_path("aloe");
    int rc = test_system("%s tokenize -m %s hello >/dev/null 2>%s.err", aloe, p, p);
    CHECK_EQ_INT(rc, 1);
    char *err = NULL, *errp;
    size_t len;
    CHECK(asprintf(&errp, "%s.err", p) > 0);
    CHECK_OK(file_read_all(errp, &err, &len, &e), &e);
    CHECK_HAS(err, "tokenizer.json: model.vocab is empty");
    free(err), free(errp), free(aloe), free(p);
}

/* ---- chat templates ---- */

static void test_chat_template_with_nul(void) {
    char *dir = test_tmpdir(), *path = path_join(dir, "chat_template.jinja");
    static const char tpl[] = "\0{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}";
    Err e;
    CHECK_OK(file_write_atomic(path, tpl, sizeof tpl - 1, &e), &e);
    char want[512];
    snprintf(want, sizeof want, "%s: a NUL byte at offset 0 (a chat template must be text)", path);
    /* before: "empty chat template text" */
    CHECK(chat_template_open_hf(dir, NULL, &e) == NULL);
    CHECK_HAS(e.msg, want);
    char *text;
    CHECK(hf_chat_template_load(dir, NULL, &text, &e) == -1);
    CHECK_HAS(e.msg, want);
    /* one further in */
    static const char tpl2[] = "{{ bos_token }}\0rest";
    CHECK_OK(file_write_atomic(path, tpl2, sizeof tpl2 - 1, &e), &e);
    CHECK(chat_template_open_hf(dir, NULL, &e) == NULL);
    CHECK_HAS(e.msg, "chat_template.jinja: a NUL byte at offset 15");
    free(path), free(dir);
}

int main(void) {
    RUN(test_escapes_in_vocab_merges_and_added);
    RUN(test_bad_escapes_name_their_position);
    RUN(test_scanner_errors);
    RUN(test_merges_errors_name_the_file);
    RUN(test_decoders);
    RUN(test_empty_split_pattern);
    RUN(test_empty_wordpiece_vocab);
    RUN(test_chat_template_with_nul);
    return test_summary();
}
