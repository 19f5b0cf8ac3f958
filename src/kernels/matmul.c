#include "kernels/matmul.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/mem.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_q.h"

/* ---- decode path: row dots ----
 * One task over the rows of one or several matrices on the same input
 * (q/k/v; gate/up): a token's decode pays one thread hand-off per group
 * rather than one per matrix (the k and v matrices of a GQA model are small
 * enough for the hand-off to dominate). */

#define GROUP_MAX 4

typedef struct DotJob {
    int k, n;
    float *const *ys;
    const QMat *const *ws;
    const void *act[GROUP_MAX]; /* n activation rows of kernel_act_bytes(ws[m]->type), or bf16 (bf16x) */
    int bf16x[GROUP_MAX];       /* BF16 W against x rounded to bf16 (gemm_bf16_rows) */
    size_t act_stride[GROUP_MAX];
    size_t rb[GROUP_MAX];       /* bytes a row of ws[m] */
    long first[GROUP_MAX + 1]; /* prefix sums of the rows */
    long chunk;                /* rows per claim (dot_chunk) */
    TpRanges rows;
} DotJob;

/* Bytes of weights per chunk of the row-dot path: small enough to balance
 * the threads at the end (the caller waits for the last chunk in flight:
 * 16 KB is ~1 us of one core's stream). A thread takes its own range in
 * guided pieces of whole chunks (tp_ranges_next), so the claims' locked
 * adds are few. A fixed 16 rows was 256 KB of an f16 down projection (8192
 * columns), ~13 us of one core. */
#define DOT_CHUNK_BYTES (16L << 10)

/* Rows per claim for rows of rb bytes: even (the float dots take rows in
 * pairs, quant.c), 2 to 64. */
static long dot_chunk(size_t rb) {
    long c = DOT_CHUNK_BYTES / (long)(rb ? rb : 1);
    c = c < 2 ? 2 : c > 64 ? 64 : c;
    return c & ~1L;
}

static void dot_task(void *ctx, int ith, int nth) {
    (void)nth;
    DotJob *j = ctx;
    long r0, r1;
    while (tp_ranges_next(&j->rows, ith, j->chunk, &r0, &r1)) {
        int m = 0;
        while (r0 >= j->first[m + 1]) m++;
        /* a chunk may span matrices: one segment per matrix */
        for (long g = r0; g < r1; m++) {
            const QMat *w = j->ws[m];
            size_t rb = j->rb[m];
            long end = r1 < j->first[m + 1] ? r1 : j->first[m + 1], r = g - j->first[m];
            const char *rows = (const char *)w->data + r * rb;
            if (j->bf16x[m])
                for (int t = 0; t < j->n; t++)
                    gemm_bf16_rows((const uint16_t *)rows, rb, (int)(end - g),
                                   (const uint16_t *)((const char *)j->act[m] + t * j->act_stride[m]), w->cols,
                                   j->ys[m] + (size_t)t * (size_t)w->rows + r, 1);
            else if (j->n == 1)
                vec_dot_rows(w->type, rows, rb, (int)(end - g), j->act[m], w->cols, j->ys[m] + r);
            else
                vec_dot_multi_rows(w->type, rows, rb, (int)(end - g), j->act[m], j->act_stride[m], j->n, w->cols,
                                   j->ys[m] + r, (size_t)w->rows);
            g = end;
        }
    }
}

/* The pool's scratch, or without a pool (tp NULL: run on the caller's
 * thread) a buffer the caller frees through *owned. */
static void *scratch(ThreadPool *tp, size_t bytes, void **owned) {
    return tp ? tp_scratch(tp, bytes) : (*owned = xaligned_alloc(bytes));
}

/* Whether matrix m's dots take their own copy of x (rounded to bf16 or
 * quantised) rather than x as it is. */
static int own_act(const DotJob *j, int m) { return j->bf16x[m] || kernel_vec_type(j->ws[m]->type) != DT_F32; }

