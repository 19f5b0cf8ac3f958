#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/ops.h"

#include <math.h>

#include "kernels/quant.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* exp of 8 floats, Cephes' expf: x = n ln2 + r with ln 2 split in two
 * parts (r exact to float precision), exp(r) from a degree-6 polynomial,
 * 2^n put into the exponent. Within 2 ulp of libm's expf down to -87.3
 * (below: 0, where expf gives denormals); above 88.37 clamped to about
 * 2.4e38. The callers pass arguments <= 0. A decode step calls exp ~10^5
 * times (SwiGLU's gates, attention scores): one at a time through libm
 * that was a few percent of it. */
static inline __m256 exp8(__m256 x) {
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3365f)), _mm256_set1_ps(88.3762626647949f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* The same steps on one float, for the tails: every element gets the same
 * value wherever a loop splits its array (threads take different shares). */
static inline float exp1(float x) {
    float v[8] = {x};
    __m256 r = exp8(_mm256_loadu_ps(v));
    return _mm256_cvtss_f32(r);
}
#define EXP(x) exp1(x)
#else
#define EXP(x) expf(x)
#endif

void rmsnorm_offset_forward(float *out, const float *x, const float *w, float offset, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim;
        float *ot = out + (long)t * dim;
        float ss = dot_f32(xt, xt, dim);
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        /* Gemma: (x * rsqrt(...)) * (1 + w), both factors in float */
        for (int i = 0; i < dim; i++) ot[i] = (xt[i] * scale) * (offset + w[i]);
    }
}

/* offset 0: 0 + w[i] is w[i] exactly, so this is plain RMSNorm bit for bit */
void rmsnorm_forward(float *out, const float *x, const float *w, int n, int dim, float eps) {
    rmsnorm_offset_forward(out, x, w, 0.0f, n, dim, eps);
}

void layernorm_noparam_forward(float *out, const float *x, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (long)t * dim;
        float *ot = out + (long)t * dim;
        /* two passes in double: the mean first, so the variance has no
         * cancellation however large the mean */
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += xt[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (xt[i] - mean) * (xt[i] - mean);
        var /= dim;
        float m = (float)mean, r = (float)(1.0 / sqrt(var + eps));
        for (int i = 0; i < dim; i++) ot[i] = (xt[i] - m) * r;
    }
}

void clamp_forward(float *x, long n, float c) {
    for (long i = 0; i < n; i++) x[i] = x[i] < -c ? -c : x[i] > c ? c : x[i];
}

void softcap_forward(float *x, long n, float cap) {
    for (long i = 0; i < n; i++) x[i] = tanhf(x[i] / cap) * cap;
}

void scale_forward(float *x, long n, float s) {
    for (long i = 0; i < n; i++) x[i] *= s;
}

void add_forward(float *x, const float *y, long n) {
    for (long i = 0; i < n; i++) x[i] += y[i];
}

void add_bias_forward(float *x, const float *b, int n, int dim) {
    for (int t = 0; t < n; t++) add_forward(x + (long)t * dim, b, dim);
}

void swiglu_forward(float *out, const float *gate, const float *up, long n) {
    long i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; i + 8 <= n; i += 8) {
        /* sigmoid(g) = 1 / (1 + e) for g >= 0, e / (1 + e) below, with
         * e = exp(-|g|) <= 1: no overflow at either end */
        __m256 g = _mm256_loadu_ps(gate + i), one = _mm256_set1_ps(1.0f);
        __m256 neg = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
        __m256 e = exp8(_mm256_or_ps(g, _mm256_set1_ps(-0.0f))); /* exp(-|g|) */
        __m256 sig = _mm256_div_ps(_mm256_blendv_ps(one, e, neg), _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, sig), _mm256_loadu_ps(up + i)));
    }
#endif
    for (; i < n; i++) { /* the same formula as the vector body */
        float g = gate[i], e = EXP(-fabsf(g));
        out[i] = g * ((g < 0 ? e : 1.0f) / (1.0f + e)) * up[i];
    }
}

float gelu_tanh(float x) {
    /* sqrt(2/pi), as PyTorch's kBeta = M_SQRT2 * M_2_SQRTPI * 0.5 */
    const float beta = (float)(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
    float inner = beta * (x + kappa * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

void geglu_tanh_forward(float *out, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) out[i] = gelu_tanh(gate[i]) * up[i];
}

void softmax_forward(float *x, int n) {
    float max = x[0];
    int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    /* (the compiler leaves a ternary max scalar: NaN rules) */
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        float part[8];
        _mm256_storeu_ps(part, m);
        for (int l = 0; l < 8; l++) max = part[l] > max ? part[l] : max;
    }
#endif
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    float sum = 0;
    i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vs = _mm256_setzero_ps(), vm = _mm256_set1_ps(max);
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vs = _mm256_add_ps(vs, e);
    }
    float part[8];
    _mm256_storeu_ps(part, vs);
    sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
#endif
    for (; i < n; i++) {
        x[i] = EXP(x[i] - max);
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
    rope_forward_scaled(x, n_heads, head_dim, pos, inv_freq, interleaved, 1.0f);
}

void rope_forward_scaled(float *x, int n_heads, int head_dim, int pos, const float *inv_freq, int interleaved,
                         float mscale) {
    int half = head_dim / 2;
    float c[half], s[half]; /* head_dim is small (<= 256) */
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        c[i] = (float)cos(angle) * mscale;
        s[i] = (float)sin(angle) * mscale;
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
