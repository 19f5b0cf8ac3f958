/* jinja_parse: the syntax tree of a template, by recursive descent over the
 * tokens of jinja_lex. The expression grammar follows jinja2's parser
 * (precedence low to high): `a if c else b`; or; and; not; comparisons
 * and in / not in; ~; + -; * / // %; **; unary - +; then postfix
 * attribute, subscript, slice, call, |filter and `is` test. Nesting is
 * bounded by max_depth so a hostile template cannot overflow the stack. */
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_int.h"

typedef struct P {
    JTok *t;
    int n, i;
    JArena *a;
    Err *e;
    int depth, max_depth;
} P;

static JTok *cur(P *p) { return &p->t[p->i]; }
static JTok *peek(P *p, int k) { return &p->t[p->i + k < p->n ? p->i + k : p->n - 1]; }

static int tok_is(const JTok *t, JTokType ty, const char *s) {
    return t->t == ty && strlen(s) == t->n && !memcmp(t->s, s, t->n);
}
static int is_op(P *p, const char *s) { return tok_is(cur(p), JT_OP, s); }
static int is_name(P *p, const char *s) { return tok_is(cur(p), JT_NAME, s); }

static void *perr(P *p, const JTok *t, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    err_set(p->e, ERR_PARSE, "template line %d, column %d: %s", t->line, t->col, msg);
    return NULL;
}

static const char *tok_text(P *p, const JTok *t) {
    if (t->t == JT_EOF) return "end of template";
    if (t->t == JT_BLOCK_END) return "'%}'";
    if (t->t == JT_VAR_END) return "'}}'";
    return ja_strndup(p->a, t->s, t->n > 40 ? 40 : t->n);
}

static int expect_op(P *p, const char *s) {
    if (is_op(p, s)) {
        p->i++;
        return 0;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "expected '%s', found %%s", s);
    perr(p, cur(p), msg, tok_text(p, cur(p)));
    return -1;
}

static const char *expect_name(P *p) {
    if (cur(p)->t != JT_NAME) return perr(p, cur(p), "expected a name, found %s", tok_text(p, cur(p)));
    const char *s = ja_strndup(p->a, cur(p)->s, cur(p)->n);
    p->i++;
    return s;
}

static JNode *mk(P *p, JNodeKind k, const JTok *t) {
    JNode *n = ja_alloc(p->a, sizeof *n);
    n->k = k;
    n->line = t->line;
    n->col = t->col;
    return n;
}

/* Growable node arrays built in malloc'd memory, then copied to the arena. */
typedef struct NVec {
    JNode **v;
    const char **s;
    int n, cap;
} NVec;

static void nv_push(NVec *v, JNode *x, const char *s) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 8;
        v->v = xrealloc(v->v, (size_t)v->cap * sizeof *v->v);
        v->s = xrealloc(v->s, (size_t)v->cap * sizeof *v->s);
    }
    v->v[v->n] = x;
    v->s[v->n++] = s;
}
static JNode **nv_nodes(P *p, NVec *v) {
    JNode **r = ja_alloc(p->a, (size_t)(v->n ? v->n : 1) * sizeof *r);
    if (v->n) memcpy(r, v->v, (size_t)v->n * sizeof *r);
    return r;
}
static const char **nv_names(P *p, NVec *v) {
    const char **r = ja_alloc(p->a, (size_t)(v->n ? v->n : 1) * sizeof *r);
    if (v->n) memcpy(r, v->s, (size_t)v->n * sizeof *r);
    return r;
}
static void nv_free(NVec *v) {
    free(v->v);
    free(v->s);
}

static int enter(P *p) {
    if (++p->depth > p->max_depth) {
        perr(p, cur(p), "template nests too deeply (past the parser's depth limit)%s", "");
        return -1;
    }
    return 0;
}

static JNode *expr(P *p);
static JNode *unary(P *p);

