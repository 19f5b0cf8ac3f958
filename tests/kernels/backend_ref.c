/* backend_ref: a second implementation of kernels/backend.h, for the tests
 * only: every op as plain loops accumulating in double, written from the
 * equations (the comments of backend.h, transformers' definitions), not
 * from the CPU backend's code. It shows the seam: model/decoder.c and
 * train/decoder_train.c run on it unchanged (test_backend.c,
 * test_backend_train.c), so a CUDA backend plugs in the same way.
 *
 * With host_resident 0 (inference) its memory is its own: weights are
 * copied at bind time (and freed with the backend), activations and KV
 * caches are allocated here, logits come back through download -- the
 * paths a device backend takes. Training needs host memory (the trainer's
 * parameters and optimiser are host-resident), so test_backend_train.c
 * makes it with host_resident 1.
 *
 * Included by the tests that use it (one translation unit each). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/dtype.h"
#include "kernels/attention.h"
#include "kernels/backend.h"
#include "kernels/backend_cpu_lora.h" /* lora_dropout_rows: the mask's definition (hash of coordinates) */

typedef struct RefState {
    void **owned; /* weight copies */
    int n_owned;
    size_t allocs, frees, uploads, downloads; /* for the tests: the memory paths were taken */
} RefState;

static RefState *ref_state(Backend *be) { return be->impl; }

static void ref_destroy(Backend *be) {
    RefState *s = be->impl;
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s);
    free(be);
}
static void *ref_alloc(Backend *be, size_t bytes) {
    ref_state(be)->allocs++;
    return xcalloc(1, bytes ? bytes : 1);
}
static void ref_free(Backend *be, void *p) {
    ref_state(be)->frees++;
    free(p);
}
static void ref_upload(Backend *be, void *dst, const void *src, size_t n) {
    ref_state(be)->uploads++;
    memcpy(dst, src, n);
}
static void ref_download(Backend *be, void *dst, const void *src, size_t n) {
    ref_state(be)->downloads++;
    memcpy(dst, src, n);
}
static void ref_copy(Backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    memmove(dst, src, n);
}
static void ref_zero(Backend *be, void *dst, size_t n) {
    (void)be;
    memset(dst, 0, n);
}
static void *ref_own_copy(Backend *be, const void *src, size_t n) {
    RefState *s = be->impl;
    void *p = xmalloc(n ? n : 1);
    memcpy(p, src, n);
    s->owned = xrealloc(s->owned, (size_t)(s->n_owned + 1) * sizeof *s->owned);
    s->owned[s->n_owned++] = p;
    return p;
}
static void ref_mat_bind(Backend *be, QMat *w) {
    w->data = ref_own_copy(be, w->data, dtype_nbytes(w->type, w->cols) * (size_t)w->rows);
}
static void ref_vec_bind(Backend *be, float **v, long n) { *v = ref_own_copy(be, *v, (size_t)n * sizeof(float)); }
static void ref_keep_mat(Backend *be, QMat *w) { (void)be, (void)w; }
static void ref_keep_vec(Backend *be, float **v, long n) { (void)be, (void)v, (void)n; }

/* W's row r as floats (dequantised) into buf. */
static const float *ref_row(const QMat *w, int r, float *buf) {
    dequantize_row(w->type, qmat_row(w, r), buf, w->cols);
    return buf;
}

static void ref_embed(Backend *be, float *x, const QMat *E, const int32_t *ids, int n, float scale) {
    (void)be;
    for (int t = 0; t < n; t++) {
        float *xt = x + (long)t * E->cols;
        ref_row(E, ids[t], xt);
        if (scale > 0 && scale != 1.0f)
            for (int i = 0; i < E->cols; i++) xt[i] = (float)((double)xt[i] * scale);
    }
}

static void ref_norm(Backend *be, BackendNorm kind, float *out, const float *x, const float *w, float offset, int n,
                     int dim, float eps) {
    (void)be;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim;
        float *ot = out + (long)t * dim;
        double mean = 0, ss = 0;
        if (kind == BNORM_LAYER_NOPARAM)
            for (int i = 0; i < dim; i++) mean += xt[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) ss += (xt[i] - mean) * (xt[i] - mean);
        double r = 1.0 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++)
            ot[i] = (float)(kind == BNORM_LAYER_NOPARAM ? (xt[i] - mean) * r : xt[i] * r * (offset + (double)w[i]));
    }
}

/* Both precisions alike: x as it is (BPREC_INFER allows rounding, never
 * requires it), the reference the CPU backend's rounded paths are held to
 * within their derived budget. */
