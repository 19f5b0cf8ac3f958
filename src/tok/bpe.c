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

/* Merges the symbols sym[0..n) (ids set; -1 = none) and appends the result. */
static void bpe_merge(const Tokenizer *t, Sym *sym, int n, IdVec *out) {
    for (int i = 0; i < n; i++) {
        sym[i].prev = i - 1;
        sym[i].next = i + 1 < n ? i + 1 : -1;
    }
    TokHeap h = {0};
    for (int i = 0; i + 1 < n; i++) try_pair(t, &h, sym, i);
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
    for (int i = 0; i >= 0 && n > 0; i = sym[i].next) {
        if (sym[i].id >= 0) idvec_push(out, sym[i].id);
        else if (t->unk >= 0) idvec_push(out, t->unk); /* a symbol the vocabulary lacks */
    }
    free(h.v);
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
    for (size_t i = 0; i < n; i++) sym[i].id = t->byte_id[(unsigned char)s[i]];
    bpe_merge(t, sym, (int)n, out);
    if (sym != local) free(sym);
}

/* BPE over characters (SentencePiece-style vocabularies in tokenizer.json):
 * a character that is not a token is spelled with <0xNN> byte tokens when
 * the model has byte_fallback, else it is the unknown token (consecutive
 * unknowns fused into one when fuse_unk). */
void bpe_encode_chars(const Tokenizer *t, const char *s, size_t n, IdVec *out) {
    if (n == 0) return;
    if (t->ignore_merges) {
        int id = strmap_get(t, s, n);
        if (id >= 0) {
            idvec_push(out, id);
            return;
        }
    }
    Sym *sym = xmalloc(n * sizeof(Sym));
    int ns = 0;
    for (size_t i = 0; i < n;) {
        int k = utf8_seq_len((unsigned char)s[i]);
        if (k == 0 || i + k > n) k = 1;
        int id = strmap_get(t, s + i, k), bytes_ok = t->byte_fallback;
        for (int j = 0; id < 0 && j < k; j++) bytes_ok &= t->spm_byte[(unsigned char)s[i + j]] >= 0;
        if (id >= 0) {
            sym[ns++].id = id;
        } else if (bytes_ok) {
            for (int j = 0; j < k; j++) sym[ns++].id = t->spm_byte[(unsigned char)s[i + j]];
        } else if (!(t->fuse_unk && ns > 0 && sym[ns - 1].id == -1)) {
            sym[ns++].id = -1;
        }
        i += k;
    }
    bpe_merge(t, sym, ns, out);
    free(sym);
}

/* Metaspace: spaces become the replacement ("▁"), which may also be put in
 * front; with split, every "▁" starts a new word. */
static void metaspace_encode(const Tokenizer *t, const char *s, size_t n, int first, IdVec *out) {
    StrBuf b;
    sb_init(&b);
    size_t lr = strlen(t->meta_repl), word = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') sb_append(&b, t->meta_repl);
        else sb_appendc(&b, s[i]);
    }
    if ((t->meta_prepend == 2 || (t->meta_prepend == 1 && first)) && (b.len < lr || memcmp(b.s, t->meta_repl, lr))) {
        StrBuf p;
        sb_init(&p);
        sb_append(&p, t->meta_repl);
        sb_appendn(&p, b.s, b.len);
        sb_free(&b);
        b = p;
    }
    if (t->meta_split && lr > 0) {
        for (size_t i = 1; i + lr <= b.len; i++) {
            if (memcmp(b.s + i, t->meta_repl, lr)) continue;
            bpe_encode_chars(t, b.s + word, i - word, out);
            word = i;
        }
    }
    bpe_encode_chars(t, b.s + word, b.len - word, out);
    sb_free(&b);
}

void bpe_encode(const Tokenizer *t, const char *s, size_t n, int first, IdVec *out) {
    if (t->byte_level) pretok_split(t, s, n, bpe_encode_word, out);
    else if (t->meta_repl[0]) metaspace_encode(t, s, n, first, out);
    else bpe_encode_chars(t, s, n, out);
}