/* Positional and keyword arguments after '(' up to ')'. */
static int call_args(P *p, JNode *n) {
    NVec pos = {0}, kw = {0};
    if (expect_op(p, "(")) return -1;
    while (!is_op(p, ")")) {
        if (pos.n + kw.n && expect_op(p, ",")) goto fail;
        if (is_op(p, ")")) break; /* trailing comma */
        if (cur(p)->t == JT_NAME && tok_is(peek(p, 1), JT_OP, "=")) {
            const char *name = expect_name(p);
            p->i++;
            JNode *v = expr(p);
            if (!v) goto fail;
            nv_push(&kw, v, name);
        } else {
            JNode *v = expr(p);
            if (!v) goto fail;
            nv_push(&pos, v, NULL);
        }
    }
    p->i++;
    n->v = nv_nodes(p, &pos);
    n->n = pos.n;
    n->w = nv_nodes(p, &kw);
    n->nw = kw.n;
    n->names = nv_names(p, &kw);
    n->nnames = kw.n;
    nv_free(&pos);
    nv_free(&kw);
    return 0;
fail:
    nv_free(&pos);
    nv_free(&kw);
    return -1;
}

static JNode *lit(P *p, const JTok *t, JVal *v) {
    JNode *n = mk(p, JN_LIT, t);
    n->lit = v;
    return n;
}

static JVal *mkval(P *p, JType ty) {
    JVal *v = ja_alloc(p->a, sizeof *v);
    v->t = ty;
    return v;
}

/* The tuple whose first item x (at t) is followed by a comma: the items up
 * to the closing `)` (paren) or the tag's end, a trailing comma allowed. */
static JNode *tuple_rest(P *p, JNode *x, const JTok *t, int paren) {
    NVec items = {0};
    nv_push(&items, x, NULL);
    while (is_op(p, ",")) {
        p->i++;
        if (paren ? is_op(p, ")") : cur(p)->t == JT_BLOCK_END || cur(p)->t == JT_VAR_END) break;
        JNode *y = expr(p);
        if (!y) return nv_free(&items), NULL;
        nv_push(&items, y, NULL);
    }
    JNode *n = mk(p, JN_TUPLE, t);
    n->v = nv_nodes(p, &items);
    n->n = items.n;
    nv_free(&items);
    return n;
}

static JNode *primary(P *p) {
    JTok *t = cur(p);
    if (t->t == JT_NAME) {
        p->i++;
        const char *s = ja_strndup(p->a, t->s, t->n);
        if (!strcmp(s, "true") || !strcmp(s, "True")) return lit(p, t, &jv_true_v);
        if (!strcmp(s, "false") || !strcmp(s, "False")) return lit(p, t, &jv_false_v);
        if (!strcmp(s, "none") || !strcmp(s, "None")) return lit(p, t, &jv_none_v);
        JNode *n = mk(p, JN_NAME, t);
        n->name = s;
        return n;
    }
    if (t->t == JT_STRING) {
        /* adjacent literals concatenate, as in Python */
        StrBuf b;
        sb_init(&b);
        while (cur(p)->t == JT_STRING) {
            sb_appendn(&b, cur(p)->s, cur(p)->n);
            p->i++;
        }
        JVal *v = mkval(p, JV_STR);
        v->s = ja_strndup(p->a, b.s ? b.s : "", b.len);
        v->n = b.len;
        sb_free(&b);
        return lit(p, t, v);
    }
    if (t->t == JT_INT || t->t == JT_FLOAT) {
        p->i++;
        JVal *v = mkval(p, t->t == JT_INT ? JV_INT : JV_FLOAT);
        v->i = t->i;
        v->f = t->f;
        return lit(p, t, v);
    }
    if (tok_is(t, JT_OP, "(")) {
        p->i++;
        if (is_op(p, ")")) {
            p->i++;
            JNode *n = mk(p, JN_TUPLE, t);
            n->v = ja_alloc(p->a, sizeof *n->v);
            return n;
        }
        JNode *x = expr(p);
        if (!x) return NULL;
        if (is_op(p, ",") && !(x = tuple_rest(p, x, t, 1))) return NULL; /* a tuple: a list to us */
        if (expect_op(p, ")")) return NULL;
        return x;
    }
    if (tok_is(t, JT_OP, "[")) {
        p->i++;
        NVec items = {0};
        while (!is_op(p, "]")) {
            if (items.n && expect_op(p, ",")) return nv_free(&items), NULL;
            if (is_op(p, "]")) break;
            JNode *y = expr(p);
            if (!y) return nv_free(&items), NULL;
            nv_push(&items, y, NULL);
        }
        p->i++;
        JNode *n = mk(p, JN_LIST, t);
        n->v = nv_nodes(p, &items);
        n->n = items.n;
        nv_free(&items);
        return n;
    }
    if (tok_is(t, JT_OP, "{")) {
        p->i++;
        NVec ks = {0}, vs = {0};
        while (!is_op(p, "}")) {
            if (ks.n && expect_op(p, ",")) goto dfail;
            if (is_op(p, "}")) break;
            JNode *k = expr(p);
            if (!k || expect_op(p, ":")) goto dfail;
            JNode *v = expr(p);
            if (!v) goto dfail;
            nv_push(&ks, k, NULL);
            nv_push(&vs, v, NULL);
        }
        p->i++;
        JNode *n = mk(p, JN_DICT, t);
        n->v = nv_nodes(p, &ks);
        n->n = ks.n;
        n->w = nv_nodes(p, &vs);
        n->nw = vs.n;
        nv_free(&ks);
        nv_free(&vs);
        return n;
    dfail:
        nv_free(&ks);
        nv_free(&vs);
        return NULL;
    }
    return perr(p, t, "expected an expression, found %s", tok_text(p, t));
}

