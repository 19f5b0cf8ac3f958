#include "aloe/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/rng.h"

StatsOptions stats_options_default(void) {
    return (StatsOptions){.replicates = STATS_REPLICATES,
                          .permutations = STATS_PERMUTATIONS,
                          .seed = STATS_SEED,
                          .level = 0.95,
                          .bootstrap = STATS_AUTO,
                          .permutation = STATS_AUTO};
}

int stats_check(const StatsMatrix *m, const char *what, Err *e) {
    if (m->n < 1 || m->turns < 1 || m->n_clusters < 1)
        return err_set(e, ERR_ARG, "%s: no scores (%d personas, %d turns, %d profiles)", what, m->n, m->turns,
                       m->n_clusters);
    if (m->n_clusters > m->n)
        return err_set(e, ERR_ARG, "%s: %d profiles for %d personas", what, m->n_clusters, m->n);
    char *used = xcalloc((size_t)m->n_clusters, 1);
    int rc = 0;
    for (int i = 0; i < m->n && !rc; i++) {
        if (m->cluster[i] < 0 || m->cluster[i] >= m->n_clusters)
            rc = err_set(e, ERR_ARG, "%s: persona %d: profile %d outside 0..%d", what, i, m->cluster[i],
                         m->n_clusters - 1);
        else
            used[m->cluster[i]] = 1;
    }
    /* An empty cluster would be drawn like the others and add nothing. */
    for (int c = 0; c < m->n_clusters && !rc; c++)
        if (!used[c]) rc = err_set(e, ERR_ARG, "%s: profile %d has no persona", what, c);
    free(used);
    return rc;
}

/* ---- per-cluster sums: a resample or an exchange only reweights these ---- */

typedef struct {
    int C, T, paired;
    /* C x T: sums of valid scores and their count; paired: scores valid in
     * both runs, the count shared */
    double *sa, *sb, *n;
    /* scratch */
    double *ta, *tb, *tn; /* T totals */
    TurnStat *sta, *stb;  /* T */
} Sums;

static void sums_init(Sums *s, const StatsMatrix *a, const StatsMatrix *b) {
    int C = a->n_clusters, T = a->turns;
    s->C = C;
    s->T = T;
    s->paired = b != NULL;
    size_t ct = (size_t)C * (size_t)T;
    s->sa = xcalloc(3 * ct + 3 * (size_t)T, sizeof(double));
    s->sb = s->sa + ct;
    s->n = s->sb + ct;
    s->ta = s->n + ct;
    s->tb = s->ta + T;
    s->tn = s->tb + T;
    s->sta = xcalloc(2 * (size_t)T, sizeof(TurnStat));
    s->stb = s->sta + T;
    for (int k = 0; k < T; k++) s->sta[k].turn = s->stb[k].turn = k + 1;
    for (int i = 0; i < a->n; i++) {
        size_t row = (size_t)a->cluster[i] * (size_t)T;
        for (int k = 0; k < T; k++) {
            double x = a->score[(size_t)i * (size_t)T + (size_t)k];
            double y = b ? b->score[(size_t)i * (size_t)T + (size_t)k] : 0;
            if (isnan(x) || isnan(y)) continue;
            s->sa[row + (size_t)k] += x;
            s->sb[row + (size_t)k] += y;
            s->n[row + (size_t)k] += 1;
        }
    }
}

static void sums_free(Sums *s) {
    free(s->sa);
    free(s->sta);
}

static int sums_nstats(const Sums *s) { return s->paired ? s->T + STATS__SUMMARY : STATS__SUMMARY; }

static void put_summary(double *out, BenchMetrics m) {
    out[STATS_AVG] = m.avg;
    out[STATS_IR] = m.ir;
    out[STATS_N_IR] = m.n_ir;
}

/* The statistics from the totals s->ta, s->tb, s->tn: one run's AVG, IR,
 * N-IR, or the paired differences AL_B(k) - AL_A(k) then those of AVG, IR,
 * N-IR. The AL of each run also stays in s->sta / s->stb. */
