/* report: benchmark results for people: Markdown tables and an SVG chart.
 *
 * Input is the results.json object of one or more runs (bench.h). The chart
 * is hand-written SVG 1.1 (no dependencies): AL(k) on a fixed 1-5 axis so
 * charts of different runs compare at a glance, 95% interval error bars,
 * gridlines, ticks and a legend. */
#ifndef ALOE_ALOE_REPORT_H
#define ALOE_ALOE_REPORT_H

#include <jansson.h>

#include "base/err.h"
#include "base/mem.h"

typedef struct ReportSeries {
    const char *name;      /* legend / table label */
    const json_t *results; /* a results.json object */
} ReportSeries;

/* Reads DIR/results.json (or the file itself when path is not a directory).
 * Every field the reports read is checked: a wrong type is an error naming
 * the file and the field ("runs/x/results.json: turns[3].al: expected a
 * number or null, got a string"). */
json_t *report_load_results(const char *path, Err *e);
/* The same over a buffer; `name` is used in messages. */
json_t *report_parse_results(const char *name, const char *buf, size_t len, Err *e);
/* The label of a run: its evaluated model's name, else the directory's base
 * name (caller frees). */
char *report_run_name(const json_t *results, const char *dir);

/* report.md of one run: models, per-turn table, summary, judge counts,
 * usage, settings, definitions and the chart (al.svg). Caller frees. */
char *report_run_markdown(const json_t *results);
/* Several runs side by side: AL(1..T), AVG, IR, N-IR, R2, invalid judge
 * replies, then the definitions. Caller frees. */
char *report_compare_markdown(const ReportSeries *runs, int n);
/* Appends s as one Markdown table cell: '|' escaped, line breaks as spaces
 * (a run's name comes from the user). */
void report_md_cell(StrBuf *b, const char *s);
/* One chart with every run's AL(k) curve. Caller frees. */
char *report_svg(const ReportSeries *runs, int n, const char *title);

#endif
