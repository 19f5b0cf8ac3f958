/* aloe view's pages in a real browser: headless Chromium (Debian's
 * `chromium`) driven by Playwright (`playwright-core`, installed into
 * tests/browser by `npm ci --prefix tests/browser`). The checks themselves
 * are tests/browser/view.mjs; this program makes the pages from real run
 * directories (aloe bench against the fake OpenAI-compatible server: 100
 * personas x 10 turns, whose evaluated model answers with a <script> that
 * would set window.__pwned) and a 3,000-tree dialogues file, runs the script
 * and reports what it says. SKIPPED only when chromium, node or
 * playwright-core is not installed (CI installs them: ALOE_REQUIRE_ALL).
 *
 * ALOE_VIEW_SCREENSHOT=FILE.png also writes the README's screenshot
 * (docs/img/view.png) from the same page. */
#include <stdlib.h>

#include "cli/aloe_sh.h"
#include "llm/fake_server.h"
#include "test.h"

#define ENV "OPENAI_API_KEY=sk-test"

static const char *SCRIPT =
    "{\"models\": {"
    "\"user-sim\": {\"replies\": [\"I walked the dog this morning and it rained ({hash}).\", "
    "\"Work was long today; any tips for a quick dinner? ({hash})\", \"I am thinking of taking up running "
    "({hash}).\"], \"pick\": \"hash\"},"
    "\"m\": {\"replies\": [\"Sounds like a lovely walk. Did the dog enjoy the rain?\", \"Try a one-pan pasta: "
    "ten minutes, one pot.\", \"</script><script>window.__pwned=1</script><img src=x "
    "onerror=\\\"window.__pwned=2\\\"> Start slowly: three short runs a week.\"], \"pick\": \"hash\"},"
    "\"m2\": {\"reply\": \"A plainer reply ({hash}).\"},"
    "\"judge\": {\"replies\": [\"The reply fits the persona.\\nScore: {score}\", \"I cannot say.\", "
    "\"**Score:** {score}/5\"], \"pick\": \"hash\"}"
    "}}";

static FakeServer fs;
static int up;
static char *dir;

static void write_lines(const char *path, const char *fmt, int n) {
    StrBuf b;
    sb_init(&b);
    for (int i = 0; i < n; i++) {
        sb_printf(&b, fmt, i);
        sb_appendc(&b, '\n');
    }
    test_put_text(path, b.s);
    sb_free(&b);
}

static char *bench(const char *model, const char *name, int profiles, int per_profile, int turns) {
    char *prof = path_join(dir, "profiles.jsonl"), *pers = path_join(dir, "personalities.jsonl");
    write_lines(prof, "\"Profile %d: lives by the sea, keeps two cats, cooks on Sundays and reads crime novels.\"",
                profiles);
    write_lines(pers, "\"Personality %d: warm, direct, a little impatient, fond of dry jokes.\"", per_profile);
    char *out = path_join(dir, name), *log;
    char *args = xasprintf("bench --model %s --user-model user-sim --judge-model judge --profiles %s --personalities "
                           "%s --personalities-per-profile %d --turns %d -j 16 --base-url %s --out %s --quiet "
                           "--timeout 30",
                           model, prof, pers, per_profile, turns, fs.url, out);
    int rc = aloe_sh_run(ENV, args, &log);
    if (rc) test_fail(__FILE__, __LINE__, "bench exit %d: %s", rc, log);
    free(log);
    free(args);
    free(prof);
    free(pers);
    return out;
}

/* 3,000 trees of 10 turns, as aloe dialogues writes them; every 7th tree
 * has one turn whose judge orders disagree; tree i's profile holds the word
 * zebra<i> (4 digits) for the search. */
