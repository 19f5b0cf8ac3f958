/* Construction helpers shared by the loaders and the random initialiser:
 * the Model struct, its parameter block and weight views, RoPE tables. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/threads.h"
#include "model/decoder.h"
#include "model/model_internal.h"

Model *model_new(const ModelConfig *cfg, int n_threads) {
    Model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    arch_config_quirks(&m->cfg); /* for configs made by hand (tests, shapes) */
    m->tp = tp_create(n_threads);
    m->be = backend_cpu_new(m->tp);
    m->w.layers = xcalloc((size_t)cfg->n_layers, sizeof *m->w.layers);
    return m;
}

void *model_own(Model *m, void *p) {
    m->owned = xrealloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *m->owned);
    m->owned[m->n_owned++] = p;
    return p;
}

/* ---- the weights' place in memory (ALOE_WEIGHTS) ----
 * A file's map reads through the page cache's 4 KiB pages; a copy in
 * memory advised for 2 MiB pages (xhuge_alloc) streamed faster wherever a
 * decode was memory-bound: the 8B BF16 decode here went from ~1.5-1.8 to
 * ~2.7-3.0 tokens/s (its weights read at ~31-35 against ~45-60 GB/s);
 * the quantised 8B files, whose dots are closer to compute-bound, neither
 * gained nor lost (docs/BENCHMARKS.md "Weights in memory"). The copy costs
 * load time (the pages are read once and written once, on all threads)
 * and holds the weights in the process's own memory instead of the
 * shared page cache, so "auto" copies only what fits in the memory the
 * kernel reports available; "map" keeps the map (the page cache shared
 * with other processes, the fastest load), "memory" always copies. */

typedef enum { WEIGHTS_AUTO, WEIGHTS_MEMORY, WEIGHTS_MAP } WeightsPlace;

static int parse_placement(WeightsPlace *out, Err *e) {
    const char *s = getenv("ALOE_WEIGHTS");
    if (!s || !*s || !strcmp(s, "auto")) *out = WEIGHTS_AUTO;
    else if (!strcmp(s, "memory")) *out = WEIGHTS_MEMORY;
    else if (!strcmp(s, "map")) *out = WEIGHTS_MAP;
    else return err_set(e, ERR_ARG, "ALOE_WEIGHTS: '%s' is not one of auto, memory, map", s);
    return 0;
}

/* MemAvailable of /proc/meminfo in bytes (0 when unknown). */
static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (size_t)kb * 1024;
}

/* The map of a file the model maps (GGUF or safetensors shards; never a
 * buffer the caller parsed in memory) the n bytes at p lie in, or NULL. */
static const FileMap *file_map_of(const Model *m, const void *p, size_t n) {
    const FileMap *f = m->gguf ? gguf_map_holding(m->gguf, p, n) : NULL;
    return f ? f : m->st ? st_map_holding(m->st, p, n) : NULL;
}

typedef struct CopyJob {
    const char *src;
    char *dst;
    size_t rb; /* bytes a row, the same in both layouts */
    long rows, cols;
    int regroup;        /* into this in-memory layout (dtype_regroup), else 0: bytes as they are */
    const FileMap *map; /* src lies in it: bytes as they are are read from the file */
} CopyJob;

/* Thread ith's share of the rows: the copy reads the file's pages for the
 * first time (page faults or reads from disk, the kernel's work), so all
 * threads take part (an 8B Q4_0 file: ~6 s on one thread here). */
static void copy_task(void *ctx, int ith, int nth) {
    const CopyJob *j = ctx;
    long r0, r1;
    tp_split(j->rows, ith, nth, &r0, &r1);
    const char *src = j->src + (size_t)r0 * j->rb;
    char *dst = j->dst + (size_t)r0 * j->rb;
    size_t n = (size_t)(r1 - r0) * j->rb;
    if (j->regroup)
        for (long r = r0; r < r1; r++) dtype_regroup(j->regroup, j->src + (size_t)r * j->rb, j->dst + (size_t)r * j->rb, j->cols);
    else if (n && (!j->map || file_map_read(j->map, src, n, dst))) /* a failed read: the map has the same bytes */
        memcpy(dst, src, n);
}

/* One matrix into kernel_weight_type's layout, or out of a file's map
 * when `copy` says so: a copy the model owns, in huge-page memory. */
