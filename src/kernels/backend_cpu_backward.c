#include "kernels/backend_cpu_backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/gemm_bf16.h"
#include "kernels/quant.h"
#include "kernels/backend_cpu_backward_arch.h"

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

typedef struct FrozenJob {
    float *dx, *tiles;
    const float *dy;
    const QMat *W;
    int T;
    size_t tile_floats; /* per thread */
} FrozenJob;

/* Thread ith owns columns [c0, c1) of dx (and of W): it converts that slab
 * of W a block of rows at a time into its tile and adds dy[:, rows] · tile
 * to its columns. Each element of W is read and converted once, and no
 * two threads write the same memory. */
static void frozen_task(void *ctx, int ith, int nth) {
    const FrozenJob *j = ctx;
    const int in = j->W->cols, out = j->W->rows;
    /* split W's columns at whole blocks (a K-quant's 256): a row can only
     * be dequantised from a block's start */
    const long bs = dtype_block_size(j->W->type) > 0 ? dtype_block_size(j->W->type) : 1;
    long c0, c1;
    tp_split(in / bs, ith, nth, &c0, &c1);
    c0 *= bs, c1 *= bs;
    const long w = c1 - c0;
    if (w <= 0) return;
    float *tile = j->tiles + (size_t)ith * j->tile_floats;
    long block = (long)(j->tile_floats / (size_t)w);
    if (block < 1) block = 1;
    const size_t col_off = dtype_nbytes(j->W->type, c0);
    for (long r0 = 0; r0 < out; r0 += block) {
        const long r1 = r0 + block < out ? r0 + block : out;
        for (long r = r0; r < r1; r++)
            kernel_dequantize_row(j->W->type, (const char *)qmat_row(j->W, r) + col_off, tile + (r - r0) * w, w);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->T, (int)w, (int)(r1 - r0), 1.0f, j->dy + r0, out,
                    tile, (int)w, 1.0f, j->dx + c0, in);
    }
}

void linear_backward_frozen(ThreadPool *tp, float *dx, const float *dy, const QMat *W, int T, float *tiles,
                            size_t tile_floats) {
    if (W->type == DT_F32) {
        linear_backward(tp, dx, NULL, NULL, dy, NULL, W->data, T, W->cols, W->rows);
        return;
    }
    FrozenJob j = {dx, tiles, dy, W, T, tile_floats};
    tp_run(tp, frozen_task, &j);
}

void linear_backward_bf16(ThreadPool *tp, float *dx, float *dW, float *db, const float *dy, const float *x,
                          const QMat *W, int T) {
    const int in = W->cols, out = W->rows;
    if (dx)
        gemm_bf16(tp, T, in, out, 1.0f, (GemmMat){dy, 0, 0, out}, (GemmMat){W->data, W->type == DT_BF16, 0, in}, 1.0f,
                  dx, in);
    if (dW) gemm_bf16_sgemm(tp, 1, 0, out, in, T, 1.0f, dy, out, x, in, 1.0f, dW, in);
    /* row by row in t, as linear_backward_task adds them: the same sums */
    for (int t = 0; db && t < T; t++) {
        const float *dyt = dy + (long)t * out;
        for (int r = 0; r < out; r++) db[r] += dyt[r];
    }
}

/* ---- RMSNorm ---- */

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int dim,
                      float eps) {
    rmsnorm_offset_backward(dx, dw, dy, x, w, 0.0f, n, dim, eps);
}

/* y = (w + off) x r with r = (mean(x²)+eps)^-1/2, ∂r/∂x_i = −r³ x_i / dim, so
 * dx_i = r (w_i + off) dy_i − r³ x_i Σ_j (w_j + off) dy_j x_j / dim and
 * dw_i = dy_i x_i r. */
void rmsnorm_offset_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float off, int n,
                             int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim, *dyt = dy + (long)t * dim;
        float *dxt = dx + (long)t * dim;
        double ss = 0, gx = 0;
        for (int i = 0; i < dim; i++) {
            ss += (double)xt[i] * xt[i];
            gx += ((double)w[i] + off) * dyt[i] * xt[i];
        }
        double r = 1.0 / sqrt(ss / dim + eps), k = r * r * r * gx / dim;
        for (int i = 0; i < dim; i++) {
            dxt[i] += (float)(r * ((double)w[i] + off) * dyt[i] - k * xt[i]);
            if (dw) dw[i] += (float)(dyt[i] * xt[i] * r);
        }
    }
}

/* ---- RoPE ---- */

