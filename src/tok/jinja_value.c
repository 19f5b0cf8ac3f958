/* jinja_value: the values a template computes with, modelled on the Python
 * objects jinja2 works with (None, bool, int, float, str, list, dict, its
 * Undefined and Namespace), and how Python prints them: str() for {{ }},
 * repr() inside lists and dicts, json.dumps for tojson. Everything lives in
 * an arena freed when the render ends. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_int.h"

/* ---- Arena ---------------------------------------------------------------- */

typedef struct JChunk {
    struct JChunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} JChunk;

void *ja_alloc(JArena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    JChunk *c = a->head;
    if (!c || c->used + n > c->cap) {
        size_t cap = n > 65536 ? n : 65536;
        c = xmalloc(sizeof *c + cap);
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strndup(JArena *a, const char *s, size_t n) {
    char *r = ja_alloc(a, n + 1);
    if (n) memcpy(r, s, n);
    r[n] = 0;
    return r;
}

void ja_free(JArena *a) {
    JChunk *c = a->head;
    while (c) {
        JChunk *nx = c->next;
        free(c);
        c = nx;
    }
    a->head = NULL;
}

/* ---- Constructors --------------------------------------------------------- */

JVal jv_undef_v = {.t = JV_UNDEF}, jv_none_v = {.t = JV_NONE}, jv_true_v = {.t = JV_BOOL, .b = 1},
     jv_false_v = {.t = JV_BOOL, .b = 0};

static JVal *nv(JCtx *c, JType t) {
    JVal *v = ja_alloc(c->ar, sizeof *v);
    v->t = t;
    return v;
}

JVal *jv_undef_named(JCtx *c, const char *name) {
    JVal *v = nv(c, JV_UNDEF);
    v->s = name;
    return v;
}
JVal *jv_int(JCtx *c, int64_t i) {
    JVal *v = nv(c, JV_INT);
    v->i = i;
    return v;
}
JVal *jv_float(JCtx *c, double f) {
    JVal *v = nv(c, JV_FLOAT);
    v->f = f;
    return v;
}
JVal *jv_str(JCtx *c, const char *s, size_t n) {
    JVal *v = nv(c, JV_STR);
    v->s = ja_strndup(c->ar, s, n);
    v->n = n;
    return v;
}
JVal *jv_strz(JCtx *c, const char *s) { return jv_str(c, s, strlen(s)); }
JVal *jv_str_nocopy(JCtx *c, const char *s, size_t n) {
    JVal *v = nv(c, JV_STR);
    v->s = s;
    v->n = n;
    return v;
}
JVal *jv_list(JCtx *c) {
    JVal *v = nv(c, JV_LIST);
    v->l = ja_alloc(c->ar, sizeof *v->l);
    return v;
}
JVal *jv_dict(JCtx *c) {
    JVal *v = nv(c, JV_DICT);
    v->d = ja_alloc(c->ar, sizeof *v->d);
    return v;
}
JVal *jv_func(JCtx *c, JFn fn, JVal *self) {
    JVal *v = nv(c, JV_FUNC);
    v->fn = fn;
    v->self = self;
    return v;
}

void jl_push(JCtx *c, JList *l, JVal *v) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        JVal **nvv = ja_alloc(c->ar, (size_t)cap * sizeof *nvv);
        if (l->n) memcpy(nvv, l->v, (size_t)l->n * sizeof *nvv);
        l->v = nvv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

JVal *jd_get(JDict *d, const char *key, size_t n) {
    for (int i = 0; i < d->n; i++) {
        JVal *k = d->k[i];
        if (k->t == JV_STR && k->n == n && !memcmp(k->s, key, n)) return d->v[i];
    }
    return NULL;
}

JVal *jd_getv(JDict *d, JVal *key) {
    for (int i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key)) return d->v[i];
    return NULL;
}

void jd_set(JCtx *c, JDict *d, JVal *key, JVal *v) {
    for (int i = 0; i < d->n; i++) {
        if (jv_equal(d->k[i], key)) {
            d->v[i] = v;
            return;
        }
    }
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 8;
        JVal **nk = ja_alloc(c->ar, (size_t)cap * sizeof *nk);
        JVal **nvv = ja_alloc(c->ar, (size_t)cap * sizeof *nvv);
        if (d->n) {
            memcpy(nk, d->k, (size_t)d->n * sizeof *nk);
            memcpy(nvv, d->v, (size_t)d->n * sizeof *nvv);
        }
        d->k = nk;
        d->v = nvv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n++] = v;
}

