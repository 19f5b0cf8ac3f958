/* kld_stats: how far one model's next-token distributions are from a base
 * model's, position by position -- the statistics llama.cpp's
 * `llama-perplexity --kl-divergence` prints (mean KL divergence with its
 * standard error, KLD percentiles, the change Δp of the probability of the
 * actual next token, how often both models rank the same token first, and
 * both perplexities), so that aloe's figures and llama.cpp's can be read
 * side by side.
 *
 * One difference on purpose: llama.cpp stores the base model's log-probs as
 * 16-bit integers over the top 16 nats and drops tokens below e^-16 of the
 * top; here both distributions are the exact log-softmax of the float
 * logits, in double. That moves a position's KL by at most ~1e-4 nats
 * (half of llama.cpp's step, 16/65535) times the probability mass it
 * affects. */
#ifndef ALOE_INFER_KLD_STATS_H
#define ALOE_INFER_KLD_STATS_H

#include <stddef.h>

/* Running sums over the scored positions, and each position's KL and Δp
 * (kept for the percentiles). */
typedef struct KldStats {
    double sum_nll, sum_nll2;           /* -log q(next token) */
    double sum_nll_base, sum_nll_base2; /* -log p(next token) */
    double sum_nll_nll_base;
    double sum_kld, sum_kld2;
    double sum_p_diff, sum_p_diff2, sum_p_diff4; /* Δp = q(next) - p(next) */
    double max_abs_p_diff;
    long n_same_top; /* positions where both argmaxes are the same token */
    long count;
    double *kld, *p_diff; /* [count] per position, in the order added */
    long cap;
} KldStats;

void kld_stats_init(KldStats *s);
void kld_stats_free(KldStats *s);

/* Scores one position: p = softmax(base_logits), q = softmax(logits), both
 * [vocab]; next is the token that follows (0 <= next < vocab). KL(p||q) =
 * sum_i p_i (log p_i - log q_i). The argmax is the first maximal logit. */
void kld_stats_add(KldStats *s, const float *base_logits, const float *logits, int vocab, int next);

/* A mean and its standard error. */
typedef struct KldEstimate {
    double value, err;
} KldEstimate;

/* The fractions kld_summarize reports percentiles of (llama.cpp's lists). */
#define KLD_N_KLD_PCT 7
#define KLD_N_PDIFF_PCT 10
extern const double KLD_KLD_PCT[KLD_N_KLD_PCT];     /* 0.999 0.99 0.95 0.90 0.10 0.05 0.01 */
extern const double KLD_PDIFF_PCT[KLD_N_PDIFF_PCT]; /* 0.999 ... 0.001, median excluded */

typedef struct KldSummary {
    long count;
    KldEstimate ppl, ppl_base;      /* exp(mean nll); error = ppl * error of the mean nll */
    double log_ppl_cor;             /* correlation of the two nll means */
    KldEstimate log_ppl_ratio;      /* mean ln(PPL(Q)/PPL(base)), covariance included */
    KldEstimate ppl_ratio, ppl_diff;
    KldEstimate kld;                /* mean KL divergence */
    double kld_max, kld_median, kld_min, kld_pct[KLD_N_KLD_PCT];
    KldEstimate p_diff;             /* mean Δp */
    double p_diff_max, p_diff_median, p_diff_min, p_diff_pct[KLD_N_PDIFF_PCT];
    KldEstimate rms_p_diff;         /* sqrt(mean Δp²) */
    KldEstimate same_top;           /* fraction of same argmax; binomial error */
} KldSummary;

/* The summary of s, computed as llama.cpp computes it: standard errors only
 * from more than 10 positions (0 otherwise), percentiles by linear
 * interpolation between the sorted values at fraction * (count - 1). -1
 * when s holds no position. */
int kld_summarize(const KldStats *s, KldSummary *out);

/* The value at fraction f of n ascending values: linear interpolation at
 * f * (n - 1); f <= 0 gives the first, f >= 1 the last. n > 0. */
double kld_percentile(const double *sorted, long n, double f);

#endif