static void totals_stats(Sums *s, double *out) {
    for (int k = 0; k < s->T; k++) {
        double n = s->tn[k];
        s->sta[k].n = (long)n;
        s->sta[k].al = n > 0 ? s->ta[k] / n : NAN;
        s->stb[k].n = (long)n;
        s->stb[k].al = n > 0 ? s->tb[k] / n : NAN;
    }
    BenchMetrics ma = metrics_summary(s->sta, s->T);
    if (!s->paired) {
        put_summary(out, ma);
        return;
    }
    BenchMetrics mb = metrics_summary(s->stb, s->T);
    for (int k = 0; k < s->T; k++) out[k] = s->stb[k].al - s->sta[k].al;
    out[s->T + STATS_AVG] = mb.avg - ma.avg;
    out[s->T + STATS_IR] = mb.ir - ma.ir;
    out[s->T + STATS_N_IR] = mb.n_ir - ma.n_ir;
}

/* The statistics of the resample holding cluster c counts[c] times. */
static void resample_stats(Sums *s, const int *counts, double *out) {
    for (int k = 0; k < s->T; k++) s->ta[k] = s->tb[k] = s->tn[k] = 0;
    for (int c = 0; c < s->C; c++) {
        if (!counts[c]) continue;
        double w = counts[c];
        const double *sa = s->sa + (size_t)c * (size_t)s->T, *sb = s->sb + (size_t)c * (size_t)s->T,
                     *n = s->n + (size_t)c * (size_t)s->T;
        for (int k = 0; k < s->T; k++) {
            s->ta[k] += w * sa[k];
            s->tb[k] += w * sb[k];
            s->tn[k] += w * n[k];
        }
    }
    totals_stats(s, out);
}

BenchMetrics stats_resample_metrics(const StatsMatrix *m, const int *counts) {
    Sums s;
    sums_init(&s, m, NULL);
    double out[STATS__SUMMARY];
    resample_stats(&s, counts, out);
    BenchMetrics r = metrics_summary(s.sta, s.T); /* R2 and N-R2 too */
    sums_free(&s);
    r.avg = out[STATS_AVG];
    r.ir = out[STATS_IR];
    r.n_ir = out[STATS_N_IR];
    return r;
}

/* ---- percentile intervals ---- */

