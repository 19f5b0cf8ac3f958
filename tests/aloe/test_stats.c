/* stats: the cluster bootstrap and the sign-flip permutation test against
 * values computed by hand.
 *
 * The running example: 3 profiles x 2 personas x 3 turns, every score valid.
 * Per profile c, S_ck = the sum of its two personas' scores at turn k:
 *   profile 0: personas [1,1,1] [3,3,3]  S = (4, 4, 4)   mean 2, slope 0
 *   profile 1: personas [2,3,4] [3,3,3]  S = (5, 6, 7)   mean 3, slope 0.5
 *   profile 2: personas [2,4,5] [4,4,5]  S = (6, 8, 10)  mean 4, slope 1
 * A bootstrap draw takes 3 profiles with replacement, each bringing 2
 * personas, so AL(k) = sum of the drawn S_ck / 6 and
 *   AVG = the mean of the drawn profiles' means (from {2, 3, 4}),
 *   IR  = (AL(3) - AL(1)) / 2 = the mean of their slopes = (AVG - 2) / 2,
 *   N-IR = IR / AL(1) = (sum of drawn slopes) / (sum of drawn S_c1 / 2).
 * The 27 equally likely ordered draws, as multisets (ways):
 *   {0,0,0} 1  AVG 2     N-IR 0/6 = 0
 *   {1,1,1} 1  AVG 3     N-IR 1.5/7.5 = 1/5
 *   {2,2,2} 1  AVG 4     N-IR 3/9 = 1/3
 *   {0,0,1} 3  AVG 7/3   N-IR 0.5/6.5 = 1/13
 *   {0,0,2} 3  AVG 8/3   N-IR 1/7
 *   {1,1,0} 3  AVG 8/3   N-IR 1/7
 *   {1,1,2} 3  AVG 10/3  N-IR 2/8 = 1/4
 *   {2,2,0} 3  AVG 10/3  N-IR 2/8 = 1/4
 *   {2,2,1} 3  AVG 11/3  N-IR 2.5/8.5 = 5/17
 *   {0,1,2} 6  AVG 3     N-IR 1.5/7.5 = 1/5
 * Sorted, with cumulative counts out of 27:
 *   AVG : 2 (1), 7/3 (4), 8/3 (10), 3 (17), 10/3 (23), 11/3 (26), 4 (27)
 *   N-IR: 0 (1), 1/13 (4), 1/7 (10), 1/5 (17), 1/4 (23), 5/17 (26), 1/3 (27)
 * Percentile ranks (stats.h): level 0.95 -> ceil(0.675) = 1, ceil(26.325) =
 * 27; level 0.5 -> ceil(6.75) = 7, ceil(20.25) = 21; level 0.8 -> ceil(2.7)
 * = 3, ceil(24.3) = 25. So the intervals are
 *   AVG  0.95 [2, 4]   0.5 [8/3, 10/3]   0.8 [7/3, 11/3]
 *   IR   0.95 [0, 1]   0.5 [1/3, 2/3]    0.8 [1/6, 5/6]
 *   N-IR 0.95 [0, 1/3] 0.5 [1/7, 1/4]    0.8 [1/13, 5/17]
 * Resampling the 6 personas instead (6^6 draws) gives other intervals: at
 * 0.5 the AVG interval of means of 6 persona means is narrower. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/metrics.h"
#include "aloe/stats.h"
#include "base/mem.h"
#include "base/rng.h"
#include "test.h"

/* Exact arithmetic on small integers, one division each: the same doubles
 * as the hand fractions up to a few ulps. */
#define TIGHT 1e-12

static const double example[6 * 3] = {1, 1, 1, 3, 3, 3, 2, 3, 4, 3, 3, 3, 2, 4, 5, 4, 4, 5};
static const int example_cluster[6] = {0, 0, 1, 1, 2, 2};

static StatsMatrix example_matrix(void) { return (StatsMatrix){6, 3, example, example_cluster, 3}; }