static void place_matrix(Model *m, QMat *q, int copy) {
    if (!q->data) return;
    int to = kernel_weight_type(q->type, q->cols);
    int regroup = to != q->type && dtype_regrouped_from(to) == q->type ? to : 0; /* formats/dtype.h */
    size_t bytes = qmat_bytes(q);
    const FileMap *map = file_map_of(m, q->data, bytes);
    if (!regroup && !(copy && map)) return;
    CopyJob j = {q->data, model_own(m, xhuge_alloc(bytes)), dtype_nbytes(q->type, q->cols), q->rows, q->cols, regroup, map};
    tp_run(m->tp, copy_task, &j);
    /* the copy replaces the map's pages for good (else the process would
     * hold both) */
    if (map) file_map_release(q->data, bytes);
    if (regroup) q->type = to;
    q->data = j.dst;
}

/* Matrix i of the model, i < 2 + n_layers * PARAM_COUNT: the embedding,
 * the LM head (NULL when tied to the embedding: decided before any is
 * moved, since moving the embedding changes its pointer), then each
 * layer's kinds; NULL where there is none. */
static QMat *nth_matrix(Model *m, int i, int tied) {
    if (i == 0) return &m->w.embed;
    if (i == 1) return tied ? NULL : &m->w.lm_head;
    ParamKind k = (ParamKind)((i - 2) % PARAM_COUNT);
    QMat *q = arch_tensor(k)->flags & TK_LAYER ? model_weight_slot(&m->w, k, (i - 2) / PARAM_COUNT).mat : NULL;
    return q && q->data ? q : NULL;
}

int model_place_weights(Model *m, Err *e) {
    WeightsPlace place = WEIGHTS_AUTO;
    if (parse_placement(&place, e)) return -1;
    int tied = m->w.lm_head.data == m->w.embed.data, n = 2 + m->cfg.n_layers * PARAM_COUNT;
    /* the bytes of the matrices in a file's map: what a copy would hold */
    size_t in_map = 0;
    for (int i = 0; i < n; i++) {
        const QMat *q = nth_matrix(m, i, tied);
        if (q && file_map_of(m, q->data, qmat_bytes(q))) in_map += qmat_bytes(q);
    }
    int copy = place == WEIGHTS_MEMORY || (place == WEIGHTS_AUTO && in_map <= mem_available() / 8 * 7);
    m->mapped_bytes = 0;
    for (int i = 0; i < n; i++) {
        QMat *q = nth_matrix(m, i, tied);
        if (!q) continue;
        place_matrix(m, q, copy);
        if (file_map_of(m, q->data, qmat_bytes(q))) m->mapped_bytes += qmat_bytes(q);
    }
    if (tied) m->w.lm_head = m->w.embed;
    return 0;
}

int model_check_dims(const ModelConfig *c, const char *src, Err *e) {
    const ArchDesc *a = arch_desc(c->arch);
    if (!a || !(a->flags & ARCHF_DECODER))
        return err_set(e, ERR_UNSUPPORTED, "%s: architecture %s is not a decoder this engine runs (expected one of %s)",
                       src, model_arch_name(c->arch), "Llama, Mistral, Qwen2, Qwen3, OLMo, OLMo 2, Gemma 2, Gemma 3, Phi-3");
    if (c->hidden_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->vocab_size <= 0 || c->intermediate_size <= 0)
        return err_set(e, ERR_PARSE, "%s: model dimensions must be positive (hidden %d, layers %d, heads %d/%d, "
                       "head_dim %d, vocab %d, intermediate %d)", src, c->hidden_size, c->n_layers, c->n_heads,
                       c->n_kv_heads, c->head_dim, c->vocab_size, c->intermediate_size);
    if (c->n_heads % c->n_kv_heads)
        return err_set(e, ERR_PARSE, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", src,
                       c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) return err_set(e, ERR_PARSE, "%s: head_dim %d must be even for RoPE", src, c->head_dim);
    return 0;
}

