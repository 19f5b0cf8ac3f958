#include <stdlib.h>

#include "aloe/export.h"
#include "base/fileio.h"
#include "run_aloe.h"
#include "test.h"

/* Two turns; the conversation went on with the REJECTED reply of turn 1,
 * so turn 2's history must hold "a1-rej" and the real second user turn. */
static const char *TREE =
    "{\"profile\":\"P\",\"personality\":\"Q\",\"conversations\":["
    "{\"user\":\"u1\",\"assistant\":{\"preferred\":\"a1-pref\",\"rejected\":\"a1-rej\"},\"chosen\":\"rejected\","
    "\"inferred_profile\":\"x\",\"inferred_personality\":\"y\"},"
    "{\"user\":\"u2\",\"assistant\":{\"preferred\":\"a2-pref\",\"rejected\":\"a2-rej\"},\"chosen\":\"preferred\","
    "\"inferred_profile\":\"x\",\"inferred_personality\":\"y\"}]}\n";

static char *write_in(const char *dir, const char *content) {
    char *p = path_join(dir, "trees.jsonl");
    Err e;
    file_write_atomic(p, content, strlen(content), &e);
    return p;
}

static char *slurp(const char *p) {
    char *s = NULL;
    size_t n;
    Err e;
    return file_read_all(p, &s, &n, &e) ? NULL : s;
}

static void test_sft_and_dpo_records_exact(void) {
    char *dir = test_tmpdir(), *in = write_in(dir, TREE);
    char *sft = path_join(dir, "sft.jsonl"), *dpo = path_join(dir, "dpo.jsonl");
    ExportOptions o = {"preferred", "Be kind."};
    ExportStats st;
    Err e;
    CHECK_OK(export_run(in, sft, dpo, &o, &st, &e), &e);
    CHECK_EQ_INT(st.trees, 1);
    CHECK_EQ_INT(st.sft, 2);
    CHECK_EQ_INT(st.dpo, 2);
    char *s = slurp(sft), *d = slurp(dpo);
    CHECK_EQ_STR(s,
                 "{\"messages\":[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"u1\"},"
                 "{\"role\":\"assistant\",\"content\":\"a1-pref\"}]}\n"
                 "{\"messages\":[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"u1\"},"
                 "{\"role\":\"assistant\",\"content\":\"a1-rej\"},{\"role\":\"user\",\"content\":\"u2\"},"
                 "{\"role\":\"assistant\",\"content\":\"a2-pref\"}]}\n");
    CHECK_EQ_STR(d,
                 "{\"prompt\":[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"u1\"}],"
                 "\"chosen\":[{\"role\":\"assistant\",\"content\":\"a1-pref\"}],"
                 "\"rejected\":[{\"role\":\"assistant\",\"content\":\"a1-rej\"}]}\n"
                 "{\"prompt\":[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"u1\"},"
                 "{\"role\":\"assistant\",\"content\":\"a1-rej\"},{\"role\":\"user\",\"content\":\"u2\"}],"
                 "\"chosen\":[{\"role\":\"assistant\",\"content\":\"a2-pref\"}],"
                 "\"rejected\":[{\"role\":\"assistant\",\"content\":\"a2-rej\"}]}\n");
    free(s), free(d);
    /* The rejected branch as a control, no system message. */
    o = (ExportOptions){"rejected", NULL};
    CHECK_OK(export_run(in, sft, NULL, &o, &st, &e), &e);
    s = slurp(sft);
    CHECK_EQ_STR(s,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"a1-rej\"}]}\n"
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"a1-rej\"},"
                 "{\"role\":\"user\",\"content\":\"u2\"},{\"role\":\"assistant\",\"content\":\"a2-rej\"}]}\n");
    free(s);
    free(sft), free(dpo), free(in), free(dir);
}

