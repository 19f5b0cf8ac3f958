#include "train/decoder_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/safetensors.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "train/backward.h"

/* ---- parameter layout ---- */

/* Walks the tensors in a fixed order. With record set it appends each to
 * m->tensors (assigning offsets); otherwise it points each slot of w at
 * base + the tensor's offset. One walk serves both, so the table and the
 * pointer structs can never disagree. */
typedef struct Walk {
    TrainDecoder *m;
    float *base;
    int record, idx;
} Walk;

static void walk_add(Walk *k, float **slot, const char *name, int64_t rows, int64_t cols, int ndim) {
    TrainDecoder *m = k->m;
    if (k->record) {
        m->tensors = xrealloc(m->tensors, (size_t)(m->n_tensors + 1) * sizeof *m->tensors);
        TdTensor *t = &m->tensors[m->n_tensors++];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->rows = rows, t->cols = cols, t->ndim = ndim;
        t->offset = m->n_params;
        t->numel = (size_t)(rows * cols);
        m->n_params += t->numel;
    } else {
        *slot = k->base + m->tensors[k->idx].offset;
    }
    k->idx++;
}

static void walk_layer(Walk *k, TdLayer *L, int l) {
    const ModelConfig *c = &k->m->cfg;
    const int C = c->hidden_size, D = c->head_dim, HD = c->n_heads * D, KD = c->n_kv_heads * D, F = c->intermediate_size;
    const int qkv_bias = c->attention_bias, o_bias = c->attention_bias && c->arch != ARCH_QWEN2;
    char n[96];
#define ADD(slot, suffix, rows, cols, ndim)                             \
    do {                                                                \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);         \
        walk_add(k, &L->slot, n, rows, cols, ndim);                     \
    } while (0)
    ADD(attn_norm, "input_layernorm.weight", 1, C, 1);
    ADD(wq, "self_attn.q_proj.weight", HD, C, 2);
    if (qkv_bias) ADD(bq, "self_attn.q_proj.bias", 1, HD, 1);
    ADD(wk, "self_attn.k_proj.weight", KD, C, 2);
    if (qkv_bias) ADD(bk, "self_attn.k_proj.bias", 1, KD, 1);
    ADD(wv, "self_attn.v_proj.weight", KD, C, 2);
    if (qkv_bias) ADD(bv, "self_attn.v_proj.bias", 1, KD, 1);
    ADD(wo, "self_attn.o_proj.weight", C, HD, 2);
    if (o_bias) ADD(bo, "self_attn.o_proj.bias", 1, C, 1);
    if (c->qk_norm) {
        ADD(q_norm, "self_attn.q_norm.weight", 1, D, 1);
        ADD(k_norm, "self_attn.k_norm.weight", 1, D, 1);
    }
    ADD(mlp_norm, "post_attention_layernorm.weight", 1, C, 1);
    ADD(wgate, "mlp.gate_proj.weight", F, C, 2);
    ADD(wup, "mlp.up_proj.weight", F, C, 2);
    ADD(wdown, "mlp.down_proj.weight", C, F, 2);
#undef ADD
}

static void walk_all(TrainDecoder *m, TdWeights *w, float *base, int record) {
    const ModelConfig *c = &m->cfg;
    Walk k = {m, base, record, 0};
    walk_add(&k, &w->embed, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, 2);
    for (int l = 0; l < c->n_layers; l++) walk_layer(&k, &w->layers[l], l);
    walk_add(&k, &w->final_norm, "model.norm.weight", 1, c->hidden_size, 1);
    if (!c->tie_word_embeddings) walk_add(&k, &w->lm_head, "lm_head.weight", c->vocab_size, c->hidden_size, 2);
    else if (!record) w->lm_head = w->embed;
}

static void rope_scaling_of(const RopeConfig *r, RopeScaling *s) {
    memset(s, 0, sizeof *s);
    s->factor = r->factor;
    if (r->type == ROPE_LLAMA3) {
        s->type = ROPE_SCALING_LLAMA3;
        s->low_freq_factor = r->low_freq_factor;
        s->high_freq_factor = r->high_freq_factor;
        s->original_max_pos = r->original_max_pos;
    } else if (r->type == ROPE_LINEAR) {
        s->type = ROPE_SCALING_LINEAR;
    }
}

