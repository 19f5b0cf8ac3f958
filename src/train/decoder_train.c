#include "train/decoder_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "kernels/backend.h"
#include "model/decoder.h"

/* ---- parameter layout ---- */

/* Walks the tensors in a fixed order. With record set it appends each to
 * m->tensors (assigning offsets); otherwise it points each slot of w
 * (model_weight_slot: the map inference's loaders use too) at the
 * tensor's offset in a block: vectors in `vecs` (float32), matrices in
 * `mats` of mat_type (the parameter or gradient block: float32; a frozen
 * base: its copy in frozen_dtype, laid out alike). One walk serves both,
 * so the table and the weight structs can never disagree. */
typedef struct Walk {
    TrainDecoder *m;
    ModelWeights *w;
    float *vecs;
    const void *mats;
    int mat_type, record, idx;
} Walk;

static void walk_record(TrainDecoder *m, const char *name, int64_t rows, int64_t cols, int ndim) {
    m->tensors = xrealloc(m->tensors, (size_t)(m->n_tensors + 1) * sizeof *m->tensors);
    TdTensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows, t->cols = cols, t->ndim = ndim;
    t->offset = m->n_params;
    t->numel = (size_t)(rows * cols);
    m->n_params += t->numel;
}

/* One tensor of kind k (layer l) from the model's architecture table: its
 * HF name and shape; vectors are [1, n] here. A fused tensor is recorded
 * once, at its first kind, with all its rows; every kind of it points at
 * its own rows (model_weight_point_stored, as inference's in-place views). */
static void walk_kind(Walk *k, ParamKind kind, int l) {
    TrainDecoder *m = k->m;
    const ModelConfig *c = &m->cfg;
    if (!arch_has(c, kind)) return;
    char n[96];
    long long rows, cols, off = 0, stored = 0;
    arch_hf_name_of(c->arch, kind, l, n, sizeof n);
    arch_shape(c, kind, &rows, &cols);
    ParamKind first = arch_fused_rows(c, kind, &off, &stored);
    if (k->record) {
        if (first != kind) return;
        if (stored > rows) rows = stored;
        if (cols) walk_record(m, n, rows, cols, 2);
        else walk_record(m, n, 1, rows, 1);
        return;
    }
    const TdTensor *t = first != kind ? td_find(m, n) : &m->tensors[k->idx++];
    const void *data = t->ndim == 2 ? (const char *)k->mats + dtype_nbytes(k->mat_type, (int64_t)t->offset)
                                    : (const void *)(k->vecs + t->offset);
    model_weight_point_stored(k->w, c, kind, l, t->ndim == 2 ? k->mat_type : DT_F32, data);
}

/* The table's order: the embedding, each layer's kinds, then the rest
 * (final norm, an untied head). */
static void walk_all(TrainDecoder *m, ModelWeights *w, float *vecs, const void *mats, int mat_type, int record) {
    const ModelConfig *c = &m->cfg;
    Walk k = {m, w, vecs, mats, mat_type, record, 0};
    walk_kind(&k, PARAM_EMBED, 0);
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < PARAM_COUNT; t++)
            if (arch_tensor((ParamKind)t)->flags & TK_LAYER) walk_kind(&k, (ParamKind)t, l);
    for (int t = PARAM_EMBED + 1; t < PARAM_COUNT; t++)
        if (!(arch_tensor((ParamKind)t)->flags & TK_LAYER)) walk_kind(&k, (ParamKind)t, 0);
    if (!record && c->tie_word_embeddings) w->lm_head = w->embed;
}

/* The gradients' weights all absent (a frozen base, LoRA): the block is gone. */
static void clear_grad_views(TrainDecoder *m) {
    LayerWeights *keep = m->g.layers;
    memset(keep, 0, (size_t)m->cfg.n_layers * sizeof *keep);
    memset(&m->g, 0, sizeof m->g);
    m->g.layers = keep;
}

int td_init(TrainDecoder *m, const ModelConfig *cfg, Err *e) {
    memset(m, 0, sizeof *m);
    const ArchDesc *ad = arch_desc(cfg->arch);
    if (!ad || !(ad->flags & ARCHF_DECODER))
        return err_set(e, ERR_UNSUPPORTED, "training: %s is not a decoder this trainer handles (Llama, Mistral, "
                       "Qwen2, Qwen3, OLMo, OLMo 2, Gemma 2, Gemma 3, Phi-3)", model_arch_name(cfg->arch));
    if (cfg->n_kv_heads <= 0 || cfg->n_heads % cfg->n_kv_heads || cfg->head_dim % 2 || cfg->hidden_size <= 0 ||
        cfg->vocab_size <= 0 || cfg->n_layers <= 0 || cfg->intermediate_size <= 0)
        return err_set(e, ERR_ARG, "training: inconsistent model shape (heads %d, kv heads %d, head_dim %d)",
                       cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
    if (cfg->norm_offset != 0 && cfg->norm_offset != 1.0f)
        return err_set(e, ERR_UNSUPPORTED, "training: norm offset %g: expected 0 or 1", cfg->norm_offset);
    m->cfg = *cfg;
    arch_config_quirks(&m->cfg); /* configs made by hand get the architecture's biases and norms too */
    cfg = &m->cfg;
    m->w.layers = xcalloc((size_t)cfg->n_layers, sizeof *m->w.layers);
    m->g.layers = xcalloc((size_t)cfg->n_layers, sizeof *m->g.layers);
    walk_all(m, &m->w, NULL, NULL, DT_F32, 1);
    /* calloc, not memset: a block this size comes as untouched zero pages,
     * so a frozen base never holds its matrices' float32 spans, and a model
     * that attaches LoRA (and frees the gradients) never holds those. */
    m->params = xcalloc(m->n_params, sizeof(float));
    m->grads = xcalloc(m->n_params, sizeof(float));
    walk_all(m, &m->w, m->params, m->params, DT_F32, 0);
    walk_all(m, &m->g, m->grads, m->grads, DT_F32, 0);
    const size_t half = (size_t)(cfg->head_dim / 2);
    m->inv_freq = xmalloc(half * sizeof(float));
    model_rope_inv_freq_for(cfg, NULL, ROPE_TAB_GLOBAL, m->inv_freq);
    /* the other tables only where they differ from the global one */
    m->inv_freq_local = xmalloc(half * sizeof(float));
    model_rope_inv_freq_for(cfg, NULL, ROPE_TAB_LOCAL, m->inv_freq_local);
    if (!memcmp(m->inv_freq_local, m->inv_freq, half * sizeof(float))) free(m->inv_freq_local), m->inv_freq_local = NULL;
    m->inv_freq_long = xmalloc(half * sizeof(float));
    model_rope_inv_freq_for(cfg, NULL, ROPE_TAB_LONG, m->inv_freq_long);
    if (cfg->rope.type != ROPE_LONGROPE || !memcmp(m->inv_freq_long, m->inv_freq, half * sizeof(float)))
        free(m->inv_freq_long), m->inv_freq_long = NULL;
    m->rope_mscale = model_rope_mscale(cfg);
    m->fwd_inv_freq = m->inv_freq;
    /* Gemma's (1+w) unless the stored weights already hold the 1 */
    m->norm_kind = cfg->norm_type == NORM_LAYER_NOPARAM ? BNORM_LAYER_NOPARAM : BNORM_RMS;
    m->norm_off = m->norm_kind == BNORM_RMS && cfg->norm_offset == 1.0f && !cfg->norms_folded ? 1.0f : 0.0f;
    m->be = backend_cpu_new(NULL);
    return 0;
}

Backend *td_backend(TrainDecoder *m, ThreadPool *tp) {
    backend_cpu_set_pool(m->be, tp);
    return m->be;
}

int td_set_backend(TrainDecoder *m, Backend *be, Err *e) {
    if (!be->host_resident) {
        err_set(e, ERR_UNSUPPORTED, "training on backend %s: its memory is not host memory, and the trainer's "
                "parameters, optimiser and checkpoints are host-resident", be->name);
        backend_free(be); /* after the message: it names the backend */
        return -1;
    }
    backend_free(m->be);
    m->be = be;
    return 0;
}

void td_free(TrainDecoder *m) {
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->w.layers);
    free(m->g.layers);
    free(m->inv_freq);
    free(m->inv_freq_local);
    free(m->inv_freq_long);
    free(m->cap_logits);
    free(m->ids);
    free(m->seg_start);
    free(m->pos);
    free(m->act_block);
    free(m->acts);
    free(m->scratch);
    free(m->lora_tensors);
    free(m->lora_params);
    free(m->lora_grads);
    free(m->la);
    free(m->lg);
    free(m->lora_u);
    free(m->lora_du);
    free(m->lora_xd);
    free(m->frozen);
    backend_free(m->be);
    memset(m, 0, sizeof *m);
}