static void check_intervals(double level, const double want[3][2]) {
    StatsMatrix m = example_matrix();
    StatsOptions o = stats_options_default();
    o.level = level;
    StatsInterval iv[STATS__SUMMARY];
    StatsMethod how;
    Err e = {0};
    CHECK_OK(stats_bootstrap_run(&m, &o, iv, &how, &e), &e);
    CHECK(how.exact); /* 3^3 = 27 <= 10000 replicates: enumerated */
    CHECK_EQ_INT(how.draws, 27);
    for (int j = 0; j < STATS__SUMMARY; j++) {
        CHECK_NEAR(iv[j].lo, want[j][0], TIGHT);
        CHECK_NEAR(iv[j].hi, want[j][1], TIGHT);
        CHECK_EQ_INT(iv[j].defined, 27);
    }
}

static void test_bootstrap_exact_by_hand(void) {
    const double l95[3][2] = {{2, 4}, {0, 1}, {0, 1.0 / 3}};
    const double l50[3][2] = {{8.0 / 3, 10.0 / 3}, {1.0 / 3, 2.0 / 3}, {1.0 / 7, 1.0 / 4}};
    const double l80[3][2] = {{7.0 / 3, 11.0 / 3}, {1.0 / 6, 5.0 / 6}, {1.0 / 13, 5.0 / 17}};
    check_intervals(0.95, l95);
    check_intervals(0.5, l50);
    check_intervals(0.8, l80);
}

/* The same data with every persona its own cluster is a different
 * bootstrap: the test above would notice code that resampled personas. */
static void test_persona_resampling_differs(void) {
    static const int own[6] = {0, 1, 2, 3, 4, 5};
    StatsMatrix m = {6, 3, example, own, 6};
    StatsOptions o = stats_options_default();
    o.level = 0.5;
    o.bootstrap = STATS_EXACT; /* 6^6 = 46656 draws */
    StatsInterval iv[STATS__SUMMARY];
    StatsMethod how;
    Err e = {0};
    CHECK_OK(stats_bootstrap_run(&m, &o, iv, &how, &e), &e);
    CHECK_EQ_INT(how.draws, 46656);
    CHECK(fabs(iv[STATS_AVG].lo - 8.0 / 3) > 0.01 || fabs(iv[STATS_AVG].hi - 10.0 / 3) > 0.01);
}

/* F(x) and F(x-) of the exact AVG distribution above. */
static void avg_cdf(double x, double *F, double *Fminus) {
    static const double atoms[7] = {2, 7.0 / 3, 8.0 / 3, 3, 10.0 / 3, 11.0 / 3, 4};
    static const int cum[7] = {1, 4, 10, 17, 23, 26, 27};
    *F = *Fminus = 0;
    for (int i = 0; i < 7; i++) {
        if (atoms[i] < x - TIGHT) *Fminus = cum[i] / 27.0;
        if (atoms[i] <= x + TIGHT) *F = cum[i] / 27.0;
    }
}

/* Monte Carlo against the exact distribution. The q-quantile of B draws is
 * the ceil(qB)-th smallest X, and X <= x exactly when the empirical CDF at
 * x reaches ceil(qB)/B. The empirical CDF at x is Binomial(B, F(x)) / B,
 * standard deviation at most sqrt(0.25 / B) = 0.005 for B = 10000. So,
 * allowing 5 standard deviations and the 1/B of the ceiling, X is an atom x
 * with F(x) >= q - d and F(x-) <= q + d, d = 5 * 0.005 + 1/B = 0.0251. At
 * q = 0.25 and 0.75 exactly one atom qualifies (8/3 and 10/3); a wrong
 * distribution (personas resampled, say) would give another. The chance
 * that a correct implementation fails for some other seed is below 1e-6. */
