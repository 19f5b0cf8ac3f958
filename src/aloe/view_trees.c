/* view_trees: the page's data for a dialogues trees file (view.h): each
 * tree's turns with both replies, the inferred persona, the branch taken
 * and the judge's verdicts in both orders. The judge counts are
 * dialogues_judge_counts' (dialogues.h), the same numbers as
 * FILE.summary.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloe/dialogues.h"
#include "aloe/personas.h"
#include "aloe/view.h"
#include "base/fileio.h"
#include "base/mem.h"

typedef struct {
    json_t *trees, *ids, *warnings;
    JudgeOrderCounts judges;
    int dup_warned;
} Trees;

static int bad(Err *e, const char *file, int line, const char *where, const char *expected, const json_t *got) {
    return err_set(e, ERR_PARSE, "%s:%d: %s: expected %s, got %s", file, line, where, expected, json_type_name(got));
}

/* o[key] must be a string (or, when nullable, null; when optional, absent). */
static int check_str(const json_t *o, const char *key, int nullable, int optional, const char *file, int line,
                     const char *where, Err *e) {
    json_t *v = json_object_get(o, key);
    if (json_is_string(v) || (nullable && json_is_null(v)) || (optional && !v)) return 0;
    char w[96];
    snprintf(w, sizeof w, "%s%s%s", where, *where ? "." : "", key);
    return bad(e, file, line, w, nullable ? "a string or null" : "a string", v);
}

/* One order of the judge: {raw: [answers], verdict: "A"|"B"|null}. */
static json_t *judge_order(const json_t *j, const char *file, int line, const char *where, Err *e) {
    if (!j) return json_pack("{s:[], s:n}", "raw", "verdict");
    if (!json_is_object(j)) {
        bad(e, file, line, where, "an object {raw, verdict}", j);
        return NULL;
    }
    json_t *raw = json_object_get(j, "raw"), *v;
    char w[128];
    if (raw && !json_is_array(raw)) {
        snprintf(w, sizeof w, "%s.raw", where);
        bad(e, file, line, w, "a list of the judge's answers", raw);
        return NULL;
    }
    size_t i;
    json_array_foreach(raw, i, v) if (!json_is_string(v)) {
        snprintf(w, sizeof w, "%s.raw[%zu]", where, i);
        bad(e, file, line, w, "a string", v);
        return NULL;
    }
    if (check_str(j, "verdict", 1, 1, file, line, where, e)) return NULL;
    json_t *verdict = json_object_get(j, "verdict");
    return json_pack("{s:o, s:o}", "raw", raw ? json_deep_copy(raw) : json_array(), "verdict",
                     verdict ? json_copy(verdict) : json_null());
}

