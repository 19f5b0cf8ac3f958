/* model_logits: the logits a model file gives over a sequence, and their
 * distance to a reference, for the conversion tests (test_convert,
 * test_convert_kquant, test_gguf_llamacpp). */
#ifndef TESTS_MODEL_MODEL_LOGITS_H
#define TESTS_MODEL_MODEL_LOGITS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"
#include "model/decoder.h"

/* Logits [n, V] of the batched pass over ids (caller frees *out); *vocab
 * (may be NULL) gets V. */
static inline int logits_of(const char *path, const int32_t *ids, int n, float **out, int *vocab, Err *e) {
    Model *m = model_load(path, 2, e);
    if (!m) return -1;
    KvCache kv;
    if (vocab) *vocab = m->cfg.vocab_size;
    *out = xmalloc((size_t)n * m->cfg.vocab_size * sizeof(float));
    int rc = kv_cache_init(&kv, m, n, e) || model_forward(m, &kv, ids, n, 0, *out, 1, e) ? -1 : 0;
    kv_cache_free(&kv);
    model_free(m);
    return rc;
}

/* Max |a-b| over the range of b, over n values. */
static inline double rel_err(const float *a, const float *b, size_t n) {
    double lo = b[0], hi = b[0], worst = 0;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, b[i]), hi = fmax(hi, b[i]);
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    }
    return worst / (hi - lo);
}

#endif