static void ref_linear(Backend *be, float *y, const float *x, int n, const QMat *w, const float *b, BackendPrec prec) {
    (void)be, (void)prec;
    float *row = xmalloc((size_t)w->cols * sizeof *row);
    for (int r = 0; r < w->rows; r++) {
        ref_row(w, r, row);
        for (int t = 0; t < n; t++) {
            double s = b ? b[r] : 0;
            for (int i = 0; i < w->cols; i++) s += (double)row[i] * x[(long)t * w->cols + i];
            y[(long)t * w->rows + r] = (float)s;
        }
    }
    free(row);
}

static void ref_linear_group(Backend *be, int k, float *const ys[], const float *x, int n, const QMat *const ws[],
                             const float *const bs[], BackendPrec prec) {
    for (int i = 0; i < k; i++) ref_linear(be, ys[i], x, n, ws[i], bs ? bs[i] : NULL, prec);
}

/* Each (i0, i1) pair of a head turned by angle pos·inv_freq[i] (the
 * transpose with backward), cos and sin times mscale. The angle is the
 * float32 product, as transformers defines it (kernels/ops.h): at position
 * 100 its rounding moves the angle by ~1e-6, which LongRoPE's scaled
 * scores carry into the gradients beyond their budget if the reference
 * took the angle in double. */
static void ref_rope(Backend *be, float *x, int n, const BackendRope *r, int backward) {
    (void)be;
    int half = r->rot / 2;
    for (int t = 0; t < n; t++) {
        const float *f = r->long_tok && r->long_tok[t] ? r->inv_freq_long : r->inv_freq;
        for (int h = 0; h < r->n_heads; h++) {
            float *v = x + ((long)t * r->n_heads + h) * r->head_dim;
            for (int i = 0; i < half; i++) {
                float a = (float)r->pos[t] * f[i];
                double c = cos(a) * r->mscale, s = sin(a) * r->mscale;
                if (backward) s = -s;
                int i0 = r->interleaved ? 2 * i : i, i1 = r->interleaved ? 2 * i + 1 : i + half;
                double x0 = v[i0], x1 = v[i1];
                v[i0] = (float)(x0 * c - x1 * s);
                v[i1] = (float)(x1 * c + x0 * s);
            }
        }
    }
}

static double silu(double g) { return g / (1 + exp(-g)); }
static double gelu_t(double g) { return 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g))); }

static void ref_act(Backend *be, BackendAct kind, float *out, const float *gate, const float *up, long n) {
    (void)be;
    for (long i = 0; i < n; i++) out[i] = (float)((kind == BACT_GEGLU_TANH ? gelu_t(gate[i]) : silu(gate[i])) * up[i]);
}

static void ref_add(Backend *be, float *x, const float *y, long n) {
    (void)be;
    for (long i = 0; i < n; i++) x[i] = (float)((double)x[i] + y[i]);
}

static void ref_map(Backend *be, BackendMap kind, float *x, long n, float c) {
    (void)be;
    for (long i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(kind == BMAP_CLAMP ? fmin(fmax(v, -c), c) : kind == BMAP_SOFTCAP ? c * tanh(v / c) : v * c);
    }
}

static void ref_kv_store(Backend *be, void *base, int type, int max_seq, int n_heads, int head_dim, int pos,
                         const float *src) {
    (void)be;
    size_t es = dtype_block_bytes(type);
    for (int h = 0; h < n_heads; h++) {
        char *dst = (char *)base + ((size_t)h * max_seq + pos) * head_dim * es;
        if (type == DT_F16) quantize_row(DT_F16, src + (long)h * head_dim, dst, head_dim);
        else memcpy(dst, src + (long)h * head_dim, (size_t)head_dim * sizeof(float));
    }
}

static void ref_attention(Backend *be, float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                          const int *pos) {
    (void)be;
    attention_forward_ref(out, q, n, s, caches, pos); /* the kernels' double reference */
}

/* ---- training ---- */

static void ref_linear_backward(Backend *be, float *dx, float *dW, float *db, const float *dy, const float *x,
                                const QMat *W, int T) {
    (void)be;
    const int in = W->cols, out = W->rows;
    float *w = xmalloc((size_t)in * out * sizeof *w);
    for (int o = 0; o < out; o++) ref_row(W, o, w + (long)o * in);
    for (int t = 0; dx && t < T; t++)
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int o = 0; o < out; o++) s += (double)dy[(long)t * out + o] * w[(long)o * in + i];
            dx[(long)t * in + i] += (float)s;
        }
    for (int o = 0; dW && o < out; o++)
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += (double)dy[(long)t * out + o] * x[(long)t * in + i];
            dW[(long)o * in + i] += (float)s;
        }
    for (int o = 0; db && o < out; o++) {
        double s = 0;
        for (int t = 0; t < T; t++) s += dy[(long)t * out + o];
        db[o] += (float)s;
    }
    free(w);
}

