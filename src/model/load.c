/* Loading decoder weights from Hugging Face directories and GGUF files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "kernels/ops.h"
#include "model/decoder.h"
#include "model/model_internal.h"

/* ---- Hugging Face ---- */

static int per_layer(ParamKind k) { return (arch_tensor(k)->flags & TK_LAYER) != 0; }
static int is_matrix_kind(ParamKind k) { return (arch_tensor(k)->flags & TK_MATRIX) != 0; }

/* The shape of one layer's slice of kind k: rows × cols (cols 0: a vector). */
static void kind_shape(const ModelConfig *c, ParamKind k, int64_t *rows, int64_t *cols) {
    long long r, cl;
    arch_shape(c, k, &r, &cl);
    *rows = r, *cols = cl;
}

/* Kind k's stored tensor for layer l: its name in c's architecture, its
 * shape (a fused tensor: the rows of every kind in it) and where k's rows
 * start in it. */
typedef struct Stored {
    char name[128];
    int64_t shape[2]; /* rows, cols (0: a vector) */
    int64_t row_off;
} Stored;

static void stored_of(const ModelConfig *c, ParamKind k, int l, int gguf, Stored *s) {
    long long off, rows, r, cl;
    arch_shape(c, k, &r, &cl);
    arch_fused_rows(c, k, &off, &rows);
    if (gguf) arch_gguf_name_of(c->arch, k, l, s->name, sizeof s->name);
    else arch_hf_name_of(c->arch, k, l, s->name, sizeof s->name);
    s->shape[0] = rows, s->shape[1] = cl, s->row_off = off;
}

/* rows × cols values of t from row row_off on, to f32 (F32, F16, BF16). */
static void slice_to_f32(const TensorView *t, int64_t row_off, int64_t rows, int64_t cols, float *dst) {
    int64_t per = cols ? cols : 1;
    dequantize_row(t->dtype, (const char *)t->data + dtype_nbytes(t->dtype, row_off * per), dst, rows * per);
}

/* config.json's num_hidden_layers against the layers the weights hold:
 * checked from the last layer down before anything is sized by it, so a
 * config claiming a million layers costs one lookup, not a million-layer
 * allocation. */
static int check_hf_layer_count(const SafeTensors *st, const ModelConfig *c, const char *cfg_path, Err *e) {
    char name[128];
    /* the first per-layer tensor every architecture has (OLMo has no norms) */
    ParamKind probe = arch_has(c, PARAM_ATTN_NORM) ? PARAM_ATTN_NORM : PARAM_WO;
    arch_hf_name_of(c->arch, probe, c->n_layers - 1, name, sizeof name);
    if (st_find(st, name)) return 0;
    int have = 0;
    for (; have < c->n_layers; have++) {
        arch_hf_name_of(c->arch, probe, have, name, sizeof name);
        if (!st_find(st, name)) break;
    }
    arch_hf_name_of(c->arch, probe, c->n_layers - 1, name, sizeof name);
    return err_set(e, ERR_PARSE, "%s: num_hidden_layers = %d, but %s has no tensor %s (it holds %d layer%s)", cfg_path,
                   c->n_layers, st_path(st), name, have, have == 1 ? "" : "s");
}

/* Every tensor the config implies, with the shape and a dtype it implies,
 * before the parameter block is sized from the config: the sizes then
 * describe data that exists, and a hostile config.json (a 2^30
 * hidden_size) is an error naming the tensor and the fields, not an
 * allocation of terabytes. */
static int check_hf_tensors(const SafeTensors *st, const ModelConfig *c, const char *cfg_path, Err *e) {
    if (check_hf_layer_count(st, c, cfg_path, e)) return -1;
    size_t sizes[PARAM_COUNT];
    model_param_sizes(c, sizes);
    for (int k = 0; k < PARAM_COUNT; k++) {
        if (!sizes[k]) continue;
        for (int l = 0; l < (per_layer((ParamKind)k) ? c->n_layers : 1); l++) {
            Stored s;
            stored_of(c, (ParamKind)k, l, 0, &s);
            const TensorView *t = st_find(st, s.name);
            if (!t)
                return err_set(e, ERR_NOTFOUND, "%s: no tensor %s (%s implies it)", st_path(st), s.name, cfg_path);
            if (tensor_check_shape(t, s.shape[1] ? 2 : 1, s.shape, e)) {
                char msg[sizeof e->msg];
                snprintf(msg, sizeof msg, "%s", e->msg);
                char fields[256];
                arch_shape_fields_of(c->arch, (ParamKind)k, fields, sizeof fields);
                return err_set(e, ERR_PARSE, "%s: %s = %s from %s", st_file_of(st, t), msg, fields, cfg_path);
            }
            if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
                return err_set(e, ERR_UNSUPPORTED, "%s: tensor %s has dtype %s; expected F32, F16 or BF16",
                               st_file_of(st, t), s.name, dtype_name(t->dtype));
        }
    }
    return 0;
}

