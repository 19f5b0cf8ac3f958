/* libFuzzer harness for results.json as `aloe report` reads it
 * (aloe/report.h): any bytes are refused with an error naming the file, or
 * checked and rendered (run Markdown, comparison table, SVG chart) without a
 * crash; a file with personas[] is also paired with itself and with a copy
 * that lacks its first persona (aloe/compare.h), whose refusal names the
 * run. Monte Carlo with few draws keeps an input fast (the exact modes are
 * tested by tests/aloe/test_stats.c). Built and run by scripts/fuzz.sh (not
 * by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/compare.h"
#include "aloe/report.h"

static void pair_with(const json_t *r, const json_t *other, int common) {
    ReportSeries s[2] = {{"a", r}, {"b", other}};
    CompareOptions o = compare_options_default();
    o.common = common;
    o.stats.bootstrap = o.stats.permutation = STATS_MONTE_CARLO;
    o.stats.replicates = o.stats.permutations = 16;
    Err e = {0};
    json_t *c = compare_runs(s, 2, &o, &e);
    if (!c) {
        if (!e.msg[0]) abort(); /* a refusal always says why */
        return;
    }
    char *md = compare_markdown(c);
    if (!md || !strstr(md, "Paired differences")) abort();
    free(md);
    json_decref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Err e = {0};
    json_t *r = report_parse_results("results.json", (const char *)data, size, &e);
    if (!r) {
        if (strncmp(e.msg, "results.json", 12) != 0) abort();
        return 0;
    }
    char *name = report_run_name(r, "runs/x/");
    ReportSeries s[2] = {{name, r}, {"other", r}};
    char *md = report_run_markdown(r), *cmp = report_compare_markdown(s, 2), *svg = report_svg(s, 2, "t");
    if (!md || !cmp || !svg || !strstr(svg, "</svg>")) abort();
    if (compare_has_personas(r)) {
        pair_with(r, r, 0);
        json_t *fewer = json_deep_copy(r);
        json_array_remove(json_object_get(fewer, "personas"), 0);
        pair_with(r, fewer, 0);
        pair_with(r, fewer, 1);
        json_decref(fewer);
    }
    free(md);
    free(cmp);
    free(svg);
    free(name);
    json_decref(r);
    return 0;
}
