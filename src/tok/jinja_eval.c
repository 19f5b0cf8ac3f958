/* jinja_eval: renders a syntax tree. Semantics follow jinja2 as
 * transformers runs it: names resolve through the enclosing scopes (a for
 * loop and a macro body open a scope, an if does not), then the render
 * variables, then the global functions; a missing name, attribute or item
 * is jinja2's default Undefined (prints as "", is false, iterates as empty,
 * but using it in arithmetic, calling it or taking its attribute is an
 * error). Every evaluation counts a step; macro calls and nested
 * expressions count depth; the output is bounded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_int.h"

static int exec(JCtx *c, const JNode *n, JScope *s);

static JVal *lookup(JScope *s, const char *name) {
    size_t n = strlen(name);
    for (; s; s = s->parent) {
        JVal *v = jd_get(s->vars, name, n);
        if (v) return v;
    }
    return NULL;
}

static JScope *scope_new(JCtx *c, JScope *parent) {
    JScope *s = ja_alloc(c->ar, sizeof *s);
    s->parent = parent;
    s->vars = ja_alloc(c->ar, sizeof *s->vars);
    return s;
}

static JVal *undef_err(JCtx *c, const JNode *at, const JVal *u) {
    /* jinja2's words: "'x' is undefined", but a missing attribute's own
     * sentence ("'list object' has no attribute 'foo'") stands alone */
    if (u->s && strstr(u->s, " has no attribute ")) return jerr(c, at, ERR_PARSE, "%s", u->s);
    if (u->s) return jerr(c, at, ERR_PARSE, "%s is undefined", u->s);
    return jerr(c, at, ERR_PARSE, "a value is undefined");
}

static int out_check(JCtx *c, const JNode *at, size_t len) {
    if (len > c->max_output) {
        jerr(c, at, ERR_PARSE, "template output past %zu bytes", c->max_output);
        return -1;
    }
    return 0;
}

/* ---- Attribute and item access -------------------------------------------- */

JVal *jgetattr(JCtx *c, const JNode *at, JVal *obj, const char *name) {
    if (obj->t == JV_UNDEF) return undef_err(c, at, obj);
    if (obj->t == JV_NS) {
        JVal *v = jd_get(obj->d, name, strlen(name));
        return v ? v : jv_undef_named(c, ja_strndup(c->ar, name, strlen(name)));
    }
    JVal *m = jmethod(c, at, obj, name); /* jinja2 tries getattr before getitem */
    if (m) return m;
    if (c->e->code) return NULL;
    if (obj->t == JV_DICT) {
        JVal *v = jd_get(obj->d, name, strlen(name));
        if (v) return v;
    }
    char *desc = xasprintf("'%s object' has no attribute '%s'",
                           obj->t == JV_DICT ? "dict" : jv_type_name(obj), name);
    JVal *u = jv_undef_named(c, ja_strndup(c->ar, desc, strlen(desc)));
    free(desc);
    return u;
}

static int py_index(JCtx *c, const JNode *at, JVal *key, int64_t n, int64_t *out) {
    if (key->t != JV_INT && key->t != JV_BOOL) {
        jerr(c, at, ERR_PARSE, "indices must be integers, not %s", jv_type_name(key));
        return -1;
    }
    int64_t i = key->t == JV_INT ? key->i : key->b;
    if (i < 0) i += n;
    *out = i;
    return i < 0 || i >= n ? 1 : 0;
}

JVal *jgetitem(JCtx *c, const JNode *at, JVal *obj, JVal *key) {
    if (obj->t == JV_UNDEF) return undef_err(c, at, obj);
    if (obj->t == JV_DICT || obj->t == JV_NS) {
        JVal *v = jd_getv(obj->d, key);
        if (v) return v;
        if (key->t == JV_STR && obj->t == JV_DICT) {
            char *k = ja_strndup(c->ar, key->s, key->n);
            JVal *m = jmethod(c, at, obj, k);
            if (m || c->e->code) return m;
        }
        return jv_undef_named(c, "a missing dict key");
    }
    if (obj->t == JV_LIST) {
        if (key->t == JV_STR || obj->b) return jv_undef_named(c, "an item of a list attribute or generator");
        int64_t i;
        int r = py_index(c, at, key, obj->l->n, &i);
        if (r < 0) return NULL;
        return r ? jv_undef_named(c, "a list index out of range") : obj->l->v[i];
    }
    if (obj->t == JV_STR) {
        if (key->t == JV_STR) {
            char *k = ja_strndup(c->ar, key->s, key->n);
            JVal *m = jmethod(c, at, obj, k);
            return m || c->e->code ? m : jv_undef_named(c, "a string attribute");
        }
        int64_t i;
        int r = py_index(c, at, key, (int64_t)ju_len(obj->s, obj->n), &i);
        if (r < 0) return NULL;
        if (r) return jv_undef_named(c, "a string index out of range");
        size_t a = ju_offset(obj->s, obj->n, (size_t)i), b = ju_offset(obj->s, obj->n, (size_t)i + 1);
        return jv_str_nocopy(c, obj->s + a, b - a);
    }
    if (obj->t == JV_NONE) return jerr(c, at, ERR_PARSE, "None has no items ('NoneType' object is not subscriptable)");
    return jv_undef_named(c, "an item of a value that has none");
}