static void test_bootstrap_monte_carlo_near_exact(void) {
    StatsMatrix m = example_matrix();
    StatsOptions o = stats_options_default();
    o.level = 0.5;
    o.bootstrap = STATS_MONTE_CARLO;
    StatsInterval iv[STATS__SUMMARY], again[STATS__SUMMARY];
    StatsMethod how;
    Err e = {0};
    CHECK_OK(stats_bootstrap_run(&m, &o, iv, &how, &e), &e);
    CHECK(!how.exact);
    CHECK_EQ_INT(how.draws, 10000);
    const double d = 5 * sqrt(0.25 / 10000) + 1.0 / 10000;
    double F, Fm;
    avg_cdf(iv[STATS_AVG].lo, &F, &Fm);
    CHECK_MSG(F >= 0.25 - d && Fm <= 0.25 + d, "lo %.6f: F %.4f F- %.4f", iv[STATS_AVG].lo, F, Fm);
    avg_cdf(iv[STATS_AVG].hi, &F, &Fm);
    CHECK_MSG(F >= 0.75 - d && Fm <= 0.75 + d, "hi %.6f: F %.4f F- %.4f", iv[STATS_AVG].hi, F, Fm);
    CHECK_NEAR(iv[STATS_AVG].lo, 8.0 / 3, TIGHT); /* what the argument above leaves */
    CHECK_NEAR(iv[STATS_AVG].hi, 10.0 / 3, TIGHT);
    /* A fixed seed: the same numbers every time. */
    CHECK_OK(stats_bootstrap_run(&m, &o, again, &how, &e), &e);
    CHECK(!memcmp(iv, again, sizeof iv));
}

/* A resample's AVG, IR and N-IR are metrics_summary's on the resampled
 * personas written out (a profile drawn twice: its personas twice), with
 * invalid scores left out per turn. The AL(k) are sums of small integers
 * divided once, so the numbers are identical, not merely close. */
static void test_resample_matches_metrics_summary(void) {
    enum { N = 9, T = 4, C = 4 };
    double score[N * T];
    int cluster[N] = {0, 0, 0, 1, 1, 2, 2, 2, 3};
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < N * T; i++) score[i] = rng_below(&rng, 6) == 0 ? NAN : 1 + (double)rng_below(&rng, 5);
    score[8 * T + 0] = NAN; /* profile 3: no valid first turn, so N-IR is undefined without others */
    StatsMatrix m = {N, T, score, cluster, C};
    for (int trial = 0; trial < 200; trial++) {
        int counts[C] = {0};
        for (int i = 0; i < C; i++) counts[rng_below(&rng, C)]++;
        if (trial == 0) memcpy(counts, (int[C]){0, 0, 0, 4}, sizeof counts);
        double col[N * C];
        TurnStat ts[T];
        for (int k = 0; k < T; k++) {
            long n = 0;
            for (int i = 0; i < N; i++)
                for (int r = 0; r < counts[cluster[i]]; r++)
                    if (!isnan(score[i * T + k])) col[n++] = score[i * T + k];
            ts[k] = metrics_turn(k + 1, col, n);
        }
        BenchMetrics want = metrics_summary(ts, T), got = stats_resample_metrics(&m, counts);
        const double w[] = {want.avg, want.ir, want.n_ir, want.r2}, g[] = {got.avg, got.ir, got.n_ir, got.r2};
        for (int j = 0; j < 4; j++)
            CHECK_MSG((isnan(w[j]) && isnan(g[j])) || w[j] == g[j], "trial %d stat %d: %.17g vs %.17g", trial, j,
                      w[j], g[j]);
    }
}

