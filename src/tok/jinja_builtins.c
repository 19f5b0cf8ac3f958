/* jinja_builtins: the filters, tests, str/dict/list methods and global
 * functions templates call, each as jinja2 (3.1) and Python define it, plus
 * what transformers adds: tojson as json.dumps(ensure_ascii=False, indent,
 * sort_keys), raise_exception(msg) and strftime_now(fmt). As in jinja2's
 * ImmutableSandboxedEnvironment, methods that modify a list or a dict
 * (append, update, pop, ...) are refused. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "tok/jinja_int.h"

/* ---- Arguments ------------------------------------------------------------ */

typedef struct Args {
    JVal **a;
    int n;
    const char **kn;
    JVal **kv;
    int nk;
} Args;

/* The argument at position pos (after the filtered value) or named name. */
static JVal *arg(const Args *A, int pos, const char *name) {
    for (int k = 0; k < A->nk; k++)
        if (name && !strcmp(A->kn[k], name)) return A->kv[k];
    return pos >= 0 && pos < A->n ? A->a[pos] : NULL;
}

static int arg_bool(const Args *A, int pos, const char *name, int def) {
    JVal *v = arg(A, pos, name);
    return v ? jv_truthy(v) : def;
}

static int arg_int(JCtx *c, const JNode *at, const Args *A, int pos, const char *name, int64_t def,
                   int64_t *out) {
    JVal *v = arg(A, pos, name);
    if (!v || v->t == JV_NONE) {
        *out = def;
        return 0;
    }
    if (v->t == JV_INT) *out = v->i;
    else if (v->t == JV_BOOL) *out = v->b;
    else return jerr(c, at, ERR_PARSE, "argument '%s' must be an integer, not %s", name, jv_type_name(v)), -1;
    return 0;
}

static JVal *need_str(JCtx *c, const JNode *at, JVal *v, const char *what) {
    if (v && v->t == JV_STR) return v;
    return jerr(c, at, ERR_PARSE, "%s: expected a string, got %s", what, v ? jv_type_name(v) : "nothing");
}

/* ---- Unicode helpers ------------------------------------------------------ */

static int32_t u_next(const char *s, size_t n, size_t *i) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + *i, (utf8proc_ssize_t)(n - *i), &cp);
    if (k <= 0) {
        cp = (unsigned char)s[*i];
        k = 1;
    }
    *i += (size_t)k;
    return cp;
}

static void u_put(StrBuf *b, int32_t cp) {
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, buf);
    sb_appendn(b, (const char *)buf, (size_t)k);
}

static int py_space(int32_t cp) {
    return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static int u_cased(int32_t cp) { return utf8proc_toupper(cp) != cp || utf8proc_tolower(cp) != cp; }

/* mode: 'u' upper, 'l' lower, 't' Python title, 'c' capitalize. */
static JVal *u_case(JCtx *c, JVal *v, char mode) {
    StrBuf b;
    sb_init(&b);
    size_t i = 0;
    int prev_cased = 0, first = 1;
    while (i < v->n) {
        int32_t cp = u_next(v->s, v->n, &i);
        int32_t r = cp;
        if (mode == 'u') r = utf8proc_toupper(cp);
        else if (mode == 'l') r = utf8proc_tolower(cp);
        else if (mode == 't') r = prev_cased ? utf8proc_tolower(cp) : utf8proc_toupper(cp);
        else r = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
        prev_cased = u_cased(cp);
        first = 0;
        u_put(&b, r);
    }
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    r->b = v->b; /* Markup methods return Markup */
    sb_free(&b);
    return r;
}

/* Whether strip removes cp: one of chars, or (chars NULL) whitespace. */
static int strip_has(const JVal *chars, int32_t cp) {
    if (!chars) return py_space(cp);
    for (size_t j = 0; j < chars->n;)
        if (u_next(chars->s, chars->n, &j) == cp) return 1;
    return 0;
}

/* strip: which 1 left, 2 right, 3 both; chars NULL: whitespace. */
static JVal *u_strip(JCtx *c, JVal *v, JVal *chars, int which) {
    size_t a = 0, e = v->n;
    if (which & 1) {
        while (a < e) {
            size_t i = a;
            int32_t cp = u_next(v->s, e, &i);
            if (!strip_has(chars, cp)) break;
            a = i;
        }
    }
    if (which & 2) {
        while (e > a) {
            size_t st = e - 1;
            while (st > a && ((unsigned char)v->s[st] & 0xC0) == 0x80) st--;
            size_t i = st;
            int32_t cp = u_next(v->s, e, &i);
            if (!strip_has(chars, cp)) break;
            e = st;
        }
    }
    JVal *r = jv_str_nocopy(c, v->s + a, e - a);
    r->b = v->b;
    return r;
}

static JVal *str_replace(JCtx *c, const JNode *at, JVal *s, JVal *old, JVal *new_, int64_t count) {
    if (!need_str(c, at, old, "replace") || !need_str(c, at, new_, "replace")) return NULL;
    StrBuf b;
    sb_init(&b);
    size_t i = 0;
    int64_t done = 0;
    if (!old->n) { /* Python inserts new between every character */
        while (i <= s->n && (count < 0 || done < count)) {
            sb_appendn(&b, new_->s, new_->n);
            done++;
            if (i == s->n) {
                i++;
                break;
            }
            size_t j = i;
            u_next(s->s, s->n, &j);
            sb_appendn(&b, s->s + i, j - i);
            i = j;
            if (b.len > c->max_output) break;
        }
        if (i < s->n) sb_appendn(&b, s->s + i, s->n - i);
    } else {
        while (i < s->n) {
            if ((count < 0 || done < count) && i + old->n <= s->n && !memcmp(s->s + i, old->s, old->n)) {
                sb_appendn(&b, new_->s, new_->n);
                i += old->n;
                done++;
            } else {
                sb_appendc(&b, s->s[i++]);
            }
            if (b.len > c->max_output) break;
        }
    }
    if (b.len > c->max_output) {
        sb_free(&b);
        return jerr(c, at, ERR_PARSE, "replace: result past %zu bytes", c->max_output);
    }
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
}

static JVal *str_split(JCtx *c, const JNode *at, JVal *s, JVal *sep, int64_t maxsplit, int right) {
    JVal *r = jv_list(c);
    if (!sep || sep->t == JV_NONE) {
        /* runs of whitespace; leading/trailing dropped */
        size_t i = 0;
        JVal *l = jv_list(c);
        while (i < s->n) {
            size_t j = i;
            while (j < s->n) {
                size_t k = j;
                if (!py_space(u_next(s->s, s->n, &k))) break;
                j = k;
            }
            if (j >= s->n) break;
            size_t w = j;
            while (w < s->n) {
                size_t k = w;
                if (py_space(u_next(s->s, s->n, &k))) break;
                w = k;
            }
            jl_push(c, l->l, jv_str_nocopy(c, s->s + j, w - j));
            i = w;
        }
        /* past maxsplit words, CPython keeps the rest whole: split's from the next
         * word to the end (trailing blanks kept), rsplit's from the start (leading
         * blanks kept) to the word before the last maxsplit ones */
        if (maxsplit < 0 || l->l->n <= maxsplit) return l;
        if (right) {
            int h = l->l->n - (int)maxsplit - 1;
            JVal *last = l->l->v[h];
            jl_push(c, r->l, jv_str_nocopy(c, s->s, (size_t)(last->s - s->s) + last->n));
            for (int k = h + 1; k < l->l->n; k++) jl_push(c, r->l, l->l->v[k]);
            return r;
        }
        for (int k = 0; k < maxsplit; k++) jl_push(c, r->l, l->l->v[k]);
        JVal *rest = l->l->v[maxsplit];
        size_t off = (size_t)(rest->s - s->s);
        jl_push(c, r->l, jv_str_nocopy(c, s->s + off, s->n - off));
        return r;
    }
    if (!need_str(c, at, sep, "split")) return NULL;
    if (!sep->n) return jerr(c, at, ERR_PARSE, "split: empty separator");
    if (right && maxsplit >= 0) {
        JVal *parts = jv_list(c);
        size_t e = s->n;
        int64_t done = 0;
        size_t i = s->n;
        while (i >= sep->n && done < maxsplit) {
            if (!memcmp(s->s + i - sep->n, sep->s, sep->n)) {
                jl_push(c, parts->l, jv_str_nocopy(c, s->s + i, e - i));
                i -= sep->n;
                e = i;
                done++;
            } else {
                i--;
            }
        }
        jl_push(c, parts->l, jv_str_nocopy(c, s->s, e));
        for (int k = parts->l->n - 1; k >= 0; k--) jl_push(c, r->l, parts->l->v[k]);
        return r;
    }
    size_t a = 0, i = 0;
    int64_t done = 0;
    while (i + sep->n <= s->n && (maxsplit < 0 || done < maxsplit)) {
        if (!memcmp(s->s + i, sep->s, sep->n)) {
            jl_push(c, r->l, jv_str_nocopy(c, s->s + a, i - a));
            i += sep->n;
            a = i;
            done++;
        } else {
            i++;
        }
    }
    jl_push(c, r->l, jv_str_nocopy(c, s->s + a, s->n - a));
    return r;
}

/* ---- Methods -------------------------------------------------------------- */

static int starts_ends(JVal *s, JVal *x, int end) {
    if (x->t != JV_STR) return 0;
    if (x->n > s->n) return 0;
    return !memcmp(end ? s->s + s->n - x->n : s->s, x->s, x->n);
}

static JVal *str_format(JCtx *c, const JNode *at, JVal *fmt, const Args *A) {
    StrBuf b;
    sb_init(&b);
    int auto_i = 0;
    for (size_t i = 0; i < fmt->n; i++) {
        char ch = fmt->s[i];
        if ((ch == '{' || ch == '}') && i + 1 < fmt->n && fmt->s[i + 1] == ch) {
            sb_appendc(&b, ch);
            i++;
            continue;
        }
        if (ch != '{') {
            sb_appendc(&b, ch);
            continue;
        }
        const char *end = memchr(fmt->s + i, '}', fmt->n - i);
        if (!end) {
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "format: unmatched '{'");
        }
        size_t fl = (size_t)(end - (fmt->s + i + 1));
        char *field = ja_strndup(c->ar, fmt->s + i + 1, fl);
        if (strchr(field, ':') || strchr(field, '!') || strchr(field, '.') || strchr(field, '[')) {
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "format: field '{%s}' uses a format spec, which is not supported", field);
        }
        JVal *v;
        if (!*field) v = auto_i < A->n ? A->a[auto_i++] : NULL;
        else if (isdigit((unsigned char)field[0])) v = atoi(field) < A->n ? A->a[atoi(field)] : NULL;
        else v = arg(A, -1, field);
        if (!v) {
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "format: no argument for '{%s}'", field);
        }
        jv_str_append(&b, v);
        i += fl + 1;
    }
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
}

