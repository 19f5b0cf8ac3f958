#include "aloe/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

CompareOptions compare_options_default(void) { return (CompareOptions){stats_options_default(), 0}; }

int compare_has_personas(const json_t *results) { return json_is_array(json_object_get(results, "personas")); }

static const char *const DEF_PAIRING =
    "runs are paired by persona id; at turn k, n counts the personas with a valid score in both runs, and A and B "
    "are each run's AL(k) over those personas (they can differ from a run's own AL(k) where the runs' invalid "
    "scores differ); AVG, IR and N-IR of each run are computed from these paired AL(k) as in results.json";
static const char *const DEF_DIFF = "B - A: the later run's paired statistic minus the first run's";
static const char *const DEF_INTERVAL =
    "percentile interval of B - A from a paired bootstrap clustered by profile: the profiles are drawn with "
    "replacement, as many as there are, each bringing all its personas in both runs (the same draw for both); "
    "B - A is recomputed per draw; lo and hi are the ceil(R (1-level)/2)-th and ceil(R (1+level)/2)-th smallest of "
    "the R draws that define it; exact (all P^P draws) when P^P <= replicates, else Monte Carlo with the seed";
static const char *const DEF_P =
    "two-sided sign-flip permutation p-value: with no difference the run labels are exchangeable within a profile; "
    "exchanging the runs for a set of profiles flips the sign of each such profile's summed per-persona "
    "difference (AL(k), AVG, IR; N-IR is recomputed from the exchanged scores); p = the share of exchanges whose "
    "|B - A| reaches the observed |B - A|, exact over all 2^P exchanges when 2^P <= 2^20, else (count + 1) / "
    "(draws + 1) over random exchanges drawn with the seed";

/* ---- pairing ---- */

/* id -> index into personas[] (a validated results.json has unique ids). */
static json_t *index_ids(const json_t *ps, const char *run, Err *e) {
    json_t *idx = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(ps, i, p) {
        const char *id = json_string_value(json_object_get(p, "id"));
        if (!id || json_object_get(idx, id)) {
            json_decref(idx);
            err_set(e, ERR_PARSE, "run \"%s\": personas[%zu].id: %s", run, i,
                    id ? "appears twice" : "expected a string");
            return NULL;
        }
        json_object_set_new(idx, id, json_integer((json_int_t)i));
    }
    return idx;
}

/* "N: id, id, ... and M more" of the ids of `from` missing in `in`. */
static long put_missing(StrBuf *b, const json_t *from, const json_t *in) {
    long n = 0;
    size_t i;
    json_t *p;
    json_array_foreach(from, i, p) {
        const char *id = json_string_value(json_object_get(p, "id"));
        if (!id || json_object_get(in, id)) continue;
        if (n < 8) sb_printf(b, "%s%s", n ? ", " : "", id);
        n++;
    }
    if (n > 8) sb_printf(b, " and %ld more", n - 8);
    return n;
}

/* Appends to b what run i and the baseline lack of each other; returns the
 * number of differences. */
static long describe_difference(StrBuf *b, const ReportSeries *runs, int i, json_t **ps, json_t **idx) {
    StrBuf lack, extra;
    sb_init(&lack);
    sb_init(&extra);
    long nl = put_missing(&lack, ps[0], idx[i]), ne = put_missing(&extra, ps[i], idx[0]);
    if (nl)
        sb_printf(b, "%srun \"%s\" lacks %ld of run \"%s\"'s personas: %s", b->len ? "; " : "", runs[i].name, nl,
                  runs[0].name, lack.s);
    if (ne)
        sb_printf(b, "%srun \"%s\" lacks %ld of run \"%s\"'s personas: %s", b->len ? "; " : "", runs[0].name, ne,
                  runs[i].name, extra.s);
    sb_free(&lack);
    sb_free(&extra);
    return nl + ne;
}

typedef struct {
    int n, turns, n_clusters;
    long *row;     /* n x runs: index into each run's personas[] */
    int *cluster;  /* n */
    double *score; /* n x turns scratch for one run */
} Pairing;

