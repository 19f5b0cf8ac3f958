/* view: the page's data for benchmark runs (view.h). results.json gives
 * what was computed (AL(k), intervals, personas[] scores); dialogues.jsonl
 * beside it gives each persona's conversation. Nothing is recomputed but a
 * persona's mean, the one number the page shows that no file holds. */
#include "aloe/view.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/jsonl.h"

/* ---- reading JSONL as a viewer: the file is never repaired on disk ---- */

long view_repair_utf8(const char *s, size_t n, char **out, size_t *out_len) {
    StrBuf b;
    sb_init(&b);
    long bad = 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = 0;
        unsigned char c = u[i];
        if (c < 0x80) len = 1;
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) len = 3;
        else if (c >= 0xF0 && c <= 0xF4) len = 4;
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = (u[i + k] & 0xC0) == 0x80;
        /* overlong forms, surrogates and code points above U+10FFFF */
        if (ok && len == 3) ok = !(c == 0xE0 && u[i + 1] < 0xA0) && !(c == 0xED && u[i + 1] >= 0xA0);
        if (ok && len == 4) ok = !(c == 0xF0 && u[i + 1] < 0x90) && !(c == 0xF4 && u[i + 1] >= 0x90);
        if (ok) {
            sb_appendn(&b, s + i, len);
            i += len;
        } else {
            sb_append(&b, "\xEF\xBF\xBD");
            bad++;
            i++;
        }
    }
    *out_len = b.len;
    *out = b.s ? sb_take(&b) : xstrdup("");
    return bad;
}

json_t *view_string(const char *s) {
    char *fixed;
    size_t n;
    view_repair_utf8(s ? s : "", s ? strlen(s) : 0, &fixed, &n);
    json_t *v = json_stringn(fixed, n);
    free(fixed);
    return v;
}

void view_warn(json_t *warnings, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *w = NULL;
    if (vasprintf(&w, fmt, ap) < 0) w = NULL;
    va_end(ap);
    json_array_append_new(warnings, view_string(w ? w : "(warning)"));
    free(w);
}

/* Reads a JSONL buffer the way the page shows it: bytes that are not UTF-8
 * become U+FFFD (counted in a warning), and a last line without its newline
 * that does not parse is the torn record of an interrupted run (the journal
 * drops it on the next run): left out with a warning. Any other line that
 * does not parse is an error naming file:line. */
long view_read_jsonl(const char *name, const char *buf, size_t len, json_t *warnings, JsonlFn fn, void *ctx,
                       Err *e) {
    char *text;
    size_t n;
    long bad = view_repair_utf8(buf, len, &text, &n);
    if (bad) {
        view_warn(warnings, "%s: %ld byte%s that are not UTF-8 shown as U+FFFD", name, bad, bad == 1 ? "" : "s");
    }
    if (n && text[n - 1] != '\n') {
        size_t start = n;
        while (start > 0 && text[start - 1] != '\n') start--;
        json_t *last = json_loadb(text + start, n - start, JSON_DECODE_ANY, NULL);
        if (!last) {
            int line = 1;
            for (size_t i = 0; i < start; i++) line += text[i] == '\n';
            view_warn(warnings, "%s:%d: a torn last record (no newline, not JSON: an interrupted run) left out", name,
                      line);
            n = start;
        }
        json_decref(last);
    }
    long rc = jsonl_foreach_buf(name, text, n, fn, ctx, e);
    free(text);
    return rc;
}

/* ---- field checks with file:line and the field's path ---- */

static int bad_field(Err *e, const char *file, int line, const char *where, const char *key, const char *expected,
                     const json_t *got) {
    return err_set(e, ERR_PARSE, "%s:%d: %s%s%s: expected %s, got %s", file, line, where, *where ? "." : "", key,
                   expected, json_type_name(got));
}

static int need_string(const json_t *o, const char *key, int optional, const char *file, int line, const char *where,
                       Err *e) {
    json_t *v = json_object_get(o, key);
    if ((!v && optional) || json_is_string(v)) return 0;
    return bad_field(e, file, line, where, key, "a string", v);
}

/* ---- dialogues.jsonl of aloe bench ---- */

typedef struct {
    json_t *by_id; /* id -> view form */
    json_t *warnings;
} RunDialogues;