/* RMSNorm y = x·r·(off + w), r = (mean x² + eps)^-1/2: with g = dy·(off + w),
 * dx = r·g − r³/dim · x · Σ g·x;  dw += dy·x·r. LayerNorm y = (x − μ)·r:
 * dx = r·(dy − mean dy − y · mean(dy·y)). */
static void ref_norm_backward(Backend *be, BackendNorm kind, float *dx, float *dw, const float *dy, const float *x,
                              const float *w, float offset, int n, int dim, float eps) {
    (void)be;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim, *gt = dy + (long)t * dim;
        float *dt = dx + (long)t * dim;
        if (kind == BNORM_LAYER_NOPARAM) {
            double mean = 0, var = 0, mg = 0, mgy = 0;
            for (int i = 0; i < dim; i++) mean += xt[i];
            mean /= dim;
            for (int i = 0; i < dim; i++) var += (xt[i] - mean) * (xt[i] - mean);
            double r = 1 / sqrt(var / dim + eps);
            for (int i = 0; i < dim; i++) mg += gt[i], mgy += gt[i] * (xt[i] - mean) * r;
            mg /= dim, mgy /= dim;
            for (int i = 0; i < dim; i++) dt[i] += (float)(r * (gt[i] - mg - (xt[i] - mean) * r * mgy));
            continue;
        }
        double ss = 0, gx = 0;
        for (int i = 0; i < dim; i++) ss += (double)xt[i] * xt[i];
        double r = 1 / sqrt(ss / dim + eps);
        for (int i = 0; i < dim; i++) gx += gt[i] * (offset + (double)w[i]) * xt[i];
        for (int i = 0; i < dim; i++)
            dt[i] += (float)(r * gt[i] * (offset + (double)w[i]) - r * r * r / dim * xt[i] * gx);
        for (int i = 0; dw && i < dim; i++) dw[i] += (float)(gt[i] * (double)xt[i] * r);
    }
}

static void ref_act_backward(Backend *be, BackendAct kind, float *dgate, float *dup, const float *dout,
                             const float *gate, const float *up, long n) {
    (void)be;
    const double k = sqrt(2 / M_PI);
    for (long i = 0; i < n; i++) {
        double g = gate[i], a, da;
        if (kind == BACT_GEGLU_TANH) {
            double th = tanh(k * (g + 0.044715 * g * g * g));
            a = 0.5 * g * (1 + th);
            da = 0.5 * (1 + th) + 0.5 * g * (1 - th * th) * k * (1 + 3 * 0.044715 * g * g);
        } else {
            double sg = 1 / (1 + exp(-g));
            a = g * sg;
            da = sg * (1 + g * (1 - sg));
        }
        dgate[i] += (float)(dout[i] * up[i] * da);
        dup[i] += (float)(dout[i] * a);
    }
}

static void ref_map_backward(Backend *be, BackendMap kind, float *dx, const float *dy, const float *y, long n,
                             float c) {
    (void)be;
    int overwrite = dx == dy || dx == y;
    for (long i = 0; i < n; i++) {
        double u = (double)y[i] / c;
        double d = kind == BMAP_CLAMP ? (y[i] > -c && y[i] < c ? dy[i] : 0)
                   : kind == BMAP_SOFTCAP ? dy[i] * (1 - u * u)
                                          : (double)dy[i] * c;
        dx[i] = (float)(overwrite ? d : dx[i] + d);
    }
}

static void ref_embed_backward(Backend *be, float *dE, const float *dx, const int32_t *ids, int T, int dim,
                               float scale) {
    (void)be;
    double s = scale != 0 ? scale : 1;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < dim; i++) dE[(long)ids[t] * dim + i] += (float)(s * dx[(long)t * dim + i]);
}

/* The keys token t attends to: [lo, t]. */
static int attn_lo(const AttnDims *d, const AttnOpts *o, int t) {
    int lo = d->seg_start ? d->seg_start[t] : 0;
    if (o && o->window > 0 && t - o->window + 1 > lo) lo = t - o->window + 1;
    return lo;
}

static double attn_scale(const AttnDims *d, const AttnOpts *o) {
    return o && o->scale > 0 ? o->scale : 1 / sqrt((double)d->head_dim);
}