/* Python slice semantics on n elements. Fills idx with the chosen indices. */
static int64_t *slice_idx(JCtx *c, const JNode *at, int64_t n, JVal *a, JVal *b, JVal *st,
                          int64_t *count) {
    int64_t step = 1;
    if (st && st->t != JV_NONE) {
        if (st->t != JV_INT) return jerr(c, at, ERR_PARSE, "slice step must be an integer"), NULL;
        step = st->i;
        if (!step) return jerr(c, at, ERR_PARSE, "slice step cannot be zero"), NULL;
    }
    int64_t lo, hi;
    JVal *ends[2] = {a, b};
    int64_t v[2];
    for (int k = 0; k < 2; k++) {
        JVal *x = ends[k];
        if (!x || x->t == JV_NONE) {
            v[k] = step > 0 ? (k ? n : 0) : (k ? -1 : n - 1);
            continue;
        }
        if (x->t != JV_INT) return jerr(c, at, ERR_PARSE, "slice indices must be integers"), NULL;
        int64_t i = x->i;
        if (i < 0) i += n;
        if (step > 0) i = i < 0 ? 0 : i > n ? n : i;
        else i = i < -1 ? -1 : i > n - 1 ? n - 1 : i;
        v[k] = i;
    }
    lo = v[0];
    hi = v[1];
    int64_t *idx = ja_alloc(c->ar, (size_t)(n > 0 ? n : 1) * sizeof *idx);
    int64_t k = 0;
    if (step > 0)
        for (int64_t i = lo; i < hi; i += step) idx[k++] = i;
    else
        for (int64_t i = lo; i > hi; i += step) idx[k++] = i;
    *count = k;
    return idx;
}

static JVal *do_slice(JCtx *c, const JNode *at, JVal *obj, JVal *a, JVal *b, JVal *st) {
    if (obj->t == JV_UNDEF) return undef_err(c, at, obj);
    int64_t k;
    if (obj->t == JV_LIST) {
        int64_t *idx = slice_idx(c, at, obj->l->n, a, b, st, &k);
        if (!idx) return NULL;
        JVal *r = jv_list(c);
        for (int64_t i = 0; i < k; i++) jl_push(c, r->l, obj->l->v[idx[i]]);
        return r;
    }
    if (obj->t == JV_STR) {
        int64_t n = (int64_t)ju_len(obj->s, obj->n);
        int64_t *idx = slice_idx(c, at, n, a, b, st, &k);
        if (!idx) return NULL;
        size_t *off = ja_alloc(c->ar, (size_t)(n + 1) * sizeof *off);
        for (int64_t i = 0; i <= n; i++) off[i] = ju_offset(obj->s, obj->n, (size_t)i);
        StrBuf sb;
        sb_init(&sb);
        for (int64_t i = 0; i < k; i++)
            sb_appendn(&sb, obj->s + off[idx[i]], off[idx[i] + 1] - off[idx[i]]);
        JVal *r = jv_str(c, sb.s ? sb.s : "", sb.len);
        sb_free(&sb);
        return r;
    }
    return jerr(c, at, ERR_PARSE, "cannot slice a %s", jv_type_name(obj));
}

JVal *jiterate(JCtx *c, const JNode *at, JVal *v) {
    switch (v->t) {
    case JV_UNDEF: return jv_list(c);
    case JV_LIST:
        if (v->b) { /* a generator: the first pass consumes it */
            JVal *r = jv_list(c);
            *r->l = *v->l;
            v->l = ja_alloc(c->ar, sizeof *v->l);
            return r;
        }
        return v;
    case JV_DICT: {
        JVal *r = jv_list(c);
        for (int i = 0; i < v->d->n; i++) jl_push(c, r->l, v->d->k[i]);
        return r;
    }
    case JV_STR: {
        JVal *r = jv_list(c);
        size_t i = 0;
        while (i < v->n) {
            size_t j = i + 1;
            while (j < v->n && ((unsigned char)v->s[j] & 0xC0) == 0x80) j++;
            jl_push(c, r->l, jv_str_nocopy(c, v->s + i, j - i));
            i = j;
        }
        return r;
    }
    default:
        return jerr(c, at, ERR_PARSE, "'%s' object is not iterable",
                    v->t == JV_NONE ? "NoneType" : jv_type_name(v));
    }
}