/* Where a frozen matrix (the tensor at float offset `offset`) lives. */
static void *frozen_at(const TrainDecoder *m, size_t offset) {
    return (char *)m->frozen + dtype_nbytes(m->frozen_dtype, (int64_t)offset);
}

static int is_frozen_matrix(const TrainDecoder *m, const TdTensor *t) { return m->frozen && t->ndim == 2; }

int td_freeze_base(TrainDecoder *m, int dtype, Err *e) {
    if (dtype != DT_F32 && dtype != DT_BF16 && dtype != DT_F16)
        return err_set(e, ERR_ARG, "frozen base: dtype %s: expected f32, bf16 or f16", dtype_name(dtype));
    if (m->frozen || m->lora_on) return err_set(e, ERR_ARG, "frozen base: freeze right after td_init");
    m->frozen_dtype = dtype;
    m->frozen = xcalloc(dtype_nbytes(dtype, (int64_t)m->n_params), 1);
    free(m->grads); /* nothing of a frozen base trains */
    m->grads = NULL;
    clear_grad_views(m);
    walk_all(m, &m->w, m->params, m->frozen, dtype, 0); /* the matrices as the forward reads them */
    return 0;
}

/* Back to float32 matrices in params (the frozen values, exactly). */
static void thaw_base(TrainDecoder *m) {
    if (!m->frozen) return;
    for (int i = 0; i < m->n_tensors; i++) {
        const TdTensor *t = &m->tensors[i];
        if (t->ndim == 2)
            dequantize_row(m->frozen_dtype, frozen_at(m, t->offset), m->params + t->offset, (int64_t)t->numel);
    }
    free(m->frozen);
    m->frozen = NULL;
    walk_all(m, &m->w, m->params, m->params, DT_F32, 0);
}

void td_init_random(TrainDecoder *m, uint64_t seed, float std) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const TdTensor *t = &m->tensors[i];
        int frozen = is_frozen_matrix(m, t);
        /* a frozen matrix is drawn a row at a time into scratch, then stored */
        float *p = frozen ? xmalloc((size_t)t->cols * sizeof *p) : m->params + t->offset;
        int is_norm = strstr(t->name, "norm") != NULL;
        /* a norm computes with 1: w = 1 (Gemma's (1+w): w = 0, as transformers initialises it) */
        const float norm_init = m->norm_off == 1.0f ? 0.0f : 1.0f;
        for (int64_t row = 0; row < (frozen ? t->rows : 1); row++) {
            size_t n = frozen ? (size_t)t->cols : t->numel;
            for (size_t k = 0; k < n; k++) p[k] = t->ndim == 2 ? std * rng_normal(&r) : is_norm ? norm_init : 0.0f;
            if (frozen) quantize_row(m->frozen_dtype, p, frozen_at(m, t->offset + (size_t)(row * t->cols)), t->cols);
        }
        if (frozen) free(p);
    }
}

