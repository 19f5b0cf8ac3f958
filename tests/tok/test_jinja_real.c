/* The Jinja interpreter on real chat templates: every template in
 * tests/data/templates/ (sources in SOURCES.md) rendered over the
 * conversations of its NAME.expected.json must equal, byte for byte, what
 * jinja2 configured as transformers configures it rendered
 * (scripts/render_templates.py wrote those files). Where jinja2 raised (a
 * template's raise_exception, or a template bug on that input), the
 * interpreter must fail too, and a raise_exception message must be carried
 * in the error. */
#include <glob.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"
#include "tok/jinja.h"

#define NOW 1721995200 /* 2024-07-26 12:00 UTC, the time the expected renders used */

/* Index of the first differing byte, for the failure message. */
static size_t first_diff(const char *a, const char *b) {
    size_t i = 0;
    while (a[i] && a[i] == b[i]) i++;
    return i;
}

static int check_template(const char *exp_path, int *n_cases) {
    json_error_t je;
    json_t *exp = json_load_file(exp_path, 0, &je);
    if (!exp) {
        fprintf(stderr, "  %s:%d: %s\n", exp_path, je.line, je.text);
        return 0;
    }
    char *dir = xstrdup(exp_path);
    *strrchr(dir, '/') = 0;
    char *tpl_path = xasprintf("%s/%s", dir, json_string_value(json_object_get(exp, "template")));
    char *src = test_read_text(tpl_path);
    Err e = {0};
    int ok = 1;
    JinjaTemplate *t = jinja_parse(src, NULL, &e);
    if (!t) {
        fprintf(stderr, "  %s: parse: %s\n", tpl_path, e.msg);
        ok = 0;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(exp, "cases"), i, c) {
        if (!t) break;
        (*n_cases)++;
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *want = json_string_value(json_object_get(c, "output"));
        const char *want_err = json_string_value(json_object_get(c, "error"));
        char *got = NULL;
        int rc = jinja_render(t, json_object_get(c, "vars"), NOW, &got, &e);
        if (want) {
            if (rc) {
                fprintf(stderr, "  %s [%s]: render failed: %s\n", tpl_path, name, e.msg);
                ok = 0;
            } else if (strcmp(got, want)) {
                size_t d = first_diff(got, want);
                fprintf(stderr, "  %s [%s]: differs at byte %zu:\n    got:  \"%.80s\"\n    want: \"%.80s\"\n",
                        tpl_path, name, d, got + (d > 20 ? d - 20 : 0), want + (d > 20 ? d - 20 : 0));
                ok = 0;
            }
        } else if (!rc) {
            fprintf(stderr, "  %s [%s]: rendered, but jinja2 raised: %s\n", tpl_path, name, want_err);
            ok = 0;
        } else if (want_err && !strchr(want_err, ':') && !strstr(e.msg, want_err) &&
                   strstr(src, "raise_exception")) {
            /* a raise_exception message (jinja2's own errors have no fixed text) */
            if (!strstr(want_err, "undefined") && !strstr(want_err, "attribute")) {
                fprintf(stderr, "  %s [%s]: error \"%s\" does not carry \"%s\"\n", tpl_path, name,
                        e.msg, want_err);
                ok = 0;
            }
        }
        free(got);
    }
    jinja_free(t);
    free(src);
    free(tpl_path);
    free(dir);
    json_decref(exp);
    return ok;
}

static void test_real_templates(void) {
    glob_t g;
    CHECK(glob("tests/data/templates/*.expected.json", 0, NULL, &g) == 0);
    int pass = 0, fail = 0, cases = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (check_template(g.gl_pathv[i], &cases)) pass++;
        else fail++;
    }
    globfree(&g);
    fprintf(stderr, "  real templates: %d pass, %d fail (%d cases)\n", pass, fail, cases);
    CHECK(pass >= 25);
    CHECK_EQ_INT(fail, 0);
}

int main(void) {
    RUN(test_real_templates);
    return test_summary();
}