/* x[...]: an item or a slice a:b:c. */
static JNode *subscript(P *p, JNode *obj) {
    JTok *t = cur(p);
    p->i++;
    JNode *parts[3] = {NULL, NULL, NULL};
    int k = 0, is_slice = 0;
    for (;;) {
        if (is_op(p, ":")) {
            is_slice = 1;
            if (++k > 2) return perr(p, cur(p), "a slice has at most 3 parts%s", "");
            p->i++;
            continue;
        }
        if (is_op(p, "]")) break;
        if (parts[k]) return perr(p, cur(p), "expected ':' or ']', found %s", tok_text(p, cur(p)));
        if (!(parts[k] = expr(p))) return NULL;
    }
    p->i++;
    if (!is_slice) {
        if (!parts[0]) return perr(p, t, "empty subscript%s", "");
        JNode *n = mk(p, JN_ITEM, t);
        n->a = obj;
        n->b = parts[0];
        return n;
    }
    JNode *n = mk(p, JN_SLICE, t);
    n->a = obj;
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
    return n;
}

static JNode *filter_tail(P *p, JNode *x);

static JNode *postfix(P *p, JNode *x) {
    for (;;) {
        JTok *t = cur(p);
        if (tok_is(t, JT_OP, ".")) {
            p->i++;
            JTok *nt = cur(p);
            JNode *n = mk(p, JN_ATTR, t);
            n->a = x;
            if (nt->t == JT_INT) { /* x.0 is x[0] in jinja2 */
                p->i++;
                n->k = JN_ITEM;
                JVal *v = mkval(p, JV_INT);
                v->i = nt->i;
                n->b = lit(p, nt, v);
            } else if (!(n->name = expect_name(p))) {
                return NULL;
            }
            x = n;
        } else if (tok_is(t, JT_OP, "[")) {
            if (!(x = subscript(p, x))) return NULL;
        } else if (tok_is(t, JT_OP, "(")) {
            JNode *n = mk(p, JN_CALL, t);
            n->line = x->line; /* errors point at the function's name */
            n->col = x->col;
            n->a = x;
            if (call_args(p, n)) return NULL;
            x = n;
        } else {
            return x;
        }
    }
}

