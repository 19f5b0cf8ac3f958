/* attention: causal grouped-query attention of query tokens over their
 * sequences' key/value caches.
 *
 * Each query token t has its own cache (so tokens of several independent
 * sequences can be processed in one call) and position pos[t]; it attends
 * to cache positions 0..pos[t] (the last `window` of them with a sliding
 * window), which the caller has already written
 * (including the token's own key/value). Query head h reads key/value head
 * h / (n_heads / n_kv_heads), as in transformers' repeat_kv. A cache row
 * (one position) holds n_kv_heads × head_dim floats. */
#ifndef ALOE_KERNELS_ATTENTION_H
#define ALOE_KERNELS_ATTENTION_H

#include "kernels/threads.h"

typedef struct AttnShape {
    int n_heads, n_kv_heads, head_dim;
    int window; /* sliding window (Mistral): attend to the last `window` positions; 0 = all */
} AttnShape;

/* out[t] (n_heads × head_dim) = softmax(q[t]·Kᵀ / sqrt(head_dim)) · V.
 * tp may be NULL (the caller's thread alone). */
void attention_forward(ThreadPool *tp, float *out, const float *q, int n, const AttnShape *s,
                       const float *const *k_cache, const float *const *v_cache, const int *pos);
/* Plain loops in double: the reference for the tests. */
void attention_forward_ref(float *out, const float *q, int n, const AttnShape *s, const float *const *k_cache,
                           const float *const *v_cache, const int *pos);

#endif
