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
} DotJob;

static void dot_task(void *ctx, int ith, int nth) {
    DotJob *j = ctx;
    const QMat *w = j->w;
    long r0, r1;
    /* split in multiples of 16 rows so threads do not share cache lines of y */
    long blocks = (w->rows + 15) / 16;
    tp_split(blocks, ith, nth, &r0, &r1);
    r0 *= 16;
    r1 = r1 * 16 < w->rows ? r1 * 16 : w->rows;
    size_t rb = dtype_nbytes(w->type, w->cols);
    for (long r = r0; r < r1; r++) {
        const void *row = (const char *)w->data + r * rb;
        for (int t = 0; t < j->n; t++)
            j->y[(long)t * w->rows + r] =
                vec_dot(w->type, row, (const char *)j->act + t * j->act_stride, w->cols);
    }
}

static void matmul_dots(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    int vt = kernel_vec_type(w->type);
    DotJob j = {.y = y, .n = n, .w = w};
    if (vt == DT_F32) {
        j.act = x;
        j.act_stride = (size_t)w->cols * sizeof(float);
    } else {
        j.act_stride = dtype_nbytes(vt, w->cols);
        void *q = tp_scratch(tp, j.act_stride * (size_t)n);
        for (int t = 0; t < n; t++)
            quantize_row(vt, x + (long)t * w->cols, (char *)q + t * j.act_stride, w->cols);
        j.act = q;
    }
    tp_run(tp, dot_task, &j);
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
} GemmJob;

static void gemm_task(void *ctx, int ith, int nth) {
    GemmJob *j = ctx;
    const QMat *w = j->w;
    long r0, r1;
    long blocks = (w->rows + 15) / 16;
    tp_split(blocks, ith, nth, &r0, &r1);
    r0 *= 16;
    r1 = r1 * 16 < w->rows ? r1 * 16 : w->rows;
    if (r0 >= r1) return;
    if (w->type == DT_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, (int)(r1 - r0), w->cols, 1.0f, j->x,
                    w->cols, (const float *)w->data + r0 * w->cols, w->cols, 0.0f, j->y + r0, w->rows);
        return;
    }
    float *tile = j->tiles + (long)ith * j->tile_floats;
    for (long t0 = r0; t0 < r1; t0 += j->tile_rows) {
        long nr = r1 - t0 < j->tile_rows ? r1 - t0 : j->tile_rows;
        for (long r = 0; r < nr; r++) dequantize_row(w->type, qmat_row(w, t0 + r), tile + r * w->cols, w->cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, (int)nr, w->cols, 1.0f, j->x, w->cols, tile,
                    w->cols, 0.0f, j->y + t0, w->rows);
    }
}

static void matmul_gemm(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    GemmJob j = {.y = y, .x = x, .n = n, .w = w};
    if (w->type != DT_F32) {
        j.tile_floats = w->cols > TILE_FLOATS ? w->cols : TILE_FLOATS;
        j.tile_rows = j.tile_floats / w->cols;
        j.tiles = tp_scratch(tp, (size_t)j.tile_floats * sizeof(float) * (size_t)tp_size(tp));
    }
    tp_run(tp, gemm_task, &j);
}

void matmul_forward(ThreadPool *tp, float *y, const float *x, int n, const QMat *w) {
    if (n >= MATMUL_GEMM_MIN_ROWS)
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
