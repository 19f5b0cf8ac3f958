/* aloe view's data and page (aloe/view.h), in process: the data block
 * escaped so that no text can end the script element and round-tripping to
 * the same JSON; invalid UTF-8 shown as U+FFFD; the script's CSP hash; the
 * trees' verdicts and judge counts; errors naming file:line and field. The
 * page itself is tested in a browser by test_view_browser. */
#include <stdlib.h>

#include "aloe/dialogues.h"
#include "aloe/report.h"
#include "aloe/view.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "base/sha256.h"
#include "test.h"

static const char *const HOSTILE = "</script><script>window.__pwned=1</script><!-- <img src=x onerror=alert(1)> "
                                   "&amp; \xe2\x80\xa8line\xe2\x80\xa9para </SCRIPT >";

/* The text of the page's data block (caller frees), or NULL. */
static char *data_block(const char *page) {
    static const char open[] = "<script type=\"application/json\" id=\"aloe-data\">";
    const char *s = strstr(page, open);
    if (!s) return NULL;
    s += sizeof open - 1;
    const char *end = strstr(s, "</script>");
    return end ? xstrndup(s, (size_t)(end - s)) : NULL;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_escape_hostile_text(void) {
    json_t *d = json_pack("{s:s, s:[s, s]}", "reply", HOSTILE, "more", "a < b && c > d", "\xe2\x80\xa8");
    CHECK(d);
    char *js = json_dumps(d, JSON_COMPACT);
    StrBuf b;
    sb_init(&b);
    view_escape_script_json(&b, js, strlen(js));
    /* nothing that could end the element, open a comment or end a line in JS */
    CHECK(!strpbrk(b.s, "<>&"));
    CHECK(!strstr(b.s, "\xe2\x80\xa8") && !strstr(b.s, "\xe2\x80\xa9"));
    CHECK(strstr(b.s, "\\u003c/script\\u003e"));
    CHECK(strstr(b.s, "\\u2028line\\u2029"));
    /* and it reads back as the same JSON */
    json_error_t jerr;
    json_t *back = json_loads(b.s, 0, &jerr);
    CHECK_MSG(back, "%s", jerr.text);
    CHECK(json_equal(back, d));
    json_decref(back);
    sb_free(&b);
    free(js);
    json_decref(d);
}

static void test_escape_invalid_utf8(void) {
    /* a lone continuation byte, a truncated sequence, an overlong '/', a
     * surrogate, a code point above U+10FFFF; then valid 2-, 3-, 4-byte */
    const char in[] = "\"a\x80 b\xE2\x82 c\xC0\xAF d\xED\xA0\x80 e\xF4\x90\x80\x80 \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"";
    StrBuf b;
    sb_init(&b);
    view_escape_script_json(&b, in, sizeof in - 1);
    CHECK_EQ_STR(b.s, "\"a\\ufffd b\\ufffd\\ufffd c\\ufffd\\ufffd d\\ufffd\\ufffd\\ufffd "
                      "e\\ufffd\\ufffd\\ufffd\\ufffd \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"");
    json_t *v = json_loads(b.s, JSON_DECODE_ANY, NULL);
    CHECK(json_is_string(v));
    json_decref(v);
    sb_free(&b);
    char *out;
    size_t n;
    CHECK_EQ_INT(view_repair_utf8(in, sizeof in - 1, &out, &n), 12);
    CHECK(strstr(out, "a\xEF\xBF\xBD b"));
    CHECK(strstr(out, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
    free(out);
}

/* Two trees as aloe dialogues writes them: turn 1 agreed, turn 2 the
 * orders disagree (first: A = hinted; second: A = plain), and a tree from
 * the reference schema (no id, no meta) with a dropped pair. */
static const char *TREES =
    "{\"id\": \"conv-000000\", \"profile\": \"A nurse in Leeds.\", \"personality\": \"Shy.\", \"conversations\": ["
    "{\"user\": \"hi\", \"assistant\": {\"preferred\": \"HINTED-1\", \"rejected\": \"PLAIN-1\"}, \"chosen\": "
    "\"rejected\", \"inferred_profile\": \"nurse\", \"inferred_personality\": \"None\"},"
    "{\"user\": \"</script><script>window.__pwned=1</script>\", \"assistant\": {\"preferred\": \"PLAIN-2\", "
    "\"rejected\": \"HINTED-2\"}, \"chosen\": \"preferred\", \"inferred_profile\": \"nurse\", "
    "\"inferred_personality\": \"shy\"}],"
    " \"meta\": {\"disagreements\": 1, \"turn_details\": ["
    "{\"turn\": 1, \"judges\": \"agree\", \"hinted_is\": \"preferred\", \"judge_hinted_first\": {\"raw\": "
    "[\"first\"], \"verdict\": \"A\"}, \"judge_hinted_second\": {\"raw\": [\"second\"], \"verdict\": \"B\"}},"
    "{\"turn\": 2, \"judges\": \"disagree\", \"hinted_is\": \"rejected\", \"judge_hinted_first\": {\"raw\": "
    "[\"hmm\", \"first\"], \"verdict\": \"A\"}, \"judge_hinted_second\": {\"raw\": [\"first\"], \"verdict\": "
    "\"A\"}}]}}\n"
    "{\"profile\": \"A baker.\", \"personality\": \"Loud.\", \"conversations\": [{\"user\": \"yo\", "
    "\"assistant\": {\"preferred\": null, \"rejected\": null, \"hinted\": \"H\", \"plain\": \"P\"}, \"chosen\": "
    "\"plain\"}]}\n";

static void test_trees_data(void) {
    Err e = {0};
    json_t *d = view_trees_parse("t.jsonl", TREES, strlen(TREES), NULL, &e);
    CHECK_MSG(d, "%s", e.msg);
    CHECK_EQ_STR(json_string_value(json_object_get(d, "kind")), "trees");
    json_t *trees = json_object_get(d, "trees");
    CHECK_EQ_INT(json_array_size(trees), 2);
    json_t *t0 = json_array_get(trees, 0), *t1 = json_array_get(trees, 1);
    CHECK_EQ_STR(json_string_value(json_object_get(t0, "id")), "conv-000000");
    CHECK_EQ_STR(json_string_value(json_object_get(t1, "id")), "line-2"); /* no id: linked by its line */
    CHECK_EQ_INT(json_integer_value(json_object_get(t0, "disagreements")), 1);
    json_t *u1 = json_array_get(json_object_get(t0, "turns"), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(u1, "judges")), "disagree");
    CHECK_EQ_STR(json_string_value(json_object_get(u1, "hinted_is")), "rejected");
    CHECK_EQ_STR(json_string_value(json_object_get(u1, "chosen")), "preferred");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(u1, "first"), "verdict")), "A");
    CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(u1, "first"), "raw")), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(u1, "user")), "</script><script>window.__pwned=1</script>");
    json_t *d0 = json_array_get(json_object_get(json_array_get(trees, 1), "turns"), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(d0, "hinted")), "H");
    CHECK(json_is_null(json_object_get(json_object_get(d0, "first"), "verdict")));
    /* the judge counts are dialogues_judge_counts' over the file */
    JudgeOrderCounts want = {0};
    const char *nl = strchr(TREES, '\n');
    json_t *rec = json_loadb(TREES, (size_t)(nl - TREES), 0, NULL);
    dialogues_judge_counts(rec, &want);
    json_decref(rec);
    json_t *j = json_object_get(d, "judges");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "both_verdicts")), want.both_verdicts);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "agreements")), want.agreements);
    CHECK_EQ_INT(want.agreements, 1);
    CHECK_NEAR(json_real_value(json_object_get(j, "agreement_rate")), 0.5, 0);
    CHECK_NEAR(json_real_value(json_object_get(j, "position_bias_rate")), 0.75, 0);
    json_decref(d);
}