/* |filter(args) and `is [not] test args`, after a unary operand. */
static JNode *filter_tail(P *p, JNode *x) {
    for (;;) {
        JTok *t = cur(p);
        if (tok_is(t, JT_OP, "|")) {
            p->i++;
            JNode *n = mk(p, JN_FILTER, cur(p));
            n->a = x;
            if (!(n->name = expect_name(p))) return NULL;
            while (is_op(p, ".")) { /* dotted filter names are not ours */
                return perr(p, cur(p), "dotted filter names are not supported%s", "");
            }
            if (is_op(p, "(") && call_args(p, n)) return NULL;
            x = n;
        } else if (tok_is(t, JT_NAME, "is")) {
            p->i++;
            JNode *n = mk(p, JN_TEST, t);
            n->a = x;
            if (is_name(p, "not")) {
                n->op = 1;
                p->i++;
            }
            JTok *nt = cur(p);
            if (nt->t == JT_NAME && (tok_is(nt, JT_NAME, "none") || tok_is(nt, JT_NAME, "true") ||
                                     tok_is(nt, JT_NAME, "false"))) {
                n->name = ja_strndup(p->a, nt->s, nt->n);
                p->i++;
            } else if (!(n->name = expect_name(p))) {
                return NULL;
            }
            if (is_op(p, "(")) {
                if (call_args(p, n)) return NULL;
            } else {
                /* one bare argument: `x is divisibleby 3`, `x is eq 'a'` */
                JTok *a = cur(p);
                int starts = a->t == JT_STRING || a->t == JT_INT || a->t == JT_FLOAT ||
                             tok_is(a, JT_OP, "[") || tok_is(a, JT_OP, "{") ||
                             (a->t == JT_NAME && !tok_is(a, JT_NAME, "else") &&
                              !tok_is(a, JT_NAME, "or") && !tok_is(a, JT_NAME, "and") &&
                              !tok_is(a, JT_NAME, "if") && !tok_is(a, JT_NAME, "in") &&
                              !tok_is(a, JT_NAME, "not") && !tok_is(a, JT_NAME, "is"));
                if (starts) {
                    JNode *arg = primary(p);
                    if (!arg || !(arg = postfix(p, arg))) return NULL;
                    n->v = ja_alloc(p->a, sizeof *n->v);
                    n->v[0] = arg;
                    n->n = 1;
                }
            }
            x = n;
        } else {
            return x;
        }
    }
}

/* jinja2's parse_unary: the sign takes its operand with postfixes but
 * without filters, which then apply to the signed value: -x.y is -(x.y),
 * but -1|abs is (-1)|abs, 1. with_filter is 0 for a sign's operand. */
static JNode *unary_f(P *p, int with_filter) {
    if (enter(p)) return NULL;
    JTok *t = cur(p);
    JNode *r;
    if (tok_is(t, JT_OP, "-") || tok_is(t, JT_OP, "+")) {
        p->i++;
        JNode *x = unary_f(p, 0);
        if (!x) return NULL;
        r = mk(p, t->s[0] == '-' ? JN_NEG : JN_POS, t);
        r->a = x;
    } else {
        JNode *x = primary(p);
        if (!x || !(x = postfix(p, x))) return NULL;
        r = x;
    }
    if (with_filter && r) r = filter_tail(p, r);
    p->depth--;
    return r;
}

static JNode *unary(P *p) { return unary_f(p, 1); }

/* The binary operators, one row per precedence level, loosest first
 * (jinja2's parser: or, and, [not], comparisons, ~, + -, * / // %, **);
 * every level is left-associative but the comparisons, which chain. */
typedef struct {
    JTokType ty;
    const char *s;
    JNodeKind k;
    int op; /* JN_BINOP's operator */
} BinOp;

/* loosest first, as jinja2 nests them: `~` binds tighter than + and -, looser than * */
enum { LV_OR, LV_AND, LV_CMP, LV_ARITH, LV_CAT, LV_TERM, LV_POW, N_LEVELS };

static const BinOp LEVELS[N_LEVELS][7] = {
    [LV_OR] = {{JT_NAME, "or", JN_OR, 0}},
    [LV_AND] = {{JT_NAME, "and", JN_AND, 0}},
    [LV_CMP] = {{JT_OP, "==", JN_BINOP, JOP_EQ}, {JT_OP, "!=", JN_BINOP, JOP_NE}, {JT_OP, "<", JN_BINOP, JOP_LT},
                {JT_OP, "<=", JN_BINOP, JOP_LE}, {JT_OP, ">", JN_BINOP, JOP_GT}, {JT_OP, ">=", JN_BINOP, JOP_GE},
                {JT_NAME, "in", JN_BINOP, JOP_IN}}, /* and `not in`: binary() */
    [LV_CAT] = {{JT_OP, "~", JN_BINOP, JOP_CAT}},
    [LV_ARITH] = {{JT_OP, "+", JN_BINOP, JOP_ADD}, {JT_OP, "-", JN_BINOP, JOP_SUB}},
    [LV_TERM] = {{JT_OP, "*", JN_BINOP, JOP_MUL}, {JT_OP, "/", JN_BINOP, JOP_DIV}, {JT_OP, "//", JN_BINOP, JOP_FDIV},
                 {JT_OP, "%", JN_BINOP, JOP_MOD}},
    [LV_POW] = {{JT_OP, "**", JN_BINOP, JOP_POW}},
};

