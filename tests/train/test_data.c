#include <stdlib.h>

#include "base/fileio.h"
#include "test.h"
#include "train/data.h"

/* Three turns; the conversation continued with the rejected reply at turn 0
 * and the preferred one at turn 1. */
static const char *TREE =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"u0\", \"assistant\": {\"preferred\": \"p0\", \"rejected\": \"r0\"}, \"chosen\": \"rejected\"},"
    "{\"user\": \"u1\", \"assistant\": {\"preferred\": \"p1\", \"rejected\": \"r1\"}, \"chosen\": \"preferred\"},"
    "{\"user\": \"u2\", \"assistant\": {\"preferred\": \"p2\", \"rejected\": \"r2\"}}]}\n";

static int msg_is(const TrainMsg *m, const char *role, const char *content) {
    return !strcmp(m->role, role) && !strcmp(m->content, content);
}

static void test_sft_from_tree_follows_the_taken_branch(void) {
    char *p = test_write_file("data.jsonl", TREE);
    SftData d = {0};
    SftOptions o = {BRANCH_PREFERRED, LOSS_ON_LAST};
    Err e;
    CHECK_OK(sft_data_load(p, &o, &d, &e), &e);
    CHECK_EQ_INT(d.n, 3);
    /* Turn 2: u0 r0 u1 p1 u2 -> p2, loss on p2 only. */
    SftExample *x = &d.items[2];
    CHECK_EQ_INT(x->msgs.n, 6);
    CHECK(msg_is(&x->msgs.items[0], "user", "u0"));
    CHECK(msg_is(&x->msgs.items[1], "assistant", "r0"));
    CHECK(msg_is(&x->msgs.items[2], "user", "u1"));
    CHECK(msg_is(&x->msgs.items[3], "assistant", "p1"));
    CHECK(msg_is(&x->msgs.items[4], "user", "u2"));
    CHECK(msg_is(&x->msgs.items[5], "assistant", "p2"));
    for (int i = 0; i < 5; i++) CHECK(!x->is_target[i]);
    CHECK(x->is_target[5]);
    CHECK_MSG(strstr(x->where, "data.jsonl:1: conversations[2]") != NULL, "where: %s", x->where);
    /* Turn 0: u0 -> p0. */
    CHECK_EQ_INT(d.items[0].msgs.n, 2);
    CHECK(msg_is(&d.items[0].msgs.items[1], "assistant", "p0"));
    sft_data_free(&d);
    /* The paper's control: the rejected reply as target, same history. */
    o.branch = BRANCH_REJECTED;
    CHECK_OK(sft_data_load(p, &o, &d, &e), &e);
    CHECK(msg_is(&d.items[2].msgs.items[5], "assistant", "r2"));
    CHECK(msg_is(&d.items[2].msgs.items[3], "assistant", "p1"));
    sft_data_free(&d);
    free(p);
}

static void test_dpo_from_tree(void) {
    char *p = test_write_file("data.jsonl", TREE);
    DpoData d = {0};
    Err e;
    CHECK_OK(dpo_data_load(p, &d, &e), &e);
    CHECK_EQ_INT(d.n, 3);
    DpoExample *x = &d.items[1];
    CHECK_EQ_INT(x->prompt.n, 3);
    CHECK(msg_is(&x->prompt.items[1], "assistant", "r0"));
    CHECK(msg_is(&x->prompt.items[2], "user", "u1"));
    CHECK_EQ_INT(x->chosen.n, 1);
    CHECK(msg_is(&x->chosen.items[0], "assistant", "p1"));
    CHECK(msg_is(&x->rejected.items[0], "assistant", "r1"));
    CHECK(!x->raw_text);
    dpo_data_free(&d);
    free(p);
}

/* `aloe dialogues --drop-disagreements`: turn 1's pair was dropped (null
 * preferred/rejected); the conversation went on with the plain reply. */
