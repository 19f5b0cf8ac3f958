/* backend_cpu: the CPU backend's memory and inference ops (kernels/backend.h)
 * over the engine's kernels: matmul.h (quantised GEMM/GEMV), attention.h,
 * ops.h. Row ops of more than one row (RMSNorm, RoPE, the gated activation,
 * residual adds, maps) are split over the pool, where inference ran them on
 * the calling thread alone while the others waited. A row's result does not
 * depend on the split (each row, each element, is one thread's), so decode
 * (one row) and prefill give the values they gave before. The training ops are
 * backend_cpu_train.c's. */
#include "kernels/backend.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/backend_cpu.h"
#include "kernels/backend_cpu_backward_arch.h"
#include "kernels/ops.h"

/* Below these sizes an op stays on the calling thread: handing work to
 * the pool costs microseconds (more when a worker's core is busy), what
 * ~4k floats of RMSNorm or ~32k of SwiGLU take. So decode (one row: 896 to
 * 4096 wide, an MLP of 4864 to 14336) never hands a row op over; a
 * prefill of a few hundred tokens always does. */
#define PAR_MIN_ROW_VALUES 4096L
#define PAR_MIN_ELT_VALUES 32768L

static ThreadPool *pool(Backend *be) { return cpu_pool(be); }

int cpu_par_worth(Backend *be, long values, long rows) {
    return rows > 1 && values >= PAR_MIN_ROW_VALUES && tp_size(pool(be)) > 1;
}

/* Runs fn over [0, n) in chunks taken by whichever threads come
 * (tp_run_shared): a worker whose core is busy elsewhere holds nothing up.
 * Each item's result is fn's on that item alone, wherever the chunks fall. */
typedef void (*RangeFn)(const void *ctx, long start, long end);
typedef struct RangeJob {
    RangeFn fn;
    const void *ctx;
    long n, chunk;
    TpCounter next;
} RangeJob;

static void range_task(void *p, int ith, int nth) {
    (void)ith, (void)nth;
    RangeJob *j = p;
    long s, e;
    while (tp_next(&j->next, j->n, j->chunk, &s, &e)) j->fn(j->ctx, s, e);
}

/* chunk: about four per thread, a multiple of `align` items. */
static void run_ranges(Backend *be, long n, long align, RangeFn fn, const void *ctx) {
    long per = (n + 4L * tp_size(pool(be)) - 1) / (4L * tp_size(pool(be)));
    RangeJob j = {.fn = fn, .ctx = ctx, .n = n, .chunk = (per + align - 1) / align * align};
    atomic_init(&j.next.next, 0);
    tp_run_shared(pool(be), range_task, &j);
}

/* ---- memory: host memory, used in place ---- */

static void cpu_destroy(Backend *be) {
    BackendCpu *c = be->impl;
    free(c->wtile);
    free(c);
    free(be);
}
static void *cpu_alloc(Backend *be, size_t bytes) {
    (void)be;
    /* not xhuge_alloc: a KV cache is sized for the whole context and
     * touched from each head's start, and 2 MiB pages would make all of
     * it resident at once */
    return xaligned_alloc(bytes ? bytes : 64);
}
static void cpu_free(Backend *be, void *buf) {
    (void)be;
    free(buf);
}
static void cpu_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
}
static void cpu_zero(Backend *be, void *dst, size_t bytes) {
    (void)be;
    memset(dst, 0, bytes);
}
/* Weights stay where the loader put them (memory maps, parameter blocks). */
static void cpu_mat_bind(Backend *be, QMat *w) { (void)be, (void)w; }
static void cpu_vec_bind(Backend *be, float **v, long n) { (void)be, (void)v, (void)n; }

/* ---- forward ops ---- */

static void cpu_embed(Backend *be, float *x, const QMat *E, const int32_t *ids, int n, float scale) {
    (void)be;
    int D = E->cols;
    for (int t = 0; t < n; t++) dequantize_row(E->type, qmat_row(E, ids[t]), x + (long)t * D, D);
    /* Gemma: times sqrt(hidden_size) as a float */
    if (scale > 0 && scale != 1.0f) scale_forward(x, (long)n * D, scale);
}