/* ---- the paired comparison ----
 *
 * A scores 2 everywhere; B = A + d. Per profile c and turn k, D_ck = the sum
 * of its personas' differences:
 *   turn 1: D = (1, 2, 4)   turn 2: D = (3, -1, 1)   turn 3: D = (1, 1, -1)
 * (profile 0: d = [1,2,0] [0,1,1]; profile 1: [1,-1,1] [1,0,0];
 *  profile 2: [2,1,0] [2,0,-1]). A seventh persona, in profile 0, has no
 * valid score in A, an eighth, in profile 1, none in B: they are paired at
 * no turn and change nothing.
 * Observed: diff AL(k) = sum_c D_ck / 6 = 7/6, 3/6, 1/6.
 * Sign flips (2^3 = 8, each profile's D negated or not), two-sided:
 *   turn 1: +-1 +-2 +-4 = 7 5 3 1 -1 -3 -5 -7: |.| >= 7 twice     p = 2/8
 *   turn 2: +-3 +-1 +-1 = 5 3 3 1 -1 -3 -3 -5: |.| >= 3 six times p = 6/8
 *   turn 3: +-1 +-1 +-1 = all odd, |.| >= 1 always              p = 8/8
 *   AVG = sum_c E_c / 18, E_c = sum_k D_ck = (5, 2, 4): +-5 +-2 +-4 =
 *         11 3 7 -1 1 -7 -3 -11: |.| >= 11 twice                 p = 2/8
 *   IR  = sum_c (D_c3 - D_c1) / 12 = (0, -1, -5) / 12: +-0 +-1 +-5 gives
 *         |6| four times of 8                                    p = 4/8
 *   N-IR: AL_A(1) = 2 and AL_B(1) = 2 + (flipped D_1 sum)/6 vary together;
 *         computed by enumeration in the test.
 * Paired bootstrap of diff AL(1) = the mean over 3 drawn profiles of
 * D_c1 / 2 from {1/2, 1, 2}; sorted with cumulative counts: 1/2 (1), 2/3
 * (4), 5/6 (7), 1 (11), 7/6 (17), 4/3 (20), 3/2 (23), 5/3 (26), 2 (27):
 * level 0.5 -> ranks 7 and 21 -> [5/6, 3/2]; level 0.95 -> [1/2, 2]. */
enum { PN = 8, PT = 3 };
static const double d_example[PN * PT] = {1, 2, 0, 0, 1, 1, 1, -1, 1, 1, 0, 0, 2, 1, 0, 2, 0, -1, 3, 3, 3, 0, 0, 0};
static const int p_cluster[PN] = {0, 0, 1, 1, 2, 2, 0, 1};

static void paired_example(double *a, double *b) {
    for (int i = 0; i < PN * PT; i++) {
        a[i] = i / PT == 6 ? NAN : 2;
        b[i] = i / PT == 7 ? NAN : 2 + d_example[i];
    }
}

static void test_paired_by_hand(void) {
    double a[PN * PT], b[PN * PT];
    paired_example(a, b);
    StatsMatrix ma = {PN, PT, a, p_cluster, 3}, mb = {PN, PT, b, p_cluster, 3};
    StatsOptions o = stats_options_default();
    o.level = 0.5;
    StatsDiff d[PT + STATS__SUMMARY];
    StatsMethod boot, perm;
    Err e = {0};
    CHECK_OK(stats_paired(&ma, &mb, &o, d, &boot, &perm, &e), &e);
    CHECK(boot.exact && perm.exact);
    CHECK_EQ_INT(boot.draws, 27);
    CHECK_EQ_INT(perm.draws, 8);
    const double diff[3] = {7.0 / 6, 3.0 / 6, 1.0 / 6}, p[3] = {0.25, 0.75, 1};
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(d[k].n, 6); /* the seventh and eighth personas are paired at no turn */
        CHECK_NEAR(d[k].a, 2, TIGHT);
        CHECK_NEAR(d[k].b, 2 + diff[k], TIGHT);
        CHECK_NEAR(d[k].diff, diff[k], TIGHT);
        CHECK_NEAR(d[k].p, p[k], TIGHT);
    }
    CHECK_NEAR(d[0].lo, 5.0 / 6, TIGHT);
    CHECK_NEAR(d[0].hi, 3.0 / 2, TIGHT);
    const StatsDiff *avg = &d[PT + STATS_AVG], *ir = &d[PT + STATS_IR], *nir = &d[PT + STATS_N_IR];
    CHECK_NEAR(avg->diff, 11.0 / 18, TIGHT);
    CHECK_NEAR(avg->p, 0.25, TIGHT);
    CHECK_NEAR(ir->diff, -6.0 / 12, TIGHT);
    CHECK_NEAR(ir->p, 0.5, TIGHT);
    CHECK_NEAR(ir->a, 0, TIGHT);
    /* N-IR by enumeration of the 8 exchanges: exchanging profile c moves
     * D_ck from B's sums to A's; A's AL(k) = 2 + (moved D_k)/6, B's = 2 +
     * (kept D_k)/6; N-IR = slope / AL(1), slope over 3 turns = (AL3-AL1)/2. */
    static const double D[3][3] = {{1, 2, 4}, {3, -1, 1}, {1, 1, -1}}; /* [turn][profile] */
    double obs = 0, count = 0;
    for (int s = 0; s < 8; s++) {
        double alA[3], alB[3];
        for (int k = 0; k < 3; k++) {
            double moved = 0, kept = 0;
            for (int c = 0; c < 3; c++) *((s >> c) & 1 ? &moved : &kept) += D[k][c];
            alA[k] = 2 + moved / 6;
            alB[k] = 2 + kept / 6;
        }
        double v = (alB[2] - alB[0]) / 2 / alB[0] - (alA[2] - alA[0]) / 2 / alA[0];
        if (s == 0) obs = v;
        count += fabs(v) >= fabs(obs) - 1e-12;
    }
    CHECK_NEAR(nir->diff, obs, TIGHT);
    CHECK_NEAR(nir->p, count / 8, TIGHT);
    CHECK(nir->p < 1);
    /* At level 0.95 the AL(1) interval is the extremes. */
    o.level = 0.95;
    CHECK_OK(stats_paired(&ma, &mb, &o, d, &boot, &perm, &e), &e);
    CHECK_NEAR(d[0].lo, 0.5, TIGHT);
    CHECK_NEAR(d[0].hi, 2, TIGHT);
}

