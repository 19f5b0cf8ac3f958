/* aloe report on damaged results.json: every field the reports read is
 * checked, and a wrong one is an error naming the file and the field (the
 * command exits 1), never a table of zeros. */
#include <stdlib.h>
#include <string.h>

#include "aloe/report.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "test.h"

static const char *good =
    "{\"benchmark\": \"ALOE\", \"complete\": true, \"conversations\": {\"done\": 2, \"total\": 2},"
    " \"turns\": [{\"turn\": 1, \"al\": 3.5, \"n\": 2, \"ci95\": 1.2, \"sd\": 0.7, \"invalid\": 0},"
    "            {\"turn\": 2, \"al\": null, \"n\": 0, \"ci95\": null, \"sd\": null, \"invalid\": 2}],"
    " \"avg\": 3.5, \"ir\": null, \"r2\": null, \"n_ir\": null, \"n_r2\": null,"
    " \"models\": {\"model\": \"m\", \"user\": \"u\", \"judge\": \"j\"},"
    " \"judge\": {\"judged_turns\": 4, \"retried\": 1, \"invalid\": 2, \"replies_without_score\": 3,"
    "            \"max_attempts\": 3},"
    " \"usage\": {\"model\": {\"requests\": 4, \"cached\": 0, \"prompt_tokens\": 10, \"completion_tokens\": 5}},"
    " \"personas\": [{\"id\": \"p0-k0\", \"profile_index\": 0, \"personality_index\": 0, \"scores\": [4, null]},"
    "              {\"id\": \"p0-k1\", \"profile_index\": 0, \"personality_index\": 1, \"scores\": [3, null]}],"
    " \"intervals\": {\"avg\": {\"lo\": 3.5, \"hi\": 3.5, \"defined\": 1}, \"ir\": {\"lo\": null, \"hi\": null},"
    "               \"n_ir\": {\"lo\": null, \"hi\": null, \"defined\": 0}, \"method\": \"cluster bootstrap\","
    "               \"exact\": true, \"replicates\": 1, \"seed\": 7, \"level\": 0.95, \"clusters\": 1}}";