typedef struct NormJob {
    BackendNorm kind;
    float *out;
    const float *x, *w;
    float offset, eps;
    int n, dim;
} NormJob;

static void norm_rows(const void *p, long r0, long r1) {
    const NormJob *j = p;
    long o = r0 * j->dim;
    if (j->kind == BNORM_LAYER_NOPARAM)
        layernorm_noparam_forward(j->out + o, j->x + o, (int)(r1 - r0), j->dim, j->eps);
    else rmsnorm_offset_forward(j->out + o, j->x + o, j->w, j->offset, (int)(r1 - r0), j->dim, j->eps);
}

static void cpu_norm(Backend *be, BackendNorm kind, float *out, const float *x, const float *w, float offset, int n,
                     int dim, float eps) {
    NormJob j = {kind, out, x, w, offset, eps, n, dim};
    if (cpu_par_worth(be, (long)n * dim, n)) run_ranges(be, n, 1, norm_rows, &j);
    else norm_rows(&j, 0, n);
}

/* The one place a product is chosen. prec (backend.h's BackendPrec) maps
 * to matmul's per-call precision: inference's rounded fast paths (int8
 * blocks for quantised W, bf16 for the BF16 prefill), training's exact
 * float32 product. A precision option for training itself (bf16 operands
 * with f32 accumulation, kernels/gemm_bf16*.c) would pick its GEMM here,
 * by the backend's setting and w's type. */
static MatmulPrec cpu_prec(BackendPrec prec) { return prec == BPREC_EXACT ? MATMUL_EXACT : MATMUL_FAST; }

static void cpu_linear(Backend *be, float *y, const float *x, int n, const QMat *w, const float *b, BackendPrec prec) {
    matmul_forward_prec(pool(be), y, x, n, w, cpu_prec(prec));
    if (b) add_bias_forward(y, b, n, w->rows);
}

static void cpu_linear_group(Backend *be, int k, float *const ys[], const float *x, int n, const QMat *const ws[],
                             const float *const bs[], BackendPrec prec) {
    matmul_forward_group_prec(pool(be), k, ys, x, n, ws, cpu_prec(prec));
    for (int i = 0; bs && i < k; i++)
        if (bs[i]) add_bias_forward(ys[i], bs[i], n, ws[i]->rows);
}

/* RoPE of rows [r0, r1) (backward: the transposed rotation). Partial
 * rotary turns each head's leading rot dims and leaves the rest. */
void cpu_rope_rows(const BackendRope *r, float *x, long r0, long r1, int backward) {
    const int hd = r->head_dim, whole = r->rot == hd;
    const int heads = whole ? r->n_heads : 1, reps = whole ? 1 : r->n_heads;
    for (long t = r0; t < r1; t++) {
        float *xt = x + t * r->n_heads * hd;
        const float *f = r->long_tok && r->long_tok[t] ? r->inv_freq_long : r->inv_freq;
        for (int h = 0; h < reps; h++) {
            if (backward) rope_scaled_backward(xt + (long)h * hd, heads, r->rot, r->pos[t], f, r->interleaved, r->mscale);
            else rope_forward_scaled(xt + (long)h * hd, heads, r->rot, r->pos[t], f, r->interleaved, r->mscale);
        }
    }
}

typedef struct RopeJob {
    const BackendRope *r;
    float *x;
    int backward;
} RopeJob;

static void rope_range(const void *p, long r0, long r1) {
    const RopeJob *j = p;
    cpu_rope_rows(j->r, j->x, r0, r1, j->backward);
}

static void cpu_rope(Backend *be, float *x, int n, const BackendRope *r, int backward) {
    RopeJob j = {r, x, backward};
    if (cpu_par_worth(be, (long)n * r->n_heads * r->head_dim, n)) run_ranges(be, n, 1, rope_range, &j);
    else cpu_rope_rows(r, x, 0, n, backward);
}

