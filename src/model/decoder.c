#include "model/decoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/backend.h"

/* ---- parameter layout ---- */

size_t model_param_sizes(const ModelConfig *c, size_t s[PARAM_COUNT]) {
    size_t total = 0;
    for (int k = 0; k < PARAM_COUNT; k++) {
        long long rows, cols;
        arch_shape(c, (ParamKind)k, &rows, &cols);
        size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
        if (arch_tensor((ParamKind)k)->flags & TK_LAYER) n *= (size_t)c->n_layers;
        s[k] = arch_has(c, (ParamKind)k) ? n : 0;
        total += s[k];
    }
    return total;
}

void model_param_hf_name(ParamKind k, int l, char *buf, size_t size) { arch_hf_name(k, l, buf, size); }

/* ---- activations ---- */

/* Backend memory (kernels/backend.h), except ac: host descriptors of the
 * caches, as attention takes them. */
typedef struct RunState {
    int cap; /* tokens */
    Backend *be; /* the backend that allocated the buffers */
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2;
    float *logits; /* [cap][vocab]; unused where backend memory is host memory */
    AttnCache *ac; /* each token's cache, for the attention */
} RunState;

static void run_state_free(RunState *rs) {
    if (!rs) return;
    Backend *be = rs->be;
    float *bufs[] = {rs->x, rs->xb, rs->xb2, rs->q, rs->k, rs->v, rs->att, rs->hb, rs->hb2, rs->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    free(rs->ac);
    free(rs);
}

static RunState *run_state_get(Model *m, int n) {
    if (m->rs && m->rs->cap >= n) return m->rs;
    run_state_free(m->rs);
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    RunState *rs = xcalloc(1, sizeof *rs);
    size_t N = (size_t)n, q = (size_t)c->n_heads * c->head_dim, kv = (size_t)c->n_kv_heads * c->head_dim;
    size_t D = (size_t)c->hidden_size, F = (size_t)c->intermediate_size;
    rs->cap = n;
    rs->be = be;
    rs->x = be->alloc(be, N * D * 4);
    rs->xb = be->alloc(be, N * (D > q ? D : q) * 4);
    rs->xb2 = be->alloc(be, N * D * 4);
    rs->q = be->alloc(be, N * q * 4);
    rs->k = be->alloc(be, N * kv * 4);
    rs->v = be->alloc(be, N * kv * 4);
    rs->att = be->alloc(be, N * q * 4);
    rs->hb = be->alloc(be, N * F * 4);
    rs->hb2 = be->alloc(be, N * F * 4);
    if (!be->host_resident) rs->logits = be->alloc(be, N * (size_t)c->vocab_size * 4);
    rs->ac = xmalloc(N * sizeof *rs->ac);
    m->rs = rs;
    return rs;
}

/* ---- KV cache ---- */

int model_set_kv_type(Model *m, int type) {
    if (type != DT_F32 && type != DT_F16) return -1;
    m->kv_type = type;
    return 0;
}

int model_set_kv_type_name(Model *m, const char *name, Err *e) {
    const char *source = name ? "--kv-type" : "ALOE_KV_TYPE";
    if (!name) name = getenv("ALOE_KV_TYPE");
    if (!name || !*name) return 0;
    int type = strcmp(name, "f32") == 0 ? DT_F32 : strcmp(name, "f16") == 0 ? DT_F16 : -1;
    if (type < 0) return err_set(e, ERR_ARG, "%s: expected a KV cache type f32 or f16, got \"%s\"", source, name);
    return model_set_kv_type(m, type);
}

static size_t kv_elem_bytes(int type) { return dtype_block_bytes(type); } /* F32 or F16 */

static size_t kv_position_bytes(int n_layers, int n_heads, int head_dim, int type) {
    return 2 * (size_t)n_layers * (size_t)n_heads * (size_t)head_dim * kv_elem_bytes(type);
}

size_t kv_cache_bytes(const Model *m, int max_seq) {
    return (size_t)max_seq * kv_position_bytes(m->cfg.n_layers, m->cfg.n_kv_heads, m->cfg.head_dim, m->kv_type);
}

size_t kv_cache_position_bytes(const KvCache *kv) {
    return kv_position_bytes(kv->n_layers, kv->n_heads, kv->head_dim, kv->type);
}

/* The bytes of the keys (or of the values) of every layer. */
static size_t kv_half_bytes(const KvCache *kv) { return (size_t)kv->max_seq * kv_cache_position_bytes(kv) / 2; }

int kv_cache_init(KvCache *kv, const Model *m, int max_seq, Err *e) {
    memset(kv, 0, sizeof *kv);
    if (max_seq <= 0) return err_set(e, ERR_ARG, "KV cache: context length must be positive, got %d", max_seq);
    kv->n_layers = m->cfg.n_layers;
    kv->max_seq = max_seq;
    kv->n_heads = m->cfg.n_kv_heads;
    kv->head_dim = m->cfg.head_dim;
    kv->type = m->kv_type;
    kv->rope_long = m->inv_freq_long && max_seq > m->cfg.rope.original_max_pos;
    kv->be = m->be;
    kv->k = kv->be->alloc(kv->be, kv_half_bytes(kv));
    kv->v = kv->be->alloc(kv->be, kv_half_bytes(kv));
    return 0;
}

void kv_cache_free(KvCache *kv) {
    if (kv->be) {
        if (kv->k) kv->be->free(kv->be, kv->k);
        if (kv->v) kv->be->free(kv->be, kv->v);
    }
    memset(kv, 0, sizeof *kv);
}

void kv_cache_touch(KvCache *kv) {
    kv->be->zero(kv->be, kv->k, kv_half_bytes(kv));
    kv->be->zero(kv->be, kv->v, kv_half_bytes(kv));
}

/* Layer `layer`'s first head's plane (the others follow, max_seq * head_dim
 * elements apart). */
static char *kv_layer(const KvCache *kv, void *base, int layer) {
    return (char *)base + (size_t)layer * kv->n_heads * kv->max_seq * kv->head_dim * kv_elem_bytes(kv->type);
}

int kv_cache_compatible(const KvCache *a, const KvCache *b) {
    return a->n_layers == b->n_layers && a->n_heads == b->n_heads && a->head_dim == b->head_dim && a->type == b->type &&
           a->rope_long == b->rope_long && a->be == b->be;
}

int kv_cache_copy_prefix(KvCache *dst, const KvCache *src, int n, Err *e) {
    if (!kv_cache_compatible(dst, src))
        return err_set(e, ERR_ARG, "KV cache copy: the caches were made for different models or types");
    if (n < 0 || n > src->len || n > dst->max_seq)
        return err_set(e, ERR_ARG, "KV cache copy: %d positions, the source holds %d and the destination fits %d", n,
                       src->len, dst->max_seq);
    size_t es = kv_elem_bytes(src->type), row = (size_t)src->head_dim * es;
    for (int l = 0; l < src->n_layers; l++)
        for (int h = 0; h < src->n_heads; h++) {
            size_t so = (size_t)h * src->max_seq * row, d = (size_t)h * dst->max_seq * row;
            dst->be->copy(dst->be, kv_layer(dst, dst->k, l) + d, kv_layer(src, src->k, l) + so, (size_t)n * row);
            dst->be->copy(dst->be, kv_layer(dst, dst->v, l) + d, kv_layer(src, src->v, l) + so, (size_t)n * row);
        }
    dst->len = n;
    return 0;
}

/* ---- forward ---- */

/* The offset norm weights take: Gemma's (1 + w) unless the stored weights
 * already hold it (GGUF). */
static float norm_offset(const ModelConfig *c) { return c->norms_folded ? 0.0f : c->norm_offset; }

/* A sublayer's norm, as the config says: RMSNorm with its weight (and the
 * config's offset), or OLMo's LayerNorm without one; n rows of dim. */
static void norm_rows(const Model *m, float *out, const float *x, const float *w, int n, int dim) {
    const ModelConfig *c = &m->cfg;
    BackendNorm kind = c->norm_type == NORM_LAYER_NOPARAM ? BNORM_LAYER_NOPARAM : BNORM_RMS;
    m->be->norm(m->be, kind, out, x, w, norm_offset(c), n, dim, c->norm_eps);
}

/* q/k norm (Qwen3 and Gemma 3 per head; OLMo 2 over the whole
 * projection; always RMSNorm), then RoPE, for n tokens of n_heads heads:
 * table inv_freq, or for a token flagged in long_tok (LongRoPE) the long
 * table. */
static void qk_prepare(const Model *m, float *x, int n, int n_heads, const float *norm, const int *pos,
                       const float *inv_freq, const unsigned char *long_tok) {
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    int hd = c->head_dim;
    if (norm && c->qk_norm_full) be->norm(be, BNORM_RMS, x, x, norm, norm_offset(c), n, n_heads * hd, c->norm_eps);
    else if (norm) be->norm(be, BNORM_RMS, x, x, norm, norm_offset(c), n * n_heads, hd, c->norm_eps);
    BackendRope r = {.n_heads = n_heads,
                     .head_dim = hd,
                     .rot = rope_dims(c),
                     .pos = pos,
                     .inv_freq = inv_freq,
                     .inv_freq_long = m->inv_freq_long,
                     .long_tok = long_tok,
                     .interleaved = m->rope_interleaved,
                     .mscale = m->rope_mscale};
    be->rope(be, x, n, &r, 0);
}

static void attention_block(Model *m, RunState *rs, const LayerWeights *lw, int l, KvCache *const *caches,
                            const int *pos, int n, const unsigned char *long_tok) {
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    int D = c->hidden_size, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    /* OLMo 2 feeds the residual stream in as it is */
    const float *in = rs->x;
    if (c->pre_norm) norm_rows(m, rs->xb, rs->x, lw->attn_norm, n, D), in = rs->xb;
    float *const qkv[] = {rs->q, rs->k, rs->v};
    const QMat *const wqkv[] = {&lw->wq, &lw->wk, &lw->wv};
    const float *const bqkv[] = {lw->bq, lw->bk, lw->bv};
    be->linear_group(be, 3, qkv, in, n, wqkv, bqkv, BPREC_INFER);
    if (c->clip_qkv > 0) { /* OLMo */
        be->map(be, BMAP_CLAMP, rs->q, (long)n * qd, c->clip_qkv);
        be->map(be, BMAP_CLAMP, rs->k, (long)n * kvd, c->clip_qkv);
        be->map(be, BMAP_CLAMP, rs->v, (long)n * kvd, c->clip_qkv);
    }
    int sliding = arch_layer_sliding(c, l);
    /* Gemma 3's local layers have their own table; LongRoPE's long one is per token */
    const float *inv_freq = sliding && m->inv_freq_local ? m->inv_freq_local : m->inv_freq;
    const unsigned char *lt = m->inv_freq_long ? long_tok : NULL;
    qk_prepare(m, rs->q, n, c->n_heads, lw->q_norm, pos, inv_freq, lt);
    qk_prepare(m, rs->k, n, c->n_kv_heads, lw->k_norm, pos, inv_freq, lt);
    for (int t = 0; t < n; t++) {
        KvCache *kv = caches[t];
        char *k = kv_layer(kv, kv->k, l), *v = kv_layer(kv, kv->v, l);
        be->kv_store(be, k, kv->type, kv->max_seq, kv->n_heads, kv->head_dim, pos[t], rs->k + (long)t * kvd);
        be->kv_store(be, v, kv->type, kv->max_seq, kv->n_heads, kv->head_dim, pos[t], rs->v + (long)t * kvd);
        rs->ac[t] = (AttnCache){k, v, kv->head_dim, (long)kv->max_seq * kv->head_dim, kv->type};
    }
    AttnShape shape = {.n_heads = c->n_heads,
                       .n_kv_heads = c->n_kv_heads,
                       .head_dim = c->head_dim,
                       .window = sliding ? c->sliding_window : 0,
                       .scale = c->attn_scale,
                       .softcap = c->attn_softcap};
    be->attention(be, rs->att, rs->q, n, &shape, rs->ac, pos);
    be->linear(be, rs->xb2, rs->att, n, &lw->wo, lw->bo, BPREC_INFER);
    if (c->post_norm) norm_rows(m, rs->xb2, rs->xb2, lw->post_attn_norm, n, D);
    be->add(be, rs->x, rs->xb2, (long)n * D);
}

static void mlp_block(Model *m, RunState *rs, const LayerWeights *lw, int n) {
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    int D = c->hidden_size, F = c->intermediate_size;
    const float *in = rs->x;
    if (c->pre_norm) norm_rows(m, rs->xb, rs->x, lw->ffn_norm, n, D), in = rs->xb;
    float *const gu[] = {rs->hb, rs->hb2};
    const QMat *const wgu[] = {&lw->w_gate, &lw->w_up};
    be->linear_group(be, 2, gu, in, n, wgu, NULL, BPREC_INFER);
    be->act(be, c->act == ACT_GELU_TANH ? BACT_GEGLU_TANH : BACT_SWIGLU, rs->hb, rs->hb, rs->hb2, (long)n * F);
    be->linear(be, rs->xb2, rs->hb, n, &lw->w_down, NULL, BPREC_INFER);
    if (c->post_norm) norm_rows(m, rs->xb2, rs->xb2, lw->post_ffn_norm, n, D);
    be->add(be, rs->x, rs->xb2, (long)n * D);
}

int model_forward_batch(Model *m, KvCache *const *caches, const int32_t *ids, const int *pos, int n,
                        const int *out_rows, int n_out, float *logits, Err *e) {
    const ModelConfig *c = &m->cfg;
    if (n <= 0) return err_set(e, ERR_ARG, "forward: no tokens");
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return err_set(e, ERR_ARG, "forward: token id %d at index %d is outside the vocabulary [0, %d)", ids[t],
                           t, c->vocab_size);
        if (pos[t] < 0 || pos[t] >= caches[t]->max_seq)
            return err_set(e, ERR_ARG, "forward: position %d is outside the context of %d tokens", pos[t],
                           caches[t]->max_seq);
    }
    if (!out_rows) n_out = n;
    for (int i = 0; i < n_out; i++)
        if (out_rows && (out_rows[i] < 0 || out_rows[i] >= n))
            return err_set(e, ERR_ARG, "forward: logits row %d is outside the batch of %d", out_rows[i], n);
    RunState *rs = run_state_get(m, n);
    Backend *be = m->be;
    be->embed(be, rs->x, &m->w.embed, ids, n, c->embed_scale);
    /* LongRoPE: by the sequence's cache (KvCache.rope_long), so its keys
     * never mix the two factor lists and sequences batched together keep
     * their own */
    unsigned char *long_tok = NULL;
    if (c->rope.type == ROPE_LONGROPE && m->inv_freq_long) {
        long_tok = xcalloc((size_t)n, 1);
        for (int t = 0; t < n; t++) long_tok[t] = (unsigned char)caches[t]->rope_long;
    }
    for (int l = 0; l < c->n_layers; l++) {
        attention_block(m, rs, &m->w.layers[l], l, caches, pos, n, long_tok);
        mlp_block(m, rs, &m->w.layers[l], n);
    }
    free(long_tok);
    for (int t = 0; t < n; t++)
        if (caches[t]->len < pos[t] + 1) caches[t]->len = pos[t] + 1;
    /* final norm on the rows that need logits only */
    int D = c->hidden_size;
    for (int i = 0; i < n_out; i++) {
        int r = out_rows ? out_rows[i] : i;
        if (out_rows) be->copy(be, rs->xb + (long)i * D, rs->x + (long)r * D, (size_t)D * sizeof(float));
    }
    norm_rows(m, rs->xb, out_rows ? rs->xb : rs->x, m->w.out_norm, n_out, D);
    /* host memory: straight into the caller's array */
    float *lg = be->host_resident ? logits : rs->logits;
    be->linear(be, lg, rs->xb, n_out, &m->w.lm_head, NULL, BPREC_INFER);
    long nl = (long)n_out * c->vocab_size;
    if (c->final_softcap > 0) be->map(be, BMAP_SOFTCAP, lg, nl, c->final_softcap);
    if (lg != logits) be->download(be, logits, lg, (size_t)nl * sizeof(float));
    return 0;
}