void jd_setz(JCtx *c, JDict *d, const char *key, JVal *v) { jd_set(c, d, jv_strz(c, key), v); }

JVal *jv_from_json(JCtx *c, const json_t *j) {
    if (!j) return JV_UNDEFINED;
    switch (json_typeof(j)) {
    case JSON_NULL: return JV_NONEV;
    case JSON_TRUE: return JV_BOOLV(1);
    case JSON_FALSE: return JV_BOOLV(0);
    case JSON_INTEGER: return jv_int(c, (int64_t)json_integer_value(j));
    case JSON_REAL: return jv_float(c, json_real_value(j));
    case JSON_STRING: return jv_str(c, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        JVal *l = jv_list(c);
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) jl_push(c, l->l, jv_from_json(c, x));
        return l;
    }
    case JSON_OBJECT: {
        JVal *d = jv_dict(c);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)j, k, x) jd_setz(c, d->d, k, jv_from_json(c, x));
        return d;
    }
    }
    return JV_UNDEFINED;
}

/* ---- Python semantics ----------------------------------------------------- */

int jv_truthy(const JVal *v) {
    switch (v->t) {
    case JV_UNDEF: case JV_NONE: return 0;
    case JV_BOOL: return v->b;
    case JV_INT: return v->i != 0;
    case JV_FLOAT: return v->f != 0;
    case JV_STR: return v->n != 0;
    case JV_LIST: return v->b || v->l->n != 0; /* a generator object is always true */
    case JV_DICT: return v->d->n != 0;
    default: return 1;
    }
}

int jv_is_num(const JVal *v) { return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL; }
double jv_num(const JVal *v) {
    return v->t == JV_FLOAT ? v->f : v->t == JV_INT ? (double)v->i : (double)v->b;
}

/* Values a template builds can nest without bound ({% set ns.x = [ns.x] %}
 * in a loop): comparing and printing stop at this depth instead of
 * overflowing the C stack (Python would raise RecursionError). */
#define JV_MAX_NEST 200

static int equal_at(const JVal *a, const JVal *b, int depth);

int jv_equal(const JVal *a, const JVal *b) { return equal_at(a, b, 0); }

static int equal_at(const JVal *a, const JVal *b, int depth) {
    if (depth > JV_MAX_NEST) return a == b;
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a->t != JV_FLOAT && b->t != JV_FLOAT) {
            int64_t x = a->t == JV_INT ? a->i : a->b, y = b->t == JV_INT ? b->i : b->b;
            return x == y;
        }
        return jv_num(a) == jv_num(b);
    }
    if (a->t != b->t) return 0;
    switch (a->t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return a->n == b->n && !memcmp(a->s, b->s, a->n);
    case JV_LIST:
        if (a->l->n != b->l->n) return 0;
        for (int i = 0; i < a->l->n; i++)
            if (!equal_at(a->l->v[i], b->l->v[i], depth + 1)) return 0;
        return 1;
    case JV_DICT:
        if (a->d->n != b->d->n) return 0;
        for (int i = 0; i < a->d->n; i++) {
            JVal *o = jd_getv(b->d, a->d->k[i]);
            if (!o || !equal_at(a->d->v[i], o, depth + 1)) return 0;
        }
        return 1;
    default: return a == b;
    }
}

