/* spm: SentencePiece BPE as llama.cpp runs it for GGUF "llama" vocabularies
 * (Llama 2, Mistral v0.1, Phi-3).
 *
 * Spaces become "▁" (and a "▁" is put in front when add_space_prefix), the
 * text starts as one symbol per character, and the adjacent pair whose
 * concatenation is the vocabulary token with the highest score is merged,
 * leftmost first on ties. A symbol left that is not a token is spelled
 * with the <0xNN> byte tokens (or the unknown token when there are none). */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

typedef struct {
    int32_t start, len, prev, next;
} SpmSym;

static void try_bigram(const Tokenizer *t, TokHeap *h, const char *s, const SpmSym *sym, int l) {
    if (l < 0 || sym[l].next < 0) return;
    int r = sym[l].next;
    int size = sym[l].len + sym[r].len;
    int id = strmap_get(t, s + sym[l].start, size);
    if (id < 0) return;
    tokheap_push(h, (TokCand){-(double)t->score[id], l, size, id, r});
}

static void spm_bytes(const Tokenizer *t, const char *s, int n, IdVec *out) {
    for (int j = 0; j < n; j++) {
        int id = t->spm_byte[(unsigned char)s[j]];
        if (id >= 0) idvec_push(out, id);
        else if (t->unk >= 0) idvec_push(out, t->unk);
    }
}

void spm_encode(const Tokenizer *t, const char *text, size_t n, int space_prefix, IdVec *out) {
    if (n == 0) return;
    /* escape spaces: ' ' -> U+2581 */
    StrBuf b;
    sb_init(&b);
    if (space_prefix) sb_append(&b, "\xe2\x96\x81");
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') sb_append(&b, "\xe2\x96\x81");
        else sb_appendc(&b, text[i]);
    }
    const char *s = b.s;
    int len = (int)b.len;
    SpmSym *sym = xmalloc(len * sizeof(SpmSym));
    int ns = 0;
    for (int off = 0; off < len; ns++) {
        int k = utf8_seq_len((unsigned char)s[off]);
        if (k == 0 || off + k > len) k = 1;
        sym[ns] = (SpmSym){off, k, ns - 1, -1};
        if (ns > 0) sym[ns - 1].next = ns;
        off += k;
    }
    TokHeap h = {0};
    for (int i = 0; i + 1 < ns; i++) try_bigram(t, &h, s, sym, i);
    while (h.n > 0) {
        TokCand c = tokheap_pop(&h); /* a = size of the merged text, c = right symbol */
        int l = c.pos, r = c.c;
        if (sym[l].len == 0 || sym[r].len == 0 || sym[l].len + sym[r].len != c.a) continue; /* stale */
        sym[l].len += sym[r].len;
        sym[r].len = 0;
        sym[l].next = sym[r].next;
        if (sym[r].next >= 0) sym[sym[r].next].prev = l;
        try_bigram(t, &h, s, sym, sym[l].prev);
        try_bigram(t, &h, s, sym, l);
    }
    for (int i = 0; i >= 0 && ns > 0; i = sym[i].next) {
        int id = strmap_get(t, s + sym[i].start, sym[i].len);
        if (id >= 0) idvec_push(out, id);
        else spm_bytes(t, s + sym[i].start, sym[i].len, out);
    }
    free(h.v);
    free(sym);
    sb_free(&b);
}