/* Elementwise ops, split into chunks of whole 16-float vectors (each
 * element's value does not depend on where a chunk starts: ops.c computes
 * a loop's tail with the vector's own steps). */
typedef struct EltJob {
    int op; /* 0 act, 1 add, 2 map */
    int kind;
    float *out;
    const float *a, *b;
    long n;
    float c;
} EltJob;

static void elt_range(const void *p, long s, long e) {
    const EltJob *j = p;
    long m = e - s;
    switch (j->op) {
    case 0:
        if (j->kind == BACT_GEGLU_TANH) geglu_tanh_forward(j->out + s, j->a + s, j->b + s, m);
        else swiglu_forward(j->out + s, j->a + s, j->b + s, m);
        break;
    case 1: add_forward(j->out + s, j->a + s, m); break;
    default:
        if (j->kind == BMAP_CLAMP) clamp_forward(j->out + s, m, j->c);
        else if (j->kind == BMAP_SOFTCAP) softcap_forward(j->out + s, m, j->c);
        else scale_forward(j->out + s, m, j->c);
    }
}

static void elt_run(Backend *be, const EltJob *j) {
    if (j->n >= PAR_MIN_ELT_VALUES && tp_size(pool(be)) > 1) run_ranges(be, j->n, 16, elt_range, j);
    else elt_range(j, 0, j->n);
}

static void cpu_act(Backend *be, BackendAct kind, float *out, const float *gate, const float *up, long n) {
    EltJob j = {0, kind, out, gate, up, n, 0};
    elt_run(be, &j);
}
static void cpu_add(Backend *be, float *x, const float *y, long n) {
    EltJob j = {1, 0, x, y, NULL, n, 0};
    elt_run(be, &j);
}
static void cpu_map(Backend *be, BackendMap kind, float *x, long n, float c) {
    EltJob j = {2, kind, x, NULL, NULL, n, c};
    elt_run(be, &j);
}

static void cpu_kv_store(Backend *be, void *base, int type, int max_seq, int n_heads, int head_dim, int pos,
                         const float *src) {
    (void)be;
    size_t es = dtype_block_bytes(type);
    for (int h = 0; h < n_heads; h++) {
        char *dst = (char *)base + ((size_t)h * max_seq + (size_t)pos) * head_dim * es;
        const float *s = src + (size_t)h * head_dim;
        if (type == DT_F16) quantize_row(DT_F16, s, dst, head_dim);
        else memcpy(dst, s, (size_t)head_dim * sizeof(float));
    }
}

static void cpu_attention(Backend *be, float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                          const int *pos) {
    attention_forward(pool(be), out, q, n, s, caches, pos);
}

/* ---- the backend ---- */

Backend *backend_cpu_new(ThreadPool *tp) {
    Backend *be = xcalloc(1, sizeof *be);
    BackendCpu *c = xcalloc(1, sizeof *c);
    c->tp = tp;
    be->name = "cpu";
    be->host_resident = 1;
    be->impl = c;
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_copy;
    be->download = cpu_copy;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->mat_bind = cpu_mat_bind;
    be->vec_bind = cpu_vec_bind;
    be->embed = cpu_embed;
    be->norm = cpu_norm;
    be->linear = cpu_linear;
    be->linear_group = cpu_linear_group;
    be->rope = cpu_rope;
    be->act = cpu_act;
    be->add = cpu_add;
    be->map = cpu_map;
    be->kv_store = cpu_kv_store;
    be->attention = cpu_attention;
    backend_cpu_train_ops(be);
    return be;
}

int backend_is_cpu(const Backend *be) { return be && be->destroy == cpu_destroy; }

void backend_cpu_set_pool(Backend *be, ThreadPool *tp) {
    if (backend_is_cpu(be)) ((BackendCpu *)be->impl)->tp = tp;
}

void backend_free(Backend *be) {
    if (be) be->destroy(be);
}
