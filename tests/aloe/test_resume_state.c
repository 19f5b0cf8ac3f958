/* Resume state and training data read back as input: a damaged bench
 * journal record, a personas state item whose "nearest" points nowhere (it
 * was used as an index unchecked), an embedding that is no float, and a
 * conversation tree whose examples would expand quadratically are each an
 * error naming the file, the line or record, and the field. */
#include <stdlib.h>
#include <string.h>

#include "aloe/bench.h"
#include "aloe/journal.h"
#include "aloe/personas.h"
#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"
#include "train/data.h"

static const char *good_turn = "{\"turn\": 1, \"score\": 4, \"attempts\": 1}";

/* A journal holding one record for persona p0-k0 (turns given), checked
 * against a 2-turn config; returns the error message or "". */
static char *check_record(const char *turns, const char *usage) {
    char *text = xasprintf("{\"id\": \"p0-k0\", \"turns\": %s, \"usage\": %s}\n", turns, usage);
    char *path = test_write_file("dialogues.jsonl", text);
    Err e = {0};
    Journal *j = journal_open(path, "id", &e);
    char *msg;
    if (!j) {
        msg = xasprintf("open failed: %s", e.msg);
    } else {
        const char *profiles[] = {"p"}, *pers[] = {"q"};
        BenchConfig c = bench_config_default();
        c.profiles = profiles;
        c.n_profiles = 1;
        c.personalities = pers;
        c.n_personalities = 1;
        c.per_profile = 1;
        c.turns = 2;
        msg = xstrdup(bench_check_journal(&c, j, "run/dialogues.jsonl", &e) ? e.msg : "");
        if (!*msg) { /* what a checked record gives must be sane */
            json_t *r = bench_results(&c, j);
            if (!r || !json_is_true(json_object_get(r, "complete"))) {
                free(msg);
                msg = xstrdup("bench_results: not complete");
            }
            json_decref(r);
        }
        journal_close(j);
    }
    free(path);
    free(text);
    return msg;
}