const TdTensor *td_find(const TrainDecoder *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

/* A frozen matrix as stored when the dtypes agree, else converted through
 * float32 a row at a time. */
static int load_frozen(TrainDecoder *m, const TdTensor *t, const TensorView *v, Err *e) {
    void *dst = frozen_at(m, t->offset);
    if (v->dtype == m->frozen_dtype) {
        memcpy(dst, v->data, v->nbytes);
        return 0;
    }
    float *row = xmalloc((size_t)t->cols * sizeof *row);
    size_t src_rb = dtype_nbytes(v->dtype, t->cols), dst_rb = dtype_nbytes(m->frozen_dtype, t->cols);
    int rc = 0;
    for (int64_t r = 0; r < t->rows && !rc; r++)
        if (dequantize_row(v->dtype, (const char *)v->data + r * src_rb, row, t->cols) ||
            quantize_row(m->frozen_dtype, row, (char *)dst + r * dst_rb, t->cols))
            rc = err_set(e, ERR_UNSUPPORTED, "%s: cannot convert %s to %s", t->name, dtype_name(v->dtype),
                         dtype_name(m->frozen_dtype));
    free(row);
    return rc;
}

/* A multimodal decoder's tensor name (Gemma 3's language_model.model.*) as
 * its text class names it (model.*): a checkpoint aloe saved from it holds
 * the text model alone (ckpt_saves_text_only), and a --resume reads it
 * back. Other names unchanged. */
static const char *text_model_name(const TrainDecoder *m, const char *name, char *buf, size_t size) {
    const ArchDesc *a = arch_desc(m->cfg.arch);
    int layer, k;
    if (!a || !(a->flags & ARCHF_TEXT_OF_MM) || (k = arch_kind_of_hf_in(m->cfg.arch, name, &layer)) < 0 ||
        arch_hf_name_of(arch_canonical(m->cfg.arch), (ParamKind)k, layer, buf, size))
        return name;
    return buf;
}

int td_load(TrainDecoder *m, const char *path, Err *e) {
    SafeTensors *st = st_open(path, e);
    if (!st) return -1;
    int rc = 0;
    char name[96];
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const TdTensor *t = &m->tensors[i];
        const TensorView *v = st_find(st, t->name);
        if (!v) v = st_get(st, text_model_name(m, t->name, name, sizeof name), e);
        int64_t shape[2] = {t->ndim == 2 ? t->rows : t->cols, t->cols};
        rc = !v || tensor_check_shape(v, t->ndim, shape, e) ||
             (is_frozen_matrix(m, t) ? load_frozen(m, t, v, e) : tensor_to_f32(v, m->params + t->offset, e));
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
    /* Not kept: q_lin and k_lin without q/k norms or clip_qkv (the
     * projections are q and k then), xn and xn2 without pre-norms (res0 and
     * res1 are), ao and fo without post-norms, nor the activation's
     * output h (the backward recomputes it from gate and up: an
     * elementwise pass, against T × F floats per layer). */
    const int sep_lin = c->qk_norm || c->clip_qkv > 0; /* q_lin, k_lin kept apart from q, k */
    const long qk_lin = sep_lin ? HD + KD : 0;
    const long xns = c->pre_norm ? 2 * C : 0, posts = c->post_norm ? 2 * C : 0;
    long per_layer = T * (2 * C + xns + posts + 2 * HD + 2 * KD + qk_lin + 2 * F) + H * T * T;
    free(m->act_block);
    free(m->acts);
    free(m->scratch);
    free(m->ids);
    free(m->seg_start);
    free(m->pos);
    m->act_block = xaligned_alloc((size_t)(per_layer * c->n_layers + 2 * T * C) * sizeof(float));
    m->acts = xcalloc((size_t)c->n_layers, sizeof *m->acts);
    float *p = m->act_block;
#define TAKE(n) (p += (n), p - (n))
    for (int l = 0; l < c->n_layers; l++) {
        TdActs *a = &m->acts[l];
        a->res0 = TAKE(T * C), a->xn = c->pre_norm ? TAKE(T * C) : a->res0;
        a->q = TAKE(T * HD), a->k = TAKE(T * KD), a->v = TAKE(T * KD), a->att = TAKE(H * T * T);
        a->q_lin = sep_lin ? TAKE(T * HD) : a->q, a->k_lin = sep_lin ? TAKE(T * KD) : a->k;
        a->ctx = TAKE(T * HD), a->ao = c->post_norm ? TAKE(T * C) : NULL;
        a->res1 = TAKE(T * C), a->xn2 = c->pre_norm ? TAKE(T * C) : a->res1;
        a->gate = TAKE(T * F), a->up = TAKE(T * F), a->fo = c->post_norm ? TAKE(T * C) : NULL;
    }
    m->res_final = TAKE(T * C);
    m->xf = TAKE(T * C);
#undef TAKE
    /* backward: d_res, d_x (C), dctx, dq, dq_lin (HD), dk, dv, dk_lin (KD), dh, dgate, dup (F) */
    m->scratch = xaligned_alloc((size_t)(T * (2 * C + 3 * HD + 3 * KD + 3 * F)) * sizeof(float));
    m->ids = xmalloc((size_t)T * sizeof *m->ids);
    m->seg_start = xmalloc((size_t)T * sizeof *m->seg_start);
    m->pos = xmalloc((size_t)T * sizeof *m->pos);
    if (m->la) { /* attached adapters, even while switched off */
        free(m->lora_u);
        free(m->lora_du);
        free(m->lora_xd);
        m->lora_u = xaligned_alloc((size_t)c->n_layers * LORA_N_TARGETS * T * m->lora.r * sizeof(float));
        m->lora_du = xaligned_alloc((size_t)T * m->lora.r * sizeof(float));
        long widest = C > HD ? C : HD;
        if (F > widest) widest = F;
        m->lora_xd = m->lora.dropout > 0 ? xaligned_alloc((size_t)(T * widest) * sizeof(float)) : NULL;
    }
    m->T_cap = T;
}

/* ---- forward ---- */

/* y = x·Wᵀ (+ b): W as the weights hold it, float32 in the parameter
 * block or a frozen base's stored copy (bf16, f16). Exact x (BPREC_EXACT):
 * the backward (linear_backward) differentiates the product of the exact
 * x, so the forward must compute that product -- inference's bf16 prefill
 * or int8 activations would make the gradients those of another function. */
static void linear(TrainDecoder *m, float *y, const float *x, int T, const QMat *W, const float *b) {
    m->be->linear(m->be, y, x, T, W, b, BPREC_EXACT);
}

/* Shapes (in, out) of each adaptable projection. */
static void target_dims(const ModelConfig *c, int t, int *in, int *out) {
    const int C = c->hidden_size, HD = c->n_heads * c->head_dim, KD = c->n_kv_heads * c->head_dim;
    const int F = c->intermediate_size;
    static const int sel[LORA_N_TARGETS][2] = {{0, 1}, {0, 2}, {0, 2}, {1, 0}, {0, 3}, {0, 3}, {3, 0}};
    const int dims[4] = {C, HD, KD, F};
    *in = dims[sel[t][0]];
    *out = dims[sel[t][1]];
}

static float *lora_u_of(const TrainDecoder *m, int l, int t) {
    return m->lora_u + ((size_t)l * LORA_N_TARGETS + t) * m->T_cap * m->lora.r;
}

/* The dropout masks of target t of layer l in the last forward, or NULL. */
static const LoraDropout *dropout_of(const TrainDecoder *m, int l, int t, LoraDropout *d) {
    if (!m->fwd_drop) return NULL;
    /* a fused module's parts (Phi-3's q, k, v) see one dropout of their input, as in peft */
    lora_dropout_init(d, m->lora.dropout, m->fwd_seed, m->fwd_pass, l, m->lora_group[t]);
    return d;
}

/* The adapter of target t of layer l as the backend takes it (d: room
 * for its dropout masks). */
static BackendLora adapter_of(const TrainDecoder *m, int l, int t, LoraDropout *d) {
    BackendLora a = {.A = m->la[l].A[t], .B = m->la[l].B[t], .r = m->lora.r, .scale = m->lora_scale,
                     .drop = dropout_of(m, l, t, d), .u = lora_u_of(m, l, t), .du = m->lora_du, .xd = m->lora_xd};
    target_dims(&m->cfg, t, &a.in, &a.out);
    return a;
}

/* A projection of layer l: the base linear, plus the adapter if it has one. */
static void proj(TrainDecoder *m, int l, int t, float *y, const float *x, int T, const QMat *W, const float *b) {
    linear(m, y, x, T, W, b);
    if (m->lora_on && m->la[l].A[t]) {
        LoraDropout d;
        BackendLora a = adapter_of(m, l, t, &d);
        m->be->lora(m->be, y, x, T, &a);
    }
}

/* Where SwiGLU's output goes: the backward's dgate scratch, free during
 * the forward, and where layer_backward recomputes it (see scratch_of). */
static float *swiglu_out(TrainDecoder *m) {
    const ModelConfig *c = &m->cfg;
    const long T = m->T_cap, C = c->hidden_size, HD = (long)c->n_heads * c->head_dim;
    const long KD = (long)c->n_kv_heads * c->head_dim, F = c->intermediate_size;
    return m->scratch + T * (2 * C + 3 * HD + 3 * KD + F);
}

/* The RoPE table of layer l in the current forward: a sliding layer's own
 * (Gemma 3), else the global one the forward chose (LongRoPE: short/long). */
/* RoPE (backward: its transpose) on T rows of `heads` heads in place;
 * partial rotary (rope_dims < head_dim, Phi-4-mini) turns the heads'
 * leading rotary dims, the others pass through (their gradient too). */
static void rope_heads(const TrainDecoder *m, float *x, int T, int heads, const float *inv, int backward) {
    BackendRope r = {.n_heads = heads,
                     .head_dim = m->cfg.head_dim,
                     .rot = rope_dims(&m->cfg),
                     .pos = m->pos,
                     .inv_freq = inv,
                     .mscale = m->rope_mscale};
    m->be->rope(m->be, x, T, &r, backward);
}

/* The model's norm, forward and backward (dw NULL: frozen). */
static void norm_fwd(const TrainDecoder *m, float *out, const float *x, const float *w, int n, int dim) {
    m->be->norm(m->be, m->norm_kind, out, x, w, m->norm_off, n, dim, m->cfg.norm_eps);
}
static void norm_bwd(const TrainDecoder *m, float *dx, float *dw, const float *dy, const float *x, const float *w,
                     int n, int dim) {
    m->be->norm_backward(m->be, m->norm_kind, dx, dw, dy, x, w, m->norm_off, n, dim, m->cfg.norm_eps);
}

static BackendAct act_kind(const TrainDecoder *m) {
    return m->cfg.act == ACT_GELU_TANH ? BACT_GEGLU_TANH : BACT_SWIGLU;
}

static const float *layer_inv_freq(const TrainDecoder *m, int l) {
    if (m->inv_freq_local && arch_layer_sliding(&m->cfg, l)) return m->inv_freq_local;
    return m->fwd_inv_freq;
}

static AttnOpts layer_attn_opts(const TrainDecoder *m, int l) {
    const ModelConfig *c = &m->cfg;
    AttnOpts o = {c->attn_scale, c->attn_softcap, arch_layer_sliding(c, l) ? c->sliding_window : 0};
    return o;
}

/* One layer, each step as the config's quirks say:
 *   xn = pre_norm ? norm(res0) : res0
 *   q, k, v = proj(xn), clamped with clip_qkv, q/k normed (per head or
 *   over the whole projection), RoPE (the layer's table, LongRoPE's scale)
 *   ao = o(attn(q, k, v))  (the layer's window, score scale, soft-cap)
 *   res1 = res0 + (post_norm ? norm(ao) : ao)
 *   the MLP the same way around res1, act SiLU or tanh-GELU. */
static void layer_forward(TrainDecoder *m, int l, float *res_out, int T) {
    const LayerWeights *L = &m->w.layers[l];
    TdActs *a = &m->acts[l];
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    const int C = c->hidden_size, D = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, F = c->intermediate_size;
    if (c->pre_norm) norm_fwd(m, a->xn, a->res0, L->attn_norm, T, C);
    proj(m, l, LORA_Q, a->q_lin, a->xn, T, &L->wq, L->bq);
    proj(m, l, LORA_K, a->k_lin, a->xn, T, &L->wk, L->bk);
    proj(m, l, LORA_V, a->v, a->xn, T, &L->wv, L->bv);
    if (c->clip_qkv > 0) {
        be->map(be, BMAP_CLAMP, a->q_lin, (long)T * H * D, c->clip_qkv);
        be->map(be, BMAP_CLAMP, a->k_lin, (long)T * KV * D, c->clip_qkv);
        be->map(be, BMAP_CLAMP, a->v, (long)T * KV * D, c->clip_qkv);
    }
    if (L->q_norm) {
        /* per head (Qwen3, Gemma 3: rows of head_dim) or over the whole
         * projection (OLMo 2: one row of heads·head_dim per token) */
        const int qr = c->qk_norm_full ? T : T * H, kr = c->qk_norm_full ? T : T * KV;
        norm_fwd(m, a->q, a->q_lin, L->q_norm, qr, (int)((long)T * H * D / qr));
        norm_fwd(m, a->k, a->k_lin, L->k_norm, kr, (int)((long)T * KV * D / kr));
    } else if (a->q != a->q_lin) { /* clamped only: RoPE must not overwrite the clamp's values */
        be->copy(be, a->q, a->q_lin, (size_t)T * H * D * sizeof(float));
        be->copy(be, a->k, a->k_lin, (size_t)T * KV * D * sizeof(float));
    }
    const float *inv = layer_inv_freq(m, l);
    rope_heads(m, a->q, T, H, inv, 0);
    rope_heads(m, a->k, T, KV, inv, 0);
    AttnDims d = {T, H, KV, D, m->seg_start};
    AttnOpts o = layer_attn_opts(m, l);
    be->attn_train(be, a->ctx, a->att, a->q, a->k, a->v, &d, &o);
    if (c->post_norm) {
        proj(m, l, LORA_O, a->ao, a->ctx, T, &L->wo, L->bo);
        norm_fwd(m, a->res1, a->ao, L->post_attn_norm, T, C);
    } else {
        proj(m, l, LORA_O, a->res1, a->ctx, T, &L->wo, L->bo);
    }
    be->add(be, a->res1, a->res0, (long)T * C);
    if (c->pre_norm) norm_fwd(m, a->xn2, a->res1, L->ffn_norm, T, C);
    proj(m, l, LORA_GATE, a->gate, a->xn2, T, &L->w_gate, NULL);
    proj(m, l, LORA_UP, a->up, a->xn2, T, &L->w_up, NULL);
    float *h = swiglu_out(m); /* not kept: layer_backward recomputes it */
    be->act(be, act_kind(m), h, a->gate, a->up, (long)T * F);
    if (c->post_norm) {
        proj(m, l, LORA_DOWN, a->fo, h, T, &L->w_down, NULL);
        norm_fwd(m, res_out, a->fo, L->post_ffn_norm, T, C);
    } else {
        proj(m, l, LORA_DOWN, res_out, h, T, &L->w_down, NULL);
    }
    be->add(be, res_out, a->res1, (long)T * C);
}

void td_pack_segments(const int *lens, int n, int *seg_start) {
    for (int i = 0, t = 0; i < n; t += lens[i], i++)
        for (int j = 0; j < lens[i]; j++) seg_start[t + j] = t;
}

static int check_input(const TrainDecoder *m, const int32_t *ids, const int *seg_start, int T, Err *e) {
    if (T <= 0) return err_set(e, ERR_ARG, "training forward: empty sequence");
    for (int t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= m->cfg.vocab_size)
            return err_set(e, ERR_ARG, "training forward: token %d at position %d is outside the vocabulary [0, %d)",
                           ids[t], t, m->cfg.vocab_size);
        /* A segment is a run of tokens sharing the index of its first token. */
        if (seg_start && !(seg_start[t] == t || (t > 0 && seg_start[t] == seg_start[t - 1])))
            return err_set(e, ERR_ARG, "training forward: segment start %d at position %d: expected %d or the "
                           "previous token's start", seg_start[t], t, t);
    }
    return 0;
}