static JNode *not_expr(P *p);

/* An operand of level lv's operators: the next level, where the prefix
 * `not` sits between `and` and the comparisons, and unary below `**`. */
static JNode *binary(P *p, int lv);
static JNode *operand(P *p, int lv) {
    return lv == LV_AND ? not_expr(p) : lv == LV_POW ? unary(p) : binary(p, lv + 1);
}

/* Comparisons chain as in Python: `a < b < c` is `a < b and b < c` with b
 * evaluated once. Two or more of them become one JN_COMPARE: a is the first
 * operand, v the JN_BINOPs (operator and right operand in b, a unused). */
static JNode *comparisons(P *p, JNode *x) {
    NVec ops = {0};
    for (;;) {
        JTok *t = cur(p);
        const BinOp *o = NULL;
        for (const BinOp *r = LEVELS[LV_CMP]; r->s && !o; r++)
            if (tok_is(t, r->ty, r->s)) o = r;
        static const BinOp NOT_IN = {JT_NAME, "not", JN_BINOP, JOP_NOTIN};
        if (!o && tok_is(t, JT_NAME, "not") && tok_is(peek(p, 1), JT_NAME, "in")) {
            o = &NOT_IN;
            p->i++;
        }
        if (!o) break;
        p->i++;
        JNode *y = operand(p, LV_CMP);
        if (!y) return nv_free(&ops), NULL;
        JNode *n = mk(p, JN_BINOP, t);
        n->op = o->op;
        n->b = y;
        nv_push(&ops, n, NULL);
    }
    JNode *r = x;
    if (ops.n == 1) {
        r = ops.v[0];
        r->a = x;
    } else if (ops.n > 1) {
        r = mk(p, JN_COMPARE, &(JTok){.line = ops.v[0]->line, .col = ops.v[0]->col});
        r->a = x;
        r->v = nv_nodes(p, &ops);
        r->n = ops.n;
    }
    nv_free(&ops);
    return r;
}

static JNode *binary(P *p, int lv) {
    JNode *x = operand(p, lv);
    if (x && lv == LV_CMP) return comparisons(p, x);
    for (;;) {
        if (!x) return NULL;
        JTok *t = cur(p);
        const BinOp *o = NULL;
        for (const BinOp *r = LEVELS[lv]; r->s && !o; r++)
            if (tok_is(t, r->ty, r->s)) o = r;
        if (!o) return x;
        p->i++;
        JNode *y = operand(p, lv);
        if (!y) return NULL;
        JNode *n = mk(p, o->k, t);
        n->op = o->op;
        n->a = x;
        n->b = y;
        x = n;
    }
}

static JNode *not_expr(P *p) {
    if (is_name(p, "not")) {
        JTok *t = cur(p);
        p->i++;
        if (enter(p)) return NULL;
        JNode *x = not_expr(p);
        p->depth--;
        if (!x) return NULL;
        JNode *n = mk(p, JN_NOT, t);
        n->a = x;
        return n;
    }
    return binary(p, LV_CMP);
}

/* Full expression: `a if cond else b` (else optional: undefined). */
static JNode *expr_cond(P *p, int allow_cond) {
    if (enter(p)) return NULL;
    JNode *x = binary(p, LV_OR);
    while (x && allow_cond && is_name(p, "if")) {
        JTok *t = cur(p);
        p->i++;
        JNode *c = binary(p, LV_OR);
        if (!c) return NULL;
        JNode *n = mk(p, JN_COND, t);
        n->a = c;
        n->b = x;
        if (is_name(p, "else")) {
            p->i++;
            if (!(n->c = expr_cond(p, 1))) return NULL;
        }
        x = n;
    }
    p->depth--;
    return x;
}

static JNode *expr(P *p) { return expr_cond(p, 1); }

