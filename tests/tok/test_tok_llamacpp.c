/* llama.cpp's tokenizer test vectors (tokenizer-data/llama.cpp-vocab):
 * *.inp holds strings separated by "\n__ggml_vocab_test__\n", *.out one line
 * of expected ids per string, no special tokens added or parsed. gpt-2,
 * llama-spm, phi-3 and bert-bge come from their vocab-only GGUFs; qwen2 and
 * llama-bpe from the real tokenizer.json files. Every string must match
 * exactly, and where the tokenizer is lossless decode must give it back. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "test.h"
#include "tok/spm_tokenizer_json.h"
#include "tok/tok.h"

static const char SEP[] = "\n__ggml_vocab_test__\n";

/* Checks one vector set; returns failures, printing each. With
 * skip_leading_space, strings that start with a space are left out. */
static int run_vectors_skip(Tokenizer *t, const char *inp, const char *outp, int lossless, int skip_leading_space,
                            int *n_cases) {
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
        if (skip_leading_space && p[0] == ' ') {
            p = next + strlen(SEP);
            line = eol + 1;
            continue;
        }
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

static int run_vectors(Tokenizer *t, const char *inp, const char *outp, int lossless, int *n_cases) {
    return run_vectors_skip(t, inp, outp, lossless, 0, n_cases);
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

/* SentencePiece-style tokenizer.json (Llama 2 / Mistral v0.1 layout): no
 * such file is in the shared data, so one is made from the llama-spm GGUF
 * the way transformers' converter does it (merges of every token that splits
 * into two tokens, ordered by the merged token's score, then by the parts'
 * ids), in both of the layouts the hub uses, and must reproduce llama.cpp's
 * vectors. */
static char *write_spm_json(const Tokenizer *g, int metaspace) {
    json_t *root = spm_tokenizer_json(g, metaspace);
    char *dir = test_tmpdir();
    char *path = path_join(dir, "tokenizer.json");
    json_dump_file(root, path, 0);
    json_decref(root);
    free(dir);
    return path;
}

static void spm_json(int metaspace) {
    char *inp = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf.inp");
    char *outp = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf.out");
    char *gguf = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    if (!inp || !outp || !gguf) SKIP("shared tokenizer-data not found (set ALOE_SHARED)");
    Err e;
    Tokenizer *g = tok_load_gguf(gguf, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    char *json = write_spm_json(g, metaspace);
    Tokenizer *t = tok_load_hf(json, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    /* Metaspace (prepend_scheme "first") adds no "▁" to a text that already
     * starts with a space, unlike SentencePiece: those strings differ by
     * design and are left out for that layout */
    int n = 0, fails = run_vectors_skip(t, inp, outp, 1, metaspace, &n);
    printf("  llama.cpp vectors llama-spm via tokenizer.json (%s): %d/%d pass%s\n",
           metaspace ? "Metaspace" : "Prepend+Replace", n - fails, n,
           metaspace ? " (strings starting with a space left out)" : "");
    CHECK_EQ_INT(fails, 0);
    CHECK(n >= (metaspace ? 25 : 40));
    tok_free(t);
    tok_free(g);
    free(json);
    free(inp);
    free(outp);
    free(gguf);
}

static void test_spm_json_legacy(void) { spm_json(0); }
static void test_spm_json_metaspace(void) { spm_json(1); }

int main(void) {
    RUN(test_gpt2);
    RUN(test_llama_spm);
    RUN(test_phi3);
    RUN(test_bert_bge);
    RUN(test_qwen2);
    RUN(test_llama_bpe);
    RUN(test_spm_json_legacy);
    RUN(test_spm_json_metaspace);
    return test_summary();
}