static int load_hf_kind(Model *m, ParamKind k, size_t size, Err *e) {
    const ModelConfig *c = &m->cfg;
    int n = per_layer(k) ? c->n_layers : 1;
    int64_t rows, cols;
    kind_shape(c, k, &rows, &cols);
    for (int l = 0; l < n; l++) {
        Stored s;
        stored_of(c, k, l, 0, &s);
        const TensorView *t = st_get(m->st, s.name, e);
        if (!t) return -1;
        if (tensor_check_shape(t, cols ? 2 : 1, s.shape, e)) return err_wrap(e, "%s", st_file_of(m->st, t));
        if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
            return err_set(e, ERR_UNSUPPORTED, "%s: tensor %s has dtype %s; expected F32, F16 or BF16",
                           st_path(m->st), s.name, dtype_name(t->dtype));
        slice_to_f32(t, s.row_off, rows, cols, m->param[k] + (size_t)l * (size_t)(size / (size_t)n));
    }
    return 0;
}

/* The 16-bit type (F16/BF16) every tensor of kind k is stored in, or -1. */
static int kind_half_type(const Model *m, ParamKind k) {
    int n = per_layer(k) ? m->cfg.n_layers : 1, type = -1;
    for (int l = 0; l < n; l++) {
        char name[128];
        arch_hf_name_of(m->cfg.arch, k, l, name, sizeof name);
        const TensorView *t = st_find(m->st, name);
        if (!t || (t->dtype != DT_F16 && t->dtype != DT_BF16) || (type >= 0 && t->dtype != type)) return -1;
        type = t->dtype;
    }
    return type;
}

/* Points the views of kind k at the mapped 16-bit tensors (shapes are
 * checked as load_hf_kind does; a fused kind views its rows of the stored
 * tensor). */
static int map_hf_kind(Model *m, ParamKind k, Err *e) {
    const ModelConfig *c = &m->cfg;
    int n = per_layer(k) ? c->n_layers : 1;
    for (int l = 0; l < n; l++) {
        Stored s;
        stored_of(c, k, l, 0, &s);
        const TensorView *t = st_get(m->st, s.name, e);
        if (!t) return -1;
        if (tensor_check_shape(t, 2, s.shape, e)) return err_wrap(e, "%s", st_file_of(m->st, t));
        model_weight_point_stored(&m->w, c, k, l, t->dtype, t->data);
    }
    return 0;
}

Model *model_load_hf(const char *dir, int n_threads, Err *e) {
    ModelConfig cfg;
    char *cfg_path = path_join(dir, "config.json");
    SafeTensors *st = NULL;
    if (hf_config_load(dir, &cfg, e) || model_check_dims(&cfg, cfg_path, e) || !(st = st_open(dir, e)) ||
        check_hf_tensors(st, &cfg, cfg_path, e) || model_check_config(&cfg, cfg_path, e)) {
        st_close(st);
        free(cfg_path);
        return NULL;
    }
    free(cfg_path);
    Model *m = model_new(&cfg, n_threads);
    m->st = st;
    m->source = "safetensors";
    m->weight_type = DT_F32;
    /* F16/BF16 matrices are used in place from the map (exactly the values
     * an f32 copy would hold, at half the memory and memory traffic); f32
     * ones and all vectors go into the f32 block. A checkpoint saved with
     * tie_word_embeddings but an lm_head present: transformers ties them
     * (uses the embedding), and so do we. */
    size_t sizes[PARAM_COUNT];
    int half[PARAM_COUNT];
    model_param_sizes(&m->cfg, sizes);
    for (int k = 0; k < PARAM_COUNT; k++) {
        half[k] = sizes[k] && is_matrix_kind((ParamKind)k) ? kind_half_type(m, (ParamKind)k) : -1;
        if (half[k] >= 0) sizes[k] = 0, m->weight_type = half[k];
    }
    model_alloc_params(m, sizes);
    for (int k = 0; k < PARAM_COUNT; k++)
        if (sizes[k] && load_hf_kind(m, (ParamKind)k, sizes[k], e)) {
            model_free(m);
            return NULL;
        }
    model_views_from_params(m);
    int mapped = 0;
    for (int k = 0; k < PARAM_COUNT; k++)
        if (half[k] >= 0) {
            mapped = 1;
            if (map_hf_kind(m, (ParamKind)k, e)) {
                model_free(m);
                return NULL;
            }
        }
    if (m->cfg.tie_word_embeddings) m->w.lm_head = m->w.embed;
    if (!mapped) { /* the f32 copy is all we use: release the map */
        st_close(m->st);
        m->st = NULL;
    }
    model_init_rope(m, NULL);
    if (model_place_weights(m, e)) {
        model_free(m);
        return NULL;
    }
    return m;
}

