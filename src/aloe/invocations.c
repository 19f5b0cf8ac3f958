#include "aloe/invocations.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/jsonl.h"

static int bad(const char *name, size_t i, const char *field, const char *want, const json_t *v, Err *e) {
    return err_set(e, ERR_PARSE, "%s: [%zu]%s%s: expected %s, %s%s (remove the file to restart the accounting)",
                   name, i, *field ? "." : "", field, want, v ? "got " : "", v ? json_type_name(v) : "it is missing");
}

static int check_entry(const char *name, size_t i, json_t *en, Err *e) {
    if (!json_is_object(en)) return bad(name, i, "", "an object", en, e);
    json_t *v = json_object_get(en, "started");
    if (!json_is_string(v)) return bad(name, i, "started", "a string", v, e);
    v = json_object_get(en, "wall_s");
    if (!json_is_number(v) || !(json_number_value(v) >= 0)) return bad(name, i, "wall_s", "a non-negative number", v, e);
    v = json_object_get(en, "exit");
    if (!json_is_string(v)) return bad(name, i, "exit", "a string", v, e);
    v = json_object_get(en, "conversations");
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return bad(name, i, "conversations", "a non-negative integer", v, e);
    json_t *req = json_object_get(en, "requests");
    if (!json_is_object(req)) return bad(name, i, "requests", "an object", req, e);
    const char *role, *field;
    json_t *r, *c;
    json_object_foreach(req, role, r) {
        char where[200];
        snprintf(where, sizeof where, "requests.%.80s", role);
        if (!json_is_object(r)) return bad(name, i, where, "an object", r, e);
        json_object_foreach(r, field, c) {
            if (json_is_integer(c) && json_integer_value(c) >= 0) continue;
            snprintf(where, sizeof where, "requests.%.80s.%.80s", role, field);
            return bad(name, i, where, "a non-negative integer", c, e);
        }
    }
    if (!strcmp(json_string_value(json_object_get(en, "exit")), "running"))
        json_object_set_new(en, "exit", json_string("killed"));
    return 0;
}

json_t *invocations_parse(const char *name, const char *buf, size_t len, Err *e) {
    json_error_t jerr;
    json_t *list = json_loadb(buf, len, 0, &jerr);
    if (!list) {
        err_set(e, ERR_PARSE, "%s:%d:%d: %s (remove the file to restart the accounting)", name, jerr.line,
                jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_array(list)) {
        err_set(e, ERR_PARSE, "%s: expected a JSON array of invocations, got %s", name, json_type_name(list));
        json_decref(list);
        return NULL;
    }
    size_t i;
    json_t *en;
    json_array_foreach(list, i, en) {
        if (check_entry(name, i, en, e)) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static int write_list(Invocations *v, Err *e) {
    char *s = json_dumps(v->list, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "%s\n", s);
    free(s);
    int rc = file_write_atomic(v->path, b.s, b.len, e);
    sb_free(&b);
    return rc;
}

int invocations_open(Invocations *v, const char *path, Err *e) {
    memset(v, 0, sizeof *v);
    pthread_mutex_init(&v->lock, NULL);
    v->path = xstrdup(path);
    if (file_exists(path)) {
        char *buf;
        size_t len;
        if (file_read_all(path, &buf, &len, e)) return -1;
        v->list = invocations_parse(path, buf, len, e);
        free(buf);
        if (!v->list) return -1;
    } else {
        v->list = json_array();
    }
    char started[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    v->current = json_pack("{s:s, s:f, s:s, s:i, s:{}}", "started", started, "wall_s", 0.0, "exit", "running",
                           "conversations", 0, "requests");
    json_array_append_new(v->list, v->current);
    return write_list(v, e);
}

int invocations_save(Invocations *v, double wall_s, long conversations, json_t *requests, const char *exit,
                     Err *e) {
    pthread_mutex_lock(&v->lock);
    json_object_set_new(v->current, "wall_s", json_real(wall_s >= 0 ? wall_s : 0));
    json_object_set_new(v->current, "conversations", json_integer(conversations));
    json_object_set_new(v->current, "requests", requests ? requests : json_object());
    json_object_set_new(v->current, "exit", json_string(exit ? exit : "running"));
    int rc = write_list(v, e);
    pthread_mutex_unlock(&v->lock);
    return rc;
}

void invocations_close(Invocations *v) {
    if (!v->path) return;
    json_decref(v->list);
    free(v->path);
    pthread_mutex_destroy(&v->lock);
    memset(v, 0, sizeof *v);
}

/* json_int_t is long long (or long, both 64-bit here). */
#define INVOCATIONS_INT_MAX ((json_int_t)INT64_MAX)

/* Sums saturate: a hand-edited file must not overflow them. */
static json_int_t sat_add(json_int_t a, json_int_t b) {
    if (b > 0 && a > INVOCATIONS_INT_MAX - b) return INVOCATIONS_INT_MAX;
    return a + b;
}

json_t *invocations_totals(const json_t *list) {
    double wall = 0;
    json_int_t conv = 0;
    json_t *req = json_object();
    size_t i;
    json_t *en;
    json_array_foreach(list, i, en) {
        wall += json_number_value(json_object_get(en, "wall_s"));
        conv = sat_add(conv, json_integer_value(json_object_get(en, "conversations")));
        const char *role, *field;
        json_t *r, *c;
        json_object_foreach(json_object_get(en, "requests"), role, r) {
            json_t *sum = json_object_get(req, role);
            if (!sum) json_object_set_new(req, role, sum = json_object());
            json_object_foreach(r, field, c) {
                json_int_t had = json_integer_value(json_object_get(sum, field));
                json_object_set_new(sum, field, json_integer(sat_add(had, json_integer_value(c))));
            }
        }
    }
    if (!isfinite(wall)) wall = DBL_MAX;
    return json_pack("{s:I, s:f, s:I, s:o}", "invocations", (json_int_t)json_array_size(list), "wall_s", wall,
                     "conversations", conv, "requests", req);
}