/* k <= GROUP_MAX matrices with the same cols. */
static void matmul_dots(ThreadPool *tp, int k, float *const ys[], const float *x, int n, const QMat *const ws[],
                        MatmulPrec prec) {
    DotJob j = {.k = k, .n = n, .ys = ys, .ws = ws};
    long cols = ws[0]->cols;
    /* one quantised copy of x per distinct weight type (a Q4_K_M file mixes them) */
    size_t bytes = 0, rb_max = 0;
    for (int m = 0; m < k; m++) {
        size_t rb = j.rb[m] = dtype_nbytes(ws[m]->type, cols);
        rb_max = rb > rb_max ? rb : rb_max;
        j.bf16x[m] = matmul_act_type_prec(ws[m]->type, n, prec) == DT_BF16;
        j.act_stride[m] = j.bf16x[m] ? ((size_t)cols * 2 + 63) / 64 * 64 : kernel_act_bytes(ws[m]->type, cols);
        if (own_act(&j, m)) bytes += j.act_stride[m] * (size_t)n;
    }
    void *owned = NULL;
    char *q = bytes ? scratch(tp, bytes, &owned) : NULL;
    for (int m = 0; m < k; m++) {
        j.first[m + 1] = j.first[m] + ws[m]->rows;
        int same = -1;
        for (int p = 0; p < m && same < 0; p++)
            if (ws[p]->type == ws[m]->type) same = p;
        if (!own_act(&j, m)) {
            j.act[m] = x;
        } else if (same >= 0) { /* the same type: the same rounding of x */
            j.act[m] = j.act[same];
        } else {
            for (int t = 0; t < n; t++)
                if (j.bf16x[m])
                    gemm_bf16_round(x + (long)t * cols, (uint16_t *)(q + t * j.act_stride[m]), cols);
                else
                    kernel_quantize_act(ws[m]->type, x + (long)t * cols, q + t * j.act_stride[m], cols);
            j.act[m] = q;
            q += j.act_stride[m] * (size_t)n;
        }
    }
    j.chunk = dot_chunk(rb_max);
    tp_ranges_init(&j.rows, j.first[k], tp_size(tp));
    tp_run_shared(tp, dot_task, &j);
    free(owned);
}

/* Whether n rows of x go to the row dots for W of this type: few rows, and
 * for an exact call only types the dots take with f32 x (F32/F16/BF16:
 * kernel_vec_type DT_F32; a quantised row is dotted with int8 x). */
static int dots_take(int type, int n, MatmulPrec prec) {
    return n < matmul_gemm_min_rows(type) && (prec == MATMUL_FAST || kernel_vec_type(type) == DT_F32);
}

void matmul_forward_group_prec(ThreadPool *tp, int k, float *const ys[], const float *x, int n,
                               const QMat *const ws[], MatmulPrec prec) {
    int dots = k <= GROUP_MAX;
    for (int m = 0; m < k && dots; m++) dots = dots_take(ws[m]->type, n, prec) && ws[m]->cols == ws[0]->cols;
    if (dots) {
        matmul_dots(tp, k, ys, x, n, ws, prec);
        return;
    }
    for (int m = 0; m < k; m++) matmul_forward_prec(tp, ys[m], x, n, ws[m], prec); /* each its own GEMM */
}

void matmul_forward_group(ThreadPool *tp, int k, float *const ys[], const float *x, int n, const QMat *const ws[]) {
    matmul_forward_group_prec(tp, k, ys, x, n, ws, MATMUL_FAST);
}

/* ---- prefill path: GEMM ---- */

/* f32 values per dequantised tile (4 MB): large enough that re-reading x
 * for every tile is cheap next to the product, small enough for L2/L3. */
#define TILE_FLOATS (1L << 20)

typedef struct GemmJob {
    float *y;
    const float *x;
    int n;
    const QMat *w;
    float *tiles; /* one tile of tile_floats per thread */
    long tile_floats, tile_rows;
    TpCounter rows;
} GemmJob;

/* Chunks of tile_rows rows of W, handed out dynamically; f32 W is
 * multiplied in place, other types dequantised into the thread's tile. */
static void gemm_task(void *ctx, int ith, int nth) {
    (void)nth;
    GemmJob *j = ctx;
    const QMat *w = j->w;
    float *tile = j->tiles ? j->tiles + (long)ith * j->tile_floats : NULL;
    long r0, r1;
    while (tp_next(&j->rows, w->rows, j->tile_rows, &r0, &r1)) {
        long nr = r1 - r0;
        const float *b = (const float *)w->data + r0 * w->cols;
        if (w->type != DT_F32) {
            for (long r = 0; r < nr; r++) kernel_dequantize_row(w->type, qmat_row(w, r0 + r), tile + r * w->cols, w->cols);
            b = tile;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, (int)nr, w->cols, 1.0f, j->x, w->cols, b,
                    w->cols, 0.0f, j->y + r0, w->rows);
    }
}