static void test_dropped_pair_stays_in_history(void) {
    const char *tree =
        "{\"profile\":\"P\",\"personality\":\"Q\",\"conversations\":["
        "{\"user\":\"u1\",\"assistant\":{\"preferred\":null,\"rejected\":null,\"hinted\":\"h1\",\"plain\":\"p1\"},"
        "\"chosen\":\"plain\",\"inferred_profile\":\"x\",\"inferred_personality\":\"y\"},"
        "{\"user\":\"u2\",\"assistant\":{\"preferred\":\"a2\",\"rejected\":\"b2\"},\"chosen\":\"preferred\","
        "\"inferred_profile\":\"x\",\"inferred_personality\":\"y\"}]}\n";
    char *dir = test_tmpdir(), *in = write_in(dir, tree), *dpo = path_join(dir, "dpo.jsonl");
    ExportOptions o = {NULL, NULL};
    ExportStats st;
    Err e;
    CHECK_OK(export_run(in, NULL, dpo, &o, &st, &e), &e);
    CHECK_EQ_INT(st.dpo, 1);
    CHECK_EQ_INT(st.dropped, 1);
    char *d = slurp(dpo);
    CHECK_EQ_STR(d, "{\"prompt\":[{\"role\":\"user\",\"content\":\"u1\"},{\"role\":\"assistant\",\"content\":\"p1\"},"
                    "{\"role\":\"user\",\"content\":\"u2\"}],\"chosen\":[{\"role\":\"assistant\",\"content\":\"a2\"}],"
                    "\"rejected\":[{\"role\":\"assistant\",\"content\":\"b2\"}]}\n");
    free(d), free(dpo), free(in), free(dir);
}

static void test_bad_trees_name_line_and_field(void) {
    char *dir = test_tmpdir(), *out = path_join(dir, "o.jsonl");
    ExportOptions o = {NULL, NULL};
    ExportStats st;
    Err e;
    char *in = write_in(dir, "{\"conversations\":[{\"user\":\"u\",\"assistant\":{\"preferred\":\"a\",\"rejected\":"
                             "\"b\"},\"chosen\":\"preferred\"}]}\n{\"conversations\":[{\"user\":\"u\",\"assistant\":"
                             "{\"preferred\":\"a\",\"rejected\":3},\"chosen\":\"preferred\"}]}\n");
    CHECK(export_run(in, out, NULL, &o, &st, &e) == -1);
    CHECK_MSG(strstr(e.msg, "trees.jsonl:2: conversations[0].assistant.rejected: expected a string, got an integer"),
              "%s", e.msg);
    free(in);
    in = write_in(dir, "{\"conversations\":[{\"user\":\"u\",\"assistant\":{\"preferred\":\"a\",\"rejected\":\"b\"},"
                       "\"chosen\":\"maybe\"}]}\n");
    CHECK(export_run(in, out, NULL, &o, &st, &e) == -1);
    CHECK_MSG(strstr(e.msg, "conversations[0].assistant.maybe: expected a string, got nothing"), "%s", e.msg);
    free(in);
    in = write_in(dir, "[1,2]\n");
    CHECK(export_run(in, out, NULL, &o, &st, &e) == -1);
    CHECK_MSG(strstr(e.msg, "trees.jsonl:1: expected a conversation tree"), "%s", e.msg);
    o.branch = "best";
    CHECK(export_run(in, out, NULL, &o, &st, &e) == -1);
    CHECK(strstr(e.msg, "--branch"));
    free(in), free(out), free(dir);
}

static void test_cli(void) {
    char *dir = test_tmpdir(), *in = write_in(dir, TREE);
    char *dpo = path_join(dir, "d.jsonl");
    const char *a[] = {"export", in, "--dpo", dpo, NULL};
    CHECK_EQ_INT(aloe_run(dir, a), 0);
    char *so = slurp_in(dir, "stdout.txt"), *d = slurp_in(dpo, NULL);
    CHECK_MSG(strstr(so, "1 trees, 2 turns -> 0 SFT records, 2 DPO records in "), "%s", so);
    CHECK_EQ_INT(count_lines(d), 2);
    free(so), free(d);
    const char *b[] = {"export", in, NULL};
    CHECK_EQ_INT(aloe_run(dir, b), 2);
    char *err = slurp_in(dir, "stderr.txt");
    CHECK_MSG(strstr(err, "give --sft FILE and/or --dpo FILE"), "%s", err);
    free(err);
    const char *c[] = {"export", "--sft", dpo, NULL};
    CHECK_EQ_INT(aloe_run(dir, c), 2);
    free(dpo), free(in), free(dir);
}

int main(void) {
    RUN(test_cli);
    RUN(test_sft_and_dpo_records_exact);
    RUN(test_dropped_pair_stays_in_history);
    RUN(test_bad_trees_name_line_and_field);
    return test_summary();
}