static void test_dropped_pairs_give_no_example_but_stay_in_history(void) {
    char *p = test_write_file("data.jsonl", 
        "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
        "{\"user\": \"u0\", \"assistant\": {\"preferred\": \"p0\", \"rejected\": \"r0\"}, \"chosen\": \"preferred\"},"
        "{\"user\": \"u1\", \"assistant\": {\"preferred\": null, \"rejected\": null, \"hinted\": \"h1\", "
        "\"plain\": \"n1\"}, \"chosen\": \"plain\"},"
        "{\"user\": \"u2\", \"assistant\": {\"preferred\": \"p2\", \"rejected\": \"r2\"}}]}\n");
    DpoData d = {0};
    Err e;
    CHECK_OK(dpo_data_load(p, &d, &e), &e);
    CHECK_EQ_INT(d.n, 2);
    CHECK_EQ_INT(d.items[1].prompt.n, 5);
    CHECK(msg_is(&d.items[1].prompt.items[3], "assistant", "n1"));
    CHECK(msg_is(&d.items[1].chosen.items[0], "assistant", "p2"));
    dpo_data_free(&d);
    SftData s = {0};
    SftOptions o = {BRANCH_PREFERRED, LOSS_ON_LAST};
    CHECK_OK(sft_data_load(p, &o, &s, &e), &e);
    CHECK_EQ_INT(s.n, 2);
    sft_data_free(&s);
    free(p);
    /* A dropped pair that does not say which reply was taken is an error. */
    p = test_write_file("data.jsonl", "{\"conversations\": [{\"user\": \"u0\", \"assistant\": {\"preferred\": null, "
                  "\"rejected\": null}, \"chosen\": \"preferred\"}, {\"user\": \"u1\", \"assistant\": "
                  "{\"preferred\": \"a\", \"rejected\": \"b\"}}]}\n");
    CHECK(dpo_data_load(p, &d, &e) == -1);
    CHECK_MSG(strstr(e.msg, "data.jsonl:1: conversations[0].chosen: a dropped pair") != NULL, "%s", e.msg);
    free(p);
}

static void test_sft_from_trl_messages(void) {
    char *p = test_write_file("data.jsonl", 
        "{\"messages\": [{\"role\": \"system\", \"content\": \"\"}, {\"role\": \"user\", \"content\": \"a\"},"
        " {\"role\": \"assistant\", \"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"},"
        " {\"role\": \"assistant\", \"content\": \"d\"}, {\"role\": \"user\", \"content\": \"dangling\"}]}\n");
    SftData d = {0};
    SftOptions o = {BRANCH_PREFERRED, LOSS_ON_LAST};
    Err e;
    CHECK_OK(sft_data_load(p, &o, &d, &e), &e);
    CHECK_EQ_INT(d.n, 1);
    CHECK_EQ_INT(d.items[0].msgs.n, 5); /* the trailing user message is dropped */
    CHECK(!d.items[0].is_target[2] && d.items[0].is_target[4]);
    sft_data_free(&d);
    o.loss_on = LOSS_ON_ALL_ASSISTANT;
    CHECK_OK(sft_data_load(p, &o, &d, &e), &e);
    CHECK(d.items[0].is_target[2] && d.items[0].is_target[4]);
    CHECK(!d.items[0].is_target[0] && !d.items[0].is_target[1] && !d.items[0].is_target[3]);
    sft_data_free(&d);
    free(p);
}

static void test_dpo_from_trl_lists_strings_and_implicit_prompt(void) {
    char *p = test_write_file("data.jsonl", 
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"good\"}],"
        " \"rejected\": [{\"role\": \"assistant\", \"content\": \"bad\"}]}\n"
        "{\"prompt\": \"The sky is\", \"chosen\": \" blue.\", \"rejected\": \" green.\"}\n"
        "{\"chosen\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"good\"}],"
        " \"rejected\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"bad\"}]}\n");
    DpoData d = {0};
    Err e;
    CHECK_OK(dpo_data_load(p, &d, &e), &e);
    CHECK_EQ_INT(d.n, 3);
    CHECK(msg_is(&d.items[0].prompt.items[0], "user", "q"));
    CHECK(msg_is(&d.items[0].rejected.items[0], "assistant", "bad"));
    CHECK(d.items[1].raw_text);
    CHECK_EQ_STR(d.items[1].prompt.items[0].content, "The sky is");
    CHECK_EQ_STR(d.items[1].chosen.items[0].content, " blue.");
    CHECK_EQ_INT(d.items[2].prompt.n, 1);
    CHECK(msg_is(&d.items[2].prompt.items[0], "user", "q"));
    CHECK_EQ_INT(d.items[2].chosen.n, 1);
    CHECK(msg_is(&d.items[2].chosen.items[0], "assistant", "good"));
    dpo_data_free(&d);
    free(p);
}

/* Each bad record must name file, line and field. */
static void expect_error(int dpo, const char *content, const char *want) {
    char *p = test_write_file("data.jsonl", content);
    Err e;
    int rc;
    if (dpo) {
        DpoData d = {0};
        rc = dpo_data_load(p, &d, &e);
        dpo_data_free(&d);
    } else {
        SftData d = {0};
        SftOptions o = {BRANCH_PREFERRED, LOSS_ON_LAST};
        rc = sft_data_load(p, &o, &d, &e);
        sft_data_free(&d);
    }
    free(p);
    if (rc != -1) test_fail(__FILE__, __LINE__, "no error for: %s", content);
    else if (!strstr(e.msg, want)) test_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", e.msg, want);
}

