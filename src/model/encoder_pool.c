/* encoder_pool: from a text's token vectors to one sentence vector, as
 * sentence-transformers' Pooling and Normalize modules compute it. Only the
 * text's own tokens take part (the padding a batched PyTorch run masks out
 * never exists here). */
#include <math.h>
#include <string.h>

#include "model/encoder_internal.h"

static void pool_mean(const float *h, int len, int dim, float scale, float *out) {
    memset(out, 0, (size_t)dim * sizeof *out);
    for (int t = 0; t < len; t++)
        for (int i = 0; i < dim; i++) out[i] += h[(size_t)t * dim + i];
    for (int i = 0; i < dim; i++) out[i] *= scale;
}

static void pool_max(const float *h, int len, int dim, float *out) {
    memcpy(out, h, (size_t)dim * sizeof *out);
    for (int t = 1; t < len; t++)
        for (int i = 0; i < dim; i++)
            if (h[(size_t)t * dim + i] > out[i]) out[i] = h[(size_t)t * dim + i];
}

/* torch.nn.functional.normalize: x / max(||x||, 1e-12). */
static void l2_normalize(float *x, int dim) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    double norm = sqrt(ss);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (int i = 0; i < dim; i++) x[i] *= inv;
}

void encoder_pool(const EncoderConfig *c, const float *h, int len, float *out) {
    int dim = c->hidden;
    switch (c->pooling) {
    case ENC_POOL_CLS: memcpy(out, h, (size_t)dim * sizeof *out); break;
    case ENC_POOL_LASTTOKEN: memcpy(out, h + (size_t)(len - 1) * dim, (size_t)dim * sizeof *out); break;
    case ENC_POOL_MAX: pool_max(h, len, dim, out); break;
    case ENC_POOL_MEAN_SQRT_LEN: pool_mean(h, len, dim, 1.0f / sqrtf((float)len), out); break;
    default: pool_mean(h, len, dim, 1.0f / (float)len, out); break;
    }
    if (c->normalize) l2_normalize(out, dim);
}