static JVal *join_list(JCtx *c, const JNode *at, JVal *sep, JVal *items, const char *attribute);

static JVal *call_method(JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs,
                         const char **kwn, JVal **kwv, int nkw);

/* The method `name` of obj bound to it; NULL (no error) when obj has none. */
JVal *jmethod(JCtx *c, const JNode *at, JVal *obj, const char *name) {
    static const char *const STR[] = {"startswith", "endswith", "strip", "lstrip", "rstrip",
                                      "split", "rsplit", "upper", "lower", "replace", "title",
                                      "capitalize", "format", "join", "count", "find",
                                      "splitlines", "isdigit", "isalpha", "isspace", "isalnum",
                                      "islower", "isupper", "removeprefix", "removesuffix",
                                      "partition", "rpartition", "rfind", "index", "center",
                                      "ljust", "rjust", "zfill", NULL};
    static const char *const DICT[] = {"get", "items", "keys", "values", "copy", NULL};
    static const char *const LIST[] = {"index", "count", NULL};
    static const char *const UNSAFE_DICT[] = {"update", "pop", "popitem", "setdefault", "clear", NULL};
    static const char *const UNSAFE_LIST[] = {"append", "extend", "insert", "pop", "remove", "sort",
                                              "reverse", "clear", NULL};
    const char *const *ok = obj->t == JV_STR ? STR : obj->t == JV_DICT ? DICT : obj->t == JV_LIST ? LIST : NULL;
    const char *const *bad = obj->t == JV_DICT ? UNSAFE_DICT : obj->t == JV_LIST ? UNSAFE_LIST : NULL;
    for (int i = 0; ok && ok[i]; i++) {
        if (!strcmp(ok[i], name)) {
            JVal *f = jv_func(c, call_method, obj);
            f->s = ok[i];
            return f;
        }
    }
    for (int i = 0; bad && bad[i]; i++)
        if (!strcmp(bad[i], name))
            return jerr(c, at, ERR_PARSE,
                        "access to attribute '%s' of '%s' object is unsafe (templates cannot modify "
                        "values; use namespace())",
                        name, jv_type_name(obj));
    return NULL;
}