int model_forward(Model *m, KvCache *kv, const int32_t *ids, int n, int pos, float *logits, int all_logits,
                  Err *e) {
    KvCache **caches = xmalloc((size_t)n * sizeof *caches);
    int *p = xmalloc((size_t)n * sizeof *p);
    for (int t = 0; t < n; t++) caches[t] = kv, p[t] = pos + t;
    int last = n - 1;
    int rc = model_forward_batch(m, caches, ids, p, n, all_logits ? NULL : &last, all_logits ? n : 1, logits, e);
    free(caches);
    free(p);
    return rc;
}

void model_set_backend(Model *m, Backend *be) {
    run_state_free(m->rs);
    m->rs = NULL;
    backend_free(m->be);
    m->be = be;
    const void *embed = m->w.embed.data;
    for (int k = 0; k < PARAM_COUNT; k++) {
        int per_layer = (arch_tensor((ParamKind)k)->flags & TK_LAYER) != 0;
        long long rows, cols;
        arch_shape(&m->cfg, (ParamKind)k, &rows, &cols);
        for (int l = 0; l < (per_layer ? m->cfg.n_layers : 1); l++) {
            WeightSlot s = model_weight_slot(&m->w, (ParamKind)k, l);
            if (s.mat && s.mat->data && !(k == PARAM_LM_HEAD && s.mat->data == embed)) be->mat_bind(be, s.mat);
            if (s.vec && *s.vec) be->vec_bind(be, s.vec, (long)(rows * (cols ? cols : 1)));
        }
    }
    if (m->w.lm_head.data == embed) m->w.lm_head = m->w.embed; /* tied: one copy */
}