int td_init(TrainDecoder *m, const ModelConfig *cfg, Err *e) {
    memset(m, 0, sizeof *m);
    if (cfg->arch == ARCH_BERT || cfg->arch < 0 || cfg->arch >= ARCH_COUNT)
        return err_set(e, ERR_UNSUPPORTED, "training: %s is not a decoder this trainer handles (Llama, Mistral, "
                       "Qwen2, Qwen3)", model_arch_name(cfg->arch));
    if (cfg->sliding_window > 0)
        return err_set(e, ERR_UNSUPPORTED, "training: sliding-window attention (window %d) is not supported",
                       cfg->sliding_window);
    if (cfg->n_kv_heads <= 0 || cfg->n_heads % cfg->n_kv_heads || cfg->head_dim % 2 || cfg->hidden_size <= 0 ||
        cfg->vocab_size <= 0 || cfg->n_layers <= 0 || cfg->intermediate_size <= 0)
        return err_set(e, ERR_ARG, "training: inconsistent model shape (heads %d, kv heads %d, head_dim %d)",
                       cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
    m->cfg = *cfg;
    m->w.layers = xcalloc((size_t)cfg->n_layers, sizeof *m->w.layers);
    m->g.layers = xcalloc((size_t)cfg->n_layers, sizeof *m->g.layers);
    walk_all(m, &m->w, NULL, 1);
    m->params = xaligned_alloc(m->n_params * sizeof(float));
    m->grads = xaligned_alloc(m->n_params * sizeof(float));
    memset(m->params, 0, m->n_params * sizeof(float));
    memset(m->grads, 0, m->n_params * sizeof(float));
    walk_all(m, &m->w, m->params, 0);
    walk_all(m, &m->g, m->grads, 0);
    RopeScaling sc;
    rope_scaling_of(&cfg->rope, &sc);
    m->inv_freq = xmalloc((size_t)(cfg->head_dim / 2) * sizeof(float));
    rope_inv_freq(m->inv_freq, cfg->head_dim, cfg->rope.theta, &sc);
    return 0;
}

void td_free(TrainDecoder *m) {
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->w.layers);
    free(m->g.layers);
    free(m->inv_freq);
    free(m->ids);
    free(m->act_block);
    free(m->acts);
    free(m->scratch);
    memset(m, 0, sizeof *m);
}

const TdTensor *td_find(const TrainDecoder *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

int td_load(TrainDecoder *m, const char *path, Err *e) {
    SafeTensors *st = st_open(path, e);
    if (!st) return -1;
    int rc = 0;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const TdTensor *t = &m->tensors[i];
        const TensorView *v = st_get(st, t->name, e);
        int64_t shape[2] = {t->ndim == 2 ? t->rows : t->cols, t->cols};
        rc = !v || tensor_check_shape(v, t->ndim, shape, e) || tensor_to_f32(v, m->params + t->offset, e);
    }
    st_close(st);
    return rc ? -1 : 0;
}

/* ---- activations ---- */

static void ensure_capacity(TrainDecoder *m, int T) {
    if (T <= m->T_cap) return;
    const ModelConfig *c = &m->cfg;
    const long C = c->hidden_size, HD = (long)c->n_heads * c->head_dim, KD = (long)c->n_kv_heads * c->head_dim;
    const long F = c->intermediate_size, H = c->n_heads;
    long per_layer = T * (4 * C + 3 * HD + 3 * KD + 3 * F) + H * T * T;
    free(m->act_block);
    free(m->acts);
    free(m->scratch);
    free(m->ids);
    m->act_block = xaligned_alloc((size_t)(per_layer * c->n_layers + 2 * T * C) * sizeof(float));
    m->acts = xcalloc((size_t)c->n_layers, sizeof *m->acts);
    float *p = m->act_block;
#define TAKE(n) (p += (n), p - (n))
    for (int l = 0; l < c->n_layers; l++) {
        TdActs *a = &m->acts[l];
        a->res0 = TAKE(T * C), a->xn = TAKE(T * C), a->q_lin = TAKE(T * HD), a->k_lin = TAKE(T * KD);
        a->q = TAKE(T * HD), a->k = TAKE(T * KD), a->v = TAKE(T * KD), a->att = TAKE(H * T * T);
        a->ctx = TAKE(T * HD), a->res1 = TAKE(T * C), a->xn2 = TAKE(T * C);
        a->gate = TAKE(T * F), a->up = TAKE(T * F), a->h = TAKE(T * F);
    }
    m->res_final = TAKE(T * C);
    m->xf = TAKE(T * C);
#undef TAKE
    /* backward: d_res, d_x (C), dctx, dq, dq_lin (HD), dk, dv, dk_lin (KD), dh, dgate, dup (F) */
    m->scratch = xaligned_alloc((size_t)(T * (2 * C + 3 * HD + 3 * KD + 3 * F)) * sizeof(float));
    m->ids = xmalloc((size_t)T * sizeof *m->ids);
    m->T_cap = T;
}