static JVal *call_method(JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs,
                         const char **kwn, JVal **kwv, int nkw) {
    Args A = {args, nargs, kwn, kwv, nkw};
    JVal *self = fn->self;
    const char *name = fn->s;
    if (self->t == JV_STR) {
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            JVal *x = arg(&A, 0, NULL);
            if (!x) return jerr(c, at, ERR_PARSE, "%s() takes one argument", name);
            int end = name[0] == 'e';
            if (x->t == JV_LIST) {
                for (int i = 0; i < x->l->n; i++)
                    if (starts_ends(self, x->l->v[i], end)) return JV_BOOLV(1);
                return JV_BOOLV(0);
            }
            if (!need_str(c, at, x, name)) return NULL;
            return JV_BOOLV(starts_ends(self, x, end));
        }
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
            JVal *ch = arg(&A, 0, NULL);
            if (ch && ch->t == JV_NONE) ch = NULL;
            if (ch && !need_str(c, at, ch, name)) return NULL;
            return u_strip(c, self, ch, name[0] == 'l' ? 1 : name[0] == 'r' ? 2 : 3);
        }
        if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
            int64_t m;
            if (arg_int(c, at, &A, 1, "maxsplit", -1, &m)) return NULL;
            return str_split(c, at, self, arg(&A, 0, "sep"), m, name[0] == 'r');
        }
        if (!strcmp(name, "upper")) return u_case(c, self, 'u');
        if (!strcmp(name, "lower")) return u_case(c, self, 'l');
        if (!strcmp(name, "title")) return u_case(c, self, 't');
        if (!strcmp(name, "capitalize")) return u_case(c, self, 'c');
        if (!strcmp(name, "replace")) {
            int64_t n;
            if (arg_int(c, at, &A, 2, "count", -1, &n)) return NULL;
            return str_replace(c, at, self, arg(&A, 0, NULL), arg(&A, 1, NULL), n);
        }
        if (!strcmp(name, "format")) return str_format(c, at, self, &A);
        if (!strcmp(name, "join")) {
            JVal *x = arg(&A, 0, NULL);
            if (!x) return jerr(c, at, ERR_PARSE, "join() takes one argument");
            return join_list(c, at, self, x, NULL);
        }
        if (!strcmp(name, "count") || !strcmp(name, "find")) {
            JVal *x = need_str(c, at, arg(&A, 0, NULL), name);
            if (!x) return NULL;
            int64_t cnt = 0;
            for (size_t i = 0; i + x->n <= self->n;) {
                if (!memcmp(self->s + i, x->s, x->n)) {
                    if (name[0] == 'f') return jv_int(c, (int64_t)ju_len(self->s, i));
                    cnt++;
                    i += x->n ? x->n : 1;
                } else {
                    i++;
                }
            }
            return jv_int(c, name[0] == 'f' ? -1 : cnt);
        }
        if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
            JVal *x = need_str(c, at, arg(&A, 0, NULL), name);
            if (!x) return NULL;
            int end = name[6] == 's';
            if (!starts_ends(self, x, end)) return self;
            return jv_str_nocopy(c, self->s + (end ? 0 : x->n), self->n - x->n);
        }
        if (!strcmp(name, "partition") || !strcmp(name, "rpartition")) {
            JVal *x = need_str(c, at, arg(&A, 0, NULL), name);
            if (!x) return NULL;
            if (!x->n) return jerr(c, at, ERR_PARSE, "%s: empty separator", name);
            int rev = name[0] == 'r';
            size_t at_i = self->n + 1;
            for (size_t i = 0; i + x->n <= self->n; i++) {
                size_t k = rev ? self->n - x->n - i : i;
                if (!memcmp(self->s + k, x->s, x->n)) {
                    at_i = k;
                    break;
                }
            }
            JVal *r = jv_list(c), *e = jv_str(c, "", 0);
            r->i = 1; /* a tuple */
            if (at_i > self->n) { /* not found: (s, '', '') or ('', '', s) */
                jl_push(c, r->l, rev ? e : self);
                jl_push(c, r->l, e);
                jl_push(c, r->l, rev ? self : e);
            } else {
                jl_push(c, r->l, jv_str_nocopy(c, self->s, at_i));
                jl_push(c, r->l, x);
                jl_push(c, r->l, jv_str_nocopy(c, self->s + at_i + x->n, self->n - at_i - x->n));
            }
            return r;
        }
        if (!strcmp(name, "rfind") || !strcmp(name, "index")) {
            JVal *x = need_str(c, at, arg(&A, 0, NULL), name);
            if (!x) return NULL;
            int rev = name[0] == 'r';
            for (size_t i = 0; i + x->n <= self->n; i++) {
                size_t k = rev ? self->n - x->n - i : i;
                if (!memcmp(self->s + k, x->s, x->n)) return jv_int(c, (int64_t)ju_len(self->s, k));
            }
            if (rev) return jv_int(c, -1);
            return jerr(c, at, ERR_PARSE, "index(): substring not found");
        }
        if (!strcmp(name, "center") || !strcmp(name, "ljust") || !strcmp(name, "rjust") ||
            !strcmp(name, "zfill")) {
            int64_t w;
            if (arg_int(c, at, &A, 0, "width", 0, &w)) return NULL;
            JVal *fillv = name[0] == 'z' ? NULL : arg(&A, 1, "fillchar");
            if (fillv && (fillv->t != JV_STR || ju_len(fillv->s, fillv->n) != 1))
                return jerr(c, at, ERR_PARSE, "%s: the fill character must be exactly one character", name);
            const char *fill = fillv ? fillv->s : name[0] == 'z' ? "0" : " ";
            size_t fn = fillv ? fillv->n : 1;
            int64_t len = (int64_t)ju_len(self->s, self->n);
            if (w <= len) return self;
            if ((uint64_t)(w - len) * fn > c->max_output)
                return jerr(c, at, ERR_PARSE, "%s: width past the output limit", name);
            int64_t pad = w - len, left;
            if (name[0] == 'l') left = 0;
            else if (name[0] == 'r' || name[0] == 'z') left = pad;
            else left = pad / 2 + (pad & w & 1); /* CPython's center: the odd space by the width's parity */
            StrBuf b;
            sb_init(&b);
            size_t body = 0;
            if (name[0] == 'z' && self->n && (self->s[0] == '-' || self->s[0] == '+')) {
                sb_appendc(&b, self->s[0]); /* zfill pads after the sign */
                body = 1;
            }
            for (int64_t i = 0; i < left; i++) sb_appendn(&b, fill, fn);
            sb_appendn(&b, self->s + body, self->n - body);
            for (int64_t i = left; i < pad; i++) sb_appendn(&b, fill, fn);
            JVal *r = jv_str(c, b.s, b.len);
            sb_free(&b);
            return r;
        }
        if (!strcmp(name, "splitlines")) {
            JVal *r = jv_list(c);
            size_t a = 0, i = 0;
            while (i < self->n) {
                if (self->s[i] == '\n' || self->s[i] == '\r') {
                    jl_push(c, r->l, jv_str_nocopy(c, self->s + a, i - a));
                    if (self->s[i] == '\r' && i + 1 < self->n && self->s[i + 1] == '\n') i++;
                    a = ++i;
                } else {
                    i++;
                }
            }
            if (a < self->n) jl_push(c, r->l, jv_str_nocopy(c, self->s + a, self->n - a));
            return r;
        }
        /* is*(): over code points, false for an empty string */
        int all = self->n > 0, any_cased = 0;
        size_t i = 0;
        while (i < self->n) {
            int32_t cp = u_next(self->s, self->n, &i);
            utf8proc_category_t cat = utf8proc_category(cp);
            int ok;
            if (!strcmp(name, "isdigit")) ok = cat == UTF8PROC_CATEGORY_ND;
            else if (!strcmp(name, "isalpha")) ok = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
            else if (!strcmp(name, "isalnum")) ok = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_ND;
            else if (!strcmp(name, "isspace")) ok = py_space(cp);
            else if (!strcmp(name, "islower")) {
                ok = utf8proc_toupper(cp) == cp || utf8proc_tolower(cp) == cp ? utf8proc_toupper(cp) != cp || !u_cased(cp) : 1;
                if (u_cased(cp)) any_cased = 1;
                if (u_cased(cp) && utf8proc_tolower(cp) != cp) ok = 0;
            } else {
                ok = 1;
                if (u_cased(cp)) any_cased = 1;
                if (u_cased(cp) && utf8proc_toupper(cp) != cp) ok = 0;
            }
            if (!ok) all = 0;
        }
        if (!strcmp(name, "islower") || !strcmp(name, "isupper")) all = all && any_cased;
        return JV_BOOLV(all);
    }
    if (self->t == JV_DICT) {
        if (!strcmp(name, "get")) {
            JVal *k = arg(&A, 0, NULL);
            if (!k) return jerr(c, at, ERR_PARSE, "get() takes a key");
            JVal *v = jd_getv(self->d, k);
            if (v) return v;
            JVal *d = arg(&A, 1, NULL);
            return d ? d : JV_NONEV;
        }
        if (!strcmp(name, "copy")) {
            JVal *r = jv_dict(c);
            for (int i = 0; i < self->d->n; i++) jd_set(c, r->d, self->d->k[i], self->d->v[i]);
            return r;
        }
        JVal *r = jv_list(c);
        for (int i = 0; i < self->d->n; i++) {
            if (!strcmp(name, "keys")) jl_push(c, r->l, self->d->k[i]);
            else if (!strcmp(name, "values")) jl_push(c, r->l, self->d->v[i]);
            else {
                JVal *p = jv_list(c);
                p->i = 1; /* a (key, value) tuple */
                jl_push(c, p->l, self->d->k[i]);
                jl_push(c, p->l, self->d->v[i]);
                jl_push(c, r->l, p);
            }
        }
        return r;
    }
    if (self->t == JV_LIST) {
        JVal *x = arg(&A, 0, NULL);
        if (!x) return jerr(c, at, ERR_PARSE, "%s() takes one argument", name);
        int64_t cnt = 0;
        for (int i = 0; i < self->l->n; i++) {
            if (jv_equal(self->l->v[i], x)) {
                if (name[0] == 'i') return jv_int(c, i);
                cnt++;
            }
        }
        if (name[0] == 'i') return jerr(c, at, ERR_PARSE, "index(): value is not in the list");
        return jv_int(c, cnt);
    }
    return jerr(c, at, ERR_PARSE, "no method '%s' on a %s", name, jv_type_name(self));
}