int td_forward(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, int T, float *logits, Err *e) {
    return td_forward_packed(m, tp, ids, NULL, T, logits, e);
}

int td_forward_hidden(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, const int *seg_start, int T, Err *e) {
    const ModelConfig *c = &m->cfg;
    const int C = c->hidden_size;
    if (check_input(m, ids, seg_start, T, e)) return -1;
    if (m->frozen && m->frozen_dtype != DT_F32 && !tp) /* the GEMM's conversion tiles are the pool's */
        return err_set(e, ERR_ARG, "training forward: a base frozen in %s needs a thread pool",
                       dtype_name(m->frozen_dtype));
    Backend *be = td_backend(m, tp);
    ensure_capacity(m, T);
    m->T = T;
    m->fwd_drop = m->drop_on && m->lora_on && m->lora.dropout > 0;
    m->fwd_seed = m->drop_seed, m->fwd_pass = m->drop_pass;
    memcpy(m->ids, ids, (size_t)T * sizeof *ids);
    int max_pos = 0;
    for (int t = 0; t < T; t++) {
        m->seg_start[t] = seg_start ? seg_start[t] : 0;
        m->pos[t] = t - m->seg_start[t];
        if (m->pos[t] > max_pos) max_pos = m->pos[t];
    }
    /* LongRoPE: the long factors when the call's longest sequence passes
     * original_max_position_embeddings (transformers decides per call on
     * its longest sequence too, so a packed DPO pair is one choice) */
    m->fwd_inv_freq = m->inv_freq_long && max_pos + 1 > c->rope.original_max_pos ? m->inv_freq_long : m->inv_freq;
    m->cap_t1 = m->cap_t0 = 0; /* the head's saved block is stale */
    float *res = c->n_layers ? m->acts[0].res0 : m->res_final;
    /* Gemma: times float(sqrt(hidden)), the reader's embed_scale (0: none) */
    be->embed(be, res, &m->w.embed, ids, T, c->embed_scale);
    for (int l = 0; l < c->n_layers; l++) {
        float *out = l + 1 < c->n_layers ? m->acts[l + 1].res0 : m->res_final;
        layer_forward(m, l, out, T);
    }
    norm_fwd(m, m->xf, m->res_final, m->w.out_norm, T, C);
    return 0;
}