/* ---- Statements ----------------------------------------------------------- */

static int end_block(P *p) {
    if (cur(p)->t != JT_BLOCK_END)
        return perr(p, cur(p), "expected '%%}', found %s", tok_text(p, cur(p))), -1;
    p->i++;
    return 0;
}

/* Statements up to a {% NAME %} with NAME in ends (left at that name, just
 * after "{%"). *which is the index of the end found. */
static JNode *body(P *p, const char *const *ends, int *which, const JTok *opener,
                   const char *opener_name);

static int is_end(P *p, const char *const *ends, int *which) {
    if (cur(p)->t != JT_BLOCK_BEGIN) return 0;
    JTok *nt = peek(p, 1);
    for (int k = 0; ends && ends[k]; k++) {
        if (tok_is(nt, JT_NAME, ends[k])) {
            *which = k;
            return 1;
        }
    }
    return 0;
}

/* Parses `name`, `a, b`, or `ns.attr` as an assignment / loop target. */
static int targets(P *p, NVec *names, int allow_attr, const char **attr) {
    int paren = is_op(p, "(");
    if (paren) p->i++;
    for (;;) {
        const char *s = expect_name(p);
        if (!s) return -1;
        if (allow_attr && is_op(p, ".") && names->n == 0) {
            p->i++;
            if (!(*attr = expect_name(p))) return -1;
            nv_push(names, NULL, s);
            return 0;
        }
        nv_push(names, NULL, s);
        if (!is_op(p, ",")) break;
        p->i++;
    }
    if (paren && expect_op(p, ")")) return -1;
    return 0;
}

static JNode *stmt_if(P *p, JTok *t) {
    static const char *const ENDS[] = {"elif", "else", "endif", NULL};
    JNode *n = mk(p, JN_IF, t);
    if (!(n->a = expr(p)) || end_block(p)) return NULL;
    int w;
    if (!(n->b = body(p, ENDS, &w, t, "if"))) return NULL;
    p->i += 2; /* {% elif/else/endif */
    if (w == 0) { /* an elif is a nested if: it counts as nesting */
        if (enter(p)) return NULL;
        if (!(n->c = stmt_if(p, peek(p, -1)))) return NULL;
        p->depth--;
        return n;
    }
    if (end_block(p)) return NULL;
    if (w == 1) {
        static const char *const E2[] = {"endif", NULL};
        if (!(n->c = body(p, E2, &w, t, "if"))) return NULL;
        p->i += 2;
        if (end_block(p)) return NULL;
    }
    return n;
}

static JNode *stmt_for(P *p, JTok *t) {
    static const char *const ENDS[] = {"else", "endfor", NULL};
    static const char *const E2[] = {"endfor", NULL};
    JNode *n = mk(p, JN_FOR, t);
    NVec names = {0};
    if (targets(p, &names, 0, NULL)) return nv_free(&names), NULL;
    n->names = nv_names(p, &names);
    n->nnames = names.n;
    nv_free(&names);
    if (!is_name(p, "in")) return perr(p, cur(p), "expected 'in', found %s", tok_text(p, cur(p)));
    p->i++;
    if (!(n->a = expr_cond(p, 0))) return NULL;
    if (is_name(p, "if")) {
        p->i++;
        if (!(n->d = expr_cond(p, 0))) return NULL;
    }
    if (is_name(p, "recursive"))
        return perr(p, cur(p), "recursive for loops are not supported%s", "");
    if (end_block(p)) return NULL;
    int w;
    if (!(n->b = body(p, ENDS, &w, t, "for"))) return NULL;
    p->i += 2;
    if (end_block(p)) return NULL;
    if (w == 0) {
        if (!(n->c = body(p, E2, &w, t, "for"))) return NULL;
        p->i += 2;
        if (end_block(p)) return NULL;
    }
    return n;
}

/* A chain `name(args) | name2 ...` for filter blocks and block sets, into
 * n->w. */