int jv_compare(JCtx *c, const JNode *at, const JVal *a, const JVal *b, int *cmp) {
    if (jv_is_num(a) && jv_is_num(b)) {
        double x = jv_num(a), y = jv_num(b);
        *cmp = x < y ? -1 : x > y ? 1 : 0;
        return 0;
    }
    if (a->t == JV_STR && b->t == JV_STR) {
        size_t n = a->n < b->n ? a->n : b->n;
        int r = memcmp(a->s, b->s, n); /* UTF-8 byte order is code point order */
        *cmp = r ? (r < 0 ? -1 : 1) : a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
        return 0;
    }
    if (a->t == JV_LIST && b->t == JV_LIST) {
        if (c->depth > JV_MAX_NEST) {
            jerr(c, at, ERR_PARSE, "cannot compare lists nested this deeply");
            return -2;
        }
        for (int i = 0; i < a->l->n && i < b->l->n; i++) {
            if (jv_equal(a->l->v[i], b->l->v[i])) continue;
            c->depth++;
            int r = jv_compare(c, at, a->l->v[i], b->l->v[i], cmp);
            c->depth--;
            return r;
        }
        *cmp = a->l->n < b->l->n ? -1 : a->l->n > b->l->n ? 1 : 0;
        return 0;
    }
    jerr(c, at, ERR_PARSE, "cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
    return -2;
}

const char *jv_type_name(const JVal *v) {
    switch (v->t) {
    case JV_UNDEF: return "undefined";
    case JV_NONE: return "none";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "string";
    case JV_LIST: return "list";
    case JV_DICT: return "dict";
    case JV_NS: return "namespace";
    case JV_FUNC: return "function";
    case JV_MACRO: return "macro";
    }
    return "?";
}

size_t ju_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
    return k;
}

size_t ju_offset(const char *s, size_t n, size_t i) {
    size_t k = 0, p = 0;
    while (p < n) {
        if (((unsigned char)s[p] & 0xC0) != 0x80) {
            if (k == i) return p;
            k++;
        }
        p++;
    }
    return n;
}

/* Python's float repr: the shortest text that reads back the same. */
static void float_append(StrBuf *b, double f) {
    if (isnan(f)) {
        sb_append(b, "nan");
        return;
    }
    if (isinf(f)) {
        sb_append(b, f < 0 ? "-inf" : "inf");
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf is d.ddde±XX: re-lay it out as Python does */
    char digits[32];
    int nd = 0;
    const char *q = buf;
    int neg = 0;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    if (neg) sb_appendc(b, '-');
    if (exp >= 16 || exp < -4) {
        sb_appendc(b, digits[0]);
        if (nd > 1) {
            sb_appendc(b, '.');
            sb_append(b, digits + 1);
        }
        sb_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        sb_append(b, "0.");
        for (int i = 0; i < -exp - 1; i++) sb_appendc(b, '0');
        sb_append(b, digits);
    } else {
        for (int i = 0; i <= exp; i++) sb_appendc(b, i < nd ? digits[i] : '0');
        sb_appendc(b, '.');
        if (nd > exp + 1) sb_append(b, digits + exp + 1);
        else sb_appendc(b, '0');
    }
}

static void repr_str(StrBuf *b, const char *s, size_t n) {
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    sb_appendc(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == (unsigned char)q || ch == '\\') {
            sb_appendc(b, '\\');
            sb_appendc(b, (char)ch);
        } else if (ch == '\n') sb_append(b, "\\n");
        else if (ch == '\r') sb_append(b, "\\r");
        else if (ch == '\t') sb_append(b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) sb_printf(b, "\\x%02x", ch);
        else sb_appendc(b, (char)ch);
    }
    sb_appendc(b, q);
}

static void str_at(StrBuf *b, const JVal *v, int depth);

static void repr_at(StrBuf *b, const JVal *v, int depth) {
    if (v->t == JV_STR) repr_str(b, v->s, v->n);
    else str_at(b, v, depth);
}

void jv_repr_append(StrBuf *b, const JVal *v) { repr_at(b, v, 0); }

void jv_str_append(StrBuf *b, const JVal *v) { str_at(b, v, 0); }