void td_head_forward(TrainDecoder *m, ThreadPool *tp, int t0, int t1, float *logits) {
    const int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    Backend *be = td_backend(m, tp);
    linear(m, logits, m->xf + (long)t0 * C, t1 - t0, &m->w.lm_head, NULL);
    const float cap = m->cfg.final_softcap;
    if (cap > 0) { /* Gemma 2: the loss sees capped logits; the backward needs them */
        const long n = (long)(t1 - t0) * V;
        be->map(be, BMAP_SOFTCAP, logits, n, cap);
        if (m->cap_floats < n) {
            free(m->cap_logits);
            m->cap_logits = xaligned_alloc((size_t)n * sizeof(float));
            m->cap_floats = n;
        }
        be->copy(be, m->cap_logits, logits, (size_t)n * sizeof(float));
        m->cap_t0 = t0, m->cap_t1 = t1;
    }
}

int td_forward_packed(TrainDecoder *m, ThreadPool *tp, const int32_t *ids, const int *seg_start, int T,
                      float *logits, Err *e) {
    if (td_forward_hidden(m, tp, ids, seg_start, T, e)) return -1;
    td_head_forward(m, tp, 0, T, logits);
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

static void zero(const TrainDecoder *m, float *x, long n) { m->be->zero(m->be, x, (size_t)n * sizeof *x); }

/* A parameter's gradient, or NULL when the base is frozen (under LoRA, or
 * held in its stored dtype). */
static float *base_grad(const TrainDecoder *m, float *g) { return m->lora_on || m->frozen ? NULL : g; }
static float *base_grad_mat(const TrainDecoder *m, const QMat *g) { return base_grad(m, model_mat_f32(g)); }

/* dx += dy·W (and W's gradients when it trains) for W [out][in]: a frozen
 * base (stored type) gives dx only. */
static void base_linear_backward(TrainDecoder *m, float *dx, const QMat *dW, float *db, const float *dy,
                                 const float *x, const QMat *W, int T) {
    m->be->linear_backward(m->be, dx, base_grad_mat(m, dW), base_grad(m, db), dy, x, W, T);
}

/* Backward of proj(): dx += ..., and the base's or the adapter's gradients. */
static void proj_backward(TrainDecoder *m, int l, int t, float *dx, const QMat *dW, float *db, const float *dy,
                          const float *x, const QMat *W) {
    base_linear_backward(m, dx, dW, db, dy, x, W, m->T);
    if (m->lora_on && m->la[l].A[t]) {
        LoraDropout d;
        BackendLora a = adapter_of(m, l, t, &d);
        m->be->lora_backward(m->be, dx, m->lg[l].A[t], m->lg[l].B[t], dy, x, m->T, &a);
    }
}

/* d_res += the gradient through a sub-layer's input norm: norm backward
 * with pre_norm, else d_x itself (the sub-layer read res directly). */
static void pre_norm_backward(TrainDecoder *m, float *d_res, float *dw, const float *d_x, const float *x,
                              const float *w, int T) {
    const ModelConfig *c = &m->cfg;
    if (c->pre_norm) norm_bwd(m, d_res, base_grad(m, dw), d_x, x, w, T, c->hidden_size);
    else m->be->add(m->be, d_res, d_x, (long)T * c->hidden_size);
}

/* The gradient a sub-layer's output projection receives: d_res, or with
 * post_norm the post-norm's backward of it (into out, zeroed here). */
static const float *post_norm_backward(TrainDecoder *m, float *out, float *dw, const float *d_res, const float *x,
                                       const float *w, int T) {
    const ModelConfig *c = &m->cfg;
    if (!c->post_norm) return d_res;
    zero(m, out, (long)T * c->hidden_size);
    norm_bwd(m, out, base_grad(m, dw), d_res, x, w, T, c->hidden_size);
    return out;
}

/* On entry s->d_res holds dL/d(layer output); on exit dL/d(layer input). */
static void layer_backward(TrainDecoder *m, int l, Scratch *s) {
    const ModelConfig *c = &m->cfg;
    Backend *be = m->be;
    const LayerWeights *W = &m->w.layers[l];
    const LayerWeights *G = &m->g.layers[l];
    const TdActs *a = &m->acts[l];
    const int T = m->T, C = c->hidden_size, D = c->head_dim, H = c->n_heads, KV = c->n_kv_heads;
    const int F = c->intermediate_size;
    /* MLP: the residual passes d_res through; the branch adds its part.
     * The activation's output h again (the forward's values), into dgate
     * until the down projection's backward is done with it. The post-norm's
     * gradient goes to d_x, free until the gate/up backward. */
    be->act(be, act_kind(m), s->dgate, a->gate, a->up, (long)T * F);
    const float *d_down = post_norm_backward(m, s->d_x, G->post_ffn_norm, s->d_res, a->fo, W->post_ffn_norm, T);
    zero(m, s->dh, (long)T * F);
    proj_backward(m, l, LORA_DOWN, s->dh, &G->w_down, NULL, d_down, s->dgate, &W->w_down);
    zero(m, s->dgate, (long)T * F);
    zero(m, s->dup, (long)T * F);
    be->act_backward(be, act_kind(m), s->dgate, s->dup, s->dh, a->gate, a->up, (long)T * F);
    zero(m, s->d_x, (long)T * C);
    proj_backward(m, l, LORA_GATE, s->d_x, &G->w_gate, NULL, s->dgate, a->xn2, &W->w_gate);
    proj_backward(m, l, LORA_UP, s->d_x, &G->w_up, NULL, s->dup, a->xn2, &W->w_up);
    pre_norm_backward(m, s->d_res, G->ffn_norm, s->d_x, a->res1, W->ffn_norm, T);
    /* Attention. */
    const float *d_o = post_norm_backward(m, s->d_x, G->post_attn_norm, s->d_res, a->ao, W->post_attn_norm, T);
    zero(m, s->dctx, (long)T * H * D);
    proj_backward(m, l, LORA_O, s->dctx, &G->wo, G->bo, d_o, a->ctx, &W->wo);
    zero(m, s->dq, (long)T * H * D);
    zero(m, s->dk, (long)T * KV * D);
    zero(m, s->dv, (long)T * KV * D);
    AttnDims d = {T, H, KV, D, m->seg_start};
    AttnOpts o = layer_attn_opts(m, l);
    be->attn_train_backward(be, s->dq, s->dk, s->dv, s->dctx, a->att, a->q, a->k, a->v, &d, &o);
    const float *inv = layer_inv_freq(m, l);
    rope_heads(m, s->dq, T, H, inv, 1);
    rope_heads(m, s->dk, T, KV, inv, 1);
    float *dq_lin = s->dq, *dk_lin = s->dk;
    if (W->q_norm) {
        const int qr = c->qk_norm_full ? T : T * H, kr = c->qk_norm_full ? T : T * KV;
        zero(m, s->dq_lin, (long)T * H * D);
        zero(m, s->dk_lin, (long)T * KV * D);
        norm_bwd(m, s->dq_lin, base_grad(m, G->q_norm), s->dq, a->q_lin, W->q_norm, qr, (int)((long)T * H * D / qr));
        norm_bwd(m, s->dk_lin, base_grad(m, G->k_norm), s->dk, a->k_lin, W->k_norm, kr,
                 (int)((long)T * KV * D / kr));
        dq_lin = s->dq_lin, dk_lin = s->dk_lin;
    }
    if (c->clip_qkv > 0) { /* no gradient where the projection was clamped */
        be->map_backward(be, BMAP_CLAMP, dq_lin, dq_lin, a->q_lin, (long)T * H * D, c->clip_qkv);
        be->map_backward(be, BMAP_CLAMP, dk_lin, dk_lin, a->k_lin, (long)T * KV * D, c->clip_qkv);
        be->map_backward(be, BMAP_CLAMP, s->dv, s->dv, a->v, (long)T * KV * D, c->clip_qkv);
    }
    zero(m, s->d_x, (long)T * C);
    proj_backward(m, l, LORA_Q, s->d_x, &G->wq, G->bq, dq_lin, a->xn, &W->wq);
    proj_backward(m, l, LORA_K, s->d_x, &G->wk, G->bk, dk_lin, a->xn, &W->wk);
    proj_backward(m, l, LORA_V, s->d_x, &G->wv, G->bv, s->dv, a->xn, &W->wv);
    pre_norm_backward(m, s->d_res, G->attn_norm, s->d_x, a->res0, W->attn_norm, T);
}

/* The head's gradients go to scratch d_x (rows t0..t1, which only this call
 * writes) and to the head weight's gradient (accumulated). */
void td_head_backward(TrainDecoder *m, ThreadPool *tp, int t0, int t1, const float *dlogits) {
    const int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    Backend *be = td_backend(m, tp);
    Scratch s = scratch_of(m);
    const float cap = m->cfg.final_softcap;
    if (cap > 0) { /* through the soft-cap: the block's capped logits, kept by td_head_forward */
        if (m->cap_t0 != t0 || m->cap_t1 != t1) {
            float *tmp = xaligned_alloc((size_t)(t1 - t0) * V * sizeof(float));
            td_head_forward(m, tp, t0, t1, tmp);
            free(tmp);
        }
        /* d(pre-cap) = d(capped) · (1 − (capped/cap)²), over the saved values */
        float *g = m->cap_logits;
        be->map_backward(be, BMAP_SOFTCAP, g, dlogits, g, (long)(t1 - t0) * V, cap);
        dlogits = g;
        m->cap_t0 = m->cap_t1 = 0;
    }
    zero(m, s.d_x + (long)t0 * C, (long)(t1 - t0) * C);
    base_linear_backward(m, s.d_x + (long)t0 * C, &m->g.lm_head, NULL, dlogits, m->xf + (long)t0 * C, &m->w.lm_head,
                         t1 - t0);
}

int td_head_trains(const TrainDecoder *m) { return base_grad_mat(m, &m->g.lm_head) != NULL; }

void td_scale_head_grad(TrainDecoder *m, int t0, int t1, float f) {
    const long C = m->cfg.hidden_size;
    m->be->map(m->be, BMAP_SCALE, scratch_of(m).d_x + t0 * C, (t1 - t0) * C, f);
}

void td_backward_hidden(TrainDecoder *m, ThreadPool *tp) {
    const ModelConfig *c = &m->cfg;
    const int T = m->T, C = c->hidden_size;
    Backend *be = td_backend(m, tp);
    Scratch s = scratch_of(m);
    zero(m, s.d_res, (long)T * C);
    norm_bwd(m, s.d_res, base_grad(m, m->g.out_norm), s.d_x, m->res_final, m->w.out_norm, T, C);
    for (int l = c->n_layers - 1; l >= 0; l--) layer_backward(m, l, &s);
    float *g_embed = base_grad_mat(m, &m->g.embed);
    if (g_embed) be->embed_backward(be, g_embed, s.d_res, m->ids, T, C, c->embed_scale);
}

void td_backward(TrainDecoder *m, ThreadPool *tp, const float *dlogits) {
    td_head_backward(m, tp, 0, m->T, dlogits);
    td_backward_hidden(m, tp);
}

void td_zero_grad(TrainDecoder *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
    if (m->lora_on) memset(m->lora_grads, 0, m->n_lora_params * sizeof(float));
}

/* ---- LoRA ---- */

static void lora_add_tensor(TrainDecoder *m, const char *name, int64_t rows, int64_t cols) {
    m->lora_tensors = xrealloc(m->lora_tensors, (size_t)(m->n_lora_tensors + 1) * sizeof *m->lora_tensors);
    TdTensor *t = &m->lora_tensors[m->n_lora_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows, t->cols = cols, t->ndim = 2;
    t->offset = m->n_lora_params;
    t->numel = (size_t)(rows * cols);
    m->n_lora_params += t->numel;
}

/* The table's kind a LoRA target adapts. */
static ParamKind target_kind(int t) {
    static const ParamKind K[LORA_N_TARGETS] = {PARAM_WQ, PARAM_WK, PARAM_WV, PARAM_WO,
                                                PARAM_W_GATE, PARAM_W_UP, PARAM_W_DOWN};
    return K[t];
}

/* The target whose kind names t's stored tensor (t itself unless fused:
 * Phi-3's k and v are rows of q's qkv_proj), with t's row offset in it
 * and its rows. */
static int target_first(const ModelConfig *c, int t, long long *row_off, long long *stored) {
    ParamKind first = arch_fused_rows(c, target_kind(t), row_off, stored);
    for (int u = 0; u < LORA_N_TARGETS; u++)
        if (target_kind(u) == first) return u;
    return t;
}

const char *td_lora_module(const TrainDecoder *m, int t, char *buf, size_t size) {
    long long off, stored;
    if (target_first(&m->cfg, t, &off, &stored) != t) return NULL;
    char hf[96];
    if (arch_hf_name_of(m->cfg.arch, target_kind(t), 0, hf, sizeof hf)) return NULL;
    /* "model.layers.0.self_attn.qkv_proj.weight" -> "qkv_proj" */
    char *dot = strrchr(hf, '.');
    if (dot) *dot = 0;
    dot = strrchr(hf, '.');
    snprintf(buf, size, "%s", dot ? dot + 1 : hf);
    return buf;
}

/* "base_model.model.<the base tensor's name without .weight>.lora_A.weight" */
static void lora_tensor_name(const TrainDecoder *m, int l, int t, const char *which, char *buf, size_t size) {
    char hf[96];
    arch_hf_name_of(m->cfg.arch, target_kind(t), l, hf, sizeof hf);
    size_t n = strlen(hf);
    if (n > 7 && !strcmp(hf + n - 7, ".weight")) hf[n - 7] = 0;
    snprintf(buf, size, "base_model.model.%s.%s.weight", hf, which);
}

int td_lora_attach(TrainDecoder *m, const LoraConfig *c, Err *e) {
    if (m->lora_on) return err_set(e, ERR_ARG, "LoRA: the model already has adapters");
    if (lora_config_check(c, e)) return -1;
    const ModelConfig *mc = &m->cfg;
    /* A fused tensor is one module to peft: its parts are adapted together or not at all. */
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        long long off, stored;
        m->lora_group[t] = target_first(mc, t, &off, &stored);
        const int in_t = !!(c->targets & (1u << t)), in_first = !!(c->targets & (1u << m->lora_group[t]));
        if (in_t != in_first) {
            char mod[64];
            td_lora_module(m, m->lora_group[t], mod, sizeof mod);
            return err_set(e, ERR_ARG, "LoRA targets: %s stores %s inside %s: target all of that module's parts "
                           "or none", model_arch_name(mc->arch), lora_module_name(t), mod);
        }
    }
    for (int l = 0; l < mc->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!(c->targets & (1u << t)) || m->lora_group[t] != t) continue;
            int in, out;
            long long off, stored;
            target_dims(mc, t, &in, &out);
            target_first(mc, t, &off, &stored);
            if (stored > out) out = (int)stored;
            char name[128];
            lora_tensor_name(m, l, t, "lora_A", name, sizeof name);
            lora_add_tensor(m, name, c->r, in);
            lora_tensor_name(m, l, t, "lora_B", name, sizeof name);
            lora_add_tensor(m, name, out, c->r);
        }
    m->lora_params = xcalloc(m->n_lora_params, sizeof(float));
    m->lora_grads = xcalloc(m->n_lora_params, sizeof(float));
    m->la = xcalloc((size_t)mc->n_layers, sizeof *m->la);
    m->lg = xcalloc((size_t)mc->n_layers, sizeof *m->lg);
    int k = 0; /* the tensors in the order just added: (A, B) per stored module per layer */
    for (int l = 0; l < mc->n_layers; l++) {
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!(c->targets & (1u << t)) || m->lora_group[t] != t) continue;
            m->la[l].A[t] = m->lora_params + m->lora_tensors[k].offset;
            m->lg[l].A[t] = m->lora_grads + m->lora_tensors[k++].offset;
            m->la[l].B[t] = m->lora_params + m->lora_tensors[k].offset;
            m->lg[l].B[t] = m->lora_grads + m->lora_tensors[k++].offset;
        }
        /* a fused module's parts: its A, and their rows of its B */
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const int f = m->lora_group[t];
            if (!(c->targets & (1u << t)) || f == t) continue;
            long long off, stored;
            target_first(mc, t, &off, &stored);
            m->la[l].A[t] = m->la[l].A[f], m->lg[l].A[t] = m->lg[l].A[f];
            m->la[l].B[t] = m->la[l].B[f] + off * c->r, m->lg[l].B[t] = m->lg[l].B[f] + off * c->r;
        }
    }
    m->lora = *c;
    m->lora_scale = lora_scale(c);
    m->lora_on = 1;
    /* The base is frozen: its gradient block (as large as the model) goes. */
    free(m->grads);
    m->grads = NULL;
    clear_grad_views(m);
    m->T_cap = 0; /* the next forward allocates the adapters' saved activations */
    return 0;
}