/* The paired personas: the baseline's, in its order, that every run has. */
static int pair(const ReportSeries *runs, int nr, int common, json_t **ps, json_t **idx, Pairing *pg, json_t *warnings,
                Err *e) {
    StrBuf diff;
    sb_init(&diff);
    long ndiff = 0;
    for (int i = 1; i < nr; i++) ndiff += describe_difference(&diff, runs, i, ps, idx);
    if (ndiff && !common) {
        err_set(e, ERR_UNSUPPORTED,
                "the runs' personas differ, so they cannot be paired: %s (finish the runs, or compare over the "
                "personas every run has with --common)",
                diff.s);
        sb_free(&diff);
        return -1;
    }
    size_t np = json_array_size(ps[0]);
    pg->row = xmalloc((np ? np : 1) * (size_t)nr * sizeof *pg->row);
    pg->cluster = xmalloc((np ? np : 1) * sizeof *pg->cluster);
    json_t *clusters = json_object(); /* profile_index -> cluster */
    int rc = 0;
    for (size_t k = 0; k < np && !rc; k++) {
        json_t *p0 = json_array_get(ps[0], k);
        const char *id = json_string_value(json_object_get(p0, "id"));
        json_int_t prof = json_integer_value(json_object_get(p0, "profile_index"));
        int everywhere = 1;
        for (int i = 1; i < nr && everywhere; i++) everywhere = json_object_get(idx[i], id) != NULL;
        if (!everywhere) continue;
        long *row = pg->row + (size_t)pg->n * (size_t)nr;
        for (int i = 0; i < nr && !rc; i++) {
            row[i] = (long)json_integer_value(json_object_get(idx[i], id));
            json_int_t pi = json_integer_value(json_object_get(json_array_get(ps[i], (size_t)row[i]), "profile_index"));
            if (pi != prof)
                rc = err_set(e, ERR_UNSUPPORTED,
                             "persona %s has profile_index %lld in run \"%s\" and %lld in run \"%s\": the runs did "
                             "not use the same persona pool",
                             id, (long long)prof, runs[0].name, (long long)pi, runs[i].name);
        }
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)prof);
        json_t *c = json_object_get(clusters, key);
        if (!c) json_object_set_new(clusters, key, c = json_integer(pg->n_clusters++));
        pg->cluster[pg->n++] = (int)json_integer_value(c);
    }
    json_decref(clusters);
    if (!rc && pg->n == 0) rc = err_set(e, ERR_UNSUPPORTED, "the runs have no persona in common");
    if (!rc && ndiff) {
        char *w = xasprintf("compared over the %d personas every run has, as asked (--common): %s", pg->n, diff.s);
        json_array_append_new(warnings, json_string(w));
        free(w);
    }
    sb_free(&diff);
    return rc;
}

/* Run i's scores of the paired personas into pg->score. */
static void fill_scores(const Pairing *pg, json_t *ps, int i, int nr) {
    for (int r = 0; r < pg->n; r++) {
        json_t *sc = json_object_get(json_array_get(ps, (size_t)pg->row[(size_t)r * (size_t)nr + (size_t)i]), "scores");
        for (int k = 0; k < pg->turns; k++) {
            json_t *v = json_array_get(sc, (size_t)k);
            pg->score[(size_t)r * (size_t)pg->turns + (size_t)k] = json_is_number(v) ? json_number_value(v) : NAN;
        }
    }
}

/* ---- the comparison object ---- */

static json_t *num_or_null(double v) { return isnan(v) || isinf(v) ? json_null() : json_real(v); }

static json_t *diff_json(const StatsDiff *d, int turn) {
    json_t *o = json_object();
    if (turn > 0) json_object_set_new(o, "turn", json_integer(turn));
    json_object_set_new(o, "n", json_integer(d->n));
    json_object_set_new(o, "a", num_or_null(d->a));
    json_object_set_new(o, "b", num_or_null(d->b));
    json_object_set_new(o, "diff", num_or_null(d->diff));
    json_object_set_new(o, "lo", num_or_null(d->lo));
    json_object_set_new(o, "hi", num_or_null(d->hi));
    json_object_set_new(o, "p", num_or_null(d->p));
    json_object_set_new(o, "defined", json_integer(d->defined));
    return o;
}

static json_t *method_json(const StatsMethod *m, int clusters, uint64_t seed, int bootstrap) {
    char *text;
    if (bootstrap)
        text = xasprintf("paired cluster bootstrap, percentile: the %d profiles drawn with replacement, the same draw "
                         "for both runs; %s",
                         clusters, m->exact ? "all equally likely draws enumerated (exact)" : "Monte Carlo draws");
    else
        text = xasprintf("sign-flip permutation test, two-sided: the runs exchanged within each subset of the %d "
                         "profiles; %s",
                         clusters,
                         m->exact ? "all exchanges enumerated (exact), p = share reaching the observed |B - A|"
                                  : "Monte Carlo, p = (count + 1) / (draws + 1)");
    json_t *o = json_pack("{s:s, s:b, s:I, s:I}", "method", text, "exact", m->exact, bootstrap ? "replicates" : "draws",
                          (json_int_t)m->draws, "seed", (json_int_t)seed);
    free(text);
    return o;
}