static void test_page_round_trips_and_hash(void) {
    Err e = {0};
    json_t *d = view_trees_parse("t.jsonl", TREES, strlen(TREES), NULL, &e);
    CHECK_MSG(d, "%s", e.msg);
    char *page = view_html(d, NULL);
    /* the data block and the page's script: two script elements, whatever
     * the data says */
    CHECK_EQ_INT(count(page, "</script>"), 2);
    CHECK_EQ_INT(count(page, "<script"), 2);
    CHECK(!strstr(page, "{{"));
    char *block = data_block(page);
    CHECK(block);
    json_error_t jerr;
    json_t *back = json_loads(block, 0, &jerr);
    CHECK_MSG(back, "%s", jerr.text);
    CHECK(json_equal(back, d));
    /* the CSP names the SHA-256 of the one script that may run */
    const char *main_open = "<script id=\"aloe-main\">";
    const char *s = strstr(page, main_open);
    CHECK(s);
    s += strlen(main_open);
    const char *end = strstr(s, "</script>");
    uint8_t dig[32];
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, s, (size_t)(end - s));
    sha256_final(&h, dig);
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char b64[48] = {0}, *o = b64;
    for (int i = 0; i < 32; i += 3) {
        unsigned v = (unsigned)dig[i] << 16 | (i + 1 < 32 ? (unsigned)dig[i + 1] << 8 : 0) | (i + 2 < 32 ? dig[i + 2] : 0);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < 32 ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < 32 ? tab[v & 63] : '=';
    }
    char *csp = xasprintf("script-src 'sha256-%s'", b64);
    CHECK_MSG(strstr(page, csp), "no %s", csp);
    free(csp);
    json_decref(back);
    free(block);
    free(page);
    json_decref(d);
}

