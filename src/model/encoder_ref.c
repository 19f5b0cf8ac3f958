/* encoder_ref: the encoder computed the way a PyTorch BertModel does it —
 * texts padded to the longest, an additive attention mask hiding the
 * padding keys, triple loops, erf in double — with nothing shared with the
 * fast path but the weights and the pooling. Slow; for tests. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "model/encoder_internal.h"

/* y[rows, n_out] = x[rows, n_in] W^T + b */
static void ref_linear(float *y, const float *x, const float *w, const float *b, int rows, int n_in, int n_out) {
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < n_out; o++) {
            double acc = b[o];
            for (int i = 0; i < n_in; i++) acc += (double)x[(size_t)r * n_in + i] * w[(size_t)o * n_in + i];
            y[(size_t)r * n_out + o] = (float)acc;
        }
}

static void ref_layernorm(float *x, const float *w, const float *b, int rows, int dim, float eps) {
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * dim;
        double mean = 0, var = 0;
        for (int i = 0; i < dim; i++) mean += v[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (v[i] - mean) * (v[i] - mean);
        var /= dim;
        for (int i = 0; i < dim; i++) v[i] = (float)((v[i] - mean) / sqrt(var + eps) * w[i] + b[i]);
    }
}

/* One padded batch element: L positions, the first len real. */
static void ref_attention(float *out, const float *q, const float *k, const float *v, int L, int len, int heads,
                          int hd) {
    int ld = heads * hd;
    double *p = xmalloc((size_t)L * sizeof *p);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < L; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < L; j++) {
                double dot = 0;
                for (int c = 0; c < hd; c++) dot += (double)q[i * ld + h * hd + c] * k[j * ld + h * hd + c];
                /* the mask transformers adds: the float minimum on padding keys */
                p[j] = dot / sqrt((double)hd) + (j < len ? 0.0 : -3.4028234663852886e38);
                if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j < L; j++) sum += (p[j] = exp(p[j] - mx));
            for (int c = 0; c < hd; c++) {
                double acc = 0;
                for (int j = 0; j < L; j++) acc += p[j] / sum * v[j * ld + h * hd + c];
                out[i * ld + h * hd + c] = (float)acc;
            }
        }
    free(p);
}

/* The padded hidden states h[L, hidden] of one sequence after all layers. */
static void ref_sequence(const Encoder *enc, const int32_t *ids, int len, int L, float *x) {
    const EncoderConfig *c = &enc->cfg;
    const EncoderWeights *w = &enc->w;
    int H = c->hidden, M = c->intermediate;
    size_t lh = (size_t)L * H;
    float *q = xmalloc(lh * sizeof *q), *k = xmalloc(lh * sizeof *k), *v = xmalloc(lh * sizeof *v);
    float *a = xmalloc(lh * sizeof *a), *t = xmalloc(lh * sizeof *t), *f = xmalloc((size_t)L * M * sizeof *f);
    for (int p = 0; p < L; p++) {
        int id = p < len ? ids[p] : 0; /* [PAD] is id 0 in BERT vocabularies */
        for (int i = 0; i < H; i++)
            x[p * H + i] = w->word[(size_t)id * H + i] + w->pos[(size_t)p * H + i] + (w->type0 ? w->type0[i] : 0);
    }
    ref_layernorm(x, w->emb_ln_w, w->emb_ln_b, L, H, c->eps);
    for (int l = 0; l < c->n_layers; l++) {
        const EncoderLayer *Ly = &w->layers[l];
        ref_linear(q, x, Ly->wq, Ly->bq, L, H, H);
        ref_linear(k, x, Ly->wk, Ly->bk, L, H, H);
        ref_linear(v, x, Ly->wv, Ly->bv, L, H, H);
        ref_attention(a, q, k, v, L, len, c->n_heads, H / c->n_heads);
        ref_linear(t, a, Ly->wo, Ly->bo, L, H, H);
        for (size_t i = 0; i < lh; i++) x[i] += t[i];
        ref_layernorm(x, Ly->ln1_w, Ly->ln1_b, L, H, c->eps);
        ref_linear(f, x, Ly->w1, Ly->b1, L, H, M);
        for (size_t i = 0; i < (size_t)L * M; i++) f[i] = (float)(0.5 * f[i] * (1.0 + erf(f[i] / sqrt(2.0))));
        ref_linear(t, f, Ly->w2, Ly->b2, L, M, H);
        for (size_t i = 0; i < lh; i++) x[i] += t[i];
        ref_layernorm(x, Ly->ln2_w, Ly->ln2_b, L, H, c->eps);
    }
    free(q), free(k), free(v), free(a), free(t), free(f);
}

int encoder_embed_ids_ref(const Encoder *enc, const int32_t *const *ids, const int *lens, int n, float **vecs,
                          int *dim, Err *e) {
    *vecs = NULL;
    if (encoder_check_ids(enc, ids, lens, n, e)) return -1;
    int H = enc->cfg.hidden, L = 1;
    for (int s = 0; s < n; s++)
        if (lens[s] > L) L = lens[s];
    float *out = xmalloc(((size_t)n * H + 1) * sizeof *out);
    float *x = xmalloc((size_t)L * H * sizeof *x);
    for (int s = 0; s < n; s++) {
        ref_sequence(enc, ids[s], lens[s], L, x);
        encoder_pool(&enc->cfg, x, lens[s], out + (size_t)s * H);
    }
    free(x);
    *vecs = out;
    if (dim) *dim = H;
    return 0;
}