/* Monte Carlo permutation p against the exact 2/8. With D random exchanges
 * (each uniform over the 2^3), count ~ Binomial(D, p), and the estimate
 * (count + 1) / (D + 1) has mean within 1/(D + 1) of p and standard
 * deviation at most sqrt(p (1 - p) / D) = 0.00433 for p = 1/4, D = 10000.
 * Tolerance: 5 standard deviations + 1/(D + 1) = 0.0218 (a correct
 * implementation fails for another seed with probability below 1e-6). A
 * p of 1 is exactly 1: every draw reaches. */
static void test_permutation_monte_carlo_near_exact(void) {
    double a[PN * PT], b[PN * PT];
    paired_example(a, b);
    StatsMatrix ma = {PN, PT, a, p_cluster, 3}, mb = {PN, PT, b, p_cluster, 3};
    StatsOptions o = stats_options_default();
    o.permutation = STATS_MONTE_CARLO;
    o.permutations = 10000;
    StatsDiff d[PT + STATS__SUMMARY];
    StatsMethod boot, perm;
    Err e = {0};
    CHECK_OK(stats_paired(&ma, &mb, &o, d, &boot, &perm, &e), &e);
    CHECK(!perm.exact);
    CHECK_EQ_INT(perm.draws, 10000);
    double tol = 5 * sqrt(0.25 * 0.75 / 10000) + 1.0 / 10001;
    CHECK_NEAR(d[0].p, 0.25, tol);
    CHECK_NEAR(d[1].p, 0.75, 5 * sqrt(0.25 * 0.75 / 10000) + 1.0 / 10001);
    CHECK_NEAR(d[PT + STATS_IR].p, 0.5, 5 * sqrt(0.25 / 10000) + 1.0 / 10001);
    CHECK(d[2].p == 1);
    /* Exact p is a multiple of 1/8; Monte Carlo's is (count + 1)/(D + 1). */
    CHECK(fmod(d[0].p * 10001, 1) < 1e-6 || fmod(d[0].p * 10001, 1) > 1 - 1e-6);
}

/* A run compared with itself: every difference 0, p = 1, interval [0, 0]. */
static void test_paired_identical_runs(void) {
    StatsMatrix m = example_matrix();
    StatsOptions o = stats_options_default();
    StatsDiff d[3 + STATS__SUMMARY];
    StatsMethod boot, perm;
    Err e = {0};
    CHECK_OK(stats_paired(&m, &m, &o, d, &boot, &perm, &e), &e);
    for (int j = 0; j < 3 + STATS__SUMMARY; j++) {
        CHECK(d[j].diff == 0 && d[j].lo == 0 && d[j].hi == 0);
        CHECK(d[j].p == 1);
    }
}

