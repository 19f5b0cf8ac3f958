/* bench_stats: a benchmark run's per-persona scores, read from its journal,
 * and the statistics results.json carries about them (aloe/stats.h).
 *
 * results.json gains
 *   personas[]  {id, profile_index, personality_index, scores: [T values,
 *               null = no valid score]} for every finished persona, in
 *               persona order (a skipped persona is not among them), so two
 *               runs can be paired from their results.json alone;
 *   intervals   {avg, ir, n_ir: {lo, hi, defined}, method, exact,
 *               replicates, seed, level, clusters}: percentile intervals of
 *               a bootstrap that resamples PROFILES (clusters) with
 *               replacement, B = STATS_REPLICATES, fixed seed STATS_SEED
 *               (deterministic output);
 *   definitions.intervals, definitions.personas. */
#ifndef ALOE_ALOE_BENCH_STATS_H
#define ALOE_ALOE_BENCH_STATS_H

#include <jansson.h>

#include "aloe/bench.h"
#include "aloe/stats.h"

typedef struct BenchScores {
    int n, turns;
    double *score;     /* n x turns, NAN = no valid score */
    int *cluster;      /* the profile, numbered 0.. over the profiles present */
    int n_clusters;
    long *profile;     /* profile_index */
    long *personality; /* personality_index */
    char **id;
} BenchScores;

/* The finished personas of the run in the journal, in persona order. A
 * record that says it was skipped ("skipped" present and not false or
 * null) or holds no list of c->turns turns is not a finished persona. */
void bench_scores_read(const BenchConfig *c, Journal *j, BenchScores *out);
void bench_scores_free(BenchScores *s);
/* The matrix view of s (borrowing its arrays). */
StatsMatrix bench_scores_matrix(const BenchScores *s);

/* Adds personas, intervals and definitions.{intervals,personas} to
 * results (bench_results' object). */
void bench_stats_attach(json_t *results, const BenchConfig *c, Journal *j);

#endif