/* Turn k's view form from conversations[k] and meta.turn_details[k]. */
static json_t *tree_turn(const json_t *c, const json_t *d, size_t k, const char *file, int line, Err *e) {
    char where[64], w2[96];
    snprintf(where, sizeof where, "conversations[%zu]", k);
    if (!json_is_object(c)) {
        bad(e, file, line, where, "an object {user, assistant, ...}", c);
        return NULL;
    }
    json_t *a = json_object_get(c, "assistant");
    snprintf(w2, sizeof w2, "%s.assistant", where);
    if (check_str(c, "user", 0, 0, file, line, where, e)) return NULL;
    if (!json_is_object(a)) {
        bad(e, file, line, w2, "an object {preferred, rejected}", a);
        return NULL;
    }
    if (check_str(a, "preferred", 1, 1, file, line, w2, e) || check_str(a, "rejected", 1, 1, file, line, w2, e) ||
        check_str(a, "hinted", 1, 1, file, line, w2, e) || check_str(a, "plain", 1, 1, file, line, w2, e) ||
        check_str(c, "chosen", 1, 1, file, line, where, e) || check_str(c, "inferred_profile", 1, 1, file, line, where, e) ||
        check_str(c, "inferred_personality", 1, 1, file, line, where, e))
        return NULL;
    json_t *t = json_object();
    json_object_set_new(t, "turn", json_integer((json_int_t)k + 1));
    json_object_set(t, "user", json_object_get(c, "user"));
    static const char *const replies[] = {"preferred", "rejected", "hinted", "plain"};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(a, replies[i]);
        if (v || i < 2) json_object_set_new(t, replies[i], v ? json_copy(v) : json_null());
    }
    static const char *const opt[] = {"chosen", "inferred_profile", "inferred_personality"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(c, opt[i]);
        json_object_set_new(t, opt[i], v ? json_copy(v) : json_null());
    }
    snprintf(where, sizeof where, "meta.turn_details[%zu]", k);
    if (d && !json_is_object(d)) {
        json_decref(t);
        bad(e, file, line, where, "an object", d);
        return NULL;
    }
    if (check_str(d, "judges", 1, 1, file, line, where, e) || check_str(d, "hinted_is", 1, 1, file, line, where, e) ||
        check_str(d, "user_raw", 1, 1, file, line, where, e)) {
        json_decref(t);
        return NULL;
    }
    snprintf(w2, sizeof w2, "%s.judge_hinted_first", where);
    json_t *first = judge_order(json_object_get(d, "judge_hinted_first"), file, line, w2, e);
    snprintf(w2, sizeof w2, "%s.judge_hinted_second", where);
    json_t *second = first ? judge_order(json_object_get(d, "judge_hinted_second"), file, line, w2, e) : NULL;
    if (!second) {
        json_decref(first);
        json_decref(t);
        return NULL;
    }
    json_object_set_new(t, "first", first);
    json_object_set_new(t, "second", second);
    static const char *const det[] = {"judges", "hinted_is", "user_raw"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(d, det[i]);
        if (v) json_object_set_new(t, det[i], json_copy(v));
    }
    if (!json_object_get(t, "judges")) json_object_set_new(t, "judges", json_null());
    return t;
}

static int tree_record(void *ctx, json_t *rec, const char *file, int line, int nth, Err *e) {
    (void)nth;
    Trees *tr = ctx;
    if (!json_is_object(rec))
        return err_set(e, ERR_PARSE, "%s:%d: expected a conversation tree (an object), got %s", file, line,
                       json_type_name(rec));
    if (check_str(rec, "profile", 0, 0, file, line, "", e) || check_str(rec, "personality", 0, 0, file, line, "", e) ||
        check_str(rec, "id", 0, 1, file, line, "", e))
        return -1;
    json_t *conv = json_object_get(rec, "conversations"), *meta = json_object_get(rec, "meta");
    if (!json_is_array(conv)) return bad(e, file, line, "conversations", "a list of turns", conv);
    if (meta && !json_is_object(meta)) return bad(e, file, line, "meta", "an object", meta);
    json_t *details = json_object_get(meta, "turn_details");
    if (details && !json_is_array(details)) return bad(e, file, line, "meta.turn_details", "a list", details);
    json_t *dis = json_object_get(meta, "disagreements");
    if (dis && !(json_is_integer(dis) && json_integer_value(dis) >= 0))
        return bad(e, file, line, "meta.disagreements", "a non-negative integer", dis);
    json_t *turns = json_array(), *c;
    size_t k;
    long disagreements = 0;
    json_array_foreach(conv, k, c) {
        json_t *t = tree_turn(c, json_array_get(details, k), k, file, line, e);
        if (!t) {
            json_decref(turns);
            return -1;
        }
        const char *j = json_string_value(json_object_get(t, "judges"));
        disagreements += j && strcmp(j, "agree") != 0;
        json_array_append_new(turns, t);
    }
    /* The id links to the tree (#conv-000042); a file without ids (the
     * reference schema) or with one twice (files put together) gets the
     * line's. */
    const char *id = json_string_value(json_object_get(rec, "id"));
    char fallback[32];
    if (!id || !*id || json_object_get(tr->ids, id)) {
        if (id && *id && !tr->dup_warned++)
            view_warn(tr->warnings, "%s:%d: id \"%.100s\" appears twice: trees are linked by their line instead",
                      file, line, id);
        snprintf(fallback, sizeof fallback, "line-%d", line);
        id = fallback;
    }
    json_object_set_new(tr->ids, id, json_true());
    dialogues_judge_counts(rec, &tr->judges);
    json_t *tree = json_pack("{s:s, s:i, s:O, s:O, s:I, s:o}", "id", id, "line", line, "profile",
                             json_object_get(rec, "profile"), "personality", json_object_get(rec, "personality"),
                             "disagreements", dis ? json_integer_value(dis) : (json_int_t)disagreements, "turns", turns);
    json_array_append_new(tr->trees, tree);
    return 0;
}