/* A bench record: {id, profile, personality, turns: [{turn, user, user_raw?,
 * assistant, judge: [raw...], score, attempts}], ...}. */
static int run_record(void *ctx, json_t *rec, const char *file, int line, int nth, Err *e) {
    (void)nth;
    RunDialogues *rd = ctx;
    if (!json_is_object(rec))
        return err_set(e, ERR_PARSE, "%s:%d: expected a conversation record (an object), got %s", file, line,
                       json_type_name(rec));
    if (need_string(rec, "id", 0, file, line, "", e) || need_string(rec, "profile", 0, file, line, "", e) ||
        need_string(rec, "personality", 0, file, line, "", e))
        return -1;
    json_t *turns = json_object_get(rec, "turns");
    if (!json_is_array(turns)) return bad_field(e, file, line, "", "turns", "a list of turns", turns);
    json_t *out_turns = json_array();
    size_t k;
    json_t *t;
    char where[48];
    json_array_foreach(turns, k, t) {
        snprintf(where, sizeof where, "turns[%zu]", k);
        if (!json_is_object(t)) {
            json_decref(out_turns);
            return err_set(e, ERR_PARSE, "%s:%d: %s: expected an object, got %s", file, line, where,
                           json_type_name(t));
        }
        json_t *judge = json_object_get(t, "judge"), *score = json_object_get(t, "score"),
               *attempts = json_object_get(t, "attempts"), *raw;
        int rc = need_string(t, "user", 0, file, line, where, e) || need_string(t, "assistant", 0, file, line, where, e) ||
                 need_string(t, "user_raw", 1, file, line, where, e);
        if (!rc && judge && !json_is_array(judge)) rc = bad_field(e, file, line, where, "judge", "a list of the judge's answers", judge);
        size_t r;
        json_array_foreach(judge, r, raw) if (!rc && !json_is_string(raw)) {
            char jw[96];
            snprintf(jw, sizeof jw, "%s.judge[%zu]", where, r);
            rc = err_set(e, ERR_PARSE, "%s:%d: %s: expected a string, got %s", file, line, jw, json_type_name(raw));
        }
        if (!rc && !json_is_null(score) &&
            !(json_is_integer(score) && json_integer_value(score) >= 1 && json_integer_value(score) <= 5))
            rc = bad_field(e, file, line, where, "score", "an integer from 1 to 5 or null", score);
        if (!rc && attempts && !(json_is_integer(attempts) && json_integer_value(attempts) >= 1))
            rc = bad_field(e, file, line, where, "attempts", "an integer of at least 1", attempts);
        if (rc) {
            json_decref(out_turns);
            return -1;
        }
        json_t *vt = json_object();
        json_object_set_new(vt, "turn", json_integer((json_int_t)k + 1));
        json_object_set(vt, "user", json_object_get(t, "user"));
        if (json_object_get(t, "user_raw")) json_object_set(vt, "user_raw", json_object_get(t, "user_raw"));
        json_object_set(vt, "assistant", json_object_get(t, "assistant"));
        json_object_set_new(vt, "judge", judge ? json_deep_copy(judge) : json_array());
        json_object_set_new(vt, "score", score ? json_copy(score) : json_null());
        json_object_set_new(vt, "attempts", json_integer(attempts ? json_integer_value(attempts)
                                                                  : (json_int_t)json_array_size(judge)));
        json_array_append_new(out_turns, vt);
    }
    const char *id = json_string_value(json_object_get(rec, "id"));
    if (json_object_get(rd->by_id, id)) { /* as the journal does: the first one counts */
        view_warn(rd->warnings, "%s:%d: a second record \"%.100s\" left out", file, line, id);
        json_decref(out_turns);
        return 0;
    }
    json_t *v = json_pack("{s:O, s:O, s:o}", "profile", json_object_get(rec, "profile"), "personality",
                          json_object_get(rec, "personality"), "turns", out_turns);
    static const char *const idx[] = {"profile_index", "personality_index"};
    for (int i = 0; i < 2; i++)
        if (json_is_integer(json_object_get(rec, idx[i]))) json_object_set(v, idx[i], json_object_get(rec, idx[i]));
    json_object_set_new(rd->by_id, id, v);
    return 0;
}