/* ---- Operators ------------------------------------------------------------ */

/* Python's ints grow without bound; this interpreter's are 64-bit, so a
 * result past them is an error rather than a wrapped number. */
static JVal *int_overflow(JCtx *c, const JNode *at) {
    return jerr(c, at, ERR_UNSUPPORTED, "integer result past 64 bits (Python's big integers are not supported)");
}

static JVal *arith(JCtx *c, const JNode *at, int op, JVal *a, JVal *b) {
    if (op == JOP_MOD && a->t == JV_STR) return jformat_percent(c, at, a, b);
    if (a->t == JV_UNDEF) return undef_err(c, at, a);
    if (b->t == JV_UNDEF) return undef_err(c, at, b);
    if (jv_is_num(a) && jv_is_num(b)) {
        int ints = a->t != JV_FLOAT && b->t != JV_FLOAT;
        int64_t x = a->t == JV_INT ? a->i : a->b, y = b->t == JV_INT ? b->i : b->b;
        double fx = jv_num(a), fy = jv_num(b);
        switch (op) {
        case JOP_ADD: case JOP_SUB: case JOP_MUL: {
            if (!ints) return jv_float(c, op == JOP_ADD ? fx + fy : op == JOP_SUB ? fx - fy : fx * fy);
            int64_t r;
            int ovf = op == JOP_ADD ? __builtin_add_overflow(x, y, &r)
                    : op == JOP_SUB ? __builtin_sub_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r);
            if (ovf) return int_overflow(c, at);
            return jv_int(c, r);
        }
        case JOP_DIV:
            if (fy == 0) return jerr(c, at, ERR_PARSE, "division by zero");
            return jv_float(c, fx / fy);
        case JOP_FDIV:
        case JOP_MOD:
            if (ints ? y == 0 : fy == 0) return jerr(c, at, ERR_PARSE, "division by zero");
            if (ints) {
                if (x == INT64_MIN && y == -1) return op == JOP_FDIV ? int_overflow(c, at) : jv_int(c, 0);
                int64_t q = x / y, r = x % y;
                if (r && ((r < 0) != (y < 0))) {
                    q--;
                    r += y;
                }
                return jv_int(c, op == JOP_FDIV ? q : r);
            } else {
                double q = floor(fx / fy), r = fmod(fx, fy);
                if (r && ((r < 0) != (fy < 0))) r += fy;
                return jv_float(c, op == JOP_FDIV ? q : r);
            }
        case JOP_POW:
            if (ints && y >= 0) {
                if (x == 0 || x == 1) return jv_int(c, y == 0 ? 1 : x);
                if (x == -1) return jv_int(c, (y % 2) ? -1 : 1);
                int64_t r = 1;
                for (int64_t i = 0; i < y; i++)
                    if (__builtin_mul_overflow(r, x, &r)) return int_overflow(c, at);
                return jv_int(c, r);
            }
            return jv_float(c, pow(fx, fy));
        }
    }
    if (op == JOP_ADD && a->t == JV_STR && b->t == JV_STR) {
        if (a->b != b->b) { /* Markup + str: markupsafe escapes the plain side */
            if (!a->b) a = jfilter(c, at, "e", a, NULL, 0, NULL, NULL, 0, NULL);
            else b = jfilter(c, at, "e", b, NULL, 0, NULL, NULL, 0, NULL);
            if (!a || !b) return NULL;
        }
        if (out_check(c, at, a->n + b->n)) return NULL;
        char *s = ja_alloc(c->ar, a->n + b->n + 1);
        memcpy(s, a->s, a->n);
        memcpy(s + a->n, b->s, b->n);
        JVal *r = jv_str_nocopy(c, s, a->n + b->n);
        r->b = a->b;
        return r;
    }
    if (op == JOP_ADD && a->t == JV_LIST && b->t == JV_LIST) {
        JVal *r = jv_list(c);
        for (int i = 0; i < a->l->n; i++) jl_push(c, r->l, a->l->v[i]);
        for (int i = 0; i < b->l->n; i++) jl_push(c, r->l, b->l->v[i]);
        return r;
    }
    if (op == JOP_MUL && ((a->t == JV_STR && b->t == JV_INT) || (a->t == JV_INT && b->t == JV_STR))) {
        JVal *s = a->t == JV_STR ? a : b;
        int64_t k = a->t == JV_INT ? a->i : b->i;
        if (k <= 0) return jv_str(c, "", 0);
        if (s->n && (uint64_t)k > c->max_output / s->n) return out_check(c, at, c->max_output + 1), NULL;
        StrBuf sb;
        sb_init(&sb);
        for (int64_t i = 0; i < k; i++) sb_appendn(&sb, s->s, s->n);
        JVal *r = jv_str(c, sb.s ? sb.s : "", sb.len);
        sb_free(&sb);
        return r;
    }
    if (op == JOP_MUL && a->t == JV_LIST && b->t == JV_INT) {
        JVal *r = jv_list(c);
        if (a->l->n && (uint64_t)b->i > (uint64_t)c->max_output / (uint64_t)a->l->n)
            return jerr(c, at, ERR_PARSE, "list repetition too large");
        for (int64_t i = 0; i < b->i; i++) {
            if (jstep(c, at)) return NULL;
            for (int j = 0; j < a->l->n; j++) jl_push(c, r->l, a->l->v[j]);
        }
        return r;
    }
    static const char *const NAMES[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    return jerr(c, at, ERR_PARSE, "unsupported operand types for %s: %s and %s",
                op <= JOP_POW ? NAMES[op] : "?", jv_type_name(a), jv_type_name(b));
}

