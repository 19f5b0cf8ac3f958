/* encoder: the fast forward pass and the public embedding calls.
 *
 * Texts are packed back to back (no padding) so every linear layer is one
 * matrix product over all tokens of a chunk of texts (split over the
 * encoder's kernel pool by tokens, each share one single-threaded OpenBLAS
 * GEMM), and attention keeps each token within its own text.
 * Activations live in one block per call; the pool is taken in turns. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/mem.h"
#include "kernels/encoder_ops.h"
#include "model/encoder_internal.h"

/* Texts are run in chunks of about this many tokens: big enough for GEMM
 * efficiency, small enough that activations stay tens of megabytes. */
#define ENC_CHUNK_TOKENS 2048

/* Activations of one chunk of T packed tokens. */
typedef struct EncoderRun {
    float *x;                  /* [T, hidden] the residual stream */
    float *q, *k, *v, *att;    /* [T, hidden] */
    float *tmp;                /* [T, hidden] a sublayer's output before the residual */
    float *ff;                 /* [T, intermediate] */
    float *block;
} EncoderRun;

static void run_init(EncoderRun *r, const EncoderConfig *c, int T) {
    size_t th = (size_t)T * c->hidden;
    r->block = xmalloc((6 * th + (size_t)T * c->intermediate) * sizeof(float));
    r->x = r->block;
    r->q = r->x + th;
    r->k = r->q + th;
    r->v = r->k + th;
    r->att = r->v + th;
    r->tmp = r->att + th;
    r->ff = r->tmp + th;
}