/* ---- Globals -------------------------------------------------------------- */

static JVal *g_range(JCtx *c, const JNode *at, JVal *self, JVal **args, int nargs,
                     const char **kwn, JVal **kwv, int nkw) {
    (void)self, (void)kwn, (void)kwv, (void)nkw;
    int64_t v[3] = {0, 0, 1};
    if (nargs < 1 || nargs > 3) return jerr(c, at, ERR_PARSE, "range() takes 1 to 3 arguments");
    for (int i = 0; i < nargs; i++) {
        if (args[i]->t != JV_INT) return jerr(c, at, ERR_PARSE, "range(): arguments must be integers");
    }
    if (nargs == 1) v[1] = args[0]->i;
    else {
        v[0] = args[0]->i;
        v[1] = args[1]->i;
        if (nargs == 3) v[2] = args[2]->i;
    }
    if (!v[2]) return jerr(c, at, ERR_PARSE, "range(): step must not be zero");
    JVal *r = jv_list(c);
    for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
        if (jstep(c, at)) return NULL;
        jl_push(c, r->l, jv_int(c, i));
    }
    return r;
}

static JVal *g_namespace(JCtx *c, const JNode *at, JVal *self, JVal **args, int nargs,
                         const char **kwn, JVal **kwv, int nkw) {
    (void)self;
    JVal *ns = jv_dict(c);
    ns->t = JV_NS;
    for (int i = 0; i < nargs; i++) {
        if (args[i]->t != JV_DICT) return jerr(c, at, ERR_PARSE, "namespace(): positional argument must be a dict");
        for (int k = 0; k < args[i]->d->n; k++) jd_set(c, ns->d, args[i]->d->k[k], args[i]->d->v[k]);
    }
    for (int k = 0; k < nkw; k++) jd_setz(c, ns->d, kwn[k], kwv[k]);
    return ns;
}

static JVal *g_dict(JCtx *c, const JNode *at, JVal *self, JVal **args, int nargs,
                    const char **kwn, JVal **kwv, int nkw) {
    JVal *d = g_namespace(c, at, self, args, nargs, kwn, kwv, nkw);
    if (d) d->t = JV_DICT;
    return d;
}

static JVal *g_raise(JCtx *c, const JNode *at, JVal *self, JVal **args, int nargs,
                     const char **kwn, JVal **kwv, int nkw) {
    (void)self, (void)kwn, (void)kwv, (void)nkw;
    StrBuf b;
    sb_init(&b);
    if (nargs > 0) jv_str_append(&b, args[0]);
    jerr(c, at, ERR_UNSUPPORTED, "the template raised an exception: %s", b.s ? b.s : "");
    sb_free(&b);
    return NULL;
}

static JVal *g_strftime(JCtx *c, const JNode *at, JVal *self, JVal **args, int nargs,
                        const char **kwn, JVal **kwv, int nkw) {
    (void)self, (void)kwn, (void)kwv, (void)nkw;
    if (nargs != 1 || args[0]->t != JV_STR) return jerr(c, at, ERR_PARSE, "strftime_now() takes a format string");
    struct tm tm;
    time_t t = c->now;
    if (c->now_utc) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    char *fmt = ja_strndup(c->ar, args[0]->s, args[0]->n);
    char buf[512];
    size_t n = strftime(buf, sizeof buf, fmt, &tm);
    return jv_str(c, buf, n);
}

JVal *jglobal(JCtx *c, const char *name) {
    JFn fn = !strcmp(name, "range") ? g_range : !strcmp(name, "namespace") ? g_namespace
           : !strcmp(name, "dict") ? g_dict : !strcmp(name, "raise_exception") ? g_raise
           : !strcmp(name, "strftime_now") ? g_strftime : NULL;
    if (!fn) return NULL;
    return jv_func(c, fn, NULL);
}

/* ---- Tests ---------------------------------------------------------------- */

static const char *const TESTS[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
    "iterable", "sequence", "boolean", "true", "false", "equalto", "eq", "==", "ne", "!=",
    "odd", "even", "in", "lower", "upper", "callable", "sameas", "divisibleby", "gt", ">",
    "greaterthan", "ge", ">=", "lt", "<", "lessthan", "le", "<=", "escaped", NULL};

int jtest_exists(const char *name) {
    for (int i = 0; TESTS[i]; i++)
        if (!strcmp(TESTS[i], name)) return 1;
    return 0;
}

