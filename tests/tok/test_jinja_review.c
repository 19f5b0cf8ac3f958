/* Jinja constructs a review found rendered unlike jinja2 (each expected
 * output is what Debian's python3-jinja2 3.1.2, configured as transformers
 * configures it by scripts/render_templates.py, renders):
 * - a sign takes its operand without filters, which then apply to the
 *   signed value (jinja2's parse_unary): -1|abs is 1, -x.y|abs is |x.y|;
 * - `set` and {{ }} take a tuple without parentheses (parse_tuple):
 *   {% set a, b = 1, 2 %}, {{ 1, 2 }};
 * - a missing attribute's error read "'list object' has no attribute 'foo'
 *   is undefined". */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tok/jinja.h"

static const struct {
    const char *src, *want;
} CASES[] = {
    {"{{ -1|abs }}", "1"},
    {"{{ -y.z|abs }}|{{ -y.z }}", "3|-3"},
    {"{{ - -3|abs }}", "3"},
    {"{{ -1 + 2|abs }}", "1"},
    {"{{ not -1|abs }}", "False"},
    {"{{ +3|string }}", "3"},
    {"{{ -2**2 }}", "4"}, /* the sign binds tighter than ** in jinja2 */
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}", "12"},
    {"{% set t = 1, 2 %}{{ t }}|{{ t|length }}", "(1, 2)|2"},
    {"{{ 1, 2 }}", "(1, 2)"},
    {"{{ 1, }}", "(1,)"},
    {"{% set a, b = messages[0].role, messages|length %}{{ a }} {{ b }}", "user 1"},
};

static void test_matches_jinja2(void) {
    json_t *vars = json_loads("{\"y\": {\"z\": 3}, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}", 0, NULL);
    int bad = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        Err e = {0};
        char *got = NULL;
        JinjaTemplate *t = jinja_parse(CASES[i].src, NULL, &e);
        int rc = t ? jinja_render(t, vars, 0, &got, &e) : -1;
        if (rc || strcmp(got, CASES[i].want)) {
            fprintf(stderr, "  %s\n    got:  %s\n    want: %s\n", CASES[i].src, rc ? e.msg : got, CASES[i].want);
            bad++;
        }
        free(got);
        jinja_free(t);
    }
    json_decref(vars);
    CHECK_EQ_INT(bad, 0);
}

/* `-x|length` on a list is jinja2's TypeError: the sign applies first. */
static void test_sign_before_filter_errors(void) {
    json_t *vars = json_loads("{\"x\": [1, 2]}", 0, NULL);
    Err e = {0};
    char *got = NULL;
    JinjaTemplate *t = jinja_parse("{{ -x|length }}", NULL, &e);
    CHECK(t != NULL);
    CHECK_MSG(jinja_render(t, vars, 0, &got, &e) != 0, "rendered %s", got ? got : "");
    CHECK_MSG(strstr(e.msg, "line 1") && strstr(e.msg, "unary -"), "%s", e.msg);
    free(got);
    jinja_free(t);
    json_decref(vars);
}

/* A missing attribute's error says what jinja2 says, once. */
static void test_missing_attribute_message(void) {
    json_t *vars = json_loads("{\"messages\": []}", 0, NULL);
    Err e = {0};
    char *got = NULL;
    JinjaTemplate *t = jinja_parse("{{ messages.foo.bar }}", NULL, &e);
    CHECK(t != NULL);
    CHECK(jinja_render(t, vars, 0, &got, &e) != 0);
    CHECK_MSG(strstr(e.msg, "'list object' has no attribute 'foo'") && !strstr(e.msg, "is undefined"), "%s", e.msg);
    free(got);
    jinja_free(t);
    json_decref(vars);
}

int main(void) {
    RUN(test_missing_attribute_message);
    RUN(test_matches_jinja2);
    RUN(test_sign_before_filter_errors);
    return test_summary();
}