static int filter_chain(P *p, JNode *n) {
    NVec chain = {0};
    for (;;) {
        JNode *f = mk(p, JN_FILTER, cur(p));
        if (!(f->name = expect_name(p))) return nv_free(&chain), -1;
        if (is_op(p, "(") && call_args(p, f)) return nv_free(&chain), -1;
        nv_push(&chain, f, NULL);
        if (!is_op(p, "|")) break;
        p->i++;
    }
    n->w = nv_nodes(p, &chain);
    n->nw = chain.n;
    nv_free(&chain);
    return 0;
}

/* The body of a block with the one closing tag {% END %} (END named),
 * after which {% endmacro %} may repeat the macro's name; NULL on error. */
static JNode *block_body(P *p, const JTok *t, const char *end, const char *what) {
    const char *const ends[] = {end, NULL};
    int w;
    JNode *b = body(p, ends, &w, t, what);
    if (!b) return NULL;
    p->i += 2;
    if (!strcmp(end, "endmacro") && cur(p)->t == JT_NAME) p->i++; /* {% endmacro name %} */
    return end_block(p) ? NULL : b;
}

/* jinja2's parse_tuple without parentheses, for what `set x =` assigns and
 * what {{ }} prints: `a, b` is the tuple (a, b); one expression alone is
 * itself. */
static JNode *tuple_expr(P *p) {
    JTok *t = cur(p);
    JNode *x = expr(p);
    if (!x || !is_op(p, ",")) return x;
    return tuple_rest(p, x, t, 0);
}

static JNode *stmt_set(P *p, JTok *t) {
    NVec names = {0};
    const char *attr = NULL;
    if (targets(p, &names, 1, &attr)) return nv_free(&names), NULL;
    JNode *n = mk(p, JN_SET, t);
    n->names = nv_names(p, &names);
    n->nnames = names.n;
    n->name = attr;
    nv_free(&names);
    if (is_op(p, "=")) {
        p->i++;
        if (!(n->a = tuple_expr(p)) || end_block(p)) return NULL;
        return n;
    }
    /* block set: {% set x %}...{% endset %}, optionally | filters */
    n->k = JN_SETBLOCK;
    if (attr) return perr(p, t, "a block set cannot assign an attribute%s", "");
    if (is_op(p, "|")) {
        p->i++;
        if (filter_chain(p, n)) return NULL;
    }
    if (end_block(p)) return NULL;
    return (n->b = block_body(p, t, "endset", "set")) ? n : NULL;
}

/* (a, b=default, ...) of a macro or a call block. */
static int params(P *p, JNode *n) {
    NVec ps = {0};
    if (expect_op(p, "(")) return -1;
    while (!is_op(p, ")")) {
        if (ps.n && expect_op(p, ",")) return nv_free(&ps), -1;
        const char *s = expect_name(p);
        if (!s) return nv_free(&ps), -1;
        JNode *def = NULL;
        if (is_op(p, "=")) {
            p->i++;
            if (!(def = expr(p))) return nv_free(&ps), -1;
        }
        nv_push(&ps, def, s);
    }
    p->i++;
    n->names = nv_names(p, &ps);
    n->nnames = ps.n;
    n->w = nv_nodes(p, &ps);
    n->nw = ps.n;
    nv_free(&ps);
    return 0;
}

static JNode *stmt_macro(P *p, JTok *t) {
    JNode *n = mk(p, JN_MACRO, t);
    if (!(n->name = expect_name(p))) return NULL;
    if (params(p, n) || end_block(p)) return NULL;
    return (n->b = block_body(p, t, "endmacro", "macro")) ? n : NULL;
}

static JNode *stmt_call(P *p, JTok *t) {
    JNode *n = mk(p, JN_CALLBLOCK, t);
    if (is_op(p, "(") && params(p, n)) return NULL;
    if (!(n->a = expr(p))) return NULL;
    if (n->a->k != JN_CALL) return perr(p, t, "{%% call %%} needs a macro call%s", "");
    if (end_block(p)) return NULL;
    return (n->b = block_body(p, t, "endcall", "call")) ? n : NULL;
}

static JNode *stmt_filter(P *p, JTok *t) {
    JNode *n = mk(p, JN_FILTERBLOCK, t);
    if (filter_chain(p, n) || end_block(p)) return NULL;
    return (n->b = block_body(p, t, "endfilter", "filter")) ? n : NULL;
}