double stats_quantile(const double *sorted, long n, double q) {
    if (n <= 0) return NAN;
    /* ceil(q n), forgiving the last bits of q n: (1 - 0.95) / 2 * 10000 is
     * 250.00000000000023 in doubles and means rank 250. */
    double x = q * (double)n;
    long r = (long)ceil(x - 1e-9 * (x > 1 ? x : 1));
    if (r < 1) r = 1;
    if (r > n) r = n;
    return sorted[r - 1];
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* base^exp when it is at most limit, else -1. */
static long pow_upto(long base, int exp, long limit) {
    long r = 1;
    for (int i = 0; i < exp; i++) {
        if (r > limit / base) return -1;
        r *= base;
    }
    return r;
}

/* Cluster bootstrap of every statistic of s; out[j] the percentile interval
 * of statistic j. */
static int bootstrap(Sums *s, const StatsOptions *o, StatsInterval *out, StatsMethod *how, Err *e) {
    if (!(o->level > 0 && o->level < 1))
        return err_set(e, ERR_ARG, "bootstrap: interval level %g: expected between 0 and 1", o->level);
    int C = s->C, m = sums_nstats(s);
    if (o->replicates > STATS_MAX_REPLICATES)
        return err_set(e, ERR_ARG, "bootstrap: replicates: expected at most %ld, got %ld", STATS_MAX_REPLICATES,
                       o->replicates);
    long all = pow_upto(C, C,
                        o->bootstrap == STATS_EXACT || o->replicates > STATS_EXACT_MAX ? STATS_EXACT_MAX : o->replicates);
    int exact = o->bootstrap == STATS_EXACT || (o->bootstrap == STATS_AUTO && all > 0);
    if (exact && all < 0)
        return err_set(e, ERR_ARG, "bootstrap: exact enumeration of %d^%d draws is more than %ld", C, C,
                       STATS_EXACT_MAX);
    if (!exact && o->replicates < 1)
        return err_set(e, ERR_ARG, "bootstrap: replicates: expected at least 1, got %ld", o->replicates);
    long R = exact ? all : o->replicates;
    double *vals = xmalloc((size_t)m * (size_t)R * sizeof *vals), *v = xmalloc((size_t)m * sizeof *v);
    long *defined = xcalloc((size_t)m, sizeof *defined);
    int *draw = xcalloc((size_t)C, sizeof *draw), *counts = xcalloc((size_t)C, sizeof *counts);
    Rng rng;
    rng_derive(&rng, o->seed, 1, 0); /* the bootstrap's stream */
    for (long r = 0; r < R; r++) {
        memset(counts, 0, (size_t)C * sizeof *counts);
        if (exact) { /* draw[] counts through every C-digit number in base C */
            for (int i = 0; i < C; i++) counts[draw[i]]++;
            for (int i = 0; i < C && ++draw[i] == C; i++) draw[i] = 0;
        } else {
            for (int i = 0; i < C; i++) counts[rng_below(&rng, (uint64_t)C)]++;
        }
        resample_stats(s, counts, v);
        for (int j = 0; j < m; j++)
            if (!isnan(v[j])) vals[(size_t)j * (size_t)R + (size_t)defined[j]++] = v[j];
    }
    for (int j = 0; j < m; j++) {
        double *col = vals + (size_t)j * (size_t)R;
        qsort(col, (size_t)defined[j], sizeof *col, cmp_double);
        out[j] = (StatsInterval){stats_quantile(col, defined[j], (1 - o->level) / 2),
                                 stats_quantile(col, defined[j], (1 + o->level) / 2), defined[j]};
    }
    how->exact = exact;
    how->draws = R;
    free(vals);
    free(v);
    free(defined);
    free(draw);
    free(counts);
    return 0;
}

int stats_bootstrap_run(const StatsMatrix *m, const StatsOptions *o, StatsInterval out[STATS__SUMMARY],
                        StatsMethod *how, Err *e) {
    if (stats_check(m, "bootstrap", e)) return -1;
    Sums s;
    sums_init(&s, m, NULL);
    int rc = bootstrap(&s, o, out, how, e);
    sums_free(&s);
    return rc;
}

/* ---- sign-flip permutation test ---- */

/* |v| reaches |obs|, forgiving rounding (see stats.h). */
static int reaches(double v, double obs) {
    double a = fabs(obs);
    return !isnan(v) && fabs(v) >= a - 1e-10 * (a > 1 ? a : 1);
}

/* Exchanging the runs in cluster c moves (sb - sa) of it from B to A. */
static void exchange(Sums *s, int c, int sign) {
    const double *sa = s->sa + (size_t)c * (size_t)s->T, *sb = s->sb + (size_t)c * (size_t)s->T;
    for (int k = 0; k < s->T; k++) {
        double d = sign * (sb[k] - sa[k]);
        s->ta[k] += d;
        s->tb[k] -= d;
    }
}

static void identity_totals(Sums *s) {
    for (int k = 0; k < s->T; k++) s->ta[k] = s->tb[k] = s->tn[k] = 0;
    for (int c = 0; c < s->C; c++)
        for (int k = 0; k < s->T; k++) {
            size_t at = (size_t)c * (size_t)s->T + (size_t)k;
            s->ta[k] += s->sa[at];
            s->tb[k] += s->sb[at];
            s->tn[k] += s->n[at];
        }
}

static int permutation(Sums *s, const StatsOptions *o, const double *obs, double *p, StatsMethod *how, Err *e) {
    int C = s->C, m = sums_nstats(s);
    int fits = C < 63 && (1L << C) <= STATS_EXACT_MAX;
    int exact = o->permutation == STATS_EXACT || (o->permutation == STATS_AUTO && fits);
    if (exact && !fits)
        return err_set(e, ERR_ARG, "permutation test: exact enumeration of 2^%d exchanges is more than %ld", C,
                       STATS_EXACT_MAX);
    if (!exact && o->permutations < 1)
        return err_set(e, ERR_ARG, "permutation test: draws: expected at least 1, got %ld", o->permutations);
    long *count = xcalloc((size_t)m, sizeof *count);
    double *v = xmalloc((size_t)m * sizeof *v);
    char *flipped = xcalloc((size_t)C, 1);
    long draws;
    identity_totals(s);
    if (exact) {
        /* Gray code: each next exchange set differs from the last by one
         * cluster, so the totals move by one cluster's difference. */
        draws = 1L << C;
        for (long i = 0; i < draws; i++) {
            if (i > 0) {
                int c = __builtin_ctzl((unsigned long)i);
                exchange(s, c, flipped[c] ? -1 : 1);
                flipped[c] ^= 1;
            }
            totals_stats(s, v);
            for (int j = 0; j < m; j++) count[j] += reaches(v[j], obs[j]);
        }
    } else {
        draws = o->permutations;
        Rng rng;
        rng_derive(&rng, o->seed, 2, 0); /* the permutation test's stream */
        for (long i = 0; i < draws; i++) {
            identity_totals(s);
            uint64_t bits = 0;
            for (int c = 0; c < C; c++) {
                if (c % 64 == 0) bits = rng_u64(&rng);
                if ((bits >> (c % 64)) & 1) exchange(s, c, 1);
            }
            totals_stats(s, v);
            for (int j = 0; j < m; j++) count[j] += reaches(v[j], obs[j]);
        }
    }
    for (int j = 0; j < m; j++)
        p[j] = isnan(obs[j]) ? NAN
               : exact       ? (double)count[j] / (double)draws
                             : (double)(count[j] + 1) / (double)(draws + 1);
    how->exact = exact;
    how->draws = draws;
    free(count);
    free(v);
    free(flipped);
    return 0;
}

int stats_paired(const StatsMatrix *a, const StatsMatrix *b, const StatsOptions *o, StatsDiff *out,
                 StatsMethod *boot, StatsMethod *perm, Err *e) {
    if (stats_check(a, "paired comparison", e)) return -1;
    if (a->n != b->n || a->turns != b->turns || a->n_clusters != b->n_clusters ||
        memcmp(a->cluster, b->cluster, (size_t)a->n * sizeof *a->cluster))
        return err_set(e, ERR_ARG, "paired comparison: the two runs' personas, turns or profiles differ");
    Sums s;
    sums_init(&s, a, b);
    int T = a->turns, m = sums_nstats(&s);
    double *obs = xmalloc(2 * (size_t)m * sizeof *obs), *p = obs + m;
    StatsInterval *ci = xmalloc((size_t)m * sizeof *ci);
    identity_totals(&s);
    totals_stats(&s, obs);
    BenchMetrics ma = metrics_summary(s.sta, T), mb = metrics_summary(s.stb, T);
    for (int k = 0; k < T; k++)
        out[k] = (StatsDiff){.n = s.sta[k].n, .a = s.sta[k].al, .b = s.stb[k].al, .diff = obs[k]};
    double sa[STATS__SUMMARY], sb[STATS__SUMMARY];
    put_summary(sa, ma);
    put_summary(sb, mb);
    for (int j = 0; j < STATS__SUMMARY; j++)
        out[T + j] = (StatsDiff){.n = a->n, .a = sa[j], .b = sb[j], .diff = obs[T + j]};
    int rc = bootstrap(&s, o, ci, boot, e);
    if (!rc) rc = permutation(&s, o, obs, p, perm, e);
    if (!rc)
        for (int j = 0; j < m; j++) {
            out[j].lo = ci[j].lo;
            out[j].hi = ci[j].hi;
            out[j].defined = ci[j].defined;
            out[j].p = p[j];
        }
    free(obs);
    free(ci);
    sums_free(&s);
    return rc;
}