void td_lora_dropout_on(TrainDecoder *m, uint64_t seed, uint64_t pass) {
    m->drop_on = 1;
    m->drop_seed = seed, m->drop_pass = pass;
}

void td_lora_dropout_off(TrainDecoder *m) { m->drop_on = 0; }

void td_lora_init(TrainDecoder *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!m->la[l].A[t] || m->lora_group[t] != t) continue; /* a fused module once, whole */
            int in, out;
            long long off, stored;
            target_dims(&m->cfg, t, &in, &out);
            target_first(&m->cfg, t, &off, &stored);
            lora_init_weights(m->la[l].A[t], m->la[l].B[t], in, stored > out ? (int)stored : out, m->lora.r, &r);
        }
}

/* The base weight a target adapts (float32: after thaw_base). */
static float *target_weight(TrainDecoder *m, int l, int t) {
    return model_mat_f32(model_weight_slot(&m->w, target_kind(t), l).mat);
}

void td_lora_merge(TrainDecoder *m) {
    if (!m->la) return;
    thaw_base(m);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!m->la[l].A[t]) continue;
            int in, out;
            target_dims(&m->cfg, t, &in, &out);
            m->be->lora_merge(m->be, target_weight(m, l, t), m->la[l].A[t], m->la[l].B[t], in, out, m->lora.r,
                              m->lora_scale);
        }
    free(m->lora_tensors), free(m->lora_params), free(m->lora_grads), free(m->la), free(m->lg);
    free(m->lora_u), free(m->lora_du), free(m->lora_xd);
    m->lora_tensors = NULL, m->lora_params = m->lora_grads = NULL, m->la = m->lg = NULL;
    m->lora_u = m->lora_du = m->lora_xd = NULL;
    m->n_lora_tensors = 0, m->n_lora_params = 0, m->lora_on = 0;
    memset(&m->lora, 0, sizeof m->lora);
    /* Trainable again: a gradient block for the whole model. */
    m->grads = xaligned_alloc(m->n_params * sizeof(float));
    memset(m->grads, 0, m->n_params * sizeof(float));
    walk_all(m, &m->g, m->grads, m->grads, DT_F32, 0);
}

const TdTensor *td_lora_find(const TrainDecoder *m, const char *name) {
    for (int i = 0; i < m->n_lora_tensors; i++)
        if (!strcmp(m->lora_tensors[i].name, name)) return &m->lora_tensors[i];
    return NULL;
}

int td_lora_load(TrainDecoder *m, const char *dir, Err *e) {
    LoraConfig c;
    if (lora_config_load(dir, &c, e) || td_lora_attach(m, &c, e)) return -1;
    char *path = path_join(dir, "adapter_model.safetensors");
    SafeTensors *st = st_open(path, e);
    free(path);
    if (!st) return -1;
    int rc = 0;
    for (int i = 0; i < m->n_lora_tensors && !rc; i++) {
        const TdTensor *t = &m->lora_tensors[i];
        const TensorView *v = st_get(st, t->name, e);
        int64_t shape[2] = {t->rows, t->cols};
        rc = !v || tensor_check_shape(v, 2, shape, e) || tensor_to_f32(v, m->lora_params + t->offset, e);
    }
    st_close(st);
    return rc ? -1 : 0;
}
