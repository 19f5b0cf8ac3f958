#include "aloe/report.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/jsonl.h"

/* ---- reading results.json: every field the reports use is checked, so a
 * damaged or hand-edited file is an error naming the field, not a table of
 * zeros. ---- */

enum { NUM_OR_NULL, INTEGER, COUNT, BOOLEAN, STRING, OBJECT };

static const char *const kind_names[] = {"a number or null", "an integer", "a non-negative integer", "true or false",
                                         "a string", "an object"};

static int kind_ok(const json_t *v, int kind) {
    switch (kind) {
    case NUM_OR_NULL: return json_is_number(v) || json_is_null(v);
    case INTEGER: return json_is_integer(v);
    case COUNT: return json_is_integer(v) && json_integer_value(v) >= 0;
    case BOOLEAN: return json_is_boolean(v);
    case STRING: return json_is_string(v);
    default: return json_is_object(v);
    }
}

/* Checks o[key] (absent is fine unless required); `where` prefixes the field. */
static int check_field(const char *file, const char *where, const json_t *o, const char *key, int kind, int required,
                       Err *e) {
    json_t *v = json_object_get(o, key);
    if (!v && !required) return 0;
    if (v && kind_ok(v, kind)) return 0;
    return err_set(e, ERR_PARSE, "%s: %s%s%s: expected %s, %s%s", file, where, *where ? "." : "", key,
                   kind_names[kind], v ? "got " : "", v ? json_type_name(v) : "it is missing");
}

/* personas[]: what `aloe report` pairs runs by. Each id once, scores as
 * many as turns[], each 1-5 or null. */
static int check_personas(const char *file, const json_t *r, Err *e) {
    json_t *ps = json_object_get(r, "personas");
    if (!ps) return 0;
    if (!json_is_array(ps))
        return err_set(e, ERR_PARSE, "%s: personas: expected a list, got %s", file, json_type_name(ps));
    size_t T = json_array_size(json_object_get(r, "turns")), i;
    json_t *p, *seen = json_object();
    char where[48];
    int rc = 0;
    json_array_foreach(ps, i, p) {
        snprintf(where, sizeof where, "personas[%zu]", i);
        if (!json_is_object(p)) {
            rc = err_set(e, ERR_PARSE, "%s: %s: expected an object, got %s", file, where, json_type_name(p));
            break;
        }
        if (check_field(file, where, p, "id", STRING, 1, e) || check_field(file, where, p, "profile_index", COUNT, 1, e) ||
            check_field(file, where, p, "personality_index", COUNT, 1, e)) {
            rc = -1;
            break;
        }
        const char *id = json_string_value(json_object_get(p, "id"));
        if (json_object_get(seen, id)) {
            rc = err_set(e, ERR_PARSE, "%s: %s.id: \"%.100s\" appears twice", file, where, id);
            break;
        }
        json_object_set_new(seen, id, json_true());
        json_t *sc = json_object_get(p, "scores");
        if (!json_is_array(sc) || json_array_size(sc) != T) {
            rc = err_set(e, ERR_PARSE, "%s: %s.scores: expected a list of %zu scores (one per turn), got %s", file,
                         where, T, json_is_array(sc) ? "another length" : sc ? json_type_name(sc) : "nothing");
            break;
        }
        size_t k;
        json_t *v;
        json_array_foreach(sc, k, v) {
            if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 5))
                continue;
            rc = err_set(e, ERR_PARSE, "%s: %s.scores[%zu]: expected an integer from 1 to 5 or null, got %s", file,
                         where, k, json_type_name(v));
            break;
        }
        if (rc) break;
    }
    json_decref(seen);
    return rc;
}

/* intervals: {avg, ir, n_ir: {lo, hi, defined}, method, exact, replicates,
 * seed, level, clusters}. */
