/* A SentencePiece-style tokenizer.json (Llama 2 / Mistral 7B layout) made
 * from a GGUF SentencePiece vocabulary the way transformers' converter does:
 * a merge for every token that splits into two tokens, ordered by the merged
 * token's score, then ids; byte fallback; <unk>. None is in the shared data,
 * so the tokenizer tests (tok_hf on it) and the GGUF converter's tests
 * (back to GGUF) both build one from llama.cpp's llama-spm vocabulary.
 * `metaspace`: the hub's Metaspace pre-tokenizer (prepend_scheme "first")
 * instead of the Prepend + Replace normalisers. */
#ifndef ALOE_TESTS_SPM_TOKENIZER_JSON_H
#define ALOE_TESTS_SPM_TOKENIZER_JSON_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "tok/tok.h"

typedef struct {
    int l, r, id;
    float score;
} SpmMerge;

static int spm_merge_cmp(const void *a, const void *b) {
    const SpmMerge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->id != y->id) return x->id - y->id;
    return x->l != y->l ? x->l - y->l : x->r - y->r;
}

static json_t *spm_tokenizer_json(const Tokenizer *g, int metaspace) {
    int n = tok_vocab_size(g), nm = 0, cap = 4096;
    SpmMerge *m = xmalloc((size_t)cap * sizeof *m);
    json_t *vocab = json_object(), *added = json_array();
    for (int id = 0; id < n; id++) {
        const char *s = tok_token_str(g, id);
        json_object_set_new(vocab, s, json_integer(id));
        int ty = tok_token_type(g, id);
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN)
            json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id, "content", s, "special", 1,
                                                   "lstrip", 0, "rstrip", 0, "normalized", 0, "single_word", 0));
        if (ty != TOK_TYPE_NORMAL) continue;
        size_t len = strlen(s);
        char buf[256];
        for (size_t k = 1; k < len && len < sizeof buf; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split between characters */
            memcpy(buf, s, k);
            buf[k] = 0;
            int l = tok_find(g, buf), r = tok_find(g, s + k);
            if (l < 0 || r < 0) continue;
            if (nm == cap) m = xrealloc(m, (size_t)(cap *= 2) * sizeof *m);
            m[nm++] = (SpmMerge){l, r, id, tok_token_score(g, id)};
        }
    }
    qsort(m, (size_t)nm, sizeof *m, spm_merge_cmp);
    json_t *merges = json_array();
    for (int i = 0; i < nm; i++)
        json_array_append_new(merges, json_pack("[s,s]", tok_token_str(g, m[i].l), tok_token_str(g, m[i].r)));
    free(m);
    json_t *model = json_pack("{s:s,s:o,s:o,s:b,s:b,s:s}", "type", "BPE", "vocab", vocab, "merges", merges,
                              "byte_fallback", 1, "fuse_unk", 1, "unk_token", "<unk>");
    json_t *root = json_pack("{s:o,s:o}", "model", model, "added_tokens", added);
    if (metaspace) {
        json_object_set_new(root, "normalizer", json_null());
        json_object_set_new(root, "pre_tokenizer", json_pack("{s:s,s:s,s:s,s:b}", "type", "Metaspace", "replacement",
                                                             "\u2581", "prepend_scheme", "first", "split", 0));
    } else {
        json_object_set_new(root, "normalizer",
                            json_pack("{s:s,s:[{s:s,s:s},{s:s,s:{s:s},s:s}]}", "type", "Sequence", "normalizers", "type",
                                      "Prepend", "prepend", "\u2581", "type", "Replace", "pattern", "String", " ",
                                      "content", "\u2581"));
        json_object_set_new(root, "pre_tokenizer", json_null());
    }
    return root;
}

#endif
