#include "kernels/encoder_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/pool.h"
#include "formats/dtype.h"
#include "kernels/matmul.h"

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

typedef struct {
    float *x;
    size_t n;
} GeluJob;

#define GELU_BLOCK 16384

static void gelu_block(void *ctx, long index, int thread) {
    (void)thread;
    const GeluJob *g = ctx;
    size_t i0 = (size_t)index * GELU_BLOCK, i1 = i0 + GELU_BLOCK < g->n ? i0 + GELU_BLOCK : g->n;
    float *x = g->x;
    for (size_t i = i0; i < i1; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

/* erff is a fifth of an encoder's time: worth both cores */
void enc_gelu(float *x, size_t n, int threads) {
    GeluJob g = {x, n};
    pool_run(threads, (long)((n + GELU_BLOCK - 1) / GELU_BLOCK), gelu_block, &g, NULL);
}

void enc_linear(ThreadPool *tp, float *out, const float *x, const float *w, const float *b, int rows, int n_in,
                int n_out) {
    QMat W = {.type = DT_F32, .data = w, .rows = n_out, .cols = n_in};
    matmul_forward(tp, out, x, rows, &W);
    if (!b) return;
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * n_out;
        for (int i = 0; i < n_out; i++) o[i] += b[i];
    }
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    const int *seq_start;
    int n_heads, head_dim;
} AttnJob;

/* softmax of each row of s[rows, cols], in place */
static void softmax_rows(float *s, int rows, int cols) {
    for (int i = 0; i < rows; i++) {
        float *r = s + (size_t)i * cols, mx = r[0], sum = 0;
        for (int j = 1; j < cols; j++)
            if (r[j] > mx) mx = r[j];
        for (int j = 0; j < cols; j++) sum += (r[j] = expf(r[j] - mx));
        float inv = 1.0f / sum;
        for (int j = 0; j < cols; j++) r[j] *= inv;
    }
}

/* One (text, head) pair: softmax(q k^T / sqrt(d)) v over the text's rows,
 * as two small GEMMs on the head's column slice (leading dimension ld). */
static void attention_one(void *ctx, long index, int thread) {
    (void)thread;
    const AttnJob *a = ctx;
    int s = (int)(index / a->n_heads), h = (int)(index % a->n_heads);
    int t0 = a->seq_start[s], len = a->seq_start[s + 1] - t0;
    int d = a->head_dim, ld = a->n_heads * d;
    size_t off = (size_t)t0 * ld + (size_t)h * d;
    float *p = xmalloc((size_t)len * len * sizeof *p);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, d, 1.0f / sqrtf((float)d), a->q + off, ld,
                a->k + off, ld, 0.0f, p, len);
    softmax_rows(p, len, len);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, d, len, 1.0f, p, len, a->v + off, ld, 0.0f,
                a->out + off, ld);
    free(p);
}

void enc_attention(float *out, const float *q, const float *k, const float *v, const int *seq_start,
                   int n_seqs, int n_heads, int head_dim, int threads) {
    AttnJob a = {out, q, k, v, seq_start, n_heads, head_dim};
    pool_run(threads, (long)n_seqs * n_heads, attention_one, &a, NULL);
}
