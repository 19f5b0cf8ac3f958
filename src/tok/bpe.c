/* bpe: byte-level BPE, the model of GPT-2, Llama 3 and Qwen.
 *
 * A word starts as one symbol per byte (the token of that byte's mapped
 * character); the adjacent pair with the lowest merge rank is merged,
 * leftmost first on ties, until no pair has a merge. A min-heap of
 * candidate pairs keeps this O(n log n); a popped candidate is used only if
 * both of its symbols are still the ones it was made from, which is the
 * same lazy check the tokenizers library does. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

typedef struct {
    int32_t id, prev, next;
} Sym;

static void try_pair(const Tokenizer *t, TokHeap *h, const Sym *sym, int pos) {
    if (pos < 0) return;
    int nx = sym[pos].next;
    if (nx < 0 || sym[pos].id < 0 || sym[nx].id < 0) return;
    int merged, rank = pairmap_get(&t->merges, sym[pos].id, sym[nx].id, &merged);
    if (rank < 0) return;
    tokheap_push(h, (TokCand){rank, pos, sym[pos].id, sym[nx].id, merged});
}

void bpe_encode_word(const Tokenizer *t, const char *s, size_t n, IdVec *out) {
    if (n == 0) return;
    if (t->ignore_merges && n < 256) {
        char buf[512];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += bytelevel_char((unsigned char)s[i], buf + k);
        int id = strmap_get(t, buf, k);
        if (id >= 0) {
            idvec_push(out, id);
            return;
        }
    }
    Sym local[64];
    Sym *sym = n <= 64 ? local : xmalloc(n * sizeof(Sym));
    for (size_t i = 0; i < n; i++) {
        sym[i].id = t->byte_id[(unsigned char)s[i]];
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    TokHeap h = {0};
    for (size_t i = 0; i + 1 < n; i++) try_pair(t, &h, sym, (int)i);
    while (h.n > 0) {
        TokCand c = tokheap_pop(&h); /* a = left id, b = right id, c = merged id */
        int nx = sym[c.pos].next;
        if (sym[c.pos].id != c.a || nx < 0 || sym[nx].id != c.b) continue; /* stale */
        sym[c.pos].id = c.c;
        sym[c.pos].next = sym[nx].next;
        if (sym[nx].next >= 0) sym[sym[nx].next].prev = c.pos;
        sym[nx].id = -2; /* dead */
        try_pair(t, &h, sym, sym[c.pos].prev);
        try_pair(t, &h, sym, c.pos);
    }
    for (int i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) idvec_push(out, sym[i].id);
        else if (t->unk >= 0) idvec_push(out, t->unk); /* a byte the vocabulary lacks */
    }
    free(h.v);
    if (sym != local) free(sym);
}

void bpe_encode(const Tokenizer *t, const char *s, size_t n, IdVec *out) {
    pretok_split(t, s, n, bpe_encode_word, out);
}