static json_t *run_dialogues_parse(const char *name, const char *buf, size_t len, json_t *warnings, Err *e) {
    RunDialogues rd = {json_object(), warnings};
    if (view_read_jsonl(name, buf, len, warnings, run_record, &rd, e) < 0) {
        json_decref(rd.by_id);
        return NULL;
    }
    return rd.by_id;
}

json_t *view_run_dialogues_parse(const char *name, const char *buf, size_t len, Err *e) {
    json_t *warnings = json_array();
    json_t *r = run_dialogues_parse(name, buf, len, warnings, e);
    json_decref(warnings);
    return r;
}

/* The dialogues.jsonl beside a run's results.json: NULL with no error when
 * it is not there (a warning says so). */
static json_t *load_run_dialogues(const char *source, json_t *warnings, Err *e) {
    char *dir = file_is_dir(source) ? xstrdup(source) : NULL;
    if (!dir) { /* a results.json path: its directory */
        const char *slash = strrchr(source, '/');
        dir = slash ? xstrndup(source, (size_t)(slash - source) + 1) : xstrdup(".");
    }
    char *path = path_join(dir, "dialogues.jsonl");
    free(dir);
    json_t *by_id = NULL;
    if (!file_exists(path)) {
        view_warn(warnings, "%s: not found, so the conversations of this run are not shown", path);
    } else {
        char *buf = NULL;
        size_t len = 0;
        if (!file_read_all(path, &buf, &len, e)) by_id = run_dialogues_parse(path, buf, len, warnings, e);
        free(buf);
        if (!by_id) {
            free(path);
            return NULL;
        }
    }
    free(path);
    return by_id ? by_id : json_null();
}

/* ---- the runs ---- */

static json_t *copy_or_null(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return v ? json_deep_copy(v) : json_null();
}

static json_t *run_summary(const ViewRun *r, int has_dialogues) {
    const json_t *res = r->results;
    json_t *turns = json_array(), *t;
    size_t i;
    json_array_foreach(json_object_get(res, "turns"), i, t) {
        json_array_append_new(turns, json_pack("{s:o, s:o, s:o, s:o, s:o}", "turn", copy_or_null(t, "turn"), "al",
                                               copy_or_null(t, "al"), "n", copy_or_null(t, "n"), "ci95",
                                               copy_or_null(t, "ci95"), "invalid", copy_or_null(t, "invalid")));
    }
    json_t *o = json_pack("{s:o, s:o, s:o, s:b, s:o, s:o, s:b}", "name", view_string(r->name), "source",
                          view_string(r->source), "turns", turns, "complete", json_is_true(json_object_get(res, "complete")), "models",
                          copy_or_null(res, "models"), "conversations", copy_or_null(res, "conversations"),
                          "has_dialogues", has_dialogues);
    static const char *const keys[] = {"avg", "ir", "r2", "n_ir", "n_r2", "intervals", "judge", "skipped"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) json_object_set_new(o, keys[k], copy_or_null(res, keys[k]));
    json_t *protocol = json_object_get(json_object_get(res, "settings"), "protocol");
    json_object_set_new(o, "protocol", json_is_string(protocol) ? json_copy(protocol) : json_null());
    return o;
}

static json_t *mean_of(const json_t *scores) {
    double sum = 0;
    int n = 0;
    size_t k;
    json_t *v;
    json_array_foreach(scores, k, v) if (json_is_number(v)) {
        sum += json_number_value(v);
        n++;
    }
    return n ? json_real(sum / n) : json_null();
}

/* A persona's entry for run i, from results.json's personas[] entry p (or
 * NULL) and the conversation c (or NULL). */
static json_t *persona_run(const json_t *p, const json_t *c) {
    json_t *scores;
    if (p) {
        scores = json_deep_copy(json_object_get(p, "scores"));
    } else {
        scores = json_array();
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(c, "turns"), k, t) json_array_append(scores, json_object_get(t, "score"));
    }
    json_t *o = json_pack("{s:o, s:o}", "mean", mean_of(scores), "scores", scores);
    json_object_set_new(o, "turns", c ? json_deep_copy(json_object_get(c, "turns")) : json_null());
    return o;
}

