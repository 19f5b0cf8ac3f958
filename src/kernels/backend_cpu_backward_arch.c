#include "kernels/backend_cpu_backward_arch.h"

#include <math.h>

#include "kernels/ops.h"
#include "kernels/backend_cpu_backward.h"

/* ---- norms ---- */

void norm_forward(TrainNorm kind, float *out, const float *x, const float *w, int n, int dim, float eps) {
    if (kind == TNORM_LAYER) layernorm_noparam_forward(out, x, n, dim, eps);
    else rmsnorm_offset_forward(out, x, w, kind == TNORM_RMS_1P ? 1.0f : 0.0f, n, dim, eps);
}

/* LayerNorm without parameters: x̂ = (x − μ) r, r = (var + eps)^-1/2;
 * dx = r (dy − mean(dy) − x̂ · mean(dy · x̂)). */
static void layer_backward(float *dx, const float *dy, const float *x, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim, *dyt = dy + (long)t * dim;
        float *dxt = dx + (long)t * dim;
        double mu = 0, var = 0;
        for (int i = 0; i < dim; i++) mu += xt[i];
        mu /= dim;
        for (int i = 0; i < dim; i++) var += (xt[i] - mu) * (xt[i] - mu);
        double r = 1.0 / sqrt(var / dim + eps), mdy = 0, mdyx = 0;
        for (int i = 0; i < dim; i++) {
            mdy += dyt[i];
            mdyx += dyt[i] * (xt[i] - mu) * r;
        }
        mdy /= dim, mdyx /= dim;
        for (int i = 0; i < dim; i++) dxt[i] += (float)(r * (dyt[i] - mdy - (xt[i] - mu) * r * mdyx));
    }
}

void norm_backward(TrainNorm kind, float *dx, float *dw, const float *dy, const float *x, const float *w, int n,
                   int dim, float eps) {
    if (kind == TNORM_LAYER) layer_backward(dx, dy, x, n, dim, eps);
    else rmsnorm_offset_backward(dx, dw, dy, x, w, kind == TNORM_RMS_1P ? 1.0f : 0.0f, n, dim, eps);
}

/* ---- soft-capping ---- */

void softcap_backward(float *dx, const float *dy, const float *y, long n, float cap) {
    /* d/dx cap·tanh(x/cap) = 1 − tanh²(x/cap) = 1 − (y/cap)² */
    if (dx == dy || dx == y) /* each element read before it is written */
        for (long i = 0; i < n; i++) {
            float u = y[i] / cap;
            dx[i] = dy[i] * (1.0f - u * u);
        }
    else
        for (long i = 0; i < n; i++) {
            float u = y[i] / cap;
            dx[i] += dy[i] * (1.0f - u * u);
        }
}

/* ---- GeGLU (tanh) ---- */

#define GELU_K 0.7978845608028654f /* sqrt(2/π) */
#define GELU_C 0.044715f

void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) {
        float x = gate[i], th = tanhf(GELU_K * (x + GELU_C * x * x * x));
        float g = 0.5f * x * (1.0f + th);
        /* d gelu/dx = (1 + th)/2 + x/2 · (1 − th²) · k (1 + 3c x²) */
        float dg = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
        dgate[i] += dout[i] * up[i] * dg;
        dup[i] += dout[i] * g;
    }
}

/* ---- clamp ---- */

void clamp_backward(float *dx, const float *dy, const float *y, long n, float c) {
    if (dx == y && dx != dy) {
        for (long i = 0; i < n; i++) dx[i] = y[i] > -c && y[i] < c ? dy[i] : 0;
        return;
    }
    if (dx == dy) {
        for (long i = 0; i < n; i++)
            if (!(y[i] > -c && y[i] < c)) dx[i] = 0;
        return;
    }
    for (long i = 0; i < n; i++)
        if (y[i] > -c && y[i] < c) dx[i] += dy[i];
}

/* ---- scaled embedding ---- */

void embedding_scaled_forward(float *out, const float *E, const int32_t *ids, int T, int dim, float scale) {
    for (int t = 0; t < T; t++) {
        const float *row = E + (long)ids[t] * dim;
        float *o = out + (long)t * dim;
        for (int i = 0; i < dim; i++) o[i] = row[i] * scale;
    }
}

void embedding_scaled_backward(float *dE, const float *dx, const int32_t *ids, int T, int dim, float scale) {
    for (int t = 0; t < T; t++) {
        float *row = dE + (long)ids[t] * dim;
        const float *g = dx + (long)t * dim;
        for (int i = 0; i < dim; i++) row[i] += scale * g[i];
    }
}

/* ---- RoPE with a cos/sin scale ---- */

void rope_scaled_backward(float *dx, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved,
                          float scale) {
    /* Rᵀ: the rotation by −angle with the same scale; the forward's float
     * angle and its rounded cos and sin */
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = (float)cos(angle) * scale, s = (float)sin(angle) * scale;
        for (int h = 0; h < n_heads; h++) {
            float *v = dx + (long)h * head_dim;
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            float g0 = v[i0], g1 = v[i1];
            v[i0] = g0 * c + g1 * s;
            v[i1] = g1 * c - g0 * s;
        }
    }
}
