/* attention: causal grouped-query attention of query tokens over their
 * sequences' key/value caches.
 *
 * Each query token t has its own cache (so tokens of several independent
 * sequences can be processed in one call) and position pos[t]; it attends
 * to cache positions 0..pos[t] (the last `window` of them with a sliding
 * window), which the caller has already written
 * (including the token's own key/value). Query head h reads key/value head
 * h / (n_heads / n_kv_heads), as in transformers' repeat_kv. A cache holds
 * head_dim floats per (position, key/value head) at its own strides (see
 * AttnCache). */
#ifndef ALOE_KERNELS_ATTENTION_H
#define ALOE_KERNELS_ATTENTION_H

#include "kernels/threads.h"

typedef struct AttnShape {
    int n_heads, n_kv_heads, head_dim;
    int window; /* sliding window (Mistral): attend to the last `window` positions; 0 = all */
    float scale;   /* score scale; 0 = 1/sqrt(head_dim) (Gemma: query_pre_attn_scalar^-0.5) */
    float softcap; /* scores -> softcap * tanh(scores / softcap) before softmax (Gemma 2); 0 = none */
} AttnShape;

/* One query token's cache: key/value head h at position p is at
 * k + h * head_stride + p * pos_stride (v likewise). Strides 0: one row of
 * n_kv_heads * head_dim floats per position, as the projections write them
 * (head_stride head_dim). The decoder's caches are head-major (pos_stride
 * head_dim): one head's keys over the whole context are contiguous, so each
 * attention thread streams a region of its own, where interleaved heads had
 * both threads' prefetchers pull each other's bytes too. An F16 cache holds
 * half floats (converted as they are read; the arithmetic stays f32). */
typedef struct AttnCache {
    const void *k, *v;
    long pos_stride, head_stride; /* in elements */
    int type;                     /* DT_F32 (0) or DT_F16 */
} AttnCache;

/* out[t] (n_heads × head_dim) = softmax(cap(q[t]·Kᵀ · scale)) · V, scale
 * 1/sqrt(head_dim) unless the shape gives one, cap the soft-cap if any.
 * tp may be NULL (the caller's thread alone). */
void attention_forward(ThreadPool *tp, float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                       const int *pos);
/* Plain loops in double: the reference for the tests. */
void attention_forward_ref(float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                           const int *pos);

#endif
