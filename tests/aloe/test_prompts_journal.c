#include <stdlib.h>

#include "aloe/journal.h"
#include "aloe/prompts.h"
#include "base/fileio.h"
#include "test.h"

static void test_fill_placeholders(void) {
    const char *vars[] = {"profile", "a chef", "n", "20", NULL};
    char *s = prompt_fill("Profile: {profile}; make {n} {{literal}} {unknown}", vars);
    CHECK_EQ_STR(s, "Profile: a chef; make 20 {literal} {unknown}");
    free(s);
}

static void test_defaults_use_only_their_placeholders(void) {
    Prompts p;
    prompts_init(&p, PROTOCOL_RUBRIC);
    /* Every text is set; only the optional additions may be "" (not sent). */
    for (int i = 0; i < PROMPT__COUNT; i++)
        CHECK(p.text[i] && (p.text[i][0] || i == PROMPT_USER_REPLY_SUFFIX || i == PROMPT_RESPONDER_HINT ||
                            i == PROMPT_RESPONDER_SUFFIX));
    CHECK(strstr(p.text[PROMPT_JUDGE_SCORE], "Score: N") != NULL);
    prompts_free(&p);
}

static void test_override_file_errors_name_key(void) {
    char *dir = test_tmpdir();
    char *path = path_join(dir, "prompts.json");
    Err e;
    const char *bad = "{\"judge_scor\": \"x\"}";
    file_write_atomic(path, bad, strlen(bad), &e);
    Prompts p;
    prompts_init(&p, PROTOCOL_RUBRIC);
    CHECK(prompts_load(&p, path, &e) == -1);
    CHECK_MSG(strstr(e.msg, "unknown prompt \"judge_scor\"") != NULL, "%s", e.msg);
    const char *bad2 = "{\"judge_score\": \"rate {reply} for {nobody}\"}";
    file_write_atomic(path, bad2, strlen(bad2), &e);
    CHECK(prompts_load(&p, path, &e) == -1);
    CHECK_MSG(strstr(e.msg, "{nobody}") != NULL, "%s", e.msg);
    const char *good = "{\"judge_score\": \"rate {reply}\"}";
    file_write_atomic(path, good, strlen(good), &e);
    CHECK_OK(prompts_load(&p, path, &e), &e);
    CHECK_EQ_STR(p.text[PROMPT_JUDGE_SCORE], "rate {reply}");
    prompts_free(&p);
    free(path);
    free(dir);
}

static void test_journal_resumes_after_torn_write(void) {
    char *dir = test_tmpdir();
    char *path = path_join(dir, "out.jsonl");
    Err e;
    Journal *j = journal_open(path, "id", &e);
    CHECK(j != NULL);
    json_t *r = json_pack("{s:s, s:i}", "id", "p0", "x", 1);
    CHECK_OK(journal_append(j, r, &e), &e);
    CHECK(journal_append(j, r, &e) == -1); /* a key is written once */
    json_decref(r);
    journal_close(j);
    /* Simulate kill -9 in the middle of the next record. */
    Appender a;
    CHECK_OK(appender_open(&a, path, &e), &e);
    CHECK_OK(appender_write(&a, "{\"id\": \"p1\", \"x\"", 16, &e), &e);
    appender_close(&a);
    j = journal_open(path, "id", &e);
    CHECK(j != NULL);
    CHECK_EQ_INT(journal_count(j), 1);
    CHECK(journal_get(j, "p0") != NULL);
    CHECK(journal_get(j, "p1") == NULL);
    r = json_pack("{s:s}", "id", "p1");
    CHECK_OK(journal_append(j, r, &e), &e);
    json_decref(r);
    journal_close(j);
    j = journal_open(path, "id", &e);
    CHECK_EQ_INT(journal_count(j), 2);
    journal_close(j);
    free(path);
    free(dir);
}

int main(void) {
    RUN(test_fill_placeholders);
    RUN(test_defaults_use_only_their_placeholders);
    RUN(test_override_file_errors_name_key);
    RUN(test_journal_resumes_after_torn_write);
    return test_summary();
}