/* Exact mode picks itself when it fits, and the limits are errors. */
static void test_modes_and_errors(void) {
    double s[22 * 1];
    int cl[22];
    for (int i = 0; i < 22; i++) {
        s[i] = 1 + i % 5;
        cl[i] = i;
    }
    StatsMatrix m = {22, 1, s, cl, 22};
    StatsOptions o = stats_options_default();
    o.permutations = 1000;
    o.replicates = 200;
    StatsDiff d[1 + STATS__SUMMARY];
    StatsMethod boot, perm;
    Err e = {0};
    CHECK_OK(stats_paired(&m, &m, &o, d, &boot, &perm, &e), &e);
    CHECK(!boot.exact && boot.draws == 200);
    CHECK(!perm.exact && perm.draws == 1000); /* 2^22 exchanges > 2^20 */
    m.n_clusters = 20;
    m.n = 20;
    CHECK_OK(stats_paired(&m, &m, &o, d, &boot, &perm, &e), &e);
    CHECK(perm.exact && perm.draws == 1L << 20); /* 2^20: still enumerated */
    o.permutation = STATS_EXACT;
    m.n = m.n_clusters = 22;
    CHECK(stats_paired(&m, &m, &o, d, &boot, &perm, &e) < 0);
    CHECK_MSG(strstr(e.msg, "2^22"), "%s", e.msg);
    o = stats_options_default();
    o.bootstrap = STATS_EXACT;
    StatsInterval iv[STATS__SUMMARY];
    CHECK(stats_bootstrap_run(&m, &o, iv, &boot, &e) < 0);
    CHECK_MSG(strstr(e.msg, "22^22"), "%s", e.msg);
    o.bootstrap = STATS_AUTO;
    o.replicates = STATS_MAX_REPLICATES + 1;
    CHECK(stats_bootstrap_run(&m, &o, iv, &boot, &e) < 0);
    CHECK_MSG(strstr(e.msg, "replicates: expected at most 1000000"), "%s", e.msg);
    cl[3] = 30;
    o = stats_options_default();
    CHECK(stats_bootstrap_run(&m, &o, iv, &boot, &e) < 0);
    CHECK_MSG(strstr(e.msg, "persona 3: profile 30 outside 0..21"), "%s", e.msg);
    cl[3] = 4; /* profile 3 now empty */
    CHECK(stats_bootstrap_run(&m, &o, iv, &boot, &e) < 0);
    CHECK_MSG(strstr(e.msg, "profile 3 has no persona"), "%s", e.msg);
}

/* ceil(q n) despite the last bits: (1 - 0.95) / 2 * 10000 = 250.00000000000023. */
static void test_quantile_rank(void) {
    double *v = xmalloc(10000 * sizeof *v);
    for (int i = 0; i < 10000; i++) v[i] = i + 1;
    CHECK(stats_quantile(v, 10000, (1 - 0.95) / 2) == 250);
    CHECK(stats_quantile(v, 10000, (1 + 0.95) / 2) == 9750);
    CHECK(stats_quantile(v, 27, 0.025) == 1);
    CHECK(stats_quantile(v, 27, 0.975) == 27);
    CHECK(stats_quantile(v, 27, 0.25) == 7);
    CHECK(isnan(stats_quantile(v, 0, 0.5)));
    free(v);
}

int main(void) {
    RUN(test_bootstrap_exact_by_hand);
    RUN(test_persona_resampling_differs);
    RUN(test_bootstrap_monte_carlo_near_exact);
    RUN(test_resample_matches_metrics_summary);
    RUN(test_paired_by_hand);
    RUN(test_permutation_monte_carlo_near_exact);
    RUN(test_paired_identical_runs);
    RUN(test_modes_and_errors);
    RUN(test_quantile_rank);
    return test_summary();
}
