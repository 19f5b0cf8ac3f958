/* view: one self-contained HTML page to read a benchmark run, several runs
 * over the same personas, or a dialogues (trees) file — the conversations
 * next to their scores (`aloe view`, `aloe report --html`).
 *
 * Two steps. Gathering (view.c, view_trees.c) reads the outputs of aloe
 * bench and aloe dialogues into one JSON object, the page's data; every
 * field the page shows is checked, so a damaged file is an error naming
 * file:line and the field. Writing (view_html.c) puts that object into the
 * page template (view_page.html, compiled in) as a
 * <script type="application/json"> block, escaped so that no model output
 * can end the element; the page's script builds the DOM from it with
 * textContent only.
 *
 * The data object (what the page reads; `aloe_view` is its version):
 *   aloe_view 1; kind "runs" | "trees"; title; warnings[] (strings)
 *   kind "runs":
 *     runs[]      {name, source, models, complete, conversations, turns[]
 *                 {turn, al, n, ci95, invalid}, avg, ir, r2, n_ir, n_r2,
 *                 intervals (or null), judge, protocol, has_dialogues}:
 *                 what results.json says, nothing recomputed
 *     personas[]  {id, profile_index, personality_index, profile,
 *                 personality, runs: [per run: null (not in that run) or
 *                 {scores[], mean, turns: [{turn, user, user_raw?,
 *                 assistant, judge[] (every raw answer, re-asks included),
 *                 score, attempts}] or null (no dialogues.jsonl)}]}, in
 *                 the first run's persona order, then any others';
 *                 scores from results.json personas[] (else the
 *                 conversation's), mean = mean of the valid scores
 *     comparison  compare_runs' object (compare.h) or null;
 *     comparison_error  why there is none (a string) or null
 *   kind "trees":
 *     file, summary (FILE.summary.json's object, or null), judges
 *     {turns, both_verdicts, agreements, first_position_wins,
 *     agreement_rate, position_bias_rate} (dialogues_judge_counts over the
 *     file), trees[] {id, line, profile, personality, disagreements,
 *     turns: [{user, user_raw?, preferred, rejected, hinted?, plain?,
 *     chosen, inferred_profile, inferred_personality, judges, hinted_is,
 *     first: {raw[], verdict}, second: {raw[], verdict}}]} where first is
 *     the judge with the hinted reply shown first (A) and second with it
 *     shown second (B). */
#ifndef ALOE_ALOE_VIEW_H
#define ALOE_ALOE_VIEW_H

#include <jansson.h>

#include "aloe/report.h"
#include "base/err.h"
#include "base/mem.h"
#include "formats/jsonl.h"

/* One run of the page: its label, its output directory (or results.json)
 * and its parsed results.json (report_load_results). */
typedef struct ViewRun {
    const char *name;
    const char *source;
    const json_t *results;
} ViewRun;

/* The page's data for runs[0..n-1] (n >= 1): each run's dialogues.jsonl is
 * read from beside its results.json (absent: a warning, no conversations).
 * cmp is the paired comparison (compare_runs) or NULL with cmp_error saying
 * why (may be NULL). NULL with e set: a malformed dialogues.jsonl. */
json_t *view_runs_data(const ViewRun *runs, int n, const json_t *cmp, const char *cmp_error, Err *e);

/* The page's data for a dialogues trees file (aloe dialogues --out FILE),
 * with FILE.summary.json when it is there. */
json_t *view_trees_data(const char *path, Err *e);
/* The same over a buffer (name in messages); summary may be NULL. */
json_t *view_trees_parse(const char *name, const char *buf, size_t len, const json_t *summary, Err *e);

/* A run's dialogues.jsonl in memory: records checked and indexed by id.
 * Returns an object id -> the record's view form ({profile, personality,
 * turns[]}) or NULL with e set. */
json_t *view_run_dialogues_parse(const char *name, const char *buf, size_t len, Err *e);

/* Whether path looks like a dialogues trees file rather than a run: a file
 * whose first record has "conversations". */
int view_is_trees_file(const char *path);

/* The whole page: the template with the data and, for runs, the AL(k)
 * chart (an SVG document from report_svg; NULL for none). Caller frees. */
char *view_html(const json_t *data, const char *chart_svg);

/* Appends the JSON text s[0..n) so that it can stand inside a
 * <script type="application/json"> element: '<', '>', '&', U+2028 and
 * U+2029 become \u escapes (inside JSON strings, the only place a valid
 * JSON text holds them, they read back the same), and a byte that is not
 * valid UTF-8 becomes \ufffd. So no content can close the element or open
 * a comment in it. */
void view_escape_script_json(StrBuf *b, const char *s, size_t n);

/* The runs' page written to path (atomically): view_runs_data, the AL(k)
 * chart (report_svg, titled chart_title) and view_html. *warnings gets a
 * new array of what the reader should know (caller decrefs; the CLI shows
 * them). */
int view_write_runs(const char *path, const ViewRun *runs, int n, const json_t *cmp, const char *cmp_error,
                    const char *chart_title, json_t **warnings, Err *e);
/* The same for a trees file's data (view_trees_data). */
int view_write_page(const char *path, const json_t *data, const char *chart_svg, Err *e);

/* Replaces each byte sequence that is not valid UTF-8 with U+FFFD (EF BF
 * BD), so that a damaged file still shows; returns how many (the text is
 * rewritten into a new buffer *out, *out_len; caller frees). */
long view_repair_utf8(const char *s, size_t n, char **out, size_t *out_len);

/* Shared by view*.c. */
/* A JSONL buffer read as the page shows it: bytes that are not UTF-8 become
 * U+FFFD (counted in a warning), a torn last line (no newline, not JSON:
 * an interrupted run) is left out with a warning; any other line that does
 * not parse is an error naming file:line. Returns jsonl_foreach's count. */
long view_read_jsonl(const char *name, const char *buf, size_t len, json_t *warnings, JsonlFn fn, void *ctx, Err *e);
/* A JSON string of s with any invalid UTF-8 repaired (jansson refuses it). */
json_t *view_string(const char *s);
/* Appends a formatted warning to the array. */
void view_warn(json_t *warnings, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