int model_check_config(const ModelConfig *c, const char *src, Err *e) {
    if (model_check_dims(c, src, e)) return -1;
    /* Rows of Q and K/V projections are ints in the weight views, and every
     * parameter block's byte size must be representable: checked here, with
     * overflow-safe products, before any size derived from them is used. */
    int64_t q, kv;
    if (__builtin_mul_overflow((int64_t)c->n_heads, (int64_t)c->head_dim, &q) || q > INT32_MAX ||
        __builtin_mul_overflow((int64_t)c->n_kv_heads, (int64_t)c->head_dim, &kv) || kv > INT32_MAX)
        return err_set(e, ERR_PARSE, "%s: num_attention_heads %d x head_dim %d is too large (at most %d rows)", src,
                       c->n_heads, c->head_dim, INT32_MAX);
    const int64_t L = c->n_layers, D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    const int64_t terms[][3] = {{V, D, 2}, {L, q, D}, {L, kv, 2 * D}, {L, D, q}, {L, F, 3 * D}};
    uint64_t total = 0, x;
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
        if (__builtin_mul_overflow((uint64_t)terms[i][0], (uint64_t)terms[i][1], &x) ||
            __builtin_mul_overflow(x, (uint64_t)terms[i][2], &x) || __builtin_add_overflow(total, x, &total) ||
            total > SIZE_MAX / sizeof(float) / 2)
            return err_set(e, ERR_PARSE, "%s: the weights of %d layers of hidden_size %d, intermediate_size %d and "
                           "vocab_size %d do not fit in memory's address space", src, c->n_layers, c->hidden_size,
                           c->intermediate_size, c->vocab_size);
    }
    return 0;
}

void model_rope_inv_freq_for(const ModelConfig *c, const float *freq_factors, int table, float *inv_freq) {
    const RopeConfig *r = &c->rope;
    /* over the rotary dims only (partial_rotary_factor): theta^(-2i/rot) */
    int hd = rope_dims(c);
    if (table == ROPE_TAB_LOCAL && r->local_theta > 0) {
        /* Gemma 3's sliding layers: their own base, no scaling */
        rope_inv_freq(inv_freq, hd, r->local_theta, NULL);
        return;
    }
    RopeScaling s = {ROPE_SCALING_NONE, 1, 1, 1, 0};
    if (!freq_factors && r->type == ROPE_LLAMA3)
        s = (RopeScaling){ROPE_SCALING_LLAMA3, r->factor, r->low_freq_factor, r->high_freq_factor, r->original_max_pos};
    if (!freq_factors && r->type == ROPE_LINEAR) s = (RopeScaling){ROPE_SCALING_LINEAR, r->factor, 1, 1, 0};
    rope_inv_freq(inv_freq, hd, r->theta, &s);
    if (r->type == ROPE_LONGROPE && r->n_factors == hd / 2) {
        /* transformers: 1 / (ext_factors * base^(arange(0, dim, 2) / dim)),
         * each step a float32 tensor op */
        const float *f = table == ROPE_TAB_LONG ? r->long_factor : r->short_factor;
        for (int i = 0; i < hd / 2; i++) {
            float ex = (float)(2 * i) / (float)hd, b = (float)pow(r->theta, (double)ex);
            inv_freq[i] = 1.0f / (f[i] * b);
        }
    }
    if (freq_factors)
        for (int i = 0; i < hd / 2; i++) inv_freq[i] /= freq_factors[i];
}

void model_rope_inv_freq(const ModelConfig *c, const float *freq_factors, float *inv_freq) {
    model_rope_inv_freq_for(c, freq_factors, ROPE_TAB_GLOBAL, inv_freq);
}

float model_rope_mscale(const ModelConfig *c) {
    return c->rope.type == ROPE_LONGROPE && c->rope.attn_factor > 0 ? c->rope.attn_factor : 1.0f;
}

/* RoPE frequencies from the config (optional per-frequency divisors: GGUF's
 * rope_freqs.weight, which llama.cpp uses for Llama 3 scaling); the local
 * and long tables only where they differ from the global one. */
void model_init_rope(Model *m, const float *freq_factors) {
    size_t bytes = (size_t)(m->cfg.head_dim / 2) * sizeof(float);
    m->inv_freq = xmalloc(bytes);
    model_rope_inv_freq(&m->cfg, freq_factors, m->inv_freq);
    if (m->cfg.rope.local_theta > 0 && m->cfg.sliding_window > 0) {
        m->inv_freq_local = model_own(m, xmalloc(bytes));
        model_rope_inv_freq_for(&m->cfg, freq_factors, ROPE_TAB_LOCAL, m->inv_freq_local);
    }
    if (m->cfg.rope.type == ROPE_LONGROPE) {
        m->inv_freq_long = model_own(m, xmalloc(bytes));
        model_rope_inv_freq_for(&m->cfg, freq_factors, ROPE_TAB_LONG, m->inv_freq_long);
    }
    m->rope_mscale = model_rope_mscale(&m->cfg);
}

