/* aloe report: several benchmark runs side by side (aloe/report.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/report.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "cli/args.h"
#include "cli/commands.h"

int cmd_report(int argc, char **argv) {
    const char *out = NULL, *svg = NULL, *title = "ALOE benchmark: AL(k) with 95% confidence intervals";
    ArgSpec specs[] = {
        {"--out", "-o", ARG_STR, &out, "FILE.md", "write the Markdown table here instead of stdout", 0, 0},
        {"--svg", NULL, ARG_STR, &svg, "FILE.svg", "also write one chart with every run's AL(k) curve", 0, 0},
        {"--title", NULL, ARG_STR, &title, "TEXT", "the chart's title", 0, 0},
        {NULL, NULL, 0, NULL, NULL, NULL, 0, 0}};
    ArgCommand cmd = {"report", "DIR... [--out FILE.md] [--svg FILE.svg]",
                      "Compares benchmark runs (output directories of aloe bench, or their results.json): a "
                      "Markdown table of AL(1..N), AVG, IR, N-IR, R2 and invalid judge scores, and optionally an SVG "
                      "chart of all AL(k) curves. Runs are named by their evaluated model (by directory when two "
                      "runs share a model).",
                      "aloe report runs/llama runs/qwen --out compare.md --svg compare.svg", 1, -1};
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
    for (int i = 0; i < n; i++) {
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
    char *md = report_compare_markdown(runs, n);
    if (out) {
        rc = file_write_atomic(out, md, strlen(md), &e);
    } else {
        fputs(md, stdout);
        rc = fflush(stdout) ? err_set(&e, ERR_IO, "stdout: write failed") : 0;
    }
    free(md);
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
    free(runs);
    free(res);
    free(dirs);
    return status;
}