static int check_intervals(const char *file, const json_t *r, Err *e) {
    json_t *iv = json_object_get(r, "intervals");
    if (!iv) return 0;
    if (check_field(file, "", r, "intervals", OBJECT, 0, e)) return -1;
    static const char *const stats[] = {"avg", "ir", "n_ir"};
    for (int k = 0; k < 3; k++) {
        char where[32];
        snprintf(where, sizeof where, "intervals.%s", stats[k]);
        json_t *o = json_object_get(iv, stats[k]);
        if (check_field(file, "intervals", iv, stats[k], OBJECT, 1, e) ||
            check_field(file, where, o, "lo", NUM_OR_NULL, 1, e) || check_field(file, where, o, "hi", NUM_OR_NULL, 1, e) ||
            check_field(file, where, o, "defined", COUNT, 0, e))
            return -1;
    }
    if (check_field(file, "intervals", iv, "method", STRING, 1, e) ||
        check_field(file, "intervals", iv, "replicates", COUNT, 1, e) ||
        check_field(file, "intervals", iv, "seed", COUNT, 1, e) || check_field(file, "intervals", iv, "exact", BOOLEAN, 0, e) ||
        check_field(file, "intervals", iv, "level", NUM_OR_NULL, 0, e) ||
        check_field(file, "intervals", iv, "clusters", COUNT, 0, e))
        return -1;
    return 0;
}

static int check_results(const char *file, const json_t *r, Err *e) {
    if (!json_is_object(r) || !json_is_array(json_object_get(r, "turns")))
        return err_set(e, ERR_PARSE, "%s: not a benchmark results file (expected an object with \"turns\")", file);
    json_t *turns = json_object_get(r, "turns"), *t;
    size_t i;
    char where[48];
    json_array_foreach(turns, i, t) {
        snprintf(where, sizeof where, "turns[%zu]", i);
        if (!json_is_object(t))
            return err_set(e, ERR_PARSE, "%s: %s: expected an object, got %s", file, where, json_type_name(t));
        if (check_field(file, where, t, "turn", INTEGER, 1, e) || check_field(file, where, t, "al", NUM_OR_NULL, 1, e) ||
            check_field(file, where, t, "n", COUNT, 1, e) || check_field(file, where, t, "ci95", NUM_OR_NULL, 0, e) ||
            check_field(file, where, t, "sd", NUM_OR_NULL, 0, e) || check_field(file, where, t, "invalid", COUNT, 0, e))
            return -1;
    }
    static const char *const metrics[] = {"avg", "ir", "r2", "n_ir", "n_r2"};
    for (int k = 0; k < 5; k++)
        if (check_field(file, "", r, metrics[k], NUM_OR_NULL, 0, e)) return -1;
    static const char *const objects[] = {"models", "conversations", "judge", "usage", "settings"};
    for (int k = 0; k < 5; k++)
        if (check_field(file, "", r, objects[k], OBJECT, 0, e)) return -1;
    if (check_field(file, "", r, "complete", BOOLEAN, 0, e)) return -1;
    static const char *const roles[] = {"model", "user", "judge"};
    for (int k = 0; k < 3; k++)
        if (check_field(file, "models", json_object_get(r, "models"), roles[k], STRING, 0, e)) return -1;
    static const char *const conv[] = {"done", "total"};
    for (int k = 0; k < 2; k++)
        if (check_field(file, "conversations", json_object_get(r, "conversations"), conv[k], COUNT, 0, e)) return -1;
    static const char *const judge[] = {"judged_turns", "retried", "invalid", "replies_without_score", "max_attempts"};
    for (int k = 0; k < 5; k++)
        if (check_field(file, "judge", json_object_get(r, "judge"), judge[k], COUNT, 0, e)) return -1;
    const char *role;
    json_t *u;
    json_object_foreach(json_object_get(r, "usage"), role, u) {
        char uw[160];
        snprintf(uw, sizeof uw, "usage.%.100s", role);
        if (!json_is_object(u))
            return err_set(e, ERR_PARSE, "%s: %s: expected an object, got %s", file, uw, json_type_name(u));
        static const char *const counts[] = {"requests", "cached", "prompt_tokens", "completion_tokens"};
        for (int k = 0; k < 4; k++)
            if (check_field(file, uw, u, counts[k], COUNT, 0, e)) return -1;
    }
    json_t *tot = json_object_get(r, "totals");
    if (check_field(file, "", r, "totals", OBJECT, 0, e) || check_field(file, "totals", tot, "invocations", COUNT, 0, e) ||
        check_field(file, "totals", tot, "wall_s", NUM_OR_NULL, 0, e) ||
        check_field(file, "totals", tot, "requests", OBJECT, 0, e))
        return -1;
    json_object_foreach(json_object_get(tot, "requests"), role, u) {
        char uw[160];
        snprintf(uw, sizeof uw, "totals.requests.%.100s", role);
        if (!json_is_object(u))
            return err_set(e, ERR_PARSE, "%s: %s: expected an object, got %s", file, uw, json_type_name(u));
        static const char *const counts[] = {"requests", "cache_hits", "retries", "errors"};
        for (int k = 0; k < 4; k++)
            if (check_field(file, uw, u, counts[k], COUNT, 0, e)) return -1;
    }
    return check_personas(file, r, e) || check_intervals(file, r, e) ? -1 : 0;
}

