/* The Jinja interpreter, feature by feature: tests/data/templates/
 * features.json holds small templates (one or two features each) with what
 * jinja2, configured as transformers configures it, rendered for them
 * (scripts/render_templates.py); each must render byte for byte the same,
 * or fail where jinja2 raised. Then what jinja2 cannot tell us: errors name
 * the template line and column, and the limits that stop hostile templates
 * (steps, nesting, output) hold. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "test.h"
#include "tok/jinja.h"

#define NOW 1721995200 /* 2024-07-26 12:00 UTC, the time the expected renders used */

static void test_features_match_jinja2(void) {
    json_error_t je;
    json_t *j = json_load_file("tests/data/templates/features.json", 0, &je);
    CHECK_MSG(j != NULL, "features.json:%d: %s", je.line, je.text);
    json_t *vars = json_object_get(j, "vars");
    int bad = 0, n = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *src = json_string_value(json_object_get(c, "template"));
        const char *want = json_string_value(json_object_get(c, "output"));
        Err e = {0};
        char *got = NULL;
        JinjaTemplate *t = jinja_parse(src, NULL, &e);
        int rc = t ? jinja_render(t, vars, NOW, &got, &e) : -1;
        n++;
        if (want && (rc || strcmp(got, want))) {
            fprintf(stderr, "  %s:\n    got:  %s\n    want: %s\n", name, rc ? e.msg : got, want);
            bad++;
        } else if (!want && !rc) {
            fprintf(stderr, "  %s: rendered \"%s\", but jinja2 raised: %s\n", name, got,
                    json_string_value(json_object_get(c, "error")));
            bad++;
        }
        free(got);
        jinja_free(t);
    }
    json_decref(j);
    CHECK(n >= 35);
    CHECK_EQ_INT(bad, 0);
}

/* Renders src with vars (JSON text); returns the output or NULL (e set). */
static char *render(const char *src, const char *vars, const JinjaLimits *lim, Err *e) {
    JinjaTemplate *t = jinja_parse(src, lim, e);
    if (!t) return NULL;
    json_t *v = vars ? json_loads(vars, 0, NULL) : NULL;
    char *out = NULL;
    if (jinja_render(t, v, NOW, &out, e)) out = NULL;
    json_decref(v);
    jinja_free(t);
    return out;
}

static void expect_error(const char *src, const char *want_in_msg) {
    Err e = {0};
    char *out = render(src, NULL, NULL, &e);
    if (out) {
        test_fail(__FILE__, __LINE__, "%s: rendered \"%s\", want an error with \"%s\"", src, out,
                  want_in_msg);
        free(out);
        return;
    }
    if (!strstr(e.msg, want_in_msg))
        test_fail(__FILE__, __LINE__, "%s: error \"%s\" lacks \"%s\"", src, e.msg, want_in_msg);
}

static void test_errors_name_line_and_column(void) {
    expect_error("line one\n{{ x + }}", "template line 2, column 8: expected an expression, found '}}'");
    expect_error("{% if x %}\nno end", "'if' opened at line 1, column 4 is never closed");
    expect_error("{% for x in y %}{% endif %}", "unexpected 'endif'");
    expect_error("\n\n  {% include 'other.jinja' %}", "line 3, column 6: unsupported tag 'include'");
    expect_error("{{ 'abc' | nosuchfilter }}", "line 1, column 12: unknown filter 'nosuchfilter'");
    expect_error("{{ 1 is nosuchtest }}", "unknown test 'nosuchtest'");
    expect_error("{{ 'unterminated }}", "unterminated string");
    expect_error("{{ x", "unclosed '{{'");
    expect_error("{# open comment", "unclosed comment");
    expect_error("{% for x in y recursive %}{% endfor %}", "recursive for loops are not supported");
    expect_error("\n{{ raise_exception('Bad roles!') }}", "line 2, column 4: the template raised an exception: Bad roles!");
    expect_error("{{ none.x }}{{ [1][5].x }}", "");
    expect_error("{% set x.y = 1 %}", "not a namespace()");
    expect_error("{{ 1 / 0 }}", "division by zero");
    expect_error("{{ 'a' < 1 }}", "cannot compare string with int");
    expect_error("{% set d = {} %}{{ d.update({'a': 1}) }}", "unsafe");
    /* what jinja2 renders but this interpreter refuses, naming the line */
    expect_error("a\n{{ 2 ** 63 }}", "line 2, column 6: integer result past 64 bits");
    expect_error("{{ 9223372036854775807 + 1 }}", "integer result past 64 bits");
    expect_error("{{ -(-9223372036854775807 - 1) }}", "integer result past 64 bits");
    expect_error("\n\n{{ 99999999999999999999 }}", "line 3, column 4: integer literal past 64 bits");
    expect_error("x\n {% with a = 1 %}{{ a }}{% endwith %}", "line 2, column 5: unsupported tag 'with'");
    expect_error("{% extends 'base.jinja' %}", "line 1, column 4: unsupported tag 'extends'");
    expect_error("{% import 'm.jinja' as m %}", "unsupported tag 'import'");
    expect_error("{% macro m(a) %}{{ varargs }}{% endmacro %}\n{{ m(1, 2) }}", "line 2, column 4: macro 'm' takes at most 1");
    expect_error("{{ '{:>5}'.format('r') }}", "format spec, which is not supported");
    expect_error("\n{{ '%*d' % (3, 4) }}", "line 2, column 10: % format: '*' widths are not supported");
    expect_error("{{ '%q' % 1 }}", "unsupported format character 'q'");
    expect_error("{{ '%(a)s' % 1 }}", "a mapping is required");
    expect_error("{{ '%5000d' % 1 }}", "width or precision past 4096");
    expect_error("{{ 'x'|truncate(3) }}", "filter 'truncate' is not supported");
    expect_error("{{ [1]|tojson(separators=(',',)) }}", "separators must be two strings");
    expect_error("{% for x in [1] %}{{ loop.cycle() }}{% endfor %}", "no items for cycling");
    /* an argument error after a buffer was started (leaked before; SAN=1 catches it) */
    expect_error("{{ 'a\nb'|indent([1]) }}", "argument 'width' must be an integer");
}

