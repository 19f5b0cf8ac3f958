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

typedef struct LinearJob {
    float *out;
    const float *x, *w, *b;
    int n_in, n_out;
    long rows, chunk;
    TpCounter next;
} LinearJob;

/* Chunks of rows of x, each one single-threaded sgemm against all of W
 * (with the bias as its starting value). Splitting by tokens rather than by
 * rows of W packs W once per chunk, which is cheap next to the chunk's
 * product; x would be packed once per share of W. */
static void linear_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    LinearJob *j = ctx;
    long r0, r1;
    while (tp_next(&j->next, j->rows, j->chunk, &r0, &r1)) {
        float *o = j->out + r0 * j->n_out;
        float beta = 0.0f;
        if (j->b) {
            for (long r = r0; r < r1; r++) memcpy(o + (r - r0) * j->n_out, j->b, (size_t)j->n_out * sizeof *j->b);
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), j->n_out, j->n_in, 1.0f,
                    j->x + r0 * j->n_in, j->n_in, j->w, j->n_in, beta, o, j->n_out);
    }
}

void enc_linear(ThreadPool *tp, float *out, const float *x, const float *w, const float *b, int rows, int n_in,
                int n_out) {
    LinearJob j = {.out = out, .x = x, .w = w, .b = b, .n_in = n_in, .n_out = n_out, .rows = rows};
    /* about 4 chunks per thread, so a late thread does not hold the rest up;
     * 16 to 256 rows, whole multiples of 16 for the sgemm kernels */
    long per = (rows + 4L * tp_size(tp) - 1) / (4L * tp_size(tp));
    j.chunk = per < 16 ? 16 : per > 256 ? 256 : (per + 15) / 16 * 16;
    tp_run_shared(tp, linear_task, &j);
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