json_t *compare_runs(const ReportSeries *runs, int n, const CompareOptions *o, Err *e) {
    if (n < 2) {
        err_set(e, ERR_ARG, "a paired comparison needs at least two runs");
        return NULL;
    }
    int T = (int)json_array_size(json_object_get(runs[0].results, "turns"));
    for (int i = 0; i < n; i++) {
        if (!compare_has_personas(runs[i].results)) {
            err_set(e, ERR_UNSUPPORTED,
                    "run \"%s\": its results.json has no per-persona scores (personas[]; written before aloe kept "
                    "them): rerun `aloe bench` with the same --out to rewrite it",
                    runs[i].name);
            return NULL;
        }
        int Ti = (int)json_array_size(json_object_get(runs[i].results, "turns"));
        if (Ti != T) {
            err_set(e, ERR_UNSUPPORTED, "run \"%s\" has %d turns and run \"%s\" %d: paired differences need the same turns",
                    runs[i].name, Ti, runs[0].name, T);
            return NULL;
        }
    }
    if (T < 1) {
        err_set(e, ERR_UNSUPPORTED, "run \"%s\": no turns", runs[0].name);
        return NULL;
    }
    json_t **ps = xcalloc((size_t)n, sizeof *ps), **idx = xcalloc((size_t)n, sizeof *idx);
    json_t *out = NULL, *warnings = json_array();
    Pairing pg = {.turns = T};
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        ps[i] = json_object_get(runs[i].results, "personas");
        if (!(idx[i] = index_ids(ps[i], runs[i].name, e))) rc = -1;
    }
    if (!rc) rc = pair(runs, n, o->common, ps, idx, &pg, warnings, e);
    if (rc) goto done;
    pg.score = xmalloc((size_t)pg.n * (size_t)T * sizeof *pg.score);
    double *base = xmalloc((size_t)pg.n * (size_t)T * sizeof *base);
    fill_scores(&pg, ps[0], 0, n);
    memcpy(base, pg.score, (size_t)pg.n * (size_t)T * sizeof *base);
    StatsMatrix ma = {pg.n, T, base, pg.cluster, pg.n_clusters}, mb = {pg.n, T, pg.score, pg.cluster, pg.n_clusters};
    StatsDiff *d = xmalloc(((size_t)T + STATS__SUMMARY) * sizeof *d);
    StatsMethod boot = {0, 0}, perm = {0, 0};
    json_t *cmps = json_array();
    for (int i = 1; i < n && !rc; i++) {
        fill_scores(&pg, ps[i], i, n);
        rc = stats_paired(&ma, &mb, &o->stats, d, &boot, &perm, e);
        if (rc) break;
        json_t *turns = json_array();
        for (int k = 0; k < T; k++) json_array_append_new(turns, diff_json(&d[k], k + 1));
        json_array_append_new(cmps, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "run", runs[i].name, "baseline",
                                              runs[0].name, "turns", turns, "avg", diff_json(&d[T + STATS_AVG], 0),
                                              "ir", diff_json(&d[T + STATS_IR], 0), "n_ir",
                                              diff_json(&d[T + STATS_N_IR], 0)));
    }
    if (!rc) {
        json_t *names = json_array();
        for (int i = 0; i < n; i++) json_array_append_new(names, json_string(runs[i].name));
        out = json_pack("{s:s, s:o, s:i, s:i, s:i, s:O, s:f, s:o, s:o, s:O, s:{s:s, s:s, s:s, s:s}}", "baseline",
                        runs[0].name, "runs", names, "personas", pg.n, "profiles", pg.n_clusters, "turns", T,
                        "warnings", warnings, "level", o->stats.level, "bootstrap",
                        method_json(&boot, pg.n_clusters, o->stats.seed, 1), "permutation",
                        method_json(&perm, pg.n_clusters, o->stats.seed, 0), "comparisons", cmps, "definitions",
                        "pairing", DEF_PAIRING, "diff", DEF_DIFF, "interval", DEF_INTERVAL, "p", DEF_P);
    }
    json_decref(cmps);
    free(d);
    free(base);
done:
    for (int i = 0; i < n; i++) json_decref(idx[i]);
    free(idx);
    free(ps);
    free(pg.row);
    free(pg.cluster);
    free(pg.score);
    json_decref(warnings);
    return out;
}

/* ---- Markdown ---- */