static void test_limits_stop_hostile_templates(void) {
    JinjaLimits lim = jinja_limits_default();
    lim.max_steps = 100000;
    Err e = {0};
    /* a loop that would run 10^12 times */
    char *out = render("{% for a in range(1000000) %}{% for b in range(1000000) %}x{% endfor %}{% endfor %}",
                       NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "evaluation steps") != NULL, "%s", e.msg);
    /* unbounded macro recursion */
    out = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "macro calls nest deeper than") != NULL, "%s", e.msg);
    /* nesting that would overflow a recursive-descent parser's stack */
    StrBuf b;
    sb_init(&b);
    sb_append(&b, "{{ ");
    for (int i = 0; i < 100000; i++) sb_appendc(&b, '(');
    sb_appendc(&b, 'x');
    for (int i = 0; i < 100000; i++) sb_appendc(&b, ')');
    sb_append(&b, " }}");
    out = render(b.s, NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "nests too deeply") != NULL, "%s", e.msg);
    sb_clear(&b);
    for (int i = 0; i < 10000; i++) sb_append(&b, "{% if x %}");
    out = render(b.s, NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "nests too deeply") != NULL, "%s", e.msg);
    sb_clear(&b);
    sb_append(&b, "{% if a %}");
    for (int i = 0; i < 100000; i++) sb_append(&b, "{% elif a %}");
    sb_append(&b, "{% endif %}");
    out = render(b.s, NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "nests too deeply") != NULL, "%s", e.msg);
    sb_clear(&b);
    sb_append(&b, "{{ ");
    for (int i = 0; i < 100000; i++) sb_append(&b, "not ");
    sb_append(&b, "x }}");
    out = render(b.s, NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "nests too deeply") != NULL, "%s", e.msg);
    sb_free(&b);
    /* output that doubles until it is huge */
    lim.max_output = 1 << 20;
    out = render("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
                 NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "bytes") != NULL, "%s", e.msg);
    out = render("{{ 'x' * 100000000000 }}", NULL, &lim, &e);
    CHECK(out == NULL);
    /* values nested without bound print, compare and serialise without
     * overflowing the stack */
    lim.max_output = 16u << 20;
    lim.max_steps = 10000000;
    out = render("{% set ns = namespace(x=1, y=1) %}{% for i in range(20000) %}{% set ns.x = [ns.x] %}"
                 "{% set ns.y = [ns.y] %}{% endfor %}{{ (ns.x|string)[:3] }}{{ ns.x == ns.y }}"
                 "{{ ns.x|tojson }}",
                 NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "tojson: value nests too deeply") != NULL, "%s", e.msg);
    out = render("{% set ns = namespace(x=1, y=1) %}{% for i in range(20000) %}{% set ns.x = [ns.x] %}"
                 "{% set ns.y = [ns.y] %}{% endfor %}{{ (ns.x|string)[:3] }}{{ ns.x < ns.y }}",
                 NULL, &lim, &e);
    CHECK(out == NULL);
    CHECK_MSG(strstr(e.msg, "nested this deeply") != NULL, "%s", e.msg);
    /* within the limits, the same constructs work */
    out = render("{% for a in range(3) %}{% for b in range(2) %}{{ a }}{{ b }} {% endfor %}{% endfor %}",
                 NULL, &lim, &e);
    CHECK_MSG(out != NULL, "%s", e.msg);
    CHECK_EQ_STR(out, "00 01 10 11 20 21 ");
    free(out);
}

/* The parsed template keeps no pointer into the source text. */
static void test_template_outlives_its_source(void) {
    char *src = xstrdup("text {{ 'lit' }} more {% if true %}in{% endif %}");
    Err e = {0};
    JinjaTemplate *t = jinja_parse(src, NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    memset(src, '#', strlen(src));
    free(src);
    char *out;
    CHECK_OK(jinja_render(t, NULL, NOW, &out, &e), &e);
    CHECK_EQ_STR(out, "text lit more in");
    free(out);
    jinja_free(t);
}

static void test_vars_and_rerender(void) {
    Err e = {0};
    JinjaTemplate *t = jinja_parse("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }};"
                                   "{% endfor %}{% if enable_thinking is defined and enable_thinking is false %}"
                                   "<no-think>{% endif %}",
                                   NULL, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    json_t *v = json_loads("{\"bos_token\": \"<s>\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
                           0, NULL);
    char *out;
    for (int k = 0; k < 2; k++) { /* a template renders any number of times */
        CHECK_OK(jinja_render(t, v, NOW, &out, &e), &e);
        CHECK_EQ_STR(out, "<s>user:hi;");
        free(out);
    }
    json_object_set_new(v, "enable_thinking", json_false());
    CHECK_OK(jinja_render(t, v, NOW, &out, &e), &e);
    CHECK_EQ_STR(out, "<s>user:hi;<no-think>");
    free(out);
    CHECK_OK(jinja_render(t, NULL, NOW, &out, &e), &e); /* no variables: all undefined */
    CHECK_EQ_STR(out, "");
    free(out);
    json_decref(v);
    jinja_free(t);
}

int main(void) {
    RUN(test_features_match_jinja2);
    RUN(test_errors_name_line_and_column);
    RUN(test_limits_stop_hostile_templates);
    RUN(test_vars_and_rerender);
    RUN(test_template_outlives_its_source);
    return test_summary();
}
