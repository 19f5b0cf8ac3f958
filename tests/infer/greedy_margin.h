/* greedy_margin: which greedy decisions another float summation order cannot
 * flip. Header-only, for test programs comparing greedy output computed two
 * ways (alone and batched, a fresh prefill and one continued from a prefix
 * cache): the two differ only in the order in which float32 sums are formed
 * (a matrix product over more or fewer rows, a prompt split at another
 * position), so their logits agree only to rounding, and a near-tie can go
 * either way. Such tests compare tokens while the reference's top-2 margin
 * exceeds twice the bound below, and stop comparing after the first step
 * where it does not (the sequences may then rightly part).
 *
 * The bound. A dot product of k float32 terms, summed in any order, is
 * within gamma_k * sum|a_i b_i| of the exact value (gamma_k = k u / (1 - k u),
 * u = 2^-24), so two orders differ by at most 2 gamma_k sum|a_i b_i|. On the
 * way to a logit there are, per layer, seven weight products (q, k, v, o,
 * gate, up, down) and attention's two products over the positions, then the
 * head: 9 L + 1 products, k at most max(hidden, intermediate, positions).
 * The RMS norms rescale each layer's input, so to first order the relative
 * errors of the products add up rather than compound. The scale sum|w h| of
 * a logit is taken as the logits' range (max - min): for these random-weight
 * models the logits are sums without systematic cancellation, and the range
 * is within a small factor of it. Bound = (9 L + 1) * 2 gamma_k * range. It
 * is a worst case (rounding errors of a real sum grow like sqrt(k), not k),
 * so no machine's rounding exceeds it, and it is still small enough (~1e-3 of
 * the range for the tiny fixtures) for most steps to be compared.
 *
 * Tokens whose output-weight rows are identical (model_init_random draws rows
 * from a pool of 61) get bit-identical logits in any order of summation and
 * the same embedding: they are one decision, so the margin is taken over
 * the tokens whose rows differ from the winner's, and such tokens compare
 * equal (gm_same_choice). */
#ifndef ALOE_TESTS_GREEDY_MARGIN_H
#define ALOE_TESTS_GREEDY_MARGIN_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "base/mem.h"
#include "formats/dtype.h"
#include "model/decoder.h"

/* 1 if ids a and b are the same greedy decision for m: the same id, or ids
 * whose output-weight rows are identical. */
static inline int gm_same_choice(const Model *m, int32_t a, int32_t b) {
    if (a == b) return 1;
    const QMat *h = &m->w.lm_head;
    if (a < 0 || b < 0 || a >= h->rows || b >= h->rows) return 0;
    size_t rb = dtype_nbytes(h->type, h->cols);
    return !memcmp((const char *)h->data + (size_t)a * rb, (const char *)h->data + (size_t)b * rb, rb);
}

/* Largest change another summation order can make to a logit of m, given
 * the logits at a step with n_pos positions in context. */
static inline double gm_flip_bound(const ModelConfig *c, int n_pos, const float *logits, int V) {
    int k = c->hidden_size;
    if (c->intermediate_size > k) k = c->intermediate_size;
    if (n_pos > k) k = n_pos;
    double u = 0x1p-24, gamma = k * u / (1 - k * u);
    float lo = logits[0], hi = logits[0];
    for (int i = 1; i < V; i++) lo = fminf(lo, logits[i]), hi = fmaxf(hi, logits[i]);
    return (9.0 * c->n_layers + 1) * 2 * gamma * (hi - lo);
}

/* The argmax of logits (lowest index on ties) and its lead over the best
 * token that is another decision (gm_same_choice). */
static inline int gm_argmax(const Model *m, const float *logits, int V, double *margin) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    double second = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > second && !gm_same_choice(m, best, i)) second = logits[i];
    *margin = logits[best] - second;
    return best;
}

/* 1 if no summation order can change this step's greedy choice. */
static inline int gm_robust(const Model *m, int n_pos, const float *logits, int V) {
    double margin;
    gm_argmax(m, logits, V, &margin);
    return margin > 2 * gm_flip_bound(&m->cfg, n_pos, logits, V);
}

/* Greedy decoding of prompt[0..n) alone, by hand: the whole prompt in one
 * forward pass (as generate() prefills a prompt shorter than its chunk),
 * then one token at a time, up to max_tokens new ids or one of stop ids
 * (included in out, as GenSeq.out has it). *n_robust: the leading steps whose
 * choice no summation order can flip (== *n_out when all are). 0 or -1 with
 * e set. out has room for max_tokens ids. */
static inline int gm_greedy(Model *m, const int32_t *prompt, int n, int max_tokens, const int32_t *stop_ids,
                            int n_stop, int32_t *out, int *n_out, int *n_robust, Err *e) {
    int V = m->cfg.vocab_size;
    float *logits = xmalloc((size_t)V * sizeof(float));
    KvCache kv;
    *n_out = *n_robust = 0;
    int have_kv = kv_cache_init(&kv, m, n + max_tokens, e) == 0;
    int rc = have_kv ? model_forward(m, &kv, prompt, n, 0, logits, 0, e) : -1;
    int robust = 1;
    for (int t = 0; !rc && t < max_tokens; t++) {
        double margin;
        int32_t id = gm_argmax(m, logits, V, &margin);
        robust = robust && margin > 2 * gm_flip_bound(&m->cfg, n + t, logits, V);
        if (robust) (*n_robust)++;
        out[(*n_out)++] = id;
        int stop = 0;
        for (int i = 0; i < n_stop; i++) stop |= stop_ids[i] == id;
        if (stop || t + 1 == max_tokens) break;
        rc = model_forward(m, &kv, &id, 1, n + t, logits, 0, e);
    }
    if (have_kv) kv_cache_free(&kv);
    free(logits);
    return rc;
}

#endif
