/* backend_cpu_loss: the CPU backend's token cross-entropy (kernels/backend.h's
 * nll_sum, nll_sum_backward), split over the pool by rows. The arithmetic
 * is train/loss.c's token_nll_sum_forward / _backward, the loss's
 * single-threaded reference (each row's log-sum-exp in double): the sums
 * are added per thread first, then the threads' parts in thread order. */
#include "kernels/backend_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* max and sum(exp(x - max)) of one row: log-sum-exp = max + log(sum). */
static void row_max_sumexp(const float *x, int V, float *max, double *sum) {
    float m = x[0];
    for (int v = 1; v < V; v++)
        if (x[v] > m) m = x[v];
    double s = 0;
    for (int v = 0; v < V; v++) s += expf(x[v] - m);
    *max = m;
    *sum = s;
}

typedef struct NllJob {
    float *d;
    const float *x;
    const int32_t *labels;
    int T, V;
    float scale;
    double *sums;
    int *counts;
} NllJob;

static void nll_fwd_task(void *ctx, int ith, int nth) {
    const NllJob *j = ctx;
    long t0, t1;
    tp_split(j->T, ith, nth, &t0, &t1);
    double total = 0;
    int n = 0;
    for (long t = t0; t < t1; t++) {
        if (j->labels[t] == BACKEND_LABEL_IGNORE) continue;
        const float *x = j->x + (size_t)t * j->V;
        float m;
        double s;
        row_max_sumexp(x, j->V, &m, &s);
        total += (double)m + log(s) - (double)x[j->labels[t]];
        n++;
    }
    j->sums[ith] = total, j->counts[ith] = n;
}

double cpu_nll_sum(Backend *be, const float *logits, const int32_t *labels, int T, int V, int *n_valid) {
    ThreadPool *tp = cpu_pool(be);
    const int nth = tp_size(tp);
    double *sums = xcalloc((size_t)nth, sizeof *sums);
    int *counts = xcalloc((size_t)nth, sizeof *counts);
    NllJob j = {.x = logits, .labels = labels, .T = T, .V = V, .sums = sums, .counts = counts};
    tp_run(tp, nll_fwd_task, &j);
    double total = 0;
    int n = 0;
    for (int p = 0; p < nth; p++) total += sums[p], n += counts[p];
    free(sums), free(counts);
    if (n_valid) *n_valid = n;
    return total;
}

static void nll_bwd_task(void *ctx, int ith, int nth) {
    const NllJob *j = ctx;
    long t0, t1;
    tp_split(j->T, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        const float *x = j->x + (size_t)t * j->V;
        float *d = j->d + (size_t)t * j->V;
        if (j->labels[t] == BACKEND_LABEL_IGNORE) {
            memset(d, 0, (size_t)j->V * sizeof *d);
            continue;
        }
        float m;
        double s;
        row_max_sumexp(x, j->V, &m, &s);
        float inv = (float)(1.0 / s);
        for (int v = 0; v < j->V; v++) d[v] = j->scale * (expf(x[v] - m) * inv);
        d[j->labels[t]] -= j->scale;
    }
}

void cpu_nll_sum_backward(Backend *be, float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                          float scale) {
    NllJob j = {.d = dlogits, .x = logits, .labels = labels, .T = T, .V = V, .scale = scale};
    tp_run(cpu_pool(be), nll_bwd_task, &j);
}