static void ref_attn_train(Backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                           const AttnDims *d, const AttnOpts *o) {
    (void)be;
    const int T = d->T, H = d->n_heads, KV = d->n_kv_heads, D = d->head_dim, grp = H / KV;
    const double sc = attn_scale(d, o), cap = o ? o->softcap : 0;
    double *p = xmalloc((size_t)T * sizeof *p);
    memset(att, 0, (size_t)H * T * T * sizeof *att);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            int lo = attn_lo(d, o, t);
            const float *qt = q + ((long)t * H + h) * D;
            double mx = -INFINITY, sum = 0;
            for (int j = lo; j <= t; j++) {
                const float *kj = k + ((long)j * KV + h / grp) * D;
                double s = 0;
                for (int i = 0; i < D; i++) s += (double)qt[i] * kj[i];
                s *= sc;
                if (cap > 0) s = cap * tanh(s / cap);
                p[j] = s, mx = fmax(mx, s);
            }
            for (int j = lo; j <= t; j++) p[j] = exp(p[j] - mx), sum += p[j];
            float *ot = out + ((long)t * H + h) * D;
            for (int i = 0; i < D; i++) {
                double acc = 0;
                for (int j = lo; j <= t; j++) acc += p[j] / sum * v[((long)j * KV + h / grp) * D + i];
                ot[i] = (float)acc;
            }
            for (int j = lo; j <= t; j++) att[((long)h * T + t) * T + j] = (float)(p[j] / sum);
        }
    free(p);
}

/* With P the probabilities: dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P ∘ (dP − Σ P∘dP);
 * through the soft-cap dS·(1 − (s/cap)²) (s the capped score); dQ +=
 * scale·dS·K; dK += scale·dSᵀ·Q. */
static void ref_attn_train_backward(Backend *be, float *dq, float *dk, float *dv, const float *dout,
                                    const float *att, const float *q, const float *k, const float *v,
                                    const AttnDims *d, const AttnOpts *o) {
    (void)be;
    const int T = d->T, H = d->n_heads, KV = d->n_kv_heads, D = d->head_dim, grp = H / KV;
    const double sc = attn_scale(d, o), cap = o ? o->softcap : 0;
    double *dp = xmalloc((size_t)T * sizeof *dp);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            int lo = attn_lo(d, o, t);
            const float *P = att + ((long)h * T + t) * T, *dO = dout + ((long)t * H + h) * D;
            const float *qt = q + ((long)t * H + h) * D;
            double dot = 0;
            for (int j = lo; j <= t; j++) {
                const float *vj = v + ((long)j * KV + h / grp) * D;
                float *dvj = dv + ((long)j * KV + h / grp) * D;
                double s = 0;
                for (int i = 0; i < D; i++) s += (double)dO[i] * vj[i], dvj[i] += (float)(P[j] * (double)dO[i]);
                dp[j] = s, dot += P[j] * s;
            }
            for (int j = lo; j <= t; j++) {
                const float *kj = k + ((long)j * KV + h / grp) * D;
                float *dkj = dk + ((long)j * KV + h / grp) * D;
                double ds = P[j] * (dp[j] - dot);
                if (cap > 0) {
                    double s = 0;
                    for (int i = 0; i < D; i++) s += (double)qt[i] * kj[i];
                    double u = tanh(s * sc / cap);
                    ds *= 1 - u * u;
                }
                for (int i = 0; i < D; i++) {
                    dq[((long)t * H + h) * D + i] += (float)(sc * ds * kj[i]);
                    dkj[i] += (float)(sc * ds * qt[i]);
                }
            }
        }
    free(dp);
}

/* The adapter's input rows: x, or dropout(x) into xd. */
static const float *lora_in(const float *x, int T, const BackendLora *a) {
    if (!a->drop) return x;
    lora_dropout_rows(a->drop, a->xd, x, 0, T, a->in);
    return a->xd;
}

static void ref_lora(Backend *be, float *y, const float *x, int T, const BackendLora *a) {
    (void)be;
    const float *xi = lora_in(x, T, a);
    for (int t = 0; t < T; t++) {
        for (int r = 0; r < a->r; r++) {
            double s = 0;
            for (int i = 0; i < a->in; i++) s += (double)xi[(long)t * a->in + i] * a->A[(long)r * a->in + i];
            a->u[(long)t * a->r + r] = (float)s;
        }
        for (int o = 0; o < a->out; o++) {
            double s = 0;
            for (int r = 0; r < a->r; r++) s += (double)a->u[(long)t * a->r + r] * a->B[(long)o * a->r + r];
            y[(long)t * a->out + o] = (float)(y[(long)t * a->out + o] + a->scale * s);
        }
    }
}

