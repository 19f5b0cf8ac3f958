/* compare: benchmark runs over the same personas, paired (`aloe report A B
 * ...`). Every later run is compared with the first, from the personas[] of
 * their results.json (bench_stats.h), with stats_paired (stats.h): per turn
 * and for AVG, IR and N-IR the difference B - A over the personas both
 * scored validly, a paired cluster-bootstrap interval (profiles resampled,
 * the same draw for both runs) and a sign-flip permutation p-value.
 *
 * Runs whose persona sets differ are refused, naming the run and the
 * missing ids; with `common` they are paired over the personas every run
 * has, and the comparison says so in `warnings`.
 *
 * The comparison object (what `aloe report --json FILE` writes):
 *   baseline     the first run's name; runs: every run's name
 *   personas     personas paired (common to every run); profiles: clusters;
 *                turns
 *   warnings[]   strings (personas left out under `common`)
 *   level        interval coverage (0.95)
 *   bootstrap    {method, exact, replicates, seed}
 *   permutation  {method, exact, draws, seed}
 *   comparisons[] {run, baseline, turns: [{turn, n, a, b, diff, lo, hi, p,
 *                defined}], avg, ir, n_ir: {n, a, b, diff, lo, hi, p,
 *                defined}}: a and b the paired statistic of the baseline and
 *                the run, diff = b - a, null where undefined
 *   definitions  {pairing, diff, interval, p} */
#ifndef ALOE_ALOE_COMPARE_H
#define ALOE_ALOE_COMPARE_H

#include <jansson.h>

#include "aloe/report.h"
#include "aloe/stats.h"
#include "base/err.h"

typedef struct CompareOptions {
    StatsOptions stats;
    int common; /* pair over the personas every run has instead of refusing */
} CompareOptions;

CompareOptions compare_options_default(void);

/* Whether results.json carries per-persona scores (personas[]). */
int compare_has_personas(const json_t *results);

/* The comparison of runs[1..n-1] with runs[0] (n >= 2). NULL with e set: a
 * run without personas[], different turn counts, a persona with another
 * profile in another run, or (without common) persona sets that differ. */
json_t *compare_runs(const ReportSeries *runs, int n, const CompareOptions *o, Err *e);

/* The comparison as Markdown: warnings, one table per later run (AL(k),
 * AVG, IR, N-IR: n, both runs, B - A, interval, p) and the definitions.
 * Caller frees. */
char *compare_markdown(const json_t *cmp);

#endif