int jtest(JCtx *c, const JNode *at, const char *name, JVal *x, JVal **args, int nargs) {
    JVal *a0 = nargs > 0 ? args[0] : NULL;
#define IS(s) (!strcmp(name, s))
    if (IS("defined")) return x->t != JV_UNDEF;
    if (IS("undefined")) return x->t == JV_UNDEF;
    if (IS("none")) return x->t == JV_NONE;
    if (IS("string")) return x->t == JV_STR;
    if (IS("number")) return jv_is_num(x);
    if (IS("integer")) return x->t == JV_INT;
    if (IS("float")) return x->t == JV_FLOAT;
    if (IS("mapping")) return x->t == JV_DICT;
    if (IS("iterable")) return x->t == JV_STR || x->t == JV_LIST || x->t == JV_DICT || x->t == JV_UNDEF;
    if (IS("sequence")) return x->t == JV_STR || x->t == JV_LIST || x->t == JV_DICT || x->t == JV_UNDEF;
    if (IS("boolean")) return x->t == JV_BOOL;
    if (IS("true")) return x->t == JV_BOOL && x->b;
    if (IS("false")) return x->t == JV_BOOL && !x->b;
    if (IS("callable")) return x->t == JV_FUNC || x->t == JV_MACRO;
    if (IS("escaped")) return 0;
    if (IS("lower") || IS("upper")) {
        if (x->t != JV_STR) return 0;
        int any = 0;
        size_t i = 0;
        while (i < x->n) {
            int32_t cp = u_next(x->s, x->n, &i);
            if (!u_cased(cp)) continue;
            any = 1;
            if (IS("lower") ? utf8proc_tolower(cp) != cp : utf8proc_toupper(cp) != cp) return 0;
        }
        return any;
    }
    if (IS("odd") || IS("even")) {
        if (x->t != JV_INT && x->t != JV_BOOL) {
            jerr(c, at, ERR_PARSE, "test '%s' needs an integer, got %s", name, jv_type_name(x));
            return -1;
        }
        int64_t v = x->t == JV_INT ? x->i : x->b;
        return IS("odd") ? (v % 2 != 0) : (v % 2 == 0);
    }
    if (!a0) {
        if (!jtest_exists(name)) jerr(c, at, ERR_PARSE, "unknown test '%s'", name);
        else jerr(c, at, ERR_PARSE, "test '%s' needs an argument", name);
        return -1;
    }
    if (IS("equalto") || IS("eq") || IS("==")) return jv_equal(x, a0);
    if (IS("ne") || IS("!=")) return !jv_equal(x, a0);
    if (IS("sameas")) {
        if (x->t != a0->t) return 0;
        if (x->t == JV_NONE || x->t == JV_UNDEF) return 1;
        if (x->t == JV_BOOL) return x->b == a0->b;
        return x == a0;
    }
    if (IS("in")) {
        if (a0->t == JV_STR) {
            if (x->t != JV_STR) {
                jerr(c, at, ERR_PARSE, "'in <string>' requires a string");
                return -1;
            }
            if (x->n > a0->n) return 0;
            for (size_t i = 0; i + x->n <= a0->n; i++)
                if (!memcmp(a0->s + i, x->s, x->n)) return 1;
            return 0;
        }
        JVal *l = jiterate(c, at, a0);
        if (!l) return -1;
        for (int i = 0; i < l->l->n; i++)
            if (jv_equal(l->l->v[i], x)) return 1;
        return 0;
    }
    if (IS("divisibleby")) {
        if (x->t != JV_INT || a0->t != JV_INT || a0->i == 0) {
            jerr(c, at, ERR_PARSE, "divisibleby needs non-zero integers");
            return -1;
        }
        return x->i % a0->i == 0;
    }
    int cmp;
    if (IS("gt") || IS(">") || IS("greaterthan") || IS("ge") || IS(">=") || IS("lt") || IS("<") ||
        IS("lessthan") || IS("le") || IS("<=")) {
        if (jv_compare(c, at, x, a0, &cmp)) return -1;
        if (IS("gt") || IS(">") || IS("greaterthan")) return cmp > 0;
        if (IS("ge") || IS(">=")) return cmp >= 0;
        if (IS("lt") || IS("<") || IS("lessthan")) return cmp < 0;
        return cmp <= 0;
    }
#undef IS
    jerr(c, at, ERR_PARSE, "unknown test '%s'", name);
    return -1;
}

/* ---- Filters -------------------------------------------------------------- */

/* environment.getitem over a dotted path "a.b.0", as jinja2's
 * make_attrgetter. */
static JVal *attr_path(JCtx *c, const JNode *at, JVal *item, JVal *path) {
    if (path->t == JV_INT) return jgetitem(c, at, item, path);
    if (!need_str(c, at, path, "attribute")) return NULL;
    const char *s = path->s, *end = s + path->n;
    JVal *v = item;
    while (s <= end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        if (!dot) dot = end;
        JVal *k;
        int digits = dot > s;
        for (const char *q = s; q < dot; q++)
            if (!isdigit((unsigned char)*q)) digits = 0;
        if (digits) k = jv_int(c, strtoll(s, NULL, 10));
        else k = jv_str(c, s, (size_t)(dot - s));
        if (v->t == JV_UNDEF) return v;
        if (!(v = jgetitem(c, at, v, k))) return NULL;
        s = dot + 1;
    }
    return v;
}

static JVal *join_list(JCtx *c, const JNode *at, JVal *sep, JVal *items, const char *attribute) {
    JVal *l = jiterate(c, at, items);
    if (!l) return NULL;
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < l->l->n; i++) {
        if (i && sep) jv_str_append(&b, sep);
        JVal *x = l->l->v[i];
        if (attribute && !(x = attr_path(c, at, x, jv_strz(c, attribute)))) return sb_free(&b), NULL;
        jv_str_append(&b, x);
        if (b.len > c->max_output) {
            sb_free(&b);
            return jerr(c, at, ERR_PARSE, "join: result past %zu bytes", c->max_output);
        }
    }
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
}

/* Sort key comparison with jinja2's case-insensitive default. */
static int sort_cmp(JCtx *c, const JNode *at, JVal *a, JVal *b, int case_sensitive, int *cmp) {
    if (!case_sensitive && a->t == JV_STR && b->t == JV_STR) {
        a = u_case(c, a, 'l');
        b = u_case(c, b, 'l');
    }
    return jv_compare(c, at, a, b, cmp);
}

/* Stable merge-free insertion sort of v[0..n) by keys k (parallel). */
static int sort_vals(JCtx *c, const JNode *at, JVal **v, JVal **k, int n, int case_sensitive, int reverse) {
    for (int i = 1; i < n; i++) {
        JVal *xv = v[i], *xk = k[i];
        int j = i;
        while (j > 0) {
            int cmp;
            if (jstep(c, at)) return -1;
            if (sort_cmp(c, at, k[j - 1], xk, case_sensitive, &cmp)) return -1;
            if (reverse ? cmp >= 0 : cmp <= 0) break;
            v[j] = v[j - 1];
            k[j] = k[j - 1];
            j--;
        }
        v[j] = xv;
        k[j] = xk;
    }
    return 0;
}

