/* Byte-level BPE and WordPiece from tokenizer.json against the ids the
 * reference tokenizers library produced (fixtures/tokenizers,
 * fixtures/realvocab, models/tiny-bert-st): exact ids, with and without
 * special tokens, and decode(encode(x)) == x. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok/tok_check.h"
#include "tok/tok.h"
#include "test.h"

/* Runs every case of cases[]; returns the number of failures (printed). */
static int run_cases(Tokenizer *t, const json_t *cases, const char *name, int *n_cases) {
    int fails = 0;
    size_t i;
    json_t *c;
    char msg[2048];
    json_array_foreach(cases, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        Err e;
        int32_t *ids;
        int n;
        (*n_cases)++;
        /* the reference library always matches special-token text */
        if (tok_encode(t, text, 0, 1, &ids, &n, &e)) {
            printf("  %s case %zu: %s\n", name, i, e.msg);
            fails++;
            continue;
        }
        if (!ids_equal(ids, n, json_object_get(c, "ids"), text, msg, sizeof msg)) {
            printf("  %s case %zu ids: %s\n", name, i, msg);
            fails++;
        }
        const char *want_dec = json_string_value(json_object_get(c, "decoded"));
        char *dec = tok_decode(t, ids, n, 0, &e);
        if (want_dec && (!dec || strcmp(dec, want_dec))) {
            printf("  %s case %zu decode: \"%s\" != \"%s\"\n", name, i, dec ? dec : e.msg, want_dec);
            fails++;
        }
        free(dec);
        free(ids);
        json_t *ws = json_object_get(c, "ids_with_special");
        if (ws) {
            if (tok_encode(t, text, 1, 1, &ids, &n, &e)) {
                fails++;
                continue;
            }
            if (!ids_equal(ids, n, ws, text, msg, sizeof msg)) {
                printf("  %s case %zu ids_with_special: %s\n", name, i, msg);
                fails++;
            }
            free(ids);
        }
    }
    return fails;
}

/* Rendered chat texts (special-token text parsed, nothing added) against
 * their reference ids; entries the generator could not render ("error")
 * are counted as skipped. Returns failures. */
static int run_chats(Tokenizer *t, const json_t *chats, const char *name) {
    int fails = 0, n = 0, skipped = 0;
    size_t i;
    json_t *c;
    char msg[2048];
    json_array_foreach(chats, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "ids");
        if (!text || !want) {
            skipped++;
            continue;
        }
        n++;
        Err e;
        int32_t *ids;
        int k;
        if (tok_encode(t, text, 0, 1, &ids, &k, &e)) {
            fails++;
            continue;
        }
        if (!ids_equal(ids, k, want, text, msg, sizeof msg)) {
            printf("  %s chat %zu: %s\n", name, i, msg);
            fails++;
        }
        free(ids);
    }
    printf("  %s chats: %d/%d pass (%d without reference ids)\n", name, n - fails, n, skipped);
    return fails;
}

static json_t *load_json(const char *rel, char **path_out) {
    char *p = test_shared_path(rel);
    if (!p) return NULL;
    json_t *j = json_load_file(p, 0, NULL);
    if (path_out) *path_out = p;
    else free(p);
    return j;
}