/* ---- forward ---- */

static void linear(ThreadPool *tp, float *y, const float *x, int T, const float *W, const float *b, int in, int out) {
    QMat q = {DT_F32, W, out, in};
    matmul_forward(tp, y, x, T, &q);
    if (b) add_bias_forward(y, b, T, out);
}

static void rope_rows(float *x, int T, int heads, int D, const float *inv_freq) {
    for (int t = 0; t < T; t++) rope_forward(x + (long)t * heads * D, heads, D, t, inv_freq, 0);
}

/* One layer: res_out = res0 + attn(norm(res0)) + mlp(norm(...)). */
static void layer_forward(TrainDecoder *m, ThreadPool *tp, const TdLayer *L, TdActs *a, float *res_out, int T) {
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size, D = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, F = c->intermediate_size;
    const float eps = c->norm_eps;
    rmsnorm_forward(a->xn, a->res0, L->attn_norm, T, C, eps);
    linear(tp, a->q_lin, a->xn, T, L->wq, L->bq, C, H * D);
    linear(tp, a->k_lin, a->xn, T, L->wk, L->bk, C, KV * D);
    linear(tp, a->v, a->xn, T, L->wv, L->bv, C, KV * D);
    if (L->q_norm) {
        rmsnorm_forward(a->q, a->q_lin, L->q_norm, T * H, D, eps);
        rmsnorm_forward(a->k, a->k_lin, L->k_norm, T * KV, D, eps);
    } else {
        memcpy(a->q, a->q_lin, (size_t)T * H * D * sizeof(float));
        memcpy(a->k, a->k_lin, (size_t)T * KV * D * sizeof(float));
    }
    rope_rows(a->q, T, H, D, m->inv_freq);
    rope_rows(a->k, T, KV, D, m->inv_freq);
    AttnDims d = {T, H, KV, D};
    attn_train_forward(tp, a->ctx, a->att, a->q, a->k, a->v, &d);
    linear(tp, a->res1, a->ctx, T, L->wo, L->bo, H * D, C);
    add_forward(a->res1, a->res0, (long)T * C);
    rmsnorm_forward(a->xn2, a->res1, L->mlp_norm, T, C, eps);
    linear(tp, a->gate, a->xn2, T, L->wgate, NULL, C, F);
    linear(tp, a->up, a->xn2, T, L->wup, NULL, C, F);
    swiglu_forward(a->h, a->gate, a->up, (long)T * F);
    linear(tp, res_out, a->h, T, L->wdown, NULL, F, C);
    add_forward(res_out, a->res1, (long)T * C);
}

int td_forward(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, int T, float *logits, Err *e) {
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size;
    if (T <= 0) return err_set(e, ERR_ARG, "training forward: empty sequence");
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return err_set(e, ERR_ARG, "training forward: token %d at position %d is outside the vocabulary [0, %d)",
                           ids[t], t, c->vocab_size);
    ensure_capacity(m, T);
    m->T = T;
    memcpy(m->ids, ids, (size_t)T * sizeof *ids);
    float *res = c->n_layers ? m->acts[0].res0 : m->res_final;
    for (int t = 0; t < T; t++) memcpy(res + (long)t * C, m->w.embed + (long)ids[t] * C, (size_t)C * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        float *out = l + 1 < c->n_layers ? m->acts[l + 1].res0 : m->res_final;
        layer_forward(m, tp, &m->w.layers[l], &m->acts[l], out, T);
    }
    rmsnorm_forward(m->xf, m->res_final, m->w.final_norm, T, C, c->norm_eps);
    linear(tp, logits, m->xf, T, m->w.lm_head, NULL, C, c->vocab_size);
    return 0;
}

/* ---- backward ---- */

typedef struct Scratch {
    float *d_res, *d_x, *dctx, *dq, *dq_lin, *dk, *dv, *dk_lin, *dh, *dgate, *dup;
} Scratch;

static Scratch scratch_of(TrainDecoder *m) {
    const ModelConfig *c = &m->cfg;
    const long T = m->T_cap, C = c->hidden_size, HD = (long)c->n_heads * c->head_dim;
    const long KD = (long)c->n_kv_heads * c->head_dim, F = c->intermediate_size;
    float *p = m->scratch;
    Scratch s;
    s.d_res = p, p += T * C;
    s.d_x = p, p += T * C;
    s.dctx = p, p += T * HD;
    s.dq = p, p += T * HD;
    s.dq_lin = p, p += T * HD;
    s.dk = p, p += T * KD;
    s.dv = p, p += T * KD;
    s.dk_lin = p, p += T * KD;
    s.dh = p, p += T * F;
    s.dgate = p, p += T * F;
    s.dup = p;
    return s;
}