static int contains(JCtx *c, const JNode *at, JVal *item, JVal *in) {
    if (in->t == JV_STR) {
        if (item->t != JV_STR) {
            jerr(c, at, ERR_PARSE, "'in <string>' requires a string on the left, not %s",
                 jv_type_name(item));
            return -1;
        }
        if (!item->n) return 1;
        if (item->n > in->n) return 0;
        for (size_t i = 0; i + item->n <= in->n; i++)
            if (!memcmp(in->s + i, item->s, item->n)) return 1;
        return 0;
    }
    if (in->t == JV_DICT || in->t == JV_NS) return jd_getv(in->d, item) != NULL;
    if (in->t == JV_LIST) {
        for (int i = 0; i < in->l->n; i++)
            if (jv_equal(in->l->v[i], item)) return 1;
        return 0;
    }
    if (in->t == JV_UNDEF) return 0;
    jerr(c, at, ERR_PARSE, "argument of type '%s' is not iterable",
         in->t == JV_NONE ? "NoneType" : jv_type_name(in));
    return -1;
}

static JVal *binop(JCtx *c, const JNode *n, JVal *a, JVal *b) {
    switch (n->op) {
    case JOP_CAT: {
        StrBuf sb;
        sb_init(&sb);
        jv_str_append(&sb, a);
        jv_str_append(&sb, b);
        if (out_check(c, n, sb.len)) return sb_free(&sb), NULL;
        JVal *r = jv_str(c, sb.s ? sb.s : "", sb.len);
        sb_free(&sb);
        return r;
    }
    case JOP_EQ: return JV_BOOLV(jv_equal(a, b));
    case JOP_NE: return JV_BOOLV(!jv_equal(a, b));
    case JOP_LT: case JOP_LE: case JOP_GT: case JOP_GE: {
        if (a->t == JV_UNDEF) return undef_err(c, n, a);
        if (b->t == JV_UNDEF) return undef_err(c, n, b);
        int cmp;
        if (jv_compare(c, n, a, b, &cmp)) return NULL;
        int r = n->op == JOP_LT ? cmp < 0 : n->op == JOP_LE ? cmp <= 0 : n->op == JOP_GT ? cmp > 0 : cmp >= 0;
        return JV_BOOLV(r);
    }
    case JOP_IN: case JOP_NOTIN: {
        int r = contains(c, n, a, b);
        if (r < 0) return NULL;
        return JV_BOOLV(n->op == JOP_IN ? r : !r);
    }
    default: return arith(c, n, n->op, a, b);
    }
}

/* ---- Calls and macros ----------------------------------------------------- */

static JVal *call_macro(JCtx *c, const JNode *at, JVal *m, JVal **args, int nargs,
                        const char **kwn, JVal **kwv, int nkw) {
    const JNode *def = m->macro;
    if (++c->calls > c->max_calls) {
        c->calls--;
        return jerr(c, at, ERR_PARSE, "macro calls nest deeper than %d", c->max_calls);
    }
    JScope *s = scope_new(c, m->closure);
    if (nargs > def->nnames) {
        c->calls--;
        return jerr(c, at, ERR_PARSE, "macro '%s' takes at most %d arguments, %d given",
                    def->name ? def->name : "caller", def->nnames, nargs);
    }
    for (int i = 0; i < def->nnames; i++) {
        JVal *v = i < nargs ? args[i] : NULL;
        for (int k = 0; k < nkw; k++)
            if (!strcmp(kwn[k], def->names[i])) v = kwv[k];
        if (!v) {
            if (def->w[i]) {
                if (!(v = jeval(c, def->w[i], s))) return c->calls--, NULL;
            } else {
                v = jv_undef_named(c, def->names[i]);
            }
        }
        jd_setz(c, s->vars, def->names[i], v);
    }
    for (int k = 0; k < nkw; k++) {
        int known = !strcmp(kwn[k], "caller");
        for (int i = 0; i < def->nnames; i++)
            if (!strcmp(kwn[k], def->names[i])) known = 1;
        if (!known) {
            c->calls--;
            return jerr(c, at, ERR_PARSE, "macro '%s' takes no keyword argument '%s'",
                        def->name ? def->name : "caller", kwn[k]);
        }
    }
    if (m->caller) jd_setz(c, s->vars, "caller", m->caller);
    StrBuf buf, *saved = c->out;
    sb_init(&buf);
    c->out = &buf;
    int rc = exec(c, def->b, s);
    c->out = saved;
    c->calls--;
    if (rc) {
        sb_free(&buf);
        return NULL;
    }
    JVal *r = jv_str(c, buf.s ? buf.s : "", buf.len);
    sb_free(&buf);
    return r;
}

