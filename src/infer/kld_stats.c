#include "infer/kld_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

const double KLD_KLD_PCT[KLD_N_KLD_PCT] = {0.999, 0.99, 0.95, 0.90, 0.10, 0.05, 0.01};
const double KLD_PDIFF_PCT[KLD_N_PDIFF_PCT] = {0.999, 0.99, 0.95, 0.90, 0.75, 0.25, 0.10, 0.05, 0.01, 0.001};

void kld_stats_init(KldStats *s) { memset(s, 0, sizeof *s); }

void kld_stats_free(KldStats *s) {
    free(s->kld);
    free(s->p_diff);
    memset(s, 0, sizeof *s);
}

/* log(sum exp(x_i)) in double, and the first index of the maximum. */
static double log_sum_exp(const float *x, int n, int *argmax) {
    int im = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[im]) im = i;
    double mx = x[im], sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    *argmax = im;
    return mx + log(sum);
}

void kld_stats_add(KldStats *s, const float *base_logits, const float *logits, int vocab, int next) {
    int top_p, top_q;
    double lse_p = log_sum_exp(base_logits, vocab, &top_p), lse_q = log_sum_exp(logits, vocab, &top_q);
    double kl = 0;
    for (int i = 0; i < vocab; i++) {
        double lp = base_logits[i] - lse_p, lq = logits[i] - lse_q;
        kl += exp(lp) * (lp - lq);
    }
    double nll_base = lse_p - base_logits[next], nll = lse_q - logits[next];
    double p_diff = exp(-nll) - exp(-nll_base);
    s->sum_nll += nll;
    s->sum_nll2 += nll * nll;
    s->sum_nll_base += nll_base;
    s->sum_nll_base2 += nll_base * nll_base;
    s->sum_nll_nll_base += nll * nll_base;
    s->sum_kld += kl;
    s->sum_kld2 += kl * kl;
    s->sum_p_diff += p_diff;
    s->sum_p_diff2 += p_diff * p_diff;
    s->sum_p_diff4 += p_diff * p_diff * p_diff * p_diff;
    if (fabs(p_diff) > s->max_abs_p_diff) s->max_abs_p_diff = fabs(p_diff);
    s->n_same_top += top_p == top_q;
    if (s->count == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->kld = xrealloc(s->kld, (size_t)s->cap * sizeof *s->kld);
        s->p_diff = xrealloc(s->p_diff, (size_t)s->cap * sizeof *s->p_diff);
    }
    s->kld[s->count] = kl;
    s->p_diff[s->count] = p_diff;
    s->count++;
}

double kld_percentile(const double *v, long n, double f) {
    if (f <= 0) return v[0];
    if (f >= 1) return v[n - 1];
    double p = f * (double)(n - 1);
    long i = (long)p;
    p -= (double)i;
    return (1 - p) * v[i] + p * v[i + 1 < n ? i + 1 : n - 1];
}

/* Mean of count values from their sum and sum of squares, and its
 * standard error (0 from 10 values or fewer, as llama.cpp). */
static KldEstimate mean_err(double sum, double sum2, long count) {
    KldEstimate r = {sum / (double)count, 0};
    double var = sum2 / (double)count - r.value * r.value;
    if (var > 0 && count > 10) r.err = sqrt(var / (double)(count - 1));
    return r;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The largest, smallest, median and the n_pct percentiles pcts of the n
 * values x, sorted in v (n values of scratch). */
static void order_stats(const double *x, double *v, long n, double *max, double *min, double *median, double *pct,
                        const double *pcts, int n_pct) {
    memcpy(v, x, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *max = v[n - 1];
    *min = v[0];
    *median = kld_percentile(v, n, 0.5);
    for (int i = 0; i < n_pct; i++) pct[i] = kld_percentile(v, n, pcts[i]);
}

int kld_summarize(const KldStats *s, KldSummary *o) {
    memset(o, 0, sizeof *o);
    long n = s->count;
    if (n < 1) return -1;
    o->count = n;
    KldEstimate lp = mean_err(s->sum_nll, s->sum_nll2, n), lb = mean_err(s->sum_nll_base, s->sum_nll_base2, n);
    o->ppl = (KldEstimate){exp(lp.value), exp(lp.value) * lp.err};
    o->ppl_base = (KldEstimate){exp(lb.value), exp(lb.value) * lb.err};
    /* Covariance of the two means: the same positions score both, so the
     * ratio's error is smaller than either alone. */
    double cov = 0;
    if (n >= 10) cov = (s->sum_nll_nll_base / n - (s->sum_nll / n) * (s->sum_nll_base / n)) / (double)(n - 1);
    o->log_ppl_cor = lp.err > 0 && lb.err > 0 ? cov / (lp.err * lb.err) : 0;
    double ratio_var = lp.err * lp.err + lb.err * lb.err - 2 * cov;
    o->log_ppl_ratio = (KldEstimate){lp.value - lb.value, ratio_var > 0 ? sqrt(ratio_var) : 0};
    o->ppl_ratio = (KldEstimate){exp(o->log_ppl_ratio.value), exp(o->log_ppl_ratio.value) * o->log_ppl_ratio.err};
    double diff_var = o->ppl.err * o->ppl.err + o->ppl_base.err * o->ppl_base.err - 2 * o->ppl.value * o->ppl_base.value * cov;
    o->ppl_diff = (KldEstimate){o->ppl.value - o->ppl_base.value, diff_var > 0 ? sqrt(diff_var) : 0};

    o->kld = mean_err(s->sum_kld, s->sum_kld2, n);
    o->p_diff = mean_err(s->sum_p_diff, s->sum_p_diff2, n);
    KldEstimate mse = mean_err(s->sum_p_diff2, s->sum_p_diff4, n);
    double rms = sqrt(mse.value);
    o->rms_p_diff = (KldEstimate){rms, rms > 0 ? 0.5 / rms * mse.err : 0};
    double top = (double)s->n_same_top / (double)n;
    o->same_top = (KldEstimate){top, n > 1 ? sqrt(top * (1 - top) / (double)(n - 1)) : 0};

    double *v = xmalloc((size_t)n * sizeof *v);
    order_stats(s->kld, v, n, &o->kld_max, &o->kld_min, &o->kld_median, o->kld_pct, KLD_KLD_PCT, KLD_N_KLD_PCT);
    order_stats(s->p_diff, v, n, &o->p_diff_max, &o->p_diff_min, &o->p_diff_median, o->p_diff_pct, KLD_PDIFF_PCT,
                KLD_N_PDIFF_PCT);
    free(v);
    return 0;
}