static json_t *rate(double v) { return isnan(v) ? json_null() : json_real(v); }

json_t *view_trees_parse(const char *name, const char *buf, size_t len, const json_t *summary, Err *e) {
    Trees tr = {json_array(), json_object(), json_array(), {0}, 0};
    json_t *out = NULL;
    if (view_read_jsonl(name, buf, len, tr.warnings, tree_record, &tr, e) >= 0) {
        const JudgeOrderCounts *j = &tr.judges;
        json_t *judges = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o}", "turns", (json_int_t)j->turns, "both_verdicts",
                                   (json_int_t)j->both_verdicts, "agreements", (json_int_t)j->agreements,
                                   "first_position_wins", (json_int_t)j->first_position_wins, "agreement_rate",
                                   rate(judge_agreement_rate(j)), "position_bias_rate",
                                   rate(judge_position_bias_rate(j)));
        StrBuf t;
        sb_init(&t);
        sb_printf(&t, "ALOE preference trees: %s", name);
        out = json_pack("{s:i, s:s, s:o, s:o, s:O, s:o, s:o, s:O}", "aloe_view", 1, "kind", "trees", "title",
                        view_string(t.s), "file", view_string(name), "warnings", tr.warnings, "summary",
                        summary ? json_deep_copy(summary) : json_null(), "judges", judges, "trees", tr.trees);
        sb_free(&t);
    }
    json_decref(tr.trees);
    json_decref(tr.ids);
    json_decref(tr.warnings);
    return out;
}

json_t *view_trees_data(const char *path, Err *e) {
    char *buf = NULL;
    size_t len = 0;
    if (!file_exists(path)) {
        err_set(e, ERR_NOTFOUND, "%s: not found", path);
        return NULL;
    }
    if (file_read_all(path, &buf, &len, e)) return NULL;
    /* FILE.summary.json: the run's own counts; a damaged one is only noted */
    char *sp = personas_sidecar_path(path, ".summary.json");
    json_t *summary = file_exists(sp) ? json_load_file(sp, 0, NULL) : NULL;
    if (summary && !json_is_object(summary)) {
        json_decref(summary);
        summary = NULL;
    }
    json_t *out = view_trees_parse(path, buf, len, summary, e);
    if (out && file_exists(sp) && !summary)
        view_warn(json_object_get(out, "warnings"), "%s: not a JSON object, left out", sp);
    json_decref(summary);
    free(sp);
    free(buf);
    return out;
}

int view_is_trees_file(const char *path) {
    if (file_is_dir(path)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    /* the first line, up to 64 KiB, is enough to see the key */
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *nl = memchr(buf, '\n', n);
    if (nl) *nl = 0;
    json_t *v = json_loads(buf, 0, NULL);
    int trees = json_is_array(json_object_get(v, "conversations")); /* results.json's is an object */
    json_decref(v);
    /* a long first line that did not fit: look for the key itself */
    if (!v && !nl) trees = strstr(buf, "\"conversations\": [") || strstr(buf, "\"conversations\":[");
    return trees;
}
