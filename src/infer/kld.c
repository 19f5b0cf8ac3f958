#include "infer/kld.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

int kld_tokenize(const Tokenizer *t, const char *text, size_t len, int32_t **ids, int *n, int *bos, Err *e) {
    *ids = NULL;
    *n = 0;
    *bos = -1;
    /* The tokenizer's own prefix and suffix: what encoding with specials
     * adds to an empty text. llama-perplexity asserts there is no suffix. */
    int32_t *pre;
    int n_pre;
    if (tok_encode_n(t, "", 0, 1, 0, &pre, &n_pre, e)) return -1;
    int b = tok_bos(t);
    for (int i = 0; i < n_pre; i++)
        if (pre[i] != b) {
            int id = pre[i];
            free(pre);
            return err_set(e, ERR_UNSUPPORTED,
                           "kld: the tokenizer adds token %d around every text (an EOS or [SEP]); llama-perplexity "
                           "refuses such a tokenizer, so nothing here would compare with it",
                           id);
        }
    free(pre);
    if (tok_encode_n(t, text, len, 1, 0, ids, n, e)) return -1;
    *bos = n_pre > 0 ? b : -1;
    return 0;
}

int kld_n_chunks(long n_ids, const KldOptions *o, Err *e) {
    if (o->n_ctx < 4) return err_set(e, ERR_ARG, "kld: the context (--ctx) must be at least 4 tokens, got %d", o->n_ctx);
    if (n_ids < 2L * o->n_ctx)
        return err_set(e, ERR_ARG,
                       "kld: the text has %ld tokens; a context of %d needs at least %ld (two chunks, as "
                       "llama-perplexity requires)",
                       n_ids, o->n_ctx, 2L * o->n_ctx);
    long max = n_ids / o->n_ctx;
    if (max > INT_MAX) max = INT_MAX;
    return (int)(o->n_chunks > 0 && o->n_chunks < max ? o->n_chunks : max);
}

/* The logits of rows first..n_ctx-2 of one chunk into out [n_score, vocab]. */
static int eval_chunk(Model *m, KvCache *kv, const int32_t *chunk, const KldOptions *o, float *out, Err *e) {
    int n_ctx = o->n_ctx, first = n_ctx / 2, ub = o->ubatch > 0 && o->ubatch < n_ctx ? o->ubatch : n_ctx;
    int V = m->cfg.vocab_size;
    KvCache **caches = xmalloc((size_t)ub * sizeof *caches);
    int *pos = xmalloc((size_t)ub * sizeof *pos), *rows = xmalloc((size_t)ub * sizeof *rows);
    float *drop = NULL; /* the one row a batch with no scored position must still compute */
    for (int i = 0; i < ub; i++) caches[i] = kv;
    kv->len = 0; /* a fresh context per chunk */
    int rc = 0;
    for (int j = 0; j < n_ctx && !rc; j += ub) {
        int nb = n_ctx - j < ub ? n_ctx - j : ub, n_out = 0, row0 = -1;
        for (int k = 0; k < nb; k++) {
            pos[k] = j + k;
            if (pos[k] >= first && pos[k] <= n_ctx - 2) {
                if (row0 < 0) row0 = pos[k] - first;
                rows[n_out++] = k;
            }
        }
        if (n_out == 0) {
            if (!drop) drop = xmalloc((size_t)V * sizeof *drop);
            rc = model_forward_batch(m, caches, chunk + j, pos, nb, (int[]){nb - 1}, 1, drop, e);
        } else
            rc = model_forward_batch(m, caches, chunk + j, pos, nb, rows, n_out, out + (size_t)row0 * V, e);
    }
    free(drop);
    free(caches);
    free(pos);
    free(rows);
    return rc;
}

int kld_eval(Model *base, Model *m, const int32_t *ids, long n_ids, const KldOptions *o, KldStats *s, Err *e) {
    int V = base->cfg.vocab_size;
    if (m->cfg.vocab_size != V)
        return err_set(e, ERR_ARG, "kld: the vocabularies differ: the base model has %d tokens, the model %d",
                       V, m->cfg.vocab_size);
    int n_chunks = kld_n_chunks(n_ids, o, e);
    if (n_chunks < 0) return -1;
    long used = (long)n_chunks * o->n_ctx;
    for (long i = 0; i < used; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return err_set(e, ERR_ARG, "kld: token %ld is id %d, outside the vocabulary of %d", i, ids[i], V);
    if (o->bos >= V) return err_set(e, ERR_ARG, "kld: the BOS id %d is outside the vocabulary of %d", o->bos, V);
    int n_ctx = o->n_ctx, first = n_ctx / 2, n_score = n_ctx - 1 - first;
    KvCache kb, km;
    memset(&kb, 0, sizeof kb);
    memset(&km, 0, sizeof km);
    if (kv_cache_init(&kb, base, n_ctx, e)) return -1;
    if (kv_cache_init(&km, m, n_ctx, e)) {
        kv_cache_free(&kb);
        return -1;
    }
    /* One chunk's logits of both models: the base model's are not stored
     * for the whole text (llama.cpp writes them to a file), so both models
     * stay loaded. */
    float *lb = xmalloc((size_t)n_score * V * sizeof *lb), *lm = xmalloc((size_t)n_score * V * sizeof *lm);
    int32_t *chunk = xmalloc((size_t)n_ctx * sizeof *chunk);
    int rc = 0;
    for (int c = 0; c < n_chunks && !rc; c++) {
        memcpy(chunk, ids + (size_t)c * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (o->bos >= 0) chunk[0] = o->bos;
        rc = eval_chunk(base, &kb, chunk, o, lb, e) || eval_chunk(m, &km, chunk, o, lm, e);
        if (rc) {
            err_wrap(e, "kld: chunk %d", c + 1);
            break;
        }
        for (int r = 0; r < n_score; r++)
            kld_stats_add(s, lb + (size_t)r * V, lm + (size_t)r * V, V, chunk[first + r + 1]);
        if (o->on_chunk) o->on_chunk(o->on_chunk_ctx, c + 1, n_chunks, s);
    }
    free(chunk);
    free(lb);
    free(lm);
    kv_cache_free(&kb);
    kv_cache_free(&km);
    return rc ? -1 : 0;
}