static void test_chart_is_inline_svg(void) {
    json_t *turns = json_pack("[{s:i, s:f, s:i, s:f}, {s:i, s:f, s:i, s:n}]", "turn", 1, "al", 2.5, "n", 10, "ci95",
                              0.25, "turn", 2, "al", 3.0, "n", 10, "ci95");
    json_t *r = json_pack("{s:o, s:{s:s}}", "turns", turns, "models", "model", "m <&>");
    ReportSeries rs = {"m <&>", r};
    char *svg = report_svg(&rs, 1, "AL");
    json_t *d = json_pack("{s:i, s:s}", "aloe_view", 1, "kind", "runs");
    char *page = view_html(d, svg);
    CHECK(strstr(page, "<figure id=\"chart\"><svg "));
    CHECK(!strstr(page, "<?xml"));
    CHECK(strstr(page, "m &lt;&amp;&gt;"));
    free(page);
    free(svg);
    json_decref(d);
    json_decref(r);
}

#define EXPECT_ERR(call, want)                                                    \
    do {                                                                          \
        Err e_ = {0};                                                             \
        json_t *v_ = (call);                                                      \
        CHECK_MSG(!v_, "accepted: %s", #call);                                    \
        CHECK_MSG(strstr(e_.msg, want), "error \"%s\" lacks \"%s\"", e_.msg, want); \
    } while (0)

static json_t *trees(const char *text, Err *e) { return view_trees_parse("t.jsonl", text, strlen(text), NULL, e); }
static json_t *runs(const char *text, Err *e) { return view_run_dialogues_parse("d.jsonl", text, strlen(text), e); }

static void test_errors_name_file_line_and_field(void) {
    const char *ok = "{\"id\": \"p0-k0\", \"profile\": \"p\", \"personality\": \"q\", \"turns\": [{\"user\": \"u\", "
                     "\"assistant\": \"a\", \"judge\": [\"Score: 4\"], \"score\": 4, \"attempts\": 1}]}\n";
    char *two = xasprintf("%s%s", ok, "{\"id\": \"p0-k1\", \"profile\": \"p\", \"personality\": \"q\", \"turns\": "
                                      "[{\"user\": \"u\", \"assistant\": 3, \"judge\": [], \"score\": null}]}\n");
    EXPECT_ERR(runs(two, &e_), "d.jsonl:2: turns[0].assistant: expected a string, got an integer");
    free(two);
    EXPECT_ERR(runs("{\"id\": \"x\", \"profile\": \"p\", \"personality\": \"q\", \"turns\": [{\"user\": \"u\", "
                    "\"assistant\": \"a\", \"judge\": [], \"score\": 7}]}\n", &e_),
               "d.jsonl:1: turns[0].score: expected an integer from 1 to 5 or null, got an integer");
    EXPECT_ERR(runs("{\"id\": \"x\", \"profile\": \"p\", \"personality\": \"q\", \"turns\": [{\"user\": \"u\", "
                    "\"assistant\": \"a\", \"judge\": [4], \"score\": 4}]}\n", &e_),
               "d.jsonl:1: turns[0].judge[0]: expected a string, got an integer");
    EXPECT_ERR(runs("{\"id\": \"x\", \"personality\": \"q\", \"turns\": []}\n", &e_),
               "d.jsonl:1: profile: expected a string, got nothing");
    EXPECT_ERR(runs("{\"id\": \"x\", \n", &e_), "d.jsonl:1");
    EXPECT_ERR(runs("\n{nope}\n{}\n", &e_), "d.jsonl:2");
    EXPECT_ERR(trees("{\"profile\": \"p\", \"personality\": \"q\", \"conversations\": [{\"user\": \"u\", "
                     "\"assistant\": {\"preferred\": \"a\"}}, {\"user\": \"u\", \"assistant\": \"a\"}]}\n", &e_),
               "t.jsonl:1: conversations[1].assistant: expected an object {preferred, rejected}, got a string");
    EXPECT_ERR(trees("{\"profile\": \"p\", \"personality\": \"q\", \"conversations\": [{\"user\": \"u\", "
                     "\"assistant\": {}}], \"meta\": {\"turn_details\": [{\"judge_hinted_second\": {\"raw\": "
                     "[1]}}]}}\n", &e_),
               "t.jsonl:1: meta.turn_details[0].judge_hinted_second.raw[0]: expected a string, got an integer");
    EXPECT_ERR(trees("{\"profile\": \"p\", \"personality\": \"q\", \"conversations\": {}}\n", &e_),
               "t.jsonl:1: conversations: expected a list of turns, got an object");
    EXPECT_ERR(trees("[1]\n", &e_), "t.jsonl:1: expected a conversation tree (an object), got an array");
}

/* A crash mid-write leaves a last line without its newline; the journal
 * drops it on the next run, the page leaves it out and says so. Invalid
 * UTF-8 in a file is shown, not refused. */
static void test_torn_last_line_and_bad_bytes(void) {
    char *text = xasprintf("%s{\"profile\": \"x\", \"person", TREES);
    Err e = {0};
    json_t *d = trees(text, &e);
    CHECK_MSG(d, "%s", e.msg);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "trees")), 2);
    const char *w = json_string_value(json_array_get(json_object_get(d, "warnings"), 0));
    CHECK_MSG(w && strstr(w, "t.jsonl:3: a torn last record"), "%s", w ? w : "no warning");
    json_decref(d);
    free(text);
    const char *bad = "{\"profile\": \"caf\xE9 \xFF\", \"personality\": \"q\", \"conversations\": []}\n";
    d = trees(bad, &e);
    CHECK_MSG(d, "%s", e.msg);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(d, "trees"), 0), "profile")),
                 "caf\xEF\xBF\xBD \xEF\xBF\xBD");
    w = json_string_value(json_array_get(json_object_get(d, "warnings"), 0));
    CHECK_MSG(w && strstr(w, "2 bytes that are not UTF-8"), "%s", w ? w : "no warning");
    json_decref(d);
}