static JNode *statement(P *p) {
    JTok *open = cur(p);
    p->i++; /* {% */
    JTok *t = cur(p);
    if (t->t != JT_NAME) return perr(p, t, "expected a tag name, found %s", tok_text(p, t));
    p->i++;
    const char *kw = ja_strndup(p->a, t->s, t->n);
    (void)open;
    if (!strcmp(kw, "if")) return stmt_if(p, t);
    if (!strcmp(kw, "for")) return stmt_for(p, t);
    if (!strcmp(kw, "set")) return stmt_set(p, t);
    if (!strcmp(kw, "macro")) return stmt_macro(p, t);
    if (!strcmp(kw, "call")) return stmt_call(p, t);
    if (!strcmp(kw, "filter")) return stmt_filter(p, t);
    if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        if (end_block(p)) return NULL;
        return mk(p, kw[0] == 'b' ? JN_BREAK : JN_CONTINUE, t);
    }
    if (!strcmp(kw, "generation")) {
        /* transformers' AssistantTracker tag: renders its body unchanged */
        if (end_block(p)) return NULL;
        static const char *const ENDS[] = {"endgeneration", NULL};
        int w;
        JNode *b = body(p, ENDS, &w, t, "generation");
        if (!b) return NULL;
        p->i += 2;
        if (end_block(p)) return NULL;
        return b;
    }
    return perr(p, t, "unsupported tag '%s'", kw);
}

static JNode *body(P *p, const char *const *ends, int *which, const JTok *opener,
                   const char *opener_name) {
    if (enter(p)) return NULL;
    NVec v = {0};
    JNode *n = mk(p, JN_BODY, cur(p));
    for (;;) {
        JTok *t = cur(p);
        if (t->t == JT_EOF) {
            if (ends) {
                char msg[160];
                snprintf(msg, sizeof msg, "'%s' opened at line %d, column %d is never closed (expected {%% %s %%})",
                         opener_name, opener->line, opener->col, ends[0]);
                nv_free(&v);
                return perr(p, t, "%s", msg);
            }
            break;
        }
        if (is_end(p, ends, which)) break;
        if (t->t == JT_DATA) {
            JNode *d = mk(p, JN_DATA, t);
            d->name = t->s;
            d->nnames = (int)t->n;
            p->i++;
            nv_push(&v, d, NULL);
        } else if (t->t == JT_VAR_BEGIN) {
            p->i++;
            JNode *o = mk(p, JN_OUTPUT, t);
            if (!(o->a = tuple_expr(p))) return nv_free(&v), NULL;
            if (cur(p)->t != JT_VAR_END)
                return nv_free(&v), perr(p, cur(p), "expected '}}', found %s", tok_text(p, cur(p)));
            p->i++;
            nv_push(&v, o, NULL);
        } else if (t->t == JT_BLOCK_BEGIN) {
            JTok *nt = peek(p, 1);
            if (nt->t == JT_NAME && (tok_is(nt, JT_NAME, "endif") || tok_is(nt, JT_NAME, "endfor") ||
                                     tok_is(nt, JT_NAME, "else") || tok_is(nt, JT_NAME, "elif") ||
                                     tok_is(nt, JT_NAME, "endset") || tok_is(nt, JT_NAME, "endmacro") ||
                                     tok_is(nt, JT_NAME, "endcall") || tok_is(nt, JT_NAME, "endfilter") ||
                                     tok_is(nt, JT_NAME, "endgeneration"))) {
                nv_free(&v);
                return perr(p, nt, "unexpected '%s'", ja_strndup(p->a, nt->s, nt->n));
            }
            JNode *s = statement(p);
            if (!s) return nv_free(&v), NULL;
            nv_push(&v, s, NULL);
        } else {
            nv_free(&v);
            return perr(p, t, "unexpected %s", tok_text(p, t));
        }
    }
    n->v = nv_nodes(p, &v);
    n->n = v.n;
    nv_free(&v);
    p->depth--;
    return n;
}

JNode *jinja_parse_tokens(JTok *toks, int ntoks, JArena *a, int max_depth, Err *e) {
    P p = {.t = toks, .n = ntoks, .a = a, .e = e, .max_depth = max_depth};
    int w;
    return body(&p, NULL, &w, NULL, NULL);
}
