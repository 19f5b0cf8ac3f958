/* Reports: the Markdown tables and the SVG chart (well-formed XML with the
 * expected elements). */
#include <stdlib.h>

#include "aloe/report.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static json_t *fake_results(const char *model, const double *al, int T, int complete) {
    json_t *turns = json_array();
    for (int k = 0; k < T; k++)
        json_array_append_new(turns, json_pack("{s:i, s:o, s:i, s:o, s:i}", "turn", k + 1, "al",
                                               al[k] < 0 ? json_null() : json_real(al[k]), "n", 100, "ci95",
                                               k == 0 ? json_null() : json_real(0.25), "invalid", 1));
    return json_pack("{s:{s:s, s:s, s:s}, s:b, s:{s:i, s:i}, s:o, s:f, s:f, s:f, s:f, s:f, s:{s:i, s:i}}",
                     "models", "model", model, "user", "u", "judge", "j", "complete", complete, "conversations",
                     "done", complete ? 100 : 40, "total", 100, "turns", turns, "avg", 3.25, "ir", 0.125, "r2", 0.5,
                     "n_ir", 0.0625, "n_r2", 0.5, "judge", "invalid", 3, "retried", 7);
}

/* A small XML well-formedness check: balanced tags, quoted attributes, known
 * entities only. Returns NULL or what is wrong. */
static const char *xml_check(const char *s, int *elements, int *texts, int *circles, int *paths) {
    const char *stack[64];
    size_t lens[64];
    int depth = 0;
    *elements = *texts = *circles = *paths = 0;
    if (strncmp(s, "<?xml", 5)) return "no XML declaration";
    s = strstr(s, "?>") + 2;
    while (*s) {
        if (*s == '&') {
            if (strncmp(s, "&amp;", 5) && strncmp(s, "&lt;", 4) && strncmp(s, "&gt;", 4) && strncmp(s, "&quot;", 6) &&
                strncmp(s, "&apos;", 6))
                return "unknown entity";
            s++;
            continue;
        }
        if (*s != '<') {
            s++;
            continue;
        }
        if (s[1] == '/') {
            const char *e = strchr(s, '>');
            if (!depth || !e) return "unbalanced close tag";
            depth--;
            if ((size_t)(e - s - 2) != lens[depth] || strncmp(s + 2, stack[depth], lens[depth]))
                return "mismatched close tag";
            s = e + 1;
            continue;
        }
        const char *name = s + 1;
        size_t nl = strcspn(name, " />");
        (*elements)++;
        if (!strncmp(name, "text", nl) && nl == 4) (*texts)++;
        if (!strncmp(name, "circle", nl) && nl == 6) (*circles)++;
        if (!strncmp(name, "path", nl) && nl == 4) (*paths)++;
        const char *p = name + nl;
        int quote = 0;
        while (*p && (quote || (*p != '>'))) {
            if (*p == '"') quote = !quote;
            if (!quote && *p == '<') return "'<' inside a tag";
            p++;
        }
        if (!*p) return "unterminated tag";
        if (p[-1] != '/') {
            if (depth == 64) return "too deep";
            stack[depth] = name;
            lens[depth++] = nl;
        }
        s = p + 1;
    }
    return depth ? "unclosed element" : NULL;
}

static void test_svg_is_well_formed(void) {
    double a[] = {2.5, 3.0, -1, 3.5}, b[] = {2.0, 2.2, 2.4, 2.6};
    json_t *r1 = fake_results("llama <8B> & \"friends\"", a, 4, 1), *r2 = fake_results("qwen", b, 4, 1);
    ReportSeries s[] = {{"llama <8B> & \"friends\"", r1}, {"qwen", r2}};
    char *svg = report_svg(s, 2, "AL(k) <test>");
    int el, tx, ci, pa;
    const char *bad = xml_check(svg, &el, &tx, &ci, &pa);
    CHECK_MSG(!bad, "%s", bad);
    CHECK(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(strstr(svg, "llama &lt;8B&gt; &amp; &quot;friends&quot;"));
    CHECK(strstr(svg, "class=\"legend\"") && strstr(svg, "class=\"grid\"") && strstr(svg, "class=\"axes\""));
    CHECK(strstr(svg, "id=\"series-0\"") && strstr(svg, "id=\"series-1\""));
    /* 3 + 4 points plus 2 legend markers; error bars where ci95 is given
     * (turns 2-4 of both, minus the missing AL): 2 curves + 2 + 3 bars. */
    CHECK_EQ_INT(ci, 3 + 4 + 2);
    CHECK_EQ_INT(pa, 2 + 2 + 3);
    /* Tick labels 1..4 and 1..5, title, two axis labels, two legend names. */
    CHECK_EQ_INT(tx, 4 + 5 + 1 + 2 + 2);
    /* The missing AL(3) breaks the first curve into two pieces. */
    CHECK(strstr(svg, "d=\"M") && strstr(strstr(svg, "d=\"M") + 4, " M"));
    /* If xmllint is installed, it must agree. */
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        char *dir = test_tmpdir();
        char *p = path_join(dir, "c.svg");
        Err e;
        CHECK_OK(file_write_atomic(p, svg, strlen(svg), &e), &e);
        char *cmd = xasprintf("xmllint --noout '%s' 2>&1", p);
        CHECK_EQ_INT(system(cmd), 0);
        free(cmd);
        free(p);
        free(dir);
    }
    free(svg);
    json_decref(r1);
    json_decref(r2);
}