static void fixture(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/tokenizers/%s/expected.json", name);
    json_t *x = load_json(rel, NULL);
    if (!x) SKIP("shared fixtures/tokenizers not found (set ALOE_SHARED)");
    snprintf(rel, sizeof rel, "fixtures/tokenizers/%s", name);
    char *dir = test_shared_path(rel);
    Err e;
    Tokenizer *t = tok_load_hf(dir, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    int n = 0, fails = run_cases(t, json_object_get(x, "cases"), name, &n);
    printf("  fixtures/tokenizers/%s: %d/%d cases pass\n", name, n - fails, n);
    fails += run_chats(t, json_object_get(x, "chats"), name);
    CHECK_EQ_INT(fails, 0);
    CHECK(n > 0);
    tok_free(t);
    free(dir);
    json_decref(x);
}

static void test_fixture_chatml(void) { fixture("chatml"); }
static void test_fixture_llama3(void) { fixture("llama3"); }

static void test_fixture_specials(void) {
    char *dir = test_shared_path("fixtures/tokenizers/chatml");
    if (!dir) SKIP("shared fixtures not found");
    Err e;
    Tokenizer *t = tok_load_hf(dir, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_INT(tok_find(t, "<|im_end|>"), 1026);
    CHECK(tok_is_eot(t, 1026));
    int32_t *ids;
    int n;
    CHECK_OK(tok_encode(t, "<|im_start|>user", 0, 1, &ids, &n, &e), &e);
    CHECK(n >= 2);
    CHECK_EQ_INT(ids[0], 1025);
    free(ids);
    /* without parse_special the marker is plain text */
    CHECK_OK(tok_encode(t, "<|im_start|>user", 0, 0, &ids, &n, &e), &e);
    CHECK(n > 2);
    for (int i = 0; i < n; i++) CHECK(ids[i] < 1024);
    char *d = tok_decode(t, ids, n, 0, &e);
    CHECK_EQ_STR(d, "<|im_start|>user");
    free(d);
    free(ids);
    tok_free(t);
    free(dir);
}

/* Hub tokenizer_config.json files hold model_max_length
 * 1000000000000000019884624838656, beyond int64: the file must still be
 * read, so eos is the configured <|eot_id|>, not a guess. */
static void test_config_with_huge_integer(void) {
    char *dir = test_shared_path("fixtures/models/tiny-llama3");
    if (!dir) SKIP("shared fixtures not found");
    Err e;
    Tokenizer *t = tok_load_hf(dir, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    CHECK_EQ_INT(tok_eos(t), tok_find(t, "<|eot_id|>"));
    CHECK(tok_eos(t) >= 0);
    tok_free(t);
    free(dir);
}

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void realvocab(const char *name) {
    json_t *x = load_json("fixtures/realvocab/expected.json", NULL);
    if (!x) SKIP("shared fixtures/realvocab not found (set ALOE_SHARED)");
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-data/%s", name);
    char *dir = test_shared_path(rel);
    if (!dir) SKIP("shared tokenizer-data/%s not found", name);
    Err e;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    Tokenizer *t = tok_load_hf(dir, &e);
    double wall = now(CLOCK_MONOTONIC) - w0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    CHECK_MSG(t != NULL, "%s", e.msg);
    printf("  %s tokenizer.json loaded in %.3f s wall, %.3f s CPU (%d tokens)\n", name, wall, cpu,
           tok_vocab_size(t));
    int n = 0, fails = run_cases(t, json_object_get(json_object_get(x, name), "cases"), name, &n);
    printf("  realvocab/%s: %d/%d cases pass\n", name, n - fails, n);
    fails += run_chats(t, json_object_get(json_object_get(x, name), "chats"), name);
    CHECK_EQ_INT(fails, 0);
    CHECK(n > 0);
    tok_free(t);
    free(dir);
    json_decref(x);
}

static void test_realvocab_qwen3(void) { realvocab("qwen3"); }
static void test_realvocab_llama3(void) { realvocab("llama3"); }

static void test_tiny_bert_wordpiece(void) {
    json_t *x = load_json("fixtures/models/tiny-bert-st/expected.json", NULL);
    if (!x) SKIP("shared fixtures/models/tiny-bert-st not found");
    char *dir = test_shared_path("fixtures/models/tiny-bert-st");
    Err e;
    Tokenizer *t = tok_load_hf(dir, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    json_t *sents = json_object_get(x, "sentences"), *want = json_object_get(x, "input_ids");
    CHECK(json_array_size(sents) > 0);
    char msg[2048];
    for (size_t i = 0; i < json_array_size(sents); i++) {
        const char *s = json_string_value(json_array_get(sents, i));
        int32_t *ids;
        int n;
        CHECK_OK(tok_encode(t, s, 1, 1, &ids, &n, &e), &e);
        CHECK_MSG(ids_equal(ids, n, json_array_get(want, i), s, msg, sizeof msg), "%s", msg);
        free(ids);
    }
    tok_free(t);
    free(dir);
    json_decref(x);
}

int main(void) {
    RUN(test_fixture_chatml);
    RUN(test_fixture_llama3);
    RUN(test_fixture_specials);
    RUN(test_config_with_huge_integer);
    RUN(test_realvocab_qwen3);
    RUN(test_realvocab_llama3);
    RUN(test_tiny_bert_wordpiece);
    return test_summary();
}