void model_free(Model *m) {
    if (!m) return;
    run_state_free(m->rs);
    backend_free(m->be);
    tp_free(m->tp);
    free(m->w.layers);
    free(m->inv_freq);
    free(m->params);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->st) st_close(m->st);
    if (m->gguf) gguf_close(m->gguf);
    free(m);
}


size_t model_weight_bytes(const Model *m) {
    size_t sizes[PARAM_COUNT], total = 0;
    model_param_sizes(&m->cfg, sizes);
    /* vectors: norms, biases */
    for (int k = 0; k < PARAM_COUNT; k++)
        if (!(arch_tensor((ParamKind)k)->flags & TK_MATRIX))
            total += sizes[k] * sizeof(float);
    total += qmat_bytes(&m->w.embed);
    if (m->w.lm_head.data != m->w.embed.data) total += qmat_bytes(&m->w.lm_head);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const LayerWeights *w = &m->w.layers[l];
        const QMat *q[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++) total += qmat_bytes(q[i]);
    }
    return total;
}

int model_decode_mats(const Model *m, const QMat **mats, int max) {
    int n = 0;
    if (n < max) mats[n] = &m->w.lm_head;
    n++;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const LayerWeights *w = &m->w.layers[l];
        const QMat *q[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++, n++)
            if (n < max) mats[n] = q[i];
    }
    return n;
}

size_t model_param_count(const Model *m) {
    size_t sizes[PARAM_COUNT];
    return model_param_sizes(&m->cfg, sizes);
}
