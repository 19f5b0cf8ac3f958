#include "kernels/ops.h"

#include <math.h>

#include "kernels/quant.h"

void rmsnorm_forward(float *out, const float *x, const float *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim;
        float *ot = out + (long)t * dim;
        float ss = dot_f32(xt, xt, dim);
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++) ot[i] = w[i] * (xt[i] * scale);
    }
}

void add_forward(float *x, const float *y, long n) {
    for (long i = 0; i < n; i++) x[i] += y[i];
}

void add_bias_forward(float *x, const float *b, int n, int dim) {
    for (int t = 0; t < n; t++) add_forward(x + (long)t * dim, b, dim);
}

void swiglu_forward(float *out, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void softmax_forward(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* Llama 3: long wavelengths are slowed by `factor`, short ones kept, and
 * the band between interpolated (transformers' _compute_llama3_parameters). */
static float llama3_scale(float inv_freq, const RopeScaling *s) {
    double low_wavelen = s->original_max_pos / s->low_freq_factor;
    double high_wavelen = s->original_max_pos / s->high_freq_factor;
    double wavelen = 2 * M_PI / inv_freq;
    if (wavelen < high_wavelen) return inv_freq;
    if (wavelen > low_wavelen) return inv_freq / s->factor;
    double smooth = (s->original_max_pos / wavelen - s->low_freq_factor) / (s->high_freq_factor - s->low_freq_factor);
    return (float)((1 - smooth) * inv_freq / s->factor + smooth * inv_freq);
}

void rope_inv_freq(float *inv_freq, int rot_dim, double theta, const RopeScaling *scaling) {
    for (int i = 0; i < rot_dim / 2; i++) {
        float f = (float)(1.0 / pow(theta, (double)(2 * i) / rot_dim));
        if (scaling && scaling->type == ROPE_SCALING_LINEAR) f /= scaling->factor;
        if (scaling && scaling->type == ROPE_SCALING_LLAMA3) f = llama3_scale(f, scaling);
        inv_freq[i] = f;
    }
}

void rope_forward(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved) {
    int half = head_dim / 2;
    float c[half], s[half]; /* head_dim is small (<= 256) */
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        c[i] = (float)cos(angle);
        s[i] = (float)sin(angle);
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (long)h * head_dim;
        for (int i = 0; i < half; i++) {
            int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
            float x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * c[i] - x1 * s[i];
            v[i1] = x1 * c[i] + x0 * s[i];
        }
    }
}