JVal *jcall(JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs, const char **kwn,
            JVal **kwv, int nkw) {
    if (fn->t == JV_FUNC) return fn->fn(c, at, fn, args, nargs, kwn, kwv, nkw);
    if (fn->t == JV_MACRO) return call_macro(c, at, fn, args, nargs, kwn, kwv, nkw);
    if (fn->t == JV_UNDEF) {
        if (fn->s) return jerr(c, at, ERR_PARSE, "%s is undefined and cannot be called", fn->s);
        return jerr(c, at, ERR_PARSE, "an undefined value cannot be called");
    }
    return jerr(c, at, ERR_PARSE, "a %s is not callable", jv_type_name(fn));
}

/* Evaluates the positional and keyword arguments of a call-like node. */
static int eval_args(JCtx *c, const JNode *n, JScope *s, JVal ***args, JVal ***kwv) {
    *args = ja_alloc(c->ar, (size_t)(n->n + 1) * sizeof **args);
    *kwv = ja_alloc(c->ar, (size_t)(n->nw + 1) * sizeof **kwv);
    for (int i = 0; i < n->n; i++)
        if (!((*args)[i] = jeval(c, n->v[i], s))) return -1;
    for (int i = 0; i < n->nw; i++)
        if (!((*kwv)[i] = jeval(c, n->w[i], s))) return -1;
    return 0;
}

static JVal *apply_filter(JCtx *c, const JNode *f, JVal *x, JScope *s) {
    JVal **args, **kwv;
    if (eval_args(c, f, s, &args, &kwv)) return NULL;
    return jfilter(c, f, f->name, x, args, f->n, f->names, kwv, f->nw, s);
}

static JVal *make_macro(JCtx *c, const JNode *def, JScope *s) {
    JVal *m = ja_alloc(c->ar, sizeof *m);
    m->t = JV_MACRO;
    m->macro = def;
    m->closure = s;
    return m;
}

/* ---- Expressions ---------------------------------------------------------- */