static void test_bench_journal_records_checked(void) {
    char *two = xasprintf("[%s, %s]", good_turn, good_turn);
    const char *usage = "{\"judge\": {\"requests\": 3, \"cached\": 0, \"prompt_tokens\": 9, \"completion_tokens\": 2}}";
    char *msg = check_record(two, usage);
    CHECK_EQ_STR(msg, "");
    free(msg);
    static const char *const cases[][3] = {
        {"[{\"score\": 4, \"attempts\": 1}]", "", "record \"p0-k0\": turns: expected a list of 2 turns"},
        {"[{\"score\": 7, \"attempts\": 1}, {\"score\": null, \"attempts\": 3}]", "",
         "run/dialogues.jsonl: record \"p0-k0\": turns[0].score: expected an integer from 1 to 5 or null"},
        {"[{\"score\": 4, \"attempts\": 1}, {\"score\": \"4\", \"attempts\": 1}]", "", "turns[1].score: expected"},
        {"[{\"score\": 4, \"attempts\": 0}, {\"score\": 4, \"attempts\": 1}]", "",
         "turns[0].attempts: expected an integer from 1 to 3, got an integer"},
        {"[{\"score\": 4, \"attempts\": 1}, {\"score\": 4, \"attempts\": 9223372036854775807}]", "",
         "turns[1].attempts: expected an integer from 1 to 3"},
        {"[{\"score\": 4, \"attempts\": 1}, 5]", "", "turns[1]: expected an object, got an integer"},
        {"[{\"score\": 4, \"attempts\": 1}, {\"score\": 4, \"attempts\": 1}]", "{\"judge\": []}",
         "usage.judge: expected an object, got an array"},
        {"[{\"score\": 4, \"attempts\": 1}, {\"score\": 4, \"attempts\": 1}]",
         "{\"user\": {\"requests\": 9223372036854775807}}", "usage.user.requests: expected an integer from 0 to"},
        {"[{\"score\": 4, \"attempts\": 1}, {\"score\": 4, \"attempts\": 1}]", "null", "usage: expected an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        msg = check_record(cases[i][0], *cases[i][1] ? cases[i][1] : usage);
        CHECK_MSG(strstr(msg, cases[i][2]), "case %zu: got \"%s\"", i, msg);
        free(msg);
    }
    free(two);
}

static void test_personas_state_checked(void) {
    StrList seeds = {0};
    strlist_push(&seeds, "a");
    strlist_push(&seeds, "b");
    const char *round0 = "{\"round\": 0, \"candidates\": 0, \"items\": [{\"text\": \"a\", \"embedding\": [1, 0]},"
                         " {\"text\": \"b\", \"embedding\": [0, 1]}]}\n";
    static const char *const cases[][2] = {
        {"{\"round\": 1, \"candidates\": 5, \"items\": [{\"text\": \"c\", \"embedding\": [1, 1], \"nearest\": 1, "
         "\"similarity\": 0.7}, {\"text\": \"d\", \"embedding\": [1, 2], \"nearest\": 2, \"similarity\": 0.9}]}\n",
         ""},
        {"{\"round\": 1, \"candidates\": 5, \"items\": [{\"text\": \"c\", \"embedding\": [1, 1], \"nearest\": 99, "
         "\"similarity\": 0.7}]}\n",
         "s.jsonl:2: item 0: nearest: expected the index of an earlier item (0 to 1)"},
        {"{\"round\": 1, \"candidates\": 5, \"items\": [{\"text\": \"c\", \"embedding\": [1, 1], \"nearest\": -1}]}\n",
         "s.jsonl:2: item 0: nearest:"},
        {"{\"round\": 1, \"candidates\": 5, \"items\": [{\"text\": \"c\", \"embedding\": [1, 1]}]}\n",
         "s.jsonl:2: item 0: nearest:"},
        {"{\"round\": 1, \"candidates\": 5, \"items\": [{\"text\": \"c\", \"embedding\": [1, 1e300], \"nearest\": 0}]}\n",
         "s.jsonl:2: item 0: embedding[1]: expected a number (a float), got one out of range"},
        {"{\"round\": 1, \"candidates\": 5, \"items\": [{\"text\": \"c\", \"embedding\": [\"x\", 1], \"nearest\": 0}]}\n",
         "s.jsonl:2: item 0: embedding[0]: expected a number (a float), got a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = xasprintf("%s%s", round0, cases[i][0]);
        int rounds = -1, items = -1;
        Err e = {0};
        int rc = personas_state_load_buf("s.jsonl", text, strlen(text), &seeds, &rounds, &items, &e);
        if (!*cases[i][1]) {
            CHECK_MSG(rc == 0, "case %zu: %s", i, e.msg);
            CHECK_EQ_INT(rounds, 1);
            CHECK_EQ_INT(items, 4);
        } else {
            CHECK_MSG(rc == -1 && strstr(e.msg, cases[i][1]), "case %zu: %s", i, e.msg);
        }
        free(text);
    }
    strlist_free(&seeds);
}

/* A tree of many long turns: each turn's example repeats everything before
 * it. 300 turns of ~2 x 4 KiB: ~300^2/2 x 8 KiB = 360 MB of examples from a
 * 2.4 MB line. */
static void test_tree_expansion_limited(void) {
    StrBuf b;
    sb_init(&b);
    char *big = xmalloc(4097);
    memset(big, 'w', 4096);
    big[4096] = 0;
    sb_append(&b, "{\"conversations\": [");
    for (int k = 0; k < 300; k++)
        sb_printf(&b, "%s{\"user\": \"%s\", \"assistant\": {\"preferred\": \"%s\", \"rejected\": \"r\"}, "
                      "\"chosen\": \"preferred\"}", k ? ", " : "", big, big);
    sb_append(&b, "]}\n");
    SftOptions o = {BRANCH_PREFERRED, LOSS_ON_LAST};
    SftData d = {0};
    Err e = {0};
    CHECK(sft_data_load_buf("trees.jsonl", b.s, b.len, &o, &d, &e) == -1);
    CHECK_MSG(strstr(e.msg, "trees.jsonl:1: conversations: the 300 turns' examples would hold") &&
                  strstr(e.msg, "at most 256 MiB"),
              "%s", e.msg);
    DpoData dd = {0};
    CHECK(dpo_data_load_buf("trees.jsonl", b.s, b.len, &dd, &e) == -1);
    CHECK_MSG(strstr(e.msg, "trees.jsonl:1: conversations: the 300 turns'"), "%s", e.msg);
    /* 30 such turns are fine: 30^2/2 x 8 KiB = 3.6 MB. */
    sb_clear(&b);
    sb_append(&b, "{\"conversations\": [");
    for (int k = 0; k < 30; k++)
        sb_printf(&b, "%s{\"user\": \"%s\", \"assistant\": {\"preferred\": \"%s\", \"rejected\": \"r\"}, "
                      "\"chosen\": \"preferred\"}", k ? ", " : "", big, big);
    sb_append(&b, "]}\n");
    CHECK_OK(sft_data_load_buf("trees.jsonl", b.s, b.len, &o, &d, &e), &e);
    CHECK_EQ_INT(d.n, 30);
    sft_data_free(&d);
    dpo_data_free(&dd);
    free(big);
    sb_free(&b);
}

/* Found by fuzz_train_data: a preference record without "rejected" passed
 * NULL to json_type_name (undefined behaviour) while building its error. */
static void test_dpo_missing_field_named(void) {
    const char *rec = "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], "
                      "\"chosen\": [{\"role\": \"assistant\", \"content\": \"a\"}]}\n";
    DpoData d = {0};
    Err e = {0};
    CHECK(dpo_data_load_buf("dpo.jsonl", rec, strlen(rec), &d, &e) == -1);
    CHECK_MSG(strstr(e.msg, "dpo.jsonl:1: rejected: expected a list of messages, got nothing"), "%s", e.msg);
    dpo_data_free(&d);
}

int main(void) {
    RUN(test_dpo_missing_field_named);
    RUN(test_bench_journal_records_checked);
    RUN(test_personas_state_checked);
    RUN(test_tree_expansion_limited);
    return test_summary();
}