void rope_backward(float *dx, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved) {
    /* scale 1: the same float angle, cos and sin as rope_forward, bit for bit */
    rope_scaled_backward(dx, n_heads, head_dim, pos, inv_freq, interleaved, 1.0f);
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

/* ---- causal GQA attention ----
 *
 * Both passes work on blocks of ATTN_BQ query rows of one head, so the
 * products are GEMMs (QKᵀ, PV, dO·Vᵀ, dS·K, dSᵀ·Q, Pᵀ·dO) rather than rows of
 * dots. A block [t0, t1) only sees keys [seg_start[t0], t1): seg_start never
 * decreases, so that span holds every key any of its rows may attend to; the
 * few entries outside a row's own [seg_start[t], t] are masked to 0. The
 * (head, block) jobs are dealt round-robin over the threads, which evens out
 * the causal triangle's uneven block costs. */

enum { ATTN_BQ = 64 };

typedef struct AttnJob {
    float *out, *att_out, *dq, *dk, *dv;
    const float *att, *q, *k, *v, *dout;
    const AttnDims *d;
    AttnOpts o;
    float *dkv_part; /* backward: per thread, private dk then dv (T × KV·D each) */
} AttnJob;

static int attn_n_blocks(int T) { return (T + ATTN_BQ - 1) / ATTN_BQ; }

/* The first key token t attends to: its sequence's first token, or the
 * window's, whichever is later. Never decreases with t. */
static int attn_row_lo(const AttnJob *j, int t) {
    int lo = j->d->seg_start ? j->d->seg_start[t] : 0;
    if (j->o.window > 0 && t - j->o.window + 1 > lo) lo = t - j->o.window + 1;
    return lo;
}

static float attn_scale(const AttnJob *j) {
    return j->o.scale > 0 ? j->o.scale : 1.0f / sqrtf((float)j->d->head_dim);
}

static void attn_forward_task(void *ctx, int ith, int nth) {
    const AttnJob *j = ctx;
    const AttnDims *d = j->d;
    const int T = d->T, D = d->head_dim, H = d->n_heads, KV = d->n_kv_heads, group = H / KV;
    const int nb = attn_n_blocks(T);
    const float scale = attn_scale(j), cap = j->o.softcap;
    for (long job = ith; job < (long)H * nb; job += nth) {
        const int h = (int)(job / nb), g = h / group, t0 = (int)(job % nb) * ATTN_BQ;
        const int t1 = t0 + ATTN_BQ < T ? t0 + ATTN_BQ : T, lo = attn_row_lo(j, t0);
        const int m = t1 - t0, n = t1 - lo;
        float *P = j->att_out + ((long)h * T + t0) * T; /* rows t0.., columns from 0 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, D, scale, j->q + (long)t0 * H * D + (long)h * D,
                    H * D, j->k + (long)lo * KV * D + (long)g * D, KV * D, 0.0f, P + lo, T);
        for (int t = t0; t < t1; t++) {
            float *p = P + (long)(t - t0) * T;
            const int s0 = attn_row_lo(j, t);
            memset(p, 0, (size_t)s0 * sizeof *p);
            memset(p + t + 1, 0, (size_t)(T - t - 1) * sizeof *p);
            if (cap > 0) softcap_forward(p + s0, t + 1 - s0, cap);
            softmax_forward(p + s0, t + 1 - s0);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, n, 1.0f, P + lo, T,
                    j->v + (long)lo * KV * D + (long)g * D, KV * D, 0.0f, j->out + (long)t0 * H * D + (long)h * D,
                    H * D);
    }
}

void attn_train_forward_opts(ThreadPool *tp, float *out, float *att, const float *q, const float *k, const float *v,
                             const AttnDims *d, const AttnOpts *o) {
    AttnJob j = {.out = out, .att_out = att, .q = q, .k = k, .v = v, .d = d};
    if (o) j.o = *o;
    tp_run(tp, attn_forward_task, &j);
}

void attn_train_forward(ThreadPool *tp, float *out, float *att, const float *q, const float *k, const float *v,
                        const AttnDims *d) {
    attn_train_forward_opts(tp, out, att, q, k, v, d, NULL);
}

/* Backward: dq rows of a (head, block) belong to its job; dk and dv rows are
 * shared by every head of a group and every later block, so each thread adds
 * them into its own copy and the copies are summed afterwards. */
static void attn_backward_task(void *ctx, int ith, int nth) {
    const AttnJob *j = ctx;
    const AttnDims *d = j->d;
    const int T = d->T, D = d->head_dim, H = d->n_heads, KV = d->n_kv_heads, group = H / KV;
    const int nb = attn_n_blocks(T);
    const float scale = attn_scale(j), cap = j->o.softcap;
    const long kvn = (long)T * KV * D;
    float *dk = j->dkv_part + 2 * kvn * ith, *dv = dk + kvn;
    memset(dk, 0, 2 * (size_t)kvn * sizeof *dk);
    float *dS = xaligned_alloc((size_t)ATTN_BQ * T * sizeof *dS);
    float *Z = cap > 0 ? xaligned_alloc((size_t)ATTN_BQ * T * sizeof *Z) : NULL;
    for (long job = ith; job < (long)H * nb; job += nth) {
        const int h = (int)(job / nb), g = h / group, t0 = (int)(job % nb) * ATTN_BQ;
        const int t1 = t0 + ATTN_BQ < T ? t0 + ATTN_BQ : T, lo = attn_row_lo(j, t0);
        const int m = t1 - t0, n = t1 - lo;
        const float *P = j->att + ((long)h * T + t0) * T + lo;
        const float *dO = j->dout + (long)t0 * H * D + (long)h * D;
        const float *Q = j->q + (long)t0 * H * D + (long)h * D;
        const float *K = j->k + (long)lo * KV * D + (long)g * D, *V = j->v + (long)lo * KV * D + (long)g * D;
        /* dV += Pᵀ·dO;  dP = dO·Vᵀ */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, m, 1.0f, P, T, dO, H * D, 1.0f,
                    dv + (long)lo * KV * D + (long)g * D, KV * D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, D, 1.0f, dO, H * D, V, KV * D, 0.0f, dS, n);
        /* softmax backward: dS = P ⊙ (dP − Σ P·dP); P is 0 outside each row's span */
        for (int i = 0; i < m; i++) {
            const float *p = P + (long)i * T;
            float *ds = dS + (long)i * n;
            double sum = 0;
            for (int u = 0; u < n; u++) sum += (double)p[u] * ds[u];
            for (int u = 0; u < n; u++) ds[u] = p[u] * (ds[u] - (float)sum);
        }
        /* soft-capping: the capped scores again (not kept by the forward),
         * then dS ·= 1 − (z/cap)² (softcap_backward in place) */
        if (Z) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, D, scale, Q, H * D, K, KV * D, 0.0f, Z, n);
            softcap_forward(Z, (long)m * n, cap);
            softcap_backward(dS, dS, Z, (long)m * n, cap);
        }
        /* dQ += scale·dS·K;  dK += scale·dSᵀ·Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, n, scale, dS, n, K, KV * D, 1.0f,
                    j->dq + (long)t0 * H * D + (long)h * D, H * D);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, m, scale, dS, n, Q, H * D, 1.0f,
                    dk + (long)lo * KV * D + (long)g * D, KV * D);
    }
    free(dS);
    free(Z);
}

typedef struct AttnSum {
    float *dk, *dv;
    const float *part;
    long n;
    int parts;
} AttnSum;

static void attn_sum_task(void *ctx, int ith, int nth) {
    const AttnSum *s = ctx;
    long i0, i1;
    tp_split(s->n, ith, nth, &i0, &i1);
    for (int p = 0; p < s->parts; p++) {
        const float *dk = s->part + 2 * s->n * p, *dv = dk + s->n;
        for (long i = i0; i < i1; i++) s->dk[i] += dk[i], s->dv[i] += dv[i];
    }
}

void attn_train_backward(ThreadPool *tp, float *dq, float *dk, float *dv, const float *dout, const float *att,
                         const float *q, const float *k, const float *v, const AttnDims *d) {
    attn_train_backward_opts(tp, dq, dk, dv, dout, att, q, k, v, d, NULL);
}

void attn_train_backward_opts(ThreadPool *tp, float *dq, float *dk, float *dv, const float *dout, const float *att,
                              const float *q, const float *k, const float *v, const AttnDims *d, const AttnOpts *o) {
    const int nth = tp_size(tp);
    const long kvn = (long)d->T * d->n_kv_heads * d->head_dim;
    float *part = xaligned_alloc(2 * (size_t)kvn * (size_t)nth * sizeof *part);
    AttnJob j = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .att = att, .q = q, .k = k, .v = v, .d = d,
                 .dkv_part = part};
    if (o) j.o = *o;
    tp_run(tp, attn_backward_task, &j);
    AttnSum s = {dk, dv, part, kvn, nth};
    tp_run(tp, attn_sum_task, &s);
    free(part);
}