/* ---- GGUF ---- */

/* A matrix view of rows [row_off, row_off + rows) of a GGUF tensor of
 * stored_rows × cols (a fused tensor's part; the whole tensor when row_off
 * is 0 and rows == stored_rows): used in place (memory-mapped) when the
 * kernels handle its type -- every type this engine reads, K-quants
 * included; a row is whole blocks, so a slice of rows is too -- otherwise
 * converted once (to Q8_0 when rows are whole blocks). */
static int gguf_qmat_rows(Model *m, const char *name, int64_t stored_rows, int64_t cols, int64_t row_off,
                          int64_t rows, QMat *out, Err *e) {
    const TensorView *t = gguf_get_tensor(m->gguf, name, e);
    if (!t) return -1;
    int64_t shape[2] = {stored_rows, cols};
    if (tensor_check_shape(t, 2, shape, e)) return -1;
    size_t in_rb = tensor_row_bytes(t);
    const char *base = (const char *)t->data + (size_t)row_off * in_rb;
    *out = (QMat){t->dtype, base, (int)rows, (int)cols};
    if (kernel_type_ok(t->dtype)) return 0;
    if (!dtype_can_dequantize(t->dtype))
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor %s has type %s, which this engine cannot read",
                       gguf_path(m->gguf), name, dtype_name(t->dtype));
    int to = cols % QK8_0 == 0 ? DT_Q8_0 : DT_F32;
    size_t out_rb = dtype_nbytes(to, cols);
    char *dst = model_own(m, xhuge_alloc(out_rb * (size_t)rows));
    float *tmp = xmalloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        dequantize_row(t->dtype, base + r * in_rb, tmp, cols);
        quantize_row(to, tmp, dst + r * out_rb, cols);
    }
    free(tmp);
    *out = (QMat){to, dst, (int)rows, (int)cols};
    return 0;
}

static int gguf_qmat(Model *m, const char *name, int64_t rows, int64_t cols, QMat *out, Err *e) {
    return gguf_qmat_rows(m, name, rows, cols, 0, rows, out, e);
}

/* A vector (norm weight, bias) of n floats: in place if F32 (the map is
 * never written through it: see ModelWeights), else converted. */
static float *gguf_vec(Model *m, const char *name, int64_t n, int required, Err *e) {
    const TensorView *t = required ? gguf_get_tensor(m->gguf, name, e) : gguf_find_tensor(m->gguf, name);
    if (!t) return NULL;
    if (tensor_check_shape(t, 1, &n, e)) return NULL;
    if (t->dtype == DT_F32) return (float *)(uintptr_t)t->data;
    return model_own(m, tensor_to_f32_alloc(t, e));
}

/* Every per-layer tensor the config implies, from the table. */
static int load_gguf_layer(Model *m, int l, Err *e) {
    const ModelConfig *c = &m->cfg;
    for (int k = 0; k < PARAM_COUNT; k++) {
        if (!per_layer((ParamKind)k) || !arch_has(c, (ParamKind)k)) continue;
        int64_t rows, cols;
        kind_shape(c, (ParamKind)k, &rows, &cols);
        Stored s;
        stored_of(c, (ParamKind)k, l, 1, &s);
        if (is_matrix_kind((ParamKind)k)) {
            if (gguf_qmat_rows(m, s.name, s.shape[0], cols, s.row_off, rows, model_weight_slot(&m->w, (ParamKind)k, l).mat, e))
                return -1;
        } else if (!(*model_weight_slot(&m->w, (ParamKind)k, l).vec = gguf_vec(m, s.name, rows, 1, e))) {
            return -1;
        }
    }
    return 0;
}