json_t *report_parse_results(const char *name, const char *buf, size_t len, Err *e) {
    json_error_t jerr;
    json_t *r = json_loadb(buf, len, 0, &jerr);
    if (!r) {
        err_set(e, ERR_PARSE, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (check_results(name, r, e)) {
        json_decref(r);
        return NULL;
    }
    return r;
}

json_t *report_load_results(const char *path, Err *e) {
    char *file = file_is_dir(path) ? path_join(path, "results.json") : xstrdup(path);
    char *buf = NULL;
    size_t len = 0;
    json_t *r = NULL;
    if (!file_exists(file))
        err_set(e, ERR_NOTFOUND, "%s: not found (is %s a benchmark output directory?)", file, path);
    else if (!file_read_all(file, &buf, &len, e))
        r = report_parse_results(file, buf, len, e);
    free(buf);
    free(file);
    return r;
}

char *report_run_name(const json_t *results, const char *dir) {
    const char *m = json_string_value(json_object_get(json_object_get(results, "models"), "model"));
    if (m && *m) return xstrdup(m);
    if (!dir) return xstrdup("run");
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    const char *start = dir;
    for (size_t i = 0; i < n; i++)
        if (dir[i] == '/' && i + 1 < n) start = dir + i + 1;
    return xstrndup(start, n - (size_t)(start - dir));
}

/* A number of results.json, NAN when null or absent. */
static double num(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void put_num(StrBuf *b, double v, int prec) {
    if (isnan(v))
        sb_append(b, "–");
    else
        sb_printf(b, "%.*f", prec, v);
}

/* Markdown table cells must not hold '|' or newlines. */
void report_md_cell(StrBuf *b, const char *s) {
    for (; s && *s; s++) {
        if (*s == '|')
            sb_append(b, "\\|");
        else if (*s == '\n' || *s == '\r')
            sb_appendc(b, ' ');
        else
            sb_appendc(b, *s);
    }
}

/* A bootstrap interval "[lo, hi]" (– for an undefined bound). */
static void put_interval(StrBuf *b, const json_t *iv, int prec) {
    sb_appendc(b, '[');
    put_num(b, num(iv, "lo"), prec);
    sb_append(b, ", ");
    put_num(b, num(iv, "hi"), prec);
    sb_appendc(b, ']');
}

/* The run's bootstrap intervals under the summary table, and what they are. */
static void put_intervals(StrBuf *b, const json_t *iv) {
    if (!iv) return;
    sb_append(b, "| 95% interval | ");
    put_interval(b, json_object_get(iv, "avg"), 3);
    sb_append(b, " | ");
    put_interval(b, json_object_get(iv, "ir"), 4);
    sb_append(b, " | | ");
    put_interval(b, json_object_get(iv, "n_ir"), 4);
    sb_append(b, " | |\n\n");
    long long reps = (long long)json_integer_value(json_object_get(iv, "replicates"));
    sb_printf(b,
              "95%% intervals: percentile bootstrap clustered by profile — the %lld profiles are drawn with "
              "replacement, each bringing all its personas, AL(k) recomputed over the drawn personas' valid scores, "
              "then AVG, IR and N-IR; ",
              (long long)json_integer_value(json_object_get(iv, "clusters")));
    if (json_is_true(json_object_get(iv, "exact")))
        sb_printf(b, "all %lld equally likely draws enumerated (exact).\n", reps);
    else
        sb_printf(b, "%lld Monte Carlo draws, seed %lld.\n", reps,
                  (long long)json_integer_value(json_object_get(iv, "seed")));
}

/* `ci_label`: where the 95% interval appears ("±" for the run table's
 * column, the chart's error bars in a comparison). */
static void put_definitions(StrBuf *b, const char *ci_label) {
    sb_append(b,
              "AL(k): mean judge score (1–5) at turn k over valid scores (judge replies without a valid score "
              "after all attempts are left out and counted). ");
    sb_printf(b, "%s: half-width of the 95%% t-interval, t(0.975, n−1)·sd/√n. ", ci_label);
    sb_append(b, "AVG: mean of AL(k). IR: least-squares slope of AL(k) on k; R²: of that line. "
              "N-IR: the slope of AL(k)/AL(1) on k (AL normalised by the first turn); N-R² equals R².\n");
}

/* Counts are checked non-negative; a hand-edited file must not overflow a sum. */
static long long add_sat(long long a, long long b) { return b > 0 && a > LLONG_MAX - b ? LLONG_MAX : a + b; }

char *report_run_markdown(const json_t *r) {
    StrBuf b;
    sb_init(&b);
    json_t *models = json_object_get(r, "models");
    const char *model = json_string_value(json_object_get(models, "model"));
    sb_printf(&b, "# ALOE benchmark: %s\n\n", model ? model : "results");
    if (models) {
        const char *user = json_string_value(json_object_get(models, "user"));
        const char *judge = json_string_value(json_object_get(models, "judge"));
        sb_printf(&b, "Evaluated model: `%s`; user simulator: `%s`; judge: `%s`.\n\n", model ? model : "?",
                  user ? user : "?", judge ? judge : "?");
    }
    json_t *conv = json_object_get(r, "conversations");
    long done = (long)json_integer_value(json_object_get(conv, "done"));
    long total = (long)json_integer_value(json_object_get(conv, "total"));
    sb_printf(&b, "Conversations: %ld of %ld%s.\n\n", done, total,
              json_is_true(json_object_get(r, "complete")) ? "" : " (**incomplete**: rerun the same command to finish)");
    sb_append(&b, "| turn | AL(k) | ±95% | n | invalid |\n|---:|---:|---:|---:|---:|\n");
    json_t *turns = json_object_get(r, "turns");
    size_t i;
    json_t *t;
    json_array_foreach(turns, i, t) {
        sb_printf(&b, "| %d | ", (int)json_integer_value(json_object_get(t, "turn")));
        put_num(&b, num(t, "al"), 3);
        sb_append(&b, " | ");
        put_num(&b, num(t, "ci95"), 3);
        sb_printf(&b, " | %ld | %ld |\n", (long)json_integer_value(json_object_get(t, "n")),
                  (long)json_integer_value(json_object_get(t, "invalid")));
    }
    sb_append(&b, "\n| | AVG | IR | R² | N-IR | N-R² |\n|---|---:|---:|---:|---:|---:|\n| value | ");
    put_num(&b, num(r, "avg"), 3);
    sb_append(&b, " | ");
    put_num(&b, num(r, "ir"), 4);
    sb_append(&b, " | ");
    put_num(&b, num(r, "r2"), 3);
    sb_append(&b, " | ");
    put_num(&b, num(r, "n_ir"), 4);
    sb_append(&b, " | ");
    put_num(&b, num(r, "n_r2"), 3);
    sb_append(&b, " |\n");
    put_intervals(&b, json_object_get(r, "intervals"));
    json_t *ps = json_object_get(r, "personas");
    if (json_is_array(ps))
        sb_printf(&b,
                  "\nPer-persona scores: `personas` in results.json (%zu finished personas), so `aloe report` can "
                  "pair this run with another over the same personas.\n",
                  json_array_size(ps));
    sb_appendc(&b, '\n');
    json_t *judge = json_object_get(r, "judge");
    sb_printf(&b,
              "Judge: %ld turns judged; %ld needed more than one request; %ld left without a valid score after "
              "%ld attempts (left out of AL); %ld judge replies had no valid score.\n\n",
              (long)json_integer_value(json_object_get(judge, "judged_turns")),
              (long)json_integer_value(json_object_get(judge, "retried")),
              (long)json_integer_value(json_object_get(judge, "invalid")),
              (long)json_integer_value(json_object_get(judge, "max_attempts")),
              (long)json_integer_value(json_object_get(judge, "replies_without_score")));
    sb_append(&b, "![AL(k)](al.svg)\n\n");
    put_definitions(&b, "±");
    json_t *usage = json_object_get(r, "usage");
    if (usage) {
        sb_append(&b, "\n## Usage\n\n| role | requests | from cache | prompt tokens | completion tokens |\n"
                      "|---|---:|---:|---:|---:|\n");
        const char *role;
        json_t *u;
        json_object_foreach(usage, role, u) {
            sb_printf(&b, "| %s | %lld | %lld | %lld | %lld |\n", role,
                      (long long)json_integer_value(json_object_get(u, "requests")),
                      (long long)json_integer_value(json_object_get(u, "cached")),
                      (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
                      (long long)json_integer_value(json_object_get(u, "completion_tokens")));
        }
    }
    json_t *tot = json_object_get(r, "totals");
    if (tot) { /* a resumed run took several invocations: what all of them cost */
        long long req = 0, hits = 0, retries = 0, errors = 0;
        const char *role;
        json_t *u;
        json_object_foreach(json_object_get(tot, "requests"), role, u) {
            req = add_sat(req, json_integer_value(json_object_get(u, "requests")));
            hits = add_sat(hits, json_integer_value(json_object_get(u, "cache_hits")));
            retries = add_sat(retries, json_integer_value(json_object_get(u, "retries")));
            errors = add_sat(errors, json_integer_value(json_object_get(u, "errors")));
        }
        long long n_inv = (long long)json_integer_value(json_object_get(tot, "invocations"));
        sb_printf(&b,
                  "\nOver %lld invocation%s: %.1f s of wall time; %lld requests answered (%lld from the request "
                  "cache), %lld retries, %lld failed requests.\n",
                  n_inv, n_inv == 1 ? "" : "s", json_number_value(json_object_get(tot, "wall_s")), req, hits, retries,
                  errors);
    }
    json_t *settings = json_object_get(r, "settings");
    if (json_is_object(settings)) {
        sb_append(&b, "\n## Settings\n\n");
        const char *k;
        json_t *v;
        json_object_foreach(settings, k, v) {
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            sb_printf(&b, "- %s: `%s`\n", k, s);
            free(s);
        }
    }
    return sb_take(&b);
}

static int max_turns(const ReportSeries *runs, int n) {
    int T = 0;
    for (int i = 0; i < n; i++) {
        int t = (int)json_array_size(json_object_get(runs[i].results, "turns"));
        if (t > T) T = t;
    }
    return T;
}

char *report_compare_markdown(const ReportSeries *runs, int n) {
    StrBuf b;
    sb_init(&b);
    int T = max_turns(runs, n);
    sb_append(&b, "| run |");
    for (int k = 1; k <= T; k++) sb_printf(&b, " AL(%d) |", k);
    sb_append(&b, " AVG | IR | N-IR | R² | invalid |\n|---|");
    for (int k = 0; k < T + 5; k++) sb_append(&b, "---:|");
    sb_appendc(&b, '\n');
    for (int i = 0; i < n; i++) {
        const json_t *r = runs[i].results;
        sb_append(&b, "| ");
        report_md_cell(&b, runs[i].name);
        sb_append(&b, " |");
        json_t *turns = json_object_get(r, "turns");
        for (int k = 0; k < T; k++) {
            sb_appendc(&b, ' ');
            put_num(&b, num(json_array_get(turns, (size_t)k), "al"), 2);
            sb_append(&b, " |");
        }
        sb_appendc(&b, ' ');
        put_num(&b, num(r, "avg"), 2);
        sb_append(&b, " | ");
        put_num(&b, num(r, "ir"), 3);
        sb_append(&b, " | ");
        put_num(&b, num(r, "n_ir"), 3);
        sb_append(&b, " | ");
        put_num(&b, num(r, "r2"), 2);
        sb_printf(&b, " | %lld |",
                  (long long)json_integer_value(json_object_get(json_object_get(r, "judge"), "invalid")));
        if (!json_is_true(json_object_get(r, "complete"))) sb_append(&b, " (incomplete)");
        sb_appendc(&b, '\n');
    }
    sb_appendc(&b, '\n');
    put_definitions(&b, "Error bars in the chart");
    return sb_take(&b);
}

/* ---- SVG ---- */

static void put_xml(StrBuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_append(b, "&amp;"); break;
        case '<': sb_append(b, "&lt;"); break;
        case '>': sb_append(b, "&gt;"); break;
        case '"': sb_append(b, "&quot;"); break;
        case '\'': sb_append(b, "&apos;"); break;
        default:
            /* Control characters are not allowed in XML 1.0. */
            if ((unsigned char)*s >= 0x20 || *s == '\t') sb_appendc(b, *s);
        }
    }
}

/* Colour-blind-friendly palette (Okabe-Ito, then a few more). */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#56B4E9", "#000000", "#F0E442", "#7f7f7f", "#8c564b"};

typedef struct {
    double left, top, width, height; /* plot area */
    int turns;
    double ymin, ymax;
} Frame;

static double fx(const Frame *f, double k) {
    return f->turns > 1 ? f->left + (k - 1) * f->width / (f->turns - 1) : f->left + f->width / 2;
}
static double fy(const Frame *f, double v) {
    if (v < f->ymin) v = f->ymin;
    if (v > f->ymax) v = f->ymax;
    return f->top + (f->ymax - v) * f->height / (f->ymax - f->ymin);
}

static void svg_axes(StrBuf *b, const Frame *f) {
    sb_append(b, "<g class=\"grid\" stroke=\"#dddddd\" stroke-width=\"1\">\n");
    for (double v = f->ymin; v <= f->ymax + 1e-9; v += 0.5)
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left, fy(f, v),
                  f->left + f->width, fy(f, v));
    for (int k = 1; k <= f->turns; k++)
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fx(f, k), f->top, fx(f, k),
                  f->top + f->height);
    sb_append(b, "</g>\n<g class=\"axes\" stroke=\"#333333\" stroke-width=\"1.5\">\n");
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left, f->top + f->height,
              f->left + f->width, f->top + f->height);
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left, f->top, f->left,
              f->top + f->height);
    for (int k = 1; k <= f->turns; k++)
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fx(f, k), f->top + f->height,
                  fx(f, k), f->top + f->height + 5);
    for (int v = (int)f->ymin; v <= (int)f->ymax; v++)
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left - 5, fy(f, v), f->left,
                  fy(f, v));
    sb_append(b, "</g>\n<g class=\"ticks\" font-family=\"sans-serif\" font-size=\"12\" fill=\"#333333\">\n");
    for (int k = 1; k <= f->turns; k++)
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", fx(f, k),
                  f->top + f->height + 19, k);
    for (int v = (int)f->ymin; v <= (int)f->ymax; v++)
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", f->left - 8, fy(f, v) + 4, v);
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">turn k</text>\n",
              f->left + f->width / 2, f->top + f->height + 38);
    sb_printf(b,
              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" "
              "transform=\"rotate(-90 %.1f %.1f)\">AL(k)</text>\n",
              f->left - 36, f->top + f->height / 2, f->left - 36, f->top + f->height / 2);
    sb_append(b, "</g>\n");
}

