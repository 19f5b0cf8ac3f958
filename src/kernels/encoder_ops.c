#include "kernels/encoder_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/pool.h"

void enc_layernorm(float *out, const float *x, const float *w, const float *b, int rows, int dim,
                   float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *o = out + (size_t)r * dim;
        /* two passes in double: the mean is removed before squaring, so a
         * large common offset does not eat the variance */
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= dim;
        float inv = (float)(1.0 / sqrt(var + eps));
        float m = (float)mean;
        for (int i = 0; i < dim; i++) o[i] = (xr[i] - m) * inv * w[i] + b[i];
    }
}

void enc_gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void enc_linear(float *out, const float *x, const float *w, const float *b, int rows, int n_in,
                int n_out) {
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < rows; r++) memcpy(out + (size_t)r * n_out, b, (size_t)n_out * sizeof *b);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n_out, n_in, 1.0f, x, n_in, w, n_in,
                beta, out, n_out);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    const int *seq_start;
    int n_heads, head_dim;
} AttnJob;

/* One (text, head) pair: softmax(q k^T / sqrt(d)) v over the text's rows. */
static void attention_one(void *ctx, long index, int thread) {
    (void)thread;
    const AttnJob *a = ctx;
    int s = (int)(index / a->n_heads), h = (int)(index % a->n_heads);
    int t0 = a->seq_start[s], len = a->seq_start[s + 1] - t0;
    int d = a->head_dim, ld = a->n_heads * d;
    float scale = 1.0f / sqrtf((float)d);
    float *p = xmalloc((size_t)len * sizeof *p);
    for (int i = 0; i < len; i++) {
        const float *qi = a->q + (size_t)(t0 + i) * ld + h * d;
        float mx = -INFINITY;
        for (int j = 0; j < len; j++) {
            const float *kj = a->k + (size_t)(t0 + j) * ld + h * d;
            float dot = 0;
            for (int c = 0; c < d; c++) dot += qi[c] * kj[c];
            p[j] = dot * scale;
            if (p[j] > mx) mx = p[j];
        }
        float sum = 0;
        for (int j = 0; j < len; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float *oi = a->out + (size_t)(t0 + i) * ld + h * d;
        memset(oi, 0, (size_t)d * sizeof *oi);
        for (int j = 0; j < len; j++) {
            const float *vj = a->v + (size_t)(t0 + j) * ld + h * d;
            float pj = p[j] / sum;
            for (int c = 0; c < d; c++) oi[c] += pj * vj[c];
        }
    }
    free(p);
}

void enc_attention(float *out, const float *q, const float *k, const float *v, const int *seq_start,
                   int n_seqs, int n_heads, int head_dim, int threads) {
    AttnJob a = {out, q, k, v, seq_start, n_heads, head_dim};
    pool_run(threads, (long)n_seqs * n_heads, attention_one, &a, NULL);
}
