/* heap: the min-heap of merge candidates both BPE flavours use: smallest
 * key first (a merge rank, or minus a SentencePiece score), then leftmost. */
#include "tok/tok_internal.h"

static int cand_less(const TokCand *x, const TokCand *y) {
    return x->key < y->key || (x->key == y->key && x->pos < y->pos);
}

void tokheap_push(TokHeap *h, TokCand c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof(TokCand));
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

TokCand tokheap_pop(TokHeap *h) {
    TokCand top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const TokCand *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && cand_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}
