#include "train/backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/quant.h"

/* ---- linear ---- */

typedef struct LinearJob {
    float *dx, *dW, *db;
    const float *dy, *x, *W;
    int T, in, out;
} LinearJob;

/* Thread ith owns rows [t0, t1) of dx and rows [r0, r1) of dW and db, so no
 * two threads write the same memory. */
static void linear_backward_task(void *ctx, int ith, int nth) {
    const LinearJob *j = ctx;
    long t0, t1, r0, r1;
    tp_split(j->T, ith, nth, &t0, &t1);
    tp_split(j->out, ith, nth, &r0, &r1);
    if (j->dx && t1 > t0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(t1 - t0), j->in, j->out, 1.0f,
                    j->dy + t0 * j->out, j->out, j->W, j->in, 1.0f, j->dx + t0 * j->in, j->in);
    if (r1 > r0) {
        if (j->dW)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(r1 - r0), j->in, j->T, 1.0f, j->dy + r0,
                        j->out, j->x, j->in, 1.0f, j->dW + r0 * j->in, j->in);
        if (j->db)
            for (int t = 0; t < j->T; t++) {
                const float *dyt = j->dy + (long)t * j->out;
                for (long r = r0; r < r1; r++) j->db[r] += dyt[r];
            }
    }
}

void linear_backward(ThreadPool *tp, float *dx, float *dW, float *db, const float *dy, const float *x,
                     const float *W, int T, int in, int out) {
    LinearJob j = {dx, dW, db, dy, x, W, T, in, out};
    tp_run(tp, linear_backward_task, &j);
}

/* ---- RMSNorm ---- */

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int dim,
                      float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim, *dyt = dy + (long)t * dim;
        float *dxt = dx + (long)t * dim;
        double ss = 0, gx = 0;
        for (int i = 0; i < dim; i++) {
            ss += (double)xt[i] * xt[i];
            gx += (double)w[i] * dyt[i] * xt[i];
        }
        double r = 1.0 / sqrt(ss / dim + eps);
        /* y = w x r with r = (mean(x²)+eps)^-1/2, so ∂r/∂x_i = -r³ x_i / dim. */
        double k = r * r * r * gx / dim;
        for (int i = 0; i < dim; i++) {
            dxt[i] += (float)(r * w[i] * dyt[i] - k * xt[i]);
            if (dw) dw[i] += (float)(dyt[i] * xt[i] * r);
        }
    }
}

/* ---- RoPE ---- */

void rope_backward(float *dx, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* The same float angle as rope_forward, then the transposed rotation. */
        float angle = (float)pos * inv_freq[i];
        float c = (float)cos(angle), s = (float)sin(angle);
        for (int h = 0; h < n_heads; h++) {
            float *v = dx + (long)h * head_dim;
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            float g0 = v[i0], g1 = v[i1];
            v[i0] = g0 * c + g1 * s;
            v[i1] = g1 * c - g0 * s;
        }
    }
}

/* ---- SwiGLU ---- */

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
        float silu = g * sig;
        dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] += dout[i] * silu;
    }
}

/* ---- embedding ---- */

void embedding_backward(float *dE, const float *dx, const int *ids, int T, int dim) {
    for (int t = 0; t < T; t++) {
        float *row = dE + (long)ids[t] * dim;
        const float *g = dx + (long)t * dim;
        for (int i = 0; i < dim; i++) row[i] += g[i];
    }
}

/* ---- causal GQA attention ---- */

typedef struct AttnJob {
    float *out, *att_out, *dq, *dk, *dv;
    const float *att, *q, *k, *v, *dout;
    const AttnDims *d;
} AttnJob;

/* Forward, split by query head: heads write disjoint parts of out and att. */
static void attn_forward_task(void *ctx, int ith, int nth) {
    const AttnJob *j = ctx;
    const AttnDims *d = j->d;
    const int T = d->T, D = d->head_dim, H = d->n_heads, KV = d->n_kv_heads, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    long h0, h1;
    tp_split(H, ith, nth, &h0, &h1);
    for (long h = h0; h < h1; h++) {
        long g = h / group;
        for (int t = 0; t < T; t++) {
            const int s0 = d->seg_start ? d->seg_start[t] : 0;
            const float *qt = j->q + ((long)t * H + h) * D;
            float *p = j->att_out + ((long)h * T + t) * T;
            memset(p, 0, (size_t)T * sizeof *p);
            for (int u = s0; u <= t; u++) p[u] = dot_f32(qt, j->k + ((long)u * KV + g) * D, D) * scale;
            softmax_forward(p + s0, t + 1 - s0);
            float *o = j->out + ((long)t * H + h) * D;
            memset(o, 0, (size_t)D * sizeof *o);
            for (int u = s0; u <= t; u++) axpy_f32(o, p[u], j->v + ((long)u * KV + g) * D, D);
        }
    }
}

void attn_train_forward(ThreadPool *tp, float *out, float *att, const float *q, const float *k, const float *v,
                        const AttnDims *d) {
    AttnJob j = {.out = out, .att_out = att, .q = q, .k = k, .v = v, .d = d};
    tp_run(tp, attn_forward_task, &j);
}

/* Backward, split by key/value head: the query heads of one group all add
 * into the same rows of dk and dv, so a group belongs to one thread. */
static void attn_backward_task(void *ctx, int ith, int nth) {
    const AttnJob *j = ctx;
    const AttnDims *d = j->d;
    const int T = d->T, D = d->head_dim, H = d->n_heads, KV = d->n_kv_heads, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    long g0, g1;
    tp_split(KV, ith, nth, &g0, &g1);
    if (g0 >= g1) return;
    float *ds = xmalloc((size_t)T * sizeof *ds);
    for (long g = g0; g < g1; g++)
        for (long h = g * group; h < (g + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                const int s0 = d->seg_start ? d->seg_start[t] : 0;
                const float *p = j->att + ((long)h * T + t) * T;
                const float *go = j->dout + ((long)t * H + h) * D;
                double sum = 0;
                for (int u = s0; u <= t; u++) {
                    ds[u] = dot_f32(go, j->v + ((long)u * KV + g) * D, D); /* dP */
                    sum += (double)p[u] * ds[u];
                    axpy_f32(j->dv + ((long)u * KV + g) * D, p[u], go, D);
                }
                const float *qt = j->q + ((long)t * H + h) * D;
                float *dqt = j->dq + ((long)t * H + h) * D;
                for (int u = s0; u <= t; u++) {
                    float dsu = p[u] * (ds[u] - (float)sum) * scale; /* softmax backward, then the scale */
                    axpy_f32(dqt, dsu, j->k + ((long)u * KV + g) * D, D);
                    axpy_f32(j->dk + ((long)u * KV + g) * D, dsu, qt, D);
                }
            }
    free(ds);
}

void attn_train_backward(ThreadPool *tp, float *dq, float *dk, float *dv, const float *dout, const float *att,
                         const float *q, const float *k, const float *v, const AttnDims *d) {
    AttnJob j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .att = att, .q = q, .k = k, .v = v, .d = d};
    tp_run(tp, attn_backward_task, &j);
}