static void str_at(StrBuf *b, const JVal *v, int depth) {
    if (depth > JV_MAX_NEST && (v->t == JV_LIST || v->t == JV_DICT)) {
        sb_append(b, "...");
        return;
    }
    switch (v->t) {
    case JV_UNDEF: break;
    case JV_NONE: sb_append(b, "None"); break;
    case JV_BOOL: sb_append(b, v->b ? "True" : "False"); break;
    case JV_INT: sb_printf(b, "%lld", (long long)v->i); break;
    case JV_FLOAT: float_append(b, v->f); break;
    case JV_STR: sb_appendn(b, v->s, v->n); break;
    case JV_LIST:
        sb_appendc(b, v->i ? '(' : '[');
        for (int i = 0; i < v->l->n; i++) {
            if (i) sb_append(b, ", ");
            repr_at(b, v->l->v[i], depth + 1);
        }
        if (v->i && v->l->n == 1) sb_appendc(b, ',');
        sb_appendc(b, v->i ? ')' : ']');
        break;
    case JV_DICT: case JV_NS: /* jinja2 3.1's Namespace repr: <Namespace {attrs}> */
        if (v->t == JV_NS) sb_append(b, "<Namespace ");
        sb_appendc(b, '{');
        for (int i = 0; i < v->d->n; i++) {
            if (i) sb_append(b, ", ");
            repr_at(b, v->d->k[i], depth + 1);
            sb_append(b, ": ");
            repr_at(b, v->d->v[i], depth + 1);
        }
        sb_appendc(b, '}');
        if (v->t == JV_NS) sb_appendc(b, '>');
        break;
    case JV_FUNC: sb_append(b, "<function>"); break;
    case JV_MACRO: sb_append(b, "<Macro>"); break;
    }
}

JVal *jv_to_str(JCtx *c, JVal *v) {
    if (v->t == JV_STR) return v;
    StrBuf b;
    sb_init(&b);
    jv_str_append(&b, v);
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
}

/* ascii: ensure_ascii, every code point past 0x7F as \\uXXXX (a surrogate
 * pair past 0xFFFF), as Python's json does. */
static void json_str(StrBuf *b, const char *s, size_t n, int ascii) {
    sb_appendc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': sb_append(b, "\\\""); break;
        case '\\': sb_append(b, "\\\\"); break;
        case '\n': sb_append(b, "\\n"); break;
        case '\r': sb_append(b, "\\r"); break;
        case '\t': sb_append(b, "\\t"); break;
        case '\b': sb_append(b, "\\b"); break;
        case '\f': sb_append(b, "\\f"); break;
        default:
            if (ch < 0x20 || (ascii && ch == 0x7F)) {
                sb_printf(b, "\\u%04x", ch);
            } else if (ascii && ch >= 0x80) {
                int len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
                unsigned long cp = ch & (len == 4 ? 0x07 : len == 3 ? 0x0F : 0x1F);
                for (int k = 1; k < len && i + 1 < n; k++) cp = (cp << 6) | ((unsigned char)s[++i] & 0x3F);
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    sb_printf(b, "\\u%04lx\\u%04lx", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
                } else {
                    sb_printf(b, "\\u%04lx", cp);
                }
            } else {
                sb_appendc(b, (char)ch);
            }
        }
    }
    sb_appendc(b, '"');
}

static void item_sep(StrBuf *b, const JJsonOpt *o) {
    if (o->item_sep) sb_appendn(b, o->item_sep, o->item_sep_n);
    else sb_append(b, o->indent >= 0 ? "," : ", ");
}

static void json_nl(StrBuf *b, int indent, int level) {
    sb_appendc(b, '\n');
    for (int i = 0; i < indent * level; i++) sb_appendc(b, ' ');
}

static int key_cmp(const void *x, const void *y) {
    const JVal *a = *(JVal *const *)x, *b = *(JVal *const *)y;
    if (a->t == JV_STR && b->t == JV_STR) {
        size_t n = a->n < b->n ? a->n : b->n;
        int r = memcmp(a->s, b->s, n);
        return r ? r : (a->n > b->n) - (a->n < b->n);
    }
    return 0;
}

