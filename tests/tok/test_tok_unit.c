/* Tokenizer behaviour that needs no reference ids: the plain constructor,
 * streaming decode, byte-level round trips of arbitrary bytes, errors for
 * bad files, and the tokenize command. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "tok/tok.h"
#include "test.h"

/* A SentencePiece vocabulary small enough to reason about by hand. */
static Tokenizer *tiny_spm(Err *e) {
    static const char *text[256 + 8];
    static char bytes[256][8];
    float score[256 + 8];
    int32_t type[256 + 8];
    const char *words[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "ab", "\u2581ab"};
    const float sc[] = {0, 0, 0, -1, -2, -2, -1.5f, -0.5f};
    const int ty[] = {TOK_TYPE_UNKNOWN, TOK_TYPE_CONTROL, TOK_TYPE_CONTROL, 1, 1, 1, 1, 1};
    for (int i = 0; i < 8; i++) text[i] = words[i], score[i] = sc[i], type[i] = ty[i];
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        text[8 + b] = bytes[b];
        score[8 + b] = 0;
        type[8 + b] = TOK_TYPE_BYTE;
    }
    TokVocab v = {TOK_SPM, 264, text, score, type, 0, NULL};
    Tokenizer *t = tok_new(&v, e);
    if (t) tok_set_specials(t, 1, 2, 0, -1, 1, 0);
    return t;
}

static void test_spm_from_arrays(void) {
    Err e;
    Tokenizer *t = tiny_spm(&e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    int32_t *ids;
    int n;
    /* "▁ab" (score -0.5) beats "ab" + "▁"; "c" is not a token: byte fallback */
    CHECK_OK(tok_encode(t, "ab c", 1, 0, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 7);
    CHECK_EQ_INT(ids[2], 3);
    CHECK_EQ_INT(ids[3], 8 + 'c');
    char *d = tok_decode(t, ids, n, 1, &e);
    CHECK_EQ_STR(d, "ab c");
    free(d);
    free(ids);
    CHECK_EQ_INT(tok_find(t, "</s>"), 2);
    CHECK_EQ_INT(tok_find(t, "nope"), -1);
    tok_free(t);
}

static void test_bpe_from_arrays(void) {
    /* bytes "a" "b" "c" plus merges a b -> ab, ab c -> abc */
    const char *text[] = {"a", "b", "c", "ab", "abc", "\xc4\xa0"};
    const char *merges[] = {"a b", "ab c"};
    TokVocab v = {TOK_BPE, 6, text, NULL, NULL, 2, merges};
    Err e;
    Tokenizer *t = tok_new(&v, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    int32_t *ids;
    int n;
    CHECK_OK(tok_encode(t, "abcab c", 0, 0, &ids, &n, &e), &e);
    /* GPT-2 split: "abcab", " c" ; " " is Ġ (id 5) */
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ids[0], 4);
    CHECK_EQ_INT(ids[1], 3);
    CHECK_EQ_INT(ids[2], 5);
    CHECK_EQ_INT(ids[3], 2);
    free(ids);
    tok_free(t);

    const char *bad[] = {"a x"};
    TokVocab w = {TOK_BPE, 6, text, NULL, NULL, 1, bad};
    CHECK(tok_new(&w, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "merge 0") && strstr(e.msg, "not in the vocabulary"), "%s", e.msg);
}

/* A shared tokenizer fixture, or NULL with the test ended: SKIPPED when the
 * folder is absent, FAIL when it is there but does not load. */
static Tokenizer *fixture(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/%s", name);
    char *p = test_need_shared(rel);
    if (!p) return NULL;
    Err e;
    Tokenizer *t = tok_load_hf(p, &e);
    if (!t) test_fail(__FILE__, __LINE__, "%s does not load: %s", p, e.msg);
    free(p);
    return t;
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (int j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void test_stream_never_splits_utf8(void) {
    Tokenizer *t = fixture("llama3");
    if (!t) return; /* fixture() said SKIPPED or FAIL */
    const char *text = "émoji 🤗🎉 café 中文测试 naïve";
    int32_t *ids;
    int n;
    Err e;
    CHECK_OK(tok_encode(t, text, 0, 0, &ids, &n, &e), &e);
    TokStream s;
    tok_stream_init(&s, t, 1);
    StrBuf all, piece;
    sb_init(&all);
    sb_init(&piece);
    int held = 0;
    for (int i = 0; i < n; i++) {
        sb_clear(&piece);
        CHECK_OK(tok_stream_push(&s, ids[i], &piece, &e), &e);
        CHECK_MSG(valid_utf8(piece.s, piece.len), "chunk %d is not valid UTF-8", i);
        held += s.npend > 0;
        sb_appendn(&all, piece.s, piece.len);
    }
    tok_stream_flush(&s, &all);
    CHECK_EQ_STR(all.s, text);
    CHECK(held > 0); /* the emoji are split across byte tokens in this small vocabulary */
    /* a lone lead byte then end of stream: replaced, not emitted broken */
    int lead = -1;
    for (int id = 0; id < tok_vocab_size(t) && lead < 0; id++) {
        int len;
        const char *b = tok_token_bytes(t, id, &len);
        if (len == 1 && (unsigned char)b[0] == 0xF0) lead = id;
    }
    CHECK(lead >= 0);
    sb_clear(&all);
    tok_stream_init(&s, t, 1);
    CHECK_OK(tok_stream_push(&s, lead, &all, &e), &e);
    CHECK_EQ_INT(all.len, 0);
    int32_t a = ids[0];
    CHECK_OK(tok_stream_push(&s, a, &all, &e), &e); /* "é...": not a continuation */
    CHECK(valid_utf8(all.s, all.len));
    CHECK(!strncmp(all.s, "\xef\xbf\xbd", 3));
    CHECK(tok_stream_push(&s, 99999, &all, &e) == -1);
    sb_free(&all);
    sb_free(&piece);
    free(ids);
    tok_free(t);
}

static void test_bytes_round_trip(void) {
    Tokenizer *t = fixture("llama3"); /* no normaliser: every byte string is lossless */
    if (!t) return; /* fixture() said SKIPPED or FAIL */
    Rng r;
    rng_seed(&r, 42);
    char buf[200];
    Err e;
    for (int k = 0; k < 300; k++) {
        size_t n = rng_u64(&r) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            uint64_t x = rng_u64(&r);
            /* mostly text-like, sometimes any byte (invalid UTF-8 included) */
            buf[i] = x % 4 ? " aé\n\t1x<|>"[x % 11] : (char)((x >> 8) % 255 + 1);
        }
        int32_t *ids;
        int m;
        CHECK_OK(tok_encode_n(t, buf, n, 0, 0, &ids, &m, &e), &e);
        char *d = tok_decode(t, ids, m, 0, &e);
        CHECK(d != NULL);
        CHECK_MSG(strlen(d) == n && !memcmp(d, buf, n), "round trip %d failed", k);
        free(d);
        free(ids);
    }
    tok_free(t);
}

static void test_bad_files(void) {
    Err e;
    char *p = test_write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0,\n \"b\" 1}}}");
    CHECK(tok_load_hf(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "tokenizer.json:3: expected ':'"), "%s", e.msg);
    free(p);
    p = test_write_file("tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": {\"a\": 0}}}");
    CHECK(tok_load_hf(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "\"Unigram\" is not supported"), "%s", e.msg);
    free(p);
    p = test_write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]},"
                                    "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    CHECK(tok_load_hf(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "merged token is not in the vocabulary"), "%s", e.msg);
    free(p);
    p = test_write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                                    "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}");
    CHECK(tok_load_hf(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "regex"), "%s", e.msg);
    free(p);
    p = test_write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 99999}, \"merges\": []}}");
    CHECK(tok_load_hf(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "without large gaps"), "%s", e.msg);
    free(p);
    CHECK(tok_load("/nonexistent/model", &e) == NULL);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    p = test_write_file("x.gguf", "GGUF not really");
    CHECK(tok_load(p, &e) == NULL);
    free(p);

    Tokenizer *t = fixture("chatml");
    if (!t) return; /* fixture() said SKIPPED or FAIL */
    int32_t bad = 5000;
    CHECK(tok_decode(t, &bad, 1, 0, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "5000"), "%s", e.msg);
    tok_free(t);
}

/* lstrip / rstrip added tokens take the whitespace beside them, as in the
 * tokenizers library (RoBERTa's <mask> is lstrip). */
static void test_added_token_strip_flags(void) {
    char *p = test_write_file("tokenizer.json",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"\u0120\": 1, \"b\": 2}, \"merges\": []},"
                        " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
                        " \"added_tokens\": ["
                        "  {\"id\": 3, \"content\": \"<mask>\", \"lstrip\": true, \"rstrip\": false, \"special\": true, \"normalized\": false},"
                        "  {\"id\": 4, \"content\": \"<r>\", \"lstrip\": false, \"rstrip\": true, \"special\": false, \"normalized\": false}]}");
    Err e;
    Tokenizer *t = tok_load_hf(p, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    int32_t *ids;
    int n;
    CHECK_OK(tok_encode(t, "a  <mask> b", 0, 1, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ids[0], 0);
    CHECK_EQ_INT(ids[1], 3);
    CHECK_EQ_INT(ids[2], 1);
    CHECK_EQ_INT(ids[3], 2);
    free(ids);
    /* <r> is not special: matched even without parse_special */
    CHECK_OK(tok_encode(t, "a<r>  b", 0, 0, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(ids[0], 0);
    CHECK_EQ_INT(ids[1], 4);
    CHECK_EQ_INT(ids[2], 2);
    free(ids);
    tok_free(t);
    free(p);
}

/* SentencePiece-style tokenizer.json, both layouts (tests/data/tok seeds):
 * byte fallback, "▁" handling, and the one place they differ: Metaspace
 * "first" adds no "▁" before a text that starts with a space. */
static void test_spm_style_json(void) {
    Err e;
    Tokenizer *a = tok_load_hf("tests/data/tok/fuzz-seeds/spm-small.json", &e);
    CHECK_MSG(a != NULL, "%s", e.msg);
    Tokenizer *b = tok_load_hf("tests/data/tok/fuzz-seeds/metaspace-small.json", &e);
    CHECK_MSG(b != NULL, "%s", e.msg);
    int32_t *ids;
    int n;
    CHECK_OK(tok_encode(a, "ab abc \xc3\xa9z", 1, 0, &ids, &n, &e), &e);
    int want[] = {1, 265, 265, 262, 267, 3 + 'z'};
    CHECK_EQ_INT(n, 6);
    for (int i = 0; i < n; i++) CHECK_EQ_INT(ids[i], want[i]);
    char *d = tok_decode(a, ids, n, 1, &e);
    CHECK_EQ_STR(d, "ab abc \xc3\xa9z");
    free(d);
    free(ids);
    CHECK_OK(tok_encode(a, " ab", 0, 0, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ids[0], 259);
    CHECK_EQ_INT(ids[1], 265);
    d = tok_decode(a, ids, n, 1, &e);
    CHECK_EQ_STR(d, " ab");
    free(d);
    free(ids);
    CHECK_OK(tok_encode(b, " ab", 0, 0, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ids[0], 265);
    free(ids);
    tok_free(a);
    tok_free(b);
}

static char *run(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    StrBuf b;
    sb_init(&b);
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) sb_appendn(&b, buf, k);
    int rc = pclose(f);
    if (rc != 0) sb_printf(&b, "[exit %d]", rc);
    return sb_take(&b);
}

static void test_tokenize_command(void) {
    NEED_SHARED(model, "fixtures/tokenizers/chatml");
    char *aloe = test_build_path("aloe");
    char *in = test_write_file("in.jsonl", "\"Hello world\"\n\"<|im_end|>\"\n\"caf\\u00e9\"\n");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --jsonl %s", aloe, model, in);
    char *out = run(cmd);
    Err e;
    Tokenizer *t = tok_load_hf(model, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    /* expected lines from the library itself: */
    const char *texts[] = {"Hello world", "<|im_end|>", "café"};
    StrBuf want;
    sb_init(&want);
    for (int i = 0; i < 3; i++) {
        int32_t *ids;
        int n;
        CHECK_OK(tok_encode(t, texts[i], 0, 0, &ids, &n, &e), &e);
        sb_appendc(&want, '[');
        for (int k = 0; k < n; k++) sb_printf(&want, "%s%d", k ? ", " : "", ids[k]);
        sb_append(&want, "]\n");
        free(ids);
    }
    CHECK_EQ_STR(out, want.s);
    CHECK(!strncmp(out, "[265, 893, 821]\n", 16)); /* fixtures/tokenizers/chatml expected ids */
    free(out);
    snprintf(cmd, sizeof cmd, "printf '\"Hello world\"\\n' | %s tokenize --model %s --jsonl -", aloe, model);
    out = run(cmd);
    CHECK_EQ_STR(out, "[265, 893, 821]\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --special '<|im_end|>'", aloe, model);
    out = run(cmd);
    CHECK_EQ_STR(out, "[1026]\n");
    free(out);
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s 2>&1", aloe, model);
    out = run(cmd);
    CHECK_MSG(strstr(out, "give either a TEXT") && strstr(out, "[exit"), "%s", out);
    free(out);
    /* Bad files fail naming the line; output line N answers input line N, so
     * a blank line or two values on a line are errors too. */
    static const char *const bad[][3] = {
        {"bad.jsonl", "\"ok\"\n{\"x\": 1}\n", "bad.jsonl:2: expected a JSON string"},
        {"gap.jsonl", "\"a\"\n\n\"b\"\n", "gap.jsonl:2: blank line"},
        {"two.jsonl", "\"a\" \"b\"\n", "two.jsonl:1: expected one JSON string per line"},
    };
    for (int i = 0; i < 3; i++) {
        char *f = test_write_file(bad[i][0], bad[i][1]);
        snprintf(cmd, sizeof cmd, "%s tokenize --model %s --jsonl %s 2>&1", aloe, model, f);
        out = run(cmd);
        CHECK_MSG(strstr(out, bad[i][2]) && strstr(out, "[exit"), "%s", out);
        free(out), free(f);
    }
    sb_free(&want);
    tok_free(t);
    free(in);
    free(aloe);
    free(model);
}

int main(void) {
    RUN(test_spm_from_arrays);
    RUN(test_bpe_from_arrays);
    RUN(test_stream_never_splits_utf8);
    RUN(test_bytes_round_trip);
    RUN(test_bad_files);
    RUN(test_added_token_strip_flags);
    RUN(test_spm_style_json);
    RUN(test_tokenize_command);
    return test_summary();
}