static double num(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void put(StrBuf *b, double v, const char *fmt) {
    if (isnan(v))
        sb_append(b, "–");
    else
        sb_printf(b, fmt, v);
}

static void put_row(StrBuf *b, const char *label, const json_t *d, int prec) {
    char f[8], fs[8];
    snprintf(f, sizeof f, "%%.%df", prec);
    snprintf(fs, sizeof fs, "%%+.%df", prec);
    sb_printf(b, "| %s | %lld | ", label, (long long)json_integer_value(json_object_get(d, "n")));
    put(b, num(d, "a"), f);
    sb_append(b, " | ");
    put(b, num(d, "b"), f);
    /* bold marks a difference whose interval excludes 0, nothing else */
    double lo = num(d, "lo"), hi = num(d, "hi");
    const char *mark = (lo > 0 && hi > 0) || (lo < 0 && hi < 0) ? "**" : "";
    sb_printf(b, " | %s", mark);
    put(b, num(d, "diff"), fs);
    sb_printf(b, "%s | [", mark);
    put(b, num(d, "lo"), fs);
    sb_append(b, ", ");
    put(b, num(d, "hi"), fs);
    sb_append(b, "] | ");
    put(b, num(d, "p"), "%.4g");
    sb_append(b, " |\n");
}

char *compare_markdown(const json_t *cmp) {
    StrBuf b;
    sb_init(&b);
    const char *base = json_string_value(json_object_get(cmp, "baseline"));
    double level = num(cmp, "level");
    sb_append(&b, "\n## Paired differences against ");
    report_md_cell(&b, base);
    sb_printf(&b, "\n\nOver the %lld personas (%lld profiles) every run has; at each turn over the personas with a "
                  "valid score in both runs.\n",
              (long long)json_integer_value(json_object_get(cmp, "personas")),
              (long long)json_integer_value(json_object_get(cmp, "profiles")));
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(cmp, "warnings"), i, w) sb_printf(&b, "\n**Warning:** %s\n",
                                                                          json_string_value(w));
    json_t *c;
    json_array_foreach(json_object_get(cmp, "comparisons"), i, c) {
        const char *run = json_string_value(json_object_get(c, "run"));
        sb_append(&b, "\n### ");
        report_md_cell(&b, run);
        sb_append(&b, " − ");
        report_md_cell(&b, base);
        sb_append(&b, "\n\n| | n | ");
        report_md_cell(&b, base);
        sb_append(&b, " | ");
        report_md_cell(&b, run);
        sb_printf(&b, " | B − A | %g%% interval | p |\n|---|---:|---:|---:|---:|---|---:|\n", 100 * level);
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(c, "turns"), k, t) {
            char label[32];
            snprintf(label, sizeof label, "AL(%lld)", (long long)json_integer_value(json_object_get(t, "turn")));
            put_row(&b, label, t, 3);
        }
        put_row(&b, "AVG", json_object_get(c, "avg"), 3);
        put_row(&b, "IR", json_object_get(c, "ir"), 4);
        put_row(&b, "N-IR", json_object_get(c, "n_ir"), 4);
    }
    json_t *bs = json_object_get(cmp, "bootstrap"), *pm = json_object_get(cmp, "permutation");
    sb_printf(&b, "\nInterval: %g%% paired cluster bootstrap, ", 100 * level);
    if (json_is_true(json_object_get(bs, "exact")))
        sb_printf(&b, "all %lld draws enumerated (exact). ",
                  (long long)json_integer_value(json_object_get(bs, "replicates")));
    else
        sb_printf(&b, "%lld Monte Carlo draws, seed %lld. ",
                  (long long)json_integer_value(json_object_get(bs, "replicates")),
                  (long long)json_integer_value(json_object_get(bs, "seed")));
    sb_append(&b, "Bold: the interval excludes 0. p: two-sided sign-flip permutation test, ");
    if (json_is_true(json_object_get(pm, "exact")))
        sb_printf(&b, "all %lld exchanges enumerated (exact).\n",
                  (long long)json_integer_value(json_object_get(pm, "draws")));
    else
        sb_printf(&b, "%lld Monte Carlo exchanges, seed %lld, p = (count + 1) / (draws + 1).\n",
                  (long long)json_integer_value(json_object_get(pm, "draws")),
                  (long long)json_integer_value(json_object_get(pm, "seed")));
    json_t *defs = json_object_get(cmp, "definitions");
    sb_append(&b, "\nDefinitions. Pairing: ");
    sb_append(&b, json_string_value(json_object_get(defs, "pairing")));
    sb_append(&b, ". ");
    sb_append(&b, json_string_value(json_object_get(defs, "diff")));
    sb_append(&b, ". Interval: ");
    sb_append(&b, json_string_value(json_object_get(defs, "interval")));
    sb_append(&b, ". p: ");
    sb_append(&b, json_string_value(json_object_get(defs, "p")));
    sb_append(&b, ".\n");
    return sb_take(&b);
}