/* A run directory: personas from results.json (scores, order), the
 * conversations from dialogues.jsonl, a persona's mean of its valid
 * scores; a malformed dialogues.jsonl is an error naming its path. */
static void test_run_data(void) {
    char *dir = test_tmpdir(), *res = path_join(dir, "results.json"), *dlg = path_join(dir, "dialogues.jsonl");
    test_put_text(res, "{\"turns\": [{\"turn\": 1, \"al\": 3.0, \"n\": 1, \"invalid\": 1}, {\"turn\": 2, \"al\": 4.0, "
                       "\"n\": 2}], \"models\": {\"model\": \"m\"}, \"personas\": ["
                       "{\"id\": \"p1-k0\", \"profile_index\": 1, \"personality_index\": 0, \"scores\": [null, 4]},"
                       "{\"id\": \"p0-k0\", \"profile_index\": 0, \"personality_index\": 0, \"scores\": [3, 4]}]}\n");
    test_put_text(dlg, "{\"id\": \"p0-k0\", \"profile\": \"P0\", \"personality\": \"K0\", \"turns\": ["
                       "{\"user\": \"u1\", \"assistant\": \"a1\", \"judge\": [\"Score: 3\"], \"score\": 3, \"attempts\": 1},"
                       "{\"user\": \"u2\", \"assistant\": \"a2\", \"judge\": [\"Score: 4\"], \"score\": 4, \"attempts\": 1}]}\n"
                       "{\"id\": \"p1-k0\", \"profile\": \"P1\", \"personality\": \"K0\", \"turns\": ["
                       "{\"user\": \"u1\", \"user_raw\": \"*waves* u1\", \"assistant\": \"b1\", \"judge\": [\"hm\", "
                       "\"still\", \"no\"], \"score\": null, \"attempts\": 3},"
                       "{\"user\": \"u2\", \"assistant\": \"b2\", \"judge\": [\"x\", \"Score: 4\"], \"score\": 4, "
                       "\"attempts\": 2}]}\n");
    Err e = {0};
    json_t *r = report_load_results(dir, &e);
    CHECK_MSG(r, "%s", e.msg);
    ViewRun run = {"m", dir, r};
    json_t *d = view_runs_data(&run, 1, NULL, NULL, &e);
    CHECK_MSG(d, "%s", e.msg);
    json_t *ps = json_object_get(d, "personas");
    CHECK_EQ_INT(json_array_size(ps), 2);
    json_t *p = json_array_get(ps, 0); /* results.json's order */
    CHECK_EQ_STR(json_string_value(json_object_get(p, "id")), "p1-k0");
    CHECK_EQ_STR(json_string_value(json_object_get(p, "profile")), "P1");
    json_t *pr = json_array_get(json_object_get(p, "runs"), 0);
    CHECK_NEAR(json_real_value(json_object_get(pr, "mean")), 4.0, 0);
    json_t *t0 = json_array_get(json_object_get(pr, "turns"), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(t0, "attempts")), 3);
    CHECK_EQ_INT(json_array_size(json_object_get(t0, "judge")), 3);
    CHECK_EQ_STR(json_string_value(json_object_get(t0, "user_raw")), "*waves* u1");
    CHECK_NEAR(json_real_value(json_object_get(json_array_get(json_object_get(json_array_get(ps, 1), "runs"), 0),
                                               "mean")),
               3.5, 0);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "warnings")), 0);
    json_decref(d);
    /* damaged: the error names dialogues.jsonl and the line */
    test_put_text(dlg, "{\"id\": \"p0-k0\", \"profile\": \"P0\", \"personality\": \"K0\", \"turns\": 3}\n");
    d = view_runs_data(&run, 1, NULL, NULL, &e);
    CHECK(!d);
    char *want = xasprintf("%s:1: turns: expected a list of turns, got an integer", dlg);
    CHECK_MSG(strstr(e.msg, want), "%s", e.msg);
    free(want);
    /* absent: the scores alone, and a warning */
    CHECK_OK(file_unlink(dlg, &e), &e);
    d = view_runs_data(&run, 1, NULL, NULL, &e);
    CHECK_MSG(d, "%s", e.msg);
    CHECK(json_is_null(json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(d, "personas"), 0),
                                                                       "runs"), 0),
                                       "turns")));
    CHECK(strstr(json_string_value(json_array_get(json_object_get(d, "warnings"), 0)), "dialogues.jsonl: not found"));
    json_decref(d);
    json_decref(r);
    /* no results.json: report_load_results names it */
    CHECK_OK(file_unlink(res, &e), &e);
    CHECK(!report_load_results(dir, &e));
    CHECK_MSG(strstr(e.msg, "results.json: not found"), "%s", e.msg);
    free(res);
    free(dlg);
    free(dir);
}

static void test_detects_trees_files(void) {
    char *t = test_write_file("trees.jsonl", TREES);
    char *r = test_write_file("results.json", "{\"conversations\": {\"done\": 1}, \"turns\": []}");
    CHECK(view_is_trees_file(t));
    CHECK(!view_is_trees_file(r));
    CHECK(!view_is_trees_file("/nonexistent/x.jsonl"));
    free(t);
    free(r);
}

int main(void) {
    RUN(test_escape_hostile_text);
    RUN(test_escape_invalid_utf8);
    RUN(test_trees_data);
    RUN(test_page_round_trips_and_hash);
    RUN(test_chart_is_inline_svg);
    RUN(test_errors_name_file_line_and_field);
    RUN(test_torn_last_line_and_bad_bytes);
    RUN(test_run_data);
    RUN(test_detects_trees_files);
    return test_summary();
}
