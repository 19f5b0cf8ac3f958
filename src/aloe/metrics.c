#include "aloe/metrics.h"

#include <math.h>
#include <stdlib.h>

#include "base/mem.h"

/* Continued fraction of the regularised incomplete beta function, evaluated
 * with the modified Lentz method. Converges fast for x < (a+1)/(a+b+2). */
static double beta_cf(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double f = d;
    for (int m = 1; m <= 300; m++) {
        /* even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)) */
        double num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        d = 1.0 + num * d;
        c = 1.0 + num / c;
        if (fabs(d) < tiny) d = tiny;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        f *= c * d;
        /* odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) */
        num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
        d = 1.0 + num * d;
        c = 1.0 + num / c;
        if (fabs(d) < tiny) d = tiny;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double step = c * d;
        f *= step;
        if (fabs(step - 1.0) < 1e-15) break;
    }
    return f;
}

/* I_x(a, b) */
static double beta_reg(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lnfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return exp(lnfront) * beta_cf(a, b, x) / a;
    return 1.0 - exp(lnfront) * beta_cf(b, a, 1.0 - x) / b;
}

double t_cdf(double x, double df) {
    double tail = 0.5 * beta_reg(df / 2, 0.5, df / (df + x * x)); /* P(T > |x|) */
    return x >= 0 ? 1.0 - tail : tail;
}

double t_quantile(double p, double df) {
    if (!(p >= 0.5 && p < 1) || !(df >= 1)) return NAN;
    double lo = 0, hi = 1;
    while (t_cdf(hi, df) < p) hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-13 * (1 + hi); i++) {
        double mid = 0.5 * (lo + hi);
        if (t_cdf(mid, df) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

TurnStat metrics_turn(int turn, const double *scores, long n) {
    TurnStat t = {.turn = turn, .n = n, .al = NAN, .sd = NAN, .ci95 = NAN};
    if (n <= 0) return t;
    double sum = 0;
    for (long i = 0; i < n; i++) sum += scores[i];
    t.al = sum / (double)n;
    if (n < 2) return t;
    double ss = 0;
    for (long i = 0; i < n; i++) ss += (scores[i] - t.al) * (scores[i] - t.al);
    t.sd = sqrt(ss / (double)(n - 1));
    t.ci95 = t_quantile(0.975, (double)(n - 1)) * t.sd / sqrt((double)n);
    return t;
}

int metrics_linfit(const double *x, const double *y, int n, double *slope, double *intercept, double *r2) {
    double sx = 0, sy = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(y[i])) {
            sx += x[i];
            sy += y[i];
            m++;
        }
    *slope = *intercept = *r2 = NAN;
    if (m < 2) return m;
    double mx = sx / m, my = sy / m, sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(y[i])) {
            sxx += (x[i] - mx) * (x[i] - mx);
            sxy += (x[i] - mx) * (y[i] - my);
            syy += (y[i] - my) * (y[i] - my);
        }
    if (sxx <= 0) return m;
    *slope = sxy / sxx;
    *intercept = my - *slope * mx;
    /* For a least-squares line, R2 = 1 - SSres/SStot = Sxy^2 / (Sxx Syy). */
    if (syy > 0) *r2 = sxy * sxy / (sxx * syy);
    return m;
}

BenchMetrics metrics_summary(const TurnStat *t, int nturns) {
    BenchMetrics m = {NAN, NAN, NAN, NAN, NAN};
    if (nturns <= 0) return m;
    double *x = xmalloc(3 * (size_t)nturns * sizeof *x), *y = x + nturns, *yn = y + nturns;
    double sum = 0, intercept;
    int have = 0;
    for (int i = 0; i < nturns; i++) {
        x[i] = t[i].turn;
        y[i] = t[i].al;
        if (!isnan(y[i])) {
            sum += y[i];
            have++;
        }
    }
    if (have) m.avg = sum / have;
    metrics_linfit(x, y, nturns, &m.ir, &intercept, &m.r2);
    /* Normalised by AL(1): undefined without a first-turn mean (or if it is 0,
     * which valid 1-5 scores cannot give). */
    double al1 = t[0].al;
    if (!isnan(al1) && al1 != 0) {
        for (int i = 0; i < nturns; i++) yn[i] = y[i] / al1;
        metrics_linfit(x, yn, nturns, &m.n_ir, &intercept, &m.n_r2);
    }
    free(x);
    return m;
}