static void ref_lora_backward(Backend *be, float *dx, float *dA, float *dB, const float *dy, const float *x, int T,
                              const BackendLora *a) {
    (void)be;
    const int in = a->in, out = a->out, R = a->r;
    const float *xi = lora_in(x, T, a);
    for (int o = 0; o < out; o++)
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += (double)dy[(long)t * out + o] * a->u[(long)t * R + r];
            dB[(long)o * R + r] += (float)(a->scale * s);
        }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int o = 0; o < out; o++) s += (double)dy[(long)t * out + o] * a->B[(long)o * R + r];
            a->du[(long)t * R + r] = (float)(a->scale * s);
        }
    for (int r = 0; r < R; r++)
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += (double)a->du[(long)t * R + r] * xi[(long)t * in + i];
            dA[(long)r * in + i] += (float)s;
        }
    if (!dx) return;
    float *g = xmalloc((size_t)in * sizeof *g);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int r = 0; r < R; r++) s += (double)a->du[(long)t * R + r] * a->A[(long)r * in + i];
            g[i] = (float)s;
        }
        if (a->drop) lora_dropout_backward_rows(a->drop, dx + (long)t * in, g, t, t + 1, in);
        else
            for (int i = 0; i < in; i++) dx[(long)t * in + i] += g[i];
    }
    free(g);
}

static void ref_lora_merge(Backend *be, float *W, const float *A, const float *B, int in, int out, int r,
                           float scale) {
    (void)be;
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int k = 0; k < r; k++) s += (double)B[(long)o * r + k] * A[(long)k * in + i];
            W[(long)o * in + i] = (float)(W[(long)o * in + i] + scale * s);
        }
}

static double ref_lse(const float *x, int V) {
    double mx = x[0], s = 0;
    for (int v = 1; v < V; v++) mx = fmax(mx, x[v]);
    for (int v = 0; v < V; v++) s += exp(x[v] - mx);
    return mx + log(s);
}

static double ref_nll_sum(Backend *be, const float *logits, const int32_t *labels, int T, int V, int *n_valid) {
    (void)be;
    double total = 0;
    int n = 0;
    for (int t = 0; t < T; t++) {
        if (labels[t] == BACKEND_LABEL_IGNORE) continue;
        const float *x = logits + (long)t * V;
        total += ref_lse(x, V) - x[labels[t]], n++;
    }
    if (n_valid) *n_valid = n;
    return total;
}

static void ref_nll_sum_backward(Backend *be, float *dlogits, const float *logits, const int32_t *labels, int T,
                                 int V, float scale) {
    (void)be;
    for (int t = 0; t < T; t++) {
        const float *x = logits + (long)t * V;
        float *d = dlogits + (long)t * V;
        if (labels[t] == BACKEND_LABEL_IGNORE) {
            memset(d, 0, (size_t)V * sizeof *d);
            continue;
        }
        double lse = ref_lse(x, V);
        int lab = labels[t];
        for (int v = 0; v < V; v++) d[v] = (float)(scale * (exp(x[v] - lse) - (v == lab)));
    }
}

static Backend *backend_ref_new(int host_resident) {
    Backend *be = xcalloc(1, sizeof *be);
    be->name = "ref";
    be->host_resident = host_resident;
    be->impl = xcalloc(1, sizeof(RefState));
    be->destroy = ref_destroy;
    be->alloc = ref_alloc;
    be->free = ref_free;
    be->upload = ref_upload;
    be->download = ref_download;
    be->copy = ref_copy;
    be->zero = ref_zero;
    /* host memory is host memory: a host-resident test backend keeps the
     * weights where they are, as the trainer (which updates them) needs */
    be->mat_bind = host_resident ? ref_keep_mat : ref_mat_bind;
    be->vec_bind = host_resident ? ref_keep_vec : ref_vec_bind;
    be->embed = ref_embed;
    be->norm = ref_norm;
    be->linear = ref_linear;
    be->linear_group = ref_linear_group;
    be->rope = ref_rope;
    be->act = ref_act;
    be->add = ref_add;
    be->map = ref_map;
    be->kv_store = ref_kv_store;
    be->attention = ref_attention;
    be->linear_backward = ref_linear_backward;
    be->norm_backward = ref_norm_backward;
    be->act_backward = ref_act_backward;
    be->map_backward = ref_map_backward;
    be->embed_backward = ref_embed_backward;
    be->attn_train = ref_attn_train;
    be->attn_train_backward = ref_attn_train_backward;
    be->lora = ref_lora;
    be->lora_backward = ref_lora_backward;
    be->lora_merge = ref_lora_merge;
    be->nll_sum = ref_nll_sum;
    be->nll_sum_backward = ref_nll_sum_backward;
    return be;
}