JVal *jeval(JCtx *c, const JNode *n, JScope *s) {
    if (jstep(c, n)) return NULL;
    switch (n->k) {
    case JN_LIT: return n->lit;
    case JN_NAME: {
        JVal *v = lookup(s, n->name);
        if (!v) v = jglobal(c, n->name);
        if (!v) {
            char *d = xasprintf("'%s'", n->name);
            v = jv_undef_named(c, ja_strndup(c->ar, d, strlen(d)));
            free(d);
        }
        return v;
    }
    case JN_ATTR: {
        JVal *o = jeval(c, n->a, s);
        return o ? jgetattr(c, n, o, n->name) : NULL;
    }
    case JN_ITEM: {
        JVal *o = jeval(c, n->a, s), *k = o ? jeval(c, n->b, s) : NULL;
        return k ? jgetitem(c, n, o, k) : NULL;
    }
    case JN_SLICE: {
        JVal *o = jeval(c, n->a, s);
        if (!o) return NULL;
        JVal *p[3] = {NULL, NULL, NULL};
        const JNode *q[3] = {n->b, n->c, n->d};
        for (int i = 0; i < 3; i++)
            if (q[i] && !(p[i] = jeval(c, q[i], s))) return NULL;
        return do_slice(c, n, o, p[0], p[1], p[2]);
    }
    case JN_CALL: {
        JVal *fn = jeval(c, n->a, s);
        if (!fn) return NULL;
        JVal **args, **kwv;
        if (eval_args(c, n, s, &args, &kwv)) return NULL;
        return jcall(c, n, fn, args, n->n, n->names, kwv, n->nw);
    }
    case JN_FILTER: {
        JVal *x = jeval(c, n->a, s);
        return x ? apply_filter(c, n, x, s) : NULL;
    }
    case JN_TEST: {
        JVal *x = jeval(c, n->a, s);
        if (!x) return NULL;
        JVal **args, **kwv;
        if (eval_args(c, n, s, &args, &kwv)) return NULL;
        int r = jtest(c, n, n->name, x, args, n->n);
        if (r < 0) return NULL;
        return JV_BOOLV(n->op ? !r : r);
    }
    case JN_BINOP: {
        JVal *a = jeval(c, n->a, s), *b = a ? jeval(c, n->b, s) : NULL;
        return b ? binop(c, n, a, b) : NULL;
    }
    case JN_COMPARE: {
        /* Python's chain: stops at the first false link, each operand once */
        JVal *a = jeval(c, n->a, s), *r = NULL;
        for (int i = 0; a && i < n->n; i++) {
            JVal *b = jeval(c, n->v[i]->b, s);
            if (!b || !(r = binop(c, n->v[i], a, b))) return NULL;
            if (!jv_truthy(r)) return r;
            a = b;
        }
        return a ? r : NULL;
    }
    case JN_NEG: case JN_POS: {
        JVal *a = jeval(c, n->a, s);
        if (!a) return NULL;
        if (!jv_is_num(a)) return jerr(c, n, ERR_PARSE, "bad operand type for unary %c: %s",
                                       n->k == JN_NEG ? '-' : '+', jv_type_name(a));
        if (n->k == JN_POS) return a->t == JV_BOOL ? jv_int(c, a->b) : a;
        if (a->t == JV_FLOAT) return jv_float(c, -a->f);
        if (a->t == JV_INT && a->i == INT64_MIN) return int_overflow(c, n);
        return jv_int(c, a->t == JV_INT ? -a->i : -(int64_t)a->b);
    }
    case JN_NOT: {
        JVal *a = jeval(c, n->a, s);
        return a ? JV_BOOLV(!jv_truthy(a)) : NULL;
    }
    case JN_AND: {
        JVal *a = jeval(c, n->a, s);
        if (!a || !jv_truthy(a)) return a;
        return jeval(c, n->b, s);
    }
    case JN_OR: {
        JVal *a = jeval(c, n->a, s);
        if (!a || jv_truthy(a)) return a;
        return jeval(c, n->b, s);
    }
    case JN_COND: {
        JVal *cond = jeval(c, n->a, s);
        if (!cond) return NULL;
        if (jv_truthy(cond)) return jeval(c, n->b, s);
        return n->c ? jeval(c, n->c, s) : jv_undef_named(c, "the else of an if expression");
    }
    case JN_LIST: case JN_TUPLE: {
        JVal *l = jv_list(c);
        l->i = n->k == JN_TUPLE;
        for (int i = 0; i < n->n; i++) {
            JVal *x = jeval(c, n->v[i], s);
            if (!x) return NULL;
            jl_push(c, l->l, x);
        }
        return l;
    }
    case JN_DICT: {
        JVal *d = jv_dict(c);
        for (int i = 0; i < n->n; i++) {
            JVal *k = jeval(c, n->v[i], s), *v = k ? jeval(c, n->w[i], s) : NULL;
            if (!v) return NULL;
            if (k->t == JV_LIST || k->t == JV_DICT || k->t == JV_UNDEF)
                return jerr(c, n->v[i], ERR_PARSE, "unhashable dict key: %s", jv_type_name(k));
            jd_set(c, d->d, k, v);
        }
        return d;
    }
    default: return jerr(c, n, ERR_INTERNAL, "not an expression");
    }
}

/* ---- Statements ----------------------------------------------------------- */

static int assign(JCtx *c, const JNode *at, JScope *s, const char **names, int nn, JVal *v) {
    if (nn == 1) {
        jd_setz(c, s->vars, names[0], v);
        return 0;
    }
    JVal *l = jiterate(c, at, v);
    if (!l) return -1;
    if (l->l->n != nn) {
        jerr(c, at, ERR_PARSE, "cannot unpack %d values into %d names", l->l->n, nn);
        return -1;
    }
    for (int i = 0; i < nn; i++) jd_setz(c, s->vars, names[i], l->l->v[i]);
    return 0;
}

static int render_to(JCtx *c, const JNode *body, JScope *s, StrBuf *buf) {
    StrBuf *saved = c->out;
    c->out = buf;
    int rc = exec(c, body, s);
    c->out = saved;
    return rc;
}

/* loop.cycle(a, b, ...): the argument at this iteration's index, round. */
static JVal *loop_cycle(JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs,
                        const char **kwn, JVal **kwv, int nkw) {
    (void)kwn, (void)kwv;
    if (nkw) return jerr(c, at, ERR_PARSE, "loop.cycle takes no keyword arguments");
    if (!nargs) return jerr(c, at, ERR_PARSE, "loop.cycle: no items for cycling given");
    return args[fn->self->i % nargs];
}