/* x in f32 against W's values widened exactly to f32: sgemm. */
static void matmul_sgemm(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    GemmJob j = {.y = y, .x = x, .n = n, .w = w};
    j.tile_floats = w->cols > TILE_FLOATS ? w->cols : TILE_FLOATS;
    j.tile_rows = j.tile_floats / w->cols;
    /* at least 4 chunks per thread, so a late thread does not hold the rest up */
    long balanced = (w->rows + 4L * tp_size(tp) - 1) / (4L * tp_size(tp));
    if (balanced < j.tile_rows) j.tile_rows = balanced < 16 ? 16 : (balanced + 15) / 16 * 16;
    void *owned = NULL;
    if (w->type != DT_F32) j.tiles = scratch(tp, (size_t)j.tile_floats * sizeof(float) * (size_t)tp_size(tp), &owned);
    tp_run_shared(tp, gemm_task, &j);
    free(owned);
}

/* ---- prefill path on quantised weights: integer GEMM ----
 * x is quantised once (each row to int8 blocks, the decode path's format),
 * then y is cut into tiles of row_tile rows of W x x_tile rows of x,
 * handed out dynamically, each multiplied by gemm_q_tile (gemm_q.c). The
 * tiles go row tile by row tile, so the threads share one chunk of W at a
 * time (from L3 or memory once per chunk per thread); the x_tile
 * activations of a tile stay in L2 while gemm_q_tile passes them by a few
 * rows of W at a time. */

/* Bytes of activations per tile: L2 is 1-2 MB per core on the CPUs this
 * targets (512 KB on older Intel), and the W rows in flight need some. */
#define QTILE_ACT_BYTES (384L << 10)
/* With AMX (gemm_q_amx.c) a tile's rows are unpacked once per tile and
 * the product is ~1.5x the VNNI one's speed, so the unpacking would weigh
 * on x_tiles of a few dozen rows: as many rows of x as 3 MB hold (all
 * 512 of a 2048-wide prompt; their quants, 1 MB, in L2) */
#define QTILE_ACT_BYTES_AMX (3072L << 10)
/* Bytes of W per tile: large enough that the dispatch and the activation
 * tile's load from L3 are noise, small enough for many tiles to balance. */
#define QTILE_W_BYTES (192L << 10)
/* With AMX, 4x that: a tile lays out its activations' dx and sums once
 * (gemm_q_amx.c: act_tables) and pays a tile's set-up once for more rows;
 * Llama-3.1-8B Q8_0 pp128 on 2 SPR cores 27.8 -> 34.6 tokens/s */
#define QTILE_W_BYTES_AMX (768L << 10)

typedef struct QGemmJob {
    float *y;
    const float *x;
    int n, act_type;
    const QMat *w;
    char *act;
    size_t stride, rb;
    long row_tile, x_tile, x_tiles, tiles;
    TpCounter quant, next;
} QGemmJob;

static void qgemm_quant_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    QGemmJob *j = ctx;
    long cols = j->w->cols, t0, t1;
    while (tp_next(&j->quant, j->n, 8, &t0, &t1))
        for (long t = t0; t < t1; t++) kernel_quantize_act(j->act_type, j->x + t * cols, j->act + t * j->stride, cols);
}

static void qgemm_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    QGemmJob *j = ctx;
    const QMat *w = j->w;
    long i0, i1;
    while (tp_next(&j->next, j->tiles, 1, &i0, &i1)) {
        long r0 = i0 / j->x_tiles * j->row_tile, a0 = i0 % j->x_tiles * j->x_tile;
        long nr = w->rows - r0 < j->row_tile ? w->rows - r0 : j->row_tile;
        long na = j->n - a0 < j->x_tile ? j->n - a0 : j->x_tile;
        gemm_q_tile(w->type, (const char *)w->data + r0 * j->rb, j->rb, (int)nr, j->act + a0 * j->stride, j->stride,
                    (int)na, w->cols, j->y + a0 * w->rows + r0, (size_t)w->rows);
    }
}

/* A multiple of u (12: the VNNI micro-kernels' 3 rows and 4 activations;
 * 16: the AMX tiles' rows and activations) in [u, max(u, limit)]. */
static long tile_round(long v, long limit, long u) {
    if (v > limit) v = limit;
    v = v / u * u;
    return v < u ? u : v;
}