/* <arch>.block_count against the blocks present, before the layer table
 * is sized by it (see check_hf_layer_count). Shapes are checked per tensor
 * before any conversion buffer is sized from them. */
static int check_gguf_layer_count(const Gguf *g, const ModelConfig *c, const char *arch, Err *e) {
    char name[64];
    ParamKind probe = arch_has(c, PARAM_ATTN_NORM) ? PARAM_ATTN_NORM : PARAM_WO;
    arch_gguf_name_of(c->arch, probe, c->n_layers - 1, name, sizeof name);
    if (gguf_find_tensor(g, name)) return 0;
    int have = 0;
    for (; have < c->n_layers; have++) {
        arch_gguf_name_of(c->arch, probe, have, name, sizeof name);
        if (!gguf_find_tensor(g, name)) break;
    }
    arch_gguf_name_of(c->arch, probe, c->n_layers - 1, name, sizeof name);
    return err_set(e, ERR_PARSE, "%s: metadata %s.block_count = %d, but there is no tensor %s (the file holds %d "
                   "block%s)", gguf_path(g), arch, c->n_layers, name, have, have == 1 ? "" : "s");
}

Model *model_load_gguf(const char *path, int n_threads, Err *e) {
    Gguf *g = gguf_open(path, e);
    return g ? model_from_gguf(g, n_threads, e) : NULL;
}

Model *model_from_gguf(Gguf *g, int n_threads, Err *e) {
    const char *path = gguf_path(g);
    ModelConfig cfg;
    const char *arch = NULL;
    if (gguf_model_config(g, &cfg, e) || model_check_dims(&cfg, path, e) ||
        gguf_get_str(g, "general.architecture", &arch, e) || check_gguf_layer_count(g, &cfg, arch, e)) {
        gguf_close(g);
        return NULL;
    }
    Model *m = model_new(&cfg, n_threads);
    m->gguf = g;
    m->source = "gguf";
    m->rope_interleaved = (arch_desc(cfg.arch)->flags & ARCHF_GGUF_PERMUTED) != 0;
    int64_t D = cfg.hidden_size;
    const char *embed = arch_tensor_of(cfg.arch, PARAM_EMBED)->gguf, *head = arch_tensor_of(cfg.arch, PARAM_LM_HEAD)->gguf;
    if (gguf_qmat(m, embed, cfg.vocab_size, D, &m->w.embed, e)) goto fail;
    m->weight_type = m->w.embed.type;
    /* OLMo's final norm has no weight */
    if (arch_has(&cfg, PARAM_OUT_NORM) &&
        !(m->w.out_norm = gguf_vec(m, arch_tensor_of(cfg.arch, PARAM_OUT_NORM)->gguf, D, 1, e)))
        goto fail;
    if (gguf_find_tensor(g, head)) {
        if (gguf_qmat(m, head, cfg.vocab_size, D, &m->w.lm_head, e)) goto fail;
        m->cfg.tie_word_embeddings = 0;
    } else {
        m->w.lm_head = m->w.embed;
        m->cfg.tie_word_embeddings = 1;
    }
    for (int l = 0; l < cfg.n_layers; l++)
        if (load_gguf_layer(m, l, e)) goto fail;
    if (cfg.n_layers > 0) m->weight_type = m->w.layers[0].w_up.type;
    /* every tensor matched the config's shapes: its sizes describe data
     * that exists; check the products anyway before sizing from them */
    if (model_check_config(&cfg, path, e)) goto fail_bare;
    const float *factors = gguf_vec(m, "rope_freqs.weight", cfg.head_dim / 2, 0, e);
    if (!factors && gguf_find_tensor(g, "rope_freqs.weight")) goto fail;
    model_init_rope(m, factors);
    if (model_place_weights(m, e)) goto fail_bare;
    return m;
fail:
    /* name the file once: the reader's own messages already start with it */
    if (e && strncmp(e->msg, path, strlen(path))) err_wrap(e, "%s", path);
fail_bare:
    model_free(m);
    return NULL;
}

Model *model_load(const char *path, int n_threads, Err *e) {
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".gguf")) return model_load_gguf(path, n_threads, e);
    return model_load_hf(path, n_threads, e);
}
