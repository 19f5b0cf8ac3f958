/* llama.cpp's tokenizer test vectors (tokenizer-data/llama.cpp-vocab):
 * *.inp holds strings separated by "\n__ggml_vocab_test__\n", *.out one line
 * of expected ids per string, no special tokens added or parsed. gpt-2,
 * llama-spm, phi-3 and bert-bge come from their vocab-only GGUFs; qwen2 and
 * llama-bpe from the real tokenizer.json files. Every string must match
 * exactly, and where the tokenizer is lossless decode must give it back. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "tok/tok.h"
#include "test.h"

static const char SEP[] = "\n__ggml_vocab_test__\n";

/* Checks one vector set; returns failures, printing each. */
static int run_vectors(Tokenizer *t, const char *inp, const char *outp, int lossless, int *n_cases) {
    char *in, *out;
    size_t lin, lout;
    Err e;
    if (file_read_all(inp, &in, &lin, &e) || file_read_all(outp, &out, &lout, &e)) {
        printf("  %s\n", e.msg);
        return 1;
    }
    int fails = 0;
    char *p = in, *line = out;
    for (;;) {
        char *next = strstr(p, SEP);
        if (!next) break;
        *next = 0;
        char *eol = strchr(line, '\n');
        if (!eol) {
            printf("  %s: fewer lines than strings\n", outp);
            fails++;
            break;
        }
        *eol = 0;
        (*n_cases)++;
        int32_t *ids;
        int n;
        if (tok_encode(t, p, 0, 0, &ids, &n, &e)) {
            printf("  \"%s\": %s\n", p, e.msg);
            fails++;
        } else {
            StrBuf got;
            sb_init(&got);
            for (int i = 0; i < n; i++) sb_printf(&got, " %d", ids[i]);
            /* the .out lines are " id id ..." (a space before each id) */
            if (strcmp(got.s, line)) {
                printf("  \"%s\":\n    got \"%s\"\n    want \"%s\"\n", p, got.s, line);
                fails++;
            } else if (lossless) {
                char *d = tok_decode(t, ids, n, 0, &e);
                if (!d || strcmp(d, p)) {
                    printf("  \"%s\": decodes to \"%s\"\n", p, d ? d : e.msg);
                    fails++;
                }
                free(d);
            }
            sb_free(&got);
            free(ids);
        }
        p = next + strlen(SEP);
        line = eol + 1;
    }
    free(in);
    free(out);
    return fails;
}

static void vectors(const char *name, const char *model_rel, int lossless) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer-data/llama.cpp-vocab/ggml-vocab-%s.gguf.inp", name);
    char *inp = test_shared_path(rel);
    char *model = test_shared_path(model_rel);
    if (!inp || !model) SKIP("shared tokenizer-data not found (set ALOE_SHARED)");
    snprintf(rel, sizeof rel, "tokenizer-data/llama.cpp-vocab/ggml-vocab-%s.gguf.out", name);
    char *outp = test_shared_path(rel);
    Err e;
    Tokenizer *t = tok_load(model, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    int n = 0, fails = run_vectors(t, inp, outp, lossless, &n);
    printf("  llama.cpp vectors %s: %d/%d pass\n", name, n - fails, n);
    CHECK_EQ_INT(fails, 0);
    CHECK(n >= 40);
    tok_free(t);
    free(inp);
    free(outp);
    free(model);
}

static void test_gpt2(void) { vectors("gpt-2", "tokenizer-data/llama.cpp-vocab/ggml-vocab-gpt-2.gguf", 1); }
static void test_llama_spm(void) { vectors("llama-spm", "tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", 1); }
static void test_phi3(void) { vectors("phi-3", "tokenizer-data/llama.cpp-vocab/ggml-vocab-phi-3.gguf", 1); }
/* WordPiece lowercases and drops accents and spaces: not lossless */
static void test_bert_bge(void) { vectors("bert-bge", "tokenizer-data/llama.cpp-vocab/ggml-vocab-bert-bge.gguf", 0); }
static void test_qwen2(void) { vectors("qwen2", "tokenizer-data/qwen3", 1); }
static void test_llama_bpe(void) { vectors("llama-bpe", "tokenizer-data/llama3", 1); }

int main(void) {
    RUN(test_gpt2);
    RUN(test_llama_spm);
    RUN(test_phi3);
    RUN(test_bert_bge);
    RUN(test_qwen2);
    RUN(test_llama_bpe);
    return test_summary();
}