static void test_compare_table(void) {
    double a[] = {2.5, 3.0, -1, 3.5}, b[] = {2.0, 2.25, 2.5};
    json_t *r1 = fake_results("m|one", a, 4, 1), *r2 = fake_results("two", b, 3, 0);
    ReportSeries s[] = {{"m|one", r1}, {"two", r2}};
    char *md = report_compare_markdown(s, 2);
    CHECK(strstr(md, "| run | AL(1) | AL(2) | AL(3) | AL(4) | AVG | IR | N-IR | R² | invalid |\n"));
    CHECK(strstr(md, "| m\\|one | 2.50 | 3.00 | – | 3.50 | 3.25 | 0.125 | 0.062 | 0.50 | 3 |\n"));
    CHECK(strstr(md, "| two | 2.00 | 2.25 | 2.50 | – | 3.25 | 0.125 | 0.062 | 0.50 | 3 | (incomplete)\n"));
    CHECK(strstr(md, "AL(k)/AL(1)"));
    CHECK(!strstr(md, "±") && strstr(md, "Error bars in the chart: half-width")); /* no ± column here */
    free(md);
    char *one = report_run_markdown(r2);
    CHECK(strstr(one, "# ALOE benchmark: two"));
    CHECK(strstr(one, "| 2 | 2.250 | 0.250 | 100 | 1 |"));
    CHECK(strstr(one, "incomplete"));
    CHECK(strstr(one, "![AL(k)](al.svg)"));
    free(one);
    json_decref(r1);
    json_decref(r2);
}

static void test_names_and_loading(void) {
    json_t *r = json_object();
    char *n = report_run_name(r, "runs/gpt-4o/");
    CHECK_EQ_STR(n, "gpt-4o");
    free(n);
    json_decref(r);
    char *dir = test_tmpdir();
    Err e = {0};
    CHECK(report_load_results(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "results.json: not found"), "%s", e.msg);
    char *p = path_join(dir, "results.json");
    CHECK_OK(file_write_atomic(p, "{\"turns\": 3}", 12, &e), &e);
    CHECK(report_load_results(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "not a benchmark results file"), "%s", e.msg);
    CHECK_OK(file_write_atomic(p, "{\"turns\": [", 11, &e), &e);
    CHECK(report_load_results(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "results.json:1:"), "%s", e.msg);
    free(p);
    free(dir);
}

/* A long legend name keeps its end, which tells runs apart (it used to keep
 * the start: every local model's path read "/work/shared/fixtures/mo..."). */
static void test_svg_legend_keeps_name_end(void) {
    double a[] = {2.5, 3.0};
    const char *n1 = "/work/shared/fixtures/models/tiny-qwen2 (base-run)",
               *n2 = "/work/shared/fixtures/models/tiny-qwen2 (aligned-run)";
    json_t *r1 = fake_results(n1, a, 2, 1), *r2 = fake_results(n2, a, 2, 1);
    ReportSeries s[] = {{n1, r1}, {n2, r2}};
    char *svg = report_svg(s, 2, "AL(k)");
    CHECK_MSG(strstr(svg, ">...ixtures/models/tiny-qwen2 (base-run)</text>"), "%s", svg);
    CHECK_MSG(strstr(svg, ">...ures/models/tiny-qwen2 (aligned-run)</text>"), "%s", svg);
    free(svg);
    json_decref(r1);
    json_decref(r2);
}

int main(void) {
    RUN(test_svg_is_well_formed);
    RUN(test_compare_table);
    RUN(test_names_and_loading);
    RUN(test_svg_legend_keeps_name_end);
    return test_summary();
}