static void zero(float *x, long n) { memset(x, 0, (size_t)n * sizeof *x); }

/* On entry s->d_res holds dL/d(layer output); on exit dL/d(layer input). */
static void layer_backward(TrainDecoder *m, ThreadPool *tp, const TdLayer *W, TdLayer *G, const TdActs *a,
                           Scratch *s) {
    const ModelConfig *c = &m->cfg;
    const int T = m->T, C = c->hidden_size, D = c->head_dim, H = c->n_heads, KV = c->n_kv_heads;
    const int F = c->intermediate_size;
    const float eps = c->norm_eps;
    /* MLP: the residual passes d_res through; the branch adds its part. */
    zero(s->dh, (long)T * F);
    linear_backward(tp, s->dh, G->wdown, NULL, s->d_res, a->h, W->wdown, T, F, C);
    zero(s->dgate, (long)T * F);
    zero(s->dup, (long)T * F);
    swiglu_backward(s->dgate, s->dup, s->dh, a->gate, a->up, (long)T * F);
    zero(s->d_x, (long)T * C);
    linear_backward(tp, s->d_x, G->wgate, NULL, s->dgate, a->xn2, W->wgate, T, C, F);
    linear_backward(tp, s->d_x, G->wup, NULL, s->dup, a->xn2, W->wup, T, C, F);
    rmsnorm_backward(s->d_res, G->mlp_norm, s->d_x, a->res1, W->mlp_norm, T, C, eps);
    /* Attention. */
    zero(s->dctx, (long)T * H * D);
    linear_backward(tp, s->dctx, G->wo, G->bo, s->d_res, a->ctx, W->wo, T, H * D, C);
    zero(s->dq, (long)T * H * D);
    zero(s->dk, (long)T * KV * D);
    zero(s->dv, (long)T * KV * D);
    AttnDims d = {T, H, KV, D};
    attn_train_backward(tp, s->dq, s->dk, s->dv, s->dctx, a->att, a->q, a->k, a->v, &d);
    for (int t = 0; t < T; t++) {
        rope_backward(s->dq + (long)t * H * D, H, D, t, m->inv_freq, 0);
        rope_backward(s->dk + (long)t * KV * D, KV, D, t, m->inv_freq, 0);
    }
    float *dq_lin = s->dq, *dk_lin = s->dk;
    if (W->q_norm) {
        zero(s->dq_lin, (long)T * H * D);
        zero(s->dk_lin, (long)T * KV * D);
        rmsnorm_backward(s->dq_lin, G->q_norm, s->dq, a->q_lin, W->q_norm, T * H, D, eps);
        rmsnorm_backward(s->dk_lin, G->k_norm, s->dk, a->k_lin, W->k_norm, T * KV, D, eps);
        dq_lin = s->dq_lin, dk_lin = s->dk_lin;
    }
    zero(s->d_x, (long)T * C);
    linear_backward(tp, s->d_x, G->wq, G->bq, dq_lin, a->xn, W->wq, T, C, H * D);
    linear_backward(tp, s->d_x, G->wk, G->bk, dk_lin, a->xn, W->wk, T, C, KV * D);
    linear_backward(tp, s->d_x, G->wv, G->bv, s->dv, a->xn, W->wv, T, C, KV * D);
    rmsnorm_backward(s->d_res, G->attn_norm, s->d_x, a->res0, W->attn_norm, T, C, eps);
}

void td_backward(TrainDecoder *m, ThreadPool *tp, const float *dlogits) {
    const ModelConfig *c = &m->cfg;
    const int T = m->T, C = c->hidden_size;
    Scratch s = scratch_of(m);
    /* The head (into the embedding's gradient when tied). */
    zero(s.d_x, (long)T * C);
    linear_backward(tp, s.d_x, m->g.lm_head ? m->g.lm_head : m->g.embed, NULL, dlogits, m->xf, m->w.lm_head, T, C,
                    c->vocab_size);
    zero(s.d_res, (long)T * C);
    rmsnorm_backward(s.d_res, m->g.final_norm, s.d_x, m->res_final, m->w.final_norm, T, C, c->norm_eps);
    for (int l = c->n_layers - 1; l >= 0; l--) layer_backward(m, tp, &m->w.layers[l], &m->g.layers[l], &m->acts[l], &s);
    embedding_backward(m->g.embed, s.d_res, m->ids, T, C);
}

void td_zero_grad(TrainDecoder *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }
