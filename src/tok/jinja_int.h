/* jinja_int: the interpreter's internal types (tokens, syntax tree, values,
 * render context), shared by jinja_lex.c, jinja_parse.c, jinja_value.c,
 * jinja_eval.c and jinja_builtins.c. jinja.h is the public side. */
#ifndef ALOE_TOK_JINJA_INT_H
#define ALOE_TOK_JINJA_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "tok/jinja.h"

/* ---- Arena: every node and value of a template or a render ---------------- */

typedef struct JArena {
    struct JChunk *head;
} JArena;

void *ja_alloc(JArena *a, size_t n); /* zeroed */
char *ja_strndup(JArena *a, const char *s, size_t n);
void ja_free(JArena *a);

/* ---- Tokens --------------------------------------------------------------- */

typedef enum {
    JT_EOF,
    JT_DATA,        /* template text (after whitespace control) */
    JT_VAR_BEGIN,   /* {{ */
    JT_VAR_END,     /* }} */
    JT_BLOCK_BEGIN, /* {% */
    JT_BLOCK_END,   /* %} */
    JT_NAME,
    JT_STRING, /* decoded value in s/n */
    JT_INT,
    JT_FLOAT,
    JT_OP /* operator or punctuation; text in s/n */
} JTokType;

typedef struct JTok {
    JTokType t;
    const char *s; /* text (DATA, NAME, OP) or decoded string (arena) */
    size_t n;
    int64_t i;
    double f;
    int line, col;
} JTok;

/* Tokenises src applying trim_blocks, lstrip_blocks and {%- -%} control. */
int jinja_lex(const char *src, JArena *a, JTok **toks, int *ntoks, Err *e);

/* ---- Syntax tree ---------------------------------------------------------- */

typedef enum {
    /* statements */
    JN_BODY, JN_DATA, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO, JN_CALLBLOCK,
    JN_FILTERBLOCK, JN_BREAK, JN_CONTINUE,
    /* expressions */
    JN_LIT, JN_NAME, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST, JN_BINOP, JN_NEG,
    JN_POS, JN_NOT, JN_AND, JN_OR, JN_COND, JN_LIST, JN_DICT, JN_TUPLE,
    JN_COMPARE /* a < b < c: a, then v[i] = JN_BINOP (op, right operand b) */
} JNodeKind;

typedef struct JVal JVal;

typedef struct JNode {
    JNodeKind k;
    int line, col;
    int op;           /* BINOP: operator code; TEST: negated */
    const char *name; /* NAME, ATTR, FILTER, TEST, SET target, MACRO name */
    struct JNode *a, *b, *c, *d;
    struct JNode **v; /* body, args, list items, dict keys */
    int n;
    struct JNode **w; /* else body, kwarg values, dict values, param defaults */
    int nw;
    const char **names; /* kwarg names, for targets, macro params */
    int nnames;
    JVal *lit;
} JNode;

enum { JOP_ADD = 1, JOP_SUB, JOP_MUL, JOP_DIV, JOP_FDIV, JOP_MOD, JOP_POW, JOP_CAT, JOP_EQ,
       JOP_NE, JOP_LT, JOP_LE, JOP_GT, JOP_GE, JOP_IN, JOP_NOTIN };

struct JinjaTemplate {
    JArena ar;
    JNode *root;
    JinjaLimits lim;
};

JNode *jinja_parse_tokens(JTok *toks, int ntoks, JArena *a, int max_depth, Err *e);

/* ---- Values --------------------------------------------------------------- */

typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS,
    JV_FUNC,  /* a global function or a bound method */
    JV_MACRO
} JType;

typedef struct JList {
    JVal **v;
    int n, cap;
} JList;

typedef struct JDict {
    JVal **k, **v; /* insertion order, as Python dicts */
    int n, cap;
} JDict;

struct JCtx;
typedef JVal *(*JFn)(struct JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs,
                     const char **kwn, JVal **kwv, int nkw);

struct JVal {
    JType t;
    int b; /* BOOL: the value; STR: a Markup (safe) string; LIST: a generator
            * (what map/select/... return in jinja2: one pass, no len, no JSON) */
    int64_t i; /* INT: the value; LIST: 1 for a tuple (prints as (a, b)) */
    double f;
    const char *s; /* STR (not NUL-terminated necessarily); UNDEF: its description; FUNC: method name */
    size_t n;
    JList *l;   /* LIST */
    JDict *d;   /* DICT, NS */
    JFn fn;     /* FUNC */
    JVal *self; /* FUNC: bound object */
    const JNode *macro;     /* MACRO */
    JVal *caller;           /* MACRO: the caller() of a call block */
    struct JScope *closure; /* MACRO: the scope it was defined in */
};

typedef struct JScope {
    struct JScope *parent;
    JDict *vars;
} JScope;

typedef struct JCtx {
    JArena *ar;
    StrBuf *out;
    Err *e;
    long steps, max_steps;
    int depth, max_depth; /* nesting of values being compared or serialised */
    int calls, max_calls; /* macro calls in progress */
    size_t max_output;
    JScope *globals;
    time_t now;
    int now_utc; /* a fixed time (tests) is formatted as UTC, the clock as local time */
    int brk, cont; /* a {% break %} / {% continue %} is unwinding */
} JCtx;

extern JVal jv_undef_v, jv_none_v, jv_true_v, jv_false_v;
#define JV_UNDEFINED (&jv_undef_v)
#define JV_NONEV (&jv_none_v)
#define JV_BOOLV(x) ((x) ? &jv_true_v : &jv_false_v)

JVal *jv_undef_named(JCtx *c, const char *name);
JVal *jv_int(JCtx *c, int64_t i);
JVal *jv_float(JCtx *c, double f);
JVal *jv_str(JCtx *c, const char *s, size_t n); /* copies */
JVal *jv_strz(JCtx *c, const char *s);
JVal *jv_str_nocopy(JCtx *c, const char *s, size_t n);
JVal *jv_list(JCtx *c);
JVal *jv_dict(JCtx *c);
JVal *jv_func(JCtx *c, JFn fn, JVal *self);
void jl_push(JCtx *c, JList *l, JVal *v);
JVal *jd_get(JDict *d, const char *key, size_t n);
JVal *jd_getv(JDict *d, JVal *key);
void jd_set(JCtx *c, JDict *d, JVal *key, JVal *v);
void jd_setz(JCtx *c, JDict *d, const char *key, JVal *v);

JVal *jv_from_json(JCtx *c, const json_t *j);
int jv_truthy(const JVal *v);
int jv_equal(const JVal *a, const JVal *b);
/* <0, 0, >0; -2 with an error set when a and b cannot be ordered. */
int jv_compare(JCtx *c, const JNode *at, const JVal *a, const JVal *b, int *cmp);
/* str(v) as Python prints it (what {{ v }} writes). */
void jv_str_append(StrBuf *b, const JVal *v);
void jv_repr_append(StrBuf *b, const JVal *v);
JVal *jv_to_str(JCtx *c, JVal *v);
/* json.dumps's options: indent < 0 is none; item_sep/key_sep NULL are
 * Python's defaults ("," with an indent, else ", "; ": "). */
typedef struct JJsonOpt {
    int indent, sort_keys, ascii;
    const char *item_sep, *key_sep;
    size_t item_sep_n, key_sep_n;
} JJsonOpt;
/* json.dumps(v, ...) into b; -1 (error set) for a value JSON cannot hold. */
int jv_json_append(JCtx *c, const JNode *at, StrBuf *b, const JVal *v, const JJsonOpt *o,
                   int level);
const char *jv_type_name(const JVal *v);
int jv_is_num(const JVal *v); /* int, float or bool */
double jv_num(const JVal *v);
/* Code points of a UTF-8 string. */
size_t ju_len(const char *s, size_t n);
/* Byte offset of code point index i (clamped to n). */
size_t ju_offset(const char *s, size_t n, size_t i);

/* Errors at a node: "template line L, column C: ...". Returns NULL. */
JVal *jerr(JCtx *c, const JNode *at, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Counts one evaluation step; -1 (error set) past the limit. */
int jstep(JCtx *c, const JNode *at);

/* ---- Evaluator and built-ins ---------------------------------------------- */

JVal *jeval(JCtx *c, const JNode *n, JScope *s);
JVal *jcall(JCtx *c, const JNode *at, JVal *fn, JVal **args, int nargs, const char **kwn,
            JVal **kwv, int nkw);
JVal *jgetattr(JCtx *c, const JNode *at, JVal *obj, const char *name);
JVal *jgetitem(JCtx *c, const JNode *at, JVal *obj, JVal *key);
JVal *jiterate(JCtx *c, const JNode *at, JVal *v); /* a LIST of the items, or NULL */

JVal *jfilter(JCtx *c, const JNode *at, const char *name, JVal *x, JVal **args, int nargs,
              const char **kwn, JVal **kwv, int nkw, JScope *s);
int jtest(JCtx *c, const JNode *at, const char *name, JVal *x, JVal **args, int nargs);
int jtest_exists(const char *name);
JVal *jmethod(JCtx *c, const JNode *at, JVal *obj, const char *name); /* NULL: no such method */
JVal *jglobal(JCtx *c, const char *name);                            /* NULL: none */
/* fmt % args as Python formats it (jinja_format.c); args a tuple (a LIST
 * with i == 1), a mapping for %(key)s, or any single value. */
JVal *jformat_percent(JCtx *c, const JNode *at, JVal *fmt, JVal *args);

#endif
