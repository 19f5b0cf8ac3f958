/* libFuzzer harness for results.json as `aloe report` reads it
 * (aloe/report.h): any bytes are refused with an error naming the file, or
 * checked and rendered (run Markdown, comparison table, SVG chart) without a
 * crash. Built and run by scripts/fuzz.sh (not by make test). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/report.h"

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
    free(md);
    free(cmp);
    free(svg);
    free(name);
    json_decref(r);
    return 0;
}