/* loop.changed(*values): true when the values differ from those of the
 * last call in this loop (the first call: true). fn->self is the loop's
 * state, a dict holding the last values under "last". */
static JVal *loop_changed(JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs,
                          const char **kwn, JVal **kwv, int nkw) {
    (void)at, (void)kwn, (void)kwv, (void)nkw;
    JVal *now = jv_list(c);
    now->i = 1;
    for (int k = 0; k < nargs; k++) jl_push(c, now->l, args[k]);
    JVal *last = jd_get(fn->self->d, "last", 4);
    if (last && jv_equal(last, now)) return JV_BOOLV(0);
    jd_setz(c, fn->self->d, "last", now);
    return JV_BOOLV(1);
}

static JVal *loop_var(JCtx *c, JVal *items, int i, JVal *state) {
    JVal *d = jv_dict(c);
    int n = items->l->n;
    jd_setz(c, d->d, "index", jv_int(c, i + 1));
    jd_setz(c, d->d, "index0", jv_int(c, i));
    jd_setz(c, d->d, "revindex", jv_int(c, n - i));
    jd_setz(c, d->d, "revindex0", jv_int(c, n - i - 1));
    jd_setz(c, d->d, "first", JV_BOOLV(i == 0));
    jd_setz(c, d->d, "last", JV_BOOLV(i == n - 1));
    jd_setz(c, d->d, "length", jv_int(c, n));
    jd_setz(c, d->d, "depth", jv_int(c, 1));
    jd_setz(c, d->d, "depth0", jv_int(c, 0));
    if (i > 0) jd_setz(c, d->d, "previtem", items->l->v[i - 1]);
    if (i + 1 < n) jd_setz(c, d->d, "nextitem", items->l->v[i + 1]);
    jd_setz(c, d->d, "cycle", jv_func(c, loop_cycle, jv_int(c, i)));
    jd_setz(c, d->d, "changed", jv_func(c, loop_changed, state));
    return d;
}

/* A block set's or filter block's body, rendered, through its filters
 * (n->w); NULL on error. */
static JVal *render_filtered(JCtx *c, const JNode *n, JScope *s) {
    StrBuf buf;
    sb_init(&buf);
    if (render_to(c, n->b, s, &buf)) return sb_free(&buf), NULL;
    JVal *v = jv_str(c, buf.s ? buf.s : "", buf.len);
    sb_free(&buf);
    for (int i = 0; i < n->nw && v; i++) v = apply_filter(c, n->w[i], v, s);
    return v;
}

static int exec_for(JCtx *c, const JNode *n, JScope *s) {
    JVal *it = jeval(c, n->a, s);
    if (!it) return -1;
    JVal *items = jiterate(c, n->a, it);
    if (!items) return -1;
    JScope *ls = scope_new(c, s);
    if (n->d) { /* `for x in y if cond`: filtered before loop.* is counted */
        JVal *kept = jv_list(c);
        for (int i = 0; i < items->l->n; i++) {
            if (assign(c, n, ls, n->names, n->nnames, items->l->v[i])) return -1;
            JVal *ok = jeval(c, n->d, ls);
            if (!ok) return -1;
            if (jv_truthy(ok)) jl_push(c, kept->l, items->l->v[i]);
        }
        items = kept;
        ls = scope_new(c, s);
    }
    if (!items->l->n) return n->c ? exec(c, n->c, s) : 0;
    JVal *state = jv_dict(c); /* loop.changed's memory */
    for (int i = 0; i < items->l->n; i++) {
        if (jstep(c, n)) return -1;
        if (assign(c, n, ls, n->names, n->nnames, items->l->v[i])) return -1;
        jd_setz(c, ls->vars, "loop", loop_var(c, items, i, state));
        if (exec(c, n->b, ls)) return -1;
        if (c->cont) c->cont = 0;
        if (c->brk) {
            c->brk = 0;
            break;
        }
    }
    return 0;
}

