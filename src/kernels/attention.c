#include "kernels/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

typedef struct AttnJob {
    float *out;
    const float *q;
    int n;
    const AttnShape *s;
    const float *const *k, *const *v;
    const int *pos;
    float *scores; /* max_len floats per thread */
    int max_len;
} AttnJob;

/* The first key position a query at pos sees. */
static int attn_first(const AttnShape *s, int pos) {
    return s->window > 0 && pos - s->window + 1 > 0 ? pos - s->window + 1 : 0;
}

static void attn_one(const AttnJob *j, int t, int h, float *scores) {
    const AttnShape *s = j->s;
    int hd = s->head_dim, kvh = h / (s->n_heads / s->n_kv_heads), row = s->n_kv_heads * hd;
    const float *q = j->q + ((long)t * s->n_heads + h) * hd;
    const float *k = j->k[t] + (long)kvh * hd, *v = j->v[t] + (long)kvh * hd;
    float *out = j->out + ((long)t * s->n_heads + h) * hd;
    float scale = 1.0f / sqrtf((float)hd);
    int first = attn_first(s, j->pos[t]), len = j->pos[t] + 1 - first;
    k += (long)first * row, v += (long)first * row;
    for (int p = 0; p < len; p++) scores[p] = dot_f32(q, k + (long)p * row, hd) * scale;
    softmax_forward(scores, len);
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < len; p++) axpy_f32(out, scores[p], v + (long)p * row, hd);
}

static void attn_task(void *ctx, int ith, int nth) {
    AttnJob *j = ctx;
    float *scores = j->scores + (long)ith * j->max_len;
    long items = (long)j->n * j->s->n_heads;
    /* strided so that early (short) and late (long) causal rows mix */
    for (long i = ith; i < items; i += nth) attn_one(j, (int)(i / j->s->n_heads), (int)(i % j->s->n_heads), scores);
}

void attention_forward(ThreadPool *tp, float *out, const float *q, int n, const AttnShape *s,
                       const float *const *k_cache, const float *const *v_cache, const int *pos) {
    int max_len = 1;
    for (int t = 0; t < n; t++) max_len = pos[t] + 1 > max_len ? pos[t] + 1 : max_len;
    max_len = (max_len + 15) & ~15; /* keep each thread's scores on their own cache lines */
    AttnJob j = {out, q, n, s, k_cache, v_cache, pos, NULL, max_len};
    j.scores = tp_scratch(tp, (size_t)max_len * sizeof(float) * (size_t)tp_size(tp));
    tp_run(tp, attn_task, &j);
}

void attention_forward_ref(float *out, const float *q, int n, const AttnShape *s, const float *const *k_cache,
                           const float *const *v_cache, const int *pos) {
    int hd = s->head_dim, row = s->n_kv_heads * hd, group = s->n_heads / s->n_kv_heads;
    for (int t = 0; t < n; t++) {
        int len = pos[t] + 1;
        double *w = xmalloc((size_t)len * sizeof(double));
        for (int h = 0; h < s->n_heads; h++) {
            const float *qh = q + ((long)t * s->n_heads + h) * hd;
            const float *k = k_cache[t] + (long)(h / group) * hd, *v = v_cache[t] + (long)(h / group) * hd;
            double max = -INFINITY, sum = 0;
            for (int p = 0; p < attn_first(s, pos[t]); p++) w[p] = -INFINITY;
            for (int p = attn_first(s, pos[t]); p < len; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)qh[i] * k[(long)p * row + i];
                w[p] = d / sqrt((double)hd);
                if (w[p] > max) max = w[p];
            }
            for (int p = 0; p < len; p++) sum += (w[p] = exp(w[p] - max)); /* exp(-inf) = 0 */
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int p = 0; p < len; p++) o += w[p] / sum * v[(long)p * row + i];
                out[((long)t * s->n_heads + h) * hd + i] = (float)o;
            }
        }
        free(w);
    }
}
