#include "aloe/export.h"

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/jsonl.h"

static json_t *message(const char *role, const char *content) {
    return json_pack("{s:s, s:s}", "role", role, "content", content);
}

/* The string at field of turn t, or an error naming it. */
static const char *turn_string(json_t *obj, const char *field, const char *where, int t, const char *sub,
                               Err *e) {
    json_t *v = json_object_get(obj, field);
    if (json_is_string(v)) return json_string_value(v);
    err_set(e, ERR_PARSE, "%s: conversations[%d].%s%s%s: expected a string, got %s", where, t, sub ? sub : "",
            sub ? "." : "", field, v ? json_type_name(v) : "nothing");
    return NULL;
}

static int check_branch(const ExportOptions *o, Err *e) {
    if (o->branch && strcmp(o->branch, "preferred") && strcmp(o->branch, "rejected"))
        return err_set(e, ERR_ARG, "--branch: expected preferred or rejected, got \"%s\"", o->branch);
    return 0;
}

int export_tree(json_t *tree, const ExportOptions *o, json_t *sft, json_t *dpo, ExportStats *st, const char *where,
                Err *e) {
    if (check_branch(o, e)) return -1;
    const char *branch = o->branch ? o->branch : "preferred";
    json_t *convs = json_is_object(tree) ? json_object_get(tree, "conversations") : NULL;
    if (!json_is_array(convs))
        return err_set(e, ERR_PARSE, "%s: expected a conversation tree with a \"conversations\" array", where);
    json_t *history = json_array();
    if (o->system) json_array_append_new(history, message("system", o->system));
    int rc = 0;
    for (size_t t = 0; t < json_array_size(convs); t++) {
        json_t *turn = json_array_get(convs, t), *asst = json_object_get(turn, "assistant");
        const char *user = turn_string(turn, "user", where, (int)t, NULL, e);
        if (!user) {
            rc = -1;
            break;
        }
        if (!json_is_object(asst)) {
            rc = err_set(e, ERR_PARSE, "%s: conversations[%zu].assistant: expected an object, got %s", where, t,
                         asst ? json_type_name(asst) : "nothing");
            break;
        }
        const char *chosen = turn_string(turn, "chosen", where, (int)t, NULL, e);
        const char *taken = chosen ? turn_string(asst, chosen, where, (int)t, "assistant", e) : NULL;
        if (!taken) {
            rc = -1;
            break;
        }
        json_t *pref = json_object_get(asst, "preferred"), *rej = json_object_get(asst, "rejected");
        int dropped = json_is_null(pref) && json_is_null(rej);
        if (!dropped && (!turn_string(asst, "preferred", where, (int)t, "assistant", e) ||
                         !turn_string(asst, "rejected", where, (int)t, "assistant", e))) {
            rc = -1;
            break;
        }
        json_array_append_new(history, message("user", user));
        st->turns++;
        if (dropped) {
            st->dropped++;
        } else {
            if (sft) {
                json_t *msgs = json_deep_copy(history);
                json_array_append_new(msgs, message("assistant", json_string_value(json_object_get(asst, branch))));
                json_array_append_new(sft, json_pack("{s:o}", "messages", msgs));
                st->sft++;
            }
            if (dpo) {
                json_array_append_new(dpo, json_pack("{s:o, s:[o], s:[o]}", "prompt", json_deep_copy(history),
                                                     "chosen", message("assistant", json_string_value(pref)),
                                                     "rejected", message("assistant", json_string_value(rej))));
                st->dpo++;
            }
        }
        json_array_append_new(history, message("assistant", taken));
    }
    json_decref(history);
    if (!rc) st->trees++;
    return rc;
}

typedef struct ReadCtx {
    const ExportOptions *o;
    json_t *sft, *dpo;
    ExportStats *st;
} ReadCtx;

static int on_tree(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)nth;
    ReadCtx *r = ctx;
    char *where = xasprintf("%s:%d", path, line);
    int rc = export_tree(v, r->o, r->sft, r->dpo, r->st, where, e);
    free(where);
    return rc;
}

static int write_jsonl(const char *path, json_t *records, Err *e) {
    StrBuf b;
    sb_init(&b);
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        char *line = json_dumps(rec, JSON_COMPACT);
        sb_append(&b, line);
        sb_appendc(&b, '\n');
        free(line);
    }
    int rc = file_write_atomic(path, b.s ? b.s : "", b.len, e);
    sb_free(&b);
    return rc;
}

int export_run(const char *in_path, const char *sft_path, const char *dpo_path, const ExportOptions *o,
               ExportStats *st, Err *e) {
    memset(st, 0, sizeof *st);
    if (!sft_path && !dpo_path) return err_set(e, ERR_ARG, "nothing to write: give --sft FILE and/or --dpo FILE");
    if (check_branch(o, e)) return -1;
    ReadCtx r = {o, sft_path ? json_array() : NULL, dpo_path ? json_array() : NULL, st};
    long n = jsonl_foreach(in_path, on_tree, &r, e);
    int rc = n < 0 ? -1 : 0;
    if (!rc && n == 0) rc = err_set(e, ERR_PARSE, "%s: empty file, expected conversation trees", in_path);
    if (!rc && sft_path) rc = write_jsonl(sft_path, r.sft, e);
    if (!rc && dpo_path) rc = write_jsonl(dpo_path, r.dpo, e);
    json_decref(r.sft);
    json_decref(r.dpo);
    return rc;
}
