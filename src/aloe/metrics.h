/* metrics: the ALOE benchmark's numbers, as pure functions.
 *
 *   AL(k)  mean judge score (1-5) at turn k over the valid scores of that turn
 *   ci95   half-width of the 95% confidence interval of AL(k) from the
 *          t-distribution: t_{0.975, n-1} * s / sqrt(n), s the sample standard
 *          deviation (n-1 denominator); undefined (NAN) for n < 2
 *   AVG    mean of AL(k) over the turns that have one
 *   IR     least-squares slope of AL(k) on k (improvement rate)
 *   R2     coefficient of determination of that line
 *   N-IR   the same slope on AL(k) / AL(1) (AL normalised by the first turn)
 *   N-R2   R2 of the normalised fit; scaling y by a constant does not change
 *          R2, so it equals R2 (kept because the results contract names it)
 *
 * Undefined values are NAN (written as JSON null): a turn without valid
 * scores, a fit over fewer than 2 points, R2 when every AL(k) is equal. */
#ifndef ALOE_ALOE_METRICS_H
#define ALOE_ALOE_METRICS_H

typedef struct TurnStat {
    int turn;    /* 1-based */
    long n;      /* valid scores */
    double al;   /* mean, NAN if n == 0 */
    double sd;   /* sample standard deviation, NAN if n < 2 */
    double ci95; /* t-interval half-width, NAN if n < 2 */
} TurnStat;

typedef struct BenchMetrics {
    double avg, ir, r2, n_ir, n_r2;
} BenchMetrics;

/* Student's t quantile t_{p, df} for 0.5 <= p < 1 and df >= 1 (by bisection on
 * the CDF through the regularised incomplete beta; accurate to ~1e-10). */
double t_quantile(double p, double df);
/* Student's t CDF at x with df degrees of freedom. */
double t_cdf(double x, double df);

/* Statistics of one turn's valid scores. */
TurnStat metrics_turn(int turn, const double *scores, long n);

/* Least-squares line y = a + b x over the points whose y is not NAN; *slope
 * and *r2 are NAN when undefined. Returns the number of points used. */
int metrics_linfit(const double *x, const double *y, int n, double *slope, double *intercept, double *r2);

/* AVG, IR, R2, N-IR, N-R2 from the per-turn statistics (turns in order). */
BenchMetrics metrics_summary(const TurnStat *t, int nturns);

#endif
