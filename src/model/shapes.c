/* Shapes of known checkpoints and random weights for benchmarking without
 * a download (`aloe speed --shape`). */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"
#include "model/decoder.h"
#include "model/model_internal.h"

typedef struct Shape {
    const char *name;
    int arch, D, F, L, H, KV, hd, V, tied;
    double theta;
    int llama3; /* Llama 3.2 RoPE scaling (factor 32, 1/4, 8192) */
} Shape;

/* From the checkpoints' config.json files. */
static const Shape SHAPES[] = {
    {"qwen2.5-0.5b", ARCH_QWEN2, 896, 4864, 24, 14, 2, 64, 151936, 1, 1e6, 0},
    {"qwen2.5-1.5b", ARCH_QWEN2, 1536, 8960, 28, 12, 2, 128, 151936, 1, 1e6, 0},
    {"qwen2.5-3b", ARCH_QWEN2, 2048, 11008, 36, 16, 2, 128, 151936, 1, 1e6, 0},
    {"qwen3-0.6b", ARCH_QWEN3, 1024, 3072, 28, 16, 8, 128, 151936, 1, 1e6, 0},
    {"qwen3-1.7b", ARCH_QWEN3, 2048, 6144, 28, 16, 8, 128, 151936, 1, 1e6, 0},
    {"llama-3.2-1b", ARCH_LLAMA, 2048, 8192, 16, 32, 8, 64, 128256, 1, 5e5, 1},
    {"llama-3.2-3b", ARCH_LLAMA, 3072, 8192, 28, 24, 8, 128, 128256, 1, 5e5, 1},
    {"llama-3.1-8b", ARCH_LLAMA, 4096, 14336, 32, 32, 8, 128, 128256, 0, 5e5, 0},
    {"mistral-7b", ARCH_MISTRAL, 4096, 14336, 32, 32, 8, 128, 32768, 0, 1e6, 0},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

const char *model_shape_names(void) {
    return "qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen3-0.6b, qwen3-1.7b, llama-3.2-1b, llama-3.2-3b, "
           "llama-3.1-8b, mistral-7b";
}

int model_shape_config(const char *name, ModelConfig *c, Err *e) {
    for (int i = 0; i < N_SHAPES; i++) {
        const Shape *s = &SHAPES[i];
        if (strcmp(s->name, name)) continue;
        memset(c, 0, sizeof *c);
        c->arch = s->arch;
        c->hidden_size = s->D, c->intermediate_size = s->F, c->n_layers = s->L;
        c->n_heads = s->H, c->n_kv_heads = s->KV, c->head_dim = s->hd, c->vocab_size = s->V;
        c->tie_word_embeddings = s->tied;
        c->max_pos = 32768;
        c->norm_eps = 1e-6f;
        c->rope.type = s->llama3 ? ROPE_LLAMA3 : ROPE_DEFAULT;
        c->rope.theta = (float)s->theta;
        c->rope.factor = s->llama3 ? 32 : 1;
        c->rope.low_freq_factor = 1, c->rope.high_freq_factor = 4;
        c->rope.original_max_pos = s->llama3 ? 8192 : 0;
        c->bos_id = c->pad_id = -1;
        c->dtype = DT_F32;
        arch_config_quirks(c); /* Qwen2's biases, Qwen3's q/k norms */
        return 0;
    }
    return err_set(e, ERR_ARG, "unknown model shape '%s' (known: %s)", name, model_shape_names());
}

/* Random rows: a pool of POOL_ROWS random rows per width, stored in the
 * target type, copied to each matrix row in a pseudo-random order. Drawing
 * a normal for every weight of a billion-parameter model would take longer
 * than the benchmark; the speed of the kernels does not depend on it. */
#define POOL_ROWS 61

typedef struct RowPool {
    int type, cols;
    size_t rb;
    char *rows;
} RowPool;

static void row_pool_init(RowPool *p, int type, int cols, Rng *r) {
    p->type = type, p->cols = cols;
    p->rb = dtype_nbytes(type, cols);
    p->rows = xmalloc(p->rb * POOL_ROWS);
    float *tmp = xmalloc((size_t)cols * sizeof(float));
    for (int i = 0; i < POOL_ROWS; i++) {
        for (int j = 0; j < cols; j++) tmp[j] = 0.02f * rng_normal(r);
        quantize_row(type, tmp, p->rows + (size_t)i * p->rb, cols);
    }
    free(tmp);
}

static void fill_rows(const RowPool *p, void *dst, long rows, uint64_t salt) {
    for (long r = 0; r < rows; r++)
        memcpy((char *)dst + (size_t)r * p->rb, p->rows + ((uint64_t)r * 7919u + salt) % POOL_ROWS * p->rb, p->rb);
}

static void fill_vec(float *v, size_t n, float value) {
    for (size_t i = 0; i < n; i++) v[i] = value;
}

/* The type a matrix of rows of `cols` values gets when `dtype` is asked
 * for: K-quant rows must be whole super-blocks of 256, and other rows fall
 * back to a 32-block type as llama.cpp's quantiser does (Q4_K -> Q5_0,
 * Q6_K -> Q8_0, ...: dtype_row_fallback); made directly in the layout a
 * loaded file's matrices would be regrouped into (kernel_weight_type). */
static int matrix_type(int dtype, int cols) { return kernel_weight_type(dtype_row_fallback(dtype, cols), cols); }

Model *model_init_random(const ModelConfig *cfg, int dtype, uint64_t seed, int n_threads, Err *e) {
    if (model_check_config(cfg, "random model", e)) return NULL;
    if (!kernel_type_ok(dtype))
        return err_set(e, ERR_ARG,
                       "random model: weight type %s is not one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_xs",
                       dtype_name(dtype)),
               NULL;
    if (dtype != DT_F32 && dtype != DT_F16 && dtype != DT_BF16 &&
        (cfg->hidden_size % QK8_0 || cfg->intermediate_size % QK8_0 || (cfg->n_heads * cfg->head_dim) % QK8_0))
        return err_set(e, ERR_ARG, "random model: %s needs dimensions that are multiples of %d", dtype_name(dtype),
                       QK8_0),
               NULL;
    Model *m = model_new(cfg, n_threads);
    m->source = "random";
    /* the norms made below (1) are the weights the forward multiplies by,
     * Gemma's (1 + w) included */
    m->cfg.norms_folded = 1;
    m->weight_type = dtype;
    Rng r;
    rng_seed(&r, seed);
    const ModelConfig *c = &m->cfg;
    size_t sizes[PARAM_COUNT];
    model_param_sizes(c, sizes);
    /* f32 models keep everything in the parameter block; others keep the
     * vectors there and the matrices in one block of dtype rows. */
    size_t vec_sizes[PARAM_COUNT];
    memcpy(vec_sizes, sizes, sizeof sizes);
    if (dtype != DT_F32)
        for (int k = 0; k < PARAM_COUNT; k++)
            if (arch_tensor((ParamKind)k)->flags & TK_MATRIX) vec_sizes[k] = 0;
    model_alloc_params(m, vec_sizes);
    for (int k = 0; k < PARAM_COUNT; k++)
        if (m->param[k]) fill_vec(m->param[k], vec_sizes[k], 1.0f);
    for (int k = 0; k < PARAM_COUNT; k++)
        if (m->param[k] && (arch_tensor((ParamKind)k)->flags & (TK_QKV_BIAS | TK_O_BIAS)))
            fill_vec(m->param[k], vec_sizes[k], 0.01f);
    model_views_from_params(m); /* f32 views; replaced below for other types */
    RowPool pool_d, pool_q, pool_f;
    int Q = c->n_heads * c->head_dim;
    row_pool_init(&pool_d, matrix_type(dtype, c->hidden_size), c->hidden_size, &r);
    row_pool_init(&pool_q, matrix_type(dtype, Q), Q, &r);
    row_pool_init(&pool_f, matrix_type(dtype, c->intermediate_size), c->intermediate_size, &r);
    QMat *mats[4096];
    int n_mats = 0;
    mats[n_mats++] = &m->w.embed;
    if (!c->tie_word_embeddings) mats[n_mats++] = &m->w.lm_head;
    for (int l = 0; l < c->n_layers && n_mats + 7 <= 4096; l++) {
        LayerWeights *w = &m->w.layers[l];
        QMat *lm[7] = {&w->wq, &w->wk, &w->wv, &w->wo, &w->w_gate, &w->w_up, &w->w_down};
        for (int i = 0; i < 7; i++) mats[n_mats++] = lm[i];
    }
    size_t total = 0;
    for (int i = 0; i < n_mats; i++)
        total += dtype_nbytes(matrix_type(dtype, mats[i]->cols), mats[i]->cols) * (size_t)mats[i]->rows;
    char *block = dtype == DT_F32 ? NULL : model_own(m, xhuge_alloc(total + 64));
    size_t off = 0;
    for (int i = 0; i < n_mats; i++) {
        QMat *q = mats[i];
        const RowPool *p = q->cols == c->hidden_size ? &pool_d : q->cols == Q ? &pool_q : &pool_f;
        void *dst = dtype == DT_F32 ? (void *)q->data : block + off;
        fill_rows(p, dst, q->rows, (uint64_t)i);
        q->type = p->type;
        q->data = dst;
        off += p->rb * (size_t)q->rows;
    }
    if (c->tie_word_embeddings) m->w.lm_head = m->w.embed;
    free(pool_d.rows), free(pool_q.rows), free(pool_f.rows);
    model_init_rope(m, NULL);
    return m;
}
