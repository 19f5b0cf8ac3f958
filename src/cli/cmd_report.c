/* aloe report: several benchmark runs side by side (aloe/report.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/compare.h"
#include "aloe/report.h"
#include "aloe/view.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"

/* --names A,B,C: one non-empty, distinct label per run (the labels are
 * returned owned; the runs free them). */
static int split_names(const char *list, int n, char ***out, Err *e) {
    char **v = xcalloc((size_t)n, sizeof *v);
    int k = 0;
    for (const char *s = list;; k++) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (k < n) v[k] = xstrndup(s, len);
        if (!len) {
            err_set(e, ERR_ARG, "--names: label %d is empty", k + 1);
            break;
        }
        if (!end) break;
        s = end + 1;
    }
    int rc = e->code ? -1 : 0;
    if (!rc && k + 1 != n) rc = err_set(e, ERR_ARG, "--names: %d labels for %d runs", k + 1, n);
    for (int i = 0; !rc && i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(v[i], v[j])) rc = err_set(e, ERR_ARG, "--names: \"%s\" is given twice", v[i]);
    if (rc) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *out = NULL, *svg = NULL, *html = NULL, *json_out = NULL, *names = NULL, *title = "ALOE benchmark: AL(k) with 95% confidence intervals";
    long replicates = STATS_REPLICATES, permutations = STATS_PERMUTATIONS, seed = STATS_SEED;
    int common = 0;
    char **labels = NULL; /* --names, owned by runs[] once set */
    ArgSpec specs[] = {
        {"--out", "-o", ARG_STR, &out, "FILE.md", "write the Markdown table here instead of stdout", 0, 0},
        {"--svg", NULL, ARG_STR, &svg, "FILE.svg", "also write one chart with every run's AL(k) curve", 0, 0},
        {"--html", NULL, ARG_STR, &html, "FILE.html",
         "also write the page of aloe view: the runs, the paired differences and every conversation", 0, 0},
        {"--title", NULL, ARG_STR, &title, "TEXT", "the chart's title", 0, 0},
        {"--json", NULL, ARG_STR, &json_out, "FILE",
         "also write the paired comparison (differences, intervals, p-values, definitions) as JSON", 0, 0},
        {"--common", NULL, ARG_FLAG, &common, NULL,
         "runs whose personas differ: pair over the personas every run has (with a warning) instead of refusing", 0,
         0},
        {"--replicates", NULL, ARG_LONG, &replicates, "B",
         "paired bootstrap draws (exact enumeration instead when profiles^profiles <= B)", 0, 0},
        {"--permutations", NULL, ARG_LONG, &permutations, "N",
         "Monte Carlo sign flips when 2^profiles > 2^20 (else all are enumerated)", 0, 0},
        {"--seed", NULL, ARG_LONG, &seed, "S", "seed of the bootstrap and Monte Carlo draws", 0, 0},
        {"--names", NULL, ARG_STR, &names, "A,B,...",
         "the runs' labels, in order, one per run (default: each run's evaluated model)", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0}};
    ArgCommand cmd = {"report", "DIR... [--out FILE.md] [--svg FILE.svg] [--json FILE.json] [--html FILE.html]",
                      "Compares benchmark runs (output directories of aloe bench, or their results.json): a "
                      "Markdown table of AL(1..N), AVG, IR, N-IR, R2 and invalid judge scores, and optionally an SVG "
                      "chart of all AL(k) curves. With two or more runs over the same personas, each later run is "
                      "paired with the first: per turn and for AVG, IR and N-IR the difference B - A, a 95% "
                      "paired bootstrap interval clustered by profile and a sign-flip permutation p-value. Runs "
                      "whose personas differ are refused (see --common). Runs are named by their evaluated model "
                      "(by directory when two runs share a model), or by --names.",
                      "aloe report runs/base runs/dpo --out compare.md --svg compare.svg --json compare.json", 1, -1};
    char **dirs = xcalloc((size_t)argc + 1, sizeof *dirs);
    int n = 0;
    Err e = {0};
    int rc = args_parse(&cmd, specs, argc, argv, dirs, &n, &e);
    if (rc) {
        free(dirs);
        return rc > 0 ? 0 : cli_fail(&e);
    }
    ReportSeries *runs = xcalloc((size_t)n, sizeof *runs);
    json_t **res = xcalloc((size_t)n, sizeof *res);
    int status = 1;
    for (int i = 0; i < n; i++)
        if (!(res[i] = report_load_results(dirs[i], &e))) {
            status = cli_fail(&e);
            goto done;
        }
    if (names && split_names(names, n, &labels, &e)) {
        status = cli_fail(&e);
        goto done;
    }
    for (int i = 0; labels && i < n; i++) runs[i] = (ReportSeries){labels[i], res[i]};
    for (int i = 0; !labels && i < n; i++) {
        char *name = report_run_name(res[i], dirs[i]);
        int dup = 0;
        for (int k = 0; k < n; k++) {
            char *other = k == i ? NULL : report_run_name(res[k], dirs[k]);
            dup |= other && !strcmp(other, name);
            free(other);
        }
        if (dup) { /* the same model twice: tell the runs apart by directory */
            json_t *empty = json_object();
            char *base = report_run_name(empty, dirs[i]);
            char *both = xasprintf("%s (%s)", name, base);
            json_decref(empty);
            free(base);
            free(name);
            name = both;
        }
        runs[i] = (ReportSeries){name, res[i]};
    }
    if (replicates < 1 || replicates > STATS_MAX_REPLICATES || permutations < 1 || seed < 0) {
        if (replicates < 1 || replicates > STATS_MAX_REPLICATES)
            err_set(&e, ERR_ARG, "--replicates: expected 1 to %ld (the draws are kept to be sorted), got %ld",
                    STATS_MAX_REPLICATES, replicates);
        else if (permutations < 1) err_set(&e, ERR_ARG, "--permutations: expected at least 1, got %ld", permutations);
        else err_set(&e, ERR_ARG, "--seed: expected 0 or more, got %ld", seed);
        status = cli_fail(&e);
        goto done;
    }
    /* The paired comparison: refused (exit 1) when it cannot be made and was
     * asked for (--json) or the persona sets differ; runs from before
     * personas[] get the table and a note. */
    json_t *cmp = NULL;
    int paired = n >= 2 || json_out;
    for (int i = 0; i < n; i++) paired &= json_out || compare_has_personas(res[i]);
    if (paired) {
        CompareOptions co = compare_options_default();
        co.common = common;
        co.stats.replicates = replicates;
        co.stats.permutations = permutations;
        co.stats.seed = (uint64_t)seed;
        if (!(cmp = compare_runs(runs, n, &co, &e))) {
            status = cli_fail(&e);
            goto done;
        }
        size_t wi;
        json_t *w;
        json_array_foreach(json_object_get(cmp, "warnings"), wi, w) fprintf(stderr, "warning: %s\n",
                                                                             json_string_value(w));
    }
    char *md = report_compare_markdown(runs, n);
    if (cmp) {
        char *pm = compare_markdown(cmp);
        char *both = xasprintf("%s%s", md, pm);
        free(pm);
        free(md);
        md = both;
    } else if (n >= 2) {
        char *both = xasprintf("%s\nPaired differences: not computed; a run's results.json has no per-persona "
                               "scores (written before aloe kept them; rerun `aloe bench` with the same --out to "
                               "rewrite it).\n",
                               md);
        free(md);
        md = both;
    }
    if (out) {
        rc = file_write_atomic(out, md, strlen(md), &e);
    } else {
        fputs(md, stdout);
        rc = fflush(stdout) ? err_set(&e, ERR_IO, "stdout: write failed") : 0;
    }
    free(md);
    if (!rc && json_out) {
        char *js = json_dumps(cmp, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        char *text = xasprintf("%s\n", js);
        rc = file_write_atomic(json_out, text, strlen(text), &e);
        free(text);
        free(js);
    }
    if (!rc && html) {
        ViewRun *vr = xcalloc((size_t)n, sizeof *vr);
        for (int i = 0; i < n; i++) vr[i] = (ViewRun){runs[i].name, dirs[i], res[i]};
        json_t *warnings = NULL;
        rc = view_write_runs(html, vr, n, cmp, cmp || n < 2 ? NULL : "a run's results.json has no per-persona scores",
                             title, &warnings, &e);
        size_t wi;
        json_t *w;
        json_array_foreach(warnings, wi, w) fprintf(stderr, "warning: %s\n", json_string_value(w));
        json_decref(warnings);
        free(vr);
    }
    json_decref(cmp);
    if (!rc && svg) {
        char *s = report_svg(runs, n, title);
        rc = file_write_atomic(svg, s, strlen(s), &e);
        free(s);
    }
    status = rc ? cli_fail(&e) : 0;
done:
    for (int i = 0; i < n; i++) {
        free((char *)runs[i].name);
        json_decref(res[i]);
    }
    free(labels);
    free(runs);
    free(res);
    free(dirs);
    return status;
}