static int exec(JCtx *c, const JNode *n, JScope *s) {
    if (jstep(c, n)) return -1;
    switch (n->k) {
    case JN_BODY:
        for (int i = 0; i < n->n; i++) {
            if (exec(c, n->v[i], s)) return -1;
            if (c->brk || c->cont) return 0;
        }
        return 0;
    case JN_DATA:
        sb_appendn(c->out, n->name, (size_t)n->nnames);
        return out_check(c, n, c->out->len);
    case JN_OUTPUT: {
        JVal *v = jeval(c, n->a, s);
        if (!v) return -1;
        if (v->t == JV_LIST && v->b) {
            jerr(c, n, ERR_UNSUPPORTED, "printing a generator object (jinja2 prints its address; add |list)");
            return -1;
        }
        jv_str_append(c->out, v);
        return out_check(c, n, c->out->len);
    }
    case JN_IF: {
        JVal *v = jeval(c, n->a, s);
        if (!v) return -1;
        if (jv_truthy(v)) return exec(c, n->b, s);
        return n->c ? exec(c, n->c, s) : 0;
    }
    case JN_FOR: return exec_for(c, n, s);
    case JN_SET: {
        JVal *v = jeval(c, n->a, s);
        if (!v) return -1;
        if (n->name) { /* ns.attr = v */
            JVal *ns = lookup(s, n->names[0]);
            if (!ns || ns->t != JV_NS) {
                jerr(c, n, ERR_PARSE, "cannot assign attribute '%s' on '%s': not a namespace()",
                     n->name, n->names[0]);
                return -1;
            }
            jd_setz(c, ns->d, n->name, v);
            return 0;
        }
        return assign(c, n, s, n->names, n->nnames, v);
    }
    case JN_SETBLOCK: {
        JVal *v = render_filtered(c, n, s);
        if (!v) return -1;
        jd_setz(c, s->vars, n->names[0], v);
        return 0;
    }
    case JN_MACRO:
        jd_setz(c, s->vars, n->name, make_macro(c, n, s));
        return 0;
    case JN_CALLBLOCK: {
        const JNode *call = n->a;
        JVal *fn = jeval(c, call->a, s);
        if (!fn) return -1;
        JVal **args, **kwv;
        if (eval_args(c, call, s, &args, &kwv)) return -1;
        JVal *caller = make_macro(c, n, s);
        if (fn->t == JV_MACRO) { /* a copy of the macro that knows its caller */
            JVal *m = ja_alloc(c->ar, sizeof *m);
            *m = *fn;
            m->caller = caller;
            fn = m;
        }
        JVal *r = jcall(c, call, fn, args, call->n, call->names, kwv, call->nw);
        if (!r) return -1;
        jv_str_append(c->out, r);
        return out_check(c, n, c->out->len);
    }
    case JN_FILTERBLOCK: {
        JVal *v = render_filtered(c, n, s);
        if (!v) return -1;
        jv_str_append(c->out, v);
        return out_check(c, n, c->out->len);
    }
    case JN_BREAK: c->brk = 1; return 0;
    case JN_CONTINUE: c->cont = 1; return 0;
    default: jerr(c, n, ERR_INTERNAL, "not a statement"); return -1;
    }
}

/* ---- Public entry points -------------------------------------------------- */

JinjaLimits jinja_limits_default(void) {
    JinjaLimits l = {.max_steps = 10000000, .max_depth = 100, .max_calls = 40, .max_output = 16u << 20};
    return l;
}

JinjaTemplate *jinja_parse(const char *src, const JinjaLimits *lim, Err *e) {
    JinjaTemplate *t = xcalloc(1, sizeof *t);
    t->lim = lim ? *lim : jinja_limits_default();
    JTok *toks;
    int n;
    if (jinja_lex(src, &t->ar, &toks, &n, e)) {
        jinja_free(t);
        return NULL;
    }
    t->root = jinja_parse_tokens(toks, n, &t->ar, t->lim.max_depth, e);
    free(toks);
    if (!t->root) {
        jinja_free(t);
        return NULL;
    }
    return t;
}

void jinja_free(JinjaTemplate *t) {
    if (!t) return;
    ja_free(&t->ar);
    free(t);
}

int jinja_render(const JinjaTemplate *t, const json_t *vars, time_t now, char **out, Err *e) {
    Err local;
    if (!e) e = &local;
    JArena ar = {0};
    StrBuf buf;
    sb_init(&buf);
    err_clear(e);
    JCtx c = {.ar = &ar, .out = &buf, .e = e, .max_steps = t->lim.max_steps,
              .max_depth = t->lim.max_depth, .max_calls = t->lim.max_calls > 0 ? t->lim.max_calls : 40,
              .max_output = t->lim.max_output,
              .now = now ? now : time(NULL), .now_utc = now != 0};
    c.globals = scope_new(&c, NULL);
    if (vars && json_is_object(vars)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)vars, k, x) jd_setz(&c, c.globals->vars, k, jv_from_json(&c, x));
    }
    JScope *top = scope_new(&c, c.globals);
    int rc = exec(&c, t->root, top);
    ja_free(&ar);
    if (rc) {
        sb_free(&buf);
        *out = NULL;
        return -1;
    }
    *out = buf.s ? sb_take(&buf) : xstrdup("");
    return 0;
}