static void add_inplace(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void embed_tokens(const Encoder *enc, const int32_t *const *ids, const int *lens, int n, float *x) {
    const EncoderConfig *c = &enc->cfg;
    const EncoderWeights *w = &enc->w;
    int h = c->hidden;
    float *row = x;
    for (int s = 0; s < n; s++)
        for (int p = 0; p < lens[s]; p++, row += h) {
            const float *we = w->word + (size_t)ids[s][p] * h, *pe = w->pos + (size_t)p * h;
            for (int i = 0; i < h; i++) row[i] = we[i] + pe[i] + (w->type0 ? w->type0[i] : 0.0f);
        }
}

static void layer_forward(const Encoder *enc, const EncoderLayer *L, EncoderRun *r, int T, const int *seq_start,
                          int n) {
    const EncoderConfig *c = &enc->cfg;
    int h = c->hidden, m = c->intermediate;
    size_t th = (size_t)T * h;
    enc_linear(enc->tp, r->q, r->x, L->wq, L->bq, T, h, h);
    enc_linear(enc->tp, r->k, r->x, L->wk, L->bk, T, h, h);
    enc_linear(enc->tp, r->v, r->x, L->wv, L->bv, T, h, h);
    enc_attention(r->att, r->q, r->k, r->v, seq_start, n, c->n_heads, h / c->n_heads, enc->threads);
    enc_linear(enc->tp, r->tmp, r->att, L->wo, L->bo, T, h, h);
    add_inplace(r->tmp, r->x, th);
    enc_layernorm(r->x, r->tmp, L->ln1_w, L->ln1_b, T, h, c->eps);
    enc_linear(enc->tp, r->ff, r->x, L->w1, L->b1, T, h, m);
    enc_gelu(r->ff, (size_t)T * m, enc->threads);
    enc_linear(enc->tp, r->tmp, r->ff, L->w2, L->b2, T, m, h);
    add_inplace(r->tmp, r->x, th);
    enc_layernorm(r->x, r->tmp, L->ln2_w, L->ln2_b, T, h, c->eps);
}

/* Embeds n (checked) sequences packed together into out[n, hidden]; r has
 * room for all their tokens. */
static void forward_chunk(const Encoder *enc, EncoderRun *r, const int32_t *const *ids, const int *lens, int n,
                          float *out) {
    const EncoderConfig *c = &enc->cfg;
    int *seq_start = xmalloc((size_t)(n + 1) * sizeof *seq_start);
    seq_start[0] = 0;
    for (int s = 0; s < n; s++) seq_start[s + 1] = seq_start[s] + lens[s];
    int T = seq_start[n];
    embed_tokens(enc, ids, lens, n, r->x);
    enc_layernorm(r->x, r->x, enc->w.emb_ln_w, enc->w.emb_ln_b, T, c->hidden, c->eps);
    for (int l = 0; l < c->n_layers; l++) layer_forward(enc, &enc->w.layers[l], r, T, seq_start, n);
    for (int s = 0; s < n; s++)
        encoder_pool(c, r->x + (size_t)seq_start[s] * c->hidden, lens[s], out + (size_t)s * c->hidden);
    free(seq_start);
}

int encoder_check_ids(const Encoder *enc, const int32_t *const *ids, const int *lens, int n, Err *e) {
    if (n < 0) return err_set(e, ERR_ARG, "encoder: negative number of texts");
    for (int s = 0; s < n; s++) {
        if (lens[s] < 1 || lens[s] > enc->cfg.max_pos)
            return err_set(e, ERR_ARG, "encoder: sequence %d has %d tokens, expected 1 to %d", s, lens[s],
                           enc->cfg.max_pos);
        for (int p = 0; p < lens[s]; p++)
            if (ids[s][p] < 0 || ids[s][p] >= enc->cfg.vocab)
                return err_set(e, ERR_ARG, "encoder: sequence %d token %d: id %d outside the vocabulary (0..%d)", s,
                               p, (int)ids[s][p], enc->cfg.vocab - 1);
    }
    return 0;
}

int encoder_embed_ids(const Encoder *enc, const int32_t *const *ids, const int *lens, int n, float **vecs, int *dim,
                      Err *e) {
    *vecs = NULL;
    if (encoder_check_ids(enc, ids, lens, n, e)) return -1;
    int h = enc->cfg.hidden, max_len = 0;
    if (dim) *dim = h;
    if (n == 0) {
        *vecs = xmalloc(sizeof **vecs); /* a valid pointer to free, no rows */
        return 0;
    }
    long total = 0;
    for (int s = 0; s < n; s++) {
        total += lens[s];
        if (lens[s] > max_len) max_len = lens[s];
    }
    /* one activation block for every chunk: fresh pages cost page faults */
    int room = max_len > ENC_CHUNK_TOKENS ? max_len : ENC_CHUNK_TOKENS;
    EncoderRun r;
    run_init(&r, &enc->cfg, total < room ? (int)total : room);
    float *out = xmalloc(((size_t)n * h + 1) * sizeof *out);
    pthread_mutex_lock(enc->mu);
    for (int s0 = 0; s0 < n;) {
        int s1 = s0, tokens = 0;
        while (s1 < n && (s1 == s0 || tokens + lens[s1] <= ENC_CHUNK_TOKENS)) tokens += lens[s1++];
        forward_chunk(enc, &r, ids + s0, lens + s0, s1 - s0, out + (size_t)s0 * h);
        s0 = s1;
    }
    pthread_mutex_unlock(enc->mu);
    free(r.block);
    *vecs = out;
    return 0;
}

/* Python's str.lower(), which sentence-transformers applies when
 * do_lower_case is set (the tokenizer may lowercase again: harmless). */
static char *lowercase_utf8(const char *s) {
    size_t n = strlen(s);
    char *out = xmalloc(n * 4 + 1), *o = out;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        if (k <= 0) { /* invalid byte: keep it, the tokenizer decides */
            *o++ = (char)*p++;
            continue;
        }
        o += utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)o);
        p += k;
    }
    *o = 0;
    return out;
}

int encoder_tokenize(const Encoder *enc, const char *text, int32_t **ids, int *n, Err *e) {
    if (!enc->tok) return err_set(e, ERR_ARG, "encoder: this model has no tokenizer; embed token ids instead");
    char *lower = enc->cfg.lowercase ? lowercase_utf8(text) : NULL;
    int rc = tok_encode(enc->tok, lower ? lower : text, 1, 0, ids, n, e);
    free(lower);
    if (rc) return -1;
    /* As the Hugging Face tokenizer truncates: the first tokens, then the
     * final [SEP] the post-processor added. */
    int max = enc->cfg.max_seq_len;
    if (*n > max) {
        (*ids)[max - 1] = (*ids)[*n - 1];
        *n = max;
    }
    return 0;
}

int encoder_embed(const Encoder *enc, const char *const *texts, int n, float **vecs, int *dim, Err *e) {
    *vecs = NULL;
    int32_t **ids = xcalloc((size_t)n + 1, sizeof *ids);
    int *lens = xcalloc((size_t)n + 1, sizeof *lens);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if ((rc = encoder_tokenize(enc, texts[i], &ids[i], &lens[i], e))) err_wrap(e, "text %d", i);
    if (!rc) rc = encoder_embed_ids(enc, (const int32_t *const *)ids, lens, n, vecs, dim, e);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    return rc;
}