static void test_bad_records_name_line_and_field(void) {
    expect_error(0, "\n{\"conversations\": [{\"user\": \"u\", \"assistant\": {\"preferred\": 3, \"rejected\": \"r\"}}]}\n",
                 "data.jsonl:2: conversations[0].assistant.preferred: expected a string, got an integer");
    expect_error(0, "{\"conversations\": [{\"user\": \"u\", \"assistant\": {\"preferred\": \"p\", \"rejected\": \"r\"}, "
                    "\"chosen\": \"both\"}, {\"user\": \"v\", \"assistant\": {\"preferred\": \"p\", \"rejected\": \"r\"}}]}\n",
                 "data.jsonl:1: conversations[0].chosen: expected \"preferred\" or \"rejected\", got \"both\"");
    expect_error(0, "{\"conversations\": [{\"user\": \"u\", \"assistant\": {\"preferred\": \"p\", \"rejected\": \"r\"}}, "
                    "{\"user\": \"v\", \"assistant\": {\"preferred\": \"p\", \"rejected\": \"r\"}}]}\n",
                 "conversations[0].chosen: expected \"preferred\" or \"rejected\", got nothing");
    expect_error(0, "{\"conversations\": [{\"user\": \"\", \"assistant\": {\"preferred\": \"p\", \"rejected\": \"r\"}}]}\n",
                 "conversations[0].user: empty string");
    expect_error(0, "{\"conversations\": []}\n", "conversations: expected a non-empty list of turns, got an empty list");
    expect_error(0, "{\"conversations\": [{\"user\": \"u\", \"assistant\": \"p\"}]}\n", "conversations[0].assistant: expected an object");
    expect_error(0, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n", "data.jsonl:1: messages: no \"assistant\" message");
    expect_error(0, "{\"messages\": [{\"role\": \"user\"}]}\n", "data.jsonl:1: messages[0].content: missing");
    expect_error(0, "{\"text\": \"x\"}\n", "data.jsonl:1: expected \"conversations\" (an aloe tree) or \"messages\" (TRL), found keys: text");
    expect_error(0, "[1]\n", "data.jsonl:1: expected a JSON object, got an array");
    expect_error(0, "\n\n", "data.jsonl: no training examples in the file");
    expect_error(1, "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": [{\"role\": \"assistant\", \"content\": \"x\"}]}\n",
                 "data.jsonl:1: rejected: expected a string, got an array");
    expect_error(1, "{\"prompt\": [], \"chosen\": \"c\", \"rejected\": \"r\"}\n",
                 "data.jsonl:1: chosen: expected a list of messages, got a string");
    expect_error(1, "{\"chosen\": [{\"role\": \"user\", \"content\": \"q\"}], \"rejected\": [{\"role\": \"user\", \"content\": \"q\"}]}\n",
                 "no messages left after their common prefix");
    expect_error(1, "{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": [], \"rejected\": []}\n",
                 "data.jsonl:1: chosen: empty list");
    expect_error(1, "{\"messages\": []}\n", "or \"prompt\"/\"chosen\"/\"rejected\" (TRL), found keys: messages");
}

static void test_option_parsers(void) {
    TreeBranch b;
    LossOn l;
    Err e;
    CHECK_OK(tree_branch_parse("rejected", &b, &e), &e);
    CHECK(b == BRANCH_REJECTED);
    CHECK(tree_branch_parse("chosen", &b, &e) == -1 && strstr(e.msg, "preferred or rejected"));
    CHECK_OK(loss_on_parse("all-assistant", &l, &e), &e);
    CHECK(l == LOSS_ON_ALL_ASSISTANT);
    CHECK(loss_on_parse("all", &l, &e) == -1 && strstr(e.msg, "last or all-assistant"));
}

int main(void) {
    RUN(test_sft_from_tree_follows_the_taken_branch);
    RUN(test_dpo_from_tree);
    RUN(test_dropped_pairs_give_no_example_but_stay_in_history);
    RUN(test_sft_from_trl_messages);
    RUN(test_dpo_from_trl_lists_strings_and_implicit_prompt);
    RUN(test_bad_records_name_line_and_field);
    RUN(test_option_parsers);
    return test_summary();
}