/* good with `from` replaced by `to`; the parse error message or "" */
static char *parse_with(const char *from, const char *to) {
    const char *at = strstr(good, from);
    if (!at) return xasprintf("test bug: %s not in the sample", from);
    char *text = xasprintf("%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    Err e = {0};
    json_t *r = report_parse_results("runs/x/results.json", text, strlen(text), &e);
    char *msg = xstrdup(r ? "" : e.msg);
    json_decref(r);
    free(text);
    return msg;
}

static void test_fields_checked(void) {
    static const char *const cases[][3] = {
        {"\"al\": 3.5", "\"al\": \"3.5\"", "runs/x/results.json: turns[0].al: expected a number or null, got a string"},
        {"\"turn\": 2", "\"turn\": 2.5", "runs/x/results.json: turns[1].turn: expected an integer, got a number"},
        {"\"n\": 0", "\"n\": -1", "turns[1].n: expected a non-negative integer, got an integer"},
        {"\"turn\": 1, ", "", "turns[0].turn: expected an integer, it is missing"},
        {"{\"turn\": 1, \"al\": 3.5, \"n\": 2, \"ci95\": 1.2, \"sd\": 0.7, \"invalid\": 0}", "[]",
         "turns[0]: expected an object, got an array"},
        {"\"ci95\": null", "\"ci95\": {}", "turns[1].ci95: expected a number or null, got an object"},
        {"\"avg\": 3.5", "\"avg\": \"high\"", "runs/x/results.json: avg: expected a number or null, got a string"},
        {"\"complete\": true", "\"complete\": 1", "complete: expected true or false, got an integer"},
        {"\"model\": \"m\"", "\"model\": 7", "models.model: expected a string, got an integer"},
        {"\"done\": 2", "\"done\": \"2\"", "conversations.done: expected a non-negative integer, got a string"},
        {"\"invalid\": 2, \"replies", "\"invalid\": null, \"replies", "judge.invalid: expected a non-negative"},
        {"\"prompt_tokens\": 10", "\"prompt_tokens\": 1e3", "usage.model.prompt_tokens: expected a non-negative"},
        {"\"usage\": {\"model\": {", "\"usage\": {\"model\": [], \"x\": {", "usage.model: expected an object, got an array"},
        {"\"judge\": {\"judged", "\"judge\": [], \"j\": {\"judged", "judge: expected an object, got an array"},
        {"\"turns\": [", "\"turns\": {}, \"t\": [", "not a benchmark results file"},
        /* personas[] and intervals (what aloe report pairs runs by) */
        {"\"personas\": [", "\"personas\": {}, \"x\": [", "runs/x/results.json: personas: expected a list, got an object"},
        {"[{\"id\": \"p0-k0\"", "[7, {\"id\": \"p0-k0\"", "personas[0]: expected an object, got an integer"},
        {"\"id\": \"p0-k1\"", "\"id\": 3", "personas[1].id: expected a string, got an integer"},
        {"\"id\": \"p0-k1\"", "\"id\": \"p0-k0\"", "personas[1].id: \"p0-k0\" appears twice"},
        {"\"profile_index\": 0, \"personality_index\": 1", "\"profile_index\": -1, \"personality_index\": 1",
         "personas[1].profile_index: expected a non-negative integer"},
        {"\"personality_index\": 1, ", "", "personas[1].personality_index: expected a non-negative integer, it is missing"},
        {"\"scores\": [3, null]", "\"scores\": [3]",
         "personas[1].scores: expected a list of 2 scores (one per turn), got another length"},
        {"\"scores\": [3, null]", "\"scores\": \"3\"", "personas[1].scores: expected a list of 2 scores (one per turn), got a string"},
        {"\"scores\": [4, null]", "\"scores\": [4, 6]", "personas[0].scores[1]: expected an integer from 1 to 5 or null, got an integer"},
        {"\"scores\": [4, null]", "\"scores\": [4.5, null]", "personas[0].scores[0]: expected an integer from 1 to 5 or null, got a number"},
        {"\"intervals\": {", "\"intervals\": [], \"y\": {", "runs/x/results.json: intervals: expected an object, got an array"},
        {"\"ir\": {\"lo\": null, \"hi\": null}", "\"ir\": 0.1", "intervals.ir: expected an object, got a number"},
        {"\"ir\": {\"lo\": null, \"hi\": null}, ", "", "intervals.ir: expected an object, it is missing"},
        {"\"avg\": {\"lo\": 3.5", "\"avg\": {\"lo\": \"3.5\"", "intervals.avg.lo: expected a number or null, got a string"},
        {"\"hi\": null, \"defined\": 0", "\"defined\": 0", "intervals.n_ir.hi: expected a number or null, it is missing"},
        {"\"defined\": 1", "\"defined\": -1", "intervals.avg.defined: expected a non-negative integer"},
        {"\"replicates\": 1", "\"replicates\": 1.5", "intervals.replicates: expected a non-negative integer, got a number"},
        {"\"seed\": 7", "\"seed\": \"7\"", "intervals.seed: expected a non-negative integer, got a string"},
        {"\"method\": \"cluster bootstrap\"", "\"method\": null", "intervals.method: expected a string, got null"},
        {"\"exact\": true", "\"exact\": 1", "intervals.exact: expected true or false, got an integer"},
        {"\"clusters\": 1", "\"clusters\": -2", "intervals.clusters: expected a non-negative integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *msg = parse_with(cases[i][0], cases[i][1]);
        CHECK_MSG(strstr(msg, cases[i][2]), "case %zu: got \"%s\", want \"%s\"", i, msg, cases[i][2]);
        free(msg);
    }
    char *msg = parse_with("\"avg\"", "\"avg\""); /* unchanged: fine */
    CHECK_EQ_STR(msg, "");
    free(msg);
    Err e = {0};
    CHECK(!report_parse_results("r.json", "{\"turns\": [", 11, &e));
    CHECK_MSG(strstr(e.msg, "r.json:1:"), "%s", e.msg);
}

static void test_report_command_exits_1_naming_field(void) {
    char *dir = test_tmpdir();
    char *run = path_join(dir, "x");
    Err e = {0};
    CHECK_OK(file_mkdirs(run, &e), &e);
    char *res = path_join(run, "results.json");
    const char *bad = "{\"turns\": [{\"turn\": 1, \"al\": 3, \"n\": 1}, {\"turn\": 2, \"al\": 3, \"n\": 1},"
                      " {\"turn\": 3, \"al\": 3, \"n\": 1}, {\"turn\": 4, \"al\": \"x\", \"n\": 1}]}";
    CHECK_OK(file_write_atomic(res, bad, strlen(bad), &e), &e);
    char *args = xasprintf("report %s", run), *out = NULL;
    int rc = aloe_sh_run(NULL, args, &out);
    free(args);
    CHECK_EQ_INT(rc, 1);
    char *want = xasprintf("%s: turns[3].al: expected a number or null, got a string", res);
    CHECK_MSG(strstr(out, want), "%s", out);
    free(want);
    free(out);
    free(res);
    free(run);
    free(dir);
}

int main(void) {
    RUN(test_fields_checked);
    RUN(test_report_command_exits_1_naming_field);
    return test_summary();
}