static JVal *py_int_of(JCtx *c, JVal *x, JVal *def) {
    if (x->t == JV_INT) return x;
    if (x->t == JV_BOOL) return jv_int(c, x->b);
    if (x->t == JV_FLOAT) return isfinite(x->f) ? jv_int(c, (int64_t)x->f) : def;
    if (x->t == JV_STR) {
        char *s = ja_strndup(c->ar, x->s, x->n), *end;
        while (isspace((unsigned char)*s)) s++;
        long long v = strtoll(s, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        if (end != s && !*end) return jv_int(c, v);
        double f = strtod(s, &end);
        while (isspace((unsigned char)*end)) end++;
        if (end != s && !*end && isfinite(f)) return jv_int(c, (int64_t)f);
    }
    return def;
}

static JVal *html_escape(JCtx *c, JVal *s) {
    if (s->b) return s; /* already Markup */
    StrBuf b;
    sb_init(&b);
    for (size_t i = 0; i < s->n; i++) {
        switch (s->s[i]) {
        case '&': sb_append(&b, "&amp;"); break;
        case '<': sb_append(&b, "&lt;"); break;
        case '>': sb_append(&b, "&gt;"); break;
        case '"': sb_append(&b, "&#34;"); break;
        case '\'': sb_append(&b, "&#39;"); break;
        default: sb_appendc(&b, s->s[i]);
        }
    }
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    r->b = 1;
    sb_free(&b);
    return r;
}

static JVal *f_indent(JCtx *c, const JNode *at, JVal *x, const Args *A) {
    JVal *s = jv_to_str(c, x);
    JVal *w = arg(A, 0, "width");
    StrBuf ind;
    sb_init(&ind);
    if (w && w->t == JV_STR) sb_appendn(&ind, w->s, w->n);
    else {
        int64_t n;
        if (arg_int(c, at, A, 0, "width", 4, &n)) return sb_free(&ind), NULL;
        for (int64_t i = 0; i < n && i < 1024; i++) sb_appendc(&ind, ' ');
    }
    int first = arg_bool(A, 1, "first", 0), blank = arg_bool(A, 2, "blank", 0);
    /* split s + "\n" into lines as str.splitlines() */
    JVal *lines = jv_list(c);
    size_t a = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->s[i] == '\n' || s->s[i] == '\r') {
            jl_push(c, lines->l, jv_str_nocopy(c, s->s + a, i - a));
            if (s->s[i] == '\r' && i + 1 < s->n && s->s[i + 1] == '\n') i++;
            a = i + 1;
        }
    }
    jl_push(c, lines->l, jv_str_nocopy(c, s->s + a, s->n - a)); /* the "+\n" quirk */
    StrBuf b;
    sb_init(&b);
    if (first) sb_appendn(&b, ind.s ? ind.s : "", ind.len);
    for (int i = 0; i < lines->l->n; i++) {
        JVal *ln = lines->l->v[i];
        if (i) {
            sb_appendc(&b, '\n');
            if (blank || ln->n) sb_appendn(&b, ind.s ? ind.s : "", ind.len);
        }
        sb_appendn(&b, ln->s, ln->n);
        if (b.len > c->max_output) {
            sb_free(&b);
            sb_free(&ind);
            return jerr(c, at, ERR_PARSE, "indent: result past %zu bytes", c->max_output);
        }
    }
    sb_free(&ind);
    JVal *r = jv_str(c, b.s ? b.s : "", b.len);
    sb_free(&b);
    return r;
}

static JVal *select_common(JCtx *c, const JNode *at, JVal *x, const Args *A, int by_attr, int keep,
                           JScope *s) {
    (void)s;
    if (!jv_truthy(x)) { /* jinja2: `if value:` before iterating */
        JVal *r = jv_list(c);
        r->b = 1;
        return r;
    }
    JVal *l = jiterate(c, at, x);
    if (!l) return NULL;
    int k = 0;
    JVal *attr = NULL;
    if (by_attr) {
        attr = arg(A, k++, NULL);
        if (!attr) return jerr(c, at, ERR_PARSE, "selectattr/rejectattr needs an attribute name");
    }
    JVal *tname = arg(A, k++, NULL);
    if (tname && !need_str(c, at, tname, "test name")) return NULL;
    JVal **targs = A->n > k ? A->a + k : NULL;
    int ntargs = A->n > k ? A->n - k : 0;
    char *tn = tname ? ja_strndup(c->ar, tname->s, tname->n) : NULL;
    JVal *r = jv_list(c);
    for (int i = 0; i < l->l->n; i++) {
        JVal *item = l->l->v[i], *v = item;
        if (attr && !(v = attr_path(c, at, item, attr))) return NULL;
        int ok;
        if (tn) {
            if ((ok = jtest(c, at, tn, v, targs, ntargs)) < 0) return NULL;
        } else {
            ok = jv_truthy(v);
        }
        if (ok == keep) jl_push(c, r->l, item);
    }
    r->b = 1;
    return r;
}

static const char *const FILTERS[] = {
    "trim", "tojson", "length", "count", "upper", "lower", "title", "capitalize", "replace",
    "join", "default", "d", "first", "last", "items", "list", "selectattr", "rejectattr",
    "select", "reject", "map", "indent", "string", "int", "float", "round", "safe", "unique",
    "reverse", "sort", "dictsort", "abs", "min", "max", "sum", "batch", "wordcount", "e",
    "escape", "attr", "center", "truncate", NULL};

