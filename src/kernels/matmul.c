#include "kernels/matmul.h"

#include <cblas.h>
#include <stdlib.h>

#include "base/mem.h"

/* ---- decode path: row dots ---- */

typedef struct DotJob {
    float *y;
    const void *act; /* n activation rows in kernel_vec_type(w->type) */
    size_t act_stride;
    int n;
    const QMat *w;
    TpCounter rows;
} DotJob;

/* Rows per chunk of the row-dot path: small enough to balance two threads
 * when one starts late, large enough that the atomic is noise. */
#define DOT_CHUNK 64

static void dot_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    DotJob *j = ctx;
    const QMat *w = j->w;
    size_t rb = dtype_nbytes(w->type, w->cols);
    long r0, r1;
    while (tp_next(&j->rows, w->rows, DOT_CHUNK, &r0, &r1))
        for (long r = r0; r < r1; r++) {
            const void *row = (const char *)w->data + r * rb;
            if (j->n == 1)
                j->y[r] = vec_dot(w->type, row, j->act, w->cols);
            else
                vec_dot_multi(w->type, row, j->act, j->act_stride, j->n, w->cols, j->y + r, (size_t)w->rows);
        }
}

/* The pool's scratch, or without a pool (tp NULL: run on the caller's
 * thread) a buffer the caller frees through *owned. */
static void *scratch(ThreadPool *tp, size_t bytes, void **owned) {
    return tp ? tp_scratch(tp, bytes) : (*owned = xaligned_alloc(bytes));
}

static void matmul_dots(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    int vt = kernel_vec_type(w->type);
    DotJob j = {.y = y, .n = n, .w = w};
    j.act_stride = kernel_act_bytes(w->type, w->cols);
    void *owned = NULL;
    if (vt == DT_F32) {
        j.act = x;
    } else {
        void *q = scratch(tp, j.act_stride * (size_t)n, &owned);
        for (int t = 0; t < n; t++)
            kernel_quantize_act(w->type, x + (long)t * w->cols, (char *)q + t * j.act_stride, w->cols);
        j.act = q;
    }
    tp_run_shared(tp, dot_task, &j);
    free(owned);
}

/* Several matrices on the same input (q/k/v; gate/up), one task: the rows
 * of all of them are handed out as one range, so a token's decode pays one
 * thread hand-off per group instead of one per matrix (the k and v
 * matrices of a GQA model are small enough for the hand-off to dominate). */
#define GROUP_MAX 4

typedef struct GroupJob {
    int k, n;
    float *const *ys;
    const QMat *const *ws;
    const void *act[GROUP_MAX];
    size_t act_stride[GROUP_MAX];
    long first[GROUP_MAX + 1]; /* prefix sums of the rows */
    TpCounter rows;
} GroupJob;

static void group_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    GroupJob *j = ctx;
    long r0, r1;
    while (tp_next(&j->rows, j->first[j->k], DOT_CHUNK, &r0, &r1))
        for (long g = r0; g < r1; g++) {
            int m = 0;
            while (g >= j->first[m + 1]) m++;
            const QMat *w = j->ws[m];
            long r = g - j->first[m];
            const void *row = (const char *)w->data + r * dtype_nbytes(w->type, w->cols);
            if (j->n == 1)
                j->ys[m][r] = vec_dot(w->type, row, j->act[m], w->cols);
            else
                vec_dot_multi(w->type, row, j->act[m], j->act_stride[m], j->n, w->cols, j->ys[m] + r,
                              (size_t)w->rows);
        }
}

void matmul_forward_group(ThreadPool *tp, int k, float *const ys[], const float *x, int n, const QMat *const ws[]) {
    int dots = k <= GROUP_MAX;
    for (int m = 0; m < k && dots; m++) dots = n < matmul_gemm_min_rows(ws[m]->type) && ws[m]->cols == ws[0]->cols;
    if (!dots) { /* prefill: each its own GEMM */
        for (int m = 0; m < k; m++) matmul_forward(tp, ys[m], x, n, ws[m]);
        return;
    }
    GroupJob j = {.k = k, .n = n, .ys = ys, .ws = ws};
    /* one quantised copy of x per distinct weight type (a Q4_K_M file mixes them) */
    size_t bytes = 0;
    for (int m = 0; m < k; m++) {
        j.act_stride[m] = kernel_act_bytes(ws[m]->type, ws[0]->cols);
        if (kernel_vec_type(ws[m]->type) != DT_F32) bytes += j.act_stride[m] * (size_t)n;
    }
    void *owned = NULL;
    char *q = bytes ? scratch(tp, bytes, &owned) : NULL;
    for (int m = 0; m < k; m++) {
        j.first[m + 1] = j.first[m] + ws[m]->rows;
        if (kernel_vec_type(ws[m]->type) == DT_F32) {
            j.act[m] = x;
            continue;
        }
        int same = -1;
        for (int p = 0; p < m && same < 0; p++)
            if (ws[p]->type == ws[m]->type) same = p;
        if (same >= 0) {
            j.act[m] = j.act[same];
            continue;
        }
        for (int t = 0; t < n; t++) kernel_quantize_act(ws[m]->type, x + (long)t * ws[0]->cols, q + t * j.act_stride[m], ws[0]->cols);
        j.act[m] = q;
        q += j.act_stride[m] * (size_t)n;
    }
    tp_run_shared(tp, group_task, &j);
    free(owned);
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

static void matmul_gemm(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
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

int matmul_gemm_min_rows(int type) {
    switch (type) {
    case DT_F32: return 8;
    case DT_F16:
    case DT_BF16: return 12;
    default: return 40;
    }
}

void matmul_forward(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    if (n >= matmul_gemm_min_rows(w->type))
        matmul_gemm(tp, y, x, n, w);
    else
        matmul_dots(tp, y, x, n, w);
}

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
