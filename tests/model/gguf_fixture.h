/* gguf_fixture: what the tests of llama.cpp-written GGUF files share
 * (test_gguf_llamacpp, test_gguf_legacy, test_gguf_kquant): the files'
 * path, logits decoding one token at a time, and the distance of two
 * logit arrays. */
#ifndef TESTS_MODEL_GGUF_FIXTURE_H
#define TESTS_MODEL_GGUF_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"
#include "model/decoder.h"

/* tests/data/gguf-llamacpp/NAME (caller frees). */
static inline char *data_path(const char *name) { return xasprintf("tests/data/gguf-llamacpp/%s", name); }

/* Logits [n, V] decoding one token at a time (caller frees *out): the
 * quantised dot-product path, activations rounded to Q8_0 (llama.cpp's
 * way), not the batched pass. */
static inline int step_logits_of(const char *path, const int32_t *ids, int n, float **out, Err *e) {
    Model *m = model_load(path, 1, e);
    if (!m) return -1;
    KvCache kv;
    int V = m->cfg.vocab_size;
    *out = xmalloc((size_t)n * V * sizeof(float));
    int rc = kv_cache_init(&kv, m, n, e);
    for (int i = 0; i < n && !rc; i++) rc = model_forward(m, &kv, &ids[i], 1, i, *out + (size_t)i * V, 0, e);
    kv_cache_free(&kv);
    model_free(m);
    return rc ? -1 : 0;
}

/* Over n values: *rel = max|a-b| / range(b), *rms = rms(a-b) / rms(b -
 * mean b) (the error's share of the logits' spread). */
static inline void logit_diff(const float *a, const float *b, size_t n, double *rel, double *rms) {
    double lo = b[0], hi = b[0], worst = 0, se = 0, sb = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        lo = fmin(lo, y), hi = fmax(hi, y), worst = fmax(worst, fabs(x - y));
        se += (x - y) * (x - y), sb += y, sbb += y * y;
    }
    *rel = worst / (hi - lo);
    double var = sbb / n - (sb / n) * (sb / n);
    *rms = var > 0 ? sqrt(se / n / var) : INFINITY;
}

#endif