static long write_trees(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    long disagreeing = 0;
    for (int i = 0; i < 3000; i++) {
        int dis_turn = i % 7 == 0 ? i % 10 : -1;
        disagreeing += dis_turn >= 0;
        fprintf(f, "{\"id\": \"conv-%06d\", \"profile\": \"Profile zebra%04d: grows tomatoes, cycles to work.\", "
                   "\"personality\": \"Calm and curious (%d).\", \"conversations\": [",
                i, i, i % 13);
        for (int k = 0; k < 10; k++)
            fprintf(f, "%s{\"user\": \"Message %d of tree %d: what should I plant next?\", \"assistant\": "
                       "{\"preferred\": \"Preferred reply %d.%d: try beans, they like your sunny plot.\", "
                       "\"rejected\": \"Rejected reply %d.%d: plant something.\"}, \"chosen\": \"%s\", "
                       "\"inferred_profile\": \"Grows vegetables.\", \"inferred_personality\": \"Calm.\"}",
                    k ? ", " : "", k + 1, i, i, k, i, k, (i + k) % 2 ? "preferred" : "rejected");
        fprintf(f, "], \"meta\": {\"index\": %d, \"disagreements\": %d, \"turn_details\": [", i, dis_turn >= 0);
        for (int k = 0; k < 10; k++) {
            int dis = k == dis_turn;
            fprintf(f, "%s{\"turn\": %d, \"judges\": \"%s\", \"hinted_is\": \"%s\", \"judge_hinted_first\": "
                       "{\"raw\": [\"First.\"], \"verdict\": \"A\"}, \"judge_hinted_second\": {\"raw\": [\"%s\"], "
                       "\"verdict\": \"%s\"}}",
                    k ? ", " : "", k + 1, dis ? "disagree" : "agree", "preferred", dis ? "First." : "Second.",
                    dis ? "A" : "B");
        }
        fprintf(f, "]}}\n");
    }
    return fclose(f) ? -1 : disagreeing;
}

static int aloe(char *args) {
    char *log;
    int rc = aloe_sh_run(ENV, args, &log);
    if (rc) test_fail(__FILE__, __LINE__, "aloe %s: exit %d: %s", args, rc, log);
    free(args);
    free(log);
    return rc;
}

static void test_pages_in_chromium(void) {
    /* what the browser check needs, or SKIPPED saying what is missing */
    const char *chromium = getenv("ALOE_CHROMIUM");
    if (!chromium) chromium = file_exists("/usr/bin/chromium") ? "/usr/bin/chromium" : NULL;
    if (!chromium || !file_exists(chromium)) SKIP("chromium not installed (apt-get install chromium; or set ALOE_CHROMIUM)");
    if (test_system("command -v node >/dev/null 2>&1")) SKIP("node not installed");
    if (!file_exists("tests/browser/node_modules/playwright-core/package.json"))
        SKIP("playwright-core not installed (npm ci --prefix tests/browser)");
    NEED_STARTED(up, "fake_openai");
    dir = test_tmpdir();
    char *big = bench("m", "big", 20, 5, 10); /* the paper's 100 personas x 10 turns */
    char *a = bench("m", "small-a", 3, 2, 3), *b = bench("m2", "small-b", 3, 2, 3);
    if (test_stopped()) return;
    char *trees = path_join(dir, "trees.jsonl");
    long disagreeing = write_trees(trees);
    CHECK(disagreeing > 0);
    char *run_html = path_join(big, "view.html"), *cmp_html = path_join(dir, "cmp.html");
    char *trees_html = path_join(dir, "trees.html");
    if (aloe(xasprintf("view %s", big)) || aloe(xasprintf("view %s %s --out %s", a, b, cmp_html)) ||
        aloe(xasprintf("view %s --out %s", trees, trees_html)))
        return;
    const char *shot = getenv("ALOE_VIEW_SCREENSHOT");
    char *out = path_join(dir, "browser.txt");
    int rc = test_system("CHROMIUM='%s' node tests/browser/view.mjs --run '%s' --compare '%s' --trees '%s' "
                     "--personas 100 --turns 10 --trees-count 3000 --disagreeing %ld --search zebra1232 "
                     "--tree conv-001232 --shots '%s' %s%s%s > '%s' 2>&1",
                     chromium, run_html, cmp_html, trees_html, disagreeing, dir, shot ? "--readme '" : "",
                     shot ? shot : "", shot ? "'" : "", out);
    char *said = test_read_text(out);
    /* all of it when something failed; else the count and the notes */
    int passed = 0;
    for (const char *p = said; (p = strstr(p, "pass: ")); p++) passed++;
    if (rc || !strstr(said, "browser checks: all passed")) printf("%s", said);
    else
        for (const char *p = said; *p;) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            if (!strncmp(p, "info:", 5)) printf("%.*s\n", len, p);
            p += len + (nl != NULL);
        }
    printf("%d browser checks passed\n", passed);
    CHECK_MSG(rc == 0, "view.mjs exit %d", rc);
    CHECK(strstr(said, "browser checks: all passed"));
    free(said);
    free(out);
    free(run_html);
    free(cmp_html);
    free(trees_html);
    free(trees);
    free(big);
    free(a);
    free(b);
}

int main(void) {
    up = fake_start(&fs, SCRIPT, 0) == 0;
    RUN(test_pages_in_chromium);
    if (up) fake_stop(&fs);
    free(dir);
    return test_summary();
}