static void matmul_qgemm(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    QGemmJob j = {.y = y, .x = x, .n = n, .w = w};
    j.act_type = gemm_q_act_type(w->type);
    j.stride = kernel_act_bytes(j.act_type, w->cols);
    j.rb = dtype_nbytes(w->type, w->cols);
    /* the kernels read ~2-3 bytes of an activation per value (quants,
     * scales and sums); a few rows of x at least */
    const int amx = kernel_amx();
    const long u = amx ? 16 : 12;
    j.x_tile = tile_round((amx ? QTILE_ACT_BYTES_AMX : QTILE_ACT_BYTES) / (3L * w->cols), n, u);
    j.x_tiles = (n + j.x_tile - 1) / j.x_tile;
    /* at least 4 tiles per thread, so a late thread does not hold the rest up */
    long want_rows = (long)w->rows * j.x_tiles / (4L * tp_size(tp));
    j.row_tile = tile_round((amx ? QTILE_W_BYTES_AMX : QTILE_W_BYTES) / (long)j.rb, want_rows, u);
    j.tiles = (w->rows + j.row_tile - 1) / j.row_tile * j.x_tiles;
    void *owned = NULL;
    j.act = scratch(tp, j.stride * (size_t)n, &owned);
    tp_run_shared(tp, qgemm_quant_task, &j);
    tp_run_shared(tp, qgemm_task, &j);
    free(owned);
}

/* On by default; off: quantised W's prefill dequantises to f32 + sgemm,
 * as before the integer GEMM (matmul.h). */
static _Atomic int prefill_int8 = 1;

int matmul_prefill_int8(int on) { return atomic_exchange(&prefill_int8, on != 0); }

static int qgemm_on(int type) {
    return atomic_load_explicit(&prefill_int8, memory_order_relaxed) && gemm_q_act_type(type) != DT_F32;
}

int matmul_gemm_min_rows(int type) {
    switch (type) {
    case DT_F32: return 8;
    case DT_F16:
    case DT_BF16: return 12;
    default:
        /* the VNNI micro-kernels (gemm_q.c's for Q8_0/Q4_0, gemm_q_grp.c's
         * for the other types) beat the row dots from 4 rows of x on (Q8_0/
         * Q4_0: one thread, W in L3, 4864 x 1024: 0.85-0.95x the time from
         * 4 to 40 rows); 12 keeps batched decode up to -b 8 on the row
         * dots, whose contiguous streams read memory faster. Where the GEMM
         * dequantises (no micro-kernel at this level, or int8 off): 40 */
        return qgemm_on(type) ? 12 : 40;
    }
}

void matmul_forward_prec(ThreadPool *tp, float *y, const float *x, int n, const QMat *w, MatmulPrec prec) {
    if (dots_take(w->type, n, prec))
        matmul_dots(tp, 1, &y, x, n, &w, prec);
    else if (prec == MATMUL_EXACT)
        matmul_sgemm(tp, y, x, n, w);
    else if (qgemm_on(w->type))
        matmul_qgemm(tp, y, x, n, w);
    else if (w->type == DT_BF16 && gemm_bf16_amx()) /* AMX-BF16 tiles, x rounded to bf16 */
        gemm_bf16_amx_xwt(tp, y, x, n, w->data, w->rows, w->cols);
    else if (w->type == DT_BF16 && gemm_bf16_infer()) /* vdpbf16ps on W as stored, x rounded to bf16 */
        gemm_bf16_xwt(tp, y, x, n, w->data, w->rows, w->cols);
    else
        matmul_sgemm(tp, y, x, n, w);
}

void matmul_forward(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    matmul_forward_prec(tp, y, x, n, w, MATMUL_FAST);
}

int matmul_act_type_prec(int type, int n, MatmulPrec prec) {
    if (prec == MATMUL_EXACT) return DT_F32;
    if (type == DT_BF16) return gemm_bf16_infer() ? DT_BF16 : DT_F32;
    if (kernel_vec_type(type) == DT_F32) return DT_F32;
    return n < matmul_gemm_min_rows(type) || qgemm_on(type) ? type : DT_F32;
}

int matmul_act_type(int type, int n) { return matmul_act_type_prec(type, n, MATMUL_FAST); }

void matmul_forward_ref(float *y, const float *x, int n, const QMat *w) {
    float *row = xmalloc((size_t)w->cols * sizeof(float));
    for (int r = 0; r < w->rows; r++) {
        dequantize_row(w->type, qmat_row(w, r), row, w->cols);
        for (int t = 0; t < n; t++) {
            double s = 0;
            for (int i = 0; i < w->cols; i++) s += (double)row[i] * x[(long)t * w->cols + i];
            y[(long)t * w->rows + r] = (float)s;
        }
    }
    free(row);
}