/* Finds or adds the persona `id` (runs entries all null). */
static json_t *persona_slot(json_t *personas, json_t *index, const char *id, int n_runs) {
    json_t *at = json_object_get(index, id);
    if (at) return json_array_get(personas, (size_t)json_integer_value(at));
    json_t *runs = json_array();
    for (int i = 0; i < n_runs; i++) json_array_append_new(runs, json_null());
    json_t *p = json_pack("{s:s, s:n, s:n, s:s, s:s, s:o}", "id", id, "profile_index", "personality_index", "profile",
                          "", "personality", "", "runs", runs);
    json_object_set_new(index, id, json_integer((json_int_t)json_array_size(personas)));
    json_array_append_new(personas, p);
    return p;
}

static void persona_fill(json_t *slot, const json_t *p, const json_t *c) {
    static const char *const idx[] = {"profile_index", "personality_index"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(p, idx[k]);
        if (!v) v = json_object_get(c, idx[k]);
        if (json_is_integer(v) && json_is_null(json_object_get(slot, idx[k]))) json_object_set(slot, idx[k], v);
    }
    static const char *const text[] = {"profile", "personality"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(c, text[k]);
        if (json_is_string(v) && !*json_string_value(json_object_get(slot, text[k]))) json_object_set(slot, text[k], v);
    }
}

json_t *view_runs_data(const ViewRun *runs, int n, const json_t *cmp, const char *cmp_error, Err *e) {
    json_t *warnings = json_array(), *out_runs = json_array(), *personas = json_array(), *index = json_object();
    json_t *out = NULL;
    for (int i = 0; i < n; i++) {
        json_t *dlg = load_run_dialogues(runs[i].source ? runs[i].source : ".", warnings, e);
        if (!dlg) goto fail;
        json_array_append_new(out_runs, run_summary(&runs[i], json_is_object(dlg)));
        json_t *ps = json_object_get(runs[i].results, "personas"), *p, *c;
        size_t k;
        json_array_foreach(ps, k, p) {
            const char *id = json_string_value(json_object_get(p, "id"));
            c = json_object_get(dlg, id);
            json_t *slot = persona_slot(personas, index, id, n);
            persona_fill(slot, p, c);
            json_array_set_new(json_object_get(slot, "runs"), (size_t)i, persona_run(p, c));
        }
        /* Conversations results.json does not list (a results.json from
         * before personas[], or one older than its journal). */
        const char *id;
        json_object_foreach(dlg, id, c) {
            json_t *slot = persona_slot(personas, index, id, n);
            if (!json_is_null(json_array_get(json_object_get(slot, "runs"), (size_t)i))) continue;
            persona_fill(slot, NULL, c);
            json_array_set_new(json_object_get(slot, "runs"), (size_t)i, persona_run(NULL, c));
        }
        json_decref(dlg);
    }
    StrBuf title;
    sb_init(&title);
    sb_append(&title, n == 1 ? "ALOE benchmark: " : "ALOE benchmark runs: ");
    for (int i = 0; i < n; i++) sb_printf(&title, "%s%s", i ? ", " : "", runs[i].name);
    out = json_pack("{s:i, s:s, s:o, s:O, s:O, s:O, s:o, s:o}", "aloe_view", 1, "kind", "runs", "title", view_string(title.s),
                    "warnings", warnings, "runs", out_runs, "personas", personas, "comparison",
                    cmp ? json_deep_copy(cmp) : json_null(), "comparison_error",
                    cmp_error ? json_string(cmp_error) : json_null());
    sb_free(&title);
fail:
    json_decref(warnings);
    json_decref(out_runs);
    json_decref(personas);
    json_decref(index);
    return out;
}

int view_write_page(const char *path, const json_t *data, const char *chart_svg, Err *e) {
    char *html = view_html(data, chart_svg);
    int rc = file_write_atomic(path, html, strlen(html), e);
    free(html);
    return rc;
}

int view_write_runs(const char *path, const ViewRun *runs, int n, const json_t *cmp, const char *cmp_error,
                    const char *chart_title, json_t **warnings, Err *e) {
    *warnings = json_array();
    json_t *data = view_runs_data(runs, n, cmp, cmp_error, e);
    if (!data) return -1;
    json_array_extend(*warnings, json_object_get(data, "warnings"));
    ReportSeries *series = xcalloc((size_t)n, sizeof *series);
    for (int i = 0; i < n; i++) series[i] = (ReportSeries){runs[i].name, runs[i].results};
    char *svg = report_svg(series, n, chart_title);
    int rc = view_write_page(path, data, svg, e);
    free(svg);
    free(series);
    json_decref(data);
    return rc;
}