/* Points the weight views into the contiguous f32 block: one slice per
 * kind, [layers][rows][cols] (a fused kind's rows were copied out of its
 * stored tensor at load), so no fused offset applies here. */
void model_views_from_params(Model *m) {
    const ModelConfig *c = &m->cfg;
    for (int k = 0; k < PARAM_COUNT; k++) {
        int n = (arch_tensor((ParamKind)k)->flags & TK_LAYER) ? c->n_layers : 1;
        long long rows, cols;
        arch_shape(c, (ParamKind)k, &rows, &cols);
        size_t per = (size_t)rows * (size_t)(cols ? cols : 1);
        for (int l = 0; l < n; l++)
            model_weight_point(&m->w, c, (ParamKind)k, l, DT_F32, m->param[k] ? m->param[k] + (size_t)l * per : NULL);
    }
    if (c->tie_word_embeddings) m->w.lm_head = m->w.embed;
}

/* Allocates the contiguous block and sets param[k] (NULL for empty kinds). */
void model_alloc_params(Model *m, const size_t sizes[PARAM_COUNT]) {
    size_t total = 0;
    for (int k = 0; k < PARAM_COUNT; k++) total += sizes[k];
    m->n_params = total;
    m->params = xhuge_alloc(total * sizeof(float) + 64);
    size_t off = 0;
    for (int k = 0; k < PARAM_COUNT; k++) {
        m->param[k] = sizes[k] ? m->params + off : NULL;
        off += sizes[k];
    }
}


WeightSlot model_weight_slot(ModelWeights *w, ParamKind k, int l) {
    LayerWeights *L = &w->layers[l];
    WeightSlot s = {NULL, NULL};
    switch (k) {
    case PARAM_EMBED: s.mat = &w->embed; break;
    case PARAM_LM_HEAD: s.mat = &w->lm_head; break;
    case PARAM_OUT_NORM: s.vec = &w->out_norm; break;
    case PARAM_ATTN_NORM: s.vec = &L->attn_norm; break;
    case PARAM_WQ: s.mat = &L->wq; break;
    case PARAM_BQ: s.vec = &L->bq; break;
    case PARAM_WK: s.mat = &L->wk; break;
    case PARAM_BK: s.vec = &L->bk; break;
    case PARAM_WV: s.mat = &L->wv; break;
    case PARAM_BV: s.vec = &L->bv; break;
    case PARAM_WO: s.mat = &L->wo; break;
    case PARAM_BO: s.vec = &L->bo; break;
    case PARAM_Q_NORM: s.vec = &L->q_norm; break;
    case PARAM_K_NORM: s.vec = &L->k_norm; break;
    case PARAM_POST_ATTN_NORM: s.vec = &L->post_attn_norm; break;
    case PARAM_FFN_NORM: s.vec = &L->ffn_norm; break;
    case PARAM_W_GATE: s.mat = &L->w_gate; break;
    case PARAM_W_UP: s.mat = &L->w_up; break;
    case PARAM_W_DOWN: s.mat = &L->w_down; break;
    case PARAM_POST_FFN_NORM: s.vec = &L->post_ffn_norm; break;
    default: break;
    }
    return s;
}

void model_weight_point(ModelWeights *w, const ModelConfig *c, ParamKind k, int l, int type, const void *data) {
    WeightSlot s = model_weight_slot(w, k, l);
    if (s.vec) {
        *s.vec = (float *)(uintptr_t)data;
    } else if (s.mat) {
        long long rows, cols;
        arch_shape(c, k, &rows, &cols);
        *s.mat = (QMat){type, data, (int)rows, (int)cols};
    }
}

void model_weight_point_stored(ModelWeights *w, const ModelConfig *c, ParamKind k, int l, int type,
                               const void *stored) {
    long long off = 0, stored_rows, rows, cols;
    arch_fused_rows(c, k, &off, &stored_rows);
    arch_shape(c, k, &rows, &cols);
    const void *data = stored ? (const char *)stored + dtype_nbytes(type, (int64_t)(off * (cols ? cols : 1))) : NULL;
    model_weight_point(w, c, k, l, type, data);
}
