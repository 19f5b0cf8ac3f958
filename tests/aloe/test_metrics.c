/* Metric maths on hand-checked numbers (judge-score parsing: test_score.c). */
#include <math.h>

#include "aloe/metrics.h"
#include "test.h"

static void test_t_quantiles_match_tables(void) {
    /* Standard table values of t_{0.975, df}. */
    CHECK_NEAR(t_quantile(0.975, 1), 12.7062047362, 1e-8);
    CHECK_NEAR(t_quantile(0.975, 2), 4.30265272975, 1e-8);
    CHECK_NEAR(t_quantile(0.975, 4), 2.7764451052, 1e-8);
    CHECK_NEAR(t_quantile(0.975, 9), 2.2621571628, 1e-8);
    CHECK_NEAR(t_quantile(0.975, 30), 2.0422724563, 1e-8);
    CHECK_NEAR(t_quantile(0.975, 99), 1.9842169516, 1e-8);
    CHECK_NEAR(t_quantile(0.95, 10), 1.8124611228, 1e-8);
    CHECK_NEAR(t_cdf(0, 5), 0.5, 1e-12);
    CHECK(isnan(t_quantile(0.975, 0)));
}

static void test_turn_stats_by_hand(void) {
    /* scores 3,4,5,4: mean 4, s^2 = (1+0+1+0)/3 = 2/3, s = 0.8164965809,
     * ci95 = t(0.975,3) * s / 2 = 3.1824463053 * 0.8164965809 / 2 = 1.2992457 */
    double s[] = {3, 4, 5, 4};
    TurnStat t = metrics_turn(2, s, 4);
    CHECK_EQ_INT(t.turn, 2);
    CHECK_EQ_INT(t.n, 4);
    CHECK_NEAR(t.al, 4.0, 1e-12);
    CHECK_NEAR(t.sd, 0.8164965809, 1e-9);
    CHECK_NEAR(t.ci95, 3.1824463053 * 0.8164965809 / 2, 1e-8);
    /* n = 1: a mean but no interval; n = 0: nothing. */
    t = metrics_turn(1, s, 1);
    CHECK_NEAR(t.al, 3.0, 0);
    CHECK(isnan(t.ci95) && isnan(t.sd));
    t = metrics_turn(1, s, 0);
    CHECK(isnan(t.al));
    /* All equal: zero-width interval. */
    double same[] = {2, 2, 2};
    t = metrics_turn(1, same, 3);
    CHECK_NEAR(t.ci95, 0, 0);
}

static TurnStat at(int k, double al) {
    TurnStat t = {.turn = k, .n = 10, .al = al, .sd = NAN, .ci95 = NAN};
    return t;
}

static void test_summary_by_hand(void) {
    /* AL = 2, 3, 3, 4 at k = 1..4.
     * mean k = 2.5, mean AL = 3, Sxx = 5, Sxy = (-1.5)(-1)+(-.5)(0)+(.5)(0)+(1.5)(1) = 3
     * IR = 3/5 = 0.6; Syy = 2; R2 = 9 / (5*2) = 0.9; AVG = 3.
     * Normalised by AL(1) = 2: 1, 1.5, 1.5, 2 -> N-IR = 0.3, N-R2 = 0.9. */
    TurnStat t[] = {at(1, 2), at(2, 3), at(3, 3), at(4, 4)};
    BenchMetrics m = metrics_summary(t, 4);
    CHECK_NEAR(m.avg, 3.0, 1e-12);
    CHECK_NEAR(m.ir, 0.6, 1e-12);
    CHECK_NEAR(m.r2, 0.9, 1e-12);
    CHECK_NEAR(m.n_ir, 0.3, 1e-12);
    CHECK_NEAR(m.n_r2, 0.9, 1e-12);
    /* A flat curve: slope 0, R2 undefined. */
    TurnStat f[] = {at(1, 3), at(2, 3), at(3, 3)};
    m = metrics_summary(f, 3);
    CHECK_NEAR(m.ir, 0, 1e-12);
    CHECK(isnan(m.r2));
    /* A turn without valid scores is left out of the fit and the average:
     * AL = 1, -, 3 -> points (1,1), (3,3): slope 1, R2 1, AVG 2. */
    TurnStat g[] = {at(1, 1), at(2, NAN), at(3, 3)};
    m = metrics_summary(g, 3);
    CHECK_NEAR(m.avg, 2, 1e-12);
    CHECK_NEAR(m.ir, 1, 1e-12);
    CHECK_NEAR(m.r2, 1, 1e-12);
    CHECK_NEAR(m.n_ir, 1, 1e-12);
    /* One turn: nothing to fit. */
    m = metrics_summary(t, 1);
    CHECK_NEAR(m.avg, 2, 0);
    CHECK(isnan(m.ir) && isnan(m.n_ir));
}

int main(void) {
    RUN(test_t_quantiles_match_tables);
    RUN(test_turn_stats_by_hand);
    RUN(test_summary_by_hand);
    return test_summary();
}
