/* stats: intervals and tests that tell benchmark runs apart, as pure
 * functions over score matrices.
 *
 * Data: n personas x T turns of judge scores (NAN = no valid score), each
 * persona in a cluster: its profile. The benchmark's 100 personas share 20
 * profiles, so the personas of one profile are not independent draws; every
 * resampling here moves whole clusters.
 *
 * Cluster bootstrap (one run): draw C clusters with replacement out of the C;
 * the resample is every persona of every drawn cluster (a cluster drawn twice
 * counts twice). AL(k) is recomputed over the resample's valid scores at turn
 * k, then AVG, IR and N-IR exactly as metrics_summary does. A statistic that
 * is undefined in a resample (N-IR when no drawn persona has a valid first
 * turn) is left out of that statistic's distribution; `defined` counts the
 * rest. Percentile interval at level L over the R defined values sorted:
 *   lo = the ceil(R (1 - L) / 2)-th smallest, hi = the ceil(R (1 + L) / 2)-th
 * smallest (the inverse of the empirical distribution function, no
 * interpolation). Exact mode enumerates all C^C ordered draws once each (they
 * are equally likely, so this IS the bootstrap distribution); Monte Carlo
 * draws `replicates` of them from a stream seeded with `seed`.
 *
 * Paired comparison (run B against run A, row i of both the same persona):
 * at turn k, over the personas with a valid score in BOTH runs, AL_A(k) and
 * AL_B(k) and their difference; AVG, IR and N-IR of each run from these
 * paired AL(k), and the difference B - A. The bootstrap draws the same
 * clusters for both runs. The permutation test exchanges A and B for every
 * persona of a chosen set of profiles (under "no difference" the labels are
 * exchangeable within a profile): for AL(k), AVG and IR, which are linear in
 * the scores, that flips the sign of the profile's summed per-persona
 * difference; N-IR is recomputed from the exchanged scores. Two-sided
 * p-value: exact, the share of all 2^C exchanges (the identity included)
 * whose |statistic| >= |observed|; Monte Carlo, (count + 1) / (draws + 1)
 * over `permutations` random exchanges. |values| within 1e-10 (relative, at
 * least 1e-10 absolute) of |observed| count as reaching it: rounding of
 * equal values must not decide; it can only make p larger. */
#ifndef ALOE_ALOE_STATS_H
#define ALOE_ALOE_STATS_H

#include <stdint.h>

#include "aloe/metrics.h"
#include "base/err.h"

typedef enum { STATS_AUTO, STATS_EXACT, STATS_MONTE_CARLO } StatsMode;

/* The defaults: 10000 bootstrap replicates, 100000 permutation draws. */
#define STATS_REPLICATES 10000L
#define STATS_PERMUTATIONS 100000L
#define STATS_SEED 20241205u
/* Exact enumeration at most this many draws (C^C, 2^C). */
#define STATS_EXACT_MAX (1L << 20)
/* Bootstrap replicates are kept (to sort), so they are bounded: 10^6 x
 * (T + 3) doubles is 104 MB for 10 turns. */
#define STATS_MAX_REPLICATES 1000000L

typedef struct StatsMatrix {
    int n;               /* personas (rows) */
    int turns;           /* T */
    const double *score; /* n x T, row i = persona i; NAN = no valid score */
    const int *cluster;  /* n cluster indices in [0, n_clusters), each used */
    int n_clusters;      /* C */
} StatsMatrix;

typedef struct StatsOptions {
    long replicates;   /* Monte Carlo bootstrap draws */
    long permutations; /* Monte Carlo exchanges */
    uint64_t seed;
    double level;      /* interval coverage, 0 < level < 1 */
    /* AUTO: the bootstrap is exact when C^C <= replicates (and
     * STATS_EXACT_MAX), the permutation
     * test when 2^C <= STATS_EXACT_MAX (C <= 20); EXACT fails beyond
     * STATS_EXACT_MAX draws. */
    StatsMode bootstrap, permutation;
} StatsOptions;

StatsOptions stats_options_default(void);

/* What was done: exact (draws = C^C or 2^C, each once) or Monte Carlo. */
typedef struct StatsMethod {
    int exact;
    long draws;
} StatsMethod;

typedef struct StatsInterval {
    double lo, hi; /* NAN when no replicate defined the statistic */
    long defined;  /* replicates in which the statistic was defined */
} StatsInterval;

/* The summary statistics, in this order, after the T turns of a paired result. */
enum { STATS_AVG, STATS_IR, STATS_N_IR, STATS__SUMMARY };

/* AVG, IR, N-IR of the resample holding cluster c counts[c] times. */
BenchMetrics stats_resample_metrics(const StatsMatrix *m, const int *counts);

/* The q-quantile (0 < q <= 1) of n sorted values: the ceil(q n)-th smallest. */
double stats_quantile(const double *sorted, long n, double q);

/* Checks a matrix (clusters in range, each used). */
int stats_check(const StatsMatrix *m, const char *what, Err *e);

/* Cluster-bootstrap percentile intervals of AVG, IR, N-IR (out[STATS_AVG..]). */
int stats_bootstrap_run(const StatsMatrix *m, const StatsOptions *o, StatsInterval out[STATS__SUMMARY],
                        StatsMethod *how, Err *e);

typedef struct StatsDiff {
    long n;          /* a turn: personas with a valid score in both runs; a summary: personas */
    double a, b;     /* the paired statistic of each run (NAN if undefined) */
    double diff;     /* b - a */
    double lo, hi;   /* paired cluster-bootstrap percentile interval of diff */
    long defined;    /* bootstrap replicates that defined diff */
    double p;        /* two-sided sign-flip permutation p-value; NAN if diff is */
} StatsDiff;

/* B against A over the same personas and clusters (a->cluster and b->cluster
 * equal). out has a->turns + STATS__SUMMARY entries: AL(1..T), then AVG, IR,
 * N-IR. */
int stats_paired(const StatsMatrix *a, const StatsMatrix *b, const StatsOptions *o, StatsDiff *out,
                 StatsMethod *boot, StatsMethod *perm, Err *e);

#endif