JVal *jfilter(JCtx *c, const JNode *at, const char *name, JVal *x, JVal **args, int nargs,
              const char **kwn, JVal **kwv, int nkw, JScope *s) {
    Args A = {args, nargs, kwn, kwv, nkw};
    if (jstep(c, at)) return NULL;
#define IS(str) (!strcmp(name, str))
    if (IS("default") || IS("d")) {
        JVal *def = arg(&A, 0, "default_value");
        if (!def) def = jv_str(c, "", 0);
        int boolean = arg_bool(&A, 1, "boolean", 0);
        if (x->t == JV_UNDEF || (boolean && !jv_truthy(x))) return def;
        return x;
    }
    if (IS("safe")) {
        if (x->t != JV_STR) x = jv_to_str(c, x);
        if (x->b) return x;
        JVal *r = jv_str_nocopy(c, x->s, x->n);
        r->b = 1;
        return r;
    }
    if (IS("string")) return jv_to_str(c, x);
    if (IS("format")) { /* jinja2: str(x) % (kwargs or args) */
        if (nargs && nkw) return jerr(c, at, ERR_PARSE, "format: positional and keyword arguments at once");
        JVal *fa;
        if (nkw) {
            fa = jv_dict(c);
            for (int k = 0; k < nkw; k++) jd_setz(c, fa->d, kwn[k], kwv[k]);
        } else {
            fa = jv_list(c);
            fa->i = 1; /* a tuple */
            for (int k = 0; k < nargs; k++) jl_push(c, fa->l, args[k]);
        }
        JVal *fs = x->t == JV_STR ? jv_str_nocopy(c, x->s, x->n) : jv_to_str(c, x);
        if (!fs) return NULL;
        fs->b = 0;
        return jformat_percent(c, at, fs, fa);
    }
    if (IS("length") || IS("count")) {
        switch (x->t) {
        case JV_UNDEF: return jv_int(c, 0);
        case JV_STR: return jv_int(c, (int64_t)ju_len(x->s, x->n));
        case JV_LIST:
            if (x->b) return jerr(c, at, ERR_PARSE, "object of type 'generator' has no len() (add |list)");
            return jv_int(c, x->l->n);
        case JV_DICT: case JV_NS: return jv_int(c, x->d->n);
        default: return jerr(c, at, ERR_PARSE, "object of type '%s' has no len()", jv_type_name(x));
        }
    }
    if (IS("tojson")) {
        /* transformers' tojson(x, ensure_ascii=False, indent=None,
         * separators=None, sort_keys=False): json.dumps with those */
        JJsonOpt o = {.indent = -1};
        JVal *ind = arg(&A, 1, "indent");
        if (ind && ind->t != JV_NONE) {
            if (ind->t != JV_INT) return jerr(c, at, ERR_PARSE, "tojson: indent must be an integer");
            o.indent = ind->i < 0 ? 0 : ind->i > 64 ? 64 : (int)ind->i;
        }
        o.ascii = arg_bool(&A, 0, "ensure_ascii", 0);
        JVal *sep = arg(&A, 2, "separators");
        if (sep && sep->t != JV_NONE) {
            if (sep->t != JV_LIST || sep->b || sep->l->n != 2 || sep->l->v[0]->t != JV_STR ||
                sep->l->v[1]->t != JV_STR)
                return jerr(c, at, ERR_PARSE, "tojson: separators must be two strings (item, key)");
            o.item_sep = sep->l->v[0]->s;
            o.item_sep_n = sep->l->v[0]->n;
            o.key_sep = sep->l->v[1]->s;
            o.key_sep_n = sep->l->v[1]->n;
        }
        o.sort_keys = arg_bool(&A, 3, "sort_keys", 0);
        StrBuf b;
        sb_init(&b);
        if (jv_json_append(c, at, &b, x, &o, 0)) return sb_free(&b), NULL;
        JVal *r = jv_str(c, b.s ? b.s : "", b.len);
        sb_free(&b);
        return r;
    }
    if (IS("items")) {
        if (x->t == JV_UNDEF) return jv_list(c);
        if (x->t != JV_DICT && x->t != JV_NS) return jerr(c, at, ERR_PARSE, "items: expected a mapping, got %s", jv_type_name(x));
        JVal *r = jv_list(c);
        for (int i = 0; i < x->d->n; i++) {
            JVal *p = jv_list(c);
            p->i = 1; /* a (key, value) tuple */
            jl_push(c, p->l, x->d->k[i]);
            jl_push(c, p->l, x->d->v[i]);
            jl_push(c, r->l, p);
        }
        r->b = 1; /* jinja2's items is a generator */
        return r;
    }
    if (IS("list")) {
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        JVal *r = jv_list(c);
        for (int i = 0; i < l->l->n; i++) jl_push(c, r->l, l->l->v[i]);
        return r;
    }
    if (IS("first") || IS("last")) {
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        if (!l->l->n) return jv_undef_named(c, "the first/last item of an empty sequence");
        return l->l->v[IS("first") ? 0 : l->l->n - 1];
    }
    if (IS("join")) {
        JVal *sep = arg(&A, 0, "d");
        JVal *attr = arg(&A, 1, "attribute");
        const char *an = NULL;
        if (attr && attr->t != JV_NONE) {
            if (!need_str(c, at, attr, "join attribute")) return NULL;
            an = ja_strndup(c->ar, attr->s, attr->n);
        }
        return join_list(c, at, sep, x, an);
    }
    if (IS("selectattr")) return select_common(c, at, x, &A, 1, 1, s);
    if (IS("rejectattr")) return select_common(c, at, x, &A, 1, 0, s);
    if (IS("select")) return select_common(c, at, x, &A, 0, 1, s);
    if (IS("reject")) return select_common(c, at, x, &A, 0, 0, s);
    if (IS("map")) {
        JVal *r = jv_list(c);
        r->b = 1; /* a generator, as jinja2's */
        if (!jv_truthy(x)) return r;
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        JVal *attr = arg(&A, -1, "attribute");
        if (attr) {
            JVal *def = arg(&A, -1, "default");
            for (int i = 0; i < l->l->n; i++) {
                JVal *v = attr_path(c, at, l->l->v[i], attr);
                if (!v) return NULL;
                if (v->t == JV_UNDEF && def) v = def;
                jl_push(c, r->l, v);
            }
            return r;
        }
        JVal *fname = need_str(c, at, arg(&A, 0, NULL), "map: filter name");
        if (!fname) return NULL;
        char *fn = ja_strndup(c->ar, fname->s, fname->n);
        for (int i = 0; i < l->l->n; i++) {
            JVal *v = jfilter(c, at, fn, l->l->v[i], args + 1, nargs - 1, kwn, kwv, nkw, s);
            if (!v) return NULL;
            jl_push(c, r->l, v);
        }
        return r;
    }
    if (IS("reverse")) {
        if (x->t == JV_STR) {
            JVal *l = jiterate(c, at, x);
            StrBuf b;
            sb_init(&b);
            for (int i = l->l->n - 1; i >= 0; i--) sb_appendn(&b, l->l->v[i]->s, l->l->v[i]->n);
            JVal *r = jv_str(c, b.s ? b.s : "", b.len);
            sb_free(&b);
            return r;
        }
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        JVal *r = jv_list(c);
        for (int i = l->l->n - 1; i >= 0; i--) jl_push(c, r->l, l->l->v[i]);
        r->b = 1; /* reversed(): an iterator */
        return r;
    }
    if (IS("sort") || IS("unique") || IS("min") || IS("max")) {
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        int is_sort = IS("sort"), is_unique = IS("unique");
        int reverse = is_sort ? arg_bool(&A, 0, "reverse", 0) : 0;
        int cs = arg_bool(&A, is_sort ? 1 : 0, "case_sensitive", 0);
        JVal *attr = arg(&A, is_sort ? 2 : 1, "attribute");
        int n = l->l->n;
        JVal **v = ja_alloc(c->ar, (size_t)(n + 1) * sizeof *v), **k = ja_alloc(c->ar, (size_t)(n + 1) * sizeof *k);
        for (int i = 0; i < n; i++) {
            v[i] = l->l->v[i];
            k[i] = attr && attr->t != JV_NONE ? attr_path(c, at, v[i], attr) : v[i];
            if (!k[i]) return NULL;
        }
        if (is_unique) {
            JVal *r = jv_list(c), *seen = jv_list(c);
            for (int i = 0; i < n; i++) {
                JVal *key = !cs && k[i]->t == JV_STR ? u_case(c, k[i], 'l') : k[i];
                int dup = 0;
                for (int j = 0; j < seen->l->n; j++)
                    if (jv_equal(seen->l->v[j], key)) dup = 1;
                if (jstep(c, at)) return NULL;
                if (!dup) {
                    jl_push(c, seen->l, key);
                    jl_push(c, r->l, v[i]);
                }
            }
            r->b = 1;
            return r;
        }
        if (!is_sort) {
            if (!n) return jv_undef_named(c, "min/max of an empty sequence");
            int best = 0;
            for (int i = 1; i < n; i++) {
                int cmp;
                if (sort_cmp(c, at, k[i], k[best], cs, &cmp)) return NULL;
                if (IS("min") ? cmp < 0 : cmp > 0) best = i;
            }
            return v[best];
        }
        if (sort_vals(c, at, v, k, n, cs, reverse)) return NULL;
        JVal *r = jv_list(c);
        for (int i = 0; i < n; i++) jl_push(c, r->l, v[i]);
        return r;
    }
    if (IS("dictsort")) {
        if (x->t != JV_DICT) return jerr(c, at, ERR_PARSE, "dictsort: expected a mapping, got %s", jv_type_name(x));
        int cs = arg_bool(&A, 0, "case_sensitive", 0);
        JVal *by = arg(&A, 1, "by");
        int by_value = by && by->t == JV_STR && by->n == 5 && !memcmp(by->s, "value", 5);
        int reverse = arg_bool(&A, 2, "reverse", 0);
        int n = x->d->n;
        JVal **v = ja_alloc(c->ar, (size_t)(n + 1) * sizeof *v), **k = ja_alloc(c->ar, (size_t)(n + 1) * sizeof *k);
        for (int i = 0; i < n; i++) {
            JVal *p = jv_list(c);
            p->i = 1; /* a (key, value) tuple */
            jl_push(c, p->l, x->d->k[i]);
            jl_push(c, p->l, x->d->v[i]);
            v[i] = p;
            k[i] = by_value ? x->d->v[i] : x->d->k[i];
        }
        if (sort_vals(c, at, v, k, n, cs, reverse)) return NULL;
        JVal *r = jv_list(c);
        for (int i = 0; i < n; i++) jl_push(c, r->l, v[i]);
        return r;
    }
    if (IS("sum")) {
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        JVal *attr = arg(&A, 0, "attribute");
        JVal *acc = arg(&A, 1, "start");
        if (!acc) acc = jv_int(c, 0);
        for (int i = 0; i < l->l->n; i++) {
            JVal *v = attr && attr->t != JV_NONE ? attr_path(c, at, l->l->v[i], attr) : l->l->v[i];
            if (!v) return NULL;
            if (!jv_is_num(v) || !jv_is_num(acc)) return jerr(c, at, ERR_PARSE, "sum: items must be numbers");
            if (acc->t != JV_FLOAT && v->t != JV_FLOAT)
                acc = jv_int(c, (acc->t == JV_INT ? acc->i : acc->b) + (v->t == JV_INT ? v->i : v->b));
            else acc = jv_float(c, jv_num(acc) + jv_num(v));
        }
        return acc;
    }
    if (IS("abs")) {
        if (x->t == JV_INT) return jv_int(c, x->i < 0 ? -x->i : x->i);
        if (x->t == JV_FLOAT) return jv_float(c, fabs(x->f));
        if (x->t == JV_BOOL) return jv_int(c, x->b);
        return jerr(c, at, ERR_PARSE, "abs: expected a number, got %s", jv_type_name(x));
    }
    if (IS("int")) {
        JVal *def = arg(&A, 0, "default");
        return py_int_of(c, x, def ? def : jv_int(c, 0));
    }
    if (IS("float")) {
        JVal *def = arg(&A, 0, "default");
        if (jv_is_num(x)) return jv_float(c, jv_num(x));
        if (x->t == JV_STR) {
            char *str = ja_strndup(c->ar, x->s, x->n), *end;
            double f = strtod(str, &end);
            while (isspace((unsigned char)*end)) end++;
            if (end != str && !*end) return jv_float(c, f);
        }
        return def ? def : jv_float(c, 0);
    }
    if (IS("round")) {
        int64_t prec;
        if (arg_int(c, at, &A, 0, "precision", 0, &prec)) return NULL;
        JVal *m = arg(&A, 1, "method");
        if (!jv_is_num(x)) return jerr(c, at, ERR_PARSE, "round: expected a number, got %s", jv_type_name(x));
        double f = jv_num(x), p = pow(10, (double)prec);
        if (m && m->t == JV_STR && m->n == 4 && !memcmp(m->s, "ceil", 4)) return jv_float(c, ceil(f * p) / p);
        if (m && m->t == JV_STR && m->n == 5 && !memcmp(m->s, "floor", 5)) return jv_float(c, floor(f * p) / p);
        if (x->t != JV_FLOAT) return x->t == JV_BOOL ? jv_int(c, x->b) : x; /* round(int, n) is the int */
        if (prec < 0) return jv_float(c, nearbyint(f * p) / p); /* half to even */
        if (prec > 300 || !isfinite(f)) return x;
        /* Python rounds the exact binary value (2.675 is 2.67499…, so 2.67), half to
         * even; printf's %.*f rounds the same exact value the same way */
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", (int)prec, f);
        return jv_float(c, strtod(buf, NULL));
    }
    if (IS("batch")) {
        int64_t size;
        if (arg_int(c, at, &A, 0, "linecount", 1, &size)) return NULL;
        if (size <= 0) return jerr(c, at, ERR_PARSE, "batch: size must be positive");
        JVal *fill = arg(&A, 1, "fill_with");
        JVal *l = jiterate(c, at, x);
        if (!l) return NULL;
        JVal *r = jv_list(c), *cur = NULL;
        for (int i = 0; i < l->l->n; i++) {
            if (!cur || cur->l->n == size) {
                cur = jv_list(c);
                jl_push(c, r->l, cur);
            }
            jl_push(c, cur->l, l->l->v[i]);
        }
        if (cur && fill && fill->t != JV_NONE)
            while (cur->l->n < size) {
                if (jstep(c, at)) return NULL;
                jl_push(c, cur->l, fill);
            }
        return r;
    }
    if (IS("attr")) {
        JVal *n = need_str(c, at, arg(&A, 0, NULL), "attr name");
        if (!n) return NULL;
        return jgetattr(c, at, x, ja_strndup(c->ar, n->s, n->n));
    }
    /* the rest work on str(x) */
    JVal *str = jv_to_str(c, x);
    if (IS("trim")) {
        JVal *ch = arg(&A, 0, "chars");
        if (ch && ch->t == JV_NONE) ch = NULL;
        if (ch && !need_str(c, at, ch, "trim chars")) return NULL;
        return u_strip(c, str, ch, 3);
    }
    if (IS("upper")) return u_case(c, str, 'u');
    if (IS("lower")) return u_case(c, str, 'l');
    if (IS("capitalize")) return u_case(c, str, 'c');
    if (IS("title")) {
        /* jinja2: upper-case the first character of each word, where words
         * are split at runs of whitespace, '-', '(', '{', '[' and '<' */
        StrBuf b;
        sb_init(&b);
        size_t i = 0;
        int at_start = 1;
        while (i < str->n) {
            int32_t cp = u_next(str->s, str->n, &i);
            int sep = py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            u_put(&b, sep ? cp : at_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp));
            at_start = sep;
        }
        JVal *r = jv_str(c, b.s ? b.s : "", b.len);
        sb_free(&b);
        return r;
    }
    if (IS("replace")) {
        int64_t n;
        if (arg_int(c, at, &A, 2, "count", -1, &n)) return NULL;
        JVal *o = arg(&A, 0, "old"), *nw = arg(&A, 1, "new");
        if (!o || !nw) return jerr(c, at, ERR_PARSE, "replace needs old and new strings");
        return str_replace(c, at, str, jv_to_str(c, o), jv_to_str(c, nw), n);
    }
    if (IS("indent")) return f_indent(c, at, x, &A);
    if (IS("e") || IS("escape")) return html_escape(c, str);
    if (IS("wordcount")) {
        int64_t n = 0;
        int in = 0;
        size_t i = 0;
        while (i < str->n) {
            int32_t cp = u_next(str->s, str->n, &i);
            utf8proc_category_t cat = utf8proc_category(cp);
            int w = cp == '_' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                    (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
            if (w && !in) n++;
            in = w;
        }
        return jv_int(c, n);
    }
#undef IS
    for (int i = 0; FILTERS[i]; i++)
        if (!strcmp(FILTERS[i], name))
            return jerr(c, at, ERR_UNSUPPORTED, "filter '%s' is not supported", name);
    return jerr(c, at, ERR_UNSUPPORTED, "unknown filter '%s'", name);
}