int jv_json_append(JCtx *c, const JNode *at, StrBuf *b, const JVal *v, const JJsonOpt *o,
                   int level) {
    int indent = o->indent;
    if (level > c->max_depth) return jerr(c, at, ERR_PARSE, "tojson: value nests too deeply"), -1;
    if (b->len > c->max_output)
        return jerr(c, at, ERR_PARSE, "tojson: output past %zu bytes", c->max_output), -1;
    switch (v->t) {
    case JV_NONE: sb_append(b, "null"); return 0;
    case JV_BOOL: sb_append(b, v->b ? "true" : "false"); return 0;
    case JV_INT: sb_printf(b, "%lld", (long long)v->i); return 0;
    case JV_FLOAT:
        if (isnan(v->f)) sb_append(b, "NaN");
        else if (isinf(v->f)) sb_append(b, v->f < 0 ? "-Infinity" : "Infinity");
        else float_append(b, v->f);
        return 0;
    case JV_STR: json_str(b, v->s, v->n, o->ascii); return 0;
    case JV_LIST:
        if (v->b)
            return jerr(c, at, ERR_PARSE, "tojson: Object of type generator is not JSON serializable (add |list)"), -1;
        if (!v->l->n) {
            sb_append(b, "[]");
            return 0;
        }
        sb_appendc(b, '[');
        for (int i = 0; i < v->l->n; i++) {
            if (i) item_sep(b, o);
            if (indent >= 0) json_nl(b, indent, level + 1);
            if (jv_json_append(c, at, b, v->l->v[i], o, level + 1)) return -1;
        }
        if (indent >= 0) json_nl(b, indent, level);
        sb_appendc(b, ']');
        return 0;
    case JV_DICT: case JV_NS: {
        JDict *d = v->d;
        if (!d->n) {
            sb_append(b, "{}");
            return 0;
        }
        int *order = xmalloc((size_t)d->n * sizeof *order);
        for (int i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) { /* stable insertion sort by key */
            for (int i = 1; i < d->n; i++) {
                int x = order[i], j = i;
                while (j > 0 && key_cmp(&d->k[order[j - 1]], &d->k[x]) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        sb_appendc(b, '{');
        for (int i = 0; i < d->n; i++) {
            JVal *k = d->k[order[i]];
            if (i) item_sep(b, o);
            if (indent >= 0) json_nl(b, indent, level + 1);
            if (k->t == JV_STR) {
                json_str(b, k->s, k->n, o->ascii);
            } else if (k->t == JV_INT || k->t == JV_FLOAT || k->t == JV_BOOL || k->t == JV_NONE) {
                StrBuf t;
                sb_init(&t);
                JJsonOpt ko = {.indent = -1};
                if (jv_json_append(c, at, &t, k, &ko, level)) {
                    sb_free(&t);
                    free(order);
                    return -1;
                }
                json_str(b, t.s, t.len, 0);
                sb_free(&t);
            } else {
                free(order);
                return jerr(c, at, ERR_PARSE, "tojson: keys must be str, int, float, bool or None, not %s",
                            jv_type_name(k)), -1;
            }
            if (o->key_sep) sb_appendn(b, o->key_sep, o->key_sep_n);
            else sb_append(b, ": ");
            if (jv_json_append(c, at, b, d->v[order[i]], o, level + 1)) {
                free(order);
                return -1;
            }
        }
        free(order);
        if (indent >= 0) json_nl(b, indent, level);
        sb_appendc(b, '}');
        return 0;
    }
    default:
        return jerr(c, at, ERR_PARSE, "tojson: Object of type %s is not JSON serializable",
                    v->t == JV_UNDEF ? "Undefined" : jv_type_name(v)), -1;
    }
}

/* ---- Errors and limits ---------------------------------------------------- */

JVal *jerr(JCtx *c, const JNode *at, int code, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) err_set(c->e, code, "template line %d, column %d: %s", at->line, at->col, msg);
    else err_set(c->e, code, "%s", msg);
    return NULL;
}

int jstep(JCtx *c, const JNode *at) {
    if (++c->steps > c->max_steps) {
        jerr(c, at, ERR_PARSE, "template ran past %ld evaluation steps (a loop that does not end?)",
             c->max_steps);
        return -1;
    }
    return 0;
}
