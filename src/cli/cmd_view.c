/* aloe view: one self-contained HTML page of benchmark runs or of a
 * dialogues trees file (aloe/view.h). Wiring only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/compare.h"
#include "aloe/personas.h"
#include "aloe/report.h"
#include "aloe/view.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"

static void show_warnings(const json_t *warnings) {
    size_t i;
    json_t *w;
    json_array_foreach(warnings, i, w) fprintf(stderr, "warning: %s\n", json_string_value(w));
}

static int view_trees(const char *path, const char *out, Err *e) {
    json_t *data = view_trees_data(path, e);
    if (!data) return -1;
    show_warnings(json_object_get(data, "warnings"));
    char *dest = out ? xstrdup(out) : personas_sidecar_path(path, ".html");
    int rc = view_write_page(dest, data, NULL, e);
    if (!rc) printf("wrote %s (%zu trees)\n", dest, json_array_size(json_object_get(data, "trees")));
    free(dest);
    json_decref(data);
    return rc;
}

/* Runs are named as aloe report names them: by evaluated model, and by
 * "model (directory)" when two runs share a model. */
static char *run_label(json_t **res, char **dirs, int n, int i) {
    char *name = report_run_name(res[i], dirs[i]);
    int dup = 0;
    for (int k = 0; k < n && !dup; k++) {
        char *other = k == i ? NULL : report_run_name(res[k], dirs[k]);
        dup = other && !strcmp(other, name);
        free(other);
    }
    if (!dup) return name;
    json_t *empty = json_object();
    char *base = report_run_name(empty, dirs[i]), *both = xasprintf("%s (%s)", name, base);
    json_decref(empty);
    free(base);
    free(name);
    return both;
}

static int view_runs(char **dirs, int n, const char *out, int common, Err *e) {
    json_t **res = xcalloc((size_t)n, sizeof *res);
    ViewRun *runs = xcalloc((size_t)n, sizeof *runs);
    ReportSeries *series = xcalloc((size_t)n, sizeof *series);
    json_t *cmp = NULL, *warnings = NULL;
    char *dest = NULL, *why = NULL;
    int rc = 0, all_personas = 1;
    for (int i = 0; i < n && !rc; i++)
        if (!(res[i] = report_load_results(dirs[i], e))) rc = -1;
    if (rc) goto done;
    for (int i = 0; i < n; i++) {
        char *name = run_label(res, dirs, n, i);
        runs[i] = (ViewRun){name, dirs[i], res[i]};
        series[i] = (ReportSeries){name, res[i]};
        all_personas &= compare_has_personas(res[i]);
    }
    /* The paired comparison as aloe report makes it; a page is still worth
     * having without one, so its absence is a warning and a note. */
    if (n >= 2 && all_personas) {
        CompareOptions co = compare_options_default();
        co.common = common;
        Err ce = {0};
        if (!(cmp = compare_runs(series, n, &co, &ce))) why = xstrdup(ce.msg);
    } else if (n >= 2) {
        why = xstrdup("a run's results.json has no per-persona scores (written before aloe kept them; rerun aloe "
                      "bench with the same --out to rewrite it)");
    }
    if (why) fprintf(stderr, "warning: paired differences not computed: %s\n", why);
    if (out) {
        dest = xstrdup(out);
    } else if (n == 1 && file_is_dir(dirs[0])) {
        dest = path_join(dirs[0], "view.html");
    } else {
        rc = err_set(e, ERR_ARG, "--out FILE.html is needed for %s", n > 1 ? "several runs" : "a results.json file");
        goto done;
    }
    rc = view_write_runs(dest, runs, n, cmp, why, "ALOE benchmark: AL(k) with 95% confidence intervals", &warnings, e);
    show_warnings(warnings);
    if (!rc) printf("wrote %s (%d run%s)\n", dest, n, n == 1 ? "" : "s");
done:
    for (int i = 0; i < n; i++) {
        free((char *)runs[i].name);
        json_decref(res[i]);
    }
    json_decref(cmp);
    json_decref(warnings);
    free(why);
    free(dest);
    free(series);
    free(runs);
    free(res);
    return rc;
}

int cmd_view(int argc, char **argv) {
    const char *out = NULL;
    int common = 0;
    ArgSpec specs[] = {
        {"--out", "-o", ARG_STR, &out, "FILE.html",
         "where to write the page (default: DIR/view.html for one run, FILE.html beside a trees FILE.jsonl)", 0, 0},
        {"--common", NULL, ARG_FLAG, &common, NULL,
         "runs whose personas differ: pair over the personas every run has (as aloe report --common)", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0}};
    ArgCommand cmd = {"view", "RUN_DIR... [--out FILE.html] | TREES.jsonl [--out FILE.html]",
                      "Writes one self-contained HTML page (no network, no external files; open it from disk) to "
                      "read a benchmark run next to its scores: AL(k) with intervals, AVG/IR/N-IR, the judge's "
                      "invalid counts, a sortable table of the personas and, on a click, each conversation with "
                      "the judge's scores and raw answers. Several runs over the same personas: the curves "
                      "overlaid, the paired differences per turn and the replies side by side. A dialogues "
                      "trees file: each tree's preferred and rejected replies, the inferred persona, the branch "
                      "taken and the judge's verdicts in both orders, filterable. Keys: j/k next/previous, n/p "
                      "next/previous turn; #ID in the URL opens one conversation.",
                      "aloe view runs/base runs/dpo --out compare.html", 1, -1};
    char **pos = xcalloc((size_t)argc + 1, sizeof *pos);
    int n = 0;
    Err e = {0};
    int rc = args_parse(&cmd, specs, argc, argv, pos, &n, &e);
    if (rc) {
        free(pos);
        return rc > 0 ? 0 : cli_fail(&e);
    }
    int trees = 0;
    for (int i = 0; i < n; i++) trees += view_is_trees_file(pos[i]);
    if (trees && n > 1)
        rc = err_set(&e, ERR_ARG, "a dialogues trees file is viewed on its own: give one file, or run directories");
    else
        rc = trees ? view_trees(pos[0], out, &e) : view_runs(pos, n, out, common, &e);
    free(pos);
    return rc ? cli_fail(&e) : 0;
}