static void svg_series(StrBuf *b, const Frame *f, const json_t *results, const char *colour, int idx) {
    json_t *turns = json_object_get(results, "turns");
    sb_printf(b, "<g class=\"series\" id=\"series-%d\" stroke=\"%s\" fill=\"%s\">\n", idx, colour, colour);
    /* The curve: a path broken where a turn has no AL. */
    sb_append(b, "<path fill=\"none\" stroke-width=\"2\" d=\"");
    int pen = 0;
    size_t i;
    json_t *t;
    json_array_foreach(turns, i, t) {
        double al = num(t, "al");
        if (isnan(al)) {
            pen = 0;
            continue;
        }
        sb_printf(b, "%s%.1f %.1f ", pen ? "L" : "M", fx(f, (double)i + 1), fy(f, al));
        pen = 1;
    }
    sb_append(b, "\"/>\n");
    json_array_foreach(turns, i, t) {
        double al = num(t, "al"), ci = num(t, "ci95"), x = fx(f, (double)i + 1);
        if (isnan(al)) continue;
        if (!isnan(ci) && ci > 0) {
            double y0 = fy(f, al - ci), y1 = fy(f, al + ci);
            sb_printf(b,
                      "<path class=\"ci\" fill=\"none\" stroke-width=\"1.2\" d=\"M%.1f %.1f L%.1f %.1f M%.1f %.1f "
                      "L%.1f %.1f M%.1f %.1f L%.1f %.1f\"/>\n",
                      x, y0, x, y1, x - 4, y0, x + 4, y0, x - 4, y1, x + 4, y1);
        }
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>turn %zu: AL %.3f", x, fy(f, al), i + 1, al);
        if (!isnan(ci)) sb_printf(b, " ± %.3f", ci);
        sb_printf(b, " (n %lld)</title></circle>\n", (long long)json_integer_value(json_object_get(t, "n")));
    }
    sb_append(b, "</g>\n");
}

char *report_svg(const ReportSeries *runs, int n, const char *title) {
    const int W = 760, H = 440;
    Frame f = {.left = 70, .top = 50, .width = W - 70 - 220, .height = H - 50 - 60, .turns = max_turns(runs, n),
               .ymin = 1, .ymax = 5};
    if (f.turns < 1) f.turns = 1;
    StrBuf b;
    sb_init(&b);
    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
              "viewBox=\"0 0 %d %d\">\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
              W, H, W, H, W, H);
    sb_printf(&b, "<text x=\"%d\" y=\"28\" font-family=\"sans-serif\" font-size=\"16\" text-anchor=\"middle\">",
              (int)(f.left + f.width / 2));
    put_xml(&b, title);
    sb_append(&b, "</text>\n");
    svg_axes(&b, &f);
    for (int i = 0; i < n; i++) svg_series(&b, &f, runs[i].results, palette[i % 10], i);
    /* Legend on the right. */
    double lx = f.left + f.width + 24, ly = f.top + 10;
    sb_append(&b, "<g class=\"legend\" font-family=\"sans-serif\" font-size=\"12\">\n");
    for (int i = 0; i < n; i++) {
        double y = ly + i * 22;
        sb_printf(&b,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                  "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>"
                  "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333333\">",
                  lx, y, lx + 24, y, palette[i % 10], lx + 12, y, palette[i % 10], lx + 32, y + 4);
        /* Long names are cut so the legend stays inside the picture. The
         * start goes: the end of a name tells runs apart (a model path's
         * last directory, the "(run dir)" suffix of runs sharing a model). */
        const char *full = runs[i].name ? runs[i].name : "run";
        char name[40];
        size_t len = strlen(full);
        if (len < sizeof name) {
            snprintf(name, sizeof name, "%s", full);
        } else {
            const char *tail = full + len - (sizeof name - 4);
            while (*tail && ((unsigned char)*tail & 0xC0) == 0x80) tail++; /* not inside a UTF-8 char */
            snprintf(name, sizeof name, "...%s", tail);
        }
        put_xml(&b, name);
        sb_append(&b, "</text>\n");
    }
    sb_append(&b, "</g>\n</svg>\n");
    return sb_take(&b);
}
